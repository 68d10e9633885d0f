#!/usr/bin/python3
"""benchmarks/study.py against the real elbo, on benchmarks/study_test.json (2 models x 2 seeds,
evaluated at steps 2 and 4, in seconds): interrupted by its time limit, then continued to the
end, the page and its pictures written; --report-only rewrites the same page; under mpirun with
two processes (where there is one), the same numbers; a model trained by PyTorch (where a Python
has it) evaluated and shown beside elbo's.

    /usr/bin/python3 tests/study_test.py build/bin/elbo [PYTHON ...]

PYTHON: interpreters to try for PyTorch; with the first that has it, a model trained by
benchmarks/pytorch_train.py joins a small study beside elbo's.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
STUDY = os.path.join(HERE, "..", "benchmarks", "study.py")
CONFIG = os.path.join(HERE, "..", "benchmarks", "study_test.json")
SHIP = os.path.join(HERE, "..", "benchmarks", "ship_models.py")


def study(elbo, scratch, *extra):
    command = [sys.executable, STUDY, "--config", CONFIG, "--elbo", elbo, "--out", os.path.join(scratch, "runs"),
               "--docs", os.path.join(scratch, "docs"), *extra]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stderr}"
    return done.stdout + done.stderr


def safetensors(path):
    """A safetensors file's header (its "__metadata__" among the tensors' entries) and its data bytes."""
    with open(path, "rb") as f:
        header = json.loads(f.read(int.from_bytes(f.read(8), "little")))
        return header, f.read()


def evaluations(scratch):
    runs = os.path.join(scratch, "runs")
    return sorted(f"{run}/{name}" for run in os.listdir(runs) if os.path.isdir(os.path.join(runs, run))
                  for name in os.listdir(os.path.join(runs, run)) if name.startswith("eval-"))


def main(elbo, pythons):
    scratch = tempfile.mkdtemp(prefix="elbo-study-test-")
    try:
        # Three seconds of a study of about ten stop it early, some runs unfinished; the second
        # call finishes it.
        first = study(elbo, scratch, "--time-limit", "3")
        assert "out of time" in first, first
        partial = evaluations(scratch)
        assert len(partial) < 8, partial
        study(elbo, scratch)
        expected = [f"{model}-s{seed}/eval-{step}.json" for model in ("factor-vae", "vae") for seed in (0, 1)
                    for step in (2, 4)]
        assert evaluations(scratch) == expected, evaluations(scratch)
        for name in expected:
            with open(os.path.join(scratch, "runs", name)) as f:
                assert 0 <= json.load(f)["factorvae_metric"] <= 1

        docs = os.path.join(scratch, "docs")
        with open(os.path.join(docs, "results.md")) as f:
            page = f.read()
        assert "All 8 evaluations are done." in page, page
        assert "| FactorVAE | γ = 35 | 2 of 2 | 4 |" in page, page
        with open(os.path.join(docs, "results.json")) as f:
            numbers = json.load(f)
        assert isinstance(numbers, dict) and numbers, numbers
        for picture in ("study-factorvae-metric.svg", "study-mig.svg", "study-tradeoff.svg"):
            with open(os.path.join(docs, "images", picture)) as f:
                assert f.read().startswith("<svg"), picture
        for picture in ("traversal-vae.png", "traversal-factor-vae.png"):
            with open(os.path.join(docs, "images", picture), "rb") as f:
                assert f.read(8) == b"\x89PNG\r\n\x1a\n", picture

        # The page says what the runs hold and nothing else: rewriting it changes nothing.
        study(elbo, scratch, "--report-only")
        with open(os.path.join(docs, "results.md")) as f:
            assert f.read() == page

        # The models shipped from it: each model's best seed at its last checkpoint, weights only,
        # scored again from the file with another seed.
        models = os.path.join(scratch, "models")
        done = subprocess.run([sys.executable, SHIP, "--results", os.path.join(docs, "results.json"), "--elbo", elbo,
                               "--out", models], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        with open(os.path.join(models, "README.md")) as f:
            listed = f.read()
        for model in ("vae", "factor-vae"):
            scores = {seed: json.load(open(os.path.join(scratch, "runs", f"{model}-s{seed}", "eval-4.json")))
                      ["factorvae_metric"] for seed in (0, 1)}
            best = max((0, 1), key=lambda seed: (scores[seed], -seed))
            header, _ = safetensors(os.path.join(models, f"{model}.safetensors"))
            meta = header.pop("__metadata__")
            assert meta["seed"] == str(best) and meta["steps"] == "4" and meta["model"] == model, meta
            assert float(meta["factorvae_metric"]) == scores[best], (meta, scores)
            assert all(v["dtype"] == "F32" for v in header.values()), header
            assert not any(k.startswith(("optimizer.", "discriminator.")) for k in header), list(header)
            row = next(line for line in listed.splitlines() if line.startswith(f"| {model}.safetensors |"))
            assert f"| {best} | 4 | {scores[best]:.3f} ± " in row and "(seed 1) |" in row, row
        bad = subprocess.run([sys.executable, SHIP, "--results", os.path.join(docs, "results.md"), "--elbo", elbo,
                              "--out", models], capture_output=True, text=True)
        assert bad.returncode == 1 and bad.stderr.startswith("ship_models: ") and "results.md" in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr

        # The same study shared by two MPI processes (two runs each): the same numbers.
        mpirun = shutil.which("mpirun")
        shared = "no mpirun: the study on 2 processes was not tried"
        if mpirun:
            other = os.path.join(scratch, "mpi")
            command = [mpirun, "--oversubscribe", "--allow-run-as-root", "-np", "2", sys.executable, STUDY,
                       "--config", CONFIG, "--elbo", elbo, "--out", os.path.join(other, "runs"),
                       "--docs", os.path.join(other, "docs")]
            done = subprocess.run(command, capture_output=True, text=True)
            assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            assert "process 1 of 2: my runs are done" in done.stdout, done.stdout
            with open(os.path.join(other, "docs", "results.json")) as f:
                theirs = comparable(json.load(f), other)
            ours = comparable(numbers, scratch)
            assert theirs == ours, first_difference(theirs, ours)
            assert not os.path.exists(os.path.join(other, "runs", ".ranks"))
            shared = "the same results.json from 2 MPI processes"

        # The same study in two shares (--share 0/2, then 1/2, as two processes side by side would
        # run them): the first trains only its runs and writes a page of what it has; the second
        # finishes the study and writes the same numbers as one process.
        other = os.path.join(scratch, "shares")
        def share(which):
            return study(elbo, other, "--share", which)
        out = share("0/2")
        assert "process 0 of 2" in out and "evaluate" in out, out
        assert len(evaluations(other)) == 4, evaluations(other)
        out = share("1/2")
        # The second share takes the models in reverse (so that two shares train different models
        # side by side): FactorVAE's seed 1 before the VAE's.
        assert out.index("1 of 2: factor-vae-s1:") < out.index("1 of 2: vae-s1:"), out
        assert evaluations(other) == expected, evaluations(other)
        with open(os.path.join(other, "docs", "results.json")) as f:
            theirs = comparable(json.load(f), other)
        assert theirs == comparable(numbers, scratch), first_difference(theirs, comparable(numbers, scratch))
        for bad in ("2/2", "1", "-1/2", "a/b"):
            done = subprocess.run([sys.executable, STUDY, "--config", CONFIG, "--elbo", elbo, "--out", other,
                                   f"--share={bad}"], capture_output=True, text=True)
            assert done.returncode == 1 and "--share must be I/N" in done.stderr, (bad, done.stderr)

        # A model trained by PyTorch beside elbo's, where a Python has torch: on 64 of elbo's images.
        python = next((p for p in pythons if os.path.exists(p) and subprocess.run(
            [p, "-c", "import torch, numpy"], capture_output=True).returncode == 0), None)
        beside = "no Python with PyTorch: a model trained by PyTorch was not tried"
        if python:
            with open(CONFIG) as f:
                config = json.load(f)
            factor = config["models"][1]
            config.update(seeds=[0], eval_at=[2],
                          models=[factor, dict(factor, name="factor-vae-pytorch", label="FactorVAE (PyTorch)",
                                               trainer="pytorch"),
                                  dict(factor, name="factor-vae-pytorch-einit", label="FactorVAE (PyTorch, elbo's init)",
                                       trainer="pytorch", init="elbo")])
            other = os.path.join(scratch, "torch")
            os.makedirs(other)
            with open(os.path.join(other, "study.json"), "w") as f:
                json.dump(config, f)
            images = os.path.join(other, "images.idx")
            subprocess.run([elbo, "data", "--data", "dsprites", "--count", "64", "--idx", images], check=True,
                           capture_output=True)
            command = [sys.executable, STUDY, "--config", os.path.join(other, "study.json"), "--elbo", elbo,
                       "--out", os.path.join(other, "runs"), "--docs", os.path.join(other, "docs"),
                       "--python", python, "--torch-images", images]
            done = subprocess.run(command, capture_output=True, text=True)
            assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"
            run = os.path.join(other, "runs", "factor-vae-pytorch-s0")
            with open(os.path.join(run, "eval-2.json")) as f:
                assert 0 <= json.load(f)["factorvae_metric"] <= 1
            header, _ = safetensors(os.path.join(run, "checkpoint.safetensors"))
            assert header["__metadata__"]["trained_by"].startswith("pytorch"), header["__metadata__"]
            with open(os.path.join(other, "docs", "results.md")) as f:
                page = f.read()
            assert "| FactorVAE (PyTorch) |" in page, page
            # The run from elbo's initial weights started from `elbo train --steps 0` of its seed.
            einit = os.path.join(other, "runs", "factor-vae-pytorch-einit-s0")
            with open(os.path.join(einit, "config.json")) as f:
                started = json.load(f)["init"]
            assert started == os.path.join(einit, "elbo-init", "checkpoint.safetensors"), started
            again = os.path.join(other, "init-again")
            subprocess.run([elbo, "train", *factor["flags"], "--data", "dsprites", "--seed", "0", "--steps", "0",
                            "--batch", str(config["batch"]), "--out", again], check=True, capture_output=True)
            def weights(path):
                header, data = safetensors(path)
                return {k: data[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()
                        if k != "__metadata__"}
            assert weights(started) == weights(os.path.join(again, "checkpoint.safetensors"))
            train = json.loads(safetensors(os.path.join(einit, "checkpoint.safetensors"))[0]["__metadata__"]["train"])
            assert train["init"] == "elbo", train
            # ... and says so after a resume, which is not given --init again.
            resumed = subprocess.run([python, os.path.join(HERE, "..", "benchmarks", "pytorch_train.py"),
                                      *factor["flags"], "--data", images, "--steps", "3", "--batch",
                                      str(config["batch"]), "--out", einit, "--resume"], capture_output=True, text=True)
            assert resumed.returncode == 0, resumed.stderr
            meta = safetensors(os.path.join(einit, "checkpoint.safetensors"))[0]["__metadata__"]
            assert meta["step"] == "3" and json.loads(meta["train"])["init"] == "elbo", meta
            # docs/checkpoints.md's lines that load a shipped model in PyTorch, as written there.
            with open(os.path.join(HERE, "..", "docs", "checkpoints.md")) as f:
                section = f.read().split("## The shipped models, from PyTorch", 1)[1]
            code = section.split("```python\n", 1)[1].split("```", 1)[0]
            code = code.replace("models/factor-vae.safetensors", os.path.join(models, "factor-vae.safetensors"))
            code = "import torch\nimages = torch.rand(2, 1, 64, 64)\n" + code + "assert mu.shape == (2, 4)\n"
            loaded = subprocess.run([python, "-c", code], cwd=os.path.join(HERE, ".."), capture_output=True, text=True)
            assert loaded.returncode == 0, loaded.stderr
            beside = f"a model trained by PyTorch ({python}) evaluated and on the page, a shipped one loaded"
    finally:
        shutil.rmtree(scratch)
    print(f"study_test: interrupted, continued, 8 evaluations, page and pictures written; {shared}; "
          f"the same results.json from two --share studies; {beside}")


def first_difference(a, b, path=""):
    """Where two JSON values first differ, for the message of a failed comparison."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return first_difference(a.get(k), b.get(k), f"{path}/{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return f"{path}: {a!r} against {b!r}"


def comparable(value, root):
    """results.json without what differs between two studies of the same numbers: where they ran
    (their folder, `root`, in every path), when, for how long, the history of their trainings."""
    volatile = {"date", "commit", "dirty", "cpu", "study_run"}
    if isinstance(value, dict):
        return {k: comparable(v, root) for k, v in value.items() if k not in volatile and not k.endswith("seconds")}
    if isinstance(value, list):
        return [comparable(v, root) for v in value]
    return value.replace(root, "<root>") if isinstance(value, str) else value


if __name__ == "__main__":
    main(os.path.abspath(sys.argv[1]), sys.argv[2:])
