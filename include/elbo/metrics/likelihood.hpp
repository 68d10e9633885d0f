#pragma once
// How well a VAE models a data set, in the numbers the papers report (nats per image):
//
//   recon      E_q[-log p(x|z)], one z ~ q(z|x) per image; -log p(x|z) = BCE(logits, x) summed
//              over pixels (the Bernoulli likelihood, applied to grey values as the papers do)
//   kl         KL(q(z|x) || N(0, I)), exact
//   elbo       -(recon + kl): the evidence lower bound, a lower bound on log p(x)
//   nll_iw     -log p(x) by importance weighting (Burda et al. 2016), K samples z_k ~ q(z|x):
//                log p(x) ≈ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K
//              an upper bound on -log p(x) that tightens as K grows; K = 1 gives -elbo in expectation
//   active_dims  latents whose posterior mean varies across images: Var_x(E_q[z_d]) > 0.01
//              (Burda et al.), the variance over the evaluated images with ddof = 1
//
// Everything is computed in double from the model's float outputs, under NoGrad.

#include <cmath>
#include <numbers>

#include "elbo/data/dataset.hpp"
#include "elbo/kernels/cpu/gaussian.hpp"
#include "elbo/models/vae.hpp"

namespace elbo::metrics {

struct LikelihoodOptions {
    int64_t images = 10000;    // evaluate this many items (all when the data set has fewer)
    int64_t iw_images = 1000;  // of which the first this many also get nll_iw
    int64_t iw_samples = 100;  // K
    int64_t batch = 100;
    uint64_t seed = 0;         // picks the items and draws every z
    double active_threshold = 0.01;
};

struct Likelihood {
    double elbo = 0, recon = 0, kl = 0, nll_iw = 0;
    int64_t active_dims = 0, images = 0, iw_images = 0, iw_samples = 0;
};

namespace detail {

// -log p(x|z) for Bernoulli pixels with these logits: the training loss's kernel, BCE-with-logits,
// in double, summed over one image.
inline double bernoulli_nll(const float* logits, const float* x, int64_t n) {
    const std::vector<double> l(logits, logits + n), t(x, x + n);
    double total = 0;
    kernels::bce_with_logits_forward(&total, l.data(), t.data(), n, Reduction::sum);
    return total;
}

// log N(z; mu, exp(logvar)) summed over D dimensions (mu = 0, logvar = 0: the prior).
inline double gaussian_log_density(const float* z, const float* mu, const float* logvar, int64_t D) {
    double total = 0;
    for (int64_t d = 0; d < D; ++d) {
        const double m = mu ? mu[d] : 0.0, lv = logvar ? logvar[d] : 0.0, diff = z[d] - m;
        total += -0.5 * (std::log(2 * std::numbers::pi) + lv + diff * diff / std::exp(lv));
    }
    return total;
}

// -log p(x) for one image x (n values) by K importance samples, decoded in chunks.
inline double importance_weighted_nll(models::VAE<float>& model, const float* x, const float* mu, const float* logvar,
                               int64_t K, Generator gen) {
    const int64_t D = model.config.latent, n = model.config.channels * model.config.image_size * model.config.image_size;
    std::vector<double> log_w;
    for (int64_t first = 0; first < K; first += 256) {
        const int64_t k = std::min<int64_t>(256, K - first);
        Tensor<float> z = Tensor<float>::uninitialized(Shape{k, D});
        for (int64_t s = 0; s < k; ++s)
            for (int64_t d = 0; d < D; ++d)
                z[s * D + d] = static_cast<float>(mu[d] + std::exp(0.5 * logvar[d]) * gen.normal());
        const Tensor<float> logits = model.decoder.decode(Var<float>(z)).value();
        log_w.resize(static_cast<size_t>(first + k));
        // One sample per iteration, each summed on one thread: the same for any thread count.
#pragma omp parallel for schedule(static)
        for (int64_t s = 0; s < k; ++s) {
            const float* zs = z.data() + s * D;
            log_w[first + s] = -bernoulli_nll(logits.data() + s * n, x, n) +
                               gaussian_log_density(zs, nullptr, nullptr, D) - gaussian_log_density(zs, mu, logvar, D);
        }
    }
    const double top = *std::max_element(log_w.begin(), log_w.end());
    double sum = 0;
    for (double w : log_w) sum += std::exp(w - top);
    return -(top + std::log(sum) - std::log(static_cast<double>(K)));
}

}  // namespace detail

// Evaluates `model` on `o.images` items of `data` drawn by a permutation seeded with o.seed.
inline Likelihood evaluate_likelihood(models::VAE<float>& model, const data::Dataset& data, const LikelihoodOptions& o = {}) {
    const char* op = "evaluate";
    const models::ModelConfig& c = model.config;
    check(data.channels() == c.channels && data.image_size() == c.image_size, op, "the model reads ", c.channels, " x ",
          c.image_size, " x ", c.image_size, " images, the data set '", data.name(), "' has ", data.channels(), " x ",
          data.image_size(), " x ", data.image_size());
    check(data.size() > 0, op, "the data set '", data.name(), "' is empty");
    check(o.images > 0 && o.iw_images >= 0 && o.iw_samples > 0 && o.batch > 0, op,
          "images, batch and iw_samples must be positive and iw_images non-negative");
    NoGrad no_grad;
    Generator gen(o.seed);
    std::vector<int64_t> order = random_permutation(data.size(), gen);
    order.resize(static_cast<size_t>(std::min(o.images, data.size())));

    Likelihood r;
    r.images = static_cast<int64_t>(order.size());
    r.iw_images = std::min(o.iw_images, r.images);
    r.iw_samples = o.iw_samples;
    const int64_t D = c.latent, n = c.channels * c.image_size * c.image_size;
    std::vector<double> mu_sum(static_cast<size_t>(D)), mu_squares(static_cast<size_t>(D));
    double nll_sum = 0;
    for (int64_t first = 0; first < r.images; first += o.batch) {
        const std::vector<int64_t> items(order.begin() + first, order.begin() + std::min(r.images, first + o.batch));
        const int64_t B = static_cast<int64_t>(items.size());
        const Tensor<float> x = data.images(items);
        // Image p of the evaluation's order: ε from the stream (noise, 0, p), its importance samples
        // from (importance, 0, p).
        const models::VAEOutput<float> out = model.forward(Var<float>(x), StepDraws{.seed = o.seed, .first_image = first});
        const Tensor<float>&mu = out.mu.value(), &logvar = out.logvar.value(), &logits = out.logits.value();
        std::vector<double> recon(static_cast<size_t>(B)), kl(static_cast<size_t>(B));
#pragma omp parallel for schedule(static)
        for (int64_t b = 0; b < B; ++b) recon[b] = detail::bernoulli_nll(logits.data() + b * n, x.data() + b * n, n);
        // Each image's KL by the training loss's kernel, in double.
        kernels::gaussian_kl_forward(kl.data(), mu.cast<double>().data(), logvar.cast<double>().data(), B, D,
                                     Reduction::none);
        for (int64_t b = 0; b < B; ++b) {
            r.recon += recon[b];
            r.kl += kl[b];
            for (int64_t d = 0; d < D; ++d) {
                const double m = mu[b * D + d];
                mu_sum[d] += m;
                mu_squares[d] += m * m;
            }
            if (first + b < r.iw_images)
                nll_sum += detail::importance_weighted_nll(model, x.data() + b * n, mu.data() + b * D,
                                                           logvar.data() + b * D, o.iw_samples,
                                                           Generator(o.seed, {Purpose::importance, 0,
                                                                              static_cast<uint32_t>(first + b)}));
        }
    }
    r.recon /= static_cast<double>(r.images);
    r.kl /= static_cast<double>(r.images);
    r.elbo = -(r.recon + r.kl);
    r.nll_iw = r.iw_images > 0 ? nll_sum / static_cast<double>(r.iw_images) : std::nan("");
    for (int64_t d = 0; d < D && r.images > 1; ++d) {
        const double mean = mu_sum[d] / static_cast<double>(r.images);
        const double variance = (mu_squares[d] - static_cast<double>(r.images) * mean * mean) / static_cast<double>(r.images - 1);
        r.active_dims += variance > o.active_threshold;
    }
    return r;
}

}  // namespace elbo::metrics
