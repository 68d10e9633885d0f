#pragma once
// Generator: the one seeded source of randomness of a run.
//
// Hand-written (xoshiro256** seeded by splitmix64, Box-Muller for normals) rather than
// std::normal_distribution, whose output the C++ standard leaves to each library: the same seed
// gives the same numbers with every compiler.

#include <cmath>
#include <cstdint>
#include <numbers>
#include <numeric>
#include <vector>

namespace elbo {

class Generator {
public:
    explicit Generator(uint64_t seed = 0) { manual_seed(seed); }

    void manual_seed(uint64_t seed) {
        uint64_t x = seed;
        for (uint64_t& s : state_) s = splitmix64(x);
        has_spare_ = false;
    }

    // 64 uniformly distributed bits.
    uint64_t next_u64() {
        const uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    // Uniform in [0, 1), with 53 random bits.
    double uniform() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

    // Uniform in [low, high).
    double uniform(double low, double high) { return low + (high - low) * uniform(); }

    // Uniform integer in [0, n), without modulo bias.
    uint64_t below(uint64_t n) {
        const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        uint64_t r;
        do r = next_u64(); while (r >= limit);
        return r % n;
    }

    // Standard normal, by Box-Muller; the second value of each pair is kept for the next call.
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        double u1;
        do u1 = uniform(); while (u1 == 0.0);
        const double u2 = uniform();
        const double radius = std::sqrt(-2.0 * std::log(u1));
        const double angle = 2.0 * std::numbers::pi * u2;
        spare_ = radius * std::sin(angle);
        has_spare_ = true;
        return radius * std::cos(angle);
    }

    double normal(double mean, double stddev) { return mean + stddev * normal(); }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    static uint64_t splitmix64(uint64_t& x) {
        uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

    uint64_t state_[4];
    double spare_ = 0.0;
    bool has_spare_ = false;
};

// One random permutation of [0, n) (Fisher-Yates), from `gen`.
inline std::vector<int64_t> random_permutation(int64_t n, Generator& gen) {
    std::vector<int64_t> p(static_cast<size_t>(n));
    std::iota(p.begin(), p.end(), 0);
    for (int64_t i = n - 1; i > 0; --i)
        std::swap(p[static_cast<size_t>(i)], p[gen.below(static_cast<uint64_t>(i + 1))]);
    return p;
}

}  // namespace elbo
