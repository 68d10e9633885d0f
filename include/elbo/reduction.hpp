#pragma once
// How a loss reduces its per-element values: kept (none), summed, or averaged (mean). Shared by
// the loss kernels, the ops, the models' configurations and the CUDA module.

namespace elbo {

enum class Reduction { none, mean, sum };

inline const char* to_string(Reduction r) {
    return r == Reduction::none ? "none" : r == Reduction::mean ? "mean" : "sum";
}

}  // namespace elbo
