#pragma once
// A caching pool of memory blocks: a freed block waits for the next request of its exact size, so a
// training step, which asks for the same sizes as the step before, allocates nothing after the
// first. Host tensors use it over aligned_alloc (tensor.hpp), the CUDA module over cudaMalloc
// (cuda/src/runtime.cu). The pool only grows; release() hands the cached blocks back.

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace elbo {

// What a pool has done since the program started.
struct MemoryStats {
    int64_t system_allocations = 0;  // blocks the pool had to ask the system (or driver) for
    int64_t reuses = 0;              // requests served by a block freed earlier
    int64_t cached_bytes = 0;        // freed blocks the pool holds for reuse
};

namespace detail {

// Memory supplies the system's calls: allocate(bytes) (null when out of memory), free(p), and
// out_of_memory(bytes), which throws. One pool per Memory, never destroyed: blocks may outlive statics.
template <class Memory>
class CachingPool {
public:
    static CachingPool& instance() {
        static CachingPool* pool = new CachingPool;
        return *pool;
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
            ++stats_.system_allocations;
        }
        void* p = Memory::allocate(bytes);
        if (!p) {  // out of memory: hand back what the pool holds and try once more
            release();
            p = Memory::allocate(bytes);
        }
        if (!p) Memory::out_of_memory(bytes);
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
            for (void* p : blocks) Memory::free(p);
        free_.clear();
        stats_.cached_bytes = 0;
    }

    MemoryStats stats() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return stats_;
    }

private:
    mutable std::mutex mutex_;
    std::unordered_map<size_t, std::vector<void*>> free_;
    MemoryStats stats_;
};

}  // namespace detail
}  // namespace elbo
