#pragma once
// What every op shares: the autograd types, the kernels, and the device check.

#include <initializer_list>
#include <type_traits>

#include "elbo/autograd/backward.hpp"
#include "elbo/kernels/cpu/activations.hpp"
#include "elbo/kernels/cpu/common.hpp"
#include "elbo/kernels/cpu/reference.hpp"
#if ELBO_WITH_CUDA
#include "elbo/cuda/kernels.hpp"
#endif

namespace elbo {

// The device all operands of an op live on (the first defined one's); an Error when they differ.
// Ops call this before their kernels run, so it also starts the op's clock for the profile
// (autograd/profile.hpp).
template <class T>
Device require_one_device(const char* op, std::initializer_list<const Var<T>*> operands) {
    profile::op_begins();
    Device device = Device::cpu;
    bool first = true;
    for (const Var<T>* v : operands) {
        if (!v->defined()) continue;
        const Device d = v->value().device();
        if (first) device = d;
        check(d == device, op, "expected every operand on one device, got ", to_string(device), " and ",
              to_string(d), "; move them with Tensor::to");
        first = false;
    }
    return device;
}

namespace detail {

// True when a kernel whose first argument has type P has a CUDA twin to run: a float buffer, in a
// build with the CUDA module.
template <class P>
inline constexpr bool has_gpu_twin =
    ELBO_WITH_CUDA && std::is_same_v<std::remove_cv_t<std::remove_pointer_t<std::decay_t<P>>>, float>;

}  // namespace detail

}  // namespace elbo

namespace elbo::kernels::selected {

// The CPU kernels the ops run: every kernel of elbo::kernels, except that a build with
// ELBO_REFERENCE_KERNELS=1 takes the plain loops of kernels/cpu/reference.hpp for linear, conv2d
// and conv_transpose2d. (A name declared here hides the one the using-directive brings in.)
using namespace elbo::kernels;
#if ELBO_REFERENCE_KERNELS
using reference::conv2d_backward;
using reference::conv2d_forward;
using reference::conv_transpose2d_backward;
using reference::conv_transpose2d_forward;
using reference::linear_backward;
using reference::linear_forward;
#endif

}  // namespace elbo::kernels::selected

// Runs kernel `name` on `device`: elbo::kernels::name on the CPU (or its reference twin, see above),
// its twin elbo::cuda::name (the same arguments, float) on the GPU. The first argument is the
// kernel's output buffer.
#if ELBO_WITH_CUDA
#define ELBO_KERNEL(device, name, out, ...)                                   \
    do {                                                                      \
        if constexpr (::elbo::detail::has_gpu_twin<decltype(out)>) {          \
            if ((device) == ::elbo::Device::cuda) {                           \
                ::elbo::cuda::name(out, __VA_ARGS__);                         \
                break;                                                        \
            }                                                                 \
        }                                                                     \
        ::elbo::kernels::selected::name(out, __VA_ARGS__);                    \
    } while (0)
#else
#define ELBO_KERNEL(device, name, out, ...)                \
    do {                                                   \
        static_cast<void>(device);                         \
        ::elbo::kernels::selected::name(out, __VA_ARGS__); \
    } while (0)
#endif

namespace elbo {

// Checks that two operands of an element-wise op have one shape.
template <class T>
void require_same_shape(const char* op, const char* a_name, const Var<T>& a, const char* b_name,
                        const Var<T>& b) {
    check(a.shape() == b.shape(), op, a_name, " and ", b_name, " must have the same shape, got ",
          a_name, " ", a.shape(), " and ", b_name, " ", b.shape());
}

// The activation a layer op applies to its output (kernels/cpu/layer_activation.hpp):
//   conv2d(x, w, b, {.stride = 2, .padding = 1}, Activation::relu())  is  relu(conv2d(x, w, b, ...))
using kernels::Activation;

namespace detail {

// g = dy f'(x) for a layer's activation y = f(x), with f' read from y: y > 0 exactly where x > 0,
// for ReLU and for LeakyReLU with a slope >= 0 (which layer_op checks). The activations' own
// backward kernels, given y for x, compute just that, on either device.
template <class T>
void activation_backward(Device device, T* g, const T* dy, const T* y, int64_t n, const Activation& act) {
    if (act.kind == Activation::Kind::relu) ELBO_KERNEL(device, relu_backward, g, dy, y, n, true);
    if (act.kind == Activation::Kind::leaky_relu)
        ELBO_KERNEL(device, leaky_relu_backward, g, dy, y, n, static_cast<T>(act.slope), true);
}

// Runs a layer op y = act(f(x, w, b)) with an optional bias (b empty: none) on `device` (the
// operands' device, already checked) and records its backward. forward(device, y, x, w, b, act) and
// backward(device, dx, dw, db, assign, dy, x, w) are the raw kernels with the layer's sizes bound;
// b and db are null without a bias, and any gradient nobody needs is null too. Where a gradient is
// its operand's first (since the graph was built, or since zero_grad()), `assign` says so: its
// buffer holds nothing yet and the kernel writes every element of it, instead of a pass of zeros
// first and its adding onto them. With an activation, the backward takes dy f'
// (activation_backward) for dy; the value before the activation is never stored.
template <class T, class Forward, class Backward>
Var<T> layer_op(const char* op, Device device, const Shape& y_shape, const Var<T>& x, const Var<T>& w,
                const Var<T>& b, const Activation& act, Forward forward, Backward backward) {
    check(act.kind != Activation::Kind::leaky_relu || act.slope >= 0, op,
          "a fused LeakyReLU needs a slope >= 0 (its gradient is read from the output), got ", act.slope,
          "; apply leaky_relu after the layer instead");
    Tensor<T> y = Tensor<T>::uninitialized(y_shape, device);
    const bool has_bias = b.defined();
    forward(device, y.data(), x.value().data(), w.value().data(), has_bias ? b.value().data() : nullptr, act);
    std::vector<Var<T>> parents{x, w};
    if (has_bias) parents.push_back(b);
    return Var<T>::from_op(std::move(y), op, std::move(parents), [=](Node<T>& self) {
        // An operand that is also another (an input that is the weight) takes its gradients added,
        // from zeros.
        auto gradient = [&self](size_t i, bool& assign) {
            for (size_t j = 0; j < self.parents.size(); ++j)
                if (j != i && self.parents[j] == self.parents[i]) return self.parent_grad(i);
            return self.parent_grad_to_write(i, assign);
        };
        kernels::Assign assign;
        T* dx = gradient(0, assign.dx);
        T* dw = gradient(1, assign.dw);
        T* db = has_bias ? gradient(2, assign.db) : nullptr;
        const T* dy = self.grad.data();
        Tensor<T> g;  // dy f', from the pool
        if (act) {
            g = Tensor<T>::uninitialized(self.grad.shape(), device);
            activation_backward(device, g.data(), dy, self.value.data(), g.numel(), act);
            dy = g.data();
        }
        backward(device, dx, dw, db, assign, dy, self.parents[0]->value.data(), self.parents[1]->value.data());
    });
}

}  // namespace detail

}  // namespace elbo
