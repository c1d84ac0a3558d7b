// AVX2 (and AVX-512) helpers shared by the elementwise C kernels (not part of the public
// interface).
//
// e^x is the same polynomial, in the same order of operations, as the Swift kernels'
// `vexp` (VectorMath.swift): clamp, n = round(x·log2 e) by the 1.5·2²³ trick, r = x − n·ln 2
// in two parts, a degree-6 Taylor polynomial, times 2ⁿ built in the exponent bits: every finite
// lane gets the bits the Swift code gives it, and a NaN stays NaN (the clamp's max and min take
// x as their second operand, which those instructions return when an operand is NaN; the
// payload may differ).
#ifndef LETHE_VECTOR_MATH_H
#define LETHE_VECTOR_MATH_H

#include <immintrin.h>
#include <string.h>

// One definition for both vector widths, so the two cannot drift apart: V is the float vector
// type, VI the integer one, P the intrinsics' prefix (_mm256, _mm512), SI their integer suffix
// (si256, si512). Every lane gets the same operations in the same order on either width.
#define LETHE_DEFINE_EXP(NAME, TARGET, V, VI, P, SI)                                             \
    __attribute__((target(TARGET))) static inline V NAME(V x) {                                  \
        V xc = P##_min_ps(P##_set1_ps(88.3f), P##_max_ps(P##_set1_ps(-87.3f), x));               \
        V magic = P##_set1_ps(12582912.0f);                                                      \
        V shifted = P##_fmadd_ps(xc, P##_set1_ps(1.44269504088896341f), magic);                  \
        V n = P##_sub_ps(shifted, magic);                                                        \
        V r = P##_fmadd_ps(n, P##_set1_ps(-0.693145751953125f), xc);                             \
        r = P##_fmadd_ps(n, P##_set1_ps(-1.42860682030941723212e-6f), r);                        \
        V p = P##_set1_ps(1.0f / 720.0f);                                                        \
        p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f / 120.0f));                                      \
        p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f / 24.0f));                                       \
        p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f / 6.0f));                                        \
        p = P##_fmadd_ps(p, r, P##_set1_ps(0.5f));                                               \
        p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f));                                               \
        p = P##_fmadd_ps(p, r, P##_set1_ps(1.0f));                                               \
        VI bits = P##_sub_epi32(P##_castps_##SI(shifted), P##_castps_##SI(magic));               \
        V scale = P##_cast##SI##_ps(P##_slli_epi32(P##_add_epi32(bits, P##_set1_epi32(127)), 23)); \
        return P##_mul_ps(p, scale);                                                             \
    }

LETHE_DEFINE_EXP(exp8, "avx2,fma", __m256, __m256i, _mm256, si256)
// For CPUs with AVX-512F (callers check): half the instructions per element.
LETHE_DEFINE_EXP(exp16, "avx512f", __m512, __m512i, _mm512, si512)

// Lanes 0..<w all ones (w = 0…8).
__attribute__((target("avx2,fma")))
static inline __m256i lanes_below(long w) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)w), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Eight floats from p, or the first w (< 8) and zeros. Masked loads and stores stay off the
// full vectors: AMD cores run vmaskmovps stores in microcode.
__attribute__((target("avx2,fma")))
static inline __m256 load_part(const float *p, long w) {
    return w >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes_below(w));
}

__attribute__((target("avx2,fma")))
static inline void store_part(float *p, long w, __m256 v) {
    if (w >= 8) { _mm256_storeu_ps(p, v); return; }
    float tmp[8];
    _mm256_storeu_ps(tmp, v);
    memcpy(p, tmp, (size_t)w * sizeof(float));
}

#endif
