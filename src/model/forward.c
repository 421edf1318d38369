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
 * A batch holds rows of several sequences (gm_row), those of one sequence consecutive and in
 * position order (src/api.c sorts them so). Every op runs over all T rows at once — the matmuls
 * and the experts read each weight once for the whole batch, which is what makes serving many
 * sequences cheap — except attention, which runs once per sequence's run of rows against that
 * sequence's own KV cache (n_past = its length). Logits are computed for the rows that ask for
 * them, run by run of consecutive such rows.
 *
 * The state's buffers are allocated once per context (state_create) at the largest batch; each
 * sequence has a KV cache of n_ctx positions, made up front.
 *
 * The MTP layer (docs/spec/mtp.md), when a context runs it for drafts (speculate.c): its input at
 * position i is the token at i + 1 and the model's final-normed hidden state at i, so its cache
 * can hold position i only once the next token is known. Every forward keeps it current: the
 * rows of a sequence whose next token is in the batch get their MTP row, written to the MTP
 * layer's cache (its KV only: attention and the MoE of the layer run only for drafts), and the
 * hidden state of each sequence's last row waits in st->stash for its next token, which comes
 * with the sequence's next forward. So after every forward seq.mtp_len == n_past - 1 and the
 * stash holds position n_past - 1; a truncate or copy that cuts into that (state_seq_truncate)
 * marks the stash stale, and src/api.c evaluates the last position again to refill it.
 *
 * Decode as a graph: on a backend with the graph_* ops (backend.h; the GPU), a step of one token
 * of one sequence with its logits is recorded once per sequence and then replayed, so that the
 * host issues one launch per token instead of one per op. The recording is valid for every later
 * step of that sequence because nothing in it changes: the token id and the position are
 * uploaded to st->ids and st->pos before each replay, and attention reads n_past from st->pos[0]
 * (gm_attn_params.n_past_mem); every buffer belongs to the state (its execution state's scratch
 * never moves), which frees the graphs first. Prefill chunks and batches of several sequences run
 * op by op; with GLMOE_GRAPH_ROWS=1 (opt-in until measured on a GPU) a step of 2..GM_GRAPH_MAX_ROWS
 * rows of one sequence that all want logits (a speculative verify) is recorded too, once per row
 * count, and so are the steps of a context that runs the MTP layer (its own rows, mtp_follow, stay
 * op by op). On a split model every rank records its own step, its all-reduces included (a GPU
 * backend queues them on its stream); ranks 1.., which compute no logits, record the step without
 * them.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/comm.h"
#include "model/model.h"
#include "util/log.h"

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

gm_exec_sizes model_exec_sizes(const gm_config *c, int32_t n_batch, int32_t n_ctx) {
    const int64_t H = c->hidden_size, QD = (int64_t)c->n_heads * c->head_dim, KD = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t Im = c->moe_intermediate_size, Is = Im * c->n_shared_experts;
    const bool moe = c->first_k_dense_replace < c->n_layers && c->n_experts > 0;
    const int32_t folded = config_shared_in_bank(c);
    const int64_t max_in = max64(max64(H, QD), max64(c->intermediate_size, max64(Is, Im)));
    const int64_t max_out = max64(max64(max64(H, QD), KD), max64(max64(c->intermediate_size, Is),
                                                                 max64(c->vocab_size, max64(Im, c->n_experts))));
    return (gm_exec_sizes){.n_batch = n_batch, .n_ctx = n_ctx, .hidden = H, .max_in = max_in, .max_out = max_out,
                           .n_heads = c->n_heads, .head_dim = c->head_dim,
                           .n_experts = moe ? c->n_experts + folded : 0,
                           .top_k = moe ? c->n_experts_per_tok + folded : 0, .expert_width = moe ? Im : 0};
}

uint64_t model_kv_bytes(const gm_config *c, int32_t n_layers, int32_t n_ctx, int32_t elem_bytes) {
    return 2ull * (uint64_t)n_layers * (uint64_t)n_ctx * (uint64_t)c->n_kv_heads * (uint64_t)c->head_dim *
           (uint64_t)elem_bytes;
}

/* The state's buffers in backend memory: where each goes in st, and its bytes (0: not needed). */
typedef struct state_buf {
    void **p;
    int64_t bytes;
} state_buf;
#define STATE_BUFS 18

static void state_buffers(gm_state *st, const gm_config *c, int32_t n_batch, int32_t n_seq, bool mtp,
                          state_buf out[STATE_BUFS]) {
    const int64_t T = n_batch, H = c->hidden_size, QD = (int64_t)c->n_heads * c->head_dim,
                  KD = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t ffn = max64(c->intermediate_size, (int64_t)c->moe_intermediate_size * c->n_shared_experts);
    const int64_t K = (c->n_experts_per_tok > 0 ? c->n_experts_per_tok : 1) + config_shared_in_bank(c);
    const state_buf bufs[STATE_BUFS] = {
        {(void **)&st->ids, T * 4},         {(void **)&st->pos, T * 4},
        {(void **)&st->x, T * H * 4},       {(void **)&st->xn, T * H * 4},
        {(void **)&st->q, T * QD * 4},      {(void **)&st->k, T * KD * 4},
        {(void **)&st->v, T * KD * 4},      {(void **)&st->attn, T * QD * 4},
        {(void **)&st->tmp, T * H * 4},     {(void **)&st->ffn_a, T * max64(ffn, 1) * 4},
        {(void **)&st->ffn_b, T * max64(ffn, 1) * 4},
        {(void **)&st->route_idx, T * K * 4}, {(void **)&st->route_w, T * K * 4},
        {(void **)&st->logits, T * (int64_t)c->vocab_size * 4},
        /* the MTP layer's, when it runs */
        {(void **)&st->hid, mtp ? T * H * 4 : 0},  {(void **)&st->mtp_in, mtp ? T * 2 * H * 4 : 0},
        {(void **)&st->mtp_h, mtp ? T * H * 4 : 0}, {(void **)&st->stash, mtp ? (int64_t)n_seq * H * 4 : 0},
    };
    memcpy(out, bufs, sizeof bufs);
}

uint64_t state_activation_bytes(const gm_config *c, int32_t n_batch, int32_t n_ctx, int32_t n_seq, bool mtp) {
    gm_state st;
    state_buf bufs[STATE_BUFS];
    state_buffers(&st, c, n_batch, n_seq, mtp, bufs);
    uint64_t total = 0;
    for (size_t i = 0; i < STATE_BUFS; i++) total += (uint64_t)bufs[i].bytes;
    return total;
}

glmoe_status state_create(gm_state *st, const gm_config *c, gm_backend *be, int32_t n_batch, int32_t n_ctx,
                          int32_t n_seq, const gm_mtp *mtp, gm_err *err) {
    return state_create_rank(st, c, NULL, be, n_batch, n_ctx, n_seq, mtp, err);
}

/* The query and KV heads a part of the model holds: all of them (part NULL or whole), or a split
 * model's rank's. nh may be NULL. */
static void rank_heads(const gm_config *c, const gm_partition *part, int32_t *nh, int32_t *nkv) {
    const bool whole = partition_is_whole(part);
    if (nh) *nh = whole ? c->n_heads : (int32_t)part->heads.n;
    *nkv = whole ? c->n_kv_heads : (int32_t)part->kv_heads.n;
}

glmoe_status state_create_rank(gm_state *st, const gm_config *c, const gm_partition *part, gm_backend *be,
                               int32_t n_batch, int32_t n_ctx, int32_t n_seq, const gm_mtp *mtp, gm_err *err) {
    /* A rank caches its own KV heads; its other buffers are sized for the whole model (a bound). */
    int32_t n_kv_heads;
    rank_heads(c, part, NULL, &n_kv_heads);
    memset(st, 0, sizeof *st);
    st->n_batch = n_batch;
    st->n_ctx = n_ctx;
    st->be = be;
    st->mtp = mtp;
    st->hidden = c->hidden_size;
    const int64_t H = c->hidden_size;
    state_buf bufs[STATE_BUFS];
    state_buffers(st, c, n_batch, n_seq, mtp != NULL, bufs);
    glmoe_status s;
    for (size_t i = 0; i < STATE_BUFS; i++)
        if (bufs[i].bytes && (s = be->ops->alloc(be, (size_t)bufs[i].bytes, bufs[i].p, err))) goto fail;
    st->seqs = calloc((size_t)n_seq, sizeof *st->seqs);
    if (!st->seqs) {
        s = gm_fail(err, GLMOE_E_NOMEM, "out of memory for %d sequences", n_seq);
        goto fail;
    }
    st->n_seq = n_seq;
    for (int32_t i = 0; i < n_seq; i++) {
        if ((s = be->ops->kv_create(be, &st->seqs[i].kv, c->n_layers + (mtp ? 1 : 0), n_ctx, n_kv_heads, c->head_dim,
                                    err)))
            goto fail;
        if (mtp && !(st->seqs[i].tokens = malloc((size_t)n_ctx * sizeof *st->seqs[i].tokens))) {
            s = gm_fail(err, GLMOE_E_NOMEM, "out of memory for %d sequences", n_seq);
            goto fail;
        }
    }
    gm_exec_sizes z = model_exec_sizes(c, n_batch, n_ctx);
    if (mtp) z.max_in = max64(z.max_in, 2 * H); /* eh_proj reads [embedding; hidden] */
    if ((s = be->ops->exec_create(be, &z, &st->ex, err))) goto fail;
    return GLMOE_OK;
fail:
    state_free(st);
    return s;
}

void state_free(gm_state *st) {
    gm_backend *be = st->be;
    if (!be) return;
    for (int32_t i = 0; st->seqs && i < st->n_seq; i++) /* graphs before the buffers they recorded */
        for (int32_t t = 0; t <= GM_GRAPH_MAX_ROWS; t++)
            if (st->seqs[i].graph[t]) be->ops->graph_free(st->ex, st->seqs[i].graph[t]);
    if (st->ex) be->ops->exec_free(st->ex);
    void *bufs[] = {st->ids, st->pos, st->x, st->xn, st->q, st->k, st->v, st->attn, st->tmp,
                    st->ffn_a, st->ffn_b, st->route_idx, st->route_w, st->logits,
                    st->hid, st->mtp_in, st->mtp_h, st->stash};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) be->ops->dealloc(be, bufs[i]);
    for (int32_t i = 0; st->seqs && i < st->n_seq; i++) {
        if (st->seqs[i].kv) be->ops->kv_free(be, st->seqs[i].kv);
        free(st->seqs[i].tokens);
    }
    free(st->seqs);
    memset(st, 0, sizeof *st);
}

glmoe_status state_seq_copy(gm_state *st, int32_t dst, int32_t src, int32_t n, gm_err *err) {
    gm_seq *d = &st->seqs[dst];
    const gm_seq *sr = &st->seqs[src];
    if (n > 0) {
        glmoe_status s = st->be->ops->kv_copy(st->ex, d->kv, sr->kv, n, err);
        if (s) return s;
    }
    d->n_past = n;
    if (!st->mtp) return GLMOE_OK;
    memcpy(d->tokens, sr->tokens, (size_t)n * sizeof *d->tokens);
    d->mtp_len = sr->mtp_len < n ? sr->mtp_len : n;
    d->stash_ok = false;
    if (n == sr->n_past && sr->stash_ok) { /* the whole sequence: its stash too */
        const int64_t H = st->hidden;
        glmoe_status s = st->be->ops->copy_2d(st->ex, gm_ptr_add(st->stash, (size_t)dst * (size_t)H * 4), H,
                                              gm_cptr_add(st->stash, (size_t)src * (size_t)H * 4), H, 1, H, err);
        if (s) return s;
        d->stash_ok = true;
    } else if (d->mtp_len > n - 1) {
        d->mtp_len = n > 0 ? n - 1 : 0; /* position n - 1's MTP row read src's token at n */
    }
    return GLMOE_OK;
}

void state_seq_truncate(gm_state *st, int32_t q, int32_t n) {
    gm_seq *sq = &st->seqs[q];
    if (n >= sq->n_past) return;
    sq->n_past = n;
    if (!st->mtp) return;
    sq->stash_ok = false;
    if (sq->mtp_len > n - 1) sq->mtp_len = n > 0 ? n - 1 : 0;
}

/* Runs one op and leaves on failure; every op below returns a glmoe_status. */
#define TRY(call)                                                                                    \
    do {                                                                                             \
        if ((s = (call))) return s;                                                                  \
    } while (0)

/* One sequence's run of rows within the batch: rows [start, start + n) at positions n_past.. */
typedef struct segment {
    int32_t seq, start, n, n_past;
} segment;


/* A split model's rank: its partial block output (o_proj over its heads, the FFN over its columns
 * or experts) becomes the whole by the sum over the ranks. Nothing on an unsplit model. */
static glmoe_status reduce_ranks(gm_state *st, float *buf, int64_t n, gm_err *err) {
    if (!st->comm) return GLMOE_OK;
    return st->be->ops->all_reduce(st->ex, st->comm, buf, n, err);
}

/* Attention of layer `layer` (its KV in the sequences' caches) over the nh query and nkv KV heads
 * of its weights (a split model's rank: its own) into st->tmp; kv_only stops once the keys and
 * values are stored (the MTP layer's rows that only fill its cache). */
static glmoe_status attention_block(const gm_config *c, const gm_layer *L, gm_state *st, int layer, int32_t T,
                                    const segment *segs, int32_t n_segs, bool kv_only, int32_t nh, int32_t nkv,
                                    gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    glmoe_status s;
    if (op->matmul_n) {
        float *const outs[3] = {st->q, st->k, st->v};
        const gm_weight *const ws[3] = {&L->wq, &L->wk, &L->wv}, *const bs[3] = {&L->bq, &L->bk, &L->bv};
        TRY(op->matmul_n(ex, outs, st->xn, ws, bs, 3, T, err));
    } else {
        TRY(op->matmul(ex, st->q, st->xn, &L->wq, &L->bq, T, err));
        TRY(op->matmul(ex, st->k, st->xn, &L->wk, &L->bk, T, err));
        TRY(op->matmul(ex, st->v, st->xn, &L->wv, &L->bv, T, err));
    }
    if (c->use_qk_norm) { /* RMSNorm over each head's D values, before RoPE */
        TRY(op->add_rmsnorm(ex, st->q, st->q, NULL, &L->q_norm, (int64_t)T * nh, c->head_dim, c->rms_norm_eps, err));
        TRY(op->add_rmsnorm(ex, st->k, st->k, NULL, &L->k_norm, (int64_t)T * nkv, c->head_dim, c->rms_norm_eps, err));
    }
    const size_t QD = (size_t)nh * (size_t)c->head_dim, KD = (size_t)nkv * (size_t)c->head_dim;
    for (int32_t i = 0; i < n_segs; i++) {
        const segment *g = &segs[i];
        /* A lone segment reads n_past from the positions buffer (pos[0]), so that a recorded step
         * stays valid as the sequence grows; with several, each passes its own. RoPE of q and k
         * at the rows' positions is part of the call (one launch on the GPU, not two more). */
        gm_attn_params ap = {.n_heads = nh, .n_kv_heads = nkv, .head_dim = c->head_dim,
                             .n_tokens = g->n, .n_past = g->n_past, .scale = 1.0f / sqrtf((float)c->head_dim),
                             .n_past_mem = n_segs == 1 ? st->pos : NULL,
                             .rope_pos = gm_cptr_add(st->pos, (size_t)g->start * 4), .rotary_dim = c->rotary_dim,
                             .rope_theta = c->rope_theta};
        TRY(op->attention(ex, gm_ptr_add(st->attn, (size_t)g->start * QD * 4), gm_cptr_add(st->q, (size_t)g->start * QD * 4),
                          gm_cptr_add(st->k, (size_t)g->start * KD * 4), gm_cptr_add(st->v, (size_t)g->start * KD * 4),
                          st->seqs[g->seq].kv, layer, &ap, err));
    }
    if (kv_only) return GLMOE_OK;
    TRY(op->matmul(ex, st->tmp, st->attn, &L->wo, NULL, T, err));
    return GLMOE_OK;
}

/* SwiGLU MLP of width gate->rows into out: out = down(silu(gate·xn) ⊙ up·xn). */
static glmoe_status mlp(gm_state *st, const gm_weight *gate, const gm_weight *up, const gm_weight *down,
                        float *out, int32_t T, gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    glmoe_status s;
    if (op->matmul_n) {
        float *const outs[2] = {st->ffn_a, st->ffn_b};
        const gm_weight *const ws[2] = {gate, up};
        TRY(op->matmul_n(ex, outs, st->xn, ws, NULL, 2, T, err));
    } else {
        TRY(op->matmul(ex, st->ffn_a, st->xn, gate, NULL, T, err));
        TRY(op->matmul(ex, st->ffn_b, st->xn, up, NULL, T, err));
    }
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
    if (L->experts.shared) { /* the shared expert is the bank's last, chosen by every token */
        rp.shared_expert = true;
        TRY(op->moe_route(ex, st->route_idx, st->route_w, st->xn, &L->router, &L->router_bias, &rp, T, err));
        return op->moe_experts(ex, st->tmp, false, st->xn, st->route_idx, st->route_w, c->n_experts_per_tok + 1,
                               &L->experts, T, err);
    }
    TRY(op->moe_route(ex, st->route_idx, st->route_w, st->xn, &L->router, &L->router_bias, &rp, T, err));
    bool shared = c->n_shared_experts > 0;
    if (shared) TRY(mlp(st, &L->sh_gate, &L->sh_up, &L->sh_down, st->tmp, T, err)); /* unweighted */
    TRY(op->moe_experts(ex, st->tmp, shared, st->xn, st->route_idx, st->route_w, c->n_experts_per_tok,
                        &L->experts, T, err));
    return GLMOE_OK;
}

/* The ops of one step once its inputs (st->ids, st->pos) are in backend memory: the embedding
 * through the logits of the rows that ask for them (want[t]; NULL: none), left in st->logits in
 * row order. It only queues work (no copy, no wait), so a backend can record it as a graph. */
static glmoe_status run_step(const gm_config *c, const gm_weights *w, gm_state *st, int32_t T, const segment *segs,
                             int32_t n_segs, const bool *want, gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    const int64_t H = c->hidden_size;
    glmoe_status s;
    int32_t nh, nkv;
    rank_heads(c, &w->part, &nh, &nkv);
    TRY(op->embed(ex, st->x, &w->embed, st->ids, T, err));

    const float *pending = NULL; /* the FFN output not yet added to the residual */
    for (int l = 0; l < c->n_layers; l++) {
        const gm_layer *L = &w->layers[l];
        TRY(op->add_rmsnorm(ex, st->xn, st->x, pending, &L->attn_norm, T, H, c->rms_norm_eps, err));
        TRY(attention_block(c, L, st, l, T, segs, n_segs, false, nh, nkv, err));
        TRY(reduce_ranks(st, st->tmp, (int64_t)T * H, err));
        TRY(op->add_rmsnorm(ex, st->xn, st->x, st->tmp, &L->ffn_norm, T, H, c->rms_norm_eps, err));
        TRY(ffn_block(c, L, st, T, err));
        TRY(reduce_ranks(st, st->tmp, (int64_t)T * H, err));
        pending = st->tmp;
    }

    /* With the MTP layer, every row's final-normed state (its input); the logits read them. */
    if (st->mtp) TRY(op->add_rmsnorm(ex, st->hid, st->x, pending, &w->final_norm, T, H, c->rms_norm_eps, err));

    /* Logits, run by run of consecutive rows that ask for them. */
    int32_t done = 0;
    for (int32_t t = 0; want && t < T;) {
        if (!want[t]) {
            t++;
            continue;
        }
        int32_t r = t;
        while (r < T && want[r]) r++;
        const int32_t R = r - t;
        const float *normed = st->xn;
        if (st->mtp) {
            normed = gm_cptr_add(st->hid, (size_t)t * H * 4);
        } else {
            float *x_rows = gm_ptr_add(st->x, (size_t)t * H * 4);
            const float *d_rows = gm_cptr_add(pending, (size_t)t * H * 4);
            TRY(op->add_rmsnorm(ex, st->xn, x_rows, d_rows, &w->final_norm, R, H, c->rms_norm_eps, err));
        }
        TRY(op->matmul(ex, gm_ptr_add(st->logits, (size_t)done * (size_t)c->vocab_size * 4), normed, &w->lm_head, NULL,
                       R, err));
        done += R;
        t = r;
    }
    return GLMOE_OK;
}

/* One-token steps run op by op this many times before the step is recorded: the first makes
 * whatever the ops create lazily (device tables, loaded modules), which a recording must not. */
#define GRAPH_EAGER_STEPS 1

/* A step of T rows of one sequence (1 <= T <= GM_GRAPH_MAX_ROWS), each with its logits (want:
 * all true), or one row without them on a rank of a split model that computes none (want: NULL;
 * split.c gives ranks 1.. no logits: each state always records the same kind), on a backend that
 * records steps: replays that sequence's recorded graph of T rows, recording it first when there
 * is none, collectives included. A failure of the recording itself falls back to running the step
 * op by op, for good: every step when T = 1 (graph_off), steps of T rows otherwise. */
static glmoe_status run_step_graphed(const gm_config *c, const gm_weights *w, gm_state *st, const segment *seg,
                                     const bool *want, gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    gm_seq *sq = &st->seqs[seg->seq];
    const int32_t T = seg->n;
    glmoe_status s;
    if (sq->graph[T]) return op->graph_replay(ex, sq->graph[T], err);
    if (sq->graph_eager_steps[T] < GRAPH_EAGER_STEPS) {
        sq->graph_eager_steps[T]++;
        return run_step(c, w, st, T, seg, 1, want, err);
    }
    s = op->graph_capture_begin(ex, err);
    if (s == GLMOE_E_UNSUPPORTED) {
        gm_err_clear(err);
        st->graph_off = true;
        return run_step(c, w, st, T, seg, 1, want, err);
    }
    if (s) return s;
    gm_err rec = {0}, end = {0};
    glmoe_status rs = run_step(c, w, st, T, seg, 1, want, &rec);
    gm_graph *g = NULL;
    glmoe_status es = op->graph_capture_end(ex, &g, &end);
    if (rs || es || !g) {
        gm_warn("%s: the step of %d row%s could not be recorded (%s); running %s op by op", op->name, T,
                T > 1 ? "s" : "", rs ? rec.msg : end.msg, T > 1 ? "such steps" : "it");
        if (g) op->graph_free(ex, g);
        if (T > 1)
            st->graph_rows_off[T] = true;
        else
            st->graph_off = true;
        return run_step(c, w, st, T, seg, 1, want, err);
    }
    sq->graph[T] = g;
    return op->graph_replay(ex, g, err);
}

/* GLMOE_GRAPH_ROWS=1: steps of several rows (a speculative verify) and steps of contexts that run
 * the MTP layer are recorded too. Off by default until measured on a GPU (BENCHMARKS.md). */
static bool graph_rows_on(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("GLMOE_GRAPH_ROWS");
        on = e && e[0] == '1';
    }
    return on;
}

/* Whether a step of these rows goes through run_step_graphed: one sequence, T rows that all want
 * logits (or, on ranks 1.. of a split model, one row that wants none), a backend that records. */
static bool step_graphable(const gm_state *st, const gm_backend_ops *op, int32_t T, int32_t n_segs, int32_t n_logits,
                           bool quiet_rank) {
    if (!op->graph_replay || st->graph_off || n_segs != 1) return false;
    if (T == 1 && (n_logits == 1 || quiet_rank)) return !st->mtp || graph_rows_on();
    return T <= GM_GRAPH_MAX_ROWS && n_logits == T && !st->graph_rows_off[T] && graph_rows_on();
}

/* Copies each row's input ids and positions to backend memory (st->ids, st->pos), in pieces of
 * 512 through host arrays. */
static glmoe_status upload_rows(gm_state *st, const int32_t *ids_of, const int32_t *pos_of, int32_t T, gm_err *err) {
    glmoe_status s;
    for (int32_t t0 = 0; t0 < T; t0 += 512) {
        const int32_t n = T - t0 < 512 ? T - t0 : 512;
        TRY(st->be->ops->copy_in(st->ex, st->pos + t0, pos_of + t0, (size_t)n * 4, err));
        TRY(st->be->ops->copy_in(st->ex, st->ids + t0, ids_of + t0, (size_t)n * 4, err));
    }
    return GLMOE_OK;
}

glmoe_status mtp_forward(const gm_config *c, const gm_weights *w, gm_state *st, const gm_mtp_row *rows, int32_t R,
                         float *host_logits, gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    const gm_mtp *m = st->mtp;
    const int64_t H = c->hidden_size;
    glmoe_status s;
    if (!m || R <= 0 || R > st->n_batch)
        return gm_fail(err, GLMOE_E_ARG, "mtp: %d rows (batch holds %d)%s", R, st->n_batch, m ? "" : ", no MTP layer");
    segment segs[GM_MAX_SEQS];
    int32_t n_segs = 0;
    int32_t *ids = malloc((size_t)R * 2 * sizeof *ids);
    if (!ids) return gm_fail(err, GLMOE_E_NOMEM, "out of memory");
    int32_t *pos = ids + R;
    s = GLMOE_OK;
    for (int32_t r = 0; r < R && !s; r++) {
        const gm_mtp_row *x = &rows[r];
        ids[r] = x->token;
        pos[r] = x->pos;
        if (n_segs && segs[n_segs - 1].seq == x->seq && x->pos == segs[n_segs - 1].n_past + segs[n_segs - 1].n) {
            segs[n_segs - 1].n++;
        } else if (n_segs == GM_MAX_SEQS || x->pos != st->seqs[x->seq].mtp_len || x->pos >= st->n_ctx) {
            s = gm_fail(err, GLMOE_E_ARG, "mtp: row %d (sequence %d, position %d) does not continue its MTP cache (%d)", r,
                        x->seq, x->pos, st->seqs[x->seq].mtp_len);
        } else {
            segs[n_segs++] = (segment){.seq = x->seq, .start = r, .n = 1, .n_past = x->pos};
        }
    }
    if (!s) s = upload_rows(st, ids, pos, R, err);
    free(ids);
    if (s) return s;
    /* The hidden states side by side in mtp_h, a run of consecutive rows in one copy. */
    for (int32_t r = 0, run; r < R; r += run) {
        for (run = 1; r + run < R && rows[r + run].hidden == rows[r].hidden + (size_t)run * (size_t)H; run++) {}
        TRY(op->copy_2d(ex, gm_ptr_add(st->mtp_h, (size_t)r * (size_t)H * 4), H, rows[r].hidden, H, run, H, err));
    }
    /* x = eh_proj · [enorm(embed(token)); hnorm(hidden)] */
    TRY(op->embed(ex, st->x, &m->embed, st->ids, R, err));
    TRY(op->add_rmsnorm(ex, st->xn, st->x, NULL, &m->enorm, R, H, c->rms_norm_eps, err));
    TRY(op->add_rmsnorm(ex, st->mtp_h, st->mtp_h, NULL, &m->hnorm, R, H, c->rms_norm_eps, err));
    TRY(op->copy_2d(ex, st->mtp_in, 2 * H, st->xn, H, R, H, err));
    TRY(op->copy_2d(ex, gm_ptr_add(st->mtp_in, (size_t)H * 4), 2 * H, st->mtp_h, H, R, H, err));
    TRY(op->matmul(ex, st->x, st->mtp_in, &m->eh_proj, NULL, R, err));
    /* the decoder layer, its KV the caches' last layer */
    const gm_layer *L = &m->block;
    TRY(op->add_rmsnorm(ex, st->xn, st->x, NULL, &L->attn_norm, R, H, c->rms_norm_eps, err));
    int32_t nh, nkv;
    rank_heads(c, &w->part, &nh, &nkv);
    TRY(attention_block(c, L, st, c->n_layers, R, segs, n_segs, host_logits == NULL, nh, nkv, err));
    if (!host_logits) return GLMOE_OK;
    TRY(op->add_rmsnorm(ex, st->xn, st->x, st->tmp, &L->ffn_norm, R, H, c->rms_norm_eps, err));
    TRY(ffn_block(c, L, st, R, err));
    /* shared_head: the normed output is both the head's input and the next draft's hidden state */
    TRY(op->add_rmsnorm(ex, st->hid, st->x, st->tmp, &m->head_norm, R, H, c->rms_norm_eps, err));
    TRY(op->matmul(ex, st->logits, st->hid, &m->head, NULL, R, err));
    return op->copy_out(ex, host_logits, st->logits, (size_t)R * (size_t)c->vocab_size * 4, err);
}

/* After a forward of the batch (segments of rows): the MTP rows whose next token it brought, into
 * the MTP layer's cache, and each sequence's last hidden state into the stash. */
static glmoe_status mtp_follow(const gm_config *c, const gm_weights *w, gm_state *st, const gm_row *rows, int32_t T,
                               const segment *segs, int32_t n_segs, gm_err *err) {
    const int64_t H = c->hidden_size;
    gm_mtp_row *mr = malloc((size_t)T * sizeof *mr);
    if (!mr) return gm_fail(err, GLMOE_E_NOMEM, "out of memory");
    int32_t R = 0;
    glmoe_status s = GLMOE_OK;
    for (int32_t i = 0; i < n_segs && !s; i++) {
        const segment *g = &segs[i];
        const gm_seq *sq = &st->seqs[g->seq];
        if (g->n_past > 0 && sq->stash_ok && sq->mtp_len == g->n_past - 1)
            mr[R++] = (gm_mtp_row){g->seq, g->n_past - 1, rows[g->start].token, gm_cptr_add(st->stash, (size_t)g->seq * H * 4)};
        else if (sq->mtp_len != g->n_past)
            s = gm_fail(err, GLMOE_E_ARG, "mtp: sequence %d's MTP cache is behind (%d of %d positions)", g->seq,
                        sq->mtp_len, g->n_past);
        for (int32_t t = 0; t + 1 < g->n; t++)
            mr[R++] = (gm_mtp_row){g->seq, g->n_past + t, rows[g->start + t + 1].token,
                                   gm_cptr_add(st->hid, (size_t)(g->start + t) * (size_t)H * 4)};
    }
    if (!s && R) s = mtp_forward(c, w, st, mr, R, NULL, err);
    free(mr);
    for (int32_t i = 0; i < n_segs && !s; i++)
        s = st->be->ops->copy_2d(st->ex, gm_ptr_add(st->stash, (size_t)segs[i].seq * (size_t)H * 4), H,
                                 gm_cptr_add(st->hid, (size_t)(segs[i].start + segs[i].n - 1) * (size_t)H * 4), H, 1, H, err);
    return s;
}

glmoe_status forward_batch(const gm_config *c, const gm_weights *w, gm_state *st, const gm_row *rows, int32_t T,
                           float *host_logits, gm_err *err) {
    const gm_backend_ops *op = st->be->ops;
    gm_exec *ex = st->ex;
    glmoe_status s;
    if (T <= 0 || T > st->n_batch)
        return gm_fail(err, GLMOE_E_ARG, "forward: %d tokens (batch holds %d)", T, st->n_batch);
    /* The sequences' runs of rows, checked against their caches. */
    segment segs[GM_MAX_SEQS];
    int32_t n_segs = 0, n_logits = 0;
    int32_t ids[512], pos[512];
    for (int32_t t = 0; t < T; t++) {
        const int32_t q = rows[t].seq;
        if (q < 0 || q >= st->n_seq) return gm_fail(err, GLMOE_E_ARG, "forward: sequence %d of %d", q, st->n_seq);
        if (n_segs == 0 || segs[n_segs - 1].seq != q) {
            for (int32_t i = 0; i < n_segs; i++)
                if (segs[i].seq == q) return gm_fail(err, GLMOE_E_ARG, "forward: sequence %d's rows are not together", q);
            segs[n_segs++] = (segment){.seq = q, .start = t, .n = 0, .n_past = st->seqs[q].n_past};
        }
        segment *g = &segs[n_segs - 1];
        if ((int64_t)g->n_past + g->n + 1 > st->n_ctx)
            return gm_fail(err, GLMOE_E_CONTEXT, "sequence %d: %d + %d tokens exceed the context of %d", q, g->n_past,
                           g->n + 1, st->n_ctx);
        g->n++;
        n_logits += rows[t].logits;
    }
    /* The inputs that change from step to step go to backend memory, where the ops (and a
     * recorded step) read them: each row's position (pos[0] is also a lone sequence's n_past)
     * and token id; in pieces of 512 (the host arrays above). */
    bool *want_all = NULL;
    if (n_logits) {
        want_all = malloc((size_t)T * sizeof *want_all);
        if (!want_all) return gm_fail(err, GLMOE_E_NOMEM, "out of memory");
    }
    for (int32_t t0 = 0, g = 0; t0 < T; t0 += 512) {
        const int32_t n = T - t0 < 512 ? T - t0 : 512;
        for (int32_t i = 0; i < n; i++) {
            const int32_t t = t0 + i;
            while (t >= segs[g].start + segs[g].n) g++;
            pos[i] = segs[g].n_past + (t - segs[g].start);
            ids[i] = rows[t].token;
            if (want_all) want_all[t] = rows[t].logits;
        }
        if ((s = op->copy_in(ex, st->pos + t0, pos, (size_t)n * 4, err)) ||
            (s = op->copy_in(ex, st->ids + t0, ids, (size_t)n * 4, err)))
            goto done;
    }
    const bool quiet_rank = st->comm && st->comm->rank > 0 && n_logits == 0; /* split.c's ranks 1.. */
    if (step_graphable(st, op, T, n_segs, n_logits, quiet_rank)) /* want_all: all true, or NULL */
        s = run_step_graphed(c, w, st, &segs[0], want_all, err);
    else
        s = run_step(c, w, st, T, segs, n_segs, want_all, err);
    if (!s && st->mtp) {
        s = mtp_follow(c, w, st, rows, T, segs, n_segs, err);
        for (int32_t i = 0; i < n_segs; i++) st->seqs[segs[i].seq].stash_ok = false; /* until it all succeeded */
    }
    if (s) goto done;
    if (n_logits)
        s = op->copy_out(ex, host_logits, st->logits, (size_t)n_logits * (size_t)c->vocab_size * 4, err);
    else
        s = op->sync(ex, err);
    if (s) goto done;
    for (int32_t i = 0; i < n_segs; i++) {
        gm_seq *sq = &st->seqs[segs[i].seq];
        sq->n_past += segs[i].n;
        if (!st->mtp) continue;
        for (int32_t t = 0; t < segs[i].n; t++) sq->tokens[segs[i].n_past + t] = rows[segs[i].start + t].token;
        sq->mtp_len = sq->n_past - 1;
        sq->stash_ok = true;
    }
done:
    free(want_all);
    return s;
}

glmoe_status forward(const gm_config *c, const gm_weights *w, gm_state *st, const int32_t *ids, int32_t T,
                     int32_t first_logit, float *host_logits, gm_err *err) {
    if (T <= 0 || T > st->n_batch)
        return gm_fail(err, GLMOE_E_ARG, "forward: %d tokens (batch holds %d)", T, st->n_batch);
    gm_row *rows = malloc((size_t)T * sizeof *rows);
    if (!rows) return gm_fail(err, GLMOE_E_NOMEM, "out of memory");
    for (int32_t t = 0; t < T; t++) rows[t] = (gm_row){.seq = 0, .token = ids[t], .logits = t >= first_logit};
    glmoe_status s = forward_batch(c, w, st, rows, T, host_logits, err);
    free(rows);
    return s;
}
