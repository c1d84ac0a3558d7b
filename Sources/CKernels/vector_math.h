// AVX2 helpers shared by the elementwise C kernels (not part of the public interface).
//
// e^x is the same polynomial, in the same order of operations, as the Swift kernels'
// `vexp` (VectorMath.swift): clamp, n = round(x·log2 e) by the 1.5·2²³ trick, r = x − n·ln 2
// in two parts, a degree-6 Taylor polynomial, times 2ⁿ built in the exponent bits: every finite
// lane gets the bits the Swift code gives it (a NaN may come out with another payload).
#ifndef LETHE_VECTOR_MATH_H
#define LETHE_VECTOR_MATH_H

#include <immintrin.h>
#include <string.h>

__attribute__((target("avx2,fma")))
static inline __m256 exp8(__m256 x) {
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 magic = _mm256_set1_ps(12582912.0f);
    __m256 shifted = _mm256_fmadd_ps(xc, _mm256_set1_ps(1.44269504088896341f), magic);
    __m256 n = _mm256_sub_ps(shifted, magic);
    __m256 r = _mm256_fmadd_ps(n, _mm256_set1_ps(-0.693145751953125f), xc);
    r = _mm256_fmadd_ps(n, _mm256_set1_ps(-1.42860682030941723212e-6f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_castps_si256(magic));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(p, scale);
}

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
