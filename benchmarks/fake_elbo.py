#!/usr/bin/python3
"""A stand-in for build/bin/elbo, to test benchmarks/study.py without training anything.

    /usr/bin/python3 benchmarks/study.py --elbo benchmarks/fake_elbo.py \\
        --config benchmarks/study_test.json --out /tmp/study/runs --docs /tmp/study/docs

It implements the subset of the CLI the study drives, with made-up but plausible numbers:

    train --model M --data D --seed K --steps N --threads T --batch B --out RUN
          --checkpoint-every C --log-every L [--beta B] [--gamma G] [--arch A] [--latent D] [--time-limit S]
    train --resume RUN/checkpoint.safetensors --steps N [--threads T] [--checkpoint-every C] [--time-limit S]
    eval --checkpoint CK --data D --seed S --threads T [--images N ...]
    traverse --checkpoint CK --out FILE.png
    plot --in SPEC.json --out FILE.svg

A step takes FAKE_ELBO_STEP_SECONDS (0.2) and an evaluation FAKE_ELBO_EVAL_SECONDS (0.3). The
numbers of a step depend only on (model, seed, step), so a resumed run writes the metrics an
uninterrupted one would. The checkpoint is a real safetensors file (one tiny tensor) with the
metadata elbo writes. Ctrl-C finishes the step, saves and exits 130, as elbo does. `plot` checks
the spec and writes a placeholder SVG listing the series.
"""

import json
import math
import os
import random
import signal
import struct
import sys
import time

STEP_SECONDS = float(os.environ.get("FAKE_ELBO_STEP_SECONDS", "0.2"))
EVAL_SECONDS = float(os.environ.get("FAKE_ELBO_EVAL_SECONDS", "0.3"))

interrupted = False


def fail(op, message):
    """elbo's one-line error and exit status 1."""
    print(f"elbo: {op}: {message}", file=sys.stderr)
    sys.exit(1)


def parse(op, argv, flags, switches=()):
    """--flag value pairs (and value-less switches) into a dict; anything else is an error."""
    values = {}
    i = 0
    while i < len(argv):
        flag = argv[i]
        if flag in switches:
            values[flag] = True
            i += 1
        elif flag in flags and i + 1 < len(argv):
            values[flag] = argv[i + 1]
            i += 2
        else:
            fail(op, f"unknown or incomplete flag '{flag}'")
    return values


def write_atomically(path, data):
    """bytes or text to path through a temporary file and a rename."""
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
    os.replace(tmp, path)


def write_checkpoint(path, metadata):
    """A safetensors file: 8-byte little-endian header length, JSON header, one float32."""
    header = {"__metadata__": metadata, "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    write_atomically(path, struct.pack("<Q", len(text)) + text + struct.pack("<f", 1.0))


def read_metadata(path):
    """The checkpoint's metadata."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            return json.loads(f.read(n))["__metadata__"]
    except (OSError, ValueError, KeyError, struct.error) as e:
        fail("checkpoint", f"cannot read '{path}' ({e})")


def step_numbers(kind, seed, step, latent):
    """Made-up losses of one step: falling with the step, a little noise from (seed, step)."""
    rng = random.Random(f"{kind}/{seed}/{step}")
    progress = 1 - math.exp(-step / 3.0)
    beta = {"vae": 1.0, "beta-vae": 4.0, "factor-vae": 1.0}[kind]
    recon = 160 - 90 * progress / math.sqrt(beta) + rng.gauss(0, 1)
    kls = [max(0.0, (25 / latent) * progress * (1.2 if j < 5 else 0.02) / math.sqrt(beta) + rng.gauss(0, 0.01))
           for j in range(latent)]
    kl = sum(kls)
    row = {"loss": recon + beta * kl, "recon": recon, "kl": kl, "tc": 0.0, "discriminator_loss": 0.0,
           "d_accuracy_real": 0.0, "d_accuracy_permuted": 0.0}
    if kind == "factor-vae":
        row.update(tc=max(0.0, 2.0 - progress + rng.gauss(0, 0.1)), discriminator_loss=1.38 + rng.gauss(0, 0.01),
                   d_accuracy_real=0.5 + rng.gauss(0, 0.02), d_accuracy_permuted=0.52 + rng.gauss(0, 0.02))
    return row, kls


def on_interrupt(signum, frame):
    """Ctrl-C: finish the step, save, stop."""
    global interrupted
    interrupted = True


def train(argv):
    """A run: fresh or resumed, to --steps, stopping at --time-limit or Ctrl-C with a checkpoint."""
    o = parse("train", argv, ["--model", "--data", "--seed", "--steps", "--threads", "--batch", "--out",
                              "--checkpoint-every", "--log-every", "--beta", "--gamma", "--arch", "--latent",
                              "--resume", "--time-limit", "--lr"])
    if "--resume" in o:
        for flag in ["--model", "--data", "--seed", "--batch", "--beta", "--gamma", "--arch", "--latent", "--lr",
                     "--log-every"]:
            if flag in o:
                fail("train", f"{flag} comes from the checkpoint when resuming; leave it out")
        metadata = read_metadata(o["--resume"])
        options = json.loads(metadata["train"])
        out = o.get("--out", os.path.dirname(o["--resume"]))
        step = int(metadata["step"])
        seconds_before = float(metadata["seconds"])
        kind, latent, arch = metadata["kind"], int(metadata["latent"]), metadata["arch"]
        beta, gamma = metadata["beta"], metadata["gamma"]
        options["steps"] = int(o.get("--steps", options["steps"]))
        options["threads"] = int(o.get("--threads", options["threads"]))
        checkpoint_every = int(o.get("--checkpoint-every", options["checkpoint_every"]))
        with open(os.path.join(out, "metrics.csv"), encoding="utf-8") as f:
            lines = f.read().splitlines()
        kept = [lines[0]] + [l for l in lines[1:] if l.count(",") == lines[0].count(",")
                             and int(l.split(",")[0]) <= step]
        metrics_text = "\n".join(kept) + "\n"
    else:
        kind = o.get("--model", "vae")
        if kind not in ("vae", "beta-vae", "factor-vae"):
            fail("train", f"--model must be vae, beta-vae or factor-vae, got '{kind}'")
        out = o.get("--out", f"runs/{kind}")
        if os.path.exists(os.path.join(out, "checkpoint.safetensors")):
            fail("train", f"'{out}' already holds a run (checkpoint.safetensors); continue it with --resume")
        latent = int(o.get("--latent", "10"))
        arch = o.get("--arch", "seed")
        beta = o.get("--beta", "4" if kind == "beta-vae" else "1")
        gamma = o.get("--gamma", "35" if kind == "factor-vae" else "0")
        options = {"model": kind, "data": o.get("--data", "fashion-mnist"), "latent": latent,
                   "batch": int(o.get("--batch", "64")), "steps": int(o.get("--steps", "1000")),
                   "lr": float(o.get("--lr", "0.0001" if kind == "factor-vae" else "0.001")),
                   "seed": int(o.get("--seed", "0")), "checkpoint_every": int(o.get("--checkpoint-every", "1000")),
                   "log_every": int(o.get("--log-every", "10")), "threads": int(o.get("--threads", "0"))}
        checkpoint_every = options["checkpoint_every"]
        step, seconds_before = 0, 0.0
        os.makedirs(out, exist_ok=True)
        write_atomically(os.path.join(out, "config.json"), json.dumps(
            {"model": {"kind": kind, "arch": arch, "latent": latent, "beta": float(beta), "gamma": float(gamma)},
             "train": options}, indent=2) + "\n")
        header = ("step,loss,recon,kl,tc,discriminator_loss,d_accuracy_real,d_accuracy_permuted,lr,seconds,"
                  + ",".join(f"kl_{j}" for j in range(latent)))
        metrics_text = header + "\n"
    write_atomically(os.path.join(out, "metrics.csv"), metrics_text)
    time_limit = float(o.get("--time-limit", "0"))
    start = time.monotonic()
    checkpoint = os.path.join(out, "checkpoint.safetensors")

    def save():
        write_checkpoint(checkpoint, {"step": str(step), "seconds": f"{seconds_before + time.monotonic() - start:.3f}",
                                      "arch": arch, "kind": kind, "latent": str(latent), "beta": str(beta),
                                      "gamma": str(gamma), "train": json.dumps(options)})

    signal.signal(signal.SIGINT, on_interrupt)
    print(f"elbo: training {kind} on {options['data']} for {options['steps']} steps into {out}", file=sys.stderr)
    with open(os.path.join(out, "metrics.csv"), "a", encoding="utf-8") as metrics:
        while step < options["steps"]:
            time.sleep(STEP_SECONDS)
            step += 1
            if step % options["log_every"] == 0 or step == options["steps"]:
                row, kls = step_numbers(kind, options["seed"], step, latent)
                seconds = seconds_before + time.monotonic() - start
                metrics.write(f"{step}," + ",".join(f"{row[k]:.6g}" for k in row) + f",{options['lr']},{seconds:.3f},"
                              + ",".join(f"{v:.6g}" for v in kls) + "\n")
                metrics.flush()
            out_of_time = time_limit > 0 and time.monotonic() - start >= time_limit
            if step % checkpoint_every == 0 or step == options["steps"] or interrupted or out_of_time:
                save()
            if interrupted or out_of_time:
                print(f"elbo: {'interrupted' if interrupted else 'time limit reached'} at step {step}; checkpoint "
                      f"written. Continue with: elbo train --resume {checkpoint}", file=sys.stderr)
                sys.exit(130 if interrupted else 0)
    if step == options["steps"] and not os.path.exists(checkpoint):
        save()
    print(f"elbo: done. {out} holds checkpoint.safetensors and metrics.csv", file=sys.stderr)


def evaluate(argv):
    """Made-up metrics that grow with the step, FactorVAE above β-VAE above VAE."""
    o = parse("eval", argv, ["--checkpoint", "--data", "--seed", "--threads", "--images", "--iw-images",
                             "--iw-samples", "--train-votes", "--eval-votes", "--global-images", "--mig-images"])
    metadata = read_metadata(o["--checkpoint"])
    kind, step, latent = metadata["kind"], int(metadata["step"]), int(metadata["latent"])
    seed = json.loads(metadata["train"])["seed"]
    rng = random.Random(f"eval/{kind}/{seed}/{step}/{o.get('--seed')}")
    progress = 1 - math.exp(-step / 3.0)
    top = {"vae": 0.55, "beta-vae": 0.70, "factor-vae": 0.80}[kind]
    row, kls = step_numbers(kind, seed, step, latent)
    time.sleep(EVAL_SECONDS)
    settings = {"images": int(o.get("--images", 10000)), "iw_images": int(o.get("--iw-images", 1000)),
                "iw_samples": int(o.get("--iw-samples", 100)), "train_votes": int(o.get("--train-votes", 10000)),
                "eval_votes": int(o.get("--eval-votes", 5000)), "global_images": int(o.get("--global-images", 10000)),
                "mig_images": int(o.get("--mig-images", 10000)), "batch_size": 64}
    recon, kl = row["recon"] + rng.gauss(0, 0.5), row["kl"] + rng.gauss(0, 0.2)
    print(json.dumps({"checkpoint": o["--checkpoint"], "data": o.get("--data", "dsprites"), "images": 10000,
                      "elbo": -(recon + kl), "recon": recon, "kl": kl, "nll_iw": recon + kl - 3 + rng.gauss(0, 0.3),
                      "iw_samples": settings["iw_samples"], "iw_images": settings["iw_images"],
                      "active_dims": sum(v > 0.05 for v in kls), "latent": latent,
                      "factorvae_metric": min(1.0, 0.3 + (top - 0.3) * progress + rng.gauss(0, 0.03)),
                      "mig": max(0.0, 0.25 * progress * top + rng.gauss(0, 0.02)), "settings": settings}))


def traverse(argv):
    """A 1 x 1 grey PNG and one JSON line."""
    import zlib
    o = parse("traverse", argv, ["--checkpoint", "--out", "--index", "--rows", "--steps", "--range", "--seed",
                                 "--data"])
    metadata = read_metadata(o["--checkpoint"])

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))
    write_atomically(o["--out"], png)
    latent = int(metadata["latent"])
    print(json.dumps({"checkpoint": o["--checkpoint"], "index": 0, "latents": list(range(min(10, latent))),
                      "out": o["--out"]}))


def plot(argv):
    """Checks the spec as elbo plot would and writes a placeholder SVG naming what it would draw."""
    o = parse("plot", argv, ["--in", "--out"])
    with open(o["--in"], encoding="utf-8") as f:
        spec = json.load(f)
    for key in ["title", "x_label", "y_label", "series"]:
        if key not in spec:
            fail("plot", f"the spec has no '{key}'")
    text = []
    for s in spec["series"]:
        if set(s) - {"name", "x", "y", "y_error", "style"}:
            fail("plot", f"series '{s.get('name')}' has unknown keys")
        if len(s["x"]) != len(s["y"]) or not s["x"]:
            fail("plot", f"series '{s['name']}': x and y must be non-empty and of one length")
        if "y_error" in s and len(s["y_error"]) != len(s["y"]):
            fail("plot", f"series '{s['name']}': y_error must be as long as y")
        if s.get("style", "line") not in ("line", "points", "line+points"):
            fail("plot", f"series '{s['name']}': style must be line, points or line+points")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in s["x"] + s["y"] + s.get("y_error", [])):
            fail("plot", f"series '{s['name']}': every value must be a finite number")
        text.append(f"{s['name']}: " + ", ".join(f"({x:g}, {y:.3g})" for x, y in zip(s["x"], s["y"])))
    lines = "".join(f'<text x="10" y="{40 + 20 * i}">{t}</text>' for i, t in enumerate(text))
    write_atomically(o["--out"], f'<svg xmlns="http://www.w3.org/2000/svg" width="640" height="240">'
                                 f'<text x="10" y="20">{spec["title"]} ({spec["y_label"]} against '
                                 f'{spec["x_label"]})</text>{lines}</svg>\n')


def main():
    """Dispatches on the subcommand."""
    commands = {"train": train, "eval": evaluate, "traverse": traverse, "plot": plot}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        fail("fake_elbo", f"the subcommand must be one of {', '.join(commands)}")
    commands[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    main()
