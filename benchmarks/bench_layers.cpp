// Times every convolution and Linear layer of a network at its shapes in the model, forward and
// backward, one JSON line per layer: median milliseconds and GFLOP/s. benchmarks/torch_layers.py is
// its PyTorch twin; benchmarks/layers.sh runs both in one sitting and prints the table.
//   build/benchmarks/bench_layers [seed|kim-mnih] [batch] [repeats]
// seed: 3 x 64 x 64 images, D = 64; kim-mnih: 1 x 64 x 64, D = 10, and FactorVAE's discriminator
// (D -> 1000 -> ... -> 1000 -> 2). The first convolution's input needs no gradient, as in the model.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "elbo/elbo.hpp"

using namespace elbo;

namespace {

// A layer as the model runs it: a 4x4 stride-2 convolution (or its transpose) of `in` channels at
// side `size` to `out` channels, or a Linear layer from `in` to `out` features.
struct Layer {
    std::string name;
    enum Kind { conv, deconv, linear } kind;
    int64_t in, out, size;
};

std::vector<Layer> layers_of(const std::string& arch, int64_t channels, int64_t image, int64_t latent) {
    const models::Network net = models::network(arch);
    std::vector<Layer> layers;
    int64_t in = channels, side = image;
    for (size_t i = 0; i < net.conv.size(); ++i, side /= 2)
        layers.push_back({"encoder.conv" + std::to_string(i + 1), Layer::conv, in, net.conv[i], side}), in = net.conv[i];
    const int64_t features = in * side * side;
    int64_t from = features;
    for (size_t i = 0; i < net.encoder_fc.size(); ++i)
        layers.push_back({"encoder.fc" + std::to_string(i + 1), Layer::linear, from, net.encoder_fc[i], 0}),
            from = net.encoder_fc[i];
    layers.push_back({"encoder.mu_logvar", Layer::linear, from, 2 * latent, 0});
    from = latent;
    for (size_t i = 0; i < net.decoder_fc.size(); ++i)
        layers.push_back({"decoder.fc" + std::to_string(i + 1), Layer::linear, from, net.decoder_fc[i], 0}),
            from = net.decoder_fc[i];
    layers.push_back({"decoder.fc_map", Layer::linear, from, features, 0});
    for (size_t i = net.conv.size(); i-- > 0; side *= 2) {
        const int64_t out = i == 0 ? channels : net.conv[i - 1];
        layers.push_back({"decoder.deconv" + std::to_string(net.conv.size() - i), Layer::deconv, net.conv[i], out, side});
    }
    if (arch == "kim-mnih") {  // FactorVAE's discriminator, disentanglement_lib's fc_discriminator
        layers.push_back({"discriminator.fc1", Layer::linear, latent, 1000, 0});
        layers.push_back({"discriminator.fc2-6", Layer::linear, 1000, 1000, 0});
        layers.push_back({"discriminator.logits", Layer::linear, 1000, 2, 0});
    }
    return layers;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string arch = argc > 1 ? argv[1] : "seed";
    const int64_t N = argc > 2 ? std::atoll(argv[2]) : 64;
    const int repeats = argc > 3 ? std::atoi(argv[3]) : 5;
    if (arch != "seed" && arch != "kim-mnih") {
        std::fprintf(stderr, "bench_layers: the network must be seed or kim-mnih, got '%s'\n", arch.c_str());
        return 2;
    }
    const bool kim = arch == "kim-mnih";
    const std::vector<Layer> layers = layers_of(arch, kim ? 1 : 3, 64, kim ? 10 : 64);
    Generator gen(0);
    for (const Layer& l : layers) {
        const bool first = l.name == "encoder.conv1";
        Shape in_shape{N, l.in}, out_shape{N, l.out}, w_shape{l.out, l.in};
        double flop = 2.0 * N * l.in * l.out;
        if (l.kind != Layer::linear) {
            const int64_t out_size = l.kind == Layer::deconv ? l.size * 2 : l.size / 2;
            in_shape = Shape{N, l.in, l.size, l.size};
            out_shape = Shape{N, l.out, out_size, out_size};
            w_shape = l.kind == Layer::deconv ? Shape{l.in, l.out, 4, 4} : Shape{l.out, l.in, 4, 4};
            const int64_t big = std::max(l.size, out_size);  // one multiply-add per weight and strided position
            flop = 2.0 * N * l.in * l.out * 16 * (big / 2) * (big / 2);
        }
        Var<float> x(Tensor<float>(in_shape).normal_(gen), !first);
        Var<float> w(Tensor<float>(w_shape).normal_(gen, 0.0, 0.05), true);
        Var<float> b(Tensor<float>(Shape{l.out}), true);
        auto forward = [&] {
            if (l.kind == Layer::conv) return conv2d(x, w, b, {.stride = 2, .padding = 1});
            if (l.kind == Layer::deconv) return conv_transpose2d(x, w, b, {.stride = 2, .padding = 1});
            return linear(x, w, b);
        };
        const Tensor<float> seed = Tensor<float>::full(out_shape, 1.0f);
        // The backward pass: a step's time less its forward pass's, both recording the graph.
        const double fwd = profile::median_ms(1, repeats, [&] { NoGrad g; forward(); });
        const double recorded = profile::median_ms(1, repeats, [&] { forward(); });
        const double bwd = profile::median_ms(1, repeats, [&] { backward(forward(), seed); }) - recorded;
        const double bwd_flop = first ? flop : 2 * flop;  // the weight's gradient, and the input's
        std::printf("{\"layer\": \"%s\", \"arch\": \"%s\", \"batch\": %lld, \"threads\": %d, \"forward_ms\": %.3f, "
                    "\"forward_gflops\": %.1f, \"backward_ms\": %.3f, \"backward_gflops\": %.1f}\n",
                    l.name.c_str(), arch.c_str(), (long long)N, omp_get_max_threads(), fwd, flop / fwd / 1e6, bwd,
                    bwd_flop / bwd / 1e6);
    }
    return 0;
}
