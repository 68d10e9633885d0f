# elbo's front door: `make demo` and `make test` set up a fresh Debian 12 machine themselves.
#
#   make test           Release build in build/ (with the CUDA module where nvcc is), then every test
#   make demo           the main job: trains the seed VAE on Fashion-MNIST for DEMO_SECONDS, then
#                       evaluates it and says where its pictures are (runs/demo)
#   make test-sanitize  the tests again, built with AddressSanitizer and UBSan (build-sanitize/)
#   make test-isa       the kernel and gradient tests once per vector ISA: SSE2, AVX2 + FMA, AVX-512
#                       (where the CPU has it; elsewhere only compiled), and NEON and SVE
#                       cross-compiled for aarch64, run under qemu (build-isa/<variant>; tests/isa/run.sh)
#   make test-reference the models', kernels' and gradients' tests with ELBO_REFERENCE_KERNELS=ON: the
#                       ops run the plain-loop kernels (build-reference/)
#   make fuzz           the safetensors reader under libFuzzer for FUZZ_SECONDS (build-fuzz/)
#   make consumer       install elbo, then build a project that uses it three ways, and once with
#                       its own -march instead of ELBO_NATIVE (build-consumer/)
#   make reference      regenerate tests/reference/*.safetensors with Debian's python3-torch
#   make bench-deps     PyTorch 2.x from PyPI in $(BUILD)/bench-venv, and Debian's PyTorch 1.13 with
#                       its OpenMP OpenBLAS, for the benchmarks (never needed by make test)
#   make bench          elbo against both PyTorches: the seed VAE, and the paper's kim-mnih VAE and
#                       FactorVAE (benchmarks/compare.sh; batch 64, 2 threads, 3 rounds)

BUILD        ?= build
JOBS         ?= 2
FUZZ_SECONDS ?= 60
DEMO         ?= runs/demo
DEMO_SECONDS ?= 180
CMAKE_ARGS   ?=
# The CUDA module is built wherever nvcc is installed (CUDA=off skips it); it never needs a GPU to
# build, and its tests that need one are skipped, with the reason, where there is none.
NVCC         := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA         ?= $(if $(NVCC),on,off)
CUDA_ARGS    := $(if $(filter on,$(CUDA)),-DELBO_CUDA=ON -DCMAKE_CUDA_COMPILER=$(NVCC),-DELBO_CUDA=OFF)

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PACKAGES      := cmake make g++ git python3 libeigen3-dev doctest-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libstb-dev dataset-fashion-mnist libopenmpi-dev openmpi-bin
FUZZ_PACKAGES := clang libclang-rt-14-dev
TORCH_PACKAGES := python3-torch python3-numpy libopenblas0-openmp
BENCH_VENV     := $(BUILD)/bench-venv
# test-isa: Eigen, doctest and a native g++, and for aarch64 the cross compiler and qemu-user.
ISA_PACKAGES  := cmake make g++ libeigen3-dev doctest-dev g++-aarch64-linux-gnu qemu-user

# Installs those of the given Debian packages that are missing, without questions.
define install_missing
	@missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "make: installing" $$missing; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

.PHONY: deps build test demo test-sanitize test-reference test-isa fuzz consumer reference bench-deps bench clean

deps:
	$(call install_missing,$(PACKAGES))

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CUDA_ARGS) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

demo: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CUDA_ARGS) $(CMAKE_ARGS)
	cmake --build $(BUILD) -j$(JOBS) --target elbo_cli scalar_gradient conv2d_gradcheck
	@echo "== the seed VAE (D = 64) on Fashion-MNIST, about three minutes"
	rm -rf $(DEMO)
	$(BUILD)/bin/elbo train --model vae --data fashion-mnist --latent 64 --epochs 100 --time-limit $(DEMO_SECONDS) \
	  --checkpoint-every 500 --out $(DEMO)
	@echo "== how good it is, on the 10,000 test images (nats per image)"
	$(BUILD)/bin/elbo eval --checkpoint $(DEMO)/checkpoint.safetensors --iw-images 500 --iw-samples 100
	@echo "== the pictures: $(DEMO)/reconstructions.png, samples.png, traversals.png; the losses: $(DEMO)/loss.svg"
	@echo "== a scalar function's gradient, step by step"
	$(BUILD)/examples/scalar_gradient
	@echo "== conv2d: analytic against numeric gradients"
	$(BUILD)/examples/conv2d_gradcheck

test-reference: deps
	cmake -S . -B build-reference -DCMAKE_BUILD_TYPE=Release -DELBO_CUDA=OFF -DELBO_REFERENCE_KERNELS=ON
	cmake --build build-reference -j$(JOBS) --target elbo_tests
	build-reference/tests/elbo_tests -ts=models,reference,gradients,kernels

# Without elbo::mpi: Open MPI keeps allocations past MPI_Finalize, which LeakSanitizer reports (it does
# for a program of MPI_Init, one MPI_Allreduce and MPI_Finalize). The step's arithmetic over a group
# is tested there all the same, with threads as its processes.
test-sanitize:
	$(MAKE) test BUILD=build-sanitize CUDA=off CMAKE_ARGS="-DELBO_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DELBO_MPI=OFF"

# ISA=sse2 (or "neon sve", ...) runs only those variants; each build directory is kept, so a second
# run rebuilds only what changed.
test-isa:
	$(call install_missing,$(ISA_PACKAGES))
	JOBS=$(JOBS) bash tests/isa/run.sh $(ISA)

fuzz: deps
	$(call install_missing,$(FUZZ_PACKAGES))
	mkdir -p build-fuzz/corpus
	cp tests/data/safetensors-samples/*.safetensors tests/data/malformed/*.safetensors build-fuzz/corpus/
	clang++ -std=c++20 -g -O1 -march=native -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	  -Iinclude -I/usr/include/eigen3 tests/fuzz/fuzz_safetensors.cpp -o build-fuzz/fuzz_safetensors
	build-fuzz/fuzz_safetensors -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -print_final_stats=1 \
	  build-fuzz/corpus

consumer: deps
	rm -rf build-consumer
	cmake -S . -B build-consumer/elbo -DCMAKE_BUILD_TYPE=Release -DELBO_BUILD_TESTS=OFF -DELBO_BUILD_EXAMPLES=OFF \
	  $(CUDA_ARGS)
	cmake --build build-consumer/elbo -j$(JOBS)
	cmake --install build-consumer/elbo --prefix build-consumer/prefix
	for how in find_package add_subdirectory fetchcontent; do \
	  cmake -S tests/consumer -B build-consumer/$$how -DCMAKE_BUILD_TYPE=Release -DELBO_CONSUME=$$how \
	    -DCMAKE_PREFIX_PATH=$(CURDIR)/build-consumer/prefix -DELBO_SOURCE_DIR=$(CURDIR) \
	    -DELBO_GIT_TAG=$$(git rev-parse HEAD) $(CUDA_ARGS) && \
	  cmake --build build-consumer/$$how -j$(JOBS) && \
	  (cd build-consumer/$$how && ./consumer) || exit 1; \
	done
	@# The ISA chosen by the user instead: ELBO_NATIVE=OFF and the -march for any AVX2 machine.
	if grep -qw avx2 /proc/cpuinfo; then \
	  cmake -S tests/consumer -B build-consumer/own-march -DCMAKE_BUILD_TYPE=Release -DELBO_NATIVE=OFF \
	    -DCMAKE_CXX_FLAGS=-march=x86-64-v3 -DCONSUMER_EXPECT_WIDTH=8 \
	    -DCMAKE_PREFIX_PATH=$(CURDIR)/build-consumer/prefix $(CUDA_ARGS) && \
	  cmake --build build-consumer/own-march -j$(JOBS) && (cd build-consumer/own-march && ./consumer); \
	else echo "consumer: no AVX2 on this CPU, the -march=x86-64-v3 build is skipped"; fi

reference:
	$(call install_missing,$(TORCH_PACKAGES))
	/usr/bin/python3 tests/reference/make_reference.py
	/usr/bin/python3 tests/reference/make_model_reference.py

# PyPI's default torch wheel (about 5 GB with the CUDA libraries it brings and the CPU runs never
# load) in a virtual environment of Debian's Python; installed once, kept until make clean.
bench-deps: deps
	$(call install_missing,$(TORCH_PACKAGES) python3-venv)
	[ -x $(BENCH_VENV)/bin/python ] || /usr/bin/python3 -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -c 'import torch' 2> /dev/null || $(BENCH_VENV)/bin/pip install -q 'torch>=2' numpy

bench: build bench-deps
	BUILD=$(BUILD) benchmarks/compare.sh
	BUILD=$(BUILD) ARCH=kim-mnih MODELS="vae factor-vae" benchmarks/compare.sh

clean:
	rm -rf build build-sanitize build-fuzz build-consumer build-isa
