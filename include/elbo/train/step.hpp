#pragma once
// One training step, as the paper's algorithms take it. Which step applies is in the model's type:
//
//   train::step(vae, opt, x, draws)                                VAE, β-VAE, the capacity objective
//   train::step(factor_vae, opt, d_opt, x, x_other, draws)         FactorVAE (Kim & Mnih 2018, Algorithm 2)
//
// `draws` names the step (StepDraws: the run's seed, the step, this process's place among the
// step's images) and so every random number it uses.
// The VAE's step: forward pass on x (ε from draws), the objective at this step, backward, opt.step().
// FactorVAE's adds the discriminator's step: the encoder on a second batch x_other (no graph), the
// discriminator on this batch's codes z against permute_dims of the second batch's codes, both
// detached, and d_opt.step(). Both return the objective's terms per image. A step whose objective
// is not finite returns its terms before any update is applied, so the caller can stop on it with
// the parameters of the last good step.

#include <cmath>
#include <map>
#include <optional>
#include <tuple>

#include "elbo/kernels/cpu/reduce.hpp"
#include "elbo/models/factor_vae.hpp"
#include "elbo/optim/optimizers.hpp"
#include "elbo/train/group.hpp"

namespace elbo::train {

// The objective's terms at this step, per image (whatever the config's reduction), and the
// training's health (train/health.hpp watches it): each latent's KL and its code's moments, how
// sure the decoder is, each layer's gradient norm, and how well FactorVAE's discriminator tells
// real codes from permuted ones.
struct StepTerms {
    double loss = 0, recon = 0, kl = 0, tc = 0, discriminator = 0;
    double accuracy_real = 0, accuracy_permuted = 0;
    std::vector<double> kl_per_latent;  // [D], nats per image
    std::vector<double> mu_mean, mu_square;  // [D]: each latent's E[mu] and E[mu^2] over the batch
    // The fractions of output pixels whose logit passes ±15 (sigmoid within 3e-7 of 0 or 1), and of
    // those the target is on the other side of 0.5 from (sure and wrong).
    double saturated = 0, saturated_wrong = 0;
    // Each layer's gradient norm (its parameters' together), named as in a checkpoint ("encoder.conv1"),
    // the VAE's layers then the discriminator's; empty for a step that applied no update.
    std::vector<std::pair<std::string, double>> gradient_norms;
    bool finite() const { return std::isfinite(loss) && std::isfinite(discriminator); }

    // The VAE's whole gradient norm (every layer but the discriminator's).
    double vae_gradient_norm() const {
        double squares = 0;
        for (const auto& [layer, norm] : gradient_norms)
            if (layer.rfind("discriminator.", 0) != 0) squares += norm * norm;
        return std::sqrt(squares);
    }
};

// The KL of each latent, averaged over the batch: 1/2 (mu^2 + exp(logvar) - logvar - 1).
template <class T>
std::vector<double> kl_per_latent(const Var<T>& mu, const Var<T>& logvar) {
    const Tensor<T> m = mu.value().to(Device::cpu), v = logvar.value().to(Device::cpu);
    const int64_t n = m.size(0), d = m.size(1);
    std::vector<double> kl(static_cast<size_t>(d), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j) {
            const double mu_ij = m[i * d + j], lv = v[i * d + j];
            kl[static_cast<size_t>(j)] += 0.5 * (mu_ij * mu_ij + std::exp(lv) - lv - 1.0) / static_cast<double>(n);
        }
    return kl;
}

// Each latent's mean of mu and of mu^2 over the batch (the window's active units come from them).
template <class T>
std::pair<std::vector<double>, std::vector<double>> code_moments(const Var<T>& mu) {
    const Tensor<T> m = mu.value().to(Device::cpu);
    const int64_t n = m.size(0), d = m.size(1);
    std::vector<double> mean(static_cast<size_t>(d), 0.0), square(static_cast<size_t>(d), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j) {
            const double v = m[i * d + j];
            mean[static_cast<size_t>(j)] += v / static_cast<double>(n);
            square[static_cast<size_t>(j)] += v * v / static_cast<double>(n);
        }
    return {mean, square};
}

// The fractions of the decoder's logits past ±15, and of those sure and wrong about the target x.
template <class T>
std::pair<double, double> saturation(const Var<T>& logits, const Var<T>& x) {
    const Tensor<T> l = logits.value().to(Device::cpu), t = x.value().to(Device::cpu);
    const T* lp = l.data();
    const T* tp = t.data();
    const int64_t n = l.numel();
    int64_t saturated = 0, wrong = 0;
    for (int64_t i = 0; i < n; ++i) {  // without a branch, so that it vectorizes (0.3 ms for the seed's batch, not 1-6)
        const bool sure = std::abs(lp[i]) > T(15);
        saturated += sure;
        wrong += sure & ((lp[i] > T(0)) != (tp[i] > T(0.5)));
    }
    return {static_cast<double>(saturated) / static_cast<double>(n), static_cast<double>(wrong) / static_cast<double>(n)};
}

// The layer a parameter belongs to: its name without the last part ("encoder.conv1.weight" ->
// "encoder.conv1").
inline std::string layer_of(const std::string& parameter) { return parameter.substr(0, parameter.rfind('.')); }

// Each layer's gradient norm: the parameters named "<layer>.weight", "<layer>.bias" together, in
// the order of `named`; a parameter without a gradient counts as zero. Called after opt.step(),
// it takes each sum of squares that the step's own pass summed (Optimizer::gradient_squares) and
// sums the rest itself (parameters opt does not hold, or holds on the GPU).
template <class T>
std::vector<std::pair<std::string, double>> gradient_norms(const std::vector<std::pair<std::string, Var<T>>>& named,
                                                           const optim::Optimizer<T>& opt) {
    NoGrad no_grad;
    std::map<const T*, double> summed;  // by the parameter's values
    for (size_t i = 0; i < opt.gradient_squares().size(); ++i)  // empty before opt's first step
        if (const std::optional<double>& s = opt.gradient_squares()[i])
            summed.emplace(opt.parameters()[i].second.value().data(), *s);
    std::vector<std::pair<std::string, double>> norms;
    for (const auto& [name, p] : named) {
        const std::string layer = layer_of(name);
        double squares = 0;
        if (auto it = summed.find(p.value().data()); it != summed.end()) {
            squares = it->second;
        } else if (p.has_grad() && p.grad().device() == Device::cpu) {
            squares = kernels::sum_of_squares(p.grad().data(), p.grad().numel());  // one pass, no temporary
        } else if (p.has_grad()) {
            const Var<T> g(p.grad());
            squares = static_cast<double>(sum(g * g).item());
        }
        if (norms.empty() || norms.back().first != layer) norms.emplace_back(layer, 0.0);
        norms.back().second = std::sqrt(norms.back().second * norms.back().second + squares);
    }
    return norms;
}

// While it lives, the given parameters require no gradient (and get none). FactorVAE's step
// freezes the discriminator's during the VAE's backward pass: its optimizer ignores them and the
// discriminator's step would clear them unused, so computing them is a sixth of the step's
// backward work in the discriminator for nothing; the gradient reaching z, the VAE's, is the same.
template <class T>
class FrozenParameters {
public:
    explicit FrozenParameters(const std::vector<std::pair<std::string, Var<T>>>& named) {
        for (const auto& [name, p] : named)
            if (p.requires_grad()) frozen_.push_back(p), frozen_.back().requires_grad_(false);
    }
    ~FrozenParameters() {
        for (Var<T>& p : frozen_) p.requires_grad_(true);
    }
    FrozenParameters(const FrozenParameters&) = delete;
    FrozenParameters& operator=(const FrozenParameters&) = delete;

private:
    std::vector<Var<T>> frozen_;
};

namespace detail {

// The parameters of a named list.
template <class T>
std::vector<Var<T>> parameters_of(const std::vector<std::pair<std::string, Var<T>>>& named) {
    std::vector<Var<T>> p;
    for (const auto& [name, v] : named) p.push_back(v);
    return p;
}

// Over a group, a step's terms become the whole batch's: the per-image means, over equal batches
// on every process, averaged.
inline void combine_terms(StepTerms& s, Group& group) {
    std::vector<double> v{s.loss, s.recon, s.kl, s.tc, s.saturated, s.saturated_wrong};
    for (const auto* terms : {&s.kl_per_latent, &s.mu_mean, &s.mu_square})
        v.insert(v.end(), terms->begin(), terms->end());
    group.sum(v.data(), static_cast<int64_t>(v.size()));
    const double p = group.size();
    for (double& x : v) x /= p;
    size_t i = 0;
    for (double* term : {&s.loss, &s.recon, &s.kl, &s.tc, &s.saturated, &s.saturated_wrong}) *term = v[i++];
    for (auto* terms : {&s.kl_per_latent, &s.mu_mean, &s.mu_square})
        for (double& x : *terms) x = v[i++];
}

// The draws of a step shared by a group: this process's images are its part of the whole batch.
template <class T>
StepDraws group_draws(StepDraws draws, Group* group, const models::ModelConfig& c, int64_t batch) {
    if (!group) return draws;
    check(std::is_same_v<T, float>, "train::step", "a step shared by processes trains float models");
    check(c.capacity_max == 0, "train::step", "the capacity objective w |KL - C| is not a sum over images, so "
          "processes cannot share its batch; train it in one process");
    draws.first_image = group->rank() * batch;
    draws.global_batch = group->size() * batch;
    return draws;
}

// backward(loss) with the parameters' gradients summed over the group, times `scale`.
template <class T>
void backward_over(const Var<T>& loss, const std::vector<std::pair<std::string, Var<T>>>& named, Group* group,
                   float scale) {
    if constexpr (std::is_same_v<T, float>)
        if (group) {
            const std::unique_ptr<GradientSync> sync = group->gradients(parameters_of(named), scale);
            backward(loss);
            sync->finish();
            return;
        }
    backward(loss);
}

// The VAE's half of a step, on x already on the model's device: forward, objective, and (when
// finite) backward and opt.step(). Returns the terms and the forward pass (FactorVAE reads its z).
template <class T>
std::pair<StepTerms, models::VAEOutput<T>> vae_update(models::VAE<T>& model, optim::Optimizer<T>& opt,
                                                       const Var<T>& input, const StepDraws& draws, Group* group) {
    const models::VAEOutput<T> out = model.forward(input, draws);
    const models::VAELoss<T> loss = model.loss(input, out, draws.step);
    const double per_image =
        model.config.reduction == Reduction::sum ? 1.0 / static_cast<double>(input.shape()[0]) : 1.0;
    StepTerms s;
    s.loss = loss.total.item() * per_image;
    s.recon = loss.recon.item() * per_image;
    s.kl = loss.kl.item() * per_image;
    s.tc = loss.tc.defined() ? loss.tc.item() * per_image : 0.0;
    s.kl_per_latent = kl_per_latent(out.mu, out.logvar);
    std::tie(s.mu_mean, s.mu_square) = code_moments(out.mu);
    std::tie(s.saturated, s.saturated_wrong) = saturation(out.logits, input);
    if (group) combine_terms(s, *group);  // so every process sees a non-finite loss, and stops
    if (!s.finite()) return {s, out};
    opt.zero_grad();
    // Over a group, a mean objective's gradient is the mean of the processes'; a sum's, their sum.
    const bool mean = model.config.reduction == Reduction::mean;
    const float scale = group && mean ? 1.0f / static_cast<float>(group->size()) : 1.0f;
    backward_over(loss.total, model.vae_parameters(), group, scale);
    opt.step();
    s.gradient_norms = gradient_norms(model.vae_parameters(), opt);
    return {s, out};
}

}  // namespace detail

// The VAE's step on x [N, C, S, S] (copied to the model's device), ε from draws. For the
// VAE, β-VAE and the capacity objective; a FactorVAE takes the step below, with its discriminator.
// With a group, x is this process's part of the batch, and the step is the whole batch's.
template <class T>
StepTerms step(models::VAE<T>& model, optim::Optimizer<T>& opt, const Tensor<T>& x, const StepDraws& draws,
               Group* group = nullptr) {
    check(!model.config.is_factor_vae(), "train::step", "a FactorVAE trains with its discriminator: call "
          "train::step(model, opt, d_opt, x, x_other, draws) on the FactorVAE");
    const StepDraws mine = detail::group_draws<T>(draws, group, model.config, x.size(0));
    return detail::vae_update(model, opt, Var<T>(x.to(model.device())), mine, group).first;
}

// A FactorVAE with one optimizer would train its γ TC term against a discriminator that never learns.
template <class T>
StepTerms step(models::FactorVAE<T>& model, optim::Optimizer<T>& opt, const Tensor<T>& x,
               const StepDraws& draws, Group* group = nullptr) = delete;

// FactorVAE's step: the VAE's objective recon + β KL + γ TC on x with opt (over vae_parameters()),
// then the discriminator's cross-entropy on this batch's codes against permute_dims of x_other's
// codes with d_opt (over discriminator_parameters()). ε and the permutations come from draws: the
// second batch's images take the places after the first's. With a group, x and x_other are this
// process's parts of the two batches; the second batch's codes are gathered from every process,
// so that permute_dims shuffles the whole batch, as one process would, and each process takes its
// rows of the result.
template <class T>
StepTerms step(models::FactorVAE<T>& model, optim::Optimizer<T>& opt, optim::Optimizer<T>& d_opt, const Tensor<T>& x,
               const Tensor<T>& x_other, const StepDraws& draws, Group* group = nullptr) {
    const Device device = model.device();
    const StepDraws mine = detail::group_draws<T>(draws, group, model.config, x.size(0));
    StepTerms s;
    models::VAEOutput<T> out;
    {
        const FrozenParameters<T> frozen(model.discriminator_parameters());
        std::tie(s, out) = detail::vae_update<T>(model, opt, Var<T>(x.to(device)), mine, group);
    }
    if (!s.finite()) return s;

    Var<T> z_other;
    {
        NoGrad no_grad;
        auto [mu, logvar] = model.encoder.encode(Var<T>(x_other.to(device)));
        z_other = reparameterize(mu, logvar, mine.second_batch(x.size(0)));
    }
    models::DiscriminatorLoss<T> d;
    if (!group) {
        d = model.discriminator_loss(out.z, z_other, mine);
    } else {
        const int64_t m = z_other.shape()[0], D = z_other.shape()[1], p = group->size();
        const Tensor<T> codes = z_other.value().to(Device::cpu);
        Tensor<T> all = Tensor<T>::uninitialized(Shape{p * m, D});
        if constexpr (std::is_same_v<T, float>) group->gather(codes.data(), m * D, all.data());
        const Tensor<T> permuted = permute_dims(Var<T>(all), mine).value();
        const Var<T> rows(permuted.slice(group->rank() * m, (group->rank() + 1) * m).to(device));
        d = model.discriminator_loss_of(out.z, rows, p * x.size(0), p * m);
    }
    s.discriminator = d.loss.item();
    s.accuracy_real = d.accuracy_real();
    s.accuracy_permuted = d.accuracy_permuted();
    if (group) {  // the loss is already the whole batch's share: summed; the accuracies averaged
        double v[3] = {s.discriminator, s.accuracy_real, s.accuracy_permuted};
        group->sum(v, 3);
        s.discriminator = v[0], s.accuracy_real = v[1] / group->size(), s.accuracy_permuted = v[2] / group->size();
    }
    if (!s.finite()) return s;
    d_opt.zero_grad();
    detail::backward_over(d.loss, model.discriminator_parameters(), group, 1.0f);
    d_opt.step();
    for (auto& layer : gradient_norms(model.discriminator_parameters(), d_opt)) s.gradient_norms.push_back(layer);
    return s;
}

}  // namespace elbo::train
