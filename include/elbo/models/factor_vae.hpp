#pragma once
// FactorVAE (Kim & Mnih 2018): the VAE plus a discriminator that tells codes z ~ q(z) from codes
// whose dimensions were shuffled independently across the batch (permute_dims), which sample the
// product of the marginals. By the density-ratio trick, logit0 - logit1 of the discriminator
// estimates log q(z) / prod_j q(z_j), whose mean is the total correlation TC.
//
//   VAE objective:            recon + β KL + γ TC,  TC = sum over the batch of logit0(z) - logit1(z)
//   discriminator objective:  1/2 [CE(D(z), 0) + CE(D(permute_dims(z')), 1)], z' from a second batch
//
// The discriminator's objective reads z detached, so no gradient from it reaches the VAE; the VAE's
// objective does send gradients into the discriminator's parameters, which its step ignores and the
// discriminator's step must clear first (zero_grad). elbo's training step (cli/step.hpp) freezes
// them during the VAE's step instead, so they are never computed.

#include "elbo/models/vae.hpp"
#include "elbo/nn/optim.hpp"

namespace elbo::models {

// `layers` hidden Linear layers of `hidden` units, each followed by LeakyReLU(0.2), then 2 logits;
// named net.0, net.2, ..., as in torch.nn.Sequential. disentanglement_lib's fc_discriminator, after
// the paper's appendix, has 6 hidden layers of 1000 (net.0 ... net.12).
template <class T = float>
class Discriminator : public nn::Module<T> {
public:
    nn::Sequential<T> net;

    Discriminator(int64_t latent, int64_t hidden, int64_t layers, Generator& gen) {
        int64_t in = latent;
        for (int64_t layer = 0; layer < layers; ++layer) {
            net.template add<nn::Linear<T>>(in, hidden, gen);
            net.template add<nn::LeakyReLU<T>>(T(0.2));
            in = hidden;
        }
        net.template add<nn::Linear<T>>(hidden, 2, gen);
        this->register_module("net", net);
    }

    Var<T> forward(const Var<T>& z) override { return net(z); }
    std::string name() const override { return "Discriminator"; }
};

// The discriminator's objective and the logits it was computed from.
template <class T>
struct DiscriminatorLoss {
    Var<T> loss;
    Var<T> real_logits;      // D(z) [N, 2], label 0
    Var<T> permuted_logits;  // D(permute_dims(z')) [M, 2], label 1

    // The fraction of real codes classed real, and of permuted codes classed permuted.
    double accuracy_real() const { return accuracy(real_logits, 0); }
    double accuracy_permuted() const { return accuracy(permuted_logits, 1); }

private:
    static double accuracy(const Var<T>& logits, int label) {
        const Tensor<T> l = logits.value().to(Device::cpu);
        const int64_t n = l.size(0);
        int64_t right = 0;
        for (int64_t i = 0; i < n; ++i) right += (l[2 * i + label] > l[2 * i + 1 - label]);
        return n ? static_cast<double>(right) / static_cast<double>(n) : 0.0;
    }
};

template <class T = float>
class FactorVAE : public VAE<T> {
public:
    Discriminator<T> discriminator;

    FactorVAE(const ModelConfig& c, Generator& gen)
        : VAE<T>(c, gen), discriminator(c.latent, c.discriminator_hidden, c.discriminator_layers, gen) {
        check(c.is_factor_vae(), "FactorVAE", "config kind must be factor-vae, got '", c.kind, "'");
        this->register_module("discriminator", discriminator);
    }

    VAELoss<T> loss(const Var<T>& x, const VAEOutput<T>& out, int64_t step = 0) override {
        VAELoss<T> l = VAE<T>::loss(x, out, step);
        const T scale = this->batch_scale(x);
        // logit0 - logit1 of every sample, summed: the logits [N, 2] times [1, -1], summed.
        const Var<T> sign(Tensor<T>::from_vector(Shape{2}, {T(1), T(-1)}).to(out.z.value().device()));
        Var<T> tc = sum(discriminator(out.z) * sign);
        l.tc = tc * scale;
        l.total = l.total + l.tc * T(this->config.gamma);
        return l;
    }

    // The discriminator's cross-entropy on real codes z (label 0) against permuted codes from a
    // second batch's z_other (label 1); both detached from the VAE.
    DiscriminatorLoss<T> discriminator_loss(const Var<T>& z, const Var<T>& z_other, Generator& gen) {
        const int64_t n = z.shape()[0], m = z_other.shape()[0];
        DiscriminatorLoss<T> d;
        d.real_logits = discriminator(z.detach());
        d.permuted_logits = discriminator(permute_dims(z_other.detach(), gen));
        d.loss = (cross_entropy(d.real_logits, std::vector<int64_t>(static_cast<size_t>(n), 0)) +
                  cross_entropy(d.permuted_logits, std::vector<int64_t>(static_cast<size_t>(m), 1))) *
                 T(0.5);
        return d;
    }

    std::vector<std::pair<std::string, Var<T>>> discriminator_parameters() const {
        return discriminator.named_parameters("discriminator.");
    }
};

// The paper's optimizers: Adam(1e-4, betas 0.9, 0.999) for the VAE, and Adam(1e-4, betas 0.5, 0.9)
// for the discriminator.
inline optim::AdamOptions factor_vae_adam() { return {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.999}; }
inline optim::AdamOptions factor_vae_discriminator_adam() { return {.lr = 1e-4, .beta1 = 0.5, .beta2 = 0.9}; }

}  // namespace elbo::models
