#pragma once
// The two pieces of a VAE's latent layer: the KL divergence of a diagonal Gaussian from N(0, I),
// and the reparameterized sample.  Derivations: docs/gradients.md#gaussian-kl and
// docs/gradients.md#reparameterization

#include <cmath>

#include "elbo/kernels/cpu/losses.hpp"

namespace elbo::kernels {

// KL(N(mu, exp(logvar)) || N(0, I)) per sample: kl_n = -1/2 sum_d (1 + lv - mu^2 - exp(lv)).
// mu, logvar [N, D] -> y [N] (none), or [1]: the sum over the batch, or that sum / N (mean).
template <class T>
void gaussian_kl_forward(T* y, const T* mu, const T* logvar, int64_t N, int64_t D, Reduction r) {
    reduce_loss(y, N, r, [=](int64_t n) {
        double s = 0.0;
        for (int64_t d = n * D; d < (n + 1) * D; ++d)
            s += T(1) + logvar[d] - mu[d] * mu[d] - std::exp(logvar[d]);
        return -0.5 * s;
    });
}

// dmu += g_n mu;  dlogvar += g_n (exp(lv) - 1) / 2.  dmu or dlogvar may be null.
template <class T>
void gaussian_kl_backward(T* dmu, T* dlogvar, const T* dy, const T* mu, const T* logvar, int64_t N,
                          int64_t D, Reduction r) {
    const LossGrad<T> g(dy, r, N);
    for (int64_t n = 0; n < N; ++n) {
        const T gn = g(n);
        for (int64_t d = n * D; d < (n + 1) * D; ++d) {
            if (dmu) dmu[d] += gn * mu[d];
            if (dlogvar) dlogvar[d] += gn * T(0.5) * (std::exp(logvar[d]) - T(1));
        }
    }
}

// z = mu + eps * exp(logvar / 2), all [n]
template <class T>
void reparameterize_forward(T* z, const T* mu, const T* logvar, const T* eps, int64_t n) {
#pragma omp parallel for schedule(static) if (n >= parallel_grain)
    for (int64_t i = 0; i < n; ++i) z[i] = mu[i] + eps[i] * std::exp(T(0.5) * logvar[i]);
}

// dmu += dz;  dlogvar += dz eps exp(lv/2) / 2;  deps += dz exp(lv/2).  Any may be null.
template <class T>
void reparameterize_backward(T* dmu, T* dlogvar, T* deps, const T* dz, const T* logvar, const T* eps,
                             int64_t n) {
#pragma omp parallel for schedule(static) if (n >= parallel_grain)
    for (int64_t i = 0; i < n; ++i) {
        const T sigma = std::exp(T(0.5) * logvar[i]);
        if (dmu) dmu[i] += dz[i];
        if (dlogvar) dlogvar[i] += dz[i] * eps[i] * T(0.5) * sigma;
        if (deps) deps[i] += dz[i] * sigma;
    }
}

}  // namespace elbo::kernels
