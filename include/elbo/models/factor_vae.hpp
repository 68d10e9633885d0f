#pragma once
// FactorVAE (Kim & Mnih 2018): the VAE plus a discriminator that tells codes z ~ q(z) from codes
// whose dimensions were shuffled independently across the batch (permute_dims), which sample the
// product of the marginals. By the density-ratio trick, logit0 - logit1 of the discriminator
// estimates log q(z) / prod_j q(z_j), whose mean is the total correlation TC.
//
//   VAE objective:            recon + β KL + γ TC,  TC = sum over the batch of logit0(z) - logit1(z)
//   discriminator objective:  1/2 [CE(D(z), 0) + CE(D(permute_dims(z')), 1)], z' from a second batch,
//                             z and permute_dims(z') through the discriminator as one batch
//
// The discriminator's objective reads z detached, so no gradient from it reaches the VAE; the VAE's
// objective does send gradients into the discriminator's parameters, which its step ignores and the
// discriminator's step must clear first (zero_grad). elbo's training step (train/step.hpp) freezes
// them during the VAE's step instead, so they are never computed.

#include "elbo/models/vae.hpp"
#include "elbo/optim/optimizers.hpp"

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
    Var<T> logits;     // D([z; permute_dims(z')]) [N + M, 2]: rows [0, N) real (label 0), the rest permuted (label 1)
    int64_t real = 0;  // N

    // The fraction of real codes classed real, and of permuted codes classed permuted.
    double accuracy_real() const { return accuracy(0, real, 0); }
    double accuracy_permuted() const { return accuracy(real, logits.shape()[0], 1); }

private:
    double accuracy(int64_t from, int64_t to, int label) const {
        const Tensor<T> l = logits.value().to(Device::cpu);
        int64_t right = 0;
        for (int64_t i = from; i < to; ++i) right += (l[2 * i + label] > l[2 * i + 1 - label]);
        return to > from ? static_cast<double>(right) / static_cast<double>(to - from) : 0.0;
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
    // second batch's z_other (label 1); both detached from the VAE. The two batches go through the
    // discriminator as one batch [z; permute_dims(z')], so each layer's weight is read once and its
    // gradient is one GEMM over N + M rows; each sample's cross-entropy is weighted 1/(2N) or
    // 1/(2M), which is 1/2 [CE(D(z), 0) + CE(D(permute_dims(z')), 1)] with each CE a batch mean.
    DiscriminatorLoss<T> discriminator_loss(const Var<T>& z, const Var<T>& z_other, const StepDraws& draws) {
        check(z.shape()[0] > 0 && z_other.shape()[0] > 0, "discriminator_loss",
              "expected codes of at least one sample in each batch, got ", z.shape(), " and ", z_other.shape());
        return discriminator_loss_of(z, permute_dims(z_other.detach(), draws), z.shape()[0], z_other.shape()[0]);
    }

    // The same on codes already permuted, each cross-entropy a mean over `real` and `permuted`
    // codes: these rows' counts, or more when processes share the batch (train::Group), each then
    // holding its rows of both and the sum of their losses being the whole batch's.
    DiscriminatorLoss<T> discriminator_loss_of(const Var<T>& z, const Var<T>& z_permuted, int64_t real,
                                               int64_t permuted) {
        const int64_t n = z.shape()[0], m = z_permuted.shape()[0];
        check(n > 0 && m > 0 && real >= n && permuted >= m, "discriminator_loss",
              "expected at least one code of each kind, out of at least as many, got ", z.shape(), " and ",
              z_permuted.shape(), " out of ", real, " and ", permuted);
        std::vector<int64_t> labels(static_cast<size_t>(n + m), 1);
        std::fill_n(labels.begin(), n, 0);
        std::vector<T> weights(static_cast<size_t>(n + m), T(0.5) / static_cast<T>(permuted));
        std::fill_n(weights.begin(), n, T(0.5) / static_cast<T>(real));
        DiscriminatorLoss<T> d;
        d.real = n;
        d.logits = discriminator(concat<T>({z.detach(), z_permuted.detach()}));
        const Var<T> w(Tensor<T>::from_vector(Shape{n + m}, weights).to(d.logits.value().device()));
        d.loss = sum(cross_entropy(d.logits, labels, Reduction::none) * w);
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
