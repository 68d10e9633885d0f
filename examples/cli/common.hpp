#pragma once
// What `elbo train` and `elbo bench` share: the flags they check alike, and the model a
// configuration names, built as its own type.

#include <optional>

#include "elbo/elbo.hpp"

namespace elbo::cli {

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

// The model a configuration names, initialized from `gen` on the host and moved to `device`, with
// its optimizers: Adam with `vae` over the VAE's parameters and, for a FactorVAE, Adam with `d` over
// its discriminator's. The model is built as its own type, so each step calls the train::step
// that applies to it.
class TrainedModel {
public:
    TrainedModel(const models::ModelConfig& config, Generator& gen, Device device, const optim::AdamOptions& vae,
                 const optim::AdamOptions& d) {
        if (config.is_factor_vae()) {
            auto f = std::make_unique<models::FactorVAE<float>>(config, gen);
            factor_ = f.get();
            model_ = std::move(f);
        } else {
            model_ = std::make_unique<models::VAE<float>>(config, gen);
        }
        model_->to(device);
        opt_ = std::make_unique<optim::Adam<float>>(model_->vae_parameters(), vae);
        if (factor_) d_opt_ = std::make_unique<optim::Adam<float>>(factor_->discriminator_parameters(), d);
    }

    models::VAE<float>& model() const { return *model_; }
    bool is_factor_vae() const { return factor_ != nullptr; }

    // One step on x (and, for a FactorVAE, the discriminator's on x_other; others ignore it).
    train::StepTerms step(const Tensor<float>& x, const Tensor<float>& x_other, const StepDraws& draws,
                          train::Group* group = nullptr) {
        return factor_ ? train::step(*factor_, *opt_, *d_opt_, x, x_other, draws, group)
                       : train::step(*model_, *opt_, x, draws, group);
    }

    // The same step, taken again in double on the CPU and compared op by op (train/shadow.hpp).
    std::pair<train::StepTerms, train::ShadowReport> shadow_step(const Tensor<float>& x, const Tensor<float>& x_other,
                                                                 const StepDraws& draws, double tolerance) {
        return train::shadow_step(*model_, *opt_, d_opt_.get(), x, x_other, draws, tolerance);
    }

    // The optimizers by the names their state has in a checkpoint: optimizer.vae., optimizer.discriminator.
    std::vector<std::pair<std::string, optim::Adam<float>*>> optimizers() const {
        std::vector<std::pair<std::string, optim::Adam<float>*>> named{{"vae", opt_.get()}};
        if (d_opt_) named.emplace_back("discriminator", d_opt_.get());
        return named;
    }

private:
    std::unique_ptr<models::VAE<float>> model_;
    models::FactorVAE<float>* factor_ = nullptr;  // model_, when it is a FactorVAE
    std::unique_ptr<optim::Adam<float>> opt_, d_opt_;
};

}  // namespace elbo::cli
