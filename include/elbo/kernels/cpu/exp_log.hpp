#pragma once
// The logistic family (sigmoid, softplus, binary cross-entropy on logits) on Eigen arrays, written
// so that nothing overflows:
//
//   sigmoid(x)  = 1 / (1 + exp(-x))             exp(-x) = inf gives 0, the limit
//   softplus(x) = max(x, 0) + log1p(e),         e = exp(-|x|) in [0, 1]
//
// exp is Eigen's generic packet exp on every ISA (simd::exp says why not AVX-512's own). log1p
// is ours, on [0, 1] only, because Eigen 3.4's is slower on most ISAs and scalar on NEON (it has
// no packet log1p there). 2^20 floats in [0, 1], best of 50, one thread, one sitting on an Ice
// Lake Xeon (2026-12-06): SSE2 1.98 ms here against 3.69 with Array::log1p, AVX2 1.08 against
// 1.49; on AVX-512 Eigen's is the faster, 0.86 against 0.98, and one definition for every ISA was
// kept. It is made of array arithmetic alone, so Eigen vectorizes it for every ISA:
//
//   with s = e / (2 + e), 1 + e = (1 + s) / (1 - s), so log(1 + e) = 2 atanh(s)
//   = 2 (s + s^3/3 + s^5/5 + ...). For e in [0, 1], s <= 1/3 and the series to s^15 leaves a
//   relative remainder below (1/9)^8 / 17 = 1.4e-9. One division, no exponent handling, and for
//   tiny e it returns e itself, like log1p and unlike log(1 + e).
//
// In double (the gradient checks) it is Eigen's log1p, which is the C library's.

#include <type_traits>

#include "elbo/kernels/cpu/common.hpp"
#include "elbo/kernels/cpu/simd.hpp"

namespace elbo::kernels {

// e^x, as an Eigen array expression of x (any shape).
template <class X>
auto exponential(const Eigen::ArrayBase<X>& x) {
    return x.unaryExpr(simd::ExpOp<typename X::Scalar>{});
}

// 1 / (1 + e^-x), as an Eigen array expression of x.
template <class X>
auto sigmoid(const Eigen::ArrayBase<X>& x) {
    using T = typename X::Scalar;
    return T(1) / (T(1) + exponential(-x));
}

// out[i] = log(1 + e[i]) for the m <= block values e[i] in [0, 1]; out may be e.
template <class T>
void log1p_unit(T* out, const T* e, int64_t m) {
    const auto E = array(e, m);
    if constexpr (!std::is_same_v<T, float>) {
        array(out, m) = E.log1p();
    } else {
        alignas(64) float s[block];
        const auto S = array(s, m);
        array(s, m) = E / (2.0f + E);
        const auto S2 = S.square();
        const auto q = ((((((S2 * (1.0f / 15) + 1.0f / 13) * S2 + 1.0f / 11) * S2 + 1.0f / 9) * S2 + 1.0f / 7) * S2 +
                         1.0f / 5) * S2 + 1.0f / 3);
        array(out, m) = E - S * (E - 2.0f * S2 * q);  // 2s (1 + s2 q), with 2s = e - e s
    }
}

// out[i] = log(1 + exp(-|x[i]|)) for the m <= block values of x: softplus(x) - max(x, 0).
template <class T>
void log1p_exp_neg_abs(T* out, const T* x, int64_t m) {
    array(out, m) = exponential(-array(x, m).abs());
    log1p_unit(out, out, m);
}

}  // namespace elbo::kernels
