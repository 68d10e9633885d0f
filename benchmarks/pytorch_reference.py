#!/usr/bin/python3
"""The PyTorch twin of `elbo bench`: the same model (tests/reference/make_model_reference.py's
classes, the definition elbo follows), the same training step (forward, backward, Adam; FactorVAE's
discriminator step on a second batch) and forward pass, timed the same way, printed as the same
JSON line. Run with Debian's python3-torch and libopenblas0-openmp:

    /usr/bin/python3 benchmarks/pytorch_reference.py --model vae --batch 64 --threads 2
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from make_model_reference import kim_mnih, seed_general  # noqa: E402

# Each network's convolution channels and hidden Linear widths, as its source gives them
# (make_model_reference.py builds the networks themselves).
NETWORKS = {"seed": ([32, 64, 128], [], []), "kim-mnih": ([32, 32, 64, 64], [128], [128])}
DISCRIMINATOR_LAYERS = 6


def model_work(arch, c, s, d, hidden):
    """Multiply-adds per image of the encoder, decoder, first convolution and discriminator (as elbo's ModelWork)."""
    conv, encoder_fc, decoder_fc = NETWORKS[arch]
    convs, first, channels, side = 0, 0, c, s
    for out in conv:
        side /= 2
        convs += out * channels * 16 * side * side
        first = first or convs
        channels = out
    f = channels * side * side

    def dense(width, widths, to):
        macs = 0
        for w in widths:
            macs, width = macs + width * w, w
        return macs + width * to

    encoder = convs + dense(f, encoder_fc, 2 * d)
    decoder = convs + dense(d, decoder_fc, f)
    disc = d * hidden + (DISCRIMINATOR_LAYERS - 1) * hidden * hidden + 2 * hidden if hidden else 0
    forward = 2 * (encoder + decoder + disc)
    train = 3 * (encoder + decoder + disc) - first + (encoder + 4 * disc if disc else 0)
    return forward, 2 * train


def permute_dims(z):
    return torch.stack([z[torch.randperm(z.shape[0]), j] for j in range(z.shape[1])], dim=1)


def median_ms(warmup, steps, f):
    for _ in range(warmup):
        f()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        f()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="vae", choices=["vae", "factor-vae"])
    p.add_argument("--arch", default="seed", choices=list(NETWORKS))
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    hidden = 1000 if a.model == "factor-vae" else None
    dev = torch.device(a.device)
    build = kim_mnih if a.arch == "kim-mnih" else seed_general
    model = build(a.channels, a.image_size, a.latent, hidden=hidden, layers=DISCRIMINATOR_LAYERS).to(dev)
    vae_params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(vae_params, lr=1e-4)
    d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=1e-4, betas=(0.5, 0.9)) if hidden else None
    shape = (a.batch, a.channels, a.image_size, a.image_size)
    x, x_other = torch.rand(shape, device=dev), torch.rand(shape, device=dev)
    n = a.batch

    def objective(x):
        mu, logvar = model.encoder(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        out = model.decoder(z)  # the seed's decoder ends in its sigmoid, kim-mnih's in logits
        if model.decoder.output == "logits":
            loss = F.binary_cross_entropy_with_logits(out, x, reduction="sum")
        else:
            loss = F.binary_cross_entropy(out, x, reduction="sum")
        loss = loss - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        if hidden:
            d = model.discriminator(z)
            loss = loss + 35.0 * (d[:, 0] - d[:, 1]).sum()
        return loss, z

    def freeze_discriminator(frozen):
        # As elbo's step: the VAE's objective sends no gradient into the discriminator's parameters,
        # which the VAE's optimizer ignores and the discriminator's step would clear unused.
        for p in model.discriminator.parameters():
            p.requires_grad_(not frozen)

    def train_step():
        if hidden:
            freeze_discriminator(True)
        loss, z = objective(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if hidden:
            freeze_discriminator(False)
            with torch.no_grad():
                mu, logvar = model.encoder(x_other)
                z_other = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            real = model.discriminator(z.detach())
            fake = model.discriminator(permute_dims(z_other))
            zeros = torch.zeros(n, dtype=torch.long, device=dev)
            d_loss = 0.5 * (F.cross_entropy(real, zeros) + F.cross_entropy(fake, torch.ones_like(zeros)))
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
        if a.device == "cuda":
            torch.cuda.synchronize()

    def forward():
        with torch.no_grad():
            objective(x)
        if a.device == "cuda":
            torch.cuda.synchronize()

    train_ms = median_ms(a.warmup, a.steps, train_step)
    forward_ms = median_ms(a.warmup, a.steps, forward)
    forward_flops, train_flops = model_work(a.arch, a.channels, a.image_size, a.latent, hidden)
    print(json.dumps({
        "library": "pytorch " + torch.__version__, "model": a.model, "arch": a.arch, "channels": a.channels,
        "image_size": a.image_size, "latent": a.latent, "batch": a.batch, "threads": torch.get_num_threads(),
        "device": a.device, "steps": a.steps, "train_step_ms": train_ms, "forward_ms": forward_ms,
        "images_per_s": 1000.0 * a.batch / train_ms, "gflops": train_flops * a.batch / train_ms / 1e6,
        "forward_gflops": forward_flops * a.batch / forward_ms / 1e6,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))


if __name__ == "__main__":
    main()
