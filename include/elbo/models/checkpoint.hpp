#pragma once
// Checkpoints: safetensors files with PyTorch's parameter names and layouts.
//
//   encoder.conv1.weight, ..., decoder.deconv3.bias, [discriminator.net.0.weight, ...]
//                                the model's state_dict, loadable by PyTorch as is
//   optimizer.vae.step, optimizer.vae.<parameter>.exp_avg, ...
//                                optimizer state, under optimizer.<which>.
//   __metadata__                 the ModelConfig (kind, channels, image_size, latent, beta, gamma,
//                                capacity_max, capacity_steps, reduction, discriminator_hidden)
//                                and whatever the caller adds (the training step, say)
//
// A file without the metadata (a state_dict saved from PyTorch) still loads: the configuration
// follows from the shapes. docs/checkpoints.md shows the Python side.

#include <cmath>
#include <memory>

#include "elbo/io/safetensors.hpp"
#include "elbo/models/factor_vae.hpp"

namespace elbo::models {

inline const std::string optimizer_prefix = "optimizer.";

// A VAE, or a FactorVAE when config.kind says so.
template <class T = float>
std::unique_ptr<VAE<T>> make_model(const ModelConfig& config, Generator& gen) {
    if (config.is_factor_vae()) return std::make_unique<FactorVAE<T>>(config, gen);
    return std::make_unique<VAE<T>>(config, gen);
}

// The configuration a state_dict's shapes imply: C from encoder.conv1.weight [32, C, 4, 4], D and
// S from encoder.fc_mu.weight [D, 128 (S/8)^2], a FactorVAE when discriminator.* is present.
template <class T>
ModelConfig infer_config(const std::map<std::string, Tensor<T>>& tensors) {
    const char* op = "checkpoint";
    auto shape_of = [&](const std::string& name, int64_t rank) {
        auto it = tensors.find(name);
        check(it != tensors.end(), op, "no '", name, "' to infer the model from (is this a VAE checkpoint?)");
        check(it->second.rank() == rank, op, "'", name, "' has shape ", it->second.shape(), ", expected rank ", rank);
        return it->second.shape();
    };
    ModelConfig c;
    c.channels = shape_of("encoder.conv1.weight", 4)[1];
    const Shape mu = shape_of("encoder.fc_mu.weight", 2);
    c.latent = mu[0];
    const int64_t side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(mu[1]) / 128.0)));
    check(side > 0 && 128 * side * side == mu[1], op, "encoder.fc_mu.weight ", mu, " does not take 128 x s x s features");
    c.image_size = 8 * side;
    if (tensors.count("discriminator.net.0.weight")) {
        c.kind = "factor-vae";
        c.discriminator_hidden = shape_of("discriminator.net.0.weight", 2)[0];
    }
    return c;
}

template <class T = float>
struct Checkpoint {
    ModelConfig config;
    std::map<std::string, Tensor<T>> model;      // the state_dict
    std::map<std::string, Tensor<T>> optimizer;  // keys still carry "optimizer."
    std::map<std::string, std::string> metadata;
};

// Reads a checkpoint; the configuration comes from its metadata, or from its shapes without one.
template <class T = float>
Checkpoint<T> read_checkpoint(const std::string& path) {
    Safetensors<T> file = load_safetensors<T>(path);
    Checkpoint<T> ck;
    for (auto& [name, t] : file.tensors)
        (name.rfind(optimizer_prefix, 0) == 0 ? ck.optimizer : ck.model).emplace(name, t);
    ck.config = file.metadata.count("kind") ? ModelConfig::from_metadata(file.metadata) : infer_config(ck.model);
    ck.metadata = std::move(file.metadata);
    return ck;
}

// Builds the model a checkpoint describes and loads its weights (every mismatch is one Error).
template <class T = float>
std::unique_ptr<VAE<T>> load_model(const Checkpoint<T>& ck, Generator& gen) {
    auto model = make_model<T>(ck.config, gen);
    model->load_state_dict(ck.model);
    return model;
}

// Writes the model, the optimizers' state under optimizer.<name>., and the configuration plus
// `extra` metadata, atomically.
template <class T = float>
void write_checkpoint(const std::string& path, const VAE<T>& model,
                      const std::vector<std::pair<std::string, const optim::Optimizer<T>*>>& optimizers = {},
                      const std::map<std::string, std::string>& extra = {}) {
    std::map<std::string, Tensor<T>> tensors = model.state_dict();
    for (auto& [which, opt] : optimizers)
        for (auto& [name, t] : opt->state_dict(optimizer_prefix + which + ".")) tensors.emplace(name, t);
    std::map<std::string, std::string> metadata = model.config.to_metadata();
    for (auto& [k, v] : extra) metadata[k] = v;
    save_safetensors(path, tensors, metadata);
}

}  // namespace elbo::models
