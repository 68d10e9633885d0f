#!/usr/bin/env bash
# Layer by layer, elbo against PyTorch in one sitting: build/benchmarks/bench_layers and
# benchmarks/torch_layers.py (under each PyTorch compare.sh finds) alternately for ROUNDS rounds,
# with the GEMM peak measured in every round; medians, ratios (elbo / PyTorch, below 1 is faster)
# and the fraction of the GEMM peak each of elbo's passes reaches.
#
#   benchmarks/layers.sh                      # kim-mnih (and the discriminator), batch 64, 2 threads
#   ARCH=seed THREADS=1 benchmarks/layers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-kim-mnih}
BATCH=${BATCH:-64}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
REPEATS=${REPEATS:-5}
BUILD=${BUILD:-build}
PYTHONS=${PYTHONS:-$BUILD/bench-venv/bin/python /usr/bin/python3}
[ -x $BUILD/benchmarks/bench_layers ] && [ -x $BUILD/benchmarks/gemm_peak ] || make build
pythons=()
for py in $PYTHONS; do
  [ -x "$py" ] && "$py" -c "import torch" 2> /dev/null && pythons+=("$py") || echo "layers.sh: leaving out $py: no torch there" >&2
done

results=$(mktemp)
trap 'rm -f $results' EXIT
for round in $(seq $ROUNDS); do
  $BUILD/benchmarks/gemm_peak $THREADS | sed 's/^/gemm /' >> $results
  OMP_NUM_THREADS=$THREADS $BUILD/benchmarks/bench_layers $ARCH $BATCH $REPEATS | sed 's/^/elbo /' >> $results
  for py in "${pythons[@]}"; do
    version=$("$py" -c "import torch; print('.'.join(torch.__version__.split('.')[:2]))")
    OMP_NUM_THREADS=$THREADS "$py" benchmarks/torch_layers.py $ARCH $BATCH $REPEATS $THREADS |
      sed "s/^/pt$version /" >> $results
  done
done

/usr/bin/python3 - "$results" <<'PY'
import json, statistics, sys
layers, libs, peak = {}, [], []
for line in open(sys.argv[1]):
    lib, text = line.split(" ", 1)
    j = json.loads(text)
    if lib == "gemm":
        peak.append(j["gemm_gflops"])
        continue
    if lib not in libs:
        libs.append(lib)
    layers.setdefault(j["layer"], {}).setdefault(lib, []).append(j)
torches = [l for l in libs if l != "elbo"]
peak_med = statistics.median(peak)
head = f"{'layer':<22}"
for what in ("fwd ms", "bwd ms"):
    head += f" | {what + ' elbo':>12}" + "".join(f"{t:>9}{'ratio':>6}" for t in torches)
head += f" | {'elbo GFLOP/s fwd':>16}{'bwd':>6}{'of peak':>15}"
print(head)
total = {lib: [0.0, 0.0] for lib in libs}
for name, runs in layers.items():
    med = lambda lib, key: statistics.median(r[key] for r in runs[lib])
    row = f"{name:<22}"
    for key, at in (("forward_ms", 0), ("backward_ms", 1)):
        e = med("elbo", key)
        row += f" | {e:>12.2f}" + "".join(f"{med(t, key):>9.2f}{e / med(t, key):>6.2f}" for t in torches)
        for lib in libs:
            total[lib][at] += med(lib, key)
    gf, gb = med("elbo", "forward_gflops"), med("elbo", "backward_gflops")
    row += f" | {gf:>16.1f}{gb:>6.1f}{gf / peak_med:>8.0%} {gb / peak_med:>6.0%}"
    print(row)
row = f"{'all layers':<22}"
for at in (0, 1):
    row += f" | {total['elbo'][at]:>12.2f}" + "".join(f"{total[t][at]:>9.2f}{total['elbo'][at] / total[t][at]:>6.2f}" for t in torches)
print(row)
print(f"GEMM peak (Eigen, float, n = 2048): {peak_med:.0f} GFLOP/s (median of {len(peak)}, {min(peak):.0f}-{max(peak):.0f})")
PY
