/*
 * cpu_internal.h — state shared by the CPU backend's files.
 *
 * The CPU backend computes in float32 throughout: weights are converted from their stored format
 * (bf16/f16/f32, or affine codes) as they are read (gm_weight_row_f32, or a fused kernel), the KV cache is float32, and every sum accumulates in float32
 * or wider. Threads come from OpenMP (one parallel loop per op, num_threads = n_threads) and
 * from OpenBLAS for the matrix-matrix products of prefill.
 */
#ifndef GLMOE_CPU_INTERNAL_H
#define GLMOE_CPU_INTERNAL_H

#include <string.h>

#include "backend/backend.h"
#include "util/dtype.h"

typedef struct cpu_backend {
    gm_backend base;
    int n_threads;
} cpu_backend;

/* One sequence's scratch, sized once by exec_create (backend.h: state an evaluation writes lives
 * here, so that two threads may evaluate two contexts of one model at once). */
typedef struct cpu_exec {
    gm_exec base;
    int n_threads;
    float *convert;          /* weight rows converted to float32 for sgemm                  */
    size_t convert_floats;
    float *thread_scratch;   /* n_threads slices of thread_scratch_floats                    */
    size_t thread_scratch_floats;
    float *attn;             /* prefill attention scores, a block of query rows x keys        */
    size_t attn_floats;
    float *moe_x, *moe_gate, *moe_up, *moe_out; /* expert-grouped rows of one expert         */
    int32_t *moe_rows;       /* token index of each grouped row                             */
    float *moe_w;            /* routing weight of each grouped row                          */
    int32_t *moe_offsets;    /* per expert: start of its rows in the grouped order (E + 1)   */
    int32_t *moe_fill;       /* per expert: rows placed so far                              */
    size_t moe_rows_cap, moe_h_cap, moe_im_cap, moe_experts_cap; /* what the MoE scratch holds */
    float *affine_xsum;      /* per token and group, Σx of the affine GEMV (cpu_quant.c)     */
} cpu_exec;

struct gm_kv {
    int32_t n_layers, n_ctx, n_kv_heads, head_dim;
    float *k, *v;            /* [layer][pos][kv_head][head_dim] */
};

static inline cpu_backend *cpu_of(gm_backend *be) { return (cpu_backend *)be; }
static inline cpu_exec *cpu_exec_of(gm_exec *ex) { return (cpu_exec *)ex; }

/* Work (multiply-adds or elements) below which an op runs on the calling thread. Waking a team
 * costs tens of microseconds, and far more on a VM whose other vCPU is busy (measured on the
 * 2-vCPU CI machine: the 13.6M demo model decoded 10x slower on 2 threads than on 1 with a
 * threshold of 64K). 1M multiply-adds take ~100 us on one core, enough to pay for the wake-up. */
#define CPU_PARALLEL_MIN_WORK (1 << 20)

/* Dot product of float32 vectors with eight independent partial sums, so that the compiler keeps
 * a vector accumulator (a single float sum is a serial chain it may not reorder). */
static inline float cpu_dot(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

/* Eight floats as one value (GCC/Clang vector extension): what cpu_dot's acc[8] compiles to, said
 * explicitly where the compiler does not find it by itself (several rows at once). */
typedef float cpu_f32x8 __attribute__((vector_size(32)));
typedef uint16_t cpu_u16x8 __attribute__((vector_size(16)));
typedef uint32_t cpu_u32x8 __attribute__((vector_size(32)));

/* The vectors go through pointers, not return values: without AVX enabled (builds other than
 * Release) a 32-byte vector returned by value changes the ABI, and GCC warns (-Wpsabi). */
static inline void cpu_load_f32x8(cpu_f32x8 *v, const void *p) { memcpy(v, p, sizeof *v); }

/* Eight bf16 values (raw little-endian, any alignment) widened to float32: exact. */
static inline void cpu_widen_bf16x8(cpu_f32x8 *f, const uint8_t *p) {
    cpu_u16x8 h;
    memcpy(&h, p, sizeof h);
    const cpu_u32x8 u = __builtin_convertvector(h, cpu_u32x8) << 16;
    memcpy(f, &u, sizeof *f);
}

/* One weight (raw, any alignment) as float32: the dots' tails. */
static inline float cpu_w_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}
static inline float cpu_w_bf16(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return gm_bf16_to_f32(h);
}

/* out[t] = Σ_k a[k] · b[t * ldb + k] for t < T (1..8), where a is a row of weights of ESIZE bytes
 * each (bf16 or float32; raw little-endian, any alignment): each weight is loaded (and widened)
 * once and used for all T rows of b, so the weights are read once however many rows (decode and
 * verify spend most of their time here). U independent vector accumulators per row (U = 4 for one
 * or two rows, 2 for three or four, 1 beyond: T x U <= 8 of the 16 vector registers), because one
 * accumulator makes every add wait for the previous one (4 cycles) while the loads and multiplies
 * could go on; the sums are float32 in a fixed order (acc[t][u] over k = 8u (mod 8U), then
 * acc[t][0] + acc[t][1] + ..., its lanes in order, the tail first) that does not depend on the
 * weights' type, so the same values give the same bits as bf16 and as float32. T and U are
 * compile-time constants in each expansion, so the accumulators stay in registers. */
#define CPU_DOT_ROWS_T(NAME, ESIZE, LOAD8, LOAD1, T, U)                                                   \
    static inline void NAME##_##T(const uint8_t *a, const float *b, int64_t ldb, int64_t n, float *out) { \
        cpu_f32x8 acc[T][U];                                                                              \
        for (int t = 0; t < T; t++)                                                                       \
            for (int u = 0; u < U; u++) acc[t][u] = (cpu_f32x8){0};                                       \
        int64_t i = 0;                                                                                    \
        for (; i + 8 * U <= n; i += 8 * U)                                                                \
            for (int u = 0; u < U; u++) {                                                                 \
                cpu_f32x8 w, x;                                                                           \
                LOAD8(&w, a + ESIZE * (i + 8 * u));                                                       \
                for (int t = 0; t < T; t++) {                                                             \
                    cpu_load_f32x8(&x, b + t * ldb + i + 8 * u);                                          \
                    acc[t][u] += w * x;                                                                   \
                }                                                                                         \
            }                                                                                             \
        for (; i + 8 <= n; i += 8) {                                                                      \
            cpu_f32x8 w, x;                                                                               \
            LOAD8(&w, a + ESIZE * i);                                                                     \
            for (int t = 0; t < T; t++) {                                                                 \
                cpu_load_f32x8(&x, b + t * ldb + i);                                                      \
                acc[t][0] += w * x;                                                                       \
            }                                                                                             \
        }                                                                                                 \
        for (int t = 0; t < T; t++) {                                                                     \
            float s = 0;                                                                                  \
            for (int64_t k = i; k < n; k++) s += LOAD1(a + ESIZE * k) * b[t * ldb + k];                   \
            cpu_f32x8 v = acc[t][0];                                                                      \
            for (int u = 1; u < U; u++) v += acc[t][u];                                                   \
            for (int j = 0; j < 8; j++) s += v[j];                                                        \
            out[t] = s;                                                                                   \
        }                                                                                                 \
    }
#define CPU_DOT_ROWS(NAME, ESIZE, LOAD8, LOAD1)                                                           \
    CPU_DOT_ROWS_T(NAME, ESIZE, LOAD8, LOAD1, 1, 4)                                                       \
    CPU_DOT_ROWS_T(NAME, ESIZE, LOAD8, LOAD1, 2, 4)                                                       \
    CPU_DOT_ROWS_T(NAME, ESIZE, LOAD8, LOAD1, 3, 2)                                                       \
    CPU_DOT_ROWS_T(NAME, ESIZE, LOAD8, LOAD1, 4, 2)                                                       \
    CPU_DOT_ROWS_T(NAME, ESIZE, LOAD8, LOAD1, 5, 1)                                                       \
    CPU_DOT_ROWS_T(NAME, ESIZE, LOAD8, LOAD1, 6, 1)                                                       \
    CPU_DOT_ROWS_T(NAME, ESIZE, LOAD8, LOAD1, 7, 1)                                                       \
    CPU_DOT_ROWS_T(NAME, ESIZE, LOAD8, LOAD1, 8, 1)                                                       \
    /* The expansion for T (1..8). */                                                                     \
    static inline void NAME(const uint8_t *a, const float *b, int64_t ldb, int64_t n, int32_t T, float *out) { \
        switch (T) {                                                                                      \
        case 1: NAME##_1(a, b, ldb, n, out); return;                                                      \
        case 2: NAME##_2(a, b, ldb, n, out); return;                                                      \
        case 3: NAME##_3(a, b, ldb, n, out); return;                                                      \
        case 4: NAME##_4(a, b, ldb, n, out); return;                                                      \
        case 5: NAME##_5(a, b, ldb, n, out); return;                                                      \
        case 6: NAME##_6(a, b, ldb, n, out); return;                                                      \
        case 7: NAME##_7(a, b, ldb, n, out); return;                                                      \
        default: NAME##_8(a, b, ldb, n, out); return;                                                     \
        }                                                                                                 \
    }
CPU_DOT_ROWS(cpu_dot_bf16, 2, cpu_widen_bf16x8, cpu_w_bf16)
CPU_DOT_ROWS(cpu_dot_f32, 4, cpu_load_f32x8, cpu_w_f32)
#undef CPU_DOT_ROWS
#undef CPU_DOT_ROWS_T

/* out[T, N] = x[T, K] · W^T for a dense weight; bias may be NULL. Chooses a bandwidth-bound
 * GEMV path for few rows and chunked conversion + OpenBLAS sgemm for many. */
glmoe_status cpu_matmul(gm_exec *ex, float *out, const float *x, const gm_weight *W,
                        const gm_weight *bias, int32_t T, gm_err *err);

/* Below this many rows a matmul is a GEMV (cpu_matmul.c, cpu_quant.c); from it on, sgemm. */
#define CPU_GEMV_MAX_ROWS 8

/* out[T, N] = x · W^T for an affine W and T <= CPU_GEMV_MAX_ROWS, from the packed codes. */
void cpu_affine_gemv(cpu_exec *cx, float *out, const float *x, const gm_weight *W, const float *bias, int32_t T);

/* The per-thread scratch slice of the calling OpenMP thread. */
float *cpu_thread_scratch(cpu_exec *cx);

glmoe_status cpu_embed(gm_exec *ex, float *out, const gm_weight *table, const int32_t *ids,
                       int32_t T, gm_err *err);
glmoe_status cpu_add_rmsnorm(gm_exec *ex, float *out, float *resid, const float *delta,
                             const gm_weight *w, int64_t rows, int64_t cols, float eps, gm_err *err);
glmoe_status cpu_add(gm_exec *ex, float *resid, const float *delta, int64_t n, gm_err *err);
glmoe_status cpu_copy_2d(gm_exec *ex, float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                         int64_t rows, int64_t width, gm_err *err);
glmoe_status cpu_swiglu(gm_exec *ex, float *out, const float *gate, const float *up, int64_t n,
                        gm_err *err);
glmoe_status cpu_rope(gm_exec *ex, float *x, const int32_t *pos, int32_t T, int32_t n_heads,
                      int32_t head_dim, int32_t rotary_dim, float theta, gm_err *err);
glmoe_status cpu_attention(gm_exec *ex, float *out, const float *q, const float *k, const float *v,
                           gm_kv *kv, int32_t layer, const gm_attn_params *p, gm_err *err);
glmoe_status cpu_moe_route(gm_exec *ex, int32_t *idx, float *weights, const float *x,
                           const gm_weight *router, const gm_weight *bias, const gm_route_params *p,
                           int32_t T, gm_err *err);
glmoe_status cpu_moe_experts(gm_exec *ex, float *out, bool accumulate, const float *x, const int32_t *idx,
                             const float *weights, int32_t top_k, const gm_experts *bank, int32_t T,
                             gm_err *err);

#endif
