/*
 * Register-blocked tiles and a vectorized exp for the fused linear kernel of
 * _kernels.pyx, written with GCC/Clang vector extensions: 512-bit vectors in the
 * _kernels_avx512 build, 256-bit in _kernels_avx2, else 128-bit (SSE2 on the
 * x86-64 baseline, NEON on aarch64). No intrinsics, no -ffast-math.
 *
 * Instantiated twice by including _tiles_impl.h, which undefines its parameters
 * (SMR_T, SMR_LANES, ...) when done: suffix _d (double) and _f (float).
 */
#ifndef SOFTMAXREG_TILES_H
#define SOFTMAXREG_TILES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#define SMR_VECTOR_BYTES 64
#elif defined(__AVX__)
#define SMR_VECTOR_BYTES 32
#else
#define SMR_VECTOR_BYTES 16
#endif

#define SMR_T double
#define SMR_I int64_t
#define SMR_LANES (SMR_VECTOR_BYTES / 8)
#define SMR_SUFFIX(name) name##_d
/* exp: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Taylor polynomial to r^13. */
#define SMR_EXP_LO (-1100.0)
#define SMR_EXP_HI 710.0
#define SMR_LOG2E 0x1.71547652b82fep+0
#define SMR_LN2_HI 0x1.62e42fee00000p-1
#define SMR_LN2_LO 0x1.a39ef35793c76p-33
#define SMR_SHIFT 0x1.8p52
#define SMR_MANTISSA_BITS 52
#define SMR_EXP_BIAS 1023
#define SMR_POLY(r) \
    (1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 \
    + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 \
    + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (1.0 / 479001600 \
    + r * (1.0 / 6227020800.0))))))))))))))
#include "_tiles_impl.h"

#define SMR_T float
#define SMR_I int32_t
#define SMR_LANES (SMR_VECTOR_BYTES / 4)
#define SMR_SUFFIX(name) name##_f
/* Taylor polynomial to r^8: relative error below 2**-24 for |r| <= ln2/2. */
#define SMR_EXP_LO (-160.0f)
#define SMR_EXP_HI 89.0f
#define SMR_LOG2E 0x1.715476p+0f
#define SMR_LN2_HI 0x1.62e400p-1f
#define SMR_LN2_LO 0x1.7f7d1cp-20f
#define SMR_SHIFT 0x1.8p23f
#define SMR_MANTISSA_BITS 23
#define SMR_EXP_BIAS 127
#define SMR_POLY(r) \
    (1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 \
    + r * (1.0f / 720 + r * (1.0f / 5040 + r * (1.0f / 40320)))))))))
#include "_tiles_impl.h"

#endif
