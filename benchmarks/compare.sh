#!/usr/bin/env bash
# elbo against PyTorch, in one sitting: `elbo bench` and benchmarks/pytorch_reference.py run
# alternately for ROUNDS rounds on each configuration, with the same threads; the medians over the
# rounds and their ratios (elbo / PyTorch, below 1 is faster) are printed, with the fraction of the
# Eigen GEMM peak (measured in every round of the same run, median) that the training step reaches.
#
#   benchmarks/compare.sh                                  # seed VAE, batch 64, 2 threads, 3 rounds
#   BATCHES="1 16 64 256" THREADS="1 2" benchmarks/compare.sh
#   MODEL=factor-vae benchmarks/compare.sh
#   DEVICE=cuda BATCHES="64 256" benchmarks/compare.sh    # on a GPU: elbo's CUDA module (BUILD built
#                                                          # with -DELBO_CUDA=ON) against PyTorch's CUDA
#
# On the CPU it needs Debian's python3-torch and libopenblas0-openmp (`make reference` installs
# them); without the OpenMP OpenBLAS, PyTorch runs about ten times slower and the comparison means
# nothing. PYTHON names another interpreter with torch (a CUDA build of it, on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-vae}
BATCHES=${BATCHES:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-10}
SHAPE=${SHAPE:---channels 3 --image-size 64 --latent 64}
BUILD=${BUILD:-build}
DEVICE=${DEVICE:-cpu}
PYTHON=${PYTHON:-/usr/bin/python3}
[ -x $BUILD/bin/elbo ] && [ -x $BUILD/benchmarks/gemm_peak ] || make build
[ $DEVICE = cuda ] || dpkg-query -W -f='${Status}\n' libopenblas0-openmp 2>/dev/null | grep -q 'install ok installed' ||
  { echo "compare.sh: libopenblas0-openmp is not installed; PyTorch would run on its reference BLAS" >&2; exit 1; }

results=$(mktemp)
trap 'rm -f $results' EXIT
for threads in $THREADS; do
  for batch in $BATCHES; do
    steps=$STEPS
    [ $batch -ge 256 ] && steps=$(( (STEPS + 1) / 2 ))
    for round in $(seq $ROUNDS); do
      # The GEMM peak is measured in every round too: the machine's speed drifts within minutes.
      [ $DEVICE = cuda ] || $BUILD/benchmarks/gemm_peak $threads | sed 's/^/gemm /' >> $results
      $BUILD/bin/elbo bench --model $MODEL $SHAPE --batch $batch --threads $threads --steps $steps \
        --device $DEVICE | sed 's/^/run /' >> $results
      OMP_NUM_THREADS=$threads $PYTHON benchmarks/pytorch_reference.py --model $MODEL $SHAPE --batch $batch \
        --threads $threads --steps $steps --device $DEVICE | sed 's/^/run /' >> $results
    done
  done
done

/usr/bin/python3 - "$results" <<'PY'
import json, statistics, sys
runs, peaks, own = {}, {}, {}
for line in open(sys.argv[1]):
    kind, text = line.split(" ", 1)
    j = json.loads(text)
    if kind == "gemm":
        peaks.setdefault(j["threads"], []).append(j["gemm_gflops"])
        own.setdefault(j["threads"], []).append(j["elbo_gemm_gflops"])
        continue
    lib = "elbo" if j["library"] == "elbo" else "pytorch"
    runs.setdefault((j["model"], j["device"], j["threads"], j["batch"]), {}).setdefault(lib, []).append(j)
print(f"{'model':<11}{'dev':>5}{'thr':>4}{'batch':>6} | {'train ms elbo':>14}{'pytorch':>9}{'ratio':>7} | "
      f"{'fwd ms elbo':>12}{'pytorch':>9}{'ratio':>7} | {'GFLOP/s':>8}{'of peak':>8} | {'RSS MB elbo':>12}{'pytorch':>8}")
for (model, device, threads, batch), libs in sorted(runs.items()):
    med = lambda lib, key: statistics.median(r[key] for r in libs[lib])
    t_e, t_p = med("elbo", "train_step_ms"), med("pytorch", "train_step_ms")
    f_e, f_p = med("elbo", "forward_ms"), med("pytorch", "forward_ms")
    g = med("elbo", "gflops")
    peak = statistics.median(peaks[threads]) if threads in peaks else float("nan")
    print(f"{model:<11}{device:>5}{threads:>4}{batch:>6} | {t_e:>14.1f}{t_p:>9.1f}{t_e / t_p:>7.2f} | {f_e:>12.1f}{f_p:>9.1f}"
          f"{f_e / f_p:>7.2f} | {g:>8.1f}{g / peak:>8.0%} | {med('elbo', 'peak_rss_mb'):>12.0f}"
          f"{med('pytorch', 'peak_rss_mb'):>8.0f}")
span = lambda v: f"{statistics.median(v):.0f} GFLOP/s (median of {len(v)}, {min(v):.0f}-{max(v):.0f})"
print("GEMM peak (Eigen, float, n = 2048): " + ", ".join(f"{t} threads {span(p)}" for t, p in sorted(peaks.items())))
print("elbo's own GEMM, same matrices: " + ", ".join(f"{t} threads {span(p)}" for t, p in sorted(own.items())))
PY
