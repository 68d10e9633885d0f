#include "helpers.hpp"

using namespace elbo;
using testing::error_of;

TEST_SUITE("autograd") {

TEST_CASE("a variable used twice accumulates both gradients") {
    // f(x) = x*x + 3x  ->  f'(x) = 2x + 3
    Var<double> x(Tensor<double>::from_vector(Shape{3}, {1, -2, 0.5}), true);
    Var<double> f = sum(x * x + x * 3.0);
    backward(f);
    CHECK(x.grad()[0] == doctest::Approx(5.0));
    CHECK(x.grad()[1] == doctest::Approx(-1.0));
    CHECK(x.grad()[2] == doctest::Approx(4.0));
}

TEST_CASE("an element-wise gradient stores the first contribution and adds the later ones") {
    // The activations and reshape write a parent's first gradient without zeroing it first; a
    // second path into the same parent, or a second backward, must add.
    // f(x) = sum(2 relu(x) + sigmoid(x) + reshape(x))  ->  f'(x) = 2 [x > 0] + s(1 - s) + 1
    Var<double> x(Tensor<double>::from_vector(Shape{4}, {1.5, -2, 0.25, -0.1}), true);
    auto f = [&] { return sum(relu(x) * 2.0 + sigmoid(x) + reshape(reshape(x, {2, 2}), {4})); };
    auto expected = [&](int64_t i) {
        const double v = x.value()[i], s = 1 / (1 + std::exp(-v));
        return (v > 0 ? 2.0 : 0.0) + s * (1 - s) + 1;
    };
    backward(f());
    for (int64_t i = 0; i < 4; ++i) CHECK(x.grad()[i] == doctest::Approx(expected(i)).epsilon(1e-14));
    backward(f());  // onto the gradient already there
    for (int64_t i = 0; i < 4; ++i) CHECK(x.grad()[i] == doctest::Approx(2 * expected(i)).epsilon(1e-14));
    // An interior node whose only gradient comes from relu: stored, not added to garbage.
    x.zero_grad();
    backward(sum(relu(x * 3.0)));
    for (int64_t i = 0; i < 4; ++i) CHECK(x.grad()[i] == (x.value()[i] > 0 ? 3.0 : 0.0));
}

TEST_CASE("backward tells a GradientReady of each leaf once, when its gradient is final") {
    // a is read by two ops, the second late in backward; b by the last op only; c by none that
    // needs a gradient (a constant) and so is never told of.
    struct Recorder final : GradientReady<double> {
        std::vector<std::pair<const Node<double>*, std::vector<double>>> told;
        void ready(Node<double>& leaf) override { told.emplace_back(&leaf, leaf.grad.to_vector()); }
    };
    Var<double> a(Tensor<double>::from_vector(Shape{2}, {1.5, -2}), true);
    Var<double> b(Tensor<double>::from_vector(Shape{2}, {3, 4}), true);
    Var<double> c(Tensor<double>::from_vector(Shape{2}, {0.5, 0.25}));
    Recorder r;
    backward(sum((a * c + b) * a));
    REQUIRE(r.told.size() == 2);
    for (const auto& [leaf, grad] : r.told) {
        const Var<double>& v = leaf == a.node_ptr().get() ? a : b;
        CHECK(grad == v.grad().to_vector());  // what it had when told is what it ends with
    }
    CHECK(r.told[0].first != r.told[1].first);
    // d/da = 2 a c + b, d/db = a
    CHECK(a.grad().to_vector() == std::vector<double>{2 * 1.5 * 0.5 + 3, 2 * -2 * 0.25 + 4});
    CHECK(b.grad().to_vector() == std::vector<double>{1.5, -2});
}

TEST_CASE("gradients accumulate across backward calls until zero_grad") {
    Var<double> x(Tensor<double>::scalar(2.0), true);
    backward(x * x);
    backward(x * x);
    CHECK(x.grad().item() == doctest::Approx(8.0));
    x.zero_grad();
    CHECK(x.grad().item() == 0.0);
}

TEST_CASE("zero_grad keeps the buffer, and the next gradient is written into it") {
    // A layer writes a parameter's first gradient after zero_grad (kernels::Assign) instead of
    // adding onto zeros; the buffer stays, and reads as zeros until a gradient arrives.
    // sum(linear(x, w, b)): dw[o, i] = sum_n x[n, i], db[o] = N.
    const Var<double> x(Tensor<double>::from_vector(Shape{3, 2}, {1, 2, -3, 0.5, 4, -1}));
    const Var<double> x2(Tensor<double>::from_vector(Shape{3, 2}, {0.25, 1, 2, -2, 1, 1}));
    Var<double> w(Tensor<double>::from_vector(Shape{2, 2}, {0.1, -0.2, 0.3, 0.4}), true);
    Var<double> b(Tensor<double>::from_vector(Shape{2}, {1, -1}), true);
    auto column_sums = [](const Var<double>& v, double times) {
        return std::vector<double>{times * (v.value()[0] + v.value()[2] + v.value()[4]),
                                   times * (v.value()[1] + v.value()[3] + v.value()[5])};
    };
    auto dw = [&](double times, const Var<double>& input) {
        const std::vector<double> c = column_sums(input, times);
        return std::vector<double>{c[0], c[1], c[0], c[1]};
    };
    backward(sum(linear(x, w, b)));
    backward(sum(linear(x, w, b)));  // added onto the first
    CHECK(w.grad().to_vector() == dw(2, x));
    CHECK(b.grad().to_vector() == std::vector<double>{6, 6});
    const double* buffer = w.grad().data();
    w.zero_grad();
    b.zero_grad();
    backward(sum(linear(x, w, b)));  // written over the buffer's old values
    CHECK(w.grad().data() == buffer);
    CHECK(w.grad().to_vector() == dw(1, x));
    CHECK(b.grad().to_vector() == std::vector<double>{3, 3});
    // Two layers reading w: the first writes, the second adds.
    w.zero_grad();
    backward(sum(linear(x, w) + linear(x2, w)));
    const std::vector<double> first = dw(1, x), second = dw(1, x2);
    for (size_t i = 0; i < 4; ++i) CHECK(w.grad().to_vector()[i] == doctest::Approx(first[i] + second[i]).epsilon(1e-15));
    // No gradient reaches b: it reads as zeros.
    b.zero_grad();
    backward(sum(linear(x, w)));
    CHECK(b.grad().to_vector() == std::vector<double>{0, 0});
    // An op that adds (mul) onto a zeroed gradient adds onto zeros.
    w.zero_grad();
    backward(sum(w * 3.0));
    CHECK(w.grad().to_vector() == std::vector<double>{3, 3, 3, 3});
    // A zeroed leaf differentiated as the output itself: its gradient is the seed.
    Var<double> s(Tensor<double>::scalar(2.0), true);
    backward(s);
    backward(s);
    CHECK(s.grad().item() == 2.0);
    s.zero_grad();
    backward(s);
    CHECK(s.grad().item() == 1.0);
}

TEST_CASE("a graph 100,000 nodes deep differentiates and frees without recursion") {
    Var<float> x(Tensor<float>::scalar(1.0f), true);
    Var<float> y = x;
    for (int i = 0; i < 100000; ++i) y = y + 1.0f;
    CHECK(y.item() == 100001.0f);
    backward(y);
    CHECK(x.grad().item() == 1.0f);

    // Dropping an un-differentiated deep graph must not overflow the stack either.
    Var<float> z = x;
    for (int i = 0; i < 100000; ++i) z = z * 1.0f;
    z = Var<float>();
    CHECK_FALSE(z.defined());
}

TEST_CASE("backward frees the graph: a second backward through it is an error") {
    Var<double> x(Tensor<double>::scalar(3.0), true);
    Var<double> y = x * x;
    backward(y);
    CHECK(error_of([&] { backward(y); }).find("already differentiated and freed") != std::string::npos);
}

TEST_CASE("NoGrad records nothing and detach cuts the graph") {
    Var<double> x(Tensor<double>::scalar(3.0), true);
    {
        NoGrad guard;
        Var<double> y = x * x;
        CHECK_FALSE(y.requires_grad());
        CHECK(y.is_leaf());
    }
    CHECK(grad_enabled());
    Var<double> y = x.detach() * x;  // only the second factor carries a gradient
    backward(y);
    CHECK(x.grad().item() == doctest::Approx(3.0));
    CHECK(error_of([&] { backward(x.detach() * 2.0); }).find("does not depend on any Var") != std::string::npos);
}

TEST_CASE("backward of a non-scalar output needs a seed of its shape") {
    Var<double> x(Tensor<double>::from_vector(Shape{2}, {1, 2}), true);
    Var<double> y = x * 2.0;
    CHECK(error_of([&] { backward(y); }) ==
          "backward: expected a scalar loss (one element), got shape [2]; pass a seed gradient for other outputs");
    CHECK(error_of([&] { backward(y, Tensor<double>(Shape{3})); }) ==
          "backward: seed gradient has shape [3], the output has [2]");
    backward(y, Tensor<double>::from_vector(Shape{2}, {1, 10}));
    CHECK(x.grad()[1] == doctest::Approx(20.0));
}

TEST_CASE("to_dot writes every node and edge of the graph") {
    Var<double> w(Tensor<double>::scalar(2.0), true);
    Var<double> x(Tensor<double>::scalar(3.0));
    Var<double> y = exp(w * x);
    const std::string dot = to_dot(y, {{&w.node(), "w"}});
    CHECK(dot.rfind("digraph elbo {", 0) == 0);
    CHECK(dot.find("label=\"w\\n[]\", shape=box]") != std::string::npos);
    CHECK(dot.find("label=\"mul") != std::string::npos);
    CHECK(dot.find("label=\"exp") != std::string::npos);
    size_t edges = 0;
    for (size_t at = dot.find("->"); at != std::string::npos; at = dot.find("->", at + 1)) ++edges;
    CHECK(edges == 3);  // w -> mul, x -> mul, mul -> exp
}

TEST_CASE("gradcheck catches a wrong backward") {
    // An op whose recorded backward is off by 1%: gradcheck must fail it.
    auto wrong = [](const std::vector<Var<double>>& in) {
        Tensor<double> y = in[0].value().clone();
        for (double& v : y) v = v * v;
        return Var<double>::from_op(std::move(y), "wrong_square", {in[0]}, [](Node<double>& self) {
            double* dx = self.parent_grad(0);
            for (int64_t i = 0; i < self.grad.numel(); ++i)
                dx[i] += 2.02 * self.parents[0]->value[i] * self.grad[i];
        });
    };
    Var<double> x(testing::randn(Shape{4}, 1), true);
    GradcheckResult r = gradcheck(wrong, {x});
    CHECK_FALSE(r.ok);
    CHECK(r.max_error > 1e-3);
    CHECK(r.report().find("FAILED") != std::string::npos);

    auto right = [](const std::vector<Var<double>>& in) { return in[0] * in[0]; };
    CHECK(gradcheck(right, {x}).ok);
}

}
