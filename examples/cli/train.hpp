#pragma once
// `elbo train`: one training run and its folder.
//
//   OUT/config.json              the model and the training settings
//   OUT/metrics.csv              step, loss, recon, kl, tc, discriminator_loss, d_accuracy_real,
//                                d_accuracy_permuted, lr, seconds, kl_0 ... kl_{D-1}
//                                (nats per image, every --log-every steps)
//   OUT/loss.svg                 the loss curves, and below them the latents' and the gradient's health
//   OUT/checkpoint.safetensors   model, optimizers, step: every --checkpoint-every steps and at the end
//   OUT/reconstructions.png, samples.png, traversals.png   at every checkpoint
//
// Every file is written atomically. A step's randomness (eps, permute_dims) comes from a generator
// seeded by (seed, step) and the batches from the loader's (seed, epoch) order, so a run resumed
// from a checkpoint takes exactly the steps the uninterrupted run would have: the same metrics.

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <functional>
#include <fstream>
#include <sstream>

#include "cli/pictures.hpp"
#include "cli/plot.hpp"
#include "cli/progress.hpp"
#include "cli/common.hpp"
#include "elbo/elbo.hpp"

namespace elbo::cli {

namespace fs = std::filesystem;

// Two numbers, as --betas 0.9,0.999 gives them.
using Betas = std::pair<double, double>;

struct TrainOptions {
    std::string model = "vae";
    std::string data = "fashion-mnist";
    std::string arch;  // empty: kim-mnih on dSprites, else seed
    std::optional<double> beta, gamma, capacity_weight;
    double capacity_max = 0;
    int64_t capacity_steps = 100000;
    int64_t latent = 10;
    int64_t image_size = 0, channels = 0;  // 0: the data set's own
    std::string reduction = "sum";
    int64_t batch = 64;
    int64_t steps = -1, epochs = 0;  // neither: one epoch; --steps 0: the initial weights' checkpoint alone
    std::optional<double> lr, d_lr;       // Adam's learning rates: the VAE's, FactorVAE's discriminator's
    std::optional<Betas> betas, d_betas;  // and their betas
    uint64_t seed = 0;
    int threads = 0;  // 0: OpenMP's default
    std::string out;
    std::string resume;
    std::string device;  // "cpu" or "cuda"; empty: cpu, or the resumed run's
    int64_t checkpoint_every = 0;  // 0: 1000, or the resumed run's
    int64_t log_every = 10;
    double time_limit = 0;  // seconds; 0: none
    // Shadow mode: every `shadow`-th step again in double on the CPU, compared op by op; a run's
    // own setting, not kept in its checkpoint.
    int64_t shadow = 0;
    double shadow_tolerance = 1e-3;
    bool shadow_stop = false;
    int ranks = 1;  // processes sharing each step (an MPI job's), each with `batch` images
    std::string commit = "unknown";  // elbo's, recorded in each checkpoint as elbo_commit
};

inline nlohmann::ordered_json to_json(const models::ModelConfig& c) {
    nlohmann::ordered_json j;
    models::ModelConfig::each_setting(c, [&](const char* name, const auto& field) {
        if constexpr (std::is_same_v<std::decay_t<decltype(field)>, Reduction>) j[name] = to_string(field);
        else j[name] = field;
    });
    return j;
}

inline nlohmann::json to_json(const TrainOptions& o) {
    nlohmann::json j{{"model", o.model},       {"data", o.data},
                     {"arch", o.arch},         {"latent", o.latent},
                     {"image_size", o.image_size}, {"channels", o.channels},
                     {"batch", o.batch},       {"steps", o.steps},
                     {"lr", o.lr.value_or(0.0)}, {"betas", o.betas.value_or(Betas{})},
                     {"seed", o.seed},         {"checkpoint_every", o.checkpoint_every},
                     {"log_every", o.log_every}, {"threads", o.threads},
                     {"device", o.device},     {"ranks", o.ranks}};
    if (o.d_lr) j["d_lr"] = *o.d_lr;
    if (o.d_betas) j["d_betas"] = *o.d_betas;
    return j;
}

// Set by SIGINT: the loop finishes its step, checkpoints and stops. A second Ctrl-C kills.
inline volatile std::sig_atomic_t interrupted = 0;
inline void on_interrupt(int) {
    interrupted = 1;
    std::signal(SIGINT, SIG_DFL);
}

// With a group (an MPI job: mpirun -np N elbo train ...), every process trains its share of each
// step's images (--batch of them; the step's batch is N times that) and holds the same model;
// process 0 alone writes the run folder.
// A run on the GPU asks `on_gpu` for the group to train with instead (it picks this process's GPU,
// and sums gradients there over NCCL where the CUDA module has it).
class Trainer {
public:
    explicit Trainer(TrainOptions o, train::Group* group = nullptr, std::function<train::Group*()> on_gpu = {})
        : o_(std::move(o)), group_(group), on_gpu_(std::move(on_gpu)) {
        if (group_) o_.ranks = group_->size();
    }

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
    // The model, data, optimizers and run folder, fresh or from --resume: everything that can refuse
    // the flags or the checkpoint runs before anything is written.
    void setup() {
        check_flags();
        const bool fresh = o_.resume.empty();
        models::ModelConfig config = fresh ? model_config() : resumed_config();
        choose_folder(fresh);
        open_data(config, fresh);
        choose_device(fresh);
        if (group_ && device_ == Device::cuda && on_gpu_) group_ = on_gpu_();
        Generator init(o_.seed, random::Stream{Purpose::init});  // on the host: one seed, one model
        run_ = std::make_unique<TrainedModel>(
            config, init, device_, optim::AdamOptions{.lr = *o_.lr, .beta1 = o_.betas->first, .beta2 = o_.betas->second},
            config.is_factor_vae()
                ? optim::AdamOptions{.lr = *o_.d_lr, .beta1 = o_.d_betas->first, .beta2 = o_.d_betas->second}
                : optim::AdamOptions{});
        count_steps();
        if (!fresh) restore_state();
        same_start();
        if (writer()) start_folder(config, fresh);
        start_loader();
    }

    // Process 0 writes the run folder and prints; the others train beside it.
    bool writer() const { return !group_ || group_->rank() == 0; }

    // Over a group, every process starts from process 0's parameters (as PyTorch's DDP does; they
    // are the same already, from one seed or one checkpoint).
    void same_start() {
        if (!group_) return;
        for (auto& [name, p] : run_->model().named_parameters()) {
            Tensor<float> host = p.value().to(Device::cpu).clone();
            group_->broadcast(host.data(), host.numel(), 0);
            p.value().copy_(host);
        }
    }

    // Over a group, that every process holds the same parameters: each one's fingerprint of them
    // (FNV-1a of their bytes, in 16-bit pieces, which floats hold exactly) gathered and compared.
    void check_same_parameters() {
        if (!group_) return;
        uint64_t h = 0xcbf29ce484222325ULL;
        for (auto& [name, p] : run_->model().named_parameters()) {
            const Tensor<float> v = p.value().to(Device::cpu);
            const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
            for (size_t i = 0; i < static_cast<size_t>(v.numel()) * sizeof(float); ++i) h = (h ^ bytes[i]) * 0x100000001b3ULL;
        }
        const float mine[4] = {float(h & 0xFFFF), float(h >> 16 & 0xFFFF), float(h >> 32 & 0xFFFF), float(h >> 48)};
        std::vector<float> all(static_cast<size_t>(4 * group_->size()));
        group_->gather(mine, 4, all.data());
        for (int r = 0; r < group_->size(); ++r)
            check(std::equal(mine, mine + 4, all.begin() + 4 * r), "train", "process ", r, "'s parameters differ from "
                  "process ", group_->rank(), "'s at step ", step_, ": the processes no longer train one model");
    }

    void check_flags() const {
        check(o_.batch > 0 && o_.steps >= -1 && o_.epochs >= 0 && o_.checkpoint_every >= 0 && o_.log_every > 0 &&
                  o_.time_limit >= 0 && o_.shadow >= 0,
              "train", "--batch and --log-every must be positive; --checkpoint-every, --steps, --epochs, "
              "--time-limit and --shadow non-negative");
        check(o_.shadow_tolerance > 0, "train", "--shadow-tolerance must be positive, got ", o_.shadow_tolerance);
        check(!group_ || o_.shadow == 0, "train", "--shadow compares a step in one process; run it without mpirun");
    }

    // --resume: the checkpoint, its configuration, and the run's options over the flags not given.
    models::ModelConfig resumed_config() {
        ck_ = models::read_checkpoint<float>(o_.resume);
        check(ck_.metadata.count("train") && ck_.metadata.count("step"), "train", "'", o_.resume,
              "' is not a training checkpoint (no 'train' and 'step' metadata); --resume continues `elbo train` runs");
        check(!ck_.optimizer.empty(), "train", "'", o_.resume,
              "' holds weights alone (elbo export), without its optimizers' state; --resume needs the run's "
              "own checkpoint");
        try {
            restore_options(nlohmann::json::parse(ck_.metadata.at("train")));
        } catch (const nlohmann::json::exception& e) {
            throw Error(str("train: '", o_.resume, "' has malformed 'train' metadata (", e.what(), ")"));
        }
        if (!ck_.metadata.count("rng"))
            std::fprintf(stderr, "elbo: '%s' comes from an elbo whose draws were xoshiro256** streams; from here on "
                         "they are Philox's (docs/tools.md), so the steps after %s differ from the old elbo's\n",
                         o_.resume.c_str(), ck_.metadata.at("step").c_str());
        o_.arch = ck_.config.arch;
        run_folder_ = fs::path(o_.resume).parent_path();
        if (run_folder_.empty()) run_folder_ = ".";
        if (o_.out.empty()) o_.out = run_folder_.string();
        return ck_.config;
    }

    // A run continues in its own folder, or starts (or branches off) in one that holds no run.
    void choose_folder(bool fresh) {
        if (o_.out.empty()) o_.out = "runs/" + o_.model;
        if (o_.checkpoint_every == 0) o_.checkpoint_every = 1000;
        const bool own_folder = !fresh && fs::exists(o_.out) && fs::equivalent(o_.out, run_folder_);
        check(own_folder || !fs::exists(checkpoint_path()), "train", "'", o_.out,
              "' already holds a run; continue it with --resume ", checkpoint_path(), " or choose another --out");
    }

    // The data set, at the size a fresh run asks for (its own by default) or the resumed model reads.
    void open_data(models::ModelConfig& config, bool fresh) {
        data_ = data::open_dataset(o_.data, {.image_size = fresh ? o_.image_size : config.image_size,
                                             .channels = fresh ? o_.channels : config.channels});
        if (fresh) {
            config.channels = data_->channels();
            config.image_size = data_->image_size();
        }
        const int64_t side = models::network(config.arch).downsampling();
        check(config.image_size % side == 0, "train", "--arch ", config.arch, " takes images whose side is a multiple of ",
              side, "; the data set gives ", config.image_size, " x ", config.image_size, " (choose --image-size)");
        check(data_->channels() == config.channels && data_->image_size() == config.image_size, "train",
              "the data set gives ", data_->channels(), " x ", data_->image_size(), " x ", data_->image_size(),
              " images, the model reads ", config.channels, " x ", config.image_size, " x ", config.image_size);
    }

    // --device, or none given: the resumed run's, or the CPU.
    void choose_device(bool fresh) {
        if (!o_.device.empty()) return;  // parsed by run()
        o_.device = !fresh && !ck_device_.empty() ? ck_device_ : "cpu";
        try {
            device_ = parse_device(o_.device, "train");
        } catch (const Error& e) {
            throw Error(str(e.what(), "; the run in '", o_.resume, "' trained on ", o_.device,
                            ": continue it on another device with --device"));
        }
    }

    // Batches a step takes (FactorVAE: a second one for the discriminator), and --epochs as steps.
    int64_t batches_per_step() const { return run_->is_factor_vae() ? 2 : 1; }
    void count_steps() {
        const int64_t batches = data_->size() / (o_.batch * o_.ranks);
        check(batches >= batches_per_step(), "train", "'", o_.data, "' has ", data_->size(), " images, fewer than ",
              batches_per_step(), " batch(es) of ", o_.batch);
        if (o_.steps < 0) o_.steps = std::max<int64_t>(1, (o_.epochs ? o_.epochs : 1) * batches / batches_per_step());
    }

    // The resumed run's weights, optimizers' state, step and seconds.
    void restore_state() {
        models::load_weights(run_->model(), ck_);
        for (auto& [name, opt] : run_->optimizers()) opt->load_state_dict(ck_.optimizer, "optimizer." + name + ".");
        step_ = metadata_number(ck_.metadata, "step");
        seconds_before_ = ck_.metadata.count("seconds") ? metadata_number(ck_.metadata, "seconds") : 0.0;
    }

    // The run folder: metrics.csv (fresh, or the resumed run's rows up to its checkpoint) and config.json.
    void start_folder(const models::ModelConfig& config, bool fresh) {
        fs::create_directories(o_.out);
        if (!fresh) {
            read_metrics(run_folder_ / "metrics.csv");
        } else {
            write_file_atomically(metrics_path(), train::MetricsRow::header(config.latent, train::layer_names(run_->model())));
        }
        o_.image_size = config.image_size;
        o_.channels = config.channels;
        o_.latent = config.latent;
        write_file_atomically((fs::path(o_.out) / "config.json").string(),
                              nlohmann::ordered_json{{"model", to_json(config)}, {"train", to_json(o_)}}.dump(2) + "\n");
    }

    // The loader at this step's batch, and the items the pictures show at every checkpoint.
    void start_loader() {
        loader_ = std::make_unique<data::Loader>(
            data_->size(), o_.batch, o_.seed, [this](const std::vector<int64_t>& i) { return data_->images(i); },
            group_ ? group_->rank() : 0, o_.ranks);
        loader_->seek(step_ * batches_per_step());
        Generator pick(o_.seed + 1);
        std::vector<int64_t> items = random_permutation(data_->size(), pick);
        items.resize(static_cast<size_t>(std::min<int64_t>(32, data_->size())));
        picture_batch_ = data_->images(items);
    }

    // The model and its optimizers' settings from the flags, over the defaults of the network:
    // kim-mnih (dSprites' default) is the FactorVAE paper's setup, Adam(1e-4, 0.9, 0.999) for
    // every model and Adam(1e-4, 0.5, 0.9) for the discriminator; the seed's network trains at
    // 1e-3 unless it is a FactorVAE. A flag given always wins; one that means nothing for the
    // model is an error, not ignored.
    models::ModelConfig model_config() {
        const char* op = "train";
        check(o_.model == "vae" || o_.model == "beta-vae" || o_.model == "factor-vae", op,
              "--model must be vae, beta-vae or factor-vae, got '", o_.model, "'");
        if (o_.arch.empty()) o_.arch = o_.data == "dsprites" ? "kim-mnih" : "seed";
        check(o_.arch == "seed" || o_.arch == "kim-mnih", op, "--arch must be seed or kim-mnih, got '", o_.arch, "'");
        const bool factor = o_.model == "factor-vae", capacity = o_.capacity_max != 0;
        check(!o_.gamma || factor, op, "--gamma weighs FactorVAE's TC term; --model ", o_.model,
              " has none (the capacity objective's weight is --capacity-weight)");
        for (auto [flag, given] : {std::pair{"--d-lr", o_.d_lr.has_value()}, {"--d-betas", o_.d_betas.has_value()}})
            check(!given || factor, op, flag, " sets FactorVAE's discriminator's optimizer; --model ", o_.model,
                  " has no discriminator");
        check(!o_.capacity_weight || capacity, op, "--capacity-weight weighs the capacity objective, which needs "
              "--capacity-max > 0");
        check(!(capacity && o_.beta), op, "--beta and --capacity-max: the capacity objective replaces beta KL with "
              "w |KL - C|; give one of them");
        models::ModelConfig c;
        c.kind = o_.model;
        c.arch = o_.arch;
        c.latent = o_.latent;
        c.beta = o_.beta.value_or(o_.model == "beta-vae" ? 4.0 : 1.0);
        c.gamma = o_.gamma.value_or(factor ? 35.0 : 0.0);
        c.capacity_max = o_.capacity_max;
        c.capacity_steps = o_.capacity_steps;
        c.capacity_weight = capacity ? o_.capacity_weight.value_or(1000.0) : 0.0;
        check(o_.reduction == "sum" || o_.reduction == "mean", op, "--reduction must be sum or mean, got '",
              o_.reduction, "'");
        c.reduction = o_.reduction == "sum" ? Reduction::sum : Reduction::mean;
        const optim::AdamOptions paper = models::factor_vae_adam(), d = models::factor_vae_discriminator_adam();
        if (!o_.lr) o_.lr = o_.arch == "kim-mnih" || factor ? paper.lr : 1e-3;
        if (!o_.betas) o_.betas = Betas{paper.beta1, paper.beta2};
        if (factor && !o_.d_lr) o_.d_lr = d.lr;
        if (factor && !o_.d_betas) o_.d_betas = Betas{d.beta1, d.beta2};
        check_rates();
        return c;
    }

    // Weights finite and non-negative, learning rates positive and finite, betas in [0, 1).
    void check_rates() const {
        check_weight(o_.beta, "train", "--beta");
        check_weight(o_.gamma, "train", "--gamma");
        check_weight(o_.capacity_max, "train", "--capacity-max");
        check(!o_.capacity_weight || *o_.capacity_weight > 0, "train", "--capacity-weight must be positive, got ",
              *o_.capacity_weight);
        check(o_.capacity_max == 0 || o_.capacity_steps > 0, "train", "--capacity-steps must be positive with "
              "--capacity-max, got ", o_.capacity_steps);
        auto rate = [](const std::optional<double>& lr, const char* flag) {
            check(!lr || (std::isfinite(*lr) && *lr > 0), "train", flag, " must be a positive number, got ", *lr);
        };
        auto betas = [](const std::optional<Betas>& b, const char* flag) {
            check(!b || (b->first >= 0 && b->first < 1 && b->second >= 0 && b->second < 1), "train", flag,
                  " must be two numbers in [0, 1), got ", b->first, ",", b->second);
        };
        rate(o_.lr, "--lr");
        rate(o_.d_lr, "--d-lr");
        betas(o_.betas, "--betas");
        betas(o_.d_betas, "--d-betas");
    }

    // From a checkpoint's "train" metadata; --steps, --epochs, --out, --threads, --device,
    // --time-limit and --checkpoint-every given on this command line still count. The thread count
    // and the device matter: on the CPU the same seed and threads give the same sums, bit for bit,
    // and the GPU adds in other orders.
    void restore_options(const nlohmann::json& j) {
        o_.model = j.at("model");
        o_.data = j.at("data");
        // The step's batch stays the run's: shared among this job's processes as evenly as it was.
        const int64_t ranks = j.value("ranks", 1), batch = j.at("batch").get<int64_t>() * ranks;
        check(batch % o_.ranks == 0, "train", "the run's steps take ", batch, " images, which ", o_.ranks,
              " processes cannot share evenly; resume it with a number of processes that divides ", batch);
        o_.batch = batch / o_.ranks;
        o_.seed = j.at("seed");
        o_.lr = j.at("lr").get<double>();
        // Runs from before these settings trained with the paper's betas and one learning rate.
        const optim::AdamOptions paper = models::factor_vae_adam(), d = models::factor_vae_discriminator_adam();
        o_.betas = j.value("betas", Betas{paper.beta1, paper.beta2});
        if (o_.model == "factor-vae") {
            o_.d_lr = j.value("d_lr", *o_.lr);
            o_.d_betas = j.value("d_betas", Betas{d.beta1, d.beta2});
        }
        o_.log_every = j.at("log_every");
        if (o_.steps < 0 && o_.epochs == 0) o_.steps = j.at("steps");
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
        const std::vector<std::string> layers = train::layer_names(run_->model());
        std::string header, line, kept = train::MetricsRow::header(run_->model().config.latent, layers);
        std::getline(in, header);
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            train::MetricsRow r;
            try {
                r = train::MetricsRow::parse(header, line);
            } catch (const Error&) {
                break;
            }
            r.kl_per_latent.resize(static_cast<size_t>(run_->model().config.latent), NAN);  // a run from before kl_j
            r.gradient_norms.resize(layers.size(), NAN);  // or before grad.<layer>
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
        const bool w = writer();
        std::ofstream metrics;
        if (w) metrics.open(metrics_path(), std::ios::app);
        start_ = std::chrono::steady_clock::now();
        Progress progress(step_, o_.steps, o_.batch * o_.ranks, o_.time_limit);
        if (w)
            std::fprintf(stderr, "elbo: training %s on %s (%lld images of %lldx%lldx%lld) for %lld steps into %s%s\n",
                         run_->model().config.kind.c_str(), o_.data.c_str(), static_cast<long long>(data_->size()),
                         static_cast<long long>(data_->channels()), static_cast<long long>(data_->image_size()),
                         static_cast<long long>(data_->image_size()), static_cast<long long>(o_.steps), o_.out.c_str(),
                         group_ ? str(", ", o_.ranks, " processes of ", o_.batch, " images a step").c_str() : "");
        while (step_ < o_.steps) {
            const train::StepTerms l = train_step();
            for (const std::string& warning : health_.update(step_ + 1, l)) {
                if (!w) continue;
                progress.interrupt();
                std::fprintf(stderr, "elbo: warning: %s\n", warning.c_str());
            }
            train::MetricsRow row = train::MetricsRow::of(l, step_ + 1, *o_.lr, seconds(), health_.active_units());
            if (!std::isfinite(row.loss) || !std::isfinite(row.discriminator)) {  // every process sees it
                if (!w) return 1;
                progress.interrupt();
                std::fprintf(stderr,
                             "elbo: train: the loss is %g at step %lld (recon %g, kl %g, discriminator %g); stopping. "
                             "The last good checkpoint is %s.\n",
                             row.loss, static_cast<long long>(step_), row.recon, row.kl, row.discriminator,
                             fs::exists(checkpoint_path()) ? checkpoint_path().c_str() : "none (none was written yet)");
                return 1;
            }
            ++step_;
            if (w && (step_ % o_.log_every == 0 || step_ == o_.steps)) {
                rows_.push_back(row);
                metrics << row.csv();
                metrics.flush();
            }
            char terms[160];
            std::snprintf(terms, sizeof terms, "loss %.4g  recon %.4g  kl %.4g%s", row.loss, row.recon, row.kl,
                          run_->is_factor_vae() ? str("  tc ", row.tc, "  D ", row.discriminator).c_str() : "");
            if (w) progress.update(step_, terms);
            if (shadow_) {
                progress.interrupt();
                const bool go_on = report_shadow(*shadow_);
                shadow_.reset();
                if (!go_on) {
                    save();
                    return 1;
                }
            }
            // Over a group, the processes stop together: when any of them is interrupted or out of time.
            double stop[2] = {static_cast<double>(interrupted),
                              o_.time_limit > 0 && seconds() - seconds_before_ >= o_.time_limit ? 1.0 : 0.0};
            if (group_) group_->sum(stop, 2);
            const bool stop_now = stop[0] > 0 || stop[1] > 0;
            if (step_ % o_.checkpoint_every == 0 || step_ == o_.steps || stop_now) save();
            if (stop_now) {
                if (w) {
                    progress.interrupt();
                    std::fprintf(stderr,
                                 "elbo: %s at step %lld; checkpoint written. Continue with: elbo train --resume %s\n",
                                 stop[0] > 0 ? "interrupted" : "time limit reached", static_cast<long long>(step_),
                                 checkpoint_path().c_str());
                }
                return stop[0] > 0 ? 130 : 0;
            }
        }
        if (step_ == 0) save();  // --steps 0: the initial weights, for another program to start from
        if (w)
            std::fprintf(stderr, "elbo: done. %s holds checkpoint.safetensors, metrics.csv, loss.svg, "
                         "reconstructions.png, samples.png and traversals.png\n", o_.out.c_str());
        return 0;
    }

    // One step on the next batch (and, for FactorVAE, the one after it), with the step's own draws.
    train::StepTerms train_step() {
        const data::Batch batch = loader_->next();
        const Tensor<float> other = run_->is_factor_vae() ? loader_->next().images : Tensor<float>();
        const StepDraws draws{o_.seed, step_};
        if (o_.shadow == 0 || (step_ + 1) % o_.shadow != 0) return run_->step(batch.images, other, draws, group_);
        auto [terms, report] = run_->shadow_step(batch.images, other, draws, o_.shadow_tolerance);
        report.step = step_ + 1;  // counted as metrics.csv counts
        shadow_ = std::move(report);
        return terms;
    }

    // Prints a shadow step's comparison; at a difference past the tolerance, writes its two tensors
    // to the run folder. False when the run stops there (--shadow-stop).
    bool report_shadow(const train::ShadowReport& r) {
        std::fprintf(stderr, "elbo: %s\n", r.summary().c_str());
        if (r.ok()) return true;
        const fs::path file = fs::path(o_.out) / str("shadow-step-", r.step, ".safetensors");
        const train::ShadowDifference& d = *r.first;
        if (r.first_value.numel() > 0)
            save_safetensors<double>(file.string(), {{"run", r.first_value}, {"double", r.first_reference}},
                                     {{"step", std::to_string(r.step)}, {"pass", d.pass}, {"op", d.op},
                                      {"what", d.what}, {"index", std::to_string(d.index)},
                                      {"difference", str(d.difference)}, {"tolerance", str(r.tolerance)}});
        std::fprintf(stderr, "elbo: shadow: %s%s\n",
                     r.first_value.numel() > 0 ? str("both tensors are in ", file.string(), "; ").c_str() : "",
                     o_.shadow_stop ? "stopping (--shadow-stop)" : "going on");
        return !o_.shadow_stop;
    }

    // The checkpoint, the loss plot and the pictures.
    void save() {
        for (auto& [name, p] : run_->model().named_parameters())
            for (float v : p.value().to(Device::cpu))
                check(std::isfinite(v), "train", "parameter '", name, "' is not finite at step ", step_,
                      "; stopping without overwriting the last checkpoint");
        check_same_parameters();
        if (!writer()) return;
        std::vector<std::pair<std::string, const optim::Optimizer<float>*>> optimizers;
        for (auto& [name, opt] : run_->optimizers()) optimizers.emplace_back(name, opt);
        char elapsed[32];
        std::snprintf(elapsed, sizeof elapsed, "%.3f", seconds());
        models::write_checkpoint<float>(checkpoint_path(), run_->model(), optimizers,
                                        {{"step", std::to_string(step_)}, {"seconds", elapsed},
                                         {"train", to_json(o_).dump()}, {"rng", "philox4x32-10"},
                                         {"elbo_commit", o_.commit}});
        write_pictures();
    }

    void write_pictures() {
        const fs::path out(o_.out);
        std::vector<double> steps;
        std::vector<Series> series(3), health(2), gradients(1);
        series[0].name = "loss", series[1].name = "recon", series[2].name = "kl";
        health[0].name = "active units", health[1].name = "KL >= 0.01 nats";
        gradients[0].name = "the VAE's gradient norm";
        for (const train::MetricsRow& r : rows_) {
            steps.push_back(static_cast<double>(r.step));
            series[0].y.push_back(r.loss);
            series[1].y.push_back(r.recon);
            series[2].y.push_back(r.kl);
            health[0].y.push_back(r.active_units);
            health[1].y.push_back(static_cast<double>(
                std::count_if(r.kl_per_latent.begin(), r.kl_per_latent.end(), [](double kl) { return kl >= 0.01; })));
            gradients[0].y.push_back(r.grad_norm);
        }
        write_file_atomically((out / "loss.svg").string(), loss_plot_svg(steps, series, run_->model().config.kind + " on " +
                                                                         o_.data, health, gradients));
        write_png((out / "reconstructions.png").string(), reconstruction_grid(run_->model(), picture_batch_.slice(0, std::min<int64_t>(16, picture_batch_.size(0)))));
        write_png((out / "samples.png").string(), sample_grid(run_->model(), 64, o_.seed));
        const std::vector<int64_t> latents = latents_by_kl(run_->model(), picture_batch_, 10);
        write_png((out / "traversals.png").string(),
                  traversal_grid(run_->model(), posterior_mean(run_->model(), picture_batch_.slice(0, 1)), latents));
    }

    TrainOptions o_;
    train::Group* group_ = nullptr;
    std::function<train::Group*()> on_gpu_;
    Device device_ = Device::cpu;
    std::string ck_device_;  // the device the resumed run trained on
    models::Checkpoint<float> ck_;
    fs::path run_folder_;  // the resumed checkpoint's folder
    std::unique_ptr<data::Dataset> data_;
    std::unique_ptr<TrainedModel> run_;
    std::unique_ptr<data::Loader> loader_;
    Tensor<float> picture_batch_;
    std::vector<train::MetricsRow> rows_;
    train::HealthMonitor health_;
    std::optional<train::ShadowReport> shadow_;  // the last step's, when it was shadowed
    int64_t step_ = 0;
    double seconds_before_ = 0;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace elbo::cli
