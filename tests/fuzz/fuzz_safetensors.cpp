// libFuzzer target: any bytes given to the safetensors reader either parse or raise elbo::Error.
// Anything else (a crash, a sanitizer report, another exception) is a bug. Run by `make fuzz`.
#include <cstddef>
#include <cstdint>

#include "elbo/io/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto file = elbo::parse_safetensors<float>(data, size, "fuzz");
        for (const auto& [name, t] : file.tensors) (void)t.numel();
    } catch (const elbo::Error&) {
    }
    return 0;
}
