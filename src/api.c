/*
 * api.c — the public entry points for models and contexts (include/glmoe.h).
 *
 * Each function checks its arguments, calls into the model code, and turns an internal gm_err into
 * the handle's message. Nothing below this layer knows about handles.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "glmoe.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/quantize_checkpoint.h"
#include "util/log.h"

struct glmoe_model {
    gm_err err;
    char *dir;
    gm_config cfg;
    st_set *set;
    gm_quant_config quant;  /* config.json's quantization block (empty if none) */
    gm_backend *be;
    gm_weights w;
    bool bound;
    gm_bind_stats stats;
    glmoe_weight_group groups[GM_MAX_WEIGHT_GROUPS]; /* stats.groups as glmoe_model_info shows them */
    double load_seconds;
};

struct glmoe_context {
    gm_err err;
    glmoe_model *model;
    bool ready;             /* created: the state exists (a failed create hands back a handle too) */
    gm_state st;
    float *logits;          /* host copy of the last eval's logits */
    size_t logits_rows, logits_cap_rows;
};

static const char *const k_null_model = "no model (NULL handle)";

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

glmoe_model_params glmoe_model_params_default(void) {
    return (glmoe_model_params){.device = GLMOE_DEVICE_AUTO, .n_threads = 0, .quantize = {0, 0}};
}

/* An upper bound of the bytes the weights will take where the backend keeps them, from the plan:
 * every weight in its format, vectors as float32. */
static uint64_t weight_bytes(const gm_bind_stats *plan) {
    uint64_t total = 0;
    for (int32_t i = 0; i < plan->n_groups; i++) {
        const gm_weight_group *g = &plan->groups[i];
        total += g->format.type == GM_W_AFFINE ? g->bytes : g->n_params * 4 > g->bytes ? g->n_params * 4 : g->bytes;
    }
    return total;
}

/* The first weight format of the plan the backend does not take, or NULL. */
static const gm_weight_group *unsupported_format(gm_backend *be, const gm_bind_stats *plan) {
    for (int32_t i = 0; i < plan->n_groups; i++)
        if (be->ops->supports && !be->ops->supports(be, &plan->groups[i].format)) return &plan->groups[i];
    return NULL;
}

/* The backend for the planned weights: device AUTO falls back to the CPU, saying so, when the GPU
 * does not take a format the weights have; an explicit device refuses. */
static glmoe_status create_backend_for(glmoe_model *m, const glmoe_model_params *p, const gm_bind_stats *plan) {
    glmoe_status s = gm_backend_create(&m->be, p->device, p->n_threads, &m->err);
    if (s) return s;
    const gm_weight_group *g = unsupported_format(m->be, plan);
    if (!g) return GLMOE_OK;
    if (p->device != GLMOE_DEVICE_AUTO)
        return gm_fail(&m->err, GLMOE_E_UNSUPPORTED, "the %s backend does not run %s weights (%s) yet; use --device cpu",
                       m->be->ops->name, g->format_name, g->kind);
    gm_info("running on the CPU: the %s backend does not run %s weights (%s) yet", m->be->ops->name, g->format_name,
            g->kind);
    m->be->ops->free(m->be);
    m->be = NULL;
    return gm_backend_create(&m->be, GLMOE_DEVICE_CPU, p->n_threads, &m->err);
}

/* Starts a load: the handle glmoe.h promises (in *out even on failure, unless that allocation
 * fails), the parameters with their defaults, and the checks every load makes. */
static glmoe_status model_start(glmoe_model **out, const char *source, const char *no_source,
                                const glmoe_model_params *params, glmoe_model_params *p) {
    if (!out) return GLMOE_E_ARG;
    glmoe_model *m = calloc(1, sizeof *m);
    *out = m;
    if (!m) return GLMOE_E_NOMEM;
    *p = params ? *params : glmoe_model_params_default();
    if (!source) return gm_fail(&m->err, GLMOE_E_ARG, "%s", no_source);
    if (p->n_threads < 0) return gm_fail(&m->err, GLMOE_E_ARG, "n_threads %d is negative", p->n_threads);
    if (p->quantize.bits && !p->quantize.group_size) p->quantize.group_size = 64;
    if (p->quantize.bits && !gm_affine_legal(p->quantize.bits, p->quantize.group_size))
        return gm_fail(&m->err, GLMOE_E_ARG, "quantize: %d bits in groups of %d is not an MLX affine format (bits 2, 3, "
                       "4, 5, 6 or 8; group size 32, 64 or 128)", p->quantize.bits, p->quantize.group_size);
    return GLMOE_OK;
}

/* Ends a load whose weights are bound. */
static glmoe_status model_finish(glmoe_model *m, double t0) {
    for (int32_t i = 0; i < m->stats.n_groups; i++) {
        const gm_weight_group *g = &m->stats.groups[i];
        const bool q = g->format.type == GM_W_AFFINE;
        m->groups[i] = (glmoe_weight_group){.kind = g->kind, .format = g->format_name, .bits = q ? g->format.q.bits : 0,
                                            .group_size = q ? g->format.q.group : 0, .n_tensors = g->n_tensors,
                                            .n_params = g->n_params, .bytes = g->bytes};
    }
    m->bound = true;
    m->load_seconds = now_seconds() - t0;
    gm_err_clear(&m->err);
    return GLMOE_OK;
}

glmoe_status glmoe_model_load(glmoe_model **out, const char *dir, const glmoe_model_params *params) {
    glmoe_model_params p;
    glmoe_status s = model_start(out, dir, "no model directory given", params, &p);
    if (s) return s;
    glmoe_model *m = *out;
    double t0 = now_seconds();
    m->dir = strdup(dir);
    if (!m->dir) return gm_fail(&m->err, GLMOE_E_NOMEM, "out of memory");

    if ((s = config_load(&m->cfg, dir, &m->err))) return s;
    if ((s = quant_config_load(&m->quant, dir, &m->err))) return s;
    if ((s = st_set_open_dir(&m->set, dir, &m->err))) return s;
    /* Every tensor checked and every format known before a backend is chosen or a byte moves. */
    const gm_bind_source src = {.set = m->set, .quant = &m->quant,
                                .requant = {p.quantize.bits, p.quantize.group_size, GM_W_BF16}};
    gm_bind_stats plan;
    if ((s = weights_plan(&m->cfg, &src, &plan, &m->err))) return s;
    if ((s = create_backend_for(m, &p, &plan))) return s;
    if (m->be->ops->check_fit && (s = m->be->ops->check_fit(m->be, weight_bytes(&plan), "the weights", &m->err)))
        return s;
    if ((s = weights_bind(&m->w, &m->cfg, &src, m->be, &m->stats, &m->err))) return s;
    if (m->stats.n_quantized_on_load)
        gm_info("quantized %d weights to q%d g%d while loading", m->stats.n_quantized_on_load, p.quantize.bits,
                p.quantize.group_size);
    if (m->stats.n_skipped)
        gm_info("skipped %d tensors (%.1f MB) of the multi-token-prediction layer", m->stats.n_skipped,
                (double)m->stats.bytes_skipped / 1e6);
    return model_finish(m, t0);
}

glmoe_status glmoe_model_load_synthetic(glmoe_model **out, const char *config_name, int32_t n_layers, uint64_t seed,
                                        const glmoe_model_params *params) {
    glmoe_model_params p;
    glmoe_status s = model_start(out, config_name, "no configuration named", params, &p);
    if (s) return s;
    glmoe_model *m = *out;
    double t0 = now_seconds();
    if ((s = config_preset(&m->cfg, config_name, n_layers, &m->err))) return s;
    char dir[128];
    snprintf(dir, sizeof dir, "synthetic %s, %d layers, seed %llu", config_name, m->cfg.n_layers,
             (unsigned long long)seed);
    if (!(m->dir = strdup(dir))) return gm_fail(&m->err, GLMOE_E_NOMEM, "out of memory");
    if ((s = gm_backend_create(&m->be, p.device, p.n_threads, &m->err))) return s;
    if ((s = weights_bind_synthetic(&m->w, &m->cfg, seed, m->be, &m->stats, &m->err))) return s;
    return model_finish(m, t0);
}

void glmoe_model_free(glmoe_model *m) {
    if (!m) return;
    if (m->bound) weights_release(&m->w, &m->cfg, m->be);
    if (m->be) m->be->ops->free(m->be);
    st_set_close(m->set);
    quant_config_free(&m->quant);
    free(m->dir);
    free(m);
}

const char *glmoe_model_errmsg(const glmoe_model *m) { return m ? m->err.msg : k_null_model; }

glmoe_status glmoe_model_get_info(const glmoe_model *m, glmoe_model_info *out) {
    if (!m || !out) return GLMOE_E_ARG;
    if (!m->bound) return GLMOE_E_ARG;
    const gm_config *c = &m->cfg;
    *out = (glmoe_model_info){
        .architecture = "Glm4MoeForCausalLM",
        .dir = m->dir,
        .backend = m->be->ops->name,
        .dtype = c->dtype,
        .vocab_size = c->vocab_size,
        .hidden_size = c->hidden_size,
        .n_layers = c->n_layers,
        .n_dense_layers = c->first_k_dense_replace,
        .n_heads = c->n_heads,
        .n_kv_heads = c->n_kv_heads,
        .head_dim = c->head_dim,
        .rotary_dim = c->rotary_dim,
        .intermediate_size = c->intermediate_size,
        .moe_intermediate_size = c->moe_intermediate_size,
        .n_experts = c->n_experts,
        .n_experts_per_tok = c->n_experts_per_tok,
        .n_shared_experts = c->n_shared_experts,
        .n_group = c->n_group,
        .topk_group = c->topk_group,
        .use_qk_norm = c->use_qk_norm,
        .norm_topk_prob = c->norm_topk_prob,
        .routed_scaling_factor = c->routed_scaling_factor,
        .rope_theta = c->rope_theta,
        .rms_norm_eps = c->rms_norm_eps,
        .max_position_embeddings = c->max_position_embeddings,
        .eos_ids = c->eos_ids,
        .n_eos_ids = c->n_eos,
        .n_params = m->stats.n_params,
        .n_params_active = m->stats.n_params_active,
        .bytes_bf16 = m->stats.bytes_bf16,
        .bytes_f16 = m->stats.bytes_f16,
        .bytes_f32 = m->stats.bytes_f32,
        .bytes_quantized = m->stats.bytes_affine,
        .n_quantized_on_load = m->stats.n_quantized_on_load,
        .weight_groups = m->groups,
        .n_weight_groups = m->stats.n_groups,
        .n_tensors_skipped = m->stats.n_skipped,
        .bytes_skipped = m->stats.bytes_skipped,
        .n_tensors_unused = m->stats.n_unused,
        .bytes_realigned = st_set_misaligned_bytes(m->set),
        .load_seconds = m->load_seconds,
        .resident_bytes = m->stats.bytes_copied,
    };
    return GLMOE_OK;
}

/* ---- contexts ---------------------------------------------------------------------------- */

glmoe_context_params glmoe_context_params_default(void) {
    return (glmoe_context_params){.n_ctx = 0, .n_batch = 0};
}

glmoe_status glmoe_context_create(glmoe_context **out, glmoe_model *m, const glmoe_context_params *params) {
    if (!out) return GLMOE_E_ARG;
    glmoe_context *ctx = calloc(1, sizeof *ctx);
    *out = ctx;
    if (!ctx) return GLMOE_E_NOMEM;
    ctx->model = m;
    /* Every failure is written to the new handle, never to the model: other threads may be
     * creating contexts of the same model, or reading its message, at the same time. */
    if (!m) return gm_fail(&ctx->err, GLMOE_E_ARG, "no model (NULL handle)");
    if (!m->bound) return gm_fail(&ctx->err, GLMOE_E_ARG, "the model did not load");
    glmoe_context_params p = params ? *params : glmoe_context_params_default();
    int32_t max_pos = m->cfg.max_position_embeddings;
    if (p.n_ctx < 0 || p.n_batch < 0)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "n_ctx (%d) and n_batch (%d) must not be negative", p.n_ctx,
                       p.n_batch);
    if (p.n_ctx == 0) p.n_ctx = max_pos < 4096 ? max_pos : 4096;
    if (p.n_ctx > max_pos)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "context of %d tokens exceeds the model's max_position_embeddings %d",
                       p.n_ctx, max_pos);
    if (p.n_batch == 0) p.n_batch = 512;
    if (p.n_batch > p.n_ctx) p.n_batch = p.n_ctx;
    glmoe_status s = state_create(&ctx->st, &m->cfg, m->be, p.n_batch, p.n_ctx, &ctx->err);
    if (s) return s;
    ctx->ready = true;
    return GLMOE_OK;
}

void glmoe_context_free(glmoe_context *ctx) {
    if (!ctx) return;
    state_free(&ctx->st);
    free(ctx->logits);
    free(ctx);
}

const char *glmoe_context_errmsg(const glmoe_context *ctx) { return ctx ? ctx->err.msg : "no context (NULL handle)"; }

static glmoe_status ensure_logit_rows(glmoe_context *ctx, size_t rows) {
    if (rows <= ctx->logits_cap_rows) return GLMOE_OK;
    size_t V = (size_t)ctx->model->cfg.vocab_size;
    float *p = realloc(ctx->logits, rows * V * sizeof(float));
    if (!p) return gm_fail(&ctx->err, GLMOE_E_NOMEM, "cannot allocate logits for %zu positions", rows);
    ctx->logits = p;
    ctx->logits_cap_rows = rows;
    return GLMOE_OK;
}

glmoe_status glmoe_context_eval(glmoe_context *ctx, const int32_t *ids, size_t n_ids, glmoe_logits_mode mode) {
    if (!ctx) return GLMOE_E_ARG;
    if (!ctx->ready) return GLMOE_E_ARG; /* keeps the message of the failed create */
    gm_err_clear(&ctx->err);
    if (!ids || n_ids == 0) return gm_fail(&ctx->err, GLMOE_E_ARG, "no token ids to evaluate");
    if (mode != GLMOE_LOGITS_LAST && mode != GLMOE_LOGITS_ALL && mode != GLMOE_LOGITS_NONE)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "unknown logits mode %d", (int)mode);
    const gm_config *c = &ctx->model->cfg;
    gm_state *st = &ctx->st;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return gm_fail(&ctx->err, GLMOE_E_TOKEN, "token id %d at position %zu is outside the vocabulary [0, %d)",
                           ids[i], i, c->vocab_size);
    if (n_ids > (size_t)(st->n_ctx - st->n_past))
        return gm_fail(&ctx->err, GLMOE_E_CONTEXT,
                       "%zu tokens do not fit: %d of the context's %d positions are used (raise --ctx, at most %d)",
                       n_ids, st->n_past, st->n_ctx, c->max_position_embeddings);
    size_t rows = mode == GLMOE_LOGITS_ALL ? n_ids : mode == GLMOE_LOGITS_LAST ? 1 : 0;
    glmoe_status s = ensure_logit_rows(ctx, rows);
    if (s) return s;
    ctx->logits_rows = 0;

    int32_t start_past = st->n_past;
    for (size_t done = 0; done < n_ids;) {
        int32_t T = (int32_t)(n_ids - done < (size_t)st->n_batch ? n_ids - done : (size_t)st->n_batch);
        bool last_chunk = done + (size_t)T == n_ids;
        int32_t first = mode == GLMOE_LOGITS_ALL ? 0 : (mode == GLMOE_LOGITS_LAST && last_chunk) ? T - 1 : T;
        float *dst = mode == GLMOE_LOGITS_ALL ? ctx->logits + done * (size_t)c->vocab_size : ctx->logits;
        s = forward(c, &ctx->model->w, st, ids + done, T, first, dst, &ctx->err);
        if (s) {
            st->n_past = start_past; /* nothing appended: the cache beyond n_past is ignored */
            return s;
        }
        done += (size_t)T;
    }
    ctx->logits_rows = rows;
    return GLMOE_OK;
}

glmoe_status glmoe_context_logits(glmoe_context *ctx, const float **logits, size_t *rows) {
    if (!ctx || !logits || !rows) return GLMOE_E_ARG;
    *logits = ctx->logits_rows ? ctx->logits : NULL;
    *rows = ctx->logits_rows;
    if (!ctx->logits_rows) return gm_fail(&ctx->err, GLMOE_E_ARG, "no logits: the last eval asked for none");
    return GLMOE_OK;
}

size_t glmoe_context_n_past(const glmoe_context *ctx) { return ctx ? (size_t)ctx->st.n_past : 0; }
size_t glmoe_context_n_ctx(const glmoe_context *ctx) { return ctx ? (size_t)ctx->st.n_ctx : 0; }

void glmoe_context_reset(glmoe_context *ctx) {
    if (!ctx) return;
    ctx->st.n_past = 0;
    ctx->logits_rows = 0;
}

void glmoe_context_truncate(glmoe_context *ctx, size_t n) {
    if (!ctx || n >= (size_t)ctx->st.n_past) return;
    ctx->st.n_past = (int32_t)n;
    ctx->logits_rows = 0;
}

/* ---- writing quantized checkpoints -------------------------------------------------------------- */

glmoe_status glmoe_quantize_checkpoint(const char *in_dir, const char *out_dir, const glmoe_quantize *q,
                                       glmoe_progress_fn progress, void *user_data, char *err, size_t err_size) {
    gm_err e = {0};
    glmoe_status s;
    if (!in_dir || !out_dir || !q)
        s = gm_fail(&e, GLMOE_E_ARG, "glmoe_quantize_checkpoint: in_dir, out_dir and q are required");
    else
        s = checkpoint_quantize(in_dir, out_dir, q->bits, q->group_size ? q->group_size : 64, progress, user_data, &e);
    if (err && err_size) snprintf(err, err_size, "%s", s ? e.msg : "");
    return s;
}
