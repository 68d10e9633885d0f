#pragma once
// Shadow mode: a training step taken again on the CPU in double, from the weights, optimizer
// states, batches and draws the step had, and compared op by op with the step as it was trained
// (float, on the CPU or the GPU). The step's backward passes are traced (autograd/backward.hpp's
// TraceBackward): in each, every op's output in the order the forward pass made them, then every
// op's gradient and the parameters' in the order the backward pass made them. The first whose
// difference passes the tolerance is named, with both values where they differ most.
//
//   difference(a, b) = max_i |a_i - b_i| / max_i |b_i|      (a the float run's, b double's)
//
// relative to the tensor's scale, not element by element: an element near zero that cancels in
// float would otherwise read as a large relative error in a healthy step. ε is the step's own in
// both (StepDraws), drawn in each precision: float's is double's rounded.

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <unordered_map>

#include "elbo/models/checkpoint.hpp"
#include "elbo/train/step.hpp"

namespace elbo::train {

// Where two traces of one step differ.
struct ShadowDifference {
    std::string pass;        // "vae" (the VAE's objective) or "discriminator"
    int64_t index = 0;       // the op's place in its pass's forward order (parameters after the ops)
    std::string op;          // the op, or the parameter's name
    std::string what;        // "output" or "gradient"
    Shape shape;
    double difference = 0;   // as above
    int64_t at = 0;          // the element where |a - b| is largest
    double value = 0, reference = 0;  // there: the run's, and the double step's
    std::string describe() const;
};

struct ShadowReport {
    int64_t step = 0;
    double tolerance = 0;
    int64_t ops = 0, parameters = 0;           // compared, over the passes
    ShadowDifference largest_output, largest_gradient;
    std::optional<ShadowDifference> first;     // the first past the tolerance
    Tensor<double> first_value, first_reference;  // its two tensors, for a closer look
    bool ok() const { return !first; }
    std::string summary() const;
};

inline std::string ShadowDifference::describe() const {
    char values[96];  // float's nine digits, double's seventeen: enough to see where they part
    std::snprintf(values, sizeof values, "%.9g against %.17g", value, reference);
    return str(what, " of ", op, " ", shape, " (", pass, " pass, #", index, "): difference ", difference, " at ", at,
               ": ", values, " in double");
}

inline std::string ShadowReport::summary() const {
    if (first)
        return str("shadow step ", step, ": the ", first->describe(), ", past the tolerance ", tolerance);
    return str("shadow step ", step, ": ", ops, " ops and ", parameters, " parameters agree with double within ",
               tolerance, "; largest: ", largest_output.describe(), "; ", largest_gradient.describe());
}

namespace detail {

// difference(a, b) and where it is largest, a and b on the CPU in double.
inline ShadowDifference difference_of(const Tensor<double>& a, const Tensor<double>& b) {
    ShadowDifference d;
    d.shape = b.shape();
    if (b.numel() == 0) return d;
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < b.numel(); ++i) {
        const double e = std::abs(a[i] - b[i]);
        if (std::isnan(e)) {  // a NaN on either side is the worst there is
            d.at = i, worst = std::numeric_limits<double>::infinity();
            break;
        }
        scale = std::max(scale, std::abs(b[i]));
        if (e > worst) worst = e, d.at = i;
    }
    d.value = a[d.at], d.reference = b[d.at];
    d.difference = worst == 0 ? 0.0 : worst / std::max(scale, std::numeric_limits<double>::min());
    return d;
}

// Compares one pass of each trace, outputs in forward order, then gradients in backward order.
template <class Names>
void compare_pass(const std::string& pass, const std::vector<TracedNode<float>>& run,
                  const std::vector<TracedNode<double>>& reference, const Names& name_of, ShadowReport& r) {
    check(run.size() == reference.size(), "shadow", "the double step's ", pass, " pass has ", reference.size(),
          " nodes, the run's ", run.size());
    std::vector<size_t> ops, forward;  // interior nodes in backward order, and in forward order
    for (size_t i = 0; i < run.size(); ++i) {
        check(std::string(run[i].op) == reference[i].op, "shadow", "the double step's ", pass, " pass has op ",
              reference[i].op, " where the run has ", run[i].op);
        if (!run[i].leaf) ops.push_back(i);
    }
    forward.assign(ops.rbegin(), ops.rend());
    auto look = [&](size_t i, int64_t index, const Tensor<float>& a, const Tensor<double>& b, const char* what,
                    ShadowDifference& largest) {
        const Tensor<double> ad = a.to(Device::cpu).cast<double>();
        ShadowDifference d = difference_of(ad, b);
        d.pass = pass, d.index = index, d.what = what;
        d.op = run[i].leaf ? name_of(run[i].leaf) : run[i].op;
        if (d.difference > largest.difference || largest.op.empty()) largest = d;
        if (!r.first && !(d.difference <= r.tolerance)) {
            r.first = d;
            r.first_value = ad;
            r.first_reference = b;
        }
    };
    for (size_t k = 0; k < forward.size(); ++k)
        look(forward[k], static_cast<int64_t>(k), run[forward[k]].value, reference[forward[k]].value, "output",
             r.largest_output);
    for (size_t i = 0; i < run.size(); ++i) {
        // The ops come first, in backward order; then the parameters, numbered on from the last op.
        const int64_t index = run[i].leaf ? static_cast<int64_t>(i) : static_cast<int64_t>(ops.size() - 1 - i);
        look(i, index, run[i].grad, reference[i].grad, "gradient", r.largest_gradient);
    }
    r.ops += static_cast<int64_t>(ops.size());
    r.parameters += static_cast<int64_t>(run.size() - ops.size());
}

}  // namespace detail

// Compares the passes of a traced run with those of its reference, outputs and then gradients
// (see the top of this file), into r (its tolerance set); a parameter is named by its buffer.
inline void compare_traces(const std::vector<std::vector<TracedNode<float>>>& run,
                           const std::vector<std::vector<TracedNode<double>>>& reference,
                           const std::unordered_map<const float*, std::string>& names, ShadowReport& r) {
    check(run.size() == reference.size(), "shadow", "the reference has ", reference.size(),
          " backward passes, the run ", run.size());
    auto name_of = [&](const float* leaf) {
        auto it = names.find(leaf);
        return it == names.end() ? std::string("a leaf") : it->second;
    };
    const char* labels[] = {"vae", "discriminator"};
    for (size_t p = 0; p < run.size(); ++p)
        detail::compare_pass(p < 2 ? labels[p] : str("pass ", p + 1), run[p], reference[p], name_of, r);
}

// Takes the step of `model` with `opt` (and, for a FactorVAE, `d_opt` and x_other) as train::step
// does, and again in double on the CPU from what they held before it; returns the step's terms
// (the run goes on exactly as without a shadow) and the comparison.
inline std::pair<StepTerms, ShadowReport> shadow_step(models::VAE<float>& model, optim::Adam<float>& opt,
                                                      optim::Adam<float>* d_opt, const Tensor<float>& x,
                                                      const Tensor<float>& x_other, const StepDraws& draws,
                                                      double tolerance) {
    const bool factor = model.config.is_factor_vae();
    check(!factor || d_opt, "shadow", "a FactorVAE's step needs its discriminator's optimizer");
    check(tolerance > 0, "shadow", "the tolerance must be positive, got ", tolerance);
    // The double step's model and optimizers, from the state before the step.
    const std::unique_ptr<models::VAE<double>> copy = models::copy_as<double>(model);
    optim::Adam<double> opt64(copy->vae_parameters(), opt.options);
    opt64.load_state_dict(models::cast_tensors<double>(opt.state_dict("")), "");
    std::unique_ptr<optim::Adam<double>> d_opt64;
    if (factor) {
        d_opt64 = std::make_unique<optim::Adam<double>>(
            static_cast<models::FactorVAE<double>&>(*copy).discriminator_parameters(), d_opt->options);
        d_opt64->load_state_dict(models::cast_tensors<double>(d_opt->state_dict("")), "");
    }

    ShadowReport r;
    r.step = draws.step;
    r.tolerance = tolerance;
    std::vector<std::vector<TracedNode<float>>> run;
    StepTerms terms;
    {
        TraceBackward<float> trace;
        terms = factor ? step(static_cast<models::FactorVAE<float>&>(model), opt, *d_opt, x, x_other, draws)
                       : step(model, opt, x, draws);
        run = std::move(trace.passes);
    }
    std::vector<std::vector<TracedNode<double>>> reference;
    StepTerms terms64;
    {
        TraceBackward<double> trace;
        const Tensor<double> x64 = x.to(Device::cpu).cast<double>();
        terms64 = factor ? step(static_cast<models::FactorVAE<double>&>(*copy), opt64, *d_opt64, x64,
                                x_other.to(Device::cpu).cast<double>(), draws)
                         : step(*copy, opt64, x64, draws);
        reference = std::move(trace.passes);
    }
    if (!terms.finite() || run.size() != reference.size()) {  // a step that stopped before a backward pass
        ShadowDifference d;
        d.pass = "vae", d.op = "the objective", d.what = "output", d.shape = Shape{1};
        d.value = terms.loss, d.reference = terms64.loss;
        d.difference = std::numeric_limits<double>::infinity();
        r.first = d;
        return {terms, r};
    }
    std::unordered_map<const float*, std::string> names;
    for (const auto& [name, p] : model.named_parameters()) names.emplace(p.value().data(), name);
    compare_traces(run, reference, names, r);
    return {terms, r};
}

}  // namespace elbo::train
