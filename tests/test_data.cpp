// Data sets: dSprites' factors, order and geometry.
#include "helpers.hpp"

#include "elbo/data/dsprites.hpp"

using namespace elbo;
using data::DSprites;
using data::DSpritesFactors;

namespace {

struct Box {
    int64_t left = 64, right = -1, top = 64, bottom = -1, pixels = 0;
};

Box bounding_box(const std::vector<float>& image) {
    Box b;
    for (int64_t j = 0; j < 64; ++j)
        for (int64_t i = 0; i < 64; ++i)
            if (image[j * 64 + i] == 1.0f) {
                b.left = std::min(b.left, i), b.right = std::max(b.right, i);
                b.top = std::min(b.top, j), b.bottom = std::max(b.bottom, j);
                ++b.pixels;
            }
    return b;
}

std::vector<float> render(const DSprites& d, DSpritesFactors f) {
    std::vector<float> image(64 * 64);
    d.render(DSprites::index(f), image.data());
    return image;
}

}  // namespace

TEST_SUITE("data") {

TEST_CASE("dsprites indices follow DeepMind's order, posY fastest") {
    CHECK(DSprites::count == 737280);
    CHECK(DSprites::index({.shape = 0, .scale = 0, .orientation = 0, .pos_x = 0, .pos_y = 1}) == 1);
    CHECK(DSprites::index({.shape = 0, .scale = 0, .orientation = 0, .pos_x = 1, .pos_y = 0}) == 32);
    CHECK(DSprites::index({.shape = 0, .scale = 0, .orientation = 1, .pos_x = 0, .pos_y = 0}) == 1024);
    CHECK(DSprites::index({.shape = 0, .scale = 1, .orientation = 0, .pos_x = 0, .pos_y = 0}) == 40960);
    CHECK(DSprites::index({.shape = 2, .scale = 5, .orientation = 39, .pos_x = 31, .pos_y = 31}) == 737279);
    for (int64_t i : {0, 1, 31, 1000, 123456, 500000, 737279}) CHECK(DSprites::index(DSprites::factors(i)) == i);
    CHECK(DSprites::factors(300000) == DSpritesFactors{.shape = 1, .scale = 1, .orientation = 12, .pos_x = 31, .pos_y = 0});
    CHECK(testing::error_of([] { DSprites::factors(737280); }) == "dsprites: index 737280 is outside [0, 737280)");
    CHECK(DSprites::orientation_value(39) == doctest::Approx(2 * std::numbers::pi));
}

TEST_CASE("dsprites squares cover exactly the pixels whose centres fall inside") {
    DSprites d;
    // Scale 1, centre (16, 16): |i + 0.5 - 16| < 9.6 holds for i = 6..25, twenty columns and rows.
    Box b = bounding_box(render(d, {.shape = 0, .scale = 5}));
    CHECK(b.left == 6);
    CHECK(b.right == 25);
    CHECK(b.top == 6);
    CHECK(b.bottom == 25);
    CHECK(b.pixels == 400);
    // Scale 0.5 at posX = posY = 1, centre (48, 48): |i + 0.5 - 48| < 4.8 holds for i = 43..52.
    b = bounding_box(render(d, {.shape = 0, .scale = 0, .pos_x = 31, .pos_y = 31}));
    CHECK(b.left == 43);
    CHECK(b.right == 52);
    CHECK(b.pixels == 100);
}

TEST_CASE("dsprites ellipses lie along x and hearts point down") {
    DSprites d;
    // Semi-axes 12.76 and 7.22 at (16, 16): columns 3..28, rows 9..22; area π·12.76·7.22 = 289.4.
    Box e = bounding_box(render(d, {.shape = 1, .scale = 5}));
    CHECK(e.left == 3);
    CHECK(e.right == 28);
    CHECK(e.top == 9);
    CHECK(e.bottom == 22);
    CHECK(std::abs(e.pixels - 289.4) < 12);

    // The heart x = 16 sin³t, y = 13 cos t - 5 cos 2t - 2 cos 3t - cos 4t encloses 180π; scaled by
    // 0.6 and 0.6625 that is 224.8 pixels. Lobes up (two runs in a top row), the tip down.
    const std::vector<float> heart = render(d, {.shape = 2, .scale = 5});
    Box h = bounding_box(heart);
    CHECK(std::abs(h.pixels - 224.8) < 12);
    auto runs = [&](int64_t row) {
        int count = 0;
        for (int64_t i = 0; i < 64; ++i) count += heart[row * 64 + i] == 1.0f && (i == 0 || heart[row * 64 + i - 1] == 0.0f);
        return count;
    };
    CHECK(runs(h.top) == 2);
    CHECK(runs(h.bottom) == 1);
    int64_t tip = 0;
    for (int64_t i = 0; i < 64; ++i) tip += heart[h.bottom * 64 + i] == 1.0f;
    CHECK(tip <= 3);
}

TEST_CASE("dsprites orientations turn counter-clockwise, and 0 and 2π render alike") {
    DSprites d;
    CHECK(render(d, {.shape = 2, .scale = 3, .orientation = 0}) == render(d, {.shape = 2, .scale = 3, .orientation = 39}));
    // A quarter turn (orientation ≈ 9.75 of 39) stands the ellipse upright: taller than wide.
    Box upright = bounding_box(render(d, {.shape = 1, .scale = 5, .orientation = 10, .pos_x = 16, .pos_y = 16}));
    CHECK(upright.bottom - upright.top > upright.right - upright.left);
    // Counter-clockwise on screen turns the heart's lobes (up) to the left and its tip to the right:
    // the leftmost column crosses both lobes, the rightmost only the tip.
    const std::vector<float> turned = render(d, {.shape = 2, .scale = 5, .orientation = 10, .pos_x = 16, .pos_y = 16});
    Box t = bounding_box(turned);
    auto runs = [&](int64_t column) {
        int count = 0;
        for (int64_t j = 0; j < 64; ++j)
            count += turned[j * 64 + column] == 1.0f && (j == 0 || turned[(j - 1) * 64 + column] == 0.0f);
        return count;
    };
    CHECK(runs(t.left) == 2);
    CHECK(runs(t.right) == 1);
}

TEST_CASE("dsprites batches are [N, 1, 64, 64] binary images, deterministic") {
    DSprites d;
    Tensor<float> a = d.images({0, 245760, 737279}), b = d.images({0, 245760, 737279});
    CHECK(a.shape() == Shape{3, 1, 64, 64});
    CHECK(a.to_vector() == b.to_vector());
    for (float v : a) CHECK((v == 0.0f || v == 1.0f));
    // No pixel ever leaves the image: the largest heart in the far corner stays inside the border.
    Box corner = bounding_box(render(d, {.shape = 2, .scale = 5, .orientation = 20, .pos_x = 31, .pos_y = 31}));
    CHECK(corner.right < 63);
    CHECK(corner.bottom < 63);
}

}
