// The evaluation metrics on cases whose answer is known: codes equal to the true factors, pure
// noise, collapsed codes, and a VAE whose likelihood can be written down by hand.
#include "helpers.hpp"

using namespace elbo;
using data::DSprites;
using testing::error_of;

namespace {

// Codes [n, 5]: each item's five factor indices, scaled to [0, 1].
Tensor<double> true_factors(const std::vector<int64_t>& items) {
    Tensor<double> codes(Shape{static_cast<int64_t>(items.size()), 5});
    for (size_t i = 0; i < items.size(); ++i) {
        const data::DSpritesFactors f = DSprites::factors(items[i]);
        const int64_t v[5] = {f.shape, f.scale, f.orientation, f.pos_x, f.pos_y};
        for (int k = 0; k < 5; ++k) codes[static_cast<int64_t>(i) * 5 + k] = static_cast<double>(v[k]) / (DSprites::factor_sizes[k] - 1);
    }
    return codes;
}

// Codes [n, 10] of noise that knows nothing of the images.
metrics::Representation noise(uint64_t seed) {
    auto gen = std::make_shared<Generator>(seed);
    return [gen](const std::vector<int64_t>& items) {
        Tensor<double> codes(Shape{static_cast<int64_t>(items.size()), 10});
        return codes.normal_(*gen);
    };
}

const metrics::FactorVAEMetricOptions small_factor{.global_images = 2000, .train_votes = 500, .eval_votes = 500};
const metrics::MIGOptions small_mig{.images = 5000};

}  // namespace

TEST_SUITE("metrics") {

TEST_CASE("codes equal to the true factors score 1 on the FactorVAE metric and near 1 on MIG") {
    CHECK(metrics::factorvae_metric(true_factors, small_factor) == 1.0);
    // Each factor is captured by one latent alone; binning 40 orientations or 32 positions into 20
    // bins keeps log 20 of their log 40 or log 32 nats, and the 5000 samples add a little noise.
    const double score = metrics::mig(true_factors, small_mig);
    CHECK(score > 0.85);
    CHECK(score <= 1.0);
}

TEST_CASE("codes of noise score near chance on the FactorVAE metric and near 0 on MIG") {
    const double score = metrics::factorvae_metric(noise(1), small_factor);
    CHECK(score > 0.1);
    CHECK(score < 0.35);  // chance is 1/5
    CHECK(metrics::mig(noise(2), small_mig) < 0.03);
}

TEST_CASE("collapsed codes score 0, and codes of the wrong shape are an error") {
    auto constant = [](const std::vector<int64_t>& items) {
        return Tensor<double>::full(Shape{static_cast<int64_t>(items.size()), 4}, 0.5);
    };
    CHECK(metrics::factorvae_metric(constant, small_factor) == 0.0);
    CHECK(metrics::mig(constant, small_mig) == 0.0);
    auto wrong = [](const std::vector<int64_t>&) { return Tensor<double>(Shape{3, 2}); };
    CHECK(error_of([&] { metrics::mig(wrong, small_mig); }) ==
          "mig: the representation gave [3,2] for 5000 images, expected [5000, D]");
    auto infinite = [](const std::vector<int64_t>& items) {
        Tensor<double> codes(Shape{static_cast<int64_t>(items.size()), 2});
        codes[3] = INFINITY;
        return codes;
    };
    CHECK(error_of([&] { metrics::mig(infinite, small_mig); }) ==
          "mig: the representation gave inf for latent 1 of image 1; codes must be finite");
}

TEST_CASE("a VAE that ignores its input has the likelihood written by hand") {
    // Every weight zero and the last bias b: q(z|x) = N(0, I) = p(z), logits = b everywhere, so
    // kl = 0 and every importance weight is p(x|z): nll_iw = recon = sum over pixels of
    // softplus(b) - b x, exactly, for any K.
    models::ModelConfig c{.channels = 1, .image_size = 8, .latent = 3};
    Generator gen(1);
    models::VAE<float> model(c, gen);
    for (auto& [name, p] : model.named_parameters()) p.value().fill(0.0f);
    Tensor<float>& bias = model.decoder.deconvs.back()->bias.value();
    bias.fill(0.3f);
    const Tensor<float> images = testing::rand<float>(Shape{40, 1, 8, 8}, 2, 0.0, 1.0);
    const data::TensorDataset d("random", images);

    const metrics::Likelihood r = metrics::evaluate_likelihood(model, d, {.images = 40, .iw_images = 10, .iw_samples = 7, .batch = 16});
    double recon = 0;
    const double softplus = std::log1p(std::exp(0.3));
    for (int64_t i = 0; i < images.numel(); ++i) recon += softplus - 0.3 * static_cast<double>(images[i]);
    recon /= 40;
    // The nll_iw images are the first 10 of a seeded permutation: their mean differs from all 40's,
    // so recompute it over the same items.
    Generator pick(0);
    const std::vector<int64_t> order = random_permutation(40, pick);
    double iw = 0;
    for (int n = 0; n < 10; ++n)
        for (int64_t k = 0; k < 64; ++k) iw += softplus - 0.3 * static_cast<double>(images[order[n] * 64 + k]);
    iw /= 10;
    CHECK(r.images == 40);
    CHECK(r.kl == doctest::Approx(0.0));
    CHECK(r.recon == doctest::Approx(recon).epsilon(1e-6));
    CHECK(r.elbo == doctest::Approx(-recon).epsilon(1e-6));
    CHECK(r.nll_iw == doctest::Approx(iw).epsilon(1e-6));
    CHECK(r.active_dims == 0);
}

TEST_CASE("importance weighting recovers log p(x) when the posterior is not the prior") {
    // A decoder that ignores z makes log p(x) = log p(x|z) = -recon exactly; an encoder with
    // mu = 0.5 and logvar = 0.3 everywhere makes q(z|x) differ from p(z), so every weight
    // p(x|z_k) p(z_k) / q(z_k|x) varies and only their mean is p(x). (q wider than p keeps the
    // weights' variance finite, 0.73 p(x)^2 here.) K = 2000 samples bring -log(mean) within about
    // 0.02 of -log p(x); a wrong sign or scale in log p(z) or log q(z|x) would move it by about
    // the KL, 3 x 0.15 nats.
    models::ModelConfig c{.channels = 1, .image_size = 8, .latent = 3};
    Generator gen(5);
    models::VAE<float> model(c, gen);
    for (auto& [name, p] : model.named_parameters()) p.value().fill(0.0f);
    model.encoder.fc_mu.bias.value().fill(0.5f);
    model.encoder.fc_logvar.bias.value().fill(0.3f);
    model.decoder.deconvs.back()->bias.value().fill(-0.2f);
    const data::TensorDataset d("random", testing::rand<float>(Shape{6, 1, 8, 8}, 6, 0.0, 1.0));
    const metrics::Likelihood r = metrics::evaluate_likelihood(model, d, {.images = 6, .iw_images = 6, .iw_samples = 2000});
    const double kl_per_latent = 0.5 * (0.25 + std::exp(0.3) - 1 - 0.3);
    CHECK(r.kl == doctest::Approx(3 * kl_per_latent).epsilon(1e-5));
    CHECK(r.nll_iw == doctest::Approx(r.recon).epsilon(1e-3));  // recon ~ 45 nats: within 0.045
    CHECK(r.nll_iw < -r.elbo);
    CHECK(r.active_dims == 0);
}

TEST_CASE("active dimensions are the latents whose posterior mean varies, and nll_iw lies below -elbo") {
    models::ModelConfig c{.channels = 1, .image_size = 8, .latent = 5};
    Generator gen(3);
    models::VAE<float> model(c, gen);
    // Only latents 1 and 3 read the image; the others have a constant mean.
    Tensor<float>& w = model.encoder.fc_mu.weight.value();
    const int64_t in = w.size(1);
    for (int64_t d : {0, 2, 4})
        for (int64_t j = 0; j < in; ++j) w[d * in + j] = 0.0f;
    for (int64_t d : {1, 3})
        for (int64_t j = 0; j < in; ++j) w[d * in + j] *= 50.0f;
    const data::TensorDataset d("random", testing::rand<float>(Shape{200, 1, 8, 8}, 4, 0.0, 1.0));
    const metrics::Likelihood r = metrics::evaluate_likelihood(model, d, {.images = 200, .iw_images = 200, .iw_samples = 64});
    CHECK(r.active_dims == 2);
    // On the same items, log p(x) >= the K-sample bound >= the ELBO (in expectation).
    CHECK(r.nll_iw < -r.elbo);
    CHECK(r.nll_iw > 0);
}

TEST_CASE("the likelihood rejects data of another shape than the model reads") {
    models::ModelConfig c{.channels = 1, .image_size = 8, .latent = 2};
    Generator gen(0);
    models::VAE<float> model(c, gen);
    const data::TensorDataset d("sixteen", Tensor<float>(Shape{4, 1, 16, 16}));
    CHECK(error_of([&] { metrics::evaluate_likelihood(model, d); }) ==
          "evaluate: the model reads 1 x 8 x 8 images, the data set 'sixteen' has 1 x 16 x 16");
}

}  // TEST_SUITE("metrics")
