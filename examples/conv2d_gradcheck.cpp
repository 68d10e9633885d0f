// A conv2d gradient check that shows its work: for a few weights, the gradient from elbo's
// backward (im2col, GEMM, col2im; docs/gradients.md#conv2d) beside the central finite difference
// (L(w + h) - L(w - h)) / 2h, then gradcheck() over every input, weight and bias element.
#include <cstdio>

#include "elbo/elbo.hpp"

using namespace elbo;

int main() {
    Generator gen(2024);
    // x [N=2, C=3, 7x6], w [O=4, C=3, 3x3], b [4]; stride 2, padding 1.
    Var<double> x(Tensor<double>(Shape{2, 3, 7, 6}).normal_(gen), true);
    Var<double> w(Tensor<double>(Shape{4, 3, 3, 3}).normal_(gen), true);
    Var<double> b(Tensor<double>(Shape{4}).normal_(gen), true);
    const Conv2dOptions opt{.stride = 2, .padding = 1};

    // A scalar loss of the output: its sum of squares / 2, so dL/dy = y.
    auto loss = [&] {
        Var<double> y = conv2d(x, w, b, opt);
        return sum(y * y) * 0.5;
    };

    backward(loss());
    std::printf("conv2d x %s, w %s, stride %lld, padding %lld\n\n", x.shape().to_string().c_str(),
                w.shape().to_string().c_str(), (long long)opt.stride, (long long)opt.padding);
    std::printf("%-14s %16s %16s %12s\n", "weight", "analytic", "numeric", "difference");

    const double h = 1e-6;
    for (int64_t i : {0, 13, 26, 50, 107}) {
        double& wi = w.value()[i];
        const double saved = wi;
        double up, down;
        {
            NoGrad no_grad;  // finite differences need values only
            wi = saved + h;
            up = loss().item();
            wi = saved - h;
            down = loss().item();
        }
        wi = saved;
        const double numeric = (up - down) / (2 * h);
        const double analytic = w.grad()[i];
        const int64_t o = i / 27, c = i / 9 % 3, r = i / 3 % 3, s = i % 3;
        std::printf("w[%lld,%lld,%lld,%lld]   %16.10f %16.10f %12.2e\n", (long long)o, (long long)c, (long long)r,
                    (long long)s, analytic, numeric, std::abs(analytic - numeric));
    }

    const GradcheckResult result = gradcheck(
        [&](const std::vector<Var<double>>& v) { return conv2d(v[0], v[1], v[2], opt); }, {x, w, b});
    std::printf("\n%s\n", result.report().c_str());
    return result.ok ? 0 : 1;
}
