// conv2d and conv_transpose2d on the GPU, the twins of kernels/cpu/conv2d.hpp and
// conv_transpose2d.hpp: the patches as a matrix (im2col) and cuBLAS.
// Derivation: docs/gradients.md#conv2d and #conv-transpose2d
//
// The CPU kernels never store the patch matrix (their GEMM packs it from the image); these do, as
// kernels/cpu/im2col.hpp defines it: cols [K, P] row-major, K = C*kh*kw, column p = (n, oh, ow).
// With L = Ho*Wo, image n's columns are cols[:, n*L .. n*L + L), so "cols_n" below is a block of
// cols with leading dimension P, and a product per image is one strided batched GEMM. At most
// `chunk_values` patch values exist at a time: larger batches go a chunk of images at a time.

#include <algorithm>

#include "blas.cuh"

namespace elbo::cuda {

using kernels::Conv2dShape;

namespace {

// At most this many patch values at a time: 256 MiB. (tests/cuda/emulated sets it small, to run
// batches of several chunks.)
#ifndef ELBO_CUDA_CONV_CHUNK_VALUES
#define ELBO_CUDA_CONV_CHUNK_VALUES (int64_t{1} << 26)
#endif
constexpr int64_t chunk_values = ELBO_CUDA_CONV_CHUNK_VALUES;

// f(c, first) for chunks of the batch: c is s for the chunk's images, first its first image.
template <class F>
void by_chunks(const Conv2dShape& s, F f) {
    const int64_t per_image = std::max<int64_t>(s.K() * s.Ho * s.Wo, 1);
    const int64_t step = std::max<int64_t>(chunk_values / per_image, 1);
    for (int64_t n = 0; n < s.N; n += step) {
        Conv2dShape c = s;
        c.N = std::min(step, s.N - n);
        f(c, n);
    }
}

// cols [K, P] = im2col(x [N, C, H, W]): zero where a window hangs over the padding.
void im2col(float* cols, const float* x, const Conv2dShape& s) {
    const int64_t P = s.P(), L = s.Ho * s.Wo;
    detail::launch(s.K() * P, [=] __device__(int64_t e) {
        const int64_t k = e / P, p = e % P;
        const int64_t h = p % L / s.Wo * s.stride - s.padding + k / s.kw % s.kh * s.dilation;
        const int64_t w = p % s.Wo * s.stride - s.padding + k % s.kw * s.dilation;
        const int64_t c = k / (s.kh * s.kw), n = p / L;
        cols[e] = h >= 0 && h < s.H && w >= 0 && w < s.W ? x[((n * s.C + c) * s.H + h) * s.W + w] : 0.0f;
    });
}

// dx [N, C, H, W] += col2im(cols): each input position adds every patch entry that read it, in the
// CPU's order (kernel offsets i, then j). A thread per input position gathers its own sum: no
// atomics, the same result every run.
void col2im(float* dx, const float* cols, const Conv2dShape& s) {
    const int64_t P = s.P();
    detail::launch(s.N * s.C * s.H * s.W, [=] __device__(int64_t e) {
        const int64_t w = e % s.W, h = e / s.W % s.H, c = e / (s.H * s.W) % s.C, n = e / (s.C * s.H * s.W);
        float v = dx[e];
        for (int64_t i = 0; i < s.kh; ++i) {
            const int64_t rh = h + s.padding - i * s.dilation;  // oh * stride, if this offset reaches h
            if (rh < 0 || rh % s.stride != 0 || rh / s.stride >= s.Ho) continue;
            for (int64_t j = 0; j < s.kw; ++j) {
                const int64_t rw = w + s.padding - j * s.dilation;
                if (rw < 0 || rw % s.stride != 0 || rw / s.stride >= s.Wo) continue;
                v += cols[((c * s.kh + i) * s.kw + j) * P + (n * s.Ho + rh / s.stride) * s.Wo + rw / s.stride];
            }
        }
        dx[e] = v;
    });
}

// y [N, O, HW] = b [O], each channel's plane filled with its bias.
void fill_channels(float* y, const float* b, int64_t N, int64_t O, int64_t HW) {
    detail::launch(N * O * HW, [=] __device__(int64_t i) { y[i] = b[i / HW % O]; });
}

// y [N, O, Ho, Wo] (= or +=) conv(x, w): Y_n [O, L] = Wm [O, K] cols_n [K, L] for every image.
//   cuBLAS: Y_n^T [L, O] = cols_n^T [L, K] Wm^T [K, O]
void conv2d_apply(float* y, const float* x, const float* w, bool accumulate, const Conv2dShape& s) {
    by_chunks(s, [&](const Conv2dShape& c, int64_t first) {
        const int64_t K = c.K(), L = c.Ho * c.Wo, P = c.P();
        detail::Scratch<float> cols(K * P);
        im2col(cols.data, x + first * c.C * c.H * c.W, c);
        detail::sgemm_batched(false, false, L, c.O, K, cols.data, P, L, w, K, 0, accumulate ? 1.0f : 0.0f,
                              y + first * c.O * L, L, c.O * L, c.N);
    });
}

// dx [N, C, H, W] += col2im(Wm^T dY): cols_n [K, L] = Wm^T [K, O] dY_n [O, L] for every image.
//   cuBLAS: cols_n^T [L, K] = dY_n^T [L, O] Wm [O, K]
void conv2d_input_grad(float* dx, const float* dy, const float* w, const Conv2dShape& s) {
    by_chunks(s, [&](const Conv2dShape& c, int64_t first) {
        const int64_t K = c.K(), L = c.Ho * c.Wo, P = c.P();
        detail::Scratch<float> cols(K * P);
        detail::sgemm_batched(false, true, L, K, c.O, dy + first * c.O * L, L, c.O * L, w, K, 0, 0.0f, cols.data,
                              P, L, c.N);
        col2im(dx + first * c.C * c.H * c.W, cols.data, c);
    });
}

// dw [O, K] += (= with assign) dY [O, P] cols^T [P, K], with dY the output gradient [N, O, L] copied
// channels first (the sum runs over images and pixels together, which the NCHW layout does not hold
// as one matrix).
//   cuBLAS: dw^T [K, O] += (cols^T)^T dY^T
void conv2d_weight_grad(float* dw, const float* dy, const float* x, const Conv2dShape& s, bool assign) {
    if (assign) fill(dw, s.O * s.K(), 0.0f);  // the chunks add
    by_chunks(s, [&](const Conv2dShape& c, int64_t first) {
        const int64_t K = c.K(), L = c.Ho * c.Wo, P = c.P(), O = c.O;
        detail::Scratch<float> cols(K * P), g(O * P);
        im2col(cols.data, x + first * c.C * c.H * c.W, c);
        const float* dyc = dy + first * O * L;
        float* gd = g.data;
        detail::launch(O * P, [=] __device__(int64_t i) {
            const int64_t o = i / P, p = i % P;
            gd[i] = dyc[(p / L * O + o) * L + p % L];
        });
        detail::sgemm(true, false, K, O, P, cols.data, P, g.data, P, 1.0f, dw, K);
    });
}

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dShape& s,
                    const kernels::Activation& act) {
    if (b) fill_channels(y, b, s.N, s.O, s.Ho * s.Wo);
    conv2d_apply(y, x, w, /*accumulate=*/b != nullptr, s);
    activate(y, s.N * s.O * s.Ho * s.Wo, act);
}

void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                     const Conv2dShape& s, const kernels::Assign& assign) {
    if (db) channel_sum_grad(db, dy, s.N, s.O, s.Ho * s.Wo, assign.db);
    if (dw) conv2d_weight_grad(dw, dy, x, s, assign.dw);
    if (dx && assign.dx) fill(dx, s.N * s.C * s.H * s.W, 0.0f);  // col2im adds
    if (dx) conv2d_input_grad(dx, dy, w, s);
}

// As on the CPU, s is the underlying conv2d's shape: input y-sized, output x-sized.
void conv_transpose2d_forward(float* y, const float* x, const float* w, const float* b, const Conv2dShape& s,
                              const kernels::Activation& act) {
    if (b)
        fill_channels(y, b, s.N, s.C, s.H * s.W);
    else
        fill(y, s.N * s.C * s.H * s.W, 0.0f);
    conv2d_input_grad(y, x, w, s);
    activate(y, s.N * s.C * s.H * s.W, act);
}

void conv_transpose2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                               const Conv2dShape& s, const kernels::Assign& assign) {
    if (db) channel_sum_grad(db, dy, s.N, s.C, s.H * s.W, assign.db);
    if (dw) conv2d_weight_grad(dw, x, dy, s, assign.dw);
    if (dx) conv2d_apply(dx, dy, w, /*accumulate=*/!assign.dx, s);
}

}  // namespace elbo::cuda
