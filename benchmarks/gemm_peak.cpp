// The machine's single-precision GEMM peak as Eigen reaches it: C = A B for square float matrices,
// median of several runs, as one JSON line. compare.sh measures it in the same sitting as the models,
// so "the training step reaches x% of the GEMM peak" compares like with like.
//   build/benchmarks/gemm_peak [threads] [n]
#include <omp.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : omp_get_max_threads();
    const Eigen::Index n = argc > 2 ? std::atol(argv[2]) : 2048;
    omp_set_num_threads(threads);
    Eigen::setNbThreads(threads);
    const Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n);
    Eigen::MatrixXf c(n, n);
    std::vector<double> seconds;
    for (int r = 0; r < 7; ++r) {
        const auto start = std::chrono::steady_clock::now();
        c.noalias() = a * b;
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    const double gflops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / seconds[3] / 1e9;
    std::printf("{\"gemm_n\": %ld, \"threads\": %d, \"gemm_gflops\": %.1f, \"check\": %g}\n", static_cast<long>(n),
                threads, gflops, static_cast<double>(c(0, 0)));
    return 0;
}
