#pragma once
// gradcheck(model, batch): every parameter's gradient of a model's whole objective, in double,
// against central differences.
//
// The model is copied into double (its config, its weights cast), so the finite differences see
// the objective, not float's rounding. The model's noise is frozen: ε is drawn once, and
// FactorVAE's permutations are named by the same StepDraws in every evaluation, so the objective
// is a deterministic function of the parameters. Then, for each parameter tensor, a few
// coordinates (all of a small tensor; in a large one the coordinate with the largest gradient and
// `coordinates - 1` others drawn at random) are moved by ±h and
//
//   numeric = (L(θ_i + h) - L(θ_i - h)) / (θ_i + h - (θ_i - h))      (the step as double made it)
//   error   = |analytic - numeric| / max(|analytic|, |numeric|, resolution / tolerance)
//
// a relative error, except where the gradient is so small that the finite difference cannot
// resolve it to the tolerance. Each of L's two values carries rounding of a few units in its last
// place, and the difference of two numbers near |L| over 2h carries
//
//   resolution = 16 u (|L(θ_i + h)| + |L(θ_i - h)|) / 2h,      u = 2^-53
//
// (16: L sums thousands of terms; measured on the kim-mnih VAE, numeric and analytic derivatives of
// tiny gradients differed by 1 to 3 units of u |L| / h). So a coordinate passes when its gradient
// agrees to the tolerance, or to within what the finite difference can see; the VAE's objective
// summed over 4,096 pixels makes the resolution about 1e-7 at h = 1e-6, the largest gradients
// 1e-2 to 1. A unit within h of a ReLU's kink bends L between the two points, so a coordinate that
// fails is measured again with h / 10, and keeps the smaller error (a wrong gradient stays wrong).
//
// The objectives checked: a VAE's (recon + β KL, or the capacity objective) over all its
// parameters; a FactorVAE's VAE objective (with γ TC, so the discriminator's parameters too) on the
// batch's first half, and its discriminator's cross-entropy over the discriminator's parameters,
// on the first half's codes against permute_dims of the second half's (both fixed, as the
// discriminator's step reads them detached).

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "elbo/models/checkpoint.hpp"

namespace elbo {

struct ModelGradcheckOptions {
    int64_t coordinates = 8;  // checked per tensor; every one of a tensor with no more
    double step = 1e-6;       // h, added to a parameter in double
    double tolerance = 1e-6;  // the largest error that passes
    uint64_t seed = 0;        // ε, the permutation, and which coordinates
    int64_t training_step = 0;  // sets the capacity C of a capacity objective; names ε's draws with the seed
};

// One parameter tensor's check.
struct TensorGradcheck {
    std::string objective;  // "vae" or "discriminator"
    std::string name;       // the parameter's name, as in a checkpoint
    Shape shape;
    int64_t checked = 0;       // coordinates compared
    double max_error = 0.0;    // the worst of them
    int64_t index = 0;         // where (flat index)
    double analytic = 0.0, numeric = 0.0;
};

struct ModelGradcheck {
    std::vector<TensorGradcheck> tensors;
    double tolerance = 0.0;

    double max_error() const {
        double e = 0.0;
        for (const TensorGradcheck& t : tensors) e = std::max(e, t.max_error);
        return e;
    }
    bool ok() const { return max_error() < tolerance; }

    // One line per tensor: objective, name, shape, coordinates, worst error, and the failures marked.
    std::string report() const {
        std::string out;
        for (const TensorGradcheck& t : tensors)
            out += str(t.objective, "  ", t.name, " ", t.shape, "  ", t.checked, " coordinates  max error ", t.max_error,
                       t.max_error < tolerance ? "" : str("  FAILED at ", t.index, ": analytic ", t.analytic,
                                                          ", numeric ", t.numeric),
                       "\n");
        out += str(ok() ? "gradcheck passed" : "gradcheck FAILED", ": ", tensors.size(), " tensors, max error ",
                   max_error(), " (tolerance ", tolerance, ")\n");
        return out;
    }
};

// Checks the gradient of `objective` (a scalar built from `parameters`) with respect to sampled
// coordinates of each parameter; appends a TensorGradcheck per parameter to `result`, labelled
// `label`. What gradcheck(model, ...) runs for each of a model's objectives.
inline void gradcheck_parameters(const std::string& label, const std::function<Var<double>()>& objective,
                                 const std::vector<std::pair<std::string, Var<double>>>& parameters,
                                 const ModelGradcheckOptions& opt, ModelGradcheck& result) {
    const char* op = "gradcheck";
    check(!parameters.empty(), op, "the ", label, " objective has no parameters to check");
    check(opt.coordinates > 0, op, "coordinates per tensor must be positive, got ", opt.coordinates);
    check(std::isfinite(opt.step) && opt.step > 0, op, "the step h must be a positive number, got ", opt.step);
    check(std::isfinite(opt.tolerance) && opt.tolerance > 0, op, "the tolerance must be a positive number, got ",
          opt.tolerance);
    result.tolerance = opt.tolerance;
    for (const auto& [name, p] : parameters) {
        Var<double> q = p;
        q.zero_grad();
    }
    const Var<double> loss = objective();
    check(loss.shape().numel() == 1, op, "the ", label, " objective must be a scalar, got ", loss.shape());
    check(std::isfinite(loss.item()), op, "the ", label, " objective is ", loss.item(), " at these weights and this "
          "batch; a gradient check needs a finite one");
    backward(loss);

    auto value = [&] {
        NoGrad no_grad;
        const double v = objective().item();
        check(std::isfinite(v), op, "the ", label, " objective became ", v, " under a step of ", opt.step,
              "; take a smaller --step");
        return v;
    };
    Generator pick(opt.seed ^ 0x9e3779b97f4a7c15ULL);
    for (const auto& [name, p] : parameters) {
        Var<double> param = p;
        Tensor<double>& x = param.value();
        const Tensor<double> analytic = param.grad().clone();
        const int64_t n = x.numel();
        double largest = 0.0;
        int64_t largest_at = 0;
        for (int64_t i = 0; i < n; ++i)
            if (std::abs(analytic[i]) > largest) largest = std::abs(analytic[i]), largest_at = i;
        std::vector<int64_t> coordinates;
        if (n <= opt.coordinates) {
            for (int64_t i = 0; i < n; ++i) coordinates.push_back(i);
        } else {
            coordinates.push_back(largest_at);
            while (static_cast<int64_t>(coordinates.size()) < opt.coordinates) {
                const int64_t i = static_cast<int64_t>(pick.below(static_cast<uint64_t>(n)));
                if (std::find(coordinates.begin(), coordinates.end(), i) == coordinates.end()) coordinates.push_back(i);
            }
        }
        TensorGradcheck t{.objective = label, .name = name, .shape = x.shape()};
        // The numeric derivative at coordinate i with step h, and its error.
        auto measure = [&](int64_t i, double h) {
            const double saved = x[i];
            const double up_at = saved + h, down_at = saved - h;
            check(up_at - down_at > 0, op, "the step h = ", h, " vanishes next to ", name, "[", i, "] = ", saved,
                  " in double; take a larger --step");
            x[i] = up_at;
            const double up = value();
            x[i] = down_at;
            const double down = value();
            x[i] = saved;
            const double numeric = (up - down) / (up_at - down_at);
            const double resolution = 16 * 0x1p-53 * (std::abs(up) + std::abs(down)) / (up_at - down_at);
            const double error = std::abs(analytic[i] - numeric) /
                                 std::max({std::abs(analytic[i]), std::abs(numeric), resolution / opt.tolerance});
            return std::pair{numeric, error};
        };
        for (int64_t i : coordinates) {
            auto [numeric, error] = measure(i, opt.step);
            if (error >= opt.tolerance) {
                // A unit within h of a ReLU's kink bends L inside [θ_i - h, θ_i + h]: measured again
                // with h / 10, where the kink is most likely outside, a wrong gradient stays wrong.
                const auto [numeric_again, error_again] = measure(i, opt.step / 10);
                if (error_again < error) numeric = numeric_again, error = error_again;
            }
            ++t.checked;
            if (error >= t.max_error) {
                t.max_error = error;
                t.index = i;
                t.analytic = analytic[i];
                t.numeric = numeric;
            }
        }
        result.tensors.push_back(t);
    }
}

// Checks the gradients of `model`'s objectives on `batch` [N, C, S, S] (values in [0, 1]; a
// FactorVAE needs N >= 2 and splits it in halves). The model itself is left as it was.
template <class T>
ModelGradcheck gradcheck(const models::VAE<T>& model, const Tensor<T>& batch, const ModelGradcheckOptions& opt = {}) {
    const models::ModelConfig& config = model.config;
    const bool factor = config.is_factor_vae();
    check(!factor || batch.rank() != 4 || batch.size(0) >= 2, "gradcheck",
          "a FactorVAE's check needs a batch of at least 2 images (one half for the VAE, one for the "
          "discriminator's permuted codes), got ", batch.shape());
    const std::unique_ptr<models::VAE<double>> copy = models::copy_as<double>(model);

    const Tensor<double> all = batch.to(Device::cpu).template cast<double>();
    const bool split = factor && all.rank() == 4;  // else the model's forward names what it expected
    const int64_t n = split ? all.size(0) : 0, half = (n + 1) / 2;
    const Var<double> x(split ? all.slice(0, half) : all);
    const StepDraws draws{opt.seed, opt.training_step};
    Var<double> eps;
    {
        NoGrad no_grad;
        eps = standard_normal_like(copy->forward(x, Var<double>()).mu, draws);
    }

    ModelGradcheck result;
    gradcheck_parameters(
        "vae", [&] { return copy->loss(x, copy->forward(x, eps), opt.training_step).total; }, copy->named_parameters(),
        opt, result);
    if (factor) {
        auto& f = static_cast<models::FactorVAE<double>&>(*copy);
        const Var<double> x_other(all.slice(half, n));
        Var<double> z, z_other;
        {
            NoGrad no_grad;
            z = f.forward(x, eps).z;
            z_other = f.forward(x_other, draws.second_batch(half)).z;
        }
        gradcheck_parameters(
            "discriminator", [&] { return f.discriminator_loss(z, z_other, draws).loss; }, f.discriminator_parameters(),
            opt, result);
    }
    return result;
}

}  // namespace elbo
