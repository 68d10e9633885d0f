#pragma once
// `elbo bench`: the training step (forward, backward, Adam) and the forward pass alone of the seed's
// model, timed after a warm-up on a fixed random batch, as one JSON line:
//   {"model":"vae",...,"train_step_ms":…,"forward_ms":…,"images_per_s":…,"gflops":…,"peak_rss_mb":…}
// benchmarks/pytorch_reference.py prints the same line for PyTorch, benchmarks/compare.sh runs both.
// With --profile, a table of each op's forward and backward time per step follows on stderr.

#include <sys/resource.h>

#include <algorithm>

#include "cli/common.hpp"
#include "cli/train.hpp"

namespace elbo::cli {

struct BenchOptions {
    std::string model = "vae";
    std::string arch = "seed";
    int64_t channels = 3, image_size = 64, latent = 64, batch = 64;
    int threads = 0;
    int64_t steps = 20, warmup = 3;
    std::string device = "cpu";
    bool profile = false;  // also print each op's share of the training step (stderr)
};

// Multiply-adds of one image's forward pass through the encoder and decoder, and through the
// discriminator (zero for the VAE). A 4x4 stride-2 convolution to a map of side s costs
// out x in x 16 x s^2; its transposed twin, from that map, the same.
struct ModelWork {
    double encoder = 0, decoder = 0, first_conv = 0, discriminator = 0;

    explicit ModelWork(const models::ModelConfig& c) {
        const models::Network net = models::network(c.arch);
        const double D = static_cast<double>(c.latent);
        double in = static_cast<double>(c.channels), side = static_cast<double>(c.image_size), convs = 0;
        for (int64_t out : net.conv) {
            side /= 2;
            const double macs = static_cast<double>(out) * in * 16 * side * side;
            if (first_conv == 0) first_conv = macs;
            convs += macs;
            in = static_cast<double>(out);
        }
        auto dense = [](double from, const std::vector<int64_t>& widths, double to) {
            double macs = 0;
            for (int64_t w : widths) macs += from * static_cast<double>(w), from = static_cast<double>(w);
            return macs + from * to;
        };
        const double features = in * side * side;
        encoder = convs + dense(features, net.encoder_fc, 2 * D);
        decoder = convs + dense(D, net.decoder_fc, features);
        if (c.is_factor_vae()) {
            const double h = static_cast<double>(c.discriminator_hidden);
            discriminator = D * h + static_cast<double>(c.discriminator_layers - 1) * h * h + 2 * h;
        }
    }

    // FLOPs (2 per multiply-add) of a forward pass.
    double forward_flops() const { return 2 * (encoder + decoder + discriminator); }

    // FLOPs of a training step: every layer's backward costs two of its forwards (input and weight
    // gradients) except the first convolution's, whose input needs no gradient. FactorVAE adds the
    // second batch's encoding and the discriminator's step (two forwards, two weight gradients).
    double train_flops() const {
        double macs = 3 * (encoder + decoder + discriminator) - first_conv;
        if (discriminator > 0) macs += encoder + 4 * discriminator;
        return 2 * macs;
    }
};

// The compiler that built this program, e.g. "GCC 12.2.0".
inline const char* compiler() {
#if defined(__clang__)
    return "clang " __clang_version__;
#elif defined(__GNUC__)
    return "GCC " __VERSION__;
#else
    return "an unknown compiler";
#endif
}

inline double peak_rss_mb() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;  // Linux reports KiB
}

inline int run_bench(const BenchOptions& o) {
    const char* op = "bench";
    check(o.model == "vae" || o.model == "factor-vae", op, "--model must be vae or factor-vae, got '", o.model, "'");
    const Device device = parse_device(o.device, op);
    check(o.batch > 0 && o.steps > 0 && o.warmup >= 0, op, "--batch and --steps must be positive, --warmup non-negative");
    check(o.arch == "seed" || o.arch == "kim-mnih", op, "--arch must be seed or kim-mnih, got '", o.arch, "'");
    set_threads(o.threads);
    models::ModelConfig c;
    c.kind = o.model;
    c.arch = o.arch;
    c.channels = o.channels;
    c.image_size = o.image_size;
    c.latent = o.latent;
    if (c.is_factor_vae()) c.gamma = 35;
    Generator gen(0);
    TrainedModel run(c, gen, device, {.lr = 1e-4}, models::factor_vae_discriminator_adam());
    models::VAE<float>& model = run.model();
    const Shape images{o.batch, c.channels, c.image_size, c.image_size};
    // The batches wait on the model's device, so that the times hold no copies from the host.
    const Tensor<float> x = Tensor<float>(images).uniform_(gen).to(device);
    const Tensor<float> x_other = Tensor<float>(images).uniform_(gen).to(device);

    // Each timed call ends when the device is done with it: the GPU's kernels run asynchronously.
    int64_t step = 0;
    const double train_ms = profile::median_ms(o.warmup, o.steps, [&] {
        run.step(x, x_other, StepDraws{0, ++step});
        synchronize(device);
    });
    const double forward_ms = profile::median_ms(o.warmup, o.steps, [&] {
        NoGrad no_grad;
        const Var<float> input(x);
        model.loss(input, model.forward(input, StepDraws{}));
        synchronize(device);
    });
    // Buffers the device's pool asked of the system (or driver) for one more training step: none,
    // when it serves them all.
    const int64_t allocated_before = memory_stats(device).system_allocations;
    run.step(x, x_other, StepDraws{0, ++step});
    const int64_t step_allocations = memory_stats(device).system_allocations - allocated_before;
    const ModelWork work(c);
    nlohmann::ordered_json j{{"library", "elbo"},
                             {"model", o.model},
                             {"arch", c.arch},
                             {"channels", c.channels},
                             {"image_size", c.image_size},
                             {"latent", c.latent},
                             {"batch", o.batch},
                             {"threads", elbo::threads()},
                             {"isa", kernels::simd::instruction_set()},
                             {"float_packet", kernels::simd::float_width},
                             {"compiler", compiler()},
                             {"device", o.device},
                             {"steps", o.steps},
                             {"train_step_ms", train_ms},
                             {"forward_ms", forward_ms},
                             {"images_per_s", 1000.0 * static_cast<double>(o.batch) / train_ms},
                             {"gflops", work.train_flops() * static_cast<double>(o.batch) / train_ms / 1e6},
                             {"forward_gflops", work.forward_flops() * static_cast<double>(o.batch) / forward_ms / 1e6},
                             {"peak_rss_mb", peak_rss_mb()},
                             {"step_allocations", step_allocations}};
    std::printf("%s\n", j.dump().c_str());
    if (o.profile) {  // separate steps, so the profile's clock reads do not touch the timings above
        profile::start();
        for (int64_t i = 0; i < o.steps; ++i) {
            run.step(x, x_other, StepDraws{0, ++step});
        }
        synchronize(device);
        profile::stop();
        std::fprintf(stderr, "training step of %s, batch %lld, %d threads, time per op and step:\n%s", o.model.c_str(),
                     static_cast<long long>(o.batch), elbo::threads(), profile::table(o.steps).c_str());
    }
    return 0;
}

}  // namespace elbo::cli
