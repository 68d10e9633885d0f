#pragma once
// The optimizers' updates, element by element, as torch.optim's single-tensor path writes them
// (nn/optim.hpp holds the optimizers, their options and state; these are the arithmetic).
// The scalar coefficients arrive computed in double and rounded to T, as Python's floats are.

#include <cmath>

#include "elbo/kernels/cpu/common.hpp"

namespace elbo::kernels {

// One SGD step's coefficients.
template <class T>
struct SGDStep {
    T lr, momentum, damping, weight_decay;  // damping = 1 - dampening
    bool decay, heavy_ball, nesterov;       // weight_decay != 0, momentum != 0
    bool first;                             // the first step: the buffer starts as the gradient
};

// d = g + wd w;  with momentum buf = d (first step) or momentum buf + damping d, and d = buf (or
// d + momentum buf, Nesterov);  w -= lr d.
template <class T>
void sgd_step(T* w, const T* g, T* buf, int64_t n, const SGDStep<T>& s) {
#pragma omp parallel for schedule(static) if (n >= parallel_grain)
    for (int64_t j = 0; j < n; ++j) {
        T d = g[j];
        if (s.decay) d = d + s.weight_decay * w[j];
        if (s.heavy_ball) {
            buf[j] = s.first ? d : buf[j] * s.momentum + s.damping * d;
            d = s.nesterov ? d + s.momentum * buf[j] : buf[j];
        }
        w[j] = w[j] + -s.lr * d;
    }
}

// One Adam step's coefficients.
template <class T>
struct AdamStep {
    T beta1, beta2, one_minus_beta1, one_minus_beta2;
    T step_size;  // lr / (1 - beta1^t)
    T bc2_sqrt;   // sqrt(1 - beta2^t)
    T eps, weight_decay;
    T shrink_by;  // 1 - lr weight_decay, AdamW's decoupled decay
    bool coupled, decoupled;  // weight decay added to the gradient (Adam) or applied to w (AdamW)
};

// g += wd w (Adam) or w *= 1 - lr wd (AdamW);  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
// w -= step_size m / (sqrt(v) / bc2_sqrt + eps).
template <class T>
void adam_step(T* w, const T* g, T* m, T* v, int64_t n, const AdamStep<T>& s) {
#pragma omp parallel for schedule(static) if (n >= parallel_grain)
    for (int64_t j = 0; j < n; ++j) {
        T gj = g[j];
        if (s.decoupled) w[j] = w[j] * s.shrink_by;
        if (s.coupled) gj = gj + s.weight_decay * w[j];
        m[j] = m[j] * s.beta1 + s.one_minus_beta1 * gj;
        v[j] = v[j] * s.beta2 + s.one_minus_beta2 * gj * gj;
        const T denom = std::sqrt(v[j]) / s.bc2_sqrt + s.eps;
        w[j] = w[j] + -s.step_size * m[j] / denom;
    }
}

}  // namespace elbo::kernels
