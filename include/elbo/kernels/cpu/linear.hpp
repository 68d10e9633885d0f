#pragma once
// linear: y = x w^T + b.  Derivation: docs/gradients.md#linear

#include "elbo/kernels/cpu/common.hpp"

namespace elbo::kernels {

// x [N, I], w [O, I], b [O] or null  ->  y [N, O]
template <class T>
void linear_forward(T* y, const T* x, const T* w, const T* b, int64_t N, int64_t I, int64_t O) {
    MapRow<T> Y(y, N, O);
    Y.noalias() = MapConstRow<T>(x, N, I) * MapConstRow<T>(w, O, I).transpose();
    if (b) Y.rowwise() += Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(b, O);
}

// dx [N, I] += dy w;  dw [O, I] += dy^T x;  db [O] += sum_n dy.  Any of dx, dw, db may be null.
template <class T>
void linear_backward(T* dx, T* dw, T* db, const T* dy, const T* x, const T* w, int64_t N, int64_t I,
                     int64_t O) {
    MapConstRow<T> DY(dy, N, O);
    if (dx) MapRow<T>(dx, N, I).noalias() += DY * MapConstRow<T>(w, O, I);
    if (dw) MapRow<T>(dw, O, I).noalias() += DY.transpose() * MapConstRow<T>(x, N, I);
    if (db) Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(db, O) += DY.colwise().sum();
}

}  // namespace elbo::kernels
