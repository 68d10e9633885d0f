#!/usr/bin/env bash
# The ISA matrix behind `make test-isa`: the kernel and gradient tests (tests/isa/CMakeLists.txt)
# built and run once per vector ISA that Eigen's packet layer compiles elbo's kernels to, each in
# build-isa/<variant> (kept, so a second run rebuilds only what changed). One line per variant,
# then a closing count; the exit status is 1 when a variant failed to build or a test failed.
#
#   tests/isa/run.sh                 every variant
#   tests/isa/run.sh neon sve        only these
#
# A variant this machine cannot run is skipped with the reason; AVX-512 without avx512f is still
# compiled (the only check its code gets on such a machine), then skipped.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
root=$PWD
out=${ISA_BUILD:-build-isa}
jobs=${JOBS:-2}
toolchain=$root/cmake/aarch64-linux-gnu.cmake

# variant | compiler flags | what Eigen::SimdInstructionSetsInUse() says | float packet lanes
# (Eigen 3.4 names AVX2 + FMA builds "AVX ..."; the 8 lanes tell AVX from SSE. Its SVE backend is
# fixed-length, has float packets only, and is used only when EIGEN_ARM64_USE_SVE asks for it.
# ELBO_BASELINE_ISA: these builds are meant for any CPU of their architecture, so simd.hpp need not
# warn that SSE2 is slow.)
variants=(
  "sse2|-march=x86-64 -DELBO_BASELINE_ISA|SSE, SSE2|4"
  "avx2|-march=haswell|AVX SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2|8"
  "avx512|-march=skylake-avx512|AVX512, FMA, AVX2, AVX, SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2|16"
  "neon|-march=armv8-a -DELBO_BASELINE_ISA|ARM NEON|4"
  "sve|-march=armv8.2-a+sve -msve-vector-bits=256 -DEIGEN_ARM64_USE_SVE|ARM SVE|8"
)

cpu_has() { grep -qw "$1" /proc/cpuinfo; }

# Why this machine cannot run a variant ("" when it can).
why_not_run() {
  case $1 in
    sse2|avx2|avx512)
      [ "$(uname -m)" = x86_64 ] || { echo "not an x86-64 machine"; return; }
      case $1 in
        avx2) for f in avx2 fma; do cpu_has $f || { echo "no $f in /proc/cpuinfo"; return; }; done ;;
        avx512) cpu_has avx512f || echo "no avx512f in /proc/cpuinfo" ;;
      esac ;;
    neon|sve)
      for p in aarch64-linux-gnu-g++ qemu-aarch64; do
        command -v $p > /dev/null || { echo "no $p (Debian: g++-aarch64-linux-gnu, qemu-user)"; return; }
      done ;;
  esac
}

# Whether a variant this machine cannot run is still worth compiling.
build_anyway() { [ "$1" = avx512 ] && [ "$(uname -m)" = x86_64 ]; }

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b - a }'; }

selected=("$@")
for name in "${selected[@]}"; do
  if ! printf '%s\n' "${variants[@]}" | grep -q "^$name|"; then
    echo "tests/isa/run.sh: no variant '$name' (there are: sse2 avx2 avx512 neon sve)" >&2
    exit 2
  fi
done
passed=0 failed=0 skipped=0
summary=()
start_all=$(now)
for row in "${variants[@]}"; do
  IFS='|' read -r name flags expected width <<< "$row"
  if [ ${#selected[@]} -gt 0 ] && [[ " ${selected[*]} " != *" $name "* ]]; then continue; fi
  dir=$out/$name
  reason=$(why_not_run "$name")
  if [ -n "$reason" ] && ! build_anyway "$name"; then
    summary+=("$(printf '%-7s skipped: %s' "$name" "$reason")")
    skipped=$((skipped + 1))
    continue
  fi

  echo "== test-isa: $name ($flags)"
  args=(-S tests/isa -B "$dir" -DCMAKE_BUILD_TYPE=Release "-DELBO_ISA_FLAGS=$flags"
        "-DELBO_ISA_EXPECTED=$expected" "-DELBO_ISA_FLOAT_WIDTH=$width")
  case $name in
    neon) args+=(-DCMAKE_TOOLCHAIN_FILE="$toolchain") ;;
    sve) args+=(-DCMAKE_TOOLCHAIN_FILE="$toolchain" "-DELBO_QEMU_CPU=max,sve256=on") ;;
  esac
  # (A build this machine cannot run registers no tests: listing them would run the program.)
  if [ -z "$reason" ]; then args+=(-DELBO_ISA_RUNNABLE=ON); else args+=(-DELBO_ISA_RUNNABLE=OFF); fi
  mkdir -p "$dir"
  t0=$(now)
  if ! { cmake "${args[@]}" && cmake --build "$dir" -j"$jobs"; } > "$dir/build.log" 2>&1; then
    tail -n 60 "$dir/build.log"
    summary+=("$(printf '%-7s FAILED to build (%s s): see %s/build.log' "$name" "$(secs "$t0" "$(now)")" "$dir")")
    failed=$((failed + 1))
    continue
  fi
  t1=$(now)
  if [ -n "$reason" ]; then
    summary+=("$(printf '%-7s skipped: %s (built in %s s, not run)' "$name" "$reason" "$(secs "$t0" "$t1")")")
    skipped=$((skipped + 1))
    continue
  fi

  (cd "$dir" && ctest --output-on-failure --no-tests=error -j"$jobs")
  status=$?
  t2=$(now)
  # What the isa test printed: the instruction set Eigen names and the packet widths.
  isa=$(grep -ho 'Eigen: .*lanes' "$dir/Testing/Temporary/LastTest.log" 2>/dev/null | head -n 1)
  times="build $(secs "$t0" "$t1") s, tests $(secs "$t1" "$t2") s"
  if [ $status -eq 0 ]; then
    summary+=("$(printf '%-7s passed (%s) %s' "$name" "$times" "$isa")")
    passed=$((passed + 1))
  else
    summary+=("$(printf '%-7s FAILED (%s): see the ctest output above' "$name" "$times")")
    failed=$((failed + 1))
  fi
done

echo "== test-isa, in $(secs "$start_all" "$(now)") s:"
printf '%s\n' "${summary[@]}"
echo "test-isa: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
