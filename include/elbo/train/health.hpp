#pragma once
// A VAE's health, watched step by step: active units over a moving window, collapsed latents,
// exploding gradients, a decoder sure and wrong, and FactorVAE's discriminator and TC estimate.
// Each warning is given once per run, with the step; the trainer prints them and metrics.csv keeps
// the numbers they come from (docs/tools.md).

#include <algorithm>
#include <cmath>
#include <deque>
#include <string>
#include <vector>

#include "elbo/train/step.hpp"

namespace elbo::train {

struct HealthOptions {
    int64_t window = 2000;           // steps a condition must hold before its warning
    int64_t active_window = 50;      // steps (batches) whose codes the active units are counted over
    double active_variance = 0.01;   // Burda et al.'s criterion: latent j is active when Var_x(E[z_j | x]) > this
    double collapsed_kl = 0.01;      // nats: a latent carrying less has collapsed to the prior
    double informative_kl = 1.0;     // nats: ... while the others together carry at least this
    double exploding = 100.0;        // a gradient norm this many times its running typical value
    double saturated_wrong = 0.01;   // the fraction of pixels the decoder may be sure and wrong about
};

// Watches the StepTerms of each step.
class HealthMonitor {
public:
    explicit HealthMonitor(HealthOptions o = {}) : o_(o) {}

    // The warnings this step raises, each once per run (a resumed run starts counting afresh).
    std::vector<std::string> update(int64_t step, const StepTerms& l) {
        std::vector<std::string> warnings;
        ++steps_;
        watch_codes(l);
        watch_collapse(step, l, warnings);
        watch_gradients(step, l, warnings);
        watch_decoder(step, l, warnings);
        watch_discriminator(step, l, warnings);  // a VAE's zero accuracies and TC raise nothing
        return warnings;
    }

    // Latents whose posterior mean varies across the window's images by more than active_variance.
    int64_t active_units() const {
        if (codes_.empty()) return 0;
        const size_t d = codes_.front().first.size();
        int64_t active = 0;
        for (size_t j = 0; j < d; ++j) {
            double mean = 0, square = 0;
            for (const auto& [m, s] : codes_) mean += m[j], square += s[j];
            mean /= static_cast<double>(codes_.size());
            square /= static_cast<double>(codes_.size());
            active += square - mean * mean > o_.active_variance;
        }
        return active;
    }

private:
    void watch_codes(const StepTerms& l) {
        if (l.mu_mean.empty()) return;
        codes_.emplace_back(l.mu_mean, l.mu_square);
        if (static_cast<int64_t>(codes_.size()) > o_.active_window) codes_.pop_front();
    }

    // A latent whose KL (averaged over about 100 steps) stays under collapsed_kl for `window` steps
    // while the others carry informative_kl.
    void watch_collapse(int64_t step, const StepTerms& l, std::vector<std::string>& warnings) {
        const size_t d = l.kl_per_latent.size();
        if (kl_average_.size() != d) kl_average_.assign(d, 0.0), quiet_.assign(d, 0), warned_latent_.assign(d, false);
        double total = 0;
        for (size_t j = 0; j < d; ++j) {
            kl_average_[j] = steps_ == 1 ? l.kl_per_latent[j] : 0.99 * kl_average_[j] + 0.01 * l.kl_per_latent[j];
            total += kl_average_[j];
        }
        std::vector<size_t> collapsed;
        for (size_t j = 0; j < d; ++j) {
            quiet_[j] = kl_average_[j] < o_.collapsed_kl && total - kl_average_[j] >= o_.informative_kl ? quiet_[j] + 1 : 0;
            if (quiet_[j] == o_.window && !warned_latent_[j]) warned_latent_[j] = true, collapsed.push_back(j);
        }
        if (collapsed.empty()) return;
        std::string which;
        double others = total;
        for (size_t j : collapsed) which += (which.empty() ? "" : ", ") + std::to_string(j), others -= kl_average_[j];
        warnings.push_back(str("step ", step, ": latent", collapsed.size() > 1 ? "s " : " ", which, " carried under ",
                               o_.collapsed_kl, " nats for ", o_.window, " steps while the others carry ", others,
                               ": posterior collapse (", collapsed.size() > 1 ? "these latents are" : "it is",
                               " the prior, unused)"));
    }

    // A gradient norm exploding_ times its typical value (a running mean of its log over about 100
    // steps, after the first 100), or not finite.
    void watch_gradients(int64_t step, const StepTerms& l, std::vector<std::string>& warnings) {
        if (l.gradient_norms.empty() || warned_gradient_) return;
        const double norm = l.vae_gradient_norm();
        if (!std::isfinite(norm) || (gradient_steps_ >= 100 && std::log(norm) > log_norm_ + std::log(o_.exploding))) {
            warned_gradient_ = true;
            warnings.push_back(std::isfinite(norm)
                                   ? str("step ", step, ": the gradient norm is ", norm, ", ", std::exp(-log_norm_) * norm,
                                         " times its typical ", std::exp(log_norm_), ": exploding gradients")
                                   : str("step ", step, ": the gradient norm is ", norm, ": exploding gradients"));
            return;
        }
        if (norm > 0) log_norm_ = gradient_steps_++ == 0 ? std::log(norm) : 0.99 * log_norm_ + 0.01 * std::log(norm);
    }

    // The decoder sure and wrong about more than saturated_wrong of the pixels (averaged over about
    // 100 steps) for `window` steps.
    void watch_decoder(int64_t step, const StepTerms& l, std::vector<std::string>& warnings) {
        wrong_average_ = steps_ == 1 ? l.saturated_wrong : 0.99 * wrong_average_ + 0.01 * l.saturated_wrong;
        wrong_steps_ = wrong_average_ > o_.saturated_wrong ? wrong_steps_ + 1 : 0;
        if (wrong_steps_ == o_.window && !warned_decoder_++)
            warnings.push_back(str("step ", step, ": for ", o_.window, " steps the decoder has been sure (|logit| > 15) "
                                   "and wrong about ", 100 * wrong_average_, "% of the pixels: a saturated decoder"));
    }

    // FactorVAE's discriminator collapsed (it tells every code apart, or calls every code the same:
    // an accuracy pinned at 1 or at 0.5 over both kinds of code) for `window` steps, or its TC
    // estimate, a KL divergence's, below zero (averaged over about 100 steps) for as long.
    void watch_discriminator(int64_t step, const StepTerms& l, std::vector<std::string>& warnings) {
        const bool separates = l.accuracy_real >= 0.99 && l.accuracy_permuted >= 0.99;
        const bool constant = std::min(l.accuracy_real, l.accuracy_permuted) <= 0.01 &&
                              std::max(l.accuracy_real, l.accuracy_permuted) >= 0.99;
        separating_ = separates ? separating_ + 1 : 0;
        constant_ = constant ? constant_ + 1 : 0;
        tc_average_ = tc_steps_++ == 0 ? l.tc : 0.99 * tc_average_ + 0.01 * l.tc;
        negative_ = tc_average_ < 0 ? negative_ + 1 : 0;
        auto collapsed = [&](const char* how) {
            return str("step ", step, ": the discriminator has ", how, " for ", o_.window,
                       " steps (accuracy on real codes ", l.accuracy_real, ", on permuted ", l.accuracy_permuted,
                       "); its TC estimate means little");
        };
        if (separating_ == o_.window && !warned_separating_++)
            warnings.push_back(collapsed("told every real code from every permuted one"));
        if (constant_ == o_.window && !warned_constant_++) warnings.push_back(collapsed("called every code the same"));
        if (negative_ == o_.window && !warned_tc_++)
            warnings.push_back(str("step ", step, ": the TC estimate has averaged below zero for ", o_.window,
                                   " steps (now ", tc_average_,
                                   "); a total correlation is never negative, so the discriminator is failing"));
    }

    HealthOptions o_;
    int64_t steps_ = 0;
    std::deque<std::pair<std::vector<double>, std::vector<double>>> codes_;  // the window's (E[mu], E[mu^2])
    std::vector<double> kl_average_;
    std::vector<int64_t> quiet_;
    std::vector<bool> warned_latent_;
    double log_norm_ = 0;
    int64_t gradient_steps_ = 0;
    bool warned_gradient_ = false;
    double wrong_average_ = 0;
    int64_t wrong_steps_ = 0;
    int warned_decoder_ = 0;
    int64_t separating_ = 0, constant_ = 0, negative_ = 0, tc_steps_ = 0;
    int warned_separating_ = 0, warned_constant_ = 0, warned_tc_ = 0;
    double tc_average_ = 0;
};

}  // namespace elbo::train
