// The vector ISA this build's kernels run on is the one the ISA matrix asked for (tests/isa/): a
// -march that Eigen does not pick up would otherwise test the scalar or SSE2 path under another name.
#include <doctest/doctest.h>

#include <string>

#include "elbo/kernels/cpu/simd.hpp"

#if !defined(ELBO_ISA_EXPECTED) || !defined(ELBO_ISA_FLOAT_WIDTH)
#error "tests/isa/CMakeLists.txt defines ELBO_ISA_EXPECTED and ELBO_ISA_FLOAT_WIDTH"
#endif

TEST_SUITE("isa") {

TEST_CASE("the kernels use the vector ISA this build asked for") {
    namespace simd = elbo::kernels::simd;
    MESSAGE("Eigen: " << std::string(simd::instruction_set()) << "; float packet: " << simd::float_width
                      << " lanes, double packet: " << simd::Packet<double>::width << " lanes");
    CHECK(std::string(simd::instruction_set()) == std::string(ELBO_ISA_EXPECTED));
    CHECK(simd::float_width == ELBO_ISA_FLOAT_WIDTH);
}

TEST_CASE("a packet's fused multiply-add and sum agree with the scalar ones on every lane") {
    // The micro-kernel's three operations on the packets of this ISA, lane by lane.
    using P = elbo::kernels::simd::Packet<float>;
    constexpr int w = P::width;
    float a[w], b[w], c[w], out[w];
    for (int i = 0; i < w; ++i) {
        a[i] = 0.5f * float(i + 1);
        b[i] = float(3 - i);
        c[i] = 0.25f * float(i);
    }
    P::store(out, P::fma(P::load(a), P::load(b), P::load(c)));
    for (int i = 0; i < w; ++i) CHECK(out[i] == a[i] * b[i] + c[i]);  // exact: small dyadic values
    P::store(out, P::add(P::broadcast(a + 1), P::zero()));
    for (int i = 0; i < w; ++i) CHECK(out[i] == a[1]);
}

}  // TEST_SUITE("isa")
