#pragma once
// gradcheck(): compares the recorded backward of a function with central finite differences.
//
// The function's output y is projected on a fixed random direction r, L = <r, y>, so every output
// element takes part. The analytic gradient comes from backward(y, r); the numeric one, for each
// input element x_i, from (L(x_i + h) - L(x_i - h)) / 2h, whose error is O(h^2) plus rounding of
// order 1e-16 |L| / h: with h = 1e-6 in double, about 1e-8 even for |L| near 100. Each element's error is
// |analytic - numeric| / max(1, |analytic|, |numeric|): relative for large gradients, absolute
// for small ones, where a relative error means nothing.

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "elbo/autograd/backward.hpp"

namespace elbo {

struct GradcheckOptions {
    double step = 1e-6;       // h
    double tolerance = 1e-6;  // the largest error that passes
    uint64_t seed = 1234;     // for the projection r
};

struct GradcheckResult {
    bool ok = true;
    double max_error = 0.0;
    size_t input = 0;    // where the largest error is
    int64_t index = 0;
    double analytic = 0.0, numeric = 0.0;

    std::string report() const {
        return str(ok ? "gradcheck passed" : "gradcheck FAILED", ": max error ", max_error, " at input ",
                   input, " element ", index, " (analytic ", analytic, ", numeric ", numeric, ")");
    }
};

// Checks f's gradient with respect to every input that requires one. `inputs` are leaves.
inline GradcheckResult gradcheck(const std::function<Var<double>(const std::vector<Var<double>>&)>& f,
                                 std::vector<Var<double>> inputs, GradcheckOptions opt = {}) {
    for (Var<double>& x : inputs) x.zero_grad();
    Var<double> y = f(inputs);
    Generator gen(opt.seed);
    Tensor<double> r(y.shape());
    r.normal_(gen);
    backward(y, r);

    auto projected = [&]() {
        NoGrad no_grad;
        const Tensor<double> out = f(inputs).value();
        double s = 0.0;
        for (int64_t i = 0; i < out.numel(); ++i) s += r[i] * out[i];
        return s;
    };

    GradcheckResult result;
    for (size_t k = 0; k < inputs.size(); ++k) {
        if (!inputs[k].requires_grad()) continue;
        Tensor<double>& x = inputs[k].value();
        const Tensor<double>& analytic = inputs[k].grad();
        for (int64_t i = 0; i < x.numel(); ++i) {
            const double saved = x[i];
            x[i] = saved + opt.step;
            const double up = projected();
            x[i] = saved - opt.step;
            const double down = projected();
            x[i] = saved;
            const double numeric = (up - down) / (2.0 * opt.step);
            const double error = std::abs(analytic[i] - numeric) /
                                 std::max({1.0, std::abs(analytic[i]), std::abs(numeric)});
            if (error >= result.max_error) {
                result.max_error = error;
                result.input = k;
                result.index = i;
                result.analytic = analytic[i];
                result.numeric = numeric;
            }
        }
    }
    result.ok = result.max_error < opt.tolerance;
    return result;
}

}  // namespace elbo
