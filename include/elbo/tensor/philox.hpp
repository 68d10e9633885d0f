#pragma once
// Philox4x32-10, the counter-based generator of Random123 and cuRAND (Salmon, Moraes, Dror and
// Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a function from a 128-bit counter
// and a 64-bit key to 128 random bits, ten rounds of two 32 x 32 -> 64-bit multiplies.
//
// Every random number elbo draws is one of its outputs: the key is the run's seed, the counter
// names the draw (what it is for, the step, the item it belongs to, its place in that item's
// stream). A draw is then a function of its name, not of how many draws came before it: threads,
// the split of a batch, ranks and devices cannot change it. This header is plain C++ that nvcc
// compiles too, so the CUDA module computes the same numbers from the same names.

#include <cmath>
#include <cstdint>

#include "elbo/host_device.hpp"

namespace elbo::random {

// 128 bits: a counter going in, or the random bits coming out.
struct Block {
    uint32_t v[4];
};

// The output of Philox4x32-10 for counter `c` under key (k0, k1).
ELBO_HOST_DEVICE constexpr Block philox4x32_10(Block c, uint32_t k0, uint32_t k1) {
    constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;  // the multipliers
    constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;  // the Weyl increments of the key
    for (int round = 0; round < 10; ++round) {
        const uint64_t p0 = static_cast<uint64_t>(M0) * c.v[0], p1 = static_cast<uint64_t>(M1) * c.v[2];
        const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
        const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
        c = Block{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
        k0 += W0;
        k1 += W1;
    }
    return c;
}

// What a stream of draws is for. Part of every counter, so that two purposes never share a draw.
enum class Purpose : uint32_t {
    general = 0,      // a Generator made from a seed alone: evaluation, tests, users' own draws
    init = 1,         // a model's initial weights
    data_order = 2,   // the order of an epoch's images (step = the epoch)
    noise = 3,        // ε of one image (item = its place among the step's images)
    permutation = 4,  // permute_dims' permutation of one latent (item = the latent)
    importance = 5,   // the likelihood's importance samples of one image (item = its place)
};

// The name of one stream: its purpose, the training step (or epoch) and the item. Block k of the
// stream under seed s is philox4x32_10({k, item, step mod 2^32, purpose << 24 | step >> 32}, s).
struct Stream {
    Purpose purpose = Purpose::general;
    uint64_t step = 0;  // below 2^56
    uint32_t item = 0;
};

inline constexpr uint64_t max_stream_step = uint64_t(1) << 56;

// Block k of stream s under `seed`.
ELBO_HOST_DEVICE constexpr Block block_of(uint64_t seed, Stream s, uint32_t k) {
    const Block counter{{k, s.item, static_cast<uint32_t>(s.step),
                         static_cast<uint32_t>(s.purpose) << 24 | static_cast<uint32_t>(s.step >> 32 & 0xFFFFFFu)}};
    return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// The two 64-bit words of a block.
ELBO_HOST_DEVICE constexpr uint64_t low_word(Block b) { return static_cast<uint64_t>(b.v[1]) << 32 | b.v[0]; }
ELBO_HOST_DEVICE constexpr uint64_t high_word(Block b) { return static_cast<uint64_t>(b.v[3]) << 32 | b.v[2]; }

// Uniform in [0, 1) from the top 53 bits of a word.
ELBO_HOST_DEVICE constexpr double unit_interval(uint64_t word) { return static_cast<double>(word >> 11) * 0x1.0p-53; }

// Normal k of a stream: block k / 2 gives u1 in (0, 1] and u2 in [0, 1), and Box-Muller turns them
// into the pair sqrt(-2 log u1) (cos 2 pi u2, sin 2 pi u2), of which k takes the first when even.
// In double on both devices; the CUDA module's log, cos and sin may differ from glibc's in the
// last bit of a double, which rounding to float hides but for a draw in about 2^29.
ELBO_HOST_DEVICE inline double normal_of(Block b, bool second) {
    const double u1 = static_cast<double>((low_word(b) >> 11) + 1) * 0x1.0p-53;
    const double angle = 6.283185307179586476925 * unit_interval(high_word(b));
    const double radius = sqrt(-2.0 * log(u1));
    return radius * (second ? sin(angle) : cos(angle));
}

ELBO_HOST_DEVICE inline double normal_at(uint64_t seed, Stream s, uint32_t k) {
    return normal_of(block_of(seed, s, k / 2), k % 2 == 1);
}

}  // namespace elbo::random
