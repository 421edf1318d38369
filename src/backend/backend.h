/*
 * backend.h — the interface between the model (src/model/forward.c, written once) and the
 * compute backends (backend/cpu, later backend/cuda).
 *
 * A backend is a vtable plus its own state, in the spirit of ggml's ggml-backend-impl.h. The
 * model never touches backend memory: activations, the KV cache and weights are opaque
 * pointers that only the backend's ops dereference (host memory on the CPU, device memory on a
 * GPU). The model may do pointer arithmetic on them (to address rows) through gm_ptr_add().
 *
 * Weights (gm_weight, backend/formats.h) carry their format: dense F32/BF16/F16 or MLX's affine
 * quantization. A backend says which formats it takes (supports); the model never assumes one.
 * Matrices keep the Hugging Face layout [rows = out features, cols = in features].
 *
 * Activations are float32 row-major. Every op is asynchronous with respect to the host until
 * copy_out() or sync(); a backend that runs on the host simply runs them in order.
 *
 * Threads. The backend object (gm_backend) holds what the model shares: the device, the weights
 * and their tables. It is written only while weights are bound (one thread, before any context
 * runs) and read-only afterwards. Everything an evaluation writes lives in an execution state
 * (gm_exec, one per context: its scratch, its stream or queue, its recorded steps), so that two
 * threads may run ops on two execs of one backend at once. alloc/dealloc and kv_create/kv_free
 * may be called from any thread at any time. tests/threads/test_threads.c checks this on every
 * backend (and under ThreadSanitizer on the CPU).
 *
 * Ops that fuse several steps (residual add + RMSNorm, routing) exist so that a GPU backend can
 * do them in one launch; the CPU backend implements the same fused semantics.
 */
#ifndef GLMOE_BACKEND_H
#define GLMOE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/formats.h"
#include "util/error.h"

/* A tensor as it lies in the host mapping, before binding: a weight whose pointers are host
 * memory, possibly unaligned (MLX writes unpadded headers). */
typedef struct gm_host_tensor {
    gm_weight w;         /* data (and scales, biases) in host memory; owned unused */
    bool aligned;        /* every pointer is aligned to what its elements need (4 for codes) */
    bool transient;      /* the memory is freed after weight_bind (a weight quantized while
                            loading): the backend must copy it, never keep a pointer to it */
} gm_host_tensor;

/* How a weight will be used: matrices are read by matmuls in their stored type; small vectors
 * (norm weights, biases, the router's correction bias) are converted to float32 once at bind
 * time because every op reads them as float32. */
typedef enum gm_bind_kind {
    GM_BIND_MATRIX = 0,
    GM_BIND_VECTOR_F32,
} gm_bind_kind;

/* What one execution state must hold, so that it allocates its scratch once, up front: the
 * largest arguments the forward will pass its ops. The backend knows sizes, not the model. */
typedef struct gm_exec_sizes {
    int32_t n_batch;        /* most tokens per forward (T)                              */
    int32_t n_ctx;          /* most positions attention reads (the KV cache's length)    */
    int64_t hidden;         /* H: the residual rows' width                               */
    int64_t max_in;         /* widest input of any matmul (K)                            */
    int64_t max_out;        /* widest output of any matmul (N), the vocabulary included  */
    int32_t n_heads;        /* most query heads of an attention call                     */
    int32_t head_dim;       /* their width                                               */
    int32_t n_experts;      /* routed experts of a MoE layer (0: no MoE layer)           */
    int32_t top_k;          /* experts per token                                         */
    int64_t expert_width;   /* Im: an expert's intermediate width                        */
} gm_exec_sizes;

typedef struct gm_backend gm_backend;
typedef struct gm_comm gm_comm;   /* the ranks of a split model (backend/comm.h) */
typedef struct gm_kv gm_kv;       /* a KV cache, owned by the backend */

/* The execution state of one sequence on a backend (made by exec_create). Backends extend it:
 * their own struct starts with this one. */
typedef struct gm_exec {
    gm_backend *be;
} gm_exec;

/* The routed experts of one MoE layer: n experts, each with gate and up [Im, H] and down [H, Im]
 * weights. prepare_experts gives the backend the chance to describe them once, at bind time, in
 * its own form (a device table on the GPU), kept in `table` until release_experts. */
typedef struct gm_experts {
    int32_t n;
    gm_weight *gate, *up, *down;    /* [n] each */
    /* 1 when the last entry is the layer's shared expert (a copy of its weights' descriptors, not
     * owned): moe_route then appends it to every token's choices with weight 1 (its
     * shared_expert), so that one moe_experts call computes the routed and the shared experts
     * (no separate launches for the shared MLP). 0: the shared MLP runs on its own. */
    int32_t shared;
    /* Expert parallelism (a model split with --split ep, src/model/partition.h): n_all is the
     * router's expert count and the bank holds its experts [first, first + n - shared); moe_experts
     * skips the entries of idx outside that range (another rank's), and the shared expert, when
     * folded, is still index n_all. n_all 0 (every bank of an unsplit model): the bank holds every
     * expert from index 0 and an index outside it is an error. */
    int32_t first, n_all;
    void *table;                    /* the backend's, or NULL */
} gm_experts;

/* Parameters of the MoE router (spec §2.6). */
typedef struct gm_route_params {
    int32_t n_experts, top_k, n_group, topk_group;
    bool norm_topk_prob;
    float routed_scaling_factor;
    /* true: every token's row of idx/weights has top_k + 1 entries, the last one expert
     * n_experts with weight exactly 1 (outside the normalisation and the scaling): the shared
     * expert of a bank whose `shared` is 1. false: top_k entries. */
    bool shared_expert;
} gm_route_params;

/* Parameters of one attention call. */
typedef struct gm_attn_params {
    int32_t n_heads, n_kv_heads, head_dim;
    int32_t n_tokens;     /* T: queries (and new keys/values) in this call */
    int32_t n_past;       /* tokens already in the cache; the new ones go to [n_past, n_past+T) */
    float scale;          /* 1/sqrt(head_dim) */
    /* Optional additive mask [T, n_past+T] float32 in backend memory, added to the scores on top
     * of the causal mask (-INFINITY entries hide keys). NULL: causal only. A query whose keys are
     * all hidden gets an output of zeros (not NaN). */
    const float *mask;
    /* Optional: backend memory whose first int32 holds n_past (forward() passes its positions
     * buffer, pos[0] = n_past). A backend that records steps (graph_capture_begin) reads n_past
     * from there on the device, so that one recorded step stays valid as n_past moves; n_past
     * above must still hold the same value (it bounds the call). NULL: n_past only. Backends
     * that run ops as they are called (the CPU) ignore it. */
    const int32_t *n_past_mem;
    /* Optional RoPE folded into the call (rope_pos non-NULL): q and the new keys are used as
     * rope(q, rope_pos, T, n_heads, head_dim, rotary_dim, rope_theta) and the same on k with
     * n_kv_heads would leave them (the cache receives the rotated keys), so that a backend can
     * rotate them in the launch that reads them instead of in two launches of rope. rope_pos is
     * backend memory ([T] positions). The buffers q and k are read only: they keep their
     * unrotated values. NULL: q and k are used as given (rotary_dim, rope_theta unread). */
    const int32_t *rope_pos;
    int32_t rotary_dim;
    float rope_theta;
} gm_attn_params;

/* A recorded step (graph_capture_end), owned by the backend that made it. */
typedef struct gm_graph gm_graph;

typedef struct gm_backend_ops {
    const char *name;

    void (*free)(gm_backend *be);

    /* ---- memory (any thread) ------------------------------------------------------------- */
    glmoe_status (*alloc)(gm_backend *be, size_t bytes, void **out, gm_err *err);
    void (*dealloc)(gm_backend *be, void *p);
    /* Optional: GLMOE_E_NOMEM, in one line naming the bytes needed and free, when a model's
     * weights of `bytes` (in their final format: weights_plan_bytes) would not fit with room to
     * work; `what` names the model ("glm-4.5 (92 layers, synthetic)"). Called before any weight is
     * made or uploaded. NULL: the backend has no such limit to check (host memory). */
    glmoe_status (*check_fit)(gm_backend *be, uint64_t bytes, const char *what, gm_err *err);

    /* ---- weights (while binding: one thread, before any exec runs ops on them) ------------- */

    /* Whether every op takes weights stored like `format` (its type and affine parameters). A
     * format a backend does not support is refused before any weight is bound (src/api.c), so
     * that no op meets it. */
    bool (*supports)(gm_backend *be, const gm_weight *format);

    /* Makes w usable by the ops from a host tensor. May keep a pointer into the mapping (the CPU
     * does when the data is aligned), or copy. *copied_bytes receives the host or device bytes
     * allocated for it. */
    glmoe_status (*weight_bind)(gm_backend *be, gm_weight *w, const gm_host_tensor *src,
                                gm_bind_kind kind, size_t *copied_bytes, gm_err *err);
    void (*weight_release)(gm_backend *be, gm_weight *w);
    /* Makes w a [rows, cols] weight of `type` (F32 or BF16) whose element i is
     * gm_synthetic_value(seed, i, mean, std) (util/synthetic.h; bf16 rounded to nearest even),
     * generated where the backend keeps its weights: a GPU fills it on the device, with no file
     * and no host copy. For benchmarks of models that exist only as a configuration.
     * *bytes receives the bytes allocated. */
    glmoe_status (*weight_synthetic)(gm_backend *be, gm_weight *w, gm_wtype type, int64_t rows, int64_t cols,
                                     uint64_t seed, float mean, float std, size_t *bytes, gm_err *err);
    /* Optional (NULL: the backend makes no quantized synthetic weights): makes w the [rows, cols]
     * affine weight of format q (legal bits and group, q->scale_type F32, BF16 or F16, cols a
     * multiple of q->group) that quantizing the BF16 weight of weight_synthetic(seed, mean, std)
     * while loading gives (weights.c, `--quantize`): each value rounded to q->scale_type, then
     * gm_affine_quantize_row, bit for bit on every backend. Made where the backend keeps its
     * weights (a GPU: generated and quantized on the device through one bf16 temporary of this
     * tensor, freed before it returns), so that a model of any size is built one tensor at a
     * time in its quantized size. *bytes receives the bytes of the quantized weight. */
    glmoe_status (*weight_synthetic_affine)(gm_backend *be, gm_weight *w, const gm_affine *q, int64_t rows,
                                            int64_t cols, uint64_t seed, float mean, float std, size_t *bytes,
                                            gm_err *err);
    /* Optional (NULL: nothing to prepare, table stays NULL): describes a layer's experts, whose
     * weights are bound, in the backend's form (bank->table). Called again after any of the
     * weights changed; release_experts frees the table (NULL is fine). */
    glmoe_status (*prepare_experts)(gm_backend *be, gm_experts *bank, gm_err *err);
    void (*release_experts)(gm_backend *be, gm_experts *bank);

    /* ---- execution states and KV caches (any thread) --------------------------------------- */

    /* An execution state whose scratch holds every op call within `sizes`, allocated now (never
     * grown later, so a recorded step stays valid for the state's life). */
    glmoe_status (*exec_create)(gm_backend *be, const gm_exec_sizes *sizes, gm_exec **out, gm_err *err);
    void (*exec_free)(gm_exec *ex);   /* NULL is fine; frees no graph (graph_free first) */

    /* KV cache for n_layers x n_ctx positions x n_kv_heads x head_dim, keys and values. */
    glmoe_status (*kv_create)(gm_backend *be, gm_kv **out, int32_t n_layers, int32_t n_ctx,
                              int32_t n_kv_heads, int32_t head_dim, gm_err *err);
    void (*kv_free)(gm_backend *be, gm_kv *kv);
    /* Positions [0, n) of every layer of src copied into dst (same shape), queued on ex: a
     * sequence forked from another's prefix (src and dst distinct). */
    glmoe_status (*kv_copy)(gm_exec *ex, gm_kv *dst, const gm_kv *src, int32_t n, gm_err *err);

    /* ---- on an exec: copies and ops, by one thread at a time per exec ----------------------
     * Host → backend and backend → host copies; copy_out waits for the exec's pending work.
     * copy_in may return before the copy has happened, but src may be reused as soon as it
     * returns. Weights bound or prepared before copy_in are visible to the ops queued after it. */
    glmoe_status (*copy_in)(gm_exec *ex, void *dst, const void *src, size_t bytes, gm_err *err);
    glmoe_status (*copy_out)(gm_exec *ex, void *dst, const void *src, size_t bytes, gm_err *err);
    glmoe_status (*sync)(gm_exec *ex, gm_err *err);

    /* All activations float32 row-major; ids and positions int32. */

    /* out[t, :] = table[ids[t], :] for t < T. An id outside [0, table->rows) is refused with
     * GLMOE_E_TOKEN, either by embed itself (the CPU) or, on a backend that queues ops, by the
     * next copy_out/sync (the GPU checks on the device, so that no step waits for the host); the
     * row of such an id is left unwritten and nothing reads outside the table. Callers that
     * want the error before queueing anything check ids on the host (src/api.c does). */
    glmoe_status (*embed)(gm_exec *ex, float *out, const gm_weight *table, const int32_t *ids,
                          int32_t T, gm_err *err);

    /* If delta: resid += delta. Then out = rmsnorm(resid) * w, over rows of `cols` values.
     * out may equal resid only when delta is NULL. */
    glmoe_status (*add_rmsnorm)(gm_exec *ex, float *out, float *resid, const float *delta,
                                const gm_weight *w, int64_t rows, int64_t cols, float eps, gm_err *err);

    /* resid += delta over n values. */
    glmoe_status (*add)(gm_exec *ex, float *resid, const float *delta, int64_t n, gm_err *err);

    /* rows x width floats from src to dst, in backend memory, row r at src + r * src_stride and
     * dst + r * dst_stride (strides in floats): gathering rows, building [a; b] side by side.
     * The two ranges must not overlap. */
    glmoe_status (*copy_2d)(gm_exec *ex, float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                            int64_t rows, int64_t width, gm_err *err);

    /* out[T, W.rows] = x[T, W.cols] · W^T (+ bias[W.rows] if bias and bias->data). */
    glmoe_status (*matmul)(gm_exec *ex, float *out, const float *x, const gm_weight *W,
                           const gm_weight *bias, int32_t T, gm_err *err);

    /* Optional (NULL: matmul once per weight): out[i][T, W[i].rows] = x[T, cols] · W[i]^T
     * (+ bias[i][W[i].rows] if bias[i] and bias[i]->data) for i < n <= 3, weights of the same
     * cols sharing x (q, k and v): one launch where the backend can. */
    glmoe_status (*matmul_n)(gm_exec *ex, float *const *out, const float *x, const gm_weight *const *W,
                             const gm_weight *const *bias, int n, int32_t T, gm_err *err);

    /* Half-split RoPE in place on the first rotary_dim dims of every head of x[T, n_heads, head_dim];
     * token t is at position pos[t]. */
    glmoe_status (*rope)(gm_exec *ex, float *x, const int32_t *pos, int32_t T, int32_t n_heads,
                         int32_t head_dim, int32_t rotary_dim, float theta, gm_err *err);

    /* Stores k, v [T, n_kv_heads*head_dim] in the cache of `layer` at [n_past, n_past+T), then
     * out[T, n_heads*head_dim] = softmax(q·K^T * scale + causal mask (+ mask)) · V over the cache
     * [0, n_past+T). Query head h reads KV head h / (n_heads / n_kv_heads). With p->rope_pos, q
     * and k are rotated first (see gm_attn_params). out must not overlap q, k or v. */
    glmoe_status (*attention)(gm_exec *ex, float *out, const float *q, const float *k,
                              const float *v, gm_kv *kv, int32_t layer, const gm_attn_params *p,
                              gm_err *err);

    /* out = silu(gate) * up over n values (out may alias gate). */
    glmoe_status (*swiglu)(gm_exec *ex, float *out, const float *gate, const float *up, int64_t n,
                           gm_err *err);

    /* Router (spec §2.6 steps 1-6): fp32 logits x·Wr^T, sigmoid, selection by sigmoid + bias with
     * group limiting, weights from the unbiased sigmoid, optional renormalisation, scaling.
     * idx, weights: [T, top_k], or [T, top_k + 1] with p->shared_expert. */
    glmoe_status (*moe_route)(gm_exec *ex, int32_t *idx, float *weights, const float *x,
                              const gm_weight *router, const gm_weight *bias, const gm_route_params *p,
                              int32_t T, gm_err *err);

    /* out[T, H] (+)= Σ_j weights[t, j] · Expert_{idx[t, j]}(x[t]), where
     * Expert_e(u) = down_e · (silu(gate_e · u) ⊙ up_e · u), over the prepared bank.
     * accumulate: add to out (which holds the shared expert's output); else overwrite it. */
    glmoe_status (*moe_experts)(gm_exec *ex, float *out, bool accumulate, const float *x, const int32_t *idx,
                                const float *weights, int32_t top_k, const gm_experts *bank, int32_t T,
                                gm_err *err);

    /* Optional (NULL: the backend cannot run a split model): buf[0, n) becomes the sum of every
     * rank's buf[0, n) over the ranks of comm (backend/comm.h), ordered after the exec's queued
     * ops: the one collective of the partitioned forward, after each attention and FFN block. The
     * CPU calls the comm on the calling thread; a GPU backend queues it on its stream (NCCL), so
     * that a recorded step holds it. */
    glmoe_status (*all_reduce)(gm_exec *ex, gm_comm *comm, float *buf, int64_t n, gm_err *err);

    /* ---- optional: record one step and replay it ------------------------------------------
     * Either all four are set or all four are NULL. NULL (the CPU, which runs each op as it is
     * called, so there is no launch cost to save): forward() calls the ops every step, which is
     * also what happens when a backend declines or a recording fails.
     *
     * Between graph_capture_begin and graph_capture_end the exec's ops are recorded, not run. A
     * recording keeps every pointer and scalar argument the ops were given, so forward() uses
     * it only for steps that repeat exactly: one token with its logits, whose changing inputs
     * (token id, position, n_past) the ops read from backend memory (the state's ids and pos
     * buffers, gm_attn_params.n_past_mem), uploaded with copy_in before each replay. copy_in,
     * copy_out and sync must not be called while recording. The exec's scratch never moves, so
     * a graph stays valid for the exec's life.
     *
     * graph_capture_begin: starts recording. GLMOE_E_UNSUPPORTED when the backend declines
     *   (e.g. switched off by its options): the caller runs the step op by op.
     * graph_capture_end: stops recording, always (also after an op failed while recording);
     *   *out is the graph, or NULL with an error when the recording is unusable.
     * graph_replay: queues the recorded ops on the exec that recorded them.
     * graph_free: releases a graph (NULL is fine). Graphs must be freed before the buffers, KV
     *   cache and exec they recorded. */
    glmoe_status (*graph_capture_begin)(gm_exec *ex, gm_err *err);
    glmoe_status (*graph_capture_end)(gm_exec *ex, gm_graph **out, gm_err *err);
    glmoe_status (*graph_replay)(gm_exec *ex, gm_graph *g, gm_err *err);
    void (*graph_free)(gm_exec *ex, gm_graph *g);
} gm_backend_ops;

struct gm_backend {
    const gm_backend_ops *ops;
};

static inline void *gm_ptr_add(void *p, size_t bytes) { return (char *)p + bytes; }
static inline const void *gm_cptr_add(const void *p, size_t bytes) { return (const char *)p + bytes; }

/* The backend for `device` (glmoe.h's glmoe_device: AUTO takes the GPU when glmoe was built
 * with one and it is usable, else the CPU, and says why in the log). n_threads: CPU threads, 0 =
 * all cores (factory.c). */
glmoe_status gm_backend_create(gm_backend **out, glmoe_device device, int n_threads, gm_err *err);

/* Whether gm_backend_create(device) would succeed now, found without loading a model (and, on a
 * machine without a GPU, without loading the CUDA libraries): GLMOE_OK with `desc` saying what
 * would run ("cpu", "cuda: <the GPU>"), or GLMOE_E_UNSUPPORTED and why not (factory.c). */
glmoe_status gm_backend_check(glmoe_device device, char *desc, size_t desc_size, gm_err *err);

/* ---- a model split over several ranks (factory.c; src/model/split.h) ----------------------- */

/* GLMOE_OK when a split over `asked` ranks has that many devices of its kind: else
 * GLMOE_E_UNSUPPORTED, "--gpus 2: 1 CUDA device found" (kind "CUDA"). For backends of devices. */
glmoe_status gm_check_device_count(int32_t asked, int32_t found, const char *kind, gm_err *err);

/* Whether a model split over n ranks can run on backends of rank 0's kind: on CUDA, n devices
 * must be present (gm_check_device_count); the CPU's ranks are simulated, any n. */
glmoe_status gm_backend_check_ranks(const gm_backend *first, int32_t n, gm_err *err);

/* Rank `rank`'s backend (rank >= 1) of a model whose rank 0 runs on `first`: CUDA device `rank`
 * (ranks map to devices 0..N-1 in order; CUDA_VISIBLE_DEVICES chooses which), or another CPU
 * backend of n_threads threads. */
glmoe_status gm_backend_create_rank(gm_backend **out, const gm_backend *first, int32_t rank, int n_threads,
                                    gm_err *err);

/* The group (backend/comm.h) of n ranks whose rank 0 runs on `first`: in-process threads for
 * the CPU (comm_local), NCCL over CUDA devices 0..n-1 (opened only now). ranks[r] is rank r's. */
glmoe_status gm_comm_create(gm_comm **ranks, const gm_backend *first, int32_t n, gm_err *err);

/* The CPU backend. n_threads 0 = all cores. OpenBLAS's thread count is process-wide: the last
 * CPU backend created sets it. */
glmoe_status cpu_backend_create(gm_backend **out, int n_threads, gm_err *err);

#endif
