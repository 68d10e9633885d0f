// The VAE's objective on the GPU: BCE (on logits and on probabilities), squared error, the Gaussian
// KL, the reparameterized sample and its noise ε, FactorVAE's permuted codes and its discriminator's cross-entropy
// (log-softmax and NLL): twins of kernels/cpu/losses.hpp, gaussian.hpp and gather.hpp.
// Derivations: docs/gradients.md

#include "check.cuh"
#include "elbo/cuda/kernels.hpp"

namespace elbo::cuda {

namespace {

// y = reduce(f(i)) for i in [0, n): kept per element (none), summed, or averaged, in double.
template <class F>
void reduce_loss(float* y, int64_t n, Reduction r, F f) {
    if (r == Reduction::none) {
        detail::launch(n, [=] __device__(int64_t i) { y[i] = static_cast<float>(f(i)); });
        return;
    }
    detail::sum_of(y, n, r == Reduction::mean ? 1.0 / static_cast<double>(n) : 1.0, f);
}

// The output gradient of element i of a loss reduced by r: dy[i] (none) or dy[0] / n (mean).
struct LossGrad {
    const float* dy;
    bool each;
    float scale;
    LossGrad(const float* dy_, Reduction r, int64_t n)
        : dy(dy_), each(r == Reduction::none), scale(r == Reduction::mean ? 1.0f / static_cast<float>(n) : 1.0f) {}
    __device__ float operator()(int64_t i) const { return each ? dy[i] : dy[0] * scale; }
};

}  // namespace

void bce_with_logits_forward(float* y, const float* x, const float* t, int64_t n, Reduction r) {
    reduce_loss(y, n, r, [=] __device__(int64_t i) {
        const float v = x[i];
        return fmaxf(v, 0.0f) - v * t[i] + log1pf(expf(-fabsf(v)));
    });
}

void bce_with_logits_backward(float* dx, float* dt, const float* dy, const float* x, const float* t, int64_t n,
                              Reduction r) {
    const LossGrad g(dy, r, n);
    if (dx) detail::launch(n, [=] __device__(int64_t i) { dx[i] += g(i) * (detail::sigmoid_of(x[i]) - t[i]); });
    if (dt) detail::launch(n, [=] __device__(int64_t i) { dt[i] -= g(i) * x[i]; });
}

// PyTorch clamps each log of binary_cross_entropy at -100.
__device__ float clamped_log(float v) { return fmaxf(logf(v), -100.0f); }

void bce_forward(float* y, const float* p, const float* t, int64_t n, Reduction r) {
    reduce_loss(y, n, r, [=] __device__(int64_t i) {
        return -(t[i] * clamped_log(p[i]) + (1.0f - t[i]) * clamped_log(1.0f - p[i]));
    });
}

void bce_backward(float* dp, float* dt, const float* dy, const float* p, const float* t, int64_t n, Reduction r) {
    const LossGrad g(dy, r, n);
    if (dp)
        detail::launch(n, [=] __device__(int64_t i) {
            dp[i] += g(i) * (p[i] - t[i]) / fmaxf((1.0f - p[i]) * p[i], 1e-12f);
        });
    if (dt)
        detail::launch(n, [=] __device__(int64_t i) {
            dt[i] += g(i) * (clamped_log(1.0f - p[i]) - clamped_log(p[i]));
        });
}

void mse_forward(float* y, const float* a, const float* b, int64_t n, Reduction r) {
    reduce_loss(y, n, r, [=] __device__(int64_t i) {
        const float d = a[i] - b[i];
        return d * d;
    });
}

void mse_backward(float* da, float* db, const float* dy, const float* a, const float* b, int64_t n, Reduction r) {
    const LossGrad g(dy, r, n);
    if (da) detail::launch(n, [=] __device__(int64_t i) { da[i] += 2.0f * g(i) * (a[i] - b[i]); });
    if (db) detail::launch(n, [=] __device__(int64_t i) { db[i] -= 2.0f * g(i) * (a[i] - b[i]); });
}

void gaussian_kl_forward(float* y, const float* mu, const float* logvar, int64_t N, int64_t D, Reduction r) {
    reduce_loss(y, N, r, [=] __device__(int64_t n) {
        double s = 0.0;
        for (int64_t d = n * D; d < (n + 1) * D; ++d) s += 1.0f + logvar[d] - mu[d] * mu[d] - expf(logvar[d]);
        return -0.5 * s;
    });
}

void gaussian_kl_backward(float* dmu, float* dlogvar, const float* dy, const float* mu, const float* logvar,
                          int64_t N, int64_t D, Reduction r) {
    const LossGrad g(dy, r, N);
    if (dmu) detail::launch(N * D, [=] __device__(int64_t d) { dmu[d] += g(d / D) * mu[d]; });
    if (dlogvar)
        detail::launch(N * D, [=] __device__(int64_t d) { dlogvar[d] += g(d / D) * 0.5f * (expf(logvar[d]) - 1.0f); });
}

void standard_normal(float* eps, int64_t N, int64_t D, uint64_t seed, random::Stream first) {
    detail::launch(N * D, [=] __device__(int64_t i) {
        random::Stream s = first;
        s.item += static_cast<uint32_t>(i / D);
        eps[i] = static_cast<float>(random::normal_at(seed, s, static_cast<uint32_t>(i % D)));
    });
}

void reparameterize_forward(float* z, const float* mu, const float* logvar, const float* eps, int64_t n) {
    detail::launch(n, [=] __device__(int64_t i) { z[i] = mu[i] + eps[i] * expf(0.5f * logvar[i]); });
}

void reparameterize_backward(float* dmu, float* dlogvar, float* deps, const float* dz, const float* logvar,
                             const float* eps, int64_t n) {
    detail::launch(n, [=] __device__(int64_t i) {
        const float sigma = expf(0.5f * logvar[i]);
        if (dmu) dmu[i] += dz[i];
        if (dlogvar) dlogvar[i] += dz[i] * eps[i] * 0.5f * sigma;
        if (deps) deps[i] += dz[i] * sigma;
    });
}

// y[n, d] = z[index[d, n], d]
void gather_columns_forward(float* y, const float* z, const int64_t* host_index, int64_t N, int64_t D) {
    const detail::Scratch<int64_t> index(host_index, N * D);
    const int64_t* at = index.data;
    detail::launch(N * D, [=] __device__(int64_t i) {
        const int64_t n = i / D, d = i % D;
        y[i] = z[at[d * N + n] * D + d];
    });
}

// dz[index[d, n], d] += dy[n, d]: a thread per column, adding in the CPU's order (n ascending), so
// that indices repeated within a column add up without atomics.
void gather_columns_backward(float* dz, const float* dy, const int64_t* host_index, int64_t N, int64_t D) {
    const detail::Scratch<int64_t> index(host_index, N * D);
    const int64_t* at = index.data;
    detail::launch(D, [=] __device__(int64_t d) {
        for (int64_t n = 0; n < N; ++n) dz[at[d * N + n] * D + d] += dy[n * D + d];
    });
}

// y = x - max - log(sum exp(x - max)) along the axis of x [outer, k, inner]: a thread per row.
void log_softmax_forward(float* y, const float* x, int64_t outer, int64_t k, int64_t inner) {
    detail::launch(outer * inner, [=] __device__(int64_t row) {
        const int64_t base = row / inner * k * inner + row % inner;
        float m = x[base];
        for (int64_t j = 1; j < k; ++j) m = fmaxf(m, x[base + j * inner]);
        double s = 0.0;
        for (int64_t j = 0; j < k; ++j) s += expf(x[base + j * inner] - m);
        const float lse = m + static_cast<float>(log(s));
        for (int64_t j = 0; j < k; ++j) y[base + j * inner] = x[base + j * inner] - lse;
    });
}

// dx += dy - exp(y) sum(dy) along the axis.
void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t outer, int64_t k, int64_t inner) {
    detail::launch(outer * inner, [=] __device__(int64_t row) {
        const int64_t base = row / inner * k * inner + row % inner;
        double s = 0.0;
        for (int64_t j = 0; j < k; ++j) s += dy[base + j * inner];
        for (int64_t j = 0; j < k; ++j) {
            const int64_t at = base + j * inner;
            dx[at] += dy[at] - expf(y[at]) * static_cast<float>(s);
        }
    });
}

// l_n = -lp[n, target[n]]
void nll_forward(float* y, const float* lp, const int64_t* host_target, int64_t N, int64_t K, Reduction r) {
    const detail::Scratch<int64_t> target(host_target, N);
    const int64_t* t = target.data;
    reduce_loss(y, N, r, [=] __device__(int64_t n) { return -lp[n * K + t[n]]; });
}

// dlp[n, target[n]] -= g_n
void nll_backward(float* dlp, const float* dy, const int64_t* host_target, int64_t N, int64_t K, Reduction r) {
    const detail::Scratch<int64_t> target(host_target, N);
    const int64_t* t = target.data;
    const LossGrad g(dy, r, N);
    detail::launch(N, [=] __device__(int64_t n) { dlp[n * K + t[n]] -= g(n); });
}

}  // namespace elbo::cuda
