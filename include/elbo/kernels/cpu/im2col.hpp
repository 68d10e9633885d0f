#pragma once
// im2col and col2im: the patches of a convolution as the columns of one matrix.
//
// For a convolution with input x [N, C, H, W] and output [N, O, Ho, Wo], the patch matrix `cols`
// is column-major K x P with K = C*kh*kw and P = N*Ho*Wo: column p = (n, oh, ow) holds, contiguous,
// the K input values that output position sees (zero where the window hangs over the padding),
// ordered k = (c, i, j) like the weight's [C, kh, kw]. A convolution is then one GEMM over the whole
// batch. col2im is im2col's adjoint: it adds each column back onto the input positions it came from.

#include <cstdint>

#include "elbo/kernels/cpu/common.hpp"

namespace elbo::kernels {

// The sizes of one 2-D convolution, input to output. Ho and Wo are given, not derived, so that a
// transposed convolution (whose output_padding adds rows the formula does not see) can reuse it.
struct Conv2dShape {
    int64_t N, C, H, W;     // input
    int64_t O, Ho, Wo;      // output channels and image
    int64_t kh, kw;         // kernel
    int64_t stride, padding, dilation;

    int64_t K() const { return C * kh * kw; }
    int64_t P() const { return N * Ho * Wo; }
};

// cols [K, P] column-major  <-  x [N, C, H, W]
template <class T>
void im2col(T* cols, const T* x, const Conv2dShape& s) {
    const int64_t K = s.K();
#pragma omp parallel for collapse(2) schedule(static) if (s.P() * K >= parallel_grain)
    for (int64_t n = 0; n < s.N; ++n) {
        for (int64_t oh = 0; oh < s.Ho; ++oh) {
            for (int64_t ow = 0; ow < s.Wo; ++ow) {
                T* col = cols + ((n * s.Ho + oh) * s.Wo + ow) * K;
                const int64_t h0 = oh * s.stride - s.padding, w0 = ow * s.stride - s.padding;
                for (int64_t c = 0; c < s.C; ++c) {
                    const T* plane = x + (n * s.C + c) * s.H * s.W;
                    for (int64_t i = 0; i < s.kh; ++i) {
                        const int64_t h = h0 + i * s.dilation;
                        const bool row_inside = h >= 0 && h < s.H;
                        for (int64_t j = 0; j < s.kw; ++j) {
                            const int64_t w = w0 + j * s.dilation;
                            *col++ = row_inside && w >= 0 && w < s.W ? plane[h * s.W + w] : T(0);
                        }
                    }
                }
            }
        }
    }
}

// x [N, C, H, W] += col2im(cols [K, P]). Parallel over the input planes (n, c): each thread writes
// only its own plane, so no two threads add into the same element.
template <class T>
void col2im(T* x, const T* cols, const Conv2dShape& s) {
    const int64_t K = s.K();
#pragma omp parallel for collapse(2) schedule(static) if (s.P() * K >= parallel_grain)
    for (int64_t n = 0; n < s.N; ++n) {
        for (int64_t c = 0; c < s.C; ++c) {
            T* plane = x + (n * s.C + c) * s.H * s.W;
            for (int64_t oh = 0; oh < s.Ho; ++oh) {
                for (int64_t ow = 0; ow < s.Wo; ++ow) {
                    const T* col = cols + ((n * s.Ho + oh) * s.Wo + ow) * K + c * s.kh * s.kw;
                    const int64_t h0 = oh * s.stride - s.padding, w0 = ow * s.stride - s.padding;
                    for (int64_t i = 0; i < s.kh; ++i) {
                        const int64_t h = h0 + i * s.dilation;
                        if (h < 0 || h >= s.H) continue;
                        for (int64_t j = 0; j < s.kw; ++j) {
                            const int64_t w = w0 + j * s.dilation;
                            if (w >= 0 && w < s.W) plane[h * s.W + w] += col[i * s.kw + j];
                        }
                    }
                }
            }
        }
    }
}

}  // namespace elbo::kernels
