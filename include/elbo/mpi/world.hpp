#pragma once
// elbo::mpi: the processes of an MPI job as a train::Group (train/group.hpp), for data-parallel
// training. A library of its own (mpi/src/world.cpp, built where CMake finds MPI): this header does
// not include mpi.h, and the header-only core never includes this one.
//
//   mpirun -np 4 build/bin/elbo train --model factor-vae --data dsprites --batch 16   # 64 images a step
//
// Every collective waits at most timeout() seconds (default 300): a process that died or hangs
// makes the others stop with a message naming what they waited for, not wait forever.

#include <string>

#include "elbo/train/group.hpp"

namespace elbo::mpi {

// Whether this process was started by mpirun, mpiexec or srun (their environment says so). The CLI
// joins an MPI job only then; started alone, it runs as one process without MPI.
bool launched();

class World final : public train::Group {
public:
    // The job's processes (MPI_COMM_WORLD), MPI initialized on first use and finalized at exit.
    static World& get();

    int rank() const override { return rank_; }
    int size() const override { return size_; }
    // This process's place among the job's processes on its machine (0, 1, ...): which GPU it takes.
    int local_rank() const { return local_rank_; }
    void sum(double* values, int64_t n) override;
    void gather(const float* mine, int64_t n, float* all) override;
    void broadcast(float* values, int64_t n, int root) override;
    std::unique_ptr<train::GradientSync> gradients(const std::vector<Var<float>>& parameters, float scale) override;

    // The longest a collective may wait, in seconds.
    double timeout() const { return timeout_; }
    void set_timeout(double seconds);
    // Gradients go in buckets of about this many bytes (PyTorch DDP's default: 25 MiB; here 4 MiB).
    int64_t bucket_bytes = int64_t(4) << 20;

    // Prints `message` (with this process's rank) and ends the whole job.
    [[noreturn]] void abort(const std::string& message) override;
    // How many of the job's processes share this one's machine.
    int local_size() const { return local_size_; }

    ~World() override;

private:
    World();
    int rank_ = 0, size_ = 1, local_rank_ = 0, local_size_ = 1;
    double timeout_ = 300;
};

}  // namespace elbo::mpi
