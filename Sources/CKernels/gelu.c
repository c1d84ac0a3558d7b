// GELU, exact erf form, forward (with its derivative on request), on AVX2 intrinsics, or on
// AVX-512 (F, DQ) where the CPU has it (about 1.3× faster on Zen 4, which splits each 512-bit op
// in two but decodes and schedules half as many instructions).
//
// The operations and their order are those of the Swift kernel (`GELU.values`, with erf and
// e^(−x²) from `verfAndGaussian`), so every finite input gets the bits the Swift code gives
// it; Swift's SIMD code for this function ran about twice as long.
//
//     u = x·(1/√2),  t = 1/(1 + p·|u|),  P = t·(a1 + t(a2 + t(a3 + t(a4 + t·a5)))),
//     g = e^(−u²),  erf(u) = sign(u)·(1 − P·g)   (Abramowitz & Stegun 7.1.26)
//     Φ = ½·erf(u) + ½,  y = x·Φ,  y′ = (x·g)·(1/√(2π)) + Φ
#include "ckernels.h"
#include "vector_math.h"

// Both widths from one definition (see vector_math.h): V the vector type, P the intrinsics'
// prefix, EXP the matching e^x. The sign moves through float logic (AVX-512DQ on 512 bits).
#define LETHE_DEFINE_GELU(NAME, TARGET, V, P, SI, EXP)                                           \
    __attribute__((target(TARGET))) static inline void NAME(V x, V *y, V *derivative) {          \
        const V one = P##_set1_ps(1.0f), half = P##_set1_ps(0.5f);                               \
        const V sign_bit = P##_cast##SI##_ps(P##_set1_epi32((int)0x80000000u));                  \
        V u = P##_mul_ps(x, P##_set1_ps(0.70710678118654752f));                                  \
        V sign = P##_and_ps(u, sign_bit);                                                        \
        V au = P##_andnot_ps(sign_bit, u);                                                       \
        V t = P##_div_ps(one, P##_fmadd_ps(P##_set1_ps(0.3275911f), au, one));                   \
        V p = P##_set1_ps(1.061405429f);                                                         \
        p = P##_fmadd_ps(p, t, P##_set1_ps(-1.453152027f));                                      \
        p = P##_fmadd_ps(p, t, P##_set1_ps(1.421413741f));                                       \
        p = P##_fmadd_ps(p, t, P##_set1_ps(-0.284496736f));                                      \
        p = P##_fmadd_ps(p, t, P##_set1_ps(0.254829592f));                                       \
        p = P##_mul_ps(p, t);                                                                    \
        V g = EXP(P##_xor_ps(P##_mul_ps(u, u), sign_bit));                                       \
        V e = P##_or_ps(P##_fnmadd_ps(p, g, one), sign);                                         \
        V phi = P##_fmadd_ps(half, e, half);                                                     \
        *y = P##_mul_ps(x, phi);                                                                 \
        if (derivative) *derivative = P##_fmadd_ps(P##_mul_ps(x, g), P##_set1_ps(0.39894228040143268f), phi); \
    }

LETHE_DEFINE_GELU(gelu8, "avx2,fma", __m256, _mm256, si256, exp8)
LETHE_DEFINE_GELU(gelu16, "avx512f,avx512dq", __m512, _mm512, si512, exp16)

__attribute__((target("avx2,fma")))
void lethe_gelu_avx2(const float *x, float *y, float *derivative, long count) {
    long j = 0;
    __m256 value, slope;
    if (derivative) {
        for (; j + 8 <= count; j += 8) {
            gelu8(_mm256_loadu_ps(x + j), &value, &slope);
            _mm256_storeu_ps(y + j, value);
            _mm256_storeu_ps(derivative + j, slope);
        }
    } else {
        for (; j + 8 <= count; j += 8) {
            gelu8(_mm256_loadu_ps(x + j), &value, NULL);
            _mm256_storeu_ps(y + j, value);
        }
    }
    if (j < count) {
        long w = count - j;
        gelu8(load_part(x + j, w), &value, derivative ? &slope : NULL);
        store_part(y + j, w, value);
        if (derivative) store_part(derivative + j, w, slope);
    }
}

__attribute__((target("avx512f,avx512dq")))
static void gelu_avx512(const float *x, float *y, float *derivative, long count) {
    long j = 0;
    __m512 value, slope;
    if (derivative) {
        for (; j + 16 <= count; j += 16) {
            gelu16(_mm512_loadu_ps(x + j), &value, &slope);
            _mm512_storeu_ps(y + j, value);
            _mm512_storeu_ps(derivative + j, slope);
        }
    } else {
        for (; j + 16 <= count; j += 16) {
            gelu16(_mm512_loadu_ps(x + j), &value, NULL);
            _mm512_storeu_ps(y + j, value);
        }
    }
    if (j < count) {
        __mmask16 lanes = (__mmask16)((1u << (count - j)) - 1);
        gelu16(_mm512_maskz_loadu_ps(lanes, x + j), &value, derivative ? &slope : NULL);
        _mm512_mask_storeu_ps(y + j, lanes, value);
        if (derivative) _mm512_mask_storeu_ps(derivative + j, lanes, slope);
    }
}

int lethe_gelu_avx512(const float *x, float *y, float *derivative, long count) {
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512dq")) return 0;
    gelu_avx512(x, y, derivative, count);
    return 1;
}

void lethe_gelu(const float *x, float *y, float *derivative, long count) {
    if (!lethe_gelu_avx512(x, y, derivative, count)) lethe_gelu_avx2(x, y, derivative, count);
}
