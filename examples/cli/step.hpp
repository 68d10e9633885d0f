#pragma once
// One training step, as `elbo train` takes it and `elbo bench` times it: the VAE's forward pass,
// objective, backward pass and Adam step; for FactorVAE then the discriminator's step on the codes
// of this batch against the permuted codes of a second batch.

#include <optional>

#include "elbo/elbo.hpp"

namespace elbo::cli {

// The objective's terms at this step, per image (whatever the config's reduction), and the
// training's health: each latent's KL, and how well FactorVAE's discriminator tells real codes
// from permuted ones.
struct StepLosses {
    double loss = 0, recon = 0, kl = 0, tc = 0, discriminator = 0;
    double accuracy_real = 0, accuracy_permuted = 0;
    std::vector<double> kl_per_latent;  // [D], nats per image
    bool finite() const { return std::isfinite(loss) && std::isfinite(discriminator); }
};

// The KL of each latent, averaged over the batch: 1/2 (mu^2 + exp(logvar) - logvar - 1).
inline std::vector<double> kl_per_latent(const Var<float>& mu, const Var<float>& logvar) {
    const Tensor<float> m = mu.value().to(Device::cpu), v = logvar.value().to(Device::cpu);
    const int64_t n = m.size(0), d = m.size(1);
    std::vector<double> kl(static_cast<size_t>(d), 0.0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j) {
            const double mu_ij = m[i * d + j], lv = v[i * d + j];
            kl[static_cast<size_t>(j)] += 0.5 * (mu_ij * mu_ij + std::exp(lv) - lv - 1.0) / static_cast<double>(n);
        }
    return kl;
}

struct Optimizers {
    optim::Adam<float>* vae = nullptr;
    optim::Adam<float>* discriminator = nullptr;  // FactorVAE only
};

// A weight a flag gives: finite and non-negative.
inline void check_weight(const std::optional<double>& w, const char* op, const char* flag) {
    check(!w || (std::isfinite(*w) && *w >= 0), op, flag, " must be a non-negative number, got ", *w);
}

// The device --device names: "cuda" needs a build with the CUDA module, and a GPU.
inline Device parse_device(const std::string& name, const char* op) {
    check(name == "cpu" || name == "cuda", op, "--device must be cpu or cuda, got '", name, "'");
    if (name == "cpu") return Device::cpu;
#if ELBO_WITH_CUDA
    check(cuda::device_count() > 0, op, "--device cuda: this machine has no GPU (", cuda::why_no_device(), ")");
    return Device::cuda;
#else
    throw Error(str(op, ": --device cuda needs the CUDA module, which this build does not have (configure elbo "
                        "with -DELBO_CUDA=ON)"));
#endif
}

// While it lives, the given parameters require no gradient (and get none): the discriminator's,
// during the VAE's step, whose optimizer ignores them and whose gradients the discriminator's step
// would clear unused. Skipping them saves the discriminator's weight gradients through the VAE's
// objective, a sixth of the step's backward work in the discriminator (the VAE's pass computes
// input and weight gradients, the discriminator's own step both for two batches); the gradient
// reaching z, the VAE's, is the same.
class FrozenParameters {
public:
    explicit FrozenParameters(const std::vector<std::pair<std::string, Var<float>>>& named) {
        for (const auto& [name, p] : named)
            if (p.requires_grad()) frozen_.push_back(p), frozen_.back().requires_grad_(false);
    }
    ~FrozenParameters() {
        for (Var<float>& p : frozen_) p.requires_grad_(true);
    }
    FrozenParameters(const FrozenParameters&) = delete;
    FrozenParameters& operator=(const FrozenParameters&) = delete;

private:
    std::vector<Var<float>> frozen_;
};

// Trains on x [N, C, S, S] (and FactorVAE's discriminator on x_other) at step `step`, drawing eps
// and permutations from gen, on the model's device (the batches are copied there). A non-finite
// objective is returned before any update is applied.
inline StepLosses train_step(models::VAE<float>& model, const Optimizers& opt, const Tensor<float>& x,
                             const Tensor<float>& x_other, int64_t step, Generator& gen) {
    const Device device = model.device();
    auto* factor = dynamic_cast<models::FactorVAE<float>*>(&model);
    std::optional<FrozenParameters> frozen;
    if (factor) frozen.emplace(factor->discriminator_parameters());
    const Var<float> input(x.to(device));
    const models::VAEOutput<float> out = model.forward(input, gen);
    const models::VAELoss<float> loss = model.loss(input, out, step);
    const double per_image =
        model.config.reduction == Reduction::sum ? 1.0 / static_cast<double>(x.size(0)) : 1.0;
    StepLosses s;
    s.loss = loss.total.item() * per_image;
    s.recon = loss.recon.item() * per_image;
    s.kl = loss.kl.item() * per_image;
    s.tc = loss.tc.defined() ? loss.tc.item() * per_image : 0.0;
    s.kl_per_latent = kl_per_latent(out.mu, out.logvar);
    if (!s.finite()) return s;
    opt.vae->zero_grad();
    backward(loss.total);
    opt.vae->step();
    frozen.reset();

    if (!factor) return s;
    Var<float> z_other;
    {
        NoGrad no_grad;
        auto [mu, logvar] = model.encoder.encode(Var<float>(x_other.to(device)));
        z_other = reparameterize(mu, logvar, gen);
    }
    const models::DiscriminatorLoss<float> d = factor->discriminator_loss(out.z, z_other, gen);
    s.discriminator = d.loss.item();
    s.accuracy_real = d.accuracy_real();
    s.accuracy_permuted = d.accuracy_permuted();
    if (!s.finite()) return s;
    opt.discriminator->zero_grad();
    backward(d.loss);
    opt.discriminator->step();
    return s;
}

}  // namespace elbo::cli
