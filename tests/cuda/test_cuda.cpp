// The CUDA module: each kernel against its CPU twin on the same inputs (suite "gpu", float, 1e-5
// relative), a whole training step of the seed's models against the CPU's, `elbo train|bench
// --device cuda`, and the parts that need no GPU (suite "no_gpu"): errors, and what a missing GPU says.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "../helpers.hpp"
#include "elbo/cuda/nccl.hpp"
#include "elbo/elbo.hpp"

using namespace elbo;
using testing::randn;
using testing::relative_difference;
using testing::run_elbo;
using testing::scratch_dir;

namespace {

// A train::Group of one process: the host group under cuda::nccl_group in these tests. Its sums
// leave the values as they are; it counts the gradient syncs asked of it.
class OneProcess final : public train::Group {
public:
    int host_syncs = 0;
    int rank() const override { return 0; }
    int size() const override { return 1; }
    void sum(double*, int64_t) override {}
    void gather(const float* mine, int64_t n, float* all) override { std::copy(mine, mine + n, all); }
    void broadcast(float*, int64_t, int) override {}
    std::unique_ptr<train::GradientSync> gradients(const std::vector<Var<float>>& parameters, float scale) override {
        struct Scaled final : train::GradientSync {
            std::vector<Var<float>> parameters;
            float scale = 1;
            void ready(Node<float>&) override {}
            void finish() override {
                for (Var<float>& p : parameters) {  // on the CPU
                    Tensor<float>& g = p.node().grad_buffer();
                    for (int64_t i = 0; i < g.numel(); ++i) g[i] *= scale;
                }
            }
        };
        ++host_syncs;
        auto sync = std::make_unique<Scaled>();
        sync->parameters = parameters, sync->scale = scale;
        return sync;
    }
};

}  // namespace

TEST_SUITE("no_gpu") {
    TEST_CASE("NCCL: the module says whether it has it; gradients on the CPU go through the host group") {
        CHECK(cuda::has_nccl() == bool(ELBO_EXPECT_NCCL));
        OneProcess host;
        if (!cuda::has_nccl()) {
            CHECK(testing::error_of([&] { cuda::nccl_group(host, 10); }).find("built without NCCL") !=
                  std::string::npos);
            return;
        }
        CHECK(testing::error_of([&] { cuda::nccl_group(host, 0); }) ==
              "cuda::nccl_group: the timeout must be positive, got 0");
        CHECK(testing::error_of([&] { cuda::nccl_group(host, 10, 0); }) ==
              "cuda::nccl_group: the bucket size must be positive, got 0");
        const std::unique_ptr<train::Group> group = cuda::nccl_group(host, 10);
        CHECK(group->rank() == 0);
        CHECK(group->size() == 1);
        // A model on the CPU: its step's gradients are the host group's to sum (no NCCL, no GPU asked).
        models::ModelConfig c;
        c.kind = "vae", c.arch = "kim-mnih", c.channels = 1, c.image_size = 32, c.latent = 4;
        Generator init(71), data(72);
        models::VAE<float> model(c, init);
        optim::Adam<float> opt(model.vae_parameters(), {});
        const Tensor<float> x = Tensor<float>(Shape{4, 1, 32, 32}).uniform_(data);
        CHECK(train::step(model, opt, x, StepDraws{73, 0}, group.get()).finite());
        CHECK(host.host_syncs == 1);
    }

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
            // Without a device (or driver) every real call fails.
            CHECK_THROWS_WITH_AS(cuda::synchronize(), doctest::Contains("CUDA: cudaDeviceSynchronize() failed with"),
                                 Error);
            CHECK_THROWS_WITH_AS(cuda::synchronize(), doctest::Contains("runtime.cu:"), Error);
            float host[1] = {1.0f};
            CHECK_THROWS_WITH_AS(cuda::copy_to_device(host, host, sizeof host), doctest::Contains("CUDA: cuda"), Error);
            CHECK_THROWS_WITH_AS(Tensor<float>(Shape{4}).to(Device::cuda), doctest::Contains("no CUDA device"), Error);
        } else {
            // With one, a petabyte is more than it has.
            CHECK_THROWS_WITH_AS(cuda::allocate(size_t(1) << 50), doctest::Contains("cudaMalloc"), Error);
        }
    }

    TEST_CASE("elbo train and bench --device cuda on a machine without a GPU say so in one line") {
        if (cuda::device_count() > 0) return;  // the gpu suite runs them
        const auto dir = scratch_dir("cuda-cli");
        for (const std::string& command : {"train --out " + (dir / "x").string(), std::string("bench")}) {
            const testing::Result r = run_elbo(command + " --device cuda", dir);
            INFO(r.err);
            CHECK(r.status == 1);
            CHECK(r.err.rfind(str("elbo: ", command.substr(0, 5), ": --device cuda: this machine has no GPU ("), 0) == 0);
            CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        }
        std::filesystem::remove_all(dir);
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

// The terms of a training step's objective on the CPU and on the GPU (train::StepTerms, or a row of
// metrics.csv): loss, recon and kl to 1e-5; tc, a sum of logit differences that may cancel, to 1e-5
// of at least one nat; the discriminator's loss, which reads codes from the encoder after the VAE's
// Adam step (see the whole-step test), to 1e-4.
template <class Terms>
void check_same_terms(const Terms& cpu, const Terms& gpu) {
    for (auto [name, a, b, tolerance, floor] :
         {std::tuple{"loss", cpu.loss, gpu.loss, 1e-5, 1e-3}, std::tuple{"recon", cpu.recon, gpu.recon, 1e-5, 1e-3},
          std::tuple{"kl", cpu.kl, gpu.kl, 1e-5, 1e-3}, std::tuple{"tc", cpu.tc, gpu.tc, 1e-5, 1.0},
          std::tuple{"discriminator", cpu.discriminator, gpu.discriminator, 1e-4, 1e-3}}) {
        INFO(name, ": cpu ", a, ", gpu ", b);
        CHECK(std::abs(a - b) <= tolerance * std::max(std::abs(a), floor));
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
        CHECK(cuda::device_memory_stats().cached_bytes >= 4096);
        cuda::release_cached_device_memory();  // hands the cached blocks back to the driver
        CHECK(cuda::device_memory_stats().cached_bytes == 0);
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

    TEST_CASE("conv2d and conv_transpose2d, with every hyper-parameter, match their CPU twins (im2col + cuBLAS)") {
        struct Case {
            int64_t N, C, H, W, O, k, stride, padding, dilation;
        };
        uint64_t seed = 30;
        for (const Case& c : {Case{2, 3, 9, 7, 5, 3, 1, 1, 1}, Case{4, 2, 16, 16, 6, 4, 2, 1, 1},
                             Case{3, 4, 11, 10, 3, 3, 2, 0, 2}, Case{1, 1, 5, 5, 2, 5, 1, 2, 1}}) {
            INFO("N ", c.N, " C ", c.C, " H ", c.H, " W ", c.W, " O ", c.O, " k ", c.k, " stride ", c.stride,
                 " padding ", c.padding, " dilation ", c.dilation);
            const Tensor<float> x = randn<float>(Shape{c.N, c.C, c.H, c.W}, ++seed);
            const Tensor<float> w = randn<float>(Shape{c.O, c.C, c.k, c.k}, ++seed, 0.3);
            const Tensor<float> b = randn<float>(Shape{c.O}, ++seed);
            const Conv2dOptions o{.stride = c.stride, .padding = c.padding, .dilation = c.dilation};
            check_twins({x, w, b}, [o](const auto& v) { return conv2d(v[0], v[1], v[2], o); });
            check_twins({x, w}, [o](const auto& v) { return conv2d(v[0], v[1], {}, o); });
            // The transposed convolution of the same sizes, from C channels to O.
            const Tensor<float> wt = randn<float>(Shape{c.C, c.O, c.k, c.k}, ++seed, 0.3);
            const ConvTranspose2dOptions t{.stride = c.stride, .padding = c.padding,
                                           .output_padding = c.stride > 1 ? 1 : 0, .dilation = c.dilation};
            check_twins({x, wt, b}, [t](const auto& v) { return conv_transpose2d(v[0], v[1], v[2], t); });
            check_twins({x, wt}, [t](const auto& v) { return conv_transpose2d(v[0], v[1], {}, t); });
        }
    }

    TEST_CASE("reshape, flatten and concat pass gradients on the GPU as on the CPU") {
        const Tensor<float> a = randn<float>(Shape{4, 3, 5}, 40), b = randn<float>(Shape{2, 3, 5}, 41);
        check_twins({a}, [](const auto& v) { return reshape(v[0], {6, -1}) * 3.0f; });
        check_twins({a}, [](const auto& v) { return flatten(v[0]) + 1.0f; });
        check_twins({a, b}, [](const auto& v) { return concat<float>({v[0], v[1], v[0]}); });
    }

    TEST_CASE("log_softmax and cross_entropy match their CPU twins, for every axis and reduction") {
        const Tensor<float> x = randn<float>(Shape{5, 7, 3}, 42, 4.0), logits = randn<float>(Shape{37, 4}, 43, 3.0);
        check_twins({x}, [](const auto& v) { return log_softmax(v[0], 1); });
        check_twins({x}, [](const auto& v) { return log_softmax(v[0]); });
        std::vector<int64_t> labels;
        for (int64_t n = 0; n < 37; ++n) labels.push_back(n * 7 % 4);
        for (Reduction r : {Reduction::none, Reduction::sum, Reduction::mean}) {
            INFO("reduction ", to_string(r));
            check_twins({logits}, [&](const auto& v) { return cross_entropy(v[0], labels, r); });
        }
        // An empty batch (no labels to copy) sums to 0.
        check_twins({Tensor<float>(Shape{0, 4})}, [](const auto& v) { return cross_entropy(v[0], {}, Reduction::sum); });
    }

    TEST_CASE("ε drawn on the GPU is the CPU's: the same Philox streams") {
        // 4,096 images x 10 latents, each image from its own stream; the GPU's double log, cos and
        // sin may differ from glibc's in a double's last bit, which float's rounding hides but for
        // a draw in about 2^29: allow a handful of one-ulp differences, no more.
        const StepDraws draws{.seed = 17, .step = 123456789, .first_image = 64};
        const Tensor<float> cpu = standard_normal_like(Var<float>(Tensor<float>(Shape{4096, 10})), draws).value();
        const Tensor<float> gpu = standard_normal_like(Var<float>(Tensor<float>(Shape{4096, 10}).to(Device::cuda)), draws)
                                      .value();
        REQUIRE(gpu.device() == Device::cuda);
        const std::vector<float> a = cpu.to_vector(), b = gpu.to_vector();
        int64_t differ = 0;
        for (size_t i = 0; i < a.size(); ++i)
            if (a[i] != b[i]) {
                ++differ;
                CHECK(std::abs(a[i] - b[i]) <= 2e-7f * std::abs(a[i]));
            }
        CHECK(differ <= 4);
    }

    TEST_CASE("permute_dims and gather_columns, repeated rows too, match their CPU twins") {
        const Tensor<float> z = randn<float>(Shape{64, 10}, 44);
        // One permutation for both devices: it is drawn on the host.
        check_twins({z}, [](const auto& v) { return permute_dims(v[0], StepDraws{.seed = 45}); });
        const Tensor<float> small = randn<float>(Shape{3, 2}, 46);
        check_twins({small}, [](const auto& v) { return gather_columns(v[0], {{0, 0, 1}, {2, 2, 2}}); });
    }

    TEST_CASE("the SGD, Adam and AdamW steps match their CPU twins, state included") {
        const Tensor<float> w0 = randn<float>(Shape{300, 37}, 47), g = randn<float>(Shape{300, 37}, 48);
        using Make = std::function<std::unique_ptr<optim::Optimizer<float>>(optim::Optimizer<float>::Parameters)>;
        const std::vector<std::pair<const char*, Make>> optimizers{
            {"SGD", [](auto p) { return std::make_unique<optim::SGD<float>>(p, optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01}); }},
            {"SGD Nesterov", [](auto p) { return std::make_unique<optim::SGD<float>>(p, optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true}); }},
            {"Adam", [](auto p) { return std::make_unique<optim::Adam<float>>(p, optim::AdamOptions{.lr = 1e-2, .weight_decay = 0.01}); }},
            {"AdamW", [](auto p) { return std::make_unique<optim::AdamW<float>>(p, optim::AdamOptions{.lr = 1e-2, .weight_decay = 0.1}); }},
        };
        for (const auto& [name, make] : optimizers) {
            INFO(name);
            // Three steps on the loss sum(p * g), whose gradient is g exactly on both devices.
            auto run = [&](Device device) {
                Var<float> p(w0.clone().to(device), true);
                const Var<float> gv(g.to(device));
                auto opt = make({{"p", p}});
                for (int step = 0; step < 3; ++step) {
                    opt->zero_grad();
                    backward(sum(p * gv));
                    opt->step();
                }
                std::map<std::string, Tensor<float>> out = opt->state_dict("");
                out.emplace("p", p.value());
                return out;
            };
            const auto cpu = run(Device::cpu), gpu = run(Device::cuda);
            CHECK(gpu.at("p").device() == Device::cuda);
            for (const auto& [key, t] : cpu) {
                INFO(key);
                CHECK(relative_difference(gpu.at(key).to(Device::cpu), t) < 1e-5);
            }
        }
    }

    TEST_CASE("Module::to moves the parameters, and an optimizer made before follows them") {
        Generator gen(49);
        nn::Linear<float> layer(20, 7, gen);
        const Tensor<float> w = layer.weight.value().clone(), x = randn<float>(Shape{5, 20}, 50);
        optim::Adam<float> opt(layer.named_parameters(), {.lr = 1e-2});
        layer.to(Device::cuda);
        CHECK(layer.device() == Device::cuda);
        CHECK(layer.weight.value().to(Device::cpu).to_vector() == w.to_vector());
        backward(sum(layer(Var<float>(x.to(Device::cuda)))));
        opt.step();  // its moments move to the GPU with the parameters
        for (const auto& [key, t] : opt.state_dict("")) {
            INFO(key);
            if (key != "step") CHECK(t.device() == Device::cuda);
        }
        // A checkpoint written from the GPU is the one written from the host.
        const auto on_gpu = serialize_safetensors(layer.state_dict());
        layer.to(Device::cpu);
        CHECK(layer.device() == Device::cpu);
        CHECK(serialize_safetensors(layer.state_dict()) == on_gpu);
        CHECK(layer.weight.value().to_vector() != w.to_vector());  // the step did move it
    }

    TEST_CASE("a whole training step of VAE and FactorVAE, both networks, on the GPU matches the CPU's") {
        for (const char* arch : {"seed", "kim-mnih"})
        for (const char* kind : {"vae", "factor-vae"}) {
            INFO(arch, " ", kind);
            models::ModelConfig c;
            c.kind = kind;
            c.arch = arch;
            if (c.is_factor_vae()) c.gamma = 35;
            Generator init_cpu(51), init_gpu(51);
            const Shape images{8, c.channels, c.image_size, c.image_size};
            Generator data(52);
            const Tensor<float> x = Tensor<float>(images).uniform_(data), x_other = Tensor<float>(images).uniform_(data);
            // The model of each kind, as its own type, and its step; the same draws on both devices.
            std::unique_ptr<models::VAE<float>> cpu, gpu;
            train::StepTerms lc, lg;
            if (c.is_factor_vae()) {
                auto fc = std::make_unique<models::FactorVAE<float>>(c, init_cpu);
                auto fg = std::make_unique<models::FactorVAE<float>>(c, init_gpu);
                fg->to(Device::cuda);
                optim::Adam<float> vae_cpu(fc->vae_parameters(), {}), vae_gpu(fg->vae_parameters(), {});
                optim::Adam<float> d_cpu(fc->discriminator_parameters(), models::factor_vae_discriminator_adam());
                optim::Adam<float> d_gpu(fg->discriminator_parameters(), models::factor_vae_discriminator_adam());
                lc = train::step(*fc, vae_cpu, d_cpu, x, x_other, StepDraws{53, 0});
                lg = train::step(*fg, vae_gpu, d_gpu, x, x_other, StepDraws{53, 0});
                cpu = std::move(fc), gpu = std::move(fg);
            } else {
                cpu = std::make_unique<models::VAE<float>>(c, init_cpu);
                gpu = std::make_unique<models::VAE<float>>(c, init_gpu);
                gpu->to(Device::cuda);
                optim::Adam<float> vae_cpu(cpu->vae_parameters(), {}), vae_gpu(gpu->vae_parameters(), {});
                lc = train::step(*cpu, vae_cpu, x, StepDraws{53, 0});
                lg = train::step(*gpu, vae_gpu, x, StepDraws{53, 0});
            }
            check_same_terms(lc, lg);
            const auto pc = cpu->named_parameters(), pg = gpu->named_parameters();
            REQUIRE(pc.size() == pg.size());
            for (size_t i = 0; i < pc.size(); ++i) {
                INFO(pc[i].first);
                const Tensor<float> grad_cpu = pc[i].second.grad(), grad_gpu = pg[i].second.grad().to(Device::cpu);
                // Eight layers of float sums added in other orders: 1e-4 of the gradient's scale.
                CHECK(relative_difference(grad_gpu, grad_cpu) < 1e-4);
                // Adam's first step moves each weight by lr * g / (|g| + eps), about lr in the direction of
                // g: where g is too small for its sign to survive other summation orders, the weights may
                // differ by up to 2 lr. Everywhere else they agree to 1e-5 of the tensor's scale.
                const Tensor<float> w_cpu = pc[i].second.value(), w_gpu = pg[i].second.value().to(Device::cpu);
                double g_scale = 0, w_scale = 0;
                for (int64_t j = 0; j < w_cpu.numel(); ++j) {
                    g_scale = std::max(g_scale, std::abs(static_cast<double>(grad_cpu[j])));
                    w_scale = std::max(w_scale, std::abs(static_cast<double>(w_cpu[j])));
                }
                const double lr = c.is_factor_vae() && pc[i].first.rfind("discriminator", 0) == 0
                                      ? models::factor_vae_discriminator_adam().lr
                                      : optim::AdamOptions{}.lr;
                int64_t far = 0;
                for (int64_t j = 0; j < w_cpu.numel(); ++j) {
                    const double d = std::abs(static_cast<double>(w_gpu[j]) - w_cpu[j]);
                    const bool resolved = std::abs(grad_cpu[j]) > 1e-3 * g_scale;
                    if (d > (resolved ? 1e-5 * w_scale : 2.0001 * lr)) ++far;
                }
                CHECK(far == 0);
            }
        }
    }

    TEST_CASE("NCCL over one process: the steps' weights are those without a group, the gradients in many buckets") {
        if (!cuda::has_nccl()) {
            MESSAGE("skipped: this CUDA module was built without NCCL");
            return;
        }
        for (const char* kind : {"vae", "factor-vae"}) {
            INFO(kind);
            models::ModelConfig c;
            c.kind = kind, c.arch = "kim-mnih", c.channels = 1, c.image_size = 64, c.latent = 10;
            if (c.is_factor_vae()) c.gamma = 35;
            struct Run {
                std::unique_ptr<models::VAE<float>> model;
                std::unique_ptr<optim::Adam<float>> opt, d_opt;
                explicit Run(const models::ModelConfig& c) {
                    Generator init(81);
                    model = models::make_model<float>(c, init);
                    model->to(Device::cuda);
                    opt = std::make_unique<optim::Adam<float>>(model->vae_parameters(), models::factor_vae_adam());
                    if (auto* f = dynamic_cast<models::FactorVAE<float>*>(model.get()))
                        d_opt = std::make_unique<optim::Adam<float>>(f->discriminator_parameters(),
                                                                     models::factor_vae_discriminator_adam());
                }
                train::StepTerms step(const Tensor<float>& x, const Tensor<float>& y, int64_t s, train::Group* g) {
                    if (auto* f = dynamic_cast<models::FactorVAE<float>*>(model.get()))
                        return train::step(*f, *opt, *d_opt, x, y, StepDraws{82, s}, g);
                    return train::step(*model, *opt, x, StepDraws{82, s}, g);
                }
            };
            Generator data(83);
            const Tensor<float> x = Tensor<float>(Shape{16, 1, 64, 64}).uniform_(data);
            const Tensor<float> y = Tensor<float>(Shape{16, 1, 64, 64}).uniform_(data);
            OneProcess host;
            // 256 KiB buckets: the kim-mnih FactorVAE's 22 MB of gradients in about 80.
            const std::unique_ptr<train::Group> gpus = cuda::nccl_group(host, 60, int64_t(256) << 10);
            Run alone(c), grouped(c);
            for (int64_t s = 0; s < 3; ++s) {
                const train::StepTerms a = alone.step(x, y, s, nullptr), b = grouped.step(x, y, s, gpus.get());
                CHECK(b.loss == doctest::Approx(a.loss).epsilon(1e-6));
                CHECK(b.discriminator == doctest::Approx(a.discriminator).epsilon(1e-6));
            }
            CHECK(host.host_syncs == 0);  // every gradient was summed on the GPU
            const auto pa = alone.model->named_parameters(), pb = grouped.model->named_parameters();
            for (size_t i = 0; i < pa.size(); ++i) {
                INFO(pa[i].first);
                CHECK(relative_difference(pb[i].second.value().to(Device::cpu), pa[i].second.value().to(Device::cpu)) <
                      1e-6);
                CHECK(relative_difference(pb[i].second.grad().to(Device::cpu), pa[i].second.grad().to(Device::cpu)) <
                      1e-5);
            }
        }
    }

#ifdef ELBO_MPIEXEC
    TEST_CASE("mpirun -np 2 --device cuda, one GPU each, trains what one process does with the whole batch") {
        if (cuda::device_count() < 2) {
            MESSAGE("skipped: two processes need two GPUs (NCCL takes one per process); this machine has ",
                    cuda::device_count());
            return;
        }
        const auto dir = scratch_dir("cuda-mpi");
        // The sum reduction (the seed's and the paper's), and the mean, whose gradients the sums scale by 1/2.
        for (const std::string model : {"vae --reduction sum", "factor-vae --reduction sum", "vae --reduction mean"}) {
            INFO(model);
            const std::string flags = " --device cuda --model " + model + " --arch kim-mnih --data dsprites "
                                      "--latent 10 --steps 20 --log-every 1 --threads 1 --checkpoint-every 10";
            const testing::Result one = run_elbo("train --batch 32 --out " + (dir / "one").string() + flags, dir);
            INFO(one.err);
            REQUIRE(one.status == 0);
            const testing::Result two = testing::run_command(
                std::string(ELBO_MPIEXEC) + " --oversubscribe --allow-run-as-root -np 2 " + ELBO_CLI +
                    " train --batch 16 --out " + (dir / "two").string() + flags,
                dir);
            INFO(two.err);
            REQUIRE(two.status == 0);
            CHECK(two.err.find("2 processes of 16 images a step") != std::string::npos);
            const auto a = models::read_checkpoint<float>((dir / "one" / "checkpoint.safetensors").string());
            const auto b = models::read_checkpoint<float>((dir / "two" / "checkpoint.safetensors").string());
            for (const auto& [name, t] : a.model) {
                INFO(name);
                CHECK(relative_difference(b.model.at(name), t) < 1e-5);
            }
            std::filesystem::remove_all(dir / "one");
            std::filesystem::remove_all(dir / "two");
        }
        std::filesystem::remove_all(dir);
    }
#endif

    TEST_CASE("shadow mode: a step on the GPU agrees op by op with the same step in double on the CPU") {
        for (const char* kind : {"vae", "factor-vae"}) {
            INFO(kind);
            models::ModelConfig c;
            c.kind = kind, c.arch = "kim-mnih", c.channels = 1, c.image_size = 64, c.latent = 10;
            if (c.is_factor_vae()) c.gamma = 35;
            Generator init(61), data(62);
            const std::unique_ptr<models::VAE<float>> model = models::make_model<float>(c, init);
            model->to(Device::cuda);
            optim::Adam<float> opt(model->vae_parameters(), models::factor_vae_adam());
            std::unique_ptr<optim::Adam<float>> d_opt;
            if (auto* f = dynamic_cast<models::FactorVAE<float>*>(model.get()))
                d_opt = std::make_unique<optim::Adam<float>>(f->discriminator_parameters(),
                                                             models::factor_vae_discriminator_adam());
            const Shape images{16, 1, 64, 64};
            const Tensor<float> x = Tensor<float>(images).uniform_(data), x_other = Tensor<float>(images).uniform_(data);
            for (int64_t step = 0; step < 2; ++step) {
                const auto [terms, report] =
                    train::shadow_step(*model, opt, d_opt.get(), x, x_other, StepDraws{63, step}, 1e-3);
                INFO(report.summary());
                CHECK(report.ok());
                CHECK(report.parameters > 0);
                CHECK(terms.finite());
            }
        }
    }

    TEST_CASE("elbo train --device cuda trains the three models, as on the CPU; bench --device cuda runs both") {
        const auto dir = scratch_dir("cuda-train");
        const std::string tiny = " --data dsprites --image-size 16 --batch 8 --latent 3 --threads 1 --steps 3 --log-every 1";
        for (const std::string model : {"vae", "beta-vae", "factor-vae"}) {
            INFO(model);
            std::vector<train::MetricsRow> firsts;
            for (const std::string device : {"cpu", "cuda"}) {
                const auto out = dir / (model + "-" + device);
                const testing::Result r =
                    run_elbo("train --model " + model + " --device " + device + " --out " + out.string() + tiny, dir);
                INFO(r.err);
                REQUIRE(r.status == 0);
                CHECK(std::filesystem::exists(out / "checkpoint.safetensors"));
                CHECK(std::filesystem::exists(out / "samples.png"));
                std::istringstream metrics(testing::read_text(out / "metrics.csv"));
                std::string header, first;
                std::getline(metrics, header);
                std::getline(metrics, first);
                firsts.push_back(train::MetricsRow::parse(header, first));
            }
            check_same_terms(firsts[0], firsts[1]);  // the first logged step: its losses come before any update
        }
        for (const std::string model : {"vae", "factor-vae"}) {
            const testing::Result r =
                run_elbo("bench --device cuda --model " + model + " --image-size 32 --batch 16 --steps 3 --warmup 2", dir);
            INFO(r.err);
            REQUIRE(r.status == 0);
            const auto j = nlohmann::json::parse(r.out);
            CHECK(j["device"] == "cuda");
            CHECK(j["train_step_ms"].get<double>() > 0);
            CHECK(j["step_allocations"] == 0);  // the caching allocator serves a steady-state step
        }
        std::filesystem::remove_all(dir);
    }
}
