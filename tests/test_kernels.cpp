// Kernels against the plainest loops that define them.
#include <cstring>
#include <omp.h>

#include <algorithm>
#include <array>
#include <bit>
#include <functional>
#include <tuple>
#include <vector>

#include "elbo/kernels/cpu/optim.hpp"
#include "elbo/kernels/cpu/reference.hpp"
#include "helpers.hpp"

using namespace elbo;
using testing::randn;
using testing::relative_difference;

namespace {

// The shape the kernels take for conv2d of x [N, C, H, W] by w [O, C, k, k], its output size from
// the definition: Ho = (H + 2 pad - dil (k - 1) - 1) / stride + 1.
kernels::Conv2dShape conv_shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t k, int64_t stride,
                                int64_t pad, int64_t dil) {
    return {N, C, H, W, O, (H + 2 * pad - dil * (k - 1) - 1) / stride + 1, (W + 2 * pad - dil * (k - 1) - 1) / stride + 1,
            k, k, stride, pad, dil};
}

// For conv_transpose2d of x [N, Ci, H, W] by w [Ci, Co, k, k]: the convolution it is the adjoint of,
// whose input is the output, Ho = (H - 1) stride - 2 pad + dil (k - 1) + out_pad + 1.
kernels::Conv2dShape transposed_shape(int64_t N, int64_t Ci, int64_t H, int64_t W, int64_t Co, int64_t k,
                                      int64_t stride, int64_t pad, int64_t dil, int64_t out_pad) {
    const int64_t Ho = (H - 1) * stride - 2 * pad + dil * (k - 1) + out_pad + 1;
    const int64_t Wo = (W - 1) * stride - 2 * pad + dil * (k - 1) + out_pad + 1;
    return {N, Co, Ho, Wo, Ci, H, W, k, k, stride, pad, dil};
}

// conv2d by its reference kernel, the seven loops of its definition.
template <class T>
Tensor<T> naive_conv2d(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b, int64_t stride,
                       int64_t pad, int64_t dil) {
    const kernels::Conv2dShape s = conv_shape(x.size(0), x.size(1), x.size(2), x.size(3), w.size(0), w.size(2), stride, pad, dil);
    Tensor<T> y(Shape{s.N, s.O, s.Ho, s.Wo});
    kernels::reference::conv2d_forward(y.data(), x.data(), w.data(), b.data(), s);
    return y;
}

// conv_transpose2d by its reference kernel: every input element scatters w times itself.
template <class T>
Tensor<T> naive_conv_transpose2d(const Tensor<T>& x, const Tensor<T>& w, const Tensor<T>& b,
                                 int64_t stride, int64_t pad, int64_t out_pad, int64_t dil) {
    const kernels::Conv2dShape s =
        transposed_shape(x.size(0), x.size(1), x.size(2), x.size(3), w.size(1), w.size(2), stride, pad, dil, out_pad);
    Tensor<T> y(Shape{s.N, s.C, s.H, s.W});
    kernels::reference::conv_transpose2d_forward(y.data(), x.data(), w.data(), b.data(), s);
    return y;
}

struct ConvCase {
    int64_t N, C, H, W, O, k, stride, pad, dil, out_pad;
};

// Batch 1 and 5, odd and non-square images, strides 1-3, padding 0-2, dilation 2, output_padding 1.
std::string describe(const ConvCase& c) {
    return str("N=", c.N, " C=", c.C, " HxW=", c.H, "x", c.W, " O=", c.O, " k=", c.k, " stride=", c.stride,
               " padding=", c.pad, " dilation=", c.dil, " output_padding=", c.out_pad);
}

const ConvCase conv_cases[] = {
    {1, 1, 5, 5, 1, 3, 1, 0, 1, 0},  {5, 3, 7, 6, 4, 3, 2, 1, 1, 1}, {2, 2, 9, 11, 3, 4, 3, 2, 1, 2},
    {1, 3, 8, 7, 2, 3, 1, 1, 2, 0},  {5, 2, 6, 5, 3, 2, 2, 0, 2, 1}, {3, 4, 16, 16, 5, 4, 2, 1, 1, 1},
    {1, 2, 4, 9, 2, 1, 3, 0, 1, 0},
    // Stride 2 with an even kernel, odd widths: col2im adds kernel columns in pairs, ends one-sided.
    {2, 3, 9, 11, 4, 2, 2, 0, 1, 0}, {1, 2, 11, 7, 3, 4, 2, 2, 1, 1},
    // 8 x 8 outputs: the input gradient's GEMM takes 4 images at a time, here 4 and then 1.
    {5, 2, 16, 16, 3, 4, 2, 1, 1, 0},
    // Large enough for the GEMM's edges: two k blocks (K = 360), tiles cut at every border.
    {2, 40, 12, 13, 23, 3, 1, 1, 1, 0}, {3, 17, 20, 18, 37, 4, 2, 1, 1, 1},
};

// The operand layouts a GEMM reads and writes in place.
enum class Layout { row_major, col_major, grouped };

// A [rows, cols] matrix in `storage` laid out as `layout` (grouped: [cols/group, rows, group], the
// NCHW tensor seen as [channels, images x pixels]).
template <class T>
kernels::MatrixView<T> view(std::vector<T>& storage, Layout layout, int64_t rows, int64_t cols, int64_t group) {
    storage.resize(static_cast<size_t>(rows * cols));
    if (layout == Layout::row_major) return kernels::row_major(storage.data(), rows, cols);
    if (layout == Layout::col_major) return kernels::col_major(storage.data(), rows, cols);
    return kernels::channels_by_pixels(storage.data(), cols / group, rows, group);
}

template <class T>
kernels::MatrixView<const T> as_const(const kernels::MatrixView<T>& v) {
    return v;
}

}  // namespace

TEST_SUITE("kernels") {

TEST_CASE_TEMPLATE("conv2d forward matches the seven-loop definition", T, float, double) {
    for (const ConvCase& c : conv_cases) {
        INFO(describe(c));
        Var<T> x(randn<T>(Shape{c.N, c.C, c.H, c.W}, 1));
        Var<T> w(randn<T>(Shape{c.O, c.C, c.k, c.k}, 2));
        Var<T> b(randn<T>(Shape{c.O}, 3));
        Var<T> y = conv2d(x, w, b, {.stride = c.stride, .padding = c.pad, .dilation = c.dil});
        // float: each output sums C*k*k products of N(0,1) values, rounded once per term.
        CHECK(relative_difference(y.value(), naive_conv2d(x.value(), w.value(), b.value(), c.stride, c.pad, c.dil)) <
              (sizeof(T) == 4 ? 1e-5 : 1e-13));
    }
}

TEST_CASE_TEMPLATE("conv_transpose2d forward matches its scatter definition", T, float, double) {
    for (const ConvCase& c : conv_cases) {
        if (c.out_pad >= c.stride && c.out_pad >= c.dil) continue;
        INFO(describe(c));
        Var<T> x(randn<T>(Shape{c.N, c.C, c.H, c.W}, 4));
        Var<T> w(randn<T>(Shape{c.C, c.O, c.k, c.k}, 5));
        Var<T> b(randn<T>(Shape{c.O}, 6));
        Var<T> y = conv_transpose2d(
            x, w, b, {.stride = c.stride, .padding = c.pad, .output_padding = c.out_pad, .dilation = c.dil});
        CHECK(relative_difference(y.value(), naive_conv_transpose2d(x.value(), w.value(), b.value(), c.stride,
                                                                    c.pad, c.out_pad, c.dil)) <
              (sizeof(T) == 4 ? 1e-5 : 1e-13));
    }
}

TEST_CASE("conv_transpose2d is the adjoint of conv2d: <conv2d(x), y> = <x, conv_transpose2d(y)>") {
    for (const ConvCase& c : conv_cases) {
        if (c.out_pad >= c.stride && c.out_pad >= c.dil) continue;
        INFO(describe(c));
        // y lives in conv2d's output space; conv_transpose2d maps it back to x's size.
        Var<double> w(randn(Shape{c.O, c.C, c.k, c.k}, 7));
        Var<double> y(randn(Shape{c.N, c.O, c.H, c.W}, 8));
        const ConvTranspose2dOptions t{.stride = c.stride, .padding = c.pad, .output_padding = c.out_pad, .dilation = c.dil};
        Var<double> xt = conv_transpose2d(y, w, {}, t);
        Var<double> x(randn(xt.shape(), 9));
        Var<double> cx = conv2d(x, w, {}, {.stride = c.stride, .padding = c.pad, .dilation = c.dil});
        REQUIRE(cx.shape() == y.shape());
        double lhs = 0, rhs = 0;
        for (int64_t i = 0; i < y.numel(); ++i) lhs += cx.value()[i] * y.value()[i];
        for (int64_t i = 0; i < x.numel(); ++i) rhs += x.value()[i] * xt.value()[i];
        CHECK(lhs == doctest::Approx(rhs).epsilon(1e-12));
    }
}

// The conv cases above, and random ones: batch 1-4, 1-6 channels in and out, 1-13 pixels a side,
// kernels 1-5, stride 1-3, padding 0-2, dilation 1-3, output_padding below stride or dilation.
std::vector<ConvCase> fast_against_reference_cases() {
    std::vector<ConvCase> cases(std::begin(conv_cases), std::end(conv_cases));
    // Batches in image groups (patch_products: the fewest images with 1,024 output pixels): 20 x 20
    // outputs in groups of 2, 2, 2 and 1; 32 x 32 outputs one image each, and the transposed
    // convolution's 64 x 64.
    cases.push_back({7, 3, 40, 40, 2, 4, 2, 1, 1, 0});
    cases.push_back({5, 2, 64, 64, 3, 4, 2, 1, 1, 0});
    // Output rows of whole packets (16 on every ISA's float and double), so the weight gradient runs
    // along rows: K = 27 and O = 5, both outside the tiles of 4; stride 1 with dilation 2.
    cases.push_back({2, 3, 32, 32, 5, 3, 2, 1, 1, 0});
    cases.push_back({1, 2, 20, 20, 3, 3, 1, 0, 2, 0});
    // K >= 256 and more than half a panel of channels: the forward pass by broadcasts, 75 output
    // positions (a last tile partly outside) and 20 channels (a panel partly outside).
    cases.push_back({3, 17, 10, 10, 20, 4, 2, 1, 1, 0});
    // The input gradient by phases (stride S dividing the kernel, S*S*C >= 4 micro-tiles' rows,
    // outputs large enough, O <= 32): stride 3, padding 2, rows and columns no window covers, one
    // and several image groups. The transposed convolutions' forward passes take it with C and O
    // exchanged (the last case).
    cases.push_back({2, 12, 13, 10, 3, 3, 3, 1, 1, 2});
    cases.push_back({3, 13, 33, 35, 5, 4, 2, 2, 1, 1});
    cases.push_back({3, 8, 50, 47, 4, 6, 3, 0, 1, 0});
    cases.push_back({9, 16, 32, 32, 8, 4, 2, 1, 1, 0});
    cases.push_back({2, 8, 20, 20, 16, 4, 2, 1, 1, 0});
    Generator gen(99);
    auto pick = [&](int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(gen.below(static_cast<uint64_t>(hi - lo + 1))); };
    while (cases.size() < std::size(conv_cases) + 40) {
        ConvCase c{pick(1, 4), pick(1, 6), pick(1, 13), pick(1, 13), pick(1, 6), pick(1, 5), pick(1, 3), pick(0, 2), pick(1, 3), 0};
        c.out_pad = pick(0, std::max(c.stride, c.dil) - 1);
        const kernels::Conv2dShape s = conv_shape(c.N, c.C, c.H, c.W, c.O, c.k, c.stride, c.pad, c.dil);
        const kernels::Conv2dShape t = transposed_shape(c.N, c.C, c.H, c.W, c.O, c.k, c.stride, c.pad, c.dil, c.out_pad);
        if (s.Ho < 1 || s.Wo < 1 || t.H < 1 || t.W < 1) continue;
        cases.push_back(c);
    }
    return cases;
}

// Runs a kernel pair (fast, reference) of one signature on the same inputs and compares every output:
// the forward's y, and the backward's dx, dw, db, which start from the same random values (the
// kernels add into them).
template <class T>
struct KernelPair {
    Shape x, w, b, y;
    std::function<void(T*, const T*, const T*, const T*, const kernels::Activation&)> fast_forward, reference_forward;
    std::function<void(T*, T*, T*, const T*, const T*, const T*, const kernels::Assign&)> fast_backward,
        reference_backward;

    // The forward pass with an activation (the layer's own, kernels/cpu/layer_activation.hpp) is the
    // pass without one followed by the activation's own kernel, bit for bit, on every path of the
    // fast kernels; and, `with_reference`, the reference's close to it.
    void check_activation(uint64_t seed, const kernels::Activation& act, bool with_reference = true) const {
        const double tolerance = sizeof(T) == 4 ? 2e-5 : 1e-12;
        const Tensor<T> xv = randn<T>(x, seed), wv = randn<T>(w, seed + 1), bv = randn<T>(b, seed + 2);
        Tensor<T> fused(y), after(y), reference(y);
        fast_forward(fused.data(), xv.data(), wv.data(), bv.data(), act);
        fast_forward(after.data(), xv.data(), wv.data(), bv.data(), {});
        if (act.kind == kernels::Activation::Kind::relu) kernels::relu_forward(after.data(), after.data(), after.numel());
        if (act.kind == kernels::Activation::Kind::leaky_relu)
            kernels::leaky_relu_forward(after.data(), after.data(), after.numel(), static_cast<T>(act.slope));
        CHECK(std::memcmp(fused.data(), after.data(), sizeof(T) * static_cast<size_t>(fused.numel())) == 0);
        if (with_reference) {
            reference_forward(reference.data(), xv.data(), wv.data(), bv.data(), act);
            CHECK(relative_difference(fused, reference) < tolerance);
        }
        int64_t negative = 0;  // the activation did something: some outputs were negative
        for (int64_t i = 0; i < fused.numel(); ++i) negative += fused[i] <= 0;
        if (fused.numel() >= 8) CHECK(negative > 0);
    }

    // `writes`: also the gradients written rather than added to (under qemu's SVE these backward
    // passes are minutes, so the shapes' test takes them on every fifth shape).
    void check(uint64_t seed, bool writes = true) const {
        const double tolerance = sizeof(T) == 4 ? 2e-5 : 1e-12;
        const Tensor<T> xv = randn<T>(x, seed), wv = randn<T>(w, seed + 1), bv = randn<T>(b, seed + 2);
        const Tensor<T> dy = randn<T>(y, seed + 3);
        Tensor<T> y_fast(y), y_reference(y);
        fast_forward(y_fast.data(), xv.data(), wv.data(), bv.data(), {});
        reference_forward(y_reference.data(), xv.data(), wv.data(), bv.data(), {});
        CHECK(relative_difference(y_fast, y_reference) < tolerance);
        fast_forward(y_fast.data(), xv.data(), wv.data(), nullptr, {});  // no bias
        reference_forward(y_reference.data(), xv.data(), wv.data(), nullptr, {});
        CHECK(relative_difference(y_fast, y_reference) < tolerance);

        Tensor<T> dx_fast = randn<T>(x, seed + 4), dw_fast = randn<T>(w, seed + 5), db_fast = randn<T>(b, seed + 6);
        Tensor<T> dx_ref = dx_fast.clone(), dw_ref = dw_fast.clone(), db_ref = db_fast.clone();
        fast_backward(dx_fast.data(), dw_fast.data(), db_fast.data(), dy.data(), xv.data(), wv.data(), {});
        reference_backward(dx_ref.data(), dw_ref.data(), db_ref.data(), dy.data(), xv.data(), wv.data(), {});
        CHECK(relative_difference(dx_fast, dx_ref) < tolerance);
        CHECK(relative_difference(dw_fast, dw_ref) < tolerance);
        CHECK(relative_difference(db_fast, db_ref) < tolerance);
        // Each gradient on its own (the others null), as the ops ask for them.
        Tensor<T> dx_only = dx_ref.clone(), dw_only = dw_ref.clone();
        fast_backward(dx_only.data(), nullptr, nullptr, dy.data(), xv.data(), wv.data(), {});
        reference_backward(dx_ref.data(), nullptr, nullptr, dy.data(), xv.data(), wv.data(), {});
        CHECK(relative_difference(dx_only, dx_ref) < tolerance);
        fast_backward(nullptr, dw_only.data(), nullptr, dy.data(), xv.data(), wv.data(), {});
        reference_backward(nullptr, dw_ref.data(), nullptr, dy.data(), xv.data(), wv.data(), {});
        CHECK(relative_difference(dw_only, dw_ref) < tolerance);
        // Gradients written, not added to (each one's first, kernels/cpu/layer_assign.hpp): they start
        // as garbage and come out as the sums from zeros, the fast kernel's bit for bit, the
        // reference's within rounding; all three at once, and each on its own.
        if (!writes) return;
        for (const kernels::Assign& assign :
             {kernels::Assign{true, true, true}, {.dx = true}, {.dw = true}, {.db = true}}) {
            Tensor<T> set[3] = {randn<T>(x, seed + 7), randn<T>(w, seed + 8), randn<T>(b, seed + 9)};
            Tensor<T> set_ref[3] = {randn<T>(x, seed + 10), randn<T>(w, seed + 11), randn<T>(b, seed + 12)};
            Tensor<T> zero[3] = {Tensor<T>::zeros(x), Tensor<T>::zeros(w), Tensor<T>::zeros(b)};
            Tensor<T> zero_ref[3] = {Tensor<T>::zeros(x), Tensor<T>::zeros(w), Tensor<T>::zeros(b)};
            const bool on[3] = {assign.dx, assign.dw, assign.db};
            auto pointers = [&on](Tensor<T>* g) {
                return std::array<T*, 3>{on[0] ? g[0].data() : nullptr, on[1] ? g[1].data() : nullptr,
                                         on[2] ? g[2].data() : nullptr};
            };
            const auto fs = pointers(set), rs = pointers(set_ref), fz = pointers(zero), rz = pointers(zero_ref);
            fast_backward(fs[0], fs[1], fs[2], dy.data(), xv.data(), wv.data(), assign);
            fast_backward(fz[0], fz[1], fz[2], dy.data(), xv.data(), wv.data(), {});
            reference_backward(rs[0], rs[1], rs[2], dy.data(), xv.data(), wv.data(), assign);
            reference_backward(rz[0], rz[1], rz[2], dy.data(), xv.data(), wv.data(), {});
            for (int g = 0; g < 3; ++g) {
                if (!on[g]) continue;
                INFO("gradient " << "xwb"[g]);
                CHECK(std::memcmp(set[g].data(), zero[g].data(), sizeof(T) * static_cast<size_t>(set[g].numel())) == 0);
                CHECK(std::memcmp(set_ref[g].data(), zero_ref[g].data(),
                                  sizeof(T) * static_cast<size_t>(set_ref[g].numel())) == 0);
                CHECK(relative_difference(set[g], zero_ref[g]) < tolerance);
            }
        }
    }
};

template <class T>
KernelPair<T> conv2d_pair(const ConvCase& c) {
    const kernels::Conv2dShape s = conv_shape(c.N, c.C, c.H, c.W, c.O, c.k, c.stride, c.pad, c.dil);
    return {Shape{s.N, s.C, s.H, s.W}, Shape{s.O, s.C, s.kh, s.kw}, Shape{s.O}, Shape{s.N, s.O, s.Ho, s.Wo},
            [s](T* y, const T* x, const T* w, const T* b, const kernels::Activation& a) {
                kernels::conv2d_forward(y, x, w, b, s, a);
            },
            [s](T* y, const T* x, const T* w, const T* b, const kernels::Activation& a) {
                kernels::reference::conv2d_forward(y, x, w, b, s, a);
            },
            [s](T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const kernels::Assign& set) {
                kernels::conv2d_backward(dx, dw, db, dy, x, w, s, set);
            },
            [s](T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const kernels::Assign& set) {
                kernels::reference::conv2d_backward(dx, dw, db, dy, x, w, s, set);
            }};
}

template <class T>
KernelPair<T> conv_transpose2d_pair(const ConvCase& c) {
    const kernels::Conv2dShape s = transposed_shape(c.N, c.C, c.H, c.W, c.O, c.k, c.stride, c.pad, c.dil, c.out_pad);
    return {Shape{s.N, s.O, s.Ho, s.Wo}, Shape{s.O, s.C, s.kh, s.kw}, Shape{s.C}, Shape{s.N, s.C, s.H, s.W},
            [s](T* y, const T* x, const T* w, const T* b, const kernels::Activation& a) {
                kernels::conv_transpose2d_forward(y, x, w, b, s, a);
            },
            [s](T* y, const T* x, const T* w, const T* b, const kernels::Activation& a) {
                kernels::reference::conv_transpose2d_forward(y, x, w, b, s, a);
            },
            [s](T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const kernels::Assign& set) {
                kernels::conv_transpose2d_backward(dx, dw, db, dy, x, w, s, set);
            },
            [s](T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const kernels::Assign& set) {
                kernels::reference::conv_transpose2d_backward(dx, dw, db, dy, x, w, s, set);
            }};
}

template <class T>
KernelPair<T> linear_pair(int64_t N, int64_t I, int64_t O) {
    return {Shape{N, I}, Shape{O, I}, Shape{O}, Shape{N, O},
            [=](T* y, const T* x, const T* w, const T* b, const kernels::Activation& a) {
                kernels::linear_forward(y, x, w, b, N, I, O, a);
            },
            [=](T* y, const T* x, const T* w, const T* b, const kernels::Activation& a) {
                kernels::reference::linear_forward(y, x, w, b, N, I, O, a);
            },
            [=](T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const kernels::Assign& set) {
                kernels::linear_backward(dx, dw, db, dy, x, w, N, I, O, set);
            },
            [=](T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, const kernels::Assign& set) {
                kernels::reference::linear_backward(dx, dw, db, dy, x, w, N, I, O, set);
            }};
}

TEST_CASE_TEMPLATE("every fast kernel matches its reference, forward and backward, on many shapes", T, float, double) {
    uint64_t seed = 100;
    int64_t shape = 0;
    for (const ConvCase& c : fast_against_reference_cases()) {
        INFO(describe(c));
        const bool writes = shape++ % 5 == 0;
        {
            INFO("conv2d");
            conv2d_pair<T>(c).check(seed += 10, writes);
        }
        INFO("conv_transpose2d");
        conv_transpose2d_pair<T>(c).check(seed += 10, writes);
    }
    // Linear: one row, odd sizes, the discriminator's 64 x 1000 x 1000 scaled down, a long K; the
    // forward pass with the weight broadcast from place (K >= 256) in one panel of the batch and in
    // three, the last partly outside.
    for (auto [N, I, O] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {1, 7, 3}, {5, 7, 3}, {64, 100, 100},
                           {13, 257, 31}, {3, 2000, 5}, {70, 10, 130}, {70, 300, 29}}) {
        INFO("linear N=", N, " I=", I, " O=", O);
        linear_pair<T>(N, I, O).check(seed += 10);
    }
}

TEST_CASE_TEMPLATE("a layer's activation, applied by its kernel, is the activation's own kernel after it", T, float,
                   double) {
    uint64_t seed = 7000;
    const kernels::Activation relu = kernels::Activation::relu(), leaky = kernels::Activation::leaky_relu(0.2);
    // Every shape of the test above with one of the two activations in turn, and against the
    // reference loops on every fifth only: under qemu these are minutes.
    int64_t shape = 0;
    for (const ConvCase& c : fast_against_reference_cases()) {
        const kernels::Activation& act = shape % 2 ? leaky : relu;
        const bool with_reference = shape++ % 5 == 0;
        INFO(describe(c), " leaky ", act.kind == kernels::Activation::Kind::leaky_relu);
        conv2d_pair<T>(c).check_activation(seed += 10, act, with_reference);
        conv_transpose2d_pair<T>(c).check_activation(seed += 10, act, with_reference);
    }
    for (const kernels::Activation& act : {relu, leaky}) {
        INFO("leaky ", act.kind == kernels::Activation::Kind::leaky_relu);
        // The shapes of the test above; and the batch of 64 images whose groups run on the threads.
        for (auto [N, I, O] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {5, 7, 3}, {64, 100, 100}, {13, 257, 31},
                               {70, 10, 130}, {70, 300, 29}}) {
            INFO("linear N=", N, " I=", I, " O=", O);
            linear_pair<T>(N, I, O).check_activation(seed += 10, act);
        }
        conv2d_pair<T>(ConvCase{64, 8, 16, 16, 32, 4, 2, 1, 1, 0}).check_activation(seed += 10, act);
        conv_transpose2d_pair<T>(ConvCase{64, 8, 16, 16, 32, 4, 2, 1, 1, 0}).check_activation(seed += 10, act);
    }
}

// L = <r, y(x, w, b)> for a random r: each reference backward, given dy = r, must return the
// central differences of L in every element of x, w and b.
void check_reference_against_differences(const KernelPair<double>& k, uint64_t seed) {
    Tensor<double> x = randn<double>(k.x, seed), w = randn<double>(k.w, seed + 1), b = randn<double>(k.b, seed + 2);
    const Tensor<double> r = randn<double>(k.y, seed + 3);
    auto loss = [&] {
        Tensor<double> y(k.y);
        k.reference_forward(y.data(), x.data(), w.data(), b.data(), {});
        double l = 0;
        for (int64_t i = 0; i < y.numel(); ++i) l += r[i] * y[i];
        return l;
    };
    Tensor<double> dx(k.x), dw(k.w), db(k.b);
    k.reference_backward(dx.data(), dw.data(), db.data(), r.data(), x.data(), w.data(), {});
    for (auto [name, value, grad] : {std::tuple{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}}) {
        INFO(name);
        double worst = 0;
        for (int64_t i = 0; i < value->numel(); ++i) {
            const double saved = (*value)[i], h = 1e-6;
            (*value)[i] = saved + h;
            const double up = loss();
            (*value)[i] = saved - h;
            const double down = loss();
            (*value)[i] = saved;
            worst = std::max(worst, std::abs((up - down) / (2 * h) - (*grad)[i]) / std::max(1.0, std::abs((*grad)[i])));
        }
        CHECK(worst < 1e-7);
    }
}

TEST_CASE("the reference kernels' backward passes match finite differences") {
    // Strides, padding, dilation, output_padding, odd and non-square images.
    for (const ConvCase& c : {ConvCase{2, 3, 7, 6, 4, 3, 2, 1, 1, 1}, ConvCase{1, 2, 9, 11, 3, 4, 3, 2, 1, 2},
                              ConvCase{2, 3, 8, 7, 2, 3, 1, 1, 2, 0}, ConvCase{1, 2, 6, 5, 3, 2, 2, 0, 2, 1}}) {
        INFO(describe(c));
        check_reference_against_differences(conv2d_pair<double>(c), 7);
        check_reference_against_differences(conv_transpose2d_pair<double>(c), 8);
    }
    check_reference_against_differences(linear_pair<double>(5, 7, 3), 9);
}

TEST_CASE_TEMPLATE("gemm matches the triple loop for every layout, edge and accumulation", T, float, double) {
    // M, N, K: one element; odd sizes that cut every tile; two k blocks; a small C over a long k
    // (the chunked path); no k at all.
    const int64_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {13, 37, 300}, {100, 34, 513}, {30, 40, 9000}, {3, 20, 0}};
    const double u = std::numeric_limits<T>::epsilon() / 2;
    Generator gen(17);
    for (const auto& [M, N, K] : shapes) {
        // The operands' values (A [M, K], B [K, N], C [M, N] row by row) and the exact products, in
        // double, once a shape: the same for every layout (the triple loop, run per layout, was most
        // of this test's time under qemu).
        std::vector<T> va(static_cast<size_t>(M * K)), vb(static_cast<size_t>(K * N)), vc(static_cast<size_t>(M * N));
        for (std::vector<T>* v : {&va, &vb, &vc})
            for (T& x : *v) x = static_cast<T>(gen.normal());
        std::vector<double> product(vc.size()), scale(vc.size());
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j)
                for (int64_t k = 0; k < K; ++k) {
                    const double p = double(va[static_cast<size_t>(i * K + k)]) * double(vb[static_cast<size_t>(k * N + j)]);
                    product[static_cast<size_t>(i * N + j)] += p;
                    scale[static_cast<size_t>(i * N + j)] += std::abs(p);
                }
        // Element (i, j) of a view, wherever its layout keeps it.
        auto at = [](const auto& m, int64_t i, int64_t j) -> auto& { return m.p[i * m.rs + m.column_offset(j)]; };
        for (Layout la : {Layout::row_major, Layout::col_major, Layout::grouped})
            for (Layout lb : {Layout::row_major, Layout::col_major, Layout::grouped})
                for (Layout lc : {Layout::row_major, Layout::col_major, Layout::grouped})
                    for (bool accumulate : {false, true}) {
                        INFO("M=", M, " N=", N, " K=", K, " layouts ", int(la), int(lb), int(lc), " accumulate ", accumulate);
                        // Grouped operands hold their columns in groups of 5 (N, K multiples of 5 only).
                        if ((la == Layout::grouped && K % 5) || (lb == Layout::grouped && N % 5) ||
                            (lc == Layout::grouped && N % 5))
                            continue;
                        std::vector<T> sa, sb, sc;
                        auto a = view(sa, la, M, K, 5);
                        auto b = view(sb, lb, K, N, 5);
                        auto c = view(sc, lc, M, N, 5);
                        for (int64_t i = 0; i < M; ++i)
                            for (int64_t k = 0; k < K; ++k) at(a, i, k) = va[static_cast<size_t>(i * K + k)];
                        for (int64_t k = 0; k < K; ++k)
                            for (int64_t j = 0; j < N; ++j) at(b, k, j) = vb[static_cast<size_t>(k * N + j)];
                        for (int64_t i = 0; i < M; ++i)
                            for (int64_t j = 0; j < N; ++j) at(c, i, j) = vc[static_cast<size_t>(i * N + j)];
                        kernels::gemm(c, as_const(a), as_const(b), accumulate);
                        int wrong = 0;
                        for (int64_t i = 0; i < M; ++i)
                            for (int64_t j = 0; j < N; ++j) {
                                const size_t e = static_cast<size_t>(i * N + j);
                                const double before = accumulate ? double(vc[e]) : 0.0;
                                const double exact = before + product[e], bound_scale = std::abs(before) + scale[e];
                                // The classical bound for a sum of K + 1 rounded terms.
                                if (std::abs(double(at(c, i, j)) - exact) > (K + 2) * u * bound_scale) ++wrong;
                            }
                        CHECK(wrong == 0);
                    }
    }
}

TEST_CASE("gemm packs a small A once for all column ranges: right, and the same for 1 and 2 threads") {
    // C [100, 1000] over K = 300: the column ranges span every row (A packed before the ranges
    // start), two row blocks of A, three k blocks the last of them short; A row- and column-major.
    const int64_t M = 100, N = 1000, K = 300;
    const int threads = omp_get_max_threads();
    Generator gen(23);
    std::vector<float> sb, s1, s2;
    auto b = view(sb, Layout::row_major, K, N, 1);
    for (float& v : sb) v = static_cast<float>(gen.normal());
    for (Layout la : {Layout::row_major, Layout::col_major}) {
        INFO("A layout ", int(la));
        std::vector<float> sa;
        auto a = view(sa, la, M, K, 1);
        for (float& v : sa) v = static_cast<float>(gen.normal());
        omp_set_num_threads(1);
        kernels::gemm(view(s1, Layout::row_major, M, N, 1), as_const(a), as_const(b), false);
        omp_set_num_threads(2);
        kernels::gemm(view(s2, Layout::row_major, M, N, 1), as_const(a), as_const(b), false);
        omp_set_num_threads(threads);
        CHECK(s1 == s2);
        int wrong = 0;
        for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
                double exact = 0, scale = 0;
                for (int64_t k = 0; k < K; ++k) {
                    const double p = double(a.p[i * a.rs + a.column_offset(k)]) * double(sb[k * N + j]);
                    exact += p;
                    scale += std::abs(p);
                }
                if (std::abs(double(s2[i * N + j]) - exact) > (K + 2) * 0.5 * std::numeric_limits<float>::epsilon() * scale) ++wrong;
            }
        CHECK(wrong == 0);
    }
}

// C [M, N] = A B of random row-major A and B on one thread and on two, bit for bit the same, and
// every `every`-th value of C within the classical bound of the exact sum (the whole check would
// be slow under the ISA matrix's emulators).
void check_gemm_threads_and_sums(int64_t M, int64_t N, int64_t K, uint64_t seed, int64_t every) {
    const int threads = omp_get_max_threads();
    const Tensor<float> a = randn<float>(Shape{M, K}, seed), b = randn<float>(Shape{K, N}, seed + 1);
    Tensor<float> c1(Shape{M, N}), c2(Shape{M, N});
    omp_set_num_threads(1);
    kernels::gemm(kernels::row_major(c1.data(), M, N), kernels::row_major(a.data(), M, K), kernels::row_major(b.data(), K, N), false);
    omp_set_num_threads(2);
    kernels::gemm(kernels::row_major(c2.data(), M, N), kernels::row_major(a.data(), M, K), kernels::row_major(b.data(), K, N), false);
    omp_set_num_threads(threads);
    CHECK(c1.to_vector() == c2.to_vector());
    int wrong = 0;
    for (int64_t e = 0; e < M * N; e += every) {
        const int64_t i = e / N, j = e % N;
        double exact = 0, scale = 0;
        for (int64_t k = 0; k < K; ++k) {
            const double p = double(a[i * K + k]) * double(b[k * N + j]);
            exact += p;
            scale += std::abs(p);
        }
        if (std::abs(double(c2[e]) - exact) > (K + 2) * 0.5 * std::numeric_limits<float>::epsilon() * scale) ++wrong;
    }
    CHECK(wrong == 0);
}

TEST_CASE("gemm of a large product in deeper k blocks: right, and the same for 1 and 2 threads") {
    // C [512, 1000] over K = 520: M, N and K all from 512, so k blocks of KC_large (512, then a
    // short one of 8). On one thread one range packs A block by block; on two, A is packed once for
    // all column ranges, in blocks of the same depth.
    using Bk = kernels::gemm_detail::Blocking<float>;
    REQUIRE(Bk::depth(512, 1000, 520) == Bk::KC_large);
    REQUIRE(Bk::depth(512, 511, 520) == Bk::KC);
    check_gemm_threads_and_sums(512, 1000, 520, 41, 31);
}

TEST_CASE("gemm with an A past 2^20 values, packed by each column range: right, and the same for 1 and 2 threads") {
    // C [1030, 100] over K = 1024: too large an A to pack once for all column ranges, so each range
    // packs the rows it multiplies, and there is one range a thread.
    check_gemm_threads_and_sums(1030, 100, 1024, 31, 7);
}

TEST_CASE("gemm and the convolutions give bit-identical results for 1, 2 and 3 threads") {
    const int threads = omp_get_max_threads();
    auto run = [](int t) {
        omp_set_num_threads(t);
        Var<float> x(randn<float>(Shape{8, 6, 24, 24}, 1), true), w(randn<float>(Shape{16, 6, 4, 4}, 2), true);
        Var<float> y = conv2d(x, w, {}, {.stride = 2, .padding = 1});
        Var<float> z = conv_transpose2d(y, w, {}, {.stride = 2, .padding = 1});
        // 12 x 12 outputs: the forward pass and the weight gradients in image groups of 7 and 1, which
        // 2 threads share and 3 take one after another (patch_products).
        // 6 x 6 outputs: the input gradient's GEMM over groups of 7 images, here 7 and 1.
        Var<float> v(randn<float>(Shape{16, 16, 4, 4}, 5), true);
        Var<float> u = conv2d(y, v, {}, {.stride = 2, .padding = 1});
        // Output rows of 16 and 32 (whole packets on every ISA): the weight gradients along rows, in
        // one group whose tiles the threads share (3 images of 16 x 16) and in groups of one image
        // each (5 of 32 x 32); 5 channels out, so the last tile of channels is partly outside.
        Var<float> x16(randn<float>(Shape{3, 2, 32, 32}, 6)), w16(randn<float>(Shape{5, 2, 4, 4}, 7), true);
        Var<float> x32(randn<float>(Shape{5, 3, 64, 64}, 8)), w32(randn<float>(Shape{5, 3, 4, 4}, 9), true);
        // K = 320 and 24 channels: the forward pass by broadcasts, its tiles shared by the threads.
        Var<float> x20(randn<float>(Shape{4, 20, 12, 12}, 12)), w20(randn<float>(Shape{24, 20, 4, 4}, 13));
        Var<float> y20 = conv2d(x20, w20, {}, {.stride = 2, .padding = 1});
        Var<float> y16 = conv2d(x16, w16, {}, {.stride = 2, .padding = 1});
        Var<float> y32 = conv2d(x32, w32, {}, {.stride = 2, .padding = 1});
        // A Linear layer whose forward pass broadcasts its weight, the tiles shared by the threads.
        Var<float> xl(randn<float>(Shape{40, 600}, 10)), wl(randn<float>(Shape{50, 600}, 11), true);
        Var<float> yl = linear(xl, wl);
        backward(sum(z * z) + sum(u * u) + sum(y16 * y16) + sum(y32 * y32) + sum(yl * yl));
        std::vector<float> all(z.value().data(), z.value().data() + z.numel());
        all.insert(all.end(), x.grad().data(), x.grad().data() + x.numel());
        all.insert(all.end(), w.grad().data(), w.grad().data() + w.numel());
        all.insert(all.end(), v.grad().data(), v.grad().data() + v.numel());
        all.insert(all.end(), w16.grad().data(), w16.grad().data() + w16.numel());
        all.insert(all.end(), w32.grad().data(), w32.grad().data() + w32.numel());
        all.insert(all.end(), yl.value().data(), yl.value().data() + yl.numel());
        all.insert(all.end(), y20.value().data(), y20.value().data() + y20.numel());
        // A small C over a long k: the GEMM's chunked path.
        Tensor<float> a = randn<float>(Shape{20, 20000}, 3), b = randn<float>(Shape{20000, 30}, 4), c(Shape{20, 30});
        kernels::gemm(kernels::row_major(c.data(), 20, 30), kernels::row_major<const float>(a.data(), 20, 20000),
                      kernels::row_major<const float>(b.data(), 20000, 30), false);
        all.insert(all.end(), c.data(), c.data() + c.numel());
        return all;
    };
    const std::vector<float> one = run(1), two = run(2), three = run(3);
    omp_set_num_threads(threads);
    CHECK(one == two);
    CHECK(one == three);
}

TEST_CASE("linear matches its definition") {
    Var<double> x(randn(Shape{5, 7}, 1)), w(randn(Shape{3, 7}, 2)), b(randn(Shape{3}, 3));
    Var<double> y = linear(x, w, b);
    for (int64_t n = 0; n < 5; ++n)
        for (int64_t o = 0; o < 3; ++o) {
            double s = b.value()[o];
            for (int64_t i = 0; i < 7; ++i) s += x.value().at({n, i}) * w.value().at({o, i});
            CHECK(y.value().at({n, o}) == doctest::Approx(s).epsilon(1e-14));
        }
}

TEST_CASE("float sums in double drop nothing: parallel_sum, sum_of_squares and a bias's gradient against the sum term by term") {
    // GCC 12's SVE code for an `omp simd` double reduction over floats lost values from n = 17 on.
    // Each square is exact in double; the sums, in two orders, agree to about n times its epsilon.
    for (int64_t n : {1, 7, 16, 17, 49, 100, 1000, 4096, 4097, 10000}) {
        INFO("n = ", n);
        const Tensor<float> x = randn<float>(Shape{n}, static_cast<uint64_t>(n));
        double exact = 0, squares = 0;
        for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(x[i]), squares += double(x[i]) * double(x[i]);
        const double s = kernels::parallel_sum<float>(n, [&](int64_t b, int64_t m, float* out) {
            std::copy(x.data() + b, x.data() + b + m, out);
        });
        CHECK(s == doctest::Approx(exact).epsilon(1e-12));
        CHECK(kernels::sum_of_squares(x.data(), n) == doctest::Approx(squares).epsilon(1e-12));
        float db = 0;
        kernels::channel_sum_grad(&db, x.data(), 1, 1, n);
        CHECK(db == doctest::Approx(exact).epsilon(1e-6));
    }
}

TEST_CASE("sums are bit-identical for every thread count") {
    Tensor<float> x = randn<float>(Shape{1 << 20}, 11);
    auto sum = [&](int threads) {
        const int before = omp_get_max_threads();
        omp_set_num_threads(threads);
        const double s = kernels::parallel_sum<float>(x.numel(), [&](int64_t b, int64_t m, float* out) {
            std::copy(x.data() + b, x.data() + b + m, out);
        });
        omp_set_num_threads(before);
        return s;
    };
    CHECK(sum(1) == sum(2));
    CHECK(sum(1) == sum(3));
    auto squares = [&](int threads) {
        const int before = omp_get_max_threads();
        omp_set_num_threads(threads);
        const double s = kernels::sum_of_squares(x.data(), x.numel());
        omp_set_num_threads(before);
        return s;
    };
    CHECK(squares(1) == squares(2));
    CHECK(squares(1) == squares(3));
}

TEST_CASE("the optimizers' steps on Eigen arrays are their update applied element by element in double") {
    // Long enough for several blocks on both threads, and a tail shorter than a packet.
    const int64_t n = 5 * kernels::block + 7;
    const Tensor<float> w0 = randn<float>(Shape{n}, 21), g = randn<float>(Shape{n}, 22);
    const Tensor<float> m0 = randn<float>(Shape{n}, 23), v0 = randn<float>(Shape{n}, 24);
    auto to_double = [](const Tensor<float>& t) { return std::vector<double>(t.data(), t.data() + t.numel()); };
    // Relative to the values' scale, not to each value: w + -lr d cancels wherever w and lr d meet.
    auto close = [&](const Tensor<float>& got, const std::vector<double>& want) {
        double worst = 0;
        for (int64_t i = 0; i < n; ++i)
            worst = std::max(worst, std::fabs(got[i] - want[size_t(i)]) / std::max(1.0, std::fabs(want[size_t(i)])));
        return worst;
    };
    for (int variant = 0; variant < 4; ++variant) {
        INFO("sgd variant ", variant);
        const bool first = variant == 1, nesterov = variant == 2, plain = variant == 3;
        const kernels::SGDStep<float> s{0.1f, 0.9f, 0.75f, 0.01f, !plain, !plain, nesterov, first};
        const kernels::SGDStep<double> sd{0.1f, 0.9f, 0.75f, 0.01f, !plain, !plain, nesterov, first};
        Tensor<float> w = w0.clone(), buf = m0.clone();
        // The step returns the gradient's sum of squares, the same sum as sum_of_squares.
        CHECK(kernels::sgd_step(w.data(), g.data(), buf.data(), n, s) == kernels::sum_of_squares(g.data(), n));
        std::vector<double> wd = to_double(w0), bd = to_double(m0), gd = to_double(g);
        for (int64_t i = 0; i < n; ++i) kernels::sgd_update(wd[size_t(i)], gd[size_t(i)], bd[size_t(i)], sd);
        CHECK(close(w, wd) < 1e-6);
        CHECK(close(buf, bd) < 1e-6);
    }
    for (auto decay : {kernels::AdamDecay::none, kernels::AdamDecay::coupled, kernels::AdamDecay::decoupled}) {
        INFO("adam decay ", int(decay));
        const kernels::AdamStep<float> s{0.9f, 0.999f, 0.1f, 0.001f, 0.01f, 0.05f, 1e-8f, 0.1f, 0.999f, decay};
        const kernels::AdamStep<double> sd{0.9f, 0.999f, 0.1f, 0.001f, 0.01f, 0.05f, 1e-8f, 0.1f, 0.999f, decay};
        Tensor<float> w = w0.clone(), m = m0.clone(), v = v0.clone();
        for (int64_t i = 0; i < n; ++i) v[i] = std::fabs(v[i]);
        std::vector<double> wd = to_double(w0), md = to_double(m0), vd = to_double(v), gd = to_double(g);
        CHECK(kernels::adam_step(w.data(), g.data(), m.data(), v.data(), n, s) == kernels::sum_of_squares(g.data(), n));
        for (int64_t i = 0; i < n; ++i) kernels::adam_update(wd[size_t(i)], gd[size_t(i)], md[size_t(i)], vd[size_t(i)], sd);
        CHECK(close(w, wd) < 1e-6);
        CHECK(close(m, md) < 1e-6);
        CHECK(close(v, vd) < 1e-6);
    }
}

namespace {

// |got - exact| in units of the last place of the float nearest to exact.
double ulps(float got, double exact) {
    const float nearest = static_cast<float>(exact);
    const double ulp = std::nextafter(std::fabs(nearest), INFINITY) - std::fabs(nearest);
    return std::fabs(static_cast<double>(got) - exact) / ulp;
}

// Every `stride`-th float of [lo, hi] (by bit pattern, both ends included), both of one sign.
std::vector<float> floats(float lo, float hi, uint32_t stride) {
    uint32_t a = std::bit_cast<uint32_t>(lo), b = std::bit_cast<uint32_t>(hi);
    if (a > b) std::swap(a, b);
    std::vector<float> xs;
    for (uint64_t u = a; u <= b; u += stride) xs.push_back(std::bit_cast<float>(static_cast<uint32_t>(u)));
    xs.push_back(lo);
    xs.push_back(hi);
    return xs;
}

// The worst error, in ulp, of kernel(y, x, n) over the values xs, against exact(x) in double.
template <class Kernel, class Exact>
double worst_ulps(const std::vector<float>& xs, Kernel kernel, Exact exact) {
    std::vector<float> ys(xs.size());
    kernel(ys.data(), xs.data(), static_cast<int64_t>(xs.size()));
    double worst = 0;
    for (size_t i = 0; i < xs.size(); ++i) worst = std::max(worst, ulps(ys[i], exact(static_cast<double>(xs[i]))));
    return worst;
}

// kernel(y, x, n) on the one value x.
template <class Kernel>
float at(Kernel kernel, float x) {
    float y;
    kernel(&y, &x, 1);
    return y;
}

auto both_signs(float lo, float hi, uint32_t stride) {
    std::vector<float> xs = floats(-hi, -lo, stride), positive = floats(lo, hi, stride);
    xs.insert(xs.end(), positive.begin(), positive.end());
    return xs;
}

}  // namespace

// The bounds hold on SSE2, AVX2, AVX-512, NEON and SVE (make test-isa); the figures are AVX-512's.
TEST_CASE("exp, log, log1p and tanh on Eigen's arrays are within a few ulp of the exact values") {
    const double exp_err = worst_ulps(floats(-87.0f, 88.72f, 97), kernels::exp_forward<float>,
                                      [](double x) { return std::exp(x); });
    const double log_err = worst_ulps(floats(1e-30f, 1e30f, 97), kernels::log_forward<float>,
                                      [](double x) { return std::log(x); });
    // log1p_unit and log1p_exp_neg_abs take one block at a time.
    auto log1p = [](float* y, const float* e, int64_t n) {
        kernels::for_each_block(n, [&](int64_t b, int64_t m) { kernels::log1p_unit(y + b, e + b, m); });
    };
    const double log1p_err = worst_ulps(floats(1e-30f, 1.0f, 97), log1p, [](double e) { return std::log1p(e); });
    const double tanh_err = worst_ulps(both_signs(1e-6f, 12.0f, 97), kernels::tanh_forward<float>,
                                       [](double x) { return std::tanh(x); });
    MESSAGE("worst exp ", exp_err, ", log ", log_err, ", log1p ", log1p_err, ", tanh ", tanh_err, " ulp");
    CHECK(exp_err < 2);
    CHECK(log_err < 2);
    CHECK(log1p_err < 2);
    CHECK(tanh_err < 8);  // Eigen's rational tanh: 4.4 ulp with FMA (AVX2, NEON), 6.6 without (SSE2)
    CHECK(at(log1p, 0.0f) == 0.0f);
    CHECK(at(log1p, 1e-30f) == 1e-30f);  // log1p, not log(1 + e)
    CHECK(at(kernels::exp_forward<float>, -INFINITY) == 0.0f);
    CHECK(std::isinf(at(kernels::exp_forward<float>, 88.73f)));  // e^88.72 is the last finite one
    CHECK(std::isnan(at(kernels::exp_forward<float>, NAN)));
}

TEST_CASE("sigmoid and softplus are within a few ulp, and saturate cleanly") {
    const std::vector<float> xs = both_signs(1e-6f, 80.0f, 97);
    const double sigmoid_err = worst_ulps(xs, kernels::sigmoid_forward<float>, [](double x) {
        return 1.0 / (1.0 + std::exp(-x));
    });
    const double softplus_err = worst_ulps(both_signs(1e-6f, 20.0f, 97), kernels::softplus_forward<float>,
                                           [](double x) { return std::log1p(std::exp(x)); });
    MESSAGE("worst sigmoid ", sigmoid_err, " ulp, worst softplus ", softplus_err, " ulp");
    CHECK(sigmoid_err < 4);  // 1 / (1 + exp(-x)), as PyTorch's vectorized sigmoid computes it too
    CHECK(softplus_err < 3);
    CHECK(at(kernels::sigmoid_forward<float>, -INFINITY) == 0.0f);
    CHECK(at(kernels::sigmoid_forward<float>, INFINITY) == 1.0f);
    CHECK(std::isnan(at(kernels::sigmoid_forward<float>, NAN)));
    CHECK(at(kernels::softplus_forward<float>, -INFINITY) == 0.0f);
    CHECK(at(kernels::softplus_forward<float>, 25.0f) == 25.0f);  // PyTorch's threshold
}

TEST_CASE("relu's backward is 0 wherever x <= 0, whatever dy holds, like PyTorch's threshold_backward") {
    const std::vector<float> x{-1.0f, 0.0f, 2.0f, 3.0f}, dy{NAN, INFINITY, 5.0f, NAN};
    std::vector<float> dx(4, 1.0f);
    kernels::relu_backward(dx.data(), dy.data(), x.data(), 4, /*assign=*/true);
    CHECK(dx[0] == 0.0f);
    CHECK(dx[1] == 0.0f);
    CHECK(dx[2] == 5.0f);
    CHECK(std::isnan(dx[3]));
}

TEST_CASE("bce_with_logits stays finite where sigmoid saturates and equals bce elsewhere") {
    Var<float> logits(Tensor<float>::from_vector(Shape{4}, {-1000.0f, 1000.0f, 0.3f, -2.0f}));
    Var<float> target(Tensor<float>::from_vector(Shape{4}, {1.0f, 0.0f, 0.25f, 0.9f}));
    Var<float> l = bce_with_logits(logits, target, Reduction::none);
    CHECK(l.value()[0] == doctest::Approx(1000.0f));
    CHECK(l.value()[1] == doctest::Approx(1000.0f));
    // The probability form clamps each log at -100 instead.
    Var<float> p = bce(sigmoid(logits), target, Reduction::none);
    CHECK(p.value()[0] == doctest::Approx(100.0f));
    for (int i = 2; i < 4; ++i) CHECK(l.value()[i] == doctest::Approx(p.value()[i]).epsilon(1e-6));
}

TEST_CASE("log_softmax rows are normalised and survive huge logits") {
    Var<double> x(Tensor<double>::from_vector(Shape{2, 3}, {1000, 1001, 1002, -5, 0, 5}));
    Var<double> y = log_softmax(x);
    for (int64_t n = 0; n < 2; ++n) {
        double s = 0;
        for (int64_t k = 0; k < 3; ++k) s += std::exp(y.value().at({n, k}));
        CHECK(s == doctest::Approx(1.0).epsilon(1e-12));  // 1000 - 1002.4 keeps 13 digits
    }
    // Shifting a row changes nothing: [1000, 1001, 1002] behaves as [0, 1, 2].
    CHECK(y.value().at({0, 2}) == doctest::Approx(-std::log(std::exp(-2.0) + std::exp(-1.0) + 1.0)).epsilon(1e-12));
}

TEST_CASE("ε is named by the seed, the step and each image's place: the same for any split of the batch") {
    const StepDraws all{.seed = 4, .step = 9};
    const Tensor<float> whole = standard_normal_like(Var<float>(Tensor<float>(Shape{16, 5})), all).value();
    // Row n, column d: normal d of image n's stream, in double, rounded to float.
    for (int64_t n = 0; n < 16; ++n)
        for (int64_t d = 0; d < 5; ++d)
            CHECK(whole.at({n, d}) ==
                  static_cast<float>(random::normal_at(4, {Purpose::noise, 9, static_cast<uint32_t>(n)},
                                                       static_cast<uint32_t>(d))));
    // In double the same numbers, unrounded.
    const Tensor<double> in_double = standard_normal_like(Var<double>(Tensor<double>(Shape{16, 5})), all).value();
    CHECK(in_double.cast<float>().to_vector() == whole.to_vector());
    // Two processes of 4 images each: their rows are the one process's rows 0-7, and their second
    // batches' rows 8-15.
    for (int64_t rank = 0; rank < 2; ++rank) {
        const StepDraws mine{.seed = 4, .step = 9, .first_image = 4 * rank, .global_batch = 8};
        const Var<float> four(Tensor<float>(Shape{4, 5}));
        CHECK(standard_normal_like(four, mine).value().to_vector() == whole.slice(4 * rank, 4 * rank + 4).to_vector());
        CHECK(standard_normal_like(four, mine.second_batch(4)).value().to_vector() ==
              whole.slice(8 + 4 * rank, 12 + 4 * rank).to_vector());
    }
    // One process's second batch follows its first.
    CHECK(standard_normal_like(Var<float>(Tensor<float>(Shape{8, 5})), all.second_batch(8)).value().to_vector() ==
          whole.slice(8, 16).to_vector());
    // Another step or seed: other numbers.
    const Var<float> like(Tensor<float>(Shape{16, 5}));
    CHECK(standard_normal_like(like, StepDraws{.seed = 4, .step = 10}).value().to_vector() != whole.to_vector());
    CHECK(standard_normal_like(like, StepDraws{.seed = 5, .step = 9}).value().to_vector() != whole.to_vector());
    CHECK(testing::error_of([&] { standard_normal_like(Var<float>(Tensor<float>(Shape{16})), all); }) ==
          "standard_normal_like: expected a shape [N, D], got [16]");
}

TEST_CASE("ε has the moments of N(0, I), with no correlation between neighbouring images or latents") {
    const int64_t N = 8192, D = 10;
    const Tensor<double> eps = standard_normal_like(Var<double>(Tensor<double>(Shape{N, D})), StepDraws{.seed = 1}).value();
    double mean = 0, square = 0, images = 0, latents = 0;
    for (int64_t n = 0; n < N; ++n)
        for (int64_t d = 0; d < D; ++d) {
            const double v = eps.at({n, d});
            mean += v, square += v * v;
            if (n + 1 < N) images += v * eps.at({n + 1, d});
            if (d + 1 < D) latents += v * eps.at({n, d + 1});
        }
    const double count = static_cast<double>(N * D);
    // Standard errors: 1 / sqrt(81920) = 0.0035 for the mean and each correlation, 0.005 for E[v^2].
    CHECK(std::abs(mean / count) < 0.02);
    CHECK(std::abs(square / count - 1.0) < 0.03);
    CHECK(std::abs(images / static_cast<double>((N - 1) * D)) < 0.02);
    CHECK(std::abs(latents / static_cast<double>(N * (D - 1))) < 0.02);
}

TEST_CASE("permute_dims permutes each column within itself") {
    Var<float> z(randn<float>(Shape{6, 4}, 12));
    Var<float> p = permute_dims(z, StepDraws{.seed = 3});
    bool moved = false;
    for (int64_t d = 0; d < 4; ++d) {
        std::vector<float> before, after;
        for (int64_t n = 0; n < 6; ++n) {
            before.push_back(z.value().at({n, d}));
            after.push_back(p.value().at({n, d}));
        }
        moved = moved || before != after;
        std::sort(before.begin(), before.end());
        std::sort(after.begin(), after.end());
        CHECK(before == after);
    }
    CHECK(moved);
}

}
