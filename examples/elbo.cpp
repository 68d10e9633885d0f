// elbo: the command-line program.
//
//   elbo grads --checkpoint W.safetensors --input BATCH.safetensors --out G.safetensors
//              [--reduction sum|mean] [--beta B] [--gamma G] [--step N]
//
// `grads` evaluates the model's objective on one batch and writes the loss and the gradient of every
// parameter under the parameter's own name: the file to compare with PyTorch's autograd.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <optional>

#include "elbo/elbo.hpp"

using namespace elbo;

namespace {

struct GradsOptions {
    std::string checkpoint, input, out;
    std::optional<std::string> reduction;
    std::optional<double> beta, gamma;
    int64_t step = 0;
};

// The batch: x [N, C, S, S] with values in [0, 1], and optionally eps [N, D].
void check_batch(const Safetensors<float>& batch, const models::ModelConfig& c, const std::string& path) {
    const char* op = "grads";
    check(batch.contains("x"), op, "'", path, "' has no tensor 'x' (the images [N, C, S, S])");
    const Tensor<float>& x = batch.at("x");
    check(x.rank() == 4 && x.size(1) == c.channels && x.size(2) == c.image_size && x.size(3) == c.image_size && x.size(0) > 0,
          op, "x must be [N, ", c.channels, ", ", c.image_size, ", ", c.image_size, "] for this checkpoint, got ",
          x.shape());
    for (int64_t i = 0; i < x.numel(); ++i)
        check(x[i] >= 0.0f && x[i] <= 1.0f, op, "x must hold values in [0, 1], element ", i, " is ", x[i]);
    if (batch.contains("eps")) {
        const Shape& e = batch.at("eps").shape();
        check(e == Shape{x.size(0), c.latent}, op, "eps must be [", x.size(0), ", ", c.latent, "], got ", e);
    }
}

int run_grads(const GradsOptions& o) {
    models::Checkpoint<float> ck = models::read_checkpoint<float>(o.checkpoint);
    if (o.reduction) {
        check(*o.reduction == "sum" || *o.reduction == "mean", "grads", "--reduction must be sum or mean, got '",
              *o.reduction, "'");
        ck.config.reduction = *o.reduction == "sum" ? Reduction::sum : Reduction::mean;
    }
    if (o.beta) ck.config.beta = *o.beta;
    if (o.gamma) ck.config.gamma = *o.gamma;
    ck.config.validate();
    Generator gen(0);
    auto model = models::load_model(ck, gen);

    const Safetensors<float> batch = load_safetensors<float>(o.input);
    check_batch(batch, ck.config, o.input);
    const Var<float> x(batch.at("x"));
    const Var<float> eps = batch.contains("eps") ? Var<float>(batch.at("eps")) : Var<float>();

    const models::VAEOutput<float> out = model->forward(x, eps);
    const models::VAELoss<float> loss = model->loss(x, out, o.step);
    backward(loss.total);

    std::map<std::string, Tensor<float>> grads{{"loss", loss.total.value()}};
    for (auto& [name, p] : model->named_parameters()) grads.emplace(name, p.grad());
    save_safetensors(o.out, grads, {{"kind", ck.config.kind}, {"reduction", to_string(ck.config.reduction)}});
    std::printf("{\"loss\": %.9g, \"recon\": %.9g, \"kl\": %.9g, \"gradients\": %zu, \"out\": \"%s\"}\n",
                loss.total.item(), loss.recon.item(), loss.kl.item(), grads.size() - 1, o.out.c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"elbo: variational autoencoders on a small, readable autodiff library"};
    app.require_subcommand(1);

    GradsOptions grads;
    CLI::App* g = app.add_subcommand("grads", "Write the loss and every parameter's gradient for one batch");
    g->add_option("--checkpoint", grads.checkpoint, "Model weights (safetensors; PyTorch names)")->required();
    g->add_option("--input", grads.input, "Batch: x [N,C,S,S] in [0,1], optional eps [N,D]")->required();
    g->add_option("--out", grads.out, "Where to write the loss and the gradients (safetensors)")->required();
    g->add_option("--reduction", grads.reduction, "sum (over the batch) or mean (sum / N); default: the checkpoint's");
    g->add_option("--beta", grads.beta, "Weight of the KL term; default: the checkpoint's");
    g->add_option("--gamma", grads.gamma, "FactorVAE: weight of TC; capacity VAE: weight of |KL - C|");
    g->add_option("--step", grads.step, "Training step (sets the capacity C when scheduled)")->capture_default_str();

    try {
        app.parse(argc, argv);
        if (*g) return run_grads(grads);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const Error& e) {
        std::fprintf(stderr, "elbo: %s\n", e.what());
        return 1;
    }
    return 0;
}
