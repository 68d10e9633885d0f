#pragma once
// One face for every data set, and the names the command line gives them:
//
//   fashion-mnist        Fashion-MNIST's 60,000 training images, 1 x 32 x 32 (Debian's package)
//   fashion-mnist:test   its 10,000 test images
//   dsprites             the 737,280 dSprites images, 1 x 64 x 64, generated on demand
//   idx:FILE             the images of any IDX file, 1 x H x W (padded to a multiple of 8)
//   images:DIR           the pictures in a folder, RGB (or grey with channels = 1), 64 x 64
//
// Every data set can be resized to another image size (stb_image_resize); only image folders
// choose their channels.

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "elbo/data/dsprites.hpp"
#include "elbo/data/idx.hpp"
#include "elbo/data/images.hpp"

namespace elbo::data {

class Dataset {
public:
    virtual ~Dataset() = default;
    virtual std::string name() const = 0;  // as open_dataset() was given it
    virtual int64_t size() const = 0;
    virtual int64_t channels() const = 0;
    virtual int64_t image_size() const = 0;
    // Images [n, C, S, S] with values in [0, 1]; safe to call from the loader's thread.
    virtual Tensor<float> images(const std::vector<int64_t>& indices) const = 0;
    // What is known of item i (its label, factors or file), as a JSON object with its "index".
    virtual nlohmann::ordered_json describe(int64_t index) const = 0;

protected:
    void check_index(int64_t index) const {
        check(index >= 0 && index < size(), name().c_str(), "index ", index, " is outside [0, ", size(), ")");
    }
};

// Images held in memory, [N, C, S, S], with optional labels and class names.
class TensorDataset : public Dataset {
public:
    TensorDataset(std::string name, Tensor<float> images, std::vector<int64_t> labels = {},
                  std::vector<std::string> classes = {})
        : name_(std::move(name)), images_(std::move(images)), labels_(std::move(labels)), classes_(std::move(classes)) {
        check(images_.rank() == 4 && images_.size(2) == images_.size(3), name_.c_str(),
              "expected square images [N, C, S, S], got ", images_.shape());
    }

    std::string name() const override { return name_; }
    int64_t size() const override { return images_.size(0); }
    int64_t channels() const override { return images_.size(1); }
    int64_t image_size() const override { return images_.size(2); }

    Tensor<float> images(const std::vector<int64_t>& indices) const override {
        const int64_t values = channels() * image_size() * image_size();
        Tensor<float> out = Tensor<float>::uninitialized(
            Shape{static_cast<int64_t>(indices.size()), channels(), image_size(), image_size()});
        for (size_t n = 0; n < indices.size(); ++n) {
            check_index(indices[n]);
            std::copy_n(images_.data() + indices[n] * values, values, out.data() + static_cast<int64_t>(n) * values);
        }
        return out;
    }

    nlohmann::ordered_json describe(int64_t index) const override {
        check_index(index);
        nlohmann::ordered_json j{{"index", index}};
        if (!labels_.empty()) j["label"] = labels_[static_cast<size_t>(index)];
        if (!classes_.empty() && !labels_.empty()) j["class"] = classes_.at(static_cast<size_t>(labels_[static_cast<size_t>(index)]));
        return j;
    }

private:
    std::string name_;
    Tensor<float> images_;
    std::vector<int64_t> labels_;
    std::vector<std::string> classes_;
};

// dSprites, rendered when asked (and resized when the image size is not 64).
class DSpritesDataset : public Dataset {
public:
    explicit DSpritesDataset(int64_t image_size = DSprites::image_size) : size_(image_size) {}

    std::string name() const override { return "dsprites"; }
    int64_t size() const override { return DSprites::count; }
    int64_t channels() const override { return 1; }
    int64_t image_size() const override { return size_; }

    Tensor<float> images(const std::vector<int64_t>& indices) const override {
        for (int64_t i : indices) check_index(i);
        Tensor<float> out = sprites_.images<float>(indices);
        return size_ == DSprites::image_size ? out : resize_images(out, size_, size_);
    }

    nlohmann::ordered_json describe(int64_t index) const override {
        const DSpritesFactors f = DSprites::factors(index);
        static const char* shapes[] = {"square", "ellipse", "heart"};
        return {{"index", index},
                {"shape", shapes[f.shape]},
                {"scale", DSprites::scale_value(f.scale)},
                {"orientation", DSprites::orientation_value(f.orientation)},
                {"pos_x", DSprites::position_value(f.pos_x)},
                {"pos_y", DSprites::position_value(f.pos_y)},
                {"factors", {f.shape, f.scale, f.orientation, f.pos_x, f.pos_y}}};
    }

private:
    int64_t size_;
    DSprites sprites_;
};

// A folder of pictures (ImageFolder) as a Dataset.
class FolderDataset : public Dataset {
public:
    FolderDataset(std::string name, const std::string& root, int64_t image_size, int64_t channels)
        : name_(std::move(name)), folder_(root, image_size, channels) {}

    std::string name() const override { return name_; }
    int64_t size() const override { return folder_.size(); }
    int64_t channels() const override { return folder_.channels(); }
    int64_t image_size() const override { return folder_.image_size(); }
    Tensor<float> images(const std::vector<int64_t>& indices) const override { return folder_.images(indices); }
    nlohmann::ordered_json describe(int64_t index) const override {
        check_index(index);
        return {{"index", index}, {"file", folder_.file(index)}};
    }

private:
    std::string name_;
    ImageFolder folder_;
};

struct DatasetOptions {
    int64_t image_size = 0;  // 0: the data set's own (Fashion-MNIST 32, dSprites 64, image folders 64)
    int64_t channels = 0;    // 0: the data set's own (image folders: 3); only image folders convert
    std::string fashion_mnist_root = FashionMnist::default_root;
};

// Opens the data set `spec` names (see the top of this file).
inline std::unique_ptr<Dataset> open_dataset(const std::string& spec, const DatasetOptions& o = {}) {
    const char* op = "data";
    check(o.image_size >= 0 && o.channels >= 0, op, "image size and channels must be positive (or 0 for the default)");
    auto prefixed = [&](const std::string& prefix) { return spec.rfind(prefix, 0) == 0 && spec.size() > prefix.size(); };
    auto fixed_channels = [&](int64_t natural) {
        check(o.channels == 0 || o.channels == natural, op, "'", spec, "' has ", natural,
              " channel(s); only images:DIR converts between grey and RGB, got channels ", o.channels);
    };
    auto resized = [&](Tensor<float> images) {
        const int64_t s = o.image_size ? o.image_size : images.size(2);
        return s == images.size(2) && s == images.size(3) ? images : resize_images(images, s, s);
    };

    if (spec == "fashion-mnist" || spec == "fashion-mnist:test" || spec == "fashion-mnist:train") {
        fixed_channels(1);
        FashionMnist f = FashionMnist::load(spec != "fashion-mnist:test", o.fashion_mnist_root);
        return std::make_unique<TensorDataset>(spec, resized(f.images), std::move(f.labels),
                                               std::vector<std::string>(std::begin(FashionMnist::class_names),
                                                                        std::end(FashionMnist::class_names)));
    }
    if (spec == "dsprites") {
        fixed_channels(1);
        return std::make_unique<DSpritesDataset>(o.image_size ? o.image_size : DSprites::image_size);
    }
    if (prefixed("idx:")) {
        fixed_channels(1);
        const std::string path = spec.substr(4);
        const IdxArray a = load_idx(path);
        check(a.dims.size() == 3 || (a.dims.size() == 4 && a.dims[1] == 1), op, "'", path, "' holds ", Shape(a.dims),
              ", expected grey images [N, H, W]");
        const int64_t side = a.dims.back();
        check(a.dims[a.dims.size() - 2] == side, op, "'", path, "' holds ", Shape(a.dims), ", expected square images");
        const int64_t multiple = (side + 7) / 8 * 8, pad = (multiple - side) / 2;  // centred
        Tensor<float> images = idx_images(a, path, pad);
        const int64_t s = o.image_size ? o.image_size : multiple;
        return std::make_unique<TensorDataset>(spec, s == images.size(2) ? images : resize_images(images, s, s));
    }
    if (prefixed("images:")) {
        return std::make_unique<FolderDataset>(spec, spec.substr(7), o.image_size ? o.image_size : 64,
                                               o.channels ? o.channels : 3);
    }
    throw Error(str(op, ": unknown data set '", spec,
                    "'; expected fashion-mnist, fashion-mnist:test, dsprites, idx:FILE or images:DIR"));
}

}  // namespace elbo::data
