#pragma once
// What every .cu file of the module shares: CUDA errors as elbo::Error, the launch of an
// element-wise kernel, scratch memory, sums in double, and the sigmoid. The kernel files build
// everything from these, blas.cuh and the runtime (cuda/runtime.hpp: copies, fill), never from a
// kernel of their own: tests/cuda/emulated runs them on the host through stand-ins for the three.

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "elbo/cuda/kernels.hpp"
#include "elbo/error.hpp"

namespace elbo::cuda::detail {

// Throws elbo::Error naming the call, CUDA's name and words for the error, the file and the line.
inline void check_call(cudaError_t e, const char* call, const char* file, int line) {
    if (e != cudaSuccess)
        throw Error(str("CUDA: ", call, " failed with ", cudaGetErrorName(e), " (", cudaGetErrorString(e),
                        ") at ", file, ":", line));
}

}  // namespace elbo::cuda::detail

#define ELBO_CUDA_CHECK(call) ::elbo::cuda::detail::check_call((call), #call, __FILE__, __LINE__)

namespace elbo::cuda::detail {

// 1 / (1 + e^-x) without overflow, as kernels/cpu/exp_log.hpp writes it.
__device__ inline float sigmoid_of(float x) {
    const float e = expf(-fabsf(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

// Device memory for a kernel's intermediate values (at least one), from the caching allocator,
// given back when it goes out of scope. Giving it back while kernels that use it may still run is
// safe only because every kernel, copy and cuBLAS call of the module runs on the one legacy default
// stream, so whatever reuses it later runs after them: a second stream (or per-thread default
// streams) would need an event per block.
template <class T>
struct Scratch {
    size_t bytes;
    T* data;
    explicit Scratch(int64_t count)
        : bytes(static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T)),
          data(static_cast<T*>(allocate(bytes))) {}
    // Holding a copy of `count` values from the host.
    Scratch(const T* host, int64_t count) : Scratch(count) {
        if (count > 0) copy_to_device(data, host, static_cast<size_t>(count) * sizeof(T));
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    ~Scratch() { release(data, bytes); }
};

template <class F>
__global__ void for_each_index(int64_t n, F f) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) f(i);
}

// f(i) for every i in [0, n), on the GPU: a grid-stride loop, 256 threads a block, at most 4096
// blocks (enough to fill any current GPU; larger n loops).
template <class F>
void launch(int64_t n, F f) {
    if (n <= 0) return;
    constexpr int threads = 256;
    const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 4096);
    for_each_index<<<static_cast<unsigned>(blocks), threads>>>(n, f);
    ELBO_CUDA_CHECK(cudaGetLastError());
}

inline constexpr int sum_threads = 256, sum_blocks = 256;

// partial[block] = this block's share of the sum of f(i) over [0, n), in double: a grid-stride loop,
// then a tree in shared memory.
template <class F>
__global__ void partial_sums(double* partial, int64_t n, F f) {
    __shared__ double s[sum_threads];
    double v = 0.0;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x)
        v += f(i);
    s[threadIdx.x] = v;
    __syncthreads();
    for (int half = sum_threads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

// y[0] = scale * the partials added in order, by one thread: the same sum for the same n every time.
// (A template, so that every .cu file that sums gets its own instance without relocatable device code.)
template <class Scale>
__global__ void finish_sum(float* y, const double* partial, int count, Scale scale) {
    double total = 0.0;
    for (int k = 0; k < count; ++k) total += partial[k];
    y[0] = static_cast<float>(scale * total);
}

// y[o] += the sum of f(o, j) over j in [0, n), in double, a block for each o: a tree in shared
// memory over the block's threads, each of which first adds every blockDim-th term in order.
template <class F>
__global__ void row_sums(float* y, int64_t n, F f) {
    __shared__ double s[sum_threads];
    const int64_t o = blockIdx.x;
    double v = 0.0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) v += f(o, j);
    s[threadIdx.x] = v;
    __syncthreads();
    for (int half = sum_threads / 2; half > 0; half /= 2) {
        if (threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0) y[o] += static_cast<float>(s[0]);
}

// y[o] += the sum of f(o, j) for j in [0, n), for each o in [0, count): the same sums every run.
template <class F>
void add_sums(float* y, int64_t count, int64_t n, F f) {
    if (count <= 0) return;
    row_sums<<<static_cast<unsigned>(count), sum_threads>>>(y, n, f);
    ELBO_CUDA_CHECK(cudaGetLastError());
}

// y[0] = scale * the sum of f(i) for i in [0, n), f a device functor returning double (or float).
template <class F>
void sum_of(float* y, int64_t n, double scale, F f) {
    Scratch<double> partial(sum_blocks);
    partial_sums<<<sum_blocks, sum_threads>>>(partial.data, n, f);
    ELBO_CUDA_CHECK(cudaGetLastError());
    finish_sum<<<1, 1>>>(y, partial.data, sum_blocks, scale);
    ELBO_CUDA_CHECK(cudaGetLastError());
}

}  // namespace elbo::cuda::detail
