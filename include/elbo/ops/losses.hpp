#pragma once
// Losses: bce_with_logits, bce, mse, gaussian_kl, log_softmax, cross_entropy.

#include "elbo/kernels/cpu/gaussian.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

namespace detail {

// An element-wise loss of (input, target) reduced as PyTorch does: none keeps the input's shape,
// sum and mean give a scalar. The kernels are called as forward(device, y, input, target, n,
// reduction) and backward(device, d_input, d_target, dy, input, target, n, reduction).
template <class T, class Forward, class Backward>
Var<T> pointwise_loss(const char* op, const Var<T>& input, const Var<T>& target, Reduction r,
                      Forward forward, Backward backward) {
    const Device device = require_one_device<T>(op, {&input, &target});
    require_same_shape(op, "input", input, "target", target);
    const int64_t n = input.numel();
    check(r != Reduction::mean || n > 0, op, "the mean of an empty input ", input.shape(),
          " is undefined");
    Tensor<T> y = Tensor<T>::uninitialized(r == Reduction::none ? input.shape() : Shape{}, device);
    forward(device, y.data(), input.value().data(), target.value().data(), n, r);
    return Var<T>::from_op(std::move(y), op, {input, target}, [=](Node<T>& self) {
        backward(device, self.parent_grad(0), self.parent_grad(1), self.grad.data(),
                 self.parents[0]->value.data(), self.parents[1]->value.data(), n, r);
    });
}

}  // namespace detail

// Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed from the logits so
// that it stays finite when they saturate. As F.binary_cross_entropy_with_logits.
template <class T>
Var<T> bce_with_logits(const Var<T>& logits, const Var<T>& target, Reduction r = Reduction::mean) {
    return detail::pointwise_loss(
        "bce_with_logits", logits, target, r,
        [](Device d, T* y, const T* in, const T* t, int64_t n, Reduction rd) {
            ELBO_KERNEL(d, bce_with_logits_forward, y, in, t, n, rd);
        },
        [](Device d, T* din, T* dt, const T* dy, const T* in, const T* t, int64_t n, Reduction rd) {
            ELBO_KERNEL(d, bce_with_logits_backward, din, dt, dy, in, t, n, rd);
        });
}

// Binary cross-entropy of probabilities, each log clamped at -100. As F.binary_cross_entropy.
template <class T>
Var<T> bce(const Var<T>& probabilities, const Var<T>& target, Reduction r = Reduction::mean) {
    return detail::pointwise_loss(
        "bce", probabilities, target, r,
        [](Device d, T* y, const T* in, const T* t, int64_t n, Reduction rd) {
            ELBO_KERNEL(d, bce_forward, y, in, t, n, rd);
        },
        [](Device d, T* din, T* dt, const T* dy, const T* in, const T* t, int64_t n, Reduction rd) {
            ELBO_KERNEL(d, bce_backward, din, dt, dy, in, t, n, rd);
        });
}

// Squared error. As F.mse_loss.
template <class T>
Var<T> mse(const Var<T>& input, const Var<T>& target, Reduction r = Reduction::mean) {
    return detail::pointwise_loss(
        "mse", input, target, r,
        [](Device d, T* y, const T* in, const T* t, int64_t n, Reduction rd) {
            ELBO_KERNEL(d, mse_forward, y, in, t, n, rd);
        },
        [](Device d, T* din, T* dt, const T* dy, const T* in, const T* t, int64_t n, Reduction rd) {
            ELBO_KERNEL(d, mse_backward, din, dt, dy, in, t, n, rd);
        });
}

// KL(N(mu, exp(logvar)) || N(0, I)) of each sample, summed over the latents.
// mu, logvar [N, D] -> [N] (none); the batch's sum (sum); that sum / N (mean).
template <class T>
Var<T> gaussian_kl(const Var<T>& mu, const Var<T>& logvar, Reduction r = Reduction::sum) {
    const char* op = "gaussian_kl";
    const Device device = require_one_device<T>(op, {&mu, &logvar});
    check(mu.shape().rank() == 2, op, "expected mu [N, D], got ", mu.shape());
    require_same_shape(op, "mu", mu, "logvar", logvar);
    const int64_t N = mu.shape()[0], D = mu.shape()[1];
    check(r != Reduction::mean || N > 0, op, "the mean over an empty batch is undefined");
    Tensor<T> y = Tensor<T>::uninitialized(r == Reduction::none ? Shape{N} : Shape{}, device);
    ELBO_KERNEL(device, gaussian_kl_forward, y.data(), mu.value().data(), logvar.value().data(), N, D, r);
    return Var<T>::from_op(std::move(y), op, {mu, logvar}, [=](Node<T>& self) {
        ELBO_KERNEL(device, gaussian_kl_backward, self.parent_grad(0), self.parent_grad(1), self.grad.data(),
                    self.parents[0]->value.data(), self.parents[1]->value.data(), N, D, r);
    });
}

// log(softmax(x)) along `axis` (the last by default), computed without overflow.
template <class T>
Var<T> log_softmax(const Var<T>& x, int64_t axis = -1) {
    const char* op = "log_softmax";
    const Device device = require_one_device<T>(op, {&x});
    const Shape& xs = x.shape();
    const int64_t a = xs.axis(axis, op);
    const int64_t outer = xs.span(0, a), k = xs[a], inner = xs.span(a + 1, xs.rank());
    check(k > 0, op, "axis ", axis, " of ", xs, " is empty");
    Tensor<T> y = Tensor<T>::uninitialized(xs, device);
    ELBO_KERNEL(device, log_softmax_forward, y.data(), x.value().data(), outer, k, inner);
    return Var<T>::from_op(std::move(y), op, {x}, [=](Node<T>& self) {
        if (T* dx = self.parent_grad(0))
            ELBO_KERNEL(device, log_softmax_backward, dx, self.grad.data(), self.value.data(), outer, k, inner);
    });
}

// Cross-entropy of class logits [N, K] against labels in [0, K): -log_softmax(logits)[n, label_n],
// per sample (none), summed, or averaged over the batch (mean). As F.cross_entropy.
template <class T>
Var<T> cross_entropy(const Var<T>& logits, const std::vector<int64_t>& labels,
                     Reduction r = Reduction::mean) {
    const char* op = "cross_entropy";
    check(logits.shape().rank() == 2, op, "expected logits [N, K], got ", logits.shape());
    const int64_t N = logits.shape()[0], K = logits.shape()[1];
    check(static_cast<int64_t>(labels.size()) == N, op, "expected ", N, " labels for logits ",
          logits.shape(), ", got ", labels.size());
    for (size_t n = 0; n < labels.size(); ++n)
        check(labels[n] >= 0 && labels[n] < K, op, "label ", labels[n], " of sample ", n,
              " is outside [0, ", K, ")");
    check(r != Reduction::mean || N > 0, op, "the mean over an empty batch is undefined");
    const Var<T> lp = log_softmax(logits, 1);
    const Device device = lp.value().device();
    Tensor<T> y = Tensor<T>::uninitialized(r == Reduction::none ? Shape{N} : Shape{}, device);
    ELBO_KERNEL(device, nll_forward, y.data(), lp.value().data(), labels.data(), N, K, r);
    return Var<T>::from_op(std::move(y), op, {lp}, [=](Node<T>& self) {
        if (T* dlp = self.parent_grad(0))
            ELBO_KERNEL(device, nll_backward, dlp, self.grad.data(), labels.data(), N, K, r);
    });
}

}  // namespace elbo
