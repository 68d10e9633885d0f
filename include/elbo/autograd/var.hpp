#pragma once
// Var<T>: a tensor in the graph of a computation, with its gradient and the recorded backward.
//
// Each op makes a new Var whose node remembers its parents and one closure, `backward`, that reads
// the node's gradient and adds each parent's share into the parent's gradient. That is all of
// reverse mode; autograd::backward only runs the closures in the right order.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "elbo/autograd/profile.hpp"
#include "elbo/tensor/tensor.hpp"

namespace elbo {

namespace detail {
inline bool& grad_mode() {
    thread_local bool enabled = true;
    return enabled;
}
}  // namespace detail

// While a NoGrad lives, ops record nothing: their results are constants (for evaluation, for
// finite differences, for optimizer updates).
class NoGrad {
public:
    NoGrad() : previous_(detail::grad_mode()) { detail::grad_mode() = false; }
    ~NoGrad() { detail::grad_mode() = previous_; }
    NoGrad(const NoGrad&) = delete;
    NoGrad& operator=(const NoGrad&) = delete;

private:
    bool previous_;
};

inline bool grad_enabled() { return detail::grad_mode(); }

template <class T>
struct Node {
    Tensor<T> value;
    Tensor<T> grad;  // allocated (zeros) the first time a gradient arrives
    bool has_grad = false;
    // zero_grad() keeps the buffer but leaves its values to be read as zeros: the next gradient
    // to arrive is written into it (parent_grad_to_write), or it is filled with zeros when read.
    bool grad_zeroed = false;
    bool requires_grad = false;
    bool graph_freed = false;  // set on interior nodes once backward has run through them
    const char* op = "leaf";
    std::vector<std::shared_ptr<Node>> parents;
    std::function<void(Node&)> backward;  // empty for leaves

    // The gradient to accumulate into, zeros on first use.
    Tensor<T>& grad_buffer() {
        if (!has_grad) {
            grad = Tensor<T>::zeros(value.shape(), value.device());
            has_grad = true;
        } else if (grad_zeroed) {
            grad.fill(T(0));
        }
        grad_zeroed = false;
        return grad;
    }

    // The parent's gradient buffer, or null when it needs none: backward kernels skip nulls.
    T* parent_grad(size_t i) {
        Node& p = *parents[i];
        return p.requires_grad ? p.grad_buffer().data() : nullptr;
    }

    // The same, for a backward that writes every element of the parent's gradient: when this is the
    // parent's first gradient (the first since zero_grad() for a parameter) its buffer is left
    // unset and `assign` comes back true, and the kernel stores rather than adds (a pass of zeros
    // and a read saved).
    T* parent_grad_to_write(size_t i, bool& assign) {
        Node& p = *parents[i];
        assign = false;
        if (!p.requires_grad) return nullptr;
        if (!p.has_grad) {
            p.grad = Tensor<T>::uninitialized(p.value.shape(), p.value.device());
            p.has_grad = true;
            assign = true;
        } else if (p.grad_zeroed) {
            p.grad_zeroed = false;
            assign = true;
        }
        return p.grad.data();
    }

    Node() = default;
    Node(const Node&) = delete;
    Node& operator=(const Node&) = delete;

    // Releases the chain of parents with a loop: the default destructor would recurse once per
    // node and overflow the stack on a graph 100,000 nodes deep.
    ~Node() {
        std::vector<std::shared_ptr<Node>> pending = std::move(parents);
        while (!pending.empty()) {
            std::shared_ptr<Node> p = std::move(pending.back());
            pending.pop_back();
            if (p.use_count() == 1) {
                for (auto& q : p->parents) pending.push_back(std::move(q));
                p->parents.clear();
            }
        }
    }
};

template <class T>
class Var {
public:
    using value_type = T;

    // An empty Var, holding no tensor.
    Var() = default;

    // A leaf holding `value`; a parameter or input to differentiate passes requires_grad = true.
    explicit Var(Tensor<T> value, bool requires_grad = false) : node_(std::make_shared<Node<T>>()) {
        node_->value = std::move(value);
        node_->requires_grad = requires_grad;
    }

    // The result of an op: records `parents` and `backward` only when some parent needs a gradient
    // and recording is enabled; otherwise it is a constant.
    static Var from_op(Tensor<T> value, const char* op, std::vector<Var> parents,
                       std::function<void(Node<T>&)> backward) {
        profile::op_ends(op);
        Var out(std::move(value));
        out.node_->op = op;
        if (!grad_enabled()) return out;
        bool needs = false;
        for (const Var& p : parents) needs = needs || p.requires_grad();
        if (!needs) return out;
        out.node_->requires_grad = true;
        for (Var& p : parents) out.node_->parents.push_back(std::move(p.node_));
        out.node_->backward = std::move(backward);
        return out;
    }

    bool defined() const { return node_ != nullptr; }
    const Tensor<T>& value() const { return node().value; }
    Tensor<T>& value() { return node().value; }
    const Shape& shape() const { return node().value.shape(); }
    int64_t numel() const { return node().value.numel(); }
    T item() const { return node().value.item(); }

    bool requires_grad() const { return node().requires_grad; }
    Var& requires_grad_(bool on = true) {
        check(is_leaf() || on, "requires_grad_", "only a leaf can stop requiring a gradient");
        node().requires_grad = on;
        return *this;
    }
    bool is_leaf() const { return !node().backward; }

    // The accumulated gradient, zeros of the value's shape when none has arrived yet.
    const Tensor<T>& grad() const { return node_->grad_buffer(); }
    bool has_grad() const { return node().has_grad; }
    // Zeros the gradient, lazily: the buffer is kept, and the next backward writes its first
    // gradient into it instead of adding onto a pass of zeros (read before that, it is zeros).
    void zero_grad() {
        if (node().has_grad) node_->grad_zeroed = true;
    }

    // A leaf sharing this value, cut from the graph: no gradient flows back through it.
    Var detach() const { return Var(node().value); }

    Node<T>& node() const {
        check(node_ != nullptr, "Var", "this Var is empty (default-constructed)");
        return *node_;
    }
    const std::shared_ptr<Node<T>>& node_ptr() const { return node_; }

private:
    std::shared_ptr<Node<T>> node_;
};

}  // namespace elbo
