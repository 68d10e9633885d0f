#include "helpers.hpp"

using namespace elbo;

TEST_SUITE("tensor") {

TEST_CASE("a freed tensor's buffer serves the next tensor of its size") {
    release_cached_memory();
    CHECK(memory_stats().cached_bytes == 0);
    { Tensor<float> a(Shape{1000}); }
    CHECK(memory_stats().cached_bytes == 4032);  // 4000 bytes, rounded up to whole cache lines
    const MemoryStats before = memory_stats();
    {
        Tensor<float> b(Shape{1000});
        CHECK(memory_stats().system_allocations == before.system_allocations);
        CHECK(memory_stats().reuses == before.reuses + 1);
        CHECK(b[999] == 0.0f);  // a reused buffer is still zeroed where the constructor promises
        Tensor<double> c(Shape{1000});  // another size: a new buffer
        CHECK(memory_stats().system_allocations == before.system_allocations + 1);
    }
    release_cached_memory();
    CHECK(memory_stats().cached_bytes == 0);
}

TEST_CASE("a tensor is zero-filled, row-major, and indexed by at()") {
    Tensor<float> t(Shape{2, 3, 4});
    CHECK(t.numel() == 24);
    CHECK(t.rank() == 3);
    for (float v : t) CHECK(v == 0.0f);
    t.at({1, 2, 3}) = 5.0f;
    CHECK(t[1 * 12 + 2 * 4 + 3] == 5.0f);
    CHECK(t.device() == Device::cpu);
}

TEST_CASE("reshape and slice are views that share storage and clone copies") {
    Tensor<double> t = Tensor<double>::from_vector(Shape{2, 3}, {0, 1, 2, 3, 4, 5});
    Tensor<double> r = t.reshape({3, -1});
    CHECK(r.shape() == Shape{3, 2});
    CHECK(r.shares_storage_with(t));
    r[5] = 50;
    CHECK(t.at({1, 2}) == 50);

    Tensor<double> row = t.slice(1, 2);
    CHECK(row.shape() == Shape{1, 3});
    CHECK(row[0] == 3);
    row[1] = 40;
    CHECK(t.at({1, 1}) == 40);

    Tensor<double> c = t.clone();
    c[0] = -1;
    CHECK(t[0] == 0);
    CHECK_FALSE(c.shares_storage_with(t));
}

TEST_CASE("from_vector and to_vector round-trip and cast converts") {
    std::vector<float> v{1.5f, -2.0f, 3.25f};
    Tensor<float> t = Tensor<float>::from_vector(Shape{3}, v);
    CHECK(t.to_vector() == v);
    Tensor<double> d = t.cast<double>();
    CHECK(d[2] == 3.25);
    CHECK(Tensor<float>::full(Shape{2}, 7.0f)[1] == 7.0f);
    CHECK(Tensor<float>::scalar(2.0f).item() == 2.0f);
}

TEST_CASE("a seeded generator repeats itself and draws the right moments") {
    Generator a(42), b(42), c(43);
    CHECK(a.next_u64() == b.next_u64());
    CHECK(a.next_u64() != c.next_u64());

    Generator gen(7);
    Tensor<double> n(Shape{200000});
    n.normal_(gen, 1.0, 2.0);
    double mean = 0, var = 0;
    for (double v : n) mean += v;
    mean /= n.numel();
    for (double v : n) var += (v - mean) * (v - mean);
    var /= n.numel();
    // Standard errors: 2/sqrt(2e5) = 0.0045 for the mean, about 0.013 for the variance.
    CHECK(mean == doctest::Approx(1.0).epsilon(0.02));
    CHECK(var == doctest::Approx(4.0).epsilon(0.02));

    Tensor<float> u(Shape{100000});
    u.uniform_(gen, -1.0, 3.0);
    float lo = 10, hi = -10, sum = 0;
    for (float v : u) lo = std::min(lo, v), hi = std::max(hi, v), sum += v;
    CHECK(lo >= -1.0f);
    CHECK(hi < 3.0f);
    CHECK(sum / u.numel() == doctest::Approx(1.0).epsilon(0.02));

    for (int i = 0; i < 1000; ++i) CHECK(gen.below(7) < 7);
}

// Known answers of Philox4x32-10 from Random123's kat_vectors (the counter, the key, the output).
TEST_CASE("Philox4x32-10 gives Random123's known answers") {
    struct Known {
        random::Block counter;
        uint32_t k0, k1;
        random::Block out;
    };
    const Known known[] = {
        {{{0, 0, 0, 0}}, 0, 0, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
        {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, 0xffffffff, 0xffffffff,
         {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
        {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, 0xa4093822, 0x299f31d0,
         {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
    };
    for (const Known& k : known) {
        const random::Block out = random::philox4x32_10(k.counter, k.k0, k.k1);
        for (int i = 0; i < 4; ++i) CHECK(out.v[i] == k.out.v[i]);
    }
    // constexpr: the compiler computes it too.
    static_assert(random::philox4x32_10({{0, 0, 0, 0}}, 0, 0).v[0] == 0x6627e8d5);
}

TEST_CASE("a generator reads its stream's Philox blocks in order, and each name gives its own stream") {
    const random::Stream s{Purpose::noise, 5, 3};
    Generator gen(9, s);
    for (uint32_t k = 0; k < 3; ++k) {
        const random::Block b = random::block_of(9, s, k);
        CHECK(gen.next_u64() == random::low_word(b));
        CHECK(gen.next_u64() == random::high_word(b));
    }
    // Normals are whole blocks: the k-th normal of a fresh stream is normal_at(k), wherever it is drawn.
    Generator normals(9, s);
    for (uint32_t k = 0; k < 6; ++k) CHECK(normals.normal() == random::normal_at(9, s, k));
    // The seed, the purpose, the step (its high bits too) and the item each change every draw.
    const uint64_t first = Generator(9, s).next_u64();
    CHECK(Generator(10, s).next_u64() != first);
    CHECK(Generator(9, {Purpose::permutation, 5, 3}).next_u64() != first);
    CHECK(Generator(9, {Purpose::noise, 5 + (uint64_t(1) << 32), 3}).next_u64() != first);
    CHECK(Generator(9, {Purpose::noise, 5, 4}).next_u64() != first);
    // A stream read from block k on is the same stream.
    Generator later(9, s);
    later.seek(2);
    CHECK(later.next_u64() == random::low_word(random::block_of(9, s, 2)));
    // u1 is never 0: the block of zeros gives the largest radius, sqrt(-2 log 2^-53), not infinity.
    CHECK(random::normal_of(random::Block{{0, 0, 0, 0}}, false) == std::sqrt(-2.0 * std::log(0x1.0p-53)));
}

TEST_CASE("a spent stream, a step past 2^56 and an empty range are errors, not repeats") {
    Generator gen(1);
    gen.seek(UINT32_MAX);
    gen.next_u64();
    gen.next_u64();
    CHECK(testing::error_of([&] { gen.next_u64(); }) ==
          "Generator: the stream is spent: 2^32 blocks (2^33 64-bit draws) drawn");
    CHECK(testing::error_of([&] { Generator(1).seek(uint64_t(1) << 32); }) ==
          "Generator::seek: a stream has 2^32 blocks, asked for block 4294967296");
    CHECK(testing::error_of([] { Generator(1, {Purpose::noise, uint64_t(1) << 56}); }) ==
          "Generator: a stream's step must be below 2^56, got 72057594037927936");
    CHECK(testing::error_of([] { Generator(1).below(0); }) == "Generator::below: expected a positive bound, got 0");
    CHECK(testing::error_of([] { StepDraws{.step = -1}.noise(0); }) == "StepDraws: the step must be in [0, 2^56), got -1");
    CHECK(testing::error_of([] { StepDraws{}.noise(int64_t(1) << 32); }) ==
          "StepDraws: an item must be in [0, 2^32), got 4294967296");
}

TEST_CASE("tensor misuse gives clear errors") {
    Tensor<float> t(Shape{2, 3});
    CHECK(testing::error_of([&] { t.reshape({4, 2}); }) ==
          "reshape: shape [4,2] holds 8 elements, the tensor [2,3] has 6");
    CHECK(testing::error_of([&] { t.reshape({-1, -1}); }).find("only one size may be -1") != std::string::npos);
    CHECK(testing::error_of([&] { t.at({2, 0}); }) ==
          "Tensor::at: index 2 is out of range for axis 0 of shape [2,3]");
    CHECK(testing::error_of([&] { t.at({0}); }) == "Tensor::at: expected 2 indices for shape [2,3], got 1");
    CHECK(testing::error_of([&] { t.slice(1, 3); }) == "slice: range [1, 3) is outside the first axis of [2,3]");
    CHECK(testing::error_of([&] { Tensor<float>::from_vector(Shape{2}, {1.0f}); }) ==
          "Tensor::from_vector: shape [2] holds 2 elements, the vector has 1");
    CHECK(testing::error_of([&] { Shape{2, -3}; }) == "Shape: sizes must be non-negative, got [2,-3]");
    CHECK(testing::error_of([&] { t.item(); }) == "Tensor::item: expected one element, got shape [2,3]");
}

TEST_CASE("without the CUDA module, a tensor asked onto the GPU is a clear error, and to(cpu) is a no-op") {
    const Tensor<float> t(Shape{2, 3});
    CHECK(t.to(Device::cpu).shares_storage_with(t));
    const std::string no_module =
        "this build has no CUDA module (configure elbo with -DELBO_CUDA=ON and link elbo::cuda)";
    CHECK(testing::error_of([&] { t.to(Device::cuda); }) == "Tensor::to: " + no_module);
    CHECK(testing::error_of([&] { Tensor<float>::uninitialized(Shape{2}, Device::cuda); }) == "Tensor: " + no_module);
    CHECK(testing::error_of([&] { Tensor<double>::zeros(Shape{2}, Device::cuda); }) == "Tensor: " + no_module);
    CHECK(testing::error_of([&] { Tensor<float>::full(Shape{2}, 1.0f, Device::cuda); }) == "Tensor: " + no_module);
    CHECK(testing::error_of([&] { memory_stats(Device::cuda); }) == "memory_stats: " + no_module);
    CHECK(testing::error_of([&] { synchronize(Device::cuda); }) == "synchronize: " + no_module);
    synchronize(Device::cpu);  // nothing to wait for
    CHECK(memory_stats(Device::cpu).system_allocations == memory_stats().system_allocations);
}

TEST_CASE("copy_ copies values into a tensor or a view of one, of the same shape only") {
    Tensor<float> t(Shape{4, 3});
    const Tensor<float> rows = Tensor<float>::full(Shape{2, 3}, 7.0f, Device::cpu);
    t.slice(1, 3).copy_(rows);
    CHECK(t.to_vector() == std::vector<float>{0, 0, 0, 7, 7, 7, 7, 7, 7, 0, 0, 0});
    CHECK(testing::error_of([&] { t.copy_(rows); }) ==
          "Tensor::copy_: expected a source of shape [4,3], got [2,3]");
}

}
