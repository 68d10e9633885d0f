#pragma once
// Element-wise activations, each forward next to its backward.  Derivations:
// docs/gradients.md#activations
//
// Every backward accumulates dx[i] += dy[i] * f'(x[i]), with f' written from whichever of x and
// y = f(x) is cheaper (sigmoid, tanh and exp reuse y); with `assign` (dx's first gradient, its buffer
// unset) it stores dx[i] = dy[i] * f'(x[i]) instead. Where f' is 0 (ReLU's x <= 0, like PyTorch's
// threshold_backward) the gradient is 0 whatever dy holds.

#include <cmath>

#include "elbo/kernels/cpu/common.hpp"
#include "elbo/kernels/cpu/exp_log.hpp"

namespace elbo::kernels {

// Applies y[i] = f(x[i]) for i in [0, n), in parallel when it pays.
template <class T, class F>
void map_unary(T* y, const T* x, int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (parallel: n >= parallel_grain)
    for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

// dx[i] += g(dy[i], x[i], y[i]) for i in [0, n), g being dy[i] * f'(x[i]); with `assign`,
// dx[i] = ... (dx's first gradient: no zeros to write first, nothing to read back).
//
// g returns the product, not f' alone, so that a piecewise derivative can select dy instead of
// multiplying it by 0 or 1: GCC will not vectorize a multiplication it has turned into a branch
// (an FP multiply may trap), and ReLU's backward ran scalar, with a mispredicted branch per element.
template <class T, class G>
void map_unary_grad(T* dx, const T* dy, const T* x, const T* y, int64_t n, G g, bool assign) {
    if (assign) {
#pragma omp parallel for simd schedule(static) if (parallel: n >= parallel_grain)
        for (int64_t i = 0; i < n; ++i) dx[i] = g(dy[i], x[i], y[i]);
        return;
    }
#pragma omp parallel for simd schedule(static) if (parallel: n >= parallel_grain)
    for (int64_t i = 0; i < n; ++i) dx[i] += g(dy[i], x[i], y[i]);
}

template <class T> void relu_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](T v) { return v > T(0) ? v : T(0); });
}
template <class T> void relu_backward(T* dx, const T* dy, const T* x, int64_t n, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [](T d, T v, T) { return v > T(0) ? d : T(0); }, assign);
}

template <class T> void leaky_relu_forward(T* y, const T* x, int64_t n, T slope) {
    map_unary(y, x, n, [slope](T v) { return v > T(0) ? v : v * slope; });
}
template <class T> void leaky_relu_backward(T* dx, const T* dy, const T* x, int64_t n, T slope, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [slope](T d, T v, T) { return d * (v > T(0) ? T(1) : slope); }, assign);
}

template <class T> void sigmoid_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](T v) { return sigmoid_of(v); });
}
template <class T> void sigmoid_backward(T* dx, const T* dy, const T* y, int64_t n, bool assign) {
    map_unary_grad(dx, dy, y, y, n, [](T d, T s, T) { return d * (s * (T(1) - s)); }, assign);
}

template <class T> void tanh_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](T v) { return std::tanh(v); });
}
template <class T> void tanh_backward(T* dx, const T* dy, const T* y, int64_t n, bool assign) {
    map_unary_grad(dx, dy, y, y, n, [](T d, T t, T) { return d * (T(1) - t * t); }, assign);
}

template <class T> void softplus_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](T v) { return softplus_of(v); });
}
template <class T> void softplus_backward(T* dx, const T* dy, const T* x, int64_t n, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [](T d, T v, T) { return v > T(20) ? d : d * sigmoid_of(v); }, assign);
}

template <class T> void exp_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](T v) { return std::exp(v); });
}
template <class T> void exp_backward(T* dx, const T* dy, const T* y, int64_t n, bool assign) {
    map_unary_grad(dx, dy, y, y, n, [](T d, T e, T) { return d * e; }, assign);
}

// |x|, with PyTorch's subgradient sign(0) = 0.
template <class T> void abs_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](T v) { return std::abs(v); });
}
template <class T> void abs_backward(T* dx, const T* dy, const T* x, int64_t n, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [](T d, T v, T) { return v > T(0) ? d : v < T(0) ? -d : T(0); }, assign);
}

template <class T> void log_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](T v) { return std::log(v); });
}
template <class T> void log_backward(T* dx, const T* dy, const T* x, int64_t n, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [](T d, T v, T) { return d / v; }, assign);
}

}  // namespace elbo::kernels
