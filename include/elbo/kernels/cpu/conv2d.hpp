#pragma once
// conv2d through im2col + one GEMM over the whole batch.  Derivation: docs/gradients.md#conv2d
//
// With cols = im2col(x) [K, P] and the weight as a matrix Wm [O, K], the output as a matrix
// Y [O, P] is Wm cols. Y's columns run over (n, oh, ow), so Y is [O, N, Ho*Wo] and is moved to the
// NCHW layout [N, O, Ho*Wo] (adding the bias on the way). The three building blocks below serve
// conv_transpose2d too, which is this convolution run backwards.

#include "elbo/kernels/cpu/im2col.hpp"

namespace elbo::kernels {

// y [N, O, HW] (= or +=) m [O, N*HW] (+ b [O] when b is not null)
template <class T>
void rows_to_nchw(T* y, const T* m, const T* b, bool accumulate, int64_t N, int64_t O, int64_t HW) {
#pragma omp parallel for collapse(2) schedule(static) if (N * O * HW >= parallel_grain)
    for (int64_t n = 0; n < N; ++n) {
        for (int64_t o = 0; o < O; ++o) {
            T* dst = y + (n * O + o) * HW;
            const T* src = m + (o * N + n) * HW;
            const T bias = b ? b[o] : T(0);
            if (accumulate)
                for (int64_t i = 0; i < HW; ++i) dst[i] += src[i] + bias;
            else
                for (int64_t i = 0; i < HW; ++i) dst[i] = src[i] + bias;
        }
    }
}

// m [O, N*HW] = y [N, O, HW]
template <class T>
void nchw_to_rows(T* m, const T* y, int64_t N, int64_t O, int64_t HW) {
#pragma omp parallel for collapse(2) schedule(static) if (N * O * HW >= parallel_grain)
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < O; ++o)
            std::copy(y + (n * O + o) * HW, y + (n * O + o + 1) * HW, m + (o * N + n) * HW);
}

// y [N, O, Ho, Wo] (= or +=) conv(x [N, C, H, W], w [O, C, kh, kw]) (+ b [O] when not null)
template <class T>
void conv2d_apply(T* y, const T* x, const T* w, const T* b, bool accumulate, const Conv2dShape& s) {
    const int64_t K = s.K(), P = s.P();
    T* cols = scratch<T>(Scratch::cols, K * P);
    T* m = scratch<T>(Scratch::rows, s.O * P);
    im2col(cols, x, s);
    MapRow<T>(m, s.O, P).noalias() = MapConstRow<T>(w, s.O, K) * MapConstCol<T>(cols, K, P);
    rows_to_nchw(y, m, b, accumulate, s.N, s.O, s.Ho * s.Wo);
}

// dx [N, C, H, W] += the convolution's input gradient for dy [N, O, Ho, Wo]: col2im(Wm^T dY)
template <class T>
void conv2d_input_grad(T* dx, const T* dy, const T* w, const Conv2dShape& s) {
    const int64_t K = s.K(), P = s.P();
    T* m = scratch<T>(Scratch::rows, s.O * P);
    T* cols = scratch<T>(Scratch::cols, K * P);
    nchw_to_rows(m, dy, s.N, s.O, s.Ho * s.Wo);
    MapCol<T>(cols, K, P).noalias() = MapConstRow<T>(w, s.O, K).transpose() * MapConstRow<T>(m, s.O, P);
    col2im(dx, cols, s);
}

// dw [O, C, kh, kw] += dY im2col(x)^T, with dY = dy [N, O, Ho, Wo] as a matrix [O, P]
template <class T>
void conv2d_weight_grad(T* dw, const T* dy, const T* x, const Conv2dShape& s) {
    const int64_t K = s.K(), P = s.P();
    T* m = scratch<T>(Scratch::rows, s.O * P);
    T* cols = scratch<T>(Scratch::cols, K * P);
    nchw_to_rows(m, dy, s.N, s.O, s.Ho * s.Wo);
    im2col(cols, x, s);
    MapRow<T>(dw, s.O, K).noalias() += MapConstRow<T>(m, s.O, P) * MapConstCol<T>(cols, K, P).transpose();
}

// db [O] += the sum of dy [N, O, HW] over n and the image
template <class T>
void channel_sum_grad(T* db, const T* dy, int64_t N, int64_t O, int64_t HW) {
    for (int64_t o = 0; o < O; ++o) {
        double s = 0.0;
        for (int64_t n = 0; n < N; ++n) {
            const T* p = dy + (n * O + o) * HW;
            for (int64_t i = 0; i < HW; ++i) s += p[i];
        }
        db[o] += static_cast<T>(s);
    }
}

// x [N, C, H, W], w [O, C, kh, kw], b [O] or null  ->  y [N, O, Ho, Wo]
// Ho = (H + 2*padding - dilation*(kh-1) - 1) / stride + 1, likewise Wo.
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const Conv2dShape& s) {
    conv2d_apply(y, x, w, b, /*accumulate=*/false, s);
}

// dx, dw, db accumulate (+=); any of them may be null when not needed.
template <class T>
void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const Conv2dShape& s) {
    if (db) channel_sum_grad(db, dy, s.N, s.O, s.Ho * s.Wo);
    if (dw) conv2d_weight_grad(dw, dy, x, s);
    if (dx) conv2d_input_grad(dx, dy, w, s);
}

}  // namespace elbo::kernels
