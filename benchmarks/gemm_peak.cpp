// The machine's single-precision GEMM peak: C = A B for square float matrices, by Eigen (the
// yardstick issue 5 names) and by elbo's own GEMM (kernels/cpu/gemm.hpp), median of several runs,
// as one JSON line. compare.sh measures it in the same sitting as the models, so "the training step
// reaches x% of the GEMM peak" compares like with like.
//   build/benchmarks/gemm_peak [threads] [n]
//   build/benchmarks/gemm_peak [threads] linear [N I O]   a Linear layer's three GEMMs (64 1000 1000)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "elbo/kernels/cpu/gemm.hpp"

namespace {

// Median GFLOP/s of seven runs of f, a product of m x k and k x n matrices.
template <class F>
double gflops(Eigen::Index m, Eigen::Index n, Eigen::Index k, F f) {
    std::vector<double> seconds;
    for (int r = 0; r < 7; ++r) {
        const auto start = std::chrono::steady_clock::now();
        f();
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(seconds.begin(), seconds.end());
    return 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) / seconds[3] / 1e9;
}
template <class F>
double gflops(Eigen::Index n, F f) {
    return gflops(n, n, n, f);
}

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A Linear layer's three products (x [N, I], w [O, I]), as elbo's linear kernels call the GEMM,
// beside Eigen's product of the same matrices: the forward y = x w^T, the input gradient dy w and
// the weight gradient dy^T x.
int linear(int threads, Eigen::Index N, Eigen::Index I, Eigen::Index O) {
    namespace k = elbo::kernels;
    const RowMajor x = RowMajor::Random(N, I), w = RowMajor::Random(O, I), dy = RowMajor::Random(N, O);
    RowMajor y(N, O), dx(N, I), dw(O, I);
    const double forward = gflops(N, O, I, [&] {
        k::gemm(k::row_major(y.data(), N, O), k::row_major(x.data(), N, I), k::transposed(w.data(), O, I), false);
    });
    const double input = gflops(N, I, O, [&] {
        k::gemm(k::row_major(dx.data(), N, I), k::row_major(dy.data(), N, O), k::row_major(w.data(), O, I), false);
    });
    const double weight = gflops(O, I, N, [&] {
        k::gemm(k::row_major(dw.data(), O, I), k::transposed(dy.data(), N, O), k::row_major(x.data(), N, I), false);
    });
    const double eigen_forward = gflops(N, O, I, [&] { y.noalias() = x * w.transpose(); });
    const double eigen_input = gflops(N, I, O, [&] { dx.noalias() = dy * w; });
    const double eigen_weight = gflops(O, I, N, [&] { dw.noalias() = dy.transpose() * x; });
    std::printf("{\"linear\": [%ld, %ld, %ld], \"threads\": %d, \"elbo_gflops\": {\"forward\": %.1f, "
                "\"input_grad\": %.1f, \"weight_grad\": %.1f}, \"eigen_gflops\": {\"forward\": %.1f, "
                "\"input_grad\": %.1f, \"weight_grad\": %.1f}}\n",
                static_cast<long>(N), static_cast<long>(I), static_cast<long>(O), threads, forward, input, weight,
                eigen_forward, eigen_input, eigen_weight);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : omp_get_max_threads();
    omp_set_num_threads(threads);
    Eigen::setNbThreads(threads);
    if (argc > 2 && std::string(argv[2]) == "linear")  // FactorVAE's discriminator layer by default
        return linear(threads, argc > 3 ? std::atol(argv[3]) : 64, argc > 4 ? std::atol(argv[4]) : 1000,
                      argc > 5 ? std::atol(argv[5]) : 1000);
    const Eigen::Index n = argc > 2 ? std::atol(argv[2]) : 2048;
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
