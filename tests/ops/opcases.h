/*
 * opcases.h — the op-case table (opcases.c): every op a decode or prefill step of the forward
 * calls, at one model's shapes, each case able to run in two modes:
 *   timing       the op alone on a backend of its own, repeated until a batch takes long enough:
 *                ms per call (and, for quantized weights, GB/s over the bytes it must read).
 *                `glmoe bench` prints these as its "ops" section.
 *   correctness  the same case, its inputs random host values bound through the backend, run once
 *                and compared with the float64 reference of tests/ops/reference.c. tests/ops/
 *                test_ops runs the table so on every backend it checks (checks.h,
 *                opcases_check), at a small shape.
 * As ggml's test-backend-ops does, one description of each case serves both: what it builds,
 * how it runs, what it reads. The ceilings those times are read against (a large copy's
 * bandwidth and a large GEMM's rate) are probed here too (opcases_probe.c).
 *
 * This header is what a tool sees: the public API's types and plain numbers only, so that
 * `glmoe bench` (tools/cli/bench) needs nothing below include/glmoe.h. The cases themselves reach
 * the backend interface (src/backend/backend.h); that is the point of an op table.
 */
#ifndef GLMOE_OPCASES_H
#define GLMOE_OPCASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glmoe.h"

/* The shapes of one layer, as plain numbers (config.json's names in the comments). */
typedef struct opcase_shape {
    int32_t hidden;              /* hidden_size                                      */
    int32_t n_heads, n_kv_heads;  /* num_attention_heads, num_key_value_heads         */
    int32_t head_dim, rotary_dim; /* head_dim, head_dim x partial_rotary_factor       */
    int32_t intermediate;        /* intermediate_size (the dense MLP)                */
    int32_t moe_intermediate;    /* moe_intermediate_size (one expert)               */
    int32_t n_experts, n_experts_per_tok, n_shared_experts; /* n_routed_experts, ...  */
    int32_t n_group, topk_group;
    bool norm_topk_prob, attention_bias;
    float routed_scaling_factor, rope_theta, rms_norm_eps;
} opcase_shape;

/* The shape of a loaded model (its glmoe_model_info). */
opcase_shape opcase_shape_of(const glmoe_model_info *info);

/* ---- timing --------------------------------------------------------------------------------- */

typedef struct opcase_time_opts {
    const char *backend;      /* "cpu" or "cuda": a backend of its own is made for the cases */
    int n_threads;            /* the CPU's threads (0: all cores)                            */
    int32_t prefill_tokens;   /* T of the prefill-sized cases (512)                          */
    const int32_t *contexts;  /* decode attention contexts                                   */
    int n_contexts;
    double min_seconds;       /* time each case for at least this long per batch             */
    glmoe_quantize quantize;  /* bits 0: no affine cases; else the quantized weights' cases at
                                 this format (group_size 0: 64)                              */
} opcase_time_opts;

typedef enum opcase_row_kind {
    OPCASE_ROW_OP = 0,        /* one op: op, tokens, context, ms                             */
    OPCASE_ROW_AFFINE_BEGIN,  /* the affine cases follow                                     */
    OPCASE_ROW_AFFINE,        /* a quantized weight's case: also weight, format, bytes, and
                                 rows x cols (a matmul) or experts (the routed experts)      */
    OPCASE_ROW_NO_AFFINE,     /* the backend does not run the format (in `format`)           */
} opcase_row_kind;

/* One timed case. Strings are borrowed for the call of the report function. */
typedef struct opcase_row {
    opcase_row_kind kind;
    const char *op;           /* "add_rmsnorm", "matmul_qkv", ..., "affine_matmul", "affine_experts" */
    const char *weight;       /* the affine cases: "q_proj", "k_proj/v_proj", "experts", ... */
    const char *format;       /* the affine cases: "q4 g64"; OPCASE_ROW_NO_AFFINE: the format's name */
    const char *backend;      /* the backend's name                                          */
    int32_t tokens, context;
    double ms;                /* per call: the median of three batches                       */
    double bytes;             /* affine: the bytes the op must read (codes, scales, biases;
                                 the experts: those of the distinct experts chosen)          */
    bool experts;             /* affine: the routed experts, not one matmul                  */
    int64_t rows, cols;       /* affine matmul: the weight's shape                           */
} opcase_row;

/* Called once per row, in the table's order; false stops the run (opcases_time then fails with
 * the message the function left in err). */
typedef bool (*opcase_report_fn)(const opcase_row *row, void *user, char *err, size_t err_len);

/* Times every case of the table at `shape` on o->backend (synthetic weights made on the device,
 * random activations): each op at T = 1 and T = prefill_tokens, attention causal and masked at
 * T = prefill_tokens, decode attention at each context, then the affine cases when o->quantize
 * asks. False with a one-line message when the backend fails. */
bool opcases_time(const opcase_shape *shape, const opcase_time_opts *o, opcase_report_fn report, void *user,
                  char *err, size_t err_len);

/* ---- the device's ceilings (opcases_probe.c) ------------------------------------------------- */

typedef struct opcase_probe {
    double copy_gb_s;      /* bytes read + written per second by a large device copy (memcpy on the CPU) */
    double gemm_tflop_s;   /* a large GEMM: cuBLAS bf16 with fp32 accumulation (OpenBLAS sgemm on the CPU) */
    int gemm_n;            /* its m = n = k */
    char gemm_what[96];
    char device[256];
} opcase_probe;

/* Measures backend's ("cpu" or "cuda") ceilings; false with a message when it cannot. */
bool opcases_probe(const char *backend, opcase_probe *out, char *err, size_t err_len);

#endif
