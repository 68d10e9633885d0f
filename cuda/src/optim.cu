// The optimizers' steps on the GPU, twins of kernels/cpu/optim.hpp: a thread per element, each
// running the very update function the CPU runs (sgd_update, adam_update: host and device code).
// nvcc keeps IEEE division and square root; it may fuse a multiply and an add where g++ rounds twice.

#include "check.cuh"

namespace elbo::cuda {

void sgd_step(float* w, const float* g, float* buf, int64_t n, const kernels::SGDStep<float>& s) {
    detail::launch(n, [=] __device__(int64_t j) { kernels::sgd_update(w[j], g[j], buf[j], s); });
}

void adam_step(float* w, const float* g, float* m, float* v, int64_t n, const kernels::AdamStep<float>& s) {
    detail::launch(n, [=] __device__(int64_t j) { kernels::adam_update(w[j], g[j], m[j], v[j], s); });
}

}  // namespace elbo::cuda
