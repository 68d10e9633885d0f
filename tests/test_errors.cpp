// Bad input to the public API: each gives an elbo::Error naming the op, what it expected and what came.
#include "helpers.hpp"

using namespace elbo;
using testing::error_of;

namespace {
Var<float> zeros(const Shape& s) { return Var<float>(Tensor<float>(s)); }
}  // namespace

TEST_SUITE("errors") {

TEST_CASE("conv2d rejects mismatched shapes and bad hyper-parameters") {
    Var<float> x = zeros(Shape{8, 3, 64, 64}), w = zeros(Shape{32, 1, 4, 4}), w3 = zeros(Shape{32, 3, 4, 4});
    CHECK(error_of([&] { conv2d(x, w); }) ==
          "conv2d: input has 3 channels, weight expects 1 (input [8,3,64,64], weight [32,1,4,4])");
    CHECK(error_of([&] { conv2d(zeros(Shape{3, 64, 64}), w3); }) == "conv2d: expected input [N, C, H, W], got [3,64,64]");
    CHECK(error_of([&] { conv2d(x, zeros(Shape{32, 3, 4})); }) == "conv2d: expected a weight of rank 4, got [32,3,4]");
    CHECK(error_of([&] { conv2d(x, w3, {}, {.stride = 0}); }) == "conv2d: stride must be positive, got 0");
    CHECK(error_of([&] { conv2d(x, w3, {}, {.padding = -1}); }) == "conv2d: padding must be non-negative, got -1");
    CHECK(error_of([&] { conv2d(x, w3, {}, {.dilation = 0}); }) == "conv2d: dilation must be positive, got 0");
    CHECK(error_of([&] { conv2d(x, w3, zeros(Shape{3})); }) == "conv2d: expected bias [32], got [3]");
    CHECK(error_of([&] { conv2d(zeros(Shape{1, 3, 3, 3}), w3); }) ==
          "conv2d: padded input 3x3 is smaller than the dilated kernel 4x4 (input [1,3,3,3], weight [32,3,4,4], "
          "padding 0, dilation 1)");
}

TEST_CASE("a layer's own LeakyReLU needs a slope >= 0") {
    Var<float> x = zeros(Shape{2, 3}), w = zeros(Shape{4, 3});
    CHECK(error_of([&] { linear(x, w, {}, Activation::leaky_relu(-0.1)); }) ==
          "linear: a fused LeakyReLU needs a slope >= 0 (its gradient is read from the output), got -0.1; apply "
          "leaky_relu after the layer instead");
    CHECK(error_of([&] { conv2d(zeros(Shape{1, 3, 4, 4}), zeros(Shape{2, 3, 3, 3}), {}, {}, Activation::leaky_relu(-1)); }) ==
          "conv2d: a fused LeakyReLU needs a slope >= 0 (its gradient is read from the output), got -1; apply "
          "leaky_relu after the layer instead");
}

TEST_CASE("conv_transpose2d rejects mismatched shapes and bad hyper-parameters") {
    Var<float> x = zeros(Shape{2, 4, 5, 5}), w = zeros(Shape{4, 2, 3, 3});
    CHECK(error_of([&] { conv_transpose2d(x, zeros(Shape{3, 2, 3, 3})); }) ==
          "conv_transpose2d: input has 4 channels, weight expects 3 (input [2,4,5,5], weight [3,2,3,3])");
    CHECK(error_of([&] { conv_transpose2d(x, w, zeros(Shape{4})); }) == "conv_transpose2d: expected bias [2], got [4]");
    CHECK(error_of([&] { conv_transpose2d(x, w, {}, {.stride = 2, .output_padding = 2}); }) ==
          "conv_transpose2d: output_padding must be non-negative and smaller than stride or dilation, got 2 "
          "(stride 2, dilation 1)");
    CHECK(error_of([&] { conv_transpose2d(x, w, {}, {.stride = -1}); }) == "conv_transpose2d: stride must be positive, got -1");
    CHECK(error_of([&] { conv_transpose2d(zeros(Shape{1, 4, 1, 1}), w, {}, {.padding = 2}); }) ==
          "conv_transpose2d: output would be -1x-1: padding 2 is too large for input [1,4,1,1] and weight [4,2,3,3]");
}

TEST_CASE("linear rejects mismatched shapes") {
    CHECK(error_of([] { linear(zeros(Shape{4, 5}), zeros(Shape{3, 6})); }) ==
          "linear: input has 5 features, weight expects 6 (input [4,5], weight [3,6])");
    CHECK(error_of([] { linear(zeros(Shape{4, 5, 1}), zeros(Shape{3, 5})); }) ==
          "linear: expected input [N, in_features], got [4,5,1]");
    CHECK(error_of([] { linear(zeros(Shape{4, 5}), zeros(Shape{3, 5}), zeros(Shape{4})); }) ==
          "linear: expected bias [3], got [4]");
}

TEST_CASE("element-wise ops reject shapes that do not broadcast") {
    CHECK(error_of([] { zeros(Shape{2, 3}) + zeros(Shape{4}); }) ==
          "add: shapes [2,3] and [4] cannot be broadcast together (sizes 3 and 4 at axis -1)");
    CHECK(error_of([] { mul(zeros(Shape{2, 3}), zeros(Shape{3, 3})); }).rfind("mul: shapes [2,3] and [3,3]", 0) == 0);
}

TEST_CASE("losses reject mismatched operands") {
    CHECK(error_of([] { bce_with_logits(zeros(Shape{2, 3}), zeros(Shape{3, 2})); }) ==
          "bce_with_logits: input and target must have the same shape, got input [2,3] and target [3,2]");
    CHECK(error_of([] { bce(zeros(Shape{2}), zeros(Shape{3})); }).rfind("bce: input and target", 0) == 0);
    CHECK(error_of([] { mse(zeros(Shape{2}), zeros(Shape{3})); }).rfind("mse: input and target", 0) == 0);
    CHECK(error_of([] { gaussian_kl(zeros(Shape{4, 8}), zeros(Shape{4, 7})); }) ==
          "gaussian_kl: mu and logvar must have the same shape, got mu [4,8] and logvar [4,7]");
    CHECK(error_of([] { gaussian_kl(zeros(Shape{4}), zeros(Shape{4})); }) == "gaussian_kl: expected mu [N, D], got [4]");
    CHECK(error_of([] { cross_entropy(zeros(Shape{2, 3}), {0, 3}); }) == "cross_entropy: label 3 of sample 1 is outside [0, 3)");
    CHECK(error_of([] { cross_entropy(zeros(Shape{2, 3}), {0}); }) ==
          "cross_entropy: expected 2 labels for logits [2,3], got 1");
    CHECK(error_of([] { mean(zeros(Shape{0})); }) == "mean: the mean of an empty tensor [0] is undefined");
}

TEST_CASE("latent ops reject mismatched operands") {
    CHECK(error_of([] { reparameterize(zeros(Shape{2, 4}), zeros(Shape{2, 4}), zeros(Shape{2, 5})); }) ==
          "reparameterize: mu and eps must have the same shape, got mu [2,4] and eps [2,5]");
    CHECK(error_of([] { gather_columns(zeros(Shape{3, 2}), {{0, 1, 2}, {0, 1, 3}}); }) ==
          "gather_columns: index 3 in row 1 is outside [0, 3)");
    CHECK(error_of([] { gather_columns(zeros(Shape{3, 2}), {{0, 1, 2}}); }) ==
          "gather_columns: expected 2 index rows (one per column of [3,2]), got 1");
    CHECK(error_of([&] { permute_dims(zeros(Shape{3, 2, 1}), StepDraws{}); }) ==
          "permute_dims: expected z [N, D], got [3,2,1]");
}

TEST_CASE("shape ops reject impossible shapes and axes") {
    CHECK(error_of([] { reshape(zeros(Shape{2, 3}), {5}); }) == "reshape: shape [5] holds 5 elements, the tensor [2,3] has 6");
    CHECK(error_of([] { concat<float>({zeros(Shape{2, 3}), zeros(Shape{2, 4})}); }) ==
          "concat: tensor 1 has shape [2,4], expected the shape of tensor 0 [2,3] in every axis but the first");
    CHECK(error_of([] { concat<float>({}); }) == "concat: expected at least one tensor, got none");
    CHECK(error_of([] { sum(zeros(Shape{2, 3}), 2); }) == "sum: axis 2 is out of range for shape [2,3]");
    CHECK(error_of([] { log_softmax(zeros(Shape{2, 3}), -3); }) == "log_softmax: axis -3 is out of range for shape [2,3]");
}

}
