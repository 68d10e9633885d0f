#pragma once
// Element-wise activations and functions: relu, leaky_relu, sigmoid, tanh, softplus, exp, log, abs.

#include "elbo/kernels/cpu/activations.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

namespace detail {

// Runs an element-wise forward kernel and records its backward. The backward kernel receives
// (dx, dy, x, y, n, assign), picks the one of x and y its derivative needs, and stores into dx
// when `assign` says this is x's first gradient, else adds.
template <class T, class Forward, class Backward>
Var<T> unary(const char* op, const Var<T>& x, Forward forward, Backward backward) {
    require_cpu<T>(op, {&x});
    Tensor<T> y = Tensor<T>::uninitialized(x.shape());
    const int64_t n = y.numel();
    forward(y.data(), x.value().data(), n);
    return Var<T>::from_op(std::move(y), op, {x}, [=](Node<T>& self) {
        bool assign = false;
        if (T* dx = self.parent_grad_to_write(0, assign))
            backward(dx, self.grad.data(), self.parents[0]->value.data(), self.value.data(), n, assign);
    });
}

}  // namespace detail

template <class T>
Var<T> relu(const Var<T>& x) {
    return detail::unary<T>("relu", x, kernels::relu_forward<T>,
                            [](T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
                                kernels::relu_backward(dx, dy, in, n, assign);
                            });
}

// max(x, 0) + slope * min(x, 0); PyTorch's default slope is 0.01.
template <class T>
Var<T> leaky_relu(const Var<T>& x, T negative_slope = T(0.01)) {
    return detail::unary<T>(
        "leaky_relu", x,
        [negative_slope](T* y, const T* in, int64_t n) { kernels::leaky_relu_forward(y, in, n, negative_slope); },
        [negative_slope](T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
            kernels::leaky_relu_backward(dx, dy, in, n, negative_slope, assign);
        });
}

template <class T>
Var<T> sigmoid(const Var<T>& x) {
    return detail::unary<T>("sigmoid", x, kernels::sigmoid_forward<T>,
                            [](T* dx, const T* dy, const T*, const T* out, int64_t n, bool assign) {
                                kernels::sigmoid_backward(dx, dy, out, n, assign);
                            });
}

template <class T>
Var<T> tanh(const Var<T>& x) {
    return detail::unary<T>("tanh", x, kernels::tanh_forward<T>,
                            [](T* dx, const T* dy, const T*, const T* out, int64_t n, bool assign) {
                                kernels::tanh_backward(dx, dy, out, n, assign);
                            });
}

// log(1 + exp(x)), linear above 20 like PyTorch's default.
template <class T>
Var<T> softplus(const Var<T>& x) {
    return detail::unary<T>("softplus", x, kernels::softplus_forward<T>,
                            [](T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
                                kernels::softplus_backward(dx, dy, in, n, assign);
                            });
}

template <class T>
Var<T> exp(const Var<T>& x) {
    return detail::unary<T>("exp", x, kernels::exp_forward<T>,
                            [](T* dx, const T* dy, const T*, const T* out, int64_t n, bool assign) {
                                kernels::exp_backward(dx, dy, out, n, assign);
                            });
}

template <class T>
Var<T> log(const Var<T>& x) {
    return detail::unary<T>("log", x, kernels::log_forward<T>,
                            [](T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
                                kernels::log_backward(dx, dy, in, n, assign);
                            });
}

// |x|; the gradient at 0 is 0, as PyTorch's.
template <class T>
Var<T> abs(const Var<T>& x) {
    return detail::unary<T>("abs", x, kernels::abs_forward<T>,
                            [](T* dx, const T* dy, const T* in, const T*, int64_t n, bool assign) {
                                kernels::abs_backward(dx, dy, in, n, assign);
                            });
}

}  // namespace elbo
