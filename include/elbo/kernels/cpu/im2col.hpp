#pragma once
// The patches of a convolution as the columns of one matrix: im2col, and its adjoint col2im.
//
// For a convolution with input x [N, C, H, W] and output [N, O, Ho, Wo], the patch matrix
// im2col(x) is K x P with K = C*kh*kw and P = N*Ho*Wo: column p = (n, oh, ow) holds the K input
// values that output position sees (zero where the window hangs over the padding), ordered
// k = (c, i, j) like the weight's [C, kh, kw]. A convolution is then one GEMM over the whole batch.
//
// The forward pass and the weight gradient never store that matrix: Patches and
// PatchesTransposed hand it to the GEMM, which packs its panels straight from the image. The input
// gradient does store one, `cols` (row-major [K, P]: row k holds one kernel offset's value for every
// output position), which the GEMM writes and col2im adds back onto the input positions it came
// from.

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "elbo/kernels/cpu/conv_shape.hpp"
#include "elbo/kernels/cpu/gemm.hpp"

namespace elbo::kernels {

// The patch matrix im2col(x) [K, P] as a GEMM operand (B), never stored: the GEMM's packing
// reads each panel straight from the image. The same work as im2col, but written into a panel that
// lives in cache instead of a matrix of K*P values in memory and read back from there.
template <class T>
struct Patches {
    const T* x;
    Conv2dShape s;
};

// Its transpose im2col(x)^T [P, K], for the weight gradient dW = dY im2col(x)^T.
template <class T>
struct PatchesTransposed {
    const T* x;
    Conv2dShape s;
};

namespace im2col_detail {

// A run of output positions p .. p+len-1 in one image and one output row: their windows start at
// row h0 and at columns w0, w0 + stride, ...
struct Run {
    int64_t len, image, h0, w0;
};
inline Run run_at(const Conv2dShape& s, int64_t p, int64_t most) {
    const int64_t ow = p % s.Wo, row = p / s.Wo;
    return {std::min(most, s.Wo - ow), row / s.Ho, row % s.Ho * s.stride - s.padding, ow * s.stride - s.padding};
}

// What kernel offset k = (c, i, j) reads: the channel and the offsets into the window.
struct Offset {
    int64_t c, dh, dw;
};
inline Offset offset_at(const Conv2dShape& s, int64_t k) {
    return {k / (s.kh * s.kw), k / s.kw % s.kh * s.dilation, k % s.kw * s.dilation};
}

// The t in [lo, hi) for which column w0 + t*stride lies inside [0, W), of t in [0, len). Stride is
// the stride when known at compile time (its divisions then become shifts), else 0.
struct Inside {
    int64_t lo, hi;
};
template <int64_t Stride>
Inside inside(int64_t w0, int64_t stride, int64_t W, int64_t len) {
    if constexpr (Stride > 0) stride = Stride;
    const int64_t lo = std::clamp<int64_t>(w0 >= 0 ? 0 : (-w0 + stride - 1) / stride, 0, len);
    const int64_t hi = std::clamp<int64_t>(W - w0 <= 0 ? 0 : (W - w0 + stride - 1) / stride, lo, len);
    return {lo, hi};
}

// Calls f with the stride as a compile-time constant for the strides convolutions use most (1 and
// 2), so that the loops f runs are vectorized; any other stride comes as 0 and is read at run time.
template <class F>
void with_stride(int64_t stride, F f) {
    if (stride == 2)
        f(std::integral_constant<int64_t, 2>{});
    else if (stride == 1)
        f(std::integral_constant<int64_t, 1>{});
    else
        f(std::integral_constant<int64_t, 0>{});
}

// out[t * step] = src[w0 + t*stride] for t < len, zero where that column lies outside [0, W).
template <int64_t Stride, class T>
void gather_row(T* out, int64_t step, const T* src, int64_t W, int64_t len, int64_t w0, int64_t stride) {
    if constexpr (Stride > 0) stride = Stride;
    const auto [lo, hi] = inside<Stride>(w0, stride, W, len);
    for (int64_t t = 0; t < lo; ++t) out[t * step] = T(0);
    const T* in = src + w0 + lo * stride;
    T* o = out + lo * step;
    if (step == 1)
        for (int64_t i = 0; i < hi - lo; ++i) o[i] = in[i * stride];
    else
        for (int64_t i = 0; i < hi - lo; ++i) o[i * step] = in[i * stride];
    for (int64_t t = hi; t < len; ++t) out[t * step] = T(0);
}

// col2im's rows: for each of `count` rows (dst advancing by dst_step, rows by len),
// dst[w0 + t*stride] += row[t] for the t < len whose column lies inside [0, W). The columns inside
// are the same for every row, so they are found once.
template <int64_t Stride, class T>
void add_rows(T* dst, int64_t dst_step, const T* rows, int64_t count, int64_t W, int64_t len, int64_t w0,
              int64_t stride) {
    if constexpr (Stride > 0) stride = Stride;
    const auto [lo, hi] = inside<Stride>(w0, stride, W, len);
    for (int64_t r = 0; r < count; ++r, dst += dst_step, rows += len) {
        T* d = dst + w0;
        for (int64_t t = lo; t < hi; ++t) d[t * stride] += rows[t];
    }
}

// The same for two neighbouring kernel columns of a stride-2 convolution, whose input columns
// interleave: dst[w0 + 2t] += even[t] and dst[w0 + 2t + 1] += odd[t], added as one contiguous run
// where both columns are inside (it vectorizes; a stride-2 run of adds does not).
template <class T>
void add_rows_pair(T* dst, int64_t dst_step, const T* even, const T* odd, int64_t count, int64_t W,
                   int64_t len, int64_t w0) {
    const auto [lo_e, hi_e] = inside<2>(w0, 2, W, len);
    const auto [lo_o, hi_o] = inside<2>(w0 + 1, 2, W, len);
    const int64_t lo = std::max(lo_e, lo_o), hi = std::max(lo, std::min(hi_e, hi_o));
    for (int64_t r = 0; r < count; ++r, dst += dst_step, even += len, odd += len) {
        T* d = dst + w0;
#pragma omp simd
        for (int64_t t = lo; t < hi; ++t) {
            d[2 * t] += even[t];
            d[2 * t + 1] += odd[t];
        }
        // The ends, where only one of the two columns is inside.
        for (int64_t t = lo_e; t < std::min(lo, hi_e); ++t) d[2 * t] += even[t];
        for (int64_t t = std::max(hi, lo_e); t < hi_e; ++t) d[2 * t] += even[t];
        for (int64_t t = lo_o; t < std::min(lo, hi_o); ++t) d[2 * t + 1] += odd[t];
        for (int64_t t = std::max(hi, lo_o); t < hi_o; ++t) d[2 * t + 1] += odd[t];
    }
}

// out[t * step] = the values the run's windows see at kernel offset o, t < r.len (zero in the padding)
template <int64_t Stride, class T>
void gather(T* out, int64_t step, const T* x, const Conv2dShape& s, const Run& r, const Offset& o) {
    const int64_t h = r.h0 + o.dh;
    if (h < 0 || h >= s.H) {
        for (int64_t t = 0; t < r.len; ++t) out[t * step] = T(0);
        return;
    }
    const T* src = x + ((r.image * s.C + o.c) * s.H + h) * s.W;
    gather_row<Stride>(out, step, src, s.W, r.len, r.w0 + o.dw, s.stride);
}

}  // namespace im2col_detail

// x [N, C, H, W] += col2im(cols [K, P]), cols row-major. Parallel over the input planes (n, c): each
// thread writes only its own plane, so no two threads add into the same element.
template <class T>
void col2im(T* x, const T* cols, const Conv2dShape& s) {
    const int64_t P = s.P(), HoWo = s.Ho * s.Wo;
    // Stride 2, no dilation, kw even: kernel columns j and j + 1 land on interleaved columns.
    const bool pairs = s.stride == 2 && s.dilation == 1 && s.kw % 2 == 0;
    im2col_detail::with_stride(s.stride, [&](auto stride) {
#pragma omp parallel for collapse(2) schedule(static) if (P * s.K() >= parallel_grain)
        for (int64_t n = 0; n < s.N; ++n) {
            for (int64_t c = 0; c < s.C; ++c) {
                T* plane = x + (n * s.C + c) * s.H * s.W;
                for (int64_t i = 0; i < s.kh; ++i) {
                    // The output rows oh whose input row h = oh*stride - padding + i*dilation is inside.
                    const int64_t h0 = i * s.dilation - s.padding;
                    const auto [oh_lo, oh_hi] = im2col_detail::inside<stride()>(h0, s.stride, s.H, s.Ho);
                    T* dst = plane + (h0 + oh_lo * s.stride) * s.W;
                    for (int64_t j = 0; j < s.kw; j += pairs ? 2 : 1) {
                        const T* row = cols + ((c * s.kh + i) * s.kw + j) * P + n * HoWo + oh_lo * s.Wo;
                        if (pairs)
                            im2col_detail::add_rows_pair(dst, s.stride * s.W, row, row + P, oh_hi - oh_lo, s.W,
                                                         s.Wo, j - s.padding);
                        else
                            im2col_detail::add_rows<stride()>(dst, s.stride * s.W, row, oh_hi - oh_lo, s.W, s.Wo,
                                                              j * s.dilation - s.padding, s.stride);
                    }
                }
            }
        }
    });
}

namespace im2col_detail {

template <int64_t Stride, class T>
void pack_patches(T* dst, const Patches<T>& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
    constexpr int64_t NR = gemm_detail::Blocking<T>::NR, KC = gemm_detail::Blocking<T>::KC;
    Offset offsets[KC];
    for (int64_t k = 0; k < kc; ++k) offsets[k] = offset_at(b.s, k0 + k);
    for (int64_t q = 0; q * NR < nc; ++q, dst += kc * NR) {
        const int64_t columns = std::min(NR, nc - q * NR);
        Run runs[NR];
        int64_t count = 0;
        for (int64_t jj = 0; jj < columns; jj += runs[count++].len)
            runs[count] = run_at(b.s, j0 + q * NR + jj, columns - jj);
        for (int64_t k = 0; k < kc; ++k) {
            T* out = dst + k * NR;
            for (int64_t r = 0; r < count; out += runs[r++].len) gather<Stride>(out, 1, b.x, b.s, runs[r], offsets[k]);
            std::fill(out, dst + (k + 1) * NR, T(0));
        }
    }
}

template <int64_t Stride, class T>
void pack_patches_transposed(T* dst, const PatchesTransposed<T>& b, int64_t p0, int64_t pc, int64_t j0, int64_t nc) {
    constexpr int64_t NR = gemm_detail::Blocking<T>::NR, KC = gemm_detail::Blocking<T>::KC;
    const Conv2dShape& s = b.s;
    const int64_t stride = Stride > 0 ? Stride : s.stride;
    Run runs[KC];
    int64_t count = 0;
    for (int64_t p = 0; p < pc; p += runs[count++].len) runs[count] = run_at(s, p0 + p, pc - p);
    for (int64_t q = 0; q * NR < nc; ++q, dst += pc * NR) {
        const int64_t columns = std::min(NR, nc - q * NR);
        // The panel's kernel offsets, and where each reads relative to a window's corner.
        Offset offsets[NR];
        int64_t at[NR];
        int64_t dh_min = s.H, dh_max = -1, dw_min = s.W, dw_max = -1;
        for (int64_t jj = 0; jj < columns; ++jj) {
            const Offset o = offsets[jj] = offset_at(s, j0 + q * NR + jj);
            at[jj] = (o.c * s.H + o.dh) * s.W + o.dw;
            dh_min = std::min(dh_min, o.dh), dh_max = std::max(dh_max, o.dh);
            dw_min = std::min(dw_min, o.dw), dw_max = std::max(dw_max, o.dw);
        }
        T* out = dst;
        for (int64_t r = 0; r < count; out += runs[r++].len * NR) {
            const Run& run = runs[r];
            // The windows t in [lo, hi) of the run lie wholly inside the image for every offset of
            // the panel: no bounds to check there, a row of the panel is NR plain loads.
            int64_t lo = run.len, hi = run.len;
            if (run.h0 + dh_min >= 0 && run.h0 + dh_max < s.H) {
                const Inside in = inside<Stride>(run.w0 + dw_min, stride, s.W - (dw_max - dw_min), run.len);
                lo = in.lo, hi = in.hi;
            }
            const T* corner = b.x + run.image * s.C * s.H * s.W + run.h0 * s.W + run.w0;
            for (int64_t t = lo; t < hi; ++t) {
                const T* window = corner + t * stride;
                T* row = out + t * NR;
                for (int64_t jj = 0; jj < columns; ++jj) row[jj] = window[at[jj]];
                for (int64_t jj = columns; jj < NR; ++jj) row[jj] = T(0);
            }
            // The rest, at the image's border, value by value.
            for (int64_t t = 0; t < run.len; ++t) {
                if (t == lo) t = hi;
                if (t >= run.len) break;
                const Run one{1, run.image, run.h0, run.w0 + t * stride};
                for (int64_t jj = 0; jj < columns; ++jj) gather<Stride>(out + t * NR + jj, NR, b.x, s, one, offsets[jj]);
                for (int64_t jj = columns; jj < NR; ++jj) out[t * NR + jj] = T(0);
            }
        }
    }
}

}  // namespace im2col_detail

// B = im2col(x): rows k (kernel offsets), columns p (output positions).
template <class T>
void pack_panels(T* dst, const Patches<T>& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
    im2col_detail::with_stride(b.s.stride, [&](auto stride) {
        im2col_detail::pack_patches<stride()>(dst, b, k0, kc, j0, nc);
    });
}

// B = im2col(x)^T: rows p (output positions), columns k (kernel offsets).
template <class T>
void pack_panels(T* dst, const PatchesTransposed<T>& b, int64_t p0, int64_t pc, int64_t j0, int64_t nc) {
    im2col_detail::with_stride(b.s.stride, [&](auto stride) {
        im2col_detail::pack_patches_transposed<stride()>(dst, b, p0, pc, j0, nc);
    });
}

}  // namespace elbo::kernels
