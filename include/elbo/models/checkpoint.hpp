#pragma once
// Checkpoints: safetensors files with PyTorch's parameter names and layouts.
//
//   encoder.conv1.weight, ..., decoder.deconv3.bias, [discriminator.net.0.weight, ...]
//                                (the seed's network; kim-mnih's adds conv4, fc, fc1, fc2, deconv4)
//                                the model's state_dict, loadable by PyTorch as is
//   optimizer.vae.step, optimizer.vae.<parameter>.exp_avg, ...
//                                optimizer state, under optimizer.<which>.
//   __metadata__                 the ModelConfig (kind, arch, channels, image_size, latent, beta,
//                                gamma, capacity_max, capacity_steps, capacity_weight, reduction,
//                                discriminator_hidden, discriminator_layers)
//                                and whatever the caller adds (the training step, say)
//
// A file without the metadata (a state_dict saved from PyTorch) still loads: the configuration
// follows from the shapes. One whose metadata names no `arch` was written before elbo's seed
// network lost the ReLU the seed does not have, and loads as that network, `seed-v0`.
// docs/checkpoints.md shows the Python side.

#include <cmath>
#include <memory>

#include "elbo/io/safetensors.hpp"
#include "elbo/models/factor_vae.hpp"

namespace elbo::models {

inline const std::string optimizer_prefix = "optimizer.";
inline const std::string discriminator_prefix = "discriminator.";

template <class T>
bool has_discriminator(const std::map<std::string, Tensor<T>>& state_dict) {
    auto it = state_dict.lower_bound(discriminator_prefix);
    return it != state_dict.end() && it->first.rfind(discriminator_prefix, 0) == 0;
}

// A VAE, or a FactorVAE when config.kind says so.
template <class T = float>
std::unique_ptr<VAE<T>> make_model(const ModelConfig& config, Generator& gen) {
    if (config.is_factor_vae()) return std::make_unique<FactorVAE<T>>(config, gen);
    return std::make_unique<VAE<T>>(config, gen);
}

// Named tensors (a state_dict, an optimizer's state) on the CPU in scalar type U.
template <class U, class T>
std::map<std::string, Tensor<U>> cast_tensors(const std::map<std::string, Tensor<T>>& tensors) {
    std::map<std::string, Tensor<U>> out;
    for (const auto& [name, t] : tensors) out.emplace(name, t.to(Device::cpu).template cast<U>());
    return out;
}

// A copy of `model` in scalar type U on the CPU (double, to check float's arithmetic): its
// configuration, and its weights cast.
template <class U, class T>
std::unique_ptr<VAE<U>> copy_as(const VAE<T>& model) {
    Generator unused;  // the initial weights are replaced
    std::unique_ptr<VAE<U>> copy = make_model<U>(model.config, unused);
    copy->load_state_dict(cast_tensors<U>(model.state_dict()));
    return copy;
}

// The configuration a state_dict's shapes imply: the kim-mnih network when encoder.conv4 is there,
// else the seed's; C from encoder.conv1.weight [32, C, 4, 4]; D from encoder.fc_mu.weight [D, *];
// S from the encoder's first Linear layer, which reads the last feature map [channels, S/2^K, S/2^K];
// a FactorVAE when discriminator.* is present, its width and depth from its Linear layers.
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
    c.arch = tensors.count("encoder.conv4.weight") ? "kim-mnih" : "seed";
    const Network net = network(c.arch);
    c.channels = shape_of("encoder.conv1.weight", 4)[1];
    c.latent = shape_of("encoder.fc_mu.weight", 2)[0];
    const std::string first_fc = net.encoder_fc.empty() ? "encoder.fc_mu.weight"
                                 : net.encoder_fc.size() == 1 ? "encoder.fc.weight"
                                                              : "encoder.fc1.weight";
    const Shape fc = shape_of(first_fc, 2);
    const int64_t map_channels = net.conv.back();
    const int64_t side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(fc[1]) / map_channels)));
    check(side > 0 && map_channels * side * side == fc[1], op, first_fc, " ", fc, " does not take ", map_channels,
          " x s x s features (arch ", c.arch, ")");
    c.image_size = net.downsampling() * side;
    if (tensors.count("discriminator.net.0.weight")) {
        c.kind = "factor-vae";
        c.discriminator_hidden = shape_of("discriminator.net.0.weight", 2)[0];
        int64_t linears = 0;
        while (tensors.count("discriminator.net." + std::to_string(2 * linears) + ".weight")) ++linears;
        c.discriminator_layers = linears - 1;
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

// Copies a checkpoint's weights into `model`, built from its configuration (every mismatch is one
// Error, which names the network the checkpoint says it holds).
template <class T = float>
void load_weights(VAE<T>& model, const Checkpoint<T>& ck) {
    try {
        model.load_state_dict(ck.model);
    } catch (const Error& e) {
        throw Error(str("checkpoint: its tensors are not the ", ck.config.arch, " network of its configuration: ",
                        e.what()));
    }
}

// Builds the model a checkpoint describes and loads its weights. A FactorVAE's weights without its
// discriminator (`elbo export --without-discriminator`) load as its VAE: enough to evaluate it and
// draw from it, not to train it further.
template <class T = float>
std::unique_ptr<VAE<T>> load_model(const Checkpoint<T>& ck, Generator& gen) {
    auto model = ck.config.is_factor_vae() && !has_discriminator(ck.model) ? std::make_unique<VAE<T>>(ck.config, gen)
                                                                           : make_model<T>(ck.config, gen);
    load_weights(*model, ck);
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

// Writes a checkpoint's weights alone, as a release: its state_dict (without the discriminator's
// tensors unless `discriminator`), no optimizer state, and its metadata plus `extra` (keys it
// already has are refused: the configuration and the training record stay as they were),
// atomically.
template <class T = float>
void write_weights(const std::string& path, const Checkpoint<T>& ck, bool discriminator,
                   const std::map<std::string, std::string>& extra = {}) {
    std::map<std::string, Tensor<T>> tensors;
    for (const auto& [name, t] : ck.model)
        if (discriminator || name.rfind(discriminator_prefix, 0) != 0) tensors.emplace(name, t);
    std::map<std::string, std::string> metadata = ck.config.to_metadata();
    for (const auto& [k, v] : ck.metadata) metadata.emplace(k, v);
    for (const auto& [k, v] : extra) {
        check(!k.empty() && !metadata.count(k), "export", "metadata '", k, "' ",
              k.empty() ? "needs a name" : "comes from the checkpoint and is kept as it is");
        metadata[k] = v;
    }
    save_safetensors(path, tensors, metadata);
}

}  // namespace elbo::models
