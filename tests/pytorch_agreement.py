#!/usr/bin/env python3
"""The first 100 steps of elbo and of benchmarks/pytorch_train.py, side by side: the same initial
weights (elbo's, read by PyTorch), the same images in the same order, the same ε and permutations
(elbo's Philox draws, made again in Python), both in float32.

- Steps 1 to 10: every metrics.csv term within 1e-4 relative (tc, a difference of logits near 0,
  within 1e-4 of max(|tc|, 1)); the discriminator's accuracies (counts of 16 codes, where a
  near-tie of two logits may fall either way) within one code. A different algorithm (an ε
  of another image, a permutation along the wrong axis, a missing ReLU, another reduction) shows
  from the first step; the first step agrees to about 1e-7.
- Steps 1 to 100: the loss within 1e-2 relative. Two float32 runs of one algorithm part slowly:
  Adam's first steps move a weight by about lr in the direction of its gradient's sign, and where
  a gradient is near zero the two sums' rounding picks different signs; the discriminator (Adam's
  β2 = 0.9) parts first. With --referee, PyTorch also trains in float64 and the test prints how
  far each float32 run is from it (docs/pytorch.md has the table).

Then `elbo sample` reads PyTorch's checkpoint (elbo's layout and names).

    pytorch_agreement.py [--referee] ELBO [PYTHON ...]

PYTHON: interpreters to try for PyTorch (the benchmarks' virtual environment, Debian's); where none
imports torch, the test prints why and exits 77 (ctest: skipped).
"""

import csv
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TRAIN = os.path.join(HERE, "..", "benchmarks", "pytorch_train.py")
TERMS = ["loss", "recon", "kl", "tc", "discriminator_loss", "d_accuracy_real", "d_accuracy_permuted", "lr"]


def torch_python(candidates):
    for python in candidates:
        if not os.path.exists(python):
            continue
        probe = subprocess.run([python, "-c", "import torch, numpy; print(torch.__version__)"], capture_output=True,
                               text=True)
        if probe.returncode == 0:
            return python, probe.stdout.strip()
    return None, None


def run(command):
    # Waiting threads sleep: ctest runs other tests beside this one, and spinning OpenMP threads on
    # shared cores made elbo ten times slower.
    r = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    if r.returncode != 0:
        sys.exit(f"FAILED: {' '.join(command)}\n{r.stdout}\n{r.stderr}")
    return r


def rows(path):
    with open(path) as f:
        return {int(r["step"]): r for r in csv.DictReader(f)}


def main():
    args = sys.argv[1:]
    referee = "--referee" in args
    args = [x for x in args if x != "--referee"]
    elbo, candidates = args[0], args[1:] or [sys.executable]
    python, version = torch_python(candidates)
    if not python:
        print(f"skipped: none of {candidates} imports torch and numpy (make bench-deps installs PyTorch 2.x into "
              f"build/bench-venv; Debian's python3-torch also serves)")
        return 77
    print(f"PyTorch {version} under {python}")
    work = tempfile.mkdtemp(prefix="elbo-pytorch-agreement-")
    try:
        data = os.path.join(work, "data.idx")
        run([elbo, "data", "--data", "dsprites", "--count", "2048", "--seed", "5", "--idx", data])
        failures = []
        # The seed network at the paper's rate (its own default, 1e-3, parts the runs sooner).
        for model, arch in [("factor-vae", "kim-mnih"), ("vae", "seed")]:
            common = ["--model", model, "--arch", arch, "--latent", "10", "--batch", "16", "--seed", "3",
                      "--lr", "1e-4", "--log-every", "1"]
            init = os.path.join(work, f"{model}-init")
            run([elbo, "train", *common, "--data", f"idx:{data}", "--steps", "0", "--threads", "2", "--out", init])
            ours = os.path.join(work, f"{model}-elbo")
            run([elbo, "train", *common, "--data", f"idx:{data}", "--steps", "100", "--threads", "2",
                 "--checkpoint-every", "100", "--out", ours])
            theirs = os.path.join(work, f"{model}-torch")
            run([python, TRAIN, *common, "--data", data, "--data-name", f"idx:{data}", "--steps", "100",
                 "--threads", "2", "--init", os.path.join(init, "checkpoint.safetensors"), "--out", theirs])
            a, b = rows(os.path.join(ours, "metrics.csv")), rows(os.path.join(theirs, "metrics.csv"))
            if sorted(a) != list(range(1, 101)) or sorted(b) != sorted(a):
                failures.append(f"{model}: steps logged: elbo {sorted(a)[:3]}..., PyTorch {sorted(b)[:3]}...")
                continue
            worst_early, worst_loss = (0.0, ""), (0.0, "")
            for step in a:
                for term in TERMS:
                    x, y = float(a[step][term]), float(b[step][term])
                    difference = abs(x - y) / max(abs(x), 1.0 if term == "tc" else 1e-3)
                    if term.startswith("d_accuracy"):  # a count of 16: a near-tie may fall either way
                        difference = float(abs(x - y) > 1 / 16 + 1e-9)
                    where = f"step {step} {term}: elbo {x}, PyTorch {y}"
                    if step <= 10 and difference > worst_early[0]:
                        worst_early = (difference, where)
                    if term == "loss" and difference > worst_loss[0]:
                        worst_loss = (difference, where)
            print(f"{model} ({arch}): steps 1-10, every term: {worst_early[0]:.2e} ({worst_early[1]}); "
                  f"steps 1-100, the loss: {worst_loss[0]:.2e} ({worst_loss[1]})")
            if worst_early[0] > 1e-4:
                failures.append(f"{model}: {worst_early[1]}, relative difference {worst_early[0]:.2e} > 1e-4")
            if worst_loss[0] > 1e-2:
                failures.append(f"{model}: {worst_loss[1]}, relative difference {worst_loss[0]:.2e} > 1e-2")
            if referee:
                exact = os.path.join(work, f"{model}-torch-float64")
                run([python, TRAIN, *common, "--data", data, "--data-name", f"idx:{data}", "--steps", "100",
                     "--threads", "2", "--init", os.path.join(init, "checkpoint.safetensors"), "--double",
                     "--out", exact])
                c = rows(os.path.join(exact, "metrics.csv"))
                print(f"| step | term | elbo float32 vs PyTorch float64 | PyTorch float32 vs PyTorch float64 |")
                for step in (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100):
                    for term in ("loss", "kl", "tc", "discriminator_loss"):
                        z = float(c[step][term])
                        scale = max(abs(z), 1.0 if term == "tc" else 1e-3)
                        print(f"| {step} | {term} | {abs(float(a[step][term]) - z) / scale:.1e} | "
                              f"{abs(float(b[step][term]) - z) / scale:.1e} |")
            # elbo reads PyTorch's checkpoint: its layout, names and metadata.
            run([elbo, "sample", "--checkpoint", os.path.join(theirs, "checkpoint.safetensors"), "--count", "4",
                 "--out", os.path.join(work, f"{model}-samples.png")])
        for f in failures:
            print("FAILED:", f)
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
