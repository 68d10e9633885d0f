#pragma once
// A row gather done separately for every column: FactorVAE's permute_dims.
// Derivation: docs/gradients.md#permute-dims
//
// y[n, d] = z[index[d, n], d]. With each index[d, :] a permutation of the batch, every latent
// column is shuffled across the batch on its own, which breaks the dependence between latents
// while keeping each one's marginal.

#include "elbo/kernels/cpu/common.hpp"

namespace elbo::kernels {

// z [N, D], index [D, N] (rows of z)  ->  y [N, D]
template <class T>
void gather_columns_forward(T* y, const T* z, const int64_t* index, int64_t N, int64_t D) {
    for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d) y[n * D + d] = z[index[d * N + n] * D + d];
}

// dz [index[d, n], d] += dy [n, d]
template <class T>
void gather_columns_backward(T* dz, const T* dy, const int64_t* index, int64_t N, int64_t D) {
    for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d) dz[index[d * N + n] * D + d] += dy[n * D + d];
}

}  // namespace elbo::kernels
