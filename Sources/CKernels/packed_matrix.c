// Frozen matrices converted once and multiplied through oneDNN's matmul primitive.
//
// bf16: oneDNN picks its brgemm kernels (brg:avx512_core_bf16) only for a primitive whose row
// count and row strides are fixed when it is made; with the row count left to run time it falls
// back to gemm:jit, which lays B out again on every call. On one Zen 4 core gemm:jit ran bf16
// products of the encoder's shapes at 178–223 GFLOP/s for 32–512 rows (121–127 for 9 rows) and
// brgemm at 217–231 (197–212 for 9 rows), against a bf16 peak of 234 (Tools/onednn_row_kernels.c,
// docs/BENCHMARKS.md). So bf16 weights are laid out once in the blocked format brgemm chooses
// for a BLOCK_ROWS-row product, and each product runs as calls of at most BLOCK_ROWS rows, each
// on a primitive made for exactly that row count and that layout. A shape's primitives do not
// depend on the weights (an argument of each call), so every matrix of one (k, n, precision)
// shares them: made on first use, one per row count and accumulate flag (~0.15 ms each), kept
// for the life of the process. Where oneDNN has no brgemm kernel for bf16 (AVX-512 without
// AVX512_BF16), bf16 runs like float32 below.
//
// float32: one primitive per shape with the row count and strides left to run time (gemm:jit),
// on the plain weights. brgemm measured as fast alone, but slower in place: 3% on the S3T demo's
// training and 5–12% on a server's 8-text batches, though faster on single texts
// (docs/BENCHMARKS.md); gemm:jit also keeps float32's bits those of earlier versions.
//
// Every oneDNN call here runs on one OpenMP thread: the callers split rows across their own
// threads. An OpenMP team of two would leave libgomp's idle worker spinning between products
// (measured: 44% of a training process's cycles), fighting OpenBLAS and our threads for the
// cores. Row splits change no bits: each output row of these kernels depends only on its input
// row, whatever the row count of the call and wherever the row sits in it (tested), except that
// gemm:jit takes another kernel (gemv) for a one-row product, so a single row on the
// run-time-rows primitive is computed as two.
#include "ckernels.h"

#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// From libgomp, the OpenMP runtime Debian's oneDNN is built on (declared here because Clang
// does not ship GCC's omp.h): the thread count of this thread's next parallel regions.
extern void omp_set_num_threads(int count);

// Most rows of one oneDNN call; a larger product runs as several.
#define BLOCK_ROWS 256

// What a product does with C: writes A·B over it, adds A·B to it (a sum post-op), or writes
// A·B + bias over it. brgemm adds the bias to the finished sum, as it adds C to it: the bits of
// a bias written into C before an accumulating product, without that pass over C. gemm:jit
// (float32) adds C to partial sums of a long k, so its biases are written into C first.
enum { WRITE = 0, ACCUMULATE = 1, ADD_BIAS = 2, MODES = 3 };

// The primitives shared by every matrix of one (k, n, precision): [mode][rows] for fixed row
// counts (bf16), [mode][0] for the one run-time-rows primitive (float32, and bf16 where oneDNN
// has no brgemm kernel for it).
typedef struct product_family {
    long k, n;
    lethe_precision precision;
    int fixed_rows;
    dnnl_memory_desc_t weights_md;   // the packed layout every primitive of the family takes
    dnnl_primitive_t product[MODES][BLOCK_ROWS + 1];
    long scratch_bytes[MODES][BLOCK_ROWS + 1];
    struct product_family *next;
} product_family;

struct lethe_packed_matrix {
    product_family *family;    // its shape, precision, layout and primitives
    void *weights;             // packed B, 64-byte aligned
    long weights_bytes;
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

// A product of exactly `m` rows of A (rows k apart) into C (rows n apart), or with `m` =
// DNNL_RUNTIME_DIM_VAL of any rows and strides, on weights of layout `*weights`
// (format_tag_any lets oneDNN choose; the chosen layout is written back); `mode` as above.
static dnnl_status_t make_product(long k, long n, lethe_precision precision, long m, int mode,
                                  dnnl_memory_desc_t *weights, long *scratch_bytes, dnnl_primitive_t *product) {
    dnnl_memory_desc_t src, dst, bias;
    dnnl_status_t s;
    const int runtime = m == DNNL_RUNTIME_DIM_VAL;
    if ((s = matrix_desc(&src, m, k, runtime ? DNNL_RUNTIME_DIM_VAL : k, input_type(precision)))) return s;
    if ((s = matrix_desc(&dst, m, n, runtime ? DNNL_RUNTIME_DIM_VAL : n, dnnl_f32))) return s;
    if (mode == ADD_BIAS && (s = matrix_desc(&bias, 1, n, n, dnnl_f32))) return s;
    dnnl_matmul_desc_t desc;
    if ((s = dnnl_matmul_desc_init(&desc, &src, weights, mode == ADD_BIAS ? &bias : NULL, &dst))) return s;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t ops = NULL;
    dnnl_primitive_desc_t pd = NULL;
    if ((s = dnnl_primitive_attr_create(&attr))) return s;
    if ((s = dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user))) goto done;
    if (mode == ACCUMULATE) {
        if ((s = dnnl_post_ops_create(&ops))) goto done;
        if ((s = dnnl_post_ops_append_sum(ops, 1.0f))) goto done;
        if ((s = dnnl_primitive_attr_set_post_ops(attr, ops))) goto done;
    }
    if ((s = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL))) goto done;
    *weights = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    *scratch_bytes = (long)dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
    // oneDNN fixes a primitive's thread count when it is created, from this thread's OpenMP
    // setting: one, or the products would fork a team of all cores.
    omp_set_num_threads(1);
    s = dnnl_primitive_create(product, pd);
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (ops) dnnl_post_ops_destroy(ops);
    dnnl_primitive_attr_destroy(attr);
    return s;
}

static product_family *families;   // never freed; guarded by family_lock
static pthread_mutex_t family_lock = PTHREAD_MUTEX_INITIALIZER;

// Makes the family's product for `rows` rows (0: run-time rows) unless it exists; call with
// family_lock held.
static dnnl_status_t add_product(product_family *f, int mode, long rows) {
    if (f->product[mode][rows]) return dnnl_success;
    dnnl_memory_desc_t weights = f->weights_md;
    long scratch = 0;
    dnnl_primitive_t product = NULL;
    dnnl_status_t s = make_product(f->k, f->n, f->precision, rows ? rows : DNNL_RUNTIME_DIM_VAL, mode,
                                   &weights, &scratch, &product);
    if (s != dnnl_success) return s;
    f->scratch_bytes[mode][rows] = scratch;
    // Published last: product() reads the slot without the lock.
    __atomic_store_n(&f->product[mode][rows], product, __ATOMIC_RELEASE);
    return dnnl_success;
}

// Whether oneDNN runs `product` on a brgemm kernel.
static int runs_brgemm(dnnl_primitive_t product) {
    const_dnnl_primitive_desc_t pd = NULL;
    const char *impl = NULL;
    if (dnnl_primitive_get_primitive_desc(product, &pd) != dnnl_success) return 0;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl) return 0;
    return strncmp(impl, "brg", 3) == 0;
}

// The family of (k, n, precision), made on first use. bf16: its layout is the one brgemm
// chooses for a BLOCK_ROWS-row product, and its one-row and BLOCK_ROWS-row products are made at
// once, so a layout the kernels refuse (no bf16 support) fails here, when a matrix is packed.
// float32, and bf16 where oneDNN offers no brgemm kernel for it (whose other kernels are not
// known to keep a row's bits across row counts): its run-time-rows products and their layout,
// without ADD_BIAS (there the bias is written into C first).
static product_family *family_for(long k, long n, lethe_precision precision, dnnl_status_t *status,
                                  const char **what) {
    pthread_mutex_lock(&family_lock);
    product_family *f = families;
    while (f && !(f->k == k && f->n == n && f->precision == precision)) f = f->next;
    if (!f && (f = calloc(1, sizeof *f))) {
        f->k = k; f->n = n; f->precision = precision;
        dnnl_dims_t dims = {k, n};
        dnnl_status_t s = dnnl_success;
        long first = 0;
        for (int fixed = precision == LETHE_PRECISION_BF16; fixed >= 0; fixed--) {
            f->fixed_rows = fixed;
            first = fixed ? BLOCK_ROWS : 0;
            *what = "weights descriptor";
            s = dnnl_memory_desc_init_by_tag(&f->weights_md, 2, dims, input_type(precision), dnnl_format_tag_any);
            if (s != dnnl_success) break;
            long scratch = 0;
            *what = "matmul creation";
            s = make_product(k, n, precision, first ? first : DNNL_RUNTIME_DIM_VAL, 0, &f->weights_md, &scratch,
                             &f->product[0][first]);
            f->scratch_bytes[0][first] = scratch;
            if (s != dnnl_success || !fixed || runs_brgemm(f->product[0][first])) break;
            dnnl_primitive_destroy(f->product[0][first]);
            f->product[0][first] = NULL;
        }
        const int modes = first ? MODES : ADD_BIAS;
        for (int mode = ACCUMULATE; mode < modes && s == dnnl_success; mode++) s = add_product(f, mode, first);
        for (int mode = WRITE; mode < MODES && s == dnnl_success && first; mode++) s = add_product(f, mode, 1);
        if (s != dnnl_success) {
            for (int mode = 0; mode < MODES; mode++)
                for (long r = 0; r <= BLOCK_ROWS; r++)
                    if (f->product[mode][r]) dnnl_primitive_destroy(f->product[mode][r]);
            free(f);
            f = NULL;
            *status = s;
        } else {
            f->next = families;
            families = f;
        }
    } else if (!f) {
        *status = dnnl_out_of_memory;
        *what = "allocation";
    }
    pthread_mutex_unlock(&family_lock);
    return f;
}

// The family's product for `rows` rows (1…BLOCK_ROWS; 0: run-time rows), made on first use.
static dnnl_primitive_t product(product_family *f, int mode, long rows, dnnl_status_t *status) {
    dnnl_primitive_t made = __atomic_load_n(&f->product[mode][rows], __ATOMIC_ACQUIRE);
    if (made) return made;
    pthread_mutex_lock(&family_lock);
    *status = add_product(f, mode, rows);
    pthread_mutex_unlock(&family_lock);
    return f->product[mode][rows];
}

// Per-thread buffers that grow as needed (bf16 inputs, dense copies, scratchpads), freed when
// the thread ends.
typedef struct { void *data; long bytes; } grow_buffer;
typedef struct { grow_buffer input, output, scratch; } thread_buffers;
static pthread_key_t buffers_key;
static pthread_once_t buffers_once = PTHREAD_ONCE_INIT;

static void free_buffers(void *value) {
    thread_buffers *b = value;
    free(b->input.data); free(b->output.data); free(b->scratch.data);
    free(b);
}

static void create_buffers_key(void) { pthread_key_create(&buffers_key, free_buffers); }

static thread_buffers *my_buffers(void) {
    pthread_once(&buffers_once, create_buffers_key);
    thread_buffers *b = pthread_getspecific(buffers_key);
    if (!b && (b = calloc(1, sizeof *b))) pthread_setspecific(buffers_key, b);
    return b;
}

// At least `bytes` of 64-byte-aligned memory in `g` (contents not kept), or NULL.
static void *reserve(grow_buffer *g, long bytes) {
    if (bytes <= g->bytes) return g->data;
    free(g->data);
    long rounded = (bytes + 4095) / 4096 * 4096;
    g->data = aligned_alloc(64, (size_t)rounded);
    g->bytes = g->data ? rounded : 0;
    return g->data;
}

// Branch-free so that the compiler vectorises it: it runs on every input row of every bf16
// product. Integer operations only, so the AVX-512 build (twice the lanes; every CPU that runs
// the bf16 products has AVX-512) gives the AVX2 build's bits.
#define TO_BF16_BODY                                                                    \
    for (long i = 0; i < count; i++) {                                                  \
        uint32_t bits;                                                                  \
        memcpy(&bits, &x[i], 4);                                                        \
        uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;                \
        uint32_t quiet_nan = (bits >> 16) | 0x40u;                                      \
        y[i] = (uint16_t)((bits & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);   \
    }

__attribute__((target("avx2")))
static void to_bf16_avx2(const float *x, uint16_t *y, long count) { TO_BF16_BODY }

__attribute__((target("avx512f,avx512bw")))
static void to_bf16_avx512(const float *x, uint16_t *y, long count) { TO_BF16_BODY }

static void to_bf16(const float *x, uint16_t *y, long count) {
    if (__builtin_cpu_supports("avx512bw")) to_bf16_avx512(x, y, count); else to_bf16_avx2(x, y, count);
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
    dnnl_status_t family_status = dnnl_success;
    const char *what = "";
    product_family *family = family_for(k, n, precision, &family_status, &what);
    if (!family) { fail(error, error_capacity, what, family_status); return NULL; }
    lethe_packed_matrix *p = calloc(1, sizeof *p);
    uint16_t *converted = NULL;
    dnnl_memory_t plain_memory = NULL, packed_memory = NULL;
    dnnl_primitive_desc_t reorder_pd = NULL;
    dnnl_primitive_t reorder = NULL;
    if (!p) return NULL;
    p->family = family;
    dnnl_dims_t dims = {k, n};
    dnnl_memory_desc_t plain;
    p->weights_bytes = (long)dnnl_memory_desc_get_size(&family->weights_md);
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
    CHECK(dnnl_memory_create(&packed_memory, &family->weights_md, engine, p->weights), "memory");
    CHECK(dnnl_reorder_primitive_desc_create(&reorder_pd, &plain, engine, &family->weights_md, engine, NULL), "reorder");
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
    free(p->weights);
    free(p);
}

long lethe_packed_matrix_bytes(const lethe_packed_matrix *p) { return p->weights_bytes; }

// C[rows, n] = A[rows, k]·B, += A·B, or = A·B + bias (`mode`) on the calling thread, A in the
// product's input type with rows lda apart, C rows ldc apart: on the primitive for `rows` rows
// (at most BLOCK_ROWS, dense rows), or with `primitive_rows` 0 on the run-time-rows one.
static int multiply_block(const lethe_packed_matrix *p, const void *a, long rows, long lda, float *c, long ldc,
                          const float *bias, long primitive_rows, int mode, thread_buffers *buffers, char *error,
                          long error_capacity) {
    dnnl_status_t made = dnnl_success;
    dnnl_primitive_t prim = product(p->family, mode, primitive_rows, &made);
    if (!prim) return fail(error, error_capacity, "matmul creation", made);
    long pad_bytes = p->family->scratch_bytes[mode][primitive_rows];
    void *scratch = reserve(&buffers->scratch, pad_bytes > 0 ? pad_bytes : 64);
    if (!scratch) return fail(error, error_capacity, "allocation", dnnl_out_of_memory);
    dnnl_memory_t src = NULL, weights = NULL, dst = NULL, pad = NULL, bias_memory = NULL;
    int result = -1;
    dnnl_memory_desc_t src_md, dst_md, pad_md, bias_md;
    dnnl_dims_t pad_dims = {pad_bytes > 0 ? pad_bytes : 1};
    CHECK(matrix_desc(&src_md, rows, p->family->k, lda, input_type(p->family->precision)), "source descriptor");
    CHECK(matrix_desc(&dst_md, rows, p->family->n, ldc, dnnl_f32), "destination descriptor");
    CHECK(dnnl_memory_desc_init_by_tag(&pad_md, 1, pad_dims, dnnl_u8, dnnl_a), "scratchpad descriptor");
    CHECK(dnnl_memory_create(&src, &src_md, engine, (void *)a), "memory");
    CHECK(dnnl_memory_create(&weights, &p->family->weights_md, engine, p->weights), "memory");
    CHECK(dnnl_memory_create(&dst, &dst_md, engine, c), "memory");
    CHECK(dnnl_memory_create(&pad, &pad_md, engine, scratch), "memory");
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst},
                               {DNNL_ARG_SCRATCHPAD, pad}, {DNNL_ARG_BIAS, NULL}};
    if (mode == ADD_BIAS) {
        CHECK(matrix_desc(&bias_md, 1, p->family->n, p->family->n, dnnl_f32), "bias descriptor");
        CHECK(dnnl_memory_create(&bias_memory, &bias_md, engine, (void *)bias), "memory");
        args[4].memory = bias_memory;
    }
    CHECK(thread_stream(), "stream creation");
    omp_set_num_threads(1);
    CHECK(dnnl_primitive_execute(prim, stream, mode == ADD_BIAS ? 5 : 4, args), "matmul");
    result = 0;
failed:
    if (src) dnnl_memory_destroy(src);
    if (weights) dnnl_memory_destroy(weights);
    if (dst) dnnl_memory_destroy(dst);
    if (pad) dnnl_memory_destroy(pad);
    if (bias_memory) dnnl_memory_destroy(bias_memory);
    return result;
}

// C[rows, n] = A[rows, k]·B (+ C, or + bias, by `mode`) with A's rows `lda` apart and C's `ldc`
// apart, where a stride of 0 repeats row 0. A goes through a dense buffer when the primitive
// cannot take it as it is: in bf16 (rounded), with a stride of 0, or on a fixed-rows primitive
// (rows k apart only); so does C (rows n apart). With `ldc` 0 every row is written back to
// row 0: they are equal.
static int multiply_staged(const lethe_packed_matrix *p, const float *a, long rows, long lda, float *c, long ldc,
                           const float *bias, long primitive_rows, int mode, thread_buffers *buffers, char *error,
                           long error_capacity) {
    const long k = p->family->k, n = p->family->n;
    const int bf16 = p->family->precision == LETHE_PRECISION_BF16;
    const void *input = a;
    if (bf16 || lda == 0 || (primitive_rows && lda != k)) {
        void *dense = reserve(&buffers->input, rows * k * (bf16 ? 2 : 4));
        if (!dense) return fail(error, error_capacity, "allocation", dnnl_out_of_memory);
        for (long r = 0; r < rows; r++) {
            if (bf16) to_bf16(a + r * lda, (uint16_t *)dense + r * k, k);
            else memcpy((float *)dense + r * k, a + r * lda, (size_t)k * sizeof(float));
        }
        input = dense;
        lda = k;
    }
    float *output = c;
    const int staged = ldc == 0 || (primitive_rows && ldc != n);
    if (staged) {
        output = reserve(&buffers->output, rows * n * (long)sizeof(float));
        if (!output) return fail(error, error_capacity, "allocation", dnnl_out_of_memory);
        if (mode == ACCUMULATE)
            for (long r = 0; r < rows; r++) memcpy(output + r * n, c + r * ldc, (size_t)n * sizeof(float));
    }
    if (multiply_block(p, input, rows, lda, output, staged ? n : ldc, bias, primitive_rows, mode, buffers, error,
                       error_capacity))
        return -1;
    if (staged)
        for (long r = 0; r < rows; r++) memcpy(c + r * ldc, output + r * n, (size_t)n * sizeof(float));
    return 0;
}

int lethe_packed_matrix_multiply(const lethe_packed_matrix *p, const float *a, long m, long lda,
                                 float *c, long ldc, int accumulate, const float *bias, char *error,
                                 long error_capacity) {
    if (m <= 0) return 0;
    if (accumulate && bias) {
        if (error && error_capacity > 0) snprintf(error, (size_t)error_capacity, "a product adds C or a bias, not both");
        return -1;
    }
    int mode = bias ? ADD_BIAS : accumulate ? ACCUMULATE : WRITE;
    thread_buffers *buffers = my_buffers();
    if (!buffers) return fail(error, error_capacity, "allocation", dnnl_out_of_memory);
    if (!p->family->fixed_rows) {
        if (bias) {
            for (long r = 0; r < m; r++) memcpy(c + r * ldc, bias, (size_t)p->family->n * sizeof(float));
            mode = ACCUMULATE;
        }
        // The run-time-rows primitive takes another kernel (gemv) for one row: a single row runs
        // as two equal rows, so it gets the bits it would get inside a larger product.
        if (m == 1) return multiply_staged(p, a, 2, 0, c, 0, NULL, 0, mode, buffers, error, error_capacity);
        return multiply_staged(p, a, m, lda, c, ldc, NULL, 0, mode, buffers, error, error_capacity);
    }
    // Blocks of at most BLOCK_ROWS rows, each on the primitive made for its row count.
    for (long first = 0; first < m; first += BLOCK_ROWS) {
        long rows = m - first < BLOCK_ROWS ? m - first : BLOCK_ROWS;
        if (multiply_staged(p, a + first * lda, rows, lda, c + first * ldc, ldc, bias, rows, mode, buffers, error,
                            error_capacity))
            return -1;
    }
    return 0;
}
