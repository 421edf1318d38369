/*
 * forward.c — the GLM-4.5 MoE forward pass (spec §2), written once against the backend interface.
 *
 * Letters: T tokens in this call, H hidden size, nh/nkv query/KV heads, D head_dim, R rotary dims,
 * I dense MLP width, Im expert width, Is shared-expert width (Im * n_shared), E experts, K top-k,
 * V vocabulary.
 *
 *   x = embed(ids)                                           [T, H]
 *   per layer:
 *     xn = rmsnorm(x) ; q,k,v = xn·Wq,k,v^T + b               [T, nh*D], [T, nkv*D]
 *     q,k = qk_norm per head (optional) ; RoPE on the first R dims of each head
 *     attn = causal GQA attention over the cache ; tmp = attn·Wo^T
 *     x += tmp ; xn = rmsnorm(x)                              (one fused op)
 *     dense:  tmp = down(silu(gate·xn) ⊙ up·xn)
 *     MoE:    route(xn) → idx, w ; tmp = shared(xn) + Σ w·expert(xn)
 *     x += tmp                                                (fused into the next layer's norm)
 *   logits = rmsnorm(x)·lm_head^T for the rows asked for
 *
 * The state's buffers are allocated once per context (state_create) at the largest batch.
 *
 * Decode as a graph: on a backend with the graph_* ops (backend.h; the GPU), a step of one token
 * with its logits is recorded once and then replayed, so that the host issues one launch per
 * token instead of one per op. The recording is valid for every later step because nothing in
 * it changes: the token id and the position are uploaded to st->ids and st->pos before each
 * replay, and attention reads n_past from st->pos[0] (gm_attn_params.n_past_mem); every buffer
 * belongs to the state (its execution state's scratch never moves), which frees the graph first.
 * Prefill chunks run op by op.
 */
#include <math.h>
#include <string.h>

#include "model/model.h"
#include "util/log.h"

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

gm_exec_sizes model_exec_sizes(const gm_config *c, int32_t n_batch, int32_t n_ctx) {
    const int64_t H = c->hidden_size, QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t Im = c->moe_intermediate_size, Is = Im * c->n_shared_experts;
    const bool moe = c->first_k_dense_replace < c->n_layers && c->n_experts > 0;
    const int64_t max_in = max64(max64(H, QD), max64(c->intermediate_size, max64(Is, Im)));
    const int64_t max_out = max64(max64(max64(H, QD), KD), max64(max64(c->intermediate_size, Is),
                                                                 max64(c->vocab_size, max64(Im, c->n_experts))));
    return (gm_exec_sizes){.n_batch = n_batch, .n_ctx = n_ctx, .hidden = H, .max_in = max_in, .max_out = max_out,
                           .n_heads = c->n_heads, .head_dim = c->head_dim, .n_experts = moe ? c->n_experts : 0,
                           .top_k = moe ? c->n_experts_per_tok : 0, .expert_width = moe ? Im : 0};
}

glmoe_status state_create(gm_state *st, const gm_config *c, gm_backend *be, int32_t n_batch,
                          int32_t n_ctx, gm_err *err) {
    memset(st, 0, sizeof *st);
    st->n_batch = n_batch;
    st->n_ctx = n_ctx;
    st->be = be;
    const int64_t T = n_batch, H = c->hidden_size, QD = (int64_t)c->n_heads * c->head_dim,
                  KD = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t ffn = max64(c->intermediate_size, (int64_t)c->moe_intermediate_size * c->n_shared_experts);
    const int64_t K = c->n_experts_per_tok > 0 ? c->n_experts_per_tok : 1;
    struct {
        void **p;
        int64_t bytes;
    } bufs[] = {
        {(void **)&st->ids, T * 4},         {(void **)&st->pos, T * 4},
        {(void **)&st->x, T * H * 4},       {(void **)&st->xn, T * H * 4},
        {(void **)&st->q, T * QD * 4},      {(void **)&st->k, T * KD * 4},
        {(void **)&st->v, T * KD * 4},      {(void **)&st->attn, T * QD * 4},
        {(void **)&st->tmp, T * H * 4},     {(void **)&st->ffn_a, T * max64(ffn, 1) * 4},
        {(void **)&st->ffn_b, T * max64(ffn, 1) * 4},
        {(void **)&st->route_idx, T * K * 4}, {(void **)&st->route_w, T * K * 4},
        {(void **)&st->logits, T * (int64_t)c->vocab_size * 4},
    };
    glmoe_status s;
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if ((s = be->ops->alloc(be, (size_t)bufs[i].bytes, bufs[i].p, err))) goto fail;
    if ((s = be->ops->kv_create(be, &st->kv, c->n_layers, n_ctx, c->n_kv_heads, c->head_dim, err))) goto fail;
    const gm_exec_sizes z = model_exec_sizes(c, n_batch, n_ctx);
    if ((s = be->ops->exec_create(be, &z, &st->ex, err))) goto fail;
    return GLMOE_OK;
fail:
    state_free(st);
    return s;
}

void state_free(gm_state *st) {
    gm_backend *be = st->be;
    if (!be) return;
    if (st->graph) be->ops->graph_free(st->ex, st->graph); /* before the buffers it recorded */
    if (st->ex) be->ops->exec_free(st->ex);
    void *bufs[] = {st->ids, st->pos, st->x, st->xn, st->q, st->k, st->v, st->attn, st->tmp,
                    st->ffn_a, st->ffn_b, st->route_idx, st->route_w, st->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->ops->dealloc(be, bufs[i]);
    if (st->kv) be->ops->kv_free(be, st->kv);
    memset(st, 0, sizeof *st);
}

/* Runs one op and leaves on failure; every op below returns a glmoe_status. */
#define TRY(call)                                                                                    \
    do {                                                                                             \
        if ((s = (call))) return s;                                                                  \
    } while (0)

static glmoe_status attention_block(const gm_config *c, const gm_layer *L, gm_state *st, int layer, int32_t T,
                                    gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    glmoe_status s;
    TRY(op->matmul(ex, st->q, st->xn, &L->wq, &L->bq, T, err));
    TRY(op->matmul(ex, st->k, st->xn, &L->wk, &L->bk, T, err));
    TRY(op->matmul(ex, st->v, st->xn, &L->wv, &L->bv, T, err));
    if (c->use_qk_norm) { /* RMSNorm over each head's D values, before RoPE */
        TRY(op->add_rmsnorm(ex, st->q, st->q, NULL, &L->q_norm, (int64_t)T * c->n_heads, c->head_dim,
                            c->rms_norm_eps, err));
        TRY(op->add_rmsnorm(ex, st->k, st->k, NULL, &L->k_norm, (int64_t)T * c->n_kv_heads, c->head_dim,
                            c->rms_norm_eps, err));
    }
    TRY(op->rope(ex, st->q, st->pos, T, c->n_heads, c->head_dim, c->rotary_dim, c->rope_theta, err));
    TRY(op->rope(ex, st->k, st->pos, T, c->n_kv_heads, c->head_dim, c->rotary_dim, c->rope_theta, err));
    gm_attn_params ap = {.n_heads = c->n_heads, .n_kv_heads = c->n_kv_heads, .head_dim = c->head_dim,
                         .n_tokens = T, .n_past = st->n_past, .scale = 1.0f / sqrtf((float)c->head_dim),
                         .n_past_mem = st->pos};
    TRY(op->attention(ex, st->attn, st->q, st->k, st->v, st->kv, layer, &ap, err));
    TRY(op->matmul(ex, st->tmp, st->attn, &L->wo, NULL, T, err));
    return GLMOE_OK;
}

/* SwiGLU MLP of width gate->rows into out: out = down(silu(gate·xn) ⊙ up·xn). */
static glmoe_status mlp(gm_state *st, const gm_weight *gate, const gm_weight *up, const gm_weight *down,
                        float *out, int32_t T, gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    glmoe_status s;
    TRY(op->matmul(ex, st->ffn_a, st->xn, gate, NULL, T, err));
    TRY(op->matmul(ex, st->ffn_b, st->xn, up, NULL, T, err));
    TRY(op->swiglu(ex, st->ffn_a, st->ffn_a, st->ffn_b, (int64_t)T * gate->rows, err));
    TRY(op->matmul(ex, out, st->ffn_a, down, NULL, T, err));
    return GLMOE_OK;
}

static glmoe_status ffn_block(const gm_config *c, const gm_layer *L, gm_state *st, int32_t T, gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    glmoe_status s;
    if (!L->is_moe) return mlp(st, &L->gate, &L->up, &L->down, st->tmp, T, err);

    gm_route_params rp = {.n_experts = c->n_experts, .top_k = c->n_experts_per_tok, .n_group = c->n_group,
                          .topk_group = c->topk_group, .norm_topk_prob = c->norm_topk_prob,
                          .routed_scaling_factor = c->routed_scaling_factor};
    TRY(op->moe_route(ex, st->route_idx, st->route_w, st->xn, &L->router, &L->router_bias, &rp, T, err));
    bool shared = c->n_shared_experts > 0;
    if (shared) TRY(mlp(st, &L->sh_gate, &L->sh_up, &L->sh_down, st->tmp, T, err)); /* unweighted */
    TRY(op->moe_experts(ex, st->tmp, shared, st->xn, st->route_idx, st->route_w, c->n_experts_per_tok,
                        &L->experts, T, err));
    return GLMOE_OK;
}

/* The ops of one step once its inputs (st->ids, st->pos) are in backend memory: the embedding
 * through the logits of rows [first_logit, T), left in st->logits. It only queues work (no copy,
 * no wait), so a backend can record it as a graph. */
static glmoe_status run_step(const gm_config *c, const gm_weights *w, gm_state *st, int32_t T, int32_t first_logit,
                             gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    const int64_t H = c->hidden_size;
    glmoe_status s;
    TRY(op->embed(ex, st->x, &w->embed, st->ids, T, err));

    const float *pending = NULL; /* the FFN output not yet added to the residual */
    for (int l = 0; l < c->n_layers; l++) {
        const gm_layer *L = &w->layers[l];
        TRY(op->add_rmsnorm(ex, st->xn, st->x, pending, &L->attn_norm, T, H, c->rms_norm_eps, err));
        TRY(attention_block(c, L, st, l, T, err));
        TRY(op->add_rmsnorm(ex, st->xn, st->x, st->tmp, &L->ffn_norm, T, H, c->rms_norm_eps, err));
        TRY(ffn_block(c, L, st, T, err));
        pending = st->tmp;
    }

    if (first_logit < T) {
        const int32_t R = T - first_logit;
        float *x_rows = gm_ptr_add(st->x, (size_t)first_logit * H * 4);
        const float *d_rows = gm_cptr_add(pending, (size_t)first_logit * H * 4);
        TRY(op->add_rmsnorm(ex, st->xn, x_rows, d_rows, &w->final_norm, R, H, c->rms_norm_eps, err));
        TRY(op->matmul(ex, st->logits, st->xn, &w->lm_head, NULL, R, err));
    }
    return GLMOE_OK;
}

/* One-token steps run op by op this many times before the step is recorded: the first makes
 * whatever the ops create lazily (device tables, loaded modules), which a recording must not. */
#define GRAPH_EAGER_STEPS 1

/* A one-token step with its logits on a backend that records steps: replays the recorded graph,
 * recording it first when there is none. Every failure of the recording itself falls back to
 * running the step op by op, for good. */
static glmoe_status run_step_graphed(const gm_config *c, const gm_weights *w, gm_state *st, gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    glmoe_status s;
    if (st->graph) return op->graph_replay(ex, st->graph, err);
    if (st->graph_eager_steps < GRAPH_EAGER_STEPS) {
        st->graph_eager_steps++;
        return run_step(c, w, st, 1, 0, err);
    }
    s = op->graph_capture_begin(ex, err);
    if (s == GLMOE_E_UNSUPPORTED) {
        gm_err_clear(err);
        st->graph_off = true;
        return run_step(c, w, st, 1, 0, err);
    }
    if (s) return s;
    gm_err rec = {0}, end = {0};
    glmoe_status rs = run_step(c, w, st, 1, 0, &rec);
    gm_graph *g = NULL;
    glmoe_status es = op->graph_capture_end(ex, &g, &end);
    if (rs || es || !g) {
        gm_warn("%s: the decode step could not be recorded (%s); running it op by op", op->name,
                rs ? rec.msg : end.msg);
        if (g) op->graph_free(ex, g);
        st->graph_off = true;
        return run_step(c, w, st, 1, 0, err);
    }
    st->graph = g;
    return op->graph_replay(ex, g, err);
}

glmoe_status forward(const gm_config *c, const gm_weights *w, gm_state *st, const int32_t *ids, int32_t T,
                     int32_t first_logit, float *host_logits, gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    glmoe_status s;
    if (T <= 0 || T > st->n_batch)
        return gm_fail(err, GLMOE_E_ARG, "forward: %d tokens (batch holds %d)", T, st->n_batch);
    if ((int64_t)st->n_past + T > st->n_ctx)
        return gm_fail(err, GLMOE_E_CONTEXT, "%d + %d tokens exceed the context of %d", st->n_past, T, st->n_ctx);

    /* The inputs that change from step to step go to backend memory, where the ops (and a
     * recorded step) read them: positions n_past.. (pos[0] is also attention's n_past) and ids. */
    int32_t pos[512];
    for (int32_t t0 = 0; t0 < T; t0 += 512) {
        int32_t n = T - t0 < 512 ? T - t0 : 512;
        for (int32_t i = 0; i < n; i++) pos[i] = st->n_past + t0 + i;
        TRY(op->copy_in(ex, st->pos + t0, pos, (size_t)n * 4, err));
    }
    TRY(op->copy_in(ex, st->ids, ids, (size_t)T * 4, err));

    if (T == 1 && first_logit == 0 && op->graph_replay && !st->graph_off)
        TRY(run_step_graphed(c, w, st, err));
    else
        TRY(run_step(c, w, st, T, first_logit, err));

    if (first_logit < T)
        TRY(op->copy_out(ex, host_logits, st->logits, (size_t)(T - first_logit) * (size_t)c->vocab_size * 4, err));
    else
        TRY(op->sync(ex, err));
    st->n_past += T;
    return GLMOE_OK;
}
