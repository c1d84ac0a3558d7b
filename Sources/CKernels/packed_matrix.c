// Frozen matrices converted once and multiplied through oneDNN's matmul primitive.
//
// One primitive per (matrix, accumulate) with the row count M left to run time, so any batch
// size reuses it (oneDNN then picks its gemm:jit kernels, which measured as fast as the
// fixed-M brgemm ones on the 64–2048-row products Lethe runs). The weights are stored once in
// the layout the primitive asks for: for gemm:jit that is the plain matrix B [k, n] in the
// product's precision (its kernels block B themselves on each call), so what is saved per
// product is the transposition and, in bf16, the rounding of the weights. Scratchpad memory
// is passed by the caller of each product, so concurrent products on one matrix never share
// state.
//
// Every oneDNN call here runs on one OpenMP thread: the callers split rows across their own
// threads. An OpenMP team of two would leave libgomp's idle worker spinning between products
// (measured: 44% of a training process's cycles), fighting OpenBLAS and our threads for the
// cores. Row splits change no bits: each output row of these kernels depends only on its input
// row, except that a one-row product takes another kernel (gemv), so one row is computed as two.
#include "ckernels.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// From libgomp, the OpenMP runtime Debian's oneDNN is built on (declared here because Clang
// does not ship GCC's omp.h): the thread count of this thread's next parallel regions.
extern void omp_set_num_threads(int count);

struct lethe_packed_matrix {
    long k, n;
    lethe_precision precision;
    dnnl_memory_desc_t weights_md;
    void *weights;             // packed B, 64-byte aligned
    long weights_bytes;
    dnnl_primitive_t product[2];   // [0]: C = A·B, [1]: C += A·B
    long scratch_bytes[2];
};

static dnnl_engine_t engine;
// Each calling thread executes on its own stream (streams are not shared across threads).
static __thread dnnl_stream_t stream;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static dnnl_status_t engine_status = dnnl_success;

static void create_engine(void) {
    engine_status = dnnl_engine_create(&engine, dnnl_cpu, 0);
}

// This thread's stream, created on first use (it lives as long as the thread).
static dnnl_status_t thread_stream(void) {
    if (stream) return dnnl_success;
    return dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
}

static int fail(char *error, long capacity, const char *what, dnnl_status_t status) {
    if (error && capacity > 0) snprintf(error, (size_t)capacity, "oneDNN: %s failed (status %d)", what, (int)status);
    return -1;
}

#define CHECK(call, what) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { fail(error, error_capacity, what, s_); goto failed; } } while (0)

static dnnl_data_type_t input_type(lethe_precision p) { return p == LETHE_PRECISION_BF16 ? dnnl_bf16 : dnnl_f32; }

// The descriptor of a row-major [m, cols] matrix with rows `ld` apart (m may be run time).
static dnnl_status_t matrix_desc(dnnl_memory_desc_t *md, long m, long cols, long ld, dnnl_data_type_t type) {
    dnnl_dims_t dims = {m, cols}, strides = {ld, 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, type, strides);
}

static dnnl_status_t make_product(lethe_packed_matrix *p, int accumulate, const dnnl_memory_desc_t *weights_any,
                                  dnnl_memory_desc_t *chosen_weights) {
    dnnl_memory_desc_t src, dst;
    dnnl_status_t s;
    if ((s = matrix_desc(&src, DNNL_RUNTIME_DIM_VAL, p->k, DNNL_RUNTIME_DIM_VAL, input_type(p->precision)))) return s;
    if ((s = matrix_desc(&dst, DNNL_RUNTIME_DIM_VAL, p->n, DNNL_RUNTIME_DIM_VAL, dnnl_f32))) return s;
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, &src, weights_any, NULL, &dst))) return s;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if ((s = dnnl_primitive_attr_create(&attr))) return s;
    if ((s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user))) goto done;
    if (accumulate) {
        if ((s = dnnl_post_ops_create(&ops))) goto done;
        if ((s = dnnl_post_ops_append_sum(ops, 1.0f))) goto done;
        if ((s = dnnl_primitive_attr_set_post_ops(attr, ops))) goto done;
    }
    if ((s = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL))) goto done;
    *chosen_weights = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    p->scratch_bytes[accumulate] = (long)dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    s = dnnl_primitive_create(&p->product[accumulate], pd);
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

// Branch-free so that the compiler vectorises it (AVX2, which the Swift code requires too):
// it runs on every input row of every bf16 product.
__attribute__((target("avx2")))
static void to_bf16(const float *x, uint16_t *y, long count) {
    for (long i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
        uint32_t quiet_nan = (bits >> 16) | 0x40u;
        y[i] = (uint16_t)((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
    }
}

// The same rounding as to_bf16, widened back in place of the 16-bit store, branch-free so that
// it vectorises: the AVX2 products round every input row of every bf16 product with it.
__attribute__((target("avx2")))
void lethe_round_to_bf16(const float *x, float *y, long count) {
    for (long i = 0; i < count; i++) {
        uint32_t bits;
        memcpy(&bits, &x[i], 4);
        uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
        uint32_t quiet_nan = (bits & 0xffff0000u) | 0x00400000u;
        uint32_t out = (bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded;
        memcpy(&y[i], &out, 4);
    }
}

lethe_packed_matrix *lethe_packed_matrix_create(const float *b, long k, long n, int b_transposed,
                                                lethe_precision precision, char *error, long error_capacity) {
    pthread_once(&engine_once, create_engine);
    if (engine_status != dnnl_success) { fail(error, error_capacity, "engine creation", engine_status); return NULL; }
    dnnl_status_t stream_status = thread_stream();
    if (stream_status != dnnl_success) { fail(error, error_capacity, "stream creation", stream_status); return NULL; }
    lethe_packed_matrix *p = calloc(1, sizeof *p);
    uint16_t *converted = NULL;
    dnnl_memory_t plain_memory = NULL, packed_memory = NULL;
    dnnl_primitive_desc_t reorder_pd = NULL;
    dnnl_primitive_t reorder = NULL;
    if (!p) return NULL;
    p->k = k; p->n = n; p->precision = precision;
    // oneDNN fixes a primitive's thread count when it is created, from this thread's OpenMP
    // setting: set it before creating anything, or the products would fork a team of all cores.
    omp_set_num_threads(1);
    dnnl_dims_t dims = {k, n};
    dnnl_memory_desc_t any, chosen, again, plain;
    CHECK(dnnl_memory_desc_init_by_tag(&any, 2, dims, input_type(precision), dnnl_format_tag_any), "weights descriptor");
    CHECK(make_product(p, 0, &any, &chosen), "matmul creation");
    // The accumulating product must accept the same packed layout.
    CHECK(make_product(p, 1, &chosen, &again), "accumulating matmul creation");
    p->weights_md = chosen;
    p->weights_bytes = (long)dnnl_memory_desc_get_size(&chosen);
    p->weights = aligned_alloc(64, (size_t)((p->weights_bytes + 63) / 64 * 64));
    if (!p->weights) { fail(error, error_capacity, "allocation", dnnl_out_of_memory); goto failed; }
    CHECK(dnnl_memory_desc_init_by_tag(&plain, 2, dims, input_type(precision), b_transposed ? dnnl_ba : dnnl_ab), "plain descriptor");
    const void *source = b;
    if (precision == LETHE_PRECISION_BF16) {
        converted = malloc((size_t)(k * n) * 2);
        if (!converted) { fail(error, error_capacity, "allocation", dnnl_out_of_memory); goto failed; }
        to_bf16(b, converted, k * n);
        source = converted;
    }
    CHECK(dnnl_memory_create(&plain_memory, &plain, engine, (void *)source), "memory");
    CHECK(dnnl_memory_create(&packed_memory, &p->weights_md, engine, p->weights), "memory");
    CHECK(dnnl_reorder_primitive_desc_create(&reorder_pd, &plain, engine, &p->weights_md, engine, NULL), "reorder");
    CHECK(dnnl_primitive_create(&reorder, reorder_pd), "reorder");
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, plain_memory}, {DNNL_ARG_TO, packed_memory}};
    CHECK(dnnl_primitive_execute(reorder, stream, 2, args), "reorder");
    CHECK(dnnl_stream_wait(stream), "reorder");
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(reorder_pd);
    dnnl_memory_destroy(plain_memory);
    dnnl_memory_destroy(packed_memory);
    free(converted);
    return p;
failed:
    if (reorder) dnnl_primitive_destroy(reorder);
    if (reorder_pd) dnnl_primitive_desc_destroy(reorder_pd);
    if (plain_memory) dnnl_memory_destroy(plain_memory);
    if (packed_memory) dnnl_memory_destroy(packed_memory);
    free(converted);
    lethe_packed_matrix_destroy(p);
    return NULL;
}

void lethe_packed_matrix_destroy(lethe_packed_matrix *p) {
    if (!p) return;
    for (int i = 0; i < 2; i++) if (p->product[i]) dnnl_primitive_destroy(p->product[i]);
    free(p->weights);
    free(p);
}

long lethe_packed_matrix_bytes(const lethe_packed_matrix *p) { return p->weights_bytes; }

static int multiply_rows(const lethe_packed_matrix *p, const float *a, long m, long lda,
                         float *c, long ldc, int accumulate, char *error, long error_capacity);

int lethe_packed_matrix_multiply(const lethe_packed_matrix *p, const float *a, long m, long lda,
                                 float *c, long ldc, int accumulate, char *error, long error_capacity) {
    if (m != 1) return multiply_rows(p, a, m, lda, c, ldc, accumulate, error, error_capacity);
    // One row runs as two equal rows, so it gets the bits it would get inside a larger product.
    float *a2 = malloc((size_t)(2 * p->k) * sizeof(float)), *c2 = malloc((size_t)(2 * p->n) * sizeof(float));
    int result = -1;
    if (!a2 || !c2) { fail(error, error_capacity, "allocation", dnnl_out_of_memory); goto done; }
    memcpy(a2, a, (size_t)p->k * sizeof(float));
    memcpy(a2 + p->k, a, (size_t)p->k * sizeof(float));
    memcpy(c2, c, (size_t)p->n * sizeof(float));
    memcpy(c2 + p->n, c, (size_t)p->n * sizeof(float));
    result = multiply_rows(p, a2, 2, p->k, c2, p->n, accumulate, error, error_capacity);
    if (result == 0) memcpy(c, c2, (size_t)p->n * sizeof(float));
done:
    free(a2);
    free(c2);
    return result;
}

static int multiply_rows(const lethe_packed_matrix *p, const float *a, long m, long lda,
                         float *c, long ldc, int accumulate, char *error, long error_capacity) {
    if (m <= 0) return 0;
    int which = accumulate ? 1 : 0;
    void *input = (void *)a, *converted = NULL, *scratch = NULL;
    dnnl_memory_t src = NULL, weights = NULL, dst = NULL, pad = NULL;
    int result = -1;
    if (p->precision == LETHE_PRECISION_BF16) {
        // Rows of A rounded to bf16 into a dense buffer.
        converted = malloc((size_t)(m * p->k) * 2 + 64);
        if (!converted) { fail(error, error_capacity, "allocation", dnnl_out_of_memory); goto done; }
        for (long r = 0; r < m; r++) to_bf16(a + r * lda, (uint16_t *)converted + r * p->k, p->k);
        input = converted;
        lda = p->k;
    }
    dnnl_memory_desc_t src_md, dst_md, pad_md;
    CHECK(matrix_desc(&src_md, m, p->k, lda, input_type(p->precision)), "source descriptor");
    CHECK(matrix_desc(&dst_md, m, p->n, ldc, dnnl_f32), "destination descriptor");
    long pad_bytes = p->scratch_bytes[which];
    dnnl_dims_t pad_dims = {pad_bytes > 0 ? pad_bytes : 1};
    CHECK(dnnl_memory_desc_init_by_tag(&pad_md, 1, pad_dims, dnnl_u8, dnnl_a), "scratchpad descriptor");
    scratch = aligned_alloc(64, (size_t)((pad_dims[0] + 63) / 64 * 64));
    if (!scratch) { fail(error, error_capacity, "allocation", dnnl_out_of_memory); goto done; }
    CHECK(dnnl_memory_create(&src, &src_md, engine, input), "memory");
    CHECK(dnnl_memory_create(&weights, &p->weights_md, engine, p->weights), "memory");
    CHECK(dnnl_memory_create(&dst, &dst_md, engine, c), "memory");
    CHECK(dnnl_memory_create(&pad, &pad_md, engine, scratch), "memory");
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst},
                               {DNNL_ARG_SCRATCHPAD, pad}};
    CHECK(thread_stream(), "stream creation");
    omp_set_num_threads(1);
    CHECK(dnnl_primitive_execute(p->product[which], stream, 4, args), "matmul");
    result = 0;
failed:
done:
    if (src) dnnl_memory_destroy(src);
    if (weights) dnnl_memory_destroy(weights);
    if (dst) dnnl_memory_destroy(dst);
    if (pad) dnnl_memory_destroy(pad);
    free(scratch);
    free(converted);
    return result;
}
