#!/usr/bin/python3
"""The models of a study, for release: for each model elbo trained in the study (PyTorch's runs are
compared, not shipped), the run of the seed that scores best on the FactorVAE metric at its
checkpoint's step is exported (`elbo export --without-discriminator`: weights only, float32, with
the checkpoint's metadata and the study's added: model, seed, steps, data, commit, scores) as
OUT/<model>.safetensors, re-evaluated from that file with another seed (`elbo eval --seed`), and
listed in OUT/README.md with both scores and the FactorVAE metric's standard error.

    benchmarks/ship_models.py --results docs/results.json --elbo build/bin/elbo --out models

The results are the study script's results.json (benchmarks/study.py); the runs are the folders it
names. A model none of whose runs is evaluated at its checkpoint's step is left out, and said so.
Python 3 standard library only; every file is written to a temporary file and renamed into place.
Errors are one line on stderr, `ship_models: ...`, and exit status 1.
"""
import argparse
import hashlib
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import study  # noqa: E402  (its file helpers: write_atomically, read_json, shown_path)

ROOT = study.REPO


class ShipError(Exception):
    pass


def run(command):
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
        raise ShipError(f"{' '.join(command[:2])} failed (exit status {done.returncode}): {last}")
    return done.stdout


def metric_se(score, votes):
    """The standard error of a majority-vote classifier's accuracy over `votes` evaluation votes."""
    return math.sqrt(max(score * (1 - score), 0.0) / votes) if votes else None


def best_runs(results):
    """{model name: (the run entry, its evaluation at the checkpoint's step)}, elbo's models only:
    of the runs evaluated at their checkpoint's step, those trained furthest, and of those the seed
    with the highest FactorVAE metric (the lowest seed on a tie); and the models left out."""
    config = {m["name"]: m for m in results["config"]["models"]}
    evals = {(e["model"], e["seed"], e["step"]): e for e in results["evaluations"]}
    best, left_out = {}, []
    for name, model in config.items():
        if model.get("trainer", "elbo") != "elbo":
            continue
        candidates = [(r, evals[(name, r["seed"], r["checkpoint_step"])]) for r in results["runs"]
                      if r["model"] == name and (name, r["seed"], r["checkpoint_step"]) in evals]
        if not candidates:
            left_out.append(name)
            continue
        furthest = max(r["checkpoint_step"] for r, _ in candidates)
        for r, e in candidates:
            if "factorvae_metric" not in e["eval"]:
                raise ShipError(f"the evaluation of {name} seed {r['seed']} has no FactorVAE metric (not dSprites?)")
        best[name] = min(((r, e) for r, e in candidates if r["checkpoint_step"] == furthest),
                         key=lambda c: (-c[1]["eval"]["factorvae_metric"], c[0]["seed"]))
    return best, left_out


def training_commit(study_run):
    """The commit of a run's last training, "+changes" where its tree was dirty."""
    last = (study_run.get("continuations") or [study_run["first_training"]])[-1]
    return last["commit"] + ("+changes" if last.get("dirty") else "")


def ship(results_path, elbo, out, check_seed):
    results = study.read_json(results_path)
    for key in ("config", "runs", "evaluations"):
        if key not in results:
            raise ShipError(f"{results_path} is not a study's results.json: it has no '{key}'")
    best, left_out = best_runs(results)
    if not best:
        raise ShipError(f"{results_path}: no model of elbo's has a run evaluated at its checkpoint's step")
    os.makedirs(out, exist_ok=True)
    labels = {m["name"]: m for m in results["config"]["models"]}
    rows = []
    for name, (r, e) in best.items():
        folder = r["folder"] if os.path.isabs(r["folder"]) else os.path.join(ROOT, r["folder"])
        checkpoint = os.path.join(folder, "checkpoint.safetensors")
        ev = e["eval"]
        commit = training_commit(r["study_run"])
        target = os.path.join(out, f"{name}.safetensors")
        meta = {"model": name, "setting": labels[name]["setting"], "seed": r["seed"], "steps": r["checkpoint_step"],
                "data": results["config"]["data"], "commit": commit,
                "factorvae_metric": ev["factorvae_metric"], "mig": ev["mig"], "elbo": ev["elbo"],
                "eval_seed": ev["settings"]["seed"]}
        run([elbo, "export", "--checkpoint", checkpoint, "--out", target] +
            (["--without-discriminator"] if r["kind"] == "factor-vae" else []) +
            [a for k, v in meta.items() for a in ("--meta", f"{k}={v}")])
        # Scored again as the study scored it (its eval flags), with other draws.
        again = json.loads(run([elbo, "eval", "--checkpoint", target, "--seed", str(check_seed)] +
                               results["config"]["eval_flags"]))
        with open(target, "rb") as f:
            data = f.read()
        votes = ev["settings"]["factorvae_metric"]["eval_votes"]
        rows.append({"name": name, "label": labels[name]["label"], "setting": labels[name]["setting"],
                     "seed": r["seed"], "steps": r["checkpoint_step"], "commit": commit,
                     "metric": ev["factorvae_metric"], "se": metric_se(ev["factorvae_metric"], votes),
                     "eval_seed": ev["settings"]["seed"], "again": again["factorvae_metric"], "check_seed": check_seed,
                     "mig": ev["mig"], "mig_again": again["mig"], "neg_elbo": -ev["elbo"],
                     "megabytes": len(data) / 1e6, "sha256": hashlib.sha256(data).hexdigest()})
    study.write_atomically(os.path.join(out, "README.md"), readme(rows, left_out, results, results_path, out))
    return rows, left_out


def readme(rows, left_out, results, results_path, out):
    def f(x, digits=3):
        return "–" if x is None else f"{x:.{digits}f}"
    lines = [
        "# The trained models",
        "",
        f"Written by benchmarks/ship_models.py from the study in {study.shown_path(results_path)} "
        f"({results['study']}): for each model, of its runs trained furthest, the one of the seed that "
        "scores best on the FactorVAE metric at its last checkpoint, weights only (float32, no optimizer state, no discriminator), "
        "with the metadata elbo writes (kind, arch, β, γ, the training settings) and the study's "
        "(model, setting, seed, steps, data, commit, scores). The FactorVAE metric is scored as the "
        "study scored it, with its standard error over the evaluation votes; then again from this "
        "file with another seed (other votes, other images), which should agree within about two "
        "standard errors.",
        "",
        "| file | model | setting | seed | steps | FactorVAE metric (± se) | again, other seed | MIG | −ELBO | MB | sha256 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['name']}.safetensors | {r['label']} | {r['setting']} | {r['seed']} | {r['steps']:,} | "
                     f"{f(r['metric'])} ± {f(r['se'])} (seed {r['eval_seed']}) | {f(r['again'])} (seed {r['check_seed']}) | "
                     f"{f(r['mig'])} | {f(r['neg_elbo'], 1)} | {r['megabytes']:.1f} | {r['sha256'][:12]} |")
    if left_out:
        lines += ["", f"Not shipped (no run evaluated at its checkpoint's step): {', '.join(left_out)}."]
    first = next((r["name"] for r in rows if r["name"] == "factor-vae"), rows[0]["name"])
    lines += [
        "",
        "Score one again, draw from it, or see what its latents do (no training):",
        "",
        "```sh",
        f"build/bin/elbo eval --checkpoint {study.shown_path(out)}/{first}.safetensors --seed 1",
        f"build/bin/elbo traverse --checkpoint {study.shown_path(out)}/{first}.safetensors --out traversal.png",
        "```",
        "",
        "From PyTorch, by name: docs/checkpoints.md.",
        "",
    ]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=os.path.join(ROOT, "docs", "results.json"))
    p.add_argument("--elbo", default=os.path.join(ROOT, "build", "bin", "elbo"))
    p.add_argument("--out", default=os.path.join(ROOT, "models"))
    p.add_argument("--check-seed", type=int, default=1, help="the seed of the second evaluation (default 1)")
    a = p.parse_args()
    try:
        rows, left_out = ship(a.results, a.elbo, a.out, a.check_seed)
    except (ShipError, study.StudyError) as e:
        sys.exit(f"ship_models: {e}")
    except OSError as e:
        sys.exit(f"ship_models: {e.filename or a.results}: {e.strerror}")
    except (KeyError, TypeError, IndexError) as e:
        sys.exit(f"ship_models: {a.results} is not a complete results.json of benchmarks/study.py ({type(e).__name__}: {e})")
    for r in rows:
        print(f"ship_models: {r['name']}: seed {r['seed']}, {r['steps']:,} steps, FactorVAE metric "
              f"{r['metric']:.3f} (seed {r['eval_seed']}), {r['again']:.3f} again (seed {r['check_seed']})")
    for name in left_out:
        print(f"ship_models: {name}: not shipped (no run evaluated at its checkpoint's step)")


if __name__ == "__main__":
    main()
