#pragma once
// backward(): reverse-mode differentiation over the recorded graph.
//
// One depth-first walk, with an explicit stack instead of recursion, puts the nodes in topological
// order; running the closures in the reverse of that order gives every node its whole gradient (from
// all its uses) before it passes it on. The graph is then freed: interior nodes drop their parents,
// closures and gradients, and only the leaves keep what they accumulated.

#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "elbo/autograd/var.hpp"

namespace elbo {

// What backward() saw, for shadow mode (train/shadow.hpp): one pass per backward() call, and in
// each the interior nodes as backward ran them (children before parents), each with its op, its
// value and the whole gradient it passed on, then the leaves that received a gradient (the
// parameters: `leaf` is their value's buffer, by which a model names them).
template <class T>
struct TracedNode {
    const char* op;
    Tensor<T> value, grad;  // copies, on the node's device
    const T* leaf = nullptr;
};

// While an object of class D (derived from ThreadHook<D>) lives, D::current() on this thread is
// that object (the latest, when they nest), and backward() calls on it; it is undone on destruction.
template <class D>
class ThreadHook {
public:
    ThreadHook(const ThreadHook&) = delete;
    ThreadHook& operator=(const ThreadHook&) = delete;

    // Cast to D only here, once the object is whole: during ThreadHook's constructor it is not a D
    // yet (UBSan's vptr check rejects that downcast).
    static D* current() { return static_cast<D*>(top()); }

protected:
    ThreadHook() : previous_(top()) { top() = this; }
    ~ThreadHook() { top() = previous_; }

private:
    static ThreadHook*& top() {
        thread_local ThreadHook* hook = nullptr;
        return hook;
    }
    ThreadHook* previous_;
};

// While a TraceBackward<T> lives, every backward() over Var<T> on this thread records into it.
template <class T>
class TraceBackward : public ThreadHook<TraceBackward<T>> {
public:
    std::vector<std::vector<TracedNode<T>>> passes;
};

// Told, during backward(), of each leaf that needs a gradient as soon as that gradient is final:
// when every node that reads the leaf has run its backward. Data parallelism (train/group.hpp)
// starts sending a gradient while backward works on the layers before it. While an object of a
// class derived from it lives, backward() over Var<T> on this thread tells it.
template <class T>
class GradientReady : public ThreadHook<GradientReady<T>> {
public:
    virtual ~GradientReady() = default;

    // `leaf`'s gradient will not change in this backward pass (it may have none, if none reached it).
    virtual void ready(Node<T>& leaf) = 0;
};

// The nodes reachable from `root`, parents before children.
template <class T>
std::vector<Node<T>*> topological_order(Node<T>* root) {
    std::vector<Node<T>*> order;
    std::unordered_set<Node<T>*> seen{root};
    std::vector<std::pair<Node<T>*, size_t>> stack{{root, 0}};
    while (!stack.empty()) {
        auto& [node, next] = stack.back();
        if (next < node->parents.size()) {
            Node<T>* parent = node->parents[next++].get();
            if (seen.insert(parent).second) stack.emplace_back(parent, 0);
        } else {
            order.push_back(node);
            stack.pop_back();
        }
    }
    return order;
}

// Differentiates `output` with the seed gradient `seed` (output's shape): every leaf that requires
// a gradient gets d<seed, output>/d leaf added to its grad().
template <class T>
void backward(const Var<T>& output, const Tensor<T>& seed) {
    Node<T>& root = output.node();
    check(!root.graph_freed, "backward",
          "the graph of this Var was already differentiated and freed; build it again");
    check(root.requires_grad, "backward",
          "the output does not depend on any Var with requires_grad (op '", root.op, "')");
    check(seed.shape() == root.value.shape(), "backward", "seed gradient has shape ", seed.shape(),
          ", the output has ", root.value.shape());
    if (!root.has_grad || root.grad_zeroed) {  // the usual case: the seed is the output's gradient
        root.grad = seed.to(root.value.device()).clone();
        root.has_grad = true;
        root.grad_zeroed = false;
    } else {
        check(root.value.device() == Device::cpu, "backward",
              "adding a seed onto an existing gradient on ", to_string(root.value.device()),
              " is not supported; differentiate a fresh output");
        const Tensor<T> s = seed.to(Device::cpu);
        T* g = root.grad.data();
        for (int64_t i = 0; i < s.numel(); ++i) g[i] += s.data()[i];
    }

    std::vector<Node<T>*> order = topological_order(&root);
    TraceBackward<T>* trace = TraceBackward<T>::current();
    if (trace) trace->passes.emplace_back();
    GradientReady<T>* ready = GradientReady<T>::current();
    std::unordered_map<Node<T>*, int> readers;  // for `ready`: how many nodes read each leaf needing a gradient
    if (ready)
        for (Node<T>* node : order)
            for (const auto& p : node->parents)
                if (!p->backward && p->requires_grad) ++readers[p.get()];
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
        Node<T>& node = **it;
        if (node.backward && node.has_grad && !node.grad_zeroed) {  // zeroed: no gradient arrived
            if (trace) trace->passes.back().push_back({node.op, node.value.clone(), node.grad.clone()});
            profile::timed_backward(node.op, [&] { node.backward(node); });
            // Its gradient is spent (every child ran before it): back to the pool now, so that the
            // next buffer of its size is this one, still in cache, and the step's peak memory stays low.
            node.grad = Tensor<T>();
        }
        if (ready)
            for (const auto& p : node.parents)
                if (auto r = readers.find(p.get()); r != readers.end() && --r->second == 0) ready->ready(*p);
    }
    if (trace)
        for (Node<T>* node : order)
            if (!node->backward && node->requires_grad && node->has_grad)
                trace->passes.back().push_back({node->op, node->value.clone(), node->grad_buffer().clone(), node->value.data()});
    for (Node<T>* node : order) {
        if (!node->backward) continue;
        node->backward = nullptr;
        node->parents.clear();
        node->grad = Tensor<T>();
        node->has_grad = false;
        node->graph_freed = true;
    }
}

// Differentiates a scalar (one-element) loss: seed gradient 1.
template <class T>
void backward(const Var<T>& loss) {
    check(loss.numel() == 1, "backward", "expected a scalar loss (one element), got shape ",
          loss.shape(), "; pass a seed gradient for other outputs");
    backward(loss, Tensor<T>::full(loss.shape(), T(1), loss.value().device()));
}

}  // namespace elbo
