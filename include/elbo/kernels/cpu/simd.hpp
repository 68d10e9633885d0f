#pragma once
// The one door to Eigen's packet layer: the vector operations elbo's hand-blocked kernels use, for
// float and double, on whatever vector ISA the build targets (SSE2, AVX2 with FMA, AVX-512, NEON,
// ...), as Eigen picks it from the compiler's flags. Eigen::internal carries no stability promise,
// so nothing else in elbo names it: a change in Eigen is a change here.
//
//   Packet<T>::V       a vector of `width` values of T
//   zero, broadcast    every lane 0, every lane *p
//   load, store        `width` values at p (any alignment)
//   add, fma           a + b; a * b + c (fused where the ISA has FMA)
//   sum                the sum of a packet's lanes, in one fixed order
//   transpose          a square block of packets, in registers
//   prefetch           ask for the cache line at p

#include <cmath>
#include <type_traits>

#include "elbo/eigen.hpp"

// A build whose packets are narrower than the x86-64 machines of the last decade (or that has none)
// says so: the kernels run at a fraction of their speed. Define ELBO_BASELINE_ISA in a build meant
// to run on any CPU of its architecture, to silence it.
#if !defined(ELBO_BASELINE_ISA)
#if !defined(EIGEN_VECTORIZE)
#warning "elbo: compiled without a vector ISA, its kernels run one value at a time: add -march=native (CMake: ELBO_NATIVE=ON) or the -march of the CPUs it will run on"
#elif (defined(__x86_64__) || defined(__i386__)) && !defined(__AVX2__)
#warning "elbo: compiled for SSE2 only (no AVX2, no FMA), its kernels run at a fraction of their speed: add -march=native (CMake: ELBO_NATIVE=ON), or -march=x86-64-v3 for any AVX2 machine"
#endif
#endif

namespace elbo::kernels::simd {

template <class T>
struct Packet {
    using V = typename Eigen::internal::packet_traits<T>::type;
    static constexpr int width = Eigen::internal::unpacket_traits<V>::size;

    static V zero() { return Eigen::internal::pset1<V>(T(0)); }
    static V broadcast(const T* p) { return Eigen::internal::pset1<V>(*p); }
    static V load(const T* p) { return Eigen::internal::ploadu<V>(p); }
    static void store(T* p, V v) { Eigen::internal::pstoreu(p, v); }
    static V add(V a, V b) { return Eigen::internal::padd(a, b); }
    static V fma(V a, V b, V c) { return Eigen::internal::pmadd(a, b, c); }
    static T sum(V v) { return Eigen::internal::predux(v); }
    // A width x width block transposed in registers: afterwards v[r] holds lane r of every v[c].
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // V's vector attributes, as in Eigen's own PacketBlocks
    static void transpose(V (&v)[width]) {
        Eigen::internal::PacketBlock<V, width> block;
        for (int r = 0; r < width; ++r) block.packet[r] = v[r];
        Eigen::internal::ptranspose(block);
        for (int r = 0; r < width; ++r) v[r] = block.packet[r];
    }
#pragma GCC diagnostic pop
    static void prefetch(const T* p) {
#if defined(__x86_64__) || defined(__i386__)
        asm volatile("prefetcht0 %0" : : "m"(*p));  // GCC drops __builtin_prefetch from fully unrolled loops
#else
        __builtin_prefetch(p);
#endif
    }
};

// e^x on a packet of floats or doubles. For float it is Eigen's generic packet exp, the one its
// SSE, AVX2 and NEON packets use, on every ISA: Eigen 3.4 gives AVX-512 an exp of its own, with
// ln 2 in one constant and the input clamped at 88.376, which measured 4.4 ulp at x = 86 and inf
// from x = 88.376 on (e^88.72 is still a float); the generic one, on the same AVX-512 packets,
// 1.3 ulp and finite wherever the float is.
template <class V>
V exp(const V& x) {
    if constexpr (std::is_same_v<typename Eigen::internal::unpacket_traits<V>::type, float>)
        return Eigen::internal::pexp_float(x);
    else
        return Eigen::internal::pexp(x);
}

// exp as an Eigen functor, so that array expressions use it: x.unaryExpr(ExpOp<T>{}).
template <class T>
struct ExpOp {
    T operator()(const T& x) const { return std::exp(x); }
    template <class V>
    V packetOp(const V& x) const { return simd::exp(x); }
};

// The vector ISA this build's packets use, as Eigen names it ("AVX512", "AVX", "SSE, SSE2", "NEON",
// or "None"), and the float packet's width.
inline const char* instruction_set() { return Eigen::SimdInstructionSetsInUse(); }
inline constexpr int float_width = Packet<float>::width;

// The vector registers the ISA has, as Eigen counts them: 16 on SSE and AVX2, 32 on AVX-512 and
// arm64. The GEMM's tile is sized by it.
inline constexpr int registers = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS;

// Whether a broadcast value feeding a multiply-add stays in a register of its own (arm64's fmla by
// lane), rather than being loaded again for every use (x86's broadcast from memory).
#if defined(__aarch64__)
inline constexpr bool fma_by_lane = true;
#else
inline constexpr bool fma_by_lane = false;
#endif

}  // namespace elbo::kernels::simd

template <class T>
struct Eigen::internal::functor_traits<elbo::kernels::simd::ExpOp<T>> {
    enum { Cost = functor_traits<scalar_exp_op<T>>::Cost, PacketAccess = packet_traits<T>::HasExp };
};
