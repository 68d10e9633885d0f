#pragma once
// What every .cu file of the module shares: CUDA errors as elbo::Error, and the launch of an
// element-wise kernel.

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

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

}  // namespace elbo::cuda::detail
