// Times the seed VAE's convolutions (3x64x64 images, batch 64 by default), forward and backward,
// and prints one JSON line per layer and pass: median milliseconds and achieved GFLOP/s.
//   build/benchmarks/bench_conv [batch] [repeats]
// Compare with PyTorch in the same sitting; absolute times drift on shared machines.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "elbo/elbo.hpp"

using namespace elbo;

namespace {

double median_ms(int repeats, const std::function<void()>& f) {
    f();  // warm-up
    std::vector<double> ms;
    for (int r = 0; r < repeats; ++r) {
        const auto start = std::chrono::steady_clock::now();
        f();
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
}

struct Layer {
    const char* name;
    bool transposed;
    int64_t in_channels, out_channels, in_size;
};

}  // namespace

int main(int argc, char** argv) {
    const int64_t N = argc > 1 ? std::atoll(argv[1]) : 64;
    const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
    const Layer layers[] = {
        {"encoder.conv1", false, 3, 32, 64},   {"encoder.conv2", false, 32, 64, 32},
        {"encoder.conv3", false, 64, 128, 16}, {"decoder.deconv1", true, 128, 64, 8},
        {"decoder.deconv2", true, 64, 32, 16}, {"decoder.deconv3", true, 32, 3, 32},
    };
    Generator gen(0);
    for (const Layer& l : layers) {
        const int64_t out_size = l.transposed ? l.in_size * 2 : l.in_size / 2;
        Var<float> x(Tensor<float>(Shape{N, l.in_channels, l.in_size, l.in_size}).normal_(gen), true);
        const Shape ws = l.transposed ? Shape{l.in_channels, l.out_channels, 4, 4} : Shape{l.out_channels, l.in_channels, 4, 4};
        Var<float> w(Tensor<float>(ws).normal_(gen, 0.0, 0.05), true);
        Var<float> b(Tensor<float>(Shape{l.out_channels}), true);
        auto forward = [&] {
            return l.transposed ? conv_transpose2d(x, w, b, {.stride = 2, .padding = 1})
                                : conv2d(x, w, b, {.stride = 2, .padding = 1});
        };
        // One multiply-add per weight element and per position of the larger (strided) image.
        const int64_t big = std::max(l.in_size, out_size);
        const double flop = 2.0 * N * l.in_channels * l.out_channels * 16 * (big / 2) * (big / 2);
        const Tensor<float> seed = Tensor<float>::full(Shape{N, l.out_channels, out_size, out_size}, 1.0f);
        const double fwd = median_ms(repeats, [&] { NoGrad g; forward(); });
        const double fwd_bwd = median_ms(repeats, [&] { backward(forward(), seed); });
        const double bwd = fwd_bwd - fwd;
        std::printf("{\"layer\": \"%s\", \"batch\": %lld, \"threads\": %d, \"forward_ms\": %.3f, \"forward_gflops\": %.1f, "
                    "\"backward_ms\": %.3f, \"backward_gflops\": %.1f}\n",
                    l.name, (long long)N, omp_get_max_threads(), fwd, flop / fwd / 1e6, bwd, 2 * flop / bwd / 1e6);
    }
    return 0;
}
