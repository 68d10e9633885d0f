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

namespace elbo::mpi {

namespace {

int count_of(int64_t n, const char* what) {
    check(n >= 0 && n <= INT_MAX, "mpi", what, ": ", n, " values are more than one MPI message holds");
    return static_cast<int>(n);
}

// Waits for the requests, polling; past the world's timeout, ends the job naming `what`.
void wait(World& world, MPI_Request* requests, int count, const std::string& what) {
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

// Sums gradients over the processes with one MPI_Iallreduce per bucket (train::BucketedSync), in
// host memory: a gradient on the GPU is copied here first.
class Buckets final : public train::BucketedSync {
public:
    Buckets(World& world, const std::vector<Var<float>>& parameters, float scale, int64_t bucket_bytes)
        : BucketedSync(parameters, bucket_bytes), world_(world), scale_(scale), flat_(buckets().size()),
          requests_(buckets().size(), MPI_REQUEST_NULL) {}

    ~Buckets() override {
        // A step that threw between the first bucket and finish(): the collectives must still end.
        for (MPI_Request& r : requests_)
            if (r != MPI_REQUEST_NULL) MPI_Wait(&r, MPI_STATUS_IGNORE);
    }

    void finish() override {
        start_all();
        wait(world_, requests_.data(), static_cast<int>(requests_.size()), "summing gradients");
        for (size_t k = 0; k < buckets().size(); ++k) {
            int64_t at = 0;
            for (size_t i : buckets()[k].parameters) {
                Node<float>& node = parameters()[i].node();
                const int64_t n = node.value.numel();
                Tensor<float> sum = Tensor<float>::uninitialized(node.value.shape());
                for (int64_t j = 0; j < n; ++j) sum[j] = flat_[k][static_cast<size_t>(at + j)] * scale_;
                node.grad_buffer().copy_(sum);
                at += n;
            }
        }
    }

private:
    void start(Bucket& b) override {
        const size_t k = static_cast<size_t>(&b - buckets().data());
        std::vector<float>& flat = flat_[k];
        flat.assign(static_cast<size_t>(b.values), 0.0f);
        int64_t at = 0;
        for (size_t i : b.parameters) {
            const Var<float>& p = parameters()[i];
            if (p.has_grad()) {
                const Tensor<float> g = p.grad().to(Device::cpu);
                std::copy(g.data(), g.data() + g.numel(), flat.begin() + at);
            }
            at += p.numel();
        }
        MPI_Iallreduce(MPI_IN_PLACE, flat.data(), count_of(b.values, "a gradient bucket"), MPI_FLOAT, MPI_SUM,
                       MPI_COMM_WORLD, &requests_[k]);
    }

    World& world_;
    float scale_;
    std::vector<std::vector<float>> flat_;  // each bucket's gradients, one after another
    std::vector<MPI_Request> requests_;
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
    MPI_Comm node;  // the processes that share this one's memory: its machine
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &local_rank_);
    MPI_Comm_size(node, &local_size_);
    MPI_Comm_free(&node);
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

void World::abort(const std::string& message) {
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
