#!/usr/bin/python3
"""Reference files for elbo's models and optimizers, made with Debian's python3-torch.

    /usr/bin/python3 tests/reference/make_model_reference.py            # writes the files below
    /usr/bin/python3 tests/reference/make_model_reference.py --load CK  # loads an elbo checkpoint in PyTorch

Every network here is written from its source, never from elbo's C++:
  seed      the seed tutorial, ../shared/reference/000_d35e7427d614ac8f.txt (classes Encoder, Decoder,
            VAE and the function vae_loss, copied verbatim below: 3 channels, 64x64, latent_dim 64)
  kim-mnih  Kim & Mnih 2018, "Disentangling by Factorising", Appendix (the dSprites encoder and
            decoder table), for C channels, S x S images (S divisible by 16) and D latents
  FactorVAE's discriminator: disentanglement_lib's fc_discriminator
            (disentanglement_lib/methods/shared/architectures.py), which follows the same appendix

Writes into tests/reference/ (F32 unless said; "grads" files hold a batch x, the noise eps with
z = mu + eps * exp(logvar / 2), the loss as a 0-d tensor, and the gradient of every parameter under
the parameter's own name; their metadata holds the objective's settings as strings):
  seed_vae.safetensors          the seed's VAE state_dict (torch.manual_seed(1), PyTorch's default init,
                                weights rounded to float16 and stored as F16), no metadata: elbo must
                                infer the configuration from the shapes
  seed_vae_grads.safetensors    x [2,3,64,64], eps [2,64] (the draw the seed's reparameterize made),
                                loss = the seed's vae_loss; metadata reduction "sum", beta "1.0"
  kim_mnih_vae.safetensors      a kim-mnih VAE state_dict, C = 1, S = 64, D = 10 (torch.manual_seed(4)),
                                no metadata
  kim_mnih_vae_grads.safetensors  x [3,1,64,64] (half the pixels exactly 0 or 1), eps [3,10],
                                loss = BCE-with-logits (sum) + KL; metadata reduction "sum", beta "1.0"
  factor_vae.safetensors        a kim-mnih FactorVAE, C = 1, S = 32, D = 4, discriminator 32 wide with 6
                                hidden layers (torch.manual_seed(2)), no metadata
  factor_vae_grads.safetensors  x [5,1,32,32], eps [5,4], loss = (recon + beta KL + gamma sum_batch
                                (d[:,0] - d[:,1])) / N, d = discriminator(z); the gradients include the
                                discriminator's (of this objective); metadata reduction "mean",
                                beta "1.0", gamma "6.4"
  optim.safetensors             parameter trajectories of SGD, Adam and AdamW over 6 steps of given
                                gradients
"""
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_io import load, save

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------------------------------------------
# The seed's network, verbatim: ../shared/reference/000_d35e7427d614ac8f.txt, lines 13-29 (Encoder),
# 37-51 (Decoder), 66-83 (VAE) and 96-105 (vae_loss). Nothing changed but the comments' language.
# ---------------------------------------------------------------------------------------------------

# The seed tutorial, lines 13-29.
class Encoder(nn.Module):
    def __init__(self, latent_dim=64):
        super(Encoder, self).__init__()
        self.conv1 = nn.Conv2d(3, 32, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 4, stride=2, padding=1)
        self.fc_mu = nn.Linear(128 * 8 * 8, latent_dim)
        self.fc_logvar = nn.Linear(128 * 8 * 8, latent_dim)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        x = x.view(x.size(0), -1)  # Flatten the output
        mu = self.fc_mu(x)
        logvar = self.fc_logvar(x)
        return mu, logvar


# The seed tutorial, lines 37-51. No ReLU after fc.
class Decoder(nn.Module):
    def __init__(self, latent_dim=64):
        super(Decoder, self).__init__()
        self.fc = nn.Linear(latent_dim, 128 * 8 * 8)
        self.deconv1 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.deconv3 = nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1)

    def forward(self, z):
        x = self.fc(z)
        x = x.view(x.size(0), 128, 8, 8)  # Reshape to a 4D tensor
        x = torch.relu(self.deconv1(x))
        x = torch.relu(self.deconv2(x))
        x = torch.sigmoid(self.deconv3(x))  # Sigmoid to constrain pixel values between [0, 1]
        return x


# The seed tutorial, lines 66-83.
class VAE(nn.Module):
    def __init__(self, latent_dim=64):
        super(VAE, self).__init__()
        self.encoder = Encoder(latent_dim)
        self.decoder = Decoder(latent_dim)

    def forward(self, x):
        mu, logvar = self.encoder(x)
        z = self.reparameterize(mu, logvar)
        x_reconstructed = self.decoder(z)
        return x_reconstructed, mu, logvar

    def reparameterize(self, mu, logvar):
        # Sample with the reparameterization trick
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        z = mu + eps * std
        return z


# The seed tutorial, lines 96-105.
def vae_loss(x, x_reconstructed, mu, logvar):
    # Reconstruction loss: binary cross-entropy (for pixel values in [0, 1])
    reconstruction_loss = nn.functional.binary_cross_entropy(x_reconstructed.view(-1, 3 * 64 * 64), x.view(-1, 3 * 64 * 64), reduction='sum')

    # KL divergence
    kl_loss = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

    # Total loss
    total_loss = reconstruction_loss + kl_loss
    return total_loss


# ---------------------------------------------------------------------------------------------------
# The seed's classes with C, S, D as parameters (for --load only; the reference files use the verbatim
# classes above). Lines 13-51 of the seed tutorial with 3 -> c, 64 -> s, 8 -> s // 8.
# ---------------------------------------------------------------------------------------------------

# The seed's Encoder (seed tutorial lines 13-29) with C, S, D as parameters.
class SeedEncoder(nn.Module):
    def __init__(self, c, s, latent_dim):
        super().__init__()
        side = s // 8
        self.conv1 = nn.Conv2d(c, 32, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(64, 128, 4, stride=2, padding=1)
        self.fc_mu = nn.Linear(128 * side * side, latent_dim)
        self.fc_logvar = nn.Linear(128 * side * side, latent_dim)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        x = x.view(x.size(0), -1)
        mu = self.fc_mu(x)
        logvar = self.fc_logvar(x)
        return mu, logvar


# The seed's Decoder (seed tutorial lines 37-51) with C, S, D as parameters. relu_after_fc=True gives
# arch "seed-v0": the network elbo's checkpoints written before `arch` existed were trained with. That
# ReLU after fc is NOT the seed's (the seed's decoder goes fc -> view -> deconv1 with nothing between).
class SeedDecoder(nn.Module):
    output = "probabilities"  # torch.sigmoid, as the seed's

    def __init__(self, c, s, latent_dim, relu_after_fc=False):
        super().__init__()
        self.side = s // 8
        self.relu_after_fc = relu_after_fc
        self.fc = nn.Linear(latent_dim, 128 * self.side * self.side)
        self.deconv1 = nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.deconv3 = nn.ConvTranspose2d(32, c, 4, stride=2, padding=1)

    def forward(self, z):
        x = self.fc(z)
        if self.relu_after_fc:  # seed-v0 only; not in the seed
            x = torch.relu(x)
        x = x.view(x.size(0), 128, self.side, self.side)
        x = torch.relu(self.deconv1(x))
        x = torch.relu(self.deconv2(x))
        x = torch.sigmoid(self.deconv3(x))
        return x


# ---------------------------------------------------------------------------------------------------
# The kim-mnih network: Kim & Mnih 2018, "Disentangling by Factorising", Appendix, the dSprites table:
#   encoder  input 64x64x1; 4x4 conv 32 ReLU stride 2; 4x4 conv 32 ReLU stride 2; 4x4 conv 64 ReLU
#            stride 2; 4x4 conv 64 ReLU stride 2; FC 128; FC 2x10 (here fc_mu and fc_logvar)
#   decoder  input R^10; FC 128 ReLU; FC 4x4x64 ReLU; 4x4 upconv 64 ReLU stride 2; 4x4 upconv 32 ReLU
#            stride 2; 4x4 upconv 32 ReLU stride 2; 4x4 upconv 1 stride 2 (Bernoulli logits)
# with C channels for 1, S x S images for 64x64 (the 4x4 map becomes S/16 x S/16) and D latents for 10.
# Padding 1 makes each stride-2 4x4 (transposed) convolution halve (double) the side exactly. The
# flatten and the reshape are PyTorch's, in (channel, row, column) order.
# ---------------------------------------------------------------------------------------------------

# Kim & Mnih 2018, Appendix, dSprites encoder.
class KimMnihEncoder(nn.Module):
    def __init__(self, c, s, latent_dim):
        super().__init__()
        side = s // 16
        self.conv1 = nn.Conv2d(c, 32, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(32, 64, 4, stride=2, padding=1)
        self.conv4 = nn.Conv2d(64, 64, 4, stride=2, padding=1)
        self.fc = nn.Linear(64 * side * side, 128)
        self.fc_mu = nn.Linear(128, latent_dim)
        self.fc_logvar = nn.Linear(128, latent_dim)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        x = torch.relu(self.conv4(x))
        x = x.view(x.size(0), -1)
        x = torch.relu(self.fc(x))
        return self.fc_mu(x), self.fc_logvar(x)


# Kim & Mnih 2018, Appendix, dSprites decoder. Its output is the logits.
class KimMnihDecoder(nn.Module):
    output = "logits"

    def __init__(self, c, s, latent_dim):
        super().__init__()
        self.side = s // 16
        self.fc1 = nn.Linear(latent_dim, 128)
        self.fc2 = nn.Linear(128, 64 * self.side * self.side)
        self.deconv1 = nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.deconv3 = nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1)
        self.deconv4 = nn.ConvTranspose2d(32, c, 4, stride=2, padding=1)

    def forward(self, z):
        x = torch.relu(self.fc1(z))
        x = torch.relu(self.fc2(x))
        x = x.view(x.size(0), 64, self.side, self.side)
        x = torch.relu(self.deconv1(x))
        x = torch.relu(self.deconv2(x))
        x = torch.relu(self.deconv3(x))
        return self.deconv4(x)  # logits


# FactorVAE's discriminator: disentanglement_lib's fc_discriminator
# (disentanglement_lib/methods/shared/architectures.py; "Based on Appendix A page 11 'Disentangling by
# Factorizing'"): 6 dense layers of 1000 units with tf.nn.leaky_relu (slope 0.2), then dense 2 (the
# logits). Width `hidden` for 1000; `layers` hidden layers (6 there; 5 in elbo's seed-v0 checkpoints).
class Discriminator(nn.Module):
    def __init__(self, latent_dim, hidden, layers=6):
        super().__init__()
        modules, width = [], latent_dim
        for _ in range(layers):
            modules += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        modules.append(nn.Linear(hidden, 2))
        self.net = nn.Sequential(*modules)

    def forward(self, z):
        return self.net(z)  # logits [N, 2]


# A VAE of an encoder and decoder above, and with `hidden` a FactorVAE: the discriminator on z.
class Model(nn.Module):
    def __init__(self, encoder, decoder, hidden=None, layers=6):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        if hidden:
            self.discriminator = Discriminator(encoder.fc_mu.out_features, hidden, layers)


def kim_mnih(c, s, d, hidden=None, layers=6):
    return Model(KimMnihEncoder(c, s, d), KimMnihDecoder(c, s, d), hidden, layers)


def seed_general(c, s, d, relu_after_fc=False, hidden=None, layers=6):
    return Model(SeedEncoder(c, s, d), SeedDecoder(c, s, d, relu_after_fc), hidden, layers)


def objective(model, x, eps, reduction="sum", beta=1.0, gamma=0.0):
    """recon + beta KL (+ gamma sum_batch (d[:,0] - d[:,1]) for a FactorVAE), / N for reduction mean.
    recon is the Bernoulli negative log-likelihood summed over the batch: BCE with logits for the
    kim-mnih decoder, the seed's binary_cross_entropy on its sigmoid output for the seed's."""
    mu, logvar = model.encoder(x)
    z = mu + eps * torch.exp(0.5 * logvar)
    out = model.decoder(z)
    if model.decoder.output == "logits":
        recon = F.binary_cross_entropy_with_logits(out, x, reduction="sum")
    else:
        recon = F.binary_cross_entropy(out, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    loss = recon + beta * kl
    if hasattr(model, "discriminator"):
        d = model.discriminator(z)
        loss = loss + gamma * (d[:, 0] - d[:, 1]).sum()
    return loss / x.shape[0] if reduction == "mean" else loss


def save_grads(model, x, eps, loss, path, settings):
    model.zero_grad()
    loss.backward()
    tensors = {"x": x, "eps": eps, "loss": loss.detach()}
    tensors.update({name: p.grad for name, p in model.named_parameters()})
    save(path, tensors, {k: str(v) for k, v in settings.items()})


def seed_vae():
    """The seed's VAE, its forward pass and vae_loss run verbatim; eps is the draw its reparameterize made."""
    torch.manual_seed(1)
    model = VAE()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())  # exactly representable in the F16 file
    save(os.path.join(HERE, "seed_vae.safetensors"), {n: p.half() for n, p in model.state_dict().items()})
    x = torch.rand(2, 3, 64, 64)
    before = torch.get_rng_state()
    x_reconstructed, mu, logvar = model(x)  # reparameterize draws eps = torch.randn_like(std)
    loss = vae_loss(x, x_reconstructed, mu, logvar)
    torch.set_rng_state(before)
    eps = torch.randn_like(mu)  # the same draw again: std has mu's shape and dtype; nothing else drew
    with torch.no_grad():  # check it is the eps the forward pass used
        z = mu + eps * torch.exp(0.5 * logvar)
        assert torch.equal(model.decoder(z), x_reconstructed), "could not reproduce the seed's eps"
    save_grads(model, x, eps.detach(), loss, os.path.join(HERE, "seed_vae_grads.safetensors"),
               {"reduction": "sum", "beta": 1.0})


def kim_mnih_vae():
    torch.manual_seed(4)
    model = kim_mnih(c=1, s=64, d=10)
    save(os.path.join(HERE, "kim_mnih_vae.safetensors"), model.state_dict())
    binary = (torch.rand(3, 1, 64, 64) > 0.7).float()  # dSprites-like pixels, exactly 0 or 1
    grey = torch.rand(3, 1, 64, 64)
    x = torch.where(torch.rand(3, 1, 64, 64) < 0.5, binary, grey)
    eps = torch.randn(3, 10)
    settings = {"reduction": "sum", "beta": 1.0}
    save_grads(model, x, eps, objective(model, x, eps, **settings),
               os.path.join(HERE, "kim_mnih_vae_grads.safetensors"), settings)


def factor_vae():
    torch.manual_seed(2)
    model = kim_mnih(c=1, s=32, d=4, hidden=32, layers=6)
    save(os.path.join(HERE, "factor_vae.safetensors"), model.state_dict())
    x = torch.rand(5, 1, 32, 32)
    eps = torch.randn(5, 4)
    settings = {"reduction": "mean", "beta": 1.0, "gamma": 6.4}
    save_grads(model, x, eps, objective(model, x, eps, **settings),
               os.path.join(HERE, "factor_vae_grads.safetensors"), settings)


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
    """Loads a checkpoint elbo wrote into the PyTorch model (strict) and evaluates it on a zero image.

    The network comes from the metadata's `arch` ("seed", "seed-v0" or "kim-mnih"); metadata written
    before `arch` existed (it has `kind` but no `arch`) describes seed-v0; without metadata the tensors
    say it: encoder.conv4.weight present -> kim-mnih, else seed. C, S and D come from the metadata, or
    from the shapes; the discriminator's width from the metadata or discriminator.net.0.weight, its
    depth from the number of discriminator.net.*.weight tensors."""
    tensors, metadata = load(path)
    state = {n: t for n, t in tensors.items() if not n.startswith("optimizer.")}
    if "arch" in metadata:
        arch = metadata["arch"]
    elif "kind" in metadata:
        arch = "seed-v0"
    else:
        arch = "kim-mnih" if "encoder.conv4.weight" in state else "seed"
    if arch not in ("seed", "seed-v0", "kim-mnih"):
        sys.exit(f"{path}: unknown arch '{arch}'")
    if "channels" in metadata:
        c, s, d = int(metadata["channels"]), int(metadata["image_size"]), int(metadata["latent"])
    else:  # the shapes say it, as elbo infers it
        c, d = state["encoder.conv1.weight"].shape[1], state["encoder.fc_mu.weight"].shape[0]
        first_fc, channels, down = (("encoder.fc.weight", 64, 16) if arch == "kim-mnih"
                                    else ("encoder.fc_mu.weight", 128, 8))
        s = down * round((state[first_fc].shape[1] / channels) ** 0.5)
    hidden, layers = None, 0
    if "discriminator.net.0.weight" in state:
        hidden = int(metadata.get("discriminator_hidden", state["discriminator.net.0.weight"].shape[0]))
        layers = sum(1 for n in state if n.startswith("discriminator.net.") and n.endswith(".weight")) - 1
    if arch == "kim-mnih":
        model = kim_mnih(c, s, d, hidden, layers)
    else:
        model = seed_general(c, s, d, relu_after_fc=(arch == "seed-v0"), hidden=hidden, layers=layers)
    model.load_state_dict(state, strict=True)
    beta, gamma = float(metadata.get("beta", 1)), float(metadata.get("gamma", 0)) if hidden else 0.0
    with torch.no_grad():
        loss = objective(model, torch.zeros(1, c, s, s), torch.zeros(1, d), beta=beta, gamma=gamma)
    print(f"PyTorch loaded {path} ({metadata.get('kind', 'no metadata')}, arch {arch}, C {c}, S {s}, D {d}"
          + (f", discriminator {hidden} x {layers}" if hidden else "")
          + f", {len(state)} tensors); loss on a zero image (beta {beta}, gamma {gamma}) {loss.item():.6f}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--load":
        load_in_pytorch(sys.argv[2])
    else:
        seed_vae()
        kim_mnih_vae()
        factor_vae()
        optimizers()
