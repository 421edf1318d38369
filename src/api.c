/*
 * api.c — the public entry points for models and contexts (include/glmoe.h).
 *
 * Each function checks its arguments, calls into the model code, and turns an internal gm_err into
 * the handle's message. Nothing below this layer knows about handles.
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "glmoe.h"
#include "io/safetensors.h"
#include "backend/comm.h"
#include "model/model.h"
#include "model/quantize_checkpoint.h"
#include "model/split.h"
#include "util/log.h"
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

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
    /* A model split over n_ranks devices (params.n_devices): be and w are rank 0's; ranks 1.. have
     * their own backend and weights here (n_peers of them bound). */
    int32_t n_ranks, n_peers;
    gm_backend **peer_be;
    gm_weights *peer_w;
};

/* Most devices a model is split over. */
#define GM_MAX_RANKS 64

struct glmoe_context {
    gm_err err;
    glmoe_model *model;
    bool ready;             /* created: the state exists (a failed create hands back a handle too) */
    gm_state st;
    float *logits;          /* host copy of the last eval's (decode's) logits, the rows that asked */
    size_t logits_rows, logits_cap_rows;
    int32_t *row_slot;      /* decode: row i's logits are logits row row_slot[i], or -1 */
    size_t n_rows_last, row_slot_cap;
    gm_row *sorted;         /* [n_batch] a chunk of rows grouped by sequence, and where each came from */
    int32_t *sorted_from;
    float *chunk_logits;    /* a regrouped chunk's logits before they go to their rows' slots */
    size_t chunk_logits_cap;
    int32_t n_draft;        /* most drafts per speculative step; 0: the MTP layer is not run */
    gm_state *peer_st;      /* a split model: the states of ranks 1.. (st is rank 0's) */
    gm_comm **comm;         /* and the ranks' group, [model->n_ranks] */
};

static const char *const k_null_model = "no model (NULL handle)";

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

glmoe_model_params glmoe_model_params_default(void) {
    return (glmoe_model_params){.device = GLMOE_DEVICE_AUTO, .n_threads = 0, .quantize = {0, 0}, .skip_mtp = false,
                                .progress = NULL, .progress_user_data = NULL, .n_devices = 0,
                                .split = GLMOE_SPLIT_AUTO};
}


/* The first weight format of the plan the backend does not take, or NULL. */
static const gm_weight_group *unsupported_format(gm_backend *be, const gm_bind_stats *plan) {
    for (int32_t i = 0; i < plan->n_groups; i++)
        if (be->ops->supports && !be->ops->supports(be, &plan->groups[i].format)) return &plan->groups[i];
    return NULL;
}

/* Weights per CPU thread below which another thread is not worth having (n_threads 0). An op of a
 * small model is a few microseconds of work, less than a team of threads costs when one of them
 * waits for a core: on a 2-vCPU VM whose other vCPU is busy, the 13.6M-parameter demo model
 * decodes 2-3x slower on two threads than on one (BENCHMARKS.md, "CPU threads"). */
#define BYTES_PER_THREAD ((uint64_t)256 << 20)

/* The CPU threads of n_threads 0: one per BYTES_PER_THREAD of weights, at least one, at most the
 * cores (0: the backend's default, all of them). */
static int default_threads(uint64_t bytes) {
    uint64_t n = bytes / BYTES_PER_THREAD;
    int cores = omp_get_num_procs();
    return n >= (uint64_t)cores ? 0 : n < 1 ? 1 : (int)n;
}

/* The backend for the planned weights: device AUTO falls back to the CPU, saying so, when the GPU
 * does not take a format the weights have; an explicit device refuses. */
static glmoe_status create_backend_for(glmoe_model *m, const glmoe_model_params *params, const gm_bind_stats *plan) {
    glmoe_model_params q = *params, *p = &q;
    if (!p->n_threads) {
        p->n_threads = default_threads(weights_plan_bytes(plan));
        if (p->n_threads)
            gm_info("%d CPU thread%s for %.0f MB of weights (one per %llu MiB, at most %d cores; n_threads sets it)",
                    p->n_threads, p->n_threads == 1 ? "" : "s", (double)weights_plan_bytes(plan) / 1e6,
                    (unsigned long long)(BYTES_PER_THREAD >> 20), omp_get_num_procs());
    }
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

/* The model as an out-of-memory message names it: its directory, and the format it is quantized
 * to while loading. */
static void fit_subject(char *buf, size_t size, const char *dir, const glmoe_model_params *p) {
    if (p->quantize.bits)
        snprintf(buf, size, "%.256s at q%d g%d", dir, p->quantize.bits, p->quantize.group_size);
    else
        snprintf(buf, size, "%.256s", dir);
}

/* params.quantize with its default group size, checked (a load and a plan take the same). */
static glmoe_status quantize_resolve(glmoe_quantize *q, gm_err *err) {
    if (q->bits && !q->group_size) q->group_size = 64;
    if (q->bits && !gm_affine_legal(q->bits, q->group_size))
        return gm_fail(err, GLMOE_E_ARG, "quantize: %d bits in groups of %d is not an MLX affine format (bits 2, 3, "
                       "4, 5, 6 or 8; group size 32, 64 or 128)", q->bits, q->group_size);
    return GLMOE_OK;
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
    if (p->n_devices < 0 || p->n_devices > GM_MAX_RANKS)
        return gm_fail(&m->err, GLMOE_E_ARG, "n_devices %d is outside [0, %d]", p->n_devices, GM_MAX_RANKS);
    if (p->split != GLMOE_SPLIT_AUTO && p->split != GLMOE_SPLIT_TP && p->split != GLMOE_SPLIT_EP)
        return gm_fail(&m->err, GLMOE_E_ARG, "unknown split mode %d", (int)p->split);
    if (p->n_devices > 1) p->skip_mtp = true; /* the MTP layer is not split yet */
    return quantize_resolve(&p->quantize, &m->err);
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

static void release_peers(glmoe_model *m) {
    for (int32_t i = 0; i < m->n_peers; i++) weights_release(&m->peer_w[i], &m->cfg, m->peer_be[i]);
    for (int32_t i = 0; m->peer_be && i < m->n_ranks - 1; i++)
        if (m->peer_be[i]) m->peer_be[i]->ops->free(m->peer_be[i]);
    free(m->peer_be);
    free(m->peer_w);
    m->peer_be = NULL;
    m->peer_w = NULL;
    m->n_peers = 0;
}

/* Binds the weights of src (NULL: the synthetic model of seed and requant) on m->be, or, with
 * p->n_devices > 1, each rank's slices on a backend of its own (rank 0: m->be; on CUDA, rank r
 * on device r), the ranks planned first so that a split that does not divide fails before
 * anything is bound, and each rank's slices checked against its device's free memory (`what`
 * names the model) before any is made. */
static glmoe_status bind_ranks(glmoe_model *m, const glmoe_model_params *p, const gm_bind_source *src, uint64_t seed,
                               const gm_affine *requant, const gm_bind_stats *plan, const char *what) {
    const int32_t n = p->n_devices > 1 ? p->n_devices : 1;
    m->n_ranks = n;
    if (n == 1)
        return src ? weights_bind(&m->w, &m->cfg, src, m->be, &m->stats, &m->err)
                   : weights_bind_synthetic(&m->w, &m->cfg, seed, requant, m->be, &m->stats, &m->err);
    if (!m->be->ops->all_reduce)
        return gm_fail(&m->err, GLMOE_E_UNSUPPORTED, "split over %d devices: this build's %s backend has no "
                       "multi-GPU support (built without NCCL's header nccl.h: tools/get_nccl.sh); --device cpu "
                       "runs %d simulated ranks", n, m->be->ops->name, n);
    glmoe_status s = gm_backend_check_ranks(m->be, n, &m->err);
    if (s) return s;
    const gm_split_mode mode = p->split == GLMOE_SPLIT_EP ? GM_SPLIT_EP : GM_SPLIT_TP;
    gm_partition parts[GM_MAX_RANKS];
    for (int32_t r = 0; r < n; r++)
        if ((s = partition_plan(&parts[r], &m->cfg, n, r, mode, &m->err))) return s;
    m->peer_be = calloc((size_t)n - 1, sizeof *m->peer_be);
    m->peer_w = calloc((size_t)n - 1, sizeof *m->peer_w);
    if (!m->peer_be || !m->peer_w) return gm_fail(&m->err, GLMOE_E_NOMEM, "out of memory for %d ranks", n);
    for (int32_t r = 1; r < n; r++)
        if ((s = gm_backend_create_rank(&m->peer_be[r - 1], m->be, r, p->n_threads, &m->err))) {
            gm_err_prefix(&m->err, "rank %d of %d: ", r, n);
            return s;
        }
    gm_bind_stats rank_stats;
    for (int32_t r = 0; r < n && m->be->ops->check_fit; r++) { /* each rank's slices where they go */
        gm_weights none;
        gm_backend *be = r ? m->peer_be[r - 1] : m->be;
        if ((s = weights_bind_rank(&none, &m->cfg, src, seed, requant, &parts[r], NULL, &rank_stats, &m->err)) ||
            (s = be->ops->check_fit(be, weights_plan_bytes(&rank_stats), what, &m->err))) {
            gm_err_prefix(&m->err, "rank %d of %d: ", r, n);
            return s;
        }
    }
    uint64_t copied = 0;
    for (int32_t r = 0; r < n && !s; r++) {
        gm_weights *w = r ? &m->peer_w[r - 1] : &m->w;
        s = weights_bind_rank(w, &m->cfg, src, seed, requant, &parts[r], r ? m->peer_be[r - 1] : m->be, &rank_stats,
                              &m->err);
        if (s) {
            if (r) gm_err_prefix(&m->err, "rank %d of %d: ", r, n);
            break;
        }
        copied += rank_stats.bytes_copied;
        if (r) m->n_peers = r;
    }
    if (s) {
        weights_release(&m->w, &m->cfg, m->be); /* rank 0, bound or already cleared */
        return s;
    }
    /* The model's figures are the whole model's (the plan), the bytes allocated those of all ranks. */
    m->stats = *plan;
    m->stats.bytes_copied = copied;
    const gm_partition *q = &parts[n - 1];
    char where[80];
    if (strcmp(m->be->ops->name, "cpu"))
        snprintf(where, sizeof where, "one GPU each: %s devices 0 to %d, joined by NCCL", m->be->ops->name, n - 1);
    else
        snprintf(where, sizeof where, "simulated on the CPU: one thread each");
    gm_info("split over %d ranks (--split %s%s, %s): each holds %lld of %d query "
            "heads, %lld of %d KV heads%s, 1/%d of the MLP widths; rank %d: heads [%lld, %lld), experts [%lld, %lld), "
            "expert columns [%lld, %lld)",
            n, partition_mode_name(mode), p->split == GLMOE_SPLIT_AUTO ? ", the default" : "",
            where, (long long)q->heads.n,
            m->cfg.n_heads, (long long)q->kv_heads.n, m->cfg.n_kv_heads,
            mode == GM_SPLIT_EP ? ", n_routed_experts / N whole experts" : ", every expert's columns / N", n, n - 1,
            (long long)q->heads.first, (long long)(q->heads.first + q->heads.n), (long long)q->experts.first,
            (long long)(q->experts.first + q->experts.n), (long long)q->expert_cols.first,
            (long long)(q->expert_cols.first + q->expert_cols.n));
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
    gm_bind_source src = {.set = m->set, .quant = &m->quant,
                          .requant = {p.quantize.bits, p.quantize.group_size, GM_W_BF16}, .mtp = !p.skip_mtp};
    gm_bind_stats plan;
    if ((s = weights_plan(&m->cfg, &src, &plan, &m->err))) return s;
    src.progress = p.progress;
    src.progress_user = p.progress_user_data;
    for (int32_t i = 0; i < plan.n_groups; i++) src.total += plan.groups[i].bytes;
    if ((s = create_backend_for(m, &p, &plan))) return s;
    char what[320];
    fit_subject(what, sizeof what, dir, &p);
    if (p.n_devices <= 1 && m->be->ops->check_fit &&
        (s = m->be->ops->check_fit(m->be, weights_plan_bytes(&plan), what, &m->err)))
        return s;
    if ((s = bind_ranks(m, &p, &src, 0, NULL, &plan, what))) return s;
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
    char dir[160], quant[32] = "";
    if (p.quantize.bits) snprintf(quant, sizeof quant, ", q%d g%d", p.quantize.bits, p.quantize.group_size);
    snprintf(dir, sizeof dir, "synthetic %.64s, %d layers, seed %llu%s", config_name, m->cfg.n_layers,
             (unsigned long long)seed, quant);
    if (!(m->dir = strdup(dir))) return gm_fail(&m->err, GLMOE_E_NOMEM, "out of memory");
    /* As glmoe_model_load: the formats and bytes known before a backend is chosen or a byte made. */
    const gm_affine requant = {p.quantize.bits, p.quantize.group_size, GM_W_BF16};
    gm_bind_stats plan;
    if ((s = weights_plan_synthetic(&m->cfg, &requant, &plan, &m->err))) return s;
    if ((s = create_backend_for(m, &p, &plan))) return s;
    if (p.n_devices <= 1 && m->be->ops->check_fit &&
        (s = m->be->ops->check_fit(m->be, weights_plan_bytes(&plan), dir, &m->err)))
        return s;
    if ((s = bind_ranks(m, &p, NULL, seed, &requant, &plan, dir))) return s;
    if (m->stats.n_quantized_on_load)
        gm_info("made %d synthetic weights quantized to q%d g%d", m->stats.n_quantized_on_load, p.quantize.bits,
                p.quantize.group_size);
    return model_finish(m, t0);
}

void glmoe_model_free(glmoe_model *m) {
    if (!m) return;
    if (m->bound) weights_release(&m->w, &m->cfg, m->be);
    release_peers(m);
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
        .has_mtp = m->w.mtp != NULL,
        .n_params_mtp = m->stats.n_params_mtp,
        .n_tensors_skipped = m->stats.n_skipped,
        .bytes_skipped = m->stats.bytes_skipped,
        .n_tensors_unused = m->stats.n_unused,
        .bytes_realigned = st_set_misaligned_bytes(m->set),
        .load_seconds = m->load_seconds,
        .resident_bytes = m->stats.bytes_copied,
        .attention_bias = c->attention_bias,
        .weight_bytes_held = weights_plan_bytes(&m->stats),
    };
    return GLMOE_OK;
}

void glmoe_device_stats_get(glmoe_device_stats *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
#ifdef GLMOE_HAVE_CUDA
    cuda_backend_counters c;
    cuda_backend_counters_get(&c);
    *out = (glmoe_device_stats){.wait_seconds = c.wait_s, .n_waits = c.waits, .graphs_recorded = c.graphs_recorded,
                                .graph_replays = c.graph_replays};
#endif
}

/* ---- contexts ---------------------------------------------------------------------------- */

glmoe_context_params glmoe_context_params_default(void) {
    return (glmoe_context_params){.n_ctx = 0, .n_batch = 0, .n_seq_max = 0, .n_draft = 0};
}

/* A context's parameters with their defaults applied, checked against the model (its
 * max_position_embeddings; has_mtp: its multi-token-prediction layer is loaded). A context and a
 * plan take the same. */
static glmoe_status context_params_resolve(glmoe_context_params *p, const gm_config *c, bool has_mtp, gm_err *err) {
    const int32_t max_pos = c->max_position_embeddings;
    if (p->n_ctx < 0 || p->n_batch < 0)
        return gm_fail(err, GLMOE_E_ARG, "n_ctx (%d) and n_batch (%d) must not be negative", p->n_ctx, p->n_batch);
    if (p->n_ctx == 0) p->n_ctx = max_pos < 4096 ? max_pos : 4096;
    if (p->n_ctx > max_pos)
        return gm_fail(err, GLMOE_E_ARG, "context of %d tokens exceeds the model's max_position_embeddings %d",
                       p->n_ctx, max_pos);
    if (p->n_batch == 0) p->n_batch = 512;
    if (p->n_batch > p->n_ctx) p->n_batch = p->n_ctx;
    if (p->n_seq_max == 0) p->n_seq_max = 1;
    if (p->n_seq_max < 0 || p->n_seq_max > GM_MAX_SEQS)
        return gm_fail(err, GLMOE_E_ARG, "n_seq_max %d is outside [1, %d]", p->n_seq_max, GM_MAX_SEQS);
    if (p->n_draft < 0 || p->n_draft > GLMOE_MAX_DRAFT)
        return gm_fail(err, GLMOE_E_ARG, "n_draft %d is outside [0, %d]", p->n_draft, GLMOE_MAX_DRAFT);
    if (p->n_draft > 0 && !has_mtp)
        return gm_fail(err, GLMOE_E_ARG, "n_draft %d: the model has no multi-token-prediction layer%s", p->n_draft,
                       c->n_nextn_layers > 0 ? " loaded" : " (num_nextn_predict_layers is 0)");
    return GLMOE_OK;
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
    glmoe_status s = context_params_resolve(&p, &m->cfg, m->w.mtp != NULL, &ctx->err);
    if (s) return s;
    ctx->n_draft = p.n_draft;
    s = state_create_rank(&ctx->st, &m->cfg, &m->w.part, m->be, p.n_batch, p.n_ctx, p.n_seq_max,
                          p.n_draft > 0 ? m->w.mtp : NULL, &ctx->err);
    if (s) return s;
    if (m->n_ranks > 1) { /* each rank's state, and their group */
        const int32_t n = m->n_ranks;
        ctx->comm = calloc((size_t)n, sizeof *ctx->comm);
        ctx->peer_st = calloc((size_t)n - 1, sizeof *ctx->peer_st);
        if (!ctx->comm || !ctx->peer_st) return gm_fail(&ctx->err, GLMOE_E_NOMEM, "out of memory for %d ranks", n);
        if ((s = gm_comm_create(ctx->comm, m->be, n, &ctx->err))) {
            free(ctx->comm);
            ctx->comm = NULL;
            return s;
        }
        ctx->st.comm = ctx->comm[0];
        for (int32_t r = 1; r < n; r++) {
            if ((s = state_create_rank(&ctx->peer_st[r - 1], &m->cfg, &m->peer_w[r - 1].part, m->peer_be[r - 1],
                                       p.n_batch, p.n_ctx, p.n_seq_max, NULL, &ctx->err)))
                return s;
            ctx->peer_st[r - 1].comm = ctx->comm[r];
        }
    }
    ctx->sorted = malloc((size_t)p.n_batch * sizeof *ctx->sorted);
    ctx->sorted_from = malloc((size_t)p.n_batch * sizeof *ctx->sorted_from);
    if (!ctx->sorted || !ctx->sorted_from) return gm_fail(&ctx->err, GLMOE_E_NOMEM, "out of memory");
    ctx->ready = true;
    return GLMOE_OK;
}

/* ---- planning a load --------------------------------------------------------------------- */

_Static_assert(GLMOE_PLAN_MAX_GROUPS >= GM_MAX_WEIGHT_GROUPS, "a plan holds every weight group");
_Static_assert(sizeof(((glmoe_plan_group *)0)->format) >= sizeof(((gm_weight_group *)0)->format_name),
               "a plan group holds every format name");

/* The plan's fields from the configuration, the weights' plan and the resolved context. */
static void plan_fill(glmoe_load_plan *out, const gm_config *c, const gm_bind_stats *plan,
                      const glmoe_context_params *cp) {
    out->n_layers = c->n_layers;
    out->max_position_embeddings = c->max_position_embeddings;
    out->n_params = plan->n_params;
    out->weight_bytes = weights_plan_bytes(plan);
    for (int32_t i = 0; i < plan->n_groups && i < GLMOE_PLAN_MAX_GROUPS; i++) {
        const gm_weight_group *g = &plan->groups[i];
        const bool q = g->format.type == GM_W_AFFINE;
        glmoe_plan_group *o = &out->weight_groups[out->n_weight_groups++];
        *o = (glmoe_plan_group){.kind = g->kind, .bits = q ? g->format.q.bits : 0, .group_size = q ? g->format.q.group : 0,
                                .n_tensors = g->n_tensors, .n_params = g->n_params, .bytes = g->bytes};
        snprintf(o->format, sizeof o->format, "%s", g->format_name);
    }
    out->kv_bytes_per_token_bf16 = model_kv_bytes(c, c->n_layers, 1, 2);
    out->kv_bytes_per_token_f32 = model_kv_bytes(c, c->n_layers, 1, 4);
    out->n_ctx = cp->n_ctx;
    out->n_batch = cp->n_batch;
    out->n_seq_max = cp->n_seq_max;
    out->activation_bytes = state_activation_bytes(c, cp->n_batch, cp->n_ctx, cp->n_seq_max, cp->n_draft > 0);
}

glmoe_status glmoe_model_plan(glmoe_load_plan *out, const char *dir, const char *config_name, int32_t n_layers,
                              const glmoe_model_params *params, const glmoe_context_params *ctx, char *err,
                              size_t err_size) {
    gm_err e = {0};
    gm_config c;
    gm_quant_config qc;
    memset(&qc, 0, sizeof qc);
    st_set *set = NULL;
    gm_bind_stats plan;
    glmoe_model_params p = params ? *params : glmoe_model_params_default();
    glmoe_context_params cp = ctx ? *ctx : glmoe_context_params_default();
    glmoe_status s;
    if (out) memset(out, 0, sizeof *out);
    if (!out) {
        s = gm_fail(&e, GLMOE_E_ARG, "no plan to fill (NULL out)");
        goto done;
    }
    if (!dir && !config_name) {
        s = gm_fail(&e, GLMOE_E_ARG, "no model directory or configuration named");
        goto done;
    }
    if ((s = quantize_resolve(&p.quantize, &e))) goto done;
    /* The same steps as glmoe_model_load (_synthetic) up to the plan its memory check reads. */
    const gm_affine requant = {p.quantize.bits, p.quantize.group_size, GM_W_BF16};
    if (dir) {
        if ((s = config_load(&c, dir, &e)) || (s = quant_config_load(&qc, dir, &e)) ||
            (s = st_set_open_dir(&set, dir, &e)))
            goto done;
        const gm_bind_source src = {.set = set, .quant = &qc, .requant = requant, .mtp = !p.skip_mtp};
        if ((s = weights_plan(&c, &src, &plan, &e))) goto done;
    } else if ((s = config_preset(&c, config_name, n_layers, &e)) ||
               (s = weights_plan_synthetic(&c, &requant, &plan, &e))) {
        goto done;
    }
    if ((s = context_params_resolve(&cp, &c, plan.n_params_mtp > 0, &e))) goto done;
    plan_fill(out, &c, &plan, &cp);
done:
    st_set_close(set);
    quant_config_free(&qc);
    if (s && out) memset(out, 0, sizeof *out);
    if (s && err && err_size) snprintf(err, err_size, "%s", e.msg);
    return s;
}

void glmoe_context_free(glmoe_context *ctx) {
    if (!ctx) return;
    state_free(&ctx->st);
    for (int32_t r = 0; ctx->model && r < ctx->model->n_ranks; r++) {
        if (ctx->peer_st && r > 0) state_free(&ctx->peer_st[r - 1]);
        if (ctx->comm) comm_free(ctx->comm[r]);
    }
    free(ctx->peer_st);
    free(ctx->comm);
    free(ctx->logits);
    free(ctx->row_slot);
    free(ctx->sorted);
    free(ctx->sorted_from);
    free(ctx->chunk_logits);
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

/* Grows *p to n elements of size sz (never shrinks). */
static bool grow(void **p, size_t *cap, size_t n, size_t sz) {
    if (n <= *cap) return true;
    void *q = realloc(*p, (n ? n : 1) * sz);
    if (!q) return false;
    *p = q;
    *cap = n;
    return true;
}

/* forward_batch on the context's model: whole, or every rank of a split one. */
static glmoe_status ctx_forward(glmoe_context *ctx, const gm_row *rows, int32_t T, float *host_logits) {
    glmoe_model *m = ctx->model;
    if (m->n_ranks <= 1) return forward_batch(&m->cfg, &m->w, &ctx->st, rows, T, host_logits, &ctx->err);
    const gm_weights *w[GM_MAX_RANKS];
    gm_state *st[GM_MAX_RANKS];
    for (int32_t r = 0; r < m->n_ranks; r++) {
        w[r] = r ? &m->peer_w[r - 1] : &m->w;
        st[r] = r ? &ctx->peer_st[r - 1] : &ctx->st;
    }
    return split_forward_batch(&m->cfg, w, st, m->n_ranks, rows, T, host_logits, &ctx->err);
}

/* The other ranks' sequences as rank 0's (lengths), after rank 0's were set back or cut. */
static void peers_follow(glmoe_context *ctx) {
    for (int32_t r = 1; r < ctx->model->n_ranks; r++)
        for (int32_t q = 0; q < ctx->st.n_seq; q++) state_seq_truncate(&ctx->peer_st[r - 1], q, ctx->st.seqs[q].n_past);
}

/* Evaluates rows (already checked: sequences in range, tokens in the vocabulary, lengths within
 * n_ctx) in chunks of n_batch rows, in their order; within a chunk the rows are grouped by
 * sequence (a stable counting sort: a sequence's rows keep their order), as forward_batch wants.
 * The logits of the rows that ask go to ctx->logits in row order; row_slot maps each row to its
 * logits row. On failure every sequence keeps the length it had: nothing is appended. */
static glmoe_status decode_rows(glmoe_context *ctx, const gm_row *rows, size_t n) {
    gm_state *st = &ctx->st;
    const size_t V = (size_t)ctx->model->cfg.vocab_size;
    ctx->logits_rows = 0;
    ctx->n_rows_last = 0;
    size_t wanted = 0;
    if (!grow((void **)&ctx->row_slot, &ctx->row_slot_cap, n, sizeof *ctx->row_slot))
        return gm_fail(&ctx->err, GLMOE_E_NOMEM, "out of memory for %zu rows", n);
    for (size_t i = 0; i < n; i++) ctx->row_slot[i] = rows[i].logits ? (int32_t)wanted++ : -1;
    glmoe_status s = ensure_logit_rows(ctx, wanted);
    if (s) return s;
    const size_t chunk = (size_t)st->n_batch;
    int32_t saved[GM_MAX_SEQS];
    for (int32_t q = 0; q < st->n_seq; q++) saved[q] = st->seqs[q].n_past;
    for (size_t done = 0; done < n;) {
        const int32_t T = (int32_t)(n - done < chunk ? n - done : chunk);
        /* Group by sequence, keeping each sequence's order. */
        int32_t count[GM_MAX_SEQS + 1] = {0};
        bool grouped = true;
        for (int32_t t = 0; t < T; t++) {
            count[rows[done + t].seq + 1]++;
            if (t && rows[done + t].seq != rows[done + t - 1].seq) {
                for (int32_t u = 0; u < t && grouped; u++) grouped = rows[done + u].seq != rows[done + t].seq;
            }
        }
        for (int32_t q = 0; q < st->n_seq; q++) count[q + 1] += count[q];
        size_t chunk_wanted = 0;
        for (int32_t t = 0; t < T; t++) {
            const int32_t to = count[rows[done + t].seq]++;
            ctx->sorted[to] = rows[done + t];
            ctx->sorted_from[to] = (int32_t)(done + (size_t)t);
            chunk_wanted += rows[done + t].logits;
        }
        /* Grouped already (every single-sequence eval): the logits land in their slots directly. */
        int32_t first_slot = -1;
        for (int32_t t = 0; t < T && first_slot < 0; t++) first_slot = ctx->row_slot[done + (size_t)t];
        float *dst = ctx->logits + (first_slot < 0 ? 0 : (size_t)first_slot) * V;
        if (!grouped && chunk_wanted) {
            if (!grow((void **)&ctx->chunk_logits, &ctx->chunk_logits_cap, chunk_wanted * V, sizeof(float))) {
                s = gm_fail(&ctx->err, GLMOE_E_NOMEM, "out of memory for %zu rows of logits", chunk_wanted);
                break;
            }
            dst = ctx->chunk_logits;
        }
        s = ctx_forward(ctx, grouped ? rows + done : ctx->sorted, T, dst);
        if (s) break;
        if (!grouped && chunk_wanted)
            for (int32_t t = 0, k = 0; t < T; t++)
                if (ctx->sorted[t].logits)
                    memcpy(ctx->logits + (size_t)ctx->row_slot[ctx->sorted_from[t]] * V, ctx->chunk_logits + (size_t)k++ * V,
                           V * sizeof(float));
        done += (size_t)T;
    }
    if (s) { /* nothing appended: the cache beyond each length is ignored */
        for (int32_t q = 0; q < st->n_seq; q++) st->seqs[q].n_past = saved[q];
        peers_follow(ctx);
        return s;
    }
    ctx->logits_rows = wanted;
    ctx->n_rows_last = n;
    return GLMOE_OK;
}

/* Forgets the logits of the last call when a sequence they belong to changes, and
 * on every eval or decode (also a refused one: they belong to the last call). */
static void forget_logits(glmoe_context *ctx) {
    ctx->logits_rows = 0;
    ctx->n_rows_last = 0;
}

static glmoe_status check_ready(glmoe_context *ctx) {
    if (!ctx) return GLMOE_E_ARG;
    if (!ctx->ready) return GLMOE_E_ARG; /* keeps the message of the failed create */
    gm_err_clear(&ctx->err);
    return GLMOE_OK;
}

static glmoe_status mtp_refeed(glmoe_context *ctx, const int32_t *seqs, size_t n);

glmoe_status glmoe_context_eval(glmoe_context *ctx, const int32_t *ids, size_t n_ids, glmoe_logits_mode mode) {
    glmoe_status s = check_ready(ctx);
    if (s) return s;
    forget_logits(ctx);
    if (!ids || n_ids == 0) return gm_fail(&ctx->err, GLMOE_E_ARG, "no token ids to evaluate");
    if (mode != GLMOE_LOGITS_LAST && mode != GLMOE_LOGITS_ALL && mode != GLMOE_LOGITS_NONE)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "unknown logits mode %d", (int)mode);
    const gm_config *c = &ctx->model->cfg;
    gm_state *st = &ctx->st;
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return gm_fail(&ctx->err, GLMOE_E_TOKEN, "token id %d at position %zu is outside the vocabulary [0, %d)",
                           ids[i], i, c->vocab_size);
    if (n_ids > (size_t)(st->n_ctx - st->seqs[0].n_past))
        return gm_fail(&ctx->err, GLMOE_E_CONTEXT,
                       "%zu tokens do not fit: %d of the context's %d positions are used (raise --ctx, at most %d)",
                       n_ids, st->seqs[0].n_past, st->n_ctx, c->max_position_embeddings);
    static const int32_t seq0 = 0;
    if ((s = mtp_refeed(ctx, &seq0, 1))) return s;
    gm_row *rows = malloc(n_ids * sizeof *rows);
    if (!rows) return gm_fail(&ctx->err, GLMOE_E_NOMEM, "out of memory for %zu tokens", n_ids);
    for (size_t i = 0; i < n_ids; i++)
        rows[i] = (gm_row){.seq = 0, .token = ids[i],
                           .logits = mode == GLMOE_LOGITS_ALL || (mode == GLMOE_LOGITS_LAST && i + 1 == n_ids)};
    s = decode_rows(ctx, rows, n_ids);
    free(rows);
    return s;
}

glmoe_status glmoe_context_decode(glmoe_context *ctx, const glmoe_batch_row *rows, size_t n_rows) {
    glmoe_status s = check_ready(ctx);
    if (s) return s;
    forget_logits(ctx);
    if (!rows || n_rows == 0) return gm_fail(&ctx->err, GLMOE_E_ARG, "no rows to evaluate");
    const gm_config *c = &ctx->model->cfg;
    gm_state *st = &ctx->st;
    /* Every row checked before anything runs: its sequence, its token, its position (the
     * sequence's next), and the room left. */
    int32_t next[GM_MAX_SEQS];
    for (int32_t q = 0; q < st->n_seq; q++) next[q] = st->seqs[q].n_past;
    gm_row *r = malloc(n_rows * sizeof *r);
    if (!r) return gm_fail(&ctx->err, GLMOE_E_NOMEM, "out of memory for %zu rows", n_rows);
    for (size_t i = 0; i < n_rows && !s; i++) {
        const glmoe_batch_row *b = &rows[i];
        if (b->seq < 0 || b->seq >= st->n_seq)
            s = gm_fail(&ctx->err, GLMOE_E_ARG, "row %zu: sequence %d is outside [0, %d)", i, b->seq, st->n_seq);
        else if (b->token < 0 || b->token >= c->vocab_size)
            s = gm_fail(&ctx->err, GLMOE_E_TOKEN, "row %zu: token id %d is outside the vocabulary [0, %d)", i, b->token,
                        c->vocab_size);
        else if (b->pos != next[b->seq])
            s = gm_fail(&ctx->err, GLMOE_E_ARG, "row %zu: sequence %d's next position is %d, not %d", i, b->seq,
                        next[b->seq], b->pos);
        else if (next[b->seq] >= st->n_ctx)
            s = gm_fail(&ctx->err, GLMOE_E_CONTEXT, "row %zu: sequence %d is full (%d positions)", i, b->seq, st->n_ctx);
        else
            r[i] = (gm_row){.seq = b->seq, .token = b->token, .logits = b->logits};
        if (!s) next[b->seq]++;
    }
    if (!s && st->mtp) { /* the sequences in the batch, each once */
        int32_t in_batch[GM_MAX_SEQS];
        size_t k = 0;
        for (int32_t q = 0; q < st->n_seq; q++)
            if (next[q] != st->seqs[q].n_past) in_batch[k++] = q;
        s = mtp_refeed(ctx, in_batch, k);
    }
    if (!s) s = decode_rows(ctx, r, n_rows);
    free(r);
    return s;
}

glmoe_status glmoe_context_logits(glmoe_context *ctx, const float **logits, size_t *rows) {
    if (!ctx || !logits || !rows) return GLMOE_E_ARG;
    *logits = ctx->logits_rows ? ctx->logits : NULL;
    *rows = ctx->logits_rows;
    if (!ctx->logits_rows) return gm_fail(&ctx->err, GLMOE_E_ARG, "no logits: the last eval asked for none");
    return GLMOE_OK;
}

glmoe_status glmoe_context_row_logits(glmoe_context *ctx, size_t row, const float **logits) {
    if (!ctx || !logits) return GLMOE_E_ARG;
    *logits = NULL;
    if (row >= ctx->n_rows_last || ctx->row_slot[row] < 0)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "row %zu of the last decode has no logits (%zu rows)", row,
                       ctx->n_rows_last);
    *logits = ctx->logits + (size_t)ctx->row_slot[row] * (size_t)ctx->model->cfg.vocab_size;
    return GLMOE_OK;
}

size_t glmoe_context_n_past(const glmoe_context *ctx) { return ctx && ctx->ready ? (size_t)ctx->st.seqs[0].n_past : 0; }
size_t glmoe_context_n_ctx(const glmoe_context *ctx) { return ctx ? (size_t)ctx->st.n_ctx : 0; }
int32_t glmoe_context_n_seq(const glmoe_context *ctx) { return ctx ? ctx->st.n_seq : 0; }

size_t glmoe_context_seq_length(const glmoe_context *ctx, int32_t seq) {
    return ctx && ctx->ready && seq >= 0 && seq < ctx->st.n_seq ? (size_t)ctx->st.seqs[seq].n_past : 0;
}

glmoe_status glmoe_context_seq_truncate(glmoe_context *ctx, int32_t seq, size_t n) {
    glmoe_status s = check_ready(ctx);
    if (s) return s;
    if (seq < 0 || seq >= ctx->st.n_seq)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "sequence %d is outside [0, %d)", seq, ctx->st.n_seq);
    if (n < (size_t)ctx->st.seqs[seq].n_past) {
        state_seq_truncate(&ctx->st, seq, (int32_t)n);
        peers_follow(ctx);
        forget_logits(ctx);
    }
    return GLMOE_OK;
}

glmoe_status glmoe_context_seq_copy(glmoe_context *ctx, int32_t dst, int32_t src, size_t n) {
    glmoe_status s = check_ready(ctx);
    if (s) return s;
    gm_state *st = &ctx->st;
    if (src < 0 || src >= st->n_seq || dst < 0 || dst >= st->n_seq || src == dst)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "copy from sequence %d to %d: two distinct sequences of [0, %d) needed",
                       src, dst, st->n_seq);
    if (n > (size_t)st->seqs[src].n_past)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "copy of %zu positions: sequence %d has %d", n, src,
                       st->seqs[src].n_past);
    forget_logits(ctx);
    for (int32_t r = 1; r < ctx->model->n_ranks; r++)
        if ((s = state_seq_copy(&ctx->peer_st[r - 1], dst, src, (int32_t)n, &ctx->err))) return s;
    return state_seq_copy(st, dst, src, (int32_t)n, &ctx->err);
}

void glmoe_context_reset(glmoe_context *ctx) {
    if (!ctx || !ctx->ready) return;
    state_seq_truncate(&ctx->st, 0, 0);
    peers_follow(ctx);
    forget_logits(ctx);
}

void glmoe_context_truncate(glmoe_context *ctx, size_t n) {
    if (!ctx || !ctx->ready || n >= (size_t)ctx->st.seqs[0].n_past) return;
    state_seq_truncate(&ctx->st, 0, (int32_t)n);
    peers_follow(ctx);
    forget_logits(ctx);
}

/* ---- speculative decoding ------------------------------------------------------------------------- */

/* With the MTP layer on, a sequence cut by a truncate or copy has lost the hidden state of its
 * last position (forward.c, "The MTP layer"): its last positions, from the first the MTP cache
 * lacks, are evaluated again (their tokens are kept), which rewrites the same cache and refills
 * the stash. seqs[0, n) may repeat. */
static glmoe_status mtp_refeed(glmoe_context *ctx, const int32_t *seqs, size_t n) {
    gm_state *st = &ctx->st;
    if (!st->mtp) return GLMOE_OK;
    size_t count = 0;
    bool seen[GM_MAX_SEQS] = {false};
    for (size_t i = 0; i < n; i++) {
        const gm_seq *sq = &st->seqs[seqs[i]];
        if (seen[seqs[i]] || sq->n_past == 0 || (sq->stash_ok && sq->mtp_len == sq->n_past - 1)) continue;
        seen[seqs[i]] = true;
        count += (size_t)(sq->n_past - sq->mtp_len);
    }
    if (!count) return GLMOE_OK;
    gm_row *rows = malloc(count * sizeof *rows);
    if (!rows) return gm_fail(&ctx->err, GLMOE_E_NOMEM, "out of memory for %zu rows", count);
    int32_t saved[GM_MAX_SEQS];
    size_t k = 0;
    for (int32_t q = 0; q < st->n_seq; q++) {
        saved[q] = st->seqs[q].n_past;
        if (!seen[q]) continue;
        gm_seq *sq = &st->seqs[q];
        for (int32_t p = sq->mtp_len; p < sq->n_past; p++) rows[k++] = (gm_row){.seq = q, .token = sq->tokens[p]};
        sq->n_past = sq->mtp_len;
    }
    glmoe_status s = decode_rows(ctx, rows, count);
    free(rows);
    if (s)
        for (int32_t q = 0; q < st->n_seq; q++)
            if (seen[q]) st->seqs[q].n_past = saved[q];
    return s;
}

glmoe_status glmoe_context_speculate(glmoe_context *ctx, glmoe_spec_seq *seqs, size_t n) {
    glmoe_status s = check_ready(ctx);
    if (s) return s;
    forget_logits(ctx);
    gm_state *st = &ctx->st;
    const gm_config *c = &ctx->model->cfg;
    if (ctx->model->n_ranks > 1)
        return gm_fail(&ctx->err, GLMOE_E_UNSUPPORTED, "speculate: not on a model split over %d devices yet",
                       ctx->model->n_ranks);
    if (!seqs || n == 0 || n > (size_t)st->n_seq)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "speculate: %zu sequences (the context holds %d)", n, st->n_seq);
    bool seen[GM_MAX_SEQS] = {false};
    int32_t ids[GM_MAX_SEQS];
    size_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        glmoe_spec_seq *x = &seqs[i];
        x->n_out = x->n_drafted = 0;
        if (x->seq < 0 || x->seq >= st->n_seq || seen[x->seq])
            return gm_fail(&ctx->err, GLMOE_E_ARG, "speculate: entry %zu: sequence %d is outside [0, %d) or repeated", i,
                           x->seq, st->n_seq);
        seen[x->seq] = true;
        ids[i] = x->seq;
        const int32_t len = st->seqs[x->seq].n_past;
        if (len == 0)
            return gm_fail(&ctx->err, GLMOE_E_ARG, "speculate: sequence %d is empty (evaluate its prompt first)", x->seq);
        if (x->token < 0 || x->token >= c->vocab_size)
            return gm_fail(&ctx->err, GLMOE_E_TOKEN, "speculate: sequence %d: token id %d is outside the vocabulary [0, %d)",
                           x->seq, x->token, c->vocab_size);
        if (x->n_draft < 0 || x->n_draft > ctx->n_draft)
            return gm_fail(&ctx->err, GLMOE_E_ARG, "speculate: sequence %d: n_draft %d is outside [0, %d] (the context's "
                           "n_draft)", x->seq, x->n_draft, ctx->n_draft);
        if (len >= st->n_ctx)
            return gm_fail(&ctx->err, GLMOE_E_CONTEXT, "speculate: sequence %d is full (%d positions)", x->seq, st->n_ctx);
        rows += 1 + (size_t)x->n_draft;
    }
    if (rows > (size_t)st->n_batch)
        return gm_fail(&ctx->err, GLMOE_E_ARG, "speculate: %zu rows (1 + n_draft per sequence) exceed the batch of %d",
                       rows, st->n_batch);
    if ((s = mtp_refeed(ctx, ids, n))) return s;
    /* Drafts that would not fit the sequence are not made. */
    int32_t asked[GM_MAX_SEQS];
    for (size_t i = 0; i < n; i++) {
        asked[i] = seqs[i].n_draft;
        const int32_t room = st->n_ctx - st->seqs[seqs[i].seq].n_past - 1;
        if (seqs[i].n_draft > room) seqs[i].n_draft = room;
    }
    if ((s = ensure_logit_rows(ctx, rows > n ? rows : n)) == GLMOE_OK)
        s = speculate(c, &ctx->model->w, st, seqs, (int32_t)n, ctx->logits, &ctx->err);
    for (size_t i = 0; i < n; i++) seqs[i].n_draft = asked[i];
    return s;
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
