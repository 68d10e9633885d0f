#pragma once
// conv2d through im2col + GEMM, a group of images at a time.  Derivation: docs/gradients.md#conv2d
//
// With cols = im2col(x) [K, P] and the weight as a matrix Wm [O, K], the output as a matrix
// Y [O, P] is Wm cols. Y's columns run over (n, oh, ow), and the GEMM reads and writes the NCHW
// tensor [N, O, Ho*Wo] as that matrix in place (channels_by_pixels), so no layout is ever copied.
// The building blocks below serve conv_transpose2d too, which is this convolution run backwards.

#include "elbo/kernels/cpu/activations.hpp"
#include "elbo/kernels/cpu/gemm.hpp"
#include "elbo/kernels/cpu/im2col.hpp"
#include "elbo/kernels/cpu/layer_assign.hpp"
#include "elbo/kernels/cpu/reduce.hpp"

namespace elbo::kernels {

// The batch in groups of `size` images, the fewest whose output pixels give a GEMM `columns`
// columns (one image where it has that many); the last group may hold fewer.
struct ImageGroups {
    int64_t size, count;
};
inline ImageGroups image_groups(const Conv2dShape& s, int64_t columns) {
    const int64_t size = std::clamp<int64_t>(columns / std::max<int64_t>(s.Ho * s.Wo, 1), 1, std::max<int64_t>(s.N, 1));
    return {size, (s.N + size - 1) / size};
}

// f(q, first image, the group's shape) for each group q. The groups go to the threads when there
// are enough of them to share; otherwise they run one after another, each GEMM sharing out its own
// work. Since the groups depend on the shape alone, and a GEMM's sums do not depend on how its work
// is shared, every sum runs in the same order for any number of threads.
//
// Why groups: a group's input, split by phase (split_patches), is a few hundred KiB that the thread
// that packs its patches has just written into its own cache. Split for the whole batch at once
// (several MiB on the kim-mnih layers), it had left the cache before the GEMM read it back.
template <class F>
void for_image_groups(const Conv2dShape& s, int64_t columns, F f) {
    const ImageGroups groups = image_groups(s, columns);
    auto one_group = [&](int64_t q) {
        Conv2dShape part = s;
        part.N = std::min(groups.size, s.N - q * groups.size);
        f(q, q * groups.size, part);
    };
    // Not one `parallel for ... if (...)`: a false `if` still opens a region, and the GEMM's team
    // inside it would be a nested one, started afresh while the outer threads spin.
    if (groups.count > 1 && groups.count >= omp_get_max_threads() && !omp_in_parallel() &&
        s.P() * s.K() >= parallel_grain) {
#pragma omp parallel for schedule(static)
        for (int64_t q = 0; q < groups.count; ++q) one_group(q);
    } else {
        for (int64_t q = 0; q < groups.count; ++q) one_group(q);
    }
}

// The GEMM columns of a group in the forward pass and the weight gradient: NC, one block of B.
inline constexpr int64_t conv_group_columns = 1024;

// The weight gradient's product for one image group, dw [O, K] = dY im2col(x)^T, two ways, neither
// of which packs the patches (the GEMM with im2col(x)^T packed as B did, for a product only O rows
// tall: 36-150 GFLOP/s on the kim-mnih and seed layers, batch 64, 2 threads, AVX-512):
//
// - By broadcasts (weight_grad_by_broadcast), as dw^T = im2col(x) dY^T: the GEMM's micro-kernel
//   with A's values broadcast straight from the split input, where a kernel offset's values along
//   an output row are contiguous, and dY^T packed once, NR channels a panel. Any shape; on those
//   layers 165-241 GFLOP/s from K = 48 up (conv2: 3.6 -> 2.3 ms).
// - Along rows (weight_grad_along_rows), where an output row holds whole packets (Wo a multiple of
//   the width): dY's row of channel o and the split input's row at kernel offset k are then both
//   contiguous, so a packet of each is loaded and multiplied lane by lane into an accumulator of its
//   own for (o, k), whose lanes are summed once, at the end; a tile of RO channels by RK offsets
//   keeps RO*RK accumulators and loads RO + RK packets for RO*RK multiply-adds. Nothing is packed,
//   which wins where the broadcasts' packing of dY^T serves few tiles of A (K < 2 MR: kim-mnih's
//   one-channel conv1, 0.64 -> 0.46 ms) or their panels of NR channels are mostly empty (O <= NR/2:
//   O = 5, K = 512, 2.3 -> 1.3 ms); it tops out near 150 GFLOP/s.
template <class T>
bool weight_grad_along_rows(const Conv2dShape& s) {
    using Bk = gemm_detail::Blocking<T>;
    return s.Wo % simd::Packet<T>::width == 0 && (s.K() < 2 * Bk::MR || 2 * s.O <= Bk::NR);
}

namespace conv_detail {

// out[o * ldo + r] = the dot products of dz[o] and x[r] (o < ro, r < rk) over `images` images of
// `rows` output rows of Wo values: image n's row h lies at dz[o] + n*dz_image + h*Wo and at
// x[r] + n*x_image + h*PW. Rows past ro or rk are computed from valid pointers and not stored.
template <class T, int RO, int RK>
void row_dots(T* out, int64_t ldo, int64_t ro, int64_t rk, const T* const* dz, const T* const* x, int64_t images,
              int64_t dz_image, int64_t x_image, int64_t rows, int64_t Wo, int64_t PW) {
    using S = simd::Packet<T>;
    using V = typename S::V;
    constexpr int64_t W = S::width;
    V acc[RO][RK];
#pragma GCC unroll 16
    for (int o = 0; o < RO; ++o)
#pragma GCC unroll 16
        for (int r = 0; r < RK; ++r) acc[o][r] = S::zero();
    for (int64_t n = 0; n < images; ++n)
        for (int64_t h = 0; h < rows; ++h) {
            const int64_t d_at = n * dz_image + h * Wo, x_at = n * x_image + h * PW;
            for (int64_t w = 0; w < Wo; w += W) {
                V xv[RK];
#pragma GCC unroll 16
                for (int r = 0; r < RK; ++r) xv[r] = S::load(x[r] + x_at + w);
#pragma GCC unroll 16
                for (int o = 0; o < RO; ++o) {
                    const V d = S::load(dz[o] + d_at + w);
#pragma GCC unroll 16
                    for (int r = 0; r < RK; ++r) acc[o][r] = S::fma(d, xv[r], acc[o][r]);
                }
            }
        }
    for (int64_t o = 0; o < ro; ++o)
        for (int64_t r = 0; r < rk; ++r) out[o * ldo + r] = S::sum(acc[o][r]);
}

// The tile dw[o0 + j, k0 + i] (i < mr, j < nr) of dw^T = im2col(x) dY^T by broadcasts: A = im2col(x)
// read in place, its row i (kernel offset k0 + i) along output row h of image n at
// a[i] + n*x_image + h*PW; B = dY^T packed, b[p*NR + j] = dY(o0 + j, p). The GEMM's micro-kernel,
// with A's values broadcast from the split input instead of from a packed panel.
template <class T>
void broadcast_tile(T* dw, int64_t K, int64_t k0, int64_t mr, int64_t o0, int64_t nr, const T* const* a, const T* b,
                    int64_t images, int64_t x_image, int64_t rows, int64_t Wo, int64_t PW) {
    using S = simd::Packet<T>;
    constexpr int W = S::width, MR = gemm_detail::Blocking<T>::MR;
    gemm_detail::Accumulators<T> c;
    gemm_detail::zero_tile<T>(c);
    for (int64_t n = 0; n < images; ++n)
        for (int64_t h = 0; h < rows; ++h, b += Wo * 2 * W) {
            const int64_t at = n * x_image + h * PW;
            gemm_detail::accumulate_tile<T>(Wo, [a, at](int64_t t, int i) { return a[i] + at + t; },
                                            gemm_detail::packed_panel(b), c);
        }
    alignas(64) T tile[MR * 2 * W];
    gemm_detail::store_accumulators<T>(c, tile);
    for (int64_t j = 0; j < nr; ++j)
        for (int64_t i = 0; i < mr; ++i) dw[(o0 + j) * K + k0 + i] = tile[i * 2 * W + j];
}

}  // namespace conv_detail

// dw [O, K] = dz [N, O, Ho, Wo] im2col(x)^T over the images of `in`, as dw^T = im2col(x) dY^T with
// im2col(x) broadcast from the split input (broadcast_tile) and dY^T packed once, NR channels a panel.
template <class T>
void weight_grad_by_broadcast(T* dw, const T* dz, const im2col_detail::SplitInput<T>& in, int64_t O) {
    constexpr int64_t MR = gemm_detail::Blocking<T>::MR, NR = gemm_detail::Blocking<T>::NR;
    const Conv2dShape& s = in.s;
    const int64_t K = s.K(), HoWo = s.Ho * s.Wo, P = s.P(), panels = (O + NR - 1) / NR, tiles = (K + MR - 1) / MR;
    // dY^T, panel q over all the group's positions: b[(q*P + p)*NR + j] = dY(q*NR + j, p); image by
    // image, as image n's dY^T [HoWo, O] is the transpose of its dz [O, HoWo].
    T* b = scratch<T>(panels * P * NR);
    for (int64_t q = 0; q < panels; ++q)
        for (int64_t n = 0; n < s.N; ++n)
            pack_panels(b + (q * P + n * HoWo) * NR, transposed(dz + n * O * HoWo, O, HoWo), 0, HoWo, q * NR,
                        std::min(NR, O - q * NR));
#pragma omp parallel for collapse(2) schedule(static) if (!omp_in_parallel() && O * K * P >= 4 * parallel_grain)
    for (int64_t q = 0; q < panels; ++q)
        for (int64_t t = 0; t < tiles; ++t) {
            const int64_t k0 = t * MR;
            const T* a[MR];
            for (int64_t i = 0; i < MR; ++i) a[i] = in.split + in.offset(std::min(k0 + i, K - 1));
            conv_detail::broadcast_tile(dw, K, k0, std::min(MR, K - k0), q * NR, std::min(NR, O - q * NR), a,
                                        b + q * P * NR, s.N, in.image(), s.Ho, s.Wo, in.PW);
        }
}

// dw [O, K] = dz [N, O, Ho, Wo] im2col(x)^T over the images of `in` (split_patches), in tiles of
// channels by kernel offsets; the tiles go to the threads unless the caller's threads share groups.
template <class T>
void weight_grad_along_rows(T* dw, const T* dz, const im2col_detail::SplitInput<T>& in, int64_t O) {
    // 16 accumulators, 4 + 1 packets in flight: 21 of AVX-512's and arm64's 32 registers; 8 + 3 of
    // SSE's and AVX2's 16.
    constexpr int RO = simd::registers >= 32 ? 4 : 2, RK = 4;
    const Conv2dShape& s = in.s;
    const int64_t K = s.K(), HoWo = s.Ho * s.Wo, tiles_o = (O + RO - 1) / RO, tiles_k = (K + RK - 1) / RK;
#pragma omp parallel for collapse(2) schedule(static) if (!omp_in_parallel() && O * K * s.P() >= 4 * parallel_grain)
    for (int64_t to = 0; to < tiles_o; ++to)
        for (int64_t tk = 0; tk < tiles_k; ++tk) {
            const int64_t o0 = to * RO, k0 = tk * RK;
            const T* dz_rows[RO];
            const T* x_rows[RK];
            for (int64_t o = 0; o < RO; ++o) dz_rows[o] = dz + std::min(o0 + o, O - 1) * HoWo;
            for (int64_t r = 0; r < RK; ++r) x_rows[r] = in.split + in.offset(std::min(k0 + r, K - 1));
            conv_detail::row_dots<T, RO, RK>(dw + o0 * K + k0, K, std::min<int64_t>(RO, O - o0),
                                              std::min<int64_t>(RK, K - k0), dz_rows, x_rows, s.N, O * HoWo, in.image(),
                                              s.Ho, s.Wo, in.PW);
        }
}

// y [N, O, Ho, Wo] (= or +=) one image group's convolution as y^T = im2col(x)^T W^T: the GEMM's
// micro-kernel with the patches' values broadcast straight from the split input (output position
// p's value at kernel offset k lies at base(p) + offset(k)) against W^T packed (wt: panels of NR
// channels over all of K, packed once per call), each tile of MR positions by NR channels summed
// over all of K and stored once. Where output rows are short (8 or 4 positions), the GEMM of
// W by the patches packs the patches, each packed value serving only O multiply-adds, and adds
// every tile to y once per KC offsets.
// Where it pays (kim-mnih's and the seed's layers, batch 64, 2 threads, AVX-512): over the GEMM
// with the patches packed (kim-mnih's conv4, 4 x 4 outputs: 1.17 -> 0.68 ms; conv3, 8 x 8:
// 1.37 -> 1.22) or even read in place (the seed's conv2 and conv3: 4.5 -> 4.2, 4.7 -> 4.2), given
// a deep K (its tiles are stored value by value, which at K = 16 took 5 times the GEMM's time) and
// channels for at least half a panel.
template <class T>
bool forward_broadcasts(const Conv2dShape& s) {
    return s.K() >= 256 && 2 * s.O > gemm_detail::Blocking<T>::NR;
}
template <class T>
void forward_by_broadcast(T* y, const T* bias, const T* wt, const im2col_detail::SplitInput<T>& in, int64_t O,
                          bool accumulate) {
    constexpr int64_t MR = gemm_detail::Blocking<T>::MR, NR = gemm_detail::Blocking<T>::NR;
    const Conv2dShape& s = in.s;
    const int64_t K = s.K(), P = s.P(), HoWo = s.Ho * s.Wo, tiles = (P + MR - 1) / MR, panels = (O + NR - 1) / NR;
    int64_t* offset = scratch<int64_t>(K);
    for (int64_t k = 0; k < K; ++k) offset[k] = in.offset(k);
#pragma omp parallel for collapse(2) schedule(static) if (!omp_in_parallel() && O * K * P >= 4 * parallel_grain)
    for (int64_t t = 0; t < tiles; ++t)
        for (int64_t q = 0; q < panels; ++q) {
            const T* at[MR];  // past the last position, the last again (computed, not stored)
            for (int64_t i = 0; i < MR; ++i) at[i] = in.split + in.base(std::min(t * MR + i, P - 1));
            alignas(64) T tile[MR * NR];
            gemm_detail::micro_kernel<T>(K, [&at, offset](int64_t k, int i) { return at[i] + offset[k]; },
                                         gemm_detail::packed_panel(wt + q * K * NR), tile);
            const int64_t channels = std::min(NR, O - q * NR);
            for (int64_t i = 0; i < std::min(MR, P - t * MR); ++i) {
                const int64_t p = t * MR + i;
                T* out = y + (p / HoWo * O + q * NR) * HoWo + p % HoWo;  // channel q*NR + j at out + j*HoWo
                for (int64_t j = 0; j < channels; ++j) {
                    T& e = out[j * HoWo];
                    e = accumulate ? e + tile[i * NR + j] : bias ? bias[q * NR + j] + tile[i * NR + j] : tile[i * NR + j];
                }
            }
        }
}

// The two products of the patches im2col(x), image group by image group, each group's input split
// once for both: y [N, O, Ho, Wo] (+= or, with a bias [O] or without, = bias +) conv(x [N, C, H, W],
// w [O, C, kh, kw]) where y is given, then act(y) on each group's output while it is in cache; and
// dw [O, C, kh, kw] += (= with dw_assign) dz im2col(x)^T where dw is given (dz [N, O, Ho, Wo] as a
// matrix [O, P]). A transposed convolution's backward pass asks for both of one input. The weight
// gradient's groups each make a partial product of their own, added to dw in the groups' order.
template <class T>
void patch_products(T* y, const T* w, const T* bias, bool accumulate, T* dw, const T* dz, const T* x,
                    const Conv2dShape& s, const Activation& act = {}, bool dw_assign = false) {
    const int64_t HoWo = s.Ho * s.Wo, OK = s.O * s.K(), groups = image_groups(s, conv_group_columns).count;
    if (groups == 0 || (!y && !dw)) return;
    T* partial = dw ? scratch<T, 2>(groups * OK) : nullptr;  // the calling thread's; the groups' threads write it
    const bool broadcast = y && forward_broadcasts<T>(s);
    T* wt = nullptr;  // W^T packed, for forward_by_broadcast: the calling thread's; the groups' threads read it
    if (broadcast) {
        constexpr int64_t NR = gemm_detail::Blocking<T>::NR;
        wt = scratch<T, 3>((s.O + NR - 1) / NR * NR * s.K());
        pack_panels(wt, transposed(w, s.O, s.K()), 0, s.K(), 0, s.O);
    }
    for_image_groups(s, conv_group_columns, [&](int64_t q, int64_t n0, const Conv2dShape& part) {
        const auto split = split_patches(x + n0 * s.C * s.H * s.W, part);
        if (broadcast)
            forward_by_broadcast(y + n0 * s.O * HoWo, bias, wt, split, s.O, accumulate);
        else if (y)
            gemm(channels_by_pixels(y + n0 * s.O * HoWo, part.N, s.O, HoWo), row_major(w, s.O, s.K()),
                 Patches<T>{split}, accumulate, bias);
        if (y) activate(y + n0 * s.O * HoWo, part.N * s.O * HoWo, act);
        if (dw && weight_grad_along_rows<T>(s))
            weight_grad_along_rows(partial + q * OK, dz + n0 * s.O * HoWo, split, s.O);
        else if (dw)
            weight_grad_by_broadcast(partial + q * OK, dz + n0 * s.O * HoWo, split, s.O);
    });
    if (!dw) return;
#pragma omp parallel for schedule(static) if (groups * OK >= parallel_grain)
    for (int64_t i = 0; i < OK; ++i) {
        T sum = partial[i];
        for (int64_t q = 1; q < groups; ++q) sum += partial[q * OK + i];
        dw[i] = (dw_assign ? T(0) : dw[i]) + sum;
    }
}

// The input gradient by phases (below) needs every kernel offset of a phase to be whole steps
// apart: no dilation, a square kernel whose side the stride divides. Measured on the kim-mnih and
// seed layers (batch 64, 2 threads, AVX-512), it pays where col2im's GEMM is shallow (O <= 32: its
// tiles are stored after 32 rank-1 updates, and col2im reads them all back), where the phases'
// GEMM has rows for several micro-tiles (S*S*C >= 4 MR: each packed panel of dy's patches serves
// that many rows; with the seed's 3-channel last layer, 12 rows, 1.5 -> 2.6 ms) and where its
// border adds few positions: (Ho + k - 1)(Wo + k - 1) against Ho*Wo is 13% more at 16 x 16
// outputs, where it won (kim-mnih's conv2 8.6 -> 7.8 ms, deconv3 3.7 -> 3.2), 27% at 8 x 8,
// where it lost (conv3: 3.9 -> 4.4 ms). Those figures are against the col2im of the time; against
// today's (the patch gradients added onto the phases in cache, Wᵀ packed once) kim-mnih's conv2
// measured 3.0-3.1 ms by phases and 3.1-3.3 by col2im in two rounds: too close to move the rule.
inline bool input_grad_by_phases(const Conv2dShape& s, int64_t tile_rows) {
    if (!(s.stride > 1 && s.dilation == 1 && s.kh == s.kw && s.kh % s.stride == 0)) return false;
    const int64_t border = s.kh / s.stride - 1;
    return s.O <= 32 && s.stride * s.stride * s.C >= 4 * tile_rows &&
           6 * (s.Ho + border) * (s.Wo + border) <= 7 * s.Ho * s.Wo;
}

// The convolution that gives the input gradient split by phase (im2col.hpp's split_input): phase
// (a, b) of the padded input, at (u, v), takes kernel offsets (a + S ii, b + S jj) from output
// position (u - ii, v - jj), for ii, jj < k = kh/S. That is a stride-1 convolution of dy, padded by
// k - 1, with a k x k kernel and S*S*C output channels (c, a, b); its output is the split layout.
inline Conv2dShape phase_shape(const Conv2dShape& s) {
    const int64_t S = s.stride, k = s.kh / S;
    return {.N = s.N, .C = s.O, .H = s.Ho, .W = s.Wo, .O = S * S * s.C, .Ho = s.Ho + k - 1, .Wo = s.Wo + k - 1,
            .kh = k, .kw = k, .stride = 1, .padding = k - 1, .dilation = 1};
}

// dx [N, C, H, W] (+= or, as `start` says, =) the input gradient by phases: the phase convolution's
// weight [S*S*C, O, k, k] is w's offsets regrouped and flipped,
// wp[(c, a, b), o, ii, jj] = w[o, c, a + S (k-1-ii), b + S (k-1-jj)];
// then, image group by image group, its output (split by phase, in cache) is added back onto the
// input positions (add_split). The same products as Wm^T dY and col2im (and a border's more), with
// k*k times the GEMM's depth (O k k against O: four times for a 4 x 4 kernel at stride 2), and the
// GEMM's output is the phases themselves, where col2im first adds kh*kw / (S*S) patch gradients
// onto each phase value.
template <class T>
void conv2d_input_grad_by_phases(T* dx, const T* dy, const T* w, const Conv2dShape& s, const ChannelStart<T>& start,
                                 const Activation& act) {
    const Conv2dShape t = phase_shape(s);
    const int64_t S = s.stride, k = t.kh, HoWo = s.Ho * s.Wo, split = t.Ho * t.Wo;
    T* wp = scratch<T, 3>(t.O * t.K());
    for (int64_t c = 0; c < s.C; ++c)
        for (int64_t a = 0; a < S; ++a)
            for (int64_t b = 0; b < S; ++b)
                for (int64_t o = 0; o < s.O; ++o)
                    for (int64_t ii = 0; ii < k; ++ii)
                        for (int64_t jj = 0; jj < k; ++jj)
                            wp[((((c * S + a) * S + b) * s.O + o) * k + ii) * k + jj] =
                                w[((o * s.C + c) * s.kh + a + S * (k - 1 - ii)) * s.kw + b + S * (k - 1 - jj)];
    for_image_groups(t, conv_group_columns, [&](int64_t, int64_t n0, const Conv2dShape& part) {
        T* g = scratch<T>(part.N * t.O * split);
        gemm(channels_by_pixels(g, part.N, t.O, split), row_major<const T>(wp, t.O, t.K()),
             Patches<T>{split_patches(dy + n0 * s.O * HoWo, part)}, false);
        Conv2dShape images = s;
        images.N = part.N;
        im2col_detail::add_split(dx + n0 * s.C * s.H * s.W, g, images, start);
        activate(dx + n0 * s.C * s.H * s.W, part.N * s.C * s.H * s.W, act);
    });
}

// dx [N, C, H, W] (+= or, as `start` says, =) the convolution's input gradient for dy
// [N, O, Ho, Wo]: by phases where it can, else col2im(Wm^T dY). A few images at a time: their patch
// gradients (K x g*Ho*Wo, a few hundred KiB that stay in cache), then col2im onto their own input
// planes, then act on those planes while they are in cache (a transposed convolution's forward
// pass, with its activation). Groups of at least 256 columns: on small images (4x4 pixels) a GEMM
// per image would fill only half of each micro-tile's columns.
template <class T>
void conv2d_input_grad(T* dx, const T* dy, const T* w, const Conv2dShape& s, const ChannelStart<T>& start = {},
                       const Activation& act = {}) {
    if (input_grad_by_phases(s, gemm_detail::Blocking<T>::MR))
        return conv2d_input_grad_by_phases(dx, dy, w, s, start, act);
    const int64_t K = s.K(), HoWo = s.Ho * s.Wo;
    const auto wt = transposed(w, s.O, K);
    const T* packed = pack_a_once(scratch<T, 3>(packed_a_size(wt)), wt);  // once, not once per group
    for_image_groups(s, 256, [&](int64_t, int64_t n0, const Conv2dShape& part) {
        T* cols = scratch<T>(K * part.N * HoWo);
        gemm(row_major(cols, K, part.N * HoWo), wt, channels_by_pixels(dy + n0 * s.O * HoWo, part.N, s.O, HoWo),
             false, static_cast<const T*>(nullptr), packed);
        col2im(dx + n0 * s.C * s.H * s.W, cols, part, start);
        activate(dx + n0 * s.C * s.H * s.W, part.N * s.C * s.H * s.W, act);
    });
}

// dw [O, C, kh, kw] += (= with assign) dY im2col(x)^T, with dY = dy [N, O, Ho, Wo] as a matrix [O, P]
template <class T>
void conv2d_weight_grad(T* dw, const T* dy, const T* x, const Conv2dShape& s, bool assign = false) {
    patch_products<T>(nullptr, nullptr, nullptr, false, dw, dy, x, s, {}, assign);
}

// x [N, C, H, W], w [O, C, kh, kw], b [O] or null  ->  act(y [N, O, Ho, Wo])
// Ho = (H + 2*padding - dilation*(kh-1) - 1) / stride + 1, likewise Wo.
template <class T>
void conv2d_forward(T* y, const T* x, const T* w, const T* b, const Conv2dShape& s, const Activation& act = {}) {
    patch_products<T>(y, w, b, /*accumulate=*/false, nullptr, nullptr, x, s, act);
}

// dx, dw, db accumulate (+=), each written (=) instead where `assign` says (layer_assign.hpp); any
// of them may be null when not needed.
template <class T>
void conv2d_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const Conv2dShape& s,
                     const Assign& assign = {}) {
    if (db) channel_sum_grad(db, dy, s.N, s.O, s.Ho * s.Wo, assign.db);
    if (dw) conv2d_weight_grad(dw, dy, x, s, assign.dw);
    if (dx) conv2d_input_grad(dx, dy, w, s, ChannelStart<T>{.set = assign.dx});
}

}  // namespace elbo::kernels
