#pragma once
// The patches of a convolution as the columns of one matrix: im2col, and its adjoint col2im.
//
// For a convolution with input x [N, C, H, W] and output [N, O, Ho, Wo], the patch matrix
// im2col(x) is K x P with K = C*kh*kw and P = N*Ho*Wo: column p = (n, oh, ow) holds the K input
// values that output position sees (zero where the window hangs over the padding), ordered
// k = (c, i, j) like the weight's [C, kh, kw]. A convolution is then one GEMM over the whole batch.
//
// The forward pass and the weight gradient never store that matrix: they read it from a copy of
// the image that is padded and split by phase (below), where every kernel offset's values for a run
// of output positions lie next to each other. Patches hands it to the GEMM as its B, whose packing
// copies panels from there (or whose micro-kernel reads them in place); the weight gradient reads
// it in place (conv2d.hpp). The input gradient does store one, `cols` (row-major [K, P]:
// row k holds one kernel offset's value for every output position), which the GEMM writes and
// col2im adds back onto the input positions it came from.

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "elbo/kernels/cpu/conv_shape.hpp"
#include "elbo/kernels/cpu/gemm.hpp"

namespace elbo::kernels {

namespace im2col_detail {

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

// Where the two neighbouring kernel columns of a stride-2 convolution lie inside [0, W): the t of
// [0, len) whose column w0 + 2t is inside ([lo_e, hi_e)), those whose w0 + 2t + 1 is ([lo_o,
// hi_o)), and those where both are ([lo, hi)), for add_rows_pair and split_row_pair.
struct InsidePair {
    int64_t lo_e, hi_e, lo_o, hi_o, lo, hi;
};
inline InsidePair inside_pair(int64_t w0, int64_t W, int64_t len) {
    const auto [lo_e, hi_e] = inside<2>(w0, 2, W, len);
    const auto [lo_o, hi_o] = inside<2>(w0 + 1, 2, W, len);
    const int64_t lo = std::max(lo_e, lo_o);
    return {lo_e, hi_e, lo_o, hi_o, lo, std::max(lo, std::min(hi_e, hi_o))};
}

// The same for two neighbouring kernel columns of a stride-2 convolution, whose input columns
// interleave: dst[w0 + 2t] += even[t] and dst[w0 + 2t + 1] += odd[t], added as one contiguous run
// where both columns are inside (it vectorizes; a stride-2 run of adds does not).
template <class T>
void add_rows_pair(T* dst, int64_t dst_step, const T* even, const T* odd, int64_t count, int64_t W,
                   int64_t len, int64_t w0) {
    const auto [lo_e, hi_e, lo_o, hi_o, lo, hi] = inside_pair(w0, W, len);
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

}  // namespace im2col_detail

// Where a sum onto an input-sized tensor starts: from what it holds (+=), or, with `set`, each
// plane of channel c from bias[c] (0 without a bias), set by the loop that adds onto the plane,
// while it is in cache, rather than by a pass of its own over the tensor first (a transposed
// convolution's forward pass: its output starts from its bias).
template <class T>
struct ChannelStart {
    bool set = false;
    const T* bias = nullptr;

    void apply(T* plane, int64_t c, int64_t size) const {
        if (set) std::fill(plane, plane + size, bias ? bias[c] : T(0));
    }
};

namespace im2col_detail {

// The input padded and split by phase. Output position (oh, ow) of a stride-s convolution sees, at
// kernel offset (i, j), the padded input's value at row s*oh + i*dilation, column s*ow + j*dilation.
// Split the padded image into its s x s phases, phase (a, b) holding rows a, a+s, ... and columns
// b, b+s, ... (a plane of PH x PW values), and that value is in phase (i*dilation % s,
// j*dilation % s) at row oh + i*dilation / s, column ow + j*dilation / s: the values one kernel
// offset reads for a row of output positions are contiguous, and every window lies inside, so
// packing a panel is copies of runs, with no bounds to check and no stride. Making the copy costs
// one pass over the input; gathering straight from the image (strided scalar reads, the borders
// value by value) cost about half of a forward convolution's time on the kim-mnih layers.
//
// The split input is [N, C, s, s, PH, PW]; element (k, p) of the patch matrix is
// split[base(p) + offset(k)].
template <class T>
struct SplitInput {
    const T* split;
    Conv2dShape s;
    int64_t PH, PW;

    // The values of one image: its C x s x s phase planes.
    int64_t image() const { return s.C * s.stride * s.stride * PH * PW; }
    int64_t base(int64_t p) const {
        const int64_t HoWo = s.Ho * s.Wo, n = p / HoWo, q = p % HoWo;
        return n * image() + q / s.Wo * PW + q % s.Wo;
    }
    int64_t offset(int64_t k) const {
        const int64_t c = k / (s.kh * s.kw), di = k / s.kw % s.kh * s.dilation, dj = k % s.kw * s.dilation;
        return ((c * s.stride + di % s.stride) * s.stride + dj % s.stride) * PH * PW + di / s.stride * PW +
               dj / s.stride;
    }
};

// A phase plane's rows and columns: output row oh reads rows oh .. oh + (kh-1)*dilation/s of it.
inline int64_t split_rows(const Conv2dShape& s) { return s.Ho + (s.kh - 1) * s.dilation / s.stride; }
inline int64_t split_cols(const Conv2dShape& s) { return s.Wo + (s.kw - 1) * s.dilation / s.stride; }
inline int64_t split_size(const Conv2dShape& s) {
    return s.N * s.C * s.stride * s.stride * split_rows(s) * split_cols(s);
}

// f(i, known) for every input plane i = n*C + c, the planes shared among the threads, with the
// stride as with_stride gives it (`known`): the loop of split_input and of its adjoint add_split.
template <class F>
void for_each_plane(const Conv2dShape& s, F f) {
    with_stride(s.stride, [&](auto known) {
#pragma omp parallel for collapse(2) schedule(static) if (split_size(s) >= parallel_grain)
        for (int64_t n = 0; n < s.N; ++n)
            for (int64_t c = 0; c < s.C; ++c) f(n * s.C + c, known);
    });
}

// One row of two neighbouring phases of a stride-2 split: even[t] = row[w0 + 2t] and
// odd[t] = row[w0 + 2t + 1] for the t < len whose column lies inside [0, W) (the others are left
// as they are). The row is read once, as one contiguous run where both columns are inside (it
// vectorizes; a stride-2 gather per phase did not). split_input's rows at S = 2; add_rows_pair is
// its adjoint.
template <class T>
void split_row_pair(T* even, T* odd, const T* row, int64_t W, int64_t len, int64_t w0) {
    const auto [lo_e, hi_e, lo_o, hi_o, lo, hi] = inside_pair(w0, W, len);
    const T* r = row + w0;
#pragma omp simd
    for (int64_t t = lo; t < hi; ++t) {
        even[t] = r[2 * t];
        odd[t] = r[2 * t + 1];
    }
    // The ends, where only one of the two columns is inside.
    for (int64_t t = lo_e; t < std::min(lo, hi_e); ++t) even[t] = r[2 * t];
    for (int64_t t = std::max(hi, lo_e); t < hi_e; ++t) even[t] = r[2 * t];
    for (int64_t t = lo_o; t < std::min(lo, hi_o); ++t) odd[t] = r[2 * t + 1];
    for (int64_t t = std::max(hi, lo_o); t < hi_o; ++t) odd[t] = r[2 * t + 1];
}

// Writes x [N, C, H, W] split by phase into out (split_size(s) values), zero in the padding. The
// rows and columns of each phase that lie inside the image are found once per phase, not per row;
// at stride 2 each input row is read once for both of its phases (split_row_pair), which took
// kim-mnih's conv2-4 from 15 / 32 / 119 us to 11 / 19 / 73 a group (1 thread, AVX-512).
template <class T>
SplitInput<T> split_input(T* out, const T* x, const Conv2dShape& s) {
    const int64_t PH = split_rows(s), PW = split_cols(s);
    for_each_plane(s, [&](int64_t i, auto known) {
        const int64_t S = known() > 0 ? known() : s.stride;
        const T* plane = x + i * s.H * s.W;
        T* dst = out + i * S * S * PH * PW;
        std::fill(dst, dst + S * S * PH * PW, T(0));
        for (int64_t a = 0; a < S; ++a, dst += S * PH * PW) {
            // phase rows u in [u_lo, u_hi) read input row u*S + a - padding
            const auto [u_lo, u_hi] = inside<known()>(a - s.padding, S, s.H, PH);
            for (int64_t u = u_lo; u < u_hi; ++u) {
                const T* row = plane + (u * S + a - s.padding) * s.W;
                if constexpr (known() == 2) {
                    split_row_pair(dst + u * PW, dst + PH * PW + u * PW, row, s.W, PW, -s.padding);
                } else {
                    for (int64_t b = 0; b < S; ++b) {
                        const auto [lo, hi] = inside<known()>(b - s.padding, S, s.W, PW);
                        T* d = dst + b * PH * PW + u * PW;
                        for (int64_t v = lo; v < hi; ++v) d[v] = row[v * S + b - s.padding];
                    }
                }
            }
        }
    });
    return {out, s, PH, PW};
}

// One input plane (n, c) [H, W] (+= or, as `start` says, =) its split values `phases` (S*S phase
// planes of PH x PW, laid out as split_input writes them) at the input positions they were copied
// from, the padding's dropped. Known: the stride when known at compile time, else 0.
template <int64_t Known, class T>
void add_phases(T* plane, const T* phases, const Conv2dShape& s, int64_t c, const ChannelStart<T>& start) {
    const int64_t S = Known > 0 ? Known : s.stride, PH = split_rows(s), PW = split_cols(s);
    start.apply(plane, c, s.H * s.W);
    for (int64_t a = 0; a < S; ++a) {
        // phase rows u in [u_lo, u_hi) hold input row u*S + a - padding
        const auto [u_lo, u_hi] = inside<Known>(a - s.padding, S, s.H, PH);
        T* dst = plane + (u_lo * S + a - s.padding) * s.W;
        const T* rows = phases + a * S * PH * PW + u_lo * PW;
        if (S == 2)
            add_rows_pair(dst, S * s.W, rows, rows + PH * PW, u_hi - u_lo, s.W, PW, -s.padding);
        else
            for (int64_t b = 0; b < S; ++b)
                add_rows<Known>(dst, S * s.W, rows + b * PH * PW, u_hi - u_lo, s.W, PW, b - s.padding, S);
    }
}

// x [N, C, H, W] (+= or, as `start` says, =) the split values g (split_size(s), laid out as
// split_input writes them): split_input's adjoint. Parallel over the input planes, each written by
// one thread.
template <class T>
void add_split(T* x, const T* g, const Conv2dShape& s, const ChannelStart<T>& start = {}) {
    const int64_t phases = s.stride * s.stride * split_rows(s) * split_cols(s);
    for_each_plane(s, [&](int64_t i, auto known) {
        add_phases<known()>(x + i * s.H * s.W, g + i * phases, s, i % s.C, start);
    });
}

}  // namespace im2col_detail

// x [N, C, H, W] (+= or, as `start` says, =) col2im(cols [K, P]), cols row-major: im2col's adjoint,
// as the adjoint of how the patches are read (from the input split by phase, above). Plane by
// plane, each kernel offset's row of cols is added, Ho rows of Wo contiguous values, onto the
// plane's phases (in cache, where that offset's values were read from), and the phases are then
// added onto the plane once (add_phases). Adding each offset's row onto the plane itself instead,
// a strided read-modify-write of every input value kh*kw / (S*S) times, left the seed's conv3 input
// gradient at 5.3-5.6 ms against 4.3-4.8 now (batch 64, 2 threads, AVX-512). Parallel over the
// input planes (n, c): each thread writes only its own plane, so no two threads add into the same
// element.
template <class T>
void col2im(T* x, const T* cols, const Conv2dShape& s, const ChannelStart<T>& start = {}) {
    const int64_t P = s.P(), HoWo = s.Ho * s.Wo, S = s.stride, PH = im2col_detail::split_rows(s),
                  PW = im2col_detail::split_cols(s);
    im2col_detail::for_each_plane(s, [&](int64_t i, auto known) {
        const int64_t n = i / s.C, c = i % s.C;
        T* phases = scratch<T, 4>(S * S * PH * PW);  // this thread's
        std::fill(phases, phases + S * S * PH * PW, T(0));
        for (int64_t ki = 0; ki < s.kh; ++ki)
            for (int64_t kj = 0; kj < s.kw; ++kj) {
                const int64_t di = ki * s.dilation, dj = kj * s.dilation;
                T* dst = phases + ((di % S) * S + dj % S) * PH * PW + di / S * PW + dj / S;
                const T* row = cols + ((c * s.kh + ki) * s.kw + kj) * P + n * HoWo;
                for (int64_t oh = 0; oh < s.Ho; ++oh, dst += PW, row += s.Wo)
#pragma omp simd
                    for (int64_t ow = 0; ow < s.Wo; ++ow) dst[ow] += row[ow];
            }
        im2col_detail::add_phases<known()>(x + i * s.H * s.W, phases, s, c, start);
    });
}

// The patch matrix im2col(x) [K, P] as a GEMM operand (B), never stored: the GEMM's packing copies
// each panel from the split input. The same work as im2col, but written into a panel that lives in
// cache instead of a matrix of K*P values in memory and read back from there.
template <class T>
struct Patches {
    im2col_detail::SplitInput<T> in;  // split_patches(x, s)
};

// x split by phase into scratch memory of the calling thread (its slot 1), valid until its next call.
template <class T>
im2col_detail::SplitInput<T> split_patches(const T* x, const Conv2dShape& s) {
    return im2col_detail::split_input(scratch<T, 1>(im2col_detail::split_size(s)), x, s);
}

// B = im2col(x): rows k (kernel offsets), columns p (output positions). Each panel's columns are
// runs along output rows, whose values at one kernel offset are contiguous in the split input.
template <class T>
void pack_panels(T* dst, const Patches<T>& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
    constexpr int64_t NR = gemm_detail::Blocking<T>::NR;
    const auto& in = b.in;
    int64_t offsets[gemm_detail::Blocking<T>::KC_large];
    for (int64_t k = 0; k < kc; ++k) offsets[k] = in.offset(k0 + k);
    for (int64_t q = 0; q * NR < nc; ++q, dst += kc * NR) {
        const int64_t p0 = j0 + q * NR, columns = std::min(NR, nc - q * NR);
        int64_t length[NR], base[NR], runs = 0;
        for (int64_t t = 0; t < columns; t += length[runs++]) {
            length[runs] = std::min(columns - t, in.s.Wo - (p0 + t) % in.s.Wo);
            base[runs] = in.base(p0 + t);
        }
        for (int64_t k = 0; k < kc; ++k) {
            T* out = dst + k * NR;
            for (int64_t r = 0; r < runs; out += length[r++]) {
                const T* src = in.split + base[r] + offsets[k];
                for (int64_t t = 0; t < length[r]; ++t) out[t] = src[t];
            }
            std::fill(out, dst + (k + 1) * NR, T(0));
        }
    }
}

// The micro-kernel reads the patches in place (gemm.hpp) where each half of a micro-panel's columns,
// NR/2 output positions, lies along one output row: at every kernel offset its values are then
// contiguous in the split input. On AVX-512 that is output rows of 16 or 32 positions (kim-mnih's
// conv1 and conv2 and the transposed convolutions' input gradients at those sizes); packing them
// was a quarter of conv2's forward time.
template <class T>
bool reads_in_place(const Patches<T>& b, int64_t j0, int64_t nc) {
    constexpr int64_t NR = gemm_detail::Blocking<T>::NR;
    return b.in.s.Wo % (NR / 2) == 0 && j0 % (NR / 2) == 0 && nc % NR == 0;
}
template <class T>
int64_t row_offset(const Patches<T>& b, int64_t k) {
    return b.in.offset(k);
}
template <class T>
const T* column_start(const Patches<T>& b, int64_t j) {
    return b.in.split + b.in.base(j);
}

}  // namespace elbo::kernels
