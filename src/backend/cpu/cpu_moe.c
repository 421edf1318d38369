/*
 * cpu_moe.c — the MoE router and the routed experts (spec §2.6), as transformers computes them.
 *
 * Router, per token, all float32:
 *   l = Wr·u;  s = sigmoid(l);  c = s + bias                         (bias only steers selection)
 *   groups (n_group > 1): group score = sum of the 2 largest c in the group; keep topk_group groups,
 *   experts of the others get c = -inf;  idx = top-K of c;  w = s[idx];
 *   if norm_topk_prob: w /= Σw + 1e-20;  w *= routed_scaling_factor;
 *   with the shared expert folded into the bank (gm_experts.shared): idx += [E], w += [1].
 * Ties in top-k go to the lower index. Every selection is a heap of the k best, O(E log K) per
 * token (config.c bounds E and K).
 *
 * Experts: rows are grouped by expert (a counting sort over the T*K assignments), each expert runs
 * its three matmuls over its group (GEMV or sgemm by group size, cpu_matmul decides), and the
 * weighted outputs are added back to their tokens.
 */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

/* True if candidate i beats j: a larger value, or an equal one at a lower index. NaN loses to
 * everything (it compares false), so a NaN score is chosen only when nothing else is left. */
static inline bool beats(const float *v, int32_t i, int32_t j) {
    return v[i] > v[j] || (v[i] == v[j] && i < j) || (v[i] == v[i] && v[j] != v[j]);
}

/* Restores the heap order below slot r of h[0..k): the root is the weakest kept candidate. */
static void sift_down(const float *v, int32_t *h, int32_t k, int32_t r) {
    for (;;) {
        int32_t w = r, a = 2 * r + 1, b = a + 1;
        if (a < k && beats(v, h[w], h[a])) w = a;
        if (b < k && beats(v, h[w], h[b])) w = b;
        if (w == r) return;
        int32_t t = h[r];
        h[r] = h[w];
        h[w] = t;
        r = w;
    }
}

/* Indices of the k best of v[0..n) into out, best first (ties to the lower index): a heap of the
 * k best seen so far, O(n log k), then sorted out of it, O(k log k). k <= n. */
static void top_k(const float *v, int32_t n, int32_t k, int32_t *out) {
    for (int32_t i = 0; i < k; i++) out[i] = i;
    for (int32_t r = k / 2 - 1; r >= 0; r--) sift_down(v, out, k, r);
    for (int32_t i = k; i < n; i++)
        if (beats(v, i, out[0])) {
            out[0] = i;
            sift_down(v, out, k, 0);
        }
    /* Heap sort: the weakest goes to the end each time, leaving the best first. */
    for (int32_t m = k - 1; m > 0; m--) {
        int32_t t = out[0];
        out[0] = out[m];
        out[m] = t;
        sift_down(v, out, m, 0);
    }
}

glmoe_status cpu_moe_route(gm_exec *ex, int32_t *idx, float *weights, const float *x,
                           const gm_weight *router, const gm_weight *bias, const gm_route_params *p,
                           int32_t T, gm_err *err) {
    cpu_exec *cx = cpu_exec_of(ex);
    const int32_t E = p->n_experts, K = p->top_k, H = (int32_t)router->cols;
    const int32_t per_group = E / p->n_group;
    const float *b = bias && bias->data ? bias->data : NULL;
    if ((size_t)3 * E + H + 64 > cx->thread_scratch_floats)
        return gm_fail(err, GLMOE_E_BACKEND, "moe_route: scratch too small for %d experts", E);
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) \
    if (T > 1 && (int64_t)T * E * H >= CPU_PARALLEL_MIN_WORK)
    for (int32_t t = 0; t < T; t++) {
        float *s = cpu_thread_scratch(cx), *c = s + E, *wrow = c + E;
        const float *u = x + (size_t)t * H;
        for (int32_t e = 0; e < E; e++) {
            gm_weight_row_f32(router, e, 0, H, wrow);
            float l = 0;
            for (int32_t i = 0; i < H; i++) l += u[i] * wrow[i];
            s[e] = 1.0f / (1.0f + expf(-l));
            c[e] = s[e] + (b ? b[e] : 0.0f);
        }
        if (p->n_group > 1) {
            float gscore[1024];
            int32_t keep[1024];
            int32_t ng = p->n_group < 1024 ? p->n_group : 1024;
            for (int32_t g = 0; g < ng; g++) {
                int32_t two[2];
                top_k(c + g * per_group, per_group, 2, two);
                gscore[g] = c[g * per_group + two[0]] + c[g * per_group + two[1]];
            }
            top_k(gscore, ng, p->topk_group, keep);
            for (int32_t g = 0; g < ng; g++) {
                bool kept = false;
                for (int32_t m = 0; m < p->topk_group; m++) kept |= keep[m] == g;
                if (!kept)
                    for (int32_t e = 0; e < per_group; e++) c[g * per_group + e] = -INFINITY;
            }
        }
        const int32_t stride = K + p->shared_expert;
        int32_t *ti = idx + (size_t)t * stride;
        float *tw = weights + (size_t)t * stride;
        top_k(c, E, K, ti);
        float sum = 0;
        for (int32_t j = 0; j < K; j++) {
            tw[j] = s[ti[j]];
            sum += tw[j];
        }
        for (int32_t j = 0; j < K; j++) {
            if (p->norm_topk_prob) tw[j] /= sum + 1e-20f;
            tw[j] *= p->routed_scaling_factor;
        }
        if (p->shared_expert) ti[K] = E, tw[K] = 1.0f;
    }
    return GLMOE_OK;
}

/* The bank's entry for the router's expert index e: e itself in a bank of every expert; with
 * expert parallelism (n_all), e - first for this rank's experts, the folded shared expert (index
 * n_all) last, -1 for another rank's. -2: an index outside the router's range (a bug). */
static inline int32_t bank_entry(const gm_experts *bank, int32_t e) {
    if (!bank->n_all) return e >= 0 && e < bank->n ? e : -2;
    if (e < 0 || e > bank->n_all || (e == bank->n_all && !bank->shared)) return -2;
    if (e == bank->n_all) return bank->n - 1;
    return e >= bank->first && e < bank->first + bank->n - bank->shared ? e - bank->first : -1;
}

glmoe_status cpu_moe_experts(gm_exec *ex, float *out, bool accumulate, const float *x, const int32_t *idx,
                             const float *weights, int32_t top_k_n, const gm_experts *bank, int32_t T,
                             gm_err *err) {
    cpu_exec *cx = cpu_exec_of(ex);
    const gm_weight *gate = bank->gate, *up = bank->up, *down = bank->down;
    const int32_t n_experts = bank->n;
    const int64_t H = down[0].rows, Im = gate[0].rows;
    const int64_t n_rows = (int64_t)T * top_k_n;
    if ((size_t)n_rows > cx->moe_rows_cap || (size_t)H > cx->moe_h_cap || (size_t)Im > cx->moe_im_cap ||
        (size_t)n_experts > cx->moe_experts_cap)
        return gm_fail(err, GLMOE_E_BACKEND,
                       "moe_experts: %lld rows of width %lld/%lld over %d experts exceed the reserved scratch",
                       (long long)n_rows, (long long)H, (long long)Im, n_experts);
    /* Counting sort of the (token, slot) assignments by expert; with expert parallelism
     * (bank->n_all) the router's indices are global and those of other ranks' experts are left
     * out (bank_entry -1). */
    int32_t *off = cx->moe_offsets, *fill = cx->moe_fill;
    memset(off, 0, ((size_t)n_experts + 1) * sizeof *off);
    int64_t n_kept = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        int32_t e = bank_entry(bank, idx[r]);
        if (e == -2) return gm_fail(err, GLMOE_E_BACKEND, "moe_experts: expert index %d out of range", idx[r]);
        if (e >= 0) off[e + 1]++, n_kept++;
    }
    for (int32_t e = 0; e < n_experts; e++) off[e + 1] += off[e];
    memcpy(fill, off, (size_t)n_experts * sizeof *fill);
    for (int64_t r = 0; r < n_rows; r++) {
        int32_t e = bank_entry(bank, idx[r]);
        if (e < 0) continue;
        int32_t slot = fill[e]++;
        cx->moe_rows[slot] = (int32_t)(r / top_k_n);
        cx->moe_w[slot] = weights[r];
        memcpy(cx->moe_x + (size_t)slot * H, x + (size_t)(r / top_k_n) * H, (size_t)H * sizeof(float));
    }
    glmoe_status s;
    for (int32_t e = 0; e < n_experts; e++) {
        int32_t n = off[e + 1] - off[e];
        if (n == 0) continue;
        const float *xe = cx->moe_x + (size_t)off[e] * H;
        float *g = cx->moe_gate + (size_t)off[e] * Im, *u = cx->moe_up + (size_t)off[e] * Im;
        float *o = cx->moe_out + (size_t)off[e] * H;
        if ((s = cpu_matmul(ex, g, xe, &gate[e], NULL, n, err))) return s;
        if ((s = cpu_matmul(ex, u, xe, &up[e], NULL, n, err))) return s;
        if ((s = cpu_swiglu(ex, g, g, u, (int64_t)n * Im, err))) return s;
        if ((s = cpu_matmul(ex, o, g, &down[e], NULL, n, err))) return s;
    }
    if (!accumulate) memset(out, 0, (size_t)T * (size_t)H * sizeof(float));
    /* Weighted sum back into the tokens. */
    for (int64_t r = 0; r < n_kept; r++) {
        float w = cx->moe_w[r];
        float *dst = out + (size_t)cx->moe_rows[r] * H;
        const float *src = cx->moe_out + (size_t)r * H;
        for (int64_t i = 0; i < H; i++) dst[i] += w * src[i];
    }
    return GLMOE_OK;
}
