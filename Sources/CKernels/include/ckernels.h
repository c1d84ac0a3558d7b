// Lethe's C kernels: what Swift code built for AVX2 cannot express.
//   - Frozen weight matrices prepared once and multiplied through oneDNN (Debian libdnnl,
//     OpenMP runtime), in float32 or in bfloat16 with float32 accumulation.
//   - Products on B laid out in 16-column panels (AVX2), attention's softmax rows and GELU.
//   - Float32 <-> bfloat16 rounding (round to nearest even), the same on every CPU.
//   - Register-resident loops of the widest float32 FMA and of the bfloat16 dot product
//     (vdpbf16ps) this CPU runs, which measure its arithmetic peak.
#ifndef LETHE_CKERNELS_H
#define LETHE_CKERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Arithmetic of a packed matrix's products.
typedef enum {
    LETHE_PRECISION_FP32 = 0,   // float32 inputs, float32 accumulation
    LETHE_PRECISION_BF16 = 1,   // bfloat16 inputs (rounded to nearest even), float32 accumulation
} lethe_precision;

/// A matrix B [k, n] converted and laid out once for C = A·B; immutable, safe to multiply by
/// from several threads at once.
typedef struct lethe_packed_matrix lethe_packed_matrix;

/// Packs B for products C[m, n] = A[m, k]·B. `b` is row-major [k, n], or [n, k] when
/// `b_transposed` (so a PyTorch weight W [out, in] packs as Wᵀ with b_transposed = 1).
/// Returns NULL and writes a message into `error` when oneDNN refuses (no bf16 support).
lethe_packed_matrix *lethe_packed_matrix_create(const float *b, long k, long n, int b_transposed,
                                                lethe_precision precision, char *error, long error_capacity);
void lethe_packed_matrix_destroy(lethe_packed_matrix *matrix);

/// Bytes the packed copy of B occupies.
long lethe_packed_matrix_bytes(const lethe_packed_matrix *matrix);

/// C = A·B, or C += A·B when `accumulate`, or C = A·B + bias when `bias` [n] is not NULL (not
/// with `accumulate`; the bits of the bias written into C and accumulated onto, which is what
/// float32 does: bf16's kernels add it without that pass over C); A [m, k] with
/// rows `lda` apart, C [m, n] with rows `ldc` apart, both row-major float32 (bf16 matrices round
/// A to bfloat16 first). Runs on the calling thread alone; each output row depends only on its
/// input row, so callers may split the rows across threads without changing a bit. Returns 0,
/// or -1 with `error` filled.
int lethe_packed_matrix_multiply(const lethe_packed_matrix *matrix, const float *a, long m, long lda,
                                 float *c, long ldc, int accumulate, const float *bias, char *error,
                                 long error_capacity);

/// Floats of B [k, n] laid out in panels of 16 columns (n rounded up) for lethe_panel_multiply.
long lethe_panel_floats(long k, long n);
/// Lays out scale·B into `panels`; B is given row-major [k, n], or with `transposed` as [n, k],
/// its rows `ldb` floats apart.
void lethe_panel_pack(const float *b, long ldb, long k, long n, int transposed, float scale, float *panels);
/// C = A·B (or C += A·B) with AVX2 (or AVX-512) FMAs: each element one FMA chain over k in order, so a row's
/// bits do not depend on the rows around it. Element (i, kk) of A is at
/// a[i·row_stride + kk·k_stride] (row_stride = lda, k_stride = 1 for a row-major A; the reverse
/// reads Aᵀ of a row-major matrix); C's rows are `ldc` apart.
void lethe_panel_multiply(const float *panels, long k, long n, const float *a, long m, long row_stride,
                          long k_stride, float *c, long ldc, int accumulate);
/// lethe_panel_multiply on AVX2 blocks alone (the same bits; tests compare the two paths).
void lethe_panel_multiply_avx2(const float *panels, long k, long n, const float *a, long m, long row_stride,
                               long k_stride, float *c, long ldc, int accumulate);
/// lethe_panel_multiply on AVX-512 blocks alone; returns 0 and writes nothing without AVX-512F.
int lethe_panel_multiply_avx512(const float *panels, long k, long n, const float *a, long m, long row_stride,
                                long k_stride, float *c, long ldc, int accumulate);

/// Softmax of each of `rows` score rows of `tokens` floats, in place, for queries 0..<rows: key
/// j is visible iff keep[j] ≠ 0 (keep NULL: all) and, when `causal`, j ≤ the query; hidden keys
/// get 0, and a row with no visible key is all 0.
void lethe_softmax_rows(float *scores, long rows, long tokens, const float *keep, int causal);
/// y[i] = e^x[i] with the softmax's polynomial (the same bits as the Swift kernels' exp).
void lethe_exp(const float *x, float *y, long count);

/// y[i] = GELU(x[i]) (exact erf form, the Swift kernels' bits), and derivative[i] = GELU′(x[i])
/// when `derivative` is not NULL. x may equal y.
void lethe_gelu(const float *x, float *y, float *derivative, long count);
/// lethe_gelu on AVX2 alone (the same bits; tests compare the two paths).
void lethe_gelu_avx2(const float *x, float *y, float *derivative, long count);
/// lethe_gelu on AVX-512 (F and DQ) alone; returns 0 and writes nothing when the CPU lacks them.
int lethe_gelu_avx512(const float *x, float *y, float *derivative, long count);

/// y[i] = x[i] rounded to bfloat16 (nearest, ties to even; NaN stays NaN) and widened back.
void lethe_round_to_bf16(const float *x, float *y, long count);

/// 1 when the CPU runs AVX-512F, resp. AVX512_BF16 instructions.
int lethe_cpu_has_avx512(void);
int lethe_cpu_has_avx512_bf16(void);

/// Runs `iterations` rounds of the widest float32 FMA loop (AVX-512 where present, else
/// AVX2) and returns the FLOPs it performed; `lanes` receives the vector width in floats.
double lethe_peak_fp32_loop(long iterations, float seed, int *lanes);

/// Runs `iterations` rounds of a vdpbf16ps loop and returns its FLOPs (2 per bf16 pair
/// multiply-add); 0 when the CPU lacks AVX512_BF16.
double lethe_peak_bf16_loop(long iterations, float seed);

#ifdef __cplusplus
}
#endif
#endif
