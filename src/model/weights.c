/*
 * weights.c — binds checkpoint tensors (Hugging Face names, spec §3.1) to the model's slots.
 *
 * Every tensor the forward needs is looked up by name, its dtype (BF16, F16 or F32) and shape are
 * checked against the configuration, and the backend binds it (the CPU keeps it in the mapping).
 * Tensors of layers at index >= num_hidden_layers (the multi-token-prediction layer) are skipped
 * and counted; any other tensor glmoe does not know is reported once as unused.
 *
 * weights_bind_synthetic fills the same slots with random weights the backend generates (for
 * benchmarks of a configuration alone), by the same code path and the same names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "util/log.h"
#include "util/synthetic.h"

typedef struct binder {
    const gm_config *cfg;
    const st_set *set;      /* NULL: synthetic weights made by the backend from seed */
    uint64_t seed;
    gm_backend *be;
    gm_bind_stats *stats;
    const st_tensor **used; /* every tensor bound, to find the unused ones afterwards */
    size_t n_used;
    gm_err *err;
} binder;

static glmoe_status wtype_of(const st_tensor *t, gm_wtype *out, gm_err *err) {
    switch (t->dtype) {
    case ST_BF16: *out = GM_W_BF16; return GLMOE_OK;
    case ST_F16: *out = GM_W_F16; return GLMOE_OK;
    case ST_F32: *out = GM_W_F32; return GLMOE_OK;
    default:
        return gm_fail(err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\": dtype %s is not supported (BF16, F16 or F32)",
                       st_file_name(t->file), t->name, st_dtype_name(t->dtype));
    }
}

/* Binds tensor `name` of shape [rows, cols] (rows == 0: a vector of cols). `why` explains the
 * expected shape in terms of config fields, for the error message. */
/* Counts a bound tensor: numel parameters stored as `type` in `stored` bytes, `copied` of them
 * allocated by the backend. */
static void account(binder *b, gm_wtype type, uint64_t numel, uint64_t stored, size_t copied) {
    b->stats->bytes_copied += copied;
    b->stats->n_params += numel;
    if (type == GM_W_BF16) b->stats->bytes_bf16 += stored;
    if (type == GM_W_F16) b->stats->bytes_f16 += stored;
    if (type == GM_W_F32) b->stats->bytes_f32 += stored;
}

/* A synthetic tensor's distribution, as tools/gpu/make_synthetic.py draws a checkpoint's: norm
 * weights 1, the router's correction bias 0, everything else (matrices, attention biases)
 * mean 0 and standard deviation 0.02. */
static void synthetic_init(const char *name, float *mean, float *std) {
    size_t n = strlen(name);
    bool norm = n >= 11 && !strcmp(name + n - 11, "norm.weight");
    bool router_bias = strstr(name, "e_score_correction_bias") != NULL;
    *mean = norm ? 1.0f : 0.0f;
    *std = norm || router_bias ? 0.0f : 0.02f;
}

static glmoe_status bind_synthetic(binder *b, gm_weight *w, const char *name, int64_t rows, int64_t cols,
                                   gm_bind_kind kind) {
    if (!b->be->ops->weight_synthetic)
        return gm_fail(b->err, GLMOE_E_UNSUPPORTED, "the %s backend cannot make synthetic weights", b->be->ops->name);
    float mean, std;
    synthetic_init(name, &mean, &std);
    const gm_wtype type = kind == GM_BIND_VECTOR_F32 ? GM_W_F32 : GM_W_BF16;
    size_t bytes = 0;
    glmoe_status s = b->be->ops->weight_synthetic(b->be, w, type, rows == 0 ? 1 : rows, cols,
                                                  gm_synthetic_seed(b->seed, name), mean, std, &bytes, b->err);
    if (s) {
        gm_err_prefix(b->err, "tensor \"%s\": ", name);
        return s;
    }
    account(b, type, (uint64_t)(rows == 0 ? 1 : rows) * (uint64_t)cols, bytes, bytes);
    return GLMOE_OK;
}

static glmoe_status bind(binder *b, gm_weight *w, const char *name, int64_t rows, int64_t cols,
                         gm_bind_kind kind, bool optional, const char *why) {
    memset(w, 0, sizeof *w);
    if (!b->set) return optional && !strcmp(name, "lm_head.weight") && b->cfg->tie_word_embeddings
                            ? GLMOE_OK
                            : bind_synthetic(b, w, name, rows, cols, kind);
    const st_tensor *t = st_set_find(b->set, name);
    if (!t) {
        if (optional) return GLMOE_OK;
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "tensor \"%s\" is missing from the checkpoint", name);
    }
    gm_host_tensor h;
    glmoe_status s = wtype_of(t, &h.type, b->err);
    if (s) return s;
    bool ok = rows == 0 ? (t->rank == 1 && (int64_t)t->shape[0] == cols)
                        : (t->rank == 2 && (int64_t)t->shape[0] == rows && (int64_t)t->shape[1] == cols);
    if (!ok) {
        char got[128] = "[", want[64];
        for (int i = 0; i < t->rank; i++) {
            size_t n = strlen(got);
            snprintf(got + n, sizeof got - n, "%s%llu", i ? ", " : "", (unsigned long long)t->shape[i]);
        }
        strncat(got, "]", sizeof got - strlen(got) - 1);
        if (rows == 0)
            snprintf(want, sizeof want, "[%lld]", (long long)cols);
        else
            snprintf(want, sizeof want, "[%lld, %lld]", (long long)rows, (long long)cols);
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\" has shape %s but the config needs %s (%s)",
                       st_file_name(t->file), name, got, want, why);
    }
    h.rows = rows == 0 ? 1 : rows;
    h.cols = cols;
    h.data = t->data;
    h.aligned = t->aligned;
    size_t copied = 0;
    if ((s = b->be->ops->weight_bind(b->be, w, &h, kind, &copied, b->err))) {
        gm_err_prefix(b->err, "tensor \"%s\": ", name);
        return s;
    }
    account(b, h.type, t->numel, t->nbytes, copied);
    b->used[b->n_used++] = t;
    return GLMOE_OK;
}

static glmoe_status bind_layer(binder *b, gm_layer *L, int i) {
    const gm_config *c = b->cfg;
    const int64_t H = c->hidden_size, QD = (int64_t)c->n_heads * c->head_dim,
                  KD = (int64_t)c->n_kv_heads * c->head_dim;
    char n[256];
    glmoe_status s;
#define NAME(suffix) (snprintf(n, sizeof n, "model.layers.%d.%s", i, suffix), n)
#define BIND(slot, suffix, rows, cols, kind, opt, why)                                                       \
    if ((s = bind(b, slot, NAME(suffix), rows, cols, kind, opt, why))) return s
    BIND(&L->attn_norm, "input_layernorm.weight", 0, H, GM_BIND_VECTOR_F32, false, "hidden_size");
    BIND(&L->ffn_norm, "post_attention_layernorm.weight", 0, H, GM_BIND_VECTOR_F32, false, "hidden_size");
    BIND(&L->wq, "self_attn.q_proj.weight", QD, H, GM_BIND_MATRIX, false, "num_attention_heads*head_dim, hidden_size");
    BIND(&L->wk, "self_attn.k_proj.weight", KD, H, GM_BIND_MATRIX, false, "num_key_value_heads*head_dim, hidden_size");
    BIND(&L->wv, "self_attn.v_proj.weight", KD, H, GM_BIND_MATRIX, false, "num_key_value_heads*head_dim, hidden_size");
    BIND(&L->wo, "self_attn.o_proj.weight", H, QD, GM_BIND_MATRIX, false, "hidden_size, num_attention_heads*head_dim");
    if (c->attention_bias) {
        BIND(&L->bq, "self_attn.q_proj.bias", 0, QD, GM_BIND_VECTOR_F32, false, "attention_bias is true");
        BIND(&L->bk, "self_attn.k_proj.bias", 0, KD, GM_BIND_VECTOR_F32, false, "attention_bias is true");
        BIND(&L->bv, "self_attn.v_proj.bias", 0, KD, GM_BIND_VECTOR_F32, false, "attention_bias is true");
    }
    if (c->use_qk_norm) {
        BIND(&L->q_norm, "self_attn.q_norm.weight", 0, c->head_dim, GM_BIND_VECTOR_F32, false, "use_qk_norm is true");
        BIND(&L->k_norm, "self_attn.k_norm.weight", 0, c->head_dim, GM_BIND_VECTOR_F32, false, "use_qk_norm is true");
    }
    L->is_moe = config_layer_is_moe(c, i);
    if (!L->is_moe) {
        const int64_t I = c->intermediate_size;
        BIND(&L->gate, "mlp.gate_proj.weight", I, H, GM_BIND_MATRIX, false, "intermediate_size, hidden_size");
        BIND(&L->up, "mlp.up_proj.weight", I, H, GM_BIND_MATRIX, false, "intermediate_size, hidden_size");
        BIND(&L->down, "mlp.down_proj.weight", H, I, GM_BIND_MATRIX, false, "hidden_size, intermediate_size");
        return GLMOE_OK;
    }
    const int64_t E = c->n_experts, Im = c->moe_intermediate_size, Is = Im * c->n_shared_experts;
    BIND(&L->router, "mlp.gate.weight", E, H, GM_BIND_MATRIX, false, "n_routed_experts, hidden_size");
    BIND(&L->router_bias, "mlp.gate.e_score_correction_bias", 0, E, GM_BIND_VECTOR_F32, false, "n_routed_experts");
    gm_experts *bank = &L->experts;
    bank->gate = calloc((size_t)E, sizeof(gm_weight));
    bank->up = calloc((size_t)E, sizeof(gm_weight));
    bank->down = calloc((size_t)E, sizeof(gm_weight));
    if (!bank->gate || !bank->up || !bank->down)
        return gm_fail(b->err, GLMOE_E_NOMEM, "out of memory for %lld experts", (long long)E);
    bank->n = (int32_t)E;
    for (int64_t e = 0; e < E; e++) {
        char suffix[96];
        snprintf(suffix, sizeof suffix, "mlp.experts.%lld.gate_proj.weight", (long long)e);
        BIND(&bank->gate[e], suffix, Im, H, GM_BIND_MATRIX, false, "moe_intermediate_size, hidden_size");
        snprintf(suffix, sizeof suffix, "mlp.experts.%lld.up_proj.weight", (long long)e);
        BIND(&bank->up[e], suffix, Im, H, GM_BIND_MATRIX, false, "moe_intermediate_size, hidden_size");
        snprintf(suffix, sizeof suffix, "mlp.experts.%lld.down_proj.weight", (long long)e);
        BIND(&bank->down[e], suffix, H, Im, GM_BIND_MATRIX, false, "hidden_size, moe_intermediate_size");
    }
    if (b->be->ops->prepare_experts && (s = b->be->ops->prepare_experts(b->be, bank, b->err))) {
        gm_err_prefix(b->err, "layer %d's experts: ", i);
        return s;
    }
    if (Is > 0) {
        BIND(&L->sh_gate, "mlp.shared_experts.gate_proj.weight", Is, H, GM_BIND_MATRIX, false,
             "moe_intermediate_size*n_shared_experts, hidden_size");
        BIND(&L->sh_up, "mlp.shared_experts.up_proj.weight", Is, H, GM_BIND_MATRIX, false,
             "moe_intermediate_size*n_shared_experts, hidden_size");
        BIND(&L->sh_down, "mlp.shared_experts.down_proj.weight", H, Is, GM_BIND_MATRIX, false,
             "hidden_size, moe_intermediate_size*n_shared_experts");
    }
#undef BIND
#undef NAME
    return GLMOE_OK;
}

/* Layer index of "model.layers.<i>.…", or -1. */
static long layer_index(const char *name) {
    const char *p = "model.layers.";
    if (strncmp(name, p, strlen(p)) != 0) return -1;
    char *end;
    long i = strtol(name + strlen(p), &end, 10);
    return end != name + strlen(p) && *end == '.' ? i : -1;
}

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (const st_tensor *const *)a, y = (uintptr_t) * (const st_tensor *const *)b;
    return x < y ? -1 : x > y;
}

/* Counts what was not bound: MTP-layer tensors are expected and skipped; others are warned about. */
static void account_unbound(binder *b) {
    qsort(b->used, b->n_used, sizeof *b->used, cmp_ptr);
    for (size_t i = 0; i < st_set_count(b->set); i++) {
        const st_tensor *t = st_set_tensor(b->set, i);
        if (bsearch(&t, b->used, b->n_used, sizeof *b->used, cmp_ptr)) continue;
        if (layer_index(t->name) >= b->cfg->n_layers) {
            b->stats->n_skipped++;
            b->stats->bytes_skipped += t->nbytes;
        } else {
            if (b->stats->n_unused < 8) gm_warn("%s: tensor \"%s\" is not used by the model", st_file_name(t->file), t->name);
            b->stats->n_unused++;
        }
    }
    if (b->stats->n_unused > 8) gm_warn("... %d unused tensors in all", b->stats->n_unused);
}

static glmoe_status bind_all(gm_weights *w, const gm_config *c, const st_set *set, uint64_t seed, gm_backend *be,
                             gm_bind_stats *stats, gm_err *err) {
    memset(w, 0, sizeof *w);
    memset(stats, 0, sizeof *stats);
    binder b = {.cfg = c, .set = set, .seed = seed, .be = be, .stats = stats, .err = err};
    b.used = calloc((set ? st_set_count(set) : 0) + 1, sizeof *b.used);
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    glmoe_status s = GLMOE_OK;
    if (!b.used || !w->layers) {
        s = gm_fail(err, GLMOE_E_NOMEM, "out of memory binding weights");
        goto done;
    }
    const int64_t V = c->vocab_size, H = c->hidden_size;
    if ((s = bind(&b, &w->embed, "model.embed_tokens.weight", V, H, GM_BIND_MATRIX, false, "vocab_size, hidden_size")))
        goto done;
    if ((s = bind(&b, &w->final_norm, "model.norm.weight", 0, H, GM_BIND_VECTOR_F32, false, "hidden_size"))) goto done;
    if ((s = bind(&b, &w->lm_head, "lm_head.weight", V, H, GM_BIND_MATRIX, c->tie_word_embeddings,
                  "vocab_size, hidden_size")))
        goto done;
    if (!w->lm_head.data) { /* tied: the head reads the embedding (not owned twice) */
        w->lm_head = w->embed;
        w->lm_head.owned = NULL;
    }
    for (int i = 0; i < c->n_layers; i++)
        if ((s = bind_layer(&b, &w->layers[i], i))) goto done;

    /* Active parameters: everything but the routed experts, plus K of them per MoE layer. */
    uint64_t per_expert = 3ull * (uint64_t)c->moe_intermediate_size * (uint64_t)H;
    int n_moe = c->n_layers - c->first_k_dense_replace;
    stats->n_params_active = stats->n_params - (uint64_t)n_moe * (uint64_t)c->n_experts * per_expert +
                             (uint64_t)n_moe * (uint64_t)c->n_experts_per_tok * per_expert;
    if (set) account_unbound(&b);
done:
    free(b.used);
    if (s) weights_release(w, c, be);
    return s;
}

glmoe_status weights_bind(gm_weights *w, const gm_config *c, const st_set *set, gm_backend *be,
                          gm_bind_stats *stats, gm_err *err) {
    return bind_all(w, c, set, 0, be, stats, err);
}

glmoe_status weights_bind_synthetic(gm_weights *w, const gm_config *c, uint64_t seed, gm_backend *be,
                                    gm_bind_stats *stats, gm_err *err) {
    return bind_all(w, c, NULL, seed, be, stats, err);
}

static void release(gm_backend *be, gm_weight *w) {
    if (w->owned) be->ops->weight_release(be, w);
}

void weights_release(gm_weights *w, const gm_config *c, gm_backend *be) {
    if (!w) return;
    release(be, &w->embed);
    release(be, &w->final_norm);
    release(be, &w->lm_head);
    for (int i = 0; w->layers && i < c->n_layers; i++) {
        gm_layer *L = &w->layers[i];
        gm_weight *all[] = {&L->attn_norm, &L->ffn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                            &L->bv, &L->q_norm, &L->k_norm, &L->gate, &L->up, &L->down, &L->router,
                            &L->router_bias, &L->sh_gate, &L->sh_up, &L->sh_down};
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) release(be, all[j]);
        gm_experts *bank = &L->experts;
        if (be->ops->release_experts) be->ops->release_experts(be, bank);
        for (int e = 0; e < bank->n; e++) {
            release(be, &bank->gate[e]);
            release(be, &bank->up[e]);
            release(be, &bank->down[e]);
        }
        free(bank->gate);
        free(bank->up);
        free(bank->down);
    }
    free(w->layers);
    memset(w, 0, sizeof *w);
}
