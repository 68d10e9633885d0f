// elbo::mpi::World: MPI_COMM_WORLD as a train::Group. Every collective is non-blocking and
// waited on by polling against a deadline, so that a process that died or hangs ends the job with
// a message instead of leaving the others blocked in MPI forever.

#include "elbo/mpi/world.hpp"

#include <mpi.h>

#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <unordered_map>

namespace elbo::mpi {

namespace {

int count_of(int64_t n, const char* what) {
    check(n >= 0 && n <= INT_MAX, "mpi", what, ": ", n, " values are more than one MPI message holds");
    return static_cast<int>(n);
}

// Waits for the requests, polling; past the world's timeout, ends the job naming `what`.
void wait(const World& world, MPI_Request* requests, int count, const std::string& what) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    const auto deadline = start + std::chrono::duration<double>(world.timeout());
    for (;;) {
        int done = 0;
        MPI_Testall(count, requests, &done, MPI_STATUSES_IGNORE);
        if (done) return;
        const auto now = clock::now();
        if (now > deadline)
            world.abort(str("no answer from the other processes within ", world.timeout(), " s while ", what,
                            ": one of them has died or hangs"));
        // Spin for the first millisecond (a small message's round trip), then yield the core.
        if (now - start > std::chrono::milliseconds(1)) std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
}

// Sums gradients over the processes in buckets of about bucket_bytes, each started as soon as
// backward has finished all its parameters' gradients. Buckets are filled from the last parameter
// back (backward finishes the last layers first) and started in order, so that every process
// starts the same collectives in the same order, as MPI requires.
class Buckets final : public train::GradientSync {
public:
    Buckets(const World& world, const std::vector<Var<float>>& parameters, float scale, int64_t bucket_bytes)
        : world_(world), parameters_(parameters), scale_(scale), bucket_of_(parameters.size()),
          ready_(parameters.size(), false) {
        int64_t bytes = 0;
        for (size_t i = parameters.size(); i-- > 0;) {
            const int64_t size = parameters[i].numel() * static_cast<int64_t>(sizeof(float));
            if (buckets_.empty() || (bytes > 0 && bytes + size > bucket_bytes)) {
                buckets_.emplace_back();
                bytes = 0;
            }
            buckets_.back().parameters.push_back(i);
            buckets_.back().values += parameters[i].numel();
            bytes += size;
            bucket_of_[i] = buckets_.size() - 1;
            index_.emplace(parameters[i].node_ptr().get(), i);
        }
    }

    ~Buckets() override {
        // A step that threw between the first bucket and finish(): the collectives must still end.
        for (Bucket& b : buckets_)
            if (b.started && b.request != MPI_REQUEST_NULL) MPI_Wait(&b.request, MPI_STATUS_IGNORE);
    }

    void ready(Node<float>& leaf) override {
        if (auto it = index_.find(&leaf); it != index_.end()) mark(it->second);
    }

    void finish() override {
        for (size_t i = 0; i < parameters_.size(); ++i) mark(i);  // those no gradient reached: zeros
        std::vector<MPI_Request> requests;
        for (Bucket& b : buckets_) requests.push_back(b.request);
        wait(world_, requests.data(), static_cast<int>(requests.size()), "summing gradients");
        for (Bucket& b : buckets_) {
            b.request = MPI_REQUEST_NULL;
            int64_t at = 0;
            for (size_t i : b.parameters) {
                Node<float>& node = parameters_[i].node();
                const int64_t n = node.value.numel();
                Tensor<float> sum = Tensor<float>::uninitialized(node.value.shape());
                for (int64_t k = 0; k < n; ++k) sum[k] = b.flat[static_cast<size_t>(at + k)] * scale_;
                node.grad_buffer().copy_(sum);
                at += n;
            }
        }
    }

private:
    struct Bucket {
        std::vector<size_t> parameters;
        int64_t values = 0;
        size_t ready = 0;
        std::vector<float> flat;
        MPI_Request request = MPI_REQUEST_NULL;
        bool started = false;
    };

    void mark(size_t i) {
        if (ready_[i]) return;
        ready_[i] = true;
        ++buckets_[bucket_of_[i]].ready;
        while (next_ < buckets_.size() && buckets_[next_].ready == buckets_[next_].parameters.size())
            start(buckets_[next_++]);
    }

    void start(Bucket& b) {
        b.flat.assign(static_cast<size_t>(b.values), 0.0f);
        int64_t at = 0;
        for (size_t i : b.parameters) {
            const Var<float>& p = parameters_[i];
            if (p.has_grad()) {
                const Tensor<float> g = p.grad().to(Device::cpu);
                std::copy(g.data(), g.data() + g.numel(), b.flat.begin() + at);
            }
            at += p.numel();
        }
        MPI_Iallreduce(MPI_IN_PLACE, b.flat.data(), count_of(b.values, "a gradient bucket"), MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &b.request);
        b.started = true;
    }

    const World& world_;
    std::vector<Var<float>> parameters_;
    float scale_;
    std::vector<Bucket> buckets_;
    std::vector<size_t> bucket_of_;
    std::vector<bool> ready_;
    std::unordered_map<const Node<float>*, size_t> index_;
    size_t next_ = 0;  // the next bucket to start
};

}  // namespace

bool launched() {
    for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"})
        if (std::getenv(variable)) return true;
    return false;
}

World& World::get() {
    static World world;
    return world;
}

World::World() {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) {
        int provided = 0;  // only the thread that calls elbo's collectives calls MPI
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

World::~World() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}

void World::set_timeout(double seconds) {
    check(seconds > 0, "mpi", "the timeout must be positive, got ", seconds);
    timeout_ = seconds;
}

void World::abort(const std::string& message) const {
    std::fprintf(stderr, "elbo: process %d of %d: %s; ending the job\n", rank_, size_, message.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::abort();
}

void World::sum(double* values, int64_t n) {
    MPI_Request request;
    MPI_Iallreduce(MPI_IN_PLACE, values, count_of(n, "sum"), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD, &request);
    wait(*this, &request, 1, "summing a step's terms");
}

void World::gather(const float* mine, int64_t n, float* all) {
    MPI_Request request;
    const int count = count_of(n, "gather");
    MPI_Iallgather(mine, count, MPI_FLOAT, all, count, MPI_FLOAT, MPI_COMM_WORLD, &request);
    wait(*this, &request, 1, "gathering codes");
}

void World::broadcast(float* values, int64_t n, int root) {
    MPI_Request request;
    MPI_Ibcast(values, count_of(n, "broadcast"), MPI_FLOAT, root, MPI_COMM_WORLD, &request);
    wait(*this, &request, 1, "broadcasting parameters");
}

std::unique_ptr<train::GradientSync> World::gradients(const std::vector<Var<float>>& parameters, float scale) {
    return std::make_unique<Buckets>(*this, parameters, scale, bucket_bytes);
}

}  // namespace elbo::mpi
