#!/usr/bin/env bash
# elbo against PyTorch, in one sitting: `elbo bench` and benchmarks/pytorch_reference.py (under each
# PyTorch it finds) run alternately for ROUNDS rounds on each configuration, with the same threads;
# the medians over the rounds and their ratios (elbo / PyTorch, below 1 is faster) are printed, with
# the fraction of the GEMM peak (measured in every round of the same run, median) that elbo's
# training step reaches. Each PyTorch's version, threads and BLAS / oneDNN configuration come first.
#
#   benchmarks/compare.sh                                  # seed VAE, batch 64, 2 threads, 3 rounds
#   ARCH=kim-mnih MODELS="vae factor-vae" benchmarks/compare.sh    # the paper's dSprites models
#   BATCHES="1 16 64 256" THREADS="1 2" benchmarks/compare.sh
#   DEVICE=cuda BATCHES="64 256" benchmarks/compare.sh    # on a GPU: elbo's CUDA module (BUILD built
#                                                          # with -DELBO_CUDA=ON) against PyTorch's CUDA
#
# The PyTorches (PYTHONS, interpreters with torch): PyTorch 2.x from PyPI in BUILD/bench-venv
# (`make bench-deps` installs it) and Debian's PyTorch 1.13 (/usr/bin/python3, with python3-torch
# and libopenblas0-openmp: `make reference` installs them); those missing are left out, with the
# reason. Without the OpenMP OpenBLAS, Debian's PyTorch runs about ten times slower and the
# comparison means nothing, so it is left out then too.
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-seed}
MODELS=${MODELS:-${MODEL:-vae}}
BATCHES=${BATCHES:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-10}
BUILD=${BUILD:-build}
DEVICE=${DEVICE:-cpu}
# The seed's images are 3 x 64 x 64 with D = 64; the paper's dSprites, 1 x 64 x 64 with D = 10.
case $ARCH in
  seed) SHAPE=${SHAPE:---channels 3 --image-size 64 --latent 64} ;;
  kim-mnih) SHAPE=${SHAPE:---channels 1 --image-size 64 --latent 10} ;;
  *) echo "compare.sh: ARCH must be seed or kim-mnih, got '$ARCH'" >&2; exit 2 ;;
esac
PYTHONS=${PYTHONS:-$BUILD/bench-venv/bin/python /usr/bin/python3}
[ -x $BUILD/bin/elbo ] && [ -x $BUILD/benchmarks/gemm_peak ] || make build

pythons=()
for py in $PYTHONS; do
  if ! [ -x "$py" ] || ! "$py" -c "import torch" 2> /dev/null; then
    echo "compare.sh: leaving out $py: no torch there" >&2
  elif [ $DEVICE = cpu ] && [ "$py" = /usr/bin/python3 ] &&
      ! dpkg-query -W -f='${Status}\n' libopenblas0-openmp 2> /dev/null | grep -q 'install ok installed'; then
    echo "compare.sh: leaving out $py: libopenblas0-openmp is not installed, so its PyTorch would run on the reference BLAS" >&2
  else
    pythons+=("$py")
  fi
done
[ ${#pythons[@]} -gt 0 ] || { echo "compare.sh: no PyTorch to compare with (make bench-deps, make reference)" >&2; exit 1; }

echo "elbo: $($BUILD/bin/elbo --version | head -1); CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for py in "${pythons[@]}"; do
  for threads in $THREADS; do
    OMP_NUM_THREADS=$threads "$py" - "$py" $threads <<'PY'
import re, sys, torch
torch.set_num_threads(int(sys.argv[2]))
config = torch.__config__.show().splitlines()
keep = ("MKL", "oneAPI", "OpenBLAS", "MKL-DNN", "OpenMP", "CPU capability", "BLAS_INFO")
lines = [re.sub(r" \(Git Hash[^)]*\)|-Product Build \d+ for Intel\(R\) 64 architecture applications", "", l.strip(" -"))
         for l in config if any(k in l for k in keep)]
blas = [w for w in torch.__config__.show().replace(",", " ").split() if w.startswith("BLAS_INFO=")]
print(f"PyTorch {torch.__version__} ({sys.argv[1]}): {torch.get_num_threads()} threads; "
      + "; ".join(l for l in lines if not l.startswith("Build settings")) + ("; " + blas[0] if blas else ""))
PY
  done
done

results=$(mktemp)
trap 'rm -f $results' EXIT
for threads in $THREADS; do
  for model in $MODELS; do
    for batch in $BATCHES; do
      steps=$STEPS
      [ $batch -ge 256 ] && steps=$(( (STEPS + 1) / 2 ))
      for round in $(seq $ROUNDS); do
        # The GEMM peak is measured in every round too: the machine's speed drifts within minutes.
        [ $DEVICE = cuda ] || $BUILD/benchmarks/gemm_peak $threads | sed 's/^/gemm /' >> $results
        $BUILD/bin/elbo bench --model $model --arch $ARCH $SHAPE --batch $batch --threads $threads --steps $steps \
          --device $DEVICE | sed 's/^/run /' >> $results
        for py in "${pythons[@]}"; do
          OMP_NUM_THREADS=$threads "$py" benchmarks/pytorch_reference.py --model $model --arch $ARCH $SHAPE \
            --batch $batch --threads $threads --steps $steps --device $DEVICE | sed 's/^/run /' >> $results
        done
      done
    done
  done
done

/usr/bin/python3 - "$results" <<'PY'
import json, statistics, sys
runs, peaks, own = {}, {}, {}
torches = []
for line in open(sys.argv[1]):
    kind, text = line.split(" ", 1)
    j = json.loads(text)
    if kind == "gemm":
        peaks.setdefault(j["threads"], []).append(j["gemm_gflops"])
        own.setdefault(j["threads"], []).append(j["elbo_gemm_gflops"])
        continue
    lib = j["library"]
    if lib != "elbo" and lib not in torches:
        torches.append(lib)
    runs.setdefault((j["model"], j["arch"], j["device"], j["threads"], j["batch"]), {}).setdefault(lib, []).append(j)
names = ["pt " + ".".join(t.split()[1].split(".")[:2]) for t in torches]  # "pytorch 2.15.0+cu132" -> "pt 2.15"
head = f"{'model':<11}{'arch':>9}{'dev':>5}{'thr':>4}{'batch':>6}"
for what in ("train ms", "fwd ms"):
    head += f" | {what + ' elbo':>13}" + "".join(f"{n:>10}{'ratio':>6}" for n in names)
head += f" | {'GFLOP/s':>8}{'of peak':>8} | {'RSS MB elbo':>11}" + "".join(f"{n:>10}" for n in names)
print(head)
for (model, arch, device, threads, batch), libs in sorted(runs.items()):
    med = lambda lib, key: statistics.median(r[key] for r in libs[lib]) if lib in libs else float("nan")
    row = f"{model:<11}{arch:>9}{device:>5}{threads:>4}{batch:>6}"
    for key in ("train_step_ms", "forward_ms"):
        e = med("elbo", key)
        row += f" | {e:>13.1f}" + "".join(f"{med(t, key):>10.1f}{e / med(t, key):>6.2f}" for t in torches)
    g = med("elbo", "gflops")
    peak = statistics.median(peaks[threads]) if threads in peaks else float("nan")
    row += f" | {g:>8.1f}{g / peak:>8.0%} | {med('elbo', 'peak_rss_mb'):>11.0f}"
    row += "".join(f"{med(t, 'peak_rss_mb'):>10.0f}" for t in torches)
    print(row)
span = lambda v: f"{statistics.median(v):.0f} GFLOP/s (median of {len(v)}, {min(v):.0f}-{max(v):.0f})"
if peaks:
    print("GEMM peak (Eigen, float, n = 2048): " + ", ".join(f"{t} threads {span(p)}" for t, p in sorted(peaks.items())))
    print("elbo's own GEMM, same matrices: " + ", ".join(f"{t} threads {span(p)}" for t, p in sorted(own.items())))
PY
