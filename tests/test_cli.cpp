// The `elbo` program, run as a user runs it: tiny training runs and every subcommand, the files
// they leave (PNGs decoded with stb_image, JSON parsed, CSV read), resuming, Ctrl-C, a diverging
// run, a killed run, and the errors bad flags get. The runs use dSprites at 16 x 16 to stay fast.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <stb/stb_image.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "elbo/elbo.hpp"
#include "helpers.hpp"

namespace fs = std::filesystem;
namespace train = elbo::train;
namespace models = elbo::models;
using elbo::testing::read_text;
using elbo::testing::Result;
using elbo::testing::run_elbo;
using elbo::testing::scratch_dir;
extern char** environ;

namespace {

const std::string tiny = " --data dsprites --image-size 16 --batch 8 --latent 3 --threads 1";

// Starts `elbo ARGS` (split at spaces) in the background, its stderr to `dir`/stderr.
// Starts `program ARGS` (words split at spaces), its stderr into dir/stderr; returns its pid.
pid_t start_program(const std::string& program, const std::string& args, const fs::path& dir) {
    std::vector<std::string> words{program};
    std::istringstream in(args);
    for (std::string w; in >> w;) words.push_back(w);
    std::vector<char*> argv;
    for (auto& w : words) argv.push_back(w.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 2, (dir / "stderr").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = 0;
    REQUIRE(posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ) == 0);
    posix_spawn_file_actions_destroy(&actions);
    return pid;
}

// Starts `elbo ARGS`.
pid_t start(const std::string& args, const fs::path& dir) { return start_program(ELBO_CLI, args, dir); }

int wait_for(pid_t pid) {
    int s = 0;
    waitpid(pid, &s, 0);
    return WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
}

// Waits (up to a minute) until `file` exists and has at least `lines` lines.
void wait_for_lines(const fs::path& file, size_t lines) {
    for (int i = 0; i < 600; ++i) {
        const std::string text = read_text(file);
        if (static_cast<size_t>(std::count(text.begin(), text.end(), '\n')) >= lines) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL("timed out waiting for " << file);
}

// Width and height of a PNG file, checked to decode.
std::pair<int, int> png_size(const fs::path& p) {
    int w = 0, h = 0, c = 0;
    unsigned char* pixels = stbi_load(p.c_str(), &w, &h, &c, 0);
    INFO(p.string());
    REQUIRE(pixels != nullptr);
    stbi_image_free(pixels);
    return {w, h};
}

// metrics.csv without its seconds column.
// A checkpoint's numbers, byte for byte: its tensors' bytes and header entries, and its metadata
// but for the wall-clock seconds and the thread count, which a run's numbers do not depend on.
std::string checkpoint_numbers(const fs::path& file) {
    const std::string bytes = read_text(file);
    REQUIRE(bytes.size() >= 8);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    REQUIRE(8 + n <= bytes.size());
    nlohmann::json header = nlohmann::json::parse(bytes.substr(8, n));
    nlohmann::json& meta = header["__metadata__"];
    meta.erase("seconds");
    nlohmann::json train = nlohmann::json::parse(meta["train"].get<std::string>());
    train.erase("threads");
    meta["train"] = train.dump();
    return header.dump() + bytes.substr(8 + n);
}

std::vector<std::string> metrics_without_time(const fs::path& run) {
    std::vector<std::string> rows;
    std::istringstream in(read_text(run / "metrics.csv"));
    size_t seconds = std::string::npos;  // the column's index
    for (std::string line; std::getline(in, line);) {
        std::vector<std::string> cells;
        std::istringstream cut(line);
        for (std::string cell; std::getline(cut, cell, ',');) cells.push_back(cell);
        if (seconds == std::string::npos) seconds = std::find(cells.begin(), cells.end(), "seconds") - cells.begin();
        if (seconds < cells.size()) cells.erase(cells.begin() + static_cast<std::ptrdiff_t>(seconds));
        std::string kept;
        for (const std::string& cell : cells) kept += (kept.empty() ? "" : ",") + cell;
        rows.push_back(kept);
    }
    return rows;
}

bool has_temporary_files(const fs::path& dir) {
    for (auto& entry : fs::directory_iterator(dir))
        if (entry.path().filename().string().find(".tmp-") != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_SUITE("cli") {

TEST_CASE("elbo train leaves config, metrics, loss plot, pictures and a checkpoint") {
    const fs::path dir = scratch_dir("cli-train"), run = dir / "run";
    const Result r = run_elbo("train --model beta-vae --steps 6 --checkpoint-every 3 --log-every 2 --out " + run.string() + tiny, dir);
    INFO(r.err);
    REQUIRE(r.status == 0);
    CHECK(r.err.find("6/6 100%") != std::string::npos);

    const nlohmann::json config = nlohmann::json::parse(read_text(run / "config.json"));
    CHECK(config["model"]["kind"] == "beta-vae");
    CHECK(config["model"]["beta"] == 4.0);
    CHECK(config["model"]["image_size"] == 16);
    CHECK(config["train"]["steps"] == 6);
    CHECK(config["train"]["device"] == "cpu");

    const std::vector<std::string> rows = metrics_without_time(run);
    REQUIRE(rows.size() == 4);
    CHECK(rows[0] == "step,loss,recon,kl,tc,discriminator_loss,d_accuracy_real,d_accuracy_permuted,lr,active_units,"
                     "saturated,saturated_wrong,grad_norm,kl_0,kl_1,kl_2,grad.encoder.conv1,grad.encoder.conv2,"
                     "grad.encoder.conv3,grad.encoder.conv4,grad.encoder.fc,grad.encoder.fc_mu,grad.encoder.fc_logvar,"
                     "grad.decoder.fc1,grad.decoder.fc2,grad.decoder.deconv1,grad.decoder.deconv2,"
                     "grad.decoder.deconv3,grad.decoder.deconv4");
    {
        // The health columns: the layers' norms make up the whole, the fractions are fractions.
        std::istringstream metrics(read_text(run / "metrics.csv"));
        std::string header, line;
        std::getline(metrics, header);
        std::getline(metrics, line);
        const train::MetricsRow row = train::MetricsRow::parse(header, line);
        REQUIRE(row.gradient_norms.size() == 13);
        double squares = 0;
        for (double g : row.gradient_norms) {
            CHECK(g > 0);
            squares += g * g;
        }
        CHECK(row.grad_norm == doctest::Approx(std::sqrt(squares)).epsilon(1e-4));
        CHECK(row.active_units >= 0);
        CHECK(row.active_units <= 3);
        CHECK(row.saturated >= row.saturated_wrong);
        CHECK(row.saturated_wrong >= 0);
        CHECK(row.saturated <= 1);
    }
    for (int i = 1; i <= 3; ++i) {
        double step = 0, loss = 0, recon = 0, kl = 0;
        REQUIRE(std::sscanf(rows[i].c_str(), "%lf,%lf,%lf,%lf", &step, &loss, &recon, &kl) == 4);
        CHECK(step == 2 * i);
        CHECK(loss == doctest::Approx(recon + 4 * kl).epsilon(1e-5));  // β = 4, per image
    }
    const std::string svg = read_text(run / "loss.svg");
    CHECK(svg.rfind("<svg", 0) == 0);
    CHECK(svg.find("</svg>") != std::string::npos);
    CHECK(svg.find("<svg y=\"800\"") != std::string::npos);  // the third panel, the gradient's
    CHECK(svg.find(">active units</text>") != std::string::npos);

    // elbo health reads the run back.
    const Result h = run_elbo("health --run " + run.string(), dir);
    INFO(h.err);
    REQUIRE(h.status == 0);
    CHECK(h.out.rfind(run.string() + ": beta-vae, kim-mnih network, D = 3; 6 steps in 3 rows (one per 2 steps)\n", 0) == 0);
    for (const char* part : {"\nloss    ", "\nlatents KL over the last 1 rows: 0:", "\nactive units (Var of E[z] > 0.01 over 50 steps): first ",
                             "\ngradient norm (the VAE's): median ", "\nmedian gradient norm per layer: encoder.conv1:",
                             "\ndecoder sure (|logit| > 15) of ", "\nwarnings (replayed over the logged rows): none\n"}) {
        INFO(part);
        CHECK(h.out.find(part) != std::string::npos);
    }

    // 16 x 16 images with 2 pixels of padding: 18 per cell, plus 2.
    CHECK(png_size(run / "reconstructions.png") == std::pair{8 * 18 + 2, 4 * 18 + 2});  // 16 items above their reconstructions
    CHECK(png_size(run / "samples.png") == std::pair{8 * 18 + 2, 8 * 18 + 2});          // 64 samples
    CHECK(png_size(run / "traversals.png") == std::pair{11 * 18 + 2, 3 * 18 + 2});      // 3 latents x 11 values
    CHECK(fs::file_size(run / "checkpoint.safetensors") > 1000);
    CHECK_FALSE(has_temporary_files(run));
    fs::remove_all(dir);
}

TEST_CASE("factor-vae on dsprites with no other flags is the FactorVAE paper's setup, its health logged") {
    const fs::path dir = scratch_dir("cli-paper"), run = dir / "run";
    const Result r = run_elbo("train --model factor-vae --data dsprites --steps 2 --log-every 1 --threads 1 --out " +
                                  run.string(), dir);
    INFO(r.err);
    REQUIRE(r.status == 0);
    const nlohmann::json config = nlohmann::json::parse(read_text(run / "config.json"));
    CHECK(config["model"]["arch"] == "kim-mnih");
    CHECK(config["model"]["image_size"] == 64);
    CHECK(config["model"]["latent"] == 10);
    CHECK(config["model"]["gamma"] == 35.0);
    CHECK(config["model"]["beta"] == 1.0);
    CHECK(config["model"]["discriminator_hidden"] == 1000);
    CHECK(config["model"]["discriminator_layers"] == 6);
    CHECK(config["train"]["batch"] == 64);
    CHECK(config["train"]["lr"] == 1e-4);
    CHECK(config["train"]["betas"] == nlohmann::json{0.9, 0.999});
    CHECK(config["train"]["d_lr"] == 1e-4);
    CHECK(config["train"]["d_betas"] == nlohmann::json{0.5, 0.9});
    const auto ck = models::read_checkpoint<float>((run / "checkpoint.safetensors").string());
    CHECK(ck.metadata.at("arch") == "kim-mnih");
    CHECK(ck.model.count("decoder.deconv4.weight"));

    // Each row: the discriminator's accuracies in [0, 1], and ten per-latent KLs summing to kl.
    std::istringstream metrics(read_text(run / "metrics.csv"));
    std::string header, line;
    std::getline(metrics, header);
    for (int rows = 0; std::getline(metrics, line); ++rows) {
        const train::MetricsRow row = train::MetricsRow::parse(header, line);
        CHECK(row.step == rows + 1);
        CHECK(row.accuracy_real >= 0);
        CHECK(row.accuracy_real <= 1);
        CHECK(row.accuracy_permuted >= 0);
        CHECK(row.accuracy_permuted <= 1);
        REQUIRE(row.kl_per_latent.size() == 10);
        double kl = 0;
        for (double k : row.kl_per_latent) kl += k;
        CHECK(kl == doctest::Approx(row.kl).epsilon(1e-4));
    }

    // A flag given wins over the paper's default, and is recorded.
    const Result given = run_elbo("train --model factor-vae --steps 1 --d-lr 3e-4 --d-betas 0.4,0.8 --betas 0.8,0.99 "
                                  "--gamma 10 --out " + (dir / "given").string() + tiny, dir);
    INFO(given.err);
    REQUIRE(given.status == 0);
    const nlohmann::json own = nlohmann::json::parse(read_text(dir / "given" / "config.json"));
    CHECK(own["train"]["d_lr"] == 3e-4);
    CHECK(own["train"]["d_betas"] == nlohmann::json{0.4, 0.8});
    CHECK(own["train"]["betas"] == nlohmann::json{0.8, 0.99});
    CHECK(own["model"]["gamma"] == 10.0);
    CHECK(own["model"]["arch"] == "kim-mnih");
    fs::remove_all(dir);
}

TEST_CASE("the health monitor warns once of a collapsed discriminator and of a negative TC estimate") {
    train::HealthMonitor monitor({.window = 5});
    auto losses = [](double tc, double real, double permuted) {
        train::StepTerms l;
        l.tc = tc, l.accuracy_real = real, l.accuracy_permuted = permuted;
        return l;
    };
    const train::StepTerms fine = losses(0.5, 0.7, 0.6), separating = losses(3.0, 1.0, 1.0),
                          constant = losses(0.1, 1.0, 0.0), negative = losses(-2.0, 0.5, 0.5);
    for (int step = 1; step <= 20; ++step) CHECK(monitor.update(step, fine).empty());
    for (int step = 21; step <= 24; ++step) CHECK(monitor.update(step, separating).empty());
    CHECK(monitor.update(25, fine).empty());  // the count starts again
    std::vector<std::string> all;
    for (int step = 26; step <= 40; ++step)
        for (const std::string& w : monitor.update(step, step < 29 ? separating : constant)) all.push_back(w);
    REQUIRE(all.size() == 1);  // once, though it lasted more than two windows
    CHECK(all[0].rfind("step 33: the discriminator has called every code the same for 5 steps", 0) == 0);
    for (int step = 41; step <= 50; ++step) CHECK(monitor.update(step, fine).empty());
    all.clear();
    for (int step = 51; step <= 60; ++step)
        for (const std::string& w : monitor.update(step, separating)) all.push_back(w);
    REQUIRE(all.size() == 1);  // the other collapse has its own warning
    CHECK(all[0].rfind("step 55: the discriminator has told every real code from every permuted one for 5 steps", 0) == 0);

    train::HealthMonitor tc({.window = 5});
    all.clear();
    for (int step = 1; step <= 400; ++step)
        for (const std::string& w : tc.update(step, step <= 10 ? fine : negative)) all.push_back(w);
    REQUIRE(all.size() == 1);
    CHECK(all[0].find("the TC estimate has averaged below zero for 5 steps") != std::string::npos);
}

TEST_CASE("the health monitor counts active units over its window and warns once of collapse, explosion, saturation") {
    // Three latents: 0 and 1 vary across images and carry KL; 2 sits at the prior.
    auto step_terms = [](double spread, double gradient, double wrong) {
        train::StepTerms l;
        l.kl_per_latent = {2.0, 1.5, 0.001};
        l.mu_mean = {0.0, 0.1, 0.0};
        l.mu_square = {spread * spread, 0.01 + 0.25, 1e-6};  // variances spread^2, 0.25 and 1e-6
        l.gradient_norms = {{"encoder.conv1", 3 * gradient}, {"decoder.fc", 4 * gradient}, {"discriminator.net.0", 1e6}};
        l.saturated = 0.5, l.saturated_wrong = wrong;
        return l;
    };
    CHECK(step_terms(0, 1, 0).vae_gradient_norm() == doctest::Approx(5.0));  // the discriminator's left out
    train::HealthMonitor monitor({.window = 30, .active_window = 10});
    std::vector<std::string> all;
    auto run = [&](int from, int to, const train::StepTerms& l) {
        for (int step = from; step <= to; ++step)
            for (const std::string& w : monitor.update(step, l)) all.push_back(w);
    };
    run(1, 10, step_terms(1.0, 1, 0));
    CHECK(monitor.active_units() == 2);
    run(11, 15, step_terms(0.05, 1, 0));  // latent 0's spread falls: half the window still has it
    CHECK(monitor.active_units() == 2);
    run(16, 20, step_terms(0.05, 1, 0));
    CHECK(monitor.active_units() == 1);
    CHECK(all.empty());
    // Latent 2 has been quiet since step 1, the others carrying 3.5 nats: collapse at step 30, once.
    run(21, 120, step_terms(0.05, 1, 0));
    REQUIRE(all.size() == 1);
    CHECK(all[0] == "step 30: latent 2 carried under 0.01 nats for 30 steps while the others carry 3.5: posterior "
                    "collapse (it is the prior, unused)");
    run(121, 121, step_terms(0.05, 1000, 0));  // 200 times the typical 5
    REQUIRE(all.size() == 2);
    CHECK(all[1].rfind("step 121: the gradient norm is 5000, 1000 times its typical 5: exploding gradients", 0) == 0);
    run(122, 130, step_terms(0.05, 1000, 0));
    CHECK(all.size() == 2);
    // Sure and wrong about 5% of the pixels: the average passes 1% within a few steps, the warning
    // comes `window` steps later.
    run(131, 250, step_terms(0.05, 1, 0.05));
    REQUIRE(all.size() == 3);
    CHECK(all[2].find("the decoder has been sure (|logit| > 15) and wrong about ") != std::string::npos);
    CHECK(all[2].find("% of the pixels: a saturated decoder") != std::string::npos);
    // A non-finite gradient norm is an explosion too (a fresh monitor: each warning comes once).
    train::HealthMonitor fresh;
    const std::vector<std::string> w = fresh.update(1, step_terms(1, NAN, 0));
    REQUIRE(w.size() == 1);
    CHECK(w[0].rfind("step 1: the gradient norm is nan: exploding gradients", 0) == 0);
}

TEST_CASE("eval, sample, reconstruct and traverse read a checkpoint and write what they say") {
    const fs::path dir = scratch_dir("cli-subcommands"), run = dir / "run";
    REQUIRE(run_elbo("train --steps 4 --out " + run.string() + tiny, dir).status == 0);
    const std::string ck = " --checkpoint " + (run / "checkpoint.safetensors").string();

    Result r = run_elbo("eval" + ck + " --images 64 --iw-images 8 --iw-samples 5 --train-votes 20 --eval-votes 20 "
                    "--global-images 200 --mig-images 200 --votes-per-sample 16 --prune-below 0.01 --mig-bins 7", dir);
    INFO(r.err);
    REQUIRE(r.status == 0);
    const nlohmann::json e = nlohmann::json::parse(r.out);
    CHECK(e["data"] == "dsprites");  // the data set the checkpoint was trained on
    CHECK(e["images"] == 64);
    CHECK(e["elbo"].get<double>() == doctest::Approx(-(e["recon"].get<double>() + e["kl"].get<double>())));
    CHECK(e["nll_iw"].get<double>() > 0);
    CHECK(e["latent"] == 3);
    for (const char* key : {"factorvae_metric", "mig"}) {
        INFO(key);
        REQUIRE(e.contains(key));
        CHECK(e[key].get<double>() >= 0.0);
        CHECK(e[key].get<double>() <= 1.0);
    }
    // Every setting the numbers depend on, as given.
    CHECK(e["arch"] == "kim-mnih");
    CHECK(e["settings"]["iw_samples"] == 5);
    CHECK(e["settings"]["factorvae_metric"] == nlohmann::json{{"votes_per_sample", 16}, {"train_votes", 20},
                                                              {"eval_votes", 20}, {"global_images", 200},
                                                              {"prune_below", 0.01}});
    CHECK(e["settings"]["mig"] == nlohmann::json{{"images", 200}, {"bins", 7}});
    // How long each part took.
    for (const char* part : {"likelihood", "factorvae_metric", "mig"}) {
        INFO(part);
        REQUIRE(e["seconds"].contains(part));
        CHECK(e["seconds"][part].get<double>() >= 0.0);
    }

    REQUIRE(run_elbo("sample" + ck + " --count 4 --out " + (dir / "s.png").string(), dir).status == 0);
    CHECK(png_size(dir / "s.png") == std::pair{2 * 18 + 2, 2 * 18 + 2});
    REQUIRE(run_elbo("reconstruct" + ck + " --index 0 1 2 --out " + (dir / "r.png").string(), dir).status == 0);
    CHECK(png_size(dir / "r.png") == std::pair{3 * 18 + 2, 2 * 18 + 2});
    r = run_elbo("traverse" + ck + " --index 5 --steps 5 --rows 2 --out " + (dir / "t.png").string(), dir);
    REQUIRE(r.status == 0);
    CHECK(png_size(dir / "t.png") == std::pair{5 * 18 + 2, 2 * 18 + 2});
    CHECK(nlohmann::json::parse(r.out)["latents"].size() == 2);
    fs::remove_all(dir);
}

TEST_CASE("elbo gradcheck checks a checkpoint's and a random model's every gradient, and says which failed") {
    const fs::path dir = scratch_dir("cli-gradcheck"), run = dir / "run";
    REQUIRE(run_elbo("train --model factor-vae --steps 3 --out " + run.string() + tiny, dir).status == 0);
    Result r = run_elbo("gradcheck --threads 1 --coordinates 3 --checkpoint " + (run / "checkpoint.safetensors").string(), dir);
    INFO(r.out, r.err);
    CHECK(r.status == 0);
    CHECK(r.out.rfind("gradcheck: factor-vae, kim-mnih network, D = 3, on 4 images of dsprites; h = 1e-06, tolerance "
                      "1e-06, 3 coordinates per tensor\n", 0) == 0);
    // The VAE's objective over all 40 tensors (γ TC reaches the discriminator's 14), the discriminator's over its 14.
    CHECK(r.out.find("\ngradcheck passed: 54 tensors, max error ") != std::string::npos);
    CHECK(r.out.find("\nvae  encoder.conv1.weight [32,1,4,4]  3 coordinates  max error ") != std::string::npos);
    CHECK(r.out.find("\ndiscriminator  discriminator.net.12.bias [2]  2 coordinates  max error ") != std::string::npos);

    r = run_elbo("gradcheck --threads 1 --model beta-vae --arch seed --image-size 16 --latent 2 --capacity-max 5 "
                 "--training-step 50000", dir);
    CHECK(r.status == 0);
    CHECK(r.out.rfind("gradcheck: beta-vae, seed network, D = 2, on 4 images of uniform noise;", 0) == 0);
    CHECK(r.out.find("\ngradcheck passed: 18 tensors") != std::string::npos);
    // A step so large that the differences cross ReLU's kinks and see curvature: a failure, and the
    // exit status says so.
    r = run_elbo("gradcheck --threads 1 --arch seed --image-size 16 --latent 2 --step 0.05", dir);
    CHECK(r.status == 1);
    CHECK(r.out.find("FAILED at ") != std::string::npos);
    CHECK(r.out.find("\ngradcheck FAILED: 18 tensors") != std::string::npos);
    fs::remove_all(dir);
}

TEST_CASE("export writes the weights alone with their metadata; they evaluate as the run did and do not resume") {
    const fs::path dir = scratch_dir("cli-export"), run = dir / "run", vae = dir / "vae";
    REQUIRE(run_elbo("train --model factor-vae --steps 2 --out " + run.string() + tiny, dir).status == 0);
    const std::string ck = (run / "checkpoint.safetensors").string(), out = (dir / "weights.safetensors").string();
    Result r = run_elbo("export --checkpoint " + ck + " --out " + out +
                            " --without-discriminator --meta commit=abc123 --meta note=a=b",
                        dir);
    INFO(r.err);
    REQUIRE(r.status == 0);

    const auto full = models::read_checkpoint<float>(ck), weights = models::read_checkpoint<float>(out);
    CHECK(!full.optimizer.empty());
    CHECK(weights.optimizer.empty());
    CHECK(models::has_discriminator(full.model));
    CHECK_FALSE(models::has_discriminator(weights.model));
    size_t kept = 0;
    for (const auto& [name, t] : full.model) {
        if (name.rfind(models::discriminator_prefix, 0) == 0) continue;
        INFO(name);
        REQUIRE(weights.model.count(name));
        const elbo::Tensor<float>& w = weights.model.at(name);
        CHECK(w.shape() == t.shape());
        CHECK(std::equal(t.data(), t.data() + t.numel(), w.data()));
        ++kept;
    }
    CHECK(weights.model.size() == kept);
    CHECK(weights.config.is_factor_vae());
    CHECK(weights.metadata.at("gamma") == full.metadata.at("gamma"));
    CHECK(weights.metadata.at("step") == full.metadata.at("step"));
    CHECK(weights.metadata.at("train") == full.metadata.at("train"));
    CHECK(weights.metadata.at("commit") == "abc123");
    CHECK(weights.metadata.at("note") == "a=b");

    // The same numbers from the weights as from the run's checkpoint, which holds the discriminator.
    const std::string flags = " --images 32 --iw-images 4 --iw-samples 3 --train-votes 10 --eval-votes 10 "
                              "--global-images 100 --mig-images 100 --votes-per-sample 8 --prune-below 0.01";
    const Result a = run_elbo("eval --checkpoint " + ck + flags, dir), b = run_elbo("eval --checkpoint " + out + flags, dir);
    REQUIRE(a.status == 0);
    REQUIRE(b.status == 0);
    for (const char* key : {"elbo", "nll_iw", "factorvae_metric", "mig"}) {
        INFO(key);
        CHECK(nlohmann::json::parse(a.out)[key] == nlohmann::json::parse(b.out)[key]);
    }
    REQUIRE(run_elbo("traverse --checkpoint " + out + " --out " + (dir / "t.png").string(), dir).status == 0);

    REQUIRE(run_elbo("train --steps 2 --out " + vae.string() + tiny, dir).status == 0);
    const std::string vae_ck = (vae / "checkpoint.safetensors").string();
    const std::pair<std::string, std::string> cases[] = {
        {"train --resume " + out + " --steps 4",
         "elbo: train: '" + out + "' holds weights alone (elbo export), without its optimizers' state"},
        {"export --checkpoint " + ck + " --out " + out + " --meta commit", "elbo: export: --meta takes KEY=VALUE, got 'commit'"},
        {"export --checkpoint " + ck + " --out " + out + " --meta step=9",
         "elbo: export: metadata 'step' comes from the checkpoint and is kept as it is"},
        {"export --checkpoint " + ck + " --out " + out + " --meta a=1 --meta a=2", "elbo: export: --meta gives 'a' twice"},
        {"export --checkpoint " + vae_ck + " --out " + out + " --without-discriminator",
         "elbo: export: --without-discriminator: '" + vae_ck + "' holds a vae, which has none"},
    };
    for (const auto& [command, message] : cases) {
        INFO(command);
        const Result e = run_elbo(command, dir);
        CHECK(e.status == 1);
        CHECK(e.err.rfind(message, 0) == 0);
    }
    // A refused export leaves the earlier file as it was.
    CHECK(models::read_checkpoint<float>(out).metadata.at("commit") == "abc123");
}

TEST_CASE("a run written before arch existed resumes as seed-v0, with the optimizers it trained with") {
    // What elbo wrote then: a FactorVAE of the seed's network with a ReLU after the decoder's fc and
    // a five-layer discriminator, metadata without arch, capacity_weight or discriminator_layers,
    // training settings without betas or the discriminator's own rate, and an eight-column metrics.csv.
    const fs::path dir = scratch_dir("cli-old-run"), run = dir / "run";
    fs::create_directories(run);
    models::ModelConfig c;
    c.kind = "factor-vae", c.arch = "seed-v0", c.channels = 1, c.image_size = 16, c.latent = 3, c.gamma = 35;
    c.discriminator_hidden = 16, c.discriminator_layers = 5;
    elbo::Generator gen(3);
    models::FactorVAE<float> model(c, gen);
    elbo::optim::Adam<float> vae(model.vae_parameters(), {.lr = 1e-4});
    elbo::optim::Adam<float> discriminator(model.discriminator_parameters(), {.lr = 1e-4, .beta1 = 0.5, .beta2 = 0.9});
    const elbo::Tensor<float> x = elbo::Tensor<float>(elbo::Shape{8, 1, 16, 16}).uniform_(gen);
    train::step(model, vae, discriminator, x, x, elbo::StepDraws{3, 0});
    const std::string ck = (run / "checkpoint.safetensors").string();
    const std::string train = R"({"model":"factor-vae","data":"dsprites","latent":3,"image_size":16,"channels":1,)"
                              R"("batch":8,"steps":2,"lr":0.0001,"seed":0,"checkpoint_every":1,"log_every":1,)"
                              R"("threads":1,"device":"cpu"})";
    models::write_checkpoint<float>(ck, model, {{"vae", &vae}, {"discriminator", &discriminator}},
                                    {{"step", "2"}, {"seconds", "1.5"}, {"train", train}});
    auto file = elbo::load_safetensors<float>(ck);
    for (const char* key : {"arch", "capacity_weight", "discriminator_layers"}) file.metadata.erase(key);
    elbo::save_safetensors<float>(ck, file.tensors, file.metadata);
    std::ofstream(run / "metrics.csv") << "step,loss,recon,kl,tc,discriminator_loss,lr,seconds\n"
                                          "1,180,170,10,0.1,0.69,0.0001,0.7\n2,179,169,10,0.1,0.69,0.0001,1.5\n";

    const Result r = run_elbo("train --resume " + ck + " --steps 4", dir);
    INFO(r.err);
    REQUIRE(r.status == 0);
    // Without rng metadata it came from an elbo of xoshiro256** streams: the steps on differ.
    CHECK(r.err.find("comes from an elbo whose draws were xoshiro256** streams; from here on they are Philox's "
                     "(docs/tools.md), so the steps after 2 differ from the old elbo's") != std::string::npos);
    CHECK(models::read_checkpoint<float>(ck).metadata.at("rng") == "philox4x32-10");
    // and the commit of the elbo that wrote it, as `elbo --version` says it.
    const std::string commit = models::read_checkpoint<float>(ck).metadata.at("elbo_commit");
    CHECK(!commit.empty());
    const Result version = run_elbo("--version", dir);
    CHECK(version.out.find("(commit " + commit + ";") != std::string::npos);
    const nlohmann::json config = nlohmann::json::parse(read_text(run / "config.json"));
    CHECK(config["model"]["arch"] == "seed-v0");
    CHECK(config["model"]["discriminator_layers"] == 5);
    CHECK(config["model"]["gamma"] == 35.0);
    CHECK(config["train"]["betas"] == nlohmann::json{0.9, 0.999});
    CHECK(config["train"]["d_lr"] == 1e-4);
    CHECK(config["train"]["d_betas"] == nlohmann::json{0.5, 0.9});
    CHECK(models::read_checkpoint<float>(ck).metadata.at("arch") == "seed-v0");

    std::istringstream metrics(read_text(run / "metrics.csv"));
    std::string header, line;
    std::getline(metrics, header);
    const std::string columns = train::MetricsRow::header(3, {});
    CHECK(header.rfind(columns.substr(0, columns.size() - 1), 0) == 0);
    std::vector<train::MetricsRow> rows;
    while (std::getline(metrics, line)) rows.push_back(train::MetricsRow::parse(header, line));
    REQUIRE(rows.size() == 4);
    CHECK(rows[1].loss == 179);                       // the old rows, kept
    CHECK(std::isnan(rows[1].accuracy_real));         // with what they never logged unknown
    CHECK(std::isnan(rows[1].kl_per_latent[0]));
    CHECK(rows[3].step == 4);
    CHECK(rows[3].accuracy_real >= 0);                // and the new rows whole
    CHECK(std::isfinite(rows[3].kl_per_latent[2]));
    fs::remove_all(dir);
}

TEST_CASE("elbo plot draws lines, points and error bars") {
    const fs::path dir = scratch_dir("cli-plot");
    std::ofstream(dir / "chart.json") << R"({"title": "metric", "x_label": "step", "y_label": "score", "series": [
        {"name": "curve", "x": [0, 5000, 10000], "y": [0.5, 0.6, 0.7], "y_error": [0.01, 0.02, 0.03], "style": "line+points"},
        {"name": "runs", "x": [10000], "y": [0.65], "style": "points", "colour": "#000000"}]})";
    const Result r = run_elbo("plot --in " + (dir / "chart.json").string() + " --out " + (dir / "chart.svg").string(), dir);
    INFO(r.err);
    REQUIRE(r.status == 0);
    const std::string svg = read_text(dir / "chart.svg");
    auto count = [&](const std::string& what) {
        size_t n = 0;
        for (size_t at = svg.find(what); at != std::string::npos; at = svg.find(what, at + 1)) ++n;
        return n;
    };
    CHECK(count("<polyline") == 1);  // the one line
    CHECK(count("<circle") == 4);    // three points on it, one alone
    CHECK(count("fill=\"#000000\"") == 2);  // the lone point and its legend, in their own colour
    CHECK(svg.find(">10000<") != std::string::npos);  // ticks in full, not 1e+04
    CHECK(svg.find(">curve<") != std::string::npos);
    fs::remove_all(dir);
}

TEST_CASE("a run is the same, byte for byte, with 1, 2 and 3 threads: every model, checkpoint and metrics") {
    // 64 x 64 dSprites at batch 8, so that every kernel's loop is long enough to be shared among
    // threads (the convolutions, GEMMs, losses, sums and Adam); 3 threads oversubscribe two cores.
    const fs::path dir = scratch_dir("cli-threads");
    for (const std::string model : {"vae", "beta-vae --capacity-max 5 --capacity-steps 10", "factor-vae"}) {
        INFO(model);
        std::string first, first_metrics;
        for (int threads : {1, 2, 3}) {
            const fs::path run = dir / (model.substr(0, model.find(' ')) + "-" + std::to_string(threads));
            const Result r = run_elbo("train --model " + model + " --data dsprites --batch 8 --latent 4 --steps 24 "
                                      "--log-every 4 --threads " + std::to_string(threads) + " --out " + run.string(), dir);
            INFO(threads, " threads: ", r.err);
            REQUIRE(r.status == 0);
            const std::string numbers = checkpoint_numbers(run / "checkpoint.safetensors");
            std::string metrics;
            for (const std::string& row : metrics_without_time(run)) metrics += row + "\n";
            if (threads == 1) {
                first = numbers, first_metrics = metrics;
                continue;
            }
            const bool same_checkpoint = numbers == first, same_metrics = metrics == first_metrics;
            CHECK(same_checkpoint);
            CHECK(same_metrics);
        }
    }
    fs::remove_all(dir);
}

TEST_CASE("--shadow takes every N-th step again in double and compares it op by op, leaving the run as it was") {
    const fs::path dir = scratch_dir("cli-shadow");
    for (const std::string model : {"vae", "factor-vae"}) {
        INFO(model);
        const std::string flags = " --model " + model + " --steps 6 --log-every 1" + tiny;
        REQUIRE(run_elbo("train --out " + (dir / "plain").string() + flags, dir).status == 0);
        const Result r = run_elbo("train --shadow 3 --out " + (dir / "shadowed").string() + flags, dir);
        INFO(r.err);
        REQUIRE(r.status == 0);
        // Steps 3 and 6 shadowed and within the default tolerance; the run's numbers untouched.
        for (const char* step : {"shadow step 3: ", "shadow step 6: "}) {
            const size_t at = r.err.find(step);
            REQUIRE(at != std::string::npos);
            const std::string line = r.err.substr(at, r.err.find('\n', at) - at);
            INFO(line);
            CHECK(line.find(" parameters agree with double within 0.001; largest: output of ") != std::string::npos);
        }
        CHECK(metrics_without_time(dir / "shadowed") == metrics_without_time(dir / "plain"));
        CHECK(checkpoint_numbers(dir / "shadowed" / "checkpoint.safetensors") ==
              checkpoint_numbers(dir / "plain" / "checkpoint.safetensors"));
        fs::remove_all(dir / "plain");
        fs::remove_all(dir / "shadowed");
    }
    // A tolerance below float's rounding: the first op already differs. --shadow-stop stops there,
    // with a checkpoint, and the op's two tensors are in the run folder.
    const fs::path run = dir / "strict";
    const Result r = run_elbo("train --steps 6 --shadow 2 --shadow-tolerance 1e-12 --shadow-stop --out " + run.string() +
                              tiny, dir);
    INFO(r.err);
    CHECK(r.status == 1);
    CHECK(r.err.find("shadow step 2: the output of conv2d [8,32,8,8] (vae pass, #0): difference ") != std::string::npos);
    CHECK(r.err.find("past the tolerance 1e-12") != std::string::npos);
    CHECK(r.err.find("stopping (--shadow-stop)") != std::string::npos);
    const auto file = elbo::load_safetensors<double>((run / "shadow-step-2.safetensors").string());
    CHECK(file.metadata.at("op") == "conv2d");
    CHECK(file.metadata.at("what") == "output");
    CHECK(file.tensors.at("run").shape() == elbo::Shape{8, 32, 8, 8});
    CHECK(file.tensors.at("double").shape() == elbo::Shape{8, 32, 8, 8});
    CHECK(file.tensors.at("run").to_vector() != file.tensors.at("double").to_vector());
    CHECK(models::read_checkpoint<float>((run / "checkpoint.safetensors").string()).metadata.at("step") == "2");
    // Bad values.
    CHECK(run_elbo("train --steps 2 --shadow -1 --out " + run.string() + tiny, dir).err.find(
              "--time-limit and --shadow non-negative") != std::string::npos);
    CHECK(run_elbo("train --steps 2 --shadow 1 --shadow-tolerance 0 --out " + run.string() + tiny, dir).err.find(
              "--shadow-tolerance must be positive, got 0") != std::string::npos);
    fs::remove_all(dir);
}

#if ELBO_CLI_WITH_MPI
namespace {

// `elbo ARGS` as an MPI job of `processes` on this machine (as root, if the tests run as root).
Result run_mpi(int processes, const std::string& args, const fs::path& dir) {
    return elbo::testing::run_command(std::string(ELBO_MPIEXEC) + " --oversubscribe --allow-run-as-root -np " +
                                          std::to_string(processes) + " " + ELBO_CLI + " " + args,
                                      dir);
}

// Each parameter of checkpoint a against b: |a - b| / |b| over the tensor (Euclidean norms), the
// worst. Not the largest element's difference: Adam moves every element by about lr whatever the
// size of its gradient, so an element of the discriminator's 1000 x 1000 layers whose gradient is
// at the level of float rounding takes lr-sized steps of either sign, and two sums in another order
// (16 images against 8 + 8) part there after a few steps (max |a - b| / max |b| of 1.0e-5 after 10
// and 20 steps, 9.3e-6 on the kernels before, against 3e-7 for the norms).
double parameters_difference(const fs::path& a, const fs::path& b) {
    const auto ca = models::read_checkpoint<float>(a.string()), cb = models::read_checkpoint<float>(b.string());
    REQUIRE(ca.model.size() == cb.model.size());
    double worst = 0;
    for (const auto& [name, t] : cb.model) {
        const elbo::Tensor<float>& u = ca.model.at(name);
        REQUIRE(u.shape() == t.shape());
        double diff = 0, norm = 0;
        for (int64_t i = 0; i < t.numel(); ++i) {
            diff += (double(u[i]) - double(t[i])) * (double(u[i]) - double(t[i]));
            norm += double(t[i]) * double(t[i]);
        }
        worst = std::max(worst, norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff));
    }
    return worst;
}

}  // namespace

TEST_CASE("mpirun -np 2 with --batch 8 trains what one process does with --batch 16: the VAE and FactorVAE") {
    const fs::path dir = scratch_dir("cli-mpi");
    for (const std::string model : {"vae", "factor-vae"}) {
        INFO(model);
        const std::string flags = " --model " + model + " --data dsprites --image-size 32 --latent 4 --steps 20 "
                                  "--log-every 1 --threads 1 --checkpoint-every 10";
        const Result one = run_elbo("train --batch 16 --out " + (dir / "one").string() + flags, dir);
        REQUIRE(one.status == 0);
        const Result two = run_mpi(2, "train --batch 8 --out " + (dir / "two").string() + flags, dir);
        INFO(two.err);
        REQUIRE(two.status == 0);
        CHECK(two.err.find("2 processes of 8 images a step") != std::string::npos);
        CHECK(parameters_difference(dir / "two" / "checkpoint.safetensors", dir / "one" / "checkpoint.safetensors") <
              1e-5);
        // metrics.csv: the whole batch's terms, to the same tolerance.
        std::ifstream a(dir / "one" / "metrics.csv"), b(dir / "two" / "metrics.csv");
        std::string header, line_a, line_b;
        std::getline(a, header);
        std::getline(b, line_b);
        CHECK(line_b == header);
        int rows = 0;
        while (std::getline(a, line_a) && std::getline(b, line_b)) {
            const train::MetricsRow ra = train::MetricsRow::parse(header, line_a), rb = train::MetricsRow::parse(header, line_b);
            INFO("step ", ra.step);
            CHECK(rb.step == ra.step);
            for (auto [x, y] : {std::pair{ra.loss, rb.loss}, {ra.recon, rb.recon}, {ra.kl, rb.kl}, {ra.tc, rb.tc},
                                {ra.discriminator, rb.discriminator}})
                CHECK(std::abs(x - y) <= 1e-5 * std::max(std::abs(x), 1.0));
            ++rows;
        }
        CHECK(rows == 20);
        // Resumed with one process, the run goes on with the whole batch in it.
        const Result resumed = run_elbo("train --steps 22 --resume " + (dir / "two" / "checkpoint.safetensors").string(),
                                        dir);
        INFO(resumed.err);
        CHECK(resumed.status == 0);
        CHECK(nlohmann::json::parse(models::read_checkpoint<float>((dir / "two" / "checkpoint.safetensors").string())
                                        .metadata.at("train"))["batch"] == 16);
        fs::remove_all(dir / "one");
        fs::remove_all(dir / "two");
    }
    fs::remove_all(dir);
}
#endif

#if ELBO_CLI_WITH_MPI
namespace {

// The pid of the MPI job's process `rank` whose command line names `marker`, or 0.
pid_t process_of_rank(int rank, const std::string& marker) {
    for (const auto& entry : fs::directory_iterator("/proc")) {
        const std::string name = entry.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string command = read_text(entry.path() / "cmdline"), environment = read_text(entry.path() / "environ");
        std::replace(command.begin(), command.end(), '\0', ' ');
        if (command.find(marker) == std::string::npos || command.find("mpiexec") != std::string::npos ||
            command.find("mpirun") != std::string::npos)
            continue;
        if (environment.find("OMPI_COMM_WORLD_RANK=" + std::to_string(rank) + '\0') != std::string::npos)
            return static_cast<pid_t>(std::stol(name));
    }
    return 0;
}

}  // namespace

TEST_CASE("a process of an MPI job that dies or hangs ends the job within the timeout; the last checkpoint loads") {
    const fs::path dir = scratch_dir("cli-mpi-faults");
    for (const int signal : {SIGKILL, SIGSTOP}) {
        const fs::path run = dir / (signal == SIGKILL ? "killed" : "stopped");
        INFO(run.string());
        const pid_t job = start_program(ELBO_MPIEXEC, "--oversubscribe --allow-run-as-root -np 2 " + std::string(ELBO_CLI) +
                                                          " train --steps 1000000 --checkpoint-every 5 --mpi-timeout 5 "
                                                          "--out " + run.string() + tiny, dir);
        for (int i = 0; i < 600 && !fs::exists(run / "checkpoint.safetensors"); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        REQUIRE(fs::exists(run / "checkpoint.safetensors"));
        const pid_t second = process_of_rank(1, run.string());
        REQUIRE(second > 0);
        const auto before = std::chrono::steady_clock::now();
        kill(second, signal);
        const int status = wait_for(job);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - before).count();
        kill(second, SIGKILL);  // a stopped process the job's end left behind, if any
        const std::string err = read_text(dir / "stderr");
        INFO(err);
        CHECK(status != 0);
        CHECK(seconds < 60);
        if (signal == SIGSTOP)  // the other process waited 5 s for it, then ended the job
            CHECK(err.find("elbo: process 0 of 2: no answer from the other processes within 5 s while ") !=
                  std::string::npos);
        else  // mpirun saw it die and ended the other
            CHECK(err.find("exited on signal 9") != std::string::npos);
        const Result r = run_elbo("sample --count 1 --checkpoint " + (run / "checkpoint.safetensors").string() +
                                  " --out " + (dir / "s.png").string(), dir);
        CHECK(r.status == 0);
    }
    fs::remove_all(dir);
}
#endif

TEST_CASE("a resumed run's metrics equal an uninterrupted run's") {
    const fs::path dir = scratch_dir("cli-resume");
    const std::string flags = " --model factor-vae --log-every 1 --checkpoint-every 3" + tiny;
    REQUIRE(run_elbo("train --steps 6 --out " + (dir / "straight").string() + flags, dir).status == 0);
    REQUIRE(run_elbo("train --steps 3 --out " + (dir / "resumed").string() + flags, dir).status == 0);
    const Result r = run_elbo("train --steps 6 --resume " + (dir / "resumed" / "checkpoint.safetensors").string(), dir);
    INFO(r.err);
    REQUIRE(r.status == 0);
    const std::vector<std::string> straight = metrics_without_time(dir / "straight");
    CHECK(straight.size() == 7);
    CHECK(metrics_without_time(dir / "resumed") == straight);
    fs::remove_all(dir);
}

TEST_CASE("a run resumes from a bare file name in its folder, and a new run never appends to an old one") {
    const fs::path dir = scratch_dir("cli-folders"), run = dir / "run";
    fs::create_directories(run);
    std::ofstream(run / "metrics.csv") << "step,loss,recon,kl,tc,discriminator_loss,lr,seconds\n1,9,9,0,0,0,0.001,0.1\n";
    REQUIRE(run_elbo("train --steps 2 --log-every 1 --out " + run.string() + tiny, dir).status == 0);
    CHECK(metrics_without_time(run).size() == 3);  // the stale rows of a run that never checkpointed are gone
    const std::string resume = "cd " + run.string() + " && " + ELBO_CLI + " train --steps 3 --resume checkpoint.safetensors";
    REQUIRE(std::system((resume + " 2> /dev/null").c_str()) == 0);
    CHECK(metrics_without_time(run).size() == 4);
    CHECK_FALSE(fs::exists(run / "runs"));
    // Branching off into a folder that holds another run is refused.
    REQUIRE(run_elbo("train --steps 1 --out " + (dir / "other").string() + tiny, dir).status == 0);
    const Result r = run_elbo("train --steps 4 --resume " + (run / "checkpoint.safetensors").string() + " --out " +
                              (dir / "other").string(), dir);
    CHECK(r.status == 1);
    CHECK(r.err.find("already holds a run") != std::string::npos);
    fs::remove_all(dir);
}

TEST_CASE("Ctrl-C finishes the step, writes a checkpoint and exits, and the run resumes") {
    const fs::path dir = scratch_dir("cli-interrupt"), run = dir / "run";
    const pid_t pid = start("train --steps 1000000 --log-every 1 --out " + run.string() + tiny, dir);
    wait_for_lines(run / "metrics.csv", 3);
    kill(pid, SIGINT);
    CHECK(wait_for(pid) == 130);
    const std::string err = read_text(dir / "stderr");
    CHECK(err.find("interrupted at step") != std::string::npos);
    REQUIRE(fs::exists(run / "checkpoint.safetensors"));
    CHECK_FALSE(has_temporary_files(run));
    const size_t rows = metrics_without_time(run).size();
    const Result r = run_elbo("train --steps " + std::to_string(rows + 1) + " --resume " + (run / "checkpoint.safetensors").string(), dir);
    INFO(r.err);
    CHECK(r.status == 0);
    CHECK(metrics_without_time(run).size() == rows + 2);  // two more steps: the cut-off count was rows - 1
    fs::remove_all(dir);
}

TEST_CASE("a run killed at any moment leaves a checkpoint that loads, or none") {
    const fs::path dir = scratch_dir("cli-kill");
    int loaded = 0;
    for (int delay_ms : {300, 700, 1100, 1500}) {
        const fs::path run = dir / std::to_string(delay_ms);
        const pid_t pid = start("train --steps 1000000 --checkpoint-every 1 --out " + run.string() + tiny, dir);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        kill(pid, SIGKILL);
        wait_for(pid);
        if (!fs::exists(run / "checkpoint.safetensors")) continue;
        const Result r = run_elbo("sample --count 1 --checkpoint " + (run / "checkpoint.safetensors").string() +
                                  " --out " + (dir / "s.png").string(), dir);
        INFO(delay_ms, r.err);
        CHECK(r.status == 0);
        loaded += r.status == 0;
    }
    CHECK(loaded > 0);  // a checkpoint a step, so most of the kills land after several
    fs::remove_all(dir);
}

TEST_CASE("a diverging run stops at the first non-finite loss and keeps its last checkpoint") {
    const fs::path dir = scratch_dir("cli-nan"), run = dir / "run";
    const Result r = run_elbo("train --steps 50 --lr 1e30 --checkpoint-every 1 --out " + run.string() + tiny, dir);
    CHECK(r.status == 1);
    CHECK(r.err.find("elbo: train: the loss is") != std::string::npos);
    CHECK(r.err.find("The last good checkpoint is " + (run / "checkpoint.safetensors").string()) != std::string::npos);
    CHECK(fs::exists(run / "checkpoint.safetensors"));
    CHECK(metrics_without_time(run).size() < 50);
    CHECK_FALSE(has_temporary_files(run));
    CHECK(run_elbo("sample --count 1 --checkpoint " + (run / "checkpoint.safetensors").string() + " --out " +
                   (dir / "s.png").string(), dir).status == 0);
    fs::remove_all(dir);
}

TEST_CASE("elbo data writes a grid of the items and prints their factors, labels or files") {
    const fs::path dir = scratch_dir("cli-data");
    Result r = run_elbo("data --data dsprites --index 0 737279 --out " + (dir / "d.png").string(), dir);
    REQUIRE(r.status == 0);
    CHECK(png_size(dir / "d.png") == std::pair{2 * 66 + 2, 66 + 2});
    std::istringstream lines(r.out);
    std::string first, second;
    std::getline(lines, first);
    std::getline(lines, second);
    CHECK(nlohmann::json::parse(first)["factors"] == nlohmann::json{0, 0, 0, 0, 0});
    CHECK(nlohmann::json::parse(second)["factors"] == nlohmann::json{2, 5, 39, 31, 31});
    CHECK(nlohmann::json::parse(second)["shape"] == "heart");

    r = run_elbo("data --data fashion-mnist --index 0 --out " + (dir / "f.png").string(), dir);
    REQUIRE(r.status == 0);
    CHECK(nlohmann::json::parse(r.out)["class"] == "Ankle boot");  // the training set's first label is 9

    const fs::path pictures = dir / "pictures";
    fs::create_directories(pictures);
    fs::copy_file(dir / "d.png", pictures / "one.png");
    fs::copy_file(dir / "f.png", pictures / "two.png");
    std::ofstream(pictures / "three.png") << "not a png";
    r = run_elbo("data --data images:" + pictures.string() + " --count 5 --image-size 16 --out " + (dir / "i.png").string(), dir);
    REQUIRE(r.status == 0);
    CHECK(r.err.find("warning: skipping '" + (pictures / "three.png").string() + "'") != std::string::npos);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 2);
    CHECK(png_size(dir / "i.png") == std::pair{2 * 18 + 2, 18 + 2});

    // --idx: the items as bytes, for another program; elbo trains on them (idx:FILE) as on the original.
    r = run_elbo("data --data dsprites --index 5 737279 --idx " + (dir / "two.idx").string(), dir);
    REQUIRE(r.status == 0);
    CHECK(nlohmann::json::parse(r.out)["shape"] == nlohmann::json{2, 64, 64});
    CHECK(elbo::data::idx_images((dir / "two.idx").string()).to_vector() ==
          elbo::data::DSprites().images<float>({5, 737279}).to_vector());
    r = run_elbo("data --data fashion-mnist --all --idx " + (dir / "all.idx").string(), dir);
    REQUIRE(r.status == 0);
    CHECK(nlohmann::json::parse(r.out)["shape"] == nlohmann::json{60000, 32, 32});
    CHECK(fs::file_size(dir / "all.idx") == 16 + 60000 * 32 * 32);
    CHECK(run_elbo("data --data dsprites --image-size 32 --index 3 --idx " + (dir / "r.idx").string(), dir)
              .err.find("which is not k / 255") != std::string::npos);
    CHECK(!fs::exists(dir / "r.idx"));
    for (const std::string flag : {"--out", "--count", "--index", "--seed"}) {
        r = run_elbo("data --data dsprites --all --idx x.idx " + flag + " 3", dir);
        CHECK(r.status == 1);
        CHECK(r.err.find(flag + " excludes --all") != std::string::npos);
    }
    CHECK(run_elbo("data --data dsprites", dir).err ==
          "elbo: data: nothing to write: give --out (a PNG grid) or --idx (an IDX file)\n");
    fs::remove_all(dir);
}

TEST_CASE("elbo train --steps 0 writes the initial weights' checkpoint: step 0, the weights of the seed") {
    const fs::path dir = scratch_dir("cli-steps-0");
    const std::string flags = " --model factor-vae --data dsprites --image-size 32 --latent 4 --batch 8 --threads 1 --seed 9";
    REQUIRE(run_elbo("train --steps 0 --out " + (dir / "zero").string() + flags, dir).status == 0);
    REQUIRE(run_elbo("train --steps 1 --out " + (dir / "one").string() + flags, dir).status == 0);
    const auto zero = models::read_checkpoint<float>((dir / "zero" / "checkpoint.safetensors").string());
    CHECK(zero.metadata.at("step") == "0");
    // The initial weights are those the one-step run started from: its first Adam step moves each by
    // at most lr (1e-4) and a little.
    const auto one = models::read_checkpoint<float>((dir / "one" / "checkpoint.safetensors").string());
    for (const auto& [name, t] : zero.model) {
        INFO(name);
        double moved = 0;
        for (int64_t i = 0; i < t.numel(); ++i)
            moved = std::max(moved, std::abs(static_cast<double>(one.model.at(name)[i]) - t[i]));
        CHECK(moved > 0);
        CHECK(moved < 1.01e-4);
    }
    CHECK(run_elbo("train --steps -1 --out " + (dir / "x").string() + flags, dir).status == 1);
    fs::remove_all(dir);
}

TEST_CASE("bad flags and files get one clear line and exit status 1") {
    const fs::path dir = scratch_dir("cli-errors"), run = dir / "run";
    REQUIRE(run_elbo("train --steps 1 --out " + run.string() + tiny, dir).status == 0);
    const std::string ck = (run / "checkpoint.safetensors").string();
    const std::pair<std::string, std::string> cases[] = {
        {"train --data mnist --out " + (dir / "x").string(), "elbo: data: unknown data set 'mnist'"},
        {"train --model ae --out " + (dir / "x").string(), "elbo: train: --model must be vae, beta-vae or factor-vae, got 'ae'"},
        {"train --device tpu --out " + (dir / "x").string(), "elbo: train: --device must be cpu or cuda, got 'tpu'"},
        {"bench --device tpu", "elbo: bench: --device must be cpu or cuda, got 'tpu'"},
#if !ELBO_CLI_WITH_CUDA  // (with the module, tests/cuda checks what --device cuda does)
        {"train --device cuda --out " + (dir / "x").string(), "elbo: train: --device cuda needs the CUDA module"},
        {"bench --device cuda", "elbo: bench: --device cuda needs the CUDA module"},
#endif
        {"train --steps 2 --out " + run.string() + tiny, "elbo: train: '" + run.string() + "' already holds a run"},
        {"train --resume " + ck + " --beta 3", "elbo: train: --beta comes from the checkpoint when resuming"},
        {"train --resume " + ck + " --arch seed", "elbo: train: --arch comes from the checkpoint when resuming"},
        {"train --arch resnet --out " + (dir / "x").string(), "elbo: train: --arch must be seed or kim-mnih, got 'resnet'"},
        {"train --data dsprites --image-size 40 --out " + (dir / "x").string(),
         "elbo: train: --arch kim-mnih takes images whose side is a multiple of 16; the data set gives 40 x 40"},
        {"train --model vae --gamma 35 --out " + (dir / "x").string(),
         "elbo: train: --gamma weighs FactorVAE's TC term; --model vae has none (the capacity objective's weight is "
         "--capacity-weight)"},
        {"train --model beta-vae --d-lr 1e-4 --out " + (dir / "x").string(),
         "elbo: train: --d-lr sets FactorVAE's discriminator's optimizer; --model beta-vae has no discriminator"},
        {"train --model vae --d-betas 0.5,0.9 --out " + (dir / "x").string(),
         "elbo: train: --d-betas sets FactorVAE's discriminator's optimizer"},
        {"train --capacity-weight 100 --out " + (dir / "x").string(),
         "elbo: train: --capacity-weight weighs the capacity objective, which needs --capacity-max > 0"},
        {"train --capacity-max 25 --beta 4 --out " + (dir / "x").string(),
         "elbo: train: --beta and --capacity-max: the capacity objective replaces beta KL"},
        {"train --lr nan --out " + (dir / "x").string(), "elbo: train: --lr must be a positive number, got nan"},
        {"train --model factor-vae --d-lr -1 --out " + (dir / "x").string(),
         "elbo: train: --d-lr must be a positive number, got -1"},
        {"train --model factor-vae --d-betas 1.5,0.9 --out " + (dir / "x").string(),
         "elbo: train: --d-betas must be two numbers in [0, 1), got 1.5,0.9"},
        {"train --model factor-vae --gamma -3 --out " + (dir / "x").string(),
         "elbo: train: --gamma must be a non-negative number, got -3"},
        {"train --beta nan --out " + (dir / "x").string(), "elbo: train: --beta must be a non-negative number, got nan"},
        {"eval --checkpoint " + (dir / "none.safetensors").string(), "elbo: safetensors: cannot open"},
        {"eval --checkpoint " + ck + " --mig-bins 1", "elbo: eval: --mig-bins must be at least 2, got 1"},
        {"eval --checkpoint " + ck + " --votes-per-sample 0", "elbo: eval: --votes-per-sample must be at least 2, got 0"},
        {"eval --checkpoint " + ck + " --prune-below -1", "elbo: eval: --prune-below must be a non-negative number"},
        {"eval --checkpoint " + ck + " --data fashion-mnist:test --train-votes 5",
         "elbo: eval: --train-votes, --eval-votes, --votes-per-sample, --global-images, --prune-below, --mig-images "
         "and --mig-bins set the dSprites metrics, and 'fashion-mnist:test' is not dSprites"},
        {"grads --checkpoint " + ck + " --input x --out y --gamma 3",
         "elbo: grads: --gamma weighs FactorVAE's TC term; this checkpoint is a vae"},
        {"grads --checkpoint " + ck + " --input x --out y --capacity-weight 3",
         "elbo: grads: --capacity-weight weighs the capacity objective, which this checkpoint does not have"},
        {"gradcheck --checkpoint " + ck + " --latent 4",
         "elbo: gradcheck: --latent describes a model of random weights; the checkpoint's model is used"},
        {"gradcheck --checkpoint " + ck + " --step 0", "elbo: gradcheck: the step h must be a positive number, got 0"},
        {"gradcheck --model ae", "elbo: gradcheck: --model must be vae, beta-vae or factor-vae, got 'ae'"},
        {"gradcheck --batch 0", "elbo: gradcheck: --batch must be positive, got 0"},
        {"health --run " + (dir / "nothing").string(), "elbo: health: '" + (dir / "nothing").string() + "' has no config.json"},
        {"plot --in " + (dir / "none.json").string() + " --out " + (dir / "x.svg").string(), "elbo: plot: cannot read"},
        {"plot --in " + (dir / "odd.json").string() + " --out " + (dir / "x.svg").string(),
         "elbo: plot: series 'a' needs as many x as y values (2 and 3)"},
        {"train --capacity-max 25 --capacity-weight 0 --out " + (dir / "x").string(),
         "elbo: train: --capacity-weight must be positive, got 0"},
        {"train --capacity-max 25 --capacity-steps 0 --out " + (dir / "x").string(),
         "elbo: train: --capacity-steps must be positive with --capacity-max, got 0"},
        {"data --data images:" + dir.string() + "/nothing --out " + (dir / "x.png").string(), "elbo: images: '"},
        {"sample --checkpoint " + ck + " --count 0 --out " + (dir / "x.png").string(), "elbo: sample: count must be positive"},
        {"traverse --checkpoint " + ck + " --rows 0 --out " + (dir / "x.png").string(), "elbo: traverse: the number of latents"},
    };
    std::ofstream(dir / "odd.json") << R"({"series": [{"name": "a", "x": [1, 2], "y": [1, 2, 3]}]})";
    // A run resumed without --device continues on its own device: here one this build cannot use.
    fs::create_directories(dir / "elsewhere");
    std::string bytes = read_text(ck);
    const std::string device = R"(\"device\":\"cpu\")";
    REQUIRE(bytes.find(device) != std::string::npos);
    bytes.replace(bytes.find(device), device.size(), R"(\"device\":\"gpu\")");
    std::ofstream(dir / "elsewhere" / "checkpoint.safetensors", std::ios::binary) << bytes;
    const Result elsewhere = run_elbo("train --resume " + (dir / "elsewhere" / "checkpoint.safetensors").string(), dir);
    CHECK(elsewhere.status == 1);
    CHECK(elsewhere.err.rfind("elbo: train: --device must be cpu or cuda, got 'gpu'; the run in '", 0) == 0);
    CHECK(elsewhere.err.find("' trained on gpu: continue it on another device with --device") != std::string::npos);

    for (const auto& [args, message] : cases) {
        const Result r = run_elbo(args, dir);
        INFO(args);
        CHECK(r.status == 1);
        CHECK(r.err.rfind(message, 0) == 0);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    }
    CHECK_FALSE(fs::exists(dir / "x"));  // no refused run left a folder
    CHECK_FALSE(fs::exists(dir / "x.svg"));
    // Flag misuse is CLI11's message, also with status 1.
    const Result r = run_elbo("train --steps 2 --epochs 1", dir);
    CHECK(r.status == 1);
    CHECK(r.err.find("--steps excludes --epochs") != std::string::npos);
    fs::remove_all(dir);
}

}  // TEST_SUITE("cli")
