// Element-wise activations on the GPU, each the twin of kernels/cpu/activations.hpp: the same
// derivative written from x or y, dx stored (assign) or added.  Derivations: docs/gradients.md

#include "check.cuh"
#include "elbo/cuda/kernels.hpp"

namespace elbo::cuda {

namespace {

// dx[i] (+)= g(dy[i], x[i], y[i]), g returning dy * f'.
template <class G>
void map_grad(float* dx, const float* dy, const float* x, const float* y, int64_t n, G g, bool assign) {
    if (assign)
        detail::launch(n, [=] __device__(int64_t i) { dx[i] = g(dy[i], x[i], y[i]); });
    else
        detail::launch(n, [=] __device__(int64_t i) { dx[i] += g(dy[i], x[i], y[i]); });
}

}  // namespace

void relu_forward(float* y, const float* x, int64_t n) {
    detail::launch(n, [=] __device__(int64_t i) { y[i] = x[i] > 0.0f ? x[i] : 0.0f; });
}
void relu_backward(float* dx, const float* dy, const float* x, int64_t n, bool assign) {
    map_grad(dx, dy, x, x, n, [] __device__(float d, float v, float) { return v > 0.0f ? d : 0.0f; }, assign);
}

void leaky_relu_forward(float* y, const float* x, int64_t n, float slope) {
    detail::launch(n, [=] __device__(int64_t i) { y[i] = x[i] > 0.0f ? x[i] : x[i] * slope; });
}
void leaky_relu_backward(float* dx, const float* dy, const float* x, int64_t n, float slope, bool assign) {
    map_grad(dx, dy, x, x, n, [slope] __device__(float d, float v, float) { return d * (v > 0.0f ? 1.0f : slope); },
             assign);
}

void activate(float* y, int64_t n, const kernels::Activation& act) {
    if (act.kind == kernels::Activation::Kind::relu) relu_forward(y, y, n);
    if (act.kind == kernels::Activation::Kind::leaky_relu) leaky_relu_forward(y, y, n, static_cast<float>(act.slope));
}

void sigmoid_forward(float* y, const float* x, int64_t n) {
    detail::launch(n, [=] __device__(int64_t i) { y[i] = detail::sigmoid_of(x[i]); });
}
void sigmoid_backward(float* dx, const float* dy, const float* y, int64_t n, bool assign) {
    map_grad(dx, dy, y, y, n, [] __device__(float d, float s, float) { return d * (s * (1.0f - s)); }, assign);
}

void tanh_forward(float* y, const float* x, int64_t n) {
    detail::launch(n, [=] __device__(int64_t i) { y[i] = tanhf(x[i]); });
}
void tanh_backward(float* dx, const float* dy, const float* y, int64_t n, bool assign) {
    map_grad(dx, dy, y, y, n, [] __device__(float d, float t, float) { return d * (1.0f - t * t); }, assign);
}

// PyTorch's softplus (beta 1, threshold 20): x above the threshold.
void softplus_forward(float* y, const float* x, int64_t n) {
    detail::launch(n, [=] __device__(int64_t i) {
        const float v = x[i];
        y[i] = v > 20.0f ? v : fmaxf(v, 0.0f) + log1pf(expf(-fabsf(v)));
    });
}
void softplus_backward(float* dx, const float* dy, const float* x, int64_t n, bool assign) {
    map_grad(
        dx, dy, x, x, n,
        [] __device__(float d, float v, float) { return v > 20.0f ? d : d * detail::sigmoid_of(v); }, assign);
}

void exp_forward(float* y, const float* x, int64_t n) {
    detail::launch(n, [=] __device__(int64_t i) { y[i] = expf(x[i]); });
}
void exp_backward(float* dx, const float* dy, const float* y, int64_t n, bool assign) {
    map_grad(dx, dy, y, y, n, [] __device__(float d, float e, float) { return d * e; }, assign);
}

// |x|, with PyTorch's subgradient sign(0) = 0.
void abs_forward(float* y, const float* x, int64_t n) {
    detail::launch(n, [=] __device__(int64_t i) { y[i] = fabsf(x[i]); });
}
void abs_backward(float* dx, const float* dy, const float* x, int64_t n, bool assign) {
    map_grad(dx, dy, x, x, n,
             [] __device__(float d, float v, float) { return v > 0.0f ? d : v < 0.0f ? -d : 0.0f; }, assign);
}

void log_forward(float* y, const float* x, int64_t n) {
    detail::launch(n, [=] __device__(int64_t i) { y[i] = logf(x[i]); });
}
void log_backward(float* dx, const float* dy, const float* x, int64_t n, bool assign) {
    map_grad(dx, dy, x, x, n, [] __device__(float d, float v, float) { return d / v; }, assign);
}

}  // namespace elbo::cuda
