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

using Fn = std::function<Var<float>(const std::vector<Var<float>>&)>;

// f on the CPU and on the GPU, from the same inputs: the outputs agree, and so does every input's
// gradient after two backward passes (the first stores each gradient, the second adds onto it).
void check_twins(const std::vector<Tensor<float>>& inputs, const Fn& f) {
    std::vector<Var<float>> cpu, gpu;
    for (const Tensor<float>& t : inputs) {
        cpu.emplace_back(t.clone(), true);
        gpu.emplace_back(t.to(Device::cuda), true);
    }
    for (int pass = 0; pass < 2; ++pass) {
        const Var<float> yc = f(cpu), yg = f(gpu);
        REQUIRE(yg.value().device() == Device::cuda);
        CHECK(relative_difference(yg.value().to(Device::cpu), yc.value()) < 1e-5);
        const Tensor<float> seed = randn<float>(yc.shape(), 9);
        backward(yc, seed);
        backward(yg, seed.to(Device::cuda));
        for (size_t i = 0; i < inputs.size(); ++i) {
            INFO("input ", i, ", pass ", pass);
            CHECK(gpu[i].grad().device() == Device::cuda);
            CHECK(relative_difference(gpu[i].grad().to(Device::cpu), cpu[i].grad()) < 1e-5);
        }
    }
}

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
        const MemoryStats before = cuda::device_memory_stats();
        void* p = cuda::allocate(4096);
        const MemoryStats after = cuda::device_memory_stats();
        CHECK(after.system_allocations == before.system_allocations);
        CHECK(after.reuses == before.reuses + 1);
        cuda::release(p, 4096);
    }

    TEST_CASE("an op with operands on two devices is an Error") {
        Var<float> a(Tensor<float>(Shape{4}).to(Device::cuda)), b(Tensor<float>(Shape{4}));
        CHECK_THROWS_WITH_AS(add(a, b), doctest::Contains("expected every operand on one device"), Error);
    }

    TEST_CASE("every activation, forward and backward, matches its CPU twin") {
        const std::vector<std::pair<const char*, Fn>> ops{
            {"relu", [](const auto& v) { return relu(v[0]); }},
            {"leaky_relu", [](const auto& v) { return leaky_relu(v[0], 0.2f); }},
            {"sigmoid", [](const auto& v) { return sigmoid(v[0]); }},
            {"tanh", [](const auto& v) { return tanh(v[0]); }},
            {"softplus", [](const auto& v) { return softplus(v[0]); }},
            {"exp", [](const auto& v) { return exp(v[0]); }},
            {"abs", [](const auto& v) { return abs(v[0]); }},
            {"log", [](const auto& v) { return log(abs(v[0])); }},
        };
        // 300,000 elements: more than the launch's 4096 blocks of 256 threads cover in one pass.
        Tensor<float> x = randn<float>(Shape{300, 1000}, 2);
        for (int64_t i = 0; i < 1000; ++i) x[i] = static_cast<float>(i - 500) / 10.0f;  // both sides of 0 and 20
        for (const auto& [name, op] : ops) {
            INFO(name);
            check_twins({x}, op);
        }
    }

    TEST_CASE("add, sub, mul and div, broadcast or not, with CPU scalars, match their CPU twins") {
        const Tensor<float> a = randn<float>(Shape{4, 1, 5}, 4), b = randn<float>(Shape{3, 1}, 5);
        const Tensor<float> c = randn<float>(Shape{4, 3, 5}, 6);
        Tensor<float> away = randn<float>(Shape{3, 1}, 7);  // a divisor kept away from 0
        for (float& v : away) v = v > 0 ? v + 0.5f : v - 0.5f;
        check_twins({a, b}, [](const auto& v) { return add(v[0], v[1]); });
        check_twins({a, b}, [](const auto& v) { return sub(v[0], v[1]); });
        check_twins({a, b}, [](const auto& v) { return mul(v[0], v[1]); });
        check_twins({a, away}, [](const auto& v) { return div(v[0], v[1]); });
        check_twins({c, a}, [](const auto& v) { return v[0] * v[1] - v[0]; });
        check_twins({c}, [](const auto& v) { return 2.0f * v[0] + 1.0f; });
    }

    TEST_CASE("sum and mean, whole and along an axis, match their CPU twins") {
        const Tensor<float> x = randn<float>(Shape{7, 300, 11}, 8);
        check_twins({x}, [](const auto& v) { return sum(v[0]); });
        check_twins({x}, [](const auto& v) { return mean(v[0]); });
        check_twins({x}, [](const auto& v) { return sum(v[0], 1); });
        check_twins({x}, [](const auto& v) { return mean(v[0], -1, true); });
        check_twins({x}, [](const auto& v) { return sum(v[0], 0); });
    }

    TEST_CASE("the losses and the reparameterized sample match their CPU twins, for every reduction") {
        Generator gen(11);
        const Shape images{16, 3, 8, 8};
        const Tensor<float> logits = randn<float>(images, 12, 3.0), target = Tensor<float>(images).uniform_(gen);
        const Tensor<float> p = Tensor<float>(images).uniform_(gen, 0.05, 0.95);
        const Tensor<float> mu = randn<float>(Shape{16, 10}, 13), logvar = randn<float>(Shape{16, 10}, 14, 0.5);
        const Tensor<float> eps = randn<float>(Shape{16, 10}, 15);
        for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean}) {
            INFO("reduction ", to_string(r));
            check_twins({logits, target}, [r](const auto& v) { return bce_with_logits(v[0], v[1], r); });
            check_twins({p, target}, [r](const auto& v) { return bce(v[0], v[1], r); });
            check_twins({logits, target}, [r](const auto& v) { return mse(v[0], v[1], r); });
            check_twins({mu, logvar}, [r](const auto& v) { return gaussian_kl(v[0], v[1], r); });
        }
        check_twins({mu, logvar, eps}, [](const auto& v) { return reparameterize(v[0], v[1], v[2]); });
    }

    TEST_CASE("linear, with and without a bias, matches its CPU twin (cuBLAS against elbo's GEMM)") {
        const Tensor<float> x = randn<float>(Shape{37, 129}, 16), w = randn<float>(Shape{65, 129}, 17, 0.1);
        const Tensor<float> b = randn<float>(Shape{65}, 18);
        check_twins({x, w, b}, [](const auto& v) { return linear(v[0], v[1], v[2]); });
        check_twins({x, w}, [](const auto& v) { return linear(v[0], v[1]); });
        check_twins({x, w, b}, [](const auto& v) { return relu(linear(v[0], v[1], v[2])) * 2.0f; });
    }
}
