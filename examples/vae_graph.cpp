// A small VAE's loss graph, written as Graphviz DOT: encoder (conv, relu, two linear heads),
// reparameterized sample, decoder (linear, transposed conv to logits), and the loss
// BCE-with-logits + KL. Render with: dot -Tsvg vae_graph.dot -o vae_graph.svg
#include <cstdio>
#include <fstream>

#include "elbo/elbo.hpp"

using namespace elbo;

int main(int argc, char** argv) {
    const std::string path = argc > 1 ? argv[1] : "vae_graph.dot";
    Generator gen(7);
    auto parameter = [&](Shape s, double scale) {
        Tensor<float> t(s);
        t.normal_(gen, 0.0, scale);
        return Var<float>(std::move(t), true);
    };

    // A batch of 4 one-channel 8x8 images with values in [0, 1]; 2 latent dimensions.
    Tensor<float> images(Shape{4, 1, 8, 8});
    images.uniform_(gen);
    Var<float> x(images);

    // Encoder: conv 1 -> 8 channels, 4x4 stride 2 padding 1 (8x8 -> 4x4), relu, flatten.
    Var<float> conv_w = parameter(Shape{8, 1, 4, 4}, 0.25), conv_b = parameter(Shape{8}, 0.1);
    Var<float> mu_w = parameter(Shape{2, 128}, 0.1), mu_b = parameter(Shape{2}, 0.1);
    Var<float> lv_w = parameter(Shape{2, 128}, 0.1), lv_b = parameter(Shape{2}, 0.1);
    Var<float> h = flatten(relu(conv2d(x, conv_w, conv_b, {.stride = 2, .padding = 1})));
    Var<float> mu = linear(h, mu_w, mu_b);
    Var<float> logvar = linear(h, lv_w, lv_b);

    // The sample z = mu + eps * exp(logvar / 2), eps ~ N(0, I).
    Var<float> z = reparameterize(mu, logvar, StepDraws{.seed = 7});

    // Decoder: linear 2 -> 128, reshape to 8x4x4, transposed conv back to 1x8x8 logits.
    Var<float> fc_w = parameter(Shape{128, 2}, 0.5), fc_b = parameter(Shape{128}, 0.1);
    Var<float> deconv_w = parameter(Shape{8, 1, 4, 4}, 0.25), deconv_b = parameter(Shape{1}, 0.1);
    Var<float> d = reshape(relu(linear(z, fc_w, fc_b)), {4, 8, 4, 4});
    Var<float> logits = conv_transpose2d(d, deconv_w, deconv_b, {.stride = 2, .padding = 1});

    // The negative ELBO, summed over pixels, latents and the batch.
    Var<float> recon = bce_with_logits(logits, x, Reduction::sum);
    Var<float> kl = gaussian_kl(mu, logvar, Reduction::sum);
    Var<float> loss = recon + kl;
    std::printf("recon %.4f + kl %.4f = loss %.4f (nats, batch of 4)\n", recon.item(), kl.item(), loss.item());

    const std::string dot = to_dot(loss, {{&x.node(), "x"},           {&conv_w.node(), "conv.weight"},
                                          {&conv_b.node(), "conv.bias"}, {&mu_w.node(), "fc_mu.weight"},
                                          {&mu_b.node(), "fc_mu.bias"},  {&lv_w.node(), "fc_logvar.weight"},
                                          {&lv_b.node(), "fc_logvar.bias"}, {&fc_w.node(), "fc.weight"},
                                          {&fc_b.node(), "fc.bias"},     {&deconv_w.node(), "deconv.weight"},
                                          {&deconv_b.node(), "deconv.bias"}, {&mu.node(), "mu"},
                                          {&logvar.node(), "logvar"},    {&z.node(), "z"},
                                          {&loss.node(), "loss"}});
    std::ofstream(path) << dot;
    std::printf("wrote the graph (%zu bytes of DOT) to %s\n", dot.size(), path.c_str());

    backward(loss);
    std::printf("after backward: d loss / d conv.weight has %lld entries, the first %.5f\n",
                (long long)conv_w.grad().numel(), conv_w.grad()[0]);
    return 0;
}
