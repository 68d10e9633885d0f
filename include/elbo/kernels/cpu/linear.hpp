#pragma once
// linear: y = x w^T + b.  Derivation: docs/gradients.md#linear

#include <algorithm>

#include "elbo/kernels/cpu/activations.hpp"
#include "elbo/kernels/cpu/gemm.hpp"
#include "elbo/kernels/cpu/layer_assign.hpp"
#include "elbo/kernels/cpu/reduce.hpp"

namespace elbo::kernels {

// x [N, I], w [O, I], b [O] or null  ->  y [N, O], then act(y) (layer_activation.hpp) while y
// is in cache (the discriminator's 64 x 1000: 250 KiB)
template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O,
                    const Activation& act = {}) {
    if (b)
        for (int64_t n = 0; n < N; ++n) std::copy(b, b + O, y + n * O);
    if (broadcasts_a(row_major(w, O, I), N))  // y^T = w x^T, w read in place
        gemm_broadcast_a(transposed(y, N, O), row_major(w, O, I), transposed(x, N, I), b != nullptr);
    else
        gemm(row_major(y, N, O), row_major(x, N, I), transposed(w, O, I), /*accumulate=*/b != nullptr);
    activate(y, N * O, act);
}

// dx [N, I] += dy w;  dw [O, I] += dy^T x;  db [O] += sum_n dy; each written (=) instead where
// `assign` says (layer_assign.hpp). Any of dx, dw, db may be null.
template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I,
                     int64_t O, const Assign& assign = {}) {
    if (dx) gemm(row_major(dx, N, I), row_major(dy, N, O), row_major(w, O, I), !assign.dx);
    if (dw) gemm(row_major(dw, O, I), transposed(dy, N, O), row_major(x, N, I), !assign.dw);
    if (db) channel_sum_grad(db, dy, N, O, 1, assign.db);
}

}  // namespace elbo::kernels
