#pragma once
// Tensor<T>: a shape over contiguous, row-major (NCHW) storage that views share.
//
// Copying a Tensor copies a handle: both see the same elements. `reshape` and `slice` are views
// of the same storage; `clone` makes an independent copy. T is float (training) or double
// (gradient checks).

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "elbo/error.hpp"
#include "elbo/tensor/generator.hpp"
#include "elbo/tensor/pool.hpp"
#include "elbo/tensor/shape.hpp"
// Defined to 1 by linking the elbo::cuda target (cuda/CMakeLists.txt); 0, no GPU, otherwise.
#ifndef ELBO_WITH_CUDA
#define ELBO_WITH_CUDA 0
#endif
#if ELBO_WITH_CUDA
#include "elbo/cuda/runtime.hpp"
#endif

namespace elbo {

enum class Device { cpu, cuda };

inline const char* to_string(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

namespace detail {

// Host memory for the pool under every tensor: 64-byte aligned blocks. After the first training step
// the pool serves every request: no page faults, no zeroed pages from the kernel.
struct HostMemory {
    static void* allocate(size_t bytes) { return std::aligned_alloc(64, bytes); }
    static void free(void* p) { std::free(p); }
    [[noreturn]] static void out_of_memory(size_t) { throw std::bad_alloc(); }
};
using BufferPool = CachingPool<HostMemory>;

// The error for a tensor asked onto a device this build or type cannot hold.
template <class T>
void require_device_support(const char* op, Device device) {
    if (device == Device::cpu) return;
#if ELBO_WITH_CUDA
    check(std::is_same_v<T, float>, op, "the CUDA module holds float tensors, got ", sizeof(T) * 8,
          "-bit ones");
#else
    throw Error(str(op, ": this build has no CUDA module (configure elbo with -DELBO_CUDA=ON and link "
                        "elbo::cuda)"));
#endif
}

template <class T>
std::shared_ptr<T[]> allocate(int64_t count, Device device = Device::cpu) {
    const size_t bytes = ((std::max<int64_t>(count, 1) * sizeof(T) + 63) / 64) * 64;
#if ELBO_WITH_CUDA
    if (device == Device::cuda) {
        void* p = cuda::allocate(bytes);
        return std::shared_ptr<T[]>(static_cast<T*>(p), [bytes](T* q) { cuda::release(q, bytes); });
    }
#endif
    require_device_support<T>("Tensor", device);
    void* p = BufferPool::instance().take(bytes);
    return std::shared_ptr<T[]>(static_cast<T*>(p), [bytes](T* q) { BufferPool::instance().give(q, bytes); });
}

}  // namespace detail

// The tensor allocator's counts; a test asserts that a training step's system_allocations is zero.
inline MemoryStats memory_stats() { return detail::BufferPool::instance().stats(); }

// The same for the allocator of `device` (the GPU's, in the CUDA module).
inline MemoryStats memory_stats(Device device) {
    detail::require_device_support<float>("memory_stats", device);
#if ELBO_WITH_CUDA
    if (device == Device::cuda) return cuda::device_memory_stats();
#endif
    return memory_stats();
}

// Waits until the work queued on `device` is done (GPU kernels run asynchronously); a no-op for the CPU.
inline void synchronize(Device device) {
    detail::require_device_support<float>("synchronize", device);
#if ELBO_WITH_CUDA
    if (device == Device::cuda) cuda::synchronize();
#endif
}

// Frees the buffers the pool holds for reuse (those of tensors still alive stay).
inline void release_cached_memory() { detail::BufferPool::instance().release(); }

template <class T>
class Tensor {
public:
    using value_type = T;

    // An empty tensor: rank 1, no elements.
    Tensor() : Tensor(Shape{0}) {}

    // A tensor of the given shape, filled with zeros.
    explicit Tensor(const Shape& shape) : Tensor(uninitialized(shape)) { fill(T(0)); }

    // A tensor whose elements are left unset; for kernels that overwrite every element.
    static Tensor uninitialized(const Shape& shape, Device device = Device::cpu) {
        detail::require_device_support<T>("Tensor", device);
        return Tensor(shape, detail::allocate<T>(shape.numel(), device), 0, device);
    }

    static Tensor zeros(const Shape& shape, Device device = Device::cpu) {
        Tensor t = uninitialized(shape, device);
        t.fill(T(0));
        return t;
    }
    // Filled with `value`; on the GPU by a kernel that takes the value as an argument, so nothing is
    // copied from the host (a copy would first wait for every kernel queued before it).
    static Tensor full(const Shape& shape, T value, Device device = Device::cpu) {
        Tensor t = uninitialized(shape, device);
        t.fill(value);
        return t;
    }
    static Tensor scalar(T value) { return full(Shape{}, value); }

    static Tensor from_vector(const Shape& shape, const std::vector<T>& values) {
        check(static_cast<int64_t>(values.size()) == shape.numel(), "Tensor::from_vector", "shape ",
              shape, " holds ", shape.numel(), " elements, the vector has ", values.size());
        Tensor t = uninitialized(shape);
        std::copy(values.begin(), values.end(), t.data());
        return t;
    }

    const Shape& shape() const { return shape_; }
    int64_t numel() const { return shape_.numel(); }
    int64_t rank() const { return shape_.rank(); }
    int64_t size(int64_t axis) const { return shape_[shape_.axis(axis, "Tensor::size")]; }
    Device device() const { return device_; }

    // The elements: on the GPU for a tensor there, where only kernels may touch them.
    T* data() { return storage_.get() + offset_; }
    const T* data() const { return storage_.get() + offset_; }

    // Host access, for tensors in host memory only (an Error for one on the GPU: `to(Device::cpu)`).
    T* begin() { return host_data("Tensor::begin"); }
    T* end() { return host_data("Tensor::end") + numel(); }
    const T* begin() const { return host_data("Tensor::begin"); }
    const T* end() const { return host_data("Tensor::end") + numel(); }

    // Flat element access, in row-major order.
    T& operator[](int64_t i) { return host_data("Tensor::operator[]")[i]; }
    const T& operator[](int64_t i) const { return host_data("Tensor::operator[]")[i]; }

    // Element access by index, checked: t.at({n, c, h, w}).
    T& at(std::initializer_list<int64_t> index) { return host_data("Tensor::at")[flat_index(index)]; }
    const T& at(std::initializer_list<int64_t> index) const { return host_data("Tensor::at")[flat_index(index)]; }

    // The scalar held by a one-element tensor (copied from the GPU for a tensor there).
    T item() const {
        check(numel() == 1, "Tensor::item", "expected one element, got shape ", shape_);
        return to(Device::cpu).data()[0];
    }

    std::vector<T> to_vector() const {
        const Tensor host = to(Device::cpu);
        return std::vector<T>(host.data(), host.data() + numel());
    }

    // A copy on `device`, or this tensor itself when it is there already.
    Tensor to(Device device) const {
        if (device == device_) return *this;
        detail::require_device_support<T>("Tensor::to", device);
        Tensor t = uninitialized(shape_, device);
        t.copy_(*this);
        return t;
    }

    // Copies src's elements into this tensor, across devices where they differ; the shapes must match.
    Tensor& copy_(const Tensor& src) {
        check(src.shape() == shape_, "Tensor::copy_", "expected a source of shape ", shape_, ", got ", src.shape());
        if (device_ == Device::cpu && src.device_ == Device::cpu) {
            std::copy(src.data(), src.data() + numel(), data());
            return *this;
        }
#if ELBO_WITH_CUDA
        const size_t bytes = static_cast<size_t>(numel()) * sizeof(T);
        if (device_ == Device::cpu)
            cuda::copy_to_host(data(), src.data(), bytes);
        else if (src.device_ == Device::cpu)
            cuda::copy_to_device(data(), src.data(), bytes);
        else
            cuda::copy_on_device(data(), src.data(), bytes);
#endif
        return *this;
    }

    // Fills every element; large tensors are filled by all threads (a fresh gradient buffer is
    // tens of megabytes, and one thread alone cannot fill memory at the machine's rate).
    Tensor& fill(T value) {
#if ELBO_WITH_CUDA
        if constexpr (std::is_same_v<T, float>)
            if (device_ == Device::cuda) {
                cuda::fill(data(), numel(), value);
                return *this;
            }
#endif
        T* p = data();
        const int64_t n = numel(), block = int64_t(1) << 16;
#pragma omp parallel for schedule(static) if (n >= 4 * block)
        for (int64_t b = 0; b < n; b += block) std::fill(p + b, p + std::min(n, b + block), value);
        return *this;
    }

    // Fills with N(mean, stddev^2) draws, in element order.
    Tensor& normal_(Generator& gen, double mean = 0.0, double stddev = 1.0) {
        for (T& v : *this) v = static_cast<T>(gen.normal(mean, stddev));
        return *this;
    }

    // Fills with U[low, high) draws, in element order.
    Tensor& uniform_(Generator& gen, double low = 0.0, double high = 1.0) {
        for (T& v : *this) v = static_cast<T>(gen.uniform(low, high));
        return *this;
    }

    // A view with another shape of the same number of elements; one size may be -1 (inferred).
    Tensor reshape(std::vector<int64_t> dims) const {
        int64_t known = 1, infer = -1;
        for (size_t i = 0; i < dims.size(); ++i) {
            if (dims[i] == -1) {
                check(infer < 0, "reshape", "only one size may be -1, got ", Shape(fixed(dims)));
                infer = static_cast<int64_t>(i);
            } else {
                check(dims[i] >= 0, "reshape", "sizes must be non-negative or -1");
                known *= dims[i];
            }
        }
        if (infer >= 0) {
            check(known > 0 && numel() % known == 0, "reshape", "cannot infer -1 to view shape ",
                  shape_, " with ", numel(), " elements");
            dims[static_cast<size_t>(infer)] = numel() / known;
        }
        Shape target(dims);
        check(target.numel() == numel(), "reshape", "shape ", target, " holds ", target.numel(),
              " elements, the tensor ", shape_, " has ", numel());
        return Tensor(target, storage_, offset_, device_);
    }

    // Rows [begin, end) of the first axis, as a view.
    Tensor slice(int64_t begin, int64_t end) const {
        check(rank() >= 1, "slice", "needs a tensor of rank >= 1, got ", shape_);
        check(0 <= begin && begin <= end && end <= shape_[0], "slice", "range [", begin, ", ", end,
              ") is outside the first axis of ", shape_);
        std::vector<int64_t> dims = shape_.dims();
        dims[0] = end - begin;
        const int64_t row = shape_.span(1, rank());
        return Tensor(Shape(dims), storage_, offset_ + begin * row, device_);
    }

    // An independent copy, on the same device.
    Tensor clone() const {
        Tensor t = uninitialized(shape_, device_);
        t.copy_(*this);
        return t;
    }

    // A copy with elements converted to U.
    template <class U>
    Tensor<U> cast() const {
        Tensor<U> t = Tensor<U>::uninitialized(shape_);
        std::transform(begin(), end(), t.data(), [](T v) { return static_cast<U>(v); });
        return t;
    }

    // Whether two tensors are views of one storage.
    bool shares_storage_with(const Tensor& other) const { return storage_ == other.storage_; }

private:
    Tensor(const Shape& shape, std::shared_ptr<T[]> storage, int64_t offset, Device device)
        : shape_(shape), storage_(std::move(storage)), offset_(offset), device_(device) {}

    T* host_data(const char* op) const {
        if (device_ != Device::cpu)
            throw Error(str(op, ": the tensor ", shape_, " is on ", to_string(device_),
                            "; copy it to the host first with to(Device::cpu)"));
        return storage_.get() + offset_;
    }

    static std::vector<int64_t> fixed(std::vector<int64_t> dims) {
        for (int64_t& d : dims) d = std::max<int64_t>(d, 0);
        return dims;
    }

    int64_t flat_index(std::initializer_list<int64_t> index) const {
        check(static_cast<int64_t>(index.size()) == rank(), "Tensor::at", "expected ", rank(),
              " indices for shape ", shape_, ", got ", index.size());
        int64_t flat = 0, axis = 0;
        for (int64_t i : index) {
            check(i >= 0 && i < shape_[axis], "Tensor::at", "index ", i, " is out of range for axis ",
                  axis, " of shape ", shape_);
            flat = flat * shape_[axis] + i;
            ++axis;
        }
        return flat;
    }

    Shape shape_;
    std::shared_ptr<T[]> storage_;
    int64_t offset_ = 0;
    Device device_ = Device::cpu;
};

}  // namespace elbo
