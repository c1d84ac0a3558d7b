// Compares the two ways a oneDNN 2.6 matmul primitive can serve products of varying row count
// on weights packed once, on the encoder's shapes (k × n = 384 × 384, 384 × 1536, 1536 × 384),
// one thread:
//
//   run-time rows: one primitive with M = DNNL_RUNTIME_DIM_VAL (oneDNN picks gemm:jit, which
//                  lays B out again on every call);
//   fixed rows:    one primitive per row count on weights in the blocked layout brgemm chose
//                  for a 256-row product (what Sources/CKernels/packed_matrix.c does in bf16).
//
// For each precision, shape and row count it prints GFLOP/s of both (best of 7 rounds,
// alternating) and the implementation oneDNN chose. Then it checks what the product code relies
// on: with the layout fixed, every row count 1…512 at several offsets gives each row the bits
// it gets in 256-row calls.
//
//   cc -O2 -o /tmp/onednn_row_kernels Tools/onednn_row_kernels.c -ldnnl -lgomp
//   /tmp/onednn_row_kernels
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void omp_set_num_threads(int count);

static dnnl_engine_t engine;
static dnnl_stream_t stream;

#define CHECK(call) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { \
    fprintf(stderr, "%s failed (status %d), line %d\n", #call, (int)s_, __LINE__); exit(1); } } while (0)

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint16_t bf16_bits(float v) {
    uint32_t x;
    memcpy(&x, &v, 4);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

static void matrix(dnnl_memory_desc_t *md, long m, long cols, dnnl_data_type_t type) {
    long ld = m == DNNL_RUNTIME_DIM_VAL ? DNNL_RUNTIME_DIM_VAL : cols;
    dnnl_dims_t dims = {m, cols}, strides = {ld, 1};
    CHECK(dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides));
}

typedef struct { dnnl_primitive_t primitive; long scratch; const char *impl; } product;

// A product of m rows (or run-time rows) on weights of layout *weights (written back if "any").
static product make(long m, long k, long n, dnnl_data_type_t type, dnnl_memory_desc_t *weights) {
    dnnl_memory_desc_t src, dst;
    matrix(&src, m, k, type);
    matrix(&dst, m, n, dnnl_f32);
    dnnl_matmul_desc_t desc;
    CHECK(dnnl_matmul_desc_init(&desc, &src, weights, NULL, &dst));
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr));
    CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL));
    product p;
    *weights = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    p.scratch = (long)dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    const char *impl;
    CHECK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl));
    p.impl = strdup(impl);
    CHECK(dnnl_primitive_create(&p.primitive, pd));
    dnnl_primitive_desc_destroy(pd);
    dnnl_primitive_attr_destroy(attr);
    return p;
}

// Plain row-major weights [k, n] (float32 values) into a buffer of layout `md`.
static void *pack(const float *b, long k, long n, dnnl_data_type_t type, const dnnl_memory_desc_t *md) {
    dnnl_dims_t dims = {k, n};
    dnnl_memory_desc_t plain;
    CHECK(dnnl_memory_desc_init_by_tag(&plain, 2, dims, type, dnnl_ab));
    void *source = (void *)b;
    uint16_t *converted = NULL;
    if (type == dnnl_bf16) {
        converted = malloc((size_t)(k * n) * 2);
        for (long i = 0; i < k * n; i++) converted[i] = bf16_bits(b[i]);
        source = converted;
    }
    size_t bytes = dnnl_memory_desc_get_size(md);
    void *packed = aligned_alloc(64, (bytes + 63) / 64 * 64);
    dnnl_memory_t from, to;
    CHECK(dnnl_memory_create(&from, &plain, engine, source));
    CHECK(dnnl_memory_create(&to, md, engine, packed));
    dnnl_primitive_desc_t pd;
    CHECK(dnnl_reorder_primitive_desc_create(&pd, &plain, engine, md, engine, NULL));
    dnnl_primitive_t reorder;
    CHECK(dnnl_primitive_create(&reorder, pd));
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, args));
    CHECK(dnnl_stream_wait(stream));
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(from);
    dnnl_memory_destroy(to);
    free(converted);
    return packed;
}

static void run(const product *p, const dnnl_memory_desc_t *weights_md, void *weights, long m, long k, long n,
                dnnl_data_type_t type, const void *a, float *c, void *scratch) {
    dnnl_memory_desc_t src_md, dst_md, pad_md;
    dnnl_dims_t strides_a = {k, 1}, strides_c = {n, 1}, dims_a = {m, k}, dims_c = {m, n};
    dnnl_dims_t pad_dims = {p->scratch > 0 ? p->scratch : 1};
    CHECK(dnnl_memory_desc_init_by_strides(&src_md, 2, dims_a, type, strides_a));
    CHECK(dnnl_memory_desc_init_by_strides(&dst_md, 2, dims_c, dnnl_f32, strides_c));
    CHECK(dnnl_memory_desc_init_by_tag(&pad_md, 1, pad_dims, dnnl_u8, dnnl_a));
    dnnl_memory_t src, w, dst, pad;
    CHECK(dnnl_memory_create(&src, &src_md, engine, (void *)a));
    CHECK(dnnl_memory_create(&w, weights_md, engine, weights));
    CHECK(dnnl_memory_create(&dst, &dst_md, engine, c));
    CHECK(dnnl_memory_create(&pad, &pad_md, engine, scratch));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst},
                               {DNNL_ARG_SCRATCHPAD, pad}};
    CHECK(dnnl_primitive_execute(p->primitive, stream, 4, args));
    dnnl_memory_destroy(src);
    dnnl_memory_destroy(w);
    dnnl_memory_destroy(dst);
    dnnl_memory_destroy(pad);
}

static float uniform(void) { return (float)rand() / (float)RAND_MAX - 0.5f; }

int main(void) {
    omp_set_num_threads(1);
    CHECK(dnnl_engine_create(&engine, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags));
    const long shapes[3][2] = {{384, 384}, {384, 1536}, {1536, 384}};
    const long rows[] = {9, 32, 64, 128, 231, 512};
    const long most = 512;
    void *scratch = aligned_alloc(64, 64 << 20);
    int failures = 0;
    for (int bf16 = 0; bf16 < 2; bf16++) {
        dnnl_data_type_t type = bf16 ? dnnl_bf16 : dnnl_f32;
        long size = bf16 ? 2 : 4;
        for (int s = 0; s < 3; s++) {
            long k = shapes[s][0], n = shapes[s][1];
            float *b = malloc((size_t)(k * n) * sizeof(float));
            for (long i = 0; i < k * n; i++) b[i] = uniform();
            void *a = aligned_alloc(64, (size_t)(most * k) * 4);
            for (long i = 0; i < most * k; i++) {
                float v = uniform();
                if (bf16) ((uint16_t *)a)[i] = bf16_bits(v); else ((float *)a)[i] = v;
            }
            float *c = aligned_alloc(64, (size_t)(most * n) * sizeof(float));
            float *reference = aligned_alloc(64, (size_t)(most * n) * sizeof(float));
            dnnl_dims_t dims = {k, n};
            dnnl_memory_desc_t runtime_md, fixed_md;
            CHECK(dnnl_memory_desc_init_by_tag(&runtime_md, 2, dims, type, dnnl_format_tag_any));
            CHECK(dnnl_memory_desc_init_by_tag(&fixed_md, 2, dims, type, dnnl_format_tag_any));
            product runtime = make(DNNL_RUNTIME_DIM_VAL, k, n, type, &runtime_md);
            product block = make(256, k, n, type, &fixed_md);
            void *runtime_weights = pack(b, k, n, type, &runtime_md);
            void *fixed_weights = pack(b, k, n, type, &fixed_md);
            for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
                long m = rows[r];
                dnnl_memory_desc_t md = fixed_md;
                product fixed = make(m, k, n, type, &md);
                double best[2] = {1e9, 1e9};
                long calls = 1000000000L / (2 * m * k * n) + 1;
                for (int round = 0; round < 7; round++) {
                    for (int which = 0; which < 2; which++) {
                        double t0 = now();
                        for (long i = 0; i < calls; i++) {
                            if (which == 0) run(&runtime, &runtime_md, runtime_weights, m, k, n, type, a, c, scratch);
                            else run(&fixed, &fixed_md, fixed_weights, m, k, n, type, a, c, scratch);
                        }
                        double t = (now() - t0) / (double)calls;
                        if (t < best[which]) best[which] = t;
                    }
                }
                double flops = 2.0 * (double)(m * k * n);
                printf("%s k %4ld n %4ld rows %3ld: run-time rows %6.1f GFLOP/s (%s), fixed rows %6.1f GFLOP/s (%s)\n",
                       bf16 ? "bf16" : "fp32", k, n, m, flops / best[0] / 1e9, runtime.impl, flops / best[1] / 1e9,
                       fixed.impl);
                dnnl_primitive_destroy(fixed.primitive);
            }
            // Rows in 256-row calls are the reference; every count at several offsets must match.
            for (long first = 0; first < most; first += 256)
                run(&block, &fixed_md, fixed_weights, 256, k, n, type, (char *)a + first * k * size, reference + first * n,
                    scratch);
            int mismatches = 0;
            for (long m = 1; m <= most; m++) {
                dnnl_memory_desc_t md = fixed_md;
                product p = make(m, k, n, type, &md);
                if (!dnnl_memory_desc_equal(&md, &fixed_md)) { printf("  rows %ld: another weights layout\n", m); mismatches++; }
                for (long first = 0; first + m <= most; first += m > 200 ? most : 97) {
                    run(&p, &fixed_md, fixed_weights, m, k, n, type, (char *)a + first * k * size, c, scratch);
                    if (memcmp(c, reference + first * n, (size_t)(m * n) * sizeof(float)) != 0) {
                        printf("  rows %ld at %ld: bits differ (%s)\n", m, first, p.impl);
                        mismatches++;
                    }
                }
                dnnl_primitive_destroy(p.primitive);
            }
            printf("%s k %4ld n %4ld: row counts 1…%ld at several offsets, %s\n", bf16 ? "bf16" : "fp32", k, n, most,
                   mismatches ? "BITS DIFFER" : "every row has the bits of the 256-row calls");
            failures += mismatches;
            free(b); free(a); free(c); free(reference); free(runtime_weights); free(fixed_weights);
            dnnl_primitive_destroy(runtime.primitive);
            dnnl_primitive_destroy(block.primitive);
        }
    }
    return failures ? 1 : 0;
}
