#!/usr/bin/python3
"""The PyTorch twin of bench_conv: the seed VAE's convolutions, forward and backward, one JSON line
per layer in the same format. Run both in one sitting with the same thread count:
    OMP_NUM_THREADS=2 build/benchmarks/bench_conv 64 5 && /usr/bin/python3 benchmarks/torch_conv.py 64 5 2
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

N = int(sys.argv[1]) if len(sys.argv) > 1 else 64
REPEATS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)

LAYERS = [("encoder.conv1", False, 3, 32, 64), ("encoder.conv2", False, 32, 64, 32),
          ("encoder.conv3", False, 64, 128, 16), ("decoder.deconv1", True, 128, 64, 8),
          ("decoder.deconv2", True, 64, 32, 16), ("decoder.deconv3", True, 32, 3, 32)]


def median_ms(f):
    f()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


for name, transposed, cin, cout, size in LAYERS:
    out_size = size * 2 if transposed else size // 2
    x = torch.randn(N, cin, size, size, requires_grad=True)
    w = (torch.randn(cin, cout, 4, 4) if transposed else torch.randn(cout, cin, 4, 4)) * 0.05
    w.requires_grad_()
    b = torch.zeros(cout, requires_grad=True)
    op = F.conv_transpose2d if transposed else F.conv2d
    seed = torch.ones(N, cout, out_size, out_size)

    def forward():
        return op(x, w, b, stride=2, padding=1)

    def forward_no_grad():
        with torch.no_grad():
            forward()

    big = max(size, out_size)
    flop = 2.0 * N * cin * cout * 16 * (big // 2) ** 2
    fwd = median_ms(forward_no_grad)
    bwd = median_ms(lambda: forward().backward(seed)) - fwd
    print(json.dumps({"layer": name, "batch": N, "threads": torch.get_num_threads(), "forward_ms": round(fwd, 3),
                      "forward_gflops": round(flop / fwd / 1e6, 1), "backward_ms": round(bwd, 3),
                      "backward_gflops": round(2 * flop / bwd / 1e6, 1)}))
