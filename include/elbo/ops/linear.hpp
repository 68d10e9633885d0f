#pragma once
// linear(x, w, b) = x w^T + b, as torch.nn.functional.linear.

#include "elbo/kernels/cpu/linear.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

// x [N, I], w [O, I], b [O] (or an empty Var for no bias)  ->  [N, O]
template <class T>
Var<T> linear(const Var<T>& x, const Var<T>& w, const Var<T>& b = {}) {
    require_cpu<T>("linear", {&x, &w, &b});
    check(x.shape().rank() == 2, "linear", "expected input [N, in_features], got ", x.shape());
    check(w.shape().rank() == 2, "linear", "expected weight [out_features, in_features], got ", w.shape());
    const int64_t N = x.shape()[0], I = x.shape()[1], O = w.shape()[0];
    check(w.shape()[1] == I, "linear", "input has ", I, " features, weight expects ", w.shape()[1],
          " (input ", x.shape(), ", weight ", w.shape(), ")");
    const bool has_bias = b.defined();
    if (has_bias)
        check(b.shape() == Shape{O}, "linear", "expected bias [", O, "], got ", b.shape());

    Tensor<T> y = Tensor<T>::uninitialized(Shape{N, O});
    kernels::linear_forward(y.data(), x.value().data(), w.value().data(),
                            has_bias ? b.value().data() : nullptr, N, I, O);
    std::vector<Var<T>> parents{x, w};
    if (has_bias) parents.push_back(b);
    return Var<T>::from_op(std::move(y), "linear", std::move(parents), [=](Node<T>& self) {
        kernels::linear_backward(self.parent_grad(0), self.parent_grad(1),
                                 has_bias ? self.parent_grad(2) : nullptr, self.grad.data(),
                                 self.parents[0]->value.data(), self.parents[1]->value.data(), N, I, O);
    });
}

}  // namespace elbo
