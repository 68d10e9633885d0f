#pragma once
// safetensors: read and write the format of Hugging Face's safetensors, which PyTorch's
// `safetensors.torch.save_file` writes.
//
// A file is: 8 bytes (little-endian u64) giving the header's length H; H bytes of JSON,
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// and then the data, each tensor's little-endian bytes at [begin, end) from the data's start.
//
// Reading converts every dtype (F32, F64, F16, BF16 and the integer types) to T. A file that is
// malformed in any way throws elbo::Error saying what is wrong and where; nothing in the file is
// trusted before it is checked. Writing stores F32 by default (F64, F16, BF16 on request) and is
// atomic: a temporary file beside the target, flushed to disk, then renamed over it.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "elbo/eigen.hpp"
#include "elbo/io/file.hpp"
#include "elbo/tensor/tensor.hpp"

namespace elbo {

enum class Dtype { F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL };

namespace safetensors_detail {

struct DtypeInfo {
    Dtype dtype;
    const char* name;
    size_t bytes;
};

inline constexpr DtypeInfo dtypes[] = {
    {Dtype::F64, "F64", 8}, {Dtype::F32, "F32", 4}, {Dtype::F16, "F16", 2}, {Dtype::BF16, "BF16", 2},
    {Dtype::I64, "I64", 8}, {Dtype::I32, "I32", 4}, {Dtype::I16, "I16", 2}, {Dtype::I8, "I8", 1},
    {Dtype::U64, "U64", 8}, {Dtype::U32, "U32", 4}, {Dtype::U16, "U16", 2}, {Dtype::U8, "U8", 1},
    {Dtype::BOOL, "BOOL", 1},
};

inline const DtypeInfo& info(Dtype d) {
    for (const DtypeInfo& i : dtypes)
        if (i.dtype == d) return i;
    throw Error("safetensors: unknown dtype");
}

inline const DtypeInfo* find(const std::string& name) {
    for (const DtypeInfo& i : dtypes)
        if (name == i.name) return &i;
    return nullptr;
}

// IEEE half and bfloat16 <-> float, by Eigen::half and Eigen::bfloat16: rounding to nearest even,
// subnormals, infinities and NaN as IEEE 754 says (F16C's instructions where the build has them).
inline float half_to_float(uint16_t h) { return static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(h)); }
inline uint16_t float_to_half(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::half(f)); }
inline float bf16_to_float(uint16_t b) { return static_cast<float>(Eigen::numext::bit_cast<Eigen::bfloat16>(b)); }
inline uint16_t float_to_bf16(float f) { return Eigen::numext::bit_cast<uint16_t>(Eigen::bfloat16(f)); }

template <class S>
S load(const uint8_t* p) {
    S v;
    std::memcpy(&v, p, sizeof(S));
    return v;
}

// Converts n elements of dtype d at p to T.
template <class T>
void convert_from(T* out, const uint8_t* p, Dtype d, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        switch (d) {
            case Dtype::F64: out[i] = static_cast<T>(load<double>(p + 8 * i)); break;
            case Dtype::F32: out[i] = static_cast<T>(load<float>(p + 4 * i)); break;
            case Dtype::F16: out[i] = static_cast<T>(half_to_float(load<uint16_t>(p + 2 * i))); break;
            case Dtype::BF16: out[i] = static_cast<T>(bf16_to_float(load<uint16_t>(p + 2 * i))); break;
            case Dtype::I64: out[i] = static_cast<T>(load<int64_t>(p + 8 * i)); break;
            case Dtype::I32: out[i] = static_cast<T>(load<int32_t>(p + 4 * i)); break;
            case Dtype::I16: out[i] = static_cast<T>(load<int16_t>(p + 2 * i)); break;
            case Dtype::I8: out[i] = static_cast<T>(load<int8_t>(p + i)); break;
            case Dtype::U64: out[i] = static_cast<T>(load<uint64_t>(p + 8 * i)); break;
            case Dtype::U32: out[i] = static_cast<T>(load<uint32_t>(p + 4 * i)); break;
            case Dtype::U16: out[i] = static_cast<T>(load<uint16_t>(p + 2 * i)); break;
            case Dtype::U8: out[i] = static_cast<T>(p[i]); break;
            case Dtype::BOOL: out[i] = p[i] ? T(1) : T(0); break;
        }
    }
}

// Appends n elements of T as dtype d (a float type) to `out`.
template <class T>
void convert_to(std::vector<uint8_t>& out, const T* v, Dtype d, int64_t n) {
    auto put = [&out](auto x) {
        const auto* b = reinterpret_cast<const uint8_t*>(&x);
        out.insert(out.end(), b, b + sizeof(x));
    };
    for (int64_t i = 0; i < n; ++i) {
        switch (d) {
            case Dtype::F64: put(static_cast<double>(v[i])); break;
            case Dtype::F32: put(static_cast<float>(v[i])); break;
            case Dtype::F16: put(float_to_half(static_cast<float>(v[i]))); break;
            case Dtype::BF16: put(float_to_bf16(static_cast<float>(v[i]))); break;
            default: throw Error(str("save_safetensors: can only write F64, F32, F16 or BF16, not ", info(d).name));
        }
    }
}

}  // namespace safetensors_detail

inline const char* to_string(Dtype d) { return safetensors_detail::info(d).name; }

// The contents of a safetensors file: tensors by name (converted to T), the dtype each was stored
// in, and the string-to-string metadata.
template <class T>
struct Safetensors {
    std::map<std::string, Tensor<T>> tensors;
    std::map<std::string, Dtype> dtypes;
    std::map<std::string, std::string> metadata;

    // The named tensor, or an Error listing the names there are.
    const Tensor<T>& at(const std::string& name) const {
        auto it = tensors.find(name);
        if (it == tensors.end()) {
            std::string names;
            for (const auto& [n, t] : tensors) names += (names.empty() ? "" : ", ") + n;
            throw Error(str("safetensors: no tensor named '", name, "' (the file holds: ", names, ")"));
        }
        return it->second;
    }
    bool contains(const std::string& name) const { return tensors.count(name) > 0; }
};

// Parses a whole safetensors file held in memory. `source` names it in error messages.
template <class T = float>
Safetensors<T> parse_safetensors(const uint8_t* bytes, size_t size, const std::string& source = "<memory>") {
    namespace sd = safetensors_detail;
    const std::string where = str("safetensors: ", source, ": ");
    auto fail = [&](auto&&... parts) { throw Error(str(where, parts...)); };

    if (size < 8) fail("file is ", size, " bytes, shorter than the 8-byte header length");
    const uint64_t header_len = sd::load<uint64_t>(bytes);
    constexpr uint64_t max_header = 100'000'000;  // as the safetensors project's own limit
    if (header_len > max_header) fail("header length ", header_len, " exceeds the limit of ", max_header, " bytes");
    if (header_len > size - 8)
        fail("header length ", header_len, " runs past the end of the file (", size - 8,
             " bytes after the length)");
    const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(header_begin, header_begin + header_len);
    } catch (const nlohmann::json::exception& e) {
        fail("header is not valid JSON (", e.what(), ")");
    }
    if (!header.is_object()) fail("header must be a JSON object, got ", header.type_name());

    const uint8_t* data = bytes + 8 + header_len;
    const uint64_t data_size = size - 8 - header_len;
    Safetensors<T> out;
    struct Range {
        uint64_t begin, end;
        std::string name;
    };
    std::vector<Range> ranges;

    for (const auto& [name, entry] : header.items()) {
        if (name == "__metadata__") {
            if (!entry.is_object()) fail("__metadata__ must be an object of strings");
            for (const auto& [key, value] : entry.items()) {
                if (!value.is_string()) fail("__metadata__ value of '", key, "' must be a string, got ", value.type_name());
                out.metadata[key] = value.template get<std::string>();
            }
            continue;
        }
        const std::string tensor = str("tensor '", name, "'");
        if (!entry.is_object()) fail(tensor, " must be an object, got ", entry.type_name());
        if (!entry.contains("dtype") || !entry["dtype"].is_string()) fail(tensor, " has no dtype string");
        const std::string dtype_name = entry["dtype"].template get<std::string>();
        const sd::DtypeInfo* dtype = sd::find(dtype_name);
        if (!dtype) fail(tensor, " has unknown dtype '", dtype_name, "'");

        if (!entry.contains("shape") || !entry["shape"].is_array()) fail(tensor, " has no shape array");
        std::vector<int64_t> dims;
        uint64_t numel = 1;
        for (const auto& d : entry["shape"]) {
            if (!d.is_number_unsigned()) fail(tensor, " has a shape entry that is not a non-negative integer: ", d.dump());
            const uint64_t v = d.template get<uint64_t>();
            if (v > 0 && numel > std::numeric_limits<uint64_t>::max() / 16 / v) fail(tensor, " has a shape too large to hold");
            numel *= v;
            dims.push_back(static_cast<int64_t>(v));
        }

        const auto& offsets = entry.contains("data_offsets") ? entry["data_offsets"] : nlohmann::json();
        if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
            !offsets[1].is_number_unsigned())
            fail(tensor, " needs data_offsets [begin, end] of two non-negative integers");
        const uint64_t begin = offsets[0].template get<uint64_t>(), end = offsets[1].template get<uint64_t>();
        if (begin > end || end > data_size)
            fail(tensor, " has data_offsets [", begin, ", ", end, "] outside the data (", data_size, " bytes)");
        if (end - begin != numel * dtype->bytes)
            fail(tensor, " of shape ", Shape(dims), " and dtype ", dtype->name, " needs ", numel * dtype->bytes,
                 " bytes, its data_offsets hold ", end - begin);
        ranges.push_back({begin, end, name});

        Tensor<T> t = Tensor<T>::uninitialized(Shape(dims));
        sd::convert_from(t.data(), data + begin, dtype->dtype, t.numel());
        out.tensors.emplace(name, std::move(t));
        out.dtypes.emplace(name, dtype->dtype);
    }

    std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.begin < b.begin; });
    for (size_t i = 1; i < ranges.size(); ++i)
        if (ranges[i].begin < ranges[i - 1].end)
            fail("tensors '", ranges[i - 1].name, "' [", ranges[i - 1].begin, ", ", ranges[i - 1].end, ") and '",
                 ranges[i].name, "' [", ranges[i].begin, ", ", ranges[i].end, ") overlap");
    return out;
}

// Reads a safetensors file, converting every tensor to T.
template <class T = float>
Safetensors<T> load_safetensors(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(str("safetensors: cannot open '", path, "': ", std::strerror(errno)));
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw Error(str("safetensors: cannot read '", path, "'"));
    return parse_safetensors<T>(bytes.data(), bytes.size(), path);
}

// The bytes of a safetensors file holding `tensors` (stored as `dtype`, from any device) and `metadata`.
template <class T>
std::vector<uint8_t> serialize_safetensors(const std::map<std::string, Tensor<T>>& tensors,
                                           const std::map<std::string, std::string>& metadata = {},
                                           Dtype dtype = Dtype::F32) {
    namespace sd = safetensors_detail;
    check(dtype == Dtype::F32 || dtype == Dtype::F64 || dtype == Dtype::F16 || dtype == Dtype::BF16,
          "save_safetensors", "can only write F64, F32, F16 or BF16, not ", to_string(dtype));
    const size_t width = sd::info(dtype).bytes;
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        check(!name.empty() && name != "__metadata__", "save_safetensors", "invalid tensor name '", name, "'");
        const uint64_t bytes = static_cast<uint64_t>(t.numel()) * width;
        header[name] = {{"dtype", to_string(dtype)}, {"shape", t.shape().dims()}, {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');  // pads the data's start to 8 bytes, as safetensors does

    std::vector<uint8_t> out;
    out.reserve(8 + text.size() + offset);
    const uint64_t len = text.size();
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(len >> (8 * i)));
    out.insert(out.end(), text.begin(), text.end());
    for (const auto& [name, t] : tensors) {
        const Tensor<T> host = t.to(Device::cpu);  // a tensor on the GPU is copied to the host first
        sd::convert_to(out, host.data(), dtype, host.numel());
    }
    return out;
}

// Writes tensors and metadata to a safetensors file, atomically.
template <class T>
void save_safetensors(const std::string& path, const std::map<std::string, Tensor<T>>& tensors,
                      const std::map<std::string, std::string>& metadata = {}, Dtype dtype = Dtype::F32) {
    write_file_atomically(path, serialize_safetensors(tensors, metadata, dtype));
}

}  // namespace elbo
