#!/usr/bin/env python3
"""The VAE, β-VAE and FactorVAE trained in PyTorch, to tell elbo's results from the setup's.

Written from the seed tutorial (../shared/reference/000_d35e7427d614ac8f.txt: its Encoder, Decoder,
reparameterization and loss) and from Kim & Mnih, "Disentangling by Factorising" (ICML 2018: the
dSprites networks of its appendix, Algorithm 2, the discriminator and the optimizers), not from
elbo's C++. What it shares with elbo is the data and the draws, so that a seed names the same run:

- the images: an IDX file of bytes that `elbo data --data dsprites --all --idx FILE` writes (the
  data set rendered by elbo), read here with numpy (memory-mapped: dSprites is 3 GB of bytes);
- the order: epoch e's order is elbo's data_order permutation, batch k of the run is items
  [kB, (k+1)B) of it, and a FactorVAE step takes two batches (benchmarks/elbo_random.py);
- with --draws elbo (the default), ε of each image and permute_dims' permutations are elbo's
  Philox draws; --draws torch uses torch.randn and torch.randperm instead;
- with --init FILE, the initial weights are read from an elbo checkpoint (otherwise PyTorch's own
  initialization under torch.manual_seed(seed)).

It writes what elbo train writes, in elbo's formats: metrics.csv (elbo's columns, those it
computes), checkpoint.safetensors (elbo's tensor names and metadata, weights only, so that `elbo
eval --checkpoint` scores the model with the code that scores elbo's), and state.pt for --resume.

    build/bench-venv/bin/python benchmarks/pytorch_train.py --model factor-vae --data runs/dsprites.idx \\
        --steps 10000 --out runs/torch/factor-vae-s0
"""

import argparse
import csv
import json
import math
import os
import signal
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import elbo_random  # noqa: E402


# ---- the networks


class SeedEncoder(nn.Module):
    """The seed tutorial's encoder, for C channels of S x S (the tutorial: 3 x 64 x 64)."""

    def __init__(self, channels, size, latent):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 4, stride=2, padding=1)
        flat = 128 * (size // 8) ** 2
        self.fc_mu = nn.Linear(flat, latent)
        self.fc_logvar = nn.Linear(flat, latent)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        x = x.view(x.size(0), -1)
        return self.fc_mu(x), self.fc_logvar(x)


class SeedDecoder(nn.Module):
    """The seed tutorial's decoder; it returns logits (the tutorial's sigmoid is in the loss)."""

    def __init__(self, channels, size, latent):
        super().__init__()
        self.size = size
        self.fc = nn.Linear(latent, 128 * (size // 8) ** 2)
        self.deconv1 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.deconv3 = nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1)

    def forward(self, z):
        x = self.fc(z)
        x = x.view(x.size(0), 128, self.size // 8, self.size // 8)
        x = torch.relu(self.deconv1(x))
        x = torch.relu(self.deconv2(x))
        return self.deconv3(x)


class KimMnihEncoder(nn.Module):
    """Kim & Mnih's dSprites encoder (appendix, table 1): four 4x4 stride-2 convolutions of 32, 32,
    64 and 64 channels, FC 128, FC 2 x latent (here two heads, mu and log-variance), ReLUs."""

    def __init__(self, channels, size, latent):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 4, stride=2, padding=1)
        self.fc = nn.Linear(64 * (size // 16) ** 2, 128)
        self.fc_mu = nn.Linear(128, latent)
        self.fc_logvar = nn.Linear(128, latent)

    def forward(self, x):
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            x = torch.relu(conv(x))
        x = torch.relu(self.fc(x.view(x.size(0), -1)))
        return self.fc_mu(x), self.fc_logvar(x)


class KimMnihDecoder(nn.Module):
    """The paper's decoder: FC 128, FC 4x4x64, 4x4 stride-2 transposed convolutions of 64, 32, 32
    and C channels, ReLUs but after the last (logits of Bernoulli pixels)."""

    def __init__(self, channels, size, latent):
        super().__init__()
        self.side = size // 16
        self.fc1 = nn.Linear(latent, 128)
        self.fc2 = nn.Linear(128, 64 * self.side**2)
        self.deconv1 = nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.deconv3 = nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1)
        self.deconv4 = nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1)

    def forward(self, z):
        x = torch.relu(self.fc1(z))
        x = torch.relu(self.fc2(x)).view(z.size(0), 64, self.side, self.side)
        for deconv in (self.deconv1, self.deconv2, self.deconv3):
            x = torch.relu(deconv(x))
        return self.deconv4(x)


class Discriminator(nn.Module):
    """The paper's discriminator: 6 layers of 1000 units, LeakyReLU(0.2), 2 logits (class 0: a code
    of q(z), class 1: a code with permuted dimensions)."""

    def __init__(self, latent, hidden=1000, layers=6):
        super().__init__()
        parts, width = [], latent
        for _ in range(layers):
            parts += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        parts.append(nn.Linear(width, 2))
        self.net = nn.Sequential(*parts)

    def forward(self, z):
        return self.net(z)


class Model(nn.Module):
    ARCHS = {"seed": (SeedEncoder, SeedDecoder), "kim-mnih": (KimMnihEncoder, KimMnihDecoder)}

    def __init__(self, config):
        super().__init__()
        encoder, decoder = self.ARCHS[config["arch"]]
        c, s, d = config["channels"], config["image_size"], config["latent"]
        self.encoder = encoder(c, s, d)
        self.decoder = decoder(c, s, d)
        if config["kind"] == "factor-vae":
            self.discriminator = Discriminator(d, config["discriminator_hidden"], config["discriminator_layers"])

    def vae_parameters(self):
        return list(self.encoder.parameters()) + list(self.decoder.parameters())


# ---- elbo's files


def read_idx(path):
    """An IDX file of bytes, memory-mapped: [N, H, W] or [N, C, H, W]."""
    with open(path, "rb") as f:
        head = f.read(4)
        if len(head) < 4 or head[:3] != b"\x00\x00\x08":
            raise SystemExit(f"{path}: not an IDX file of bytes")
        dims = struct.unpack(">" + "I" * head[3], f.read(4 * head[3]))
    return np.memmap(path, dtype=np.uint8, mode="r", offset=4 + 4 * len(dims), shape=dims)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    metadata = header.pop("__metadata__", {})
    dtypes = {"F32": np.float32, "F64": np.float64}
    tensors = {}
    for name, t in header.items():
        begin, end = t["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return tensors, metadata


def write_safetensors(path, tensors, metadata):
    """float32 tensors and string metadata, written atomically (a temporary file, then renamed)."""
    header, offset, blobs = {"__metadata__": metadata}, 0, []
    for name in sorted(tensors):
        blob = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---- the training


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["vae", "beta-vae", "factor-vae"], default="vae")
    p.add_argument("--arch", choices=["seed", "kim-mnih"], help="default kim-mnih on dsprites, else seed (as elbo)")
    p.add_argument("--data", required=True, help="IDX file of the images (elbo data --all --idx FILE)")
    p.add_argument("--data-name", default="dsprites", help="the data set, as elbo names it (elbo eval reads it)")
    p.add_argument("--latent", type=int, default=10)
    p.add_argument("--beta", type=float, help="weight of the KL term (default 1; beta-vae: 4)")
    p.add_argument("--gamma", type=float, default=35.0, help="FactorVAE: weight of the TC term")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--lr", type=float, help="Adam's rate (default 1e-4; the seed network's VAEs 1e-3)")
    p.add_argument("--d-lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--draws", choices=["elbo", "torch"], default="elbo", help="whose ε and permutations")
    p.add_argument("--init", help="an elbo checkpoint whose weights to start from")
    p.add_argument("--double", action="store_true", help="train in float64 (the checkpoint is float32)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--time-limit", type=float, default=0, help="stop (with a checkpoint) after this many seconds")
    p.add_argument("--out", required=True)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its state.pt")
    a = p.parse_args()
    if a.arch is None:
        a.arch = "kim-mnih" if a.data_name == "dsprites" else "seed"
    if a.beta is None:
        a.beta = 4.0 if a.model == "beta-vae" else 1.0
    if a.lr is None:
        a.lr = 1e-3 if a.arch == "seed" and a.model != "factor-vae" else 1e-4
    return a


class Batches:
    """Batch k of the run: items [kB, (k+1)B) of the epoch's order, as elbo's loader takes them."""

    def __init__(self, images, batch, seed, dtype):
        self.images, self.batch, self.seed, self.dtype = images, batch, seed, dtype
        self.per_epoch = len(images) // batch
        self.epoch, self.order = -1, None

    def __call__(self, k):
        epoch, first = divmod(k, self.per_epoch)
        if epoch != self.epoch:
            self.epoch, self.order = epoch, elbo_random.epoch_order(len(self.images), self.seed, epoch)
        items = np.sort(self.order[first * self.batch:(first + 1) * self.batch])
        rows = dict(zip(items.tolist(), self.images[items]))  # one sorted read of the memory map
        x = np.stack([rows[i] for i in self.order[first * self.batch:(first + 1) * self.batch].tolist()])
        x = (x.astype(np.float64) / 255.0).astype(np.float32)  # elbo's pixel values exactly
        return torch.from_numpy(x.reshape(len(x), -1, x.shape[-2], x.shape[-1])).to(self.dtype)


class Draws:
    """ε and permute_dims' permutations of step t: elbo's Philox draws, or torch's."""

    def __init__(self, kind, seed, dtype):
        self.kind, self.seed, self.dtype = kind, seed, dtype
        self.gen = torch.Generator().manual_seed(seed)

    def noise(self, step, first_image, n, d):
        if self.kind == "torch":
            return torch.randn(n, d, generator=self.gen).to(self.dtype)
        return torch.from_numpy(elbo_random.step_noise(self.seed, step, first_image, n, d)).to(self.dtype)

    def permutations(self, step, n, d):
        if self.kind == "torch":
            return torch.stack([torch.randperm(n, generator=self.gen) for _ in range(d)])
        return torch.from_numpy(elbo_random.step_permutations(self.seed, step, n, d))


def permute_dims(z, permutations):
    """Each latent d of z [N, D] shuffled across the batch: row n takes z[permutations[d, n], d]."""
    return torch.gather(z, 0, permutations.t().contiguous())


def main():
    a = parse()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    images = read_idx(a.data)
    channels = 1 if images.ndim == 3 else images.shape[1]
    config = {
        "kind": a.model, "arch": a.arch, "channels": channels, "image_size": images.shape[-1],
        "latent": a.latent, "beta": a.beta, "gamma": a.gamma if a.model == "factor-vae" else 0.0,
        "reduction": "sum", "discriminator_hidden": 1000, "discriminator_layers": 6,
    }
    torch.manual_seed(a.seed)
    model = Model(config)
    dtype = torch.float64 if a.double else torch.float32
    if a.init:
        weights, _ = read_safetensors(a.init)
        model.load_state_dict({name: torch.from_numpy(weights[name].copy()) for name in model.state_dict()})
    model.to(dtype)
    opt = torch.optim.Adam(model.vae_parameters(), lr=a.lr, betas=(0.9, 0.999))
    d_opt = None
    if a.model == "factor-vae":
        d_opt = torch.optim.Adam(model.discriminator.parameters(), lr=a.d_lr, betas=(0.5, 0.9))
    os.makedirs(a.out, exist_ok=True)
    state_path = os.path.join(a.out, "state.pt")
    step, seconds_before = 0, 0.0
    init = "elbo" if a.init else "own"  # the initial weights: elbo's checkpoint, or PyTorch's own draw
    if a.resume:
        state = torch.load(state_path)
        if "init" in state:
            init = state["init"]
        else:  # a state written before it kept this: the run's first arguments say
            with open(os.path.join(a.out, "config.json")) as f:
                init = "elbo" if json.load(f).get("init") else "own"
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        if d_opt:
            d_opt.load_state_dict(state["d_opt"])
        step, seconds_before = state["step"], state["seconds"]
        draws_state = state.get("draws_generator")
    else:
        draws_state = None
    batches = Batches(images, a.batch, a.seed, dtype)
    draws = Draws(a.draws, a.seed, dtype)
    if draws_state is not None:
        draws.gen.set_state(draws_state)
    metrics = os.path.join(a.out, "metrics.csv")
    columns = ["step", "loss", "recon", "kl", "tc", "discriminator_loss", "d_accuracy_real", "d_accuracy_permuted",
               "lr", "seconds"] + [f"kl_{j}" for j in range(a.latent)]
    if not a.resume:
        with open(metrics, "w", newline="") as f:
            csv.writer(f).writerow(columns)
        config_json = dict(vars(a), torch=torch.__version__, config=config)
        with open(os.path.join(a.out, "config.json"), "w") as f:
            json.dump(config_json, f, indent=1)
    start, first_step = time.time(), step
    per_step = 2 if d_opt else 1
    n, D = a.batch, a.latent

    def save():
        seconds = seconds_before + time.time() - start
        weights = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
        train = {"arch": a.arch, "batch": a.batch, "betas": [0.9, 0.999], "channels": channels,
                 "checkpoint_every": a.checkpoint_every, "data": a.data_name, "device": "cpu",
                 "image_size": config["image_size"], "latent": D, "log_every": a.log_every, "lr": a.lr,
                 "model": a.model, "seed": a.seed, "steps": a.steps, "threads": torch.get_num_threads(),
                 "trained_by": f"pytorch {torch.__version__}", "draws": a.draws,
                 "init": init}
        metadata = {k: str(v) if not isinstance(v, float) else repr(v) for k, v in config.items()}
        metadata.update({"capacity_max": "0", "capacity_steps": "100000", "capacity_weight": "0",
                         "step": str(step), "seconds": f"{seconds:.3f}", "train": json.dumps(train),
                         "trained_by": f"pytorch {torch.__version__} (benchmarks/pytorch_train.py)"})
        for key in ("beta", "gamma"):
            metadata[key] = f"{config[key]:g}"
        write_safetensors(os.path.join(a.out, "checkpoint.safetensors"), weights, metadata)
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "seconds": seconds,
                 "draws_generator": draws.gen.get_state(), "init": init}
        if d_opt:
            state["d_opt"] = d_opt.state_dict()
        torch.save(state, state_path + ".tmp")
        os.replace(state_path + ".tmp", state_path)

    # Ctrl-C (or the study's SIGINT) ends the step under way, then the run stops with a checkpoint.
    interrupted = []
    signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    rows = []
    while step < a.steps:
        x = batches(per_step * step)
        # The VAE's step: recon + β KL (+ γ TC), each summed over the batch (the seed's reduction).
        mu, logvar = model.encoder(x)
        eps = draws.noise(step, 0, n, D)
        z = mu + eps * torch.exp(0.5 * logvar)
        logits = model.decoder(z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl_each = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())
        kl = kl_each.sum()
        total = recon + a.beta * kl
        tc = torch.zeros((), dtype=dtype)
        if d_opt:
            d_z = model.discriminator(z)
            tc = (d_z[:, 0] - d_z[:, 1]).sum()  # the density-ratio estimate of TC, summed over the batch
            total = total + a.gamma * tc
        if not math.isfinite(total.item()):  # as elbo does: no update, the last good checkpoint kept
            with open(metrics, "a", newline="") as f:
                csv.writer(f).writerows(rows)
            print(f"the loss is {total.item()} at step {step}; stopping", file=sys.stderr)
            return 1
        opt.zero_grad()
        total.backward()
        opt.step()
        row = {"loss": total.item() / n, "recon": recon.item() / n, "kl": kl.item() / n, "tc": tc.item() / n,
               "discriminator_loss": 0.0, "d_accuracy_real": 0.0, "d_accuracy_permuted": 0.0}
        if d_opt:
            # The discriminator's step (Algorithm 2): z against the second batch's codes, each latent
            # permuted across the batch; z' is drawn by the encoder after the VAE's update.
            x2 = batches(per_step * step + 1)
            with torch.no_grad():
                mu2, logvar2 = model.encoder(x2)
                z2 = mu2 + draws.noise(step, n, n, D) * torch.exp(0.5 * logvar2)
                z_perm = permute_dims(z2, draws.permutations(step, n, D))
            real, permuted = model.discriminator(z.detach()), model.discriminator(z_perm)
            d_loss = 0.5 * (F.cross_entropy(real, torch.zeros(n, dtype=torch.long)) +
                            F.cross_entropy(permuted, torch.ones(n, dtype=torch.long)))
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            row["discriminator_loss"] = d_loss.item()
            row["d_accuracy_real"] = (real[:, 0] > real[:, 1]).float().mean().item()
            row["d_accuracy_permuted"] = (permuted[:, 1] > permuted[:, 0]).float().mean().item()
        step += 1
        if step % a.log_every == 0 or step == a.steps:
            kl_latent = (kl_each.sum(0) / n).tolist()
            row.update(step=step, lr=a.lr, seconds=round(seconds_before + time.time() - start, 3))
            rows.append([row[c] for c in columns[:10]] + kl_latent)
        out_of_time = (a.time_limit > 0 and time.time() - start > a.time_limit) or bool(interrupted)
        if step % a.checkpoint_every == 0 or step == a.steps or out_of_time:
            with open(metrics, "a", newline="") as f:
                csv.writer(f).writerows(rows)
            rows = []
            save()
            print(f"step {step}/{a.steps}: loss {row['loss']:.2f}, "
                  f"{(time.time() - start) / max(step - first_step, 1):.3f} s a step", file=sys.stderr, flush=True)
        if out_of_time:
            break
    with open(metrics, "a", newline="") as f:
        csv.writer(f).writerows(rows)
    if interrupted:
        print(f"interrupted at step {step}; checkpoint written. Continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
