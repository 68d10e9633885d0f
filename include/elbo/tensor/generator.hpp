#pragma once
// Generator: a stream of random numbers, named by a seed and a random::Stream (what the draws are
// for, the step, the item), read in order. Its numbers are Philox4x32-10 blocks (tensor/philox.hpp):
// block k of the stream is a function of (seed, stream, k) alone, so a stream can start anywhere,
// on any thread or device, and two streams never depend on each other.
//
// Hand-written uniforms, integers and normals (Box-Muller) rather than <random>'s distributions,
// whose output the C++ standard leaves to each library: one seed gives one sequence everywhere.
//
// Before Philox (elbo up to commit 6c09e12) the streams were xoshiro256**, seeded by splitmix64
// from the seed: a seed no longer names the same run as it did then (docs/tools.md).

#include <cstdint>
#include <numeric>
#include <vector>

#include "elbo/error.hpp"
#include "elbo/tensor/philox.hpp"

namespace elbo {

using random::Purpose;

class Generator {
public:
    explicit Generator(uint64_t seed = 0, random::Stream stream = {}) : seed_(seed), stream_(stream) {
        check(stream.step < random::max_stream_step, "Generator", "a stream's step must be below 2^56, got ",
              stream.step);
    }

    // Back to the start of the stream, under another seed.
    void manual_seed(uint64_t seed) {
        seed_ = seed;
        position_ = 0;
        words_left_ = 0;
        has_spare_ = false;
    }

    // Continues from block k of the stream: a counter-based stream starts anywhere at no cost.
    void seek(uint64_t block) {
        check(block <= UINT32_MAX, "Generator::seek", "a stream has 2^32 blocks, asked for block ", block);
        position_ = block;
        words_left_ = 0;
        has_spare_ = false;
    }

    uint64_t seed() const { return seed_; }
    const random::Stream& stream() const { return stream_; }

    // 64 uniformly distributed bits: the low then the high word of each block.
    uint64_t next_u64() {
        if (words_left_ == 0) {
            block_ = next_block();
            words_left_ = 2;
        }
        return words_left_-- == 2 ? random::low_word(block_) : random::high_word(block_);
    }

    // Uniform in [0, 1), with 53 random bits.
    double uniform() { return random::unit_interval(next_u64()); }

    // Uniform in [low, high).
    double uniform(double low, double high) { return low + (high - low) * uniform(); }

    // Uniform integer in [0, n), without modulo bias.
    uint64_t below(uint64_t n) {
        check(n > 0, "Generator::below", "expected a positive bound, got 0");
        const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        uint64_t r;
        do r = next_u64(); while (r >= limit);
        return r % n;
    }

    // Standard normal: each pair is one whole block (random::normal_of), so the k-th normal of a
    // stream that draws only normals is random::normal_at(seed, stream, k).
    double normal() {
        if (has_spare_) {
            has_spare_ = false;
            return spare_;
        }
        words_left_ = 0;  // a pair starts on a fresh block
        const random::Block b = next_block();
        spare_ = random::normal_of(b, true);
        has_spare_ = true;
        return random::normal_of(b, false);
    }

    double normal(double mean, double stddev) { return mean + stddev * normal(); }

private:
    random::Block next_block() {
        check(position_ <= UINT32_MAX, "Generator", "the stream is spent: 2^32 blocks (2^33 64-bit draws) drawn");
        return random::block_of(seed_, stream_, static_cast<uint32_t>(position_++));
    }

    uint64_t seed_;
    random::Stream stream_;
    uint64_t position_ = 0;  // the next block
    random::Block block_{};
    int words_left_ = 0;     // words of block_ not yet drawn
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

// The random draws of one training step, named rather than read from a running stream: ε of the
// image at place i among the step's images is the stream (noise, step, i), and permute_dims'
// permutation of latent d the stream (permutation, step, d), all under the run's seed. A step's
// numbers then depend on neither the threads nor how its images are split among processes.
struct StepDraws {
    uint64_t seed = 0;
    int64_t step = 0;
    // This process's first image's place among the step's images, and how many images a batch
    // has over all processes (0: this process's batch is the whole of it).
    int64_t first_image = 0;
    int64_t global_batch = 0;

    // The stream of ε for image i of this process's batch.
    random::Stream noise(int64_t image) const { return stream(Purpose::noise, first_image + image); }

    // The generator of permute_dims' permutation of latent d.
    Generator permutation(int64_t latent) const { return Generator(seed, stream(Purpose::permutation, latent)); }

    // The draws of a second batch of `batch` images in the same step (FactorVAE's), whose places
    // follow the first batch's over all processes.
    StepDraws second_batch(int64_t batch) const {
        StepDraws d = *this;
        d.first_image += global_batch > 0 ? global_batch : batch;
        return d;
    }

    random::Stream stream(Purpose purpose, int64_t item) const {
        check(step >= 0 && static_cast<uint64_t>(step) < random::max_stream_step, "StepDraws",
              "the step must be in [0, 2^56), got ", step);
        check(item >= 0 && item <= static_cast<int64_t>(UINT32_MAX), "StepDraws", "an item must be in [0, 2^32), got ",
              item);
        return random::Stream{purpose, static_cast<uint64_t>(step), static_cast<uint32_t>(item)};
    }
};

}  // namespace elbo
