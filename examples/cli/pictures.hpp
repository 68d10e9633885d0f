#pragma once
// The pictures of a model: reconstructions, samples from the prior, and latent traversals, each a
// grid image [C, H, W] ready for write_png. The model may be on any device: inputs go to it, and
// what comes back is copied to the host.

#include <algorithm>
#include <numeric>

#include "elbo/elbo.hpp"

namespace elbo::cli {

// sigmoid(decoder(z)) for codes z [n, D]: the images the model means.
inline Tensor<float> decode_images(models::VAE<float>& model, const Tensor<float>& z) {
    NoGrad no_grad;
    return sigmoid(model.decoder.decode(Var<float>(z.to(model.device())))).value().to(Device::cpu);
}

// Rows of `columns` originals, each followed by a row of their reconstructions (decoded from the
// posterior mean).
inline Tensor<float> reconstruction_grid(models::VAE<float>& model, const Tensor<float>& x, int64_t columns = 8) {
    NoGrad no_grad;
    const Tensor<float> mu = model.encoder.encode(Var<float>(x.to(model.device()))).first.value();
    const Tensor<float> y = decode_images(model, mu);
    const int64_t N = x.size(0), per_image = x.numel() / N;
    Tensor<float> pairs = Tensor<float>::uninitialized(Shape{2 * N, x.size(1), x.size(2), x.size(3)});
    int64_t slot = 0;
    for (int64_t first = 0; first < N; first += columns)
        for (const Tensor<float>* source : {&x, &y})
            for (int64_t n = first; n < std::min(N, first + columns); ++n)
                std::copy_n(source->data() + n * per_image, per_image, pairs.data() + slot++ * per_image);
    return image_grid(pairs, std::min(columns, N));
}

// `count` images decoded from z ~ N(0, I), drawn with `seed`.
inline Tensor<float> sample_grid(models::VAE<float>& model, int64_t count, uint64_t seed) {
    check(count > 0, "sample", "count must be positive, got ", count);
    Generator gen(seed);
    Tensor<float> z(Shape{count, model.config.latent});
    z.normal_(gen);
    return image_grid(decode_images(model, z), static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(count)))));
}

// The latents in the order to show them: by their mean KL on x, largest first (the ones the model
// uses), at most `rows` of them.
inline std::vector<int64_t> latents_by_kl(models::VAE<float>& model, const Tensor<float>& x, int64_t rows) {
    check(rows > 0, "traverse", "the number of latents shown must be positive, got ", rows);
    NoGrad no_grad;
    auto [mu_on_device, logvar_on_device] = model.encoder.encode(Var<float>(x.to(model.device())));
    const Tensor<float> mu = mu_on_device.value().to(Device::cpu), logvar = logvar_on_device.value().to(Device::cpu);
    const int64_t N = x.size(0), D = model.config.latent;
    std::vector<double> kl(static_cast<size_t>(D));
    for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d) {
            const double m = mu[n * D + d], lv = logvar[n * D + d];
            kl[d] += 0.5 * (m * m + std::exp(lv) - 1 - lv);
        }
    std::vector<int64_t> order(static_cast<size_t>(D));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return kl[a] > kl[b]; });
    order.resize(static_cast<size_t>(std::min(rows, D)));
    return order;
}

// One row per latent in `latents`: z0 with that latent swept over `steps` values from -range to
// range, the others held at z0.
inline Tensor<float> traversal_grid(models::VAE<float>& model, const std::vector<float>& z0,
                                    const std::vector<int64_t>& latents, int64_t steps = 11, double range = 3.0) {
    const int64_t D = model.config.latent, R = static_cast<int64_t>(latents.size());
    check(static_cast<int64_t>(z0.size()) == D, "traverse", "z0 has ", z0.size(), " values, the model ", D, " latents");
    check(steps > 1 && std::isfinite(range) && range > 0 && R > 0, "traverse",
          "steps must exceed 1, range be finite and positive, and some latent be shown; got steps ", steps, ", range ",
          range, ", ", R, " latents");
    Tensor<float> z(Shape{R * steps, D});
    for (int64_t r = 0; r < R; ++r) {
        check(latents[r] >= 0 && latents[r] < D, "traverse", "latent ", latents[r], " is outside [0, ", D, ")");
        for (int64_t s = 0; s < steps; ++s) {
            float* row = z.data() + (r * steps + s) * D;
            std::copy(z0.begin(), z0.end(), row);
            row[latents[r]] = static_cast<float>(-range + 2 * range * static_cast<double>(s) / static_cast<double>(steps - 1));
        }
    }
    return image_grid(decode_images(model, z), steps);
}

// The posterior mean of one image x [1, C, S, S].
inline std::vector<float> posterior_mean(models::VAE<float>& model, const Tensor<float>& x) {
    NoGrad no_grad;
    return model.encoder.encode(Var<float>(x.to(model.device()))).first.value().to_vector();
}

}  // namespace elbo::cli
