// The CUDA module: each kernel against its CPU twin on the same inputs (suite "gpu", float, 1e-5
// relative), and the parts that need no GPU (suite "no_gpu"): errors, and what a missing GPU says.
#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "../helpers.hpp"

using namespace elbo;
using testing::randn;
using testing::relative_difference;

TEST_SUITE("no_gpu") {
    TEST_CASE("device_count never throws, and says why it is 0") {
        const int n = cuda::device_count();
        CHECK(n >= 0);
        if (n == 0)
            CHECK(std::string(cuda::why_no_device()) != "");
        else
            CHECK(std::string(cuda::why_no_device()) == "");
    }

    TEST_CASE("the module holds float tensors: a double one asked onto the GPU is an Error") {
        CHECK_THROWS_WITH_AS(Tensor<double>(Shape{2}).to(Device::cuda),
                             doctest::Contains("the CUDA module holds float tensors, got 64-bit ones"), Error);
    }

    TEST_CASE("a failed CUDA call is an elbo::Error naming the call, the file and the line") {
        if (cuda::device_count() == 0) {
            // Without a device (or driver) the first real call fails.
            float host[1] = {1.0f};
            CHECK_THROWS_WITH_AS(cuda::copy_to_device(host, host, sizeof host),
                                 doctest::Contains("CUDA: cudaMemcpy(device_dst, host_src, bytes, "
                                                   "cudaMemcpyHostToDevice) failed with"),
                                 Error);
            CHECK_THROWS_WITH_AS(cuda::copy_to_device(host, host, sizeof host), doctest::Contains("runtime.cu:"),
                                 Error);
            CHECK_THROWS_WITH_AS(Tensor<float>(Shape{4}).to(Device::cuda), doctest::Contains("no CUDA device"), Error);
        } else {
            // With one, a petabyte is more than it has.
            CHECK_THROWS_WITH_AS(cuda::allocate(size_t(1) << 50), doctest::Contains("cudaMalloc"), Error);
        }
    }
}

namespace {

// x on the GPU, as a Var that requires a gradient.
Var<float> on_gpu(const Tensor<float>& x) { return Var<float>(x.to(Device::cuda), true); }

}  // namespace

TEST_SUITE("gpu") {
    TEST_CASE("tensors go to the GPU and back unchanged; fill, clone, item and to_vector work there") {
        const Tensor<float> x = randn<float>(Shape{3, 5, 7}, 1);
        const Tensor<float> g = x.to(Device::cuda);
        CHECK(g.device() == Device::cuda);
        CHECK(g.to(Device::cpu).to_vector() == x.to_vector());
        CHECK(g.clone().to_vector() == x.to_vector());
        CHECK(g.to(Device::cuda).shares_storage_with(g));
        Tensor<float> f = Tensor<float>::uninitialized(Shape{1000}, Device::cuda);
        f.fill(2.5f);
        CHECK(f.to_vector() == std::vector<float>(1000, 2.5f));
        CHECK(Tensor<float>::scalar(4.0f).to(Device::cuda).item() == 4.0f);
        CHECK(g.reshape({-1}).device() == Device::cuda);
    }

    TEST_CASE("host access to a tensor on the GPU is an Error that says what to do") {
        const Tensor<float> g = Tensor<float>(Shape{2, 3}).to(Device::cuda);
        CHECK_THROWS_WITH_AS(g[0], doctest::Contains("is on cuda; copy it to the host first with to(Device::cpu)"),
                             Error);
        CHECK_THROWS_AS(g.at({0, 0}), Error);
        CHECK_THROWS_AS(g.begin(), Error);
    }

    TEST_CASE("the caching allocator serves a freed block to the next request of its size") {
        cuda::release(cuda::allocate(4096), 4096);
        const cuda::DeviceMemoryStats before = cuda::device_memory_stats();
        void* p = cuda::allocate(4096);
        const cuda::DeviceMemoryStats after = cuda::device_memory_stats();
        CHECK(after.driver_allocations == before.driver_allocations);
        CHECK(after.reuses == before.reuses + 1);
        cuda::release(p, 4096);
    }

    TEST_CASE("an op with operands on two devices is an Error") {
        Var<float> a(Tensor<float>(Shape{4}).to(Device::cuda)), b(Tensor<float>(Shape{4}));
        CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("expected every operand on one device"), Error);
    }

    TEST_CASE("every activation, forward and backward, matches its CPU twin") {
        using Op = std::function<Var<float>(const Var<float>&)>;
        const std::vector<std::pair<const char*, Op>> ops{
            {"relu", [](const Var<float>& x) { return relu(x); }},
            {"leaky_relu", [](const Var<float>& x) { return leaky_relu(x, 0.2f); }},
            {"sigmoid", [](const Var<float>& x) { return sigmoid(x); }},
            {"tanh", [](const Var<float>& x) { return tanh(x); }},
            {"softplus", [](const Var<float>& x) { return softplus(x); }},
            {"exp", [](const Var<float>& x) { return exp(x); }},
            {"abs", [](const Var<float>& x) { return abs(x); }},
            {"log", [](const Var<float>& x) { return log(abs(x)); }},
        };
        // 300,000 elements: more than the launch's 4096 blocks of 256 threads cover in one pass.
        Tensor<float> x = randn<float>(Shape{300, 1000}, 2);
        for (int64_t i = 0; i < 1000; ++i) x[i] = static_cast<float>(i - 500) / 10.0f;  // both sides of 0 and 20
        const Tensor<float> seed = randn<float>(x.shape(), 3);
        for (const auto& [name, op] : ops) {
            INFO(name);
            Var<float> xc(x, true), xg = on_gpu(x);
            Var<float> yc = op(xc), yg = op(xg);
            CHECK(yg.value().device() == Device::cuda);
            CHECK(relative_difference(yg.value().to(Device::cpu), yc.value()) < 1e-5);
            // Twice: the first backward stores x's gradient (assign), the second adds onto it.
            for (int pass = 0; pass < 2; ++pass) {
                backward(yc, seed);
                backward(yg, seed.to(Device::cuda));
                CHECK(xg.grad().device() == Device::cuda);
                CHECK(relative_difference(xg.grad().to(Device::cpu), xc.grad()) < 1e-5);
                yc = op(xc), yg = op(xg);
            }
        }
    }
}
