// Every op's backward against central finite differences, in double (docs/gradients.md derives them).
#include <cstring>

#include "helpers.hpp"

using namespace elbo;
using testing::param;
using testing::rand;
using testing::randn;
using Vars = std::vector<Var<double>>;

namespace {

void expect_gradients_match(const std::function<Var<double>(const Vars&)>& f, const Vars& inputs) {
    const GradcheckResult r = gradcheck(f, inputs);
    INFO(r.report());
    CHECK(r.ok);
    CHECK(r.max_error < 1e-6);
}

// N(0, 1) values pushed at least 0.1 away from 0, so that no finite difference straddles the kink
// of relu or leaky_relu.
Tensor<double> away_from_zero(const Shape& s, uint64_t seed) {
    Tensor<double> t = randn(s, seed);
    for (double& v : t) v += v >= 0 ? 0.1 : -0.1;
    return t;
}

}  // namespace

TEST_SUITE("gradients") {

TEST_CASE("linear backward matches finite differences") {
    for (int64_t N : {1, 5}) {
        Var<double> x = param(randn(Shape{N, 7}, 1)), w = param(randn(Shape{3, 7}, 2)), b = param(randn(Shape{3}, 3));
        expect_gradients_match([](const Vars& v) { return linear(v[0], v[1], v[2]); }, {x, w, b});
        expect_gradients_match([](const Vars& v) { return linear(v[0], v[1]); }, {x, w});
    }
}

TEST_CASE("conv2d backward matches finite differences") {
    struct Case { int64_t N, C, H, W, O, k, stride, pad, dil; };
    const Case cases[] = {
        {1, 1, 5, 5, 2, 3, 1, 0, 1}, {5, 2, 7, 6, 3, 3, 2, 1, 1}, {2, 3, 9, 7, 2, 4, 3, 2, 1},
        {1, 2, 8, 9, 2, 3, 1, 2, 2}, {5, 1, 6, 5, 2, 2, 2, 0, 2},
    };
    for (const Case& c : cases) {
        INFO("N=", c.N, " C=", c.C, " ", c.H, "x", c.W, " k=", c.k, " stride=", c.stride, " padding=", c.pad,
             " dilation=", c.dil);
        Var<double> x = param(randn(Shape{c.N, c.C, c.H, c.W}, 4));
        Var<double> w = param(randn(Shape{c.O, c.C, c.k, c.k}, 5));
        Var<double> b = param(randn(Shape{c.O}, 6));
        const Conv2dOptions opt{.stride = c.stride, .padding = c.pad, .dilation = c.dil};
        expect_gradients_match([&](const Vars& v) { return conv2d(v[0], v[1], v[2], opt); }, {x, w, b});
    }
}

TEST_CASE("conv_transpose2d backward matches finite differences") {
    struct Case { int64_t N, C, H, W, O, k, stride, pad, out_pad, dil; };
    const Case cases[] = {
        {1, 1, 4, 4, 2, 3, 1, 0, 0, 1}, {5, 2, 3, 5, 3, 4, 2, 1, 1, 1}, {2, 3, 3, 2, 2, 3, 3, 2, 1, 1},
        {1, 2, 4, 3, 2, 3, 1, 1, 1, 2}, {5, 1, 3, 3, 2, 2, 2, 0, 0, 2},
    };
    for (const Case& c : cases) {
        INFO("N=", c.N, " C=", c.C, " ", c.H, "x", c.W, " k=", c.k, " stride=", c.stride, " padding=", c.pad,
             " output_padding=", c.out_pad, " dilation=", c.dil);
        Var<double> x = param(randn(Shape{c.N, c.C, c.H, c.W}, 7));
        Var<double> w = param(randn(Shape{c.C, c.O, c.k, c.k}, 8));
        Var<double> b = param(randn(Shape{c.O}, 9));
        const ConvTranspose2dOptions opt{.stride = c.stride, .padding = c.pad, .output_padding = c.out_pad,
                                         .dilation = c.dil};
        expect_gradients_match([&](const Vars& v) { return conv_transpose2d(v[0], v[1], v[2], opt); }, {x, w, b});
    }
}

TEST_CASE("a layer's own activation: the values and gradients of the activation after it, and finite differences") {
    // Each layer with ReLU or LeakyReLU(0.2) as one op, against the layer then the activation op:
    // the same values and gradients, bit for bit (the same arithmetic, f' read from the output
    // instead of the input), and the fused op's gradients against central differences.
    auto loss_and_grads = [](const std::function<Var<double>(const Vars&)>& f, const Vars& in) {
        for (Var<double> v : in) v.zero_grad();  // a handle: the same node
        const Var<double> y = f(in);
        const Var<double> r(randn(y.shape(), 99));
        backward(sum(y * r));
        std::vector<Tensor<double>> out{y.value()};
        for (const Var<double>& v : in) out.push_back(v.grad().clone());
        return out;
    };
    for (const Activation act : {Activation::relu(), Activation::leaky_relu(0.2)}) {
        INFO("leaky: ", act.kind == Activation::Kind::leaky_relu);
        auto after = [act](const Var<double>& y) { return act.kind == Activation::Kind::relu ? relu(y) : leaky_relu(y, 0.2); };
        Var<double> x = param(randn(Shape{5, 7}, 1)), w = param(randn(Shape{3, 7}, 2)), b = param(randn(Shape{3}, 3));
        Var<double> image = param(randn(Shape{2, 3, 7, 6}, 4)), kernel = param(randn(Shape{4, 3, 3, 3}, 5)),
                    bias = param(randn(Shape{4}, 6)), image_t = param(randn(Shape{2, 4, 3, 5}, 7)),
                    bias_t = param(randn(Shape{3}, 8));
        const Conv2dOptions c{.stride = 2, .padding = 1};
        const ConvTranspose2dOptions t{.stride = 2, .padding = 1, .output_padding = 1};
        const std::vector<std::tuple<std::function<Var<double>(const Vars&)>, std::function<Var<double>(const Vars&)>, Vars>>
            layers{{[=](const Vars& v) { return linear(v[0], v[1], v[2], act); },
                    [=](const Vars& v) { return after(linear(v[0], v[1], v[2])); }, Vars{x, w, b}},
                   {[=](const Vars& v) { return conv2d(v[0], v[1], v[2], c, act); },
                    [=](const Vars& v) { return after(conv2d(v[0], v[1], v[2], c)); }, Vars{image, kernel, bias}},
                   {[=](const Vars& v) { return conv_transpose2d(v[0], v[1], v[2], t, act); },
                    [=](const Vars& v) { return after(conv_transpose2d(v[0], v[1], v[2], t)); },
                    Vars{image_t, kernel, bias_t}}};
        for (const auto& [fused, separate, inputs] : layers) {
            const auto a = loss_and_grads(fused, inputs), b_ = loss_and_grads(separate, inputs);
            for (size_t i = 0; i < a.size(); ++i) {
                INFO("tensor ", i);
                CHECK(std::memcmp(a[i].data(), b_[i].data(), sizeof(double) * static_cast<size_t>(a[i].numel())) == 0);
            }
            expect_gradients_match(fused, inputs);
        }
    }
}

TEST_CASE("activation backwards match finite differences") {
    for (int64_t N : {1, 5}) {
        const Shape s{N, 3, 5, 3};
        Var<double> x = param(away_from_zero(s, 10));
        expect_gradients_match([](const Vars& v) { return relu(v[0]); }, {x});
        expect_gradients_match([](const Vars& v) { return leaky_relu(v[0], 0.2); }, {x});
        expect_gradients_match([](const Vars& v) { return sigmoid(v[0]); }, {x});
        expect_gradients_match([](const Vars& v) { return tanh(v[0]); }, {x});
        expect_gradients_match([](const Vars& v) { return exp(v[0]); }, {x});
        expect_gradients_match([](const Vars& v) { return abs(v[0]); }, {x});
        Var<double> wide = param(randn(s, 11, 12.0));  // softplus on both sides of its threshold 20
        expect_gradients_match([](const Vars& v) { return softplus(v[0]); }, {wide});
        Var<double> positive = param(rand(s, 12, 0.2, 3.0));
        expect_gradients_match([](const Vars& v) { return log(v[0]); }, {positive});
    }
}

TEST_CASE("broadcast arithmetic backwards match finite differences") {
    const std::pair<Shape, Shape> shapes[] = {
        {Shape{2, 3, 4}, Shape{2, 3, 4}}, {Shape{2, 3, 4}, Shape{3, 1}}, {Shape{1, 4}, Shape{5, 1}},
        {Shape{5, 3}, Shape{}},           {Shape{3}, Shape{2, 1, 3}},
    };
    for (const auto& [sa, sb] : shapes) {
        INFO("a ", sa, ", b ", sb);
        Var<double> a = param(randn(sa, 13));
        Var<double> b = param(rand(sb, 14, 0.5, 2.0));  // away from 0 for div
        expect_gradients_match([](const Vars& v) { return v[0] + v[1]; }, {a, b});
        expect_gradients_match([](const Vars& v) { return v[0] - v[1]; }, {a, b});
        expect_gradients_match([](const Vars& v) { return v[0] * v[1]; }, {a, b});
        expect_gradients_match([](const Vars& v) { return v[0] / v[1]; }, {a, b});
        expect_gradients_match([](const Vars& v) { return v[1] / v[0] * v[0] - v[1] * 2.0; }, {a, b});
    }
    Var<double> x = param(randn(Shape{3, 2}, 15));
    expect_gradients_match([](const Vars& v) { return v[0] * v[0] - v[0]; }, {x});
}

TEST_CASE("sum and mean backwards match finite differences") {
    Var<double> x = param(randn(Shape{2, 3, 4}, 16));
    expect_gradients_match([](const Vars& v) { return sum(v[0]); }, {x});
    expect_gradients_match([](const Vars& v) { return mean(v[0]); }, {x});
    for (int64_t axis : {0, 1, 2, -1})
        for (bool keepdim : {false, true}) {
            INFO("axis ", axis, " keepdim ", keepdim);
            expect_gradients_match([=](const Vars& v) { return sum(v[0], axis, keepdim); }, {x});
            expect_gradients_match([=](const Vars& v) { return mean(v[0], axis, keepdim); }, {x});
        }
}

TEST_CASE("reshape, flatten and concat backwards match finite differences") {
    Var<double> x = param(randn(Shape{2, 3, 2, 2}, 17));
    Var<double> y = param(randn(Shape{1, 3, 2, 2}, 18));
    const Var<double> scale(randn(Shape{3, 8}, 19));  // [2,3,2,2] -> [3,8]: weights every element differently
    expect_gradients_match([&](const Vars& v) { return reshape(v[0], {3, -1}) * scale; }, {x});
    expect_gradients_match([&](const Vars& v) { return reshape(flatten(v[0]), {3, 8}) * scale; }, {x});
    CHECK(flatten(x).shape() == Shape{2, 12});
    expect_gradients_match([](const Vars& v) { return concat<double>({v[0], v[1], v[0]}) * 1.5; }, {x, y});
}

TEST_CASE("loss backwards match finite differences for every reduction") {
    for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean}) {
        INFO("reduction ", to_string(r));
        const Shape s{5, 3, 3, 2};
        Var<double> logits = param(randn(s, 20, 3.0));
        Var<double> target = param(rand(s, 21, 0.0, 1.0));
        expect_gradients_match([=](const Vars& v) { return bce_with_logits(v[0], v[1], r); }, {logits, target});
        Var<double> p = param(rand(s, 22, 0.05, 0.95));
        expect_gradients_match([=](const Vars& v) { return bce(v[0], v[1], r); }, {p, target});
        Var<double> a = param(randn(s, 23));
        expect_gradients_match([=](const Vars& v) { return mse(v[0], v[1], r); }, {a, target});

        for (int64_t N : {1, 5}) {
            Var<double> mu = param(randn(Shape{N, 4}, 24)), logvar = param(randn(Shape{N, 4}, 25));
            expect_gradients_match([=](const Vars& v) { return gaussian_kl(v[0], v[1], r); }, {mu, logvar});
            Var<double> scores = param(randn(Shape{N, 3}, 26));
            std::vector<int64_t> labels;
            for (int64_t n = 0; n < N; ++n) labels.push_back((n * 2 + 1) % 3);
            expect_gradients_match([=](const Vars& v) { return cross_entropy(v[0], labels, r); }, {scores});
        }
    }
}

TEST_CASE("log_softmax backward matches finite differences along every axis") {
    Var<double> x = param(randn(Shape{2, 4, 3}, 27));
    for (int64_t axis : {0, 1, 2})
        expect_gradients_match([=](const Vars& v) { return log_softmax(v[0], axis); }, {x});
}

TEST_CASE("reparameterize and permute_dims backwards match finite differences") {
    for (int64_t N : {1, 5}) {
        Var<double> mu = param(randn(Shape{N, 4}, 28)), logvar = param(randn(Shape{N, 4}, 29));
        Var<double> eps = param(randn(Shape{N, 4}, 30));
        expect_gradients_match([](const Vars& v) { return reparameterize(v[0], v[1], v[2]); }, {mu, logvar, eps});
        // The same draws in every evaluation: the same permutations.
        expect_gradients_match([](const Vars& v) { return permute_dims(v[0] * v[0], StepDraws{.seed = 5}); }, {mu});
    }
}

}
