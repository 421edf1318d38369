/*
 * model.h — a loaded model: its configuration, its weights bound to a backend, and the forward.
 *
 * Weight binding (weights.c) fills the slots of gm_layer: tensor_map.c finds a weight's tensors by
 * name (Hugging Face or MLX), weights.c checks their dtypes and shapes against the configuration
 * and the quantization block (quant_config.c) and has the backend bind them. The forward
 * (forward.c) is written once against the backend interface (backend/backend.h).
 */
#ifndef GLMOE_MODEL_MODEL_H
#define GLMOE_MODEL_MODEL_H

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/quant_config.h"

typedef struct gm_layer {
    gm_weight attn_norm, ffn_norm;                  /* input_layernorm, post_attention_layernorm */
    gm_weight wq, wk, wv, wo, bq, bk, bv;            /* biases absent unless attention_bias */
    gm_weight q_norm, k_norm;                       /* absent unless use_qk_norm */
    bool is_moe;
    gm_weight gate, up, down;                       /* dense MLP */
    gm_weight router, router_bias;                  /* mlp.gate.weight, e_score_correction_bias */
    gm_experts experts;                             /* the routed experts, prepared by the backend */
    gm_weight sh_gate, sh_up, sh_down;              /* shared experts (absent if n_shared == 0) */
} gm_layer;

typedef struct gm_weights {
    gm_weight embed, final_norm, lm_head;
    gm_layer *layers;                               /* [n_layers] */
} gm_weights;

/* The weights of one kind stored in one format, for glmoe_model_info. */
#define GM_MAX_WEIGHT_GROUPS 48
typedef struct gm_weight_group {
    const char *kind;               /* "embedding", "attention", "routed experts", ... (static) */
    gm_weight format;               /* type and affine parameters (no data) */
    char format_name[48];           /* "BF16", "q4 g64 (BF16 scales)" */
    uint64_t n_tensors, n_params, bytes; /* bytes as stored in that format */
} gm_weight_group;

/* What binding saw, for glmoe_model_info. */
typedef struct gm_bind_stats {
    uint64_t n_params, n_params_active;
    uint64_t bytes_bf16, bytes_f16, bytes_f32, bytes_affine;
    int32_t n_skipped;                              /* MTP-layer tensors */
    uint64_t bytes_skipped;
    int32_t n_unused;
    uint64_t bytes_copied;                          /* host/device bytes the backend allocated */
    int32_t n_quantized_on_load;                    /* weights quantized by glmoe while loading */
    gm_weight_group groups[GM_MAX_WEIGHT_GROUPS];
    int32_t n_groups;
} gm_bind_stats;

/* What to bind: the checkpoint's tensors and its quantization block, and the format to quantize
 * float weights to while loading (requant.bits 0: none), as `mlx_lm.convert -q` would choose
 * them (weights.c). */
typedef struct gm_bind_source {
    const st_set *set;
    const gm_quant_config *quant;
    gm_affine requant;
} gm_bind_source;

/* Resolves and checks every tensor the forward needs against the configuration and the
 * quantization block, binding nothing: the formats the weights will have are in stats->groups
 * (so that a backend can be asked whether it takes them before anything is uploaded). */
glmoe_status weights_plan(const gm_config *cfg, const gm_bind_source *src, gm_bind_stats *stats, gm_err *err);

/* Binds every tensor the forward needs. On failure, every weight bound so far is released. */
glmoe_status weights_bind(gm_weights *w, const gm_config *cfg, const gm_bind_source *src, gm_backend *be,
                          gm_bind_stats *stats, gm_err *err);
/* The same slots, filled with random weights the backend generates (util/synthetic.h): matrices
 * bf16 N-like(0, 0.02²), norms 1, biases N-like(0, 0.02²), the router's correction bias 0. Each
 * tensor's values depend only on seed and its name, on every backend. */
glmoe_status weights_bind_synthetic(gm_weights *w, const gm_config *cfg, uint64_t seed, gm_backend *be,
                                    gm_bind_stats *stats, gm_err *err);
void weights_release(gm_weights *w, const gm_config *cfg, gm_backend *be);

/* At most this many sequences per context (a server's parallel slots). */
#define GM_MAX_SEQS 256

/* One sequence of a state: its KV cache (n_ctx positions), its length, its recorded decode step. */
typedef struct gm_seq {
    gm_kv *kv;
    int32_t n_past;
    gm_graph *graph;                   /* NULL until recorded (backends with graph_* ops) */
    int32_t graph_eager_steps;         /* one-token steps run op by op before recording */
} gm_seq;

/* Activations, the KV caches and the execution state of a context's sequences, all in backend
 * memory: everything an evaluation writes, so that states of one model may run in parallel
 * threads. */
typedef struct gm_state {
    int32_t n_batch, n_ctx, n_seq;
    gm_backend *be;
    gm_exec *ex;
    gm_seq *seqs;                      /* [n_seq] */
    int32_t *ids, *pos;                /* [n_batch] */
    float *x, *xn, *q, *k, *v, *attn, *tmp, *ffn_a, *ffn_b; /* see forward.c */
    int32_t *route_idx;
    float *route_w;
    float *logits;                     /* [n_batch, vocab] */
    bool graph_off;                    /* the backend declined or a recording failed: never again */
} gm_state;

/* One row of a batch: a token of sequence `seq` at that sequence's next position. */
typedef struct gm_row {
    int32_t seq, token;
    bool logits;                       /* compute its logits */
} gm_row;

/* The largest arguments this model's forward passes the ops, for an execution state of n_batch
 * tokens per forward over n_ctx positions. */
gm_exec_sizes model_exec_sizes(const gm_config *cfg, int32_t n_batch, int32_t n_ctx);

/* A state of n_seq sequences of up to n_ctx positions each, n_batch rows per forward. */
glmoe_status state_create(gm_state *st, const gm_config *cfg, gm_backend *be, int32_t n_batch, int32_t n_ctx,
                          int32_t n_seq, gm_err *err);
void state_free(gm_state *st);

/* Sequence dst becomes the first n positions of sequence src (their KV copied): a shared prompt
 * prefix is evaluated once. */
glmoe_status state_seq_copy(gm_state *st, int32_t dst, int32_t src, int32_t n, gm_err *err);

/* Runs the forward over T <= n_batch rows of one or more sequences; the rows of a sequence are
 * consecutive, in position order, each at its sequence's next position (within n_ctx). The logits
 * of the rows with `logits` set go to host_logits in row order (one row of vocab floats each).
 * Advances each sequence on success; on failure nothing is appended. */
glmoe_status forward_batch(const gm_config *cfg, const gm_weights *w, gm_state *st, const gm_row *rows, int32_t T,
                           float *host_logits, gm_err *err);

/* forward_batch of T tokens of sequence 0, with the logits of rows [first_logit, T) (first_logit ==
 * T: none). On a backend with graph_* ops, a step of one token of a sequence with its logits is
 * recorded once per sequence (after one step op by op) and replayed; the recording stays valid
 * when the sequence's length is changed from outside (reset, truncate, copy). */
glmoe_status forward(const gm_config *cfg, const gm_weights *w, gm_state *st, const int32_t *ids, int32_t T,
                     int32_t first_logit, float *host_logits, gm_err *err);

#endif
