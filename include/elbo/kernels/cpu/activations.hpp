#pragma once
// Element-wise activations, each forward next to its backward.  Derivations:
// docs/gradients.md#activations
//
// Every backward accumulates dx[i] += dy[i] * f'(x[i]), with f' written from whichever of x and
// y = f(x) is cheaper (sigmoid, tanh and exp reuse y); with `assign` (dx's first gradient, its buffer
// unset) it stores dx[i] = dy[i] * f'(x[i]) instead. Where f' is 0 (ReLU's x <= 0, like PyTorch's
// threshold_backward) the gradient is 0 whatever dy holds.

#include "elbo/kernels/cpu/common.hpp"
#include "elbo/kernels/cpu/exp_log.hpp"
#include "elbo/kernels/cpu/layer_activation.hpp"

namespace elbo::kernels {

// y = f(x) for the n values of x, f taking and returning Eigen array expressions, block by block.
template <class T, class F>
void map_unary(T* y, const T* x, int64_t n, F f) {
    for_each_block(n, [&](int64_t b, int64_t m) { array(y + b, m) = f(array(x + b, m)); });
}

// dx += g(dy, x, y) for the n values of each, g being dy * f'(x) as an Eigen array expression; with
// `assign`, dx = ... (dx's first gradient: no zeros to write first, nothing to read back).
//
// g returns the product, not f' alone, so that a piecewise derivative can select dy instead of
// multiplying it by 0 or 1 (0 * inf is NaN).
template <class T, class G>
void map_unary_grad(T* dx, const T* dy, const T* x, const T* y, int64_t n, G g, bool assign) {
    for_each_block(n, [&](int64_t b, int64_t m) {
        const auto grad = g(array(dy + b, m), array(x + b, m), array(y + b, m));
        if (assign)
            array(dx + b, m) = grad;
        else
            array(dx + b, m) += grad;
    });
}

template <class T> void relu_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](auto v) { return v.max(T(0)); });
}
template <class T> void relu_backward(T* dx, const T* dy, const T* x, int64_t n, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [](auto d, auto v, auto) { return (v > T(0)).select(d, T(0)); }, assign);
}

// max(x, 0) + slope min(x, 0): x or slope x, in Eigen's packets (its select has no packet path).
template <class T> void leaky_relu_forward(T* y, const T* x, int64_t n, T slope) {
    map_unary(y, x, n, [slope](auto v) { return v.max(T(0)) + slope * v.min(T(0)); });
}
template <class T> void leaky_relu_backward(T* dx, const T* dy, const T* x, int64_t n, T slope, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [slope](auto d, auto v, auto) { return (v > T(0)).select(d, slope * d); },
                   assign);
}

// y = act(y) for the n values of y, in place: a layer's activation (layer_activation.hpp), with the
// same arithmetic as relu_forward and leaky_relu_forward.
template <class T> void activate(T* y, int64_t n, const Activation& act) {
    if (act.kind == Activation::Kind::relu) relu_forward(y, y, n);
    if (act.kind == Activation::Kind::leaky_relu) leaky_relu_forward(y, y, n, static_cast<T>(act.slope));
}

template <class T> void sigmoid_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](auto v) { return sigmoid(v); });
}
template <class T> void sigmoid_backward(T* dx, const T* dy, const T* y, int64_t n, bool assign) {
    map_unary_grad(dx, dy, y, y, n, [](auto d, auto s, auto) { return d * (s * (T(1) - s)); }, assign);
}

template <class T> void tanh_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](auto v) { return v.tanh(); });
}
template <class T> void tanh_backward(T* dx, const T* dy, const T* y, int64_t n, bool assign) {
    map_unary_grad(dx, dy, y, y, n, [](auto d, auto t, auto) { return d * (T(1) - t * t); }, assign);
}

// max(x, 0) + log1p(exp(-|x|)); PyTorch's softplus (beta 1, threshold 20) is x above 20.
template <class T> void softplus_forward(T* y, const T* x, int64_t n) {
    for_each_block(n, [&](int64_t b, int64_t m) {
        log1p_exp_neg_abs(y + b, x + b, m);
        const auto X = array(x + b, m);
        array(y + b, m) = (X > T(20)).select(X, X.max(T(0)) + array(y + b, m));
    });
}
template <class T> void softplus_backward(T* dx, const T* dy, const T* x, int64_t n, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [](auto d, auto v, auto) { return (v > T(20)).select(d, d * sigmoid(v)); },
                   assign);
}

template <class T> void exp_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](auto v) { return exponential(v); });
}
template <class T> void exp_backward(T* dx, const T* dy, const T* y, int64_t n, bool assign) {
    map_unary_grad(dx, dy, y, y, n, [](auto d, auto e, auto) { return d * e; }, assign);
}

// |x|, with PyTorch's gradient dy sgn(x): 0 at x = 0.
template <class T> void abs_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](auto v) { return v.abs(); });
}
template <class T> void abs_backward(T* dx, const T* dy, const T* x, int64_t n, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [](auto d, auto v, auto) { return d * v.sign(); }, assign);
}

template <class T> void log_forward(T* y, const T* x, int64_t n) {
    map_unary(y, x, n, [](auto v) { return v.log(); });
}
template <class T> void log_backward(T* dx, const T* dy, const T* x, int64_t n, bool assign) {
    map_unary_grad(dx, dy, x, x, n, [](auto d, auto v, auto) { return d / v; }, assign);
}

}  // namespace elbo::kernels
