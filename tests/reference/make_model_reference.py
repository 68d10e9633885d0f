#!/usr/bin/python3
"""Reference files for elbo's models and optimizers, made with Debian's python3-torch.

    /usr/bin/python3 tests/reference/make_model_reference.py            # writes the files below
    /usr/bin/python3 tests/reference/make_model_reference.py --load CK  # loads an elbo checkpoint in PyTorch

Writes into tests/reference/:
  seed_vae.safetensors        the seed VAE's state_dict (3x64x64, D = 64, PyTorch's default init,
                              weights rounded to float16 and stored as F16), no metadata: elbo must
                              infer the configuration from the shapes
  seed_vae_grads.safetensors  a batch (x [2,3,64,64], eps [2,64]) and PyTorch's loss and gradient of
                              every parameter, reduction sum, beta = 1
  factor_vae.safetensors      a small FactorVAE (1x16x16, D = 4, discriminator 32 wide), F32
  factor_vae_grads.safetensors  its batch, loss (reduction mean, gamma = 6.4) and gradients
  optim.safetensors           parameter trajectories of SGD, Adam and AdamW over 6 steps of given
                              gradients

The model classes below are the definition elbo's models follow (docs/models.md).
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import load, save

HERE = os.path.dirname(os.path.abspath(__file__))


class Encoder(nn.Module):
    def __init__(self, c, s, d):
        super().__init__()
        self.conv1 = nn.Conv2d(c, 32, 4, 2, 1)
        self.conv2 = nn.Conv2d(32, 64, 4, 2, 1)
        self.conv3 = nn.Conv2d(64, 128, 4, 2, 1)
        self.fc_mu = nn.Linear(128 * (s // 8) ** 2, d)
        self.fc_logvar = nn.Linear(128 * (s // 8) ** 2, d)

    def forward(self, x):
        h = F.relu(self.conv1(x))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h)).flatten(1)
        return self.fc_mu(h), self.fc_logvar(h)


class Decoder(nn.Module):
    def __init__(self, c, s, d):
        super().__init__()
        self.side = s // 8
        self.fc = nn.Linear(d, 128 * self.side ** 2)
        self.deconv1 = nn.ConvTranspose2d(128, 64, 4, 2, 1)
        self.deconv2 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
        self.deconv3 = nn.ConvTranspose2d(32, c, 4, 2, 1)

    def forward(self, z):
        h = F.relu(self.fc(z)).view(-1, 128, self.side, self.side)
        h = F.relu(self.deconv1(h))
        h = F.relu(self.deconv2(h))
        return self.deconv3(h)  # logits


class Discriminator(nn.Module):
    def __init__(self, d, hidden):
        super().__init__()
        layers, width = [], d
        for _ in range(5):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(hidden, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        return self.net(z)


class VAE(nn.Module):
    def __init__(self, c=3, s=64, d=64, hidden=None):
        super().__init__()
        self.encoder = Encoder(c, s, d)
        self.decoder = Decoder(c, s, d)
        if hidden:
            self.discriminator = Discriminator(d, hidden)

    def objective(self, x, eps, reduction="sum", beta=1.0, gamma=0.0):
        mu, logvar = self.encoder(x)
        z = mu + eps * torch.exp(0.5 * logvar)
        logits = self.decoder(z)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = recon + beta * kl
        if hasattr(self, "discriminator"):
            d = self.discriminator(z)
            loss = loss + gamma * (d[:, 0] - d[:, 1]).sum()
        return loss / x.shape[0] if reduction == "mean" else loss


def grads_file(model, x, eps, path, **objective):
    loss = model.objective(x, eps, **objective)
    model.zero_grad()
    loss.backward()
    tensors = {"x": x, "eps": eps, "loss": loss.detach()}
    tensors.update({name: p.grad for name, p in model.named_parameters()})
    save(path, tensors, {k: str(v) for k, v in objective.items()})


def seed_vae():
    torch.manual_seed(1)
    model = VAE()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())  # exactly representable in the F16 file
    save(os.path.join(HERE, "seed_vae.safetensors"), {n: p.half() for n, p in model.state_dict().items()})
    x = torch.rand(2, 3, 64, 64)
    eps = torch.randn(2, 64)
    grads_file(model, x, eps, os.path.join(HERE, "seed_vae_grads.safetensors"), reduction="sum", beta=1.0)


def factor_vae():
    torch.manual_seed(2)
    model = VAE(c=1, s=16, d=4, hidden=32)
    save(os.path.join(HERE, "factor_vae.safetensors"), model.state_dict())
    x = torch.rand(5, 1, 16, 16)
    eps = torch.randn(5, 4)
    grads_file(model, x, eps, os.path.join(HERE, "factor_vae_grads.safetensors"), reduction="mean", beta=1.0,
               gamma=6.4)


def optimizers():
    torch.manual_seed(3)
    start = {"a": torch.randn(5, 3), "b": torch.randn(7)}
    steps = 6
    gradients = [{n: torch.randn_like(t) for n, t in start.items()} for _ in range(steps)]
    tensors = {f"start.{n}": t for n, t in start.items()}
    for k, g in enumerate(gradients):
        tensors.update({f"grad{k}.{n}": t for n, t in g.items()})
    runs = {
        "sgd": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
        "sgd_nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.8, nesterov=True),
        "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
        "adam_wd": lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.5, 0.9), weight_decay=0.1),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    }
    for run, make in runs.items():
        params = {n: t.clone().requires_grad_() for n, t in start.items()}
        opt = make(list(params.values()))
        for k, g in enumerate(gradients):
            for n, p in params.items():
                p.grad = g[n].clone()
            opt.step()
            tensors.update({f"{run}.step{k}.{n}": p.detach().clone() for n, p in params.items()})
    save(os.path.join(HERE, "optim.safetensors"), tensors)


def load_in_pytorch(path):
    """Loads a checkpoint elbo wrote into the PyTorch model and evaluates it on zeros."""
    tensors, metadata = load(path)
    state = {n: t for n, t in tensors.items() if not n.startswith("optimizer.")}
    if "channels" in metadata:
        c, s, d = int(metadata["channels"]), int(metadata["image_size"]), int(metadata["latent"])
        hidden = int(metadata["discriminator_hidden"]) if metadata.get("kind") == "factor-vae" else None
    else:  # no metadata: the shapes say it, as elbo infers it
        c, (d, features) = state["encoder.conv1.weight"].shape[1], state["encoder.fc_mu.weight"].shape
        s = 8 * round((features / 128) ** 0.5)
        hidden = state["discriminator.net.0.weight"].shape[0] if "discriminator.net.0.weight" in state else None
    model = VAE(c, s, d, hidden)
    model.load_state_dict(state, strict=True)
    loss = model.objective(torch.zeros(1, c, s, s), torch.zeros(1, d), gamma=float(metadata.get("gamma", 0)))
    print(f"PyTorch loaded {path} ({metadata.get('kind')}, {len(state)} tensors); loss on a zero image {loss.item():.6f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--load":
        load_in_pytorch(sys.argv[2])
    else:
        seed_vae()
        factor_vae()
        optimizers()
