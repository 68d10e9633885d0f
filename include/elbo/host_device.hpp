#pragma once
// ELBO_HOST_DEVICE marks a function that the CUDA module's kernels call too: __host__ __device__
// when nvcc compiles it, nothing otherwise. The headers that use it are plain C++ either way.

#if defined(__CUDACC__)
#define ELBO_HOST_DEVICE __host__ __device__
#else
#define ELBO_HOST_DEVICE
#endif
