// Every op against PyTorch: outputs and gradients that tests/reference/make_reference.py saved with
// Debian's python3-torch, read through elbo's own safetensors reader.
#include "helpers.hpp"

using namespace elbo;
using Vars = std::vector<Var<float>>;

namespace {

struct Case {
    const char* name;
    std::function<Var<float>(const Vars& in, const Safetensors<float>& file)> f;
};

std::vector<int64_t> as_indices(const Tensor<float>& t) {
    std::vector<int64_t> v;
    for (float x : t) v.push_back(static_cast<int64_t>(x));
    return v;
}

const Case cases[] = {
    {"linear", [](const Vars& v, auto&) { return linear(v[0], v[1], v[2]); }},
    {"conv2d_s2_p1", [](const Vars& v, auto&) { return conv2d(v[0], v[1], v[2], {.stride = 2, .padding = 1}); }},
    {"conv2d_s1_p2_d2",
     [](const Vars& v, auto&) { return conv2d(v[0], v[1], v[2], {.stride = 1, .padding = 2, .dilation = 2}); }},
    {"conv2d_s3_p0", [](const Vars& v, auto&) { return conv2d(v[0], v[1], v[2], {.stride = 3}); }},
    {"conv_transpose2d_s2_p1_op1",
     [](const Vars& v, auto&) {
         return conv_transpose2d(v[0], v[1], v[2], {.stride = 2, .padding = 1, .output_padding = 1});
     }},
    {"conv_transpose2d_s1_p0_d2", [](const Vars& v, auto&) { return conv_transpose2d(v[0], v[1], v[2], {.dilation = 2}); }},
    {"conv_transpose2d_s3_p2",
     [](const Vars& v, auto&) { return conv_transpose2d(v[0], v[1], v[2], {.stride = 3, .padding = 2}); }},
    {"bce_with_logits_sum", [](const Vars& v, auto&) { return bce_with_logits(v[0], v[1], Reduction::sum); }},
    {"bce_with_logits_mean", [](const Vars& v, auto&) { return bce_with_logits(v[0], v[1], Reduction::mean); }},
    {"bce_with_logits_none", [](const Vars& v, auto&) { return bce_with_logits(v[0], v[1], Reduction::none); }},
    {"bce_sum", [](const Vars& v, auto&) { return bce(v[0], v[1], Reduction::sum); }},
    {"mse_mean", [](const Vars& v, auto&) { return mse(v[0], v[1], Reduction::mean); }},
    {"gaussian_kl_sum", [](const Vars& v, auto&) { return gaussian_kl(v[0], v[1], Reduction::sum); }},
    {"reparameterize", [](const Vars& v, auto&) { return reparameterize(v[0], v[1], v[2]); }},
    {"relu", [](const Vars& v, auto&) { return relu(v[0]); }},
    {"leaky_relu", [](const Vars& v, auto&) { return leaky_relu(v[0], 0.2f); }},
    {"sigmoid", [](const Vars& v, auto&) { return sigmoid(v[0]); }},
    {"tanh", [](const Vars& v, auto&) { return tanh(v[0]); }},
    {"softplus", [](const Vars& v, auto&) { return softplus(v[0]); }},
    {"exp", [](const Vars& v, auto&) { return exp(v[0]); }},
    {"log", [](const Vars& v, auto&) { return log(v[0]); }},
    {"abs", [](const Vars& v, auto&) { return abs(v[0]); }},
    {"add_broadcast", [](const Vars& v, auto&) { return v[0] + v[1]; }},
    {"sub_broadcast", [](const Vars& v, auto&) { return v[0] - v[1]; }},
    {"mul_broadcast", [](const Vars& v, auto&) { return v[0] * v[1]; }},
    {"div_broadcast", [](const Vars& v, auto&) { return v[0] / v[1]; }},
    {"sum_axis1", [](const Vars& v, auto&) { return sum(v[0], 1); }},
    {"mean_all", [](const Vars& v, auto&) { return mean(v[0]); }},
    {"mean_axis2_keepdim", [](const Vars& v, auto&) { return mean(v[0], 2, true); }},
    {"log_softmax", [](const Vars& v, auto&) { return log_softmax(v[0], 1); }},
    {"cross_entropy",
     [](const Vars& v, const Safetensors<float>& file) {
         return cross_entropy(v[0], as_indices(file.at("cross_entropy.const0")));
     }},
    {"concat", [](const Vars& v, auto&) { return concat<float>({v[0], v[1], v[0]}); }},
    {"gather_columns",
     [](const Vars& v, const Safetensors<float>& file) {
         const Tensor<float>& index = file.at("gather_columns.const0");
         std::vector<std::vector<int64_t>> rows;
         for (int64_t d = 0; d < index.size(0); ++d) rows.push_back(as_indices(index.slice(d, d + 1)));
         return gather_columns(v[0], rows);
     }},
};

}  // namespace

TEST_SUITE("reference") {

TEST_CASE("every op's output and gradients agree with PyTorch's to 1e-5 in float") {
    const auto file = load_safetensors<float>(std::string(ELBO_TEST_DIR) + "/reference/ops.safetensors");
    size_t checked = 0;
    for (const Case& c : cases) {
        INFO(c.name);
        const std::string prefix = std::string(c.name) + ".";
        Vars inputs;
        while (file.contains(prefix + "in" + std::to_string(inputs.size())))
            inputs.emplace_back(file.at(prefix + "in" + std::to_string(inputs.size())).clone(), true);
        REQUIRE(!inputs.empty());

        Var<float> out = c.f(inputs, file);
        // Relative to each tensor's largest magnitude: float rounding of sums over up to a few
        // hundred terms stays near 1e-7 of that scale, and the two libraries sum in different orders.
        CHECK(testing::relative_difference(out.value(), file.at(prefix + "out")) < 1e-5);
        backward(out, file.at(prefix + "seed"));
        for (size_t k = 0; k < inputs.size(); ++k) {
            INFO("gradient of input ", k);
            CHECK(testing::relative_difference(inputs[k].grad(), file.at(prefix + "grad" + std::to_string(k))) < 1e-5);
        }
        ++checked;
    }
    // Every case the script wrote is checked here.
    size_t written = 0;
    for (const auto& [name, t] : file.tensors) written += name.size() > 4 && name.ends_with(".out");
    CHECK(checked == written);
}

}
