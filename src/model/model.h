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
#include "model/partition.h"
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

/* The multi-token-prediction layer (spec §3.2, docs/spec/mtp.md), stored at layer index
 * num_hidden_layers: a full MoE decoder layer fed by eh_proj · [enorm(embed(next token));
 * hnorm(hidden)], with its own head. */
typedef struct gm_mtp {
    gm_layer block;                                 /* the decoder layer (its KV is the cache's last layer) */
    gm_weight embed;                                /* embed_tokens (the main one when the two are equal) */
    gm_weight enorm, hnorm, eh_proj;                /* eh_proj [H, 2H] */
    gm_weight head_norm, head;                      /* shared_head.norm, shared_head.head [V, H] (idem) */
} gm_mtp;

typedef struct gm_weights {
    gm_partition part;                              /* what of the model they are (one rank: all) */
    gm_weight embed, final_norm, lm_head;
    gm_layer *layers;                               /* [n_layers] */
    gm_mtp *mtp;                                    /* NULL: the checkpoint has none, or it was not loaded */
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
    int32_t n_skipped;                              /* MTP-layer tensors not loaded */
    uint64_t bytes_skipped;
    uint64_t n_params_mtp;                          /* of the MTP layer, when loaded (not in n_params) */
    int32_t n_unused;
    uint64_t bytes_copied;                          /* host/device bytes the backend allocated */
    uint64_t bytes_held;                            /* bytes where the backend keeps them: matrices
                                                       in their final format, vectors as float32 */
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
    bool mtp;                                       /* bind the MTP layer when the checkpoint has one */
    glmoe_progress_fn progress;                     /* after each matrix bound: bytes of total (NULL: none) */
    void *progress_user;
    uint64_t total;                                 /* the plan's bytes (stats->groups) */
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
 * tensor's values depend only on seed and its name, on every backend. requant (NULL or bits 0:
 * none; its scale_type is ignored): the matrices quantized as weights_bind with
 * gm_bind_source.requant would quantize a bf16 checkpoint of these weights, bit for bit, each
 * made by the backend in its quantized form (backend.h, weight_synthetic_affine). */
glmoe_status weights_bind_synthetic(gm_weights *w, const gm_config *cfg, uint64_t seed, const gm_affine *requant,
                                    gm_backend *be, gm_bind_stats *stats, gm_err *err);
/* One rank's weights of a model split as `part` says (partition.h): its slices of the tensors of
 * src, or (src NULL) of the synthetic model of seed and requant, exactly the numbers of the whole
 * model's weights at those places; the MTP layer is not bound. part NULL: the whole model (as
 * weights_bind, weights_bind_synthetic). A cut of a quantized weight off its groups is
 * GLMOE_E_UNSUPPORTED naming the tensor. */
glmoe_status weights_bind_rank(gm_weights *w, const gm_config *cfg, const gm_bind_source *src, uint64_t seed,
                               const gm_affine *requant, const gm_partition *part, gm_backend *be,
                               gm_bind_stats *stats, gm_err *err);
/* The formats and bytes weights_bind_synthetic would bind, in stats->groups, binding nothing. */
glmoe_status weights_plan_synthetic(const gm_config *cfg, const gm_affine *requant, gm_bind_stats *stats, gm_err *err);
void weights_release(gm_weights *w, const gm_config *cfg, gm_backend *be);
/* The bytes a plan's weights take where a backend keeps them, in their final format (quantized
 * sizes when quantizing while loading; codes, scales and biases), vectors as float32 (every
 * backend converts them); a shared MTP embedding or head counted once. The backend's alignment
 * of each piece comes on top (cuda: at most 3 x 255 bytes per weight). What the up-front memory checks compare with the
 * device's free memory (src/api.c) and what `glmoe bench --dry-run` prints. */
uint64_t weights_plan_bytes(const gm_bind_stats *plan);

/* At most this many sequences per context (a server's parallel slots). */
#define GM_MAX_SEQS 256

/* Steps of one sequence of up to this many rows, every row with its logits, may be recorded once
 * per row count (forward.c, "Decode as a graph"): a decode step is 1 row, a speculative verify
 * 1 + drafts (GM_MAX_DRAFT below). */
#define GM_GRAPH_MAX_ROWS 9

/* One sequence of a state: its KV cache (n_ctx positions), its length, its recorded decode step;
 * with the MTP layer on, what the drafts need (forward.c: "The MTP layer"). */
typedef struct gm_seq {
    gm_kv *kv;                         /* the model's layers, then the MTP layer's */
    int32_t n_past;
    gm_graph *graph[GM_GRAPH_MAX_ROWS + 1];    /* [T]: NULL until recorded (backends with graph_* ops) */
    int32_t graph_eager_steps[GM_GRAPH_MAX_ROWS + 1]; /* [T]: steps of T rows run op by op before recording */
    int32_t *tokens;                   /* [n_ctx] host: the token at each position (MTP on) */
    int32_t mtp_len;                   /* positions whose MTP-layer KV is valid */
    bool stash_ok;                     /* state.stash row holds the hidden of position n_past - 1 */
} gm_seq;

/* Activations, the KV caches and the execution state of a context's sequences, all in backend
 * memory: everything an evaluation writes, so that states of one model may run in parallel
 * threads. */
typedef struct gm_state {
    int32_t n_batch, n_ctx, n_seq;
    int64_t hidden;                    /* H */
    gm_backend *be;
    gm_exec *ex;
    gm_seq *seqs;                      /* [n_seq] */
    int32_t *ids, *pos;                /* [n_batch] */
    float *x, *xn, *q, *k, *v, *attn, *tmp, *ffn_a, *ffn_b; /* see forward.c */
    int32_t *route_idx;
    float *route_w;
    float *logits;                     /* [n_batch, vocab] */
    /* The MTP layer (NULL unless the context runs it): */
    const gm_mtp *mtp;
    float *hid;                        /* [n_batch, H] each row's final-normed hidden state */
    float *mtp_in;                     /* [n_batch, 2H] eh_proj's input */
    float *mtp_h;                      /* [n_batch, H] the hidden states fed to the MTP layer */
    float *stash;                      /* [n_seq, H] each sequence's last hidden state */
    bool graph_off;                    /* the backend declined or a one-row recording failed: never again */
    bool graph_rows_off[GM_GRAPH_MAX_ROWS + 1]; /* [T]: a recording of T > 1 rows failed: not for T again */
    gm_comm *comm;                     /* a split model's rank: its group (all-reduce after each
                                          attention and FFN block); NULL: the whole model */
} gm_state;

/* One row of a batch: a token of sequence `seq` at that sequence's next position. */
typedef struct gm_row {
    int32_t seq, token;
    bool logits;                       /* compute its logits */
} gm_row;

/* The largest arguments this model's forward passes the ops, for an execution state of n_batch
 * tokens per forward over n_ctx positions. */
gm_exec_sizes model_exec_sizes(const gm_config *cfg, int32_t n_batch, int32_t n_ctx);

/* Bytes of a KV cache of n_layers x n_ctx positions of elements of elem_bytes (keys and values). */
uint64_t model_kv_bytes(const gm_config *cfg, int32_t n_layers, int32_t n_ctx, int32_t elem_bytes);
/* Bytes of the activation buffers state_create allocates in backend memory (not the KV caches,
 * nor the execution state's scratch). */
uint64_t state_activation_bytes(const gm_config *cfg, int32_t n_batch, int32_t n_ctx, int32_t n_seq, bool mtp);

/* A state of n_seq sequences of up to n_ctx positions each, n_batch rows per forward; mtp non-NULL
 * runs the MTP layer beside the model (for drafts: every forward keeps its cache current). */
glmoe_status state_create(gm_state *st, const gm_config *cfg, gm_backend *be, int32_t n_batch, int32_t n_ctx,
                          int32_t n_seq, const gm_mtp *mtp, gm_err *err);
/* state_create for one rank of a split model (part NULL: the whole model): its KV caches hold
 * the rank's KV heads. The caller sets st->comm (split.c). */
glmoe_status state_create_rank(gm_state *st, const gm_config *cfg, const gm_partition *part, gm_backend *be,
                               int32_t n_batch, int32_t n_ctx, int32_t n_seq, const gm_mtp *mtp, gm_err *err);
void state_free(gm_state *st);

/* Sequence dst becomes the first n positions of sequence src (their KV copied): a shared prompt
 * prefix is evaluated once. */
glmoe_status state_seq_copy(gm_state *st, int32_t dst, int32_t src, int32_t n, gm_err *err);

/* Keeps the first n positions of sequence q (n below its length). */
void state_seq_truncate(gm_state *st, int32_t q, int32_t n);

/* Runs the forward over T <= n_batch rows of one or more sequences; the rows of a sequence are
 * consecutive, in position order, each at its sequence's next position (within n_ctx). The logits
 * of the rows with `logits` set go to host_logits in row order (one row of vocab floats each).
 * Advances each sequence on success; on failure nothing is appended. */
glmoe_status forward_batch(const gm_config *cfg, const gm_weights *w, gm_state *st, const gm_row *rows, int32_t T,
                           float *host_logits, gm_err *err);

/* forward_batch of T tokens of sequence 0, with the logits of rows [first_logit, T) (first_logit ==
 * T: none). On a backend with graph_* ops, a step of one token of a sequence with its logits is
 * recorded once per sequence (after one step op by op) and replayed (with GLMOE_GRAPH_ROWS=1 also
 * steps of 2..GM_GRAPH_MAX_ROWS rows that all want logits, and steps of a context that runs the
 * MTP layer); the recording stays valid when the sequence's length is changed from outside
 * (reset, truncate, copy). */
glmoe_status forward(const gm_config *cfg, const gm_weights *w, gm_state *st, const int32_t *ids, int32_t T,
                     int32_t first_logit, float *host_logits, gm_err *err);

/* One row of the MTP layer: position pos of sequence seq, whose next token is `token` and whose
 * hidden state (final-normed, or a draft's output) is the H floats at `hidden` (backend memory). */
typedef struct gm_mtp_row {
    int32_t seq, pos, token;
    const float *hidden;
} gm_mtp_row;

/* Runs the MTP layer over R <= n_batch rows, those of one sequence consecutive and starting at
 * its mtp_len, writing their KV (mtp_len is the caller's to advance). With host_logits, also the
 * layer's output: its normed rows in st->hid[0, R) (a draft's hidden state for the next) and their
 * logits, R x vocab floats, in host_logits; without, only the cache is written. */
glmoe_status mtp_forward(const gm_config *cfg, const gm_weights *w, gm_state *st, const gm_mtp_row *rows, int32_t R,
                         float *host_logits, gm_err *err);

/* Most drafts per step (glmoe.h's GLMOE_MAX_DRAFT). */
#define GM_MAX_DRAFT 8
_Static_assert(GM_GRAPH_MAX_ROWS >= 1 + GM_MAX_DRAFT, "a verify of every draft count may be recorded");

/* One speculative step of each of n sequences (glmoe_context_speculate, speculate.c): draft with
 * the MTP layer, verify in one forward, accept, roll back. Each sequence's MTP state must be
 * current (mtp_len == n_past - 1 with the stash filled, or n_past == 0); the rows (1 + n_draft
 * each) must fit one batch. host_logits holds max(n, rows) x vocab floats. */
glmoe_status speculate(const gm_config *cfg, const gm_weights *w, gm_state *st, glmoe_spec_seq *seqs, int32_t n,
                       float *host_logits, gm_err *err);

#endif
