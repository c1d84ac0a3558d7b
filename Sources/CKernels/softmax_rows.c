// Softmax over the rows of attention scores, with a key mask and an optional causal mask.
//
// e^x is vector_math.h's, the same bits as the Swift kernels' `vexp`. Here it runs on AVX2
// intrinsics, which Swift's SIMD types partly scalarise.
#include "ckernels.h"
#include "vector_math.h"

#include <float.h>
#include <math.h>

__attribute__((target("avx2,fma")))
void lethe_exp(const float *x, float *y, long count) {
    for (long j = 0; j < count; j += 8) {
        float in[8] = {0}, out[8];
        long w = count - j < 8 ? count - j : 8;
        memcpy(in, x + j, (size_t)w * sizeof(float));
        _mm256_storeu_ps(out, exp8(_mm256_loadu_ps(in)));
        memcpy(y + j, out, (size_t)w * sizeof(float));
    }
}

// All ones in the lanes of keys a query sees among the eight from j: below `visible`, mask ≠ 0.
__attribute__((target("avx2,fma")))
static inline __m256 shown_lanes(const float *keep, long j, long visible) {
    long w = visible - j;
    __m256 shown = w >= 8 ? _mm256_castsi256_ps(_mm256_set1_epi32(-1)) : _mm256_castsi256_ps(lanes_below(w));
    if (keep) shown = _mm256_and_ps(shown, _mm256_cmp_ps(load_part(keep + j, w), _mm256_setzero_ps(), _CMP_NEQ_OQ));
    return shown;
}

__attribute__((target("avx2,fma")))
static inline float horizontal_max(__m256 v) {
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma")))
static inline float horizontal_sum(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
    return _mm_cvtss_f32(h);
}

__attribute__((target("avx2,fma")))
void lethe_softmax_rows(float *scores, long rows, long tokens, const float *keep, int causal) {
    const __m256 lowest = _mm256_set1_ps(-FLT_MAX);
    for (long i = 0; i < rows; i++) {
        float *row = scores + i * tokens;
        long visible = causal ? (i + 1 < tokens ? i + 1 : tokens) : tokens;
        if (visible < tokens) memset(row + visible, 0, (size_t)(tokens - visible) * sizeof(float));
        // Hidden keys (mask 0, or lanes past `visible`) take no part in the max and get e = 0.
        // A NaN score makes the whole row NaN, as the scalar formula would (max_ps alone
        // would drop it).
        __m256 mx = lowest, unordered = _mm256_setzero_ps();
        for (long j = 0; j < visible; j += 8) {
            __m256 x = _mm256_blendv_ps(lowest, load_part(row + j, visible - j), shown_lanes(keep, j, visible));
            unordered = _mm256_or_ps(unordered, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
            mx = _mm256_max_ps(mx, x);
        }
        if (_mm256_movemask_ps(unordered)) {
            for (long j = 0; j < visible; j++) row[j] = NAN;
            continue;
        }
        float m = horizontal_max(mx);
        if (!(m > -FLT_MAX)) { memset(row, 0, (size_t)visible * sizeof(float)); continue; }
        __m256 mv = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
        for (long j = 0; j < visible; j += 8) {
            __m256 e = exp8(_mm256_sub_ps(load_part(row + j, visible - j), mv));
            e = _mm256_and_ps(e, shown_lanes(keep, j, visible));
            acc = _mm256_add_ps(acc, e);
            store_part(row + j, visible - j, e);
        }
        __m256 inv = _mm256_set1_ps(1.0f / horizontal_sum(acc));
        for (long j = 0; j < visible; j += 8) store_part(row + j, visible - j, _mm256_mul_ps(load_part(row + j, visible - j), inv));
    }
}
