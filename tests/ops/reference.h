/*
 * reference.h — plain double-precision implementations of every backend op, written from the
 * maths of spec §2 (docs/spec/glm4_moe.md) and sharing no code with src/backend/.
 *
 * The reference reads weights straight from the host bytes that the test later binds to a
 * backend, decoding bf16/f16/f32 itself (util/dtype.h is not used, so a conversion bug there
 * cannot hide). Inputs are the float32 values the backend also receives; every sum, exp and
 * division is done in double, so the result is the float32 op's exact answer to ~1e-15.
 *
 * Letters: T tokens, H hidden width, N output features, K inputs of a matmul, nh/nkv query/KV
 * heads, D head_dim, R rotary dims, E experts, K (in MoE) experts per token, Im expert width.
 * Tested by tests/ops/test_ops.c, whose checks would fail if this file drifted from the spec.
 */
#ifndef GLMOE_TESTS_OPS_REFERENCE_H
#define GLMOE_TESTS_OPS_REFERENCE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum ref_dtype { REF_F32 = 0, REF_BF16, REF_F16, REF_AFFINE } ref_dtype;

/* A matrix as it lies in host memory: [rows, cols] row-major, data possibly unaligned.
 * REF_AFFINE (MLX's format, docs/spec/quantization.md §2-3): data holds each row's codes as a
 * little-endian bit stream (code c at bits [c*bits, c*bits + bits) of the row's bytes), scales
 * and biases [rows, cols / group] of scale_type; element = scale * code + bias, in double. */
typedef struct ref_matrix {
    ref_dtype type;
    int64_t rows, cols;
    const void *data;
    int bits, group;
    ref_dtype scale_type;
    const void *scales, *biases;
} ref_matrix;

const char *ref_dtype_name(ref_dtype t);

/* Element (r, c) of m, decoded from its bytes (bf16, f16 incl. subnormals, f32). */
double ref_elem(const ref_matrix *m, int64_t r, int64_t c);

/* out[T, N] = x[T, K] · W^T (+ bias[N] if bias is non-NULL). */
void ref_matmul(double *out, const float *x, const ref_matrix *W, const double *bias, int32_t T);

/* out[t, :] = table[ids[t], :]; ids must be in range. */
void ref_embed(double *out, const ref_matrix *table, const int32_t *ids, int32_t T);

/* x = resid (+ delta); new_resid = x; out = w ⊙ x / sqrt(mean(x²) + eps), per row of `cols`.
 * delta may be NULL; new_resid may be NULL when the caller does not need it. */
void ref_add_rmsnorm(double *out, double *new_resid, const float *resid, const float *delta,
                     const double *w, int64_t rows, int64_t cols, float eps);

/* out = silu(gate) · up, silu(z) = z / (1 + e^-z). */
void ref_swiglu(double *out, const float *gate, const float *up, int64_t n);

/* The float32 angle pos · inv_freq[i] as transformers computes it (see reference.c for why it is
 * float32 and not exact). */
float ref_rope_angle(int32_t pos, int32_t i, int32_t rotary_dim, float theta);

/* Half-split RoPE of x[T, nh, D] on dims [0, R) of every head (pairs (i, i + R/2)), cos and sin
 * in double of the float32 angle. If bound is non-NULL, bound[e] receives an absolute error bound
 * per element for an implementation whose inv_freq or angle may differ from ours by a float32
 * rounding (a couple of ulps of the angle), which dominates at large positions. */
void ref_rope(double *out, double *bound, const float *x, const int32_t *pos, int32_t T, int32_t nh,
              int32_t D, int32_t R, float theta);

/* Causal GQA attention of T queries at positions [n_past, n_past + T) over keys/values
 * [0, n_past + T): k_all, v_all [n_past + T, nkv * D], q [T, nh * D], mask [T, n_past + T] or
 * NULL (additive, -inf hides a key; only the causal part is read). A query whose keys are all
 * hidden gets zeros. out [T, nh * D]. */
void ref_attention(double *out, const float *q, const float *k_all, const float *v_all,
                   const float *mask, int32_t T, int32_t n_past, int32_t nh, int32_t nkv, int32_t D,
                   double scale);

typedef struct ref_route_params {
    int32_t n_experts, top_k, n_group, topk_group;
    bool norm_topk_prob;
    double routed_scaling_factor;
} ref_route_params;

/* Router of spec §2.6 steps 1-6 for T tokens x[T, H]: idx [T, K] (descending selection score),
 * weights [T, K]. bias [E] or NULL. margin [T] (may be NULL) receives, per token, the smallest
 * gap between a chosen and a rejected candidate (expert scores at the top-K boundary, group
 * scores at the topk_group boundary): below ~1e-5 a float32 implementation may legitimately
 * choose differently. Exactly equal scores at a boundary (ties broken by index, as every
 * implementation does) count as no gap: the margin is then taken around the tied run. Ties go to
 * the lower index in idx's order too. */
void ref_moe_route(int32_t *idx, double *weights, double *margin, const float *x, const ref_matrix *router,
                   const double *bias, const ref_route_params *p, int32_t T);

/* out[T, H] += Σ_j weights[t, j] · Expert_{idx[t, j]}(x[t]), Expert_e(u) =
 * down_e · (silu(gate_e · u) ⊙ up_e · u). out holds the starting values (zeros to overwrite). */
void ref_moe_experts(double *out, const float *x, const int32_t *idx, const float *weights, int32_t top_k,
                     const ref_matrix *gate, const ref_matrix *up, const ref_matrix *down, int32_t T);

#endif
