// A model of your own, built from elbo's layers and ops and trained: a VAE of fully connected
// layers whose prior is learned too, N(0, diag(exp(prior_logvar))), on dSprites at 32 x 32. It
// shows the three things a new model needs: modules and parameters registered by name (so its
// checkpoint has PyTorch's names), a forward pass written with differentiable ops, and a check of
// its gradients against finite differences before training it.
//
//   build/examples/custom_model [steps = 2000] [out folder = custom_model]
#include <cstdio>
#include <filesystem>
#include <string>

#include "elbo/elbo.hpp"

using namespace elbo;

// The model, a template on the number type so the gradient check can run it in double.
template <class T>
class MlpVAE : public nn::Module<T> {
public:
    nn::Linear<T> encode_hidden, encode_mu, encode_logvar, decode_hidden, decode_out;
    Var<T> prior_logvar;  // [D], a parameter of our own

    MlpVAE(int64_t pixels, int64_t hidden, int64_t latent, Generator& gen)
        : encode_hidden(pixels, hidden, gen), encode_mu(hidden, latent, gen), encode_logvar(hidden, latent, gen),
          decode_hidden(latent, hidden, gen), decode_out(hidden, pixels, gen),
          prior_logvar(Tensor<T>::zeros(Shape{latent})) {
        // The names are the state_dict's keys: "encode_hidden.weight", ..., "prior_logvar".
        this->register_module("encode_hidden", encode_hidden);
        this->register_module("encode_mu", encode_mu);
        this->register_module("encode_logvar", encode_logvar);
        this->register_module("decode_hidden", decode_hidden);
        this->register_module("decode_out", decode_out);
        this->register_parameter("prior_logvar", prior_logvar);
    }
    std::string name() const override { return "MlpVAE"; }

    // The negative ELBO per image of images x [N, 1, S, S], with the noise eps [N, D] given (so the
    // gradient check sees a deterministic function; training draws it).
    Var<T> loss(const Var<T>& x, const Var<T>& eps) {
        const int64_t n = x.shape()[0];
        const Var<T> pixels = flatten(x);                       // [N, S * S]
        const Var<T> h = relu(encode_hidden(pixels));
        const Var<T> mu = encode_mu(h), logvar = encode_logvar(h);
        const Var<T> z = reparameterize(mu, logvar, eps);       // mu + eps * exp(logvar / 2)
        const Var<T> logits = decode_out(relu(decode_hidden(z)));
        const Var<T> recon = bce_with_logits(logits, pixels, Reduction::sum);
        // KL(N(mu, e^logvar) || N(0, e^prior_logvar)), summed: written with ops, it needs no backward
        // of its own. prior_logvar [D] broadcasts over the batch.
        const Var<T> kl = sum(prior_logvar - logvar + (exp(logvar) + mu * mu) / exp(prior_logvar) - constant(T(1))) *
                          constant(T(0.5));
        return (recon + kl) / constant(static_cast<T>(n));
    }
};

int main(int argc, char** argv) try {
    const int64_t steps = argc > 1 ? std::stoll(argv[1]) : 2000;
    const std::filesystem::path out = argc > 2 ? argv[2] : "custom_model";
    std::filesystem::create_directories(out);
    const int64_t size = 32, latent = 6;

    // First, its gradients: every parameter of a small copy (8 x 8 images, 8 hidden units), in
    // double, against central differences.
    {
        Generator gen(1);
        MlpVAE<double> small(8 * 8, 8, latent, gen);
        const Var<double> x(Tensor<double>(Shape{3, 1, 8, 8}).uniform_(gen));
        const Var<double> eps(Tensor<double>(Shape{3, latent}).normal_(gen));
        const auto named = small.named_parameters();
        std::vector<Var<double>> params;
        for (const auto& [name, p] : named) params.push_back(p);
        // gradcheck perturbs the parameters it is given; the model reads the same Vars.
        const GradcheckResult check = gradcheck([&](const std::vector<Var<double>>&) { return small.loss(x, eps); }, params);
        std::printf("gradient check of %zu parameters: %s\n", params.size(), check.report().c_str());
        if (!check.ok) return 1;
    }

    // Then training, as any model of elbo's trains: Adam over its parameters, the loop.
    const std::unique_ptr<data::Dataset> dsprites = data::open_dataset("dsprites", {.image_size = size});
    data::Loader loader(dsprites->size(), 64, /*seed=*/0,
                        [&](const std::vector<int64_t>& items) { return dsprites->images(items); });
    Generator gen(0);
    MlpVAE<float> model(size * size, 256, latent, gen);
    optim::Adam<float> optimizer(model.named_parameters(), {.lr = 1e-3});
    for (int64_t step = 1; step <= steps; ++step) {
        const Var<float> x(loader.next().images);
        const Var<float> eps(Tensor<float>(Shape{64, latent}).normal_(gen));
        const Var<float> loss = model.loss(x, eps);
        optimizer.zero_grad();
        backward(loss);
        optimizer.step();
        if (step % 100 == 0 || step == steps)
            std::printf("step %5lld  loss %8.2f nats per image\n", static_cast<long long>(step), loss.item());
    }

    // Its state_dict, as safetensors: torch.load_file gives PyTorch the same names.
    const std::string path = (out / "mlp_vae.safetensors").string();
    save_safetensors<float>(path, model.state_dict(), {{"model", "MlpVAE"}, {"steps", std::to_string(steps)}});
    std::printf("learned prior variances:");
    for (float v : model.prior_logvar.value()) std::printf(" %.3f", std::exp(v));
    std::printf("\nwrote %s\n", path.c_str());
    return 0;
} catch (const std::exception& e) {  // a bad argument, a file that cannot be written
    std::fprintf(stderr, "custom_model: %s\n", e.what());
    return 1;
}
