#pragma once
// The latent layer's ops: reparameterize (a differentiable sample) and permute_dims (FactorVAE's
// shuffle of each latent across the batch).

#include <numeric>

#include "elbo/kernels/cpu/gather.hpp"
#include "elbo/kernels/cpu/gaussian.hpp"
#include "elbo/ops/common.hpp"

namespace elbo {

// z = mu + eps * exp(logvar / 2): a draw from N(mu, exp(logvar)) that gradients pass through.
// mu, logvar, eps [N, D] (any one shape) -> z of that shape
template <class T>
Var<T> reparameterize(const Var<T>& mu, const Var<T>& logvar, const Var<T>& eps) {
    const char* op = "reparameterize";
    const Device device = require_one_device<T>(op, {&mu, &logvar, &eps});
    require_same_shape(op, "mu", mu, "logvar", logvar);
    require_same_shape(op, "mu", mu, "eps", eps);
    const int64_t n = mu.numel();
    Tensor<T> z = Tensor<T>::uninitialized(mu.shape(), device);
    ELBO_KERNEL(device, reparameterize_forward, z.data(), mu.value().data(), logvar.value().data(),
                eps.value().data(), n);
    return Var<T>::from_op(std::move(z), op, {mu, logvar, eps}, [=](Node<T>& self) {
        ELBO_KERNEL(device, reparameterize_backward, self.parent_grad(0), self.parent_grad(1), self.parent_grad(2),
                    self.grad.data(), self.parents[1]->value.data(), self.parents[2]->value.data(), n);
    });
}

// ε ~ N(0, I) of the shape [N, D] of `like`, on its device, row n from image n's stream of
// `draws` (StepDraws::noise): the same numbers on the CPU and the GPU, for any split of the batch.
template <class T>
Var<T> standard_normal_like(const Var<T>& like, const StepDraws& draws) {
    check(like.shape().rank() == 2, "standard_normal_like", "expected a shape [N, D], got ", like.shape());
    const int64_t N = like.shape()[0], D = like.shape()[1];
    check(D <= static_cast<int64_t>(UINT32_MAX), "standard_normal_like", "an image's stream holds 2^32 normals, "
          "asked for ", D);
    const Device device = like.value().device();
    Tensor<T> eps = Tensor<T>::uninitialized(like.shape(), device);
    if (N > 0) draws.noise(N - 1);  // checks that every image's place names a stream
    ELBO_KERNEL(device, standard_normal, eps.data(), N, D, draws.seed, draws.noise(0));
    return Var<T>(std::move(eps));
}

// The same, with eps ~ N(0, I) from `draws`.
template <class T>
Var<T> reparameterize(const Var<T>& mu, const Var<T>& logvar, const StepDraws& draws) {
    return reparameterize(mu, logvar, standard_normal_like(mu, draws));
}

// y[n, d] = z[index[d][n], d]: each column gathers its own rows. z [N, D], index: D rows of N.
template <class T>
Var<T> gather_columns(const Var<T>& z, const std::vector<std::vector<int64_t>>& index) {
    const char* op = "gather_columns";
    const Device device = require_one_device<T>(op, {&z});
    check(z.shape().rank() == 2, op, "expected z [N, D], got ", z.shape());
    const int64_t N = z.shape()[0], D = z.shape()[1];
    check(static_cast<int64_t>(index.size()) == D, op, "expected ", D, " index rows (one per column of ",
          z.shape(), "), got ", index.size());
    std::vector<int64_t> flat;
    flat.reserve(static_cast<size_t>(N * D));
    for (size_t d = 0; d < index.size(); ++d) {
        check(static_cast<int64_t>(index[d].size()) == N, op, "index row ", d, " has ", index[d].size(),
              " entries, expected ", N);
        for (int64_t row : index[d]) {
            check(row >= 0 && row < N, op, "index ", row, " in row ", d, " is outside [0, ", N, ")");
            flat.push_back(row);
        }
    }
    Tensor<T> y = Tensor<T>::uninitialized(z.shape(), device);
    ELBO_KERNEL(device, gather_columns_forward, y.data(), z.value().data(), flat.data(), N, D);
    return Var<T>::from_op(std::move(y), op, {z}, [=](Node<T>& self) {
        if (T* dz = self.parent_grad(0))
            ELBO_KERNEL(device, gather_columns_backward, dz, self.grad.data(), flat.data(), N, D);
    });
}

// FactorVAE's permute_dims: every latent column of z [N, D] shuffled across the batch by its own
// random permutation, which keeps each latent's marginal and breaks their dependence. Latent d's
// permutation comes from its own stream of `draws` (StepDraws::permutation).
template <class T>
Var<T> permute_dims(const Var<T>& z, const StepDraws& draws) {
    check(z.shape().rank() == 2, "permute_dims", "expected z [N, D], got ", z.shape());
    std::vector<std::vector<int64_t>> index;
    for (int64_t d = 0; d < z.shape()[1]; ++d) {
        Generator gen = draws.permutation(d);
        index.push_back(random_permutation(z.shape()[0], gen));
    }
    return gather_columns(z, index);
}

}  // namespace elbo
