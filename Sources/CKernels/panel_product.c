// Products C = A·B on AVX2 CPUs with B laid out once in panels of 16 columns.
//
// Every element of C is one chain of fused multiply-adds over k in increasing order, started
// from zero, whatever block of rows or columns it falls in; with `accumulate` the finished sum
// is then added to C. So a row's bits never depend on how many rows the call has or where the
// row sits in it, which OpenBLAS's sgemm does not give on these CPUs (its row kernels sum the
// halves of a block differently) and oneDNN 2.6's AVX2 matmul does not either. The kernel
// keeps a 6 × 16 block of C in twelve registers and reads one panel of B per block. A may be
// read transposed (element (i, kk) at a[i·row_stride + kk·k_stride]), which attention's
// products Pᵀ·dO and dSᵀ·Q use instead of copying a transpose.
//
// Where the CPU has AVX-512 (F), the blocks are 12 rows of one panel in twelve 512-bit
// registers: the same chains, so the same bits (tested against the AVX2 blocks), in fewer
// instructions per multiply-add. On Zen 4, which runs each 512-bit FMA as two 256-bit halves,
// an adapter's products on 96 rows ran 5–44% faster (x·Aᵀ, k = 384) and 10–42% (xa·Bᵀ, k = 16,
// where the 6-row block spends a large share on C) in repeated measurements
// (Tools/panel_kernel_paths.c, docs/BENCHMARKS.md).
#include "ckernels.h"

#include <immintrin.h>
#include <string.h>

enum { PANEL = 16, ROWS = 6 };

long lethe_panel_floats(long k, long n) { return k * ((n + PANEL - 1) / PANEL) * PANEL; }

// Eight rows of eight floats (rows `ld` apart) transposed and scaled into out (rows `ldo` apart).
__attribute__((target("avx2,fma")))
static inline void transpose8(const float *in, long ld, __m256 scale, float *out, long ldo) {
    __m256 r0 = _mm256_loadu_ps(in), r1 = _mm256_loadu_ps(in + ld), r2 = _mm256_loadu_ps(in + 2 * ld);
    __m256 r3 = _mm256_loadu_ps(in + 3 * ld), r4 = _mm256_loadu_ps(in + 4 * ld), r5 = _mm256_loadu_ps(in + 5 * ld);
    __m256 r6 = _mm256_loadu_ps(in + 6 * ld), r7 = _mm256_loadu_ps(in + 7 * ld);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(out, _mm256_mul_ps(_mm256_permute2f128_ps(u0, u4, 0x20), scale));
    _mm256_storeu_ps(out + ldo, _mm256_mul_ps(_mm256_permute2f128_ps(u1, u5, 0x20), scale));
    _mm256_storeu_ps(out + 2 * ldo, _mm256_mul_ps(_mm256_permute2f128_ps(u2, u6, 0x20), scale));
    _mm256_storeu_ps(out + 3 * ldo, _mm256_mul_ps(_mm256_permute2f128_ps(u3, u7, 0x20), scale));
    _mm256_storeu_ps(out + 4 * ldo, _mm256_mul_ps(_mm256_permute2f128_ps(u0, u4, 0x31), scale));
    _mm256_storeu_ps(out + 5 * ldo, _mm256_mul_ps(_mm256_permute2f128_ps(u1, u5, 0x31), scale));
    _mm256_storeu_ps(out + 6 * ldo, _mm256_mul_ps(_mm256_permute2f128_ps(u2, u6, 0x31), scale));
    _mm256_storeu_ps(out + 7 * ldo, _mm256_mul_ps(_mm256_permute2f128_ps(u3, u7, 0x31), scale));
}

__attribute__((target("avx2,fma")))
void lethe_panel_pack(const float *b, long ldb, long k, long n, int transposed, float scale, float *panels) {
    long count = (n + PANEL - 1) / PANEL;
    __m256 s = _mm256_set1_ps(scale);
    for (long p = 0; p < count; p++) {
        float *panel = panels + p * k * PANEL;
        long cols = n - p * PANEL < PANEL ? n - p * PANEL : PANEL;
        if (cols < PANEL) memset(panel, 0, (size_t)(k * PANEL) * sizeof(float));
        if (transposed) {
            // b is [n, k]: column `col` of B is row `col` of b. Each whole group of 8 columns is
            // transposed in 8 × 8 tiles in registers (a partial panel too: attention's K and V
            // of a 9-token sequence are one group and one column); the edges element by element.
            long groups = cols / 8, tiles = k / 8 * 8;
            for (long g = 0; g < groups; g++)
                for (long kk = 0; kk < tiles; kk += 8)
                    transpose8(b + (p * PANEL + 8 * g) * ldb + kk, ldb, s, panel + kk * PANEL + 8 * g, PANEL);
            for (long j = 0; j < cols; j++) {
                const float *src = b + (p * PANEL + j) * ldb;
                for (long kk = j < 8 * groups ? tiles : 0; kk < k; kk++) panel[kk * PANEL + j] = src[kk] * scale;
            }
        } else if (cols == PANEL) {
            for (long kk = 0; kk < k; kk++) {
                const float *src = b + kk * ldb + p * PANEL;
                _mm256_storeu_ps(panel + kk * PANEL, _mm256_mul_ps(_mm256_loadu_ps(src), s));
                _mm256_storeu_ps(panel + kk * PANEL + 8, _mm256_mul_ps(_mm256_loadu_ps(src + 8), s));
            }
        } else {
            for (long kk = 0; kk < k; kk++) {
                const float *src = b + kk * ldb + p * PANEL;
                for (long j = 0; j < cols; j++) panel[kk * PANEL + j] = src[j] * scale;
            }
        }
    }
}

// Stores (or adds) one row of a finished block: `cols` (1…16) of the two vectors lo, hi.
__attribute__((target("avx2,fma")))
static inline void put_row(float *dst, long cols, int accumulate, __m256 lo, __m256 hi) {
    if (cols == PANEL) {
        if (accumulate) {
            lo = _mm256_add_ps(_mm256_loadu_ps(dst), lo);
            hi = _mm256_add_ps(_mm256_loadu_ps(dst + 8), hi);
        }
        _mm256_storeu_ps(dst, lo);
        _mm256_storeu_ps(dst + 8, hi);
        return;
    }
    float row[PANEL];
    _mm256_storeu_ps(row, lo);
    _mm256_storeu_ps(row + 8, hi);
    for (long j = 0; j < cols; j++) dst[j] = accumulate ? dst[j] + row[j] : row[j];
}

// R (1…6, a constant after inlining) rows of A times one panel, into C (rows `ldc` apart, `cols`
// columns). Each block size has its own copy of the loop, so a block of 2 or 4 rows does the
// FMAs of 2 or 4 rows, not of 6; the sums are the same chains either way. The first `pfn`
// iterations also fetch one line each of `pf` (a share of the next panel) into L2.
__attribute__((target("avx2,fma"), always_inline))
static inline void block_rows(const float *a, long rs, long ks, const int R, const float *panel, long k,
                              float *c, long ldc, long cols, int accumulate, const float *pf, long pfn) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    // Rows past R are never read (their pointers stay on row 0).
    const float *a0 = a, *a1 = a + (R > 1 ? rs : 0), *a2 = a + (R > 2 ? 2 * rs : 0);
    const float *a3 = a + (R > 3 ? 3 * rs : 0), *a4 = a + (R > 4 ? 4 * rs : 0), *a5 = a + (R > 5 ? 5 * rs : 0);
    for (long kk = 0, at = 0; kk < k; kk++, at += ks) {
        if (kk < pfn) _mm_prefetch((const char *)(pf + kk * PANEL), _MM_HINT_T1);
        __m256 b0 = _mm256_loadu_ps(panel + kk * PANEL), b1 = _mm256_loadu_ps(panel + kk * PANEL + 8);
        __m256 x;
        x = _mm256_broadcast_ss(a0 + at); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        if (R > 1) { x = _mm256_broadcast_ss(a1 + at); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11); }
        if (R > 2) { x = _mm256_broadcast_ss(a2 + at); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21); }
        if (R > 3) { x = _mm256_broadcast_ss(a3 + at); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31); }
        if (R > 4) { x = _mm256_broadcast_ss(a4 + at); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41); }
        if (R > 5) { x = _mm256_broadcast_ss(a5 + at); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51); }
    }
    put_row(c, cols, accumulate, c00, c01);
    if (R > 1) put_row(c + ldc, cols, accumulate, c10, c11);
    if (R > 2) put_row(c + 2 * ldc, cols, accumulate, c20, c21);
    if (R > 3) put_row(c + 3 * ldc, cols, accumulate, c30, c31);
    if (R > 4) put_row(c + 4 * ldc, cols, accumulate, c40, c41);
    if (R > 5) put_row(c + 5 * ldc, cols, accumulate, c50, c51);
}

// `rows` (1…6) rows of A times one panel, fetching `pfn` lines of `pf` on the way.
__attribute__((target("avx2,fma")))
static void block(const float *a, long rs, long ks, long rows, const float *panel, long k,
                  float *c, long ldc, long cols, int accumulate, const float *pf, long pfn) {
    switch (rows) {
    case 6: block_rows(a, rs, ks, 6, panel, k, c, ldc, cols, accumulate, pf, pfn); break;
    case 5: block_rows(a, rs, ks, 5, panel, k, c, ldc, cols, accumulate, pf, pfn); break;
    case 4: block_rows(a, rs, ks, 4, panel, k, c, ldc, cols, accumulate, pf, pfn); break;
    case 3: block_rows(a, rs, ks, 3, panel, k, c, ldc, cols, accumulate, pf, pfn); break;
    case 2: block_rows(a, rs, ks, 2, panel, k, c, ldc, cols, accumulate, pf, pfn); break;
    default: block_rows(a, rs, ks, 1, panel, k, c, ldc, cols, accumulate, pf, pfn); break;
    }
}

// Up to 12 rows of A times one panel on AVX-512: the chains of block_rows, one 512-bit register
// per row; `cols` (1…16) are stored through a mask.
__attribute__((target("avx512f"), always_inline))
static inline void block_rows12(const float *a, long rs, long ks, const int R, const float *panel, long k,
                                float *c, long ldc, long cols, int accumulate, const float *pf, long pfn) {
    __m512 s[12];
    const float *row[12];
    for (int i = 0; i < 12; i++) { s[i] = _mm512_setzero_ps(); row[i] = a + (i < R ? i * rs : 0); }
    for (long kk = 0, at = 0; kk < k; kk++, at += ks) {
        if (kk < pfn) _mm_prefetch((const char *)(pf + kk * PANEL), _MM_HINT_T1);
        __m512 b = _mm512_loadu_ps(panel + kk * PANEL);
#pragma clang loop unroll(full)
        for (int i = 0; i < 12; i++)
            if (i < R) s[i] = _mm512_fmadd_ps(_mm512_set1_ps(row[i][at]), b, s[i]);
    }
    __mmask16 lanes = cols == PANEL ? (__mmask16)0xffff : (__mmask16)((1u << cols) - 1);
#pragma clang loop unroll(full)
    for (int i = 0; i < 12; i++) {
        if (i >= R) continue;
        float *dst = c + i * ldc;
        __m512 v = s[i];
        if (accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, dst), v);
        _mm512_mask_storeu_ps(dst, lanes, v);
    }
}

// `rows` (1…12) rows of A times one panel on AVX-512.
__attribute__((target("avx512f")))
static void block12(const float *a, long rs, long ks, long rows, const float *panel, long k,
                    float *c, long ldc, long cols, int accumulate, const float *pf, long pfn) {
    switch (rows) {
#define LETHE_BLOCK12_CASE(R) case R: block_rows12(a, rs, ks, R, panel, k, c, ldc, cols, accumulate, pf, pfn); break;
    LETHE_BLOCK12_CASE(12) LETHE_BLOCK12_CASE(11) LETHE_BLOCK12_CASE(10) LETHE_BLOCK12_CASE(9)
    LETHE_BLOCK12_CASE(8) LETHE_BLOCK12_CASE(7) LETHE_BLOCK12_CASE(6) LETHE_BLOCK12_CASE(5)
    LETHE_BLOCK12_CASE(4) LETHE_BLOCK12_CASE(3) LETHE_BLOCK12_CASE(2)
#undef LETHE_BLOCK12_CASE
    default: block_rows12(a, rs, ks, 1, panel, k, c, ldc, cols, accumulate, pf, pfn); break;
    }
}

typedef void (*block_kernel)(const float *a, long rs, long ks, long rows, const float *panel, long k,
                             float *c, long ldc, long cols, int accumulate, const float *pf, long pfn);

// Rows per chunk: B streams once per chunk of A's rows, and a chunk of A (CHUNK × k floats,
// 288 KB at k = 768) stays in L2 while it does; a wide B (the decoder's 49,152-column LM head,
// 113 MB) would otherwise stream from memory once per six rows. A remainder shorter than CHUNK
// joins the last chunk instead of streaming B once more for a few rows (a batch of 144 rows is
// one chunk).
enum { CHUNK = 96, SMALL_B = 32768 };

// The product on blocks of `block_rows` rows computed by `block`.
static void multiply(block_kernel block, long block_rows, const float *panels, long k, long n, const float *a,
                     long m, long row_stride, long k_stride, float *c, long ldc, int accumulate) {
    long count = (n + PANEL - 1) / PANEL;
    if (k * count * PANEL <= SMALL_B) {
        // A small B (an adapter's s·Bᵀ: 16 rows) stays in L1/L2 while C is swept row block by
        // row block, each block's rows from left to right: C, the large operand here, streams
        // once in address order instead of one 64-byte column of 96 rows at a time.
        for (long r = 0; r < m; r += block_rows) {
            long rows = m - r < block_rows ? m - r : block_rows;
            for (long p = 0; p < count; p++) {
                long cols = n - p * PANEL < PANEL ? n - p * PANEL : PANEL;
                block(a + r * row_stride, row_stride, k_stride, rows, panels + p * k * PANEL, k,
                      c + r * ldc + p * PANEL, ldc, cols, accumulate, panels, 0);
            }
        }
        return;
    }
    for (long first = 0, last; first < m; first = last) {
        last = m - first < 2 * CHUNK ? m : first + CHUNK;
        long blocks = (last - first + block_rows - 1) / block_rows;
        for (long p = 0; p < count; p++) {
            long cols = n - p * PANEL < PANEL ? n - p * PANEL : PANEL;
            const float *next = p + 1 < count ? panels + (p + 1) * k * PANEL : 0;
            for (long r = first, b = 0; r < last; r += block_rows, b++) {
                long rows = last - r < block_rows ? last - r : block_rows;
                // The next panel (k lines of 64 bytes) is fetched into L2 while this one is in
                // use, a share of its lines by each block of rows, one line per multiply-add step:
                // a training step's weights come from memory, and without this each panel's first
                // block waited for them (spread over the steps, the fetches never queue up).
                long from = b * k / blocks, end = (b + 1) * k / blocks;
                block(a + r * row_stride, row_stride, k_stride, rows, panels + p * k * PANEL, k,
                      c + r * ldc + p * PANEL, ldc, cols, accumulate, next ? next + from * PANEL : panels,
                      next ? end - from : 0);
            }
        }
    }
}

void lethe_panel_multiply_avx2(const float *panels, long k, long n, const float *a, long m, long row_stride,
                               long k_stride, float *c, long ldc, int accumulate) {
    multiply(block, ROWS, panels, k, n, a, m, row_stride, k_stride, c, ldc, accumulate);
}

int lethe_panel_multiply_avx512(const float *panels, long k, long n, const float *a, long m, long row_stride,
                                long k_stride, float *c, long ldc, int accumulate) {
    if (!__builtin_cpu_supports("avx512f")) return 0;
    multiply(block12, 12, panels, k, n, a, m, row_stride, k_stride, c, ldc, accumulate);
    return 1;
}

void lethe_panel_multiply(const float *panels, long k, long n, const float *a, long m, long row_stride,
                          long k_stride, float *c, long ldc, int accumulate) {
    if (!lethe_panel_multiply_avx512(panels, k, n, a, m, row_stride, k_stride, c, ldc, accumulate))
        lethe_panel_multiply_avx2(panels, k, n, a, m, row_stride, k_stride, c, ldc, accumulate);
}
