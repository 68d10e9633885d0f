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

// y = reduce(the n values of a loss) under reduction r: fill(begin, size, out) writes the values of
// the block [begin, begin + size) to out.
template <class T, class Fill>
void reduce_loss(T* y, int64_t n, Reduction r, Fill fill) {
    if (r == Reduction::none) {
        for_each_block(n, [&](int64_t b, int64_t m) { fill(b, m, y + b); });
        return;
    }
    const double s = parallel_sum<T>(n, fill);
    y[0] = static_cast<T>(r == Reduction::mean ? s / static_cast<double>(n) : s);
}

// The output gradient of each element of a loss over n values, reduced by r: dy itself (none), or
// the one dy[0] (sum), divided by n (mean).
template <class T>
struct LossGrad {
    const T* dy;
    Reduction r;
    T scale;
    LossGrad(const T* dy_, Reduction r_, int64_t n)
        : dy(dy_), r(r_), scale(r_ == Reduction::mean ? T(1) / static_cast<T>(n) : T(1)) {}
    T operator()(int64_t i) const { return r == Reduction::none ? dy[i] : dy[0] * scale; }

    // body(begin, size, g) for every block of [0, n), g being the block's gradients as an Eigen
    // array expression: dy's values, or one constant.
    template <class Body>
    void for_each_block(int64_t n, Body body) const {
        if (r == Reduction::none)
            return kernels::for_each_block(n, [&](int64_t b, int64_t m) { body(b, m, array(dy + b, m)); });
        const T g = dy[0] * scale;
        kernels::for_each_block(n, [&](int64_t b, int64_t m) {
            body(b, m, Eigen::Array<T, Eigen::Dynamic, 1>::Constant(m, g));
        });
    }
};

// l = max(x, 0) - x t + log(1 + exp(-|x|)), which equals -(t log s(x) + (1-t) log(1 - s(x)))
// for s the sigmoid without ever forming log(0). x, t [n] -> y [n] or [1]
template <class T>
void bce_with_logits_forward(T* y, const T* x, const T* t, int64_t n, Reduction r) {
    reduce_loss(y, n, r, [x, t](int64_t b, int64_t m, T* out) {
        log1p_exp_neg_abs(out, x + b, m);
        const auto X = array(x + b, m);
        array(out, m) = X.max(T(0)) - X * array(t + b, m) + array(out, m);
    });
}

// dx += g (sigmoid(x) - t);  dt += -g x.  dx or dt may be null.
template <class T>
void bce_with_logits_backward(T* dx, T* dt, const T* dy, const T* x, const T* t, int64_t n,
                              Reduction r) {
    LossGrad<T>(dy, r, n).for_each_block(n, [=](int64_t b, int64_t m, const auto& g) {
        const auto X = array(x + b, m);
        if (dx) array(dx + b, m) += g * (sigmoid(X) - array(t + b, m));
        if (dt) array(dt + b, m) -= g * X;
    });
}

// log(p), clamped at -100 as PyTorch clamps each log of binary_cross_entropy: p = 0 or 1 costs at
// most 100.
template <class P>
auto clamped_log(const Eigen::ArrayBase<P>& p) {
    return p.log().max(typename P::Scalar(-100));
}

// l = -(t log p + (1 - t) log(1 - p)), each log clamped at -100. p, t [n] -> y [n] or [1]
template <class T>
void bce_forward(T* y, const T* p, const T* t, int64_t n, Reduction r) {
    reduce_loss(y, n, r, [p, t](int64_t b, int64_t m, T* out) {
        const auto P = array(p + b, m), Tt = array(t + b, m);
        array(out, m) = -(Tt * clamped_log(P) + (T(1) - Tt) * clamped_log(T(1) - P));
    });
}

// dp += g (p - t) / max(p (1 - p), 1e-12), PyTorch's guarded form of the derivative;
// dt += g (log(1 - p) - log p) with both logs clamped. dp or dt may be null.
template <class T>
void bce_backward(T* dp, T* dt, const T* dy, const T* p, const T* t, int64_t n, Reduction r) {
    LossGrad<T>(dy, r, n).for_each_block(n, [=](int64_t b, int64_t m, const auto& g) {
        const auto P = array(p + b, m), Tt = array(t + b, m);
        if (dp) array(dp + b, m) += g * (P - Tt) / ((T(1) - P) * P).max(T(1e-12));
        if (dt) array(dt + b, m) += g * (clamped_log(T(1) - P) - clamped_log(P));
    });
}

// l = (a - b)^2. a, b [n] -> y [n] or [1]
template <class T>
void mse_forward(T* y, const T* a, const T* b, int64_t n, Reduction r) {
    reduce_loss(y, n, r, [a, b](int64_t i, int64_t m, T* out) {
        array(out, m) = (array(a + i, m) - array(b + i, m)).square();
    });
}

// da += 2 g (a - b);  db -= 2 g (a - b).  da or db may be null.
template <class T>
void mse_backward(T* da, T* db, const T* dy, const T* a, const T* b, int64_t n, Reduction r) {
    LossGrad<T>(dy, r, n).for_each_block(n, [=](int64_t i, int64_t m, const auto& g) {
        const auto d = T(2) * g * (array(a + i, m) - array(b + i, m));
        if (da) array(da + i, m) += d;
        if (db) array(db + i, m) -= d;
    });
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
    reduce_loss(y, N, r, [=](int64_t b, int64_t m, T* out) {
        for (int64_t n = b; n < b + m; ++n) out[n - b] = -lp[n * K + target[n]];
    });
}

// dlp [n, target[n]] -= g_n
template <class T>
void nll_backward(T* dlp, const T* dy, const int64_t* target, int64_t N, int64_t K, Reduction r) {
    const LossGrad<T> g(dy, r, N);
    for (int64_t n = 0; n < N; ++n) dlp[n * K + target[n]] -= g(n);
}

}  // namespace elbo::kernels
