#pragma once
// The CUDA module's kernels, as the ops see them (ops/common.hpp includes this where ELBO_WITH_CUDA
// is 1): host-callable functions defined in cuda/src/*.cu, declared without a CUDA header.
//
// Every kernel here has its CPU twin of the same name and arguments in kernels/cpu/ (float only), and
// tests/cuda/ compares each with its twin. Pointers are device pointers, but for the integer indices
// that ops keep on the host (class labels, permutations), which a kernel copies over itself.

#include <cstdint>

#include "elbo/cuda/runtime.hpp"
// What the kernels share with their CPU twins: the shapes and coefficients they take.
#include "elbo/kernels/cpu/conv_shape.hpp"   // Conv2dShape
#include "elbo/kernels/cpu/elementwise.hpp"  // BroadcastShape, BinaryOp
#include "elbo/kernels/cpu/layer_activation.hpp"  // Activation
#include "elbo/kernels/cpu/layer_assign.hpp"      // Assign
#include "elbo/kernels/cpu/optim.hpp"        // SGDStep, AdamStep
#include "elbo/tensor/philox.hpp"              // random::Stream

namespace elbo::cuda {

void relu_forward(float* y, const float* x, int64_t n);
void relu_backward(float* dx, const float* dy, const float* x, int64_t n, bool assign);
void leaky_relu_forward(float* y, const float* x, int64_t n, float slope);
void leaky_relu_backward(float* dx, const float* dy, const float* x, int64_t n, float slope, bool assign);
void sigmoid_forward(float* y, const float* x, int64_t n);
void sigmoid_backward(float* dx, const float* dy, const float* y, int64_t n, bool assign);
void tanh_forward(float* y, const float* x, int64_t n);
void tanh_backward(float* dx, const float* dy, const float* y, int64_t n, bool assign);
void softplus_forward(float* y, const float* x, int64_t n);
void softplus_backward(float* dx, const float* dy, const float* x, int64_t n, bool assign);
void exp_forward(float* y, const float* x, int64_t n);
void exp_backward(float* dx, const float* dy, const float* y, int64_t n, bool assign);
void abs_forward(float* y, const float* x, int64_t n);
void abs_backward(float* dx, const float* dy, const float* x, int64_t n, bool assign);
void log_forward(float* y, const float* x, int64_t n);
void log_backward(float* dx, const float* dy, const float* x, int64_t n, bool assign);

void pass_grad(float* dx, const float* dy, int64_t n, bool assign);

void binary_forward(float* y, const float* a, const float* b, const kernels::BroadcastShape& s, kernels::BinaryOp op);
void binary_backward(float* da, float* db, const float* dy, const float* a, const float* b,
                     const kernels::BroadcastShape& s, kernels::BinaryOp op, bool a_full, bool b_full);

void sum_forward(float* y, const float* x, int64_t n, double scale);
void sum_backward(float* dx, const float* dy, int64_t n, double scale);
void sum_axis_forward(float* y, const float* x, int64_t outer, int64_t n, int64_t inner, double scale);
void sum_axis_backward(float* dx, const float* dy, int64_t outer, int64_t n, int64_t inner, double scale);

void bce_with_logits_forward(float* y, const float* x, const float* t, int64_t n, Reduction r);
void bce_with_logits_backward(float* dx, float* dt, const float* dy, const float* x, const float* t, int64_t n,
                              Reduction r);
void bce_forward(float* y, const float* p, const float* t, int64_t n, Reduction r);
void bce_backward(float* dp, float* dt, const float* dy, const float* p, const float* t, int64_t n, Reduction r);
void mse_forward(float* y, const float* a, const float* b, int64_t n, Reduction r);
void mse_backward(float* da, float* db, const float* dy, const float* a, const float* b, int64_t n, Reduction r);
void gaussian_kl_forward(float* y, const float* mu, const float* logvar, int64_t N, int64_t D, Reduction r);
void gaussian_kl_backward(float* dmu, float* dlogvar, const float* dy, const float* mu, const float* logvar,
                          int64_t N, int64_t D, Reduction r);
void standard_normal(float* eps, int64_t N, int64_t D, uint64_t seed, random::Stream first);
void reparameterize_forward(float* z, const float* mu, const float* logvar, const float* eps, int64_t n);
void reparameterize_backward(float* dmu, float* dlogvar, float* deps, const float* dz, const float* logvar,
                             const float* eps, int64_t n);
void gather_columns_forward(float* y, const float* z, const int64_t* index, int64_t N, int64_t D);  // host index
void gather_columns_backward(float* dz, const float* dy, const int64_t* index, int64_t N, int64_t D);
void log_softmax_forward(float* y, const float* x, int64_t outer, int64_t k, int64_t inner);
void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t outer, int64_t k, int64_t inner);
void nll_forward(float* y, const float* lp, const int64_t* target, int64_t N, int64_t K, Reduction r);  // host target
void nll_backward(float* dlp, const float* dy, const int64_t* target, int64_t N, int64_t K, Reduction r);

// The layers' forward passes end with their activation (kernels::Activation), applied in place.
void activate(float* y, int64_t n, const kernels::Activation& act);
void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t I, int64_t O,
                    const kernels::Activation& act = {});
// The backward passes accumulate into dx, dw, db (+=), but write (=) those `assign` names, as on the CPU.
void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t N,
                     int64_t I, int64_t O, const kernels::Assign& assign = {});
void channel_sum_grad(float* db, const float* dy, int64_t N, int64_t O, int64_t HW, bool assign = false);
void conv2d_forward(float* y, const float* x, const float* w, const float* b, const kernels::Conv2dShape& s,
                    const kernels::Activation& act = {});
void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                     const kernels::Conv2dShape& s, const kernels::Assign& assign = {});
void conv_transpose2d_forward(float* y, const float* x, const float* w, const float* b,
                              const kernels::Conv2dShape& s, const kernels::Activation& act = {});
void conv_transpose2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                               const kernels::Conv2dShape& s, const kernels::Assign& assign = {});

void sgd_step(float* w, const float* g, float* buf, int64_t n, const kernels::SGDStep<float>& s);
void adam_step(float* w, const float* g, float* m, float* v, int64_t n, const kernels::AdamStep<float>& s);

}  // namespace elbo::cuda
