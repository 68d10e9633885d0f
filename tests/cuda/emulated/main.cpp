// The CUDA module's kernel files, compiled by g++ against a host stand-in for their device layer
// (check.cuh and blas.cuh here), each kernel against its CPU twin: forward, and backward onto
// gradients that already hold values. It runs on every machine, GPU or not, nvcc or not, and under
// the sanitizers: an index that strays past a buffer is caught here before any GPU sees it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstring>
#include <functional>
#include <vector>

#include "elbo/cuda/kernels.hpp"
#include "elbo/elbo.hpp"

// The runtime the kernel files call (cuda/src/runtime.cu on a GPU), in host memory.
namespace elbo::cuda {
void copy_to_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void copy_on_device(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void fill(float* y, int64_t n, float value) { std::fill(y, y + n, value); }
}  // namespace elbo::cuda

using namespace elbo;
using Buffers = std::vector<std::vector<float>>;

namespace {

std::vector<float> randn(int64_t n, uint64_t seed, double stddev = 1.0) {
    Generator gen(seed);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = static_cast<float>(gen.normal(0.0, stddev));
    return v;
}

// call(buffers, emulated) runs a kernel, the CUDA one (emulated) or its CPU twin, writing into
// `buffers`; each runs on its own copy of `start`, and every buffer must agree to 1e-5 of its scale.
void twins(const Buffers& start, const std::function<void(Buffers&, bool)>& call) {
    Buffers cuda = start, cpu = start;
    call(cuda, true);
    call(cpu, false);
    for (size_t b = 0; b < start.size(); ++b) {
        double diff = 0.0, scale = 0.0;
        for (size_t i = 0; i < cpu[b].size(); ++i) {
            diff = std::max(diff, static_cast<double>(std::abs(cuda[b][i] - cpu[b][i])));
            scale = std::max(scale, static_cast<double>(std::abs(cpu[b][i])));
        }
        INFO("buffer ", b);
        CHECK(diff <= 1e-5 * scale);
    }
}

}  // namespace

// The kernel `name` of the CUDA module (emulated) or of the CPU (its twin), on the same arguments.
#define BOTH(name, ...) (emulated ? (void)cuda::name(__VA_ARGS__) : (void)kernels::name(__VA_ARGS__))

TEST_CASE("activations") {
    const int64_t n = 1000;
    std::vector<float> x = randn(n, 1, 5.0), positive(x), dy = randn(n, 2);
    for (float& v : positive) v = std::abs(v) + 0.1f;
    const Buffers out{std::vector<float>(n)}, grad{randn(n, 3)};
    auto unary = [&](auto forward, auto backward, const std::vector<float>& in, bool backward_reads_y) {
        twins(out, [&](Buffers& o, bool emulated) { forward(o[0].data(), in.data(), emulated); });
        std::vector<float> y(n);
        forward(y.data(), in.data(), false);
        for (bool assign : {false, true})
            twins(grad, [&](Buffers& o, bool emulated) {
                backward(o[0].data(), dy.data(), backward_reads_y ? y.data() : in.data(), assign, emulated);
            });
    };
#define UNARY(name, in, reads_y)                                                                                 \
    SUBCASE(#name) {                                                                                               \
        unary([&](float* y, const float* v, bool emulated) { BOTH(name##_forward, y, v, n); },                     \
              [&](float* d, const float* g, const float* v, bool assign, bool emulated) {                         \
                  BOTH(name##_backward, d, g, v, n, assign);                                                       \
              },                                                                                                   \
              in, reads_y);                                                                                        \
    }
    UNARY(relu, x, false)
    UNARY(sigmoid, x, true)
    UNARY(tanh, x, true)
    UNARY(softplus, x, false)
    UNARY(exp, x, true)
    UNARY(abs, x, false)
    UNARY(log, positive, false)
#undef UNARY
    SUBCASE("leaky_relu") {
        unary([&](float* y, const float* v, bool emulated) { BOTH(leaky_relu_forward, y, v, n, 0.2f); },
              [&](float* d, const float* g, const float* v, bool assign, bool emulated) {
                  BOTH(leaky_relu_backward, d, g, v, n, 0.2f, assign);
              },
              x, false);
    }
}

TEST_CASE("broadcast arithmetic, sums, and passing a gradient on") {
    const kernels::BroadcastShape s = broadcast_shapes("test", Shape{4, 1, 5}, Shape{3, 1});
    const int64_t n = s.numel();
    std::vector<float> a = randn(20, 4), b = randn(3, 5), dy = randn(n, 6);
    for (float& v : b) v += v > 0 ? 0.5f : -0.5f;  // a divisor away from 0
    for (kernels::BinaryOp op : {kernels::BinaryOp::add, kernels::BinaryOp::sub, kernels::BinaryOp::mul,
                                 kernels::BinaryOp::div}) {
        INFO(to_string(op));
        twins({std::vector<float>(n)}, [&](Buffers& o, bool emulated) { BOTH(binary_forward, o[0].data(), a.data(), b.data(), s, op); });
        twins({randn(20, 7), randn(3, 8)}, [&](Buffers& o, bool emulated) {
            BOTH(binary_backward, o[0].data(), o[1].data(), dy.data(), a.data(), b.data(), s, op, false, false);
        });
    }
    const std::vector<float> x = randn(7 * 30 * 11, 9), g = randn(7 * 11, 10);
    twins({{0.0f}}, [&](Buffers& o, bool emulated) { BOTH(sum_forward, o[0].data(), x.data(), int64_t(x.size()), 0.5); });
    twins({randn(x.size(), 11)}, [&](Buffers& o, bool emulated) { BOTH(sum_backward, o[0].data(), g.data(), int64_t(x.size()), 0.5); });
    twins({std::vector<float>(7 * 11)}, [&](Buffers& o, bool emulated) { BOTH(sum_axis_forward, o[0].data(), x.data(), 7, 30, 11, 2.0); });
    twins({randn(x.size(), 12)}, [&](Buffers& o, bool emulated) { BOTH(sum_axis_backward, o[0].data(), g.data(), 7, 30, 11, 2.0); });
    for (bool assign : {false, true})
        twins({randn(x.size(), 13)}, [&](Buffers& o, bool emulated) { BOTH(pass_grad, o[0].data(), x.data(), int64_t(x.size()), assign); });
}

TEST_CASE("losses, the Gaussian KL, the reparameterized sample, permuted codes and cross-entropy") {
    const int64_t n = 600, N = 20, D = 30;
    std::vector<float> x = randn(n, 14, 3.0), t = randn(n, 15), p(n), mu = randn(N * D, 16), logvar = randn(N * D, 17, 0.5);
    for (int64_t i = 0; i < n; ++i) p[i] = 1.0f / (1.0f + std::exp(-x[i])), t[i] = std::abs(t[i]) / (1.0f + std::abs(t[i]));
    for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean}) {
        INFO(to_string(r));
        const int64_t ny = r == Reduction::none ? n : 1, nk = r == Reduction::none ? N : 1;
        const std::vector<float> dy = randn(ny, 18), dk = randn(nk, 19);
        twins({std::vector<float>(ny)}, [&](Buffers& o, bool emulated) { BOTH(bce_with_logits_forward, o[0].data(), x.data(), t.data(), n, r); });
        twins({randn(n, 20), randn(n, 21)}, [&](Buffers& o, bool emulated) {
            BOTH(bce_with_logits_backward, o[0].data(), o[1].data(), dy.data(), x.data(), t.data(), n, r);
        });
        twins({std::vector<float>(ny)}, [&](Buffers& o, bool emulated) { BOTH(bce_forward, o[0].data(), p.data(), t.data(), n, r); });
        twins({randn(n, 22), randn(n, 23)}, [&](Buffers& o, bool emulated) {
            BOTH(bce_backward, o[0].data(), o[1].data(), dy.data(), p.data(), t.data(), n, r);
        });
        twins({std::vector<float>(ny)}, [&](Buffers& o, bool emulated) { BOTH(mse_forward, o[0].data(), x.data(), t.data(), n, r); });
        twins({randn(n, 24), randn(n, 25)}, [&](Buffers& o, bool emulated) {
            BOTH(mse_backward, o[0].data(), o[1].data(), dy.data(), x.data(), t.data(), n, r);
        });
        twins({std::vector<float>(nk)}, [&](Buffers& o, bool emulated) { BOTH(gaussian_kl_forward, o[0].data(), mu.data(), logvar.data(), N, D, r); });
        twins({randn(N * D, 26), randn(N * D, 27)}, [&](Buffers& o, bool emulated) {
            BOTH(gaussian_kl_backward, o[0].data(), o[1].data(), dk.data(), mu.data(), logvar.data(), N, D, r);
        });
        std::vector<int64_t> labels;
        for (int64_t k = 0; k < N; ++k) labels.push_back(k * 7 % D);
        twins({std::vector<float>(nk)}, [&](Buffers& o, bool emulated) { BOTH(nll_forward, o[0].data(), mu.data(), labels.data(), N, D, r); });
        twins({randn(N * D, 28)}, [&](Buffers& o, bool emulated) { BOTH(nll_backward, o[0].data(), dk.data(), labels.data(), N, D, r); });
    }
    const std::vector<float> eps = randn(N * D, 29), dz = randn(N * D, 30);
    twins({std::vector<float>(N * D)}, [&](Buffers& o, bool emulated) {
        BOTH(reparameterize_forward, o[0].data(), mu.data(), logvar.data(), eps.data(), N * D);
    });
    twins({randn(N * D, 31), randn(N * D, 32), randn(N * D, 33)}, [&](Buffers& o, bool emulated) {
        BOTH(reparameterize_backward, o[0].data(), o[1].data(), o[2].data(), dz.data(), logvar.data(), eps.data(), N * D);
    });
    // ε: the same Philox draws on both, to the bit (the emulation's log, cos and sin are the host's;
    // a GPU's may differ in a double's last bit, which tests/cuda/test_cuda.cpp allows for).
    std::vector<float> eps_cuda(N * D), eps_cpu(N * D);
    cuda::standard_normal(eps_cuda.data(), N, D, 11, random::Stream{Purpose::noise, 7, 100});
    kernels::standard_normal(eps_cpu.data(), N, D, 11, random::Stream{Purpose::noise, 7, 100});
    CHECK(eps_cuda == eps_cpu);
    // Each column's rows, some repeated (a gather, not only a permutation).
    std::vector<int64_t> index;
    for (int64_t d = 0; d < D; ++d)
        for (int64_t k = 0; k < N; ++k) index.push_back((k * (d + 1) + d) % N);
    twins({std::vector<float>(N * D)}, [&](Buffers& o, bool emulated) { BOTH(gather_columns_forward, o[0].data(), mu.data(), index.data(), N, D); });
    twins({randn(N * D, 34)}, [&](Buffers& o, bool emulated) { BOTH(gather_columns_backward, o[0].data(), dz.data(), index.data(), N, D); });
    // An empty batch: no index to copy (its pointer may be null) and nothing to add.
    const std::vector<int64_t> none;
    twins({std::vector<float>(1)}, [&](Buffers& o, bool emulated) { BOTH(nll_forward, o[0].data(), mu.data(), none.data(), 0, D, Reduction::sum); });
    twins({std::vector<float>(1)}, [&](Buffers& o, bool emulated) { BOTH(gather_columns_forward, o[0].data(), mu.data(), none.data(), 0, D); });
    const std::vector<float> lx = randn(5 * 7 * 3, 35, 4.0), ldy = randn(5 * 7 * 3, 36);
    std::vector<float> ly(lx.size());
    kernels::log_softmax_forward(ly.data(), lx.data(), 5, 7, 3);
    twins({std::vector<float>(lx.size())}, [&](Buffers& o, bool emulated) { BOTH(log_softmax_forward, o[0].data(), lx.data(), 5, 7, 3); });
    twins({randn(lx.size(), 37)}, [&](Buffers& o, bool emulated) { BOTH(log_softmax_backward, o[0].data(), ldy.data(), ly.data(), 5, 7, 3); });
}

TEST_CASE("linear and the convolutions: the cuBLAS calls' layouts, im2col and col2im") {
    // Each forward pass without an activation of its own, and with each it can apply.
    const std::vector<kernels::Activation> activations{{}, kernels::Activation::relu(), kernels::Activation::leaky_relu(0.2)};
    // Each gradient added to what it held (random here), or written over it: one at a time, and all.
    const std::vector<kernels::Assign> assigns{{}, {.dx = true}, {.dw = true}, {.db = true}, {true, true, true}};
    // Empty sizes too: a product with no inner dimension must not reach cuBLAS, which refuses it.
    for (const auto& [N, I, O] : {std::tuple<int64_t, int64_t, int64_t>{5, 7, 3}, {5, 0, 3}, {5, 7, 0}, {0, 7, 3}}) {
        INFO("N ", N, " I ", I, " O ", O);
        const std::vector<float> x = randn(N * I, 40), w = randn(O * I, 41), b = randn(O, 42), dy = randn(N * O, 43);
        for (const float* bias : {b.data(), static_cast<const float*>(nullptr)})
            for (const kernels::Activation& act : activations)
                twins({std::vector<float>(N * O)}, [&](Buffers& o, bool emulated) {
                    BOTH(linear_forward, o[0].data(), x.data(), w.data(), bias, N, I, O, act);
                });
        for (const kernels::Assign& assign : assigns)
            twins({randn(N * I, 44), randn(O * I, 45), randn(O, 46)}, [&](Buffers& o, bool emulated) {
                BOTH(linear_backward, o[0].data(), o[1].data(), o[2].data(), dy.data(), x.data(), w.data(), N, I, O,
                     assign);
            });
    }

    struct Case {
        int64_t N, C, H, W, O, k, stride, padding, dilation;
    };
    uint64_t seed = 50;
    // (The emulated build takes patches 5,000 values at a time: the first case is one chunk, the second
    // three, the last of them shorter.)
    for (const Case& c : {Case{2, 3, 9, 7, 5, 3, 1, 1, 1}, Case{5, 2, 16, 16, 6, 4, 2, 1, 1},
                          Case{3, 4, 11, 10, 3, 3, 2, 0, 2}, Case{1, 1, 5, 5, 2, 5, 1, 2, 1}}) {
        INFO("N ", c.N, " C ", c.C, " H ", c.H, " W ", c.W, " O ", c.O, " k ", c.k, " stride ", c.stride, " padding ",
             c.padding, " dilation ", c.dilation);
        const int64_t Ho = (c.H + 2 * c.padding - c.dilation * (c.k - 1) - 1) / c.stride + 1;
        const int64_t Wo = (c.W + 2 * c.padding - c.dilation * (c.k - 1) - 1) / c.stride + 1;
        const kernels::Conv2dShape s{c.N, c.C, c.H, c.W, c.O, Ho, Wo, c.k, c.k, c.stride, c.padding, c.dilation};
        const int64_t nx = c.N * c.C * c.H * c.W, nw = c.O * c.C * c.k * c.k, ny = c.N * c.O * Ho * Wo;
        const std::vector<float> cx = randn(nx, ++seed), cw = randn(nw, ++seed), cb = randn(c.O, ++seed),
                                 cdy = randn(ny, ++seed), cb_t = randn(c.C, ++seed);
        for (bool bias : {true, false})
            for (const kernels::Activation& act : activations) {
                twins({std::vector<float>(ny)}, [&](Buffers& o, bool emulated) {
                    BOTH(conv2d_forward, o[0].data(), cx.data(), cw.data(), bias ? cb.data() : nullptr, s, act);
                });
                // The transposed convolution runs this conv2d backwards: from [N, O, Ho, Wo] to [N, C, H, W].
                twins({std::vector<float>(nx)}, [&](Buffers& o, bool emulated) {
                    BOTH(conv_transpose2d_forward, o[0].data(), cdy.data(), cw.data(), bias ? cb_t.data() : nullptr, s,
                         act);
                });
            }
        // assign: gradients written over what they held (random here), not added to.
        for (const kernels::Assign& assign : assigns) {
            twins({randn(nx, ++seed), randn(nw, ++seed), randn(c.O, ++seed)}, [&](Buffers& o, bool emulated) {
                BOTH(conv2d_backward, o[0].data(), o[1].data(), o[2].data(), cdy.data(), cx.data(), cw.data(), s,
                     assign);
            });
            twins({randn(ny, ++seed), randn(nw, ++seed), randn(c.C, ++seed)}, [&](Buffers& o, bool emulated) {
                BOTH(conv_transpose2d_backward, o[0].data(), o[1].data(), o[2].data(), cx.data(), cdy.data(), cw.data(),
                     s, assign);
            });
        }
    }
}

TEST_CASE("the SGD and Adam steps") {
    const int64_t n = 1000;
    const std::vector<float> w = randn(n, 60), g = randn(n, 61), m = randn(n, 62);
    std::vector<float> v = randn(n, 63);
    for (float& e : v) e = std::abs(e);
    for (bool first : {true, false})
        for (bool nesterov : {true, false}) {
            const kernels::SGDStep<float> s{.lr = 0.1f, .momentum = 0.9f, .damping = 0.8f, .weight_decay = 0.01f,
                                            .decay = true, .heavy_ball = true, .nesterov = nesterov, .first = first};
            twins({w, m}, [&](Buffers& o, bool emulated) { BOTH(sgd_step, o[0].data(), g.data(), o[1].data(), n, s); });
        }
    for (bool decoupled : {true, false}) {
        const kernels::AdamStep<float> s{.beta1 = 0.9f, .beta2 = 0.999f, .one_minus_beta1 = 0.1f,
                                         .one_minus_beta2 = 0.001f, .step_size = 0.01f, .bc2_sqrt = 0.05f,
                                         .eps = 1e-8f, .weight_decay = 0.01f, .shrink_by = 0.999f,
                                         .decay = decoupled ? kernels::AdamDecay::decoupled : kernels::AdamDecay::coupled};
        twins({w, m, v}, [&](Buffers& o, bool emulated) { BOTH(adam_step, o[0].data(), g.data(), o[1].data(), o[2].data(), n, s); });
    }
}
