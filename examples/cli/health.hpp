#pragma once
// `elbo health --run DIR`: a run's health after the fact, from its config.json and metrics.csv: the
// loss terms from first to last row, each latent's KL (which carry information, which collapsed),
// the active units, the gradient norms (the whole VAE's and the layer that dominates), the
// decoder's saturation, FactorVAE's discriminator, and the health monitor's warnings replayed over
// the logged rows (each row standing for log_every steps).

#include <algorithm>
#include <fstream>

#include "cli/common.hpp"

namespace elbo::cli {

struct HealthFlags {
    std::string run;
    int64_t window = 2000;  // steps a condition must hold before its warning, as elbo train's monitor
};

namespace detail {

inline std::string number(double v, int digits = 4) {
    if (!std::isfinite(v)) return "not logged";
    char b[32];
    std::snprintf(b, sizeof b, "%.*g", digits, v);
    return b;
}

inline double median(std::vector<double> v) {
    std::erase_if(v, [](double x) { return !std::isfinite(x); });
    if (v.empty()) return NAN;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
    return v[v.size() / 2];
}

}  // namespace detail

inline int run_health(const HealthFlags& o) {
    const char* op = "health";
    check(o.window > 0, op, "--window must be positive, got ", o.window);
    const fs::path run(o.run);
    std::ifstream config_file(run / "config.json"), metrics(run / "metrics.csv");
    check(config_file.good(), op, "'", o.run, "' has no config.json: is it a run folder of elbo train?");
    check(metrics.good(), op, "'", o.run, "' has no metrics.csv");
    nlohmann::json config;
    try {
        config = nlohmann::json::parse(config_file);
    } catch (const nlohmann::json::exception& e) {
        throw Error(str(op, ": '", (run / "config.json").string(), "' is not JSON (", e.what(), ")"));
    }
    const std::string kind = config.at("model").value("kind", "?");
    const int64_t log_every = std::max<int64_t>(1, config.at("train").value("log_every", 1));
    std::string header, line;
    std::getline(metrics, header);
    std::vector<train::MetricsRow> rows;
    while (std::getline(metrics, line))
        if (!line.empty()) rows.push_back(train::MetricsRow::parse(header, line));
    check(!rows.empty(), op, "'", (run / "metrics.csv").string(), "' has no rows yet");
    const std::vector<std::string> layers = train::MetricsRow::layers(header);

    const train::MetricsRow &first = rows.front(), &last = rows.back();
    using detail::number;
    std::printf("%s: %s, %s network, D = %zu; %lld steps in %zu rows (one per %lld steps)\n", o.run.c_str(),
                kind.c_str(), config.at("model").value("arch", "?").c_str(), last.kl_per_latent.size(),
                static_cast<long long>(last.step), rows.size(), static_cast<long long>(log_every));
    std::printf("loss    %s -> %s nats per image (recon %s -> %s, kl %s -> %s)\n", number(first.loss).c_str(),
                number(last.loss).c_str(), number(first.recon).c_str(), number(last.recon).c_str(),
                number(first.kl).c_str(), number(last.kl).c_str());

    // Each latent's KL over the last tenth of the rows.
    const size_t tail = std::max<size_t>(1, rows.size() / 10);
    std::string latents;
    int64_t carrying = 0;
    for (size_t j = 0; j < last.kl_per_latent.size(); ++j) {
        double kl = 0;
        for (size_t r = rows.size() - tail; r < rows.size(); ++r) kl += rows[r].kl_per_latent[j] / static_cast<double>(tail);
        carrying += kl >= 0.01;
        latents += str(" ", j, ":", number(kl, 3));
    }
    std::printf("latents KL over the last %zu rows:%s; %lld carry 0.01 nats or more\n", tail, latents.c_str(),
                static_cast<long long>(carrying));
    std::vector<double> norms, wrong;
    for (const train::MetricsRow& r : rows) norms.push_back(r.grad_norm), wrong.push_back(r.saturated_wrong);
    std::printf("active units (Var of E[z] > 0.01 over 50 steps): first %s, last %s\n", number(first.active_units).c_str(),
                number(last.active_units).c_str());
    const auto largest = std::max_element(norms.begin(), norms.end(), [](double a, double b) {
        return !std::isfinite(a) || (std::isfinite(b) && b > a);
    });
    if (std::isfinite(detail::median(norms)))
        std::printf("gradient norm (the VAE's): median %s, largest %s at step %lld\n",
                    number(detail::median(norms)).c_str(), number(*largest).c_str(),
                    static_cast<long long>(rows[static_cast<size_t>(largest - norms.begin())].step));
    else
        std::printf("gradient norm: not logged\n");
    if (!layers.empty() && last.gradient_norms.size() == layers.size()) {
        std::string by_layer;
        for (size_t k = 0; k < layers.size(); ++k) {
            std::vector<double> layer;
            for (const train::MetricsRow& r : rows)
                if (k < r.gradient_norms.size()) layer.push_back(r.gradient_norms[k]);
            by_layer += str(" ", layers[k], ":", number(detail::median(layer), 3));
        }
        std::printf("median gradient norm per layer:%s\n", by_layer.c_str());
    }
    if (std::isfinite(last.saturated))
        std::printf("decoder sure (|logit| > 15) of %s of the pixels at the end, and wrong about %s (median over "
                    "the run %s)\n",
                    number(last.saturated).c_str(), number(last.saturated_wrong).c_str(),
                    number(detail::median(wrong)).c_str());
    else
        std::printf("decoder saturation: not logged\n");
    if (kind == "factor-vae")
        std::printf("discriminator accuracy on real codes %s, on permuted %s; TC estimate %s (last row)\n",
                    number(last.accuracy_real).c_str(), number(last.accuracy_permuted).c_str(), number(last.tc).c_str());

    // The monitor's warnings, replayed over the rows: a window of `window` steps is window / log_every rows.
    train::HealthMonitor monitor({.window = std::max<int64_t>(1, o.window / log_every)});
    std::vector<std::string> warnings;
    for (const train::MetricsRow& r : rows) {
        train::StepTerms t;
        t.loss = r.loss, t.recon = r.recon, t.kl = r.kl, t.tc = r.tc, t.discriminator = r.discriminator;
        t.accuracy_real = r.accuracy_real, t.accuracy_permuted = r.accuracy_permuted;
        t.kl_per_latent = r.kl_per_latent;
        t.saturated = r.saturated, t.saturated_wrong = std::isfinite(r.saturated_wrong) ? r.saturated_wrong : 0.0;
        if (std::isfinite(r.grad_norm)) t.gradient_norms = {{"vae", r.grad_norm}};
        for (const std::string& w : monitor.update(r.step, t)) warnings.push_back(w);
    }
    std::printf("warnings (replayed over the logged rows): %s\n", warnings.empty() ? "none" : "");
    for (const std::string& w : warnings) std::printf("  %s\n", w.c_str());
    return 0;
}

}  // namespace elbo::cli
