/*
 * checks.h — what the op checks of tests/ops share across files (test_ops.c runs them;
 * check_affine.c holds the affine ones; compare_affine.c their comparisons, which the op-case
 * table of opcases.c uses too): the op groups, the float32 tolerances, and small helpers.
 */
#ifndef GLMOE_TESTS_OPS_CHECKS_H
#define GLMOE_TESTS_OPS_CHECKS_H

#include <stdio.h>
#include <string.h>

#include "ops/harness.h"
#include "ops/reference.h"

/* float32 tolerances on ||out - ref|| / ||ref|| (test_ops.c says how they are chosen). */
#define TOL_MATMUL 1e-5
#define TOL_EXPERTS 1e-5
#define TOL_ADD 2e-7        /* one float32 rounding per element */
#define TOL_ELEMENTWISE 2e-6
#define TOL_ATTENTION 1e-5
/* A bf16 KV cache (the GPU's default): keys and values carry 8 significant bits, and the
 * tensor-core prefill kernel rounds q and the probabilities to bf16 as well. */
#define TOL_ATTENTION_BF16 2e-2
#define TOL_ROUTE 1e-5
#define TOL_ROPE_MIN 2e-6   /* rope: raised per case by the angle-rounding bound (reference.h) */
/* Selection scores closer than this are a tie for a float32 router: such tokens are skipped. */
#define ROUTE_TIE 1e-5
/* The attention tolerance of the backend under test (TOL_ATTENTION, or TOL_ATTENTION_BF16 for a
 * bf16 cache); set by test_ops.c, defined in opcases.c. */
extern double ops_tol_attention;
/* Prefill with affine weights on the GPU (T > 8: cuda_quant_mma.cu) multiplies fp16 copies of
 * the activations by weights dequantized to fp16 on the tensor cores. Each rounding is relative
 * 2^-12, so each term x_k·w_k is off by at most 2^-11 (+2^-24) of |x_k·w_k|, and the float32 sums
 * (the tensor cores may truncate) add at most K·2^-23 <= 2^-12 of Σ|terms| for K <= 2048. So
 * the check is max |out - ref| / Σ_k |x_k·w_k| (+ |bias|) <= 2^-11 + 2^-12 ≈ 7.3e-4 for every
 * element: a bound no correct kernel exceeds (the worst case on an H100, 2026-12-07: 2.6e-4),
 * where a wrong code, scale, group or k offset moves some element by 1e-2 or more of its terms
 * (a relative L2 of 1e-2 would let whole wrong groups through). The experts propagate it through
 * SwiGLU to first order (experts_terms). 0 while a backend computes in float32 (the CPU; the
 * GPU's T <= 8), checked at TOL_MATMUL / TOL_EXPERTS. */
#define TOL_AFFINE_TC (0x1p-11 + 0x1p-12)
/* Of the backend under test, for T > 8 (set by ops_check_backend; check_affine.c). */
extern double ops_tol_affine_prefill;
/* Of the backend under test, for T <= 8 at 4 and 8 bits in the fast layout (the GPU's GEMVs on
 * the tensor cores, cuda_quant_mmv.cu), or 0: float32 terms. */
extern double ops_tol_affine_gemv;

typedef struct op_groups {
    ops_stats matmul, embed, add, swiglu, rmsnorm, rope, attention, attn_lengths, attn_decode, route, experts, graph,
        affine, affine_prefill, table;
} op_groups;

/* Reports an op that returned an error where success was expected. */
static inline bool op_ok(ops_ctx *c, ops_stats *st, glmoe_status s, const char *what) {
    if (s == GLMOE_OK) return true;
    fprintf(stderr, "[%s] FAIL %s: the op returned status %d: %s\n", c->label, what, (int)s, c->err.msg);
    ops_stats_fail(st);
    return false;
}

static inline ref_dtype dtype_of(int i) { return (ref_dtype)(i % 3); }

/* A host f32 vector [1, n] holding exactly v. */
static inline ops_host_matrix *host_vector_f32(ops_ctx *c, const float *v, int64_t n, bool unaligned) {
    ops_host_matrix *m = ops_host_matrix_new(c, REF_F32, 1, n, 1.0, unaligned);
    memcpy((void *)m->ref.data, v, (size_t)n * sizeof *v);
    return m;
}

/* compare_affine.c: the affine comparisons (ops_tol_affine_* above are defined there). */
/* m's elements in double, [rows][cols] (malloc'd), as the reference decodes them. */
double *ops_ref_decode(const ref_matrix *m);
/* Passes when max_i |out[i] - ref[i]| / mag[i] <= tol and nothing is NaN (TOL_AFFINE_TC says
 * why this measure); prints the worst element on failure. Records err = that maximum. */
bool ops_compare_terms(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref,
                       const double *mag, size_t n, double tol);
/* An affine matmul's result against the reference: in float32 terms (ops_compare, TOL_MATMUL)
 * unless the backend takes it on the tensor cores in fp16 (T > 8: ops_tol_affine_prefill; T <= 8
 * with 4 or 8 bits in the fast layout, gemv_tc: ops_tol_affine_gemv), then per element against
 * Σ|x·w| + |bias|. */
bool ops_affine_matmul_ok(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref,
                          const float *x, const ref_matrix *W, const double *bias, int32_t T, bool gemv_tc);
/* Σ|terms| of each output of the experts, to first order through SwiGLU (compare_affine.c). */
void ops_experts_terms(double *mag, const float *x, const int32_t *idx, const float *rw, int32_t K, int32_t E,
                       const ref_matrix *rg, const ref_matrix *ru, const ref_matrix *rd, int32_t T,
                       const float *init);
/* The experts' result against the reference: float32 terms (TOL_EXPERTS), or per element as
 * ops_affine_matmul_ok. init: the starting values (accumulate), or NULL. */
bool ops_affine_experts_ok(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref,
                           const float *x, const int32_t *idx, const float *rw, int32_t K, int32_t E,
                           const ref_matrix *rg, const ref_matrix *ru, const ref_matrix *rd, int32_t T,
                           const float *init, bool gemv_tc);

/* opcases.c: every case of the op-case table (opcases.h) in correctness mode at `shape`, on the
 * backend of c (an execution state of the table's own is made and freed; c->ex is restored): the
 * ops at T = 1 and T = prefill_tokens, attention at prefill_tokens, decode attention at each
 * context, and with quantize->bits the affine cases at that format. result() gets each case's
 * description and outcome (test_ops counts them with CHECK); st the worst error. Anything c holds
 * is released first. */
struct opcase_shape;
void opcases_check(ops_ctx *c, ops_stats *st, const struct opcase_shape *shape, int32_t prefill_tokens,
                   const int32_t *contexts, int n_contexts, const glmoe_quantize *quantize,
                   void (*result)(const char *what, bool ok));

/* check_affine.c */
void check_affine(ops_ctx *c, op_groups *g);
void check_affine_prefill(ops_ctx *c, op_groups *g);

#endif
