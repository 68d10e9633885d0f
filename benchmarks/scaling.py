#!/usr/bin/python3
"""How elbo's cost grows: the VAE's training step (forward, backward, Adam) and peak memory for each
network, image size, batch and thread count, by `elbo bench`, one process per configuration (so
each peak RSS is that configuration's own), written as a table into docs/benchmarks.md between
the markers <!-- scaling:begin --> and <!-- scaling:end -->, with the CPU, ISA, compiler and commit.
Each configuration runs --rounds times, the thread counts alternating, and the fastest run stands:
on a shared machine a neighbour's load only ever slows a run down.

    benchmarks/scaling.py                      # both networks, S 32/64/128, batch 1/16/64/256, 1 and 2 threads
    benchmarks/scaling.py --sizes 32 --batches "1 16" --print    # a quick look, the page untouched

Time it only while nothing else runs: the machines are shared and each figure is one median.
"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SHAPES = {"seed": (3, 64), "kim-mnih": (1, 10)}  # channels and D, as compare.sh runs them


def bench(elbo, arch, size, batch, threads, steps):
    channels, latent = SHAPES[arch]
    # Fewer timed steps where one step takes seconds (`steps` at the seed's batch of 64 images of
    # 3 x 64 x 64 and below, at least 2); the warm-up fills the buffer pool.
    work = batch * size * size * channels
    steps = max(2, min(steps, steps * (64 * 64 * 64 * 3) // work))
    cmd = [elbo, "bench", "--model", "vae", "--arch", arch, "--channels", str(channels), "--image-size", str(size),
           "--latent", str(latent), "--batch", str(batch), "--threads", str(threads), "--steps", str(steps),
           "--warmup", "2"]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(ROOT, "build"))
    p.add_argument("--archs", default="seed kim-mnih")
    p.add_argument("--sizes", default="32 64 128")
    p.add_argument("--batches", default="1 16 64 256")
    p.add_argument("--threads", default="1 2")
    p.add_argument("--steps", type=int, default=8, help="timed steps at the seed's 64 x 64 batch 64, fewer for larger work")
    p.add_argument("--rounds", type=int, default=3, help="runs of each configuration; the fastest is kept")
    p.add_argument("--print", action="store_true", help="print the table instead of writing it into docs/benchmarks.md")
    a = p.parse_args()
    elbo = os.path.join(a.build, "bin", "elbo")
    threads = [int(t) for t in a.threads.split()]
    rows = []
    for arch in a.archs.split():
        for size in (int(s) for s in a.sizes.split()):
            for batch in (int(b) for b in a.batches.split()):
                # Rounds alternate the thread counts; the fastest round stands, since a shared
                # machine's neighbours only ever slow a run down.
                rounds = [{t: bench(elbo, arch, size, batch, t, a.steps) for t in threads} for _ in range(a.rounds)]
                runs = {t: min((r[t] for r in rounds), key=lambda j: j["train_step_ms"]) for t in threads}
                print(f"{arch} S {size} batch {batch}: " + ", ".join(
                    f"{t} thr {r['train_step_ms']:.1f} ms {r['peak_rss_mb']:.0f} MB" for t, r in runs.items()),
                    file=sys.stderr)
                rows.append((arch, size, batch, runs))

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    version = subprocess.run([elbo, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    # The script's tree, where the elbo timed is not built from it (its version names its own commit).
    tree = f"; the scripts' tree at {commit}{' with local changes' if dirty else ''}" if f"commit {commit};" not in version else ""
    lines = [f"{cpu}, {os.cpu_count()} cores; {version}{tree}. "
             f"The VAE's training step (forward, backward, Adam): the median ms of the fastest of {a.rounds} runs, and its peak RSS; "
             f"seed: C 3, D 64; kim-mnih: C 1, D 10. Written by benchmarks/scaling.py.", ""]
    head = "| network | S | batch | " + " | ".join(f"{t} thread{'s' if t > 1 else ''} ms | MB" for t in threads)
    if 1 in threads and 2 in threads:
        head += " | 2-thread speed-up"
    lines.append(head + " |")
    lines.append("|" + "---|" * (head.count("|") - 0))
    for arch, size, batch, runs in rows:
        cells = [arch, str(size), str(batch)]
        for t in threads:
            cells += [f"{runs[t]['train_step_ms']:.1f}", f"{runs[t]['peak_rss_mb']:.0f}"]
        if 1 in threads and 2 in threads:
            cells.append(f"{runs[1]['train_step_ms'] / runs[2]['train_step_ms']:.2f}×")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    if a.print:
        print(table)
        return
    page = os.path.join(ROOT, "docs", "benchmarks.md")
    text = open(page).read()
    begin, end = "<!-- scaling:begin -->", "<!-- scaling:end -->"
    if begin not in text or end not in text:
        sys.exit(f"scaling.py: {page} has no {begin} ... {end} section to write into")
    before, rest = text.split(begin, 1)
    after = rest.split(end, 1)[1]
    tmp = page + ".tmp-scaling"
    with open(tmp, "w") as f:
        f.write(before + begin + "\n" + table + "\n" + end + after)
    os.replace(tmp, page)
    print(f"scaling.py: wrote the table into {page}", file=sys.stderr)


if __name__ == "__main__":
    main()
