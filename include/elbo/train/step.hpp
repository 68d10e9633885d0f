#pragma once
// One training step, as the paper's algorithms take it. Which step applies is in the model's type:
//
//   train::step(vae, opt, x, step, gen)                                VAE, β-VAE, the capacity objective
//   train::step(factor_vae, opt, d_opt, x, x_other, step, gen)         FactorVAE (Kim & Mnih 2018, Algorithm 2)
//
// The VAE's step: forward pass on x (ε from gen), the objective at this step, backward, opt.step().
// FactorVAE's adds the discriminator's step: the encoder on a second batch x_other (no graph), the
// discriminator on this batch's codes z against permute_dims of the second batch's codes, both
// detached, and d_opt.step(). Both return the objective's terms per image. A step whose objective
// is not finite returns its terms before any update is applied, so the caller can stop on it with
// the parameters of the last good step.

#include <cmath>
#include <tuple>

#include "elbo/models/factor_vae.hpp"

namespace elbo::train {

// The objective's terms at this step, per image (whatever the config's reduction), and the
// training's health: each latent's KL, and how well FactorVAE's discriminator tells real codes
// from permuted ones.
struct StepTerms {
    double loss = 0, recon = 0, kl = 0, tc = 0, discriminator = 0;
    double accuracy_real = 0, accuracy_permuted = 0;
    std::vector<double> kl_per_latent;  // [D], nats per image
    bool finite() const { return std::isfinite(loss) && std::isfinite(discriminator); }
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

// The VAE's half of a step, on x already on the model's device: forward, objective, and (when
// finite) backward and opt.step(). Returns the terms and the forward pass (FactorVAE reads its z).
template <class T>
std::pair<StepTerms, models::VAEOutput<T>> vae_update(models::VAE<T>& model, optim::Optimizer<T>& opt,
                                                       const Var<T>& input, int64_t step, Generator& gen) {
    const models::VAEOutput<T> out = model.forward(input, gen);
    const models::VAELoss<T> loss = model.loss(input, out, step);
    const double per_image =
        model.config.reduction == Reduction::sum ? 1.0 / static_cast<double>(input.shape()[0]) : 1.0;
    StepTerms s;
    s.loss = loss.total.item() * per_image;
    s.recon = loss.recon.item() * per_image;
    s.kl = loss.kl.item() * per_image;
    s.tc = loss.tc.defined() ? loss.tc.item() * per_image : 0.0;
    s.kl_per_latent = kl_per_latent(out.mu, out.logvar);
    if (!s.finite()) return {s, out};
    opt.zero_grad();
    backward(loss.total);
    opt.step();
    return {s, out};
}

}  // namespace detail

// The VAE's step on x [N, C, S, S] (copied to the model's device), drawing ε from gen. For the
// VAE, β-VAE and the capacity objective; a FactorVAE takes the step below, with its discriminator.
template <class T>
StepTerms step(models::VAE<T>& model, optim::Optimizer<T>& opt, const Tensor<T>& x, int64_t step, Generator& gen) {
    check(!model.config.is_factor_vae(), "train::step", "a FactorVAE trains with its discriminator: call "
          "train::step(model, opt, d_opt, x, x_other, step, gen) on the FactorVAE");
    return detail::vae_update(model, opt, Var<T>(x.to(model.device())), step, gen).first;
}

// A FactorVAE with one optimizer would train its γ TC term against a discriminator that never learns.
template <class T>
StepTerms step(models::FactorVAE<T>& model, optim::Optimizer<T>& opt, const Tensor<T>& x, int64_t step,
               Generator& gen) = delete;

// FactorVAE's step: the VAE's objective recon + β KL + γ TC on x with opt (over vae_parameters()),
// then the discriminator's cross-entropy on this batch's codes against permute_dims of x_other's
// codes with d_opt (over discriminator_parameters()). ε and the permutations come from gen.
template <class T>
StepTerms step(models::FactorVAE<T>& model, optim::Optimizer<T>& opt, optim::Optimizer<T>& d_opt, const Tensor<T>& x,
               const Tensor<T>& x_other, int64_t step, Generator& gen) {
    const Device device = model.device();
    StepTerms s;
    models::VAEOutput<T> out;
    {
        const FrozenParameters<T> frozen(model.discriminator_parameters());
        std::tie(s, out) = detail::vae_update<T>(model, opt, Var<T>(x.to(device)), step, gen);
    }
    if (!s.finite()) return s;

    Var<T> z_other;
    {
        NoGrad no_grad;
        auto [mu, logvar] = model.encoder.encode(Var<T>(x_other.to(device)));
        z_other = reparameterize(mu, logvar, gen);
    }
    const models::DiscriminatorLoss<T> d = model.discriminator_loss(out.z, z_other, gen);
    s.discriminator = d.loss.item();
    s.accuracy_real = d.accuracy_real();
    s.accuracy_permuted = d.accuracy_permuted();
    if (!s.finite()) return s;
    d_opt.zero_grad();
    backward(d.loss);
    d_opt.step();
    return s;
}

}  // namespace elbo::train
