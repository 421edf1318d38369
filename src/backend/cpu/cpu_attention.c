/*
 * cpu_attention.c — causal grouped-query attention over a float32 KV cache.
 *
 * For query t (absolute position n_past + t) and head h, reading KV head g = h / (nh / nkv):
 *   s_j = q·k_j * scale (+ mask[t, j])  for j <= n_past + t,   p = softmax(s),   o = Σ_j p_j v_j.
 * The softmax is computed with the running maximum subtracted, in float32 with a double sum.
 * Work is split over (token, head) pairs; each thread keeps its scores in its scratch slice, which
 * reserve() sized to the context length.
 */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

glmoe_status cpu_attention(gm_backend *be, float *out, const float *q, const float *k, const float *v,
                           gm_kv *kv, int32_t layer, const gm_attn_params *p, gm_err *err) {
    cpu_backend *cb = cpu_of(be);
    const int32_t T = p->n_tokens, nh = p->n_heads, nkv = p->n_kv_heads, D = p->head_dim;
    const int32_t group = nh / nkv;
    const int64_t n_keys = (int64_t)p->n_past + T;
    if (n_keys > kv->n_ctx)
        return gm_fail(err, GLMOE_E_CONTEXT, "attention: %lld positions exceed the cache of %d",
                       (long long)n_keys, kv->n_ctx);
    if ((size_t)n_keys > cb->thread_scratch_floats)
        return gm_fail(err, GLMOE_E_BACKEND, "attention: scratch too small for %lld keys", (long long)n_keys);

    const size_t row = (size_t)nkv * (size_t)D;                 /* floats per position */
    float *kc = kv->k + (size_t)layer * (size_t)kv->n_ctx * row;
    float *vc = kv->v + (size_t)layer * (size_t)kv->n_ctx * row;
    memcpy(kc + (size_t)p->n_past * row, k, (size_t)T * row * sizeof(float));
    memcpy(vc + (size_t)p->n_past * row, v, (size_t)T * row * sizeof(float));

#pragma omp parallel for num_threads(cb->n_threads) schedule(dynamic, 1) collapse(2) \
    if ((int64_t)T * nh * n_keys * D >= CPU_PARALLEL_MIN_WORK)
    for (int32_t t = 0; t < T; t++) {
        for (int32_t h = 0; h < nh; h++) {
            float *scores = cpu_thread_scratch(cb);
            const float *qv = q + ((size_t)t * nh + h) * D;
            const int32_t g = h / group;
            const int64_t n = (int64_t)p->n_past + t + 1; /* causal: keys 0..n_past+t */
            const float *mrow = p->mask ? p->mask + (size_t)t * (size_t)n_keys : NULL;
            float mx = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                const float *kj = kc + (size_t)j * row + (size_t)g * D;
                float s = 0;
                for (int32_t d = 0; d < D; d++) s += qv[d] * kj[d];
                s *= p->scale;
                if (mrow) s += mrow[j];
                scores[j] = s;
                if (s > mx) mx = s;
            }
            float *o = out + ((size_t)t * nh + h) * D;
            for (int32_t d = 0; d < D; d++) o[d] = 0;
            if (mx == -INFINITY) continue; /* every key masked: output zeros, as SDPA does */
            double sum = 0;
            for (int64_t j = 0; j < n; j++) {
                float e = expf(scores[j] - mx);
                scores[j] = e;
                sum += e;
            }
            float inv = (float)(1.0 / sum);
            for (int64_t j = 0; j < n; j++) {
                const float *vj = vc + (size_t)j * row + (size_t)g * D;
                float pj = scores[j] * inv;
                for (int32_t d = 0; d < D; d++) o[d] += pj * vj[d];
            }
        }
    }
    return GLMOE_OK;
}
