#pragma once
// Binary element-wise arithmetic (add, sub, mul, div) with NumPy/PyTorch broadcasting.
// Derivation: docs/gradients.md#broadcasting
//
// Both operands are read through strides over the output's shape, 0 along every axis where the
// operand has size 1 (or is missing): that is all broadcasting is. The backward of a broadcast
// operand adds the output gradient of every position that read it, which is the sum over the
// broadcast axes.

#include <vector>

#include "elbo/kernels/cpu/common.hpp"

namespace elbo::kernels {

// The output's sizes and each operand's strides over them (0 on broadcast axes).
struct BroadcastShape {
    std::vector<int64_t> dims, a_strides, b_strides;
    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : dims) n *= d;
        return n;
    }
};

// Calls f(i, ia, ib) for every output index i, with the operands' indices ia and ib. The last axis
// is the inner loop; `parallel` splits the outer ones between threads (only when f writes to
// distinct places for distinct i).
template <class F>
void for_each_broadcast(const BroadcastShape& s, bool parallel, F f) {
    const int64_t rank = static_cast<int64_t>(s.dims.size());
    if (rank == 0) return f(0, 0, 0);
    const int64_t inner = s.dims.back(), sa = s.a_strides.back(), sb = s.b_strides.back();
    const int64_t outer = inner == 0 ? 0 : s.numel() / inner;
#pragma omp parallel for schedule(static) if (parallel && s.numel() >= parallel_grain)
    for (int64_t o = 0; o < outer; ++o) {
        int64_t ia = 0, ib = 0, rest = o;
        for (int64_t d = rank - 2; d >= 0; --d) {
            const int64_t index = rest % s.dims[d];
            rest /= s.dims[d];
            ia += index * s.a_strides[d];
            ib += index * s.b_strides[d];
        }
        for (int64_t j = 0; j < inner; ++j) f(o * inner + j, ia + j * sa, ib + j * sb);
    }
}

// dx = dy (assign) or dx += dy: a gradient passed on unchanged, by reshape and concat.
template <class T>
void pass_grad(T* dx, const T* dy, int64_t n, bool assign) {
    for_each_block(n, [=](int64_t b, int64_t m) {
        if (assign)
            array(dx + b, m) = array(dy + b, m);
        else
            array(dx + b, m) += array(dy + b, m);
    });
}

enum class BinaryOp { add, sub, mul, div };

inline const char* to_string(BinaryOp op) {
    switch (op) {
        case BinaryOp::add: return "add";
        case BinaryOp::sub: return "sub";
        case BinaryOp::mul: return "mul";
        case BinaryOp::div: return "div";
    }
    return "?";
}

// y = a (op) b, broadcast to s.dims
template <class T>
void binary_forward(T* y, const T* a, const T* b, const BroadcastShape& s, BinaryOp op) {
    auto run = [&](auto f) {
        for_each_broadcast(s, true, [&](int64_t i, int64_t ia, int64_t ib) { y[i] = f(a[ia], b[ib]); });
    };
    switch (op) {
        case BinaryOp::add: return run([](T u, T v) { return u + v; });
        case BinaryOp::sub: return run([](T u, T v) { return u - v; });
        case BinaryOp::mul: return run([](T u, T v) { return u * v; });
        case BinaryOp::div: return run([](T u, T v) { return u / v; });
    }
}

// da += dy * d(a op b)/da and db += dy * d(a op b)/db, summed over broadcast axes; da or db may
// be null. `a_full`/`b_full` say whether the operand has the output's whole shape: only then is
// it safe to accumulate into it from several threads.
template <class T>
void binary_backward(T* da, T* db, const T* dy, const T* a, const T* b, const BroadcastShape& s,
                     BinaryOp op, bool a_full, bool b_full) {
    // Adds f(dy, a, b) into da (on_a) or db at the operand's own index.
    auto grad = [&](T* d, bool on_a, bool full, auto f) {
        if (!d) return;
        for_each_broadcast(s, full, [&](int64_t i, int64_t ia, int64_t ib) {
            d[on_a ? ia : ib] += f(dy[i], a[ia], b[ib]);
        });
    };
    switch (op) {
        case BinaryOp::add:
            grad(da, true, a_full, [](T g, T, T) { return g; });
            grad(db, false, b_full, [](T g, T, T) { return g; });
            return;
        case BinaryOp::sub:
            grad(da, true, a_full, [](T g, T, T) { return g; });
            grad(db, false, b_full, [](T g, T, T) { return -g; });
            return;
        case BinaryOp::mul:
            grad(da, true, a_full, [](T g, T, T v) { return g * v; });
            grad(db, false, b_full, [](T g, T u, T) { return g * u; });
            return;
        case BinaryOp::div:
            grad(da, true, a_full, [](T g, T, T v) { return g / v; });
            grad(db, false, b_full, [](T g, T u, T v) { return -g * u / (v * v); });
            return;
    }
}

}  // namespace elbo::kernels
