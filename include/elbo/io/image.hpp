#pragma once
// Pictures in and out: decoding image files (PNG, JPEG, BMP, GIF, ... through stb_image), resizing
// (stb_image_resize), grids of images, and PNG files (stb_image_write), written atomically.
//
// An image here is a float tensor [C, H, W] with values in [0, 1], C = 1 (grey) or 3 (RGB), the
// layout the models read. Files hold 8 bits per value: v -> round(255 clamp(v, 0, 1)).
//
// The stb implementations come compiled in Debian's libstb (libstb-dev), which elbo::elbo links.

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "elbo/io/file.hpp"
#include "elbo/tensor/tensor.hpp"

namespace elbo {

// Each [H, W] plane of `images` (any leading dimensions) resized to height x width with stb's
// default filters (Mitchell when shrinking, cubic when growing), clamped back to [0, 1].
inline Tensor<float> resize_images(const Tensor<float>& images, int64_t height, int64_t width) {
    check(images.rank() >= 2, "resize_images", "expected [..., H, W], got ", images.shape());
    check(height > 0 && width > 0, "resize_images", "target size must be positive, got ", height, " x ", width);
    const int64_t h = images.size(images.rank() - 2), w = images.size(images.rank() - 1);
    std::vector<int64_t> dims = images.shape().dims();
    dims[dims.size() - 2] = height;
    dims.back() = width;
    Tensor<float> out = Tensor<float>::uninitialized(Shape(dims));
    if (h == height && w == width) {
        std::copy(images.begin(), images.end(), out.data());
        return out;
    }
    const int64_t planes = h * w == 0 ? 0 : images.numel() / (h * w);
    for (int64_t p = 0; p < planes; ++p) {
        float* dst = out.data() + p * height * width;
        const int ok = stbir_resize_float(images.data() + p * h * w, static_cast<int>(w), static_cast<int>(h), 0, dst,
                                          static_cast<int>(width), static_cast<int>(height), 0, 1);
        check(ok == 1, "resize_images", "stb_image_resize failed on a ", h, " x ", w, " plane");
        for (int64_t i = 0; i < height * width; ++i) dst[i] = std::clamp(dst[i], 0.0f, 1.0f);
    }
    return out;
}

// Decodes an image file to [channels, size, size] (channels 1: grey, 3: RGB): the largest centred
// square, resized. A file stb_image cannot decode throws an Error naming it and stb's reason.
inline Tensor<float> read_image(const std::string& path, int64_t channels, int64_t size) {
    check(channels == 1 || channels == 3, "read_image", "channels must be 1 or 3, got ", channels);
    check(size > 0, "read_image", "size must be positive, got ", size);
    int w = 0, h = 0, in_file = 0;
    unsigned char* pixels = stbi_load(path.c_str(), &w, &h, &in_file, static_cast<int>(channels));
    if (!pixels) throw Error(str("read_image: cannot decode '", path, "': ", stbi_failure_reason()));
    const int64_t side = std::min(w, h), top = (h - side) / 2, left = (w - side) / 2;
    Tensor<float> square = Tensor<float>::uninitialized(Shape{channels, side, side});
    for (int64_t c = 0; c < channels; ++c)
        for (int64_t i = 0; i < side; ++i)
            for (int64_t j = 0; j < side; ++j)
                square[(c * side + i) * side + j] = pixels[((top + i) * w + left + j) * channels + c] / 255.0f;
    stbi_image_free(pixels);
    return resize_images(square, size, size);
}

// A PNG file's bytes for the image [C, H, W], C = 1 or 3.
inline std::vector<uint8_t> encode_png(const Tensor<float>& image) {
    check(image.rank() == 3 && (image.size(0) == 1 || image.size(0) == 3) && image.size(1) > 0 && image.size(2) > 0,
          "encode_png", "expected an image [1 or 3, H, W], got ", image.shape());
    const int64_t C = image.size(0), H = image.size(1), W = image.size(2);
    std::vector<unsigned char> pixels(static_cast<size_t>(C * H * W));  // interleaved, as PNG stores them
    for (int64_t c = 0; c < C; ++c)
        for (int64_t p = 0; p < H * W; ++p) {
            const float v = image[c * H * W + p];
            pixels[static_cast<size_t>(p * C + c)] =
                static_cast<unsigned char>(std::lround(255.0f * std::clamp(std::isnan(v) ? 0.0f : v, 0.0f, 1.0f)));
        }
    std::vector<uint8_t> bytes;
    auto append = [](void* context, void* data, int n) {
        auto* out = static_cast<std::vector<uint8_t>*>(context);
        out->insert(out->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + n);
    };
    const int ok = stbi_write_png_to_func(append, &bytes, static_cast<int>(W), static_cast<int>(H), static_cast<int>(C),
                                          pixels.data(), static_cast<int>(W * C));
    check(ok != 0, "encode_png", "stb_image_write failed on an image ", image.shape());
    return bytes;
}

// Writes the image [C, H, W] as a PNG file, atomically.
inline void write_png(const std::string& path, const Tensor<float>& image) {
    write_file_atomically(path, encode_png(image));
}

// The images [N, C, H, W] laid out in rows of `columns`, `padding` pixels of `background` around
// and between them: [C, rows (H + padding) + padding, columns (W + padding) + padding].
inline Tensor<float> image_grid(const Tensor<float>& images, int64_t columns, int64_t padding = 2,
                                float background = 1.0f) {
    check(images.rank() == 4 && images.size(0) > 0, "image_grid", "expected images [N, C, H, W], got ", images.shape());
    check(columns > 0 && padding >= 0, "image_grid", "columns must be positive and padding non-negative, got ",
          columns, " and ", padding);
    const int64_t N = images.size(0), C = images.size(1), H = images.size(2), W = images.size(3);
    columns = std::min(columns, N);
    const int64_t rows = (N + columns - 1) / columns;
    const int64_t GH = rows * (H + padding) + padding, GW = columns * (W + padding) + padding;
    Tensor<float> grid = Tensor<float>::full(Shape{C, GH, GW}, background);
    for (int64_t n = 0; n < N; ++n) {
        const int64_t top = padding + n / columns * (H + padding), left = padding + n % columns * (W + padding);
        for (int64_t c = 0; c < C; ++c)
            for (int64_t i = 0; i < H; ++i)
                std::copy_n(images.data() + ((n * C + c) * H + i) * W, W, grid.data() + (c * GH + top + i) * GW + left);
    }
    return grid;
}

}  // namespace elbo
