#pragma once
// Module: a tree of named parameters, with the names PyTorch's module tree would give them.
//
// A module registers its parameters (Vars it owns as members) and its sub-modules (members too)
// under names; `named_parameters()` walks the tree and joins the names with dots, so a Conv2d
// registered as "conv1" inside an encoder registered as "encoder" owns "encoder.conv1.weight".
// That name is the key of `state_dict()` and of checkpoints, so weights move to and from PyTorch.
// Module is the one polymorphic base of elbo; modules are neither copied nor moved (the tree holds
// pointers to members). `to(Device::cuda)` puts the parameters on the GPU, as PyTorch's .to does.
// No layer of elbo behaves differently when training (no dropout, no batch norm), so there is no
// train() / eval() mode: NoGrad is what evaluation needs.

#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "elbo/ops/common.hpp"

namespace elbo::nn {

template <class T = float>
class Module {
public:
    Module() = default;
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    virtual ~Module() = default;

    // The forward pass of a module with one input and one output (layers, Sequential). Modules
    // with other signatures (the models) define their own and leave this one undefined.
    virtual Var<T> forward(const Var<T>& /*x*/) {
        throw Error(str(name(), ": this module has no forward(x); call its own methods"));
    }
    Var<T> operator()(const Var<T>& x) { return forward(x); }

    // The module's kind, as PyTorch prints it ("Conv2d", "Sequential").
    virtual std::string name() const = 0;

    // Every parameter of the tree, depth first in registration order, with its dotted name.
    std::vector<std::pair<std::string, Var<T>>> named_parameters(const std::string& prefix = "") const {
        std::vector<std::pair<std::string, Var<T>>> out;
        collect(prefix, out);
        return out;
    }

    std::vector<Var<T>> parameters() const {
        std::vector<Var<T>> out;
        for (auto& [n, p] : named_parameters()) out.push_back(p);
        return out;
    }

    // The parameters' values by name; the tensors are the parameters' own storage, not copies.
    std::map<std::string, Tensor<T>> state_dict() const {
        std::map<std::string, Tensor<T>> out;
        for (auto& [n, p] : named_parameters()) out.emplace(n, p.value());
        return out;
    }

    // Copies `state` into the parameters. Every missing tensor, unexpected tensor (skipped when
    // `strict` is false) and wrong shape is listed in one Error; nothing is copied unless all fit.
    void load_state_dict(const std::map<std::string, Tensor<T>>& state, bool strict = true) {
        auto params = named_parameters();
        std::vector<std::string> problems;
        std::set<std::string> known;
        for (auto& [n, p] : params) {
            known.insert(n);
            auto it = state.find(n);
            if (it == state.end())
                problems.push_back(str("missing '", n, "' ", p.shape()));
            else if (it->second.shape() != p.shape())
                problems.push_back(str("'", n, "' has shape ", it->second.shape(), " in the checkpoint, ", p.shape(),
                                       " in the model"));
        }
        if (strict)
            for (auto& [n, t] : state)
                if (!known.count(n)) problems.push_back(str("unexpected '", n, "' ", t.shape()));
        if (!problems.empty()) {
            std::string list;
            for (const std::string& p : problems) list += "\n  " + p;
            throw Error(str("load_state_dict: the checkpoint does not fit the ", name(), " (", problems.size(),
                            " mismatch", problems.size() == 1 ? "" : "es", "):", list));
        }
        for (auto& [n, p] : params) p.value().copy_(state.at(n));
    }

    // Moves every parameter to `device` (the CPU or the GPU), dropping the gradients of those that
    // move. Optimizers made before follow: they hold the same parameters, and move their state at the
    // next step.
    Module& to(Device device) {
        for (auto& [n, p] : named_parameters()) {
            Node<T>& node = p.node();
            if (node.value.device() == device) continue;
            node.value = node.value.to(device);
            node.grad = Tensor<T>();
            node.has_grad = false;
            node.grad_zeroed = false;
        }
        return *this;
    }

    // Where the parameters are (the CPU for a module that has none).
    Device device() const {
        auto params = named_parameters();
        return params.empty() ? Device::cpu : params.front().second.value().device();
    }

    void zero_grad() {
        for (auto& [n, p] : named_parameters()) p.zero_grad();
    }

    // The direct sub-modules, with their names.
    const std::vector<std::pair<std::string, Module*>>& children() const { return children_; }

protected:
    // Registers a member Var as a parameter named `n`; it then requires a gradient.
    void register_parameter(const std::string& n, Var<T>& parameter) {
        parameter.requires_grad_(true);
        parameters_.emplace_back(n, &parameter);
    }
    // Registers a member module under `n`.
    void register_module(const std::string& n, Module& child) { children_.emplace_back(n, &child); }

private:
    void collect(const std::string& prefix, std::vector<std::pair<std::string, Var<T>>>& out) const {
        for (auto& [n, p] : parameters_) out.emplace_back(prefix + n, *p);
        for (auto& [n, m] : children_) m->collect(prefix + n + ".", out);
    }

    std::vector<std::pair<std::string, Var<T>*>> parameters_;
    std::vector<std::pair<std::string, Module*>> children_;
};

}  // namespace elbo::nn
