# Cross-compiling for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu, the programs run under
# qemu-user (Debian's qemu-user): `make test-isa` builds tests/isa with it for NEON and SVE.
#
#   cmake -S tests/isa -B build-isa/neon -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake ...
#
# ELBO_QEMU_CPU picks qemu's CPU model (e.g. max,sve256=on: SVE with 256-bit vectors); empty, its default.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Libraries and CMake packages from the Arm sysroot only; programs (qemu, the tools) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest (and anything else that runs a built program) goes through qemu, with the sysroot's loader
# and libraries (libstdc++, libgomp).
set(ELBO_QEMU_CPU "" CACHE STRING "qemu-aarch64 -cpu MODEL for the programs this build runs; empty: qemu's default")
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
if(ELBO_QEMU_CPU)
  list(APPEND CMAKE_CROSSCOMPILING_EMULATOR -cpu ${ELBO_QEMU_CPU})
endif()
