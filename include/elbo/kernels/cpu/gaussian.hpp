#pragma once
// The two pieces of a VAE's latent layer: the KL divergence of a diagonal Gaussian from N(0, I),
// and the reparameterized sample.  Derivations: docs/gradients.md#gaussian-kl and
// docs/gradients.md#reparameterization

#include <type_traits>

#include "elbo/kernels/cpu/losses.hpp"
#include "elbo/tensor/philox.hpp"

namespace elbo::kernels {

// The values of samples [b, b + m) of an [N, D] tensor as an Eigen array of D rows and m columns.
template <class T>
auto samples(T* p, int64_t b, int64_t m, int64_t D) {
    using Array = Eigen::Array<std::remove_const_t<T>, Eigen::Dynamic, Eigen::Dynamic>;
    return Eigen::Map<std::conditional_t<std::is_const_v<T>, const Array, Array>>(p + b * D, D, m);
}

// KL(N(mu, exp(logvar)) || N(0, I)) per sample: kl_n = -1/2 sum_d (1 + lv - mu^2 - exp(lv)).
// mu, logvar [N, D] -> y [N] (none), or [1]: the sum over the batch, or that sum / N (mean).
template <class T>
void gaussian_kl_forward(T* y, const T* mu, const T* logvar, int64_t N, int64_t D, Reduction r) {
    reduce_loss(y, N, r, [=](int64_t b, int64_t m, T* out) {
        const auto Mu = samples(mu, b, m, D), Lv = samples(logvar, b, m, D);
        array(out, m) = T(-0.5) * (T(1) + Lv - Mu.square() - exponential(Lv)).colwise().sum().transpose();
    });
}

// dmu += g_n mu;  dlogvar += g_n (exp(lv) - 1) / 2.  dmu or dlogvar may be null.
template <class T>
void gaussian_kl_backward(T* dmu, T* dlogvar, const T* dy, const T* mu, const T* logvar, int64_t N,
                          int64_t D, Reduction r) {
    LossGrad<T>(dy, r, N).for_each_block(N, [=](int64_t b, int64_t m, const auto& g) {
        const auto G = g.transpose().replicate(D, 1);  // g_n in every row of sample n's column
        if (dmu) samples(dmu, b, m, D) += G * samples(mu, b, m, D);
        if (dlogvar) samples(dlogvar, b, m, D) += G * T(0.5) * (exponential(samples(logvar, b, m, D)) - T(1));
    });
}

// eps [N, D] ~ N(0, I): row n is the stream of normals named `first` with item first.item + n,
// eps[n, d] = random::normal_at(seed, that stream, d), computed in double.
template <class T>
void standard_normal(T* eps, int64_t N, int64_t D, uint64_t seed, random::Stream first) {
    for (int64_t n = 0; n < N; ++n) {
        random::Stream s = first;
        s.item += static_cast<uint32_t>(n);
        for (int64_t d = 0; d < D; ++d)
            eps[n * D + d] = static_cast<T>(random::normal_at(seed, s, static_cast<uint32_t>(d)));
    }
}

// z = mu + eps * exp(logvar / 2), all [n]
template <class T>
void reparameterize_forward(T* z, const T* mu, const T* logvar, const T* eps, int64_t n) {
    for_each_block(n, [=](int64_t b, int64_t m) {
        array(z + b, m) = array(mu + b, m) + array(eps + b, m) * exponential(T(0.5) * array(logvar + b, m));
    });
}

// dmu += dz;  dlogvar += dz eps exp(lv/2) / 2;  deps += dz exp(lv/2).  Any may be null.
template <class T>
void reparameterize_backward(T* dmu, T* dlogvar, T* deps, const T* dz, const T* logvar, const T* eps,
                             int64_t n) {
    for_each_block(n, [=](int64_t b, int64_t m) {
        alignas(64) T sigma[block];
        array(sigma, m) = exponential(T(0.5) * array(logvar + b, m));
        const auto Dz = array(dz + b, m), Sigma = array(static_cast<const T*>(sigma), m);
        if (dmu) array(dmu + b, m) += Dz;
        if (dlogvar) array(dlogvar + b, m) += Dz * array(eps + b, m) * T(0.5) * Sigma;
        if (deps) array(deps + b, m) += Dz * Sigma;
    });
}

}  // namespace elbo::kernels
