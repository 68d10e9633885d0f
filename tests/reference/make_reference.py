#!/usr/bin/python3
"""Writes tests/reference/ops.safetensors: PyTorch's outputs and gradients of every elbo op.

Run with Debian's python3-torch (`/usr/bin/python3 tests/reference/make_reference.py`). For each case
it stores, in float32, the inputs `<case>.in<k>`, the output `<case>.out`, a random seed gradient
`<case>.seed`, and the gradient of <seed, out> with respect to each input, `<case>.grad<k>`.
tests/test_reference.cpp recomputes every case with elbo and compares.

The file is written by safetensors_io.py beside this script (Debian 12 has no python3-safetensors),
which is also a second, independent writer for elbo's safetensors reader.
"""
import os

import torch
import torch.nn.functional as F

from safetensors_io import save

torch.manual_seed(0)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops.safetensors")


def randn(*shape, scale=1.0):
    return torch.randn(tuple(shape), dtype=torch.float32) * scale


def uniform(*shape, low=0.0, high=1.0):
    return torch.rand(tuple(shape), dtype=torch.float32) * (high - low) + low


def away_from_zero(*shape):
    x = randn(*shape)
    return x + torch.where(x >= 0, 0.1, -0.1)


def kl(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def permuted(z, index):
    # out[n, d] = z[index[d, n], d]
    return torch.stack([z[index[d], d] for d in range(z.shape[1])], dim=1)


labels = torch.tensor([2, 0, 1, 2, 1])
perm_index = torch.stack([torch.randperm(6) for _ in range(3)])

# name: (function, inputs that get gradients, constant inputs stored but not differentiated)
CASES = {
    "linear": (lambda x, w, b: F.linear(x, w, b), [randn(5, 7), randn(3, 7), randn(3)], []),
    "conv2d_s2_p1": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
                     [randn(2, 3, 9, 7), randn(4, 3, 4, 4), randn(4)], []),
    "conv2d_s1_p2_d2": (lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=2, dilation=2),
                        [randn(1, 2, 8, 9), randn(3, 2, 3, 3), randn(3)], []),
    "conv2d_s3_p0": (lambda x, w, b: F.conv2d(x, w, b, stride=3),
                     [randn(5, 1, 7, 7), randn(2, 1, 2, 2), randn(2)], []),
    "conv_transpose2d_s2_p1_op1": (
        lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
        [randn(2, 4, 5, 4), randn(4, 3, 4, 4), randn(3)], []),
    "conv_transpose2d_s1_p0_d2": (lambda x, w, b: F.conv_transpose2d(x, w, b, dilation=2),
                                  [randn(1, 2, 3, 5), randn(2, 2, 3, 3), randn(2)], []),
    "conv_transpose2d_s3_p2": (lambda x, w, b: F.conv_transpose2d(x, w, b, stride=3, padding=2),
                               [randn(5, 2, 3, 3), randn(2, 1, 4, 4), randn(1)], []),
    "bce_with_logits_sum": (lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="sum"),
                            [randn(4, 3, 5, 5, scale=4.0), uniform(4, 3, 5, 5)], []),
    "bce_with_logits_mean": (lambda x, t: F.binary_cross_entropy_with_logits(x, t),
                             [randn(2, 7, scale=4.0), uniform(2, 7)], []),
    "bce_with_logits_none": (lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction="none"),
                             [randn(3, 4, scale=4.0), uniform(3, 4)], []),
    "bce_sum": (lambda p, t: F.binary_cross_entropy(p, t, reduction="sum"),
                [uniform(4, 6, low=0.02, high=0.98), uniform(4, 6)], []),
    "mse_mean": (lambda a, b: F.mse_loss(a, b), [randn(3, 5), randn(3, 5)], []),
    "gaussian_kl_sum": (kl, [randn(5, 8), randn(5, 8, scale=0.5)], []),
    "reparameterize": (lambda mu, lv, eps: mu + eps * torch.exp(0.5 * lv),
                       [randn(5, 8), randn(5, 8), randn(5, 8)], []),
    "relu": (F.relu, [away_from_zero(2, 3, 4, 5)], []),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), [away_from_zero(2, 3, 4, 5)], []),
    "sigmoid": (torch.sigmoid, [randn(2, 3, 4, 5, scale=3.0)], []),
    "tanh": (torch.tanh, [randn(2, 3, 4, 5, scale=2.0)], []),
    "softplus": (F.softplus, [randn(4, 25, scale=12.0)], []),
    "exp": (torch.exp, [randn(3, 7)], []),
    "abs": (torch.abs, [away_from_zero(3, 7)], []),
    "log": (torch.log, [uniform(3, 7, low=0.1, high=4.0)], []),
    "add_broadcast": (lambda a, b: a + b, [randn(2, 3, 4), randn(3, 1)], []),
    "sub_broadcast": (lambda a, b: a - b, [randn(5, 1), randn(1, 4)], []),
    "mul_broadcast": (lambda a, b: a * b, [randn(2, 3, 4), randn(4)], []),
    "div_broadcast": (lambda a, b: a / b, [randn(2, 3, 4), uniform(2, 1, 4, low=0.5, high=2.0)], []),
    "sum_axis1": (lambda x: x.sum(dim=1), [randn(3, 4, 5)], []),
    "mean_all": (lambda x: x.mean(), [randn(3, 4, 5)], []),
    "mean_axis2_keepdim": (lambda x: x.mean(dim=2, keepdim=True), [randn(3, 4, 5)], []),
    "log_softmax": (lambda x: F.log_softmax(x, dim=1), [randn(5, 6, scale=3.0)], []),
    "cross_entropy": (lambda x, labels: F.cross_entropy(x, labels), [randn(5, 3, scale=2.0)], [labels]),
    "concat": (lambda a, b: torch.cat([a, b, a]), [randn(2, 3, 2), randn(1, 3, 2)], []),
    "gather_columns": (permuted, [randn(6, 3)], [perm_index]),
}


def main():
    tensors = {}
    for name, (fn, inputs, constants) in CASES.items():
        leaves = [x.clone().requires_grad_() for x in inputs]
        out = fn(*leaves, *constants)
        seed = randn(*out.shape)
        grads = torch.autograd.grad(out, leaves, grad_outputs=seed)
        for k, x in enumerate(inputs):
            tensors[f"{name}.in{k}"] = x
            tensors[f"{name}.grad{k}"] = grads[k]
        for k, c in enumerate(constants):
            tensors[f"{name}.const{k}"] = c
        tensors[f"{name}.out"] = out.detach()
        tensors[f"{name}.seed"] = seed
    save(OUT, tensors, {"generator": f"torch {torch.__version__}, tests/reference/make_reference.py"})


if __name__ == "__main__":
    main()
