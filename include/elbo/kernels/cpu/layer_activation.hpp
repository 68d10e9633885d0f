#pragma once
// The activation a layer applies to its own output (linear, conv2d, conv_transpose2d): none, ReLU,
// or LeakyReLU. The CPU kernels apply it to each part of the output as soon as that part is whole
// and still in cache (an image group's output, a plane), instead of a pass of its own over the
// whole tensor afterwards; the layer's backward reads f' from the output y (ops/common.hpp's
// layer_op). That needs x > 0 exactly where y > 0: so for ReLU, and for LeakyReLU with a slope >= 0.
// A plain type of its own, so the CUDA module's declarations can take it too.
//   Derivation: docs/gradients.md#fused-activations

namespace elbo::kernels {

struct Activation {
    enum class Kind { none, relu, leaky_relu };
    Kind kind = Kind::none;
    double slope = 0;  // leaky_relu's negative slope

    static Activation relu() { return {Kind::relu, 0}; }
    static Activation leaky_relu(double slope) { return {Kind::leaky_relu, slope}; }
    explicit operator bool() const { return kind != Kind::none; }
};

}  // namespace elbo::kernels
