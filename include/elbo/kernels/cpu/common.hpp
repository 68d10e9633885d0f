#pragma once
// What every CPU kernel shares: scratch memory, the blocks element-wise kernels
// go over as Eigen arrays, and a deterministic parallel sum.

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "elbo/eigen.hpp"
#include "elbo/reduction.hpp"

namespace elbo::kernels {

// Loops shorter than this stay on one thread: starting a team costs more than it saves.
inline constexpr int64_t parallel_grain = 16384;

// Scratch memory for a kernel's intermediate matrices (im2col's patches), kept per thread and
// reused from call to call: allocating and zeroing tens of megabytes per convolution cost as much
// as its GEMM. It only grows; its contents are garbage on return. Each slot is a buffer of its own,
// for a kernel that needs two at once.
template <class T, int slot = 0>
T* scratch(int64_t count) {
    thread_local std::vector<T> b;
    if (static_cast<int64_t>(b.size()) < count) b.resize(static_cast<size_t>(count));
    return b.data();
}

// The n values of T at p as an Eigen array, read-only when T is const: element-wise kernels are
// Eigen array expressions on these, which Eigen evaluates in packets of the build's vector ISA.
template <class T>
auto array(T* p, int64_t n) {
    using Array = Eigen::Array<std::remove_const_t<T>, Eigen::Dynamic, 1>;
    return Eigen::Map<std::conditional_t<std::is_const_v<T>, const Array, Array>>(p, n);
}

// Element-wise kernels go over [0, n) in blocks of `block` values (the last one shorter), which
// keep a kernel's intermediate arrays in the L1 cache. The blocks are fixed by n alone.
inline constexpr int64_t block = 4096;

// body(begin, size) for every block of [0, n), the blocks shared between threads when n is large
// and the caller is not one of a team already (a layer's activation, applied by each thread to its
// own image group).
template <class Body>
void for_each_block(int64_t n, Body body) {
    const int64_t blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) if (n >= parallel_grain && !omp_in_parallel())
    for (int64_t k = 0; k < blocks; ++k) body(k * block, std::min(n, (k + 1) * block) - k * block);
}

// The sum of f(x) over the n values x at p, each widened to double first: value i goes to lane
// i % 16 of sixteen running sums, added up at the end, an order fixed by n alone. The lanes are
// independent, so the compiler vectorizes the loop without reordering any sum (a float widened
// per packet); Eigen 3.4 has no packet cast from float to double on AVX or AVX-512, and its
// cast<double>().sum() went value by value, 7x slower (4,096-value blocks of 5.8 M floats:
// 7.3 against 0.9 ms). (Not an `omp simd reduction` of a double over floats: GCC 12 vectorizes
// that wrongly for SVE, and drops values from n = 17 on.)
template <class Value, class F>
double sum_widened(const Value* p, int64_t n, F f) {
    constexpr int lanes = 16;
    double lane[lanes] = {};
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes)
        for (int j = 0; j < lanes; ++j) lane[j] += f(static_cast<double>(p[i + j]));
    for (int j = 0; i < n; ++i, ++j) lane[j] += f(static_cast<double>(p[i]));
    double sum = 0.0;
    for (double s : lane) sum += s;
    return sum;
}

// The sum of the n values at p in double.
template <class Value>
double sum_in_double(const Value* p, int64_t n) {
    return sum_widened(p, n, [](double x) { return x; });
}

// The sum of block_sum(begin, size) (a double) over the blocks of [0, n): the blocks shared between
// threads, their sums added in order, so the total is bit-identical for every thread count.
template <class BlockSum>
double sum_over_blocks(int64_t n, BlockSum block_sum) {
    const int64_t blocks = (n + block - 1) / block;
    std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
    for_each_block(n, [&](int64_t begin, int64_t size) {
        partial[static_cast<size_t>(begin / block)] = block_sum(begin, size);
    });
    double total = 0.0;
    for (double s : partial) total += s;
    return total;
}

// The sum of n values, accumulated in double: fill(begin, size, out) writes the values of the block
// [begin, begin + size) to out. The blocks are added in order, so the sum is bit-identical for every
// thread count (an OpenMP reduction is not).
template <class Value, class Fill>
double parallel_sum(int64_t n, Fill fill) {
    return sum_over_blocks(n, [&](int64_t begin, int64_t size) {
        alignas(64) Value values[block];
        fill(begin, size, values);
        return sum_in_double(values, size);
    });
}

}  // namespace elbo::kernels
