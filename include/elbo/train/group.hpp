#pragma once
// Group: the processes that share a training step, data-parallel, as PyTorch's DDP shares one.
// Each process holds its part of the step's images; after the step every process holds what one
// process would have computed on all of them: the gradients of the whole batch (summed over the
// processes as backward produces them) and its terms. The core library only declares what a step
// needs of them; elbo::mpi (include/elbo/mpi/world.hpp, a library of its own that includes mpi.h)
// is the Group of an MPI job, and the CUDA module's cuda::nccl_group (cuda/nccl.hpp) the same job
// with its GPUs' gradients summed by NCCL. One process needs none: train::step's group is then null.

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
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

// The bookkeeping of a GradientSync that sums in buckets of about `bucket_bytes`, each started as
// soon as backward has finished all its parameters' gradients: elbo::mpi's (host memory, MPI) and
// the CUDA module's (device memory, NCCL) differ only in how a bucket is started, waited on and
// unpacked. Buckets are filled from the last parameter back (backward finishes the last layers
// first) and started in order, so that every process starts the same collectives in the same
// order, as MPI and NCCL require.
class BucketedSync : public GradientSync {
public:
    struct Bucket {
        std::vector<size_t> parameters;  // indices into parameters(), in the bucket's order
        int64_t values = 0;              // their numels summed
        size_t ready = 0;                // how many of them backward has finished
    };

    BucketedSync(const std::vector<Var<float>>& parameters, int64_t bucket_bytes)
        : parameters_(parameters), bucket_of_(parameters.size()), ready_(parameters.size(), false) {
        int64_t bytes = 0;
        for (size_t i = parameters.size(); i-- > 0;) {
            const int64_t size = parameters[i].numel() * static_cast<int64_t>(sizeof(float));
            if (buckets_.empty() || (bytes > 0 && bytes + size > bucket_bytes)) {
                buckets_.emplace_back();
                bytes = 0;
            }
            buckets_.back().parameters.push_back(i);
            buckets_.back().values += parameters[i].numel();
            bytes += size;
            bucket_of_[i] = buckets_.size() - 1;
            index_.emplace(parameters[i].node_ptr().get(), i);
        }
    }

    void ready(Node<float>& leaf) final {
        if (auto it = index_.find(&leaf); it != index_.end()) mark(it->second);
    }

protected:
    // Starts summing bucket b: every gradient in it is final (a parameter without one counts as
    // zeros). Called once per bucket, in order.
    virtual void start(Bucket& b) = 0;

    // Starts every bucket not started yet: finish() calls it first.
    void start_all() {
        for (size_t i = 0; i < parameters_.size(); ++i) mark(i);
    }

    const std::vector<Var<float>>& parameters() const { return parameters_; }
    std::vector<Bucket>& buckets() { return buckets_; }

private:
    void mark(size_t i) {
        if (ready_[i]) return;
        ready_[i] = true;
        ++buckets_[bucket_of_[i]].ready;
        while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].parameters.size()) {
            start(buckets_[next_++]);
        }
    }

    std::vector<Var<float>> parameters_;
    std::vector<Bucket> buckets_;
    std::vector<size_t> bucket_of_;
    std::vector<bool> ready_;
    std::unordered_map<const Node<float>*, size_t> index_;
    size_t next_ = 0;  // the next bucket to start
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
    // Ends the whole job with `message`, where waiting for the others cannot end well (one of them
    // died or hangs): an MPI job's group calls MPI_Abort. By default, an elbo::Error.
    [[noreturn]] virtual void abort(const std::string& message) { throw Error(message); }
};

}  // namespace elbo::train
