#pragma once
// linear(x, w, b) = x w^T + b, as torch.nn.functional.linear; linear(x, w, b, act) = act(x w^T + b).

#include "elbo/kernels/cpu/linear.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

// x [N, I], w [O, I], b [O] (or an empty Var for no bias)  ->  act([N, O])
template <class T>
Var<T> linear(const Var<T>& x, const Var<T>& w, const Var<T>& b = {}, const Activation& act = {}) {
    const Device device = require_one_device<T>("linear", {&x, &w, &b});
    check(x.shape().rank() == 2, "linear", "expected input [N, in_features], got ", x.shape());
    check(w.shape().rank() == 2, "linear", "expected weight [out_features, in_features], got ", w.shape());
    const int64_t N = x.shape()[0], I = x.shape()[1], O = w.shape()[0];
    check(w.shape()[1] == I, "linear", "input has ", I, " features, weight expects ", w.shape()[1],
          " (input ", x.shape(), ", weight ", w.shape(), ")");
    if (b.defined()) check(b.shape() == Shape{O}, "linear", "expected bias [", O, "], got ", b.shape());
    return detail::layer_op(
        "linear", device, Shape{N, O}, x, w, b, act,
        [=](Device d, T* y, const T* xd, const T* wd, const T* bd, const Activation& a) {
            ELBO_KERNEL(d, linear_forward, y, xd, wd, bd, N, I, O, a);
        },
        [=](Device d, T* dx, T* dw, T* db, const kernels::Assign& assign, const T* dy, const T* xd, const T* wd) {
            ELBO_KERNEL(d, linear_backward, dx, dw, db, dy, xd, wd, N, I, O, assign);
        });
}

}  // namespace elbo
