#!/usr/bin/python3
"""The study: models x seeds trained with `elbo`, evaluated at a schedule of steps, and the page.

    /usr/bin/python3 benchmarks/study.py                     # train, evaluate, write docs/results.md
    /usr/bin/python3 benchmarks/study.py --time-limit 3600   # at most an hour, then stop cleanly
    /usr/bin/python3 benchmarks/study.py --report-only       # only rewrite the page from what is there

Options: --config FILE (benchmarks/study.json), --elbo BINARY (build/bin/elbo), --out FOLDER
(runs/study), --docs FOLDER (docs), --time-limit SECONDS (none), --report-only, --share I/N.

What it does, in order:

1. Reads and checks the config (benchmarks/study.json: the models, their flags, the seeds, the
   steps to evaluate at, the batch, the threads, the flags for `elbo eval`).
2. Unless --report-only: for each step in eval_at, for each model, for each seed (breadth first,
   so a study stopped anywhere has every model at the same stage) it brings the run
   OUT/<model>-s<seed> to that step (`elbo train`, a fresh run or `--resume`) and evaluates it
   there once (`elbo eval` with the run's seed, its output kept as RUN/eval-<step>.json).
   Everything already done is skipped, so running it again continues the study. With
   --time-limit it passes the seconds left to `elbo train --time-limit` (elbo then stops after
   the step that crosses them, with a checkpoint), kills an evaluation that would run past them
   (it is redone next time), and says where the study stands. Ctrl-C lets elbo finish its step
   and save, then stops. Each run's RUN/study-run.json records the commit (of the elbo binary: its
   --version, or a file ELBO.commit beside an older one) and the CPU of its first training and of
   every continuation; a config whose training settings differ from those recorded there is
   refused.
3. Always (unless Ctrl-C or an error stopped it): writes DOCS/results.md, DOCS/results.json and the pictures in
   DOCS/images/ (study-factorvae-metric.svg, study-mig.svg, study-tradeoff.svg through
   `elbo plot`, traversal-<model>.png through `elbo traverse`) from the numbers in the run
   folders alone, so the page never says more than they do.

Under MPI (`mpirun -np N python3 benchmarks/study.py ...`, or srun), the N processes share the
runs: run i of the models x seeds (in the config's order) belongs to process i mod N, which trains
and evaluates it through every step of eval_at with its own `elbo` (started as one process, with
the config's threads). Each process says when it is done in OUT/.ranks/<job>/; process 0 waits for
them all and writes the one page and results.json from the run folders, as one process would.

Without MPI, `--share I/N` gives this process the same share of the runs (run i when i mod N == I),
so that N studies started side by side on one machine (each with the config's threads) split
the runs between them: on two cores, two one-thread studies trained FactorVAE at 5.6-7.1 steps/s
in all against 4.9-5.3 for one two-thread study. The odd shares (and MPI's odd processes) take the
models in reverse order, so that two side by side train different models at a time. Shares wait
for nobody: each writes the page from the run folders when its own runs are done, so the last one
to finish writes the whole.

A model with "trainer": "pytorch" is trained by benchmarks/pytorch_train.py instead (the same
flags, under --python, default build/bench-venv/bin/python), on elbo's images (--torch-images, by
default OUT/images.idx, written once by `elbo data --all --idx`), in elbo's order, with elbo's
draws; its checkpoints are evaluated by `elbo eval` like elbo's, and its rows sit beside elbo's on
the page (docs/pytorch.md). It starts from PyTorch's own initial weights for its seed, or, with
"init": "elbo", from the weights elbo's run of the same seed starts from (`elbo train --steps 0`,
kept in RUN/elbo-init): then the two runs differ only in the arithmetic.

To try it in seconds: --config benchmarks/study_test.json with an --out and --docs under /tmp
(tests/study_test.py does, in `make test`).

Python 3 standard library only. Every file it writes is written to a temporary file in the same
folder and renamed into place. Errors are one line on stderr, `study: ...`, and exit status 1.
"""

import argparse
import csv
import datetime
import json
import math
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, "benchmarks", "study.json")
DEFAULT_ELBO = os.path.join(REPO, "build", "bin", "elbo")
DEFAULT_OUT = os.path.join(REPO, "runs", "study")
DEFAULT_DOCS = os.path.join(REPO, "docs")

# Set by main: the Python that runs PyTorch's trainer and the images it reads.
TOOLS = {"python": None, "torch_images": None}

CITATION = 'Kim, H. and Mnih, A. (2018), "Disentangling by Factorising", ICML 2018'

# Seconds below which no new action is started under --time-limit.
MIN_SECONDS = 1.0

# The keys of the config and of each model in it, all required.
CONFIG_KEYS = ["name", "data", "threads", "batch", "checkpoint_every", "log_every", "seeds", "eval_at",
               "eval_flags", "models"]
MODEL_KEYS = ["name", "label", "setting", "flags", "paper_factorvae_metric"]
OPTIONAL_MODEL_KEYS = ["trainer", "init"]  # trainer: "elbo" (the default) or "pytorch": benchmarks/pytorch_train.py
TRAINERS = ["elbo", "pytorch"]
PYTORCH_ONLY_FLAGS = ["--draws", "--double", "--init"]  # pytorch_train.py's, which elbo train has not
INITS = ["own", "elbo"]  # a PyTorch run's initial weights: PyTorch's own (the default) or elbo's, same seed
PYTORCH_TRAIN = os.path.join(REPO, "benchmarks", "pytorch_train.py")
DEFAULT_PYTHON = os.path.join(REPO, "build", "bench-venv", "bin", "python")

# Flags the script sets itself, so a model's flags or eval_flags may not.
TRAIN_FLAGS_OWNED = ["--data", "--seed", "--steps", "--epochs", "--threads", "--batch", "--out", "--resume",
                     "--checkpoint-every", "--log-every", "--time-limit"]
EVAL_FLAGS_OWNED = ["--checkpoint", "--data", "--seed", "--threads"]

# What `elbo eval` must print.
EVAL_KEYS = ["elbo", "recon", "kl", "nll_iw", "active_dims", "latent", "factorvae_metric", "mig", "settings"]

# The paper's ordering on the FactorVAE metric, best first, by `--model`.
PAPER_ORDER = ["factor-vae", "beta-vae", "vae"]

# A latent counts as used when its KL in the last metrics.csv row exceeds this (nats per image).
KL_USED = 0.1
# Rows of metrics.csv averaged for the FactorVAE health columns.
HEALTH_ROWS = 10

DATA_NAMES = {"dsprites": "dSprites", "fashion-mnist": "Fashion-MNIST"}


class StudyError(Exception):
    """A problem the user must fix; main() prints it as one line and exits with status 1."""


class Interrupted(Exception):
    """Ctrl-C (or an `elbo` that exited 130): stop at once, without rewriting the page."""


# ---------------------------------------------------------------------------------------------
# Files


def write_atomically(path, text):
    """Writes text to path through a temporary file in the same folder and os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=base + ".tmp-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def current_umask():
    """The process's umask (mkstemp makes files 0600; the files written here get the usual mode)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, value):
    """Writes value as indented JSON, atomically."""
    write_atomically(path, json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def read_json(path):
    """The JSON value in path; a StudyError naming the file when it is not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise StudyError(f"{shown_path(path)}: cannot read it as JSON ({e})") from None


def temp_sibling(path):
    """A fresh name beside path, keeping its extension, for a program that writes path itself."""
    root, ext = os.path.splitext(path)
    return f"{root}.tmp-{os.getpid()}{ext}"


def shown_path(path):
    """path relative to the repository when it lies inside it, else absolute."""
    path = os.path.abspath(path)
    rel = os.path.relpath(path, REPO)
    return path if rel.startswith("..") else rel


# ---------------------------------------------------------------------------------------------
# The config


def is_int(value):
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def flag_value(flags, flag):
    """The value after flag in a list of flags (or after 'flag='), None when absent."""
    for i, f in enumerate(flags):
        if f == flag and i + 1 < len(flags):
            return flags[i + 1]
        if f.startswith(flag + "="):
            return f[len(flag) + 1:]
    return None


def uses_flag(flags, flag):
    """True when flags contain flag, alone or as flag=value."""
    return any(f == flag or f.startswith(flag + "=") for f in flags)


def load_config(path):
    """Reads the config and checks it; a StudyError says what is wrong."""
    if not os.path.isfile(path):
        raise StudyError(f"no config file at {shown_path(path)}")
    config = read_json(path)
    where = f"config {shown_path(path)}"

    def require(ok, message):
        if not ok:
            raise StudyError(f"{where}: {message}")

    require(isinstance(config, dict), "must be a JSON object")
    unknown = sorted(set(config) - set(CONFIG_KEYS))
    require(not unknown, f"unknown key(s) {', '.join(unknown)}; known: {', '.join(CONFIG_KEYS)}")
    missing = [k for k in CONFIG_KEYS if k not in config]
    require(not missing, f"missing key(s) {', '.join(missing)}")
    for key in ["name", "data"]:
        require(isinstance(config[key], str) and config[key], f"'{key}' must be a non-empty string")
    for key in ["threads", "batch", "checkpoint_every", "log_every"]:
        require(is_int(config[key]) and config[key] > 0, f"'{key}' must be a positive integer")

    seeds = config["seeds"]
    require(isinstance(seeds, list) and seeds, "'seeds' must be a non-empty list")
    require(all(is_int(s) and s >= 0 for s in seeds), "'seeds' must hold non-negative integers")
    require(len(set(seeds)) == len(seeds), "'seeds' has a seed twice")

    steps = config["eval_at"]
    require(isinstance(steps, list) and steps, "'eval_at' must be a non-empty list")
    require(all(is_int(s) and s > 0 for s in steps), "'eval_at' must hold positive integers")
    require(all(a < b for a, b in zip(steps, steps[1:])), "'eval_at' must be in ascending order, each step once")

    eval_flags = config["eval_flags"]
    require(isinstance(eval_flags, list) and all(isinstance(f, str) for f in eval_flags),
            "'eval_flags' must be a list of strings (empty: elbo eval's defaults)")
    for flag in EVAL_FLAGS_OWNED:
        require(not uses_flag(eval_flags, flag), f"'eval_flags' may not hold {flag}: the script sets it")

    models = config["models"]
    require(isinstance(models, list) and models, "'models' must be a non-empty list")
    names = set()
    for i, model in enumerate(models):
        require(isinstance(model, dict), f"models[{i}] must be an object")
        unknown = sorted(set(model) - set(MODEL_KEYS) - set(OPTIONAL_MODEL_KEYS))
        require(not unknown, f"models[{i}] has unknown key(s) {', '.join(unknown)}; known: "
                             f"{', '.join(MODEL_KEYS + OPTIONAL_MODEL_KEYS)}")
        missing = [k for k in MODEL_KEYS if k not in model]
        require(not missing, f"models[{i}] lacks {', '.join(missing)}")
        name = model["name"]
        require(isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name),
                f"models[{i}].name must be letters, digits, '-', '_' or '.' (it names folders), got {name!r}")
        require(name not in names, f"two models are named '{name}'")
        names.add(name)
        for key in ["label", "setting"]:
            require(isinstance(model[key], str), f"model '{name}': '{key}' must be a string")
        flags = model["flags"]
        require(isinstance(flags, list) and flags and all(isinstance(f, str) for f in flags),
                f"model '{name}': 'flags' must be a non-empty list of strings")
        require(flag_value(flags, "--model"), f"model '{name}': 'flags' must give --model")
        for flag in TRAIN_FLAGS_OWNED:
            require(not uses_flag(flags, flag), f"model '{name}': 'flags' may not hold {flag}: the script sets it")
        require(model.get("trainer", "elbo") in TRAINERS,
                f"model '{name}': 'trainer' must be {' or '.join(TRAINERS)}, got {model.get('trainer')!r}")
        require(model.get("init", "own") in INITS,
                f"model '{name}': 'init' must be {' or '.join(INITS)}, got {model.get('init')!r}")
        require(model.get("init", "own") == "own" or trainer(model) == "pytorch",
                f"model '{name}': 'init' is for PyTorch runs (an elbo run starts from elbo's own weights)")
        require(model.get("init", "own") == "own" or not any(uses_flag(flags, f) for f in PYTORCH_ONLY_FLAGS),
                f"model '{name}': with \"init\": \"elbo\" its flags are elbo's too (elbo train --steps 0 "
                f"writes the weights), so they may not hold {' or '.join(PYTORCH_ONLY_FLAGS)}")
        paper = model["paper_factorvae_metric"]
        require(paper is None or (isinstance(paper, (int, float)) and not isinstance(paper, bool) and 0 <= paper <= 1),
                f"model '{name}': 'paper_factorvae_metric' must be a number in [0, 1] or null")
    return config


def trainer(model):
    """Who trains the model: "elbo", or "pytorch" (benchmarks/pytorch_train.py, on elbo's data and
    draws, its checkpoints evaluated by `elbo eval` as elbo's are)."""
    return model.get("trainer", "elbo")


def model_kind(model):
    """The model's `--model` value (vae, beta-vae, factor-vae) from its flags."""
    return flag_value(model["flags"], "--model")


# ---------------------------------------------------------------------------------------------
# What a run folder holds


def run_folder(out, model, seed):
    """OUT/<model>-s<seed>."""
    return os.path.join(out, f"{model['name']}-s{seed}")


def checkpoint_path(run):
    """RUN/checkpoint.safetensors."""
    return os.path.join(run, "checkpoint.safetensors")


def checkpoint_metadata(path):
    """The "__metadata__" object of a safetensors file (8 bytes little-endian header length, then
    that many bytes of JSON), with "train" parsed into a dict when it is JSON."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError("shorter than 8 bytes")
            (length,) = struct.unpack("<Q", head)
            if length > 100_000_000:
                raise ValueError(f"header length {length} is implausible")
            header = json.loads(f.read(length).decode("utf-8"))
    except (OSError, ValueError) as e:
        raise StudyError(f"{shown_path(path)}: not a readable safetensors file ({e})") from None
    metadata = dict(header.get("__metadata__", {})) if isinstance(header, dict) else {}
    if isinstance(metadata.get("train"), str):
        try:
            metadata["train"] = json.loads(metadata["train"])
        except ValueError:
            pass
    return metadata


def checkpoint_step(run):
    """The step of RUN's checkpoint; 0 when there is none."""
    path = checkpoint_path(run)
    if not os.path.exists(path):
        return 0
    metadata = checkpoint_metadata(path)
    try:
        return int(metadata["step"])
    except (KeyError, ValueError):
        raise StudyError(f"{shown_path(path)}: its metadata has no step") from None


def read_metrics(run):
    """The rows of RUN/metrics.csv as dicts of floats, found by header name; a row cut short by a
    kill, or otherwise malformed, is left out."""
    path = os.path.join(run, "metrics.csv")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or "step" not in header:
            return []
        for cells in reader:
            if len(cells) != len(header):
                continue
            try:
                rows.append({name: float(cell) for name, cell in zip(header, cells)})
            except ValueError:
                continue
    return rows


def eval_path(run, step):
    """RUN/eval-<step>.json."""
    return os.path.join(run, f"eval-{step}.json")


def read_evals(run, steps):
    """{step: the eval JSON} for the steps in `steps` evaluated so far."""
    evals = {}
    for step in steps:
        path = eval_path(run, step)
        if os.path.exists(path):
            evals[step] = read_json(path)
    return evals


def study_run_path(run):
    """RUN/study-run.json, the script's record of the run."""
    return os.path.join(run, "study-run.json")


def run_settings(config, model):
    """What a run's training depends on, kept in study-run.json to catch a changed config."""
    settings = {"data": config["data"], "batch": config["batch"], "flags": model["flags"],
                "checkpoint_every": config["checkpoint_every"], "log_every": config["log_every"]}
    if trainer(model) != "elbo":
        settings["trainer"] = trainer(model)
    if model.get("init", "own") != "own":
        settings["init"] = model["init"]
    return settings


# ---------------------------------------------------------------------------------------------
# The machine


def git_commit(elbo):
    """(short commit, whether its tracked files had changes) that the elbo binary was built from:
    what `elbo --version` says ("commit abc1234" or "commit abc1234+changes"), or, for a binary
    from before it said so, the first word of a file ELBO.commit beside it (a pinned copy's
    record); (None, False) when neither says."""
    try:
        out = subprocess.run([elbo, "--version"], capture_output=True, text=True, env=child_environment()).stdout
        found = re.search(r"\(commit ([0-9a-f]+|unknown)(\+changes)?;", out)
        if found and found.group(1) != "unknown":
            return found.group(1), bool(found.group(2))
        with open(elbo + ".commit", encoding="utf-8") as f:
            words = f.read().split()
            return (words[0], False) if words else (None, False)
    except OSError:
        return None, False


def cpu_model():
    """The CPU's name: lscpu's "Model name", else /proc/cpuinfo's "model name", else "unknown CPU"."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, env=dict(os.environ, LC_ALL="C")).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def now():
    """The local time, to the second, for the records."""
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")


# ---------------------------------------------------------------------------------------------
# Driving elbo


class Clock:
    """The script's time budget: --time-limit seconds from the start, or none."""

    def __init__(self, limit):
        self.start = time.monotonic()
        self.limit = limit

    def elapsed(self):
        """Seconds since the start."""
        return time.monotonic() - self.start

    def remaining(self):
        """Seconds left, or None without a limit."""
        return None if self.limit is None else self.limit - self.elapsed()

    def out_of_time(self):
        """True when too little time is left to start anything."""
        left = self.remaining()
        return left is not None and left < MIN_SECONDS


# "process r of N: " when an MPI job shares the study; set by main().
PLACE = ""


def say(clock, message):
    """One progress line on stdout, stamped with the time since the start."""
    seconds = int(clock.elapsed())
    print(f"study [{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}] {PLACE}{message}", flush=True)


def mpi_place():
    """(rank, size, job) when mpirun, mpiexec or srun started this process (their environment
    says so; the job's name is the same in all its processes and differs between jobs), else
    (0, 1, None)."""
    env = os.environ
    for rank, size in (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"), ("PMI_RANK", "PMI_SIZE"),
                       ("SLURM_PROCID", "SLURM_NTASKS")):
        if rank in env and size in env and (rank != "SLURM_PROCID" or "SLURM_STEP_ID" in env):
            job = (env.get("PMIX_NAMESPACE") or env.get("OMPI_MCA_ess_base_jobid") or
                   (f"{env['SLURM_JOB_ID']}.{env['SLURM_STEP_ID']}" if "SLURM_STEP_ID" in env else str(os.getppid())))
            return int(env[rank]), int(env[size]), re.sub(r"[^A-Za-z0-9_.-]", "_", job)
    return 0, 1, None


def parse_share(text):
    """(I, N) of --share I/N, with 0 <= I < N."""
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if not match or not int(match[1]) < int(match[2]):
        raise StudyError(f"--share must be I/N with 0 <= I < N (this process's share of N), got {text!r}")
    return int(match[1]), int(match[2])


def child_environment():
    """This environment without what tells a program it is one of an MPI job's processes: each
    `elbo` the study starts is a job of its own."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OMPI_", "PMIX_", "PMI_")) and k not in ("MPI_LOCALNRANKS", "MPI_LOCALRANKID")}


def run_child(command, capture=False, timeout=None):
    """Runs command with stderr (and stdout unless captured) on the terminal. Returns (exit status,
    captured stdout), exit status None when it ran past timeout and was killed. On Ctrl-C the child
    has the signal too: wait for it to finish its step and save, then raise Interrupted."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE if capture else None, text=True,
                               env=child_environment())
    try:
        stdout, _ = process.communicate(timeout=timeout)
        return process.returncode, stdout or ""
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return None, ""
    except KeyboardInterrupt:
        process.communicate()
        raise Interrupted() from None


def record_training(run, config, model, seed, fresh, from_step, target, environment):
    """Writes RUN/study-run.json before a training: the first training's commit and CPU for a
    fresh run, a continuation appended otherwise. Returns the record, to be completed after."""
    path = study_run_path(run)
    entry = dict(environment, date=now(), threads=config["threads"], from_step=from_step, target=target)
    if fresh or not os.path.exists(path):
        record = {"model": model["name"], "seed": seed, "settings": run_settings(config, model),
                  "first_training": entry, "continuations": [], "evaluations": {}}
        if not fresh:
            # A run started outside this script: its first training is unknown.
            record["first_training"] = None
            record["continuations"].append(entry)
    else:
        record = read_json(path)
        record.setdefault("continuations", []).append(entry)
    write_json(path, record)
    return record


def check_run(run, config, model, seed):
    """Refuses a run folder whose recorded settings or checkpoint disagree with the config."""
    path = study_run_path(run)
    if os.path.exists(path) and os.path.exists(checkpoint_path(run)):
        recorded = read_json(path).get("settings")
        wanted = run_settings(config, model)
        if recorded is not None and recorded != wanted:
            differences = "; ".join(f"{key} {json.dumps(recorded.get(key))} there, {json.dumps(wanted[key])} in the config"
                                    for key in wanted if recorded.get(key) != wanted[key])
            raise StudyError(f"{shown_path(run)} was trained with other settings ({differences}); restore the config, "
                             f"or give another --out")
    if os.path.exists(checkpoint_path(run)):
        train = checkpoint_metadata(checkpoint_path(run)).get("train")
        if isinstance(train, dict) and "seed" in train and train["seed"] != seed:
            raise StudyError(f"{shown_path(run)} holds a run of seed {train['seed']}, not {seed}")


def check_runs(config, out):
    """check_run on every run folder of the study there is."""
    for model in config["models"]:
        for seed in config["seeds"]:
            run = run_folder(out, model, seed)
            if os.path.isdir(run):
                check_run(run, config, model, seed)


def train(elbo, run, config, model, seed, target, clock, environment):
    """Brings RUN to step `target` (or as far as the time limit allows) with one `elbo train`.
    Returns the checkpoint's step afterwards."""
    step = checkpoint_step(run)
    fresh = step == 0
    if trainer(model) == "pytorch":
        command = ([TOOLS["python"], PYTORCH_TRAIN] + model["flags"] +
                   ["--data", torch_images(elbo, config), "--data-name", config["data"], "--seed", str(seed),
                    "--steps", str(target), "--threads", str(config["threads"]), "--batch", str(config["batch"]),
                    "--out", run, "--checkpoint-every", str(config["checkpoint_every"]),
                    "--log-every", str(config["log_every"])] + ([] if fresh else ["--resume"]))
        if fresh and model.get("init", "own") == "elbo":
            command += ["--init", elbo_init(elbo, run, config, model, seed)]
    elif fresh:
        command = ([elbo, "train"] + model["flags"] +
                   ["--data", config["data"], "--seed", str(seed), "--steps", str(target),
                    "--threads", str(config["threads"]), "--batch", str(config["batch"]), "--out", run,
                    "--checkpoint-every", str(config["checkpoint_every"]), "--log-every", str(config["log_every"])])
    else:
        command = [elbo, "train", "--resume", checkpoint_path(run), "--steps", str(target),
                   "--threads", str(config["threads"]), "--checkpoint-every", str(config["checkpoint_every"])]
    left = clock.remaining()
    if left is not None:
        command += ["--time-limit", f"{left:.1f}"]
    say(clock, f"{os.path.basename(run)}: train {'a fresh run' if fresh else f'from step {step:,}'} to step {target:,}"
               + (f" (time limit {left:.{0 if left >= 10 else 1}f} s)" if left is not None else ""))
    record = record_training(run, config, model, seed, fresh, step, target, environment)
    try:
        status, _ = run_child(command)
    finally:
        # Where the training got to, whatever happened to it.
        reached = checkpoint_step(run)
        entry = record["continuations"][-1] if record.get("continuations") else record["first_training"]
        entry["reached_step"] = reached
        write_json(study_run_path(run), record)
    if status == 130:
        raise Interrupted()
    if status != 0:
        raise StudyError(f"elbo train failed for {shown_path(run)} (exit status {status}): {shlex.join(command)}")
    if reached < target and left is None:
        raise StudyError(f"elbo train stopped {shown_path(run)} at step {reached}, short of {target}, without a time limit")
    return reached


def elbo_init(elbo, run, config, model, seed):
    """The initial weights elbo gives MODEL for SEED (`elbo train --steps 0`), written into
    RUN/elbo-init, for a PyTorch run that starts where elbo's run of the same seed starts."""
    folder = os.path.join(run, "elbo-init")
    if os.path.exists(checkpoint_path(folder)):  # written by an earlier try that stopped before step 1
        return checkpoint_path(folder)
    command = ([elbo, "train"] + model["flags"] +
               ["--data", config["data"], "--seed", str(seed), "--steps", "0", "--threads", "1",
                "--batch", str(config["batch"]), "--out", folder])
    status, _ = run_child(command, capture=True)
    if status != 0:
        raise StudyError(f"elbo train --steps 0 could not write the initial weights for {shown_path(run)} "
                         f"(exit status {status})")
    return checkpoint_path(folder)


def torch_images(elbo, config):
    """The IDX file of the data set's images that PyTorch runs read: --torch-images, or made once by
    `elbo data --all --idx` (dSprites: 3 GB)."""
    path = TOOLS["torch_images"]
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        status, _ = run_child([elbo, "data", "--data", config["data"], "--all", "--idx", path], capture=True)
        if status != 0:
            raise StudyError(f"elbo data could not write {shown_path(path)} for the PyTorch runs (exit status {status})")
    return path


def evaluate(elbo, run, config, seed, target, clock, environment):
    """Runs `elbo eval` on RUN's checkpoint (at step `target`) and keeps its JSON as
    RUN/eval-<target>.json. Returns False when the time limit cut it off."""
    step = checkpoint_step(run)
    if step != target:
        raise StudyError(f"{shown_path(run)}: its checkpoint is at step {step}, not {target}; not evaluating it")
    command = ([elbo, "eval", "--checkpoint", checkpoint_path(run), "--data", config["data"], "--seed", str(seed),
                "--threads", str(config["threads"])] + config["eval_flags"])
    say(clock, f"{os.path.basename(run)}: evaluate at step {target:,}")
    started = time.monotonic()
    status, stdout = run_child(command, capture=True, timeout=clock.remaining())
    if status is None:
        say(clock, f"{os.path.basename(run)}: the evaluation ran out of time; it will be done next time")
        return False
    if status == 130:
        raise Interrupted()
    if status != 0:
        raise StudyError(f"elbo eval failed for {shown_path(run)} (exit status {status}): {shlex.join(command)}")
    result = parse_eval(stdout, run)
    write_atomically(eval_path(run, target), json.dumps(result, ensure_ascii=False) + "\n")
    record = read_json(study_run_path(run)) if os.path.exists(study_run_path(run)) else {}
    record.setdefault("evaluations", {})[str(target)] = dict(environment, date=now(),
                                                             seconds=round(time.monotonic() - started, 1))
    write_json(study_run_path(run), record)
    return True


def parse_eval(stdout, run):
    """The JSON object `elbo eval` printed, checked for the keys the page needs."""
    result = None
    for text in [stdout] + stdout.strip().splitlines()[::-1]:
        try:
            result = json.loads(text)
            break
        except ValueError:
            continue
    if not isinstance(result, dict):
        raise StudyError(f"elbo eval printed no JSON object for {shown_path(run)}: {stdout.strip()[:200]!r}")
    missing = [k for k in EVAL_KEYS if k not in result]
    if missing:
        raise StudyError(f"elbo eval's output for {shown_path(run)} lacks {', '.join(missing)}")
    return result


def run_study(config, elbo, out, clock, rank=0, size=1):
    """Trains and evaluates, breadth first, whatever is not done yet of this process's runs (all of
    them, or run i of models x seeds when i mod size == rank; an odd rank takes the models in
    reverse). Returns True when every evaluation is done, False when the time limit stopped it."""
    mine = {(model["name"], seed) for i, (model, seed) in
            enumerate((m, s) for m in config["models"] for s in config["seeds"]) if i % size == rank}
    commit, dirty = git_commit(elbo)
    environment = {"commit": commit, "dirty": dirty, "cpu": cpu_model()}
    done = sum(os.path.exists(eval_path(run_folder(out, m, s), t))
               for t in config["eval_at"] for m in config["models"] for s in config["seeds"])
    total = len(config["eval_at"]) * len(config["models"]) * len(config["seeds"])
    say(clock, f"'{config['name']}' in {shown_path(out)}: {done} of {total} evaluations already done")
    # The odd processes walk the models in reverse, so that processes side by side train different
    # models at a time: in the paper's study on two cores, two one-thread PyTorch runs side by side
    # took 0.40-0.47 s a step each, against 0.24-0.32 beside one of elbo's, and in the same order the
    # two shares reached their PyTorch runs together at every step of eval_at.
    models = config["models"] if rank % 2 == 0 else config["models"][::-1]
    for target in config["eval_at"]:
        for model in models:
            for seed in config["seeds"]:
                run = run_folder(out, model, seed)
                if (model["name"], seed) not in mine or os.path.exists(eval_path(run, target)):
                    continue
                step = checkpoint_step(run)
                if step > target:
                    say(clock, f"{os.path.basename(run)}: its checkpoint is at step {step:,}, past {target:,}; "
                               f"step {target:,} cannot be evaluated (left out)")
                    continue
                if clock.out_of_time():
                    return False
                if step < target and train(elbo, run, config, model, seed, target, clock, environment) < target:
                    say(clock, f"{os.path.basename(run)}: stopped at step {checkpoint_step(run):,} of {target:,} "
                               f"(time limit)")
                    return False
                if clock.out_of_time():
                    return False
                if not evaluate(elbo, run, config, seed, target, clock, environment):
                    return False
    return True


def gather_ranks(out, job, rank, size, finished):
    """Says in OUT/.ranks/JOB/RANK that this process is done (and whether it finished its runs);
    process 0 waits for every process's word, then clears them. Returns whether every process
    finished (for process 0; its own word for the others). A process that dies ends the MPI job,
    so process 0 never waits for one that cannot come."""
    folder = os.path.join(out, ".ranks", job)
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, str(rank)), {"finished": finished})
    if rank != 0:
        return finished
    words = {}
    while len(words) < size:
        for r in range(size):
            path = os.path.join(folder, str(r))
            if r not in words and os.path.exists(path):
                words[r] = read_json(path)["finished"]
        if len(words) < size:
            time.sleep(1)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        os.rmdir(os.path.dirname(folder))  # .ranks, when no other job shares it
    except OSError:
        pass
    return all(words.values())


def standing(config, out):
    """One line on where the study stands: evaluations done, and the next thing to do."""
    total = done = 0
    next_action = None
    for target in config["eval_at"]:
        for model in config["models"]:
            for seed in config["seeds"]:
                run = run_folder(out, model, seed)
                total += 1
                if os.path.exists(eval_path(run, target)):
                    done += 1
                elif next_action is None:
                    step = checkpoint_step(run)
                    if step > target:
                        continue
                    next_action = (f"next: {os.path.basename(run)} to step {target:,} (its checkpoint is at step "
                                   f"{step:,})" if step < target else
                                   f"next: evaluate {os.path.basename(run)} at step {target:,}")
    return f"{done} of {total} evaluations done" + (f"; {next_action}" if next_action else "")


# ---------------------------------------------------------------------------------------------
# The numbers behind the page


def mean_and_error(values):
    """{"n", "mean", "se"}: the mean and its standard error (sample deviation / sqrt(n)); se is
    None for fewer than two values, mean None for none."""
    n = len(values)
    if n == 0:
        return {"n": 0, "mean": None, "se": None}
    mean = sum(values) / n
    if n < 2:
        return {"n": n, "mean": mean, "se": None}
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return {"n": n, "mean": mean, "se": math.sqrt(variance / n)}


def train_seconds_at(step, metadata, rows):
    """Training wall time at `step`: the checkpoint's "seconds" when it is at that step, else the
    seconds column of the last metrics.csv row at or before it; None when neither says."""
    if metadata.get("step") == str(step) and "seconds" in metadata:
        try:
            return float(metadata["seconds"])
        except ValueError:
            pass
    before = [r for r in rows if r["step"] <= step and "seconds" in r]
    return before[-1]["seconds"] if before else None


def health(kind, step, rows):
    """The metrics.csv health columns at `step`: the latents with KL above KL_USED in the last row
    at or before it, and for FactorVAE the TC estimate and the discriminator's accuracies, each the
    mean of the last HEALTH_ROWS rows."""
    before = [r for r in rows if r["step"] <= step]
    if not before:
        return None
    last = before[-1]
    kls = [last[k] for k in sorted((k for k in last if re.fullmatch(r"kl_\d+", k)), key=lambda k: int(k[3:]))]
    result = {"row_step": int(last["step"]), "latents": len(kls), "latents_kl_above": sum(v > KL_USED for v in kls),
              "kl_per_latent": kls}
    if kind == "factor-vae":
        tail = before[-HEALTH_ROWS:]
        for column in ["tc", "d_accuracy_real", "d_accuracy_permuted"]:
            values = [r[column] for r in tail if column in r]
            result[column] = sum(values) / len(values) if values else None
        result["rows_averaged"] = len(tail)
    return result


def collect(config, out):
    """Everything the page says, read from the run folders: the runs, every evaluation, the
    summaries per step and model, the health columns, what is not yet evaluated."""
    runs, evaluations, missing = [], [], []
    for model in config["models"]:
        for seed in config["seeds"]:
            folder = run_folder(out, model, seed)
            metadata = checkpoint_metadata(checkpoint_path(folder)) if os.path.exists(checkpoint_path(folder)) else {}
            train_options = metadata.get("train") if isinstance(metadata.get("train"), dict) else {}
            kind = metadata.get("kind") or model_kind(model)
            batch = train_options.get("batch", config["batch"])
            rows = read_metrics(folder)
            evals = read_evals(folder, config["eval_at"])
            record = read_json(study_run_path(folder)) if os.path.exists(study_run_path(folder)) else None
            run = {"model": model["name"], "seed": seed, "folder": shown_path(folder), "kind": kind,
                   "arch": metadata.get("arch"), "latent": metadata.get("latent"), "batch": batch,
                   "checkpoint_step": int(metadata["step"]) if "step" in metadata else None,
                   "checkpoint_seconds": float(metadata["seconds"]) if "seconds" in metadata else None,
                   "study_run": record, "evaluated_steps": sorted(evals), "health": None}
            if evals:
                run["health"] = health(kind, max(evals), rows)
            runs.append(run)
            for step in config["eval_at"]:
                if step not in evals:
                    past = run["checkpoint_step"] is not None and run["checkpoint_step"] > step
                    missing.append({"model": model["name"], "seed": seed, "step": step, "past": past})
                    continue
                e = evals[step]
                eval_seconds = ((record or {}).get("evaluations") or {}).get(str(step), {}).get("seconds")
                evaluations.append({"model": model["name"], "seed": seed, "step": step,
                                    "images_seen": step * batch * (2 if kind == "factor-vae" else 1),
                                    "train_seconds": train_seconds_at(step, metadata, rows),
                                    "eval_seconds": eval_seconds, "eval": e})
    summaries = []
    for step in config["eval_at"]:
        for model in config["models"]:
            at = [e for e in evaluations if e["model"] == model["name"] and e["step"] == step]
            stats = {
                "factorvae_metric": mean_and_error([e["eval"]["factorvae_metric"] for e in at]),
                "mig": mean_and_error([e["eval"]["mig"] for e in at]),
                "neg_elbo": mean_and_error([-e["eval"]["elbo"] for e in at]),
                "recon": mean_and_error([e["eval"]["recon"] for e in at]),
                "kl": mean_and_error([e["eval"]["kl"] for e in at]),
                "nll_iw": mean_and_error([e["eval"]["nll_iw"] for e in at]),
                "active_dims": mean_and_error([e["eval"]["active_dims"] for e in at]),
                "train_seconds": mean_and_error([e["train_seconds"] for e in at if e["train_seconds"] is not None]),
            }
            summaries.append({"step": step, "model": model["name"], "seeds": sorted(e["seed"] for e in at),
                              "images_seen": at[0]["images_seen"] if at else None,
                              "latent": at[0]["eval"]["latent"] if at else None, "stats": stats})
    return {"runs": runs, "evaluations": evaluations, "summaries": summaries, "not_yet_evaluated": missing}


def summary(data, model_name, step):
    """The summary of one model at one step."""
    return next(s for s in data["summaries"] if s["model"] == model_name and s["step"] == step)


def last_common_step(config, data, models=None):
    """The last step in eval_at at which each of `models` (default: all the study's) has at least one
    evaluation, or None."""
    common = [step for step in config["eval_at"]
              if all(summary(data, m["name"], step)["seeds"] for m in (models or config["models"]))]
    return common[-1] if common else None


def ordering(config, data):
    """Whether the paper's ordering (FactorVAE > β-VAE > VAE on the FactorVAE metric) holds at the
    last common step among the study's models of those kinds (the first of each kind), by how
    much, and against the combined standard errors. Returns a dict with a generated sentence."""
    chain = []
    for kind in PAPER_ORDER:
        first = next((m for m in config["models"] if model_kind(m) == kind), None)
        if first is not None:
            chain.append(first)
    order_text = " > ".join(m["label"] for m in chain)
    result = {"models": [m["name"] for m in chain], "step": None, "holds": None, "pairs": []}
    if len(chain) < 2:
        result["sentence"] = ("The study has fewer than two of VAE, β-VAE and FactorVAE, so the paper's ordering "
                              "on the FactorVAE metric cannot be checked.")
        return result
    step = last_common_step(config, data, chain)  # a PyTorch run of the same model does not hold it up
    if step is None:
        result["sentence"] = (f"No step has an evaluation of each of {join_words(m['label'] for m in chain)} yet, so "
                              f"the paper's ordering {order_text} on the FactorVAE metric cannot be checked yet.")
        return result
    result["step"] = step
    parts = []
    for better, worse in zip(chain, chain[1:]):
        a = summary(data, better["name"], step)["stats"]["factorvae_metric"]
        b = summary(data, worse["name"], step)["stats"]["factorvae_metric"]
        difference = a["mean"] - b["mean"]
        combined = math.sqrt(a["se"] ** 2 + b["se"] ** 2) if a["se"] is not None and b["se"] is not None else None
        result["pairs"].append({"better": better["name"], "worse": worse["name"], "difference": difference,
                                "combined_se": combined, "holds": difference > 0,
                                "beyond_se": combined is not None and abs(difference) > combined})
        text = f"{better['label']} − {worse['label']} = {difference:+.3f}"
        if combined is not None:
            text += (f" (beyond the combined standard error, {combined:.3f})" if abs(difference) > combined else
                     f" (within the combined standard error, {combined:.3f})")
        elif len(config["seeds"]) > 1:
            single = [m["label"] for m, s in [(better, a), (worse, b)] if s["se"] is None]
            text += f" (no standard error: {join_words(single)} {'has' if len(single) == 1 else 'have'} one seed evaluated there)"
        parts.append(text)
    holding = [p["holds"] for p in result["pairs"]]
    result["holds"] = all(holding)
    verdict = "holds" if all(holding) else ("does not hold" if not any(holding) else "holds only in part")
    labels = join_words(m["label"] for m in chain)
    every = (f"the last step, which {labels} have all reached" if step == config["eval_at"][-1] else
             f"the last step at which {labels} have all been evaluated so far")
    sentence = (f"At step {step:,}, {every}, the paper's ordering {order_text} on the FactorVAE "
                f"metric {verdict}: {join_words(parts)}.")
    if len(config["seeds"]) == 1:
        sentence += (f" With one seed per model there is no standard error to weigh "
                     f"{'this difference' if len(parts) == 1 else 'these differences'} against.")
    result["sentence"] = sentence
    return result


def join_words(items):
    """'a', 'a and b', 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# ---------------------------------------------------------------------------------------------
# Pictures, through elbo plot and elbo traverse


def plot(elbo, spec, path):
    """Draws spec with `elbo plot` into path (atomically). Returns True, or False with a warning."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, spec_path = tempfile.mkstemp(dir=folder, prefix=os.path.basename(path) + ".tmp-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    tmp = temp_sibling(path)
    try:
        result = subprocess.run([elbo, "plot", "--in", spec_path, "--out", tmp], capture_output=True, text=True)
        if result.returncode != 0 or not os.path.exists(tmp):
            warn(f"elbo plot failed for {shown_path(path)} (exit status {result.returncode}): "
                 f"{first_line(result.stderr)}")
            return False
        os.replace(tmp, path)
        return True
    finally:
        for leftover in [spec_path, tmp]:
            if os.path.exists(leftover):
                os.unlink(leftover)


def first_line(text):
    """The first non-empty line of a program's stderr, for a one-line warning."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "no message")


def warn(message):
    """A warning on stderr; the page is still written."""
    print(f"study: warning: {message}", file=sys.stderr, flush=True)


def curve_spec(config, data, key, title, y_label):
    """The plot spec of one metric against steps: per model the mean over seeds, with standard-error
    bars where there are two seeds or more."""
    series = []
    for model in config["models"]:
        points = [s for s in data["summaries"] if s["model"] == model["name"] and s["seeds"]]
        if not points:
            continue
        entry = {"name": model["label"], "x": [s["step"] for s in points],
                 "y": [s["stats"][key]["mean"] for s in points], "style": "line+points"}
        if any(s["stats"][key]["se"] is not None for s in points):
            entry["y_error"] = [s["stats"][key]["se"] or 0.0 for s in points]
        series.append(entry)
    return {"title": title, "x_label": "training steps", "y_label": y_label, "series": series}


def last_evaluations(config, data):
    """Each run's evaluation at its last evaluated step."""
    last = {}
    for e in data["evaluations"]:
        key = (e["model"], e["seed"])
        if key not in last or e["step"] > last[key]["step"]:
            last[key] = e
    return [last[(m["name"], s)] for m in config["models"] for s in config["seeds"] if (m["name"], s) in last]


def tradeoff_spec(config, data):
    """The plot spec of reconstruction error against the FactorVAE metric: a point per run at its
    last evaluated step, a series per model (Kim and Mnih's trade-off figure)."""
    finals = last_evaluations(config, data)
    series = []
    for model in config["models"]:
        mine = [e for e in finals if e["model"] == model["name"]]
        if mine:
            series.append({"name": model["label"], "x": [e["eval"]["factorvae_metric"] for e in mine],
                           "y": [e["eval"]["recon"] for e in mine], "style": "points"})
    return {"title": "Reconstruction against disentanglement (each run at its last evaluated step)",
            "x_label": "FactorVAE metric", "y_label": "reconstruction error (nats per image)", "series": series}


def best_runs(config, data):
    """Per model, the run with the highest FactorVAE metric at the model's last evaluated step."""
    best = []
    for model in config["models"]:
        mine = [e for e in data["evaluations"] if e["model"] == model["name"]]
        if not mine:
            continue
        step = max(e["step"] for e in mine)
        top = max((e for e in mine if e["step"] == step), key=lambda e: e["eval"]["factorvae_metric"])
        best.append((model, top))
    return best


def traverse(elbo, out, model, evaluation, images):
    """Draws the traversal of a run's checkpoint into images/traversal-<model>.png with
    `elbo traverse`. Returns a record of it, or None with a warning."""
    run = run_folder(out, model, evaluation["seed"])
    path = os.path.join(images, f"traversal-{model['name']}.png")
    tmp = temp_sibling(path)
    try:
        result = subprocess.run([elbo, "traverse", "--checkpoint", checkpoint_path(run), "--out", tmp],
                                capture_output=True, text=True)
        if result.returncode != 0 or not os.path.exists(tmp):
            warn(f"elbo traverse failed for {shown_path(run)} (exit status {result.returncode}): "
                 f"{first_line(result.stderr)}")
            return None
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    printed = None
    for line in reversed(result.stdout.strip().splitlines()):
        try:
            printed = json.loads(line)
            break
        except ValueError:
            continue
    if isinstance(printed, dict) and "out" in printed:
        printed["out"] = shown_path(path)  # not the temporary name elbo wrote to
    return {"model": model["name"], "seed": evaluation["seed"], "step": evaluation["step"],
            "checkpoint_step": checkpoint_step(run), "file": f"images/traversal-{model['name']}.png",
            "elbo_traverse": printed}


def draw_pictures(config, data, elbo, out, docs):
    """Every picture of the page; returns {name: relative path} of those drawn and the traversals."""
    images = os.path.join(docs, "images")
    drawn = {}
    if data["evaluations"]:
        specs = {
            "factorvae_metric": ("study-factorvae-metric.svg",
                                 curve_spec(config, data, "factorvae_metric", "FactorVAE metric over training",
                                            "FactorVAE metric")),
            "mig": ("study-mig.svg", curve_spec(config, data, "mig", "MIG over training", "MIG")),
            "tradeoff": ("study-tradeoff.svg", tradeoff_spec(config, data)),
        }
        for key, (name, spec) in specs.items():
            if plot(elbo, spec, os.path.join(images, name)):
                drawn[key] = f"images/{name}"
    traversals = []
    for model, evaluation in best_runs(config, data):
        record = traverse(elbo, out, model, evaluation, images)
        if record:
            traversals.append(record)
    return drawn, traversals


# ---------------------------------------------------------------------------------------------
# The page


def number(value, digits):
    """value with `digits` decimals, '—' for None."""
    return "—" if value is None else f"{value:.{digits}f}"


def stat_text(stat, digits):
    """'mean ± se', 'mean' with one value, '—' with none."""
    if stat["n"] == 0:
        return "—"
    if stat["se"] is None:
        return number(stat["mean"], digits)
    return f"{stat['mean']:.{digits}f} ± {stat['se']:.{digits}f}"


def duration(seconds):
    """'45 s', '12.3 min' or '3.4 h'; '—' for None."""
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def dims_digits(stat):
    """Decimals for a mean of active dims: none when it is a whole number."""
    return 0 if stat["n"] and stat["se"] in (None, 0.0) and float(stat["mean"]).is_integer() else 1


def table(header, rows):
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def flatten(settings, prefix=""):
    """{"a": 1, "b": {"c": 2}} as {"a": 1, "b.c": 2}."""
    flat = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat.update(flatten(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


def setting_name(key):
    """A settings key in words: factorvae_metric -> FactorVAE metric, iw_images -> iw images."""
    return {"factorvae_metric": "FactorVAE metric", "mig": "MIG"}.get(key, key.replace("_", " "))


def describe_settings(data):
    """The settings `elbo eval` reported, in words: those common to every evaluation, grouped as
    elbo prints them, then the names of those that vary (the seed is each run's own)."""
    flats = [flatten(e["eval"]["settings"]) if isinstance(e["eval"]["settings"], dict) else {}
             for e in data["evaluations"]]
    if not flats:
        return None
    keys = []
    for flat in flats:
        keys += [k for k in flat if k not in keys]
    common = [k for k in keys if all(k in f and f[k] == flats[0].get(k) for f in flats)]
    varying = [k for k in keys if k not in common]
    groups = {}
    for key in common:
        group, _, name = key.rpartition(".")
        groups.setdefault(group, []).append(f"{setting_name(name)} {flats[0][key]}")
    parts = [(f"{setting_name(group)}: " if group else "") + ", ".join(items) for group, items in groups.items()]
    if varying == ["seed"]:
        parts.append("each run evaluated with its own seed")
    elif varying:
        parts.append(f"varying between evaluations (see results.json): {', '.join(varying)}")
    return "; ".join(parts)


def environment_text(data):
    """'Trained on CPU with T threads, at commit X (continued at Y).' from the runs' study-run.json."""
    cpus, threads, first, later = [], [], [], []

    def add(values, value):
        if value is not None and value not in values:
            values.append(value)

    def commit_text(entry):
        if not entry.get("commit"):
            return None
        return entry["commit"] + (" (with uncommitted changes)" if entry.get("dirty") else "")

    for run in data["runs"]:
        record = run["study_run"] or {}
        trainings = ([record["first_training"]] if record.get("first_training") else []) + record.get("continuations", [])
        for entry in trainings:
            add(cpus, entry.get("cpu"))
            add(threads, entry.get("threads"))
        if record.get("first_training"):
            add(first, commit_text(record["first_training"]))
        for entry in record.get("continuations", []):
            add(later, commit_text(entry))
    later = [c for c in later if c not in first]
    if not cpus:
        if any(run["checkpoint_step"] is not None for run in data["runs"]):
            return ("Where and at which commit the runs were trained is not recorded: they were started outside "
                    "`benchmarks/study.py`.")
        return "Nothing has been trained yet."
    sentence = (f"Training ran on {join_words(cpus)} with {join_words(str(t) for t in threads)} "
                f"thread{'' if threads == [1] else 's'}")
    if first:
        sentence += f", at commit{'s' if len(first) > 1 else ''} {join_words(first)}"
    if later:
        sentence += f" (continued at {join_words(later)})"
    return sentence + "."


def regenerate_command(args):
    """The command line that regenerates the page, with the options that differ from the defaults."""
    parts = ["/usr/bin/python3 benchmarks/study.py"]
    for flag, value, default in [("--config", args.config, DEFAULT_CONFIG), ("--elbo", args.elbo, DEFAULT_ELBO),
                                 ("--out", args.out, DEFAULT_OUT), ("--docs", args.docs, DEFAULT_DOCS)]:
        if os.path.abspath(value) != os.path.abspath(default):
            parts.append(f"{flag} {shown_path(value)}")
    return " ".join(parts)


def summary_table(config, data, step):
    """The table of one step: per model the means ± standard errors over its seeds."""
    header = ["model", "setting", "seeds", "steps", "images seen", "train time", "FactorVAE metric", "paper's",
              "MIG", "−ELBO (nats)", "recon", "KL", "active dims"]
    rows = []
    for model in config["models"]:
        s = summary(data, model["name"], step)
        paper = model["paper_factorvae_metric"]
        paper_text = "—" if paper is None else f"{paper:.2f}"
        count = f"{len(s['seeds'])} of {len(config['seeds'])}"
        if not s["seeds"]:
            rows.append([model["label"], model["setting"], count, f"{step:,}", "—", "—", "not yet evaluated",
                         paper_text] + ["—"] * 5)
            continue
        st = s["stats"]
        rows.append([model["label"], model["setting"], count, f"{step:,}", f"{s['images_seen']:,}",
                     duration(st["train_seconds"]["mean"]), stat_text(st["factorvae_metric"], 3), paper_text,
                     stat_text(st["mig"], 3), stat_text(st["neg_elbo"], 2), stat_text(st["recon"], 2),
                     stat_text(st["kl"], 2), stat_text(st["active_dims"], dims_digits(st["active_dims"]))])
    return table(header, rows)


def markdown(config, args, data, pictures, traversals, order):
    """The text of results.md."""
    models = config["models"]
    seeds = config["seeds"]
    data_name = DATA_NAMES.get(config["data"], config["data"])
    labels = join_words(m["label"] for m in models)
    arches = sorted({r["arch"] for r in data["runs"] if r["arch"]})
    latents = sorted({int(r["latent"]) for r in data["runs"] if r["latent"]} |
                     {int(e["eval"]["latent"]) for e in data["evaluations"]})
    evaluated_steps = [step for step in config["eval_at"] if any(s["seeds"] for s in data["summaries"]
                                                                  if s["step"] == step)]
    settings = describe_settings(data)
    eval_flags = " ".join(config["eval_flags"])
    lines = [f"# Results: {labels} on {data_name}", ""]

    # The paragraph: what, on what, at which commits, how to regenerate.
    arch_text = (f"the {join_words(arches)} architecture" if arches else "an architecture the checkpoints do not name")
    latent_text = f", {join_words(str(d) for d in latents)} latents" if latents else ""
    batches = sorted({r["batch"] for r in data["runs"] if r["checkpoint_step"] is not None}) or [config["batch"]]
    seed_text = (f"seed {seeds[0]} for every model" if len(seeds) == 1 else
                 f"{len(seeds)} seeds ({join_words(str(s) for s in seeds)}) per model")
    settings_text = (f"`elbo eval {eval_flags}`" if eval_flags else "`elbo eval` at its defaults")
    if settings:
        settings_text += f" (its settings: {settings})"
    paragraph = (
        f"This page is generated by `benchmarks/study.py` from the runs in `{shown_path(args.out)}` "
        f"(the study \"{config['name']}\", config `{shown_path(args.config)}`). "
        f"It trains {join_words(m['label'] + ' (' + m['setting'] + ')' for m in models)} on {data_name} "
        f"({arch_text}{latent_text}, batch {join_words(str(b) for b in batches)}), {seed_text}, for up to "
        f"{config['eval_at'][-1]:,} steps, and evaluates each run at {join_words(f'{s:,}' for s in config['eval_at'])} "
        f"steps by {settings_text}. {environment_text(data)} To regenerate it, training and evaluating whatever is "
        f"missing first: `{regenerate_command(args)}` (with `--report-only` it only rewrites this page from the "
        f"runs as they stand).")
    lines += [paragraph, ""]

    total = len(config["eval_at"]) * len(models) * len(seeds)
    done = len(data["evaluations"])
    if done == total:
        lines += [f"All {total} evaluations are done.", ""]
    else:
        text = f"{done} of {total} evaluations are done."
        pending = [m for m in data["not_yet_evaluated"] if not m["past"]]
        past = [m for m in data["not_yet_evaluated"] if m["past"]]
        if pending:
            text += f" Not yet evaluated: {not_yet_text(config, pending)}."
        if past:
            text += (f" Left out, as the run's checkpoint had passed the step before it was evaluated there: "
                     f"{not_yet_text(config, past)}.")
        lines += [text, ""]

    # The last step with anything, then the paper and the ordering.
    if evaluated_steps:
        last = evaluated_steps[-1]
        lines += [f"## At step {last:,}", ""]
        lines += summary_table(config, data, last)
        lines += ["", table_notes(config, data), ""]
    lines += ["## The paper", "",
              paper_text(config), "",
              order["sentence"], ""]

    # Over training.
    if evaluated_steps:
        lines += ["## Over training", ""]
        for key, alt in [("factorvae_metric", "FactorVAE metric against steps"), ("mig", "MIG against steps")]:
            if key in pictures:
                lines += [f"![{alt}]({pictures[key]})", ""]
        bars = ("Each point is the mean over the seeds evaluated at that step, with its standard error as a bar."
                if len(seeds) > 1 else "One seed per model: each point is that run, without error bars.")
        lines += [bars, ""]
        for step in reversed(evaluated_steps[:-1]):
            lines += [f"### At step {step:,}", ""]
            lines += summary_table(config, data, step)
            lines += [""]

    # The trade-off and the traversals.
    if "tradeoff" in pictures:
        lines += ["## Reconstruction against disentanglement", "",
                  f"![reconstruction error against the FactorVAE metric]({pictures['tradeoff']})", "",
                  "One point per run at its last evaluated step: reconstruction error (recon, nats per image) "
                  "against the FactorVAE metric, as in Kim and Mnih's trade-off figure.", ""]
    if traversals:
        sweep = (traversals[0]["elbo_traverse"] or {}).get("range")
        lines += ["## Traversals", "",
                  "Each model's best run (the highest FactorVAE metric at its last evaluated step) drawn by "
                  "`elbo traverse`: one row per latent, largest KL first, each swept "
                  + (f"from −{sweep:g} to {sweep:g} " if isinstance(sweep, (int, float)) else "")
                  + "around one item's posterior mean.", ""]
        for t in traversals:
            model = next(m for m in models if m["name"] == t["model"])
            metric = next(e for e in data["evaluations"] if e["model"] == t["model"] and e["seed"] == t["seed"]
                          and e["step"] == t["step"])["eval"]["factorvae_metric"]
            caption = (f"{model['label']} ({model['setting']}), seed {t['seed']}: FactorVAE metric {metric:.3f} at "
                       f"step {t['step']:,}")
            shown = (t["elbo_traverse"] or {}).get("latents")
            if isinstance(shown, list) and shown:
                caption += f"; rows: latents {', '.join(str(j) for j in shown)}"
            if t["checkpoint_step"] != t["step"]:
                caption += f"; the picture is of its checkpoint at step {t['checkpoint_step']:,}"
            lines += [f"**{caption}**", "", f"![traversal of {model['label']}]({t['file']})", ""]

    # Health and every evaluation.
    lines += health_section(config, data)
    lines += every_evaluation_section(config, data)
    return "\n".join(lines).rstrip() + "\n"


def table_notes(config, data):
    """What the summary tables' columns mean."""
    thresholds = {e["eval"]["settings"].get("active_threshold") for e in data["evaluations"]
                  if isinstance(e["eval"]["settings"], dict)}
    threshold = thresholds.pop() if len(thresholds) == 1 else None
    active = f"Var(E[z]) > {threshold}" if threshold is not None else "a variance of E[z] above elbo eval's threshold"
    seeds = ("Mean ± standard error over the seeds evaluated at that step."
             if len(config["seeds"]) > 1 else
             "One seed per model, so no ± (a standard error needs two seeds or more).")
    return (f"{seeds} −ELBO, recon (reconstruction error) and KL are in nats per image; active dims are the latents "
            f"with {active}. Images seen: steps × batch, twice that for FactorVAE, whose discriminator reads a "
            f"second batch each step. Train time is wall-clock training time from the checkpoint or metrics.csv "
            f"(evaluation not included). The paper's column is Kim and Mnih's FactorVAE metric after 300,000 steps.")


def paper_text(config):
    """The paper's numbers, from the config, with the citation."""
    # The paper's numbers, once per model it trained: not again for PyTorch's run of the same model.
    with_values = [m for m in config["models"] if m["paper_factorvae_metric"] is not None and trainer(m) == "elbo"]
    values = join_words(f"≈ {m['paper_factorvae_metric']:.2f} for {m['label']} ({m['setting']})" for m in with_values)
    if not with_values:
        return f"{CITATION}. The config gives none of its numbers."
    return (f"Kim and Mnih report a FactorVAE metric on dSprites of {values}, after 300,000 steps at batch 64, "
            f"with a wide spread over seeds: {CITATION}.")


def not_yet_text(config, missing):
    """The missing evaluations in words: 'VAE seed 1 at step 4; FactorVAE seeds 0 and 1 at steps 2 and 4'."""
    parts = []
    for model in config["models"]:
        by_seed = {}
        for m in missing:
            if m["model"] == model["name"]:
                by_seed.setdefault(m["seed"], []).append(m["step"])
        groups = {}
        for seed, steps in by_seed.items():
            groups.setdefault(tuple(steps), []).append(seed)
        for steps, group in groups.items():
            parts.append(f"{model['label']} seed{'s' if len(group) > 1 else ''} {join_words(str(s) for s in group)} "
                         f"at step{'s' if len(steps) > 1 else ''} {join_words(f'{s:,}' for s in steps)}")
    return "; ".join(parts)


def health_section(config, data):
    """The health columns of every run at its last evaluated step."""
    rows = []
    any_factor = False
    for run in data["runs"]:
        h = run["health"]
        if h is None:
            continue
        model = next(m for m in config["models"] if m["name"] == run["model"])
        factor = run["kind"] == "factor-vae"
        any_factor = any_factor or factor
        rows.append([model["label"], run["seed"], f"{max(run['evaluated_steps']):,}",
                     f"{h['latents_kl_above']} of {h['latents']}",
                     number(h.get("tc"), 3) if factor else "—",
                     number(h.get("d_accuracy_real"), 3) if factor else "—",
                     number(h.get("d_accuracy_permuted"), 3) if factor else "—"])
    if not rows:
        return []
    lines = ["## Health of the runs", "",
             f"From each run's metrics.csv at its last evaluated step: the latents whose KL exceeds {KL_USED} nats "
             f"in the last row there" +
             (f", and for FactorVAE the total-correlation estimate and the discriminator's accuracy on real and on "
              f"permuted codes, each the mean of the last {HEALTH_ROWS} rows." if any_factor else "."), ""]
    lines += table(["model", "seed", "step", f"latents with KL > {KL_USED}", "TC (nats)", "D accuracy, real",
                    "D accuracy, permuted"], rows)
    return lines + [""]


def every_evaluation_section(config, data):
    """One row per evaluation: the curve as numbers."""
    lines = ["## Every evaluation", ""]
    if not data["evaluations"]:
        return lines + ["None yet.", ""]
    rows = []
    for model in config["models"]:
        for e in sorted((e for e in data["evaluations"] if e["model"] == model["name"]),
                        key=lambda e: (e["seed"], e["step"])):
            v = e["eval"]
            rows.append([model["label"], e["seed"], f"{e['step']:,}", number(v["factorvae_metric"], 3),
                         number(v["mig"], 3), number(-v["elbo"], 2), number(v["recon"], 2), number(v["kl"], 2),
                         number(v["nll_iw"], 2), f"{v['active_dims']} of {v['latent']}", duration(e["train_seconds"]),
                         duration(e["eval_seconds"])])
    lines += table(["model", "seed", "step", "FactorVAE metric", "MIG", "−ELBO", "recon", "KL", "NLL (IW)",
                    "active dims", "train time", "eval time"], rows)
    return lines + [""]


def write_report(config, args, elbo):
    """Writes results.md, results.json and the pictures from the run folders."""
    data = collect(config, args.out)
    order = ordering(config, data)
    pictures, traversals = draw_pictures(config, data, elbo, args.out, args.docs)
    page = markdown(config, args, data, pictures, traversals, order)
    write_atomically(os.path.join(args.docs, "results.md"), page)
    write_json(os.path.join(args.docs, "results.json"), {
        "study": config["name"],
        "config_file": shown_path(args.config),
        "config": config,
        "runs_folder": shown_path(args.out),
        "regenerate": regenerate_command(args),
        "paper": {"citation": CITATION, "steps": 300000, "batch": 64,
                  "factorvae_metric": {m["name"]: m["paper_factorvae_metric"] for m in config["models"]}},
        "runs": data["runs"],
        "evaluations": data["evaluations"],
        "summaries": data["summaries"],
        "ordering": order,
        "not_yet_evaluated": data["not_yet_evaluated"],
        "pictures": pictures,
        "traversals": traversals,
    })
    return len(data["evaluations"])


# ---------------------------------------------------------------------------------------------


def parse_args(argv):
    """The command line."""
    parser = argparse.ArgumentParser(description="Train, evaluate and report the study (see the module docstring).")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="the study's config (benchmarks/study.json)")
    parser.add_argument("--elbo", default=DEFAULT_ELBO, help="the elbo binary (build/bin/elbo)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="the folder of the run folders (runs/study)")
    parser.add_argument("--docs", default=DEFAULT_DOCS, help="where results.md, results.json and images/ go (docs)")
    parser.add_argument("--time-limit", type=float, default=None,
                        help="stop cleanly after this many seconds (run again to continue)")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the page from the runs as they are")
    parser.add_argument("--python", default=None,
                        help="the Python with PyTorch for models trained by PyTorch (build/bench-venv/bin/python)")
    parser.add_argument("--share", default=None, metavar="I/N",
                        help="without MPI: take share I of N of the runs (run i when i mod N == I)")
    parser.add_argument("--torch-images", default=None,
                        help="the IDX file of the images PyTorch runs read (OUT/images.idx, made by elbo data)")
    return parser.parse_args(argv)


def main(argv):
    """Runs the study and writes the page; returns the exit status."""
    args = parse_args(argv)
    clock = Clock(args.time_limit)
    try:
        if args.time_limit is not None and not (args.time_limit > 0 and math.isfinite(args.time_limit)):
            raise StudyError(f"--time-limit must be a positive number of seconds, got {args.time_limit}")
        config = load_config(args.config)
        TOOLS["python"] = args.python or DEFAULT_PYTHON
        TOOLS["torch_images"] = os.path.abspath(args.torch_images or os.path.join(args.out, "images.idx"))
        if any(trainer(m) == "pytorch" for m in config["models"]) and not args.report_only:
            try:
                ok = subprocess.run([TOOLS["python"], "-c", "import torch, numpy"], capture_output=True).returncode == 0
            except OSError:
                ok = False
            if not ok:
                raise StudyError(f"models trained by PyTorch need a Python with torch and numpy; "
                                 f"{shown_path(TOOLS['python'])} has none (make bench-deps, or give --python)")
        elbo = os.path.abspath(args.elbo)
        if not (os.path.isfile(elbo) and os.access(elbo, os.X_OK)):
            raise StudyError(f"no elbo binary at {shown_path(elbo)} (build it with `make build`, or give --elbo)")
        check_runs(config, args.out)
        rank, size, job = mpi_place()
        shared = args.share is not None
        if shared:
            if size > 1:
                raise StudyError(f"--share {args.share} under MPI ({size} processes): MPI already shares the runs")
            rank, size = parse_share(args.share)
        global PLACE
        PLACE = f"process {rank} of {size}: " if size > 1 else ""
        if not args.report_only:
            finished = run_study(config, elbo, args.out, clock, rank, size)
            if size > 1 and not shared:
                finished = gather_ranks(args.out, job, rank, size, finished)
                if rank != 0:
                    say(clock, "my runs are done; process 0 writes the page")
                    return 0
            if not finished:
                say(clock, f"out of time: {standing(config, args.out)}. Run the same command again to continue.")
        elif rank != 0 and not shared:
            return 0
        count = write_report(config, args, elbo)
        say(clock, f"wrote {shown_path(os.path.join(args.docs, 'results.md'))} and results.json "
                   f"({count} evaluation{'' if count == 1 else 's'}); {standing(config, args.out)}")
        return 0
    except StudyError as e:
        print(f"study: {e}", file=sys.stderr)
        return 1
    except (Interrupted, KeyboardInterrupt):
        print(f"\nstudy: interrupted; the page is not rewritten. Run the same command again to continue.",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
