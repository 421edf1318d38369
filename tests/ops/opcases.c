/*
 * opcases.c — the op-case table (opcases.h): every op the forward calls, at one model's shapes,
 * run alone, in timing mode (`glmoe bench`'s per-op times) or in correctness mode (test_ops,
 * against the float64 reference). One description of each case serves both modes: the weights
 * and buffers it needs (setup), the backend calls it makes (run_op), and what it reads and
 * writes (check_case compares exactly what run_op produced).
 *
 * The table (k_cases, k_affine_cases) follows tools/bench/peer_transformers.py, so that the two
 * tables of timings line up: each op at T = 1 (a decode step) and T = prefill_tokens, attention
 * causal and with an additive mask at T = prefill_tokens from an empty cache, and decode attention
 * (T = 1) over a cache of each context. With a quantized format, the weights the model quantizes
 * get affine cases (made as the model's are): the dense GEMVs of q_proj, k_proj (v_proj is the same
 * shape), o_proj and the shared expert's gate (up: the same) and down at T = 1, the routed experts
 * at T = 1 (top-k chosen by the router), and the prefill GEMMs of q_proj and the experts at T =
 * prefill_tokens.
 *
 * Timing: weights synthetic, made on the device by the backend (weight_synthetic, _affine: a
 * GPU needs no host copy of GLM-4.5-Air's experts); activations random. Each case is queued n
 * times and the backend synced, n grown until a batch takes min_seconds; the median of three
 * batches. A queued op costs its launch too: this is how the forward runs when it is not replayed
 * as a graph. The affine cases report GB/s over the fewest bytes the op must read, its weights'
 * codes, scales and biases (the experts: those of the distinct experts chosen); activations are
 * left out (a few KB at T = 1).
 *
 * Correctness: the same cases at a small shape; weights random host matrices bound through
 * weight_bind (harness.c), inputs fresh random values before each case, outputs poisoned and
 * guarded, compared with tests/ops/reference.c at the tolerances of checks.h (the attention's
 * ops_tol_attention, the affine ones' ops_tol_affine_*). Decode attention is checked against a
 * host copy of what every earlier call wrote into the cache.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "backend/formats.h"
#include "model/model.h"
#include "ops/checks.h"
#include "ops/opcases.h"
#include "util/synthetic.h"

double ops_tol_attention = TOL_ATTENTION;

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

/* Which T and context a case runs at. */
typedef enum { AT_ONE, AT_PREFILL, AT_EACH_CONTEXT } case_at;

/* The table, in the order it runs (the decode cases after the cache is filled). */
static const struct {
    op_kind kind;
    case_at at;
} k_cases[] = {
    {OP_ADD_RMSNORM, AT_ONE},     {OP_MATMUL_QKV, AT_ONE},     {OP_MATMUL_O, AT_ONE},     {OP_ROPE, AT_ONE},
    {OP_SWIGLU, AT_ONE},          {OP_MOE_ROUTE, AT_ONE},      {OP_MOE_EXPERTS, AT_ONE},  {OP_DENSE_MLP, AT_ONE},
    {OP_ADD_RMSNORM, AT_PREFILL}, {OP_MATMUL_QKV, AT_PREFILL}, {OP_MATMUL_O, AT_PREFILL}, {OP_ROPE, AT_PREFILL},
    {OP_SWIGLU, AT_PREFILL},      {OP_MOE_ROUTE, AT_PREFILL},  {OP_MOE_EXPERTS, AT_PREFILL},
    {OP_DENSE_MLP, AT_PREFILL},   {OP_ATTN_CAUSAL, AT_PREFILL}, {OP_ATTN_MASKED, AT_PREFILL},
    {OP_ATTN_DECODE, AT_EACH_CONTEXT},
};

/* The affine cases: which quantized weight, from which input to which output. */
typedef enum { W_Q, W_K, W_O, W_SHARED_GATE, W_SHARED_DOWN, W_EXPERTS } affine_slot;
typedef enum { BUF_X, BUF_Q, BUF_K, BUF_ATTN, BUF_OUT, BUF_GA } buf_slot;
static const struct {
    const char *name;
    affine_slot w;
    buf_slot x, out;
    case_at at;
} k_affine_cases[] = {
    {"q_proj", W_Q, BUF_X, BUF_Q, AT_ONE},
    {"k_proj/v_proj", W_K, BUF_X, BUF_K, AT_ONE},
    {"o_proj", W_O, BUF_ATTN, BUF_OUT, AT_ONE},
    {"shared gate/up", W_SHARED_GATE, BUF_X, BUF_GA, AT_ONE},
    {"shared down", W_SHARED_DOWN, BUF_GA, BUF_OUT, AT_ONE},
    {"experts", W_EXPERTS, BUF_X, BUF_OUT, AT_ONE},
    {"q_proj", W_Q, BUF_X, BUF_Q, AT_PREFILL},
    {"experts", W_EXPERTS, BUF_X, BUF_OUT, AT_PREFILL},
};

typedef struct env {
    gm_config c;          /* the shape, as the fields model_exec_sizes reads */
    gm_backend *be;
    gm_exec *ex;
    gm_err err;
    ops_ctx *oc;          /* correctness mode: the harness that owns weights and buffers; NULL: timing */
    int32_t n_batch, n_ctx;
    gm_kv *kv;
    /* weights of one layer; hosts: the same as the reference reads them (correctness mode) */
    gm_weight norm, wq, wk, wv, wo, bq, bk, bv, gate, up, down, router, router_bias;
    ops_host_matrix *h_norm, *h_wq, *h_wk, *h_wv, *h_wo, *h_bq, *h_bk, *h_bv, *h_gate, *h_up, *h_down, *h_router,
        *h_router_bias;
    gm_experts bank;
    ref_matrix *r_gate, *r_up, *r_down; /* the bank's experts, [n] */
    /* activations [n_batch, ...] */
    float *x, *resid, *out, *q, *k, *v, *attn, *ga, *gb, *route_w, *mask;
    float *mask_host;
    int32_t *pos, *route_idx;
    void *allocs[32];
    int n_allocs;
    /* correctness mode: every buffer's length (its guard follows), to read a case's rows back */
    struct { const void *p; size_t n; } lens[16];
    int n_lens;
    /* the affine cases: the quantized weights of one layer */
    gm_affine aq_format;
    gm_weight aq, ak, ao, ash_gate, ash_down;
    ref_matrix r_aq, r_ak, r_ao, r_ash_gate, r_ash_down;
    gm_experts abank;
    ref_matrix *r_agate, *r_aup, *r_adown;
    const gm_weight *cur;          /* OP_AFFINE_MATMUL's weight, input and output */
    const ref_matrix *cur_ref;
    const float *cur_x;
    float *cur_out;
    /* correctness mode: what the cache holds, [n_ctx, n_kv_heads * head_dim] */
    float *cache_k, *cache_v;
} env;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- building a case's weights and buffers ----------------------------------------------------- */

static glmoe_status alloc_random(env *e, void **p, size_t n, uint64_t seed) {
    if (e->oc) { /* poisoned, with a guard; filled by each case */
        *p = ops_upload_f(e->oc, NULL, n);
        e->lens[e->n_lens].p = *p, e->lens[e->n_lens++].n = n;
        return GLMOE_OK;
    }
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

static glmoe_status alloc_ints(env *e, int32_t **p, size_t n) {
    if (e->oc) {
        *p = ops_upload_i(e->oc, NULL, n);
        e->lens[e->n_lens].p = *p, e->lens[e->n_lens++].n = n;
        return GLMOE_OK;
    }
    glmoe_status s = e->be->ops->alloc(e->be, n * sizeof(int32_t), (void **)p, &e->err);
    if (!s) e->allocs[e->n_allocs++] = *p;
    return s;
}

/* A float weight: synthetic on the device (timing), or random host values bound through
 * weight_bind (correctness; *h receives them, a vector [1, cols] bound as one). */
static glmoe_status weight(env *e, gm_weight *w, ops_host_matrix **h, gm_wtype t, int64_t rows, int64_t cols,
                           uint64_t seed, float mean, float std) {
    if (!e->oc) {
        size_t bytes;
        return e->be->ops->weight_synthetic(e->be, w, t, rows, cols, seed, mean, std, &bytes, &e->err);
    }
    /* magnitudes of the model's: norms about 1, matrices small enough that activations stay O(1) */
    const double scale = mean != 0 ? 1.5 : rows == 1 ? 0.5 : 0.3;
    ops_host_matrix *m = ops_host_matrix_new(e->oc, t == GM_W_F32 ? REF_F32 : REF_BF16, rows, cols, scale, false);
    gm_weight *b = ops_bind(e->oc, m, rows == 1 ? GM_BIND_VECTOR_F32 : GM_BIND_MATRIX);
    if (!b) return gm_fail(&e->err, GLMOE_E_BACKEND, "weight_bind of a %lldx%lld weight failed", (long long)rows,
                           (long long)cols);
    *w = *b; /* the harness releases it */
    if (h) *h = m;
    return GLMOE_OK;
}

/* A bank of E experts [Im, H], [Im, H], [H, Im], of format q (NULL: bf16), refs for the reference. */
static glmoe_status expert_bank(env *e, gm_experts *b, ref_matrix **rg, ref_matrix **ru, ref_matrix **rd,
                                const gm_affine *q, uint64_t *seed);

static glmoe_status setup(env *e) {
    const gm_config *c = &e->c;
    const int64_t H = c->hidden_size, D = c->head_dim, QD = (int64_t)c->n_heads * D, KD = (int64_t)c->n_kv_heads * D;
    const int64_t I = c->intermediate_size, E = c->n_experts, T = e->n_batch;
    const int64_t wide = I > QD ? I : QD;
    glmoe_status s;
    const gm_exec_sizes z = model_exec_sizes(c, e->n_batch, e->n_ctx);
    if ((s = e->be->ops->exec_create(e->be, &z, &e->ex, &e->err))) return s;
    if (e->oc) e->oc->ex = e->ex; /* the harness's uploads go through this state */
    if ((s = e->be->ops->kv_create(e->be, &e->kv, 1, e->n_ctx, c->n_kv_heads, (int32_t)D, &e->err))) return s;
    uint64_t seed = 1;
    if ((s = weight(e, &e->norm, &e->h_norm, GM_W_F32, 1, H, seed++, 1.0f, 0.1f)) ||
        (s = weight(e, &e->wq, &e->h_wq, GM_W_BF16, QD, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->wk, &e->h_wk, GM_W_BF16, KD, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->wv, &e->h_wv, GM_W_BF16, KD, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->wo, &e->h_wo, GM_W_BF16, H, QD, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->gate, &e->h_gate, GM_W_BF16, I, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->up, &e->h_up, GM_W_BF16, I, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->down, &e->h_down, GM_W_BF16, H, I, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->router, &e->h_router, GM_W_BF16, E, H, seed++, 0, 0.02f)) ||
        (s = weight(e, &e->router_bias, &e->h_router_bias, GM_W_F32, 1, E, seed++, 0, 0.001f)))
        return s;
    if (c->attention_bias &&
        ((s = weight(e, &e->bq, &e->h_bq, GM_W_F32, 1, QD, seed++, 0, 0.02f)) ||
         (s = weight(e, &e->bk, &e->h_bk, GM_W_F32, 1, KD, seed++, 0, 0.02f)) ||
         (s = weight(e, &e->bv, &e->h_bv, GM_W_F32, 1, KD, seed++, 0, 0.02f))))
        return s;
    if ((s = expert_bank(e, &e->bank, &e->r_gate, &e->r_up, &e->r_down, NULL, &seed))) return s;
    void **acts[] = {(void **)&e->x, (void **)&e->resid, (void **)&e->out, (void **)&e->q, (void **)&e->k,
                     (void **)&e->v, (void **)&e->attn, (void **)&e->ga, (void **)&e->gb, (void **)&e->route_w};
    size_t sizes[] = {T * H, T * H, T * H, T * QD, T * KD, T * KD, T * QD, T * wide, T * wide, T * c->n_experts_per_tok};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if ((s = alloc_random(e, acts[i], (size_t)sizes[i], 100 + i))) return s;
    /* the additive mask: about 10% of the keys hidden, never a query's own */
    float *m = e->mask_host = malloc((size_t)T * T * sizeof(float));
    if (!m) return gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    for (int64_t i = 0; i < T * T; i++)
        m[i] = (i / T != i % T && gm_splitmix64((uint64_t)i) % 10 == 0) ? -INFINITY : 0.0f;
    if (e->oc) {
        e->mask = ops_upload_f(e->oc, m, (size_t)(T * T));
    } else if (!(s = e->be->ops->alloc(e->be, (size_t)T * T * sizeof(float), (void **)&e->mask, &e->err))) {
        e->allocs[e->n_allocs++] = e->mask;
        s = e->be->ops->copy_in(e->ex, e->mask, m, (size_t)T * T * sizeof(float), &e->err);
    }
    if (!s) s = alloc_ints(e, &e->pos, (size_t)T * 2);
    if (!s) s = alloc_ints(e, &e->route_idx, (size_t)T * c->n_experts_per_tok);
    if (!s && e->oc) {
        e->cache_k = calloc((size_t)(e->n_ctx * KD), sizeof(float));
        e->cache_v = calloc((size_t)(e->n_ctx * KD), sizeof(float));
        if (!e->cache_k || !e->cache_v) s = gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    }
    return s;
}

static void free_bank(env *e, gm_experts *b, ref_matrix **rg, ref_matrix **ru, ref_matrix **rd) {
    if (e->be->ops->release_experts) e->be->ops->release_experts(e->be, b);
    for (int i = 0; !e->oc && b->gate && i < b->n; i++) {
        if (b->gate[i].owned) e->be->ops->weight_release(e->be, &b->gate[i]);
        if (b->up[i].owned) e->be->ops->weight_release(e->be, &b->up[i]);
        if (b->down[i].owned) e->be->ops->weight_release(e->be, &b->down[i]);
    }
    free(b->gate);
    free(b->up);
    free(b->down);
    free(*rg);
    free(*ru);
    free(*rd);
}

/* Frees what setup made; the backend itself only in timing mode (the harness owns the other's). */
static void teardown(env *e) {
    if (!e->be) return;
    if (!e->oc) {
        gm_weight *ws[] = {&e->norm, &e->wq, &e->wk, &e->wv, &e->wo, &e->bq, &e->bk, &e->bv, &e->gate,
                           &e->up, &e->down, &e->router, &e->router_bias, &e->aq, &e->ak, &e->ao,
                           &e->ash_gate, &e->ash_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (ws[i]->owned) e->be->ops->weight_release(e->be, ws[i]);
    }
    free_bank(e, &e->bank, &e->r_gate, &e->r_up, &e->r_down);
    free_bank(e, &e->abank, &e->r_agate, &e->r_aup, &e->r_adown);
    for (int i = 0; i < e->n_allocs; i++) e->be->ops->dealloc(e->be, e->allocs[i]);
    if (e->kv) e->be->ops->kv_free(e->be, e->kv);
    if (e->oc) {
        ops_release(e->oc); /* before the state its uploads went through */
        e->oc->ex = NULL;
    }
    if (e->ex) e->be->ops->exec_free(e->ex);
    if (!e->oc) e->be->ops->free(e->be);
    free(e->mask_host);
    free(e->cache_k);
    free(e->cache_v);
    e->be = NULL;
}

/* ---- the affine weights --------------------------------------------------------------------- */

/* A quantized [rows, cols] weight of format q, or a dense one left empty (data NULL) when the
 * group does not divide cols: the model keeps such a weight in bf16, so it has no affine case. */
static glmoe_status affine_weight(env *e, gm_weight *w, ref_matrix *r, const gm_affine *q, int64_t rows, int64_t cols,
                                  uint64_t seed) {
    memset(w, 0, sizeof *w);
    if (cols % q->group) return GLMOE_OK;
    if (!e->oc) {
        size_t bytes;
        return e->be->ops->weight_synthetic_affine(e->be, w, q, rows, cols, seed, 0.0f, 0.02f, &bytes, &e->err);
    }
    ops_host_matrix *m = ops_affine_matrix_new(e->oc, q->bits, q->group, REF_BF16, rows, cols, 0.3, false);
    gm_weight *b = ops_bind(e->oc, m, GM_BIND_MATRIX);
    if (!b) return gm_fail(&e->err, GLMOE_E_BACKEND, "weight_bind of a q%d g%d %lldx%lld weight failed", q->bits,
                           q->group, (long long)rows, (long long)cols);
    *w = *b;
    *r = m->ref;
    return GLMOE_OK;
}

static glmoe_status expert_bank(env *e, gm_experts *b, ref_matrix **rg, ref_matrix **ru, ref_matrix **rd,
                                const gm_affine *q, uint64_t *seed) {
    const int64_t H = e->c.hidden_size, Im = e->c.moe_intermediate_size, E = e->c.n_experts;
    glmoe_status s;
    b->gate = calloc((size_t)E, sizeof(gm_weight));
    b->up = calloc((size_t)E, sizeof(gm_weight));
    b->down = calloc((size_t)E, sizeof(gm_weight));
    *rg = calloc((size_t)E, sizeof(ref_matrix));
    *ru = calloc((size_t)E, sizeof(ref_matrix));
    *rd = calloc((size_t)E, sizeof(ref_matrix));
    if (!b->gate || !b->up || !b->down || !*rg || !*ru || !*rd) return gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    b->n = (int32_t)E;
    for (int64_t i = 0; i < E; i++) {
        if (q) {
            s = affine_weight(e, &b->gate[i], &(*rg)[i], q, Im, H, (*seed)++);
            if (!s) s = affine_weight(e, &b->up[i], &(*ru)[i], q, Im, H, (*seed)++);
            if (!s) s = affine_weight(e, &b->down[i], &(*rd)[i], q, H, Im, (*seed)++);
        } else {
            ops_host_matrix *hg = NULL, *hu = NULL, *hd = NULL;
            s = weight(e, &b->gate[i], &hg, GM_W_BF16, Im, H, (*seed)++, 0, 0.02f);
            if (!s) s = weight(e, &b->up[i], &hu, GM_W_BF16, Im, H, (*seed)++, 0, 0.02f);
            if (!s) s = weight(e, &b->down[i], &hd, GM_W_BF16, H, Im, (*seed)++, 0, 0.02f);
            if (!s && e->oc) (*rg)[i] = hg->ref, (*ru)[i] = hu->ref, (*rd)[i] = hd->ref;
        }
        if (s) return s;
    }
    if (e->be->ops->prepare_experts && (s = e->be->ops->prepare_experts(e->be, b, &e->err))) return s;
    return GLMOE_OK;
}

static glmoe_status affine_setup(env *e, const gm_affine *q) {
    const gm_config *c = &e->c;
    const int64_t H = c->hidden_size, QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t Im = c->moe_intermediate_size, Is = Im * c->n_shared_experts, E = c->n_experts;
    uint64_t seed = 1000;
    glmoe_status s;
    e->aq_format = *q;
    if ((s = affine_weight(e, &e->aq, &e->r_aq, q, QD, H, seed++)) || (s = affine_weight(e, &e->ak, &e->r_ak, q, KD, H, seed++)) ||
        (s = affine_weight(e, &e->ao, &e->r_ao, q, H, QD, seed++)))
        return s;
    if (Is > 0 && ((s = affine_weight(e, &e->ash_gate, &e->r_ash_gate, q, Is, H, seed++)) ||
                   (s = affine_weight(e, &e->ash_down, &e->r_ash_down, q, H, Is, seed++))))
        return s;
    if (E == 0 || H % q->group || Im % q->group) return GLMOE_OK; /* the experts stay bf16 */
    return expert_bank(e, &e->abank, &e->r_agate, &e->r_aup, &e->r_adown, q, &seed);
}

/* ---- running a case --------------------------------------------------------------------------- */

static glmoe_status set_positions(env *e, int32_t first, int32_t T) {
    int32_t *p = malloc((size_t)T * sizeof(int32_t));
    if (!p) return gm_fail(&e->err, GLMOE_E_NOMEM, "out of memory");
    for (int32_t i = 0; i < T; i++) p[i] = first + i;
    glmoe_status s = e->be->ops->copy_in(e->ex, e->pos, p, (size_t)T * sizeof(int32_t), &e->err);
    free(p);
    return s;
}

/* The position of a RoPE case's first token: a decode step deep into a sequence, a prefill from 0. */
static int32_t rope_first(int32_t T) { return T == 1 ? 2047 : 0; }

static gm_attn_params attn_params(const env *e, int32_t T, int32_t n_past, const float *mask) {
    const gm_config *c = &e->c;
    return (gm_attn_params){.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
                            .n_tokens = T, .n_past = n_past, .scale = 1.0f / sqrtf((float)c->head_dim),
                            .mask = mask};
}

static gm_route_params route_params(const env *e) {
    const gm_config *c = &e->c;
    return (gm_route_params){.n_experts = c->n_experts, .top_k = c->n_experts_per_tok, .n_group = c->n_group,
                             .topk_group = c->topk_group, .norm_topk_prob = c->norm_topk_prob,
                             .routed_scaling_factor = c->routed_scaling_factor};
}

/* Queues op k once. */
static glmoe_status run_op(env *e, op_kind k, int32_t T, int32_t ctx) {
    const gm_config *c = &e->c;
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
        gm_route_params rp = route_params(e);
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

/* What a case needs before it runs: the RoPE positions, the router's own choices for the experts. */
static glmoe_status prepare(env *e, op_kind k, int32_t T) {
    if (k == OP_ROPE) return set_positions(e, rope_first(T), T);
    if (k == OP_MOE_EXPERTS || k == OP_AFFINE_EXPERTS) return run_op(e, OP_MOE_ROUTE, T, 0);
    return GLMOE_OK;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Milliseconds per call of op k: the median of three batches of n calls. */
static glmoe_status time_op(env *e, op_kind k, int32_t T, int32_t ctx, double min_seconds, double *ms) {
    glmoe_status s;
    for (int i = 0; i < 2; i++)
        if ((s = run_op(e, k, T, ctx))) return s;
    if ((s = e->be->ops->sync(e->ex, &e->err))) return s;
    long n = 1;
    double batch[3];
    for (int b = 0; b < 3; b++) {
        for (;;) {
            double t0 = now_s();
            for (long i = 0; i < n; i++)
                if ((s = run_op(e, k, T, ctx))) return s;
            if ((s = e->be->ops->sync(e->ex, &e->err))) return s;
            double t = now_s() - t0;
            if (b > 0 || t >= min_seconds || n >= 100000) {
                batch[b] = t / (double)n;
                break;
            }
            n = t > 0 ? (long)(n * fmin(100.0, 1.2 * min_seconds / t)) + 1 : n * 100;
        }
    }
    qsort(batch, 3, sizeof batch[0], cmp_double);
    *ms = batch[1] * 1e3;
    return GLMOE_OK;
}

/* Fills the cache's positions [0, n) with keys and values, as a prefill would: position j gets
 * row j mod n_batch of k and v. */
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

/* Bytes of the distinct experts the router chose for T tokens (their three projections each). */
static glmoe_status chosen_expert_bytes(env *e, int32_t T, double *bytes) {
    const int32_t K = e->c.n_experts_per_tok, E = e->abank.n;
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

/* ---- correctness mode -------------------------------------------------------------------------- */

/* n fresh random floats of magnitude [lo, hi) into dev[0, n) (its guard untouched); the host copy
 * (malloc'd) is returned for the reference. */
static float *fresh(env *e, float *dev, size_t n, double lo, double hi) {
    float *h = ops_random_floats(e->oc, n, lo, hi);
    if (e->be->ops->copy_in(e->ex, dev, h, n * sizeof(float), &e->err)) {
        free(h);
        return NULL;
    }
    return h;
}

/* The length of the buffer at dev (setup's). */
static size_t buffer_len(const env *e, const void *dev) {
    for (int i = 0; i < e->n_lens; i++)
        if (e->lens[i].p == dev) return e->lens[i].n;
    return 0;
}

/* The first n elements of the buffer at dev (malloc'd), the whole buffer read to check its guard. */
static float *download(env *e, const float *dev, size_t n, const char *what) {
    const size_t len = buffer_len(e, dev);
    float *h = malloc((len > n ? len : n) * sizeof *h + 1);
    if (h && len >= n && ops_download_f(e->oc, h, dev, len, what)) return h;
    free(h);
    return NULL;
}

static bool download_ints(env *e, int32_t *out, const int32_t *dev, size_t n, const char *what) {
    const size_t len = buffer_len(e, dev);
    int32_t *h = malloc(len * sizeof *h + 1);
    bool ok = h && len >= n && ops_download_i(e->oc, h, dev, len, what);
    if (ok) memcpy(out, h, n * sizeof *h);
    free(h);
    return ok;
}

static double *doubles(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

static float *to_floats(const double *v, size_t n) {
    float *f = malloc((n ? n : 1) * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = (float)v[i];
    return f;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* RoPE of x [T, nh, D] against the reference, as test_ops's check_rope: the norm of the
 * per-element bounds (angle rounding) as the tolerance, then every element within its bound. */
static bool rope_ok(env *e, ops_stats *st, const char *what, const float *out, const float *x, int32_t T, int32_t nh) {
    const gm_config *c = &e->c;
    const int64_t n = (int64_t)T * nh * c->head_dim;
    int32_t *pos = malloc((size_t)T * sizeof *pos);
    double *ref = doubles((size_t)n), *bound = doubles((size_t)n);
    for (int32_t t = 0; t < T; t++) pos[t] = rope_first(T) + t;
    ref_rope(ref, bound, x, pos, T, nh, c->head_dim, c->rotary_dim, c->rope_theta);
    double bb = 0, rr = 0;
    for (int64_t i = 0; i < n; i++) bb += bound[i] * bound[i], rr += ref[i] * ref[i];
    bool ok = ops_compare_ex(e->oc, st, what, out, ref, (size_t)n, fmax(TOL_ROPE_MIN, sqrt(bb / rr)), 0);
    for (int64_t i = 0; ok && i < n; i++)
        if (!(fabs((double)out[i] - ref[i]) <= bound[i] + 1e-7 * fabs(ref[i]))) {
            fprintf(stderr, "[%s] FAIL %s: element [%lld]: got %.9g, want %.9g, bound %.3g\n", e->oc->label, what,
                    (long long)i, out[i], ref[i], bound[i]);
            ok = false;
        }
    free(pos);
    free(ref);
    free(bound);
    return ok;
}

/* The router's choices for T tokens against the reference: the same set of experts for every
 * token not near a tie (ROUTE_TIE), their weights within TOL_ROUTE (matched by expert). */
static bool route_ok(env *e, ops_stats *st, const char *what, const float *x, const int32_t *idx, const float *w,
                     int32_t T) {
    const gm_config *c = &e->c;
    const int32_t K = c->n_experts_per_tok;
    int32_t *ref_idx = malloc((size_t)T * K * sizeof *ref_idx);
    double *ref_w = doubles((size_t)T * K), *margin = doubles((size_t)T), *bias = ops_host_vector_values(e->h_router_bias);
    float *matched = malloc((size_t)T * K * sizeof *matched);
    const ref_route_params rp = {.n_experts = c->n_experts, .top_k = K, .n_group = c->n_group,
                                 .topk_group = c->topk_group, .norm_topk_prob = c->norm_topk_prob,
                                 .routed_scaling_factor = c->routed_scaling_factor};
    ref_moe_route(ref_idx, ref_w, margin, x, &e->h_router->ref, bias, &rp, T);
    bool ok = true;
    for (int32_t t = 0; ok && t < T; t++) {
        const int32_t *ti = idx + (int64_t)t * K, *ri = ref_idx + (int64_t)t * K;
        if (margin[t] < ROUTE_TIE) { /* a near tie: either choice is right */
            for (int32_t j = 0; j < K; j++) matched[t * K + j] = (float)ref_w[t * K + j];
            continue;
        }
        int32_t sa[64], sb[64];
        memcpy(sa, ti, (size_t)K * sizeof *sa);
        memcpy(sb, ri, (size_t)K * sizeof *sb);
        qsort(sa, (size_t)K, sizeof *sa, cmp_i32);
        qsort(sb, (size_t)K, sizeof *sb, cmp_i32);
        if (memcmp(sa, sb, (size_t)K * sizeof *sa)) {
            fprintf(stderr, "[%s] FAIL %s: token %d chose other experts than the reference (first: %d, want %d)\n",
                    e->oc->label, what, t, ti[0], ri[0]);
            ops_stats_fail(st);
            ok = false;
            break;
        }
        for (int32_t j = 0; j < K; j++)
            for (int32_t m = 0; m < K; m++)
                if (ti[m] == ri[j]) matched[t * K + j] = w[t * K + m];
    }
    if (ok) ok = ops_compare(e->oc, st, what, matched, ref_w, (size_t)T * K, TOL_ROUTE);
    free(ref_idx);
    free(ref_w);
    free(margin);
    free(bias);
    free(matched);
    return ok;
}

/* Runs op k once on fresh inputs and compares what it wrote with the reference. */
static bool check_case(env *e, ops_stats *st, op_kind k, int32_t T, int32_t ctx, const char *what) {
    const gm_config *c = &e->c;
    const int64_t H = c->hidden_size, D = c->head_dim, QD = (int64_t)c->n_heads * D, KD = (int64_t)c->n_kv_heads * D;
    const int64_t I = c->intermediate_size, K = c->n_experts_per_tok;
    const size_t TH = (size_t)(T * H);
    float *in[4] = {0}, *got[3] = {0};
    int32_t *idx = NULL;
    double *ref = NULL, *ref2 = NULL, *bias = NULL;
    bool ok = false;
    glmoe_status s = GLMOE_OK;
    /* inputs */
    switch (k) {
    case OP_ADD_RMSNORM:
        ok = (in[0] = fresh(e, e->x, TH, 0.01, 1.0)) && (in[1] = fresh(e, e->resid, TH, 0.01, 3.0));
        break;
    case OP_MATMUL_QKV: case OP_MOE_ROUTE: case OP_MOE_EXPERTS: case OP_DENSE_MLP: case OP_AFFINE_EXPERTS:
        ok = (in[0] = fresh(e, e->x, TH, 0.01, 1.0)) != NULL;
        break;
    case OP_MATMUL_O:
        ok = (in[0] = fresh(e, e->attn, (size_t)(T * QD), 0.01, 1.0)) != NULL;
        break;
    case OP_ROPE:
        ok = (in[0] = fresh(e, e->q, (size_t)(T * QD), 0.01, 2.0)) && (in[1] = fresh(e, e->k, (size_t)(T * KD), 0.01, 2.0));
        break;
    case OP_ATTN_CAUSAL: case OP_ATTN_MASKED: case OP_ATTN_DECODE:
        ok = (in[0] = fresh(e, e->q, (size_t)(T * QD), 0.01, 2.0)) && (in[1] = fresh(e, e->k, (size_t)(T * KD), 0.01, 1.0)) &&
             (in[2] = fresh(e, e->v, (size_t)(T * KD), 0.01, 1.0));
        break;
    case OP_SWIGLU:
        ok = (in[0] = fresh(e, e->ga, (size_t)(T * I), 0.01, 8.0)) && (in[1] = fresh(e, e->gb, (size_t)(T * I), 0.01, 3.0));
        break;
    case OP_AFFINE_MATMUL:
        ok = (in[0] = fresh(e, (float *)e->cur_x, (size_t)(T * e->cur->cols), 0.01, 1.0)) != NULL;
        break;
    }
    if (ok) s = prepare(e, k, T);
    if (ok && !s) s = run_op(e, k, T, ctx);
    if (ok && !s) s = e->be->ops->sync(e->ex, &e->err);
    if (ok && s) {
        fprintf(stderr, "[%s] FAIL %s: the op returned status %d: %s\n", e->oc->label, what, (int)s, e->err.msg);
        ops_stats_fail(st);
        ok = false;
    }
    if (!ok) goto done;
    /* outputs against the reference */
    switch (k) {
    case OP_ADD_RMSNORM: {
        double *w = ops_host_vector_values(e->h_norm);
        ref = doubles(TH), ref2 = doubles(TH);
        ref_add_rmsnorm(ref, ref2, in[1], in[0], w, T, H, c->rms_norm_eps);
        free(w);
        ok = (got[0] = download(e, e->out, TH, what)) && (got[1] = download(e, e->resid, TH, what)) &&
             ops_compare(e->oc, st, what, got[0], ref, TH, TOL_ELEMENTWISE) &&
             ops_compare(e->oc, st, what, got[1], ref2, TH, TOL_ADD);
        break;
    }
    case OP_MATMUL_QKV: {
        const gm_weight *ws[3] = {&e->wq, &e->wk, &e->wv};
        ops_host_matrix *hs[3] = {e->h_wq, e->h_wk, e->h_wv}, *hb[3] = {e->h_bq, e->h_bk, e->h_bv};
        float *outs[3] = {e->q, e->k, e->v};
        for (int i = 0; ok && i < 3; i++) {
            const size_t n = (size_t)(T * ws[i]->rows);
            free(ref), free(bias);
            ref = doubles(n);
            bias = hb[i] ? ops_host_vector_values(hb[i]) : NULL;
            ref_matmul(ref, in[0], &hs[i]->ref, bias, T);
            ok = (got[i] = download(e, outs[i], n, what)) && ops_compare(e->oc, st, what, got[i], ref, n, TOL_MATMUL);
        }
        break;
    }
    case OP_MATMUL_O:
        ref = doubles(TH);
        ref_matmul(ref, in[0], &e->h_wo->ref, NULL, T);
        ok = (got[0] = download(e, e->out, TH, what)) && ops_compare(e->oc, st, what, got[0], ref, TH, TOL_MATMUL);
        break;
    case OP_ROPE:
        ok = (got[0] = download(e, e->q, (size_t)(T * QD), what)) && (got[1] = download(e, e->k, (size_t)(T * KD), what)) &&
             rope_ok(e, st, what, got[0], in[0], T, c->n_heads) && rope_ok(e, st, what, got[1], in[1], T, c->n_kv_heads);
        break;
    case OP_ATTN_CAUSAL: case OP_ATTN_MASKED: case OP_ATTN_DECODE: {
        /* the call wrote its keys and values at positions [n_past, n_past + T) */
        const int32_t n_past = k == OP_ATTN_DECODE ? ctx - 1 : 0;
        memcpy(e->cache_k + (int64_t)n_past * KD, in[1], (size_t)(T * KD) * sizeof(float));
        memcpy(e->cache_v + (int64_t)n_past * KD, in[2], (size_t)(T * KD) * sizeof(float));
        ref = doubles((size_t)(T * QD));
        ref_attention(ref, in[0], e->cache_k, e->cache_v, k == OP_ATTN_MASKED ? e->mask_host : NULL, T, n_past,
                      c->n_heads, c->n_kv_heads, (int32_t)D, (double)(1.0f / sqrtf((float)D)));
        ok = (got[0] = download(e, e->attn, (size_t)(T * QD), what)) &&
             ops_compare(e->oc, st, what, got[0], ref, (size_t)(T * QD), ops_tol_attention);
        break;
    }
    case OP_SWIGLU:
        ref = doubles((size_t)(T * I));
        ref_swiglu(ref, in[0], in[1], T * I);
        ok = (got[0] = download(e, e->ga, (size_t)(T * I), what)) &&
             ops_compare(e->oc, st, what, got[0], ref, (size_t)(T * I), TOL_ELEMENTWISE);
        break;
    case OP_MOE_ROUTE: case OP_MOE_EXPERTS: case OP_AFFINE_EXPERTS: {
        const size_t n = (size_t)(T * K);
        idx = malloc(n * sizeof *idx);
        ok = idx && download_ints(e, idx, e->route_idx, n, what) && (got[0] = download(e, e->route_w, n, what));
        if (ok && k == OP_MOE_ROUTE) {
            ok = route_ok(e, st, what, in[0], idx, got[0], T);
        } else if (ok) { /* the experts of the router's own choices */
            const bool affine = k == OP_AFFINE_EXPERTS;
            ref = doubles(TH);
            ref_moe_experts(ref, in[0], idx, got[0], (int32_t)K, affine ? e->r_agate : e->r_gate,
                            affine ? e->r_aup : e->r_up, affine ? e->r_adown : e->r_down, T);
            ok = (got[1] = download(e, e->out, TH, what)) &&
                 (affine ? ops_affine_experts_ok(e->oc, st, what, got[1], ref, in[0], idx, got[0], (int32_t)K,
                                                 e->abank.n, e->r_agate, e->r_aup, e->r_adown, T, NULL,
                                                 e->aq_format.bits == 4 || e->aq_format.bits == 8)
                         : ops_compare(e->oc, st, what, got[1], ref, TH, TOL_EXPERTS));
        }
        break;
    }
    case OP_DENSE_MLP: {
        /* down · (silu(gate · x) ⊙ up · x), rounded to float between the steps as the op is */
        const size_t n = (size_t)(T * I);
        double *g = doubles(n), *u = doubles(n), *h = doubles(n);
        ref_matmul(g, in[0], &e->h_gate->ref, NULL, T);
        ref_matmul(u, in[0], &e->h_up->ref, NULL, T);
        float *gf = to_floats(g, n), *uf = to_floats(u, n);
        ref_swiglu(h, gf, uf, (int64_t)n);
        float *hf = to_floats(h, n);
        ref = doubles(TH);
        ref_matmul(ref, hf, &e->h_down->ref, NULL, T);
        free(g), free(u), free(h), free(gf), free(uf), free(hf);
        ok = (got[0] = download(e, e->out, TH, what)) && ops_compare(e->oc, st, what, got[0], ref, TH, TOL_EXPERTS);
        break;
    }
    case OP_AFFINE_MATMUL: {
        const size_t n = (size_t)(T * e->cur->rows);
        ref = doubles(n);
        ref_matmul(ref, in[0], e->cur_ref, NULL, T);
        ok = (got[0] = download(e, e->cur_out, n, what)) &&
             ops_affine_matmul_ok(e->oc, st, what, got[0], ref, in[0], e->cur_ref, NULL, T,
                                  e->aq_format.bits == 4 || e->aq_format.bits == 8);
        break;
    }
    }
done:
    for (int i = 0; i < 4; i++) free(in[i]);
    for (int i = 0; i < 3; i++) free(got[i]);
    free(idx);
    free(ref);
    free(ref2);
    free(bias);
    return ok;
}

/* ---- the table, in either mode --------------------------------------------------------------- */

typedef struct table_run {
    /* timing */
    const opcase_time_opts *o;
    opcase_report_fn report;
    void *user;
    char *err;
    size_t err_len;
    bool stopped;           /* the report function said stop (its message is in err) */
    /* correctness */
    ops_stats *st;
    void (*result)(const char *what, bool ok);
    int32_t prefill_tokens;
    const int32_t *contexts;
    int n_contexts;
} table_run;

/* A float32 copy of the cache's first n positions as fill_cache wrote them (correctness mode). */
static bool check_fill(env *e, int32_t n) {
    const int64_t KD = (int64_t)e->c.n_kv_heads * e->c.head_dim;
    const size_t rows = (size_t)(e->n_batch * KD);
    float *k = fresh(e, e->k, rows, 0.01, 1.0), *v = fresh(e, e->v, rows, 0.01, 1.0);
    bool ok = k && v && !fill_cache(e, n);
    for (int32_t j = 0; ok && j < n; j++) {
        memcpy(e->cache_k + j * KD, k + (j % e->n_batch) * KD, (size_t)KD * sizeof(float));
        memcpy(e->cache_v + j * KD, v + (j % e->n_batch) * KD, (size_t)KD * sizeof(float));
    }
    free(k);
    free(v);
    return ok;
}

/* One case in the run's mode. False stops the table (timing: the backend failed or the report
 * function said stop; correctness never stops). */
static bool one_case(env *e, table_run *r, op_kind k, int32_t T, int32_t ctx, const char *weight) {
    if (e->oc) {
        char what[200];
        snprintf(what, sizeof what, "op table: %s%s%s T=%d ctx=%d (H=%d heads=%d/%d D=%d E=%d K=%d)", k_op_names[k],
                 weight ? " " : "", weight ? weight : "", T, ctx, e->c.hidden_size, e->c.n_heads, e->c.n_kv_heads,
                 e->c.head_dim, e->c.n_experts, e->c.n_experts_per_tok);
        r->result(what, check_case(e, r->st, k, T, ctx, what));
        return true;
    }
    double ms = 0, bytes = k == OP_AFFINE_MATMUL ? (double)gm_weight_bytes(e->cur) : 0;
    glmoe_status s = prepare(e, k, T);
    if (!s && k == OP_AFFINE_EXPERTS) s = chosen_expert_bytes(e, T, &bytes);
    if (!s) s = time_op(e, k, T, ctx, r->o->min_seconds, &ms);
    if (s) return false;
    char fmt[16];
    snprintf(fmt, sizeof fmt, "q%d g%d", r->o->quantize.bits, r->o->quantize.group_size);
    opcase_row row = {.kind = weight ? OPCASE_ROW_AFFINE : OPCASE_ROW_OP, .op = k_op_names[k], .weight = weight,
                      .format = weight ? fmt : NULL, .backend = e->be->ops->name, .tokens = T, .context = ctx,
                      .ms = ms, .bytes = bytes, .experts = k == OP_AFFINE_EXPERTS,
                      .rows = k == OP_AFFINE_MATMUL ? e->cur->rows : 0, .cols = k == OP_AFFINE_MATMUL ? e->cur->cols : 0};
    if (!r->report(&row, r->user, r->err, r->err_len)) return r->stopped = true, false;
    return true;
}

static bool run_affine(env *e, table_run *r, const glmoe_quantize *quantize) {
    const gm_affine q = {quantize->bits, quantize->group_size ? quantize->group_size : 64, GM_W_BF16};
    const gm_weight format = {.type = GM_W_AFFINE, .q = q};
    char name[48];
    if (!e->be->ops->weight_synthetic_affine || (e->be->ops->supports && !e->be->ops->supports(e->be, &format))) {
        gm_weight_format_name(&format, name, sizeof name);
        if (e->oc) return true;
        opcase_row row = {.kind = OPCASE_ROW_NO_AFFINE, .format = name, .backend = e->be->ops->name};
        if (!r->report(&row, r->user, r->err, r->err_len)) return r->stopped = true, false;
        return true;
    }
    if (affine_setup(e, &q)) return false;
    if (!e->oc) {
        opcase_row row = {.kind = OPCASE_ROW_AFFINE_BEGIN, .backend = e->be->ops->name};
        if (!r->report(&row, r->user, r->err, r->err_len)) return r->stopped = true, false;
    }
    const gm_weight *ws[] = {&e->aq, &e->ak, &e->ao, &e->ash_gate, &e->ash_down, NULL};
    const ref_matrix *rs[] = {&e->r_aq, &e->r_ak, &e->r_ao, &e->r_ash_gate, &e->r_ash_down, NULL};
    float *bufs[] = {e->x, e->q, e->k, e->attn, e->out, e->ga};
    for (size_t i = 0; i < sizeof k_affine_cases / sizeof k_affine_cases[0]; i++) {
        const int32_t T = k_affine_cases[i].at == AT_ONE ? 1 : r->prefill_tokens;
        const affine_slot w = k_affine_cases[i].w;
        if (w == W_EXPERTS && !e->abank.n) continue;                 /* the experts stay bf16 */
        if (w != W_EXPERTS && !ws[w]->data) continue;                 /* kept in bf16 by the model */
        e->cur = ws[w];
        e->cur_ref = rs[w];
        e->cur_x = bufs[k_affine_cases[i].x];
        e->cur_out = bufs[k_affine_cases[i].out];
        if (!one_case(e, r, w == W_EXPERTS ? OP_AFFINE_EXPERTS : OP_AFFINE_MATMUL, T, 0, k_affine_cases[i].name))
            return false;
    }
    return true;
}

/* Every case of the table on e (set up), in order. */
static bool run_table(env *e, table_run *r, const glmoe_quantize *quantize) {
    int32_t max_ctx = e->n_batch;
    for (int i = 0; i < r->n_contexts; i++)
        if (r->contexts[i] > max_ctx) max_ctx = r->contexts[i];
    bool filled = false;
    for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
        const op_kind k = k_cases[i].kind;
        if (k_cases[i].at != AT_EACH_CONTEXT) {
            const int32_t T = k_cases[i].at == AT_ONE ? 1 : r->prefill_tokens;
            const int32_t ctx = k == OP_ATTN_CAUSAL || k == OP_ATTN_MASKED ? T : 0;
            if (!one_case(e, r, k, T, ctx, NULL)) return false;
            continue;
        }
        if (!filled && (e->oc ? !check_fill(e, max_ctx) : fill_cache(e, max_ctx) != GLMOE_OK)) return false;
        filled = true;
        for (int c = 0; c < r->n_contexts; c++)
            if (!one_case(e, r, k, 1, r->contexts[c], NULL)) return false;
    }
    return !quantize->bits || run_affine(e, r, quantize);
}

static void config_of(gm_config *c, const opcase_shape *s) {
    memset(c, 0, sizeof *c);
    c->hidden_size = s->hidden;
    c->n_heads = s->n_heads;
    c->n_kv_heads = s->n_kv_heads;
    c->head_dim = s->head_dim;
    c->rotary_dim = s->rotary_dim;
    c->intermediate_size = s->intermediate;
    c->moe_intermediate_size = s->moe_intermediate;
    c->n_experts = s->n_experts;
    c->n_experts_per_tok = s->n_experts_per_tok;
    c->n_shared_experts = s->n_shared_experts;
    c->n_group = s->n_group;
    c->topk_group = s->topk_group;
    c->norm_topk_prob = s->norm_topk_prob;
    c->attention_bias = s->attention_bias;
    c->routed_scaling_factor = s->routed_scaling_factor;
    c->rope_theta = s->rope_theta;
    c->rms_norm_eps = s->rms_norm_eps;
    c->n_layers = 2; /* one dense and one MoE layer: the execution state sized for both */
    c->first_k_dense_replace = 1;
    c->vocab_size = 1;
}

opcase_shape opcase_shape_of(const glmoe_model_info *m) {
    return (opcase_shape){.hidden = m->hidden_size, .n_heads = m->n_heads, .n_kv_heads = m->n_kv_heads,
                          .head_dim = m->head_dim, .rotary_dim = m->rotary_dim, .intermediate = m->intermediate_size,
                          .moe_intermediate = m->moe_intermediate_size, .n_experts = m->n_experts,
                          .n_experts_per_tok = m->n_experts_per_tok, .n_shared_experts = m->n_shared_experts,
                          .n_group = m->n_group, .topk_group = m->topk_group, .norm_topk_prob = m->norm_topk_prob,
                          .attention_bias = m->attention_bias, .routed_scaling_factor = m->routed_scaling_factor,
                          .rope_theta = m->rope_theta, .rms_norm_eps = m->rms_norm_eps};
}

static glmoe_status create_backend(const opcase_time_opts *o, gm_backend **be, gm_err *err) {
    if (!strcmp(o->backend, "cuda")) return gm_backend_create(be, GLMOE_DEVICE_CUDA, 0, err);
    if (!strcmp(o->backend, "cpu")) return gm_backend_create(be, GLMOE_DEVICE_CPU, o->n_threads, err);
    return gm_fail(err, GLMOE_E_UNSUPPORTED, "no backend \"%s\"", o->backend);
}

bool opcases_time(const opcase_shape *shape, const opcase_time_opts *o, opcase_report_fn report, void *user,
                  char *err, size_t err_len) {
    env e = {.n_batch = o->prefill_tokens};
    config_of(&e.c, shape);
    int32_t max_ctx = e.n_batch;
    for (int i = 0; i < o->n_contexts; i++)
        if (o->contexts[i] > max_ctx) max_ctx = o->contexts[i];
    e.n_ctx = max_ctx + e.n_batch;
    opcase_time_opts oq = *o; /* the group size the format names: 0 is MLX's default, 64 */
    if (oq.quantize.bits && !oq.quantize.group_size) oq.quantize.group_size = 64;
    table_run r = {.o = &oq, .report = report, .user = user, .err = err, .err_len = err_len,
                   .prefill_tokens = o->prefill_tokens, .contexts = o->contexts, .n_contexts = o->n_contexts};
    bool ok = !create_backend(o, &e.be, &e.err) && !setup(&e) && run_table(&e, &r, &oq.quantize);
    if (!ok && !r.stopped) snprintf(err, err_len, "per-op timing: %s", e.err.msg);
    teardown(&e);
    return ok;
}

void opcases_check(ops_ctx *c, ops_stats *st, const opcase_shape *shape, int32_t prefill_tokens,
                   const int32_t *contexts, int n_contexts, const glmoe_quantize *quantize,
                   void (*result)(const char *what, bool ok)) {
    env e = {.be = c->be, .oc = c, .n_batch = prefill_tokens};
    config_of(&e.c, shape);
    int32_t max_ctx = e.n_batch;
    for (int i = 0; i < n_contexts; i++)
        if (contexts[i] > max_ctx) max_ctx = contexts[i];
    e.n_ctx = max_ctx + e.n_batch;
    gm_exec *saved = c->ex; /* the table runs on an execution state of its own shape */
    table_run r = {.st = st, .result = result, .prefill_tokens = prefill_tokens, .contexts = contexts,
                   .n_contexts = n_contexts};
    ops_release(c);
    bool ok = !setup(&e) && run_table(&e, &r, quantize);
    if (!ok) {
        fprintf(stderr, "[%s] FAIL op table at H=%d: %s\n", c->label, shape->hidden, e.err.msg);
        ops_stats_fail(st);
        result("op table: setup", false);
    }
    teardown(&e);
    c->ex = saved;
}
