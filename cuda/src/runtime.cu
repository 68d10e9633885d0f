// The device, its memory and the copies: cuda/runtime.hpp.

#include <cstring>
#include <mutex>

#include "check.cuh"
#include "elbo/cuda/runtime.hpp"
#include "elbo/tensor/pool.hpp"

namespace elbo::cuda {

namespace {

// The answer to cudaGetDeviceCount, asked once.
struct Devices {
    int count = 0;
    cudaError_t error = cudaSuccess;
    Devices() {
        error = cudaGetDeviceCount(&count);
        if (error != cudaSuccess) {
            count = 0;
            cudaGetLastError();  // clears the error, so the next checked call does not report it
        }
    }
};

const Devices& devices() {
    static const Devices d;
    return d;
}

// Device memory for the caching pool (tensor/pool.hpp), which the host tensors' pool shares.
struct DeviceMemory {
    static inline thread_local cudaError_t last_error = cudaSuccess;

    static void* allocate(size_t bytes) {
        void* p = nullptr;
        last_error = cudaMalloc(&p, bytes);
        if (last_error == cudaSuccess) return p;
        cudaGetLastError();  // clears the error, so the next checked call does not report it
        return nullptr;
    }
    static void free(void* p) { cudaFree(p); }
    [[noreturn]] static void out_of_memory(size_t) {
        detail::check_call(last_error, "cudaMalloc(&p, bytes)", __FILE__, __LINE__);
        throw Error("cuda::allocate: cudaMalloc failed");  // not reached: check_call threw
    }
};

using DevicePool = elbo::detail::CachingPool<DeviceMemory>;

}  // namespace

int device_count() { return devices().count; }

const char* why_no_device() {
    const Devices& d = devices();
    if (d.count > 0) return "";
    return d.error == cudaSuccess ? "cudaGetDeviceCount found none" : cudaGetErrorString(d.error);
}

void use_device(int index) {
    check(index >= 0 && index < devices().count, "cuda::use_device", "GPU ", index, " asked for, this machine has ",
          devices().count, devices().count == 0 ? str(" (", why_no_device(), ")") : std::string());
    ELBO_CUDA_CHECK(cudaSetDevice(index));
}

void* allocate(size_t bytes) {
    check(devices().count > 0, "cuda::allocate", "no CUDA device: ", why_no_device());
    return DevicePool::instance().take(bytes);
}
void release(void* p, size_t bytes) { DevicePool::instance().give(p, bytes); }
MemoryStats device_memory_stats() { return DevicePool::instance().stats(); }
void release_cached_device_memory() { DevicePool::instance().release(); }

namespace {

// Small copies from the host go through pinned memory and cudaMemcpyAsync, and so queue behind the
// kernels instead of waiting for them: a copy from pageable memory first waits for every kernel
// queued before it, and a training step makes such copies in its middle (eps, class labels,
// permutations). A slot is reused once the copy that last used it has finished (an event per
// slot); with 32 slots, that copy is long done.
class Staging {
public:
    static constexpr size_t slot_bytes = size_t{64} << 10;
    static constexpr int slots = 32;

    static Staging& instance() {
        static Staging* staging = new Staging;  // never destroyed: copies may run at exit
        return *staging;
    }

    void copy(void* device_dst, const void* host_src, size_t bytes) {
        std::lock_guard<std::mutex> lock(mutex_);
        const int k = next_;
        next_ = (next_ + 1) % slots;
        ELBO_CUDA_CHECK(cudaEventSynchronize(done_[k]));
        char* slot = pinned_ + static_cast<size_t>(k) * slot_bytes;
        std::memcpy(slot, host_src, bytes);
        ELBO_CUDA_CHECK(cudaMemcpyAsync(device_dst, slot, bytes, cudaMemcpyHostToDevice, 0));
        ELBO_CUDA_CHECK(cudaEventRecord(done_[k], 0));
    }

private:
    Staging() {
        void* p = nullptr;
        ELBO_CUDA_CHECK(cudaMallocHost(&p, slot_bytes * slots));
        pinned_ = static_cast<char*>(p);
        for (cudaEvent_t& e : done_) ELBO_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    }

    std::mutex mutex_;
    char* pinned_ = nullptr;
    cudaEvent_t done_[slots] = {};
    int next_ = 0;
};

}  // namespace

void copy_to_device(void* device_dst, const void* host_src, size_t bytes) {
    if (bytes <= Staging::slot_bytes) return Staging::instance().copy(device_dst, host_src, bytes);
    ELBO_CUDA_CHECK(cudaMemcpy(device_dst, host_src, bytes, cudaMemcpyHostToDevice));
}
void copy_to_host(void* host_dst, const void* device_src, size_t bytes) {
    ELBO_CUDA_CHECK(cudaMemcpy(host_dst, device_src, bytes, cudaMemcpyDeviceToHost));
}
void copy_on_device(void* device_dst, const void* device_src, size_t bytes) {
    ELBO_CUDA_CHECK(cudaMemcpy(device_dst, device_src, bytes, cudaMemcpyDeviceToDevice));
}

void synchronize() { ELBO_CUDA_CHECK(cudaDeviceSynchronize()); }

void fill(float* y, int64_t n, float value) {
    detail::launch(n, [=] __device__(int64_t i) { y[i] = value; });
}

}  // namespace elbo::cuda
