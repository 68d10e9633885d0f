#pragma once
// What every CPU kernel shares: the loss reduction, scratch memory and a deterministic parallel sum.

#include <algorithm>
#include <cstdint>
#include <vector>

namespace elbo {

// How a loss reduces its per-element values: kept (none), summed, or averaged.
enum class Reduction { none, mean, sum };

inline const char* to_string(Reduction r) {
    return r == Reduction::none ? "none" : r == Reduction::mean ? "mean" : "sum";
}

namespace kernels {

// Loops shorter than this stay on one thread: starting a team costs more than it saves.
inline constexpr int64_t parallel_grain = 16384;

// Scratch memory for a kernel's intermediate matrices (im2col's patches), kept per thread and
// reused from call to call: allocating and zeroing tens of megabytes per convolution cost as much
// as its GEMM. It only grows; its contents are garbage on return.
template <class T>
T* scratch(int64_t count) {
    thread_local std::vector<T> b;
    if (static_cast<int64_t>(b.size()) < count) b.resize(static_cast<size_t>(count));
    return b.data();
}

// Sum of f(i) for i in [0, n), accumulated in double. The blocks are fixed by n alone and added in
// order, so the result is bit-identical for every thread count (an OpenMP reduction is not). Each
// block first evaluates f into a buffer, then sums it in SIMD lanes: evaluated inside the double
// sum, f vectorized with gathers or not at all.
template <class F>
double parallel_sum(int64_t n, F f) {
    using Value = decltype(f(int64_t{0}));
    constexpr int64_t block = 4096;
    const int64_t blocks = (n + block - 1) / block;
    std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
#pragma omp parallel for schedule(static) if (n >= parallel_grain)
    for (int64_t k = 0; k < blocks; ++k) {
        const int64_t begin = k * block, size = std::min(n, begin + block) - begin;
        Value values[block];
#pragma omp simd
        for (int64_t i = 0; i < size; ++i) values[i] = f(begin + i);
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (int64_t i = 0; i < size; ++i) s += static_cast<double>(values[i]);
        partial[static_cast<size_t>(k)] = s;
    }
    double total = 0.0;
    for (double s : partial) total += s;
    return total;
}

}  // namespace kernels
}  // namespace elbo
