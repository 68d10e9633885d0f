// The machine's single-precision GEMM peak: C = A B for square float matrices, by Eigen (the
// yardstick issue 5 names) and by elbo's own GEMM (kernels/cpu/gemm.hpp), median of several runs,
// as one JSON line. compare.sh measures it in the same sitting as the models, so "the training step
// reaches x% of the GEMM peak" compares like with like.
//   build/benchmarks/gemm_peak [threads] [n]
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "elbo/kernels/cpu/gemm.hpp"

namespace {

// Median GFLOP/s of seven runs of f, a product of n x n matrices.
template <class F>
double gflops(Eigen::Index n, F f) {
    std::vector<double> seconds;
    for (int r = 0; r < 7; ++r) {
        const auto start = std::chrono::steady_clock::now();
        f();
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / seconds[3] / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : omp_get_max_threads();
    const Eigen::Index n = argc > 2 ? std::atol(argv[2]) : 2048;
    omp_set_num_threads(threads);
    Eigen::setNbThreads(threads);
    const Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n);
    Eigen::MatrixXf c(n, n), d(n, n);
    const double eigen = gflops(n, [&] { c.noalias() = a * b; });
    namespace k = elbo::kernels;
    const double elbo = gflops(n, [&] {
        k::gemm(k::col_major(d.data(), n, n), k::col_major(a.data(), n, n), k::col_major(b.data(), n, n), false);
    });
    std::printf("{\"gemm_n\": %ld, \"threads\": %d, \"gemm_gflops\": %.1f, \"elbo_gemm_gflops\": %.1f, "
                "\"max_difference\": %g}\n",
                static_cast<long>(n), threads, eigen, elbo, static_cast<double>((c - d).cwiseAbs().maxCoeff()));
    return 0;
}
