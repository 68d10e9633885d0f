#pragma once
// ModelConfig: everything that defines a model and its objective, and its round trip through a
// checkpoint's string-to-string metadata.

#include <cstdio>
#include <map>
#include <string>

#include "elbo/kernels/cpu/common.hpp"
#include "elbo/error.hpp"

namespace elbo::models {

struct ModelConfig {
    std::string kind = "vae";  // "vae", "beta-vae" or "factor-vae"
    int64_t channels = 3;      // C
    int64_t image_size = 64;   // S: images are S x S, S divisible by 8
    int64_t latent = 64;       // D
    double beta = 1.0;         // weight of the KL term (β-VAE; 1 is the VAE)
    double gamma = 0.0;        // FactorVAE: weight of the TC term; VAE with capacity: weight of |KL - C|
    double capacity_max = 0.0;   // C_max in nats per image; 0 switches the capacity schedule off
    int64_t capacity_steps = 0;  // steps over which C grows linearly from 0 to C_max
    Reduction reduction = Reduction::sum;  // sum over the batch, or mean (that sum / N)
    int64_t discriminator_hidden = 1000;   // FactorVAE's discriminator width

    bool is_factor_vae() const { return kind == "factor-vae"; }

    // Throws an Error naming every setting out of range.
    void validate() const {
        const char* op = "ModelConfig";
        check(kind == "vae" || kind == "beta-vae" || kind == "factor-vae", op,
              "kind must be vae, beta-vae or factor-vae, got '", kind, "'");
        check(channels > 0, op, "channels must be positive, got ", channels);
        check(image_size >= 8 && image_size % 8 == 0, op, "image_size must be a positive multiple of 8, got ",
              image_size);
        check(latent > 0, op, "latent must be positive, got ", latent);
        check(beta >= 0, op, "beta must be non-negative, got ", beta);
        check(gamma >= 0, op, "gamma must be non-negative, got ", gamma);
        check(capacity_max >= 0, op, "capacity_max must be non-negative, got ", capacity_max);
        check(capacity_max == 0 || capacity_steps > 0, op, "a capacity schedule needs capacity_steps > 0, got ",
              capacity_steps);
        check(reduction != Reduction::none, op, "reduction must be sum or mean");
        check(discriminator_hidden > 0, op, "discriminator_hidden must be positive, got ", discriminator_hidden);
    }

    std::map<std::string, std::string> to_metadata() const {
        auto number = [](double v) {
            char buffer[32];
            std::snprintf(buffer, sizeof buffer, "%.17g", v);
            return std::string(buffer);
        };
        return {{"kind", kind},
                {"channels", std::to_string(channels)},
                {"image_size", std::to_string(image_size)},
                {"latent", std::to_string(latent)},
                {"beta", number(beta)},
                {"gamma", number(gamma)},
                {"capacity_max", number(capacity_max)},
                {"capacity_steps", std::to_string(capacity_steps)},
                {"reduction", to_string(reduction)},
                {"discriminator_hidden", std::to_string(discriminator_hidden)}};
    }

    // Reads the settings present in `metadata` over the defaults; an unparsable value is an Error.
    static ModelConfig from_metadata(const std::map<std::string, std::string>& metadata) {
        ModelConfig c;
        auto read = [&](const char* key, auto& field) {
            auto it = metadata.find(key);
            if (it == metadata.end()) return;
            const std::string& text = it->second;
            try {
                size_t used = 0;
                using F = std::decay_t<decltype(field)>;
                if constexpr (std::is_same_v<F, double>) field = std::stod(text, &used);
                else field = std::stoll(text, &used);
                if (used != text.size()) throw std::invalid_argument(text);
            } catch (const std::exception&) {
                throw Error(str("checkpoint: metadata '", key, "' = '", text, "' is not a number"));
            }
        };
        if (auto it = metadata.find("kind"); it != metadata.end()) c.kind = it->second;
        read("channels", c.channels);
        read("image_size", c.image_size);
        read("latent", c.latent);
        read("beta", c.beta);
        read("gamma", c.gamma);
        read("capacity_max", c.capacity_max);
        read("capacity_steps", c.capacity_steps);
        read("discriminator_hidden", c.discriminator_hidden);
        if (auto it = metadata.find("reduction"); it != metadata.end()) {
            check(it->second == "sum" || it->second == "mean", "checkpoint", "metadata 'reduction' must be sum or mean, got '",
                  it->second, "'");
            c.reduction = it->second == "sum" ? Reduction::sum : Reduction::mean;
        }
        c.validate();
        return c;
    }
};

}  // namespace elbo::models
