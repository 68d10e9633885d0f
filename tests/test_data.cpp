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

#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "elbo/data/idx.hpp"

namespace {

std::vector<uint8_t> idx_bytes(uint8_t type, std::vector<uint32_t> dims, const std::vector<uint8_t>& values) {
    std::vector<uint8_t> b{0, 0, type, static_cast<uint8_t>(dims.size())};
    for (uint32_t d : dims)
        for (int k = 3; k >= 0; --k) b.push_back(static_cast<uint8_t>(d >> (8 * k)));
    b.insert(b.end(), values.begin(), values.end());
    return b;
}

std::string write_temp(const std::string& name, const std::vector<uint8_t>& bytes, bool gzip) {
    const std::string path = (std::filesystem::temp_directory_path() / (name + std::to_string(::getpid()))).string();
    if (gzip) {
        gzFile f = gzopen(path.c_str(), "wb");
        gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
        gzclose(f);
    } else {
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    }
    return path;
}

}  // namespace

TEST_SUITE("data") {

TEST_CASE("IDX files read plain or gzip'd, images scaled to [0, 1] and padded with zeros") {
    std::vector<uint8_t> pixels;
    for (int i = 0; i < 24; ++i) pixels.push_back(static_cast<uint8_t>(i * 10));
    const std::string path = write_temp("elbo-idx-u8-", idx_bytes(0x08, {2, 3, 4}, pixels), true);
    Tensor<float> images = data::idx_images(path, 1);
    CHECK(images.shape() == Shape{2, 1, 5, 6});
    CHECK(images.at({0, 0, 1, 1}) == 0.0f);
    CHECK(images.at({1, 0, 3, 4}) == doctest::Approx(230.0 / 255.0));  // pixel 23 of the 24
    CHECK(images.at({1, 0, 0, 0}) == 0.0f);
    CHECK(images.at({1, 0, 4, 5}) == 0.0f);
    std::filesystem::remove(path);

    // Big-endian f32: 1.5 is 0x3FC00000.
    const std::string plain = write_temp("elbo-idx-f32-", idx_bytes(0x0D, {1}, {0x3F, 0xC0, 0, 0}), false);
    CHECK(data::load_idx(plain).values == std::vector<double>{1.5});
    std::filesystem::remove(plain);
}

TEST_CASE("images written as IDX bytes read back as the same images; other values are refused") {
    // dSprites (0 and 1) and grey levels k / 255, [N, 1, H, W] and [N, 3, H, W].
    const Tensor<float> sprites = data::DSprites().images<float>({0, 1000, 737279});
    Generator gen(3);
    Tensor<float> grey(Shape{2, 3, 4, 5});
    for (float& v : grey) v = static_cast<float>(static_cast<double>(gen.below(256)) / 255.0);
    for (const Tensor<float>* images : {&sprites, static_cast<const Tensor<float>*>(&grey)}) {
        const Shape s = images->shape();
        const std::vector<int64_t> dims =
            s[1] == 1 ? std::vector<int64_t>{s[0], s[2], s[3]} : std::vector<int64_t>{s[0], s[1], s[2], s[3]};
        std::string bytes = data::idx_u8_header(dims);
        data::append_idx_u8(*images, bytes, "test images");
        const data::IdxArray a = data::parse_idx(std::vector<uint8_t>(bytes.begin(), bytes.end()), "written");
        CHECK(a.dims == dims);
        CHECK(data::idx_images(a, "written").to_vector() == images->to_vector());
    }
    Tensor<float> half(Shape{1, 1, 1, 2});
    half[1] = 0.5f;
    std::string bytes;
    CHECK(testing::error_of([&] { data::append_idx_u8(half, bytes, "half"); }) ==
          "idx: half has the pixel value 0.5, which is not k / 255: an IDX file of bytes holds only those");
    CHECK(testing::error_of([&] { data::idx_u8_header({int64_t{1} << 33}); }).find("below 2^32, got 8589934592") !=
          std::string::npos);
}

TEST_CASE("malformed IDX files are rejected with what is wrong") {
    const std::pair<std::vector<uint8_t>, std::string> cases[] = {
        {{0, 0}, "file is 2 bytes, shorter than the 4-byte magic number"},
        {{1, 0, 8, 1, 0, 0, 0, 1, 7}, "not an IDX file (the magic number must start with two zero bytes)"},
        {idx_bytes(0x07, {1}, {1}), "unknown value type 0x7"},
        {idx_bytes(0x08, {2, 2}, {1, 2, 3}), "dimensions [2,2] need 4 bytes of values, the file has 3"},
        {{0, 0, 8, 2, 0, 0}, "file ends inside its 2 dimension sizes"},
        {idx_bytes(0x08, {0xFFFFFF, 0xFFFFFF}, {1}), "dimension sizes ask for more values than the file holds"},
    };
    for (const auto& [bytes, message] : cases) {
        const std::string path = write_temp("elbo-idx-bad-", bytes, false);
        CHECK(testing::error_of([&] { data::load_idx(path); }) == "idx: " + path + ": " + message);
        std::filesystem::remove(path);
    }
    CHECK(testing::error_of([] { data::load_idx("/nonexistent.idx"); }) == "idx: cannot open '/nonexistent.idx'");
}

TEST_CASE("Fashion-MNIST loads from Debian's package, padded to 32x32") {
    const auto train = data::FashionMnist::load(true);
    CHECK(train.images.shape() == Shape{60000, 1, 32, 32});
    REQUIRE(train.labels.size() == 60000);
    // The first labels, and the first image's pixel sum, as Python's gzip module reads the files.
    CHECK(std::vector<int64_t>(train.labels.begin(), train.labels.begin() + 10) ==
          std::vector<int64_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5});
    double sum = 0;
    for (int64_t i = 0; i < 32 * 32; ++i) sum += train.images[i];
    CHECK(sum * 255 == doctest::Approx(76247).epsilon(1e-6));
    for (int64_t i = 0; i < 32; ++i) {
        CHECK(train.images.at({0, 0, 0, i}) == 0.0f);
        CHECK(train.images.at({0, 0, i, 31}) == 0.0f);
    }
    const auto test = data::FashionMnist::load(false);
    CHECK(test.images.size(0) == 10000);
    CHECK(test.labels[1] == 2);
    CHECK(testing::error_of([] { data::FashionMnist::load(true, "/nonexistent"); }) ==
          "idx: cannot open '/nonexistent/train-images-idx3-ubyte.gz'");
}

}

#include "elbo/data/loader.hpp"

namespace {

// Images whose every pixel holds the item's index, so a batch shows which items it holds.
Tensor<float> index_images(const std::vector<int64_t>& indices) {
    Tensor<float> t(Shape{static_cast<int64_t>(indices.size()), 1, 2, 2});
    for (size_t n = 0; n < indices.size(); ++n)
        for (int k = 0; k < 4; ++k) t[static_cast<int64_t>(n) * 4 + k] = static_cast<float>(indices[n]);
    return t;
}

}  // namespace

TEST_SUITE("data") {

TEST_CASE("the loader visits every item once an epoch, in a seeded order, one batch ahead") {
    data::Loader loader(10, 3, 42, index_images);
    CHECK(loader.batches_per_epoch() == 3);
    std::vector<int64_t> seen;
    for (int k = 0; k < 3; ++k) {
        data::Batch b = loader.next();
        CHECK(b.step == k);
        CHECK(b.epoch == 0);
        CHECK(b.images.shape() == Shape{3, 1, 2, 2});
        for (size_t n = 0; n < 3; ++n) CHECK(b.images[static_cast<int64_t>(n) * 4 + 3] == static_cast<float>(b.indices[n]));
        seen.insert(seen.end(), b.indices.begin(), b.indices.end());
    }
    std::sort(seen.begin(), seen.end());
    CHECK(std::adjacent_find(seen.begin(), seen.end()) == seen.end());  // nine distinct items of ten
    data::Batch next_epoch = loader.next();
    CHECK(next_epoch.epoch == 1);
    CHECK(loader.order(0) != loader.order(1));
    CHECK(data::Loader(10, 3, 42, index_images).order(1) == loader.order(1));
    CHECK(data::Loader(10, 3, 43, index_images).order(0) != loader.order(0));
}

TEST_CASE("a loader that seeks to batch k gives what an uninterrupted one gives there") {
    data::Loader straight(50, 4, 7, index_images);
    std::vector<std::vector<int64_t>> batches;
    for (int k = 0; k < 20; ++k) batches.push_back(straight.next().indices);
    data::Loader resumed(50, 4, 7, index_images);
    resumed.seek(13);
    for (int k = 13; k < 20; ++k) CHECK(resumed.next().indices == batches[static_cast<size_t>(k)]);
}

TEST_CASE("shards of a loader, side by side, are the one loader of their whole batch, epoch after epoch") {
    data::Loader whole(50, 12, 7, index_images);
    std::vector<std::unique_ptr<data::Loader>> shards;
    for (int r = 0; r < 3; ++r) shards.push_back(std::make_unique<data::Loader>(50, 4, 7, index_images, r, 3));
    CHECK(shards[0]->batches_per_epoch() == whole.batches_per_epoch());
    for (int k = 0; k < 10; ++k) {  // 4 batches an epoch: across two epochs and into a third
        const data::Batch b = whole.next();
        std::vector<int64_t> joined;
        for (auto& shard : shards) {
            const data::Batch part = shard->next();
            CHECK(part.step == b.step);
            CHECK(part.epoch == b.epoch);
            joined.insert(joined.end(), part.indices.begin(), part.indices.end());
        }
        CHECK(joined == b.indices);
    }
    CHECK(testing::error_of([] { data::Loader(10, 2, 1, index_images, 2, 2); }) ==
          "Loader: expected shard r of n, 0 <= r < n, got shard 2 of 2");
    CHECK(testing::error_of([] { data::Loader(10, 4, 1, index_images, 0, 3); }) ==
          "Loader: the data set has 10 items, fewer than one batch of 12");
}

TEST_CASE("the loader rejects impossible sizes and a source of the wrong shape") {
    CHECK(testing::error_of([] { data::Loader(10, 0, 1, index_images); }) == "Loader: batch size must be positive, got 0");
    CHECK(testing::error_of([] { data::Loader(3, 4, 1, index_images); }) ==
          "Loader: the data set has 3 items, fewer than one batch of 4");
    data::Loader broken(10, 2, 1, [](const std::vector<int64_t>&) { return Tensor<float>(Shape{1, 1}); });
    CHECK(testing::error_of([&] { broken.next(); }) == "Loader: the source made [1,1] for 2 items");
    CHECK(testing::error_of([&] { broken.next(); }) ==
          "Loader: the previous batch failed to load; seek() to a step to go on");
}

}

// ---- pictures (io/image.hpp), image folders and the data set names

namespace {

// An RGB image [3, h, w] whose values are multiples of 1/255 (so 8-bit files hold them exactly).
Tensor<float> test_picture(int64_t h, int64_t w, int seed) {
    Tensor<float> t(Shape{3, h, w});
    for (int64_t i = 0; i < t.numel(); ++i) t[i] = static_cast<float>((i * 37 + seed * 101) % 256) / 255.0f;
    return t;
}

// Interleaved 8-bit pixels of an image [C, H, W].
std::vector<unsigned char> interleaved(const Tensor<float>& t) {
    const int64_t C = t.size(0), HW = t.size(1) * t.size(2);
    std::vector<unsigned char> out(static_cast<size_t>(C * HW));
    for (int64_t c = 0; c < C; ++c)
        for (int64_t p = 0; p < HW; ++p) out[p * C + c] = static_cast<unsigned char>(std::lround(255 * t[c * HW + p]));
    return out;
}

}  // namespace

TEST_SUITE("io") {

TEST_CASE("PNG files decode (with stb_image) to the 8-bit values written") {
    const Tensor<float> rgb = test_picture(5, 7, 1);
    const std::vector<uint8_t> png = encode_png(rgb);
    int w = 0, h = 0, c = 0;
    unsigned char* pixels = stbi_load_from_memory(png.data(), static_cast<int>(png.size()), &w, &h, &c, 0);
    REQUIRE(pixels);
    CHECK(w == 7);
    CHECK(h == 5);
    CHECK(c == 3);
    CHECK(std::vector<unsigned char>(pixels, pixels + 105) == interleaved(rgb));
    stbi_image_free(pixels);

    // Values outside [0, 1] (and NaN) are clamped, not wrapped.
    const Tensor<float> grey = Tensor<float>::from_vector(Shape{1, 1, 4}, {-1.0f, 0.5f, 2.0f, std::nanf("")});
    const std::vector<uint8_t> g = encode_png(grey);
    pixels = stbi_load_from_memory(g.data(), static_cast<int>(g.size()), &w, &h, &c, 0);
    REQUIRE(pixels);
    CHECK(c == 1);
    CHECK(std::vector<unsigned char>(pixels, pixels + 4) == std::vector<unsigned char>{0, 128, 255, 0});
    stbi_image_free(pixels);

    CHECK(testing::error_of([] { encode_png(Tensor<float>(Shape{2, 3, 3})); }) ==
          "encode_png: expected an image [1 or 3, H, W], got [2,3,3]");
}

TEST_CASE("image grids place image n at row n / columns, column n % columns") {
    Tensor<float> images(Shape{5, 1, 2, 3});
    for (int64_t n = 0; n < 5; ++n)
        for (int64_t k = 0; k < 6; ++k) images[n * 6 + k] = static_cast<float>(n) / 10 + static_cast<float>(k) / 100;
    const Tensor<float> grid = image_grid(images, 2, 1, -1.0f);
    CHECK(grid.shape() == Shape{1, 3 * 3 + 1, 2 * 4 + 1});
    for (int64_t n = 0; n < 5; ++n)
        for (int64_t i = 0; i < 2; ++i)
            for (int64_t j = 0; j < 3; ++j)
                CHECK(grid.at({0, 1 + n / 2 * 3 + i, 1 + n % 2 * 4 + j}) == images.at({n, 0, i, j}));
    CHECK(grid.at({0, 0, 0}) == -1.0f);   // padding
    CHECK(grid.at({0, 7, 5}) == -1.0f);   // the empty sixth cell
}

TEST_CASE("resizing keeps constants constant and a ramp increasing") {
    Tensor<float> t(Shape{2, 8, 8});
    for (int64_t i = 0; i < 64; ++i) t[i] = 0.25f, t[64 + i] = static_cast<float>(i % 8) / 7;
    const Tensor<float> r = resize_images(t, 4, 6);
    CHECK(r.shape() == Shape{2, 4, 6});
    for (int64_t i = 0; i < 24; ++i) CHECK(r[i] == doctest::Approx(0.25f).epsilon(1e-6));
    for (int64_t j = 1; j < 6; ++j) CHECK(r.at({1, 2, j}) > r.at({1, 2, j - 1}));
    for (int64_t i = 0; i < r.numel(); ++i) CHECK((r[i] >= 0.0f && r[i] <= 1.0f));
}

}  // TEST_SUITE("io")

TEST_SUITE("data") {

TEST_CASE("an image folder decodes PNG, BMP and JPEG, skips what it cannot read, crops and converts") {
    namespace fs = std::filesystem;
    const fs::path dir = testing::scratch_dir("folder");
    fs::create_directories(dir / "sub");
    const Tensor<float> a = test_picture(6, 6, 1), b = test_picture(6, 6, 2);
    write_png((dir / "a.png").string(), a);
    const std::vector<unsigned char> pb = interleaved(b);
    REQUIRE(stbi_write_bmp((dir / "sub" / "b.bmp").c_str(), 6, 6, 3, pb.data()));
    REQUIRE(stbi_write_jpg((dir / "c.jpg").c_str(), 6, 6, 3, pb.data(), 95));
    // 4 wide, 2 high: the centred square is columns 1 and 2.
    Tensor<float> wide(Shape{3, 2, 4});
    for (int64_t i = 0; i < wide.numel(); ++i) wide[i] = static_cast<float>(i % 4) / 3;
    write_png((dir / "d.png").string(), wide);
    std::ofstream(dir / "broken.png") << "not a picture";
    std::ofstream(dir / "notes.txt") << "hello";

    const data::ImageFolder rgb(dir.string(), 6, 3);
    REQUIRE(rgb.size() == 4);  // a.png, c.jpg, d.png, sub/b.bmp in sorted order
    CHECK(rgb.file(0) == (dir / "a.png").string());
    CHECK(rgb.file(3) == (dir / "sub" / "b.bmp").string());
    CHECK(testing::relative_difference(rgb.images({0}).reshape({3, 6, 6}), a) < 1e-6);  // PNG: exact
    CHECK(testing::relative_difference(rgb.images({3}).reshape({3, 6, 6}), b) < 1e-6);  // BMP: exact
    CHECK(testing::relative_difference(rgb.images({1}).reshape({3, 6, 6}), b) < 0.25);  // JPEG: lossy

    const data::ImageFolder small(dir.string(), 2, 3);
    const Tensor<float> cropped = small.images({2});  // d.png's square, columns 1 and 2, at its own size
    CHECK(cropped.at({0, 0, 0, 0}) == doctest::Approx(1.0 / 3).epsilon(1e-2));
    CHECK(cropped.at({0, 0, 0, 1}) == doctest::Approx(2.0 / 3).epsilon(1e-2));

    // Grey is stb's luminance, (77 r + 150 g + 29 b) / 256 on the 8-bit values.
    const data::ImageFolder grey(dir.string(), 6, 1);
    const Tensor<float> g = grey.images({0});
    const auto p = interleaved(a);
    CHECK(g.shape() == Shape{1, 1, 6, 6});
    CHECK(std::lround(255 * g[0]) == (77 * p[0] + 150 * p[1] + 29 * p[2]) >> 8);

    const fs::path empty = testing::scratch_dir("folder-empty");
    std::ofstream(empty / "broken.png") << "not a picture";
    CHECK(testing::error_of([&] { data::ImageFolder(empty.string(), 8, 3); }) ==
          "images: '" + empty.string() + "' holds no picture stb_image can read (1 files looked at)");
    CHECK(testing::error_of([] { data::ImageFolder("/nonexistent-folder", 8, 3); }) ==
          "images: '/nonexistent-folder' is not a folder");
    fs::remove_all(dir);
    fs::remove_all(empty);
}

TEST_CASE("data sets open by name with their sizes, values and descriptions") {
    const auto sprites = data::open_dataset("dsprites");
    CHECK(sprites->size() == 737280);
    CHECK(sprites->image_size() == 64);
    const nlohmann::ordered_json f = sprites->describe(300000);  // shape 1, scale 1, orientation 12, posX 31, posY 0
    CHECK(f["shape"] == "ellipse");
    CHECK(f["factors"] == nlohmann::json{1, 1, 12, 31, 0});
    CHECK(f["scale"].get<double>() == doctest::Approx(0.6));
    std::vector<float> direct(64 * 64);
    data::DSprites().render(300000, direct.data());
    CHECK(sprites->images({300000}).to_vector() == direct);
    CHECK(data::open_dataset("dsprites", {.image_size = 32})->images({5}).shape() == Shape{1, 1, 32, 32});

    const auto test = data::open_dataset("fashion-mnist:test", {.image_size = 64});
    CHECK(test->size() == 10000);
    const Tensor<float> x = test->images({0, 9999});
    CHECK(x.shape() == Shape{2, 1, 64, 64});
    CHECK(*std::min_element(x.begin(), x.end()) >= 0.0f);
    CHECK(*std::max_element(x.begin(), x.end()) <= 1.0f);
    CHECK(test->describe(0)["class"] == "Ankle boot");  // the test set's first label is 9

    // 30 x 30 IDX images are centred in 32 x 32.
    std::vector<uint8_t> pixels(2 * 30 * 30, 255);
    const std::string path = write_temp("elbo-idx-30-", idx_bytes(0x08, {2, 30, 30}, pixels), false);
    const auto idx = data::open_dataset("idx:" + path);
    CHECK(idx->size() == 2);
    const Tensor<float> y = idx->images({1});
    CHECK(y.shape() == Shape{1, 1, 32, 32});
    CHECK(y.at({0, 0, 0, 0}) == 0.0f);
    CHECK(y.at({0, 0, 1, 1}) == 1.0f);
    CHECK(y.at({0, 0, 30, 30}) == 1.0f);
    CHECK(y.at({0, 0, 31, 31}) == 0.0f);
    std::filesystem::remove(path);

    CHECK(testing::error_of([] { data::open_dataset("mnist"); }) ==
          "data: unknown data set 'mnist'; expected fashion-mnist, fashion-mnist:test, dsprites, idx:FILE or images:DIR");
    CHECK(testing::error_of([] { data::open_dataset("dsprites", {.channels = 3}); }) ==
          "data: 'dsprites' has 1 channel(s); only images:DIR converts between grey and RGB, got channels 3");
    CHECK(testing::error_of([&] { sprites->images({737280}); }) == "dsprites: index 737280 is outside [0, 737280)");
}

}  // TEST_SUITE("data")
