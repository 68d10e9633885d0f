#pragma once
// add, sub, mul, div with broadcasting, and the operators + - * / on Vars and scalars.

#include <algorithm>

#include "elbo/kernels/cpu/elementwise.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

// The broadcast of two shapes, aligned at their last axes: each pair of sizes must be equal or
// contain a 1.
inline kernels::BroadcastShape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
    const int64_t rank = std::max(a.rank(), b.rank());
    kernels::BroadcastShape s;
    s.dims.assign(static_cast<size_t>(rank), 1);
    s.a_strides.assign(static_cast<size_t>(rank), 0);
    s.b_strides.assign(static_cast<size_t>(rank), 0);
    int64_t stride_a = 1, stride_b = 1;
    for (int64_t d = rank - 1; d >= 0; --d) {
        const int64_t ia = d - (rank - a.rank()), ib = d - (rank - b.rank());
        const int64_t sa = ia >= 0 ? a[ia] : 1, sb = ib >= 0 ? b[ib] : 1;
        check(sa == sb || sa == 1 || sb == 1, op, "shapes ", a, " and ", b,
              " cannot be broadcast together (sizes ", sa, " and ", sb, " at axis ", d - rank, ")");
        const size_t k = static_cast<size_t>(d);
        s.dims[k] = sa == 1 ? sb : sa;
        s.a_strides[k] = sa == 1 ? 0 : stride_a;
        s.b_strides[k] = sb == 1 ? 0 : stride_b;
        stride_a *= sa;
        stride_b *= sb;
    }
    return s;
}

namespace detail {

// A constant scalar (shape [], no gradient) on the CPU joins an operand on the GPU, as PyTorch lets
// a CPU scalar meet a CUDA tensor: `x * 2.0f` works on either device. It is made there by a fill
// kernel (Tensor::full), not copied, so the GPU's queue runs on.
template <class T>
Var<T> beside(const Var<T>& v, const Var<T>& other) {
    const bool movable = v.value().device() == Device::cpu && v.numel() == 1 && v.shape().rank() == 0 &&
                         !v.requires_grad() && other.value().device() != Device::cpu;
    return movable ? Var<T>(Tensor<T>::full(Shape{}, v.value().item(), other.value().device())) : v;
}

}  // namespace detail

template <class T>
Var<T> binary(kernels::BinaryOp kind, const Var<T>& a_in, const Var<T>& b_in) {
    const char* op = kernels::to_string(kind);
    const Var<T> a = detail::beside(a_in, b_in), b = detail::beside(b_in, a_in);
    const Device device = require_one_device<T>(op, {&a, &b});
    const kernels::BroadcastShape s = broadcast_shapes(op, a.shape(), b.shape());
    const Shape out_shape(s.dims);
    Tensor<T> y = Tensor<T>::uninitialized(out_shape, device);
    ELBO_KERNEL(device, binary_forward, y.data(), a.value().data(), b.value().data(), s, kind);
    const bool a_full = a.shape() == out_shape, b_full = b.shape() == out_shape;
    return Var<T>::from_op(std::move(y), op, {a, b}, [=](Node<T>& self) {
        ELBO_KERNEL(device, binary_backward, self.parent_grad(0), self.parent_grad(1), self.grad.data(),
                    self.parents[0]->value.data(), self.parents[1]->value.data(), s, kind, a_full, b_full);
    });
}

template <class T> Var<T> add(const Var<T>& a, const Var<T>& b) { return binary(kernels::BinaryOp::add, a, b); }
template <class T> Var<T> sub(const Var<T>& a, const Var<T>& b) { return binary(kernels::BinaryOp::sub, a, b); }
template <class T> Var<T> mul(const Var<T>& a, const Var<T>& b) { return binary(kernels::BinaryOp::mul, a, b); }
template <class T> Var<T> div(const Var<T>& a, const Var<T>& b) { return binary(kernels::BinaryOp::div, a, b); }

// A constant scalar (shape []) that broadcasts against anything.
template <class T>
Var<T> constant(T value) {
    return Var<T>(Tensor<T>::scalar(value));
}

template <class T> Var<T> operator+(const Var<T>& a, const Var<T>& b) { return add(a, b); }
template <class T> Var<T> operator-(const Var<T>& a, const Var<T>& b) { return sub(a, b); }
template <class T> Var<T> operator*(const Var<T>& a, const Var<T>& b) { return mul(a, b); }
template <class T> Var<T> operator/(const Var<T>& a, const Var<T>& b) { return div(a, b); }
template <class T> Var<T> operator-(const Var<T>& a) { return mul(a, constant(T(-1))); }

template <class T> Var<T> operator+(const Var<T>& a, T s) { return add(a, constant(s)); }
template <class T> Var<T> operator-(const Var<T>& a, T s) { return sub(a, constant(s)); }
template <class T> Var<T> operator*(const Var<T>& a, T s) { return mul(a, constant(s)); }
template <class T> Var<T> operator/(const Var<T>& a, T s) { return div(a, constant(s)); }
template <class T> Var<T> operator+(T s, const Var<T>& a) { return add(constant(s), a); }
template <class T> Var<T> operator-(T s, const Var<T>& a) { return sub(constant(s), a); }
template <class T> Var<T> operator*(T s, const Var<T>& a) { return mul(constant(s), a); }
template <class T> Var<T> operator/(T s, const Var<T>& a) { return div(constant(s), a); }

}  // namespace elbo
