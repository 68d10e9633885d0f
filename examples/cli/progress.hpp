#pragma once
// Progress on stderr: on a terminal, one bar redrawn in place
//   [########............]  4120/10000  41%  2310 img/s  ETA 2:31  loss 96.3 recon 71.2 kl 25.1
// and elsewhere (a log file, CI) the same line printed plainly every `every_seconds`.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

namespace elbo::cli {

class Progress {
public:
    // Steps first..total of `batch` images; with a time limit (seconds, 0: none) the ETA is capped by it.
    Progress(int64_t first, int64_t total, int64_t batch, double time_limit = 0, double every_seconds = 10.0)
        : first_(first), total_(total), batch_(batch), limit_(time_limit), every_(every_seconds),
          terminal_(::isatty(2) == 1), start_(Clock::now()), last_(start_) {}

    // After step `step` (1-based count of steps done), with the loss terms as text.
    void update(int64_t step, const std::string& terms) {
        const auto now = Clock::now();
        const bool last = step == total_;
        if (!terminal_ && !last && seconds(last_, now) < every_) return;
        if (terminal_ && !last && seconds(last_, now) < 0.1) return;  // redraw at most 10 times a second
        last_ = now;
        const double elapsed = seconds(start_, now);
        const double done = static_cast<double>(step - first_);
        const double rate = elapsed > 0 ? done * static_cast<double>(batch_) / elapsed : 0.0;
        double eta = done > 0 ? elapsed / done * static_cast<double>(total_ - step) : 0.0;
        if (limit_ > 0) eta = std::min(eta, std::max(0.0, limit_ - elapsed));
        const double fraction = total_ > 0 ? static_cast<double>(step) / static_cast<double>(total_) : 1.0;
        std::string bar;
        if (terminal_) {
            const int width = 20, filled = static_cast<int>(fraction * width);
            bar = "[" + std::string(filled, '#') + std::string(width - filled, '.') + "] ";
        }
        std::fprintf(stderr, "%s%s%lld/%lld %3.0f%%  %.0f img/s  ETA %s  %s%s", terminal_ ? "\r\x1b[K" : "",
                     bar.c_str(), static_cast<long long>(step), static_cast<long long>(total_), 100 * fraction, rate,
                     clock(eta).c_str(), terms.c_str(), terminal_ && !last ? "" : "\n");
        std::fflush(stderr);
    }

    // Ends the bar's line (when something else must be printed).
    void interrupt() {
        if (terminal_) std::fputc('\n', stderr);
    }

private:
    using Clock = std::chrono::steady_clock;
    static double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
    static std::string clock(double s) {
        const long long t = static_cast<long long>(s + 0.5);
        char out[32];
        if (t >= 3600) std::snprintf(out, sizeof out, "%lld:%02lld:%02lld", t / 3600, t / 60 % 60, t % 60);
        else std::snprintf(out, sizeof out, "%lld:%02lld", t / 60, t % 60);
        return out;
    }

    int64_t first_, total_, batch_;
    double limit_, every_;
    bool terminal_;
    Clock::time_point start_, last_;
};

}  // namespace elbo::cli
