#pragma once
// IDX files (the format of MNIST and Fashion-MNIST), plain or gzip'd, and Fashion-MNIST from
// Debian's dataset-fashion-mnist package.
//
// An IDX file: two zero bytes, a type byte (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32,
// 0x0E f64), the number of dimensions, each dimension as a big-endian u32, then the values,
// big-endian, row-major.

#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "elbo/tensor/tensor.hpp"

namespace elbo::data {

// The whole content of a file, decompressed when it is gzip'd (zlib reads plain files as they are).
inline std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
    gzFile f = gzopen(path.c_str(), "rb");
    if (!f) throw Error(str("idx: cannot open '", path, "'"));
    std::vector<uint8_t> bytes;
    uint8_t buffer[1 << 16];
    int n;
    while ((n = gzread(f, buffer, sizeof buffer)) > 0) bytes.insert(bytes.end(), buffer, buffer + n);
    int code = 0;
    const char* message = n < 0 ? gzerror(f, &code) : nullptr;
    const std::string why = message ? message : "";
    gzclose(f);
    if (n < 0) throw Error(str("idx: cannot read '", path, "': ", why));
    return bytes;
}

// An IDX array's sizes and values (as double: every IDX type fits).
struct IdxArray {
    std::vector<int64_t> dims;
    std::vector<double> values;
};

// Parses IDX bytes; `source` names them in errors.
inline IdxArray parse_idx(const std::vector<uint8_t>& b, const std::string& source) {
    auto fail = [&](auto&&... parts) { throw Error(str("idx: ", source, ": ", parts...)); };
    if (b.size() < 4) fail("file is ", b.size(), " bytes, shorter than the 4-byte magic number");
    if (b[0] != 0 || b[1] != 0) fail("not an IDX file (the magic number must start with two zero bytes)");
    size_t width = 0;
    switch (b[2]) {
        case 0x08: case 0x09: width = 1; break;
        case 0x0B: width = 2; break;
        case 0x0C: case 0x0D: width = 4; break;
        case 0x0E: width = 8; break;
        default: fail("unknown value type 0x", std::hex, int(b[2]));
    }
    const size_t rank = b[3];
    if (b.size() < 4 + 4 * rank) fail("file ends inside its ", rank, " dimension sizes");
    IdxArray a;
    uint64_t count = 1;
    for (size_t d = 0; d < rank; ++d) {
        const uint8_t* p = b.data() + 4 + 4 * d;
        const uint64_t size = (uint64_t(p[0]) << 24) | (uint64_t(p[1]) << 16) | (uint64_t(p[2]) << 8) | p[3];
        count *= size;
        if (count > b.size()) fail("dimension sizes ask for more values than the file holds");
        a.dims.push_back(static_cast<int64_t>(size));
    }
    const size_t start = 4 + 4 * rank;
    if (b.size() - start != count * width)
        fail("dimensions ", Shape(a.dims), " need ", count * width, " bytes of values, the file has ", b.size() - start);
    a.values.resize(count);
    for (uint64_t i = 0; i < count; ++i) {
        const uint8_t* p = b.data() + start + i * width;
        uint64_t bits = 0;
        for (size_t k = 0; k < width; ++k) bits = (bits << 8) | p[k];  // big-endian
        switch (b[2]) {
            case 0x08: a.values[i] = static_cast<double>(bits); break;
            case 0x09: a.values[i] = static_cast<int8_t>(bits); break;
            case 0x0B: a.values[i] = static_cast<int16_t>(bits); break;
            case 0x0C: a.values[i] = static_cast<int32_t>(bits); break;
            case 0x0D: { const uint32_t u = static_cast<uint32_t>(bits); float f; std::memcpy(&f, &u, 4); a.values[i] = f; break; }
            case 0x0E: { double v; std::memcpy(&v, &bits, 8); a.values[i] = v; break; }
        }
    }
    return a;
}

inline IdxArray load_idx(const std::string& path) { return parse_idx(read_maybe_gzip(path), path); }

// Images from an IDX array (read from `path`) of u8 pixels [N, H, W] (or [N, C, H, W]) as [N, C, H + 2 pad, W + 2 pad]
// with values in [0, 1], surrounded by `pad` rows and columns of zeros.
template <class T = float>
Tensor<T> idx_images(const IdxArray& a, const std::string& path, int64_t pad = 0) {
    check(a.dims.size() == 3 || a.dims.size() == 4, "idx", "'", path, "' holds ", Shape(a.dims),
          ", expected images [N, H, W] or [N, C, H, W]");
    const int64_t N = a.dims[0], C = a.dims.size() == 4 ? a.dims[1] : 1;
    const int64_t H = a.dims[a.dims.size() - 2], W = a.dims.back();
    Tensor<T> out(Shape{N, C, H + 2 * pad, W + 2 * pad});
    const int64_t Ho = H + 2 * pad, Wo = W + 2 * pad;
    for (int64_t p = 0; p < N * C; ++p)
        for (int64_t i = 0; i < H; ++i)
            for (int64_t j = 0; j < W; ++j) {
                const double v = a.values[static_cast<size_t>((p * H + i) * W + j)];
                check(v >= 0 && v <= 255, "idx", "'", path, "' has a pixel value ", v, " outside [0, 255]");
                out[(p * Ho + i + pad) * Wo + j + pad] = static_cast<T>(v / 255.0);
            }
    return out;
}

template <class T = float>
Tensor<T> idx_images(const std::string& path, int64_t pad = 0) {
    return idx_images<T>(load_idx(path), path, pad);
}

// The header of an IDX file of unsigned bytes (type 0x08) with these dimensions; the values follow.
inline std::string idx_u8_header(const std::vector<int64_t>& dims) {
    check(!dims.empty() && dims.size() < 256, "idx", "an IDX file has 1 to 255 dimensions, asked for ", dims.size());
    std::string h{'\0', '\0', '\x08', static_cast<char>(dims.size())};
    for (int64_t d : dims) {
        check(d >= 0 && d <= int64_t{UINT32_MAX}, "idx", "a dimension of an IDX file is below 2^32, got ", d);
        for (int shift : {24, 16, 8, 0}) h.push_back(static_cast<char>(d >> shift & 0xFF));
    }
    return h;
}

// Appends images whose values are k / 255 (as idx_images makes them: the data sets' own pixels) as
// IDX unsigned bytes k; any other value (a resized image's, say) is an Error naming it and `what`.
inline void append_idx_u8(const Tensor<float>& images, std::string& out, const std::string& what) {
    const Tensor<float> host = images.to(Device::cpu);
    for (int64_t i = 0; i < host.numel(); ++i) {
        const float v = host[i];
        const double k = std::nearbyint(static_cast<double>(v) * 255.0);
        check(k >= 0 && k <= 255 && static_cast<float>(k / 255.0) == v, "idx", what, " has the pixel value ", v,
              ", which is not k / 255: an IDX file of bytes holds only those");
        out.push_back(static_cast<char>(static_cast<uint8_t>(k)));
    }
}

// Fashion-MNIST (Xiao et al. 2017): 60,000 training or 10,000 test images of clothing, 28x28 grey,
// padded to 32x32 (so the VAE's three halvings divide it), with labels 0..9.
struct FashionMnist {
    Tensor<float> images;         // [N, 1, 32, 32], values in [0, 1]
    std::vector<int64_t> labels;  // [N]

    static constexpr const char* default_root = "/usr/share/datasets/fashion-mnist";
    static constexpr const char* class_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

    static FashionMnist load(bool train = true, const std::string& root = default_root) {
        const std::string prefix = root + (train ? "/train" : "/t10k");
        FashionMnist d;
        d.images = idx_images(prefix + "-images-idx3-ubyte.gz", 2);
        const IdxArray labels = load_idx(prefix + "-labels-idx1-ubyte.gz");
        check(labels.dims.size() == 1 && labels.dims[0] == d.images.size(0), "fashion-mnist", "labels ",
              Shape(labels.dims), " do not match ", d.images.size(0), " images");
        for (double v : labels.values) d.labels.push_back(static_cast<int64_t>(v));
        return d;
    }
};

}  // namespace elbo::data
