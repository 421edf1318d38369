/*
 * cpu_attention.c — causal grouped-query attention over a float32 KV cache.
 *
 * For query t (absolute position n_past + t) and head h, reading KV head g = h / (nh / nkv):
 *   s_j = q·k_j * scale (+ mask[t, j])  for j <= n_past + t,   p = softmax(s),   o = Σ_j p_j v_j.
 * The softmax subtracts the row maximum and sums in double. With gm_attn_params.rope_pos, q and
 * the new keys are rotated first by cpu_rope (the rope op itself), so the values are those of two
 * rope calls before the attention.
 *
 * Two paths:
 *   - decode and short chunks: one (token, head) pair per loop iteration, scores in the thread's
 *     scratch slice (sized to the context by reserve());
 *   - prefill (T >= ATTN_GEMM_MIN_T): per head, S = Q_h·K_g^T and O_h = P·V_g as OpenBLAS sgemm
 *     calls over blocks of query rows, reading K and V in place in the cache (row stride nkv*D).
 *     Entries above the causal diagonal are computed and then zeroed.
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

#define ATTN_GEMM_MIN_T 16

/* Softmax of row[0, n) in place after adding mrow (may be NULL); zeros when all are -inf. */
static void softmax_row(float *row, int64_t n, const float *mrow) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        if (mrow) row[j] += mrow[j];
        if (row[j] > mx) mx = row[j];
    }
    if (mx == -INFINITY) { /* every key masked: output zeros, as SDPA does */
        memset(row, 0, (size_t)n * sizeof *row);
        return;
    }
    double sum = 0;
    for (int64_t j = 0; j < n; j++) {
        float e = expf(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (int64_t j = 0; j < n; j++) row[j] *= inv;
}

/* o[d] = Σ_j p[j] · v[j * row + d] for d < D, j in order from 0: the values' weighted sum. For the
 * common head sizes the D sums live in vector registers across the loop over j (a plain loop
 * keeps them in o, which the compiler must assume the values may alias: a load and a store per
 * key and 8 dims); the same sums in the same order either way. */
#define WEIGHTED_SUM_D(D)                                                                                 \
    static void weighted_sum_##D(float *o, const float *p, const float *v, size_t row, int64_t n) {      \
        cpu_f32x8 acc[D / 8];                                                                             \
        for (int c = 0; c < D / 8; c++) acc[c] = (cpu_f32x8){0};                                          \
        for (int64_t j = 0; j < n; j++) {                                                                 \
            const float pj = p[j], *vj = v + (size_t)j * row;                                             \
            for (int c = 0; c < D / 8; c++) {                                                             \
                cpu_f32x8 x;                                                                              \
                cpu_load_f32x8(&x, vj + 8 * c);                                                           \
                acc[c] += pj * x;                                                                         \
            }                                                                                             \
        }                                                                                                 \
        memcpy(o, acc, sizeof acc);                                                                       \
    }
WEIGHTED_SUM_D(64)
WEIGHTED_SUM_D(128)
#undef WEIGHTED_SUM_D

static void weighted_sum(float *o, const float *p, const float *v, size_t row, int64_t n, int32_t D) {
    if (D == 64) {
        weighted_sum_64(o, p, v, row, n);
        return;
    }
    if (D == 128) {
        weighted_sum_128(o, p, v, row, n);
        return;
    }
    for (int32_t d = 0; d < D; d++) o[d] = 0;
    for (int64_t j = 0; j < n; j++) {
        const float *vj = v + (size_t)j * row;
        const float pj = p[j];
        for (int32_t d = 0; d < D; d++) o[d] += pj * vj[d];
    }
}

static void attention_gemm(cpu_exec *cx, float *out, const float *q, const float *kc, const float *vc,
                           const gm_attn_params *p, int64_t n_keys) {
    const int32_t T = p->n_tokens, nh = p->n_heads, nkv = p->n_kv_heads, D = p->head_dim, group = nh / nkv;
    const int64_t row = (int64_t)nkv * D;
    int64_t block = (int64_t)(cx->attn_floats / (size_t)n_keys);
    if (block > T) block = T;
    float *S = cx->attn;
    for (int32_t h = 0; h < nh; h++) {
        const int32_t g = h / group;
        for (int64_t t0 = 0; t0 < T; t0 += block) {
            const int64_t bt = T - t0 < block ? T - t0 : block;
            /* Keys needed by this block: up to the causal limit of its last query. */
            const int64_t nk = p->n_past + t0 + bt;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)bt, (int)nk, D, p->scale,
                        q + t0 * nh * D + (int64_t)h * D, nh * D, kc + (int64_t)g * D, (int)row, 0.0f, S, (int)nk);
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if (bt * nk >= CPU_PARALLEL_MIN_WORK)
            for (int64_t i = 0; i < bt; i++) {
                float *r = S + i * nk;
                const int64_t lim = p->n_past + t0 + i + 1; /* causal */
                softmax_row(r, lim, p->mask ? p->mask + (t0 + i) * n_keys : NULL);
                if (nk > lim) memset(r + lim, 0, (size_t)(nk - lim) * sizeof *r);
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)bt, D, (int)nk, 1.0f, S, (int)nk,
                        vc + (int64_t)g * D, (int)row, 0.0f, out + t0 * nh * D + (int64_t)h * D, nh * D);
        }
    }
}

glmoe_status cpu_attention(gm_exec *ex, float *out, const float *q, const float *k, const float *v,
                           gm_kv *kv, int32_t layer, const gm_attn_params *p, gm_err *err) {
    cpu_exec *cx = cpu_exec_of(ex);
    const int32_t T = p->n_tokens, nh = p->n_heads, nkv = p->n_kv_heads, D = p->head_dim;
    const int32_t group = nh / nkv;
    const int64_t n_keys = (int64_t)p->n_past + T;
    if (n_keys > kv->n_ctx)
        return gm_fail(err, GLMOE_E_CONTEXT, "attention: %lld positions exceed the cache of %d",
                       (long long)n_keys, kv->n_ctx);
    if (p->rope_pos && p->rotary_dim > D)
        return gm_fail(err, GLMOE_E_ARG, "attention: RoPE on %d of %d dims", p->rotary_dim, D);
    if ((size_t)n_keys > cx->thread_scratch_floats)
        return gm_fail(err, GLMOE_E_BACKEND, "attention: scratch too small for %lld keys", (long long)n_keys);

    const size_t row = (size_t)nkv * (size_t)D;                 /* floats per position */
    float *kc = kv->k + (size_t)layer * (size_t)kv->n_ctx * row;
    float *vc = kv->v + (size_t)layer * (size_t)kv->n_ctx * row;
    memcpy(kc + (size_t)p->n_past * row, k, (size_t)T * row * sizeof(float));
    memcpy(vc + (size_t)p->n_past * row, v, (size_t)T * row * sizeof(float));
    if (p->rope_pos) {
        /* The new keys are rotated where they now lie (rows [n_past, n_past + T) of the cache are
         * one [T, nkv, D] block); q is rotated in out, which has its shape: each (token, head)
         * row of out is written only after its q row has been read (both paths below), so q can
         * be read from there. The same cpu_rope as the rope op: identical values. */
        glmoe_status s = cpu_rope(ex, kc + (size_t)p->n_past * row, p->rope_pos, T, nkv, D, p->rotary_dim,
                                  p->rope_theta, err);
        if (s) return s;
        memcpy(out, q, (size_t)T * nh * D * sizeof(float));
        if ((s = cpu_rope(ex, out, p->rope_pos, T, nh, D, p->rotary_dim, p->rope_theta, err))) return s;
        q = out;
    }

    if (T >= ATTN_GEMM_MIN_T && cx->attn && (size_t)n_keys <= cx->attn_floats) {
        attention_gemm(cx, out, q, kc, vc, p, n_keys);
        return GLMOE_OK;
    }
#pragma omp parallel for num_threads(cx->n_threads) schedule(dynamic, 1) collapse(2) \
    if ((int64_t)T * nh * n_keys * D >= CPU_PARALLEL_MIN_WORK)
    for (int32_t t = 0; t < T; t++) {
        for (int32_t h = 0; h < nh; h++) {
            float *scores = cpu_thread_scratch(cx);
            const float *qv = q + ((size_t)t * nh + h) * D;
            const int32_t g = h / group;
            const int64_t n = (int64_t)p->n_past + t + 1; /* causal: keys 0..n_past+t */
            for (int64_t j = 0; j < n; j++) scores[j] = cpu_dot(qv, kc + (size_t)j * row + (size_t)g * D, D) * p->scale;
            softmax_row(scores, n, p->mask ? p->mask + (size_t)t * (size_t)n_keys : NULL);
            weighted_sum(out + ((size_t)t * nh + h) * D, scores, vc + (size_t)g * D, row, n, D);
        }
    }
    return GLMOE_OK;
}
