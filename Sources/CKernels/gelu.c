// GELU, exact erf form, forward (with its derivative on request), on AVX2 intrinsics.
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

__attribute__((target("avx2,fma")))
static inline void gelu8(__m256 x, __m256 *y, __m256 *derivative) {
    const __m256 one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    const __m256 sign_bit = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    __m256 u = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    __m256 sign = _mm256_and_ps(u, sign_bit);
    __m256 au = _mm256_andnot_ps(sign_bit, u);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.3275911f), au, one));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    __m256 g = exp8(_mm256_xor_ps(_mm256_mul_ps(u, u), sign_bit));
    __m256 e = _mm256_or_ps(_mm256_fnmadd_ps(p, g, one), sign);
    __m256 phi = _mm256_fmadd_ps(half, e, half);
    *y = _mm256_mul_ps(x, phi);
    if (derivative) *derivative = _mm256_fmadd_ps(_mm256_mul_ps(x, g), _mm256_set1_ps(0.39894228040143268f), phi);
}

__attribute__((target("avx2,fma")))
void lethe_gelu(const float *x, float *y, float *derivative, long count) {
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
