#pragma once
// `elbo train`: one training run and its folder.
//
//   OUT/config.json              the model and the training settings
//   OUT/metrics.csv              step, loss, recon, kl, tc, discriminator_loss, lr, seconds
//                                (nats per image, every --log-every steps)
//   OUT/loss.svg                 the loss curves
//   OUT/checkpoint.safetensors   model, optimizers, step: every --checkpoint-every steps and at the end
//   OUT/reconstructions.png, samples.png, traversals.png   at every checkpoint
//
// Every file is written atomically. A step's randomness (eps, permute_dims) comes from a generator
// seeded by (seed, step) and the batches from the loader's (seed, epoch) order, so a run resumed
// from a checkpoint takes exactly the steps the uninterrupted run would have: the same metrics.

#include <omp.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli/pictures.hpp"
#include "cli/plot.hpp"
#include "cli/progress.hpp"
#include "cli/step.hpp"
#include "elbo/elbo.hpp"

namespace elbo::cli {

namespace fs = std::filesystem;

struct TrainOptions {
    std::string model = "vae";
    std::string data = "fashion-mnist";
    std::optional<double> beta, gamma;
    double capacity_max = 0;
    int64_t capacity_steps = 100000;
    int64_t latent = 10;
    int64_t image_size = 0, channels = 0;  // 0: the data set's own
    std::string reduction = "sum";
    int64_t batch = 64;
    int64_t steps = 0, epochs = 0;  // neither: one epoch
    std::optional<double> lr;
    uint64_t seed = 0;
    int threads = 0;  // 0: OpenMP's default
    std::string out;
    std::string resume;
    std::string device;  // "cpu" or "cuda"; empty: cpu, or the resumed run's
    int64_t checkpoint_every = 0;  // 0: 1000, or the resumed run's
    int64_t log_every = 10;
    double time_limit = 0;  // seconds; 0: none
};

inline nlohmann::ordered_json to_json(const models::ModelConfig& c) {
    return {{"kind", c.kind},
            {"channels", c.channels},
            {"image_size", c.image_size},
            {"latent", c.latent},
            {"beta", c.beta},
            {"gamma", c.gamma},
            {"capacity_max", c.capacity_max},
            {"capacity_steps", c.capacity_steps},
            {"reduction", to_string(c.reduction)},
            {"discriminator_hidden", c.discriminator_hidden}};
}

inline nlohmann::json to_json(const TrainOptions& o) {
    return {{"model", o.model},       {"data", o.data},
            {"latent", o.latent},     {"image_size", o.image_size},
            {"channels", o.channels}, {"batch", o.batch},
            {"steps", o.steps},       {"lr", o.lr.value_or(0.0)},
            {"seed", o.seed},         {"checkpoint_every", o.checkpoint_every},
            {"log_every", o.log_every}, {"threads", o.threads},
            {"device", o.device}};
}

// Set by SIGINT: the loop finishes its step, checkpoints and stops. A second Ctrl-C kills.
inline volatile std::sig_atomic_t interrupted = 0;
inline void on_interrupt(int) {
    interrupted = 1;
    std::signal(SIGINT, SIG_DFL);
}

inline void set_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
}

// One row of metrics.csv.
struct MetricsRow {
    int64_t step = 0;
    double loss = 0, recon = 0, kl = 0, tc = 0, discriminator = 0, lr = 0, seconds = 0;

    std::string csv() const {
        char line[256];
        std::snprintf(line, sizeof line, "%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.9g,%.3f\n", static_cast<long long>(step), loss,
                      recon, kl, tc, discriminator, lr, seconds);
        return line;
    }
    static MetricsRow parse(const std::string& line) {
        MetricsRow r;
        long long step = 0;
        check(std::sscanf(line.c_str(), "%lld,%lf,%lf,%lf,%lf,%lf,%lf,%lf", &step, &r.loss, &r.recon, &r.kl, &r.tc,
                          &r.discriminator, &r.lr, &r.seconds) == 8,
              "train", "metrics.csv has a malformed line: '", line, "'");
        r.step = step;
        return r;
    }
};
inline const char* metrics_header = "step,loss,recon,kl,tc,discriminator_loss,lr,seconds\n";

class Trainer {
public:
    explicit Trainer(TrainOptions o) : o_(std::move(o)) {}

    // Runs to the end (or Ctrl-C, or the time limit); returns the process's exit status.
    int run() {
        if (!o_.device.empty()) device_ = parse_device(o_.device, "train");  // a bad --device fails first
        setup();
        set_threads(o_.threads);
        std::signal(SIGINT, on_interrupt);
        const int status = loop();
        std::signal(SIGINT, SIG_DFL);
        return status;
    }

private:
    // The model, data, optimizers and run folder, fresh or from --resume.
    void setup() {
        check(o_.batch > 0 && o_.steps >= 0 && o_.epochs >= 0 && o_.checkpoint_every >= 0 && o_.log_every > 0 &&
                  o_.time_limit >= 0,
              "train", "--batch and --log-every must be positive; --checkpoint-every, --steps, --epochs and "
              "--time-limit non-negative");
        models::ModelConfig config;
        if (!o_.resume.empty()) {
            ck_ = models::read_checkpoint<float>(o_.resume);
            check(ck_.metadata.count("train") && ck_.metadata.count("step"), "train", "'", o_.resume,
                  "' is not a training checkpoint (no 'train' and 'step' metadata); --resume continues `elbo train` runs");
            try {
                restore_options(nlohmann::json::parse(ck_.metadata.at("train")));
            } catch (const nlohmann::json::exception& e) {
                throw Error(str("train: '", o_.resume, "' has malformed 'train' metadata (", e.what(), ")"));
            }
            config = ck_.config;
            run_folder_ = fs::path(o_.resume).parent_path();
            if (run_folder_.empty()) run_folder_ = ".";
            if (o_.out.empty()) o_.out = run_folder_.string();
        } else {
            config = model_config();
        }
        const bool fresh = o_.resume.empty();
        if (o_.out.empty()) o_.out = "runs/" + o_.model;
        if (o_.checkpoint_every == 0) o_.checkpoint_every = 1000;
        // A run continues in its own folder, or starts (or branches off) in one that holds no run.
        const bool own_folder = !fresh && fs::exists(o_.out) && fs::equivalent(o_.out, run_folder_);
        check(own_folder || !fs::exists(checkpoint_path()), "train", "'", o_.out,
              "' already holds a run; continue it with --resume ", checkpoint_path(), " or choose another --out");
        data_ = data::open_dataset(o_.data, {.image_size = fresh ? o_.image_size : config.image_size,
                                             .channels = fresh ? o_.channels : config.channels});
        if (fresh) {
            config.channels = data_->channels();
            config.image_size = data_->image_size();
        }
        check(data_->channels() == config.channels && data_->image_size() == config.image_size, "train",
              "the data set gives ", data_->channels(), " x ", data_->image_size(), " x ", data_->image_size(),
              " images, the model reads ", config.channels, " x ", config.image_size, " x ", config.image_size);

        if (o_.device.empty()) {  // none given: the resumed run's, or the CPU
            o_.device = !fresh && !ck_device_.empty() ? ck_device_ : "cpu";
            try {
                device_ = parse_device(o_.device, "train");
            } catch (const Error& e) {
                throw Error(str(e.what(), "; the run in '", o_.resume, "' trained on ", o_.device,
                                ": continue it on another device with --device"));
            }
        }
        Generator init(o_.seed);
        model_ = models::make_model<float>(config, init);  // initialized on the host: one seed, one model
        model_->to(device_);
        factor_ = dynamic_cast<models::FactorVAE<float>*>(model_.get());
        optim::AdamOptions adam = factor_ ? models::factor_vae_adam() : optim::AdamOptions{};
        adam.lr = *o_.lr;
        vae_opt_ = std::make_unique<optim::Adam<float>>(model_->vae_parameters(), adam);
        if (factor_) {
            optim::AdamOptions d = models::factor_vae_discriminator_adam();
            d.lr = *o_.lr;
            d_opt_ = std::make_unique<optim::Adam<float>>(factor_->discriminator_parameters(), d);
        }
        const int64_t per_step = factor_ ? 2 : 1;  // FactorVAE: a second batch for the discriminator
        const int64_t batches = data_->size() / o_.batch;
        check(batches >= per_step, "train", "'", o_.data, "' has ", data_->size(), " images, fewer than ", per_step,
              " batch(es) of ", o_.batch);
        if (o_.steps == 0) o_.steps = std::max<int64_t>(1, (o_.epochs ? o_.epochs : 1) * batches / per_step);

        fs::create_directories(o_.out);
        if (!fresh) {
            model_->load_state_dict(ck_.model);
            vae_opt_->load_state_dict(ck_.optimizer, "optimizer.vae.");
            if (d_opt_) d_opt_->load_state_dict(ck_.optimizer, "optimizer.discriminator.");
            step_ = metadata_number(ck_.metadata, "step");
            seconds_before_ = ck_.metadata.count("seconds") ? metadata_number(ck_.metadata, "seconds") : 0.0;
            read_metrics(run_folder_ / "metrics.csv");
        } else {
            write_file_atomically(metrics_path(), metrics_header);
        }
        o_.image_size = config.image_size;
        o_.channels = config.channels;
        o_.latent = config.latent;
        write_file_atomically((fs::path(o_.out) / "config.json").string(),
                              nlohmann::ordered_json{{"model", to_json(config)}, {"train", to_json(o_)}}.dump(2) + "\n");

        loader_ = std::make_unique<data::Loader>(data_->size(), o_.batch, o_.seed,
                                                 [this](const std::vector<int64_t>& i) { return data_->images(i); });
        loader_->seek(step_ * per_step);
        // The pictures show the same items and draws at every checkpoint.
        Generator pick(o_.seed + 1);
        std::vector<int64_t> items = random_permutation(data_->size(), pick);
        items.resize(static_cast<size_t>(std::min<int64_t>(32, data_->size())));
        picture_batch_ = data_->images(items);
    }

    models::ModelConfig model_config() {
        check(o_.model == "vae" || o_.model == "beta-vae" || o_.model == "factor-vae", "train",
              "--model must be vae, beta-vae or factor-vae, got '", o_.model, "'");
        models::ModelConfig c;
        c.kind = o_.model;
        c.latent = o_.latent;
        c.beta = o_.beta.value_or(o_.model == "beta-vae" ? 4.0 : 1.0);
        c.capacity_max = o_.capacity_max;
        c.capacity_steps = o_.capacity_steps;
        c.gamma = o_.gamma.value_or(o_.model == "factor-vae" ? 35.0 : o_.capacity_max > 0 ? 1000.0 : 0.0);
        check(o_.reduction == "sum" || o_.reduction == "mean", "train", "--reduction must be sum or mean, got '",
              o_.reduction, "'");
        c.reduction = o_.reduction == "sum" ? Reduction::sum : Reduction::mean;
        if (!o_.lr) o_.lr = o_.model == "factor-vae" ? 1e-4 : 1e-3;
        return c;
    }

    // From a checkpoint's "train" metadata; --steps, --epochs, --out, --threads, --device,
    // --time-limit and --checkpoint-every given on this command line still count. The thread count
    // and the device matter: on the CPU the same seed and threads give the same sums, bit for bit,
    // and the GPU adds in other orders.
    void restore_options(const nlohmann::json& j) {
        o_.model = j.at("model");
        o_.data = j.at("data");
        o_.batch = j.at("batch");
        o_.seed = j.at("seed");
        o_.lr = j.at("lr").get<double>();
        o_.log_every = j.at("log_every");
        if (o_.steps == 0 && o_.epochs == 0) o_.steps = j.at("steps");
        if (o_.threads == 0) o_.threads = j.value("threads", 0);  // the same threads, the same sums
        ck_device_ = j.value("device", "");  // and the same device, unless --device says otherwise
        if (o_.checkpoint_every == 0) o_.checkpoint_every = j.value("checkpoint_every", 0);
    }

    std::string checkpoint_path() const { return (fs::path(o_.out) / "checkpoint.safetensors").string(); }
    std::string metrics_path() const { return (fs::path(o_.out) / "metrics.csv").string(); }

    double metadata_number(const std::map<std::string, std::string>& metadata, const std::string& key) const {
        const std::string& text = metadata.at(key);
        char* end = nullptr;
        const double v = std::strtod(text.c_str(), &end);
        check(!text.empty() && *end == '\0' && std::isfinite(v) && v >= 0, "train", "'", o_.resume, "' has metadata '",
              key, "' = '", text, "', expected a non-negative number");
        return v;
    }

    // The rows of the resumed run (from `source`) up to its checkpoint, into this run's metrics.csv.
    // What came after the checkpoint is dropped, and so is a last row cut short by a kill.
    void read_metrics(const fs::path& source) {
        std::ifstream in(source);
        std::string line, kept = metrics_header;
        while (std::getline(in, line)) {
            if (line.empty() || line.rfind("step", 0) == 0) continue;
            MetricsRow r;
            try {
                r = MetricsRow::parse(line);
            } catch (const Error&) {
                break;
            }
            if (r.step > step_) break;
            rows_.push_back(r);
            kept += r.csv();
        }
        write_file_atomically(metrics_path(), kept);
    }

    double seconds() const {
        return seconds_before_ + std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }

    int loop() {
        std::ofstream metrics(metrics_path(), std::ios::app);
        start_ = std::chrono::steady_clock::now();
        Progress progress(step_, o_.steps, o_.batch, o_.time_limit);
        std::fprintf(stderr, "elbo: training %s on %s (%lld images of %lldx%lldx%lld) for %lld steps into %s\n",
                     model_->config.kind.c_str(), o_.data.c_str(), static_cast<long long>(data_->size()),
                     static_cast<long long>(data_->channels()), static_cast<long long>(data_->image_size()),
                     static_cast<long long>(data_->image_size()), static_cast<long long>(o_.steps), o_.out.c_str());
        while (step_ < o_.steps) {
            MetricsRow row = train_step();
            if (!std::isfinite(row.loss) || !std::isfinite(row.discriminator)) {
                progress.interrupt();
                std::fprintf(stderr,
                             "elbo: train: the loss is %g at step %lld (recon %g, kl %g, discriminator %g); stopping. "
                             "The last good checkpoint is %s.\n",
                             row.loss, static_cast<long long>(step_), row.recon, row.kl, row.discriminator,
                             fs::exists(checkpoint_path()) ? checkpoint_path().c_str() : "none (none was written yet)");
                return 1;
            }
            ++step_;
            row.step = step_;
            row.seconds = seconds();
            if (step_ % o_.log_every == 0 || step_ == o_.steps) {
                rows_.push_back(row);
                metrics << row.csv();
                metrics.flush();
            }
            char terms[160];
            std::snprintf(terms, sizeof terms, "loss %.4g  recon %.4g  kl %.4g%s", row.loss, row.recon, row.kl,
                          factor_ ? str("  tc ", row.tc, "  D ", row.discriminator).c_str() : "");
            progress.update(step_, terms);
            const bool out_of_time = o_.time_limit > 0 && seconds() - seconds_before_ >= o_.time_limit;
            if (step_ % o_.checkpoint_every == 0 || step_ == o_.steps || interrupted || out_of_time) save();
            if (interrupted || out_of_time) {
                progress.interrupt();
                std::fprintf(stderr, "elbo: %s at step %lld; checkpoint written. Continue with: elbo train --resume %s\n",
                             interrupted ? "interrupted" : "time limit reached", static_cast<long long>(step_),
                             checkpoint_path().c_str());
                return interrupted ? 130 : 0;
            }
        }
        std::fprintf(stderr, "elbo: done. %s holds checkpoint.safetensors, metrics.csv, loss.svg, reconstructions.png, "
                     "samples.png and traversals.png\n", o_.out.c_str());
        return 0;
    }

    // One step on the next batch (and, for FactorVAE, the one after it), with the step's own draws.
    MetricsRow train_step() {
        Generator gen(o_.seed * 0x9E3779B97F4A7C15ULL + 0x5851F42D4C957F2DULL * static_cast<uint64_t>(step_ + 1));
        const data::Batch batch = loader_->next();
        const Tensor<float> other = factor_ ? loader_->next().images : Tensor<float>();
        const StepLosses l = cli::train_step(*model_, {vae_opt_.get(), d_opt_.get()}, batch.images, other, step_, gen);
        MetricsRow row;
        row.loss = l.loss;
        row.recon = l.recon;
        row.kl = l.kl;
        row.tc = l.tc;
        row.discriminator = l.discriminator;
        row.lr = *o_.lr;
        return row;
    }

    // The checkpoint, the loss plot and the pictures.
    void save() {
        for (auto& [name, p] : model_->named_parameters())
            for (float v : p.value().to(Device::cpu))
                check(std::isfinite(v), "train", "parameter '", name, "' is not finite at step ", step_,
                      "; stopping without overwriting the last checkpoint");
        std::vector<std::pair<std::string, const optim::Optimizer<float>*>> optimizers{{"vae", vae_opt_.get()}};
        if (d_opt_) optimizers.emplace_back("discriminator", d_opt_.get());
        char elapsed[32];
        std::snprintf(elapsed, sizeof elapsed, "%.3f", seconds());
        models::write_checkpoint<float>(checkpoint_path(), *model_, optimizers,
                                        {{"step", std::to_string(step_)}, {"seconds", elapsed},
                                         {"train", to_json(o_).dump()}});
        write_pictures();
    }

    void write_pictures() {
        const fs::path out(o_.out);
        std::vector<double> steps;
        std::vector<Series> series{{"loss", "#1f77b4", {}}, {"recon", "#2ca02c", {}}, {"kl", "#d62728", {}}};
        for (const MetricsRow& r : rows_) {
            steps.push_back(static_cast<double>(r.step));
            series[0].values.push_back(r.loss);
            series[1].values.push_back(r.recon);
            series[2].values.push_back(r.kl);
        }
        write_file_atomically((out / "loss.svg").string(),
                              loss_plot_svg(steps, series, model_->config.kind + " on " + o_.data));
        write_png((out / "reconstructions.png").string(), reconstruction_grid(*model_, picture_batch_.slice(0, std::min<int64_t>(16, picture_batch_.size(0)))));
        write_png((out / "samples.png").string(), sample_grid(*model_, 64, o_.seed));
        const std::vector<int64_t> latents = latents_by_kl(*model_, picture_batch_, 10);
        write_png((out / "traversals.png").string(),
                  traversal_grid(*model_, posterior_mean(*model_, picture_batch_.slice(0, 1)), latents));
    }

    TrainOptions o_;
    Device device_ = Device::cpu;
    std::string ck_device_;  // the device the resumed run trained on
    models::Checkpoint<float> ck_;
    fs::path run_folder_;  // the resumed checkpoint's folder
    std::unique_ptr<data::Dataset> data_;
    std::unique_ptr<models::VAE<float>> model_;
    models::FactorVAE<float>* factor_ = nullptr;
    std::unique_ptr<optim::Adam<float>> vae_opt_, d_opt_;
    std::unique_ptr<data::Loader> loader_;
    Tensor<float> picture_batch_;
    std::vector<MetricsRow> rows_;
    int64_t step_ = 0;
    double seconds_before_ = 0;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace elbo::cli
