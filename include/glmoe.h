/*
 * glmoe.h — the public API of glmoe, an inference engine for the GLM-4.5 family of
 * Mixture-of-Experts models (Hugging Face `Glm4MoeForCausalLM`: GLM-4.5, GLM-4.5-Air,
 * GLM-4.6, GLM-4.7).
 *
 * This is the only public header. Everything is reached through opaque handles:
 *
 *   glmoe_model    a loaded checkpoint: configuration plus weights bound to a backend.
 *                  Read-only after loading; several contexts may share one model.
 *   glmoe_context  one sequence being evaluated: its KV cache, activations and logits.
 *                  A context is used by one thread at a time.
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

/* ---- model ------------------------------------------------------------------------- */

typedef struct glmoe_model glmoe_model;

typedef enum glmoe_device {
    GLMOE_DEVICE_AUTO = 0, /* the GPU when glmoe was built with one and it is usable, else the CPU */
    GLMOE_DEVICE_CPU,
    GLMOE_DEVICE_CUDA,
} glmoe_device;

typedef struct glmoe_model_params {
    glmoe_device device;
    int n_threads;         /* CPU threads; 0 = all available cores                           */
} glmoe_model_params;

GLMOE_API glmoe_model_params glmoe_model_params_default(void);

/* Loads a Hugging Face checkpoint directory: config.json, optional generation_config.json,
 * and model.safetensors or model.safetensors.index.json with its shards. Weights stay in their
 * stored dtype, memory-mapped; the files must not be modified while the model is loaded.
 *
 * *out receives a model handle in every case except when even that allocation fails (then
 * *out is NULL and GLMOE_E_NOMEM is returned). On failure, glmoe_model_errmsg(*out) says which
 * file, tensor or field is wrong and why; the handle can then only be freed. params may be NULL
 * for the defaults. */
GLMOE_API glmoe_status glmoe_model_load(glmoe_model **out, const char *dir,
                                        const glmoe_model_params *params);

/* Frees the model. Every context created from it must be freed first. NULL is a no-op. */
GLMOE_API void glmoe_model_free(glmoe_model *model);

/* The message of the model's last failure, or "" if none. Valid until the next call on the
 * model or its free. Never NULL (for a NULL model it returns a static message). */
GLMOE_API const char *glmoe_model_errmsg(const glmoe_model *model);

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
    int32_t n_tensors_skipped;      /* MTP-layer tensors (layer index >= n_layers)        */
    uint64_t bytes_skipped;
    int32_t n_tensors_unused;       /* tensors glmoe does not know (warned about at load) */
    uint64_t bytes_realigned;       /* tensor bytes copied because the file left them unaligned */
    double load_seconds;
    uint64_t resident_bytes;        /* host memory glmoe allocated for the model (not the mapping) */
} glmoe_model_info;

GLMOE_API glmoe_status glmoe_model_get_info(const glmoe_model *model, glmoe_model_info *out);

/* ---- context ----------------------------------------------------------------------- */

typedef struct glmoe_context glmoe_context;

typedef struct glmoe_context_params {
    int32_t n_ctx;     /* maximum sequence length (KV cache size); 0 = min(max_position_embeddings, 4096) */
    int32_t n_batch;   /* most tokens evaluated in one forward; longer inputs are split; 0 = 512 */
} glmoe_context_params;

GLMOE_API glmoe_context_params glmoe_context_params_default(void);

/* Creates a context (KV cache and activation buffers, allocated up front) for the model.
 * On failure *out is NULL and the reason is in glmoe_model_errmsg(model). */
GLMOE_API glmoe_status glmoe_context_create(glmoe_context **out, glmoe_model *model,
                                            const glmoe_context_params *params);

GLMOE_API void glmoe_context_free(glmoe_context *ctx);
GLMOE_API const char *glmoe_context_errmsg(const glmoe_context *ctx);

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

/* Number of tokens in the sequence so far, and the context length. */
GLMOE_API size_t glmoe_context_n_past(const glmoe_context *ctx);
GLMOE_API size_t glmoe_context_n_ctx(const glmoe_context *ctx);

/* Empties the sequence (the KV cache is reused). */
GLMOE_API void glmoe_context_reset(glmoe_context *ctx);

/* ---- sampling ---------------------------------------------------------------------- */

typedef struct glmoe_sampler glmoe_sampler;

typedef struct glmoe_sampler_params {
    float temperature;        /* <= 0: greedy (argmax); default 0                       */
    int32_t top_k;            /* keep the k most likely; <= 0: off                      */
    float top_p;              /* nucleus: smallest set with mass >= p; >= 1: off        */
    float min_p;              /* drop tokens below min_p * p(max); <= 0: off            */
    float repetition_penalty; /* CTRL-style penalty on tokens already seen; 1: off      */
    int32_t repetition_window;/* how many recent tokens the penalty looks at; 0: all    */
    uint64_t seed;            /* the same seed gives the same tokens                    */
} glmoe_sampler_params;

GLMOE_API glmoe_sampler_params glmoe_sampler_params_default(void);

/* err (may be NULL) receives a one-line reason on failure. */
GLMOE_API glmoe_status glmoe_sampler_create(glmoe_sampler **out, const glmoe_sampler_params *params,
                                            char *err, size_t err_size);
GLMOE_API void glmoe_sampler_free(glmoe_sampler *sampler);

/* Picks a token from one row of logits (n_vocab floats; not modified). The token is added to
 * the sampler's history for the repetition penalty. */
GLMOE_API glmoe_status glmoe_sampler_sample(glmoe_sampler *sampler, const float *logits,
                                            int32_t n_vocab, int32_t *token);

/* Adds tokens to the history without sampling them (the prompt, for the repetition penalty). */
GLMOE_API void glmoe_sampler_accept(glmoe_sampler *sampler, const int32_t *ids, size_t n_ids);

/* Forgets the history; the RNG goes back to its seed. */
GLMOE_API void glmoe_sampler_reset(glmoe_sampler *sampler);

#ifdef __cplusplus
}
#endif
#endif /* GLMOE_H */
