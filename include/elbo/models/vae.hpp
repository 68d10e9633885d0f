#pragma once
// The VAE's encoder and decoder, built from a Network (models/config.hpp: the seed's, the
// FactorVAE paper's), and its objective: the VAE (β = 1), the β-VAE (β > 1), and Burgess et al.'s
// capacity schedule w |KL - C|. docs/models.md gives each network and objective in this notation.
//
//   encoder: x [N, C, S, S] -> convolutions (relu after each) -> flatten -> hidden fcs (relu)
//            -> fc_mu, fc_logvar -> mu, logvar [N, D]
//   sample:  z = mu + eps * exp(logvar / 2)
//   decoder: z -> fcs -> [N, channels, S/2^K, S/2^K] -> transposed convolutions -> C x S x S logits
//
// The seed's network (K = 3 convolutions of 32, 64, 128 channels; one decoder fc, no relu after it):
//   encoder: x -conv1-> 32 x S/2 -conv2-> 64 x S/4 -conv3-> 128 x S/8 -> flatten -> fc_mu, fc_logvar
//   decoder: z -fc-> [N, 128, S/8, S/8] -deconv1-> 64 -relu-deconv2-> 32 -relu-deconv3-> C x S x S logits

#include <algorithm>
#include <memory>

#include "elbo/models/config.hpp"
#include "elbo/nn/layers.hpp"
#include "elbo/ops/arithmetic.hpp"
#include "elbo/ops/latent.hpp"
#include "elbo/ops/losses.hpp"
#include "elbo/ops/reduce.hpp"

namespace elbo::models {

namespace detail {

// The name of Linear layer i (0-based) of n: "fc" when it is the only one, else "fc1", "fc2", ...
inline std::string fc_name(size_t i, size_t n) { return n == 1 ? "fc" : "fc" + std::to_string(i + 1); }

// Linear layers of the given widths, from `in` features; `out` (if positive) is one more at the end.
template <class T>
std::vector<std::unique_ptr<nn::Linear<T>>> linears(int64_t in, const std::vector<int64_t>& widths, int64_t out,
                                                    Generator& gen) {
    std::vector<std::unique_ptr<nn::Linear<T>>> layers;
    for (int64_t width : widths) {
        layers.push_back(std::make_unique<nn::Linear<T>>(in, width, gen));
        in = width;
    }
    if (out > 0) layers.push_back(std::make_unique<nn::Linear<T>>(in, out, gen));
    return layers;
}

}  // namespace detail

template <class T = float>
class Encoder : public nn::Module<T> {
public:
    std::vector<std::unique_ptr<nn::Conv2d<T>>> convs;  // conv1, conv2, ...
    std::vector<std::unique_ptr<nn::Linear<T>>> fcs;    // the hidden Linear layers: fc, or fc1, fc2, ...
    nn::Linear<T> fc_mu, fc_logvar;

    Encoder(const ModelConfig& c, Generator& gen)
        : convs(make_convs(c, gen)),
          fcs(detail::linears<T>(features(c), network(c.arch).encoder_fc, 0, gen)),
          fc_mu(code_input(c), c.latent, gen),
          fc_logvar(code_input(c), c.latent, gen) {
        for (size_t i = 0; i < convs.size(); ++i) this->register_module("conv" + std::to_string(i + 1), *convs[i]);
        for (size_t i = 0; i < fcs.size(); ++i) this->register_module(detail::fc_name(i, fcs.size()), *fcs[i]);
        this->register_module("fc_mu", fc_mu);
        this->register_module("fc_logvar", fc_logvar);
    }

    // x [N, C, S, S] -> (mu, logvar), each [N, D]
    std::pair<Var<T>, Var<T>> encode(const Var<T>& x) {
        Var<T> h = x;
        for (auto& conv : convs) h = conv->forward(h, Activation::relu());
        h = flatten(h);
        for (auto& fc : fcs) h = fc->forward(h, Activation::relu());
        return {fc_mu(h), fc_logvar(h)};
    }

    std::string name() const override { return "Encoder"; }

    // The length of the flattened feature map after the last convolution.
    static int64_t features(const ModelConfig& c) {
        const Network net = network(c.arch);
        const int64_t side = c.image_size / net.downsampling();
        return net.conv.back() * side * side;
    }

private:
    static std::vector<std::unique_ptr<nn::Conv2d<T>>> make_convs(const ModelConfig& c, Generator& gen) {
        std::vector<std::unique_ptr<nn::Conv2d<T>>> layers;
        int64_t in = c.channels;
        for (int64_t out : network(c.arch).conv) {
            layers.push_back(std::make_unique<nn::Conv2d<T>>(in, out, 4, gen, Conv2dOptions{.stride = 2, .padding = 1}));
            in = out;
        }
        return layers;
    }
    // What fc_mu and fc_logvar read: the last hidden layer's width, or the flattened features.
    static int64_t code_input(const ModelConfig& c) {
        const Network net = network(c.arch);
        return net.encoder_fc.empty() ? features(c) : net.encoder_fc.back();
    }
};

template <class T = float>
class Decoder : public nn::Module<T> {
public:
    std::vector<std::unique_ptr<nn::Linear<T>>> fcs;  // fc, or fc1, fc2, ...: the last one to the feature map
    std::vector<std::unique_ptr<nn::ConvTranspose2d<T>>> deconvs;  // deconv1, deconv2, ...

    Decoder(const ModelConfig& c, Generator& gen)
        : fcs(detail::linears<T>(c.latent, network(c.arch).decoder_fc, Encoder<T>::features(c), gen)),
          deconvs(make_deconvs(c, gen)),
          net_(network(c.arch)),
          side_(c.image_size / net_.downsampling()) {
        for (size_t i = 0; i < fcs.size(); ++i) this->register_module(detail::fc_name(i, fcs.size()), *fcs[i]);
        for (size_t i = 0; i < deconvs.size(); ++i)
            this->register_module("deconv" + std::to_string(i + 1), *deconvs[i]);
    }

    // z [N, D] -> logits [N, C, S, S]; sigmoid(logits) is the image.
    Var<T> decode(const Var<T>& z) {
        Var<T> h = z;
        for (size_t i = 0; i < fcs.size(); ++i)
            h = fcs[i]->forward(h, i + 1 < fcs.size() || net_.relu_after_map ? Activation::relu() : Activation{});
        h = reshape(h, {z.shape()[0], net_.conv.back(), side_, side_});
        for (size_t i = 0; i < deconvs.size(); ++i)
            h = deconvs[i]->forward(h, i + 1 < deconvs.size() ? Activation::relu() : Activation{});
        return h;
    }

    std::string name() const override { return "Decoder"; }

private:
    // The encoder's channels backwards, then C.
    static std::vector<std::unique_ptr<nn::ConvTranspose2d<T>>> make_deconvs(const ModelConfig& c, Generator& gen) {
        std::vector<int64_t> channels = network(c.arch).conv;
        std::reverse(channels.begin(), channels.end());
        channels.push_back(c.channels);
        std::vector<std::unique_ptr<nn::ConvTranspose2d<T>>> layers;
        for (size_t i = 0; i + 1 < channels.size(); ++i)
            layers.push_back(std::make_unique<nn::ConvTranspose2d<T>>(channels[i], channels[i + 1], 4, gen,
                                                                      ConvTranspose2dOptions{.stride = 2, .padding = 1}));
        return layers;
    }

    Network net_;
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

    // The same, with eps ~ N(0, I) from `draws`: row n of x is image n of the step's draws.
    VAEOutput<T> forward(const Var<T>& x, const StepDraws& draws) {
        return run(x, [&](const Var<T>& mu) { return standard_normal_like(mu, draws); });
    }

    // The objective for the batch x and its forward pass `out`, at training step `step` (which
    // sets the capacity C when scheduled):
    //   recon + β KL                    (no capacity schedule)
    //   recon + w |KL - N C|            (capacity schedule, weight w; C grows to C_max over capacity_steps)
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
            l.total = (recon + abs(kl - batch_capacity) * T(config.capacity_weight)) * scale;
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
