// A scalar function's gradient, step by step: one neuron, y = softplus(w*x + b), differentiated by
// hand with the chain rule and by elbo's backward, side by side.
//
// Read top to bottom. docs/gradients.md has the rules used here.
#include <cstdio>

#include "elbo/elbo.hpp"

using namespace elbo;

int main() {
    // The inputs: x is data (no gradient); w and b are parameters.
    Var<double> x(Tensor<double>::scalar(1.5));
    Var<double> w(Tensor<double>::scalar(-0.8), true);
    Var<double> b(Tensor<double>::scalar(0.3), true);

    // Forward, one op at a time. Each op computes its value now and records how to differentiate it.
    Var<double> wx = w * x;           // mul
    Var<double> z = wx + b;           // add
    Var<double> y = softplus(z);      // softplus(z) = log(1 + e^z)
    std::printf("forward:\n");
    std::printf("  wx = w * x          = %.6f * %.6f = %.6f\n", w.item(), x.item(), wx.item());
    std::printf("  z  = wx + b         = %.6f + %.6f = %.6f\n", wx.item(), b.item(), z.item());
    std::printf("  y  = softplus(z)    = log(1 + e^%.6f) = %.6f\n\n", z.item(), y.item());

    // By hand, backwards from dy/dy = 1:
    //   dy/dz  = sigmoid(z)                 (the derivative of softplus)
    //   dy/dwx = dy/dz * dz/dwx = dy/dz * 1
    //   dy/db  = dy/dz * dz/db  = dy/dz * 1
    //   dy/dw  = dy/dwx * dwx/dw = dy/dwx * x
    const double dy_dz = 1.0 / (1.0 + std::exp(-z.item()));
    const double dy_dw = dy_dz * x.item();
    const double dy_db = dy_dz;
    std::printf("backward by hand:\n");
    std::printf("  dy/dz  = sigmoid(z)   = %.6f\n", dy_dz);
    std::printf("  dy/dw  = dy/dz * x    = %.6f\n", dy_dw);
    std::printf("  dy/db  = dy/dz * 1    = %.6f\n\n", dy_db);

    // elbo walks the recorded graph in reverse: softplus, then add, then mul.
    backward(y);
    std::printf("backward by elbo:\n");
    std::printf("  dy/dw  = %.6f\n", w.grad().item());
    std::printf("  dy/db  = %.6f\n", b.grad().item());

    const bool agree = std::abs(w.grad().item() - dy_dw) < 1e-12 && std::abs(b.grad().item() - dy_db) < 1e-12;
    std::printf("\n%s\n", agree ? "they agree." : "THEY DISAGREE.");
    return agree ? 0 : 1;
}
