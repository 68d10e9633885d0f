#pragma once
// sum and mean: of the whole tensor, or along one axis.

#include "elbo/kernels/cpu/reduce.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

namespace detail {

template <class T>
Var<T> reduce_all(const char* op, const Var<T>& x, bool average) {
    const Device device = require_one_device<T>(op, {&x});
    const int64_t n = x.numel();
    check(!average || n > 0, op, "the mean of an empty tensor ", x.shape(), " is undefined");
    const double scale = average ? 1.0 / static_cast<double>(n) : 1.0;
    Tensor<T> y = Tensor<T>::uninitialized(Shape{}, device);
    ELBO_KERNEL(device, sum_forward, y.data(), x.value().data(), n, scale);
    return Var<T>::from_op(std::move(y), op, {x}, [=](Node<T>& self) {
        if (T* dx = self.parent_grad(0)) ELBO_KERNEL(device, sum_backward, dx, self.grad.data(), n, scale);
    });
}

template <class T>
Var<T> reduce_axis(const char* op, const Var<T>& x, int64_t axis, bool keepdim, bool average) {
    const Device device = require_one_device<T>(op, {&x});
    const Shape& xs = x.shape();
    const int64_t a = xs.axis(axis, op);
    const int64_t outer = xs.span(0, a), n = xs[a], inner = xs.span(a + 1, xs.rank());
    check(!average || n > 0, op, "the mean over an empty axis ", axis, " of ", xs, " is undefined");
    const double scale = average ? 1.0 / static_cast<double>(n) : 1.0;
    std::vector<int64_t> dims = xs.dims();
    if (keepdim) dims[static_cast<size_t>(a)] = 1;
    else dims.erase(dims.begin() + a);
    Tensor<T> y = Tensor<T>::uninitialized(Shape(dims), device);
    ELBO_KERNEL(device, sum_axis_forward, y.data(), x.value().data(), outer, n, inner, scale);
    return Var<T>::from_op(std::move(y), op, {x}, [=](Node<T>& self) {
        if (T* dx = self.parent_grad(0))
            ELBO_KERNEL(device, sum_axis_backward, dx, self.grad.data(), outer, n, inner, scale);
    });
}

}  // namespace detail

// The sum of all elements, shape [].
template <class T> Var<T> sum(const Var<T>& x) { return detail::reduce_all("sum", x, false); }
// The mean of all elements, shape [].
template <class T> Var<T> mean(const Var<T>& x) { return detail::reduce_all("mean", x, true); }

// The sum along `axis` (negative counts from the end), which is removed unless keepdim.
template <class T>
Var<T> sum(const Var<T>& x, int64_t axis, bool keepdim = false) {
    return detail::reduce_axis("sum", x, axis, keepdim, false);
}
template <class T>
Var<T> mean(const Var<T>& x, int64_t axis, bool keepdim = false) {
    return detail::reduce_axis("mean", x, axis, keepdim, true);
}

}  // namespace elbo
