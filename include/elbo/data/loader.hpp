#pragma once
// Loader: batches of a data set in a seeded random order, prepared one batch ahead on a background
// thread while the current one trains.
//
// Epoch e visits every item once, in the order of a permutation drawn from the stream (seed,
// data_order, e) alone, so batch k of a run is the same whether the run went straight there or
// resumed at k (`seek`). Each epoch yields size / batch_size whole batches; the last partial batch is
// dropped, so every batch has the same shape.
//
// Shared by processes (data parallelism, train/group.hpp), each of `shards` loaders holds one
// shard of every batch: batch k of the whole is items [k B, (k + 1) B) of the epoch's order, B =
// shards x batch_size, and shard r's part is the r-th run of batch_size of them. Every shard sees
// the same epochs and orders; together they are the one-process loader of batch B.

#include <future>
#include <functional>

#include "elbo/tensor/tensor.hpp"

namespace elbo::data {

struct Batch {
    Tensor<float> images;          // [batch_size, C, H, W]
    std::vector<int64_t> indices;  // the data set's items in the batch
    int64_t epoch = 0;
    int64_t step = 0;              // batches taken before this one, over all epochs
};

class Loader {
public:
    // Makes the images of the given items, [indices.size(), C, H, W]. Called on the loader's thread.
    using Source = std::function<Tensor<float>(const std::vector<int64_t>& indices)>;

    Loader(int64_t size, int64_t batch_size, uint64_t seed, Source source, int shard = 0, int shards = 1)
        : size_(size), batch_size_(batch_size), seed_(seed), source_(std::move(source)), shard_(shard),
          shards_(shards) {
        check(batch_size > 0, "Loader", "batch size must be positive, got ", batch_size);
        check(shards > 0 && shard >= 0 && shard < shards, "Loader", "expected shard r of n, 0 <= r < n, got shard ",
              shard, " of ", shards);
        check(size >= batch_size * shards, "Loader", "the data set has ", size, " items, fewer than one batch of ",
              batch_size * shards);
        prepare(0);
    }
    ~Loader() {
        if (pending_.valid()) pending_.wait();
    }
    Loader(const Loader&) = delete;
    Loader& operator=(const Loader&) = delete;

    int64_t batches_per_epoch() const { return size_ / (batch_size_ * shards_); }

    // The next batch; the one after it starts loading in the background.
    Batch next() {
        check(pending_.valid(), "Loader", "the previous batch failed to load; seek() to a step to go on");
        Batch b = pending_.get();
        prepare(b.step + 1);
        return b;
    }

    // Continues from batch `step` (as if `step` batches had been taken).
    void seek(int64_t step) {
        check(step >= 0, "Loader::seek", "step must be non-negative, got ", step);
        if (pending_.valid()) pending_.wait();
        prepare(step);
    }

    // The order of the items in epoch e.
    std::vector<int64_t> order(int64_t epoch) const {
        Generator gen(seed_, random::Stream{Purpose::data_order, static_cast<uint64_t>(epoch)});
        return random_permutation(size_, gen);
    }

private:
    void prepare(int64_t step) {
        pending_ = std::async(std::launch::async, [this, step] {
            Batch b;
            b.step = step;
            b.epoch = step / batches_per_epoch();
            const int64_t first = ((step % batches_per_epoch()) * shards_ + shard_) * batch_size_;
            if (b.epoch != cached_epoch_) {  // one permutation per epoch, not per batch
                cached_order_ = order(b.epoch);
                cached_epoch_ = b.epoch;
            }
            b.indices.assign(cached_order_.begin() + first, cached_order_.begin() + first + batch_size_);
            b.images = source_(b.indices);
            check(b.images.rank() >= 1 && b.images.size(0) == batch_size_, "Loader", "the source made ",
                  b.images.shape(), " for ", batch_size_, " items");
            return b;
        });
    }

    int64_t size_, batch_size_;
    uint64_t seed_;
    Source source_;
    int shard_, shards_;
    // Touched only by the one batch in preparation; next() and seek() wait for it first.
    int64_t cached_epoch_ = -1;
    std::vector<int64_t> cached_order_;
    std::future<Batch> pending_;
};

}  // namespace elbo::data
