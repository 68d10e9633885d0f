"""elbo's random draws, in Python: the epoch orders, ε and permute_dims' permutations of an elbo run.

Every draw elbo makes is a block of Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random
numbers: as easy as 1, 2, 3", SC 2011), keyed by the run's seed, its counter naming what the draw is
for (docs/tools.md, "One random number generator, its draws named"):

    key     = (seed mod 2^32, seed div 2^32)
    counter = (block k of the stream, item, step mod 2^32, purpose << 24 | step div 2^32)

A stream's 64-bit words are each block's low word (v1 v0) then its high word (v3 v2); a normal is
one whole block, by Box-Muller in double. With these, benchmarks/pytorch_train.py trains on the
images, in the order, with the ε and the permutations that `elbo train --seed S` uses.
"""

import math

import numpy as np

MASK32 = 0xFFFFFFFF
MAX64 = (1 << 64) - 1
PURPOSES = {"general": 0, "init": 1, "data_order": 2, "noise": 3, "permutation": 4, "importance": 5}


def philox4x32_10(counter, key):
    """Ten rounds of Philox4x32 on counters (four arrays of 32-bit values) under key (two ints)."""
    c0, c1, c2, c3 = (np.asarray(c, dtype=np.uint64) & np.uint64(MASK32) for c in counter)
    k0, k1 = np.uint64(key[0] & MASK32), np.uint64(key[1] & MASK32)
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    w0, w1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
    mask, shift = np.uint64(MASK32), np.uint64(32)
    for _ in range(10):
        p0, p1 = m0 * c0, m1 * c2  # 32 x 32 bits: exact in 64
        c0, c1, c2, c3 = (p1 >> shift) ^ c1 ^ k0, p1 & mask, (p0 >> shift) ^ c3 ^ k1, p0 & mask
        k0, k1 = (k0 + w0) & mask, (k1 + w1) & mask
    return c0, c1, c2, c3


def blocks(seed, purpose, step, item, k):
    """Blocks k (an int or array) of the streams (purpose, step, item) (item an int or array)."""
    item = np.asarray(item, dtype=np.uint64)
    k = np.asarray(k, dtype=np.uint64)
    k, item = np.broadcast_arrays(k, item)
    high = (PURPOSES[purpose] << 24) | ((step >> 32) & 0xFFFFFF)
    counter = (k, item, np.full(k.shape, step & MASK32, np.uint64), np.full(k.shape, high, np.uint64))
    return philox4x32_10(counter, (seed & MASK32, seed >> 32))


def words(seed, purpose, step, item, count):
    """The first `count` 64-bit words of the stream (purpose, step, item), as Python ints."""
    v0, v1, v2, v3 = blocks(seed, purpose, step, item, np.arange((count + 1) // 2))
    low = (v1 << np.uint64(32)) | v0
    high = (v3 << np.uint64(32)) | v2
    return np.stack([low, high], axis=1).reshape(-1)[:count].tolist()


def random_permutation(n, seed, purpose, step, item=0):
    """Fisher-Yates over [0, n) as elbo's random_permutation does it, each j below i + 1 without
    modulo bias (a word at or past the largest multiple of i + 1 is drawn again)."""
    p = list(range(n))
    pool = words(seed, purpose, step, item, max(n - 1, 0) + 16)
    at = 0
    for i in range(n - 1, 0, -1):
        m = i + 1
        limit = MAX64 - MAX64 % m
        while True:
            if at == len(pool):
                pool += words(seed, purpose, step, item, 2 * len(pool))[len(pool):]
            r = pool[at]
            at += 1
            if r < limit:
                break
        j = r % m
        p[i], p[j] = p[j], p[i]
    return np.array(p, dtype=np.int64)


def epoch_order(n, seed, epoch):
    """The order of the data set's n items in epoch `epoch` (data::Loader's)."""
    return random_permutation(n, seed, "data_order", epoch)


def normals(seed, purpose, step, first_item, items, count):
    """[items, count] float64: normal k of stream (purpose, step, first_item + i) in row i."""
    k = np.arange(count)
    v0, v1, v2, v3 = blocks(seed, purpose, step, (first_item + np.arange(items))[:, None], (k // 2)[None, :])
    low = (v1 << np.uint64(32)) | v0
    high = (v3 << np.uint64(32)) | v2
    u1 = ((low >> np.uint64(11)) + np.uint64(1)).astype(np.float64) * 2.0**-53  # in (0, 1]
    angle = 2 * math.pi * ((high >> np.uint64(11)).astype(np.float64) * 2.0**-53)
    radius = np.sqrt(-2.0 * np.log(u1))
    return np.where(k % 2 == 1, radius * np.sin(angle), radius * np.cos(angle))


def step_noise(seed, step, first_image, images, latent):
    """ε [images, latent] float32 of a step's images first_image, first_image + 1, ..."""
    return normals(seed, "noise", step, first_image, images, latent).astype(np.float32)


def step_permutations(seed, step, batch, latent):
    """permute_dims' permutations [latent, batch]: row d is latent d's."""
    return np.stack([random_permutation(batch, seed, "permutation", step, d) for d in range(latent)])


if __name__ == "__main__":
    # Random123's known-answer vectors for Philox4x32-10 (kat_vectors): counter, key, answer.
    for counter, key, answer in [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((MASK32,) * 4, (MASK32, MASK32), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]:
        got = tuple(int(v) for v in philox4x32_10(counter, key))
        assert got == answer, (counter, key, [hex(v) for v in got])
    print("Philox4x32-10: Random123's three known answers")
