#pragma once
// cuBLAS for the module: one handle, its errors as elbo::Error, and the two products the layers use.
//
// cuBLAS is column-major, and a row-major matrix M [r, c] is, to it, the column-major M^T with
// leading dimension c. So each product a caller writes row-major is handed over transposed: the
// comments at the calls give both.

#include <cublas_v2.h>

#include "check.cuh"

namespace elbo::cuda::detail {

inline void check_cublas(cublasStatus_t s, const char* call, const char* file, int line) {
    if (s != CUBLAS_STATUS_SUCCESS)
        throw Error(str("cuBLAS: ", call, " failed with ", cublasGetStatusName(s), " (", cublasGetStatusString(s),
                        ") at ", file, ":", line));
}

}  // namespace elbo::cuda::detail

#define ELBO_CUBLAS_CHECK(call) ::elbo::cuda::detail::check_cublas((call), #call, __FILE__, __LINE__)

namespace elbo::cuda::detail {

// One handle for the process, on the default stream, in full FP32 (no TF32: the CPU twin is float).
inline cublasHandle_t blas() {
    static cublasHandle_t h = [] {
        cublasHandle_t created = nullptr;
        ELBO_CUBLAS_CHECK(cublasCreate(&created));
        ELBO_CUBLAS_CHECK(cublasSetMathMode(created, CUBLAS_DEFAULT_MATH));
        return created;
    }();
    return h;
}

inline cublasOperation_t op(bool transposed) { return transposed ? CUBLAS_OP_T : CUBLAS_OP_N; }

// C (m x n) = beta C, for a product with an empty inner dimension, which cuBLAS refuses (its leading
// dimensions would be 0).
inline void scale(int64_t m, int64_t n, float beta, float* c, int64_t ldc) {
    if (beta == 1.0f) return;
    launch(m * n, [=] __device__(int64_t i) {
        float& v = c[i % m + i / m * ldc];
        v = beta == 0.0f ? 0.0f : beta * v;
    });
}

// C (m x n) = op(A) op(B) + beta C, all column-major, alpha 1.
inline void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) return scale(m, n, beta, c, ldc);
    const float one = 1.0f;
    ELBO_CUBLAS_CHECK(cublasSgemm_64(blas(), op(ta), op(tb), m, n, k, &one, a, lda, b, ldb, &beta, c, ldc));
}

// The same for `count` products at once, the i-th with A + i*stride_a, B + i*stride_b, C + i*stride_c.
inline void sgemm_batched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                          int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                          int64_t ldc, int64_t stride_c, int64_t count) {
    if (m == 0 || n == 0 || count == 0) return;
    if (k == 0) {
        for (int64_t i = 0; i < count; ++i) scale(m, n, beta, c + i * stride_c, ldc);
        return;
    }
    const float one = 1.0f;
    ELBO_CUBLAS_CHECK(cublasSgemmStridedBatched_64(blas(), op(ta), op(tb), m, n, k, &one, a, lda, stride_a, b, ldb,
                                                   stride_b, &beta, c, ldc, stride_c, count));
}

}  // namespace elbo::cuda::detail
