#pragma once
// Sums: of a whole tensor, and along one axis.  Derivation: docs/gradients.md#sum-and-mean
//
// A tensor reduced along an axis is viewed as [outer, n, inner]: the axis has n elements, outer is
// the product of the sizes before it and inner of those after it.

#include "elbo/kernels/cpu/common.hpp"

namespace elbo::kernels {

// y [1] = scale * sum(x [n]), accumulated in double, the same for every thread count.
template <class T>
void sum_forward(T* y, const T* x, int64_t n, double scale) {
    const double s = parallel_sum<T>(n, [x](int64_t b, int64_t m, T* out) { array(out, m) = array(x + b, m); });
    y[0] = static_cast<T>(scale * s);
}

// The sum of x [n]'s squares, each value widened to double first, the same for every thread count:
// a gradient's squared norm, read once; squares_of_block is one block of it.
template <class T>
double squares_of_block(const T* x, int64_t b, int64_t size) {
    return sum_widened(x + b, size, [](double v) { return v * v; });
}
template <class T>
double sum_of_squares(const T* x, int64_t n) {
    return sum_over_blocks(n, [x](int64_t b, int64_t m) { return squares_of_block(x, b, m); });
}

// dx [n] += scale * dy [1]
template <class T>
void sum_backward(T* dx, const T* dy, int64_t n, double scale) {
    const T g = static_cast<T>(scale * dy[0]);
    for_each_block(n, [=](int64_t b, int64_t m) { array(dx + b, m) += g; });
}

// y [outer, inner] = scale * sum over k of x [outer, n, inner]
template <class T>
void sum_axis_forward(T* y, const T* x, int64_t outer, int64_t n, int64_t inner, double scale) {
#pragma omp parallel for schedule(static) if (outer * n * inner >= parallel_grain)
    for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
            double s = 0.0;
            for (int64_t k = 0; k < n; ++k) s += x[(o * n + k) * inner + i];
            y[o * inner + i] = static_cast<T>(scale * s);
        }
    }
}

// dx [outer, n, inner] += scale * dy [outer, inner], broadcast along the axis
template <class T>
void sum_axis_backward(T* dx, const T* dy, int64_t outer, int64_t n, int64_t inner, double scale) {
#pragma omp parallel for schedule(static) if (outer * n * inner >= parallel_grain)
    for (int64_t o = 0; o < outer; ++o)
        for (int64_t k = 0; k < n; ++k)
            for (int64_t i = 0; i < inner; ++i)
                dx[(o * n + k) * inner + i] += static_cast<T>(scale * dy[o * inner + i]);
}

// db [O] += (= with assign) the sum of dy [N, O, HW] over n and the image (HW = 1 for a linear
// layer): a bias's gradient. Each channel summed in double, in order, by one thread.
template <class T>
void channel_sum_grad(T* db, const T* dy, int64_t N, int64_t O, int64_t HW, bool assign = false) {
    if (HW == 1) {
        // A linear layer's: the rows of dy added in order, every channel at once, the same sums as
        // below. Channel by channel, each read N values a row apart (a twentieth of the
        // discriminator's 1000-wide layers' backward pass went there).
        double* sum = scratch<double>(O);
        std::fill(sum, sum + O, 0.0);
        for (int64_t n = 0; n < N; ++n)
            for (int64_t o = 0; o < O; ++o) sum[o] += static_cast<double>(dy[n * O + o]);
        for (int64_t o = 0; o < O; ++o) db[o] = (assign ? T(0) : db[o]) + static_cast<T>(sum[o]);
        return;
    }
#pragma omp parallel for schedule(static) if (N * O * HW >= parallel_grain)
    for (int64_t o = 0; o < O; ++o) {
        double s = 0.0;
        for (int64_t n = 0; n < N; ++n) s += sum_in_double(dy + (n * O + o) * HW, HW);
        db[o] = (assign ? T(0) : db[o]) + static_cast<T>(s);
    }
}

}  // namespace elbo::kernels
