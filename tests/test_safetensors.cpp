#include <bit>
#include <filesystem>

#include "helpers.hpp"

using namespace elbo;
using testing::error_of;
namespace fs = std::filesystem;

namespace {

const std::string data_dir = std::string(ELBO_TEST_DIR) + "/data";

}  // namespace

TEST_SUITE("safetensors") {

TEST_CASE("the safetensors project's own sample files load exactly, every dtype converted") {
    const std::vector<double> expected{-3, -2, -1, 0, 1, 2};
    for (const char* name : {"e", "f", "d", "b", "h", "i"}) {
        INFO(name);
        auto file = load_safetensors<double>(data_dir + "/safetensors-samples/" + name + ".safetensors");
        REQUIRE(file.tensors.size() == 1);
        CHECK(file.tensors.begin()->second.to_vector() == expected);
        CHECK(file.metadata.at("test") == "a");
    }
    // Unsigned types hold the two's-complement bit patterns of -3..2.
    CHECK(load_safetensors<double>(data_dir + "/safetensors-samples/B.safetensors").tensors.begin()->second.to_vector() ==
          std::vector<double>{253, 254, 255, 0, 1, 2});
    CHECK(load_safetensors<double>(data_dir + "/safetensors-samples/I.safetensors").tensors.begin()->second[0] ==
          4294967293.0);

    auto all = load_safetensors<float>(data_dir + "/safetensors-samples/overall.safetensors");
    CHECK(all.tensors.size() == 9);
    CHECK(all.dtypes.at(all.tensors.begin()->first) == Dtype::U8);
    int floats = 0;
    for (const auto& [name, dtype] : all.dtypes) {
        if (dtype != Dtype::F16 && dtype != Dtype::F32 && dtype != Dtype::F64) continue;
        CHECK(all.at(name).to_vector() == std::vector<float>{-3, -2, -1, 0, 1, 2});
        ++floats;
    }
    CHECK(floats == 3);
}

TEST_CASE("a written file reads back the same, in every float dtype, with its metadata") {
    const fs::path dir = testing::scratch_dir("safetensors-roundtrip");
    std::map<std::string, Tensor<float>> tensors{
        {"encoder.conv1.weight", testing::randn<float>(Shape{4, 3, 2, 2}, 1)},
        {"encoder.conv1.bias", testing::randn<float>(Shape{4}, 2)},
        {"scalar", Tensor<float>::scalar(3.5f)},
        {"empty", Tensor<float>(Shape{0, 3})},
    };
    const std::map<std::string, std::string> meta{{"kind", "vae"}, {"latent", "10"}, {"quote", "a \"b\"\n"}};
    for (Dtype d : {Dtype::F32, Dtype::F64, Dtype::F16, Dtype::BF16}) {
        INFO(to_string(d));
        const std::string path = (dir / "t.safetensors").string();
        save_safetensors(path, tensors, meta, d);
        auto back = load_safetensors<float>(path);
        CHECK(back.metadata == meta);
        REQUIRE(back.tensors.size() == tensors.size());
        for (const auto& [name, t] : tensors) {
            CHECK(back.at(name).shape() == t.shape());
            CHECK(back.dtypes.at(name) == d);
            // Relative rounding of each format: F16 keeps 11 significant bits, BF16 8.
            const double tol = d == Dtype::F16 ? 1.0 / 2048 : d == Dtype::BF16 ? 1.0 / 256 : 0.0;
            for (int64_t i = 0; i < t.numel(); ++i)
                CHECK(std::abs(back.at(name)[i] - t[i]) <= tol * std::abs(t[i]));
        }
    }
    // The header starts the data at a multiple of 8 bytes, as the safetensors project requires.
    auto bytes = serialize_safetensors(tensors);
    uint64_t header_len;
    std::memcpy(&header_len, bytes.data(), 8);
    CHECK(header_len % 8 == 0);
    fs::remove_all(dir);
}

TEST_CASE("half and bfloat16 conversions are exact on every representable value") {
    namespace sd = safetensors_detail;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = sd::half_to_float(static_cast<uint16_t>(h));
        if (std::isnan(f)) {
            CHECK(std::isnan(sd::half_to_float(sd::float_to_half(f))));
            continue;
        }
        if (sd::float_to_half(f) != h) FAIL_CHECK("half ", h, " -> ", f, " -> ", sd::float_to_half(f));
        if (sd::float_to_bf16(sd::bf16_to_float(static_cast<uint16_t>(h))) != h && !std::isnan(sd::bf16_to_float(static_cast<uint16_t>(h))))
            FAIL_CHECK("bf16 ", h);
    }
    CHECK(sd::half_to_float(0x3c00) == 1.0f);
    CHECK(sd::half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK(sd::float_to_half(65520.0f) == 0x7c00);                // rounds past the largest half: inf
    CHECK(sd::float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // a tie rounds to even
    CHECK(sd::float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);

    // float -> half and bfloat16 round to the nearest value, a tie to the even one: checked against
    // both neighbours of the result, over positive floats 997 bit patterns apart.
    auto check_nearest = [](const char* what, float f, uint16_t got, auto to_float) {
        const double x = f, err = std::abs(to_float(got) - x);
        if (std::isinf(err)) {
            FAIL_CHECK(what, " of ", f, " overflows");
            return;
        }
        for (int step : {-1, 1}) {
            const uint16_t other = static_cast<uint16_t>(got + step);
            const double o = to_float(other);
            if (std::isnan(o) || (step < 0 && got == 0)) continue;
            const double other_err = std::abs(o - x);
            if (other_err < err || (other_err == err && (got & 1u)))
                FAIL_CHECK(what, " of ", f, " gives ", got, " but ", other, " is nearer or even");
        }
    };
    for (uint32_t bits = 0; bits < 0x7f800000u; bits += 997) {
        const float f = std::bit_cast<float>(bits);
        const uint16_t h = sd::float_to_half(f);
        if (f < 65520.0f) check_nearest("half", f, h, [](uint16_t v) { return double(sd::half_to_float(v)); });
        else CHECK(h == 0x7c00);
        const uint16_t b = sd::float_to_bf16(f);
        if (b != 0x7f80) check_nearest("bf16", f, b, [](uint16_t v) { return double(sd::bf16_to_float(v)); });
        else CHECK(f > 3.3961e38f);  // past the largest bfloat16 and half its ulp
    }
}

TEST_CASE("every malformed file is rejected with a message that says what is wrong") {
    const std::pair<const char*, const char*> cases[] = {
        {"short", "file is 3 bytes, shorter than the 8-byte header length"},
        {"truncated", "tensor 'x' has data_offsets [0, 24] outside the data (17 bytes)"},
        {"header_too_long", "header length 4096 runs past the end of the file"},
        {"invalid_json", "header is not valid JSON"},
        {"not_an_object", "header must be a JSON object, got array"},
        {"offsets_out_of_range", "tensor 'x' has data_offsets [8, 32] outside the data (24 bytes)"},
        {"offsets_reversed", "tensor 'x' has data_offsets [16, 8] outside the data"},
        {"overlapping", "tensors 'a' [0, 16) and 'b' [8, 24) overlap"},
        {"shape_bytes_mismatch", "tensor 'x' of shape [2,2] and dtype F32 needs 16 bytes, its data_offsets hold 24"},
        {"unknown_dtype", "tensor 'x' has unknown dtype 'F12'"},
        {"negative_shape", "tensor 'x' has a shape entry that is not a non-negative integer: -2"},
        {"missing_offsets", "tensor 'x' needs data_offsets [begin, end] of two non-negative integers"},
        {"metadata_not_string", "__metadata__ value of 'epoch' must be a string, got number"},
    };
    for (const auto& [name, message] : cases) {
        INFO(name);
        const std::string path = data_dir + "/malformed/" + name + ".safetensors";
        const std::string error = error_of([&] { load_safetensors<float>(path); });
        CHECK(error.find("safetensors: " + path + ": ") == 0);
        CHECK(error.find(message) != std::string::npos);
    }
    CHECK(error_of([] { load_safetensors<float>("/nonexistent/x.safetensors"); }) ==
          "safetensors: cannot open '/nonexistent/x.safetensors': No such file or directory");
}

TEST_CASE("writes are atomic: the target is replaced whole and nothing is left behind on failure") {
    const fs::path dir = testing::scratch_dir("safetensors-atomic");
    const std::string path = (dir / "ck.safetensors").string();
    save_safetensors<float>(path, {{"a", Tensor<float>::full(Shape{3}, 1.0f)}});
    save_safetensors<float>(path, {{"b", Tensor<float>::full(Shape{2}, 2.0f)}});
    auto back = load_safetensors<float>(path);
    CHECK(back.tensors.size() == 1);
    CHECK(back.at("b")[1] == 2.0f);
    CHECK(std::distance(fs::directory_iterator(dir), fs::directory_iterator()) == 1);  // no temporary left
    CHECK((fs::status(path).permissions() & fs::perms::others_read) != fs::perms::none);

    CHECK(error_of([&] { save_safetensors<float>((dir / "missing" / "x.safetensors").string(), {}); })
              .rfind("write: cannot create a temporary file beside", 0) == 0);
    CHECK(error_of([&] { save_safetensors<float>(path, {{"__metadata__", Tensor<float>(Shape{1})}}); }) ==
          "save_safetensors: invalid tensor name '__metadata__'");
    CHECK(error_of([&] { save_safetensors<float>(path, {{"x", Tensor<float>(Shape{1})}}, {}, Dtype::I32); }) ==
          "save_safetensors: can only write F64, F32, F16 or BF16, not I32");
    CHECK(error_of([&] { back.at("nope"); }) == "safetensors: no tensor named 'nope' (the file holds: b)");
    CHECK(load_safetensors<float>(path).at("b")[0] == 2.0f);  // the failed writes left the file as it was
    fs::remove_all(dir);
}

}
