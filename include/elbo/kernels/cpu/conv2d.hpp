#pragma once
// conv2d through im2col + GEMM, a group of images at a time.  Derivation: docs/gradients.md#conv2d
//
// With cols = im2col(x) [K, P] and the weight as a matrix Wm [O, K], the output as a matrix
// Y [O, P] is Wm cols. Y's columns run over (n, oh, ow), and the GEMM reads and writes the NCHW
// tensor [N, O, Ho*Wo] as that matrix in place (channels_by_pixels), so no layout is ever copied.
// The building blocks below serve conv_transpose2d too, which is this convolution run backwards.

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

// The two products of the patches im2col(x), image group by image group, each group's input split
// once for both: y [N, O, Ho, Wo] (= or +=) conv(x [N, C, H, W], w [O, C, kh, kw]) where y is
// given, and dw [O, C, kh, kw] += dz im2col(x)^T where dw is given (dz [N, O, Ho, Wo] as a matrix
// [O, P]). A transposed convolution's backward pass asks for both of one input. The weight
// gradient's groups each make a partial product of their own, added to dw in the groups' order.
template <class T>
void patch_products(T* y, const T* w, bool accumulate, T* dw, const T* dz, const T* x, const Conv2dShape& s) {
    const int64_t HoWo = s.Ho * s.Wo, OK = s.O * s.K(), groups = image_groups(s, conv_group_columns).count;
    if (groups == 0 || (!y && !dw)) return;
    T* partial = dw ? scratch<T, 2>(groups * OK) : nullptr;  // the calling thread's; the groups' threads write it
    for_image_groups(s, conv_group_columns, [&](int64_t q, int64_t n0, const Conv2dShape& part) {
        const auto split = split_patches(x + n0 * s.C * s.H * s.W, part);
        if (y)
            gemm(channels_by_pixels(y + n0 * s.O * HoWo, part.N, s.O, HoWo), row_major(w, s.O, s.K()),
                 Patches<T>{split}, accumulate);
        if (dw)
            gemm(row_major(partial + q * OK, s.O, s.K()), channels_by_pixels(dz + n0 * s.O * HoWo, part.N, s.O, HoWo),
                 PatchesTransposed<T>{split}, false);
    });
    if (!dw) return;
#pragma omp parallel for schedule(static) if (groups * OK >= parallel_grain)
    for (int64_t i = 0; i < OK; ++i) {
        T sum = partial[i];
        for (int64_t q = 1; q < groups; ++q) sum += partial[q * OK + i];
        dw[i] += sum;
    }
}

// y [N, O, Ho, Wo] (= or +=) conv(x [N, C, H, W], w [O, C, kh, kw])
template <class T>
void conv2d_apply(T* y, const T* x, const T* w, bool accumulate, const Conv2dShape& s) {
    patch_products<T>(y, w, accumulate, nullptr, nullptr, x, s);
}

// dx [N, C, H, W] += the convolution's input gradient for dy [N, O, Ho, Wo]: col2im(Wm^T dY).
// A few images at a time: their patch gradients (K x g*Ho*Wo, a few hundred KiB that stay in
// cache), then col2im onto their own input planes. Groups of at least 256 columns: on small images
// (4x4 pixels) a GEMM per image would fill only half of each micro-tile's columns.
template <class T>
void conv2d_input_grad(T* dx, const T* dy, const T* w, const Conv2dShape& s) {
    const int64_t K = s.K(), HoWo = s.Ho * s.Wo;
    for_image_groups(s, 256, [&](int64_t, int64_t n0, const Conv2dShape& part) {
        T* cols = scratch<T>(K * part.N * HoWo);
        gemm(row_major(cols, K, part.N * HoWo), transposed(w, s.O, K),
             channels_by_pixels(dy + n0 * s.O * HoWo, part.N, s.O, HoWo), false);
        col2im(dx + n0 * s.C * s.H * s.W, cols, part);
    });
}

// dw [O, C, kh, kw] += dY im2col(x)^T, with dY = dy [N, O, Ho, Wo] as a matrix [O, P]
template <class T>
void conv2d_weight_grad(T* dw, const T* dy, const T* x, const Conv2dShape& s) {
    patch_products<T>(nullptr, nullptr, false, dw, dy, x, s);
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
