/*
 * glmoe.h — the public API of glmoe, an inference engine for the GLM-4.5 family of
 * Mixture-of-Experts models (Hugging Face `Glm4MoeForCausalLM`: GLM-4.5, GLM-4.5-Air,
 * GLM-4.6, GLM-4.7).
 *
 * This is the only public header. Everything is reached through opaque handles:
 *
 *   glmoe_model    a loaded checkpoint: configuration plus weights bound to a backend.
 *                  Read-only after loading; several contexts may share one model.
 *   glmoe_context  one sequence being evaluated: its KV cache, activations, scratch and logits.
 *                  A context is used by one thread at a time.
 *
 * Threads: a model, once loaded, may be used from any number of threads at once: contexts of
 * one model may be created, evaluated and freed in parallel threads, each context by one thread
 * at a time (everything an evaluation writes belongs to its context). Loading and freeing a model
 * are not concurrent with anything else on it. Samplers and tokenizer streams are used by one
 * thread at a time, and so are chat streams. A tokenizer's encode and decode are used by one
 * thread at a time (they keep their scratch and their last message in the handle); its lookups,
 * its info and the tokenizer streams made from it only read it, and may run in any number of
 * threads at once, also while one thread encodes.
 *   glmoe_sampler  turns a row of logits into a token id; owns its RNG and history.
 *
 * Conventions
 *   - Every call that can fail returns a glmoe_status; results come back through the
 *     pointer arguments that come first. GLMOE_OK is 0.
 *   - Each handle keeps the message of its last failure: glmoe_model_errmsg(),
 *     glmoe_context_errmsg(). glmoe_model_load() hands back a model even when loading
 *     fails (as sqlite3_open does) so that its message can be read; free it in either case.
 *   - Every *_create / *_load has one *_free; *_free(NULL) does nothing.
 *   - Pointers returned by getters are borrowed; the comment on each says how long they
 *     stay valid.
 *   - Calls that have no handle to carry a message take a caller-owned buffer
 *     (`char *err, size_t err_size`), which may be NULL.
 *   - Token ids are int32_t. Logits are float32.
 *   - The library never exits the process and never prints, except through the log
 *     callback (glmoe_log_set).
 */
#ifndef GLMOE_H
#define GLMOE_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(GLMOE_BUILD_SHARED)
#define GLMOE_API __attribute__((visibility("default")))
#else
#define GLMOE_API
#endif

/* ---- version ----------------------------------------------------------------------- */

/* The version of this header (CMakeLists.txt reads it from here). A program built against one
 * header runs with every library of the same major version: the shared library's SONAME is
 * libglmoe.so.MAJOR. While MAJOR is 0, a new MINOR may change the API. */
#define GLMOE_VERSION_MAJOR 0
#define GLMOE_VERSION_MINOR 1
#define GLMOE_VERSION_PATCH 0

/* The library's own version, "MAJOR.MINOR.PATCH" (static storage), which may be newer than the
 * header the program was built with. */
GLMOE_API const char *glmoe_version(void);

/* The source the library was built from: `git describe --always --dirty` of its tree when it was
 * configured ("833703f0ab", "833703f0ab-dirty"), or "" when that was not a git checkout. Static
 * storage. */
GLMOE_API const char *glmoe_version_commit(void);

/* ---- status ------------------------------------------------------------------------ */

typedef enum glmoe_status {
    GLMOE_OK = 0,
    GLMOE_E_ARG,         /* a bad argument: NULL handle, out-of-range value, bad option     */
    GLMOE_E_IO,          /* a file could not be opened, read or mapped                     */
    GLMOE_E_FORMAT,      /* a file is malformed: safetensors header, JSON syntax, ...       */
    GLMOE_E_CONFIG,      /* config.json is inconsistent or misses a field                  */
    GLMOE_E_WEIGHTS,     /* a tensor is missing or has the wrong dtype or shape            */
    GLMOE_E_UNSUPPORTED, /* a valid input that glmoe does not handle (architecture, dtype)  */
    GLMOE_E_NOMEM,       /* out of host or device memory                                   */
    GLMOE_E_TOKEN,       /* a token id outside [0, vocab)                                  */
    GLMOE_E_CONTEXT,     /* the sequence would exceed the context length                   */
    GLMOE_E_BACKEND,     /* the compute backend failed (device error, no device)           */
} glmoe_status;

/* A static, constant description of a status code ("invalid argument", ...). */
GLMOE_API const char *glmoe_status_str(glmoe_status status);

/* ---- logging ----------------------------------------------------------------------- */

typedef enum glmoe_log_level {
    GLMOE_LOG_DEBUG = 0,
    GLMOE_LOG_INFO,
    GLMOE_LOG_WARN,
    GLMOE_LOG_ERROR,
} glmoe_log_level;

/* Receives one message (no trailing newline). user_data is what was given to glmoe_log_set. */
typedef void (*glmoe_log_fn)(glmoe_log_level level, const char *message, void *user_data);

/* Sets the process-wide log callback. NULL restores the default, which drops every message.
 * Messages below min_level are not formatted at all. Not thread-safe against concurrent logging:
 * set it once at start-up. */
GLMOE_API void glmoe_log_set(glmoe_log_fn fn, void *user_data, glmoe_log_level min_level);

/* ---- files ------------------------------------------------------------------------- */

/* Reads a whole file the way glmoe reads every file it is given (config.json, the shards,
 * tokenizer.json, chat_template.jinja), for a caller that takes files from users as well: a
 * prompt, a system message, a tools list.
 *   - It never blocks: the file is opened with O_NONBLOCK, so a FIFO or a device is refused at
 *     once instead of being waited on (a server thread would hang on a FIFO until a writer came).
 *   - Only a regular file is read; a FIFO, directory, device or socket is GLMOE_E_IO.
 *   - At most max_bytes: a larger file is GLMOE_E_FORMAT, found from its size before anything is
 *     allocated, and again while reading (a file that grows, /proc's files).
 * *out receives the bytes followed by a NUL (text can be used as a C string; the file may hold
 * NULs of its own, so *out_len is the length), to be freed with glmoe_free. On failure *out is
 * NULL and err (may be NULL) receives one line that starts with the path
 * ("notes.txt: not a regular file (a FIFO)", "notes.txt: cannot open: No such file or
 * directory"): GLMOE_E_IO when it cannot be opened or read, GLMOE_E_NOMEM, GLMOE_E_ARG for a NULL
 * out, out_len or path. */
GLMOE_API glmoe_status glmoe_file_read(char **out, size_t *out_len, const char *path, size_t max_bytes,
                                       char *err, size_t err_size);

/* ---- model ------------------------------------------------------------------------- */

typedef struct glmoe_model glmoe_model;

typedef enum glmoe_device {
    GLMOE_DEVICE_AUTO = 0, /* the GPU when glmoe was built with one and it is usable, else the CPU */
    GLMOE_DEVICE_CPU,
    GLMOE_DEVICE_CUDA,
} glmoe_device;

/* Whether this build of the library has the backend for `device`: CPU and AUTO always, CUDA when
 * it was built with the CUDA toolkit. A build with CUDA keeps that backend in a module of its own
 * (libglmoe-cuda.so, installed next to libglmoe), opened only when a GPU is asked for or found, so
 * that a machine without one never loads the CUDA libraries. */
GLMOE_API bool glmoe_device_built(glmoe_device device);

/* Whether `device` can run a model now, without loading one. GLMOE_DEVICE_CPU: always.
 * GLMOE_DEVICE_CUDA: the build has it, the NVIDIA driver is installed and sees a GPU of compute
 * capability 8.0 or newer, and the backend's module opens. GLMOE_DEVICE_AUTO: as CUDA, else the
 * CPU (always GLMOE_OK). On GLMOE_OK, desc (may be NULL) receives what would run ("cpu", "cuda:
 * NVIDIA H100 80GB HBM3, compute capability 9.0, 79.1 GiB"); otherwise one line saying why not
 * ("cuda: no CUDA GPU: the NVIDIA driver is not installed (libcuda.so.1: cannot open shared object
 * file)"), and the status is GLMOE_E_UNSUPPORTED (or GLMOE_E_ARG for an unknown device). */
GLMOE_API glmoe_status glmoe_device_check(glmoe_device device, char *desc, size_t desc_size);

/* Quantizing float weights while loading, as `mlx_lm.convert -q --q-bits B --q-group-size G`
 * would (MLX's affine format: codes of `bits` bits, a scale and a bias per group of `group_size`
 * weights of a row): every Linear module (attention, dense and shared-expert MLPs, the routed
 * experts), the embedding and lm_head, when the group divides their input width; never the
 * router, norms or biases. The result equals loading mlx-lm's converted files; nothing is
 * written. Weights the checkpoint already stores quantized are kept as they are. */
typedef struct glmoe_quantize {
    int32_t bits;          /* 0: none (the default); else 2, 3, 4, 5, 6 or 8                  */
    int32_t group_size;    /* 32, 64 or 128; 0: 64 (MLX's default)                            */
} glmoe_quantize;

/* Progress of a long job: done of total units (bytes), and what is being worked on. */
typedef void (*glmoe_progress_fn)(uint64_t done, uint64_t total, const char *what, void *user_data);

/* How a model split over several devices (glmoe_model_params.n_devices) cuts its routed experts.
 * Attention is always cut by heads, the dense and shared MLPs by columns; embedding, norms,
 * routers and lm_head stay whole on every device; one all-reduce joins each attention and FFN
 * block. */
typedef enum glmoe_split {
    GLMOE_SPLIT_AUTO = 0,  /* tp: at small batch an all-reduce costs less than expert traffic */
    GLMOE_SPLIT_TP,        /* every expert cut by columns over the devices                    */
    GLMOE_SPLIT_EP,        /* each device holds n_routed_experts / n_devices whole experts    */
} glmoe_split;

typedef struct glmoe_model_params {
    glmoe_device device;
    int n_threads;         /* CPU threads; 0 = one per 256 MiB of weights, at least one, at most
                              all available cores (a small model runs faster on one thread than
                              on a team that waits for a busy core)                            */
    glmoe_quantize quantize;
    bool skip_mtp;         /* leave out the multi-token-prediction layer even where the
                              checkpoint has one (saves its memory; no drafts); default false */
    glmoe_progress_fn progress; /* glmoe_model_load calls it, on the loading thread, after each
                              weight matrix is bound (read, copied to the device, quantized):
                              done of total bytes of the weights as held, the tensor's name;
                              once more with done == total and "" when all are. NULL (default):
                              none. glmoe_model_load_synthetic does not call it.            */
    void *progress_user_data;
    int32_t n_devices;     /* split the model over this many devices (0 or 1: none). The heads
                              (num_attention_heads, num_key_value_heads), the dense and shared
                              MLP widths and, per `split`, moe_intermediate_size or
                              n_routed_experts must divide by it, and quantized weights cut
                              across their columns must be cut on their groups: else the load
                              fails naming the field or tensor. On the CPU the devices are
                              simulated ranks, one thread each, summing in a fixed order (how
                              CI tests the split); on CUDA rank r runs on GPU r (as
                              CUDA_VISIBLE_DEVICES orders them; fewer GPUs than asked is an
                              error) with NCCL's all-reduce, loaded at run time, in a build
                              that found NCCL's header (else refused); GLMOE_SPLIT_EP is
                              refused on CUDA for now. Not yet run on several GPUs. A split
                              model loads no MTP layer (no drafts).                         */
    glmoe_split split;     /* default GLMOE_SPLIT_AUTO                                         */
} glmoe_model_params;

GLMOE_API glmoe_model_params glmoe_model_params_default(void);

/* Loads a Hugging Face checkpoint directory: config.json, optional generation_config.json,
 * and model.safetensors or model.safetensors.index.json with its shards. Weights stay in their
 * stored format, memory-mapped; the files must not be modified while the model is loaded.
 * MLX-quantized checkpoints (mlx-community style: U32 codes with .scales and .biases, the
 * `quantization` block of config.json with per-module overrides, stacked switch_mlp experts) load
 * as they are, as do Hugging Face per-expert tensors. A backend that cannot run a format the
 * weights have refuses with GLMOE_E_UNSUPPORTED (every backend runs every format glmoe reads
 * today); GLMOE_DEVICE_AUTO then runs on the CPU and says so in the log.
 *
 * *out receives a model handle in every case except when even that allocation fails (then
 * *out is NULL and GLMOE_E_NOMEM is returned). On failure, glmoe_model_errmsg(*out) says which
 * file, tensor or field is wrong and why; the handle can then only be freed. params may be NULL
 * for the defaults. */
GLMOE_API glmoe_status glmoe_model_load(glmoe_model **out, const char *dir,
                                        const glmoe_model_params *params);

/* A model with the shape of a released configuration and random weights, for benchmarks:
 * config_name is "glm-4.5", "glm-4.5-air", "glm-4.6" or "glm-4.7" (their config.json values),
 * n_layers cuts num_hidden_layers (0: all of them). The backend generates the weights where it
 * keeps them (a GPU on the device: no file, no host copy): matrices bf16 with standard deviation
 * 0.02, norms 1, biases small, the same numbers on every backend for the same seed.
 * params->quantize quantizes them exactly as glmoe_model_load would quantize a bf16 checkpoint of
 * these weights (the same modules, the same bytes), each tensor generated and quantized where the
 * backend keeps it, one at a time: a GPU needs room for the quantized model plus one bf16 tensor.
 * Errors and the handle behave as with glmoe_model_load (a backend that cannot run the format
 * refuses, or AUTO falls back to the CPU; weights that would not fit the GPU are refused before
 * any is made); glmoe_model_info.dir describes the model. */
GLMOE_API glmoe_status glmoe_model_load_synthetic(glmoe_model **out, const char *config_name, int32_t n_layers,
                                                  uint64_t seed, const glmoe_model_params *params);

/* Writes an MLX-format quantized copy of the float checkpoint in_dir to the new directory out_dir,
 * as `mlx_lm.convert -q --q-bits B --q-group-size G` would, so that glmoe and mlx-lm both load it:
 * config.json with the `quantization` block; the modules glmoe_quantize lists quantized (codes,
 * scales and biases in the config's dtype); per-expert tensors stacked as mlx-lm's
 * `mlp.switch_mlp.*`; everything else copied; shards of at most 5 GiB with their index; the
 * tokenizer, its config, the chat template and generation_config.json copied. It streams tensor
 * by tensor (memory stays near one tensor's scales and biases). out_dir must not exist (nothing
 * is overwritten); on failure what was written is removed. q->group_size 0 means 64. progress
 * (may be NULL) is called after each tensor. err (may be NULL) receives one line on failure. */
GLMOE_API glmoe_status glmoe_quantize_checkpoint(const char *in_dir, const char *out_dir, const glmoe_quantize *q,
                                                 glmoe_progress_fn progress, void *user_data, char *err,
                                                 size_t err_size);

/* Frees the model. Every context created from it must be freed first. NULL is a no-op. */
GLMOE_API void glmoe_model_free(glmoe_model *model);

/* The message of the model's last failure, or "" if none. Valid until the next call on the
 * model or its free. Never NULL (for a NULL model it returns a static message). */
GLMOE_API const char *glmoe_model_errmsg(const glmoe_model *model);

/* The weights of one kind held in one format (glmoe_model_info.weight_groups). */
typedef struct glmoe_weight_group {
    const char *kind;      /* "embedding", "attention", "dense MLP", "router", "routed experts",
                              "shared experts", "lm_head", "norms and biases"                  */
    const char *format;    /* "BF16", "F32", ..., or "q4 g64 (BF16 scales)"                   */
    int32_t bits, group_size; /* of an affine format; 0 for float                             */
    uint64_t n_tensors;    /* weights (a stacked expert tensor counts once per expert)        */
    uint64_t n_params, bytes; /* bytes as held in that format, scales and biases included    */
} glmoe_weight_group;

/* What the model is, as loaded. All pointers inside are owned by the model. */
typedef struct glmoe_model_info {
    const char *architecture;       /* "Glm4MoeForCausalLM"                               */
    const char *dir;                /* the directory given to glmoe_model_load            */
    const char *backend;            /* "cpu", "cuda"                                      */
    const char *dtype;              /* config's dtype/torch_dtype ("bfloat16"), or ""     */
    int32_t vocab_size;
    int32_t hidden_size;
    int32_t n_layers;               /* decoder layers used by the forward                 */
    int32_t n_dense_layers;         /* first_k_dense_replace                              */
    int32_t n_heads, n_kv_heads, head_dim, rotary_dim;
    int32_t intermediate_size, moe_intermediate_size;
    int32_t n_experts, n_experts_per_tok, n_shared_experts, n_group, topk_group;
    bool use_qk_norm, norm_topk_prob;
    float routed_scaling_factor, rope_theta, rms_norm_eps;
    int32_t max_position_embeddings;
    const int32_t *eos_ids;         /* from config.json and generation_config.json         */
    int32_t n_eos_ids;
    uint64_t n_params;              /* parameters bound for the forward                   */
    uint64_t n_params_active;       /* parameters touched per token (K of E experts)      */
    uint64_t bytes_bf16, bytes_f16, bytes_f32; /* bytes of bound tensors by stored dtype  */
    uint64_t bytes_quantized;       /* bytes of affine-quantized weights (codes + scales + biases) */
    int32_t n_quantized_on_load;    /* weights glmoe quantized while loading (params.quantize) */
    const glmoe_weight_group *weight_groups; /* the weights by kind and format */
    int32_t n_weight_groups;
    bool has_mtp;                   /* the MTP layer is loaded: drafts are possible (n_draft) */
    uint64_t n_params_mtp;          /* its parameters (not in n_params)                   */
    int32_t n_tensors_skipped;      /* MTP-layer tensors not loaded (skip_mtp, or extra)  */
    uint64_t bytes_skipped;
    int32_t n_tensors_unused;       /* tensors glmoe does not know (warned about at load) */
    uint64_t bytes_realigned;       /* tensor bytes copied because the file left them unaligned */
    double load_seconds;
    uint64_t resident_bytes;        /* host memory glmoe allocated for the model (not the mapping) */
    /* Added after resident_bytes (new fields go at the end, so that the struct only grows): */
    bool attention_bias;            /* q, k and v projections have biases (config.json)   */
    uint64_t weight_bytes_held;     /* the weights where the backend keeps them: matrices in
                                       their final format, vectors as float32 (equal to
                                       glmoe_load_plan.weight_bytes)                        */
} glmoe_model_info;

GLMOE_API glmoe_status glmoe_model_get_info(const glmoe_model *model, glmoe_model_info *out);

/* Counters summed over every GPU backend of the process, for benchmarks: the host time spent
 * blocked waiting for the GPU (copying results back, synchronising) and how many decode steps were
 * replayed from a recording (a CUDA graph). A step's host time is its wall time minus the wait.
 * All zero where no GPU backend has run (the CPU: the host is the device). Not synchronised:
 * read them from the thread that runs the contexts. */
typedef struct glmoe_device_stats {
    double wait_seconds;
    uint64_t n_waits;
    uint64_t graphs_recorded, graph_replays;
} glmoe_device_stats;

GLMOE_API void glmoe_device_stats_get(glmoe_device_stats *out);

/* ---- context ----------------------------------------------------------------------- */

typedef struct glmoe_context glmoe_context;

typedef struct glmoe_context_params {
    int32_t n_ctx;     /* maximum length of each sequence (its KV cache); 0 = min(max_position_embeddings, 4096) */
    int32_t n_batch;   /* most tokens (rows) evaluated in one forward; longer inputs are split; 0 = 512 */
    int32_t n_seq_max; /* sequences the context holds (glmoe_context_decode), each of up to n_ctx tokens,
                          every KV cache allocated up front; 0 = 1; at most 256 */
    int32_t n_draft;   /* most draft tokens per glmoe_context_speculate step, made by the model's
                          multi-token-prediction layer; 0 (default): off, the layer is not run;
                          at most GLMOE_MAX_DRAFT; a model loaded without the layer refuses > 0 */
} glmoe_context_params;

GLMOE_API glmoe_context_params glmoe_context_params_default(void);

/* Creates a context (KV cache, activation buffers and scratch, allocated up front) for the model.
 * params may be NULL for the defaults. As with glmoe_model_load, *out receives a handle in every
 * case except when even that allocation fails (then *out is NULL and GLMOE_E_NOMEM is returned):
 * on failure glmoe_context_errmsg(*out) says why (the model's message is never written, so that
 * several threads may create contexts of one model), every other call on it fails, and it must
 * still be freed. */
GLMOE_API glmoe_status glmoe_context_create(glmoe_context **out, glmoe_model *model,
                                            const glmoe_context_params *params);

GLMOE_API void glmoe_context_free(glmoe_context *ctx);
GLMOE_API const char *glmoe_context_errmsg(const glmoe_context *ctx);

/* ---- planning a load ---------------------------------------------------------------- */

/* The weights of one kind held in one format, as planned (glmoe_load_plan.weight_groups): the
 * fields of glmoe_weight_group, the format's name held in the struct so that a plan owns nothing. */
#define GLMOE_PLAN_MAX_GROUPS 48
typedef struct glmoe_plan_group {
    const char *kind;      /* as glmoe_weight_group.kind (a static string)                     */
    char format[48];       /* as glmoe_weight_group.format                                     */
    int32_t bits, group_size;
    uint64_t n_tensors, n_params, bytes;
} glmoe_plan_group;

/* What loading a model and creating one context of it would take (glmoe_model_plan). */
typedef struct glmoe_load_plan {
    int32_t n_layers;                /* decoder layers (n_layers given, or the config's)       */
    int32_t max_position_embeddings;
    uint64_t n_params;               /* parameters bound for the forward (glmoe_model_info)    */
    uint64_t weight_bytes;           /* the weights where a backend keeps them: matrices in their
                                        final format (quantized ones with scales and biases),
                                        vectors as float32; the number glmoe_model_load's
                                        up-front memory check compares with a GPU's free memory
                                        (each piece's alignment comes on top: on the GPU at most
                                        3 x 255 bytes per weight)                              */
    glmoe_plan_group weight_groups[GLMOE_PLAN_MAX_GROUPS]; /* by kind and format, as loaded */
    int32_t n_weight_groups;
    uint64_t kv_bytes_per_token_bf16; /* KV cache of one sequence, every layer, per position:
                                        bf16, the CUDA backend's default                       */
    uint64_t kv_bytes_per_token_f32;  /* the same in float32, the CPU backend's cache          */
    int32_t n_ctx, n_batch, n_seq_max; /* the context planned, defaults applied as
                                        glmoe_context_create applies them                     */
    uint64_t activation_bytes;       /* that context's activation buffers in backend memory
                                        (not its KV caches, nor the backend's scratch)        */
} glmoe_load_plan;

/* Plans a load without reading a weight: of the checkpoint directory dir (config.json, the
 * `quantization` block and the safetensors headers are read and every tensor is checked, as
 * glmoe_model_load checks them), or, with dir NULL, of the synthetic model config_name cut to
 * n_layers that glmoe_model_load_synthetic makes. params (may be NULL: the defaults) as the load
 * would take them: quantize and skip_mtp change the plan, device and n_threads do not (nothing is
 * allocated, no backend is opened). ctx (may be NULL: the defaults) is the context to plan, as
 * glmoe_context_create takes it and with its checks (n_draft > 0 counts the buffers of the
 * multi-token-prediction layer, which the plan must then have). On failure *out is zeroed and err (may be
 * NULL) receives one line naming the file or field: the loader's message for a bad directory,
 * configuration or tensor (GLMOE_E_IO, GLMOE_E_FORMAT, ...), GLMOE_E_ARG for a bad quantize, a
 * context longer than max_position_embeddings, NULL out, or neither dir nor config_name. */
GLMOE_API glmoe_status glmoe_model_plan(glmoe_load_plan *out, const char *dir, const char *config_name,
                                        int32_t n_layers, const glmoe_model_params *params,
                                        const glmoe_context_params *ctx, char *err, size_t err_size);

/* Which positions of an evaluation get logits. */
typedef enum glmoe_logits_mode {
    GLMOE_LOGITS_LAST = 0, /* only the last token of the call (generation)                   */
    GLMOE_LOGITS_ALL,      /* every token of the call (scoring, perplexity, tests)           */
    GLMOE_LOGITS_NONE,     /* none (filling the cache)                                       */
} glmoe_logits_mode;

/* Appends n_ids tokens to the sequence and runs the forward over them: the first call is the
 * prefill (matrix-matrix), later calls with one id are decode steps against the KV cache.
 * Fails with GLMOE_E_TOKEN if an id is outside [0, vocab) and GLMOE_E_CONTEXT if the sequence
 * would exceed n_ctx; in both cases nothing is appended. */
GLMOE_API glmoe_status glmoe_context_eval(glmoe_context *ctx, const int32_t *ids, size_t n_ids,
                                          glmoe_logits_mode mode);

/* The logits of the last glmoe_context_eval: *rows x vocab floats, row-major (one row per
 * position asked for). Borrowed: valid until the next eval, reset or free of the context. */
GLMOE_API glmoe_status glmoe_context_logits(glmoe_context *ctx, const float **logits, size_t *rows);

/* Number of tokens in the sequence (0) so far, and the context length (per sequence). */
GLMOE_API size_t glmoe_context_n_past(const glmoe_context *ctx);
GLMOE_API size_t glmoe_context_n_ctx(const glmoe_context *ctx);

/* Empties the sequence (the KV cache is reused). */
GLMOE_API void glmoe_context_reset(glmoe_context *ctx);

/* Keeps the first n tokens of the sequence and forgets the rest, so that a prompt sharing a prefix
 * with the previous one (a chat's next turn) re-uses its cache. n >= n_past changes nothing. */
GLMOE_API void glmoe_context_truncate(glmoe_context *ctx, size_t n);

/* ---- several sequences in one forward -------------------------------------------------------
 * A context holds n_seq_max sequences (glmoe_context_params), numbered from 0, each with its own
 * KV cache of n_ctx positions; the calls above act on sequence 0. glmoe_context_decode evaluates
 * tokens of any of them in one forward: the matmuls and the experts read each weight once for
 * all the rows (a server's concurrent requests share those reads), attention runs per sequence
 * against its own cache. A row's logits equal what evaluating its sequence alone would give
 * (within float rounding: the CPU within 1e-5). Prefix reuse: glmoe_context_seq_copy gives a
 * sequence the first n positions of another (their KV copied, not recomputed) — a design of
 * contiguous per-sequence caches, chosen for its simplicity and its fast attention; its cost is
 * memory reserved up front for every sequence and a copy of the shared prefix. */

typedef struct glmoe_batch_row {
    int32_t seq;       /* the sequence, in [0, n_seq_max)                                         */
    int32_t pos;       /* its position: the sequence's length, plus the rows of it before this one */
    int32_t token;
    bool logits;       /* compute this row's logits (glmoe_context_row_logits)                    */
} glmoe_batch_row;

/* Evaluates n_rows rows of any sequences, in any order (a sequence's rows in position order),
 * in chunks of n_batch rows. Every row is checked before anything runs: a sequence outside the
 * context or a position that is not the sequence's next is GLMOE_E_ARG, a token outside the
 * vocabulary GLMOE_E_TOKEN, a sequence that would pass n_ctx GLMOE_E_CONTEXT; the message names
 * the row. On any failure no sequence grows. */
GLMOE_API glmoe_status glmoe_context_decode(glmoe_context *ctx, const glmoe_batch_row *rows, size_t n_rows);

/* The logits (vocab floats) of row `row` of the last glmoe_context_decode, which asked for them;
 * GLMOE_E_ARG otherwise. Borrowed: valid until the next eval, decode, truncate, copy or free.
 * (glmoe_context_logits gives them all, in row order.) */
GLMOE_API glmoe_status glmoe_context_row_logits(glmoe_context *ctx, size_t row, const float **logits);

/* The number of sequences, and a sequence's length (0 for one outside the context). */
GLMOE_API int32_t glmoe_context_n_seq(const glmoe_context *ctx);
GLMOE_API size_t glmoe_context_seq_length(const glmoe_context *ctx, int32_t seq);

/* Keeps the first n tokens of sequence seq (rollback; 0 frees it for a new request). n at or
 * past its length changes nothing. O(1). */
GLMOE_API glmoe_status glmoe_context_seq_truncate(glmoe_context *ctx, int32_t seq, size_t n);

/* Sequence dst becomes the first n tokens of sequence src (n <= src's length; the KV of those
 * positions copied), e.g. a request that shares a system prompt with one already evaluated. */
GLMOE_API glmoe_status glmoe_context_seq_copy(glmoe_context *ctx, int32_t dst, int32_t src, size_t n);

/* ---- speculative decoding with the model's MTP layer --------------------------------------
 * GLM checkpoints carry a multi-token-prediction layer trained to predict the token after next.
 * A context created with n_draft > 0 runs it beside the model (its own KV cache, kept current by
 * every eval and decode: about one more layer's attention per token evaluated), and
 * glmoe_context_speculate uses it to draft tokens, which the model verifies all at once: one
 * forward over 1 + n_draft positions reads each weight once, so a step that accepts drafts
 * yields several tokens for little more than the time of one.
 *
 * Exactness: the tokens are those the sampler picks from the model's own logits at each
 * position, in order, exactly as decoding one token at a time would (the drafts only decide how
 * many positions one forward covers). With the same seed the same tokens come out, greedy or
 * sampled, up to the float rounding of evaluating several positions at once. (The acceptance rule
 * is the standard speculative-sampling rule for a draft chosen deterministically, the MTP layer's
 * most likely token: accept it with probability p(draft), else draw from p without it; drawing
 * from p and comparing is exactly that. docs/spec/mtp.md.) */

#define GLMOE_MAX_DRAFT 8

typedef struct glmoe_sampler glmoe_sampler; /* below: "sampling" */

typedef struct glmoe_spec_seq {
    int32_t seq;              /* in: the sequence                                               */
    int32_t token;            /* in: its next token, chosen (sampled) but not yet evaluated     */
    int32_t n_draft;          /* in: drafts to try, 0..the context's n_draft (fewer near n_ctx) */
    glmoe_sampler *sampler;   /* in: picks the model's tokens (the same one that chose `token`,
                                 so that its history and stream go on); NULL: greedy          */
    int32_t out[GLMOE_MAX_DRAFT + 1]; /* out: the tokens that follow `token`                     */
    int32_t n_out;            /* out: 1 + the drafts accepted; out[n_out - 1] is the sequence's
                                 next token, chosen but not evaluated (pass it to the next step)  */
    int32_t n_drafted;        /* out: the drafts tried (n_draft, fewer near n_ctx)               */
    int32_t drafts[GLMOE_MAX_DRAFT]; /* out: those drafts, the MTP layer's picks                  */
} glmoe_spec_seq;

/* One step of each of n sequences (distinct, each with at least one token evaluated, e.g. its
 * prompt): evaluates `token` and up to n_draft drafts, and writes the tokens the sampler picks
 * at those positions up to the first that differs from its draft. Each sequence grows by n_out
 * (token and the accepted drafts); nothing else of it changes. All rows (1 + n_draft each) must
 * fit one batch (n_batch): GLMOE_E_ARG otherwise, as for a sequence outside the context, a
 * repeated sequence or n_draft outside [0, the context's n_draft]; GLMOE_E_TOKEN, GLMOE_E_CONTEXT
 * (no room for `token`) as glmoe_context_decode. The logits of the step are not kept. */
GLMOE_API glmoe_status glmoe_context_speculate(glmoe_context *ctx, glmoe_spec_seq *seqs, size_t n);

/* ---- sampling ---------------------------------------------------------------------- */

typedef struct glmoe_sampler_params {
    float temperature;        /* <= 0: greedy (argmax); default 0                       */
    int32_t top_k;            /* keep the k most likely; <= 0: off                      */
    float top_p;              /* nucleus: smallest set with mass >= p; >= 1: off        */
    float min_p;              /* drop tokens below min_p * p(max); <= 0: off            */
    float repetition_penalty; /* CTRL-style penalty on tokens already seen; 1: off      */
    int32_t repetition_window;/* how many recent tokens the penalty looks at; 0: all    */
    float frequency_penalty;  /* OpenAI's: logit[t] -= count[t] * frequency_penalty, count[t]
                                 being how often the sampler sampled t since create/reset
                                 (accepted prompt tokens do not count); 0: off (default)  */
    float presence_penalty;   /* OpenAI's: logit[t] -= presence_penalty once t has been
                                 sampled; 0: off (default). Both after the repetition penalty,
                                 before top-k and temperature, greedy included; finite    */
    uint64_t seed;            /* the same seed gives the same tokens                    */
} glmoe_sampler_params;

GLMOE_API glmoe_sampler_params glmoe_sampler_params_default(void);

/* params may be NULL for the defaults. err (may be NULL) receives a one-line reason on failure. */
GLMOE_API glmoe_status glmoe_sampler_create(glmoe_sampler **out, const glmoe_sampler_params *params,
                                            char *err, size_t err_size);
GLMOE_API void glmoe_sampler_free(glmoe_sampler *sampler);

/* Picks a token from one row of logits (n_vocab floats; not modified). The token is added to
 * the sampler's history for the repetition penalty. NaN logits count as -inf (never picked); when
 * every logit is NaN or -inf there is nothing to pick: GLMOE_E_ARG. Other failures: GLMOE_E_ARG
 * for a NULL argument or n_vocab <= 0, GLMOE_E_NOMEM. *token is written only on success; on
 * failure glmoe_sampler_errmsg says why. */
GLMOE_API glmoe_status glmoe_sampler_sample(glmoe_sampler *sampler, const float *logits,
                                            int32_t n_vocab, int32_t *token);

/* Why the sampler's last glmoe_sampler_sample failed, in one line ("the logits are not finite:
 * no token to choose, all 151552 are NaN or -inf (151552 NaN, 0 -inf; the first, logits[0], is
 * nan)"), or "" if it succeeded (or none was made). Valid until the next call on the sampler or
 * its free. Never NULL (a static message for a NULL sampler). The caller knows the position in
 * its sequence and puts it in front. */
GLMOE_API const char *glmoe_sampler_errmsg(const glmoe_sampler *sampler);

/* Adds tokens to the history without sampling them (the prompt, for the repetition penalty). */
GLMOE_API void glmoe_sampler_accept(glmoe_sampler *sampler, const int32_t *ids, size_t n_ids);

/* Forgets the history; the RNG goes back to its seed. */
GLMOE_API void glmoe_sampler_reset(glmoe_sampler *sampler);


/* ---- tokenizer ------------------------------------------------------------------- */

typedef struct glmoe_tokenizer glmoe_tokenizer;

/* Loads a tokenizer. path: a tokenizer.json, or a model directory holding tokenizer.json
 * (tokenizer.json.gz is also accepted when glmoe is built with zlib). A tokenizer_config.json in
 * the same directory is read for bos/eos/pad (see glmoe_tokenizer_info); its absence is fine.
 * On failure *out is NULL and err (may be NULL) receives one line naming the file and the field,
 * e.g. "tokenizer.json: pre_tokenizer.pretokenizers[1].type "Metaspace" is not supported". */
GLMOE_API glmoe_status glmoe_tokenizer_load(glmoe_tokenizer **out, const char *path, char *err, size_t err_size);

/* Frees the tokenizer. Streams created from it must be freed first. NULL is a no-op. */
GLMOE_API void glmoe_tokenizer_free(glmoe_tokenizer *tok);

/* The message of the tokenizer's last failure, or "" if none. Valid until the next call on the
 * tokenizer or its free. Never NULL. */
GLMOE_API const char *glmoe_tokenizer_errmsg(const glmoe_tokenizer *tok);

typedef enum glmoe_tokenize_flags {
    /* Recognise special tokens written in the text ("<|user|>" becomes its id), as HF does by
     * default. Without it they are encoded as plain text; non-special added tokens are still
     * recognised (HF's encode_special_tokens behaviour). Chat templates set this; user text that
     * must not inject control tokens does not. */
    GLMOE_TOKENIZE_PARSE_SPECIAL = 1 << 0,
    /* Apply tokenizer.json's post-processor (HF's add_special_tokens=True), e.g. a BOS from a
     * TemplateProcessing. Off for GLM-4.5: its chat template writes [gMASK]<sop> itself. */
    GLMOE_TOKENIZE_ADD_SPECIAL = 1 << 1,
} glmoe_tokenize_flags;

/* Encodes text[0..len) (UTF-8; need not be NUL-terminated; NUL bytes are ordinary characters).
 * flags: glmoe_tokenize_flags or-ed together.
 * ids[0..capacity) receives the ids and *n_ids their number. Each id covers at least one byte of
 * text, so capacity = len + 16 always suffices unless a post-processor template adds more than 16
 * ids. If the ids do not fit, the first `capacity` are written, *n_ids is the number needed and
 * GLMOE_E_ARG is returned; call again with a larger buffer.
 * Ill-formed UTF-8 is refused with GLMOE_E_ARG, and glmoe_tokenizer_errmsg gives the byte offset
 * of the first bad sequence (HF's Python API cannot be given such text, so there is no behaviour to
 * match; replacing bytes would tokenize text the caller never wrote). A hostile tokenizer.json
 * cannot make an encode run away: its normalizer's output is capped (32x the text + 4 KiB) and its
 * regexes get a backtracking budget and a CPU-time allowance (1 s + 2 s per MB); going over is
 * GLMOE_E_ARG with the step named (SECURITY.md). */
GLMOE_API glmoe_status glmoe_tokenizer_encode(glmoe_tokenizer *tok, const char *text, size_t len, unsigned flags,
                                              int32_t *ids, size_t capacity, size_t *n_ids);

/* Decodes ids to UTF-8 text, exactly as HF's decode: ill-formed byte sequences (ids that stop in
 * the middle of a character) become U+FFFD. skip_special drops special tokens.
 * text[0..capacity) receives the text and a terminating NUL; *len is the text's length without the
 * NUL. If it does not fit, as much as fits is written (NUL-terminated when capacity > 0), *len is
 * the full length and GLMOE_E_ARG is returned: call again with capacity >= *len + 1.
 * GLMOE_E_TOKEN when an id is outside the vocabulary (HF drops such ids silently; glmoe refuses). */
GLMOE_API glmoe_status glmoe_tokenizer_decode(glmoe_tokenizer *tok, const int32_t *ids, size_t n_ids, bool skip_special,
                                              char *text, size_t capacity, size_t *len);

/* ---- streaming decode ---- */

/* Turns ids into text one id at a time, for printing tokens as they are generated. Text comes
 * out only in whole UTF-8 characters: a character split across ids is held (at most 3 bytes) until
 * it is complete. Everything pushed, followed by a flush, gives exactly glmoe_tokenizer_decode of
 * all the ids. */
typedef struct glmoe_tokenizer_stream glmoe_tokenizer_stream;

/* The tokenizer must outlive the stream. */
GLMOE_API glmoe_status glmoe_tokenizer_stream_create(glmoe_tokenizer_stream **out, const glmoe_tokenizer *tok,
                                                     bool skip_special);
GLMOE_API void glmoe_tokenizer_stream_free(glmoe_tokenizer_stream *stream);

/* Feeds one id. *text receives the new text (NUL-terminated, possibly ""), *len its length.
 * Borrowed: valid until the next call on the stream. GLMOE_E_TOKEN for an unknown id (the stream
 * is unchanged). */
GLMOE_API glmoe_status glmoe_tokenizer_stream_push(glmoe_tokenizer_stream *stream, int32_t id, const char **text,
                                                   size_t *len);

/* Ends the text: a held, unfinished character comes out as U+FFFD. The stream can then start over. */
GLMOE_API glmoe_status glmoe_tokenizer_stream_flush(glmoe_tokenizer_stream *stream, const char **text, size_t *len);

/* ---- lookups (read-only, any thread) ---- */

/* One past the largest token id (the embedding needs at least this many rows); 0 for NULL. Ids
 * below it may still be unused (id_to_token returns NULL for them). */
GLMOE_API int32_t glmoe_tokenizer_n_vocab(const glmoe_tokenizer *tok);

/* The id of a token string (in the vocabulary's own spelling, e.g. "Ġthe" or "<|user|>"), as HF's
 * token_to_id: added tokens first, then the BPE vocabulary. -1 when unknown. */
GLMOE_API int32_t glmoe_tokenizer_token_to_id(const glmoe_tokenizer *tok, const char *token, size_t len);

/* The token string of id (not NUL-terminated), its length in *len. NULL for an unknown id.
 * Borrowed: valid until the tokenizer is freed. */
GLMOE_API const char *glmoe_tokenizer_id_to_token(const glmoe_tokenizer *tok, int32_t id, size_t *len);

/* True for a special added token ("special": true in tokenizer.json), e.g. <|user|>. */
GLMOE_API bool glmoe_tokenizer_is_special(const glmoe_tokenizer *tok, int32_t id);

typedef struct glmoe_tokenizer_info {
    int32_t n_vocab;            /* as glmoe_tokenizer_n_vocab                                  */
    int32_t n_added;            /* added tokens (special or not)                               */
    int32_t bos_id, eos_id, pad_id; /* from tokenizer_config.json, -1 when absent or unknown   */
    bool add_bos;               /* tokenizer_config.json add_bos_token (the encoder does not
                                   act on it; HF's tokenizer.json path does not either)        */
    double load_seconds;        /* parsing and building the tables                             */
} glmoe_tokenizer_info;

GLMOE_API glmoe_status glmoe_tokenizer_get_info(const glmoe_tokenizer *tok, glmoe_tokenizer_info *out);

/* ---- chat format ------------------------------------------------------------------- */

typedef enum glmoe_chat_style {
    GLMOE_CHAT_GLM45 = 0, /* GLM-4.5 and GLM-4.6 templates: a newline after each role token */
    GLMOE_CHAT_GLM47,     /* GLM-4.7 template: compact, no newlines                         */
} glmoe_chat_style;

/* The chat format of a model directory: GLMOE_CHAT_GLM47 when its chat_template.jinja or its
 * tokenizer_config.json holds GLM-4.7's template (the one that knows clear_thinking), else
 * GLMOE_CHAT_GLM45, also when neither file is there. The files are read as glmoe_file_read reads
 * them (16 MiB at most each): one that is there but cannot be read (a FIFO, a directory, no
 * permission) is an error naming it, not a silent GLMOE_CHAT_GLM45. *style is written only on
 * success; err (may be NULL) receives the one-line reason on failure. */
GLMOE_API glmoe_status glmoe_chat_style_detect(glmoe_chat_style *style, const char *model_dir, char *err,
                                               size_t err_size);

typedef struct glmoe_chat_params {
    bool add_generation_prompt; /* end with the assistant header the model continues from; default true */
    int enable_thinking;        /* -1 unset (the template's default: thinking on), 0 off, 1 on        */
    int clear_thinking;         /* GLM-4.7 only: 0 keeps the reasoning of every past turn; -1 unset   */
    glmoe_chat_style style;
} glmoe_chat_params;

GLMOE_API glmoe_chat_params glmoe_chat_params_default(void);

/* Renders a conversation exactly as the model's official chat template does (byte for byte):
 * messages_json is a JSON array of OpenAI-style messages ({"role": "system"|"user"|"assistant"|"tool",
 * "content": ..., "reasoning_content"?, "tool_calls"?}); tools_json is a JSON array of OpenAI tool
 * objects, or NULL. The text starts with [gMASK]<sop>: encode it with GLMOE_TOKENIZE_PARSE_SPECIAL
 * and add nothing in front. *out (NUL-terminated, *out_len bytes) is freed with glmoe_free. On
 * failure err (may be NULL) names the message index and field. */
GLMOE_API glmoe_status glmoe_chat_render(char **out, size_t *out_len, const char *messages_json,
                                         const char *tools_json, const glmoe_chat_params *params,
                                         char *err, size_t err_size);

/* Parses what the model wrote in one assistant turn (the text it generated after the generation
 * prompt, up to the stop token, as glmoe_tokenizer_decode gives it) into the parts of an OpenAI
 * chat completion message, for an OpenAI-compatible server:
 *
 *   {"content": "<the text before the first <tool_call>>",
 *    "tool_calls": [{"type": "function",
 *                    "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\", \"days\": 3}"}}]}
 *
 * GLM writes each call as <tool_call>NAME<arg_key>KEY</arg_key><arg_value>VALUE</arg_value>...
 * </tool_call>; GLM-4.5/4.6 put newlines between the parts, GLM-4.7 does not, and both are read
 * (no style to pass). "content" is the text before the first
 * <tool_call>, verbatim (a leading <think>...</think> block included: glmoe_chat_render splits it
 * off when the message is sent back; "" when the turn starts with a call); text after the calls is
 * dropped, as vLLM's GLM-4.5 parser does (a NUL byte in it is written \u0000, which a strict
 * JSON reader may need to be told to accept). "tool_calls" is [] when there are none. "arguments" is,
 * as OpenAI sends it, a string holding a JSON object, written as Python's json.dumps(arguments,
 * ensure_ascii=False) writes it (vLLM's output byte for byte): each value is the JSON value its
 * text parses to (3, true, {"a": [1]}) or, when it is not JSON, the text as a string; a parameter
 * that tools_json declares "type": "string" stays a string verbatim ("007" stays "007"). Keys are
 * trimmed; a repeated key keeps its first place and its last value. No call has an "id": OpenAI
 * requires one, and the server assigns it (e.g. "call_" and random characters).
 *
 * text[0..len) need not be NUL-terminated; tools_json is the request's JSON array of OpenAI tool
 * objects (as given to glmoe_chat_render), or NULL / "null". *out (NUL-terminated JSON, *out_len
 * bytes when out_len is not NULL) is freed with
 * glmoe_free; on failure *out is NULL and err (may be NULL) gets one line:
 *   GLMOE_E_FORMAT  the model's text is malformed, with the call's index and byte offset:
 *                   "tool call 0 at byte 3: <tool_call> without </tool_call>", an empty function
 *                   name, <arg_key> without </arg_key>, </arg_key> not followed by <arg_value>,
 *                   <arg_value> without </arg_value>, text that is not UTF-8 (a server may then
 *                   send the whole text as content, as vLLM does);
 *   GLMOE_E_ARG     out is NULL, text is NULL with len > 0, or tools_json is not JSON or not an
 *                   array;
 *   GLMOE_E_NOMEM. */
GLMOE_API glmoe_status glmoe_chat_parse_tool_calls(char **out, size_t *out_len, const char *text, size_t len,
                                                   const char *tools_json, char *err, size_t err_size);

/* ---- streaming the model's turn ---- */

/* Turns what the model writes in one assistant turn into OpenAI chat-completion deltas while it is
 * being generated, for an OpenAI-compatible server that streams (server-sent events): push the
 * text of each token as it is decoded, then finish at the stop token (or max_tokens); each call
 * gives back the deltas that are now certain.
 *
 * What the turn holds, in order (both styles, no style to pass):
 *   reasoning   an optional <think>...</think> block at the start: "reasoning_content". The
 *               newlines GLM writes around it (GLM-4.5/4.6: "\n<think>...</think>\n") are not
 *               part of it: newlines at the start of the turn, at the start and end of the
 *               reasoning and right after </think> are dropped (the renderer's split:
 *               glmoe_chat_render writes them back). Anything else before <think> makes the
 *               whole turn content. Inside the block everything but </think> is reasoning text:
 *               a <tool_call> there is the model thinking about a call, never a call.
 *               When the prompt already ends inside the block (GLM-4.7 with thinking on:
 *               glmoe_chat_render's text ends with "<think>"), set starts_in_reasoning. A turn
 *               that ends before </think> (max_tokens) is all reasoning.
 *   content     the text up to the first <tool_call>: "content", exactly as
 *               glmoe_chat_parse_tool_calls gives it.
 *   tool calls  <tool_call>NAME<arg_key>K</arg_key><arg_value>V</arg_value>...</tool_call>, with
 *               or without newlines between the parts: "tool_calls", each with the name and the
 *               "arguments" text glmoe_chat_parse_tool_calls gives (same key order, same value
 *               typing, same JSON bytes). Text between and after the calls is dropped, as
 *               glmoe_chat_parse_tool_calls and vLLM drop it (it is counted: n_dropped).
 *
 * The invariant, tested on every split of recorded turns and by a fuzzer: however the text is cut
 * into pushes (a byte at a time, a tag or a UTF-8 character cut in two), the reasoning deltas
 * concatenated are the reasoning block split off as above, and the content deltas concatenated and
 * each call's name and concatenated argument deltas are what glmoe_chat_parse_tool_calls gives for
 * the text after the block (and its newlines); the stream fails exactly when one of the two would
 * (malformed calls, text that is not UTF-8), and with the same message however the text is cut.
 *
 * Held back, and nothing else (everything certain comes out at once):
 *   - text that may be the start of a tag ("<too" may become "<tool_call>") or an unfinished
 *     UTF-8 character (one cut between two pushes is completed, not refused): at most 10 bytes,
 *     the length of "<tool_call";
 *   - newlines at the end of the reasoning so far, as a count (dropped if </think> comes next);
 *   - an open call's text, from <tool_call> to </tool_call>: at most the turn's length, which
 *     max_tokens bounds.
 *
 * A stream is used by one thread at a time. */
typedef struct glmoe_chat_stream glmoe_chat_stream;

typedef struct glmoe_chat_stream_params {
    /* The request's tools, a JSON array of OpenAI tool objects (as given to glmoe_chat_render and
     * glmoe_chat_parse_tool_calls), or NULL / "null": a parameter declared "type": "string" stays
     * a string verbatim. Read at create; the text need not outlive it. Default NULL. */
    const char *tools_json;
    /* The turn starts inside the reasoning block, because the prompt ends with "<think>"
     * (GLM-4.7's generation prompt with thinking on). Default false: GLM-4.5/4.6 write <think>
     * themselves, and GLM-4.7 with thinking off has "</think>" in the prompt. */
    bool starts_in_reasoning;
} glmoe_chat_stream_params;

GLMOE_API glmoe_chat_stream_params glmoe_chat_stream_params_default(void);

/* What a delta carries. In OpenAI's chunk "delta" object (the server adds the call's "id"):
 *   REASONING  {"reasoning_content": text}
 *   CONTENT    {"content": text}
 *   TOOL_CALL  {"tool_calls": [{"index": index, "id": "call_...", "type": "function",
 *                               "function": {"name": text, "arguments": ""}}]}
 *   TOOL_ARGS  {"tool_calls": [{"index": index, "function": {"arguments": text}}]}
 * The deltas of a turn come in this order: reasoning, content, then per call its TOOL_CALL and
 * then its TOOL_ARGS; the calls are numbered 0, 1, ... in order. */
typedef enum glmoe_chat_delta_kind {
    GLMOE_CHAT_DELTA_REASONING = 0, /* a piece of the reasoning                                */
    GLMOE_CHAT_DELTA_CONTENT,       /* a piece of the content                                  */
    GLMOE_CHAT_DELTA_TOOL_CALL,     /* call `index` begins: text is its function name, whole   */
    GLMOE_CHAT_DELTA_TOOL_ARGS,     /* a piece of call `index`'s "arguments" text              */
} glmoe_chat_delta_kind;

typedef struct glmoe_chat_delta {
    glmoe_chat_delta_kind kind;
    size_t index;     /* the call, for TOOL_CALL and TOOL_ARGS; 0 for the others                */
    const char *text; /* len bytes of well-formed UTF-8 (never empty), then a NUL; the content
                         and the reasoning may hold NUL bytes of their own (write them \u0000)  */
    size_t len;
} glmoe_chat_delta;

/* Creates a stream for one assistant turn. params may be NULL for the defaults. On failure *out
 * is NULL and err (may be NULL) receives one line: GLMOE_E_ARG for a NULL out or tools_json that
 * is not JSON or not an array (the messages of glmoe_chat_parse_tool_calls), GLMOE_E_NOMEM. */
GLMOE_API glmoe_status glmoe_chat_stream_create(glmoe_chat_stream **out, const glmoe_chat_stream_params *params,
                                                char *err, size_t err_size);

/* Frees the stream and the deltas it handed out. NULL is a no-op. */
GLMOE_API void glmoe_chat_stream_free(glmoe_chat_stream *stream);

/* Feeds text[0..len), the next piece of the turn (the text of one or more tokens as
 * glmoe_tokenizer_stream_push gives it, with skip_special false: the tags are special tokens;
 * never the stop token's text). It need not be NUL-terminated, may be empty, and may cut a tag or
 * a UTF-8 character anywhere. *deltas and *n_deltas receive the deltas now certain (possibly
 * none); consecutive pieces of one kind come merged into one delta. Borrowed: the array and its
 * texts stay valid until the next push, finish or free of the stream.
 *
 * Arguments come out whole: a call's TOOL_CALL comes as soon as its name is complete (at the
 * newline or <arg_key> after it), and its TOOL_ARGS once, at </tool_call>, as the whole
 * "arguments" text. No piece of it is certain before: a repeated key takes its last value in its
 * first place (a Python dict, as glmoe_chat_parse_tool_calls reads it), so no pair is final until
 * the call is. A name is final once complete; the call's arguments may still turn out malformed,
 * and then the stream fails after the name has gone out.
 *
 * Errors (the message, glmoe_chat_stream_errmsg, gives the byte offset in the turn):
 *   GLMOE_E_FORMAT  the model's text is malformed, as glmoe_chat_parse_tool_calls would refuse it:
 *                   "tool call 0 at byte 11: empty function name", <arg_key> without </arg_key>,
 *                   </arg_key> not followed by <arg_value>, <arg_value> without </arg_value>, a
 *                   name, key or value that is not UTF-8 or holds NUL; reasoning or content that
 *                   is not UTF-8 ("content: not valid UTF-8 (ill-formed sequence at byte 7)");
 *   GLMOE_E_ARG     a NULL stream, deltas or n_deltas, text NULL with len > 0, a push after finish;
 *   GLMOE_E_NOMEM.
 * A stream whose text failed (GLMOE_E_FORMAT, GLMOE_E_NOMEM) stays failed: every later push and
 * finish returns the same status, and the message stays; misuse (GLMOE_E_ARG) changes nothing. On
 * failure *deltas and *n_deltas still give what was certain before the error in
 * this push (text before the bad byte), which a server may send before it reports the error. */
GLMOE_API glmoe_status glmoe_chat_stream_push(glmoe_chat_stream *stream, const char *text, size_t len,
                                              const glmoe_chat_delta **deltas, size_t *n_deltas);

/* Ends the turn (the model wrote a stop token, or max_tokens was reached) and gives back what was
 * held: a possible tag's start that turned out to be text ("a <too" at the end is content). A
 * turn that ends inside a call ("Let me check.\n<tool_call>get_wea" at max_tokens) is
 * GLMOE_E_FORMAT, "tool call 0 at byte 14: <tool_call> without </tool_call>", as
 * glmoe_chat_parse_tool_calls refuses it; so is an unfinished UTF-8 character at the end. (vLLM and llama.cpp hand such a turn back as content
 * when they parse it whole; in a stream the content and the earlier calls are already sent, so
 * glmoe reports it and the server decides: finish_reason "length" after max_tokens, an error
 * otherwise.) Deltas, their lifetime and the other errors as for push; finishing twice is
 * GLMOE_E_ARG. Afterwards glmoe_chat_stream_get_info tells the finish_reason: "tool_calls" when
 * n_tool_calls > 0 and the turn ended at a stop token. */
GLMOE_API glmoe_status glmoe_chat_stream_finish(glmoe_chat_stream *stream, const glmoe_chat_delta **deltas,
                                                size_t *n_deltas);

/* Where a stream stands. */
typedef struct glmoe_chat_stream_info {
    size_t n_pushed;      /* bytes pushed so far                                                  */
    size_t n_held;        /* of those, how many have neither come out nor been dropped yet (see
                             "Held back" above): outside a call at most 10, plus the newlines at
                             the end of the reasoning so far; in a call, all its text so far      */
    size_t n_dropped;     /* bytes dropped between and after the calls                            */
    size_t n_tool_calls;  /* calls complete: their TOOL_ARGS have come out                        */
    bool in_reasoning;    /* the text is in the reasoning block now                               */
    bool in_tool_call;    /* a call is open (its text is held until </tool_call>)                 */
    bool finished;        /* glmoe_chat_stream_finish was called                                  */
} glmoe_chat_stream_info;

GLMOE_API glmoe_status glmoe_chat_stream_get_info(const glmoe_chat_stream *stream, glmoe_chat_stream_info *out);

/* The one-line message of the last call on the stream that failed, or "" when the last call
 * succeeded; once the turn's text has failed (GLMOE_E_FORMAT, GLMOE_E_NOMEM), that failure's. Valid
 * until the next call on the stream or its free. Never NULL (a static message for a NULL stream). */
GLMOE_API const char *glmoe_chat_stream_errmsg(const glmoe_chat_stream *stream);

/* Frees memory glmoe handed to the caller (the text of glmoe_chat_render, glmoe_file_read and
 * glmoe_chat_parse_tool_calls). NULL is a no-op. */
GLMOE_API void glmoe_free(void *p);

#ifdef __cplusplus
}
#endif
#endif /* GLMOE_H */
