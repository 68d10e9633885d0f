#pragma once
// A training run's log, metrics.csv: one row per logged step,
//
//   step, loss, recon, kl, tc, discriminator_loss, d_accuracy_real, d_accuracy_permuted, lr, seconds,
//   kl_0 ... kl_{D-1}
//
// the objective's terms in nats per image (train::StepTerms), the learning rate, the seconds
// trained so far, and each latent's KL. `elbo train` writes it; the study script and PyTorch's
// side read it by column name.

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
           seconds = 0;
    std::vector<double> kl_per_latent;

    // The columns before the per-latent KLs, in order.
    static constexpr const char* names[] = {"step", "loss", "recon", "kl", "tc", "discriminator_loss",
                                            "d_accuracy_real", "d_accuracy_permuted", "lr", "seconds"};

    // The row of a step's terms, logged after `step` steps at learning rate `lr`, `seconds` in.
    static MetricsRow of(const StepTerms& t, int64_t step, double lr, double seconds) {
        return {.step = step, .loss = t.loss, .recon = t.recon, .kl = t.kl, .tc = t.tc, .discriminator = t.discriminator,
                .accuracy_real = t.accuracy_real, .accuracy_permuted = t.accuracy_permuted, .lr = lr,
                .seconds = seconds, .kl_per_latent = t.kl_per_latent};
    }

    static std::string header(int64_t latents) {
        std::string h;
        for (const char* n : names) h += std::string(h.empty() ? "" : ",") + n;
        for (int64_t j = 0; j < latents; ++j) h += ",kl_" + std::to_string(j);
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
        for (double x : kl_per_latent) {
            std::snprintf(v, sizeof v, ",%.6g", x);
            line += v;
        }
        return line + "\n";
    }

    // A row under `header` (the file's first line): columns found by name, so a run written
    // before some column existed reads with that column NaN (unknown).
    static MetricsRow parse(const std::string& header, const std::string& line) {
        auto split = [](const std::string& text) {
            std::vector<std::string> out;
            std::stringstream in(text);
            for (std::string cell; std::getline(in, cell, ',');) out.push_back(cell);
            return out;
        };
        const std::vector<std::string> columns = split(header), cells = split(line);
        check(cells.size() == columns.size(), "train", "metrics.csv has a malformed line: '", line, "'");
        MetricsRow r;
        double* fields[] = {nullptr, &r.loss, &r.recon, &r.kl, &r.tc, &r.discriminator, &r.accuracy_real,
                            &r.accuracy_permuted, &r.lr, &r.seconds};
        for (size_t k = 1; k < std::size(names); ++k) *fields[k] = NAN;
        for (size_t c = 0; c < columns.size(); ++c) {
            char* end = nullptr;
            const double v = std::strtod(cells[c].c_str(), &end);
            check(!cells[c].empty() && *end == '\0', "train", "metrics.csv has a malformed line: '", line, "'");
            if (columns[c] == "step") r.step = static_cast<int64_t>(v);
            else if (columns[c].rfind("kl_", 0) == 0) r.kl_per_latent.push_back(v);
            for (size_t k = 1; k < std::size(names); ++k)
                if (columns[c] == names[k]) *fields[k] = v;
        }
        return r;
    }
};

}  // namespace elbo::train
