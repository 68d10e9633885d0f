#pragma once
// The CUDA module's host-callable interface: everything the header-only CPU library may call on a
// GPU, declared here without a single CUDA header, defined in cuda/src/*.cu and compiled by nvcc into
// the `elbo::cuda` target. Linking that target defines ELBO_WITH_CUDA, and only then do the CPU
// headers refer to these functions; a build without it never needs nvcc, and a tensor asked onto the
// GPU there is a clear elbo::Error.
//
// Every kernel here has its CPU twin of the same name and arguments in kernels/cpu/ (float only), and
// tests/cuda/ compares each with its twin. Pointers are device pointers, but for the integer indices
// that ops keep on the host (class labels, permutations), which a kernel copies over itself.
// Every failed CUDA call throws elbo::Error naming the call, its error, the file and the line.

#include <cstddef>
#include <cstdint>

// What the kernels share with their CPU twins: the shapes and coefficients they take.
#include "elbo/kernels/cpu/conv_shape.hpp"   // Conv2dShape
#include "elbo/kernels/cpu/elementwise.hpp"  // BroadcastShape, BinaryOp
#include "elbo/kernels/cpu/optim.hpp"        // SGDStep, AdamStep
#include "elbo/tensor/pool.hpp"              // MemoryStats

namespace elbo::cuda {

// --- The device and its memory ---------------------------------------------------------------

// GPUs this process can use; 0 where there is none or no driver (never throws).
int device_count();

// Why device_count() is 0, in words ("" when it is not).
const char* why_no_device();

// Device memory from the module's caching allocator: a freed block waits for the next request of
// its size, so a training step after the first asks the driver for nothing.
void* allocate(size_t bytes);
void release(void* p, size_t bytes);

// The same pool as the host tensors' (tensor/pool.hpp): system_allocations counts cudaMalloc calls.
MemoryStats device_memory_stats();
void release_cached_device_memory();

void copy_to_device(void* device_dst, const void* host_src, size_t bytes);
void copy_to_host(void* host_dst, const void* device_src, size_t bytes);
void copy_on_device(void* device_dst, const void* device_src, size_t bytes);

// Waits for every kernel launched so far (kernels run asynchronously on one stream).
void synchronize();

// --- Kernels, the CPU twins' names and arguments ---------------------------------------------

void fill(float* y, int64_t n, float value);

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
void reparameterize_forward(float* z, const float* mu, const float* logvar, const float* eps, int64_t n);
void reparameterize_backward(float* dmu, float* dlogvar, float* deps, const float* dz, const float* logvar,
                             const float* eps, int64_t n);
void gather_columns_forward(float* y, const float* z, const int64_t* index, int64_t N, int64_t D);  // host index
void gather_columns_backward(float* dz, const float* dy, const int64_t* index, int64_t N, int64_t D);
void log_softmax_forward(float* y, const float* x, int64_t outer, int64_t k, int64_t inner);
void log_softmax_backward(float* dx, const float* dy, const float* y, int64_t outer, int64_t k, int64_t inner);
void nll_forward(float* y, const float* lp, const int64_t* target, int64_t N, int64_t K, Reduction r);  // host target
void nll_backward(float* dlp, const float* dy, const int64_t* target, int64_t N, int64_t K, Reduction r);

void linear_forward(float* y, const float* x, const float* w, const float* b, int64_t N, int64_t I, int64_t O);
void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int64_t N,
                     int64_t I, int64_t O);
void channel_sum_grad(float* db, const float* dy, int64_t N, int64_t O, int64_t HW);
void conv2d_forward(float* y, const float* x, const float* w, const float* b, const kernels::Conv2dShape& s);
void conv2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                     const kernels::Conv2dShape& s);
void conv_transpose2d_forward(float* y, const float* x, const float* w, const float* b,
                              const kernels::Conv2dShape& s);
void conv_transpose2d_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w,
                               const kernels::Conv2dShape& s);

void sgd_step(float* w, const float* g, float* buf, int64_t n, const kernels::SGDStep<float>& s);
void adam_step(float* w, const float* g, float* m, float* v, int64_t n, const kernels::AdamStep<float>& s);

}  // namespace elbo::cuda
