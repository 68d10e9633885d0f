#pragma once
// ModelConfig: everything that defines a model and its objective, and its round trip through a
// checkpoint's string-to-string metadata; Network: the encoder and decoder an `arch` names.

#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "elbo/kernels/cpu/common.hpp"
#include "elbo/error.hpp"

namespace elbo::models {

// An encoder and its mirror-image decoder, as the network's source gives them. Every convolution
// is 4x4, stride 2, padding 1, so each halves the image side (S divisible by 2^conv.size()).
//
//   encoder: x -> conv1 -> relu -> ... -> convK -> relu -> flatten -> [fc -> relu]* -> fc_mu, fc_logvar
//   decoder: z -> [fc -> relu]* -> fc [-> relu] -> [N, conv[K-1], S/2^K, S/2^K]
//              -> deconv1 -> relu -> ... -> deconvK -> logits [N, C, S, S]
//
// The decoder's transposed convolutions run the encoder's channels backwards, then to C. A lone
// Linear layer is named `fc`, several `fc1`, `fc2`, ...
struct Network {
    std::vector<int64_t> conv;        // the encoder's convolution channels
    std::vector<int64_t> encoder_fc;  // the encoder's hidden Linear widths, after flatten
    std::vector<int64_t> decoder_fc;  // the decoder's hidden Linear widths, before the one to the feature map
    bool relu_after_map = true;       // a ReLU after the decoder's Linear to the feature map

    int64_t downsampling() const { return int64_t{1} << conv.size(); }
};

// The networks elbo builds, by name:
//   seed      the seed tutorial's (../shared/reference/000_d35e7427d614ac8f.txt), C, S and D free
//   kim-mnih  Kim & Mnih 2018, Appendix, the dSprites network of the FactorVAE paper
//   seed-v0   the network elbo's checkpoints without an `arch` were trained with: the seed's plus a
//             ReLU after the decoder's fc, which the seed does not have (docs/checkpoints.md)
inline Network network(const std::string& arch) {
    if (arch == "seed") return {.conv = {32, 64, 128}, .encoder_fc = {}, .decoder_fc = {}, .relu_after_map = false};
    if (arch == "kim-mnih") return {.conv = {32, 32, 64, 64}, .encoder_fc = {128}, .decoder_fc = {128}};
    if (arch == "seed-v0") return {.conv = {32, 64, 128}, .encoder_fc = {}, .decoder_fc = {}, .relu_after_map = true};
    throw Error(str("network: arch must be seed, kim-mnih or seed-v0, got '", arch, "'"));
}

struct ModelConfig {
    std::string kind = "vae";    // "vae", "beta-vae" or "factor-vae"
    std::string arch = "seed";   // the encoder and decoder: network(arch)
    int64_t channels = 3;        // C
    int64_t image_size = 64;     // S: images are S x S, S divisible by 2^(the network's convolutions)
    int64_t latent = 64;         // D
    double beta = 1.0;           // weight of the KL term (β-VAE; 1 is the VAE)
    double gamma = 0.0;          // FactorVAE: weight of the TC term
    double capacity_max = 0.0;   // C_max in nats per image; 0 switches the capacity schedule off
    int64_t capacity_steps = 0;  // steps over which C grows linearly from 0 to C_max
    double capacity_weight = 0.0;  // the capacity objective's weight on |KL - C|
    Reduction reduction = Reduction::sum;  // sum over the batch, or mean (that sum / N)
    int64_t discriminator_hidden = 1000;   // FactorVAE's discriminator width
    int64_t discriminator_layers = 6;      // and its hidden layers (disentanglement_lib's fc_discriminator)

    bool is_factor_vae() const { return kind == "factor-vae"; }

    // Throws an Error naming every setting out of range.
    void validate() const {
        const char* op = "ModelConfig";
        check(kind == "vae" || kind == "beta-vae" || kind == "factor-vae", op,
              "kind must be vae, beta-vae or factor-vae, got '", kind, "'");
        const int64_t factor = network(arch).downsampling();
        check(channels > 0, op, "channels must be positive, got ", channels);
        check(image_size >= factor && image_size % factor == 0, op, "image_size must be a positive multiple of ", factor,
              " for arch ", arch, ", got ", image_size);
        check(latent > 0, op, "latent must be positive, got ", latent);
        auto finite_non_negative = [&](double v, const char* name) {
            check(std::isfinite(v) && v >= 0, op, name, " must be finite and non-negative, got ", v);
        };
        finite_non_negative(beta, "beta");
        finite_non_negative(gamma, "gamma");
        finite_non_negative(capacity_max, "capacity_max");
        finite_non_negative(capacity_weight, "capacity_weight");
        check(gamma == 0 || is_factor_vae(), op, "gamma weighs FactorVAE's TC term, but kind is ", kind, " (gamma ",
              gamma, ")");
        check(capacity_max == 0 || capacity_steps > 0, op, "a capacity schedule needs capacity_steps > 0, got ",
              capacity_steps);
        check(capacity_max == 0 || capacity_weight > 0, op, "a capacity schedule needs capacity_weight > 0, got ",
              capacity_weight);
        check(reduction != Reduction::none, op, "reduction must be sum or mean");
        check(discriminator_hidden > 0, op, "discriminator_hidden must be positive, got ", discriminator_hidden);
        check(discriminator_layers > 0, op, "discriminator_layers must be positive, got ", discriminator_layers);
    }

    // Every setting with its name, in one list: what checkpoints' metadata (to_metadata,
    // from_metadata) and a run's config.json write. f(name, field) for each; `self` is a
    // ModelConfig, const or not.
    template <class Self, class F>
    static void each_setting(Self& self, F&& f) {
        f("kind", self.kind);
        f("arch", self.arch);
        f("channels", self.channels);
        f("image_size", self.image_size);
        f("latent", self.latent);
        f("beta", self.beta);
        f("gamma", self.gamma);
        f("capacity_max", self.capacity_max);
        f("capacity_steps", self.capacity_steps);
        f("capacity_weight", self.capacity_weight);
        f("reduction", self.reduction);
        f("discriminator_hidden", self.discriminator_hidden);
        f("discriminator_layers", self.discriminator_layers);
    }

    // The settings as strings (safetensors metadata), numbers in full precision.
    std::map<std::string, std::string> to_metadata() const {
        std::map<std::string, std::string> metadata;
        each_setting(*this, [&](const char* name, const auto& field) {
            using F = std::decay_t<decltype(field)>;
            if constexpr (std::is_same_v<F, std::string>) {
                metadata[name] = field;
            } else if constexpr (std::is_same_v<F, Reduction>) {
                metadata[name] = to_string(field);
            } else if constexpr (std::is_same_v<F, double>) {
                char buffer[32];
                std::snprintf(buffer, sizeof buffer, "%.17g", field);
                metadata[name] = buffer;
            } else {
                metadata[name] = std::to_string(field);
            }
        });
        return metadata;
    }

    // Reads the settings present in `metadata` over the defaults; an unparsable value is an Error.
    // Metadata written before `arch` existed describes the seed-v0 network, its discriminator five
    // layers deep, and a capacity schedule weighted by `gamma`.
    static ModelConfig from_metadata(const std::map<std::string, std::string>& metadata) {
        ModelConfig c;
        if (!metadata.count("arch")) c.arch = "seed-v0", c.discriminator_layers = 5;
        each_setting(c, [&](const char* name, auto& field) {
            auto it = metadata.find(name);
            if (it == metadata.end()) return;
            const std::string& text = it->second;
            using F = std::decay_t<decltype(field)>;
            if constexpr (std::is_same_v<F, std::string>) {
                field = text;
            } else if constexpr (std::is_same_v<F, Reduction>) {
                check(text == "sum" || text == "mean", "checkpoint", "metadata 'reduction' must be sum or mean, got '",
                      text, "'");
                field = text == "sum" ? Reduction::sum : Reduction::mean;
            } else {
                try {
                    size_t used = 0;
                    if constexpr (std::is_same_v<F, double>) field = std::stod(text, &used);
                    else field = std::stoll(text, &used);
                    if (used != text.size()) throw std::invalid_argument(text);
                } catch (const std::exception&) {
                    throw Error(str("checkpoint: metadata '", name, "' = '", text, "' is not a number"));
                }
            }
        });
        if (!metadata.count("capacity_weight")) {  // gamma weighed |KL - C| too, and the TC term only in a FactorVAE
            c.capacity_weight = c.capacity_max > 0 ? c.gamma : 0.0;
            if (!c.is_factor_vae()) c.gamma = 0;
        }
        try {
            c.validate();
        } catch (const Error& e) {
            throw Error(str("checkpoint: its metadata does not describe a model: ", e.what()));
        }
        return c;
    }
};

}  // namespace elbo::models
