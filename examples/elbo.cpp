// elbo: the command-line program. docs/cli.md shows every subcommand with an example.
//
//   elbo train        train a VAE, β-VAE or FactorVAE; a run folder with metrics, pictures, checkpoints
//   elbo eval         a checkpoint's ELBO, importance-weighted NLL, active latents (and on dSprites,
//                     the FactorVAE metric and MIG) as one JSON object
//   elbo sample       a grid of images decoded from the prior
//   elbo reconstruct  data items and their reconstructions
//   elbo traverse     each latent swept from -3 to 3
//   elbo data         items of a data set as a grid, and their labels or factors as JSON lines
//   elbo grads        the loss and every parameter's gradient for one batch (to compare with PyTorch)
//   elbo gradcheck    every parameter's gradient of a model's whole objective against finite differences
//   elbo health       a run's health after the fact: latents, active units, gradients, decoder, warnings
//   elbo bench        the training step and the forward pass timed, as one JSON line
//   elbo plot         a chart described in JSON, as SVG
//   elbo export       a checkpoint's weights alone (no optimizer state), with its metadata, for release
#include <CLI/CLI.hpp>

#include <cstdio>
#include <numeric>
#include <optional>

#include "cli/bench.hpp"
#include "cli/health.hpp"
#include "cli/train.hpp"
#include "elbo/metrics/disentanglement.hpp"
#include "elbo/metrics/likelihood.hpp"
#include "elbo_commit.hpp"  // ELBO_COMMIT, generated at every build
#ifndef ELBO_WITH_MPI
#define ELBO_WITH_MPI 0  // elbo::mpi defines it 1 where it is linked
#endif
#if ELBO_WITH_MPI
#include "elbo/mpi/world.hpp"
#if ELBO_WITH_CUDA
#include "elbo/cuda/nccl.hpp"
#endif
#endif

using namespace elbo;

namespace {

// What --version says of NCCL: only a build with the CUDA module and MPI uses it.
const char* nccl_words() {
#if ELBO_WITH_MPI && ELBO_WITH_CUDA
    return cuda::has_nccl() ? "; GPUs' gradients summed by NCCL" : "; GPUs' gradients summed by MPI (no NCCL)";
#else
    return "";
#endif
}

// ---- grads

struct GradsOptions {
    std::string checkpoint, input, out;
    std::optional<std::string> reduction;
    std::optional<double> beta, gamma, capacity_weight;
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
    const char* op = "grads";
    const bool capacity = ck.config.capacity_max > 0;
    check(!o.gamma || ck.config.is_factor_vae(), op, "--gamma weighs FactorVAE's TC term; this checkpoint is a ",
          ck.config.kind, capacity ? " (its capacity objective's weight is --capacity-weight)" : "");
    check(!o.capacity_weight || capacity, op,
          "--capacity-weight weighs the capacity objective, which this checkpoint does not have (capacity_max 0)");
    check(!o.beta || !capacity, op, "--beta: this checkpoint's capacity objective has no beta (--capacity-weight "
          "weighs |KL - C|)");
    cli::check_weight(o.beta, op, "--beta");
    cli::check_weight(o.gamma, op, "--gamma");
    cli::check_weight(o.capacity_weight, op, "--capacity-weight");
    if (o.beta) ck.config.beta = *o.beta;
    if (o.gamma) ck.config.gamma = *o.gamma;
    if (o.capacity_weight) ck.config.capacity_weight = *o.capacity_weight;
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
    const nlohmann::ordered_json j{{"loss", loss.total.item()}, {"recon", loss.recon.item()}, {"kl", loss.kl.item()},
                                   {"gradients", grads.size() - 1}, {"out", o.out}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
}

// ---- what eval, sample, reconstruct and traverse share: a checkpoint, its model, its data

struct ModelOptions {
    std::string checkpoint;
    std::string data;  // empty: the data set the checkpoint was trained on (Fashion-MNIST: its test split)
    uint64_t seed = 0;
    int threads = 0;
};

struct Loaded {
    models::Checkpoint<float> ck;
    std::unique_ptr<models::VAE<float>> model;
};

Loaded load(const ModelOptions& o) {
    set_threads(o.threads);
    Loaded l{models::read_checkpoint<float>(o.checkpoint), nullptr};
    Generator gen(0);
    l.model = models::load_model(l.ck, gen);
    return l;
}

std::unique_ptr<data::Dataset> open_data(const ModelOptions& o, const Loaded& l) {
    std::string spec = o.data;
    if (spec.empty()) {
        check(l.ck.metadata.count("train"), "data", "'", o.checkpoint,
              "' does not say what it was trained on; name the data set with --data");
        spec = nlohmann::json::parse(l.ck.metadata.at("train")).at("data");
        if (spec == "fashion-mnist") spec = "fashion-mnist:test";
    }
    return data::open_dataset(spec, {.image_size = l.ck.config.image_size, .channels = l.ck.config.channels});
}

// The given items, or `count` items drawn with `seed`.
std::vector<int64_t> pick_items(const data::Dataset& d, std::vector<int64_t> items, int64_t count, uint64_t seed) {
    if (!items.empty()) return items;
    check(count > 0, "data", "--count must be positive, got ", count);
    Generator gen(seed);
    std::vector<int64_t> order = random_permutation(d.size(), gen);
    order.resize(static_cast<size_t>(std::min(count, d.size())));
    return order;
}

// ---- eval

struct EvalOptions {
    ModelOptions m;
    metrics::LikelihoodOptions likelihood;
    metrics::FactorVAEMetricOptions factor;
    metrics::MIGOptions mig;
    bool metric_flags = false;  // a flag of the dSprites metrics was given
};

// The dSprites metrics' settings, checked before minutes of work, by their flags.
void check_metric_options(const EvalOptions& o) {
    const char* op = "eval";
    auto more_than = [op](int64_t v, int64_t least, const char* flag) {
        check(v > least, op, flag, " must be at least ", least + 1, ", got ", v);
    };
    more_than(o.factor.train_votes, 0, "--train-votes");
    more_than(o.factor.eval_votes, 0, "--eval-votes");
    more_than(o.factor.votes_per_sample, 1, "--votes-per-sample");
    more_than(o.factor.global_images, 1, "--global-images");
    more_than(o.mig.images, 1, "--mig-images");
    more_than(o.mig.bins, 1, "--mig-bins");
    check(std::isfinite(o.factor.prune_below) && o.factor.prune_below >= 0, op,
          "--prune-below must be a non-negative number, got ", o.factor.prune_below);
}

int run_eval(EvalOptions o) {
    Loaded l = load(o.m);
    const auto d = open_data(o.m, l);
    const bool dsprites = d->name() == "dsprites";
    check(dsprites || !o.metric_flags, "eval", "--train-votes, --eval-votes, --votes-per-sample, --global-images, "
          "--prune-below, --mig-images and --mig-bins set the dSprites metrics, and '", d->name(), "' is not dSprites");
    if (dsprites) check_metric_options(o);
    o.likelihood.seed = o.factor.seed = o.mig.seed = o.m.seed;
    // The seconds each part took, printed with the results: the full dSprites suite encodes about
    // a million images.
    nlohmann::ordered_json seconds;
    auto timed = [&seconds](const char* part, auto f) {
        const auto start = std::chrono::steady_clock::now();
        auto result = f();
        seconds[part] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        return result;
    };
    const metrics::Likelihood r =
        timed("likelihood", [&] { return metrics::evaluate_likelihood(*l.model, *d, o.likelihood); });
    nlohmann::ordered_json j{{"checkpoint", o.m.checkpoint}, {"data", d->name()},  {"images", r.images},
                             {"elbo", r.elbo},                {"recon", r.recon},    {"kl", r.kl},
                             {"nll_iw", r.nll_iw},            {"iw_samples", r.iw_samples}, {"iw_images", r.iw_images},
                             {"active_dims", r.active_dims},  {"latent", l.model->config.latent}};
    j["arch"] = l.model->config.arch;
    nlohmann::ordered_json settings{{"images", o.likelihood.images},
                                    {"iw_images", o.likelihood.iw_images},
                                    {"iw_samples", o.likelihood.iw_samples},
                                    {"active_threshold", o.likelihood.active_threshold},
                                    {"seed", o.m.seed}};
    if (dsprites) {
        const metrics::Representation codes = metrics::mean_codes(*l.model);
        j["factorvae_metric"] = timed("factorvae_metric", [&] { return metrics::factorvae_metric(codes, o.factor); });
        j["mig"] = timed("mig", [&] { return metrics::mig(codes, o.mig); });
        settings["factorvae_metric"] = {{"votes_per_sample", o.factor.votes_per_sample},
                                        {"train_votes", o.factor.train_votes},
                                        {"eval_votes", o.factor.eval_votes},
                                        {"global_images", o.factor.global_images},
                                        {"prune_below", o.factor.prune_below}};
        settings["mig"] = {{"images", o.mig.images}, {"bins", o.mig.bins}};
    }
    j["settings"] = settings;
    j["seconds"] = seconds;
    std::printf("%s\n", j.dump().c_str());
    return 0;
}

// ---- export

struct ExportOptions {
    std::string checkpoint, out;
    bool without_discriminator = false;
    std::vector<std::string> meta;  // KEY=VALUE
};

int run_export(const ExportOptions& o) {
    const models::Checkpoint<float> ck = models::read_checkpoint<float>(o.checkpoint);
    check(!o.without_discriminator || ck.config.is_factor_vae(), "export",
          "--without-discriminator: '", o.checkpoint, "' holds a ", ck.config.kind, ", which has none");
    std::map<std::string, std::string> extra;
    for (const std::string& kv : o.meta) {
        const size_t eq = kv.find('=');
        check(eq != std::string::npos && eq > 0, "export", "--meta takes KEY=VALUE, got '", kv, "'");
        check(extra.emplace(kv.substr(0, eq), kv.substr(eq + 1)).second, "export", "--meta gives '", kv.substr(0, eq),
              "' twice");
    }
    models::write_weights(o.out, ck, !o.without_discriminator, extra);
    return 0;
}

// ---- gradcheck

struct GradcheckFlags {
    ModelOptions m;  // m.checkpoint empty: a model of random weights, from the flags below
    std::string model = "vae", arch = "seed";
    int64_t latent = 10, image_size = 64, channels = 1, batch = 4;
    double capacity_max = 0;
    ModelGradcheckOptions check;
};

int run_gradcheck(const GradcheckFlags& o) {
    const char* op = "gradcheck";
    check(o.batch > 0, op, "--batch must be positive, got ", o.batch);
    set_threads(o.m.threads);
    Loaded l;
    if (!o.m.checkpoint.empty()) {
        l = load(o.m);
    } else {
        check(o.model == "vae" || o.model == "beta-vae" || o.model == "factor-vae", op,
              "--model must be vae, beta-vae or factor-vae, got '", o.model, "'");
        models::ModelConfig& c = l.ck.config;
        c.kind = o.model;
        c.arch = o.arch;
        c.latent = o.latent;
        c.image_size = o.image_size;
        c.channels = o.channels;
        if (c.kind == "beta-vae") c.beta = 4;
        if (c.is_factor_vae()) c.gamma = 35;
        if (o.capacity_max > 0)  // elbo train's defaults: C grows over 100,000 steps, weight 1000
            c.beta = 1, c.capacity_max = o.capacity_max, c.capacity_steps = 100000, c.capacity_weight = 1000;
        Generator gen(o.m.seed, random::Stream{Purpose::init});  // elbo train's initial weights for this seed
        l.model = models::make_model<float>(c, gen);
    }
    const models::ModelConfig& c = l.model->config;
    // The batch: items of the data set (named, or the checkpoint's), or uniform noise in [0, 1].
    Tensor<float> x;
    std::string source = "uniform noise";
    if (!o.m.data.empty() || l.ck.metadata.count("train")) {
        const auto d = open_data(o.m, l);
        x = d->images(pick_items(*d, {}, o.batch, o.m.seed));
        source = d->name();
    } else {
        Generator gen(o.m.seed);
        x = Tensor<float>(Shape{o.batch, c.channels, c.image_size, c.image_size}).uniform_(gen);
    }
    ModelGradcheckOptions opt = o.check;
    opt.seed = o.m.seed;
    std::printf("gradcheck: %s, %s network, D = %lld, on %lld images of %s; h = %g, tolerance %g, %lld coordinates "
                "per tensor\n",
                c.kind.c_str(), c.arch.c_str(), static_cast<long long>(c.latent), static_cast<long long>(x.size(0)),
                source.c_str(), opt.step, opt.tolerance, static_cast<long long>(opt.coordinates));
    const ModelGradcheck r = gradcheck(*l.model, x, opt);
    std::printf("%s", r.report().c_str());
    return r.ok() ? 0 : 1;
}

// ---- sample, reconstruct, traverse, data

struct PictureOptions {
    ModelOptions m;
    std::string out;
    std::vector<int64_t> items;
    int64_t count = 64;
    int64_t steps = 11, rows = 10;
    double range = 3.0;
};

int run_sample(const PictureOptions& o) {
    Loaded l = load(o.m);
    write_png(o.out, cli::sample_grid(*l.model, o.count, o.m.seed));
    std::printf("%s\n", nlohmann::json{{"out", o.out}, {"images", o.count}}.dump().c_str());
    return 0;
}

int run_reconstruct(const PictureOptions& o) {
    Loaded l = load(o.m);
    const auto d = open_data(o.m, l);
    const std::vector<int64_t> items = pick_items(*d, o.items, o.count, o.m.seed);
    write_png(o.out, cli::reconstruction_grid(*l.model, d->images(items)));
    std::printf("%s\n", nlohmann::json{{"out", o.out}, {"images", items.size()}}.dump().c_str());
    return 0;
}

int run_traverse(const PictureOptions& o) {
    Loaded l = load(o.m);
    const auto d = open_data(o.m, l);
    const std::vector<int64_t> base = pick_items(*d, o.items, 1, o.m.seed);
    const std::vector<int64_t> shown = pick_items(*d, {}, 256, o.m.seed);
    const std::vector<int64_t> latents = cli::latents_by_kl(*l.model, d->images(shown), o.rows);
    write_png(o.out, cli::traversal_grid(*l.model, cli::posterior_mean(*l.model, d->images({base[0]})), latents,
                                         o.steps, o.range));
    nlohmann::json j{{"out", o.out}, {"base_item", base[0]}, {"latents", latents}, {"range", o.range}, {"steps", o.steps}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
}

struct DataOptions {
    std::string data, out, idx;
    std::vector<int64_t> items;
    int64_t count = 64, image_size = 0, channels = 0;
    uint64_t seed = 0;
    bool all = false;
};

// The items as an IDX file of bytes [N, H, W] (one channel) or [N, C, H, W], for programs that
// train on the same images (benchmarks/pytorch_train.py reads it with numpy), made and written in
// pieces (all of dSprites is 3 GB), atomically.
void write_idx(const data::Dataset& d, const std::vector<int64_t>& items, const std::string& path) {
    const Shape one = d.images({items.front()}).shape();
    const int64_t n = static_cast<int64_t>(items.size()), C = one[1], H = one[2], W = one[3];
    const std::vector<int64_t> dims = C == 1 ? std::vector<int64_t>{n, H, W} : std::vector<int64_t>{n, C, H, W};
    AtomicFile file(path);
    file.write(data::idx_u8_header(dims));
    constexpr size_t piece = 4096;
    std::string bytes;
    for (size_t at = 0; at < items.size(); at += piece) {
        const std::vector<int64_t> some(items.begin() + static_cast<std::ptrdiff_t>(at),
                                        items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), at + piece)));
        bytes.clear();
        data::append_idx_u8(d.images(some), bytes, str(d.name(), " (items ", some.front(), " to ", some.back(), ")"));
        file.write(bytes);
    }
    file.commit();
    std::printf("%s\n", nlohmann::json{{"idx", path}, {"items", n}, {"shape", dims}}.dump().c_str());
}

int run_data(const DataOptions& o) {
    check(!o.out.empty() || !o.idx.empty(), "data", "nothing to write: give --out (a PNG grid) or --idx (an IDX file)");
    const auto d = data::open_dataset(o.data, {.image_size = o.image_size, .channels = o.channels});
    std::vector<int64_t> items;  // the data set checks each index
    if (o.all) {
        items.resize(static_cast<size_t>(d->size()));
        std::iota(items.begin(), items.end(), int64_t{0});
    } else {
        items = pick_items(*d, o.items, o.count, o.seed);
    }
    if (!o.idx.empty()) write_idx(*d, items, o.idx);
    if (o.out.empty()) return 0;
    const Tensor<float> images = d->images(items);
    write_png(o.out, image_grid(images, static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(items.size()))))));
    for (int64_t i : items) std::printf("%s\n", d->describe(i).dump().c_str());
    return 0;
}

// ---- plot

struct PlotOptions {
    std::string in, out;
};

// A chart from a JSON description: {"title", "x_label", "y_label", "series": [{"name", "x", "y",
// "y_error" (optional), "style" (line, points or line+points), "colour" (optional)}]}.
int run_plot(const PlotOptions& o) {
    std::ifstream file(o.in);
    check(file.good(), "plot", "cannot read '", o.in, "'");
    cli::Plot p;
    try {
        const nlohmann::json j = nlohmann::json::parse(file);
        p.title = j.value("title", "");
        p.x_label = j.value("x_label", "");
        p.y_label = j.value("y_label", "");
        p.allow_log_scale = j.value("log_scale", false);
        for (const auto& s : j.at("series"))
            p.series.push_back({.name = s.at("name"),
                                .colour = s.value("colour", ""),
                                .y = s.at("y").get<std::vector<double>>(),
                                .x = s.at("x").get<std::vector<double>>(),
                                .y_error = s.value("y_error", std::vector<double>{}),
                                .style = s.value("style", "line")});
    } catch (const nlohmann::json::exception& e) {
        throw Error(str("plot: '", o.in, "' is not a plot description (", e.what(), ")"));
    }
    write_file_atomically(o.out, cli::plot_svg(p));
    std::printf("%s\n", nlohmann::json{{"out", o.out}, {"series", p.series.size()}}.dump().c_str());
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"elbo: variational autoencoders on a small, readable autodiff library"};
    // The vector ISA the kernels were compiled for, as Eigen's packets use it.
    app.set_version_flag("--version", str("elbo ", ELBO_VERSION, " (commit ", ELBO_COMMIT, "; kernels: ",
                                          kernels::simd::instruction_set(),
                                          ", float packets of ", kernels::simd::float_width, "; built by ",
                                          cli::compiler(), ELBO_WITH_MPI ? "; with MPI" : "", nccl_words(), ")"));
    app.require_subcommand(1);

    // train
    cli::TrainOptions t;
    CLI::App* train = app.add_subcommand("train", "Train a VAE, β-VAE or FactorVAE into a run folder");
    train->add_option("--model", t.model, "vae, beta-vae or factor-vae")->capture_default_str();
    train->add_option("--data", t.data, "fashion-mnist, dsprites, images:DIR or idx:FILE")->capture_default_str();
    train->add_option("--arch", t.arch, "Network: seed (the seed tutorial's) or kim-mnih (the FactorVAE paper's); "
                      "default kim-mnih on dsprites, else seed");
    train->add_option("--beta", t.beta, "Weight of the KL term (default 1; beta-vae: 4)");
    train->add_option("--gamma", t.gamma, "FactorVAE: weight of the TC term (default 35)");
    train->add_option("--capacity-max", t.capacity_max, "Capacity C_max in nats (Burgess et al.); 0: off")->capture_default_str();
    train->add_option("--capacity-steps", t.capacity_steps, "Steps over which C grows to C_max")->capture_default_str();
    train->add_option("--capacity-weight", t.capacity_weight, "Weight w of the capacity objective's |KL - C| (default 1000)");
    train->add_option("--latent", t.latent, "Latent dimensions D")->capture_default_str();
    train->add_option("--image-size", t.image_size, "Resize images to S x S (default: the data set's own)");
    train->add_option("--channels", t.channels, "images:DIR only: 3 (RGB) or 1 (grey); default 3");
    train->add_option("--reduction", t.reduction, "sum (over the batch, the seed's) or mean")->capture_default_str();
    train->add_option("--batch", t.batch, "Batch size")->capture_default_str();
    auto* steps = train->add_option("--steps", t.steps, "Training steps (default: one epoch; 0: write the initial "
                                    "weights' checkpoint and stop)")->check(CLI::NonNegativeNumber);
    train->add_option("--epochs", t.epochs, "Epochs, instead of --steps")->excludes(steps);
    train->add_option("--lr", t.lr, "Adam's learning rate (default 1e-4, the paper's; seed network: 1e-3 but factor-vae 1e-4)");
    std::vector<double> betas, d_betas;
    train->add_option("--betas", betas, "Adam's betas, as B1,B2 (default 0.9,0.999)")->expected(2)->delimiter(',');
    train->add_option("--d-lr", t.d_lr, "FactorVAE: the discriminator's Adam learning rate (default 1e-4)");
    train->add_option("--d-betas", d_betas, "FactorVAE: the discriminator's Adam betas (default 0.5,0.9)")
        ->expected(2)
        ->delimiter(',');
    train->add_option("--seed", t.seed, "Seed of the initial weights, the batches and every draw")->capture_default_str();
    train->add_option("--threads", t.threads, "Threads (default: all cores)");
    train->add_option("--out", t.out, "Run folder (default runs/MODEL)");
    train->add_option("--resume", t.resume, "Continue the run of this checkpoint, in its folder");
    train->add_option("--device", t.device, "cpu or cuda (default: cpu, or the resumed run's)");
    train->add_option("--checkpoint-every", t.checkpoint_every, "Checkpoint and pictures every N steps (default 1000)");
    train->add_option("--log-every", t.log_every, "A metrics.csv row every N steps")->capture_default_str();
    train->add_option("--time-limit", t.time_limit, "Stop (with a checkpoint) after this many seconds; 0: no limit");
    train->add_option("--shadow", t.shadow, "Every N-th step again in double on the CPU, compared op by op; 0: never");
    train->add_option("--shadow-tolerance", t.shadow_tolerance, "The largest difference a shadow step lets pass")
        ->capture_default_str();
    train->add_flag("--shadow-stop", t.shadow_stop, "Stop at the first shadow step past the tolerance");
    double mpi_timeout = 300;
    train->add_option("--mpi-timeout", mpi_timeout,
                      "Under mpirun: the longest a process waits for the others before ending the job, in seconds")
        ->capture_default_str();
    // With --resume, these come from the checkpoint.
    const std::vector<std::string> fixed_by_checkpoint{
        "--model",    "--data",    "--arch",       "--beta",  "--gamma", "--capacity-max", "--capacity-steps",
        "--capacity-weight", "--latent", "--image-size", "--channels", "--reduction", "--batch", "--lr",
        "--betas", "--d-lr", "--d-betas", "--seed", "--log-every"};

    // eval
    EvalOptions e;
    CLI::App* eval = app.add_subcommand("eval", "Evaluate a checkpoint; prints one JSON object");
    auto add_model_options = [](CLI::App* c, ModelOptions& m) {
        c->add_option("--checkpoint", m.checkpoint, "A checkpoint (safetensors)")->required();
        c->add_option("--data", m.data, "Data set (default: the checkpoint's; fashion-mnist: its test split)");
        c->add_option("--seed", m.seed, "Seed of the items and draws")->capture_default_str();
        c->add_option("--threads", m.threads, "Threads (default: all cores)");
    };
    add_model_options(eval, e.m);
    eval->add_option("--images", e.likelihood.images, "Images for elbo, recon, kl and active_dims")->capture_default_str();
    eval->add_option("--iw-samples", e.likelihood.iw_samples, "K, importance samples per image for nll_iw")->capture_default_str();
    eval->add_option("--iw-images", e.likelihood.iw_images, "Images for nll_iw")->capture_default_str();
    eval->add_option("--train-votes", e.factor.train_votes, "dSprites: FactorVAE metric training votes")->capture_default_str();
    eval->add_option("--eval-votes", e.factor.eval_votes, "dSprites: FactorVAE metric evaluation votes")->capture_default_str();
    eval->add_option("--global-images", e.factor.global_images, "dSprites: images for the latents' global variance")
        ->capture_default_str();
    eval->add_option("--votes-per-sample", e.factor.votes_per_sample, "dSprites: L, images per FactorVAE metric vote")
        ->capture_default_str();
    eval->add_option("--prune-below", e.factor.prune_below,
                     "dSprites: FactorVAE metric ignores latents whose global standard deviation is below this")
        ->capture_default_str();
    eval->add_option("--mig-images", e.mig.images, "dSprites: images for MIG")->capture_default_str();
    eval->add_option("--mig-bins", e.mig.bins, "dSprites: bins per latent for MIG")->capture_default_str();

    // sample, reconstruct, traverse
    PictureOptions s, r, v;
    CLI::App* sample = app.add_subcommand("sample", "Write a grid of images decoded from z ~ N(0, I)");
    sample->add_option("--checkpoint", s.m.checkpoint, "A checkpoint (safetensors)")->required();
    sample->add_option("--count", s.count, "How many images")->capture_default_str();
    sample->add_option("--seed", s.m.seed, "Seed of the draws")->capture_default_str();
    sample->add_option("--out", s.out, "PNG file")->required();
    CLI::App* reconstruct = app.add_subcommand("reconstruct", "Write data items above their reconstructions");
    add_model_options(reconstruct, r.m);
    reconstruct->add_option("--index", r.items, "Items to show (default: --count random ones)");
    reconstruct->add_option("--count", r.count, "How many random items")->capture_default_str();
    reconstruct->add_option("--out", r.out, "PNG file")->required();
    CLI::App* traverse = app.add_subcommand("traverse", "Write each latent swept from -range to range");
    add_model_options(traverse, v.m);
    traverse->add_option("--index", v.items, "The item whose code is the starting point (default: a random one)")
        ->expected(1);
    traverse->add_option("--steps", v.steps, "Values per latent")->capture_default_str();
    traverse->add_option("--range", v.range, "Sweep from -range to range")->capture_default_str();
    traverse->add_option("--rows", v.rows, "Latents shown, those with the largest KL first")->capture_default_str();
    traverse->add_option("--out", v.out, "PNG file")->required();

    // data
    DataOptions d;
    CLI::App* data = app.add_subcommand("data", "Write items of a data set as a grid; print their labels or factors");
    data->add_option("--data", d.data, "fashion-mnist, fashion-mnist:test, dsprites, images:DIR or idx:FILE")->required();
    data->add_option("--index", d.items, "Items to show (default: --count random ones)");
    data->add_option("--count", d.count, "How many random items")->capture_default_str();
    data->add_option("--seed", d.seed, "Seed of the random items")->capture_default_str();
    data->add_option("--image-size", d.image_size, "Resize to S x S");
    data->add_option("--channels", d.channels, "images:DIR only: 3 (RGB) or 1 (grey)");
    data->add_option("--out", d.out, "PNG file of the items as a grid");
    data->add_option("--idx", d.idx, "IDX file of the items as bytes [N, H, W] or [N, C, H, W], for other programs");
    data->add_flag("--all", d.all, "Every item, in the data set's order (with --idx)")
        ->excludes("--index")
        ->excludes("--count")
        ->excludes("--seed")
        ->excludes("--out");

    // grads
    GradsOptions g;
    CLI::App* grads = app.add_subcommand("grads", "Write the loss and every parameter's gradient for one batch");
    grads->add_option("--checkpoint", g.checkpoint, "Model weights (safetensors; PyTorch names)")->required();
    grads->add_option("--input", g.input, "Batch: x [N,C,S,S] in [0,1], optional eps [N,D]")->required();
    grads->add_option("--out", g.out, "Where to write the loss and the gradients (safetensors)")->required();
    grads->add_option("--reduction", g.reduction, "sum (over the batch) or mean (sum / N); default: the checkpoint's");
    grads->add_option("--beta", g.beta, "Weight of the KL term; default: the checkpoint's");
    grads->add_option("--gamma", g.gamma, "FactorVAE: weight of TC; default: the checkpoint's");
    grads->add_option("--capacity-weight", g.capacity_weight, "Capacity objective: weight of |KL - C|; default: the "
                      "checkpoint's");
    grads->add_option("--step", g.step, "Training step (sets the capacity C when scheduled)")->capture_default_str();

    // gradcheck
    GradcheckFlags gc;
    CLI::App* gradcheck_cmd = app.add_subcommand("gradcheck", "Check every parameter's gradient of a model's whole "
                                                 "objective against finite differences, in double");
    gradcheck_cmd->add_option("--checkpoint", gc.m.checkpoint, "A checkpoint (default: a model of random weights)");
    gradcheck_cmd->add_option("--data", gc.m.data, "Data set of the batch (default: the checkpoint's; else noise)");
    gradcheck_cmd->add_option("--seed", gc.m.seed, "Seed of the batch, the noise, the coordinates (and random weights)")
        ->capture_default_str();
    gradcheck_cmd->add_option("--threads", gc.m.threads, "Threads (default: all cores)");
    gradcheck_cmd->add_option("--batch", gc.batch, "Images (a FactorVAE's are split in halves)")->capture_default_str();
    gradcheck_cmd->add_option("--coordinates", gc.check.coordinates, "Coordinates checked per tensor")->capture_default_str();
    gradcheck_cmd->add_option("--step", gc.check.step, "h of the central differences")->capture_default_str();
    gradcheck_cmd->add_option("--tolerance", gc.check.tolerance, "The largest relative error that passes")
        ->capture_default_str();
    gradcheck_cmd->add_option("--training-step", gc.check.training_step, "Sets the capacity C when scheduled")
        ->capture_default_str();
    const std::vector<std::string> random_model_flags{"--model", "--arch", "--latent", "--image-size", "--channels",
                                                      "--capacity-max"};
    gradcheck_cmd->add_option("--model", gc.model, "Random weights: vae, beta-vae or factor-vae")->capture_default_str();
    gradcheck_cmd->add_option("--arch", gc.arch, "Random weights: seed or kim-mnih")->capture_default_str();
    gradcheck_cmd->add_option("--latent", gc.latent, "Random weights: latent dimensions D")->capture_default_str();
    gradcheck_cmd->add_option("--image-size", gc.image_size, "Random weights: image size S")->capture_default_str();
    gradcheck_cmd->add_option("--channels", gc.channels, "Random weights: image channels C")->capture_default_str();
    gradcheck_cmd->add_option("--capacity-max", gc.capacity_max, "Random weights: the capacity objective's C_max "
                              "(0: none)")->capture_default_str();

    // health
    cli::HealthFlags h;
    CLI::App* health = app.add_subcommand("health", "Summarise a run's health from its metrics.csv");
    health->add_option("--run", h.run, "The run folder")->required();
    health->add_option("--window", h.window, "Steps a condition must last before its warning")->capture_default_str();

    // plot
    PlotOptions pl;
    ExportOptions x;
    CLI::App* exporter = app.add_subcommand("export", "Write a checkpoint's weights alone, with its metadata, for release");
    exporter->add_option("--checkpoint", x.checkpoint, "A checkpoint (safetensors)")->required();
    exporter->add_option("--out", x.out, "The weights file to write (safetensors)")->required();
    exporter->add_flag("--without-discriminator", x.without_discriminator,
                       "FactorVAE: leave the discriminator out (the file then evaluates and draws, and cannot train)");
    exporter->add_option("--meta", x.meta, "KEY=VALUE metadata to add (a commit, a score), repeatable");
    CLI::App* plot = app.add_subcommand("plot", "Draw a chart described in JSON as SVG (benchmarks/study.py uses it)");
    plot->add_option("--in", pl.in, "The chart: title, x_label, y_label, series of x, y, y_error, style")->required();
    plot->add_option("--out", pl.out, "SVG file")->required();

    // bench
    cli::BenchOptions b;
    CLI::App* bench = app.add_subcommand("bench", "Time the training step and the forward pass; one JSON line");
    bench->add_option("--model", b.model, "vae or factor-vae")->capture_default_str();
    bench->add_option("--arch", b.arch, "Network: seed or kim-mnih")->capture_default_str();
    bench->add_option("--channels", b.channels, "Image channels C")->capture_default_str();
    bench->add_option("--image-size", b.image_size, "Image size S")->capture_default_str();
    bench->add_option("--latent", b.latent, "Latent dimensions D")->capture_default_str();
    bench->add_option("--batch", b.batch, "Batch size")->capture_default_str();
    bench->add_option("--threads", b.threads, "Threads (default: all cores)");
    bench->add_option("--steps", b.steps, "Timed repetitions (the median is reported)")->capture_default_str();
    bench->add_option("--warmup", b.warmup, "Untimed repetitions first")->capture_default_str();
    bench->add_option("--device", b.device, "cpu or cuda")->capture_default_str();
    bench->add_flag("--profile", b.profile, "Also print the time of each op, forward and backward (stderr)");

    try {
        app.parse(argc, argv);
        if (*train) {
            if (!betas.empty()) t.betas = cli::Betas{betas[0], betas[1]};
            if (!d_betas.empty()) t.d_betas = cli::Betas{d_betas[0], d_betas[1]};
            if (!t.resume.empty())
                for (const std::string& flag : fixed_by_checkpoint)
                    check(train->count(flag) == 0, "train", flag, " comes from the checkpoint when resuming; leave it out");
            train::Group* group = nullptr;
            std::function<train::Group*()> on_gpu;
#if ELBO_WITH_MPI
            std::unique_ptr<train::Group> gpus;
            if (mpi::launched()) {  // started by mpirun or srun: one of the job's processes
                mpi::World& world = mpi::World::get();
                world.set_timeout(mpi_timeout);
                group = &world;
#if ELBO_WITH_CUDA
                // On the GPU: one GPU per process of a machine; gradients summed there by NCCL.
                on_gpu = [&world, &gpus]() -> train::Group* {
                    const int count = cuda::device_count();
                    cuda::use_device(world.local_rank() % std::max(1, count));
                    if (!cuda::has_nccl()) return &world;  // through the host: processes may share a GPU
                    check(world.local_size() <= count, "train", world.local_size(), " processes on this machine, ",
                          count, " GPU(s): NCCL takes one GPU per process; start at most ", count, " per machine");
                    gpus = cuda::nccl_group(world, world.timeout());
                    return gpus.get();
                };
#endif
            }
#endif
            t.commit = ELBO_COMMIT;
            return cli::Trainer(t, group, on_gpu).run();
        }
        if (*eval) {
            for (const char* flag : {"--train-votes", "--eval-votes", "--votes-per-sample", "--global-images",
                                     "--prune-below", "--mig-images", "--mig-bins"})
                e.metric_flags = e.metric_flags || eval->count(flag) > 0;
            return run_eval(e);
        }
        if (*sample) return run_sample(s);
        if (*reconstruct) return run_reconstruct(r);
        if (*traverse) return run_traverse(v);
        if (*data) return run_data(d);
        if (*grads) return run_grads(g);
        if (*gradcheck_cmd) {
            if (!gc.m.checkpoint.empty())
                for (const std::string& flag : random_model_flags)
                    check(gradcheck_cmd->count(flag) == 0, "gradcheck", flag,
                          " describes a model of random weights; the checkpoint's model is used");
            return run_gradcheck(gc);
        }
        if (*bench) return cli::run_bench(b);
        if (*health) return cli::run_health(h);
        if (*plot) return run_plot(pl);
        if (*exporter) return run_export(x);
    } catch (const CLI::ParseError& err) {
        return app.exit(err) == 0 ? 0 : 1;  // --help is not an error; every misuse exits with 1
    } catch (const Error& err) {
        std::fprintf(stderr, "elbo: %s\n", err.what());
        return 1;
    } catch (const std::exception& err) {  // from the standard library: a file system or JSON failure
        std::fprintf(stderr, "elbo: %s\n", err.what());
        return 1;
    }
    return 0;
}
