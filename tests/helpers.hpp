#pragma once
// Small helpers the tests share.

#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>

// ELBO_TESTS_LOWER_LAYERS: only the layers the kernel and gradient tests use (tensor/, autograd/,
// ops/ and the kernels under them), so that those tests build without zlib, stb and nlohmann-json,
// e.g. cross-compiled for another ISA (tests/isa/).
#ifdef ELBO_TESTS_LOWER_LAYERS
#include "elbo/error.hpp"
#include "elbo/tensor/generator.hpp"
#include "elbo/tensor/pool.hpp"
#include "elbo/tensor/shape.hpp"
#include "elbo/tensor/tensor.hpp"

#include "elbo/autograd/backward.hpp"
#include "elbo/autograd/dot.hpp"
#include "elbo/autograd/gradcheck.hpp"
#include "elbo/autograd/profile.hpp"
#include "elbo/autograd/var.hpp"

#include "elbo/ops/activations.hpp"
#include "elbo/ops/arithmetic.hpp"
#include "elbo/ops/common.hpp"
#include "elbo/ops/conv.hpp"
#include "elbo/ops/latent.hpp"
#include "elbo/ops/linear.hpp"
#include "elbo/ops/losses.hpp"
#include "elbo/ops/reduce.hpp"
#include "elbo/ops/shape.hpp"
#else
#include "elbo/elbo.hpp"
#endif
#include "scratch.hpp"

namespace elbo::testing {

// A tensor of N(0, stddev^2) draws from a seeded generator.
template <class T = double>
Tensor<T> randn(const Shape& s, uint64_t seed, double stddev = 1.0) {
    Generator gen(seed);
    Tensor<T> t(s);
    t.normal_(gen, 0.0, stddev);
    return t;
}

// A tensor of U[low, high) draws from a seeded generator.
template <class T = double>
Tensor<T> rand(const Shape& s, uint64_t seed, double low, double high) {
    Generator gen(seed);
    Tensor<T> t(s);
    t.uniform_(gen, low, high);
    return t;
}

// A leaf that requires a gradient.
template <class T>
Var<T> param(Tensor<T> t) {
    return Var<T>(std::move(t), true);
}

// The largest |a - b| over max|b|: an error relative to the tensor's own scale.
template <class T, class U>
double relative_difference(const Tensor<T>& a, const Tensor<U>& b) {
    REQUIRE(a.shape() == b.shape());
    double diff = 0.0, scale = 0.0;
    for (int64_t i = 0; i < a.numel(); ++i) {
        diff = std::max(diff, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
        scale = std::max(scale, std::abs(static_cast<double>(b[i])));
    }
    return scale > 0 ? diff / scale : diff;
}


// The message of the Error that f throws, or "" when it throws none.
template <class F>
std::string error_of(F f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

}  // namespace elbo::testing
