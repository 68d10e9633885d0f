#pragma once
// conv2d through im2col + one GEMM over the whole batch.  Derivation: docs/gradients.md#conv2d
//
// With cols = im2col(x) [K, P] and the weight as a matrix Wm [O, K], the output as a matrix
// Y [O, P] is Wm cols. Y's columns run over (n, oh, ow), and the GEMM reads and writes the NCHW
// tensor [N, O, Ho*Wo] as that matrix in place (channels_by_pixels), so no layout is ever copied.
// The three building blocks below serve conv_transpose2d too, which is this convolution run
// backwards.

#include "elbo/kernels/cpu/gemm.hpp"
#include "elbo/kernels/cpu/im2col.hpp"
#include "elbo/kernels/cpu/reduce.hpp"

namespace elbo::kernels {

// y [N, O, HW] = b [O], each channel's plane filled with its bias
template <class T>
void fill_channels(T* y, const T* b, int64_t N, int64_t O, int64_t HW) {
#pragma omp parallel for schedule(static) if (N * O * HW >= parallel_grain)
    for (int64_t i = 0; i < N * O; ++i) std::fill(y + i * HW, y + (i + 1) * HW, b[i % O]);
}

// y [N, O, Ho, Wo] (= or +=) conv(x [N, C, H, W], w [O, C, kh, kw])
template <class T>
void conv2d_apply(T* y, const T* x, const T* w, bool accumulate, const Conv2dShape& s) {
    gemm(channels_by_pixels(y, s.N, s.O, s.Ho * s.Wo), row_major(w, s.O, s.K()),
         Patches<T>{split_patches(x, s)}, accumulate);
}

// dx [N, C, H, W] += the convolution's input gradient for dy [N, O, Ho, Wo]: col2im(Wm^T dY).
// A few images at a time: their patch gradients (K x g*Ho*Wo, a few hundred KiB that stay in
// cache), then col2im onto their own input planes. g is the fewest images whose output pixels give
// the GEMM 256 columns (one image where it has that many): on small images (4x4 pixels) a GEMM per
// image would fill only half of each micro-tile's columns. The groups go to the threads; with fewer
// groups than threads, the GEMM and col2im share out each group instead. Either way every sum runs
// in the same order, since g depends on the shape alone.
template <class T>
void conv2d_input_grad(T* dx, const T* dy, const T* w, const Conv2dShape& s) {
    const int64_t K = s.K(), HoWo = s.Ho * s.Wo;
    const int64_t g = std::clamp<int64_t>(256 / std::max<int64_t>(HoWo, 1), 1, s.N);
    const int64_t groups = (s.N + g - 1) / g;
    auto one_group = [&](int64_t q) {
        Conv2dShape part = s;
        part.N = std::min(g, s.N - q * g);
        T* cols = scratch<T>(K * part.N * HoWo);
        gemm(row_major(cols, K, part.N * HoWo), transposed(w, s.O, K),
             channels_by_pixels(dy + q * g * s.O * HoWo, part.N, s.O, HoWo), false);
        col2im(dx + q * g * s.C * s.H * s.W, cols, part);
    };
    // Not one `parallel for ... if (...)`: a false `if` still opens a region, and the GEMM's team
    // inside it would be a nested one, started afresh while the outer threads spin.
    if (groups >= omp_get_max_threads() && s.P() * K >= parallel_grain) {
#pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < groups; ++q) one_group(q);
    } else {
        for (int64_t q = 0; q < groups; ++q) one_group(q);
    }
}

// dw [O, C, kh, kw] += dY im2col(x)^T, with dY = dy [N, O, Ho, Wo] as a matrix [O, P]
template <class T>
void conv2d_weight_grad(T* dw, const T* dy, const T* x, const Conv2dShape& s) {
    gemm(row_major(dw, s.O, s.K()), channels_by_pixels(dy, s.N, s.O, s.Ho * s.Wo),
         PatchesTransposed<T>{split_patches(x, s)}, true);
}

// x [N, C, H, W], w [O, C, kh, kw], b [O] or null  ->  y [N, O, Ho, Wo]
// Ho = (H + 2*padding - dilation*(kh-1) - 1) / stride + 1, likewise Wo.
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const Conv2dShape& s) {
    if (b) fill_channels(y, b, s.N, s.O, s.Ho * s.Wo);
    conv2d_apply(y, x, w, /*accumulate=*/b != nullptr, s);
}

// dx, dw, db accumulate (+=); any of them may be null when not needed.
template <class T>
void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const Conv2dShape& s) {
    if (db) channel_sum_grad(db, dy, s.N, s.O, s.Ho * s.Wo);
    if (dw) conv2d_weight_grad(dw, dy, x, s);
    if (dx) conv2d_input_grad(dx, dy, w, s);
}

}  // namespace elbo::kernels
