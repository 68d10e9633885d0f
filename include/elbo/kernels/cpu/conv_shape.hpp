#pragma once
// The sizes of one 2-D convolution, shared by the CPU kernels and their CUDA twins (cuda/kernels.hpp).

#include <cstdint>

namespace elbo::kernels {

// Input [N, C, H, W] to output [N, O, Ho, Wo] through a kernel [O, C, kh, kw]. Ho and Wo are given,
// not derived, so that a transposed convolution (whose output_padding adds rows the formula does not
// see) can reuse it.
struct Conv2dShape {
    int64_t N, C, H, W;     // input
    int64_t O, Ho, Wo;      // output channels and image
    int64_t kh, kw;         // kernel
    int64_t stride, padding, dilation;

    // The patch matrix im2col(x) is K x P (kernels/cpu/im2col.hpp).
    int64_t K() const { return C * kh * kw; }
    int64_t P() const { return N * Ho * Wo; }
};

}  // namespace elbo::kernels
