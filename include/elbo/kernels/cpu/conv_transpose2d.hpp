#pragma once
// conv_transpose2d: the adjoint of conv2d.  Derivation: docs/gradients.md#conv-transpose2d
//
// A transposed convolution with weight w [Ci, Co, kh, kw] maps x [N, Ci, H, W] to
// y [N, Co, Ho, Wo] exactly as conv2d with the same w, read as [O = Ci, C = Co, kh, kw], maps its
// output gradient to its input gradient. So its forward is conv2d's input gradient, its input
// gradient is conv2d's forward, and its weight gradient is conv2d's weight gradient with the roles
// of input and output gradient exchanged. `s` below is that underlying conv2d's shape: input
// y-sized (C = Co, H = Ho, W = Wo), output x-sized (O = Ci, Ho = H, Wo = W).
// Ho = (H - 1)*stride - 2*padding + dilation*(kh - 1) + output_padding + 1.

#include "elbo/kernels/cpu/conv2d.hpp"

namespace elbo::kernels {

// x [N, Ci, H, W], w [Ci, Co, kh, kw], b [Co] or null  ->  act(y [N, Co, Ho, Wo])
template <class T>
void conv_transpose2d_forward(T* y, const T* x, const T* w, const T* b, const Conv2dShape& s,
                              const Activation& act = {}) {
    conv2d_input_grad(y, x, w, s, ChannelStart<T>{.set = true, .bias = b}, act);
}

// dx, dw, db accumulate (+=), each written (=) instead where `assign` says (layer_assign.hpp); any
// of them may be null when not needed.
template <class T>
void conv_transpose2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w,
                               const Conv2dShape& s, const Assign& assign = {}) {
    if (db) channel_sum_grad(db, dy, s.N, s.C, s.H * s.W, assign.db);
    // dx = conv2d(dy, w) and dw = conv2d's weight gradient with x as its output gradient: both
    // products of dy's patches, split once.
    patch_products<T>(dx, w, nullptr, /*accumulate=*/!assign.dx, dw, x, dy, s, {}, assign.dw);
}

}  // namespace elbo::kernels
