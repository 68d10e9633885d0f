#pragma once
// dSprites (Matthey et al. 2017), generated procedurally: the 737,280 binary 64x64 images of
// DeepMind's data set, in its index order, each with its ground-truth factors. Nothing is
// downloaded. The geometry is ../shared/reference/dsprites.md's, fitted to DeepMind's renders.
//
//   factors  shape (square, ellipse, heart) x scale (0.5 .. 1.0, 6) x orientation (0 .. 2π, 40,
//            both ends included) x posX (0 .. 1, 32) x posY (0 .. 1, 32); posY varies fastest
//   pixel    (column i, row j) is 1 iff its centre (i + 0.5, j + 0.5) is strictly inside the shape

#include <algorithm>
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

    // Writes image `index` as 64 x 64 values in {0, 1} to out. Only the pixels within `reach` of
    // the centre can be inside, so only their rows and columns are tested (a heart's row costs a
    // test of its 720 edges, most passed over by their sides, heart_crossings): the rest are zero.
    // 38 -> 8 us an image on average over all 737,280, the same values; the FactorVAE metric's
    // million renders went from 15% of its time to 4% (kim-mnih, 1 thread).
    template <class T>
    void render(int64_t index, T* out) const {
        const DSpritesFactors f = factors(index);
        const double s = scale_value(f.scale), theta = orientation_value(f.orientation);
        const double cx = 16 + 32 * position_value(f.pos_x), cy = 16 + 32 * position_value(f.pos_y);
        const double c = std::cos(theta), sn = std::sin(theta), cos_s = c / s, sin_s = sn / s;
        const double reach = 14.0 * s;  // every shape lies within this distance of its centre (the heart: 11.3 s)
        // Pixel centres k + 0.5 within reach of the centre z: k in [lo, hi).
        const auto within = [&](double z) {
            const auto lo = static_cast<int64_t>(std::floor(z - reach - 0.5)), hi = static_cast<int64_t>(std::ceil(z + reach - 0.5)) + 1;
            return std::pair{std::clamp<int64_t>(lo, 0, image_size), std::clamp<int64_t>(hi, 0, image_size)};
        };
        const auto [j_lo, j_hi] = within(cy);
        const auto [i_lo, i_hi] = within(cx);
        std::fill(out, out + image_size * image_size, T(0));
        std::vector<double> crossings;
        const std::vector<double> side = f.shape == 2 ? heart_side(cos_s, sin_s) : std::vector<double>{};
        for (int64_t j = j_lo; j < j_hi; ++j) {
            const double dy = j + 0.5 - cy;
            T* row = out + j * image_size;
            if (f.shape == 2) heart_crossings(crossings, side, dy, cos_s, sin_s);
            for (int64_t i = i_lo; i < i_hi; ++i) {
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
    // `side` holds each vertex's b_u v - b_v u (heart_side): the line is where that equals
    // b_u a_v - b_v a_u, so an edge whose two ends lie clearly on one side of it is passed over
    // without the division; the edges near or across the line are tested as above. The margin
    // (1e-9 against values below 100) is far above the sides' rounding, so the same edges cross.
    void heart_crossings(std::vector<double>& out, const std::vector<double>& side, double dy, double cos_s,
                         double sin_s) const {
        const double au = -sin_s * dy, av = cos_s * dy, bu = cos_s, bv = sin_s;
        const double line = bu * av - bv * au, margin = 1e-9;
        out.clear();
        for (size_t a = 0, b = heart_.size() - 1; a < heart_.size(); b = a++) {
            const double sa = side[a] - line, sb = side[b] - line;
            if ((sa > margin && sb > margin) || (sa < -margin && sb < -margin)) continue;
            const auto [pu, pv] = heart_[b];
            const double eu = heart_[a].first - pu, ev = heart_[a].second - pv;
            const double det = eu * bv - bu * ev;
            if (det == 0) continue;  // the edge runs along the row
            const double ru = pu - au, rv = pv - av;
            const double lambda = (bu * rv - bv * ru) / det;
            if (lambda >= 0 && lambda < 1) out.push_back((eu * rv - ev * ru) / det);
        }
    }

    // Each heart vertex's b_u v - b_v u for the row direction b = (cos_s, sin_s).
    std::vector<double> heart_side(double cos_s, double sin_s) const {
        std::vector<double> side;
        for (const auto& [u, v] : heart_) side.push_back(cos_s * v - sin_s * u);
        return side;
    }

    std::vector<std::pair<double, double>> heart_;
};

}  // namespace elbo::data
