#pragma once
// A stand-in for cuda/src/check.cuh that runs the module's kernels on the host: a launch is a loop,
// a sum is a loop in double, scratch is a vector, device lambdas are plain lambdas. tests/CMakeLists
// copies the kernel files (cuda/src/*.cu but runtime.cu) beside this header as .cpp files, so that
// their own `#include "check.cuh"` finds it; g++ then compiles them unchanged. What it checks is
// their arithmetic and index math against the CPU twins, on any machine; what it cannot check is
// what only a GPU does (threads racing, launches, cuBLAS itself), which tests/cuda/test_cuda.cpp does.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "elbo/cuda/kernels.hpp"
#include "elbo/error.hpp"

#define __device__
#define ELBO_CUDA_CHECK(call) call

// CUDA's float atomicAdd (the host has one thread here).
inline float atomicAdd(float* at, float v) {
    const float old = *at;
    *at += v;
    return old;
}

namespace elbo::cuda::detail {

inline float sigmoid_of(float x) {
    const float e = std::exp(-std::fabs(x));
    return (x >= 0.0f ? 1.0f : e) / (1.0f + e);
}

template <class F>
void launch(int64_t n, F f) {
    for (int64_t i = 0; i < n; ++i) f(i);
}

template <class T>
struct Scratch {
    std::vector<T> values;
    T* data;
    // At least one value, as on the GPU; the copy reads exactly `count` (an empty vector's data() may be null).
    explicit Scratch(int64_t count) : values(static_cast<size_t>(std::max<int64_t>(count, 1))), data(values.data()) {}
    Scratch(const T* host, int64_t count) : Scratch(count) { std::copy(host, host + count, data); }
};

template <class F>
void add_sums(float* y, int64_t count, int64_t n, F f) {
    for (int64_t o = 0; o < count; ++o) {
        double s = 0.0;
        for (int64_t j = 0; j < n; ++j) s += f(o, j);
        y[o] += static_cast<float>(s);
    }
}

template <class F>
void sum_of(float* y, int64_t n, double scale, F f) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += f(i);
    y[0] = static_cast<float>(scale * s);
}

}  // namespace elbo::cuda::detail
