// The CUDA tests' program. `--test-suite=gpu` needs a GPU: where there is none it says why and exits
// with 77, which ctest reports as skipped. `--test-suite=no_gpu` runs anywhere.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <string_view>

#include "elbo/elbo.hpp"

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i)
        if (std::string_view(argv[i]) == "--test-suite=gpu" && elbo::cuda::device_count() == 0) {
            std::printf("skipped: the CUDA kernel tests need a GPU, and this machine has none (%s)\n",
                        elbo::cuda::why_no_device());
            return 77;
        }
    return doctest::Context(argc, argv).run();
}
