#pragma once
// Data-parallel training on GPUs: the gradients of CUDA tensors summed over the processes by NCCL,
// in device memory, on the module's stream. Declared without a CUDA or NCCL header, defined in
// cuda/src/nccl.cu; the module has it where it was built with NCCL (ELBO_NCCL, on where CMake finds
// nccl.h and libnccl), and says so otherwise.
//
//   mpi::World& world = mpi::World::get();
//   cuda::use_device(world.local_rank());  // one GPU per process (local_size() <= device_count())
//   std::unique_ptr<train::Group> gpus = cuda::nccl_group(world, world.timeout());
//   train::step(model, opt, x, draws, gpus.get());
//
// The processes find each other through `host` (an MPI job's World): it carries NCCL's unique id
// from process 0 to the others once, before the first sum, and every small collective of a step
// (its terms, the FactorVAE's second-batch codes, the first parameters); NCCL sums the gradients.

#include <memory>

#include "elbo/train/group.hpp"

namespace elbo::cuda {

// Whether this build of the module has NCCL.
bool has_nccl();

// The processes of `host`, with every gradient on the GPU summed by ncclAllReduce in buckets of
// about bucket_bytes, each started as backward finishes it (gradients on the CPU go through `host`).
// A sum that takes longer than timeout_seconds ends in an elbo::Error (a process died or hangs).
// Without NCCL, an elbo::Error.
std::unique_ptr<train::Group> nccl_group(train::Group& host, double timeout_seconds,
                                         int64_t bucket_bytes = int64_t(4) << 20);

}  // namespace elbo::cuda
