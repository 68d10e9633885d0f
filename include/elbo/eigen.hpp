#pragma once
// Eigen, as every part of elbo includes it. Compiled for AVX-512, GCC 12 warns "'__Y' is used
// uninitialized" (or "may be") inside its own avx512fintrin.h wherever one of Eigen's packet
// functions (pmin, pmax, ...) is inlined: _mm512_undefined_ps() is uninitialized by design. GCC
// takes the warning's state from the place of that header, which is first included here, so
// silencing the two warnings around this include silences nothing else.

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <Eigen/Core>
#pragma GCC diagnostic pop
#else
#include <Eigen/Core>
#endif
