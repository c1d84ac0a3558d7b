// Products C = A·B on AVX2 CPUs with B laid out once in panels of 16 columns.
//
// Every element of C is one chain of fused multiply-adds over k in increasing order, started
// from zero, whatever block of rows or columns it falls in; with `accumulate` the finished sum
// is then added to C. So a row's bits never depend on how many rows the call has or where the
// row sits in it, which OpenBLAS's sgemm does not give on these CPUs (its row kernels sum the
// halves of a block differently) and oneDNN 2.6's AVX2 matmul does not either. The kernel
// keeps a 6 × 16 block of C in twelve registers and reads one panel of B per block.
#include "ckernels.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

enum { PANEL = 16, ROWS = 6 };

long lethe_panel_floats(long k, long n) { return k * ((n + PANEL - 1) / PANEL) * PANEL; }

void lethe_panel_pack(const float *b, long k, long n, int transposed, float *panels) {
    long count = (n + PANEL - 1) / PANEL;
    for (long p = 0; p < count; p++) {
        float *panel = panels + p * k * PANEL;
        for (long kk = 0; kk < k; kk++) {
            for (long j = 0; j < PANEL; j++) {
                long col = p * PANEL + j;
                panel[kk * PANEL + j] = col >= n ? 0.0f : transposed ? b[col * k + kk] : b[kk * n + col];
            }
        }
    }
}

// rows (1…6) rows of A times one panel, into out[rows][16] (plain, no accumulation).
__attribute__((target("avx2,fma")))
static inline void block(const float *a, long lda, long rows, const float *panel, long k, float *out) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    const float *a0 = a, *a1 = a + (rows > 1 ? lda : 0), *a2 = a + (rows > 2 ? 2 * lda : 0);
    const float *a3 = a + (rows > 3 ? 3 * lda : 0), *a4 = a + (rows > 4 ? 4 * lda : 0);
    const float *a5 = a + (rows > 5 ? 5 * lda : 0);
    for (long kk = 0; kk < k; kk++) {
        __m256 b0 = _mm256_loadu_ps(panel + kk * PANEL), b1 = _mm256_loadu_ps(panel + kk * PANEL + 8);
        __m256 x;
        x = _mm256_broadcast_ss(a0 + kk); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + kk); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + kk); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + kk); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + kk); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + kk); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    // Rows past `rows` repeat the last real row's input and are never copied out.
    _mm256_storeu_ps(out + 0 * PANEL, c00); _mm256_storeu_ps(out + 0 * PANEL + 8, c01);
    _mm256_storeu_ps(out + 1 * PANEL, c10); _mm256_storeu_ps(out + 1 * PANEL + 8, c11);
    _mm256_storeu_ps(out + 2 * PANEL, c20); _mm256_storeu_ps(out + 2 * PANEL + 8, c21);
    _mm256_storeu_ps(out + 3 * PANEL, c30); _mm256_storeu_ps(out + 3 * PANEL + 8, c31);
    _mm256_storeu_ps(out + 4 * PANEL, c40); _mm256_storeu_ps(out + 4 * PANEL + 8, c41);
    _mm256_storeu_ps(out + 5 * PANEL, c50); _mm256_storeu_ps(out + 5 * PANEL + 8, c51);
}

// Rows per chunk: B streams once per chunk of A's rows, and a chunk of A (CHUNK × k floats,
// 288 KB at k = 768) stays in L2 while it does; a wide B (the decoder's 49,152-column LM head,
// 113 MB) would otherwise stream from memory once per six rows.
enum { CHUNK = 96 };

void lethe_panel_multiply(const float *panels, long k, long n, const float *a, long m, long lda,
                          float *c, long ldc, int accumulate) {
    long count = (n + PANEL - 1) / PANEL;
    float out[ROWS * PANEL];
    for (long first = 0; first < m; first += CHUNK) {
        long last = m - first < CHUNK ? m : first + CHUNK;
        for (long p = 0; p < count; p++) {
            long cols = n - p * PANEL < PANEL ? n - p * PANEL : PANEL;
            for (long r = first; r < last; r += ROWS) {
                long rows = last - r < ROWS ? last - r : ROWS;
                block(a + r * lda, lda, rows, panels + p * k * PANEL, k, out);
                for (long i = 0; i < rows; i++) {
                    float *dst = c + (r + i) * ldc + p * PANEL;
                    const float *src = out + i * PANEL;
                    if (accumulate) {
                        for (long j = 0; j < cols; j++) dst[j] += src[j];
                    } else {
                        memcpy(dst, src, (size_t)cols * sizeof(float));
                    }
                }
            }
        }
    }
}
