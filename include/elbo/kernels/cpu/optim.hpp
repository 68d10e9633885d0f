#pragma once
// The optimizers' updates, element by element, as torch.optim's single-tensor path writes them
// (nn/optim.hpp holds the optimizers, their options and state; these are the arithmetic). The
// scalar coefficients arrive computed in double and rounded to T, as Python's floats are.
//
// The update of one element is a function that the CUDA module's kernels call too (cuda/src/optim.cu
// compiles this header with nvcc): the CPU and the GPU run one definition, and differ only in how
// they go over the elements.

#include <cmath>

#include "elbo/kernels/cpu/common.hpp"

#if defined(__CUDACC__)
#define ELBO_HOST_DEVICE __host__ __device__
#else
#define ELBO_HOST_DEVICE
#endif

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
// d + momentum buf, Nesterov);  w -= lr d.
template <class T>
ELBO_HOST_DEVICE inline void sgd_update(T& w, T g, T& buf, const SGDStep<T>& s) {
    T d = g;
    if (s.decay) d = d + s.weight_decay * w;
    if (s.heavy_ball) {
        buf = s.first ? d : buf * s.momentum + s.damping * d;
        d = s.nesterov ? d + s.momentum * buf : buf;
    }
    w = w + -s.lr * d;
}

template <class T>
void sgd_step(T* w, const T* g, T* buf, int64_t n, const SGDStep<T>& s) {
#pragma omp parallel for schedule(static) if (n >= parallel_grain)
    for (int64_t j = 0; j < n; ++j) sgd_update(w[j], g[j], buf[j], s);
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
// v = b2 v + (1 - b2) g^2;  w -= step_size m / (sqrt(v) / bc2_sqrt + eps).
template <class T>
ELBO_HOST_DEVICE inline void adam_update(T& w, T g, T& m, T& v, const AdamStep<T>& s) {
    if (s.decay == AdamDecay::decoupled) w = w * s.shrink_by;
    if (s.decay == AdamDecay::coupled) g = g + s.weight_decay * w;
    m = m * s.beta1 + s.one_minus_beta1 * g;
    v = v * s.beta2 + s.one_minus_beta2 * g * g;
    const T denom = std::sqrt(v) / s.bc2_sqrt + s.eps;
    w = w + -s.step_size * m / denom;
}

template <class T>
void adam_step(T* w, const T* g, T* m, T* v, int64_t n, const AdamStep<T>& s) {
#pragma omp parallel for schedule(static) if (n >= parallel_grain)
    for (int64_t j = 0; j < n; ++j) adam_update(w[j], g[j], m[j], v[j], s);
}

}  // namespace elbo::kernels
