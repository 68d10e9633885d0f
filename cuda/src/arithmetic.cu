// Binary arithmetic with broadcasting and the sums, on the GPU: twins of kernels/cpu/elementwise.hpp
// and kernels/cpu/reduce.hpp.  Derivations: docs/gradients.md#broadcasting, #sum-and-mean

#include <vector>

#include "check.cuh"
#include "elbo/cuda/kernels.hpp"

namespace elbo::cuda {

namespace {

// BroadcastShape in a form a kernel takes by value.
struct Broadcast {
    static constexpr int max_rank = 8;
    int rank = 0;
    int64_t dims[max_rank] = {}, a[max_rank] = {}, b[max_rank] = {};

    explicit Broadcast(const kernels::BroadcastShape& s) : rank(static_cast<int>(s.dims.size())) {
        check(rank <= max_rank, "cuda::binary", "tensors of rank up to ", max_rank, " broadcast on the GPU, got rank ",
              rank);
        for (int d = 0; d < rank; ++d) dims[d] = s.dims[d], a[d] = s.a_strides[d], b[d] = s.b_strides[d];
    }

    // The operands' indices of output element i.
    __device__ void operands(int64_t i, int64_t& ia, int64_t& ib) const {
        ia = ib = 0;
        for (int d = rank - 1; d >= 0; --d) {
            const int64_t index = i % dims[d];
            i /= dims[d];
            ia += index * a[d];
            ib += index * b[d];
        }
    }
};

template <class F>
void forward(float* y, const float* a, const float* b, const kernels::BroadcastShape& s, F f) {
    const Broadcast shape(s);
    detail::launch(s.numel(), [=] __device__(int64_t i) {
        int64_t ia, ib;
        shape.operands(i, ia, ib);
        y[i] = f(a[ia], b[ib]);
    });
}

// d[operand's index] += g(dy, a, b); atomically where the operand is broadcast (several outputs
// read one element), so the order of those additions is not fixed.
template <class G>
void grad(float* d, bool on_a, bool full, const float* dy, const float* a, const float* b,
          const kernels::BroadcastShape& s, G g) {
    if (!d) return;
    const Broadcast shape(s);
    detail::launch(s.numel(), [=] __device__(int64_t i) {
        int64_t ia, ib;
        shape.operands(i, ia, ib);
        const float v = g(dy[i], a[ia], b[ib]);
        float* at = d + (on_a ? ia : ib);
        if (full)
            *at += v;
        else
            atomicAdd(at, v);
    });
}

}  // namespace

void binary_forward(float* y, const float* a, const float* b, const kernels::BroadcastShape& s, kernels::BinaryOp op) {
    switch (op) {
        case kernels::BinaryOp::add: return forward(y, a, b, s, [] __device__(float u, float v) { return u + v; });
        case kernels::BinaryOp::sub: return forward(y, a, b, s, [] __device__(float u, float v) { return u - v; });
        case kernels::BinaryOp::mul: return forward(y, a, b, s, [] __device__(float u, float v) { return u * v; });
        case kernels::BinaryOp::div: return forward(y, a, b, s, [] __device__(float u, float v) { return u / v; });
    }
}

void binary_backward(float* da, float* db, const float* dy, const float* a, const float* b,
                     const kernels::BroadcastShape& s, kernels::BinaryOp op, bool a_full, bool b_full) {
    switch (op) {
        case kernels::BinaryOp::add:
            grad(da, true, a_full, dy, a, b, s, [] __device__(float g, float, float) { return g; });
            grad(db, false, b_full, dy, a, b, s, [] __device__(float g, float, float) { return g; });
            return;
        case kernels::BinaryOp::sub:
            grad(da, true, a_full, dy, a, b, s, [] __device__(float g, float, float) { return g; });
            grad(db, false, b_full, dy, a, b, s, [] __device__(float g, float, float) { return -g; });
            return;
        case kernels::BinaryOp::mul:
            grad(da, true, a_full, dy, a, b, s, [] __device__(float g, float, float v) { return g * v; });
            grad(db, false, b_full, dy, a, b, s, [] __device__(float g, float u, float) { return g * u; });
            return;
        case kernels::BinaryOp::div:
            grad(da, true, a_full, dy, a, b, s, [] __device__(float g, float, float v) { return g / v; });
            grad(db, false, b_full, dy, a, b, s, [] __device__(float g, float u, float v) { return -g * u / (v * v); });
            return;
    }
}

void pass_grad(float* dx, const float* dy, int64_t n, bool assign) {
    if (assign) {
        copy_on_device(dx, dy, static_cast<size_t>(n) * sizeof(float));
        return;
    }
    detail::launch(n, [=] __device__(int64_t i) { dx[i] += dy[i]; });
}

void sum_forward(float* y, const float* x, int64_t n, double scale) {
    detail::sum_of(y, n, scale, [=] __device__(int64_t i) { return static_cast<double>(x[i]); });
}

void sum_backward(float* dx, const float* dy, int64_t n, double scale) {
    detail::launch(n, [=] __device__(int64_t i) { dx[i] += static_cast<float>(scale * dy[0]); });
}

void sum_axis_forward(float* y, const float* x, int64_t outer, int64_t n, int64_t inner, double scale) {
    detail::launch(outer * inner, [=] __device__(int64_t j) {
        const int64_t o = j / inner, i = j % inner;
        double s = 0.0;
        for (int64_t k = 0; k < n; ++k) s += x[(o * n + k) * inner + i];
        y[j] = static_cast<float>(scale * s);
    });
}

void sum_axis_backward(float* dx, const float* dy, int64_t outer, int64_t n, int64_t inner, double scale) {
    detail::launch(outer * n * inner, [=] __device__(int64_t j) {
        const int64_t o = j / (n * inner), i = j % inner;
        dx[j] += static_cast<float>(scale * dy[o * inner + i]);
    });
}

}  // namespace elbo::cuda
