#pragma once
// A stand-in for cuda/src/blas.cuh (see check.cuh here): cuBLAS's column-major SGEMM, as its
// documentation defines it, by the definition. C (m x n) = op(A) op(B) + beta C; op(A)(i, l) is
// a[i + l lda], or a[l + i lda] transposed; likewise B. Like blas.cuh, an empty inner dimension only
// scales C; otherwise the leading dimensions must be what cuBLAS accepts, or the test fails.

#include "check.cuh"

namespace elbo::cuda::detail {

inline void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                  int64_t ldb, float beta, float* c, int64_t ldc) {
    if (m == 0 || n == 0) return;
    if (k > 0) {
        const int64_t a_rows = ta ? k : m, b_rows = tb ? n : k;
        check(lda >= a_rows && ldb >= b_rows && ldc >= m, "cublasSgemm", "invalid leading dimensions: lda ", lda,
              " for ", a_rows, " rows, ldb ", ldb, " for ", b_rows, ", ldc ", ldc, " for ", m);
    }
    for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < m; ++i) {
            double s = 0.0;
            for (int64_t l = 0; l < k; ++l)
                s += static_cast<double>(ta ? a[l + i * lda] : a[i + l * lda]) * (tb ? b[j + l * ldb] : b[l + j * ldb]);
            float& out = c[i + j * ldc];
            out = static_cast<float>(s + (beta != 0.0f ? beta * out : 0.0f));
        }
}

inline void sgemm_batched(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                          int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta, float* c,
                          int64_t ldc, int64_t stride_c, int64_t count) {
    for (int64_t q = 0; q < count; ++q)
        sgemm(ta, tb, m, n, k, a + q * stride_a, lda, b + q * stride_b, ldb, beta, c + q * stride_c, ldc);
}

}  // namespace elbo::cuda::detail
