#pragma once
// The reference kernels: linear, conv2d and conv_transpose2d, forward and backward, as the plain
// loops of their definitions (docs/gradients.md derives each backward from these loops). They take
// the same arguments as the fast kernels (linear.hpp, conv2d.hpp, conv_transpose2d.hpp), write
// the same outputs and accumulate the same gradients; they are written to be read, on one thread.
//
// The tests check every fast kernel against its reference on many shapes, and each reference
// against finite differences. Built with ELBO_REFERENCE_KERNELS=1 (CMake: -DELBO_REFERENCE_KERNELS=ON),
// the ops call these instead of the fast kernels (ops/common.hpp), so a training step can be
// followed in a debugger loop by loop.

#include <algorithm>
#include <cstdint>

#include "elbo/kernels/cpu/conv_shape.hpp"
#include "elbo/kernels/cpu/layer_activation.hpp"
#include "elbo/kernels/cpu/layer_assign.hpp"

#ifndef ELBO_REFERENCE_KERNELS
#define ELBO_REFERENCE_KERNELS 0
#endif

namespace elbo::kernels::reference {

// y = act(y) for the n values of y: max(y, 0) for ReLU, y or slope y for LeakyReLU (the layers'
// activation, layer_activation.hpp).
template <class T>
void activate(T* y, int64_t n, const Activation& act) {
    if (!act) return;
    const bool relu = act.kind == Activation::Kind::relu;
    for (int64_t i = 0; i < n; ++i) y[i] = y[i] > T(0) ? y[i] : relu ? T(0) : static_cast<T>(act.slope) * y[i];
}

// The n values of a gradient that the backward writes (=) rather than adds onto (layer_assign.hpp)
// start from zeros: the loops below add.
template <class T>
void start_from_zeros(T* g, int64_t n, bool assign) {
    if (g && assign) std::fill(g, g + n, T(0));
}

// ---- linear: y[n,o] = b[o] + Σ_i x[n,i] w[o,i].  docs/gradients.md#linear

// x [N, I], w [O, I], b [O] or null  ->  act(y [N, O])
template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O,
                    const Activation& act = {}) {
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < O; ++o) {
            T sum = b ? b[o] : T(0);
            for (int64_t i = 0; i < I; ++i) sum += x[n * I + i] * w[o * I + i];
            y[n * O + o] = sum;
        }
    reference::activate(y, N * O, act);
}

// Each term x[n,i] w[o,i] of y[n,o] sends dy[n,o] w[o,i] to x[n,i] and dy[n,o] x[n,i] to w[o,i];
// b[o] appears once in each y[n,o]. dx, dw, db accumulate (+=), from zeros where `assign` says; any
// may be null.
template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I, int64_t O,
                     const Assign& assign = {}) {
    start_from_zeros(dx, N * I, assign.dx);
    start_from_zeros(dw, O * I, assign.dw);
    start_from_zeros(db, O, assign.db);
    for (int64_t n = 0; n < N; ++n)
        for (int64_t o = 0; o < O; ++o) {
            const T g = dy[n * O + o];
            if (db) db[o] += g;
            for (int64_t i = 0; i < I; ++i) {
                if (dx) dx[n * I + i] += g * w[o * I + i];
                if (dw) dw[o * I + i] += g * x[n * I + i];
            }
        }
}

// ---- conv2d: y[n,o,oh,ow] = b[o] + Σ_{c,r,t} w[o,c,r,t] x[n, c, oh·s − p + r·d, ow·s − p + t·d],
// terms whose input position falls outside the image (in the padding) left out.
// docs/gradients.md#conv2d

// Where output (oh, ow) reads kernel tap (r, t): the input row and column, and whether they are inside.
struct Tap {
    int64_t h, w;
    bool inside;
};
inline Tap tap(const Conv2dShape& s, int64_t oh, int64_t ow, int64_t r, int64_t t) {
    const int64_t h = oh * s.stride - s.padding + r * s.dilation, w = ow * s.stride - s.padding + t * s.dilation;
    return {h, w, h >= 0 && h < s.H && w >= 0 && w < s.W};
}

// x [N, C, H, W], w [O, C, kh, kw], b [O] or null  ->  act(y [N, O, Ho, Wo])
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const Conv2dShape& s, const Activation& act = {}) {
    for (int64_t n = 0; n < s.N; ++n)
        for (int64_t o = 0; o < s.O; ++o)
            for (int64_t oh = 0; oh < s.Ho; ++oh)
                for (int64_t ow = 0; ow < s.Wo; ++ow) {
                    T sum = b ? b[o] : T(0);
                    for (int64_t c = 0; c < s.C; ++c)
                        for (int64_t r = 0; r < s.kh; ++r)
                            for (int64_t t = 0; t < s.kw; ++t) {
                                const Tap at = tap(s, oh, ow, r, t);
                                if (at.inside)
                                    sum += w[((o * s.C + c) * s.kh + r) * s.kw + t] *
                                           x[((n * s.C + c) * s.H + at.h) * s.W + at.w];
                            }
                    y[((n * s.O + o) * s.Ho + oh) * s.Wo + ow] = sum;
                }
    reference::activate(y, s.N * s.O * s.Ho * s.Wo, act);
}

// The same loops, each term w·x sending dy·x to w and dy·w to x. dx, dw, db accumulate
// (+=), from zeros where `assign` says; any may be null.
template <class T>
void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const Conv2dShape& s,
                     const Assign& assign = {}) {
    start_from_zeros(dx, s.N * s.C * s.H * s.W, assign.dx);
    start_from_zeros(dw, s.O * s.K(), assign.dw);
    start_from_zeros(db, s.O, assign.db);
    for (int64_t n = 0; n < s.N; ++n)
        for (int64_t o = 0; o < s.O; ++o)
            for (int64_t oh = 0; oh < s.Ho; ++oh)
                for (int64_t ow = 0; ow < s.Wo; ++ow) {
                    const T g = dy[((n * s.O + o) * s.Ho + oh) * s.Wo + ow];
                    if (db) db[o] += g;
                    for (int64_t c = 0; c < s.C; ++c)
                        for (int64_t r = 0; r < s.kh; ++r)
                            for (int64_t t = 0; t < s.kw; ++t) {
                                const Tap at = tap(s, oh, ow, r, t);
                                if (!at.inside) continue;
                                const int64_t wi = ((o * s.C + c) * s.kh + r) * s.kw + t;
                                const int64_t xi = ((n * s.C + c) * s.H + at.h) * s.W + at.w;
                                if (dw) dw[wi] += g * x[xi];
                                if (dx) dx[xi] += g * w[wi];
                            }
                }
}

// ---- conv_transpose2d: every input element scatters itself times the kernel onto the output,
// y[n, co, h·s − p + r·d, w·s − p + t·d] += x[n,ci,h,w] w[ci,co,r,t], onto b[co]; what lands
// outside the output is dropped. docs/gradients.md#conv-transpose2d
//
// `s` is the shape of the convolution it is the adjoint of, as the fast kernel takes it: that
// convolution's input is this one's output (C = Co channels, H x W = Ho x Wo) and its output is
// this one's input (O = Ci channels, Ho x Wo = H x W). So an input position (h, w) is that
// convolution's output position, and tap() finds where it lands.

// x [N, Ci, H, W], w [Ci, Co, kh, kw], b [Co] or null  ->  act(y [N, Co, Ho, Wo])
template <class T>
void conv_transpose2d_forward(T* y, const T* x, const T* w, const T* b, const Conv2dShape& s,
                              const Activation& act = {}) {
    const int64_t Ci = s.O, Co = s.C, H = s.Ho, W = s.Wo, Ho = s.H, Wo = s.W;
    for (int64_t n = 0; n < s.N; ++n)
        for (int64_t co = 0; co < Co; ++co)
            for (int64_t i = 0; i < Ho * Wo; ++i) y[(n * Co + co) * Ho * Wo + i] = b ? b[co] : T(0);
    for (int64_t n = 0; n < s.N; ++n)
        for (int64_t ci = 0; ci < Ci; ++ci)
            for (int64_t h = 0; h < H; ++h)
                for (int64_t v = 0; v < W; ++v)
                    for (int64_t co = 0; co < Co; ++co)
                        for (int64_t r = 0; r < s.kh; ++r)
                            for (int64_t t = 0; t < s.kw; ++t) {
                                const Tap at = tap(s, h, v, r, t);
                                if (at.inside)
                                    y[((n * Co + co) * Ho + at.h) * Wo + at.w] +=
                                        x[((n * Ci + ci) * H + h) * W + v] * w[((ci * Co + co) * s.kh + r) * s.kw + t];
                            }
    reference::activate(y, s.N * s.C * s.H * s.W, act);
}

// The same loops, each term x·w sending dy·w to x and dy·x to w; b[co] reaches every output
// position of channel co. dx, dw, db accumulate (+=), from zeros where `assign` says; any may be null.
template <class T>
void conv_transpose2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const Conv2dShape& s,
                               const Assign& assign = {}) {
    const int64_t Ci = s.O, Co = s.C, H = s.Ho, W = s.Wo, Ho = s.H, Wo = s.W;
    start_from_zeros(dx, s.N * Ci * H * W, assign.dx);
    start_from_zeros(dw, Ci * Co * s.kh * s.kw, assign.dw);
    start_from_zeros(db, Co, assign.db);
    if (db)
        for (int64_t n = 0; n < s.N; ++n)
            for (int64_t co = 0; co < Co; ++co)
                for (int64_t i = 0; i < Ho * Wo; ++i) db[co] += dy[(n * Co + co) * Ho * Wo + i];
    for (int64_t n = 0; n < s.N; ++n)
        for (int64_t ci = 0; ci < Ci; ++ci)
            for (int64_t h = 0; h < H; ++h)
                for (int64_t v = 0; v < W; ++v)
                    for (int64_t co = 0; co < Co; ++co)
                        for (int64_t r = 0; r < s.kh; ++r)
                            for (int64_t t = 0; t < s.kw; ++t) {
                                const Tap at = tap(s, h, v, r, t);
                                if (!at.inside) continue;
                                const T g = dy[((n * Co + co) * Ho + at.h) * Wo + at.w];
                                const int64_t xi = ((n * Ci + ci) * H + h) * W + v;
                                const int64_t wi = ((ci * Co + co) * s.kh + r) * s.kw + t;
                                if (dx) dx[xi] += g * w[wi];
                                if (dw) dw[wi] += g * x[xi];
                            }
}

}  // namespace elbo::kernels::reference
