#pragma once
// The threads elbo's CPU kernels run on: OpenMP's team. Results are bit-identical for every count
// on one build (docs/architecture.md), so this changes the speed alone.

#include <omp.h>

namespace elbo {

// Uses `threads` threads from now on; 0 or less keeps OpenMP's default (OMP_NUM_THREADS, or one per core).
inline void set_threads(int threads) {
    if (threads > 0) omp_set_num_threads(threads);
}

// The threads the kernels will use.
inline int threads() { return omp_get_max_threads(); }

}  // namespace elbo
