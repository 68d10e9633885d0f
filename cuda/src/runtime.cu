// The device, its memory and the copies: cuda/api.hpp's first part.

#include <mutex>
#include <unordered_map>
#include <vector>

#include "check.cuh"
#include "elbo/cuda/api.hpp"

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

// Device blocks by exact size, kept for reuse like the CPU's BufferPool (tensor.hpp).
class CachingAllocator {
public:
    static CachingAllocator& instance() {
        static CachingAllocator* a = new CachingAllocator;  // never destroyed: tensors may outlive statics
        return *a;
    }

    void* take(size_t bytes) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = free_.find(bytes);
            if (it != free_.end() && !it->second.empty()) {
                void* p = it->second.back();
                it->second.pop_back();
                ++stats_.reuses;
                stats_.cached_bytes -= static_cast<int64_t>(bytes);
                return p;
            }
            ++stats_.driver_allocations;
        }
        check(devices().count > 0, "cuda::allocate", "no CUDA device: ", why_no_device());
        void* p = nullptr;
        if (cudaMalloc(&p, bytes) != cudaSuccess) {  // out of memory: hand back the cache, try once more
            cudaGetLastError();
            release();
            ELBO_CUDA_CHECK(cudaMalloc(&p, bytes));
        }
        return p;
    }

    void give(void* p, size_t bytes) {
        std::lock_guard<std::mutex> lock(mutex_);
        free_[bytes].push_back(p);
        stats_.cached_bytes += static_cast<int64_t>(bytes);
    }

    void release() {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto& [bytes, blocks] : free_)
            for (void* p : blocks) cudaFree(p);
        free_.clear();
        stats_.cached_bytes = 0;
    }

    DeviceMemoryStats stats() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return stats_;
    }

private:
    mutable std::mutex mutex_;
    std::unordered_map<size_t, std::vector<void*>> free_;
    DeviceMemoryStats stats_;
};

}  // namespace

int device_count() { return devices().count; }

const char* why_no_device() {
    const Devices& d = devices();
    if (d.count > 0) return "";
    return d.error == cudaSuccess ? "cudaGetDeviceCount found none" : cudaGetErrorString(d.error);
}

void* allocate(size_t bytes) { return CachingAllocator::instance().take(bytes); }
void release(void* p, size_t bytes) { CachingAllocator::instance().give(p, bytes); }
DeviceMemoryStats device_memory_stats() { return CachingAllocator::instance().stats(); }
void release_cached_device_memory() { CachingAllocator::instance().release(); }

void copy_to_device(void* device_dst, const void* host_src, size_t bytes) {
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
