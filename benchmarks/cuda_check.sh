#!/usr/bin/env bash
# What to run on a machine with an NVIDIA GPU, in one go: build elbo with its CUDA module, run the
# CUDA tests (the kernels against their CPU twins, the whole training step, `elbo train|bench
# --device cuda`), then shadow mode on the GPU, then time the training step against PyTorch's CUDA at batch 64 and 256, then
# train a FactorVAE on the GPU with the study script (benchmarks/study_cuda.json: 20,000 steps,
# evaluated on the CPU at 5,000 and 20,000; its page goes to runs/study-cuda/docs). The figures
# belong in docs/benchmarks.md, docs/cuda.md and docs/results.md.
#
#   benchmarks/cuda_check.sh                 # NVCC, BUILD, PYTHON, ROUNDS and STEPS may be set
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-cuda}
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
cmake -S . -B $BUILD -DCMAKE_BUILD_TYPE=Release -DELBO_CUDA=ON -DCMAKE_CUDA_COMPILER=$NVCC
cmake --build $BUILD -j"$(nproc)"
(cd $BUILD && ctest --output-on-failure -R cuda)
# Shadow mode: every 50th of 200 FactorVAE steps on the GPU taken again in double on the CPU and
# compared op by op; it names the first op past the tolerance and writes its two tensors.
$BUILD/bin/elbo train --model factor-vae --data dsprites --device cuda --steps 200 --shadow 50 \
  --out runs/shadow-cuda 2>&1 | grep -E "shadow|error" || true
for model in vae factor-vae; do
  MODEL=$model DEVICE=cuda BUILD=$BUILD BATCHES="64 256" THREADS=${THREADS:-4} ROUNDS=${ROUNDS:-3} \
    STEPS=${STEPS:-20} benchmarks/compare.sh
done
/usr/bin/python3 benchmarks/study.py --config benchmarks/study_cuda.json --elbo $BUILD/bin/elbo \
  --out runs/study-cuda --docs runs/study-cuda/docs --time-limit ${STUDY_SECONDS:-240}
