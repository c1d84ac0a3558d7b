// Register-resident multiply-add loops that measure the CPU's arithmetic peak.
//
// Each loop keeps more independent accumulators than FMA latency × issue width on every current
// x86-64 core (at most 5 × 2) and touches no memory, so its rate is the core's multiply-add
// throughput: 16 in the AVX-512 loops (32 vector registers), 12 in the AVX2 loop, whose 16
// registers must also hold the two operands (with 16 accumulators the compiler keeps some of
// them on the stack, and the loop measured 61 instead of ~100 GFLOP/s per Zen 2 core). The AVX-512 and BF16 loops are compiled for those instructions alone and only
// called after the CPU has been asked whether it runs them.
#include "ckernels.h"

#include <immintrin.h>

int lethe_cpu_has_avx512(void) { return __builtin_cpu_supports("avx512f"); }
int lethe_cpu_has_avx512_bf16(void) {
    // GCC/Clang learned the "avx512bf16" name late; ask CPUID leaf 7, sub-leaf 1, EAX bit 5.
    unsigned a, b, c, d;
    __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
    return lethe_cpu_has_avx512() && ((a >> 5) & 1);
}

#define ROUND12(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)
#define ROUND16(op) ROUND12(op) op(12) op(13) op(14) op(15)

__attribute__((target("avx512f")))
static float fma512(long iterations, float seed) {
    __m512 m = _mm512_set1_ps(0.999999f), add = _mm512_set1_ps(1e-7f);
#define DECL(i) __m512 r##i = _mm512_set1_ps(seed + (float)i);
    ROUND16(DECL)
    for (long n = 0; n < iterations; n++) {
#define STEP(i) r##i = _mm512_fmadd_ps(r##i, m, add);
        ROUND16(STEP)
    }
    __m512 s = r0;
#define SUM(i) s = _mm512_add_ps(s, r##i);
    ROUND16(SUM)
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma")))
static float fma256(long iterations, float seed) {
    __m256 m = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
#undef DECL
#undef STEP
#undef SUM
#define DECL(i) __m256 r##i = _mm256_set1_ps(seed + (float)i);
    ROUND12(DECL)
    for (long n = 0; n < iterations; n++) {
#define STEP(i) r##i = _mm256_fmadd_ps(r##i, m, add);
        ROUND12(STEP)
    }
    __m256 s = r0;
#define SUM(i) s = _mm256_add_ps(s, r##i);
    ROUND12(SUM)
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

__attribute__((target("avx512f,avx512bf16")))
static float dot_bf16(long iterations, float seed) {
    __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
    __m512bh b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(2e-3f));
#undef DECL
#undef STEP
#undef SUM
#define DECL(i) __m512 r##i = _mm512_set1_ps(seed + (float)i);
    ROUND16(DECL)
    for (long n = 0; n < iterations; n++) {
#define STEP(i) r##i = _mm512_dpbf16_ps(r##i, a, b);
        ROUND16(STEP)
    }
    __m512 s = r0;
#define SUM(i) s = _mm512_add_ps(s, r##i);
    ROUND16(SUM)
    return _mm512_reduce_add_ps(s);
}

// Keeps the loops' results alive so the compiler cannot drop them.
static volatile float sink;

double lethe_peak_fp32_loop(long iterations, float seed, int *lanes) {
    if (lethe_cpu_has_avx512()) {
        sink = fma512(iterations, seed);
        *lanes = 16;
    } else {
        sink = fma256(iterations, seed);
        *lanes = 8;
        return 2.0 * 12 * 8 * (double)iterations;
    }
    return 2.0 * 16 * (double)*lanes * (double)iterations;
}

double lethe_peak_bf16_loop(long iterations, float seed) {
    if (!lethe_cpu_has_avx512_bf16()) return 0;
    sink = dot_bf16(iterations, seed);
    // 16 accumulators × 16 lanes × 2 bf16 pairs × 2 FLOPs per iteration.
    return 2.0 * 2.0 * 16 * 16 * (double)iterations;
}
