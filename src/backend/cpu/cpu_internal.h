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

#include "backend/backend.h"

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
