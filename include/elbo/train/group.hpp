#pragma once
// Group: the processes that share a training step, data-parallel, as PyTorch's DDP shares one.
// Each process holds its part of the step's images; after the step every process holds what one
// process would have computed on all of them: the gradients of the whole batch (summed over the
// processes as backward produces them) and its terms. The core library only declares what a step
// needs of them; elbo::mpi (include/elbo/mpi/world.hpp, a library of its own that includes mpi.h)
// is the Group of an MPI job. One process needs none: train::step's group is then null.

#include <cstdint>
#include <memory>
#include <vector>

#include "elbo/autograd/backward.hpp"

namespace elbo::train {

// Sums the gradients of a list of parameters over the processes. Made before backward(), it is
// told of each gradient as backward finishes it (GradientReady) and may start sending it then;
// finish() waits for the sums and leaves each parameter's gradient as the sum times `scale`.
class GradientSync : public GradientReady<float> {
public:
    virtual void finish() = 0;
};

class Group {
public:
    virtual ~Group() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // values[0, n) summed over the processes; every process gets the sums.
    virtual void sum(double* values, int64_t n) = 0;
    // all = every process's n values of `mine`, in rank order (size() * n values).
    virtual void gather(const float* mine, int64_t n, float* all) = 0;
    // values[0, n) as process `root` has them, on every process.
    virtual void broadcast(float* values, int64_t n, int root) = 0;
    // Starts summing the gradients of `parameters`; see GradientSync.
    virtual std::unique_ptr<GradientSync> gradients(const std::vector<Var<float>>& parameters, float scale) = 0;
};

}  // namespace elbo::train
