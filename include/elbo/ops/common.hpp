#pragma once
// What every op shares: the autograd types, the kernels, and the device check.

#include <initializer_list>

#include "elbo/autograd/backward.hpp"
#include "elbo/kernels/cpu/common.hpp"

namespace elbo {

// Every operand of an op must live on the CPU until the CUDA module is linked in.
template <class T>
void require_cpu(const char* op, std::initializer_list<const Var<T>*> operands) {
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

}  // namespace elbo
