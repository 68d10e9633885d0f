#pragma once
// e^x for x <= 0 and log(1 + e) for e in [0, 1]: the two transcendental functions that the logistic
// family (sigmoid, softplus, binary cross-entropy on logits) is made of, once written as
//
//   sigmoid(x)  = 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0,   e = exp(-|x|)
//   softplus(x) = max(x, 0) + log1p(e)
//
// In float they are plain arithmetic (no libm call), so that the loops using them vectorize: libm's
// scalar expf and log1pf made binary cross-entropy 6% of a training step. In double (gradient
// checks) they are std::exp and std::log1p.
//
// exp: x = k ln2 + r with k = round(x / ln2), |r| <= ln2 / 2, so e^x = 2^k e^r. ln2 is split in two
// (Cody and Waite) so that k ln2_hi is exact and r carries no cancellation error; e^r is its Taylor
// polynomial to degree 7 (remainder below |r|^8 / 8! = 5.2e-9, under half a float ulp), and 2^k is
// built from its exponent bits. Below -87 the result would leave the normal range; it is 0 there.
//
// log1p: with s = e / (2 + e), 1 + e = (1 + s) / (1 - s), so log(1 + e) = 2 atanh(s)
// = 2 (s + s^3/3 + s^5/5 + ...). For e in [0, 1], s <= 1/3 and the series to s^15 leaves a
// relative remainder below (1/9)^8 / 17 = 1.4e-9. One division, no exponent handling, and for
// tiny e it returns e itself, like log1p and unlike log(1 + e).
//
// Both are within 1.1 ulp of the exact value (tested against double over the whole domain).

#include <bit>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace elbo::kernels {

template <class T>
T exp_nonpositive(T x) {
    if constexpr (!std::is_same_v<T, float>) {
        return std::exp(x);
    } else {
        // Below -87 the result is 0: x is replaced by -87 and 2^k by +0. Both are bit masks, not
        // branches or selects: GCC turns `x < lowest ? lowest : x` into control flow (the rest is
        // then a constant) and stops vectorizing. NaN keeps its bits and runs through as NaN.
        constexpr float lowest = -87.0f;
        const uint32_t keep = 0u - static_cast<uint32_t>(!(x < lowest));  // all ones, or 0 below
        const float xc = std::bit_cast<float>((std::bit_cast<uint32_t>(x) & keep) |
                                              (std::bit_cast<uint32_t>(lowest) & ~keep));
        constexpr float log2e = 1.44269504f, round_magic = 12582912.0f;  // 1.5 * 2^23
        const float k = (xc * log2e + round_magic) - round_magic;         // round to nearest
        constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
        const float r = (xc - k * ln2_hi) - k * ln2_lo;
        float p = 1.0f / 5040;
        p = p * r + 1.0f / 720;
        p = p * r + 1.0f / 120;
        p = p * r + 1.0f / 24;
        p = p * r + 1.0f / 6;
        p = p * r + 0.5f;
        p = p * r + 1.0f;
        p = p * r + 1.0f;
        const uint32_t two_to_k = (static_cast<uint32_t>(static_cast<int32_t>(k) + 127) << 23) & keep;
        return p * std::bit_cast<float>(two_to_k);
    }
}

template <class T>
T log1p_unit(T e) {
    if constexpr (!std::is_same_v<T, float>) {
        return std::log1p(e);
    } else {
        const float s = e / (2.0f + e), s2 = s * s;
        float q = 1.0f / 15;
        q = q * s2 + 1.0f / 13;
        q = q * s2 + 1.0f / 11;
        q = q * s2 + 1.0f / 9;
        q = q * s2 + 1.0f / 7;
        q = q * s2 + 1.0f / 5;
        q = q * s2 + 1.0f / 3;
        return e - s * (e - 2.0f * s2 * q);  // 2s (1 + s2 q), with 2s = e - e s
    }
}

// 1 / (1 + e^-x), never overflowing.
template <class T>
T sigmoid_of(T x) {
    const T e = exp_nonpositive(-std::abs(x));
    return (x >= T(0) ? T(1) : e) / (T(1) + e);
}

// log(1 + e^x) = max(x, 0) + log1p(e^-|x|); PyTorch's softplus (beta 1, threshold 20) is x above 20.
template <class T>
T softplus_of(T x) {
    return x > T(20) ? x : (x > T(0) ? x : T(0)) + log1p_unit(exp_nonpositive(-std::abs(x)));
}

}  // namespace elbo::kernels
