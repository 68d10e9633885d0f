// A VAE trained on dSprites, top to bottom: the data, the model, Adam, the training loop, a
// checkpoint and a grid of samples. If you know PyTorch, each block has a line or two there.
//
//   build/examples/train_vae [steps = 3000] [out folder = train_vae]
//
// A few thousand steps (minutes on two cores) already draw recognisable shapes.
#include <cstdio>
#include <filesystem>
#include <string>

#include "elbo/elbo.hpp"

using namespace elbo;

int main(int argc, char** argv) try {
    const int64_t steps = argc > 1 ? std::stoll(argv[1]) : 3000;
    const std::filesystem::path out = argc > 2 ? argv[2] : "train_vae";
    std::filesystem::create_directories(out);

    // The data: dSprites (white shapes on black, 64 x 64), drawn on the fly; 737,280 images. The
    // loader deals them out in batches of 64, shuffled each epoch, and prepares the next batch on a
    // thread of its own (torch.utils.data.DataLoader(dataset, 64, shuffle=True)).
    const std::unique_ptr<data::Dataset> dsprites = data::open_dataset("dsprites");
    data::Loader loader(dsprites->size(), 64, /*seed=*/0,
                        [&](const std::vector<int64_t>& items) { return dsprites->images(items); });

    // The model: the encoder and decoder of Kim & Mnih (2018), four 4 x 4 convolutions of stride 2
    // down to a 10-dimensional Gaussian code and four transposed ones back up. The decoder returns
    // logits, one per pixel. Weights start as PyTorch initializes them, from this generator.
    models::ModelConfig config;
    config.arch = "kim-mnih";
    config.channels = 1;
    config.image_size = 64;
    config.latent = 10;
    Generator gen(0);
    models::VAE<float> model(config, gen);
    optim::Adam<float> optimizer(model.vae_parameters(), {.lr = 1e-4});

    // The loop. The objective is the negative ELBO summed over the batch: the Bernoulli
    // reconstruction term (BCE with logits, summed over pixels) plus KL(q(z|x) || N(0, I)).
    for (int64_t step = 1; step <= steps; ++step) {
        const Var<float> x(loader.next().images);                    // [64, 1, 64, 64] in [0, 1]
        const models::VAEOutput<float> out = model.forward(x, StepDraws{0, step});  // mu, logvar, z = mu + eps sigma, logits
        const models::VAELoss<float> loss = model.loss(x, out);      // total = recon + kl
        optimizer.zero_grad();
        backward(loss.total);  // loss.backward()
        optimizer.step();
        if (step % 100 == 0 || step == steps)
            std::printf("step %5lld  loss %8.2f  recon %8.2f  kl %6.2f  (nats per image)\n", static_cast<long long>(step),
                        loss.total.item() / 64, loss.recon.item() / 64, loss.kl.item() / 64);
    }

    // A checkpoint: safetensors with PyTorch's parameter names (torch.save(model.state_dict())), the
    // optimizer's moments, and the configuration in its metadata. `elbo eval --checkpoint` scores it,
    // `elbo train --resume` would not (it holds no training settings).
    const std::string checkpoint = (out / "vae.safetensors").string();
    models::write_checkpoint<float>(checkpoint, model, {{"vae", &optimizer}});

    // Samples: codes from the prior N(0, I), decoded, through the sigmoid, in an 8 x 8 grid.
    NoGrad no_grad;  // torch.no_grad(): no graph is recorded
    const Var<float> z(Tensor<float>(Shape{64, config.latent}).normal_(gen));
    const Tensor<float> images = sigmoid(model.decoder.decode(z)).value();
    write_png((out / "samples.png").string(), image_grid(images, 8));
    std::printf("wrote %s and %s\n", checkpoint.c_str(), (out / "samples.png").string().c_str());
    return 0;
} catch (const std::exception& e) {  // a bad argument, a file that cannot be written
    std::fprintf(stderr, "train_vae: %s\n", e.what());
    return 1;
}
