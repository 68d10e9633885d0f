#!/usr/bin/python3
"""The PyTorch twin of bench_layers: every convolution and Linear layer of the seed's or the
kim-mnih network (and FactorVAE's discriminator) at its shapes in the model, forward and backward,
one JSON line per layer in the same format. benchmarks/layers.sh runs both in one sitting:
    OMP_NUM_THREADS=2 python benchmarks/torch_layers.py kim-mnih 64 5 2
"""
import json
import sys

import torch
import torch.nn.functional as F

from pytorch_reference import NETWORKS, median_ms

ARCH = sys.argv[1] if len(sys.argv) > 1 else "seed"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 64
REPEATS = int(sys.argv[3]) if len(sys.argv) > 3 else 5
torch.set_num_threads(int(sys.argv[4]) if len(sys.argv) > 4 else 2)


def layers(arch, channels, image, latent):
    """(name, kind, in, out, side) as the model runs them; kind is conv, deconv or linear."""
    conv, encoder_fc, decoder_fc = NETWORKS[arch]
    out, c, side = [], channels, image
    for i, o in enumerate(conv):
        out.append((f"encoder.conv{i + 1}", "conv", c, o, side))
        c, side = o, side // 2
    features = c * side * side
    width = features
    for i, w in enumerate(encoder_fc):
        out.append((f"encoder.fc{i + 1}", "linear", width, w, 0))
        width = w
    out.append(("encoder.mu_logvar", "linear", width, 2 * latent, 0))
    width = latent
    for i, w in enumerate(decoder_fc):
        out.append((f"decoder.fc{i + 1}", "linear", width, w, 0))
        width = w
    out.append(("decoder.fc_map", "linear", width, features, 0))
    for k, i in enumerate(reversed(range(len(conv)))):
        out.append((f"decoder.deconv{k + 1}", "deconv", conv[i], channels if i == 0 else conv[i - 1], side))
        side *= 2
    if arch == "kim-mnih":
        out += [("discriminator.fc1", "linear", latent, 1000, 0), ("discriminator.fc2-6", "linear", 1000, 1000, 0),
                ("discriminator.logits", "linear", 1000, 2, 0)]
    return out


kim = ARCH == "kim-mnih"
for name, kind, cin, cout, size in layers(ARCH, 1 if kim else 3, 64, 10 if kim else 64):
    first = name == "encoder.conv1"
    if kind == "linear":
        x = torch.randn(N, cin)
        w = torch.randn(cout, cin) * 0.05
        out_shape, flop = (N, cout), 2.0 * N * cin * cout
        op = lambda x, w, b: F.linear(x, w, b)  # noqa: E731
    else:
        out_size = size * 2 if kind == "deconv" else size // 2
        x = torch.randn(N, cin, size, size)
        w = (torch.randn(cin, cout, 4, 4) if kind == "deconv" else torch.randn(cout, cin, 4, 4)) * 0.05
        out_shape = (N, cout, out_size, out_size)
        big = max(size, out_size)
        flop = 2.0 * N * cin * cout * 16 * (big // 2) ** 2
        conv = F.conv_transpose2d if kind == "deconv" else F.conv2d
        op = lambda x, w, b, conv=conv: conv(x, w, b, stride=2, padding=1)  # noqa: E731
    x.requires_grad_(not first)
    w.requires_grad_()
    b = torch.zeros(cout, requires_grad=True)
    seed = torch.ones(out_shape)

    def forward_no_grad():
        with torch.no_grad():
            op(x, w, b)

    # The backward pass: a step's time less its forward pass's, both recording the graph (PyTorch
    # may run another convolution algorithm under no_grad, so the inference time will not do).
    fwd = median_ms(1, REPEATS, forward_no_grad)
    recorded = median_ms(1, REPEATS, lambda: op(x, w, b))
    bwd = median_ms(1, REPEATS, lambda: op(x, w, b).backward(seed)) - recorded
    bwd_flop = flop if first else 2 * flop
    print(json.dumps({"layer": name, "arch": ARCH, "batch": N, "threads": torch.get_num_threads(),
                      "forward_ms": round(fwd, 3), "forward_gflops": round(flop / fwd / 1e6, 1),
                      "backward_ms": round(bwd, 3), "backward_gflops": round(bwd_flop / bwd / 1e6, 1)}))
