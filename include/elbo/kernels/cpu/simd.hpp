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
//   prefetch           ask for the cache line at p

#include <Eigen/Core>

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
    static void prefetch(const T* p) {
#if defined(__x86_64__) || defined(__i386__)
        asm volatile("prefetcht0 %0" : : "m"(*p));  // GCC drops __builtin_prefetch from fully unrolled loops
#else
        __builtin_prefetch(p);
#endif
    }
};

// The vector ISA this build's packets use, as Eigen names it ("AVX512", "AVX", "SSE, SSE2", "NEON",
// or "None"), and the float packet's width.
inline const char* instruction_set() { return Eigen::SimdInstructionSetsInUse(); }
inline constexpr int float_width = Packet<float>::width;

}  // namespace elbo::kernels::simd
