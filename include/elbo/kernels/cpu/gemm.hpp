#pragma once
// gemm: C (= or +=) A B, for float and double, the one matrix product every CPU kernel uses.
//
// Why not Eigen's: on the 2-core AVX2 machines elbo is measured on, Eigen's float GEMM reaches
// about 80 GFLOP/s of the 175 the two cores' FMA units can do (benchmarks/gemm_peak), and its
// blocking depends on the thread count, so its sums were not the same for 1 and 2 threads.
//
// The method is Goto's, as BLIS writes it. C is cut into blocks of at most MC rows and NC columns.
// For each block of KC values of the inner dimension, the needed panel of B (KC x NC) and block of A
// (MC x KC) are copied ("packed") into buffers in exactly the order the micro-kernel reads them,
// zero-padded to whole tiles; the micro-kernel then computes one MR x NR tile of C in registers, a
// rank-1 update per k (MR broadcasts of A against NR/width vectors of B), and adds the tile to C.
// A packed B micro-panel (KC x NR) stays in L1 while the micro-kernel runs down the A block, which
// stays in L2.
//
// Operands are read in place through MatrixView's strides, so a transpose, a column-major matrix or
// the batch of an NCHW tensor seen as one [channels, images x pixels] matrix costs no copy.
//
// Determinism: each element of C is summed over k in one fixed order (k blocks, in order, each
// accumulated in registers from zero and then added to C), whichever thread computes its tile and
// however many threads there are: the threads split C, and k only where C is small and k long,
// into chunks fixed by the sizes alone whose partial products are added in order.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "elbo/kernels/cpu/common.hpp"
#include "elbo/kernels/cpu/simd.hpp"

namespace elbo::kernels {

// A matrix operand, read in place: element (i, j) lives at
//     p[i*rs + (j / group)*gs + (j % group)*cs].
// With one group it is an ordinary strided matrix (row-major: rs = cols, cs = 1; column-major:
// rs = 1, cs = rows). More groups let a tensor [N, O, HW] be the matrix [O, N*HW]: group = HW,
// gs = O*HW (see channels_by_pixels).
template <class T>
struct MatrixView {
    T* p;
    int64_t rows, cols;
    int64_t rs, cs;
    int64_t group, gs;

    int64_t column_offset(int64_t j) const { return (j / group) * gs + (j % group) * cs; }
    // Whether columns j .. j+n-1 lie next to each other in memory.
    bool contiguous(int64_t j, int64_t n) const { return cs == 1 && j % group + n <= group; }

    operator MatrixView<const T>() const
        requires(!std::is_const_v<T>)
    {
        return {p, rows, cols, rs, cs, group, gs};
    }
};

template <class T>
MatrixView<T> row_major(T* p, int64_t rows, int64_t cols) {
    return {p, rows, cols, cols, 1, std::max<int64_t>(cols, 1), 0};
}
template <class T>
MatrixView<T> col_major(T* p, int64_t rows, int64_t cols) {
    return {p, rows, cols, 1, rows, std::max<int64_t>(cols, 1), 0};
}
// The transpose of a row-major [rows, cols] matrix: [cols, rows], read in place.
template <class T>
MatrixView<T> transposed(T* p, int64_t rows, int64_t cols) {
    return col_major(p, cols, rows);
}
// A tensor [N, C, HW] as the matrix [C, N*HW] whose column n*HW + i is pixel i of image n.
template <class T>
MatrixView<T> channels_by_pixels(T* p, int64_t N, int64_t C, int64_t HW) {
    return {p, C, N * HW, HW, 1, std::max<int64_t>(HW, 1), C * HW};
}

namespace gemm_detail {

template <class T>
using Simd = simd::Packet<T>;

// Tile and block sizes, from the packet width and the register count alone (never the thread
// count, so the sums stay the same for any number of threads). The tile is MR rows of two packets:
// 2 MR accumulators, two packets of B and A's values must fit the vector registers. On x86 A's
// values are broadcast one at a time into one register: MR is 6 where there are 16 (SSE, AVX2) and
// 12 where there are 32 (AVX-512). On arm64 GCC keeps each of A's MR values in a register of its
// own and multiplies by its lane, so 3 MR + 2 must fit: 8 (at 10, it spilled 3 accumulators to the
// stack). KC is chosen so that a KC x NR panel of B is 16 KiB (L1 holds 32 or more): 256 for float
// on AVX2, where MC x KC of A is 96 KiB (L2 holds 512), 128 on AVX-512. MC and NC were measured on
// the kim-mnih network's layers (benchmarks/bench_layers, AVX-512, 2 threads, best of 5): MC 96
// (8 tiles on AVX-512, 16 on AVX2) and NC 1024, which keeps B's packed panel (KC x NC, 512 KiB on
// AVX-512) in L2, took the convolutions from 34.6 to 30.1 ms forward and 75.3 to 71.3 backward
// against MC 192 and NC 2048. A larger KC is slower on these layers, whose M is 32 to 64, and
// faster on large products, where C is added to K / KC times: those with M, N and K all from 512
// take k blocks of KC_large = 512 (AVX-512, 2 threads: n = 768 184-186 -> 225-234 GFLOP/s, n = 2048
// 190-194 -> 235-236, where Eigen's reaches 243-264; with N = 64 or 256 it was 5-15% slower, so
// those keep KC). No product of the two networks' steps or evaluations at batch 64 has such a
// shape, so their sums do not change; the depth follows from the shape alone, so a product's sums
// are still the same for any number of threads.
template <class T>
struct Blocking {
    static constexpr int64_t MR = simd::registers < 32 ? 6 : simd::fma_by_lane ? 8 : 12;
    static constexpr int64_t NR = 2 * Simd<T>::width;
    static constexpr int64_t KC = std::clamp<int64_t>(16384 / (NR * int64_t(sizeof(T))), 64, 512);
    static constexpr int64_t KC_large = std::max<int64_t>(KC, 512);
    static constexpr int64_t MC = 96;
    static constexpr int64_t NC = 1024;
    static_assert(MC % MR == 0 && NC % NR == 0, "the packed buffers hold whole tiles");

    // The k blocks' depth for a product [M, K] x [K, N].
    static constexpr int64_t depth(int64_t M, int64_t N, int64_t K) {
        return M >= 512 && N >= 512 && K >= 512 ? KC_large : KC;
    }
};

// tile[MR, NR] = a b over kc, with A(i, k) broadcast from a_at(k, i) and b's row k read by
// load_b(k, b0, b1) as its two packets of NR/2 values: A from a packed panel [kc][MR] or from its
// rows in place (below), B from a packed panel [kc][NR] or in place (below). The accumulators are
// an array that the unrolled loops index with constants only, so GCC keeps every one in a register.
template <class T>
using Accumulators = typename Simd<T>::V[Blocking<T>::MR][2];

// c += a b over kc, the micro-kernel's loop on accumulators it is given (so that a caller can run it
// over several stretches of k, as the weight gradient does along output rows).
template <class T, class AAt, class LoadB>
void accumulate_tile(int64_t kc, AAt a_at, LoadB load_b, Accumulators<T>& c) {
    using S = Simd<T>;
    using V = typename S::V;
    constexpr int MR = Blocking<T>::MR;
    static_assert(Blocking<T>::NR == 2 * S::width);
    for (int64_t k = 0; k < kc; ++k) {
        V b0, b1;
        load_b(k, b0, b1);
#pragma GCC unroll 16
        for (int i = 0; i < MR; ++i) {
            const V ai = S::broadcast(a_at(k, i));
            c[i][0] = S::fma(ai, b0, c[i][0]);
            c[i][1] = S::fma(ai, b1, c[i][1]);
        }
    }
}
template <class T>
void zero_tile(Accumulators<T>& c) {
#pragma GCC unroll 16
    for (int i = 0; i < Blocking<T>::MR; ++i) c[i][0] = c[i][1] = Simd<T>::zero();
}
template <class T>
void store_accumulators(const Accumulators<T>& c, T* tile) {
    constexpr int W = Simd<T>::width;
#pragma GCC unroll 16
    for (int i = 0; i < Blocking<T>::MR; ++i)
        Simd<T>::store(tile + 2 * i * W, c[i][0]), Simd<T>::store(tile + (2 * i + 1) * W, c[i][1]);
}

template <class T, class AAt, class LoadB>
void micro_kernel(int64_t kc, AAt a_at, LoadB load_b, T* tile) {
    Accumulators<T> c;
    zero_tile<T>(c);
    accumulate_tile<T>(kc, a_at, load_b, c);
    store_accumulators<T>(c, tile);
}

// A packed [kc][MR].
template <class T, class LoadB>
void micro_kernel(int64_t kc, const T* a, LoadB load_b, T* tile) {
    micro_kernel<T>(kc, [a](int64_t k, int i) { return a + k * Blocking<T>::MR + i; }, load_b, tile);
}

// load_b for a packed panel [kc][NR].
template <class T>
auto packed_panel(const T* b) {
    using S = Simd<T>;
    return [b](int64_t k, typename S::V& b0, typename S::V& b1) {
        b0 = S::load(b + k * 2 * S::width);
        b1 = S::load(b + (2 * k + 1) * S::width);
    };
}

// b packed [kc][NR].
template <class T>
void micro_kernel(int64_t kc, const T* a, const T* b, T* tile) {
    micro_kernel(kc, a, packed_panel(b), tile);
}

// B read in place: row k of the micro-panel is the packets at first + rows[k] and second + rows[k].
template <class T>
void micro_kernel(int64_t kc, const T* a, const int64_t* rows, const T* first, const T* second, T* tile) {
    using S = Simd<T>;
    micro_kernel(kc, a, [=](int64_t k, typename S::V& b0, typename S::V& b1) {
        b0 = S::load(first + rows[k]);
        b1 = S::load(second + rows[k]);
    }, tile);
}

// Asks for C's tile (rows i .. i+m-1, columns j .. j+n-1) to be brought into cache while the
// micro-kernel computes: without it, waiting for C took a fifth of the time.
template <class T>
void prefetch_tile(const MatrixView<T>& c, int64_t i, int64_t j, int64_t m, int64_t n) {
    if (!c.contiguous(j, n)) return;
    const T* row = c.p + i * c.rs + c.column_offset(j);
    for (int64_t ii = 0; ii < m; ++ii, row += c.rs) {
        Simd<T>::prefetch(row);
        Simd<T>::prefetch(row + n - 1);
    }
}

// C's rows i .. i+m-1, columns j .. j+n-1 (= or +=) the tile's first m rows and n columns; where
// `init` is given and not `add`, = init[ii] + the tile's row ii (init: C's rows' first values).
template <class T>
void store_tile(const MatrixView<T>& c, int64_t i, int64_t j, int64_t m, int64_t n, const T* tile, bool add,
                const T* init = nullptr) {
    using S = Simd<T>;
    constexpr int64_t NR = Blocking<T>::NR, W = S::width;
    if (n == NR && c.contiguous(j, NR)) {
        T* row = c.p + i * c.rs + c.column_offset(j);
        for (int64_t ii = 0; ii < m; ++ii, row += c.rs, tile += NR) {
            if (add) {
                S::store(row, S::add(S::load(row), S::load(tile)));
                S::store(row + W, S::add(S::load(row + W), S::load(tile + W)));
            } else if (init) {
                S::store(row, S::add(S::broadcast(init + ii), S::load(tile)));
                S::store(row + W, S::add(S::broadcast(init + ii), S::load(tile + W)));
            } else {
                S::store(row, S::load(tile));
                S::store(row + W, S::load(tile + W));
            }
        }
        return;
    }
    for (int64_t jj = 0; jj < n; ++jj) {
        T* dst = c.p + i * c.rs + c.column_offset(j + jj);
        for (int64_t ii = 0; ii < m; ++ii) {
            T& e = dst[ii * c.rs];
            e = add ? e + tile[ii * NR + jj] : init ? init[ii] + tile[ii * NR + jj] : tile[ii * NR + jj];
        }
    }
}

// Packs A's rows i0 .. i0+mc-1, columns k0 .. k0+kc-1 as micro-panels of MR rows: panel q holds
// dst[q*kc*MR + k*MR + ii] = A(i0 + q*MR + ii, k0 + k), zero past the last row. `offsets` holds
// column_offset(k0 + k) for each k (A's columns may be grouped).
template <class T>
void pack_a(T* dst, const MatrixView<const T>& a, const int64_t* offsets, int64_t i0, int64_t mc,
            int64_t kc) {
    constexpr int64_t MR = Blocking<T>::MR;
    for (int64_t q = 0; q * MR < mc; ++q, dst += kc * MR) {
        const int64_t i = i0 + q * MR, m = std::min(MR, mc - q * MR);
        if (a.rs == 1) {  // the panel's rows are adjacent: read them together
            for (int64_t k = 0; k < kc; ++k) {
                const T* src = a.p + i + offsets[k];
                for (int64_t ii = 0; ii < MR; ++ii) dst[k * MR + ii] = ii < m ? src[ii] : T(0);
            }
            continue;
        }
        for (int64_t ii = 0; ii < MR; ++ii) {
            const T* src = a.p + (i + ii) * a.rs;
            for (int64_t k = 0; k < kc; ++k) dst[k * MR + ii] = ii < m ? src[offsets[k]] : T(0);
        }
    }
}

// All of A [M, K] packed, for when every thread's share of C spans all of its rows: k block by k
// block (`depth` values each), and within one, MC-row blocks of MR-row micro-panels, as pack_a
// writes them. The block for rows from ic (a multiple of MR) in the k block from k0 starts at
// k0 * rows_padded(M) + ic * kc.
template <class T>
int64_t rows_padded(int64_t M) {
    constexpr int64_t MR = Blocking<T>::MR;
    return (M + MR - 1) / MR * MR;
}
template <class T>
void pack_all_of_a(T* dst, const MatrixView<const T>& a, int64_t depth) {
    using Bk = Blocking<T>;
    const int64_t M = a.rows, K = a.cols;
    int64_t offsets[Bk::KC_large];
    for (int64_t k0 = 0; k0 < K; k0 += depth) {
        const int64_t kc = std::min(depth, K - k0);
        for (int64_t k = 0; k < kc; ++k) offsets[k] = a.column_offset(k0 + k);
        for (int64_t ic = 0; ic < M; ic += Bk::MC)
            pack_a(dst + k0 * rows_padded<T>(M) + ic * kc, a, offsets, ic, std::min(Bk::MC, M - ic), kc);
    }
}

// One thread's share: the block of C with rows [i0, i1) and columns [j0, j1), over all of k, in
// BLIS's loop order (columns by NC, k by `depth` with B's panel packed once, rows by MC with A's
// block packed, then the micro-tiles). A comes packed already (pack_all_of_a, in blocks of the
// same depth) when a_packed_all is given.
template <class T, class B>
void gemm_block(const MatrixView<T>& c, const MatrixView<const T>& a, const B& b, bool accumulate, int64_t i0,
                int64_t i1, int64_t j0, int64_t j1, int64_t k_begin, int64_t k_end, int64_t depth,
                const T* a_packed_all = nullptr, const T* row_init = nullptr) {
    using Bk = Blocking<T>;
    constexpr int64_t MR = Bk::MR, NR = Bk::NR, MC = Bk::MC, NC = Bk::NC;
    thread_local std::vector<T> a_packed, b_packed;
    thread_local std::vector<int64_t> offsets, b_rows;
    a_packed.resize(static_cast<size_t>(MC * depth));
    b_packed.resize(static_cast<size_t>(depth * NC));
    offsets.resize(static_cast<size_t>(depth));
    b_rows.resize(static_cast<size_t>(depth));
    alignas(64) T tile[MR * NR];
    constexpr bool readable_in_place = requires { reads_in_place(b, j0, j1); };
    for (int64_t jc = j0; jc < j1; jc += NC) {
        const int64_t nc = std::min(NC, j1 - jc);
        bool in_place = false;
        if constexpr (readable_in_place) in_place = reads_in_place(b, jc, nc);
        for (int64_t k0 = k_begin; k0 < k_end; k0 += depth) {
            const int64_t kc = std::min(depth, k_end - k0);
            const bool add = accumulate || k0 > k_begin;
            if (!in_place)
                pack_panels(b_packed.data(), b, k0, kc, jc, nc);
            else if constexpr (readable_in_place)
                for (int64_t k = 0; k < kc; ++k) b_rows[static_cast<size_t>(k)] = row_offset(b, k0 + k);
            for (int64_t k = 0; k < kc; ++k) offsets[static_cast<size_t>(k)] = a.column_offset(k0 + k);
            for (int64_t ic = i0; ic < i1; ic += MC) {
                const int64_t mc = std::min(MC, i1 - ic);
                const T* ap = a_packed.data();
                if (a_packed_all)
                    ap = a_packed_all + k0 * rows_padded<T>(a.rows) + ic * kc;
                else
                    pack_a(a_packed.data(), a, offsets.data(), ic, mc, kc);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const T* bp = b_packed.data() + jr * kc;
                    const T *first = nullptr, *second = nullptr;
                    if constexpr (readable_in_place)
                        if (in_place) first = column_start(b, jc + jr), second = column_start(b, jc + jr + NR / 2);
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        prefetch_tile(c, ic + ir, jc + jr, std::min(MR, mc - ir), std::min(NR, nc - jr));
                        if (in_place)
                            micro_kernel(kc, ap + ir * kc, b_rows.data(), first, second, tile);
                        else
                            micro_kernel(kc, ap + ir * kc, bp, tile);
                        store_tile(c, ic + ir, jc + jr, std::min(MR, mc - ir), std::min(NR, nc - jr), tile, add,
                                   row_init ? row_init + ic + ir : nullptr);
                    }
                }
            }
        }
    }
}

}  // namespace gemm_detail

// The B operand of a GEMM is anything with an overload of
//     pack_panels(T* dst, const Operand& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc)
// that writes B's rows k0 .. k0+kc-1, columns j0 .. j0+nc-1 as micro-panels of NR columns: panel q
// holds dst[q*kc*NR + k*NR + jj] = B(k0 + k, j0 + q*NR + jj), zero past the last column. A matrix in
// memory is one; a convolution's patches, packed straight from the image, are another (im2col.hpp).
//
// An operand may also let the micro-kernel read it in place, without packing, by overloads of
//     reads_in_place(b, j0, nc)   whether columns j0 .. j0+nc-1 can be read so: whole micro-panels,
//                                 each half of one (NR/2 columns) contiguous at every row k
//     row_offset(b, k)            where row k lies from a column's start
//     column_start(b, j)          the address of B(0, j) from which row_offset counts
// so that B(k, j .. j+NR/2-1) are the values at column_start(b, j) + row_offset(b, k). The sums are
// the same either way (the micro-kernel reads the same values in the same order); the convolution's
// patches use it (im2col.hpp), saving the copy that packing is.
//
// B as a matrix in memory.
template <class T>
void pack_panels(T* dst, const MatrixView<const T>& b, int64_t k0, int64_t kc, int64_t j0, int64_t nc) {
    constexpr int64_t NR = gemm_detail::Blocking<T>::NR;
    for (int64_t q = 0; q * NR < nc; ++q, dst += kc * NR) {
        const int64_t j = j0 + q * NR, n = std::min(NR, nc - q * NR);
        if (n == NR && b.contiguous(j, NR)) {
            const T* src = b.p + k0 * b.rs + b.column_offset(j);
            for (int64_t k = 0; k < kc; ++k, src += b.rs)  // NR known here: moves, not a memmove call
                for (int64_t jj = 0; jj < NR; ++jj) dst[k * NR + jj] = src[jj];
            continue;
        }
        if (n == NR && b.rs == 1 && j % b.group + NR <= b.group) {
            // Each column runs along k (B is a transposed row-major matrix: linear's weight): blocks
            // of width x width are loaded down the columns and transposed in registers, rather
            // than written one value per cache line.
            using S = gemm_detail::Simd<T>;
            constexpr int64_t W = S::width;
            const T* src = b.p + k0 + b.column_offset(j);  // column j + jj at src + jj * cs
            int64_t k = 0;
            for (; k + W <= kc; k += W)
                for (int64_t jj = 0; jj < NR; jj += W) {
                    typename S::V v[W];
                    for (int64_t r = 0; r < W; ++r) v[r] = S::load(src + (jj + r) * b.cs + k);
                    S::transpose(v);
                    for (int64_t r = 0; r < W; ++r) S::store(dst + (k + r) * NR + jj, v[r]);
                }
            for (; k < kc; ++k)
                for (int64_t jj = 0; jj < NR; ++jj) dst[k * NR + jj] = src[jj * b.cs + k];
            continue;
        }
        for (int64_t jj = 0; jj < NR; ++jj) {
            if (jj >= n) {
                for (int64_t k = 0; k < kc; ++k) dst[k * NR + jj] = T(0);
                continue;
            }
            const T* src = b.p + k0 * b.rs + b.column_offset(j + jj);
            for (int64_t k = 0; k < kc; ++k) dst[k * NR + jj] = src[k * b.rs];
        }
    }
}

// A [M, K] packed once into dst (packed_a_size(a) values) for gemm's a_packed, in k blocks of KC
// (gemm then multiplies in blocks of KC, whatever its shape).
template <class T>
int64_t packed_a_size(const MatrixView<const T>& a) {
    return gemm_detail::rows_padded<T>(a.rows) * a.cols;
}
template <class T>
const T* pack_a_once(T* dst, const MatrixView<const T>& a) {
    gemm_detail::pack_all_of_a(dst, a, gemm_detail::Blocking<T>::KC);
    return dst;
}

// C (= or +=) A B with A [M, K], B [K, N], C [M, N]; where row_init [M] is given (and not
// accumulate), C = row_init + A B, row i starting from row_init[i] (a convolution's bias: the same
// sums as C filled with it first and A B added, without that pass over C). C must not overlap A or
// B. The result is the same for every thread count: the threads share out blocks of C, and when C
// is too small for that, fixed chunks of k whose partial products are added in order. A caller that
// multiplies one A by many B (the input gradient's Wᵀ, image group by image group) may pack A once
// itself (pack_a_once) and pass it as a_packed.
template <class T, class B>
void gemm(const MatrixView<T>& c, const MatrixView<const T>& a, const B& b, bool accumulate,
          const T* row_init = nullptr, const T* a_packed = nullptr) {
    using Bk = gemm_detail::Blocking<T>;
    const int64_t M = c.rows, N = c.cols, K = a.cols;
    if (M == 0 || N == 0) return;
    if (accumulate) row_init = nullptr;
    if (K == 0) {
        if (!accumulate)
            for (int64_t i = 0; i < M; ++i)
                for (int64_t j = 0; j < N; ++j) c.p[i * c.rs + c.column_offset(j)] = row_init ? row_init[i] : T(0);
        return;
    }
    const bool parallel = 2.0 * M * N * K >= 1e6;
    const int64_t depth = a_packed ? Bk::KC : Bk::depth(M, N, K);  // a caller's packed A is in blocks of KC
    // A few rows of C over a long k (a convolution of many input channels onto a few output
    // positions): cutting C into column ranges would pack A once per range, so k is cut
    // instead, into chunks fixed by the sizes, each into its own partial product, added in order.
    // Only where those partial products are small (at most 16 of 2^18 values).
    const int64_t chunks =
        M <= 2 * Bk::MC && M * N <= (int64_t(1) << 18) && K >= 2048 ? std::min<int64_t>(16, K / 1024) : 1;
    if (chunks > 1) {
        const int64_t chunk = ((K + chunks - 1) / chunks + depth - 1) / depth * depth;
        thread_local std::vector<T> buffer;  // the calling thread's; the team writes into it
        buffer.resize(static_cast<size_t>(chunks * M * N));
        T* partial = buffer.data();
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
        for (int64_t s = 0; s < chunks; ++s)
            gemm_detail::gemm_block(row_major(partial + s * M * N, M, N), a, b, false, 0, M, 0, N,
                                    std::min(K, s * chunk), std::min(K, (s + 1) * chunk), depth, a_packed);
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                T sum = partial[i * N + j];
                for (int64_t s = 1; s < chunks; ++s) sum += partial[(s * M + i) * N + j];
                T& e = c.p[i * c.rs + c.column_offset(j)];
                e = accumulate ? e + sum : row_init ? row_init[i] + sum : sum;
            }
        return;
    }
    // Otherwise C is cut into column ranges (each packs its B panels once) and, when C has too few
    // columns for that, also into row ranges; a few ranges per thread balance the load, but where
    // A is too large to be packed once for all of them (below), each range packs all of A again,
    // and one range a thread packs it least (n = 2048 on two threads: 157 -> 181 GFLOP/s).
    // Inside another parallel region (a convolution's images shared among threads) this GEMM runs
    // on its one thread: one range, so that nothing is packed twice.
    const int64_t threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const int64_t wanted = threads == 1 ? 1 : M * K > (int64_t(1) << 20) ? threads : 4 * threads;
    // At least four panels of NR columns in a range; as many ranges as the threads can share evenly.
    const int64_t panels = (N + Bk::NR - 1) / Bk::NR;
    int64_t col_parts = std::clamp<int64_t>(panels / 4, 1, wanted);
    if (col_parts > threads) col_parts -= col_parts % threads;
    const int64_t row_parts = std::clamp<int64_t>(wanted / col_parts, 1, (M + Bk::MR - 1) / Bk::MR);
    const int64_t cols_each = ((N + Bk::NR - 1) / Bk::NR + col_parts - 1) / col_parts * Bk::NR;
    const int64_t rows_each = ((M + Bk::MR - 1) / Bk::MR + row_parts - 1) / row_parts * Bk::MR;
    const int64_t parts = row_parts * col_parts;
    // When every range spans all rows of C, each would pack all of A again: with A small (a Linear
    // layer's 64-row batch, or its gradient, against 1000 x 1000 weights) it is packed once here
    // instead (that was a sixth of the layer's forward on two threads).
    const T* a_packed_all = a_packed;
    if (!a_packed_all && parallel && row_parts == 1 && col_parts > 1 && M * K <= (int64_t(1) << 20)) {
        thread_local std::vector<T> packed;  // the calling thread's; the team reads it
        packed.resize(static_cast<size_t>(packed_a_size(a)));
        gemm_detail::pack_all_of_a(packed.data(), a, depth);
        a_packed_all = packed.data();
    }
#pragma omp parallel for schedule(dynamic, 1) if (parallel && parts > 1)
    for (int64_t t = 0; t < parts; ++t) {
        const int64_t i0 = t / col_parts * rows_each, j0 = t % col_parts * cols_each;
        if (i0 < M && j0 < N)
            gemm_detail::gemm_block(c, a, b, accumulate, i0, std::min(M, i0 + rows_each), j0,
                                    std::min(N, j0 + cols_each), 0, K, depth, a_packed_all, row_init);
    }
}

// C (= or +=) A B with A's values broadcast from A in place, for a long k and a C of few columns:
// a Linear layer's weight against a batch, as yᵀ = W xᵀ. B (k x N) is packed once into panels of
// NR columns over all of k, which stay in L2; each tile of MR rows of A by a panel is summed over
// all of k in registers and stored once. The general GEMM above packs the weight on every call and
// adds each tile to C once per KC values of k: a quarter of the discriminator's 64 x 1000 x 1000
// forward product on two threads (AVX-512). A's rows must run along k (cs = 1), ungrouped.
template <class T>
bool broadcasts_a(const MatrixView<const T>& a, int64_t N) {
    constexpr int64_t NR = gemm_detail::Blocking<T>::NR;
    const int64_t panels = (N + NR - 1) / NR;
    return a.cs == 1 && a.group == std::max<int64_t>(a.cols, 1) && panels <= 4 && a.cols >= 256 &&
           panels * a.cols * NR * int64_t(sizeof(T)) <= (int64_t(1) << 20);
}
template <class T>
void gemm_broadcast_a(const MatrixView<T>& c, const MatrixView<const T>& a, const MatrixView<const T>& b,
                      bool accumulate) {
    using Bk = gemm_detail::Blocking<T>;
    constexpr int64_t MR = Bk::MR, NR = Bk::NR;
    const int64_t M = c.rows, N = c.cols, K = a.cols, tiles = (M + MR - 1) / MR, panels = (N + NR - 1) / NR;
    if (M == 0 || N == 0) return;
    thread_local std::vector<T> packed;  // the calling thread's; the team reads it
    packed.resize(static_cast<size_t>(panels * K * NR));
    pack_panels(packed.data(), b, 0, K, 0, N);
    const T* bp = packed.data();
#pragma omp parallel for collapse(2) schedule(static) if (2.0 * M * N * K >= 1e6 && !omp_in_parallel())
    for (int64_t t = 0; t < tiles; ++t)
        for (int64_t q = 0; q < panels; ++q) {
            const T* rows[MR];  // past the last row, the last row again (computed, not stored)
            for (int64_t i = 0; i < MR; ++i) rows[i] = a.p + std::min(t * MR + i, M - 1) * a.rs;
            alignas(64) T tile[MR * NR];
            gemm_detail::micro_kernel<T>(K, [&rows](int64_t k, int i) { return rows[i] + k; },
                                         gemm_detail::packed_panel(bp + q * K * NR), tile);
            gemm_detail::store_tile(c, t * MR, q * NR, std::min(MR, M - t * MR), std::min(NR, N - q * NR), tile,
                                    accumulate);
        }
}

}  // namespace elbo::kernels
