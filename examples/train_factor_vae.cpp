// FactorVAE (Kim & Mnih 2018, Algorithm 2) trained on dSprites, the algorithm written out: two
// batches a step, two optimizers, and a discriminator that learns to tell the codes of real images
// from codes whose dimensions were shuffled across the batch. The library's train::step takes the
// same step (include/elbo/train/step.hpp); this file shows what is in it.
//
//   build/examples/train_factor_vae [steps = 3000] [out folder = train_factor_vae]
//
// The paper trains 300,000 steps; the disentanglement it measures needs tens of thousands.
#include <cstdio>
#include <filesystem>
#include <string>

#include "elbo/elbo.hpp"

using namespace elbo;

int main(int argc, char** argv) try {
    const int64_t steps = argc > 1 ? std::stoll(argv[1]) : 3000;
    const std::filesystem::path out = argc > 2 ? argv[2] : "train_factor_vae";
    std::filesystem::create_directories(out);

    const std::unique_ptr<data::Dataset> dsprites = data::open_dataset("dsprites");
    data::Loader loader(dsprites->size(), 64, /*seed=*/0,
                        [&](const std::vector<int64_t>& items) { return dsprites->images(items); });

    // The paper's setup: its encoder and decoder, 10 latents, γ = 35 on the total-correlation term,
    // and the discriminator of disentanglement_lib (6 hidden layers of 1000, LeakyReLU(0.2), 2 logits).
    models::ModelConfig config;
    config.kind = "factor-vae";
    config.arch = "kim-mnih";
    config.channels = 1;
    config.image_size = 64;
    config.latent = 10;
    config.gamma = 35;
    Generator gen(0);
    models::FactorVAE<float> model(config, gen);

    // Two optimizers, as in the paper: Adam(1e-4, β = (0.9, 0.999)) for the encoder and decoder,
    // Adam(1e-4, β = (0.5, 0.9)) for the discriminator.
    optim::Adam<float> vae_optimizer(model.vae_parameters(), {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.999});
    optim::Adam<float> d_optimizer(model.discriminator_parameters(), {.lr = 1e-4, .beta1 = 0.5, .beta2 = 0.9});

    for (int64_t step = 1; step <= steps; ++step) {
        const Var<float> x(loader.next().images), x_other(loader.next().images);
        // The step's random numbers, each named by (seed, step, what it is for, its image or latent).
        const StepDraws draws{.seed = 0, .step = step};

        // 1. The VAE's step. Its objective is the VAE's, recon + KL, plus γ times the discriminator's
        //    estimate of the total correlation of z: the sum over the batch of logit0(z) - logit1(z)
        //    (density-ratio trick: it estimates log q(z) / Π_j q(z_j)). Its gradient flows through
        //    the discriminator into the encoder; only the VAE's parameters are stepped.
        const models::VAEOutput<float> out = model.forward(x, draws);
        const models::VAELoss<float> loss = model.loss(x, out);  // total = recon + kl + γ tc
        vae_optimizer.zero_grad();
        backward(loss.total);
        vae_optimizer.step();

        // 2. The discriminator's step. Codes of the second batch, with every latent shuffled across the
        //    batch by its own permutation, sample Π_j q(z_j); the discriminator learns to tell them
        //    (label 1) from this batch's codes (label 0). Both are detached: this objective trains the
        //    discriminator alone.
        Var<float> z_other;
        {
            NoGrad no_grad;
            auto [mu, logvar] = model.encoder.encode(x_other);
            z_other = reparameterize(mu, logvar, draws.second_batch(64));  // images 64..127 of the step
        }
        const Var<float> real = model.discriminator(out.z.detach());
        const Var<float> permuted = model.discriminator(permute_dims(z_other, draws));
        const Var<float> d_loss = (cross_entropy(real, std::vector<int64_t>(64, 0)) +
                                   cross_entropy(permuted, std::vector<int64_t>(64, 1))) *
                                  constant(0.5f);
        model.discriminator.zero_grad();  // also clears what the VAE's objective sent it in step 1
        backward(d_loss);
        d_optimizer.step();

        if (step % 100 == 0 || step == steps)
            std::printf("step %5lld  loss %8.2f  recon %8.2f  kl %6.2f  tc %6.3f  discriminator %.4f\n",
                        static_cast<long long>(step), loss.total.item() / 64, loss.recon.item() / 64,
                        loss.kl.item() / 64, loss.tc.item() / 64, d_loss.item());
    }

    // The model with its discriminator and both optimizers' state; `elbo eval --checkpoint` scores
    // its disentanglement (the FactorVAE metric and MIG on dSprites).
    const std::string checkpoint = (out / "factor_vae.safetensors").string();
    models::write_checkpoint<float>(checkpoint, model, {{"vae", &vae_optimizer}, {"discriminator", &d_optimizer}});
    std::printf("wrote %s\n", checkpoint.c_str());
    return 0;
} catch (const std::exception& e) {  // a bad argument, a file that cannot be written
    std::fprintf(stderr, "train_factor_vae: %s\n", e.what());
    return 1;
}
