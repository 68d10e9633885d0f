// The optimizers' updates on the GPU, twins of kernels/cpu/optim.hpp: the same arithmetic in the
// same order, a thread per element. (nvcc keeps IEEE division and square root unless told
// otherwise; it may fuse a multiply and an add where the CPU rounds twice.)

#include "check.cuh"

namespace elbo::cuda {

void sgd_step(float* w, const float* g, float* buf, int64_t n, const kernels::SGDStep<float>& s) {
    detail::launch(n, [=] __device__(int64_t j) {
        float d = g[j];
        if (s.decay) d = d + s.weight_decay * w[j];
        if (s.heavy_ball) {
            buf[j] = s.first ? d : buf[j] * s.momentum + s.damping * d;
            d = s.nesterov ? d + s.momentum * buf[j] : buf[j];
        }
        w[j] = w[j] + -s.lr * d;
    });
}

void adam_step(float* w, const float* g, float* m, float* v, int64_t n, const kernels::AdamStep<float>& s) {
    detail::launch(n, [=] __device__(int64_t j) {
        float gj = g[j];
        if (s.decoupled) w[j] = w[j] * s.shrink_by;
        if (s.coupled) gj = gj + s.weight_decay * w[j];
        m[j] = m[j] * s.beta1 + s.one_minus_beta1 * gj;
        v[j] = v[j] * s.beta2 + s.one_minus_beta2 * gj * gj;
        const float denom = sqrtf(v[j]) / s.bc2_sqrt + s.eps;
        w[j] = w[j] + -s.step_size * m[j] / denom;
    });
}

}  // namespace elbo::cuda
