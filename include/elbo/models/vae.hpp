#pragma once
// The VAE of the seed, generalised to C channels, S x S images and D latents, and its objective:
// the VAE (β = 1), the β-VAE (β > 1), and Burgess et al.'s capacity schedule γ |KL - C|.
// docs/models.md gives each objective in this notation.
//
//   encoder: x [N, C, S, S] -conv1-> 32 x S/2 -conv2-> 64 x S/4 -conv3-> 128 x S/8   (relu after each)
//            flatten -> fc_mu, fc_logvar -> mu, logvar [N, D]
//   sample:  z = mu + eps * exp(logvar / 2)
//   decoder: z -fc-> relu -> [N, 128, S/8, S/8] -deconv1-> 64 -deconv2-> 32 -deconv3-> C x S x S logits
//            (relu after deconv1 and deconv2; every conv kernel 4, stride 2, padding 1)

#include <algorithm>

#include "elbo/models/config.hpp"
#include "elbo/nn/layers.hpp"
#include "elbo/ops/arithmetic.hpp"
#include "elbo/ops/latent.hpp"
#include "elbo/ops/losses.hpp"
#include "elbo/ops/reduce.hpp"

namespace elbo::models {

template <class T = float>
class Encoder : public nn::Module<T> {
public:
    nn::Conv2d<T> conv1, conv2, conv3;
    nn::Linear<T> fc_mu, fc_logvar;

    Encoder(const ModelConfig& c, Generator& gen)
        : conv1(c.channels, 32, 4, gen, {.stride = 2, .padding = 1}),
          conv2(32, 64, 4, gen, {.stride = 2, .padding = 1}),
          conv3(64, 128, 4, gen, {.stride = 2, .padding = 1}),
          fc_mu(features(c), c.latent, gen),
          fc_logvar(features(c), c.latent, gen) {
        this->register_module("conv1", conv1);
        this->register_module("conv2", conv2);
        this->register_module("conv3", conv3);
        this->register_module("fc_mu", fc_mu);
        this->register_module("fc_logvar", fc_logvar);
    }

    // x [N, C, S, S] -> (mu, logvar), each [N, D]
    std::pair<Var<T>, Var<T>> encode(const Var<T>& x) {
        Var<T> h = relu(conv1(x));
        h = relu(conv2(h));
        h = flatten(relu(conv3(h)));
        return {fc_mu(h), fc_logvar(h)};
    }

    std::string name() const override { return "Encoder"; }

    // The length of the flattened 128 x S/8 x S/8 feature map.
    static int64_t features(const ModelConfig& c) { return 128 * (c.image_size / 8) * (c.image_size / 8); }
};

template <class T = float>
class Decoder : public nn::Module<T> {
public:
    nn::Linear<T> fc;
    nn::ConvTranspose2d<T> deconv1, deconv2, deconv3;

    Decoder(const ModelConfig& c, Generator& gen)
        : fc(c.latent, Encoder<T>::features(c), gen),
          deconv1(128, 64, 4, gen, {.stride = 2, .padding = 1}),
          deconv2(64, 32, 4, gen, {.stride = 2, .padding = 1}),
          deconv3(32, c.channels, 4, gen, {.stride = 2, .padding = 1}),
          side_(c.image_size / 8) {
        this->register_module("fc", fc);
        this->register_module("deconv1", deconv1);
        this->register_module("deconv2", deconv2);
        this->register_module("deconv3", deconv3);
    }

    // z [N, D] -> logits [N, C, S, S]; sigmoid(logits) is the image.
    Var<T> decode(const Var<T>& z) {
        Var<T> h = reshape(relu(fc(z)), {z.shape()[0], 128, side_, side_});
        h = relu(deconv1(h));
        h = relu(deconv2(h));
        return deconv3(h);
    }

    std::string name() const override { return "Decoder"; }

private:
    int64_t side_;
};

// What one forward pass produces.
template <class T>
struct VAEOutput {
    Var<T> mu, logvar, z, logits;
};

// The terms of the objective, each already reduced as the config says (sum, or / N for mean).
template <class T>
struct VAELoss {
    Var<T> total;   // what backward() differentiates
    Var<T> recon;   // BCE-with-logits summed over pixels
    Var<T> kl;      // KL(q(z|x) || N(0, I)) summed over latents
    Var<T> tc;      // FactorVAE's total-correlation estimate (empty for the other models)
    double capacity = 0.0;  // the capacity C at this step (nats per image), when scheduled
};

template <class T = float>
class VAE : public nn::Module<T> {
public:
    ModelConfig config;
    Encoder<T> encoder;
    Decoder<T> decoder;

    VAE(const ModelConfig& c, Generator& gen) : config(validated(c)), encoder(c, gen), decoder(c, gen) {
        this->register_module("encoder", encoder);
        this->register_module("decoder", decoder);
    }

    // Encodes x and decodes z = mu + eps * exp(logvar / 2); with eps empty, z = mu.
    VAEOutput<T> forward(const Var<T>& x, const Var<T>& eps) {
        return run(x, [&](const Var<T>& mu) {
            if (eps.defined())
                check(eps.shape() == mu.shape(), "VAE", "eps must be [N, D] = ", mu.shape(), ", got ", eps.shape());
            return eps;
        });
    }

    // The same, with eps ~ N(0, I) drawn from `gen`.
    VAEOutput<T> forward(const Var<T>& x, Generator& gen) {
        return run(x, [&](const Var<T>& mu) { return standard_normal_like(mu, gen); });
    }

    // The objective for the batch x and its forward pass `out`, at training step `step` (which
    // sets the capacity C when scheduled):
    //   recon + β KL                    (no capacity schedule)
    //   recon + γ |KL - N C|            (capacity schedule; C grows to C_max over capacity_steps)
    // each term summed over the batch; with reduction mean, everything / N.
    virtual VAELoss<T> loss(const Var<T>& x, const VAEOutput<T>& out, int64_t step = 0) {
        VAELoss<T> l;
        const T scale = batch_scale(x);
        Var<T> recon = bce_with_logits(out.logits, x, Reduction::sum);
        Var<T> kl = gaussian_kl(out.mu, out.logvar, Reduction::sum);
        if (config.capacity_max > 0) {
            const double fraction = std::min(1.0, static_cast<double>(step) / static_cast<double>(config.capacity_steps));
            l.capacity = config.capacity_max * fraction;
            const T batch_capacity = static_cast<T>(l.capacity * static_cast<double>(x.shape()[0]));
            l.total = (recon + abs(kl - batch_capacity) * T(config.gamma)) * scale;
        } else {
            l.total = (recon + kl * T(config.beta)) * scale;
        }
        l.recon = recon * scale;
        l.kl = kl * scale;
        return l;
    }

    // The VAE's own parameters (encoder and decoder), for its optimizer.
    std::vector<std::pair<std::string, Var<T>>> vae_parameters() const {
        auto p = encoder.named_parameters("encoder.");
        for (auto& q : decoder.named_parameters("decoder.")) p.push_back(q);
        return p;
    }

    std::string name() const override { return config.is_factor_vae() ? "FactorVAE" : "VAE"; }

protected:
    // 1 for reduction sum, 1 / N for mean.
    T batch_scale(const Var<T>& x) const {
        return config.reduction == Reduction::mean ? T(1) / static_cast<T>(x.shape()[0]) : T(1);
    }

private:
    static const ModelConfig& validated(const ModelConfig& c) {
        c.validate();
        return c;
    }

    // The forward pass, with eps = eps_for(mu) (empty: z = mu).
    template <class EpsFor>
    VAEOutput<T> run(const Var<T>& x, EpsFor eps_for) {
        check_images(x);
        auto [mu, logvar] = encoder.encode(x);
        const Var<T> eps = eps_for(mu);
        Var<T> z = eps.defined() ? reparameterize(mu, logvar, eps) : mu;
        return {mu, logvar, z, decoder.decode(z)};
    }

    void check_images(const Var<T>& x) const {
        const Shape& s = x.shape();
        check(s.rank() == 4 && s[0] > 0 && s[1] == config.channels && s[2] == config.image_size && s[3] == config.image_size,
              name().c_str(), "expected images [N, ", config.channels, ", ", config.image_size, ", ", config.image_size,
              "], got ", s);
    }
};

}  // namespace elbo::models
