#pragma once
// PyTorch's default initialisation of Linear and convolution layers.
//
// Weights: kaiming_uniform_ with a = sqrt(5), i.e. U(-b, b) with
//   b = gain * sqrt(3 / fan_in),  gain = sqrt(2 / (1 + a^2)) = sqrt(1/3),  so b = 1 / sqrt(fan_in).
// Biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
// fan_in is the weight's size(1) times its kernel area, as torch.nn.init computes it, which for a
// ConvTranspose2d weight [in, out, kh, kw] is out * kh * kw.

#include <cmath>

#include "elbo/tensor/tensor.hpp"

namespace elbo::nn::init {

// fan_in of a weight as torch.nn.init._calculate_fan_in_and_fan_out gives it.
inline int64_t fan_in(const Shape& weight) {
    check(weight.rank() >= 2, "init::fan_in", "expected a weight of rank >= 2, got ", weight);
    return weight[1] * weight.span(2, weight.rank());
}

// U(-1/sqrt(fan_in), 1/sqrt(fan_in)): PyTorch's default for both the weight and the bias.
template <class T>
Tensor<T> default_uniform(const Shape& shape, int64_t fan, Generator& gen) {
    Tensor<T> t(shape);
    const double bound = fan > 0 ? 1.0 / std::sqrt(static_cast<double>(fan)) : 0.0;
    t.uniform_(gen, -bound, bound);
    return t;
}

}  // namespace elbo::nn::init
