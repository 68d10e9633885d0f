// The models against PyTorch, their checkpoints, and a few steps of training.
#include <barrier>
#include <cstdlib>
#include <map>
#include <numeric>
#include <thread>
#include <filesystem>

#include "elbo/train/shadow.hpp"
#include "elbo/train/step.hpp"
#include "helpers.hpp"

using namespace elbo;
using namespace elbo::models;
using testing::error_of;
namespace fs = std::filesystem;

namespace {

const std::string reference = std::string(ELBO_TEST_DIR) + "/reference/";

// Every parameter gradient and the loss of `grads` against PyTorch's file, 1e-4 relative to each
// tensor's scale (float sums over up to 2 x 8192 terms, in another order than PyTorch's).
void expect_matches_pytorch(const std::map<std::string, Tensor<float>>& grads, const Safetensors<float>& torch_file,
                            size_t expected_parameters) {
    size_t compared = 0;
    for (auto& [name, g] : grads) {
        if (name == "loss") continue;
        INFO(name);
        REQUIRE(torch_file.contains(name));
        CHECK(testing::relative_difference(g, torch_file.at(name)) < 1e-4);
        ++compared;
    }
    CHECK(compared == expected_parameters);
    CHECK(grads.at("loss").item() == doctest::Approx(torch_file.at("loss").item()).epsilon(1e-5));
}

// The gradients elbo computes for a checkpoint and a batch file, as `elbo grads` does.
std::map<std::string, Tensor<float>> gradients(const std::string& checkpoint, const Safetensors<float>& batch,
                                               Reduction reduction, double gamma) {
    Checkpoint<float> ck = read_checkpoint<float>(checkpoint);
    ck.config.reduction = reduction;
    ck.config.gamma = gamma;
    Generator gen(0);
    auto model = load_model(ck, gen);
    const Var<float> x(batch.at("x"));
    auto out = model->forward(x, Var<float>(batch.at("eps")));
    auto loss = model->loss(x, out);
    backward(loss.total);
    std::map<std::string, Tensor<float>> grads{{"loss", loss.total.value()}};
    for (auto& [name, p] : model->named_parameters()) grads.emplace(name, p.grad());
    return grads;
}

// 32 one-channel 16x16 images of filled rectangles, values 0 or 1.
Tensor<float> rectangles(Generator& gen) {
    Tensor<float> images(Shape{32, 1, 16, 16});
    for (int64_t n = 0; n < 32; ++n) {
        const int64_t top = gen.below(10), left = gen.below(10), h = 3 + gen.below(4), w = 3 + gen.below(4);
        for (int64_t i = top; i < top + h; ++i)
            for (int64_t j = left; j < left + w; ++j) images.at({n, 0, i, j}) = 1.0f;
    }
    return images;
}

ModelConfig small(const std::string& kind) {
    ModelConfig c;
    c.kind = kind;
    c.channels = 1;
    c.image_size = 16;
    c.latent = 4;
    c.discriminator_hidden = 32;
    c.reduction = Reduction::mean;
    return c;
}

}  // namespace

TEST_SUITE("models") {

TEST_CASE("a PyTorch-saved seed VAE loads, its configuration inferred from the shapes") {
    Checkpoint<float> ck = read_checkpoint<float>(reference + "seed_vae.safetensors");
    CHECK(ck.metadata.empty());
    CHECK(ck.config.kind == "vae");
    CHECK(ck.config.arch == "seed");
    CHECK(ck.config.channels == 3);
    CHECK(ck.config.image_size == 64);
    CHECK(ck.config.latent == 64);
    Generator gen(0);
    auto model = load_model(ck, gen);
    CHECK(model->named_parameters().size() == 18);
    CHECK(model->encoder.fc_mu.weight.value().to_vector() == ck.model.at("encoder.fc_mu.weight").to_vector());
}

TEST_CASE("the seed VAE's loss and gradients are PyTorch's, for the seed's code as it is written") {
    const auto torch_grads = load_safetensors<float>(reference + "seed_vae_grads.safetensors");
    expect_matches_pytorch(gradients(reference + "seed_vae.safetensors", torch_grads, Reduction::sum, 0.0), torch_grads, 18);
}

TEST_CASE("a PyTorch-saved kim-mnih VAE loads as the paper's network, and its gradients are PyTorch's") {
    Checkpoint<float> ck = read_checkpoint<float>(reference + "kim_mnih_vae.safetensors");
    CHECK(ck.config.arch == "kim-mnih");
    CHECK(ck.config.channels == 1);
    CHECK(ck.config.image_size == 64);
    CHECK(ck.config.latent == 10);
    const auto torch_grads = load_safetensors<float>(reference + "kim_mnih_vae_grads.safetensors");
    expect_matches_pytorch(gradients(reference + "kim_mnih_vae.safetensors", torch_grads, Reduction::sum, 0.0), torch_grads,
                           26);
}

TEST_CASE("a small kim-mnih FactorVAE's loss and gradients, discriminator included, are PyTorch's") {
    Checkpoint<float> ck = read_checkpoint<float>(reference + "factor_vae.safetensors");
    CHECK(ck.config.arch == "kim-mnih");
    CHECK(ck.config.image_size == 32);
    CHECK(ck.config.discriminator_hidden == 32);
    CHECK(ck.config.discriminator_layers == 6);
    const auto torch_grads = load_safetensors<float>(reference + "factor_vae_grads.safetensors");
    expect_matches_pytorch(gradients(reference + "factor_vae.safetensors", torch_grads, Reduction::mean, 6.4), torch_grads,
                           40);
}

TEST_CASE("a checkpoint without an arch loads as seed-v0: the seed's network with a ReLU after the decoder's fc") {
    const fs::path dir = testing::scratch_dir("models-seed-v0");
    Generator gen(12);
    ModelConfig c = small("vae");
    c.arch = "seed-v0";
    c.capacity_max = 20, c.capacity_steps = 100, c.capacity_weight = 1000;
    VAE<float> old_model(c, gen);
    // What elbo wrote before arch existed: no arch, no capacity_weight (gamma weighed the
    // capacity objective), no discriminator_layers.
    std::map<std::string, std::string> metadata = c.to_metadata();
    metadata.erase("arch"), metadata.erase("capacity_weight"), metadata.erase("discriminator_layers");
    metadata["gamma"] = "1000";
    const std::string path = (dir / "old.safetensors").string();
    save_safetensors<float>(path, old_model.state_dict(), metadata);

    Checkpoint<float> ck = read_checkpoint<float>(path);
    CHECK(ck.config.arch == "seed-v0");
    CHECK(ck.config.capacity_weight == 1000);
    CHECK(ck.config.gamma == 0);
    CHECK(ck.config.discriminator_layers == 5);
    auto loaded = load_model(ck, gen);

    // seed-v0 decodes relu(fc(z)); the seed decodes fc(z). With the same weights they differ
    // exactly by that ReLU.
    ModelConfig seed_config = ck.config;
    seed_config.arch = "seed";
    VAE<float> seed(seed_config, gen);
    seed.load_state_dict(ck.model);
    const Var<float> z(Tensor<float>(Shape{3, 4}).normal_(gen, 0.0, 2.0));
    Decoder<float>& d = seed.decoder;
    Var<float> h = reshape(relu((*d.fcs[0])(z)), {3, 128, 2, 2});
    h = relu((*d.deconvs[0])(h));
    h = relu((*d.deconvs[1])(h));
    const Tensor<float> by_hand = (*d.deconvs[2])(h).value();
    CHECK(loaded->decoder.decode(z).value().to_vector() == by_hand.to_vector());
    CHECK(seed.decoder.decode(z).value().to_vector() != by_hand.to_vector());
    fs::remove_all(dir);
}

TEST_CASE("a checkpoint whose arch and tensors disagree, or whose arch is unknown, is refused") {
    const fs::path dir = testing::scratch_dir("models-arch");
    Generator gen(13);
    VAE<float> model(small("vae"), gen);
    const std::string path = (dir / "ck.safetensors").string();
    std::map<std::string, std::string> metadata = model.config.to_metadata();
    metadata["arch"] = "kim-mnih";
    save_safetensors<float>(path, model.state_dict(), metadata);
    const std::string message = error_of([&] { load_model(read_checkpoint<float>(path), gen); });
    CHECK(message.rfind("checkpoint: its tensors are not the kim-mnih network of its configuration: load_state_dict: "
                        "the checkpoint does not fit the VAE (",
                        0) == 0);
    CHECK(message.find("missing 'encoder.conv4.weight' [64,64,4,4]") != std::string::npos);
    metadata["arch"] = "resnet";
    save_safetensors<float>(path, model.state_dict(), metadata);
    CHECK(error_of([&] { read_checkpoint<float>(path); }) ==
          "checkpoint: its metadata does not describe a model: network: arch must be seed, kim-mnih or seed-v0, got "
          "'resnet'");
    fs::remove_all(dir);
}

TEST_CASE("the kim-mnih network is the paper's: shapes, names and output") {
    Generator gen(14);
    ModelConfig c = small("factor-vae");
    c.arch = "kim-mnih";
    c.image_size = 32;
    FactorVAE<float> model(c, gen);
    const std::vector<std::pair<std::string, Shape>> expected{
        {"encoder.conv1.weight", {32, 1, 4, 4}},   {"encoder.conv2.weight", {32, 32, 4, 4}},
        {"encoder.conv3.weight", {64, 32, 4, 4}},  {"encoder.conv4.weight", {64, 64, 4, 4}},
        {"encoder.fc.weight", {128, 256}},         {"encoder.fc_mu.weight", {4, 128}},
        {"encoder.fc_logvar.weight", {4, 128}},    {"decoder.fc1.weight", {128, 4}},
        {"decoder.fc2.weight", {256, 128}},        {"decoder.deconv1.weight", {64, 64, 4, 4}},
        {"decoder.deconv2.weight", {64, 32, 4, 4}}, {"decoder.deconv3.weight", {32, 32, 4, 4}},
        {"decoder.deconv4.weight", {32, 1, 4, 4}}, {"discriminator.net.0.weight", {32, 4}},
        {"discriminator.net.10.weight", {32, 32}}, {"discriminator.net.12.weight", {2, 32}}};
    const auto state = model.state_dict();
    for (auto& [name, shape] : expected) {
        INFO(name);
        REQUIRE(state.count(name));
        CHECK(state.at(name).shape() == shape);
    }
    CHECK(state.size() == 40);
    auto out = model.forward(Var<float>(Tensor<float>(Shape{2, 1, 32, 32})), StepDraws{});
    CHECK(out.logits.shape() == Shape{2, 1, 32, 32});
    c.image_size = 40;
    CHECK(error_of([&] { FactorVAE<float>(c, gen); }) ==
          "ModelConfig: image_size must be a positive multiple of 16 for arch kim-mnih, got 40");
}

TEST_CASE("elbo grads writes PyTorch's loss and gradients") {
    const fs::path dir = testing::scratch_dir("models-cli");
    struct Run { const char* model; const char* flags; size_t parameters; };
    for (const Run& r : {Run{"seed_vae", "", 18}, Run{"kim_mnih_vae", "", 26},
                         Run{"factor_vae", " --reduction mean --gamma 6.4", 40}}) {
        INFO(r.model);
        const std::string out = (dir / (std::string(r.model) + ".grads.safetensors")).string();
        const std::string command = std::string(ELBO_CLI) + " grads --checkpoint " + reference + r.model +
                                    ".safetensors --input " + reference + r.model + "_grads.safetensors --out " + out +
                                    r.flags + " > " + (dir / "stdout.txt").string();
        REQUIRE(std::system(command.c_str()) == 0);
        const auto torch_grads = load_safetensors<float>(reference + r.model + "_grads.safetensors");
        expect_matches_pytorch(load_safetensors<float>(out).tensors, torch_grads, r.parameters);
    }
    // Bad input: an error message and exit status 1, no output file.
    const std::string bad = std::string(ELBO_CLI) + " grads --checkpoint " + reference + "seed_vae.safetensors --input " +
                            reference + "factor_vae_grads.safetensors --out " + (dir / "bad.safetensors").string() +
                            " 2> " + (dir / "stderr.txt").string();
    CHECK(WEXITSTATUS(std::system(bad.c_str())) == 1);
    std::ifstream err(dir / "stderr.txt");
    std::string message((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    CHECK(message == "elbo: grads: x must be [N, 3, 64, 64] for this checkpoint, got [5,1,32,32]\n");
    CHECK_FALSE(fs::exists(dir / "bad.safetensors"));

    auto run_status = [&](const std::string& args) {
        const std::string command = std::string(ELBO_CLI) + " " + args + " > /dev/null 2> " + (dir / "stderr.txt").string();
        const int status = WEXITSTATUS(std::system(command.c_str()));
        std::ifstream in(dir / "stderr.txt");
        return std::pair{status, std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>())};
    };
    auto [missing_status, missing_message] = run_status("grads --checkpoint " + reference + "seed_vae.safetensors");
    CHECK(missing_status != 0);
    CHECK(missing_message.find("--input is required") != std::string::npos);
    auto [absent_status, absent_message] = run_status("grads --checkpoint /nonexistent.safetensors --input x --out y");
    CHECK(absent_status == 1);
    CHECK(absent_message == "elbo: safetensors: cannot open '/nonexistent.safetensors': No such file or directory\n");
    auto [reduction_status, reduction_message] =
        run_status("grads --checkpoint " + reference + "seed_vae.safetensors --input x --out y --reduction max");
    CHECK(reduction_status == 1);
    CHECK(reduction_message == "elbo: grads: --reduction must be sum or mean, got 'max'\n");
    fs::remove_all(dir);
}

TEST_CASE("a checkpoint round-trips weights, optimizer state and configuration") {
    const fs::path dir = testing::scratch_dir("models-roundtrip");
    const std::string path = (dir / "ck.safetensors").string();
    Generator gen(5);
    ModelConfig c = small("factor-vae");
    c.gamma = 35;
    FactorVAE<float> model(c, gen);
    optim::Adam<float> vae_opt(model.vae_parameters(), factor_vae_adam());
    optim::Adam<float> d_opt(model.discriminator_parameters(), factor_vae_discriminator_adam());
    write_checkpoint<float>(path, model, {{"vae", &vae_opt}, {"discriminator", &d_opt}}, {{"step", "7"}});

    Checkpoint<float> ck = read_checkpoint<float>(path);
    CHECK(ck.config.to_metadata() == c.to_metadata());
    CHECK(ck.metadata.at("step") == "7");
    CHECK(ck.optimizer.count("optimizer.vae.encoder.conv1.weight.exp_avg"));
    CHECK(ck.optimizer.count("optimizer.discriminator.step"));
    Generator other(6);
    auto loaded = load_model(ck, other);
    CHECK(loaded->name() == "FactorVAE");
    for (auto& [name, t] : model.state_dict()) CHECK(loaded->state_dict().at(name).to_vector() == t.to_vector());
    optim::Adam<float> resumed(loaded->vae_parameters(), factor_vae_adam());
    resumed.load_state_dict(ck.optimizer, "optimizer.vae.");
    fs::remove_all(dir);
}

TEST_CASE("a checkpoint that does not fit the model names every mismatch") {
    const fs::path dir = testing::scratch_dir("models-mismatch");
    Generator gen(7);
    VAE<float> model(small("vae"), gen);
    auto state = model.state_dict();
    state.erase("decoder.fc.bias");
    state["encoder.conv2.weight"] = Tensor<float>(Shape{64, 32, 3, 3});
    state["decoder.extra"] = Tensor<float>(Shape{2});
    CHECK(error_of([&] { model.load_state_dict(state); }) ==
          "load_state_dict: the checkpoint does not fit the VAE (3 mismatches):\n"
          "  'encoder.conv2.weight' has shape [64,32,3,3] in the checkpoint, [64,32,4,4] in the model\n"
          "  missing 'decoder.fc.bias' [512]\n"
          "  unexpected 'decoder.extra' [2]");

    const std::string path = (dir / "odd.safetensors").string();
    save_safetensors<float>(path, {{"encoder.conv1.weight", Tensor<float>(Shape{32, 1, 4, 4})},
                                   {"encoder.fc_mu.weight", Tensor<float>(Shape{4, 100})}});
    CHECK(error_of([&] { read_checkpoint<float>(path); }) ==
          "checkpoint: encoder.fc_mu.weight [4,100] does not take 128 x s x s features (arch seed)");
    save_safetensors<float>(path, {{"weight", Tensor<float>(Shape{2})}});
    CHECK(error_of([&] { read_checkpoint<float>(path); }) ==
          "checkpoint: no 'encoder.conv1.weight' to infer the model from (is this a VAE checkpoint?)");
    save_safetensors<float>(path, {{"w", Tensor<float>(Shape{2})}}, {{"kind", "vae"}, {"latent", "four"}});
    CHECK(error_of([&] { read_checkpoint<float>(path); }) == "checkpoint: metadata 'latent' = 'four' is not a number");
    fs::remove_all(dir);
}

TEST_CASE("models reject bad configurations and inputs") {
    Generator gen(8);
    ModelConfig c = small("vae");
    c.image_size = 20;
    CHECK(error_of([&] { VAE<float>(c, gen); }) ==
          "ModelConfig: image_size must be a positive multiple of 8 for arch seed, got 20");
    c = small("vae");
    c.capacity_max = 25;
    CHECK(error_of([&] { VAE<float>(c, gen); }) == "ModelConfig: a capacity schedule needs capacity_steps > 0, got 0");
    c.capacity_steps = 100;
    CHECK(error_of([&] { VAE<float>(c, gen); }) == "ModelConfig: a capacity schedule needs capacity_weight > 0, got 0");
    c = small("vae");
    c.gamma = 35;
    CHECK(error_of([&] { VAE<float>(c, gen); }) ==
          "ModelConfig: gamma weighs FactorVAE's TC term, but kind is vae (gamma 35)");
    c = small("vae");
    c.beta = std::nan("");
    CHECK(error_of([&] { VAE<float>(c, gen); }) == "ModelConfig: beta must be finite and non-negative, got nan");
    CHECK(error_of([&] { FactorVAE<float>(small("vae"), gen); }) == "FactorVAE: config kind must be factor-vae, got 'vae'");
    VAE<float> model(small("vae"), gen);
    CHECK(error_of([&] { model.forward(Var<float>(Tensor<float>(Shape{2, 3, 16, 16})), StepDraws{}); }) ==
          "VAE: expected images [N, 1, 16, 16], got [2,3,16,16]");
}

TEST_CASE("the capacity schedule weighs |KL - C| with C growing linearly to C_max") {
    Generator gen(9);
    ModelConfig c = small("beta-vae");
    c.capacity_max = 20;
    c.capacity_steps = 100;
    c.capacity_weight = 10;
    c.reduction = Reduction::sum;
    VAE<float> model(c, gen);
    const Var<float> x(rectangles(gen).slice(0, 4));
    auto out = model.forward(x, Var<float>());
    for (int64_t step : {0, 50, 100, 200}) {
        auto l = model.loss(x, out, step);
        const double capacity = 20.0 * std::min<int64_t>(step, 100) / 100.0;
        CHECK(l.capacity == doctest::Approx(capacity));
        CHECK(l.total.item() == doctest::Approx(l.recon.item() + 10 * std::abs(l.kl.item() - 4 * capacity)).epsilon(1e-6));
    }
}

TEST_CASE("the discriminator's loss sends no gradient to the VAE") {
    Generator gen(10);
    FactorVAE<float> model(small("factor-vae"), gen);
    const Tensor<float> images = rectangles(gen);
    const StepDraws draws{.seed = 10};
    auto out = model.forward(Var<float>(images.slice(0, 8)), draws);
    auto other = model.forward(Var<float>(images.slice(8, 16)), draws.second_batch(8));
    backward(model.discriminator_loss(out.z, other.z, draws).loss);
    for (auto& [name, p] : model.vae_parameters()) CHECK_FALSE(p.has_grad());
    for (auto& [name, p] : model.discriminator_parameters()) CHECK(p.has_grad());
}

TEST_CASE("the discriminator's loss, one pass over both batches, is the paper's two cross-entropies") {
    // The definition, written out: D on each batch separately, each cross-entropy a batch mean.
    // Equal batches (the trainer's) and unequal ones (the weights 1/(2N), 1/(2M) matter there).
    // In double: the two ways add the same terms in different orders, and in float the last layer's
    // bias gradient (a sum whose terms nearly cancel) differs by 1e-5 relative between kernel builds.
    for (const auto& [n, m] : {std::pair<int64_t, int64_t>{8, 8}, {5, 11}}) {
        INFO(n, " real and ", m, " permuted codes");
        Generator gen(12);
        FactorVAE<double> model(small("factor-vae"), gen);
        const Var<double> z(Tensor<double>::uninitialized(Shape{n, model.config.latent}).normal_(gen));
        const Var<double> z_other(Tensor<double>::uninitialized(Shape{m, model.config.latent}).normal_(gen));
        const StepDraws draws{.seed = 40};
        const DiscriminatorLoss<double> d = model.discriminator_loss(z, z_other, draws);
        backward(d.loss);
        std::vector<Tensor<double>> one_pass;
        for (auto& [name, p] : model.discriminator_parameters()) one_pass.push_back(p.grad().clone());
        model.discriminator.zero_grad();

        const Var<double> real = model.discriminator(z), permuted = model.discriminator(permute_dims(z_other, draws));
        const Var<double> two_pass = (cross_entropy(real, std::vector<int64_t>(static_cast<size_t>(n), 0)) +
                                     cross_entropy(permuted, std::vector<int64_t>(static_cast<size_t>(m), 1))) *
                                    constant(0.5);
        backward(two_pass);
        CHECK(d.loss.item() == doctest::Approx(two_pass.item()).epsilon(1e-12));
        size_t i = 0;
        for (auto& [name, p] : model.discriminator_parameters()) {
            INFO(name);
            CHECK(testing::relative_difference(one_pass[i++], p.grad()) < 1e-12);
        }
        // The accuracies count the rows of each batch: the logits, split where the batches meet.
        const Tensor<double> rl = real.value(), pl = permuted.value();
        int64_t right_real = 0, right_permuted = 0;
        for (int64_t r = 0; r < n; ++r) right_real += rl[2 * r] > rl[2 * r + 1];
        for (int64_t r = 0; r < m; ++r) right_permuted += pl[2 * r + 1] > pl[2 * r];
        CHECK(d.accuracy_real() == doctest::Approx(static_cast<double>(right_real) / static_cast<double>(n)));
        CHECK(d.accuracy_permuted() == doctest::Approx(static_cast<double>(right_permuted) / static_cast<double>(m)));
    }
}

TEST_CASE("VAE, beta-VAE and FactorVAE train: their losses fall") {
    Generator data(11);
    const Tensor<float> images = rectangles(data);
    auto batch = [&](int step) {
        const int64_t at = (step * 8) % 32;
        return images.slice(at, at + 8);
    };
    auto average = [](const std::vector<double>& v, size_t from, size_t to) {
        double s = 0;
        for (size_t i = from; i < to; ++i) s += v[i];
        return s / static_cast<double>(to - from);
    };
    auto check_falls = [&](const std::vector<train::StepTerms>& steps) {
        std::vector<double> losses;
        for (const train::StepTerms& t : steps) {
            CHECK(t.finite());
            losses.push_back(t.loss);
        }
        INFO("first 5: ", average(losses, 0, 5), ", last 5: ", average(losses, 35, 40));
        CHECK(average(losses, 35, 40) < 0.8 * average(losses, 0, 5));
    };
    for (const char* kind : {"vae", "beta-vae"}) {
        INFO(kind);
        ModelConfig c = small(kind);
        if (c.kind == "beta-vae") c.beta = 4;
        Generator gen(11);
        VAE<float> model(c, gen);
        optim::Adam<float> opt(model.vae_parameters(), {.lr = 2e-3});
        std::vector<train::StepTerms> steps;
        for (int step = 0; step < 40; ++step) steps.push_back(train::step(model, opt, batch(step), StepDraws{11, step}));
        check_falls(steps);
    }
    ModelConfig c = small("factor-vae");
    c.gamma = 10;
    Generator gen(11);
    FactorVAE<float> model(c, gen);
    optim::Adam<float> opt(model.vae_parameters(), {.lr = 2e-3});
    optim::Adam<float> d_opt(model.discriminator_parameters(), factor_vae_discriminator_adam());
    std::vector<train::StepTerms> steps;
    for (int step = 0; step < 40; ++step)
        steps.push_back(train::step(model, opt, d_opt, batch(step), batch(step + 1), StepDraws{11, step}));
    check_falls(steps);
    // Near log 2 = 0.693 while it cannot tell the codes apart; finite throughout.
    double d_loss = 0;
    for (const train::StepTerms& t : steps) d_loss += t.discriminator / 40.0;
    CHECK(d_loss < 1.0);
    CHECK(d_loss > 0.3);
}

// Whether train::step(model, opt, x, draws), the VAE's step, compiles for a model of type M.
template <class M>
concept takes_the_vae_step = requires(M& m, optim::Adam<float>& opt, const Tensor<float>& x, const StepDraws& draws) {
    train::step(m, opt, x, draws);
};
static_assert(takes_the_vae_step<VAE<float>>);
static_assert(!takes_the_vae_step<FactorVAE<float>>, "a FactorVAE's step takes its discriminator's optimizer too");

TEST_CASE("the VAE's step refuses a FactorVAE held as a VAE: it would train the TC term against an idle discriminator") {
    Generator gen(3);
    FactorVAE<float> factor(small("factor-vae"), gen);
    VAE<float>& as_vae = factor;
    optim::Adam<float> opt(factor.vae_parameters(), {});
    const std::string e = error_of([&] { train::step(as_vae, opt, rectangles(gen).slice(0, 8), StepDraws{}); });
    CHECK(e.find("a FactorVAE trains with its discriminator") != std::string::npos);
}

TEST_CASE("FactorVAE's step leaves the discriminator's parameters out of the VAE's backward pass, and trains the same") {
    // Two copies of one model: the step as elbo takes it, and the same step with the discriminator's
    // parameters left requiring gradients through the VAE's backward pass (PyTorch's default).
    Generator init_a(6), init_b(6);
    FactorVAE<float> fa(small("factor-vae"), init_a), fb(small("factor-vae"), init_b);
    VAE<float> *a = &fa, *b = &fb;
    optim::Adam<float> vae_a(a->vae_parameters(), factor_vae_adam()), vae_b(b->vae_parameters(), factor_vae_adam());
    optim::Adam<float> d_a(fa.discriminator_parameters(), factor_vae_discriminator_adam());
    optim::Adam<float> d_b(fb.discriminator_parameters(), factor_vae_discriminator_adam());
    Generator data(7);
    const Tensor<float> images = rectangles(data);
    const Tensor<float> x = images.slice(0, 8), other = images.slice(8, 16);
    for (int64_t step = 0; step < 3; ++step) {
        const StepDraws draws{.seed = 100, .step = step};
        train::step(fa, vae_a, d_a, x, other, draws);
        // The VAE's objective through the discriminator, its parameters included.
        const Var<float> input(x);
        const VAEOutput<float> out = b->forward(input, draws);
        const VAELoss<float> loss = b->loss(input, out, step);
        vae_b.zero_grad();
        backward(loss.total);
        for (const auto& [name, p] : fb.discriminator_parameters()) CHECK(p.has_grad());
        vae_b.step();
        Var<float> z_other;
        {
            NoGrad no_grad;
            auto [mu, logvar] = b->encoder.encode(Var<float>(other));
            z_other = reparameterize(mu, logvar, draws.second_batch(8));
        }
        const DiscriminatorLoss<float> d = fb.discriminator_loss(out.z, z_other, draws);
        d_b.zero_grad();
        backward(d.loss);
        d_b.step();
    }
    const auto pa = a->named_parameters(), pb = b->named_parameters();
    REQUIRE(pa.size() == pb.size());
    for (size_t i = 0; i < pa.size(); ++i) {
        INFO(pa[i].first);
        CHECK(testing::relative_difference(pa[i].second.value(), pb[i].second.value()) == 0.0);
        CHECK(pa[i].second.requires_grad());  // unfrozen again
    }
}

TEST_CASE("shadow_step takes the step as train::step does and compares it op by op with the same step in double") {
    Generator data(21);
    const Tensor<float> images = rectangles(data);
    const Tensor<float> x = images.slice(0, 8), other = images.slice(8, 16);
    for (const char* kind : {"vae", "factor-vae"}) {
        INFO(kind);
        Generator ga(22), gb(22);
        const std::unique_ptr<VAE<float>> a = make_model<float>(small(kind), ga), b = make_model<float>(small(kind), gb);
        auto* fa = dynamic_cast<FactorVAE<float>*>(a.get());
        auto* fb = dynamic_cast<FactorVAE<float>*>(b.get());
        optim::Adam<float> oa(a->vae_parameters(), {.lr = 1e-3}), ob(b->vae_parameters(), {.lr = 1e-3});
        std::unique_ptr<optim::Adam<float>> da, db;
        size_t parameters = a->vae_parameters().size();
        if (fa) {
            da = std::make_unique<optim::Adam<float>>(fa->discriminator_parameters(), factor_vae_discriminator_adam());
            db = std::make_unique<optim::Adam<float>>(fb->discriminator_parameters(), factor_vae_discriminator_adam());
            parameters += fa->discriminator_parameters().size();
        }
        for (int64_t step = 0; step < 2; ++step) {  // the second starts from Adam's moments, copied too
            const StepDraws draws{.seed = 23, .step = step};
            const auto [terms, report] = train::shadow_step(*a, oa, da.get(), x, other, draws, 1e-3);
            const train::StepTerms plain = fb ? train::step(*fb, ob, *db, x, other, draws) : train::step(*b, ob, x, draws);
            INFO(report.summary());
            CHECK(report.ok());
            CHECK(terms.loss == plain.loss);
            CHECK(terms.discriminator == plain.discriminator);
            CHECK(report.parameters == static_cast<int64_t>(parameters));
            CHECK(report.ops >= 15);  // the VAE pass alone: 17, each layer with its ReLU one op
            CHECK(report.largest_output.difference > 0.0);  // float is not double
            CHECK(report.largest_output.difference < 1e-4);
            CHECK(report.largest_gradient.difference < 1e-4);
        }
        const auto pa = a->named_parameters(), pb = b->named_parameters();
        for (size_t i = 0; i < pa.size(); ++i) CHECK(pa[i].second.value().to_vector() == pb[i].second.value().to_vector());
    }
    Generator gen(24);
    VAE<float> vae(small("vae"), gen);
    optim::Adam<float> opt(vae.vae_parameters(), {});
    CHECK(error_of([&] { train::shadow_step(vae, opt, nullptr, x, other, StepDraws{}, 0.0); }) ==
          "shadow: the tolerance must be positive, got 0");
    FactorVAE<float> factor(small("factor-vae"), gen);
    optim::Adam<float> f_opt(factor.vae_parameters(), {});
    CHECK(error_of([&] { train::shadow_step(factor, f_opt, nullptr, x, other, StepDraws{}, 1e-3); }) ==
          "shadow: a FactorVAE's step needs its discriminator's optimizer");
}

TEST_CASE("a difference at one op is found at that op: the first output past the tolerance, with both values") {
    // The reference's decoder.deconv2.bias moved by 0.05 in one channel: everything before the op
    // that adds it agrees, its output does not.
    Generator gen(25);
    VAE<float> model(small("vae"), gen);
    const std::unique_ptr<VAE<double>> copy = copy_as<double>(model);
    for (auto& [name, p] : copy->named_parameters())
        if (name == "decoder.deconv2.bias") p.value()[1] += 0.05;
    Generator data(26);
    const Tensor<float> x = rectangles(data).slice(0, 8);
    const StepDraws draws{.seed = 27};
    train::ShadowReport r;
    r.tolerance = 1e-3;
    {
        TraceBackward<float> run;
        TraceBackward<double> reference;
        const Var<float> xf(x);
        const Var<double> xd(x.cast<double>());
        backward(model.loss(xf, model.forward(xf, draws)).total);
        backward(copy->loss(xd, copy->forward(xd, draws)).total);
        std::unordered_map<const float*, std::string> names;
        for (const auto& [name, p] : model.named_parameters()) names.emplace(p.value().data(), name);
        train::compare_traces(run.passes, reference.passes, names, r);
        CHECK(error_of([&] { train::compare_traces(run.passes, {}, names, r); }) ==
              "shadow: the reference has 0 backward passes, the run 1");
    }
    REQUIRE(r.first);
    INFO(r.summary());
    CHECK(r.first->what == "output");
    CHECK(r.first->op == "conv_transpose2d");
    CHECK(r.first->shape == Shape{8, 32, 8, 8});
    CHECK(r.first->at / 64 % 32 == 1);  // in channel 1
    CHECK(std::abs(r.first->value - r.first->reference) == doctest::Approx(0.05).epsilon(1e-3));
    CHECK(r.first_value.shape() == Shape{8, 32, 8, 8});
    CHECK(r.summary().find("shadow step 0: the output of conv_transpose2d [8,32,8,8] (vae pass, #") == 0);
}

namespace {

// A train::Group whose processes are threads of this one: each collective is a meeting at a
// barrier, where every thread posts its values and then reads everyone's, adding them in rank
// order (as MPI adds two processes' values). Gradients are summed at finish(), not in buckets:
// what it checks is the step's arithmetic over a group; elbo::mpi's own test runs under mpirun.
struct Meeting {
    explicit Meeting(int size) : size(size), barrier(size), posted(static_cast<size_t>(size)) {}
    int size;
    std::barrier<> barrier;
    std::vector<std::vector<double>> posted;
};

class ThreadGroup final : public train::Group {
public:
    ThreadGroup(Meeting& meeting, int rank) : m_(meeting), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return m_.size; }
    void sum(double* values, int64_t n) override {
        post(std::vector<double>(values, values + n));
        for (int64_t i = 0; i < n; ++i) {
            values[i] = 0;
            for (const auto& p : m_.posted) values[i] += p[static_cast<size_t>(i)];
        }
        m_.barrier.arrive_and_wait();
    }
    void gather(const float* mine, int64_t n, float* all) override {
        post(std::vector<double>(mine, mine + n));
        for (int r = 0; r < m_.size; ++r)
            for (int64_t i = 0; i < n; ++i) all[r * n + i] = static_cast<float>(m_.posted[static_cast<size_t>(r)][i]);
        m_.barrier.arrive_and_wait();
    }
    void broadcast(float* values, int64_t n, int root) override {
        post(std::vector<double>(values, values + n));
        for (int64_t i = 0; i < n; ++i) values[i] = static_cast<float>(m_.posted[static_cast<size_t>(root)][i]);
        m_.barrier.arrive_and_wait();
    }
    std::unique_ptr<train::GradientSync> gradients(const std::vector<Var<float>>& parameters, float scale) override {
        struct Sync final : train::GradientSync {
            ThreadGroup* group;
            std::vector<Var<float>> parameters;
            float scale;
            void ready(Node<float>&) override {}
            void finish() override {
                for (Var<float>& p : parameters) {
                    Tensor<float>& g = p.node().grad_buffer();
                    std::vector<float> sum(static_cast<size_t>(g.numel()));
                    group->gather_sum(g.data(), g.numel(), sum.data());
                    for (int64_t i = 0; i < g.numel(); ++i) g[i] = sum[static_cast<size_t>(i)] * scale;
                }
            }
        };
        auto sync = std::make_unique<Sync>();
        sync->group = this, sync->parameters = parameters, sync->scale = scale;
        return sync;
    }

private:
    // The float values of every thread added in rank order, in float (as MPI_SUM adds floats).
    void gather_sum(const float* mine, int64_t n, float* out) {
        post(std::vector<double>(mine, mine + n));
        for (int64_t i = 0; i < n; ++i) {
            float s = 0;
            for (const auto& p : m_.posted) s += static_cast<float>(p[static_cast<size_t>(i)]);
            out[i] = s;
        }
        m_.barrier.arrive_and_wait();
    }
    void post(std::vector<double> values) {
        m_.posted[static_cast<size_t>(rank_)] = std::move(values);
        m_.barrier.arrive_and_wait();
    }
    Meeting& m_;
    int rank_;
};

}  // namespace

TEST_CASE("BucketedSync starts each bucket once, in order, during backward, when all its gradients are final") {
    // What elbo::mpi's and the CUDA module's NCCL sums share: which parameters go in which bucket,
    // and when a bucket may be sent.
    struct Recorder final : train::BucketedSync {
        Recorder(const std::vector<Var<float>>& p, int64_t bytes) : BucketedSync(p, bytes) {}
        using BucketedSync::buckets;
        std::vector<size_t> order;
        std::map<size_t, std::vector<float>> seen;  // each parameter's gradient when its bucket started
        bool backward_done = false;
        int started_in_backward = 0;
        void start(Bucket& b) override {
            order.push_back(static_cast<size_t>(&b - buckets().data()));
            started_in_backward += !backward_done;
            for (size_t i : b.parameters) seen[i] = parameters()[i].grad().to_vector();
        }
        void finish() override { start_all(); }
    };
    Generator gen(35);
    VAE<float> model(small("vae"), gen);
    std::vector<Var<float>> parameters;
    for (auto& [name, p] : model.vae_parameters()) parameters.push_back(p);
    const int64_t bucket_bytes = 4096;
    Recorder sync(parameters, bucket_bytes);
    const Var<float> x(rectangles(gen).slice(0, 4));
    backward(model.loss(x, model.forward(x, StepDraws{.seed = 36})).total);
    sync.backward_done = true;
    sync.finish();
    const size_t n = sync.buckets().size();
    INFO(n, " buckets of ", parameters.size(), " parameters");
    CHECK(n >= 3);
    std::vector<size_t> in_order(n);
    std::iota(in_order.begin(), in_order.end(), size_t{0});
    CHECK(sync.order == in_order);
    CHECK(sync.started_in_backward == static_cast<int>(n));  // none waited for finish()
    // Every parameter in one bucket, from the last back; a bucket over the size only with one parameter.
    size_t next = parameters.size();
    for (const auto& b : sync.buckets()) {
        int64_t bytes = 0;
        for (size_t i : b.parameters) {
            CHECK(i + 1 == next);
            next = i;
            bytes += parameters[i].numel() * 4;
            CHECK(sync.seen.at(i) == parameters[i].grad().to_vector());  // final when sent
        }
        CHECK((bytes <= bucket_bytes || b.parameters.size() == 1));
    }
    CHECK(next == 0);
}

TEST_CASE("a step shared by two processes, each with half the batch, is the one process's step of the whole") {
    Generator data(31);
    const Tensor<float> images = rectangles(data);  // 32 images: the batch, then the second batch
    const Tensor<float> x = images.slice(0, 16), other = images.slice(16, 32);
    for (const char* kind : {"vae", "factor-vae"}) {
        for (Reduction reduction : {Reduction::sum, Reduction::mean}) {
            INFO(kind, ", reduction ", std::string(to_string(reduction)));
            ModelConfig c = small(kind);
            c.reduction = reduction;
            struct Run {
                std::unique_ptr<VAE<float>> model;
                std::unique_ptr<optim::Adam<float>> opt, d_opt;
                std::vector<train::StepTerms> terms;
                explicit Run(const ModelConfig& c) {
                    Generator init(32);
                    model = make_model<float>(c, init);
                    // The paper's rate: Adam's first steps move every weight by about lr, whatever its
                    // gradient's rounding, so the two runs' difference scales with it.
                    opt = std::make_unique<optim::Adam<float>>(model->vae_parameters(), factor_vae_adam());
                    if (auto* f = dynamic_cast<FactorVAE<float>*>(model.get()))
                        d_opt = std::make_unique<optim::Adam<float>>(f->discriminator_parameters(),
                                                                     factor_vae_discriminator_adam());
                }
                void step(const Tensor<float>& a, const Tensor<float>& b, int64_t s, train::Group* group) {
                    const StepDraws draws{.seed = 33, .step = s};
                    if (auto* f = dynamic_cast<FactorVAE<float>*>(model.get()))
                        terms.push_back(train::step(*f, *opt, *d_opt, a, b, draws, group));
                    else
                        terms.push_back(train::step(*model, *opt, a, draws, group));
                }
            };
            Run one(c);
            for (int64_t s = 0; s < 3; ++s) one.step(x, other, s, nullptr);
            Meeting meeting(2);
            std::vector<std::unique_ptr<Run>> ranks;
            for (int r = 0; r < 2; ++r) ranks.push_back(std::make_unique<Run>(c));
            std::vector<std::thread> threads;
            for (int r = 0; r < 2; ++r)
                threads.emplace_back([&, r] {
                    ThreadGroup group(meeting, r);
                    for (int64_t s = 0; s < 3; ++s)
                        ranks[static_cast<size_t>(r)]->step(x.slice(8 * r, 8 * r + 8), other.slice(8 * r, 8 * r + 8), s,
                                                            &group);
                });
            for (std::thread& t : threads) t.join();
            for (int64_t s = 0; s < 3; ++s) {
                const train::StepTerms &a = one.terms[static_cast<size_t>(s)], &b = ranks[0]->terms[static_cast<size_t>(s)];
                INFO("step ", s, ": loss ", a.loss, " and ", b.loss, ", discriminator ", a.discriminator, " and ",
                     b.discriminator);
                CHECK(b.loss == doctest::Approx(a.loss).epsilon(1e-5));
                CHECK(b.kl == doctest::Approx(a.kl).epsilon(1e-5));
                CHECK(b.discriminator == doctest::Approx(a.discriminator).epsilon(1e-5));
                CHECK(b.accuracy_permuted == doctest::Approx(a.accuracy_permuted));
                CHECK(b.kl_per_latent.size() == a.kl_per_latent.size());
                CHECK(ranks[1]->terms[static_cast<size_t>(s)].loss == b.loss);  // every process has the whole's terms
            }
            const auto p1 = one.model->named_parameters(), p2 = ranks[0]->model->named_parameters(),
                       p3 = ranks[1]->model->named_parameters();
            for (size_t i = 0; i < p1.size(); ++i) {
                INFO(p1[i].first);
                CHECK(testing::relative_difference(p2[i].second.value(), p1[i].second.value()) < 1e-5);
                CHECK(p2[i].second.value().to_vector() == p3[i].second.value().to_vector());  // the processes agree
            }
        }
    }
    // What a group cannot share.
    ModelConfig c = small("beta-vae");
    c.capacity_max = 5, c.capacity_steps = 10, c.capacity_weight = 100;
    Generator gen(34);
    VAE<float> capacity(c, gen);
    optim::Adam<float> opt(capacity.vae_parameters(), {});
    Meeting alone(1);
    ThreadGroup group(alone, 0);
    CHECK(error_of([&] { train::step(capacity, opt, x, StepDraws{}, &group); }).find(
              "train::step: the capacity objective w |KL - C| is not a sum over images") == 0);
}

TEST_CASE("once the pool is warm, a training step asks the system for no memory") {
    for (const char* kind : {"vae", "factor-vae"}) {
        INFO(kind);
        Generator gen(5);
        const ModelConfig c = small(kind);
        std::unique_ptr<VAE<float>> vae;
        std::unique_ptr<FactorVAE<float>> factor;
        if (c.is_factor_vae()) factor = std::make_unique<FactorVAE<float>>(c, gen);
        else vae = std::make_unique<VAE<float>>(c, gen);
        VAE<float>& model = factor ? *factor : *vae;
        optim::Adam<float> opt(model.vae_parameters(), {.lr = 1e-3});
        std::unique_ptr<optim::Adam<float>> d_opt;
        if (factor) d_opt = std::make_unique<optim::Adam<float>>(factor->discriminator_parameters(), factor_vae_discriminator_adam());
        const Tensor<float> images = rectangles(gen);
        auto step = [&](int64_t s) {
            if (factor) train::step(*factor, opt, *d_opt, images.slice(0, 8), images.slice(8, 16), StepDraws{5, s});
            else train::step(model, opt, images.slice(0, 8), StepDraws{5, s});
        };
        // The first step fills the pool; Adam's moments, made at its end, take some of the buffers
        // the backward pass has just handed back, so the second step tops the pool up (measured:
        // two buffers for the VAE). From then on every buffer is a reused one.
        step(0);
        step(1);
        const MemoryStats before = memory_stats();
        for (int64_t s = 2; s < 5; ++s) step(s);
        const MemoryStats after = memory_stats();
        CHECK(after.system_allocations == before.system_allocations);
        CHECK(after.reuses > before.reuses + 150);  // the steps did take their buffers from the pool
    }
}

TEST_CASE("gradcheck(model) checks every parameter of the VAE, the capacity objective and FactorVAE's two objectives") {
    Generator gen(21);
    const Tensor<float> images = rectangles(gen).slice(0, 4);
    ModelConfig capacity = small("beta-vae");
    capacity.capacity_max = 5;
    capacity.capacity_steps = 100;
    capacity.capacity_weight = 10;
    capacity.reduction = Reduction::sum;
    ModelConfig factor = small("factor-vae");
    factor.arch = "kim-mnih";
    factor.image_size = 32;
    factor.discriminator_layers = 3;
    factor.gamma = 35;
    Tensor<float> images32(Shape{4, 1, 32, 32});  // kim-mnih's network needs 32 x 32: the same, twice the size
    for (int64_t i = 0; i < images32.numel(); ++i)
        images32[i] = images.at({i / 1024, 0, i / 32 % 32 / 2, i % 32 / 2});
    for (const ModelConfig& c : {small("vae"), capacity, factor}) {
        INFO(c.kind, " ", c.arch);
        auto model = make_model<float>(c, gen);
        const ModelGradcheck r = gradcheck(*model, c.arch == "kim-mnih" ? images32 : images,
                                           {.coordinates = 6, .training_step = 30});
        INFO(r.report());
        CHECK(r.ok());
        CHECK(r.max_error() < 1e-6);
        // Every parameter under the VAE's objective (the discriminator's too, through γ TC), and
        // the discriminator's again under its own.
        const size_t parameters = model->named_parameters().size();
        const size_t discriminator = c.is_factor_vae() ? static_cast<FactorVAE<float>&>(*model).discriminator_parameters().size() : 0;
        CHECK(r.tensors.size() == parameters + discriminator);
        for (const TensorGradcheck& t : r.tensors) CHECK(t.checked == std::min<int64_t>(6, t.shape.numel()));
    }
}

TEST_CASE("gradcheck(model)'s check names the one tensor whose gradient is wrong") {
    Generator gen(22);
    const ModelConfig c = small("vae");
    VAE<double> model(c, gen);
    const Var<double> x(rectangles(gen).slice(0, 2).cast<double>());
    Var<double> bias = model.decoder.deconvs[1]->bias;
    // The loss plus the sum of the bias, whose recorded backward is 1% off.
    auto off_sum = [](const Var<double>& b) {
        Tensor<double> y = Tensor<double>::scalar(0.0);
        for (double v : b.value()) y[0] += v;
        return Var<double>::from_op(std::move(y), "off_sum", {b}, [](Node<double>& self) {
            double* db = self.parent_grad(0);
            for (int64_t i = 0; i < self.parents[0]->value.numel(); ++i) db[i] += 1.01 * self.grad[0];
        });
    };
    ModelGradcheck r;
    gradcheck_parameters("vae", [&] { return model.loss(x, model.forward(x, Var<double>())).total + off_sum(bias); },
                         model.named_parameters(), {.coordinates = 4}, r);
    INFO(r.report());
    CHECK_FALSE(r.ok());
    for (const TensorGradcheck& t : r.tensors) {
        INFO(t.name);
        CHECK((t.max_error > 1e-3) == (t.name == "decoder.deconv2.bias"));
    }
    CHECK(r.report().find("FAILED at") != std::string::npos);
}

TEST_CASE("gradcheck(model) refuses what it cannot check") {
    Generator gen(23);
    ModelConfig c = small("vae");
    VAE<float> model(c, gen);
    const Tensor<float> x = rectangles(gen).slice(0, 2);
    CHECK(error_of([&] { gradcheck(model, x, {.step = 0}); }) == "gradcheck: the step h must be a positive number, got 0");
    CHECK(error_of([&] { gradcheck(model, x, {.coordinates = 0}); }) ==
          "gradcheck: coordinates per tensor must be positive, got 0");
    CHECK(error_of([&] { gradcheck(model, Tensor<float>(Shape{2, 1, 8, 8})); }) ==
          "VAE: expected images [N, 1, 16, 16], got [2,1,8,8]");
    // A step that vanishes next to a weight's value in double.
    model.encoder.fc_mu.bias.value()[0] = 1e12f;
    CHECK(error_of([&] { gradcheck(model, x, {.step = 1e-6}); }).find("vanishes next to") != std::string::npos);
    // A non-finite objective.
    model.encoder.fc_mu.bias.value()[0] = std::numeric_limits<float>::infinity();
    CHECK(error_of([&] { gradcheck(model, x); }).find("gradcheck: the vae objective is ") == 0);
    CHECK(error_of([&] { gradcheck(model, x); }).find("at these weights and this batch; a gradient check needs a finite one") !=
          std::string::npos);
    // No parameters.
    ModelGradcheck r;
    CHECK(error_of([&] { gradcheck_parameters("empty", [] { return Var<double>(Tensor<double>::scalar(1.0)); }, {}, {}, r); }) ==
          "gradcheck: the empty objective has no parameters to check");
    // A FactorVAE needs two halves.
    FactorVAE<float> f(small("factor-vae"), gen);
    CHECK(error_of([&] { gradcheck(f, x.slice(0, 1)); }).find("needs a batch of at least 2 images") != std::string::npos);
}

}
