/*
 * bench_ops.c — per-op times of `glmoe bench`: every op the forward calls, run alone at the
 * model's shapes, on a backend of its own with synthetic weights and random activations.
 *
 * The shapes and names are those of tools/bench/peer_transformers.py, so that the two tables
 * line up: each op at T = 1 (a decode step) and T = prefill_tokens (512), attention causal and
 * with an additive mask at T = 512 from an empty cache, and decode attention (T = 1) over a
 * cache of each context. Time per call: the op is queued n times and the backend synced, n
 * grown until a batch takes min_seconds; the median of three batches. A queued op costs its
 * launch too: this is how the forward runs when it is not replayed as a graph.
 *
 * With --quantize, the weights the model quantizes get affine cases at that format (made by the
 * backend's weight_synthetic_affine, as the model's are): the dense GEMVs of q_proj, k_proj (v_proj
 * is the same shape), o_proj and the shared expert's gate (up: the same) and down at T = 1, the
 * routed experts at T = 1 (top-k chosen by the router), and the prefill GEMMs of q_proj and the
 * experts at T = prefill_tokens. Each reports GB/s over the fewest bytes the op must read, its
 * weights' codes, scales and biases (the experts: those of the distinct experts chosen), and that
 * as a fraction of the probe's copy bandwidth; activations are left out (a few KB at T = 1).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "bench/bench.h"
#include "model/model.h"
#include "cli.h"
#include "util/synthetic.h"

typedef enum op_kind {
    OP_ADD_RMSNORM,
    OP_MATMUL_QKV,
    OP_MATMUL_O,
    OP_ROPE,
    OP_ATTN_CAUSAL,
    OP_ATTN_MASKED,
    OP_ATTN_DECODE,
    OP_SWIGLU,
    OP_MOE_ROUTE,
    OP_MOE_EXPERTS,
    OP_DENSE_MLP,
    OP_AFFINE_MATMUL,   /* env.cur: one quantized matmul */
    OP_AFFINE_EXPERTS,  /* env.abank */
} op_kind;

static const char *const k_op_names[] = {"add_rmsnorm", "matmul_qkv", "matmul_o",   "rope",
                                         "attn_causal", "attn_masked", "attn_decode", "swiglu",
                                         "moe_route",   "moe_experts", "dense_mlp",  "affine_matmul",
                                         "affine_experts"};

typedef struct env {
    const gm_config *c;
    gm_backend *be;
    gm_exec *ex;
    gm_err err;
    int32_t n_batch, n_ctx;
    gm_kv *kv;
    /* weights of one layer */
    gm_weight norm, wq, wk, wv, wo, bq, bk, bv, gate, up, down, router, router_bias;
    gm_experts bank;
    /* activations [n_batch, ...] */
    float *x, *resid, *out, *q, *k, *v, *attn, *ga, *gb, *route_w, *mask;
    int32_t *pos, *route_idx;
    void *allocs[32];
    int n_allocs;
    /* the affine cases (bench_ops_opts.quantize): the quantized weights of one layer */
    gm_weight aq, ak, ao, ash_gate, ash_down;
    gm_experts abank;
    const gm_weight *cur;          /* OP_AFFINE_MATMUL's weight, input and output */
    const float *cur_x;
    float *cur_out;
} env;

static glmoe_status alloc_random(env *e, void **p, size_t n, uint64_t seed) {
    glmoe_status s = e->be->ops->alloc(e->be, n * sizeof(float), p, &e->err);
    if (s) return s;
    e->allocs[e->n_allocs++] = *p;
    float *h = malloc(n * sizeof(float));
    if (!h) return gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) h[i] = gm_synthetic_value(seed, i, 0.0f, 1.0f);
    s = e->be->ops->copy_in(e->ex, *p, h, n * sizeof(float), &e->err);
    free(h);
    return s;
}

static glmoe_status weight(env *e, gm_weight *w, gm_wtype t, int64_t rows, int64_t cols, uint64_t seed, float mean,
                           float std) {
    size_t bytes;
    return e->be->ops->weight_synthetic(e->be, w, t, rows, cols, seed, mean, std, &bytes, &e->err);
}

static glmoe_status setup(env *e) {
    const gm_config *c = e->c;
    const int64_t H = c->hidden_size, D = c->head_dim, QD = (int64_t)c->n_heads * D, KD = (int64_t)c->n_kv_heads * D;
    const int64_t I = c->intermediate_size, Im = c->moe_intermediate_size, E = c->n_experts, T = e->n_batch;
    const int64_t wide = I > QD ? I : QD;
    glmoe_status s;
    const gm_exec_sizes z = model_exec_sizes(c, e->n_batch, e->n_ctx);
    if ((s = e->be->ops->exec_create(e->be, &z, &e->ex, &e->err))) return s;
    if ((s = e->be->ops->kv_create(e->be, &e->kv, 1, e->n_ctx, c->n_kv_heads, (int32_t)D, &e->err))) return s;
    uint64_t seed = 1;
    if ((s = weight(e, &e->norm, GM_W_F32, 1, H, seed++, 1.0f, 0.1f)) || (s = weight(e, &e->wq, GM_W_BF16, QD, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->wk, GM_W_BF16, KD, H, seed++, 0, 0.02f)) || (s = weight(e, &e->wv, GM_W_BF16, KD, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->wo, GM_W_BF16, H, QD, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->gate, GM_W_BF16, I, H, seed++, 0, 0.02f)) || (s = weight(e, &e->up, GM_W_BF16, I, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->down, GM_W_BF16, H, I, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->router, GM_W_BF16, E, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->router_bias, GM_W_F32, 1, E, seed++, 0, 0.001f)))
        return s;
    if (c->attention_bias &&
        ((s = weight(e, &e->bq, GM_W_F32, 1, QD, seed++, 0, 0.02f)) || (s = weight(e, &e->bk, GM_W_F32, 1, KD, seed++, 0, 0.02f)) ||
         (s = weight(e, &e->bv, GM_W_F32, 1, KD, seed++, 0, 0.02f))))
        return s;
    gm_experts *b = &e->bank;
    b->gate = calloc((size_t)E, sizeof(gm_weight));
    b->up = calloc((size_t)E, sizeof(gm_weight));
    b->down = calloc((size_t)E, sizeof(gm_weight));
    if (!b->gate || !b->up || !b->down) return gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    b->n = (int32_t)E;
    for (int64_t i = 0; i < E; i++)
        if ((s = weight(e, &b->gate[i], GM_W_BF16, Im, H, seed++, 0, 0.02f)) ||
            (s = weight(e, &b->up[i], GM_W_BF16, Im, H, seed++, 0, 0.02f)) ||
            (s = weight(e, &b->down[i], GM_W_BF16, H, Im, seed++, 0, 0.02f)))
            return s;
    if (e->be->ops->prepare_experts && (s = e->be->ops->prepare_experts(e->be, b, &e->err))) return s;
    void **acts[] = {(void **)&e->x, (void **)&e->resid, (void **)&e->out, (void **)&e->q, (void **)&e->k,
                     (void **)&e->v, (void **)&e->attn, (void **)&e->ga, (void **)&e->gb, (void **)&e->route_w};
    size_t sizes[] = {T * H, T * H, T * H, T * QD, T * KD, T * KD, T * QD, T * wide, T * wide, T * c->n_experts_per_tok};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if ((s = alloc_random(e, acts[i], (size_t)sizes[i], 100 + i))) return s;
    /* the additive mask: about 10% of the keys hidden, never a query's own */
    float *m = malloc((size_t)T * T * sizeof(float));
    if (!m) return gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < T * T; i++)
        m[i] = (i / T != i % T && gm_splitmix64((uint64_t)i) % 10 == 0) ? -INFINITY : 0.0f;
    if (!(s = e->be->ops->alloc(e->be, (size_t)T * T * sizeof(float), (void **)&e->mask, &e->err))) {
        e->allocs[e->n_allocs++] = e->mask;
        s = e->be->ops->copy_in(e->ex, e->mask, m, (size_t)T * T * sizeof(float), &e->err);
    }
    free(m);
    if (!s && !(s = e->be->ops->alloc(e->be, (size_t)T * sizeof(int32_t) * 2, (void **)&e->pos, &e->err)))
        e->allocs[e->n_allocs++] = e->pos;
    if (!s && !(s = e->be->ops->alloc(e->be, (size_t)T * c->n_experts_per_tok * sizeof(int32_t), (void **)&e->route_idx,
                                      &e->err)))
        e->allocs[e->n_allocs++] = e->route_idx;
    return s;
}

static void teardown(env *e) {
    if (!e->be) return;
    gm_weight *ws[] = {&e->norm, &e->wq, &e->wk, &e->wv, &e->wo, &e->bq, &e->bk, &e->bv,
                       &e->gate, &e->up, &e->down, &e->router, &e->router_bias};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        if (ws[i]->owned) e->be->ops->weight_release(e->be, ws[i]);
    gm_weight *as[] = {&e->aq, &e->ak, &e->ao, &e->ash_gate, &e->ash_down};
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++)
        if (as[i]->owned) e->be->ops->weight_release(e->be, as[i]);
    gm_experts *banks[] = {&e->bank, &e->abank};
    for (int k = 0; k < 2; k++) {
        gm_experts *b = banks[k];
        if (e->be->ops->release_experts) e->be->ops->release_experts(e->be, b);
        for (int i = 0; b->gate && i < b->n; i++) {
            if (b->gate[i].owned) e->be->ops->weight_release(e->be, &b->gate[i]);
            if (b->up[i].owned) e->be->ops->weight_release(e->be, &b->up[i]);
            if (b->down[i].owned) e->be->ops->weight_release(e->be, &b->down[i]);
        }
        free(b->gate);
        free(b->up);
        free(b->down);
    }
    for (int i = 0; i < e->n_allocs; i++) e->be->ops->dealloc(e->be, e->allocs[i]);
    if (e->kv) e->be->ops->kv_free(e->be, e->kv);
    if (e->ex) e->be->ops->exec_free(e->ex);
    e->be->ops->free(e->be);
    e->be = NULL;
}

static glmoe_status set_positions(env *e, int32_t first, int32_t T) {
    int32_t *p = malloc((size_t)T * sizeof(int32_t));
    if (!p) return gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    for (int32_t i = 0; i < T; i++) p[i] = first + i;
    glmoe_status s = e->be->ops->copy_in(e->ex, e->pos, p, (size_t)T * sizeof(int32_t), &e->err);
    free(p);
    return s;
}

static gm_attn_params attn_params(const env *e, int32_t T, int32_t n_past, const float *mask) {
    const gm_config *c = e->c;
    return (gm_attn_params){.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
                            .n_tokens = T, .n_past = n_past, .scale = 1.0f / sqrtf((float)c->head_dim),
                            .mask = mask};
}

/* Queues op k once. */
static glmoe_status run_op(env *e, op_kind k, int32_t T, int32_t ctx) {
    const gm_config *c = e->c;
    const gm_backend_ops *o = e->be->ops;
    const int64_t H = c->hidden_size, I = c->intermediate_size;
    glmoe_status s;
    switch (k) {
    case OP_ADD_RMSNORM:
        return o->add_rmsnorm(e->ex, e->out, e->resid, e->x, &e->norm, T, H, c->rms_norm_eps, &e->err);
    case OP_MATMUL_QKV:
        if ((s = o->matmul(e->ex, e->q, e->x, &e->wq, &e->bq, T, &e->err))) return s;
        if ((s = o->matmul(e->ex, e->k, e->x, &e->wk, &e->bk, T, &e->err))) return s;
        return o->matmul(e->ex, e->v, e->x, &e->wv, &e->bv, T, &e->err);
    case OP_MATMUL_O:
        return o->matmul(e->ex, e->out, e->attn, &e->wo, NULL, T, &e->err);
    case OP_ROPE:
        if ((s = o->rope(e->ex, e->q, e->pos, T, c->n_heads, c->head_dim, c->rotary_dim, c->rope_theta, &e->err)))
            return s;
        return o->rope(e->ex, e->k, e->pos, T, c->n_kv_heads, c->head_dim, c->rotary_dim, c->rope_theta, &e->err);
    case OP_ATTN_CAUSAL: {
        gm_attn_params p = attn_params(e, T, 0, NULL);
        return o->attention(e->ex, e->attn, e->q, e->k, e->v, e->kv, 0, &p, &e->err);
    }
    case OP_ATTN_MASKED: {
        gm_attn_params p = attn_params(e, T, 0, e->mask);
        return o->attention(e->ex, e->attn, e->q, e->k, e->v, e->kv, 0, &p, &e->err);
    }
    case OP_ATTN_DECODE: {
        gm_attn_params p = attn_params(e, 1, ctx - 1, NULL);
        return o->attention(e->ex, e->attn, e->q, e->k, e->v, e->kv, 0, &p, &e->err);
    }
    case OP_SWIGLU:
        return o->swiglu(e->ex, e->ga, e->ga, e->gb, (int64_t)T * I, &e->err);
    case OP_MOE_ROUTE: {
        gm_route_params rp = {.n_experts = c->n_experts, .top_k = c->n_experts_per_tok, .n_group = c->n_group,
                              .topk_group = c->topk_group, .norm_topk_prob = c->norm_topk_prob,
                              .routed_scaling_factor = c->routed_scaling_factor};
        return o->moe_route(e->ex, e->route_idx, e->route_w, e->x, &e->router, &e->router_bias, &rp, T, &e->err);
    }
    case OP_MOE_EXPERTS:
        return o->moe_experts(e->ex, e->out, false, e->x, e->route_idx, e->route_w, c->n_experts_per_tok, &e->bank, T,
                              &e->err);
    case OP_DENSE_MLP:
        if ((s = o->matmul(e->ex, e->ga, e->x, &e->gate, NULL, T, &e->err))) return s;
        if ((s = o->matmul(e->ex, e->gb, e->x, &e->up, NULL, T, &e->err))) return s;
        if ((s = o->swiglu(e->ex, e->ga, e->ga, e->gb, (int64_t)T * I, &e->err))) return s;
        return o->matmul(e->ex, e->out, e->ga, &e->down, NULL, T, &e->err);
    case OP_AFFINE_MATMUL:
        return o->matmul(e->ex, e->cur_out, e->cur_x, e->cur, NULL, T, &e->err);
    case OP_AFFINE_EXPERTS:
        return o->moe_experts(e->ex, e->out, false, e->x, e->route_idx, e->route_w, c->n_experts_per_tok, &e->abank, T,
                              &e->err);
    }
    return GLMOE_E_ARG;
}

/* Seconds per call of op k: the median of three batches of n calls. */
static glmoe_status time_op(env *e, op_kind k, int32_t T, int32_t ctx, double min_seconds, double *ms) {
    glmoe_status s;
    for (int i = 0; i < 2; i++)
        if ((s = run_op(e, k, T, ctx))) return s;
    if ((s = e->be->ops->sync(e->ex, &e->err))) return s;
    long n = 1;
    double batch[3];
    for (int b = 0; b < 3; b++) {
        for (;;) {
            double t0 = cli_now();
            for (long i = 0; i < n; i++)
                if ((s = run_op(e, k, T, ctx))) return s;
            if ((s = e->be->ops->sync(e->ex, &e->err))) return s;
            double t = cli_now() - t0;
            if (b > 0 || t >= min_seconds || n >= 100000) {
                batch[b] = t / (double)n;
                break;
            }
            n = t > 0 ? (long)(n * fmin(100.0, 1.2 * min_seconds / t)) + 1 : n * 100;
        }
    }
    *ms = bench_median(batch, 3) * 1e3;
    return GLMOE_OK;
}

/* Fills the cache's positions [0, n) with keys and values, as a prefill would. */
static glmoe_status fill_cache(env *e, int32_t n) {
    const gm_backend_ops *o = e->be->ops;
    for (int32_t done = 0; done < n;) {
        int32_t T = n - done < e->n_batch ? n - done : e->n_batch;
        gm_attn_params p = attn_params(e, T, done, NULL);
        glmoe_status s = o->attention(e->ex, e->attn, e->q, e->k, e->v, e->kv, 0, &p, &e->err);
        if (s) return s;
        done += T;
    }
    return e->be->ops->sync(e->ex, &e->err);
}

static bool record(env *e, json_t *ops, op_kind k, int32_t T, int32_t ctx, double min_seconds) {
    double ms = 0;
    glmoe_status s = GLMOE_OK;
    if (k == OP_ROPE) s = set_positions(e, T == 1 ? 2047 : 0, T);
    if (!s && k == OP_MOE_EXPERTS) s = run_op(e, OP_MOE_ROUTE, T, 0); /* the router's own choices */
    if (!s) s = time_op(e, k, T, ctx, min_seconds, &ms);
    if (s) return false;
    json_array_append_new(ops, json_pack("{s:s, s:i, s:i, s:f}", "op", k_op_names[k], "tokens", T, "context", ctx, "ms", ms));
    printf("  %-12s T=%-5d ctx=%-6d %10.4f ms\n", k_op_names[k], T, ctx, ms);
    fflush(stdout);
    return true;
}

/* ---- the affine cases ---------------------------------------------------------------------- */

/* A quantized [rows, cols] weight of format q, or a dense one left empty (data NULL) when the
 * group does not divide cols: the model keeps such a weight in bf16, so it has no affine case. */
static glmoe_status affine_weight(env *e, gm_weight *w, const gm_affine *q, int64_t rows, int64_t cols, uint64_t seed) {
    memset(w, 0, sizeof *w);
    if (cols % q->group) return GLMOE_OK;
    size_t bytes;
    return e->be->ops->weight_synthetic_affine(e->be, w, q, rows, cols, seed, 0.0f, 0.02f, &bytes, &e->err);
}

static glmoe_status affine_setup(env *e, const gm_affine *q) {
    const gm_config *c = e->c;
    const int64_t H = c->hidden_size, QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t Im = c->moe_intermediate_size, Is = Im * c->n_shared_experts, E = c->n_experts;
    uint64_t seed = 1000;
    glmoe_status s;
    if ((s = affine_weight(e, &e->aq, q, QD, H, seed++)) || (s = affine_weight(e, &e->ak, q, KD, H, seed++)) ||
        (s = affine_weight(e, &e->ao, q, H, QD, seed++)))
        return s;
    if (Is > 0 && ((s = affine_weight(e, &e->ash_gate, q, Is, H, seed++)) ||
                   (s = affine_weight(e, &e->ash_down, q, H, Is, seed++))))
        return s;
    if (E == 0 || H % q->group || Im % q->group) return GLMOE_OK; /* the experts stay bf16 */
    gm_experts *b = &e->abank;
    b->gate = calloc((size_t)E, sizeof(gm_weight));
    b->up = calloc((size_t)E, sizeof(gm_weight));
    b->down = calloc((size_t)E, sizeof(gm_weight));
    if (!b->gate || !b->up || !b->down) return gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    b->n = (int32_t)E;
    for (int64_t i = 0; i < E; i++)
        if ((s = affine_weight(e, &b->gate[i], q, Im, H, seed++)) || (s = affine_weight(e, &b->up[i], q, Im, H, seed++)) ||
            (s = affine_weight(e, &b->down[i], q, H, Im, seed++)))
            return s;
    if (e->be->ops->prepare_experts && (s = e->be->ops->prepare_experts(e->be, b, &e->err))) return s;
    return GLMOE_OK;
}

/* Bytes of the distinct experts the router chose for T tokens (their three projections each). */
static glmoe_status chosen_expert_bytes(env *e, int32_t T, double *bytes) {
    const int32_t K = e->c->n_experts_per_tok, E = e->abank.n;
    int32_t *idx = malloc((size_t)T * K * sizeof(int32_t));
    bool *seen = calloc((size_t)E, 1);
    glmoe_status s = idx && seen ? e->be->ops->copy_out(e->ex, idx, e->route_idx, (size_t)T * K * sizeof(int32_t), &e->err)
                                 : gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    *bytes = 0;
    for (int32_t i = 0; !s && i < T * K; i++)
        if (idx[i] >= 0 && idx[i] < E && !seen[idx[i]]) {
            seen[idx[i]] = true;
            *bytes += (double)(gm_weight_bytes(&e->abank.gate[idx[i]]) + gm_weight_bytes(&e->abank.up[idx[i]]) +
                               gm_weight_bytes(&e->abank.down[idx[i]]));
        }
    free(idx);
    free(seen);
    return s;
}

/* One affine case: op k (the matmul of w from x to out, or the experts) at T tokens. */
static bool record_affine(env *e, json_t *ops, const bench_ops_opts *o, const char *name, op_kind k, const gm_weight *w,
                          const float *x, float *out, int32_t T) {
    if (k == OP_AFFINE_MATMUL && !w->data) return true; /* kept in bf16 by the model */
    if (k == OP_AFFINE_EXPERTS && !e->abank.n) return true;
    e->cur = w;
    e->cur_x = x;
    e->cur_out = out;
    double ms = 0, bytes = k == OP_AFFINE_MATMUL ? (double)gm_weight_bytes(w) : 0;
    glmoe_status s = k == OP_AFFINE_EXPERTS ? run_op(e, OP_MOE_ROUTE, T, 0) : GLMOE_OK;
    if (!s && k == OP_AFFINE_EXPERTS) s = chosen_expert_bytes(e, T, &bytes);
    if (!s) s = time_op(e, k, T, 0, o->min_seconds, &ms);
    if (s) return false;
    const double gbs = bytes / (ms * 1e-3) / 1e9, pct = o->copy_gb_s > 0 ? 100 * gbs / o->copy_gb_s : 0;
    char fmt[16];
    snprintf(fmt, sizeof fmt, "q%d g%d", o->quantize.bits, o->quantize.group_size);
    json_array_append_new(ops, json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f}", "op", k_op_names[k], "weight",
                                         name, "format", fmt, "tokens", T, "context", 0, "ms", ms, "bytes", bytes,
                                         "gb_s", gbs, "bw_pct", pct));
    if (k == OP_AFFINE_MATMUL)
        printf("  %-7s %-14s T=%-5d [%lld x %lld] %10.4f ms %8.0f GB/s %6.1f%% of copy\n", fmt, name, T,
               (long long)w->rows, (long long)w->cols, ms, gbs, pct);
    else
        printf("  %-7s %-14s T=%-5d %.2f MB of chosen experts %10.4f ms %8.0f GB/s %6.1f%% of copy\n", fmt, name, T,
               bytes / 1e6, ms, gbs, pct);
    fflush(stdout);
    return true;
}

static bool run_affine(env *e, json_t *ops, const bench_ops_opts *o) {
    const gm_affine q = {o->quantize.bits, o->quantize.group_size ? o->quantize.group_size : 64, GM_W_BF16};
    const gm_weight format = {.type = GM_W_AFFINE, .q = q};
    char name[48];
    if (!e->be->ops->weight_synthetic_affine || (e->be->ops->supports && !e->be->ops->supports(e->be, &format))) {
        printf("  (no affine cases: the %s backend does not run %s weights)\n", e->be->ops->name,
               gm_weight_format_name(&format, name, sizeof name));
        return true;
    }
    if (affine_setup(e, &q)) return false;
    const int32_t P = o->prefill_tokens;
    printf("\n  affine weights: GB/s over their codes, scales and biases\n");
    return record_affine(e, ops, o, "q_proj", OP_AFFINE_MATMUL, &e->aq, e->x, e->q, 1) &&
           record_affine(e, ops, o, "k_proj/v_proj", OP_AFFINE_MATMUL, &e->ak, e->x, e->k, 1) &&
           record_affine(e, ops, o, "o_proj", OP_AFFINE_MATMUL, &e->ao, e->attn, e->out, 1) &&
           record_affine(e, ops, o, "shared gate/up", OP_AFFINE_MATMUL, &e->ash_gate, e->x, e->ga, 1) &&
           record_affine(e, ops, o, "shared down", OP_AFFINE_MATMUL, &e->ash_down, e->ga, e->out, 1) &&
           record_affine(e, ops, o, "experts", OP_AFFINE_EXPERTS, NULL, NULL, NULL, 1) &&
           record_affine(e, ops, o, "q_proj", OP_AFFINE_MATMUL, &e->aq, e->x, e->q, P) &&
           record_affine(e, ops, o, "experts", OP_AFFINE_EXPERTS, NULL, NULL, NULL, P);
}

static glmoe_status create_backend(const bench_ops_opts *o, gm_backend **be, gm_err *err) {
    if (!strcmp(o->backend, "cuda")) return gm_backend_create(be, GLMOE_DEVICE_CUDA, 0, err);
    if (!strcmp(o->backend, "cpu")) return gm_backend_create(be, GLMOE_DEVICE_CPU, o->n_threads, err);
    return gm_fail(err, GLMOE_E_UNSUPPORTED, "no backend \"%s\"", o->backend);
}

bool bench_ops_run(const gm_config *cfg, const bench_ops_opts *o, json_t *ops, char *err, size_t err_len) {
    env e = {.c = cfg, .n_batch = o->prefill_tokens};
    int32_t max_ctx = e.n_batch;
    for (int i = 0; i < o->n_contexts; i++)
        if (o->contexts[i] > max_ctx) max_ctx = o->contexts[i];
    e.n_ctx = max_ctx + e.n_batch;
    bool ok = !create_backend(o, &e.be, &e.err) && !setup(&e);
    const int32_t Ts[] = {1, o->prefill_tokens};
    const op_kind per_T[] = {OP_ADD_RMSNORM, OP_MATMUL_QKV, OP_MATMUL_O, OP_ROPE, OP_SWIGLU,
                             OP_MOE_ROUTE,   OP_MOE_EXPERTS, OP_DENSE_MLP};
    for (size_t t = 0; ok && t < 2; t++)
        for (size_t i = 0; ok && i < sizeof per_T / sizeof per_T[0]; i++)
            ok = record(&e, ops, per_T[i], Ts[t], 0, o->min_seconds);
    ok = ok && record(&e, ops, OP_ATTN_CAUSAL, o->prefill_tokens, o->prefill_tokens, o->min_seconds) &&
         record(&e, ops, OP_ATTN_MASKED, o->prefill_tokens, o->prefill_tokens, o->min_seconds);
    if (ok && fill_cache(&e, max_ctx)) ok = false;
    for (int i = 0; ok && i < o->n_contexts; i++) ok = record(&e, ops, OP_ATTN_DECODE, 1, o->contexts[i], o->min_seconds);
    if (ok && o->quantize.bits) ok = run_affine(&e, ops, o);
    if (!ok) snprintf(err, err_len, "per-op timing: %s", e.err.msg);
    teardown(&e);
    return ok;
}
