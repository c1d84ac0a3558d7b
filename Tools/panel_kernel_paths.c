// Times the two block shapes of the panel kernel (Sources/CKernels/panel_product.c) on a LoRA
// adapter's two inference products, one thread: x·Aᵀ (m × k=I times I × r=16) and y += xa·(s·B)ᵀ
// (m × 16 times 16 × O), for the MiniLM targets' (I, O) and a row count m. It checks first that
// the AVX2 blocks (6 rows) and the AVX-512 blocks (12 rows) give the same bits, then prints
// GFLOP/s of each (the sum over `rounds` alternating calls).
//
//   clang -O2 -I Sources/CKernels/include -o /tmp/panel_kernel_paths Tools/panel_kernel_paths.c \
//       Sources/CKernels/panel_product.c
//   for m in 96 1000; do /tmp/panel_kernel_paths 384 384 $m; /tmp/panel_kernel_paths 384 1536 $m; done
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ckernels.h"

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static float uniform(void) { return (float)rand() / (float)RAND_MAX - 0.5f; }

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s IN OUT ROWS\n", argv[0]); return 64; }
    const long r = 16, in = atol(argv[1]), out = atol(argv[2]), m = atol(argv[3]);
    if (in < 1 || out < 1 || m < 1) { fprintf(stderr, "IN, OUT and ROWS must be positive\n"); return 64; }
    float *x = malloc(sizeof(float) * m * in), *a = malloc(sizeof(float) * r * in), *b = malloc(sizeof(float) * out * r);
    float *xa = malloc(sizeof(float) * m * r), *xa2 = malloc(sizeof(float) * m * r);
    float *y = malloc(sizeof(float) * m * out), *y2 = malloc(sizeof(float) * m * out);
    srand(1);
    for (long i = 0; i < m * in; i++) x[i] = uniform();
    for (long i = 0; i < r * in; i++) a[i] = uniform();
    for (long i = 0; i < out * r; i++) b[i] = uniform();
    for (long i = 0; i < m * out; i++) y[i] = y2[i] = uniform();
    long a_floats = lethe_panel_floats(in, r);
    float *panels = aligned_alloc(64, (size_t)((a_floats + lethe_panel_floats(r, out)) * 4 + 64) / 64 * 64);
    lethe_panel_pack(a, in, in, r, 1, 1, panels);
    lethe_panel_pack(b, r, r, out, 1, 2, panels + a_floats);
    lethe_panel_multiply_avx2(panels, in, r, x, m, in, 1, xa, r, 0);
    if (!lethe_panel_multiply_avx512(panels, in, r, x, m, in, 1, xa2, r, 0)) {
        fprintf(stderr, "this CPU has no AVX-512F: only the AVX2 blocks run here\n");
        return 1;
    }
    lethe_panel_multiply_avx2(panels + a_floats, r, out, xa, m, r, 1, y, out, 1);
    lethe_panel_multiply_avx512(panels + a_floats, r, out, xa, m, r, 1, y2, out, 1);
    int same = memcmp(xa, xa2, sizeof(float) * m * r) == 0 && memcmp(y, y2, sizeof(float) * m * out) == 0;
    printf("I=%ld O=%ld rows=%ld: same bits: %s\n", in, out, m, same ? "yes" : "NO");
    const int rounds = (int)(2e8 / (double)(m * (in + out) * r)) + 10;
    double t[4] = {0, 0, 0, 0};
    for (int k = 0; k < rounds; k++) {
        double s0 = seconds();
        lethe_panel_multiply_avx2(panels, in, r, x, m, in, 1, xa, r, 0);
        double s1 = seconds();
        lethe_panel_multiply_avx2(panels + a_floats, r, out, xa, m, r, 1, y, out, 1);
        double s2 = seconds();
        lethe_panel_multiply_avx512(panels, in, r, x, m, in, 1, xa2, r, 0);
        double s3 = seconds();
        lethe_panel_multiply_avx512(panels + a_floats, r, out, xa, m, r, 1, y2, out, 1);
        double s4 = seconds();
        t[0] += s1 - s0; t[1] += s2 - s1; t[2] += s3 - s2; t[3] += s4 - s3;
    }
    double first = 2.0 * m * in * r * rounds / 1e9, second = 2.0 * m * out * r * rounds / 1e9;
    printf("  x·Aᵀ:  AVX2 %.1f GFLOP/s, AVX-512 %.1f GFLOP/s\n", first / t[0], first / t[2]);
    printf("  xa·Bᵀ: AVX2 %.1f GFLOP/s, AVX-512 %.1f GFLOP/s\n", second / t[1], second / t[3]);
    return same ? 0 : 1;
}
