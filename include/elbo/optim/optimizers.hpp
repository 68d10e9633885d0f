#pragma once
// Optimizers with PyTorch's exact update rules (torch.optim, single-tensor path): SGD with momentum
// and weight decay, Adam, AdamW. Their state (per-parameter buffers and the step count) goes in and
// out of state_dict() under a prefix, so a checkpoint resumes a run exactly.
//
// The arithmetic (kernels/cpu/optim.hpp, and its CUDA twin for parameters on the GPU) is written in
// T, in PyTorch's order of operations, with the scalar coefficients (bias corrections, step size)
// computed in double and rounded to T, as Python's floats are. The state lives on each parameter's
// device, and follows it there when the module moves (Module::to) after the optimizer was made.

#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "elbo/kernels/cpu/optim.hpp"
#include "elbo/ops/common.hpp"

namespace elbo::optim {

template <class T = float>
class Optimizer {
public:
    using Parameters = std::vector<std::pair<std::string, Var<T>>>;

    virtual ~Optimizer() = default;

    // One update of every parameter that has a gradient.
    virtual void step() = 0;

    void zero_grad() {
        for (auto& [n, p] : params_) p.zero_grad();
    }

    // How many steps have been taken.
    int64_t steps() const { return steps_; }

    // The parameters, named, in the order they were given.
    const Parameters& parameters() const { return params_; }

    // Each parameter's gradient as the last step() read it, squared and summed in double (its
    // squared norm): summed by the update's own pass over the gradient where the parameter is on the
    // CPU, so that the health monitor's gradient norms (train::gradient_norms) cost no pass of their
    // own. Empty for a parameter that step skipped (it had no gradient) or updated on the GPU.
    const std::vector<std::optional<double>>& gradient_squares() const { return squares_; }

    // The state as tensors: "<prefix>step" (a scalar) and "<prefix><parameter>.<buffer>".
    std::map<std::string, Tensor<T>> state_dict(const std::string& prefix) const {
        std::map<std::string, Tensor<T>> out;
        out.emplace(prefix + "step", Tensor<T>::scalar(static_cast<T>(steps_)));
        for (size_t i = 0; i < params_.size(); ++i)
            for (size_t s = 0; s < buffer_names_.size(); ++s)
                out.emplace(prefix + params_[i].first + "." + buffer_names_[s], buffers_[i][s]);
        return out;
    }

    // Restores what state_dict wrote; every missing or misshapen tensor is listed in one Error.
    void load_state_dict(const std::map<std::string, Tensor<T>>& state, const std::string& prefix) {
        std::string problems;
        auto need = [&](const std::string& key, const Shape& shape) {
            auto it = state.find(key);
            if (it == state.end()) problems += str("\n  missing '", key, "' ", shape);
            else if (it->second.shape() != shape)
                problems += str("\n  '", key, "' has shape ", it->second.shape(), ", expected ", shape);
        };
        need(prefix + "step", Shape{});
        for (size_t i = 0; i < params_.size(); ++i)
            for (const std::string& b : buffer_names_) need(prefix + params_[i].first + "." + b, params_[i].second.shape());
        if (!problems.empty()) throw Error(str(name_, ".load_state_dict: the state does not fit:", problems));
        steps_ = static_cast<int64_t>(state.at(prefix + "step").item());
        for (size_t i = 0; i < params_.size(); ++i)
            for (size_t s = 0; s < buffer_names_.size(); ++s)
                buffers_[i][s].copy_(state.at(prefix + params_[i].first + "." + buffer_names_[s]));
    }

protected:
    Optimizer(const char* name, Parameters params, std::vector<std::string> buffer_names)
        : name_(name), params_(std::move(params)), buffer_names_(std::move(buffer_names)) {
        for (auto& [n, p] : params_) {
            std::vector<Tensor<T>> b;
            for (size_t s = 0; s < buffer_names_.size(); ++s)
                b.push_back(Tensor<T>::zeros(p.shape(), p.value().device()));
            buffers_.push_back(std::move(b));
        }
    }

    // Runs update(i, p) for every parameter p that has a gradient: the CPU's kernel there, whose
    // result (the gradient's sum of squares) is kept in gradient_squares, and on the GPU gpu(i, p).
    template <class Cpu, class Gpu>
    void update_each(Cpu update, Gpu gpu) {
        squares_.assign(params_.size(), std::nullopt);
        for (size_t i = 0; i < params_.size(); ++i) {
            Var<T>& p = params_[i].second;
            if (!p.has_grad()) continue;
            if (p.value().device() == Device::cpu)
                squares_[i] = update(i, p);
            else
                gpu(i, p);
        }
    }

    // Parameter i's buffers, on its device (moved there first if the parameter moved since).
    std::vector<Tensor<T>>& buffers_of(size_t i) {
        const Device device = params_[i].second.value().device();
        for (Tensor<T>& b : buffers_[i])
            if (b.device() != device) b = b.to(device);
        return buffers_[i];
    }

    const char* name_;
    Parameters params_;
    std::vector<std::string> buffer_names_;
    std::vector<std::vector<Tensor<T>>> buffers_;  // [parameter][buffer]
    std::vector<std::optional<double>> squares_;   // [parameter], of the last step
    int64_t steps_ = 0;
};

struct SGDOptions {
    double lr = 1e-2;
    double momentum = 0.0;
    double dampening = 0.0;
    double weight_decay = 0.0;
    bool nesterov = false;
};

// d = g + wd p; with momentum, buf = d on the first step, else momentum buf + (1 - dampening) d,
// and d = buf (or d + momentum buf, Nesterov); p -= lr d.
template <class T = float>
class SGD : public Optimizer<T> {
public:
    SGD(typename Optimizer<T>::Parameters params, SGDOptions opt)
        : Optimizer<T>("SGD", std::move(params), {"momentum_buffer"}), options(opt) {
        check(opt.lr >= 0 && opt.momentum >= 0 && opt.weight_decay >= 0, "SGD",
              "lr, momentum and weight_decay must be non-negative, got ", opt.lr, ", ", opt.momentum, ", ",
              opt.weight_decay);
        check(!opt.nesterov || (opt.momentum > 0 && opt.dampening == 0), "SGD",
              "Nesterov momentum needs momentum > 0 and dampening 0");
    }

    void step() override {
        const SGDOptions& o = options;
        const kernels::SGDStep<T> k{.lr = T(o.lr),
                                    .momentum = T(o.momentum),
                                    .damping = T(1 - o.dampening),
                                    .weight_decay = T(o.weight_decay),
                                    .decay = o.weight_decay != 0,
                                    .heavy_ball = o.momentum != 0,
                                    .nesterov = o.nesterov,
                                    .first = this->steps_ == 0};
        ++this->steps_;
        this->update_each(
            [&](size_t i, Var<T>& p) {
                return kernels::sgd_step(p.value().data(), p.grad().data(), this->buffers_of(i)[0].data(), p.numel(), k);
            },
            [&](size_t i, Var<T>& p) {
                ELBO_KERNEL(p.value().device(), sgd_step, p.value().data(), p.grad().data(),
                            this->buffers_of(i)[0].data(), p.numel(), k);
            });
    }

    SGDOptions options;
};

struct AdamOptions {
    double lr = 1e-3;
    double beta1 = 0.9, beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;  // Adam: added to the gradient; AdamW: decoupled, applied to the weight
};

namespace detail {

template <class T>
void check_adam(const char* op, const AdamOptions& o) {
    check(o.lr >= 0 && o.eps >= 0 && o.weight_decay >= 0, op, "lr, eps and weight_decay must be non-negative, got ",
          o.lr, ", ", o.eps, ", ", o.weight_decay);
    check(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1, op, "betas must be in [0, 1), got (", o.beta1,
          ", ", o.beta2, ")");
}

}  // namespace detail

// Adam (Kingma & Ba), as torch.optim.Adam:
//   g += wd p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
// With `decoupled` (AdamW, Loshchilov & Hutter) the decay is p *= 1 - lr wd instead.
template <class T = float>
class Adam : public Optimizer<T> {
public:
    Adam(typename Optimizer<T>::Parameters params, AdamOptions opt, bool decoupled = false)
        : Optimizer<T>(decoupled ? "AdamW" : "Adam", std::move(params), {"exp_avg", "exp_avg_sq"}),
          options(opt),
          decoupled_(decoupled) {
        detail::check_adam<T>(this->name_, opt);
    }

    void step() override {
        const int64_t t = ++this->steps_;
        const AdamOptions& o = options;
        const double bias_correction1 = 1 - std::pow(o.beta1, static_cast<double>(t));
        const double bias_correction2 = 1 - std::pow(o.beta2, static_cast<double>(t));
        const kernels::AdamStep<T> k{.beta1 = T(o.beta1),
                                     .beta2 = T(o.beta2),
                                     .one_minus_beta1 = T(1 - o.beta1),
                                     .one_minus_beta2 = T(1 - o.beta2),
                                     .step_size = T(o.lr / bias_correction1),
                                     .bc2_sqrt = T(std::sqrt(bias_correction2)),
                                     .eps = T(o.eps),
                                     .weight_decay = T(o.weight_decay),
                                     .shrink_by = T(1 - o.lr * o.weight_decay),
                                     .decay = o.weight_decay == 0 ? kernels::AdamDecay::none
                                              : decoupled_        ? kernels::AdamDecay::decoupled
                                                                  : kernels::AdamDecay::coupled};
        this->update_each(
            [&](size_t i, Var<T>& p) {
                std::vector<Tensor<T>>& b = this->buffers_of(i);
                return kernels::adam_step(p.value().data(), p.grad().data(), b[0].data(), b[1].data(), p.numel(), k);
            },
            [&](size_t i, Var<T>& p) {
                std::vector<Tensor<T>>& b = this->buffers_of(i);
                ELBO_KERNEL(p.value().device(), adam_step, p.value().data(), p.grad().data(), b[0].data(), b[1].data(),
                            p.numel(), k);
            });
    }

    AdamOptions options;

private:
    bool decoupled_;
};

// AdamW: Adam with decoupled weight decay (default 1e-2, as torch.optim.AdamW).
template <class T = float>
class AdamW : public Adam<T> {
public:
    AdamW(typename Optimizer<T>::Parameters params, AdamOptions opt = {.weight_decay = 1e-2})
        : Adam<T>(std::move(params), opt, /*decoupled=*/true) {}
};

}  // namespace elbo::optim
