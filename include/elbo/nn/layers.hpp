#pragma once
// The layers: Linear, Conv2d, ConvTranspose2d, the activations, Flatten, and Sequential.
// Their parameters are named "weight" and "bias" like PyTorch's, in PyTorch's layouts.

#include <memory>

#include "elbo/nn/init.hpp"
#include "elbo/nn/module.hpp"
#include "elbo/ops/activations.hpp"
#include "elbo/ops/conv.hpp"
#include "elbo/ops/linear.hpp"
#include "elbo/ops/shape.hpp"

namespace elbo::nn {

// y = x weight^T + bias; weight [out, in], bias [out].
template <class T = float>
class Linear : public Module<T> {
public:
    Var<T> weight, bias;

    Linear(int64_t in_features, int64_t out_features, Generator& gen, bool with_bias = true) {
        check(in_features > 0 && out_features > 0, "Linear", "features must be positive, got in ", in_features,
              ", out ", out_features);
        weight = Var<T>(init::default_uniform<T>(Shape{out_features, in_features}, in_features, gen));
        this->register_parameter("weight", weight);
        if (with_bias) {
            bias = Var<T>(init::default_uniform<T>(Shape{out_features}, in_features, gen));
            this->register_parameter("bias", bias);
        }
    }
    Var<T> forward(const Var<T>& x) override { return linear(x, weight, bias); }
    std::string name() const override { return "Linear"; }
};

// weight [out, in, k, k], bias [out].
template <class T = float>
class Conv2d : public Module<T> {
public:
    Var<T> weight, bias;
    Conv2dOptions options;

    Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen, Conv2dOptions opt = {},
           bool with_bias = true)
        : options(opt) {
        check(in_channels > 0 && out_channels > 0 && kernel_size > 0, "Conv2d",
              "channels and kernel_size must be positive, got in ", in_channels, ", out ", out_channels, ", kernel ",
              kernel_size);
        const Shape ws{out_channels, in_channels, kernel_size, kernel_size};
        weight = Var<T>(init::default_uniform<T>(ws, init::fan_in(ws), gen));
        this->register_parameter("weight", weight);
        if (with_bias) {
            bias = Var<T>(init::default_uniform<T>(Shape{out_channels}, init::fan_in(ws), gen));
            this->register_parameter("bias", bias);
        }
    }
    Var<T> forward(const Var<T>& x) override { return conv2d(x, weight, bias, options); }
    std::string name() const override { return "Conv2d"; }
};

// weight [in, out, k, k], bias [out].
template <class T = float>
class ConvTranspose2d : public Module<T> {
public:
    Var<T> weight, bias;
    ConvTranspose2dOptions options;

    ConvTranspose2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen,
                    ConvTranspose2dOptions opt = {}, bool with_bias = true)
        : options(opt) {
        check(in_channels > 0 && out_channels > 0 && kernel_size > 0, "ConvTranspose2d",
              "channels and kernel_size must be positive, got in ", in_channels, ", out ", out_channels, ", kernel ",
              kernel_size);
        const Shape ws{in_channels, out_channels, kernel_size, kernel_size};
        weight = Var<T>(init::default_uniform<T>(ws, init::fan_in(ws), gen));
        this->register_parameter("weight", weight);
        if (with_bias) {
            bias = Var<T>(init::default_uniform<T>(Shape{out_channels}, init::fan_in(ws), gen));
            this->register_parameter("bias", bias);
        }
    }
    Var<T> forward(const Var<T>& x) override { return conv_transpose2d(x, weight, bias, options); }
    std::string name() const override { return "ConvTranspose2d"; }
};

template <class T = float>
class ReLU : public Module<T> {
public:
    Var<T> forward(const Var<T>& x) override { return relu(x); }
    std::string name() const override { return "ReLU"; }
};

template <class T = float>
class LeakyReLU : public Module<T> {
public:
    T negative_slope;
    explicit LeakyReLU(T slope = T(0.01)) : negative_slope(slope) {}
    Var<T> forward(const Var<T>& x) override { return leaky_relu(x, negative_slope); }
    std::string name() const override { return "LeakyReLU"; }
};

template <class T = float>
class Sigmoid : public Module<T> {
public:
    Var<T> forward(const Var<T>& x) override { return sigmoid(x); }
    std::string name() const override { return "Sigmoid"; }
};

// [N, ...] -> [N, product of the rest]
template <class T = float>
class Flatten : public Module<T> {
public:
    Var<T> forward(const Var<T>& x) override { return flatten(x, 1); }
    std::string name() const override { return "Flatten"; }
};

// Runs its modules in order; they are named "0", "1", ... as in torch.nn.Sequential.
template <class T = float>
class Sequential : public Module<T> {
public:
    // Appends a module constructed from `args` and returns it.
    template <class M, class... Args>
    M& add(Args&&... args) {
        auto module = std::make_unique<M>(std::forward<Args>(args)...);
        M& ref = *module;
        this->register_module(std::to_string(modules_.size()), ref);
        modules_.push_back(std::move(module));
        return ref;
    }
    Var<T> forward(const Var<T>& x) override {
        Var<T> h = x;
        for (auto& m : modules_) h = m->forward(h);
        return h;
    }
    size_t size() const { return modules_.size(); }
    Module<T>& operator[](size_t i) { return *modules_.at(i); }
    std::string name() const override { return "Sequential"; }

private:
    std::vector<std::unique_ptr<Module<T>>> modules_;
};

}  // namespace elbo::nn
