// Gradients summed over the processes by NCCL: cuda/nccl.hpp.

#include "check.cuh"
#include "elbo/cuda/nccl.hpp"
#include "elbo/cuda/runtime.hpp"

#if ELBO_WITH_NCCL

#include <nccl.h>

#include <chrono>
#include <cstring>
#include <thread>

namespace elbo::cuda {

namespace {

void check_nccl(ncclResult_t r, const char* call) {
    if (r != ncclSuccess) throw Error(str("NCCL: ", call, " failed with ", ncclGetErrorString(r)));
}
#define ELBO_NCCL_CHECK(call) check_nccl((call), #call)

// The processes of the host group, with a communicator of NCCL's made at the first sum on the GPU.
class NcclGroup final : public train::Group {
public:
    NcclGroup(train::Group& host, double timeout, int64_t bucket_bytes)
        : host_(host), timeout_(timeout), bucket_bytes_(bucket_bytes) {
        check(timeout > 0, "cuda::nccl_group", "the timeout must be positive, got ", timeout);
        check(bucket_bytes > 0, "cuda::nccl_group", "the bucket size must be positive, got ", bucket_bytes);
    }
    ~NcclGroup() override {
        if (comm_) ncclCommDestroy(comm_);
    }

    int rank() const override { return host_.rank(); }
    int size() const override { return host_.size(); }
    void sum(double* values, int64_t n) override { host_.sum(values, n); }
    void gather(const float* mine, int64_t n, float* all) override { host_.gather(mine, n, all); }
    void broadcast(float* values, int64_t n, int root) override { host_.broadcast(values, n, root); }
    std::unique_ptr<train::GradientSync> gradients(const std::vector<Var<float>>& parameters, float scale) override;

    // The communicator given up (ncclCommAbort: its sums in flight end) and the job ended by the
    // host group (MPI_Abort for an MPI job): the others may be waiting in a sum that never ends.
    [[noreturn]] void abort(const std::string& message) override {
        if (comm_) ncclCommAbort(comm_);
        comm_ = nullptr;
        host_.abort(message);
        throw Error(message);  // not reached (host_.abort does not return): for compilers that cannot tell
    }

    double timeout() const { return timeout_; }

    // Made at the first sum on the GPU, which every process reaches at the same step: process 0's
    // unique id goes to the others through the host group, in 16-bit pieces (floats hold them
    // exactly, whatever the bytes).
    ncclComm_t communicator() {
        if (comm_) return comm_;
        ncclUniqueId id{};
        if (rank() == 0) ELBO_NCCL_CHECK(ncclGetUniqueId(&id));
        constexpr size_t pieces = sizeof(id) / 2;
        float message[pieces];
        unsigned char* bytes = reinterpret_cast<unsigned char*>(&id);
        for (size_t i = 0; i < pieces; ++i) message[i] = static_cast<float>(bytes[2 * i] | bytes[2 * i + 1] << 8);
        host_.broadcast(message, static_cast<int64_t>(pieces), 0);
        for (size_t i = 0; i < pieces; ++i) {
            const auto piece = static_cast<unsigned>(message[i]);
            bytes[2 * i] = static_cast<unsigned char>(piece & 0xff);
            bytes[2 * i + 1] = static_cast<unsigned char>(piece >> 8);
        }
        ELBO_NCCL_CHECK(ncclCommInitRank(&comm_, size(), id, rank()));
        return comm_;
    }

private:
    train::Group& host_;
    double timeout_;
    int64_t bucket_bytes_;
    ncclComm_t comm_ = nullptr;
};

// Every gradient bucket in device memory: packed there on the module's stream as backward finishes
// its gradients, summed in place by ncclAllReduce on the same stream, unpacked into the gradients
// times `scale` by a kernel. One stream orders them all: a bucket is packed after the kernels that
// made its gradients, and the next step's kernels run after the sums.
class DeviceBuckets final : public train::BucketedSync {
public:
    DeviceBuckets(NcclGroup& group, const std::vector<Var<float>>& parameters, float scale, int64_t bucket_bytes)
        : BucketedSync(parameters, bucket_bytes), group_(group), comm_(group.communicator()), scale_(scale) {
        try {
            for (const Bucket& b : buckets()) flat_.push_back(static_cast<float*>(allocate(bytes_of(b))));
        } catch (...) {
            give_back();
            throw;
        }
    }

    // The pool hands a block out again only to kernels queued after these sums (one stream).
    ~DeviceBuckets() override { give_back(); }

    void finish() override {
        start_all();
        wait();
        for (size_t k = 0; k < buckets().size(); ++k) {
            const float* flat = flat_[k];
            int64_t at = 0;
            for (size_t i : buckets()[k].parameters) {
                Node<float>& node = parameters()[i].node();
                float* g = node.grad_buffer().data();
                const float* sum = flat + at;
                const float scale = scale_;
                detail::launch(node.value.numel(), [=] __device__(int64_t j) { g[j] = sum[j] * scale; });
                at += node.value.numel();
            }
        }
    }

private:
    static size_t bytes_of(const Bucket& b) { return static_cast<size_t>(b.values) * sizeof(float); }

    void give_back() {
        for (size_t k = 0; k < flat_.size(); ++k) release(flat_[k], bytes_of(buckets()[k]));
        flat_.clear();
    }

    void start(Bucket& b) override {
        float* flat = flat_[static_cast<size_t>(&b - buckets().data())];
        int64_t at = 0;
        for (size_t i : b.parameters) {
            const Var<float>& p = parameters()[i];
            const int64_t n = p.numel();
            if (p.has_grad())
                copy_on_device(flat + at, p.grad().data(), static_cast<size_t>(n) * sizeof(float));
            else
                fill(flat + at, n, 0.0f);
            at += n;
        }
        ELBO_NCCL_CHECK(ncclAllReduce(flat, flat, static_cast<size_t>(b.values), ncclFloat, ncclSum, comm_, 0));
    }

    // Until the stream has done every sum, polling: past the timeout, or on an error NCCL reports
    // (a peer gone), the group gives up its communicator and ends the job.
    void wait() {
        using clock = std::chrono::steady_clock;
        const auto deadline = clock::now() + std::chrono::duration<double>(group_.timeout());
        for (;;) {
            const cudaError_t e = cudaStreamQuery(0);
            if (e == cudaSuccess) return;
            if (e != cudaErrorNotReady) ELBO_CUDA_CHECK(e);
            ncclResult_t async = ncclSuccess;
            ELBO_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async));
            if (async != ncclSuccess)
                group_.abort(str("NCCL: summing gradients failed with ", ncclGetErrorString(async)));
            if (clock::now() > deadline)
                group_.abort(str("NCCL: no answer from the other processes within ", group_.timeout(),
                                 " s while summing gradients: one of them has died or hangs"));
            std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
    }

    NcclGroup& group_;
    ncclComm_t comm_;
    float scale_;
    std::vector<float*> flat_;
};

std::unique_ptr<train::GradientSync> NcclGroup::gradients(const std::vector<Var<float>>& parameters, float scale) {
    for (const Var<float>& p : parameters)
        if (p.value().device() != Device::cuda) return host_.gradients(parameters, scale);
    return std::make_unique<DeviceBuckets>(*this, parameters, scale, bucket_bytes_);
}

}  // namespace

bool has_nccl() { return true; }

std::unique_ptr<train::Group> nccl_group(train::Group& host, double timeout_seconds, int64_t bucket_bytes) {
    return std::make_unique<NcclGroup>(host, timeout_seconds, bucket_bytes);
}

}  // namespace elbo::cuda

#else  // built without NCCL

namespace elbo::cuda {

bool has_nccl() { return false; }

std::unique_ptr<train::Group> nccl_group(train::Group&, double, int64_t) {
    throw Error("cuda::nccl_group: this elbo's CUDA module was built without NCCL (CMake found no nccl.h and "
                "libnccl; or ELBO_NCCL=OFF): its processes sum gradients through the host group instead");
}

}  // namespace elbo::cuda

#endif
