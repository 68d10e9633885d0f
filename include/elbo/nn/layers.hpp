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

// What Linear, Conv2d and ConvTranspose2d share: a weight and an optional bias [bias_size], drawn
// with PyTorch's default initialisation (weight first, then bias) and registered under PyTorch's names.
template <class T>
class WeightedLayer : public Module<T> {
public:
    Var<T> weight, bias;  // bias is empty without one

protected:
    WeightedLayer(const Shape& weight_shape, int64_t bias_size, bool with_bias, Generator& gen) {
        const int64_t fan = init::fan_in(weight_shape);
        weight = Var<T>(init::default_uniform<T>(weight_shape, fan, gen));
        this->register_parameter("weight", weight);
        if (with_bias) {
            bias = Var<T>(init::default_uniform<T>(Shape{bias_size}, fan, gen));
            this->register_parameter("bias", bias);
        }
    }

public:
    // The layer's output, act applied to it in the same op (ops/common.hpp's Activation): what
    // Sequential runs for a layer followed by ReLU or LeakyReLU.
    virtual Var<T> forward(const Var<T>& x, const Activation& act) = 0;
    Var<T> forward(const Var<T>& x) override { return forward(x, Activation{}); }

protected:
    // Checks the sizes before any Shape is made of them.
    static int64_t positive(int64_t v, const char* layer, const char* what) {
        check(v > 0, layer, what, " must be positive, got ", v);
        return v;
    }
};

// y = x weight^T + bias; weight [out, in], bias [out].
template <class T = float>
class Linear : public WeightedLayer<T> {
public:
    Linear(int64_t in_features, int64_t out_features, Generator& gen, bool with_bias = true)
        : WeightedLayer<T>(Shape{WeightedLayer<T>::positive(out_features, "Linear", "out_features"),
                                 WeightedLayer<T>::positive(in_features, "Linear", "in_features")},
                           out_features, with_bias, gen) {}
    using WeightedLayer<T>::forward;
    Var<T> forward(const Var<T>& x, const Activation& act) override { return linear(x, this->weight, this->bias, act); }
    std::string name() const override { return "Linear"; }
};

// weight [out, in, k, k], bias [out].
template <class T = float>
class Conv2d : public WeightedLayer<T> {
public:
    Conv2dOptions options;

    Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen, Conv2dOptions opt = {},
           bool with_bias = true)
        : WeightedLayer<T>(Shape{WeightedLayer<T>::positive(out_channels, "Conv2d", "out_channels"),
                                 WeightedLayer<T>::positive(in_channels, "Conv2d", "in_channels"),
                                 WeightedLayer<T>::positive(kernel_size, "Conv2d", "kernel_size"), kernel_size},
                           out_channels, with_bias, gen),
          options(opt) {}
    using WeightedLayer<T>::forward;
    Var<T> forward(const Var<T>& x, const Activation& act) override {
        return conv2d(x, this->weight, this->bias, options, act);
    }
    std::string name() const override { return "Conv2d"; }
};

// weight [in, out, k, k], bias [out].
template <class T = float>
class ConvTranspose2d : public WeightedLayer<T> {
public:
    ConvTranspose2dOptions options;

    ConvTranspose2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, Generator& gen,
                    ConvTranspose2dOptions opt = {}, bool with_bias = true)
        : WeightedLayer<T>(Shape{WeightedLayer<T>::positive(in_channels, "ConvTranspose2d", "in_channels"),
                                 WeightedLayer<T>::positive(out_channels, "ConvTranspose2d", "out_channels"),
                                 WeightedLayer<T>::positive(kernel_size, "ConvTranspose2d", "kernel_size"), kernel_size},
                           out_channels, with_bias, gen),
          options(opt) {}
    using WeightedLayer<T>::forward;
    Var<T> forward(const Var<T>& x, const Activation& act) override {
        return conv_transpose2d(x, this->weight, this->bias, options, act);
    }
    std::string name() const override { return "ConvTranspose2d"; }
};

// An activation a layer before it can apply in its own op (Sequential asks), or none.
template <class T>
class ActivationLayer : public Module<T> {
public:
    virtual Activation fused() const = 0;
};

template <class T = float>
class ReLU : public ActivationLayer<T> {
public:
    Var<T> forward(const Var<T>& x) override { return relu(x); }
    Activation fused() const override { return Activation::relu(); }
    std::string name() const override { return "ReLU"; }
};

template <class T = float>
class LeakyReLU : public ActivationLayer<T> {
public:
    T negative_slope;
    explicit LeakyReLU(T slope = T(0.01)) : negative_slope(slope) {}
    Var<T> forward(const Var<T>& x) override { return leaky_relu(x, negative_slope); }
    // A negative slope cannot be fused: its gradient could not be read from the layer's output.
    Activation fused() const override {
        return negative_slope >= 0 ? Activation::leaky_relu(static_cast<double>(negative_slope)) : Activation{};
    }
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

// Runs its modules in order; they are named "0", "1", ... as in torch.nn.Sequential. A Linear,
// Conv2d or ConvTranspose2d followed by a ReLU or LeakyReLU runs as one op, the activation applied
// by the layer's kernel while its output is in cache: the same values and gradients, one pass over
// the output fewer.
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
        for (size_t i = 0; i < modules_.size(); ++i) {
            auto* layer = dynamic_cast<WeightedLayer<T>*>(modules_[i].get());
            auto* next = i + 1 < modules_.size() ? dynamic_cast<ActivationLayer<T>*>(modules_[i + 1].get()) : nullptr;
            if (layer && next && next->fused()) {
                h = layer->forward(h, next->fused());
                ++i;
            } else {
                h = modules_[i]->forward(h);
            }
        }
        return h;
    }
    size_t size() const { return modules_.size(); }
    Module<T>& operator[](size_t i) { return *modules_.at(i); }
    std::string name() const override { return "Sequential"; }

private:
    std::vector<std::unique_ptr<Module<T>>> modules_;
};

}  // namespace elbo::nn
