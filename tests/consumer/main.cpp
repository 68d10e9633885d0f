// Uses elbo as a separate project would: one convolution, its gradient, and a safetensors round
// trip (and, where elbo was built with its CUDA module, a call into it). Exits non-zero when
// anything disagrees.
#include <cstdio>
#include <elbo/elbo.hpp>

int main() {
    using namespace elbo;
    Generator gen(1);
    Var<double> x(Tensor<double>(Shape{2, 3, 8, 8}).normal_(gen));
    Var<double> w(Tensor<double>(Shape{4, 3, 3, 3}).normal_(gen), true);
    auto result = gradcheck([&](const std::vector<Var<double>>& v) { return conv2d(x, v[0], {}, {.stride = 2, .padding = 1}); },
                            {w});
    std::printf("%s\n", result.report().c_str());

    const char* path = "consumer.safetensors";
    save_safetensors<float>(path, {{"w", w.value().cast<float>()}}, {{"from", "consumer"}});
    const auto back = load_safetensors<float>(path);
    const bool same = back.at("w").to_vector() == w.value().cast<float>().to_vector() && back.metadata.at("from") == "consumer";
    std::printf("safetensors round trip: %s\n", same ? "ok" : "MISMATCH");
#if ELBO_WITH_CUDA
    // Linked with elbo::cuda: the module answers (no GPU needed).
    std::printf("CUDA module linked: %d GPU(s) %s\n", cuda::device_count(), cuda::why_no_device());
#endif
    return result.ok && same ? 0 : 1;
}
