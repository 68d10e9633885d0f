#pragma once
// What every op shares: the autograd types, the kernels, and the device check.

#include <initializer_list>

#include "elbo/autograd/backward.hpp"
#include "elbo/kernels/cpu/common.hpp"

namespace elbo {

// Every operand of an op must live on the CPU until the CUDA module is linked in. Every op calls
// this first, so it also starts the op's clock for the profile (autograd/profile.hpp).
template <class T>
void require_cpu(const char* op, std::initializer_list<const Var<T>*> operands) {
    profile::op_begins();
    for (const Var<T>* v : operands)
        if (v->defined())
            check(v->value().device() == Device::cpu, op,
                  "expected tensors on cpu, got one on ", to_string(v->value().device()),
                  " (this build has no CUDA module)");
}

// Checks that two operands of an element-wise op have one shape.
template <class T>
void require_same_shape(const char* op, const char* a_name, const Var<T>& a, const char* b_name,
                        const Var<T>& b) {
    check(a.shape() == b.shape(), op, a_name, " and ", b_name, " must have the same shape, got ",
          a_name, " ", a.shape(), " and ", b_name, " ", b.shape());
}

namespace detail {

// Runs a layer op y = f(x, w, b) with an optional bias (b empty: none) and records its backward.
// forward(y, x, w, b) and backward(dx, dw, db, dy, x, w) are the raw kernels with the layer's
// sizes bound; b and db are null without a bias, and any gradient nobody needs is null too.
template <class T, class Forward, class Backward>
Var<T> layer_op(const char* op, const Shape& y_shape, const Var<T>& x, const Var<T>& w, const Var<T>& b,
                Forward forward, Backward backward) {
    Tensor<T> y = Tensor<T>::uninitialized(y_shape);
    const bool has_bias = b.defined();
    forward(y.data(), x.value().data(), w.value().data(), has_bias ? b.value().data() : nullptr);
    std::vector<Var<T>> parents{x, w};
    if (has_bias) parents.push_back(b);
    return Var<T>::from_op(std::move(y), op, std::move(parents), [=](Node<T>& self) {
        backward(self.parent_grad(0), self.parent_grad(1), has_bias ? self.parent_grad(2) : nullptr,
                 self.grad.data(), self.parents[0]->value.data(), self.parents[1]->value.data());
    });
}

}  // namespace detail

}  // namespace elbo
