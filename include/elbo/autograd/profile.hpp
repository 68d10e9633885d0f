#pragma once
// An op-level profile: while one is running, every op's forward and every recorded backward adds
// its wall time under the op's name. `elbo bench --profile` prints it.
//
//   profile::start();  ...train...  profile::stop();  std::fputs(profile::table().c_str(), stderr);
//
// An op's forward runs from its require_one_device() check (every op's first call, which marks the clock)
// to its Var::from_op() (its last), so the time is the op's own, kernels and allocation included.
// Off, it costs one branch per op. Single-threaded use: ops are called from one thread.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace elbo::profile {

struct OpTime {
    double forward_ms = 0, backward_ms = 0;
    int64_t calls = 0;
};

namespace detail {

using Clock = std::chrono::steady_clock;

struct State {
    bool on = false;
    Clock::time_point mark;
    std::map<std::string, OpTime> ops;
};

inline State& state() {
    static State s;
    return s;
}

inline double ms_since(Clock::time_point t) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace detail

inline bool running() { return detail::state().on; }

inline void start() {
    detail::state().ops.clear();
    detail::state().on = true;
}

inline void stop() { detail::state().on = false; }

inline const std::map<std::string, OpTime>& ops() { return detail::state().ops; }

// An op begins (called by require_one_device).
inline void op_begins() {
    if (running()) detail::state().mark = detail::Clock::now();
}

// An op's forward ends (called by Var::from_op).
inline void op_ends(const char* op) {
    if (!running()) return;
    OpTime& t = detail::state().ops[op];
    t.forward_ms += detail::ms_since(detail::state().mark);
    ++t.calls;
}

// Runs one node's backward, timed under its op.
template <class F>
void timed_backward(const char* op, F&& backward) {
    if (!running()) return backward();
    const auto start = detail::Clock::now();
    backward();
    detail::state().ops[op].backward_ms += detail::ms_since(start);
}

// The profile as a table, the most expensive op first, times divided by `steps`.
inline std::string table(int64_t steps = 1) {
    std::vector<std::pair<std::string, OpTime>> rows(ops().begin(), ops().end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) {
        return a.second.forward_ms + a.second.backward_ms > b.second.forward_ms + b.second.backward_ms;
    });
    double total = 0;
    for (const auto& [op, t] : rows) total += t.forward_ms + t.backward_ms;
    const double per = 1.0 / static_cast<double>(std::max<int64_t>(1, steps));
    std::string out;
    char line[160];
    std::snprintf(line, sizeof line, "%-22s %8s %12s %12s %12s %7s\n", "op", "calls", "forward ms", "backward ms",
                  "total ms", "share");
    out += line;
    for (const auto& [op, t] : rows) {
        const double sum = t.forward_ms + t.backward_ms;
        std::snprintf(line, sizeof line, "%-22s %8.1f %12.2f %12.2f %12.2f %6.1f%%\n", op.c_str(),
                      static_cast<double>(t.calls) * per, t.forward_ms * per, t.backward_ms * per, sum * per,
                      total > 0 ? 100 * sum / total : 0.0);
        out += line;
    }
    std::snprintf(line, sizeof line, "%-22s %8s %12s %12s %12.2f  (per step, %lld steps)\n", "all ops", "", "", "",
                  total * per, static_cast<long long>(steps));
    return out + line;
}

// The median wall time in milliseconds of `repeats` calls of f, after `warmup` untimed ones: what
// `elbo bench` and benchmarks/bench_layers report.
template <class F>
double median_ms(int64_t warmup, int64_t repeats, F f) {
    for (int64_t i = 0; i < warmup; ++i) f();
    std::vector<double> ms;
    for (int64_t i = 0; i < repeats; ++i) {
        const auto start = detail::Clock::now();
        f();
        ms.push_back(std::chrono::duration<double, std::milli>(detail::Clock::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

}  // namespace elbo::profile
