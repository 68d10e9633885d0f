// linear on the GPU, the twin of kernels/cpu/linear.hpp: y = x w^T + b by cuBLAS, and the bias
// gradient as per-channel sums (also the convolutions' bias gradient, channel_sum_grad).
// Derivation: docs/gradients.md#linear
//
// x [N, I], w [O, I] and y [N, O] arrive at cuBLAS as x^T, w^T and y^T (blas.cuh), and each product
// below is the transpose of the row-major one in its comment.

#include "blas.cuh"

namespace elbo::cuda {

using detail::sgemm;

void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t I, int64_t O,
                    const kernels::Activation& act) {
    if (b) detail::launch(N * O, [=] __device__(int64_t i) { y[i] = b[i % O]; });
    // y [N, O] = x w^T:  y^T [O, N] = (w^T)^T x^T
    sgemm(true, false, O, N, I, w, I, x, I, b ? 1.0f : 0.0f, y, O);
    activate(y, N * O, act);
}

void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t N,
                     int64_t I, int64_t O, const kernels::Assign& assign) {
    // dx [N, I] += dy w (= with assign.dx):  dx^T [I, N] += w^T dy^T
    if (dx) sgemm(false, false, I, N, O, w, I, dy, O, assign.dx ? 0.0f : 1.0f, dx, I);
    // dw [O, I] += dy^T x (= with assign.dw):  dw^T [I, O] += x^T dy
    if (dw) sgemm(false, true, I, O, N, x, I, dy, O, assign.dw ? 0.0f : 1.0f, dw, I);
    if (db) channel_sum_grad(db, dy, N, O, 1, assign.db);
}

// db[o] += (= with assign) the sum of dy [N, O, HW] over n and the image.
void channel_sum_grad(float* db, const float* dy, int64_t N, int64_t O, int64_t HW, bool assign) {
    if (assign) fill(db, O, 0.0f);
    detail::add_sums(db, O, N * HW, [=] __device__(int64_t o, int64_t j) {
        return static_cast<double>(dy[(j / HW * O + o) * HW + j % HW]);
    });
}

}  // namespace elbo::cuda
