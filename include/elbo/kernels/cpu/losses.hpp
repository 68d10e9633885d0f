#pragma once
// Losses: binary cross-entropy (on logits and on probabilities), mean squared error, log-softmax
// and the negative log-likelihood that makes cross-entropy.  Derivations: docs/gradients.md#losses
//
// The element-wise losses follow PyTorch's `reduction`: none keeps y [n], sum gives y [1] = sum,
// mean gives y [1] = sum / n. Sums accumulate in double. Their backward reads dy [n] for none and
// dy [1] otherwise.

#include <algorithm>
#include <cmath>

#include "elbo/kernels/cpu/activations.hpp"

namespace elbo::kernels {

// Runs y = reduce(f(i)) for i in [0, n) under reduction r.
template <class T, class F>
void reduce_loss(T* y, int64_t n, Reduction r, F f) {
    if (r == Reduction::none) {
#pragma omp parallel for simd schedule(static) if (parallel: n >= parallel_grain)
        for (int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(f(i));
        return;
    }
    const double s = parallel_sum(n, f);
    y[0] = static_cast<T>(r == Reduction::mean ? s / static_cast<double>(n) : s);
}

// The output gradient of element i of a loss reduced by r.
template <class T>
struct LossGrad {
    const T* dy;
    Reduction r;
    T scale;
    LossGrad(const T* dy_, Reduction r_, int64_t n)
        : dy(dy_), r(r_), scale(r_ == Reduction::mean ? T(1) / static_cast<T>(n) : T(1)) {}
    T operator()(int64_t i) const { return r == Reduction::none ? dy[i] : dy[0] * scale; }

    // body(i, g_i) for every i in [0, n), in parallel SIMD lanes: the choice between dy[i] and the
    // one scaled dy[0] is made once, outside the loop, where it does not stop vectorization.
    template <class Body>
    void for_each(int64_t n, Body body) const {
        if (r == Reduction::none) {
#pragma omp parallel for simd schedule(static) if (parallel: n >= parallel_grain)
            for (int64_t i = 0; i < n; ++i) body(i, dy[i]);
            return;
        }
        const T g = dy[0] * scale;
#pragma omp parallel for simd schedule(static) if (parallel: n >= parallel_grain)
        for (int64_t i = 0; i < n; ++i) body(i, g);
    }
};

// l = max(x, 0) - x t + log(1 + exp(-|x|)), which equals -(t log s(x) + (1-t) log(1 - s(x)))
// for s the sigmoid without ever forming log(0). x, t [n] -> y [n] or [1]
template <class T>
void bce_with_logits_forward(T* y, const T* x, const T* t, int64_t n, Reduction r) {
    reduce_loss(y, n, r, [x, t](int64_t i) {
        const T v = x[i];
        return (v > T(0) ? v : T(0)) - v * t[i] + log1p_unit(exp_nonpositive(-std::abs(v)));
    });
}

// dx += g (sigmoid(x) - t);  dt += -g x.  dx or dt may be null.
template <class T>
void bce_with_logits_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, int64_t n,
                              Reduction r) {
    const LossGrad<T> g(dy, r, n);
    if (dx) g.for_each(n, [=](int64_t i, T gi) { dx[i] += gi * (sigmoid_of(x[i]) - t[i]); });
    if (dt) g.for_each(n, [=](int64_t i, T gi) { dt[i] -= gi * x[i]; });
}

// PyTorch clamps each log of binary_cross_entropy at -100, so p = 0 or 1 costs at most 100.
template <class T>
T clamped_log(T v) {
    return std::max(std::log(v), T(-100));
}

// l = -(t log p + (1 - t) log(1 - p)), each log clamped at -100. p, t [n] -> y [n] or [1]
template <class T>
void bce_forward(T* y, const T* p, const T* t, int64_t n, Reduction r) {
    reduce_loss(y, n, r, [p, t](int64_t i) {
        return -(t[i] * clamped_log(p[i]) + (T(1) - t[i]) * clamped_log(T(1) - p[i]));
    });
}

// dp += g (p - t) / max(p (1 - p), 1e-12), PyTorch's guarded form of the derivative;
// dt += g (log(1 - p) - log p) with both logs clamped. dp or dt may be null.
template <class T>
void bce_backward(T* dp, T* dt, const T* dy, const T* p, const T* t, int64_t n, Reduction r) {
    const LossGrad<T> g(dy, r, n);
    if (dp)
        g.for_each(n, [=](int64_t i, T gi) {
            dp[i] += gi * (p[i] - t[i]) / std::max((T(1) - p[i]) * p[i], T(1e-12));
        });
    if (dt)
        g.for_each(n, [=](int64_t i, T gi) { dt[i] += gi * (clamped_log(T(1) - p[i]) - clamped_log(p[i])); });
}

// l = (a - b)^2. a, b [n] -> y [n] or [1]
template <class T>
void mse_forward(T* y, const T* a, const T* b, int64_t n, Reduction r) {
    reduce_loss(y, n, r, [a, b](int64_t i) {
        const T d = a[i] - b[i];
        return d * d;
    });
}

// da += 2 g (a - b);  db -= 2 g (a - b).  da or db may be null.
template <class T>
void mse_backward(T* da, T* db, const T* dy, const T* a, const T* b, int64_t n, Reduction r) {
    const LossGrad<T> g(dy, r, n);
    if (da) g.for_each(n, [=](int64_t i, T gi) { da[i] += T(2) * gi * (a[i] - b[i]); });
    if (db) g.for_each(n, [=](int64_t i, T gi) { db[i] -= T(2) * gi * (a[i] - b[i]); });
}

// y = x - max - log(sum exp(x - max)) along the axis of x viewed as [outer, k, inner].
template <class T>
void log_softmax_forward(T* y, const T* x, int64_t outer, int64_t k, int64_t inner) {
#pragma omp parallel for collapse(2) schedule(static) if (outer * k * inner >= parallel_grain)
    for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
            const T* xs = x + o * k * inner + i;
            T* ys = y + o * k * inner + i;
            T m = xs[0];
            for (int64_t j = 1; j < k; ++j) m = std::max(m, xs[j * inner]);
            double s = 0.0;
            for (int64_t j = 0; j < k; ++j) s += std::exp(xs[j * inner] - m);
            const T lse = m + static_cast<T>(std::log(s));
            for (int64_t j = 0; j < k; ++j) ys[j * inner] = xs[j * inner] - lse;
        }
    }
}

// dx += dy - exp(y) sum(dy) along the axis.
template <class T>
void log_softmax_backward(T* dx, const T* dy, const T* y, int64_t outer, int64_t k, int64_t inner) {
#pragma omp parallel for collapse(2) schedule(static) if (outer * k * inner >= parallel_grain)
    for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
            const int64_t base = o * k * inner + i;
            double s = 0.0;
            for (int64_t j = 0; j < k; ++j) s += dy[base + j * inner];
            for (int64_t j = 0; j < k; ++j) {
                const int64_t at = base + j * inner;
                dx[at] += dy[at] - std::exp(y[at]) * static_cast<T>(s);
            }
        }
    }
}

// Negative log-likelihood of class labels: l_n = -lp[n, target[n]]. lp [N, K] -> y [N] or [1];
// the mean divides by N, as PyTorch's nll_loss without class weights.
template <class T>
void nll_forward(T* y, const T* lp, const int64_t* target, int64_t N, int64_t K, Reduction r) {
    reduce_loss(y, N, r, [=](int64_t n) { return -lp[n * K + target[n]]; });
}

// dlp [n, target[n]] -= g_n
template <class T>
void nll_backward(T* dlp, const T* dy, const int64_t* target, int64_t N, int64_t K, Reduction r) {
    const LossGrad<T> g(dy, r, N);
    for (int64_t n = 0; n < N; ++n) dlp[n * K + target[n]] -= g(n);
}

}  // namespace elbo::kernels
