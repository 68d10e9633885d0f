#pragma once
// reshape, flatten and concat: ops that move no arithmetic, only elements.

#include <algorithm>

#include "elbo/kernels/cpu/elementwise.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

// A view of x with another shape of as many elements (one size may be -1). The gradient flows
// back reshaped.
template <class T>
Var<T> reshape(const Var<T>& x, std::vector<int64_t> dims) {
    const Device device = require_one_device<T>("reshape", {&x});
    Tensor<T> y = x.value().reshape(std::move(dims));
    return Var<T>::from_op(std::move(y), "reshape", {x}, [device](Node<T>& self) {
        bool assign = false;
        if (T* dx = self.parent_grad_to_write(0, assign))
            ELBO_KERNEL(device, pass_grad, dx, self.grad.data(), self.grad.numel(), assign);
    });
}

// Collapses the axes from start_axis on into one: [N, C, H, W] -> [N, C*H*W] by default.
template <class T>
Var<T> flatten(const Var<T>& x, int64_t start_axis = 1) {
    const Shape& s = x.shape();
    const int64_t a = s.axis(start_axis, "flatten");
    std::vector<int64_t> dims(s.dims().begin(), s.dims().begin() + a);
    dims.push_back(s.span(a, s.rank()));
    return reshape(x, dims);
}

// Stacks tensors of equal shapes but for the first axis along that axis (the batch).
template <class T>
Var<T> concat(const std::vector<Var<T>>& parts) {
    const char* op = "concat";
    check(!parts.empty(), op, "expected at least one tensor, got none");
    Device device = Device::cpu;
    for (const Var<T>& p : parts) device = require_one_device<T>(op, {&parts[0], &p});
    const Shape& first = parts[0].shape();
    check(first.rank() >= 1, op, "expected tensors of rank >= 1, got ", first);
    int64_t rows = 0;
    for (size_t i = 0; i < parts.size(); ++i) {
        const Shape& s = parts[i].shape();
        bool same = s.rank() == first.rank();
        for (int64_t d = 1; same && d < s.rank(); ++d) same = s[d] == first[d];
        check(same, op, "tensor ", i, " has shape ", s, ", expected the shape of tensor 0 ", first,
              " in every axis but the first");
        rows += s[0];
    }
    std::vector<int64_t> dims = first.dims();
    dims[0] = rows;
    Tensor<T> y = Tensor<T>::uninitialized(Shape(dims), device);
    std::vector<int64_t> offsets;
    const int64_t row_size = first.span(1, first.rank());
    int64_t row = 0;
    for (const Var<T>& p : parts) {
        offsets.push_back(row * row_size);
        y.slice(row, row + p.shape()[0]).copy_(p.value());
        row += p.shape()[0];
    }
    return Var<T>::from_op(std::move(y), op, parts, [offsets, device](Node<T>& self) {
        for (size_t i = 0; i < self.parents.size(); ++i) {
            bool assign = false;
            if (T* dp = self.parent_grad_to_write(i, assign))
                ELBO_KERNEL(device, pass_grad, dp, self.grad.data() + offsets[i], self.parents[i]->value.numel(),
                            assign);
        }
    });
}

}  // namespace elbo
