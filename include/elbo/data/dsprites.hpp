#pragma once
// dSprites (Matthey et al. 2017), generated procedurally: the 737,280 binary 64x64 images of
// DeepMind's data set, in its index order, each with its ground-truth factors. Nothing is
// downloaded. The geometry is ../shared/reference/dsprites.md's, fitted to DeepMind's renders.
//
//   factors  shape (square, ellipse, heart) x scale (0.5 .. 1.0, 6) x orientation (0 .. 2π, 40,
//            both ends included) x posX (0 .. 1, 32) x posY (0 .. 1, 32); posY varies fastest
//   pixel    (column i, row j) is 1 iff its centre (i + 0.5, j + 0.5) is strictly inside the shape

#include <array>
#include <cmath>
#include <numbers>
#include <vector>

#include "elbo/tensor/tensor.hpp"

namespace elbo::data {

// The class index of each factor (0-based), in DeepMind's order.
struct DSpritesFactors {
    int64_t shape = 0;        // 0 square, 1 ellipse, 2 heart
    int64_t scale = 0;        // 0..5
    int64_t orientation = 0;  // 0..39
    int64_t pos_x = 0;        // 0..31
    int64_t pos_y = 0;        // 0..31

    friend bool operator==(const DSpritesFactors&, const DSpritesFactors&) = default;
};

class DSprites {
public:
    static constexpr int64_t image_size = 64;
    static constexpr std::array<int64_t, 5> factor_sizes{3, 6, 40, 32, 32};
    static constexpr int64_t count = 3 * 6 * 40 * 32 * 32;  // 737,280

    DSprites() {
        // The upright heart at scale 1 as a closed polygon (the parametric heart, 720 points).
        constexpr int points = 720;
        for (int k = 0; k < points; ++k) {
            const double t = 2 * std::numbers::pi * k / points;
            const double x = 16 * std::pow(std::sin(t), 3);
            const double y = 13 * std::cos(t) - 5 * std::cos(2 * t) - 2 * std::cos(3 * t) - std::cos(4 * t);
            heart_.push_back({0.6 * x, -0.6625 * y - 1.45});
        }
    }

    static DSpritesFactors factors(int64_t index) {
        check(index >= 0 && index < count, "dsprites", "index ", index, " is outside [0, ", count, ")");
        DSpritesFactors f;
        f.pos_y = index % 32;
        f.pos_x = index / 32 % 32;
        f.orientation = index / 1024 % 40;
        f.scale = index / 40960 % 6;
        f.shape = index / 245760;
        return f;
    }

    static int64_t index(const DSpritesFactors& f) {
        check(f.shape >= 0 && f.shape < 3 && f.scale >= 0 && f.scale < 6 && f.orientation >= 0 && f.orientation < 40 &&
                  f.pos_x >= 0 && f.pos_x < 32 && f.pos_y >= 0 && f.pos_y < 32,
              "dsprites", "factor indices out of range: shape ", f.shape, ", scale ", f.scale, ", orientation ",
              f.orientation, ", posX ", f.pos_x, ", posY ", f.pos_y);
        return 245760 * f.shape + 40960 * f.scale + 1024 * f.orientation + 32 * f.pos_x + f.pos_y;
    }

    // The factors' values: scale in [0.5, 1], orientation in [0, 2π], positions in [0, 1].
    static double scale_value(int64_t k) { return 0.5 + 0.1 * static_cast<double>(k); }
    static double orientation_value(int64_t k) { return 2 * std::numbers::pi * static_cast<double>(k) / 39.0; }
    static double position_value(int64_t k) { return static_cast<double>(k) / 31.0; }

    // Writes image `index` as 64 x 64 values in {0, 1} to out.
    template <class T>
    void render(int64_t index, T* out) const {
        const DSpritesFactors f = factors(index);
        const double s = scale_value(f.scale), theta = orientation_value(f.orientation);
        const double cx = 16 + 32 * position_value(f.pos_x), cy = 16 + 32 * position_value(f.pos_y);
        const double c = std::cos(theta), sn = std::sin(theta);
        const double reach = 14.0 * s;  // every shape lies within this distance of its centre
        std::vector<double> crossings;
        for (int64_t j = 0; j < image_size; ++j) {
            const double dy = j + 0.5 - cy;
            T* row = out + j * image_size;
            if (f.shape == 2) crossings = heart_crossings(dy, c / s, sn / s);
            for (int64_t i = 0; i < image_size; ++i) {
                const double dx = i + 0.5 - cx;
                bool inside = false;
                if (f.shape == 2) {
                    // Even-odd rule along the row: inside after an odd number of boundary crossings.
                    for (double x : crossings) inside ^= x < dx;
                } else if (dx * dx + dy * dy < reach * reach) {
                    const double u = (c * dx - sn * dy) / s, v = (sn * dx + c * dy) / s;  // upright, scale 1
                    inside = f.shape == 0 ? std::abs(u) < 9.6 && std::abs(v) < 9.6
                                          : (u / 12.76) * (u / 12.76) + (v / 7.22) * (v / 7.22) < 1.0;
                }
                row[i] = inside ? T(1) : T(0);
            }
        }
    }

    // Images [N, 1, 64, 64] of the given indices.
    template <class T = float>
    Tensor<T> images(const std::vector<int64_t>& indices) const {
        Tensor<T> out = Tensor<T>::uninitialized(Shape{static_cast<int64_t>(indices.size()), 1, image_size, image_size});
#pragma omp parallel for schedule(static)
        for (size_t n = 0; n < indices.size(); ++n) render(indices[n], out.data() + n * image_size * image_size);
        return out;
    }

private:
    // Where the pixel row at offset dy from the centre crosses the heart's boundary, as offsets dx
    // along the row. A row point (dx, dy) sits at (u, v) = (a_u + b_u dx, a_v + b_v dx) in the
    // upright heart's frame at scale 1, with b = (cos θ, sin θ) / s; each polygon edge P + λ(Q - P),
    // λ in [0, 1), that this line meets gives one crossing (Cramer's rule on the 2x2 system).
    std::vector<double> heart_crossings(double dy, double cos_s, double sin_s) const {
        const double au = -sin_s * dy, av = cos_s * dy, bu = cos_s, bv = sin_s;
        std::vector<double> out;
        for (size_t a = 0, b = heart_.size() - 1; a < heart_.size(); b = a++) {
            const auto [pu, pv] = heart_[b];
            const double eu = heart_[a].first - pu, ev = heart_[a].second - pv;
            const double det = eu * bv - bu * ev;
            if (det == 0) continue;  // the edge runs along the row
            const double ru = pu - au, rv = pv - av;
            const double lambda = (bu * rv - bv * ru) / det;
            if (lambda >= 0 && lambda < 1) out.push_back((eu * rv - ev * ru) / det);
        }
        return out;
    }

    std::vector<std::pair<double, double>> heart_;
};

}  // namespace elbo::data
