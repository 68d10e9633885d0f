#pragma once
// Warnings about a FactorVAE run going wrong, from the terms of its steps.

#include <algorithm>
#include <string>
#include <vector>

#include "elbo/train/step.hpp"

namespace elbo::train {

// Watches FactorVAE's discriminator and TC estimate, and says once when either goes wrong for
// `window` steps in a row: the discriminator collapsed (it tells every code apart, or calls every
// code the same: an accuracy pinned at 1 or at 0.5 over both kinds of code), or the TC estimate, a
// KL divergence's, stays below zero (its average over about the last hundred steps). It watches
// one process's steps: a resumed run starts counting afresh.
class HealthMonitor {
public:
    explicit HealthMonitor(int64_t window = 2000) : window_(window) {}

    // The warnings this step raises, each once per run.
    std::vector<std::string> update(int64_t step, const StepTerms& l) {
        std::vector<std::string> warnings;
        const bool separates = l.accuracy_real >= 0.99 && l.accuracy_permuted >= 0.99;
        const bool constant = std::min(l.accuracy_real, l.accuracy_permuted) <= 0.01 &&
                              std::max(l.accuracy_real, l.accuracy_permuted) >= 0.99;
        separating_ = separates ? separating_ + 1 : 0;
        constant_ = constant ? constant_ + 1 : 0;
        tc_average_ = steps_++ == 0 ? l.tc : 0.99 * tc_average_ + 0.01 * l.tc;
        negative_ = tc_average_ < 0 ? negative_ + 1 : 0;
        auto collapsed = [&](const char* how) {
            return str("step ", step, ": the discriminator has ", how, " for ", window_,
                       " steps (accuracy on real codes ", l.accuracy_real, ", on permuted ", l.accuracy_permuted,
                       "); its TC estimate means little");
        };
        if (separating_ == window_ && !warned_separating_++)
            warnings.push_back(collapsed("told every real code from every permuted one"));
        if (constant_ == window_ && !warned_constant_++) warnings.push_back(collapsed("called every code the same"));
        if (negative_ == window_ && !warned_tc_++)
            warnings.push_back(str("step ", step, ": the TC estimate has averaged below zero for ", window_, " steps (now ", tc_average_,
                           "); a total correlation is never negative, so the discriminator is failing"));
        return warnings;
    }

private:
    int64_t window_, separating_ = 0, constant_ = 0, negative_ = 0, steps_ = 0;
    int warned_separating_ = 0, warned_constant_ = 0, warned_tc_ = 0;
    double tc_average_ = 0;
};

}  // namespace elbo::train
