// Modules (names, state_dict, init) and optimizers (PyTorch's trajectories).
#include <cstring>

#include "helpers.hpp"

using namespace elbo;
using testing::error_of;

namespace {

// A two-level tree as PyTorch would name it: block.0 (Linear), block.1 (ReLU), block.2 (Conv2d), head.
struct Net : nn::Module<double> {
    nn::Sequential<double> block;
    nn::Linear<double> head;
    explicit Net(Generator& gen) : head(4, 2, gen) {
        block.add<nn::Linear<double>>(3, 4, gen);
        block.add<nn::ReLU<double>>();
        block.add<nn::Conv2d<double>>(1, 2, 3, gen, Conv2dOptions{.padding = 1});
        register_module("block", block);
        register_module("head", head);
    }
    std::string name() const override { return "Net"; }
};

}  // namespace

TEST_SUITE("nn") {

TEST_CASE("Sequential runs a layer and the ReLU or LeakyReLU after it as one op, with the same values and gradients") {
    Generator gen(3);
    nn::Sequential<double> net;
    net.add<nn::Linear<double>>(5, 6, gen);
    net.add<nn::LeakyReLU<double>>(0.2);
    net.add<nn::Linear<double>>(6, 6, gen);
    net.add<nn::ReLU<double>>();
    net.add<nn::Linear<double>>(6, 4, gen);
    net.add<nn::LeakyReLU<double>>(-0.5);  // a negative slope stays an op of its own
    net.add<nn::Sigmoid<double>>();
    auto& l0 = dynamic_cast<nn::Linear<double>&>(net[0]);
    auto& l2 = dynamic_cast<nn::Linear<double>&>(net[2]);
    auto& l4 = dynamic_cast<nn::Linear<double>&>(net[4]);
    const Var<double> x(testing::randn<double>(Shape{3, 5}, 7));

    const Var<double> fused = net(x);
    // The ops recorded, from the output back: sigmoid, leaky_relu (slope -0.5), linear, linear, linear.
    std::vector<std::string> ops;
    for (const Node<double>* n = &fused.node(); !n->parents.empty(); n = n->parents[0].get()) ops.push_back(n->op);
    CHECK(ops == std::vector<std::string>{"sigmoid", "leaky_relu", "linear", "linear", "linear"});
    backward(sum(fused));
    std::vector<Tensor<double>> fused_grads;
    for (auto& [name, p] : net.named_parameters()) fused_grads.push_back(p.grad().clone());

    net.zero_grad();
    const Var<double> separate =
        sigmoid(leaky_relu(l4(relu(l2(leaky_relu(l0(x), 0.2)))), -0.5));
    backward(sum(separate));
    CHECK(std::memcmp(fused.value().data(), separate.value().data(), sizeof(double) * 12) == 0);
    size_t i = 0;
    for (auto& [name, p] : net.named_parameters()) {
        INFO(name);
        CHECK(std::memcmp(fused_grads[i++].data(), p.grad().data(), sizeof(double) * static_cast<size_t>(p.numel())) == 0);
    }
}

TEST_CASE("parameters are named as PyTorch's module tree names them") {
    Generator gen(1);
    Net net(gen);
    std::vector<std::string> names;
    for (auto& [n, p] : net.named_parameters()) {
        names.push_back(n);
        CHECK(p.requires_grad());
    }
    CHECK(names == std::vector<std::string>{"block.0.weight", "block.0.bias", "block.2.weight", "block.2.bias",
                                            "head.weight", "head.bias"});
    CHECK(net.state_dict().at("block.2.weight").shape() == Shape{2, 1, 3, 3});
    CHECK(error_of([&] { net.forward(Var<double>()); }) == "Net: this module has no forward(x); call its own methods");
}

TEST_CASE("default initialisation is PyTorch's: U(-1/sqrt(fan_in), 1/sqrt(fan_in))") {
    Generator gen(2);
    nn::Linear<double> linear(400, 300, gen);
    nn::Conv2d<double> conv(16, 8, 5, gen);
    nn::ConvTranspose2d<double> deconv(16, 8, 5, gen);  // fan_in = 8 * 5 * 5, PyTorch's rule
    auto bounds = [](const Tensor<double>& t) {
        double lo = 1e9, hi = -1e9, sum2 = 0;
        for (double v : t) lo = std::min(lo, v), hi = std::max(hi, v), sum2 += v * v;
        return std::tuple{lo, hi, std::sqrt(sum2 / t.numel())};
    };
    const std::pair<const Tensor<double>*, double> cases[] = {
        {&linear.weight.value(), 400}, {&linear.bias.value(), 400}, {&conv.weight.value(), 16 * 25},
        {&deconv.weight.value(), 8 * 25}, {&deconv.bias.value(), 8 * 25},
    };
    CHECK(error_of([&] { nn::Conv2d<double>(3, 0, 4, gen); }) == "Conv2d: out_channels must be positive, got 0");
    CHECK(error_of([&] { nn::Linear<double>(-1, 2, gen); }) == "Linear: in_features must be positive, got -1");
    for (auto [t, fan] : cases) {
        auto [lo, hi, rms] = bounds(*t);
        const double b = 1 / std::sqrt(fan);
        CHECK(lo >= -b);
        CHECK(hi <= b);
        if (t->numel() > 1000) CHECK(rms == doctest::Approx(b / std::sqrt(3.0)).epsilon(0.05));  // U(-b, b): b/sqrt(3)
    }
}

TEST_CASE("load_state_dict copies matching tensors and lists every mismatch otherwise") {
    Generator gen(3);
    Net a(gen), b(gen);
    b.load_state_dict(a.state_dict());
    CHECK(b.head.weight.value().to_vector() == a.head.weight.value().to_vector());
    CHECK_FALSE(b.head.weight.value().shares_storage_with(a.head.weight.value()));

    auto state = a.state_dict();
    state.erase("head.bias");
    state["block.0.weight"] = Tensor<double>(Shape{4, 5});
    state["extra"] = Tensor<double>(Shape{1});
    const Tensor<double> before = b.block.named_parameters()[0].second.value().clone();
    CHECK(error_of([&] { b.load_state_dict(state); }) ==
          "load_state_dict: the checkpoint does not fit the Net (3 mismatches):\n"
          "  'block.0.weight' has shape [4,5] in the checkpoint, [4,3] in the model\n"
          "  missing 'head.bias' [2]\n"
          "  unexpected 'extra' [1]");
    CHECK(b.block.named_parameters()[0].second.value().to_vector() == before.to_vector());  // nothing copied
}

TEST_CASE("Module::to the device the parameters are on changes nothing; to a GPU without the module is an Error") {
    Generator gen(4);
    Net net(gen);
    CHECK(net.device() == Device::cpu);
    backward(sum(net.head(Var<double>(Tensor<double>(Shape{1, 4}).normal_(gen)))));
    REQUIRE(net.head.weight.has_grad());
    const Tensor<double> weight = net.head.weight.value();
    net.to(Device::cpu);
    CHECK(net.head.weight.has_grad());  // nothing moved, so nothing was dropped
    CHECK(net.head.weight.value().shares_storage_with(weight));
    CHECK(error_of([&] { net.to(Device::cuda); }).find("this build has no CUDA module") != std::string::npos);
}

TEST_CASE("optimizers replay PyTorch's trajectories to 1e-6") {
    const auto file = load_safetensors<float>(std::string(ELBO_TEST_DIR) + "/reference/optim.safetensors");
    const char* runs[] = {"sgd", "sgd_nesterov", "adam", "adam_wd", "adamw"};
    for (const char* run : runs) {
        INFO(run);
        Var<float> a(file.at("start.a").clone(), true), b(file.at("start.b").clone(), true);
        optim::Optimizer<float>::Parameters params{{"a", a}, {"b", b}};
        std::unique_ptr<optim::Optimizer<float>> opt;
        const std::string r = run;
        if (r == "sgd") opt = std::make_unique<optim::SGD<float>>(params, optim::SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.01});
        if (r == "sgd_nesterov") opt = std::make_unique<optim::SGD<float>>(params, optim::SGDOptions{.lr = 0.05, .momentum = 0.8, .nesterov = true});
        if (r == "adam") opt = std::make_unique<optim::Adam<float>>(params, optim::AdamOptions{.lr = 1e-2});
        if (r == "adam_wd") opt = std::make_unique<optim::Adam<float>>(params, optim::AdamOptions{.lr = 1e-2, .beta1 = 0.5, .beta2 = 0.9, .weight_decay = 0.1});
        if (r == "adamw") opt = std::make_unique<optim::AdamW<float>>(params, optim::AdamOptions{.lr = 1e-2, .weight_decay = 0.1});
        REQUIRE(opt);
        for (int k = 0; file.contains("grad" + std::to_string(k) + ".a"); ++k) {
            opt->zero_grad();
            backward(sum(a * Var<float>(file.at("grad" + std::to_string(k) + ".a"))) +
                     sum(b * Var<float>(file.at("grad" + std::to_string(k) + ".b"))));
            opt->step();
            INFO("step ", k);
            const std::string at = r + ".step" + std::to_string(k) + ".";
            CHECK(testing::relative_difference(a.value(), file.at(at + "a")) < 1e-6);
            CHECK(testing::relative_difference(b.value(), file.at(at + "b")) < 1e-6);
        }
        CHECK(opt->steps() == 6);
    }
}

TEST_CASE("an optimizer's step sums its gradients' squares, and the layers' gradient norms come from them") {
    Var<float> w(testing::randn<float>(Shape{3, 5}, 1), true), b(testing::randn<float>(Shape{3}, 2), true);
    Var<float> unused(testing::randn<float>(Shape{4}, 3), true), other(testing::randn<float>(Shape{6}, 4), true);
    const Tensor<float> gw = testing::randn<float>(Shape{3, 5}, 5), gb = testing::randn<float>(Shape{3}, 6),
                        go = testing::randn<float>(Shape{6}, 7);
    auto squares = [](const Tensor<float>& t) {
        double s = 0;
        for (int64_t i = 0; i < t.numel(); ++i) s += double(t[i]) * double(t[i]);
        return s;
    };
    for (int kind = 0; kind < 2; ++kind) {
        INFO((kind == 0 ? "Adam" : "SGD"));
        const optim::Optimizer<float>::Parameters held{{"layer.weight", w}, {"layer.bias", b}, {"spare.weight", unused}};
        std::unique_ptr<optim::Optimizer<float>> opt;
        if (kind == 0) opt = std::make_unique<optim::Adam<float>>(held, optim::AdamOptions{.lr = 1e-2});
        if (kind == 1) opt = std::make_unique<optim::SGD<float>>(held, optim::SGDOptions{.lr = 1e-2, .momentum = 0.9});
        CHECK(opt->gradient_squares().empty());
        CHECK(train::gradient_norms<float>({{"layer.weight", w}}, *opt).size() == 1);  // before any step: summed here
        opt->zero_grad();
        other.zero_grad();
        backward(sum(w * Var<float>(gw)) + sum(b * Var<float>(gb)) + sum(other * Var<float>(go)));
        opt->step();
        REQUIRE(opt->gradient_squares().size() == 3);
        CHECK(*opt->gradient_squares()[0] == doctest::Approx(squares(gw)).epsilon(1e-12));
        CHECK(*opt->gradient_squares()[1] == doctest::Approx(squares(gb)).epsilon(1e-12));
        CHECK(!opt->gradient_squares()[2]);  // no gradient reached it: the step skipped it
        // Norms by layer, in the order asked; `other` is not the optimizer's, so it is summed afresh.
        const auto norms = train::gradient_norms<float>({{"layer.weight", w}, {"layer.bias", b}, {"spare.weight", unused},
                                                         {"extra.weight", other}},
                                                        *opt);
        REQUIRE(norms.size() == 3);
        CHECK(norms[0].first == "layer");
        CHECK(norms[0].second == doctest::Approx(std::sqrt(squares(gw) + squares(gb))).epsilon(1e-12));
        CHECK(norms[1] == std::pair<std::string, double>{"spare", 0.0});
        CHECK(norms[2].first == "extra");
        CHECK(norms[2].second == doctest::Approx(std::sqrt(squares(go))).epsilon(1e-12));
    }
}

TEST_CASE("the decoder's saturation: the logits past 15 either way, and of those the ones sure of the wrong pixel") {
    // Past 15 and right: 16 on a pixel of 1, -20 on 0. Past 15 and wrong: 15.5 on 0, -16 on 0.7 (a
    // target above 0.5 counts as 1). Not past 15: exactly 15 and -15, 14.9, 0, -0. So 4 of 9 sure,
    // 2 of 9 wrong; and the same counted over 1000 copies, past any vector width's remainder.
    const std::vector<float> logits{16.f, -20.f, 15.5f, -16.f, 15.f, -15.f, 14.9f, 0.f, -0.f};
    const std::vector<float> targets{1.f, 0.f, 0.f, 0.7f, 0.f, 1.f, 0.f, 1.f, 0.f};
    for (int copies : {1, 1000}) {
        INFO(copies, " copies");
        std::vector<float> l, t;
        for (int c = 0; c < copies; ++c) l.insert(l.end(), logits.begin(), logits.end()), t.insert(t.end(), targets.begin(), targets.end());
        const int64_t n = static_cast<int64_t>(l.size());
        const auto [sure, wrong] = train::saturation(Var<float>(Tensor<float>::from_vector(Shape{n}, l)),
                                                     Var<float>(Tensor<float>::from_vector(Shape{n}, t)));
        CHECK(sure == doctest::Approx(4.0 / 9.0).epsilon(1e-12));
        CHECK(wrong == doctest::Approx(2.0 / 9.0).epsilon(1e-12));
    }
}

TEST_CASE("optimizer state round-trips, so a resumed run continues exactly") {
    Generator gen(4);
    auto run = [](optim::Adam<double>& opt, Var<double>& w, int steps) {
        for (int i = 0; i < steps; ++i) {
            opt.zero_grad();
            backward(sum(w * w * w));
            opt.step();
        }
    };
    Var<double> w1(testing::randn(Shape{3}, 5), true), w2(w1.value().clone(), true);
    optim::Adam<double> a({{"w", w1}}, {.lr = 0.1});
    run(a, w1, 5);

    optim::Adam<double> first({{"w", w2}}, {.lr = 0.1});
    run(first, w2, 2);
    const auto state = first.state_dict("optimizer.vae.");
    CHECK(state.count("optimizer.vae.step"));
    CHECK(state.count("optimizer.vae.w.exp_avg_sq"));
    optim::Adam<double> resumed({{"w", w2}}, {.lr = 0.1});
    resumed.load_state_dict(state, "optimizer.vae.");
    run(resumed, w2, 3);
    CHECK(w2.value().to_vector() == w1.value().to_vector());

    CHECK(error_of([&] { resumed.load_state_dict({}, "optimizer.vae."); }) ==
          "Adam.load_state_dict: the state does not fit:\n  missing 'optimizer.vae.step' []\n"
          "  missing 'optimizer.vae.w.exp_avg' [3]\n  missing 'optimizer.vae.w.exp_avg_sq' [3]");
    CHECK(error_of([&] { optim::Adam<double>({{"w", w2}}, {.beta1 = 1.0}); }) == "Adam: betas must be in [0, 1), got (1, 0.999)");
    CHECK(error_of([&] { optim::SGD<double>({{"w", w2}}, {.lr = -1}); }) ==
          "SGD: lr, momentum and weight_decay must be non-negative, got -1, 0, 0");
}

}
