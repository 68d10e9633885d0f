#pragma once
// Disentanglement on dSprites, where every image's true factors are known. Both metrics read a
// representation: a function from dSprites indices to codes [n, D] (for a VAE, the mean of q(z|x),
// `mean_codes`), so they can be checked on codes whose answer is known (the true factors score
// about 1, noise about chance). ../shared/reference/metrics.md gives the recipes followed here.
//
//   factorvae_metric (Kim & Mnih 2018)  each vote fixes one factor k at a random value over L
//       images, the others random; d* = argmin_d Var(code_d) / Var_global(code_d) over the
//       latents not collapsed; a majority-vote classifier d* -> k, trained on some votes, scored
//       by its accuracy on others. 1 is perfect, 1/5 is chance on dSprites' five factors.
//   mig (Chen et al. 2018)  each latent binned into 20 equal bins over its observed range; for each
//       factor, (largest - second-largest) mutual information with a latent, over the factor's
//       entropy; the mean over factors. 0 when no latent captures a factor alone.

#include <array>
#include <functional>

#include "elbo/data/dataset.hpp"
#include "elbo/models/vae.hpp"

namespace elbo::metrics {

// Codes [n, D] of dSprites items.
using Representation = std::function<Tensor<double>(const std::vector<int64_t>& indices)>;

// The mean of q(z|x) of `model` for dSprites items (rendered, resized to the model's size).
template <class T = float>
Representation mean_codes(models::VAE<T>& model, int64_t batch = 64) {
    return [&model, batch](const std::vector<int64_t>& indices) {
        const data::DSpritesDataset sprites(model.config.image_size);
        check(model.config.channels == 1, "mean_codes", "dSprites is grey; the model reads ", model.config.channels,
              " channels");
        NoGrad no_grad;
        const int64_t n = static_cast<int64_t>(indices.size()), D = model.config.latent;
        Tensor<double> codes(Shape{n, D});
        for (int64_t first = 0; first < n; first += batch) {
            const std::vector<int64_t> items(indices.begin() + first, indices.begin() + std::min(n, first + batch));
            const Tensor<T> mu = model.encoder.encode(Var<T>(sprites.images(items).template cast<T>())).first.value();
            for (int64_t i = 0; i < mu.numel(); ++i) codes[first * D + i] = static_cast<double>(mu[i]);
        }
        return codes;
    };
}

namespace detail {

inline int64_t draw(Generator& gen, int64_t n) { return static_cast<int64_t>(gen.below(static_cast<uint64_t>(n))); }

// Random dSprites items: factor `fixed` (if >= 0) held at `value`, the others uniform.
inline std::vector<int64_t> random_sprites(int64_t count, Generator& gen, int64_t fixed = -1, int64_t value = 0) {
    std::vector<int64_t> items;
    for (int64_t i = 0; i < count; ++i) {
        std::array<int64_t, 5> f;
        for (int k = 0; k < 5; ++k) f[k] = k == fixed ? value : draw(gen, data::DSprites::factor_sizes[k]);
        items.push_back(data::DSprites::index({f[0], f[1], f[2], f[3], f[4]}));
    }
    return items;
}

// The variance (ddof = 1) of each column of codes [n, D], over rows first .. first+count-1 (all
// rows when count is 0).
inline std::vector<double> column_variances(const Tensor<double>& codes, int64_t first = 0, int64_t count = 0) {
    const int64_t n = count > 0 ? count : codes.size(0), D = codes.size(1);
    const double* rows = codes.data() + first * D;
    std::vector<double> mean(static_cast<size_t>(D)), variance(static_cast<size_t>(D));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t d = 0; d < D; ++d) mean[d] += rows[i * D + d] / static_cast<double>(n);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t d = 0; d < D; ++d) variance[d] += std::pow(rows[i * D + d] - mean[d], 2) / static_cast<double>(n - 1);
    return variance;
}

inline void check_codes(const Tensor<double>& codes, int64_t n, const char* op) {
    check(codes.rank() == 2 && codes.size(0) == n && codes.size(1) > 0, op, "the representation gave ", codes.shape(),
          " for ", n, " images, expected [", n, ", D]");
    for (int64_t i = 0; i < codes.numel(); ++i)
        if (!std::isfinite(codes[i]))
            throw Error(str(op, ": the representation gave ", codes[i], " for latent ", i % codes.size(1), " of image ",
                            i / codes.size(1), "; codes must be finite"));
}

}  // namespace detail

struct FactorVAEMetricOptions {
    int64_t global_images = 10000;  // for each latent's global variance
    int64_t votes_per_sample = 64;  // L
    int64_t train_votes = 10000;
    int64_t eval_votes = 5000;
    double prune_below = 0.05;      // keep latents whose global standard deviation is at least this
    uint64_t seed = 0;
};

inline double factorvae_metric(const Representation& represent, const FactorVAEMetricOptions& o = {}) {
    const char* op = "factorvae_metric";
    check(o.global_images > 1 && o.votes_per_sample > 1 && o.train_votes > 0 && o.eval_votes > 0, op,
          "global_images and votes_per_sample must exceed 1, the vote counts must be positive");
    check(std::isfinite(o.prune_below) && o.prune_below >= 0, op, "prune_below must be a non-negative number, got ",
          o.prune_below);
    Generator gen(o.seed);
    const std::vector<int64_t> global_items = detail::random_sprites(o.global_images, gen);
    const Tensor<double> global = represent(global_items);
    detail::check_codes(global, o.global_images, op);
    const std::vector<double> global_variance = detail::column_variances(global);
    const int64_t D = global.size(1);
    std::vector<int64_t> kept;
    for (int64_t d = 0; d < D; ++d)
        if (std::sqrt(global_variance[d]) >= o.prune_below) kept.push_back(d);
    if (kept.empty()) return 0.0;

    // Votes, `count` of them: (the latent that varies least relative to its global scale, the
    // fixed factor). Each vote draws its factor, value and items in turn; the images of up to
    // 65,536 (L x 1,024 votes) then go to the representation in one call, which encodes them in
    // batches, so the draws and the score do not depend on how the votes are grouped.
    auto votes_of = [&](int64_t count) {
        std::vector<std::pair<int64_t, int64_t>> result;
        const int64_t L = o.votes_per_sample, chunk = std::max<int64_t>(1, 65536 / L);
        for (int64_t first = 0; first < count; first += chunk) {
            const int64_t n = std::min(chunk, count - first);
            std::vector<int64_t> factor, items;
            for (int64_t v = 0; v < n; ++v) {
                const int64_t k = detail::draw(gen, 5);
                const int64_t value = detail::draw(gen, data::DSprites::factor_sizes[k]);
                const std::vector<int64_t> drawn = detail::random_sprites(L, gen, k, value);
                factor.push_back(k);
                items.insert(items.end(), drawn.begin(), drawn.end());
            }
            const Tensor<double> codes = represent(items);
            detail::check_codes(codes, n * L, op);
            for (int64_t v = 0; v < n; ++v) {
                const std::vector<double> variance = detail::column_variances(codes, v * L, L);
                int64_t best = kept[0];
                for (int64_t d : kept)
                    if (variance[d] / global_variance[d] < variance[best] / global_variance[best]) best = d;
                result.emplace_back(best, factor[v]);
            }
        }
        return result;
    };
    std::vector<std::array<int64_t, 5>> votes(static_cast<size_t>(D), std::array<int64_t, 5>{});
    for (const auto& [d, k] : votes_of(o.train_votes)) ++votes[d][k];
    int64_t correct = 0;
    for (const auto& [d, k] : votes_of(o.eval_votes)) {
        const auto& count = votes[d];
        correct += std::max_element(count.begin(), count.end()) - count.begin() == k;  // ties: the first factor
    }
    return static_cast<double>(correct) / static_cast<double>(o.eval_votes);
}

struct MIGOptions {
    int64_t images = 10000;
    int64_t bins = 20;
    uint64_t seed = 0;
};

inline double mig(const Representation& represent, const MIGOptions& o = {}) {
    const char* op = "mig";
    check(o.images > 1 && o.bins > 1, op, "images and bins must exceed 1, got ", o.images, " and ", o.bins);
    Generator gen(o.seed);
    const std::vector<int64_t> items = detail::random_sprites(o.images, gen);
    const Tensor<double> codes = represent(items);
    detail::check_codes(codes, o.images, op);
    const int64_t n = o.images, D = codes.size(1), B = o.bins;

    // Each latent's bin per image: equal bins over [min, max], the maximum in the last bin.
    std::vector<int64_t> bin(static_cast<size_t>(n * D));
    for (int64_t d = 0; d < D; ++d) {
        double low = codes[d], high = codes[d];
        for (int64_t i = 0; i < n; ++i) low = std::min(low, codes[i * D + d]), high = std::max(high, codes[i * D + d]);
        for (int64_t i = 0; i < n; ++i) {
            const double t = high > low ? (codes[i * D + d] - low) / (high - low) : 0.0;
            bin[i * D + d] = std::min<int64_t>(B - 1, static_cast<int64_t>(t * static_cast<double>(B)));
        }
    }
    auto entropy = [&](const std::vector<double>& counts) {
        double h = 0;
        for (double c : counts)
            if (c > 0) h -= c / static_cast<double>(n) * std::log(c / static_cast<double>(n));
        return h;
    };
    double total = 0;
    for (int k = 0; k < 5; ++k) {
        const int64_t V = data::DSprites::factor_sizes[k];
        std::vector<int64_t> factor(static_cast<size_t>(n));
        std::vector<double> factor_counts(static_cast<size_t>(V));
        for (int64_t i = 0; i < n; ++i) {
            const data::DSpritesFactors f = data::DSprites::factors(items[i]);
            factor[i] = std::array<int64_t, 5>{f.shape, f.scale, f.orientation, f.pos_x, f.pos_y}[k];
            ++factor_counts[factor[i]];
        }
        const double h_factor = entropy(factor_counts);
        // I(bin_d; v_k) = H(bin_d) + H(v_k) - H(bin_d, v_k)
        std::vector<double> information;
        for (int64_t d = 0; d < D; ++d) {
            std::vector<double> joint(static_cast<size_t>(B * V)), latent(static_cast<size_t>(B));
            for (int64_t i = 0; i < n; ++i) {
                ++joint[bin[i * D + d] * V + factor[i]];
                ++latent[bin[i * D + d]];
            }
            information.push_back(entropy(latent) + h_factor - entropy(joint));
        }
        std::sort(information.rbegin(), information.rend());
        const double gap = information[0] - (D > 1 ? information[1] : 0.0);
        total += h_factor > 0 ? gap / h_factor : 0.0;
    }
    return total / 5.0;
}

}  // namespace elbo::metrics
