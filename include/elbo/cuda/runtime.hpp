#pragma once
// The CUDA module's runtime, as the tensor layer sees it: the device, its memory and the copies.
// Declared here without a single CUDA header, defined in cuda/src/runtime.cu and compiled by nvcc
// into the `elbo::cuda` target. Linking that target defines ELBO_WITH_CUDA, and only then do the CPU
// headers refer to these functions; a build without it never needs nvcc, and a tensor asked onto the
// GPU there is a clear elbo::Error. The kernels are in cuda/kernels.hpp.
// Every failed CUDA call throws elbo::Error naming the call, its error, the file and the line.

#include <cstddef>
#include <cstdint>

#include "elbo/tensor/pool.hpp"  // MemoryStats

namespace elbo::cuda {

// GPUs this process can use; 0 where there is none or no driver (never throws).
int device_count();

// Why device_count() is 0, in words ("" when it is not).
const char* why_no_device();

// Makes GPU `index` (0 to device_count() - 1) this process's, before its first tensor there: the
// processes of an MPI job on one machine take one GPU each (NCCL refuses two on one GPU).
void use_device(int index);

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

// y[i] = value for i in [0, n): the value is a kernel argument, nothing is copied from the host.
void fill(float* y, int64_t n, float value);

// Waits for every kernel launched so far (kernels run asynchronously on one stream).
void synchronize();

}  // namespace elbo::cuda
