#pragma once
// The optimizers' updates, element by element, as torch.optim's single-tensor path writes them
// (optim/optimizers.hpp holds the optimizers, their options and state; these are the arithmetic). The
// scalar coefficients arrive computed in double and rounded to T, as Python's floats are.
//
// The update is one function that the CUDA module's kernels call too (cuda/src/optim.cu compiles
// this header with nvcc): the CPU runs it on blocks of elements as Eigen arrays, the GPU on one
// element per thread; they differ only in how they go over the elements.

#include <cmath>

#include "elbo/host_device.hpp"
#include "elbo/kernels/cpu/common.hpp"
#include "elbo/kernels/cpu/reduce.hpp"

namespace elbo::kernels {

// One SGD step's coefficients.
template <class T>
struct SGDStep {
    T lr, momentum, damping, weight_decay;  // damping = 1 - dampening
    bool decay;       // weight_decay != 0
    bool heavy_ball;  // momentum != 0
    bool nesterov;    // Nesterov's momentum
    bool first;       // the first step: the momentum buffer starts as the gradient
};

// d = g + wd w;  with momentum buf = d (first step) or momentum buf + damping d, and d = buf (or
// d + momentum buf, Nesterov);  w -= lr d. W, G and B are T (one element: the CUDA module) or Eigen
// arrays (a block of elements: the CPU); d stays an expression, evaluated where it is used.
template <class T, class W, class G, class B>
ELBO_HOST_DEVICE inline void sgd_update(W&& w, const G& g, B&& buf, const SGDStep<T>& s) {
    const auto step = [&](const auto& d) {
        if (!s.heavy_ball) {
            w = w + -s.lr * d;
            return;
        }
        if (s.first)
            buf = d;
        else
            buf = buf * s.momentum + s.damping * d;
        if (s.nesterov)
            w = w + -s.lr * (d + s.momentum * buf);
        else
            w = w + -s.lr * buf;
    };
    if (s.decay)
        step(g + s.weight_decay * w);
    else
        step(g);
}

// The CPU's steps return the gradient's sum of squares, block by block as sum_of_squares adds it
// (so the same sum), each block read again while the update has it in cache: the health monitor's
// gradient norms without a pass of their own over every gradient, which was 3% of a FactorVAE
// step. The GPU's twins return nothing.

template <class T>
double sgd_step(T* w, const T* g, T* buf, int64_t n, const SGDStep<T>& s) {
    return sum_over_blocks(n, [&](int64_t b, int64_t m) {
        auto wb = array(w + b, m), bufb = array(buf + b, m);
        sgd_update(wb, array(g + b, m), bufb, s);
        return squares_of_block(g, b, m);
    });
}

// Where Adam's weight decay goes: added to the gradient (Adam) or applied to the weight (AdamW).
enum class AdamDecay { none, coupled, decoupled };

// One Adam step's coefficients.
template <class T>
struct AdamStep {
    T beta1, beta2, one_minus_beta1, one_minus_beta2;
    T step_size;  // lr / (1 - beta1^t)
    T bc2_sqrt;   // sqrt(1 - beta2^t)
    T eps, weight_decay;
    T shrink_by;  // 1 - lr weight_decay, for decoupled decay
    AdamDecay decay;
};

// g += wd w (coupled) or w *= 1 - lr wd (decoupled);  m = b1 m + (1 - b1) g;
// v = b2 v + (1 - b2) g^2;  w -= step_size m / (sqrt(v) / bc2_sqrt + eps). As sgd_update, on one
// element or on Eigen arrays.
template <class T, class W, class G, class M, class V>
ELBO_HOST_DEVICE inline void adam_update(W&& w, const G& g, M&& m, V&& v, const AdamStep<T>& s) {
    using std::sqrt;  // Eigen's sqrt for arrays, by argument-dependent lookup
    if (s.decay == AdamDecay::decoupled) w = w * s.shrink_by;
    const auto moments = [&](const auto& d) {
        m = m * s.beta1 + s.one_minus_beta1 * d;
        v = v * s.beta2 + s.one_minus_beta2 * d * d;
    };
    if (s.decay == AdamDecay::coupled)
        moments(g + s.weight_decay * w);
    else
        moments(g);
    w = w + -s.step_size * m / (sqrt(v) / s.bc2_sqrt + s.eps);
}

template <class T>
double adam_step(T* w, const T* g, T* m, T* v, int64_t n, const AdamStep<T>& s) {
    return sum_over_blocks(n, [&](int64_t b, int64_t size) {
        auto wb = array(w + b, size), mb = array(m + b, size), vb = array(v + b, size);
        adam_update(wb, array(g + b, size), mb, vb, s);
        return squares_of_block(g, b, size);
    });
}

}  // namespace elbo::kernels
