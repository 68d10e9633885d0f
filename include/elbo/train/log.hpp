#pragma once
// A training run's log, metrics.csv: one row per logged step,
//
//   step, loss, recon, kl, tc, discriminator_loss, d_accuracy_real, d_accuracy_permuted, lr, seconds,
//   active_units, saturated, saturated_wrong, grad_norm, kl_0 ... kl_{D-1}, grad.<layer> ...
//
// the objective's terms in nats per image (train::StepTerms), the learning rate, the seconds
// trained so far, the health monitor's numbers (train/health.hpp: active units over its window, the
// decoder's saturated pixels, the VAE's gradient norm), each latent's KL and each layer's gradient
// norm. `elbo train` writes it; `elbo health`, the study script and PyTorch's side read it by
// column name.

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "elbo/train/step.hpp"

namespace elbo::train {

// One row of metrics.csv.
struct MetricsRow {
    int64_t step = 0;
    double loss = 0, recon = 0, kl = 0, tc = 0, discriminator = 0, accuracy_real = 0, accuracy_permuted = 0, lr = 0,
           seconds = 0, active_units = 0, saturated = 0, saturated_wrong = 0, grad_norm = 0;
    std::vector<double> kl_per_latent;
    std::vector<double> gradient_norms;  // one per layer, in the order of the header's grad.<layer> columns

    // The columns before the per-latent KLs, in order.
    static constexpr const char* names[] = {"step", "loss", "recon", "kl", "tc", "discriminator_loss",
                                            "d_accuracy_real", "d_accuracy_permuted", "lr", "seconds",
                                            "active_units", "saturated", "saturated_wrong", "grad_norm"};

    // The row of a step's terms, logged after `step` steps at learning rate `lr`, `seconds` in, with
    // the health monitor's count of active units.
    static MetricsRow of(const StepTerms& t, int64_t step, double lr, double seconds, int64_t active_units) {
        MetricsRow r{.step = step, .loss = t.loss, .recon = t.recon, .kl = t.kl, .tc = t.tc,
                     .discriminator = t.discriminator, .accuracy_real = t.accuracy_real,
                     .accuracy_permuted = t.accuracy_permuted, .lr = lr, .seconds = seconds,
                     .active_units = static_cast<double>(active_units), .saturated = t.saturated,
                     .saturated_wrong = t.saturated_wrong, .grad_norm = t.vae_gradient_norm(),
                     .kl_per_latent = t.kl_per_latent, .gradient_norms = {}};
        for (const auto& [layer, norm] : t.gradient_norms) r.gradient_norms.push_back(norm);
        return r;
    }

    // A line's comma-separated cells.
    static std::vector<std::string> cells_of(const std::string& line) {
        std::vector<std::string> out;
        std::stringstream in(line);
        for (std::string cell; std::getline(in, cell, ',');) out.push_back(cell);
        return out;
    }

    // The layers a header's grad.<layer> columns name, in order.
    static std::vector<std::string> layers(const std::string& header) {
        std::vector<std::string> out;
        for (const std::string& column : cells_of(header))
            if (column.rfind("grad.", 0) == 0) out.push_back(column.substr(5));
        return out;
    }

    // The header of a model with `latents` latents and these layers (train::layer_names).
    static std::string header(int64_t latents, const std::vector<std::string>& layers) {
        std::string h;
        for (const char* n : names) h += std::string(h.empty() ? "" : ",") + n;
        for (int64_t j = 0; j < latents; ++j) h += ",kl_" + std::to_string(j);
        for (const std::string& layer : layers) h += ",grad." + layer;
        return h + "\n";
    }

    std::string csv() const {
        std::string line = std::to_string(step);
        char v[32];
        for (double x : {loss, recon, kl, tc, discriminator, accuracy_real, accuracy_permuted, lr}) {
            std::snprintf(v, sizeof v, ",%.9g", x);
            line += v;
        }
        std::snprintf(v, sizeof v, ",%.3f", seconds);
        line += v;
        for (double x : {active_units, saturated, saturated_wrong, grad_norm}) {
            std::snprintf(v, sizeof v, ",%.6g", x);
            line += v;
        }
        for (const std::vector<double>* values : {&kl_per_latent, &gradient_norms})
            for (double x : *values) {
                std::snprintf(v, sizeof v, ",%.6g", x);
                line += v;
            }
        return line + "\n";
    }

    // A row under `header` (the file's first line): columns found by name, so a run written
    // before some column existed reads with that column NaN (unknown).
    static MetricsRow parse(const std::string& header, const std::string& line) {
        const std::vector<std::string> columns = cells_of(header), cells = cells_of(line);
        check(cells.size() == columns.size(), "train", "metrics.csv has a malformed line: '", line, "'");
        MetricsRow r;
        double* fields[] = {nullptr,         &r.loss,       &r.recon,          &r.kl,
                            &r.tc,           &r.discriminator, &r.accuracy_real, &r.accuracy_permuted,
                            &r.lr,           &r.seconds,    &r.active_units,   &r.saturated,
                            &r.saturated_wrong, &r.grad_norm};
        static_assert(std::size(fields) == std::size(names));
        for (size_t k = 1; k < std::size(names); ++k) *fields[k] = NAN;
        for (size_t c = 0; c < columns.size(); ++c) {
            char* end = nullptr;
            const double v = std::strtod(cells[c].c_str(), &end);
            check(!cells[c].empty() && *end == '\0', "train", "metrics.csv has a malformed line: '", line, "'");
            if (columns[c] == "step") r.step = static_cast<int64_t>(v);
            else if (columns[c].rfind("kl_", 0) == 0) r.kl_per_latent.push_back(v);
            else if (columns[c].rfind("grad.", 0) == 0) r.gradient_norms.push_back(v);
            for (size_t k = 1; k < std::size(names); ++k)
                if (columns[c] == names[k]) *fields[k] = v;
        }
        return r;
    }
};

// The layers of `model` whose gradient norms a step reports, in order ("encoder.conv1", ...,
// "discriminator.net.12"): each parameter's name without its last part.
template <class T>
std::vector<std::string> layer_names(const nn::Module<T>& model) {
    std::vector<std::string> layers;
    for (const auto& [name, p] : model.named_parameters())
        if (layers.empty() || layers.back() != layer_of(name)) layers.push_back(layer_of(name));
    return layers;
}

}  // namespace elbo::train
