// Uses elbo as a separate project would: one convolution, its gradient, a safetensors round trip, a
// FactorVAE trained a few steps on dSprites with the library's own step (and, where elbo was built
// with its CUDA module or elbo::mpi, a call into each); and checks that its kernels were compiled for the ISA it
// asked for. Exits non-zero when anything disagrees.
#include <cstdio>
#include <cstring>
#include <elbo/elbo.hpp>
#include <fstream>
#include <string>
#if ELBO_WITH_CUDA
#include <elbo/cuda/nccl.hpp>
#endif
#if ELBO_WITH_MPI
#include <elbo/mpi/world.hpp>
#endif

// The float packet width the build asked for: CONSUMER_EXPECT_WIDTH, or with ELBO_NATIVE (0) the
// widest this CPU has, by the flags in /proc/cpuinfo: 16 floats with AVX-512, 8 with AVX2, else 4
// (SSE2, NEON).
int expected_width() {
    if (CONSUMER_EXPECT_WIDTH > 0) return CONSUMER_EXPECT_WIDTH;
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("flags", 0) != 0) continue;
        line += " ";
        if (line.find(" avx512f ") != std::string::npos) return 16;
        if (line.find(" avx2 ") != std::string::npos) return 8;
        break;
    }
    return 4;
}

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

    // The paper's FactorVAE, small: its network at 32 x 32, a narrow discriminator, five steps.
    models::ModelConfig config;
    config.kind = "factor-vae", config.arch = "kim-mnih", config.channels = 1, config.image_size = 32;
    config.latent = 4, config.gamma = 35, config.discriminator_hidden = 32, config.discriminator_layers = 2;
    models::FactorVAE<float> model(config, gen);
    optim::Adam<float> opt(model.vae_parameters(), models::factor_vae_adam());
    optim::Adam<float> d_opt(model.discriminator_parameters(), models::factor_vae_discriminator_adam());
    const auto dsprites = data::open_dataset("dsprites", {.image_size = 32});
    data::Loader loader(dsprites->size(), 16, 1, [&](const std::vector<int64_t>& i) { return dsprites->images(i); });
    bool trained = true;
    for (int64_t step = 0; step < 5; ++step) {
        const Tensor<float> x = loader.next().images, x_other = loader.next().images;
        const train::StepTerms t = train::step(model, opt, d_opt, x, x_other, StepDraws{1, step});
        std::printf("FactorVAE step %lld: loss %.3f, tc %.4f, discriminator %.4f\n", static_cast<long long>(step),
                    t.loss, t.tc, t.discriminator);
        trained = trained && t.finite() && t.loss > 0;
    }

#if ELBO_WITH_CUDA
    // Linked with elbo::cuda: the module answers (no GPU needed).
    std::printf("CUDA module linked: %d GPU(s) %s; NCCL: %s\n", cuda::device_count(), cuda::why_no_device(),
                cuda::has_nccl() ? "yes" : "no");
#endif
#if ELBO_WITH_MPI
    // Linked with elbo::mpi: it answers without starting MPI.
    std::printf("elbo::mpi linked: started by mpirun or srun: %s\n", mpi::launched() ? "yes" : "no");
#endif
    const int width = kernels::simd::float_width, expected = expected_width();
    std::printf("kernels: %s, float packets of %d (asked for %d)\n", kernels::simd::instruction_set(), width, expected);
    return result.ok && same && trained && width == expected ? 0 : 1;
}
