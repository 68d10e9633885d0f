#pragma once
// Element-wise activations and functions: relu, leaky_relu, sigmoid, tanh, softplus, exp, log, abs.

#include "elbo/kernels/cpu/activations.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

namespace detail {

// Runs an element-wise forward kernel and records its backward, on the device x lives on. The
// forward is called as forward(device, y, x, n); the backward as backward(device, dx, dy, x, y, n,
// assign), picks the one of x and y its derivative needs, and stores into dx when `assign` says
// this is x's first gradient, else adds.
template <class T, class Forward, class Backward>
Var<T> unary(const char* op, const Var<T>& x, Forward forward, Backward backward) {
    const Device device = require_one_device<T>(op, {&x});
    Tensor<T> y = Tensor<T>::uninitialized(x.shape(), device);
    const int64_t n = y.numel();
    forward(device, y.data(), x.value().data(), n);
    return Var<T>::from_op(std::move(y), op, {x}, [=](Node<T>& self) {
        bool assign = false;
        if (T* dx = self.parent_grad_to_write(0, assign))
            backward(device, dx, self.grad.data(), self.parents[0]->value.data(), self.value.data(), n, assign);
    });
}

}  // namespace detail

template <class T>
Var<T> relu(const Var<T>& x) {
    return detail::unary<T>(
        "relu", x, [](Device d, T* y, const T* in, int64_t n) { ELBO_KERNEL(d, relu_forward, y, in, n); },
        [](Device d, T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
            ELBO_KERNEL(d, relu_backward, dx, dy, in, n, assign);
        });
}

// The derivative from y: y (1 - y).
template <class T>
Var<T> sigmoid(const Var<T>& x) {
    return detail::unary<T>(
        "sigmoid", x, [](Device d, T* y, const T* in, int64_t n) { ELBO_KERNEL(d, sigmoid_forward, y, in, n); },
        [](Device d, T* dx, const T* dy, const T*, const T* out, int64_t n, bool assign) {
            ELBO_KERNEL(d, sigmoid_backward, dx, dy, out, n, assign);
        });
}

// The derivative from y: 1 - y^2.
template <class T>
Var<T> tanh(const Var<T>& x) {
    return detail::unary<T>(
        "tanh", x, [](Device d, T* y, const T* in, int64_t n) { ELBO_KERNEL(d, tanh_forward, y, in, n); },
        [](Device d, T* dx, const T* dy, const T*, const T* out, int64_t n, bool assign) {
            ELBO_KERNEL(d, tanh_backward, dx, dy, out, n, assign);
        });
}

// log(1 + exp(x)), linear above 20 like PyTorch's default.
template <class T>
Var<T> softplus(const Var<T>& x) {
    return detail::unary<T>(
        "softplus", x, [](Device d, T* y, const T* in, int64_t n) { ELBO_KERNEL(d, softplus_forward, y, in, n); },
        [](Device d, T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
            ELBO_KERNEL(d, softplus_backward, dx, dy, in, n, assign);
        });
}

// The derivative is y itself.
template <class T>
Var<T> exp(const Var<T>& x) {
    return detail::unary<T>(
        "exp", x, [](Device d, T* y, const T* in, int64_t n) { ELBO_KERNEL(d, exp_forward, y, in, n); },
        [](Device d, T* dx, const T* dy, const T*, const T* out, int64_t n, bool assign) {
            ELBO_KERNEL(d, exp_backward, dx, dy, out, n, assign);
        });
}

template <class T>
Var<T> log(const Var<T>& x) {
    return detail::unary<T>(
        "log", x, [](Device d, T* y, const T* in, int64_t n) { ELBO_KERNEL(d, log_forward, y, in, n); },
        [](Device d, T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
            ELBO_KERNEL(d, log_backward, dx, dy, in, n, assign);
        });
}

// |x|; the gradient at 0 is 0, as PyTorch's.
template <class T>
Var<T> abs(const Var<T>& x) {
    return detail::unary<T>(
        "abs", x, [](Device d, T* y, const T* in, int64_t n) { ELBO_KERNEL(d, abs_forward, y, in, n); },
        [](Device d, T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
            ELBO_KERNEL(d, abs_backward, dx, dy, in, n, assign);
        });
}

// max(x, 0) + slope * min(x, 0); PyTorch's default slope is 0.01.
template <class T>
Var<T> leaky_relu(const Var<T>& x, T negative_slope = T(0.01)) {
    return detail::unary<T>(
        "leaky_relu", x,
        [negative_slope](Device d, T* y, const T* in, int64_t n) {
            ELBO_KERNEL(d, leaky_relu_forward, y, in, n, negative_slope);
        },
        [negative_slope](Device d, T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
            ELBO_KERNEL(d, leaky_relu_backward, dx, dy, in, n, negative_slope, assign);
        });
}

}  // namespace elbo
