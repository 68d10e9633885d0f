#pragma once
// A folder of pictures as a data set: every file stb_image decodes (PNG, JPEG, BMP, GIF, TGA, ...)
// in the folder and its subfolders, in sorted path order, each cropped to its centred square,
// resized to S x S and kept as RGB or grey. Decoded once, on construction, on every core, and kept
// as 8-bit values (S = 64, RGB: 12 KiB an image).
//
// A file that does not decode is skipped with a warning on stderr naming it; a folder with no
// decodable picture is an Error.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "elbo/io/image.hpp"

namespace elbo::data {

class ImageFolder {
public:
    ImageFolder(const std::string& root, int64_t image_size, int64_t channels) : size_(image_size), channels_(channels) {
        namespace fs = std::filesystem;
        check(channels == 1 || channels == 3, "images", "channels must be 1 (grey) or 3 (RGB), got ", channels);
        check(image_size > 0, "images", "image size must be positive, got ", image_size);
        std::error_code ec;
        check(fs::is_directory(root, ec), "images", "'", root, "' is not a folder");
        std::vector<std::string> candidates;
        for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
            if (it->is_regular_file(ec)) candidates.push_back(it->path().string());
        check(!ec, "images", "cannot list '", root, "': ", ec.message());
        std::sort(candidates.begin(), candidates.end());

        // Decode in parallel; a failure is recorded per file and reported in order afterwards.
        const int64_t n = static_cast<int64_t>(candidates.size()), values = channels * image_size * image_size;
        std::vector<uint8_t> pixels(static_cast<size_t>(n * values));
        std::vector<std::string> failures(static_cast<size_t>(n));
#pragma omp parallel for schedule(dynamic, 4)
        for (int64_t i = 0; i < n; ++i) {
            try {
                const Tensor<float> image = read_image(candidates[i], channels, image_size);
                for (int64_t k = 0; k < values; ++k)
                    pixels[static_cast<size_t>(i * values + k)] = static_cast<uint8_t>(std::lround(255.0f * image[k]));
            } catch (const Error& e) {
                failures[i] = e.what();
            }
        }
        for (int64_t i = 0; i < n; ++i) {
            if (!failures[i].empty()) {
                std::fprintf(stderr, "elbo: warning: skipping '%s' (%s)\n", candidates[i].c_str(), failures[i].c_str());
                continue;
            }
            files_.push_back(candidates[i]);
            pixels_.insert(pixels_.end(), pixels.begin() + i * values, pixels.begin() + (i + 1) * values);
        }
        check(!files_.empty(), "images", "'", root, "' holds no picture stb_image can read (", n, " files looked at)");
    }

    int64_t size() const { return static_cast<int64_t>(files_.size()); }
    int64_t channels() const { return channels_; }
    int64_t image_size() const { return size_; }
    const std::string& file(int64_t index) const { return files_.at(static_cast<size_t>(index)); }

    // Images [n, C, S, S] in [0, 1].
    Tensor<float> images(const std::vector<int64_t>& indices) const {
        const int64_t values = channels_ * size_ * size_;
        Tensor<float> out = Tensor<float>::uninitialized(Shape{static_cast<int64_t>(indices.size()), channels_, size_, size_});
        for (size_t n = 0; n < indices.size(); ++n) {
            check(indices[n] >= 0 && indices[n] < size(), "images", "index ", indices[n], " is outside [0, ", size(), ")");
            const uint8_t* src = pixels_.data() + indices[n] * values;
            for (int64_t k = 0; k < values; ++k) out[static_cast<int64_t>(n) * values + k] = src[k] / 255.0f;
        }
        return out;
    }

private:
    int64_t size_, channels_;
    std::vector<std::string> files_;
    std::vector<uint8_t> pixels_;
};

}  // namespace elbo::data
