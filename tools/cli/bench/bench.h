/*
 * bench.h — `glmoe bench`: how fast a model runs, end to end and op by op, against the device's
 * own measured ceilings (see cmd_bench.c for what is measured and how).
 *
 *   cmd_bench.c    options, the model-level timings (prefill sweep, decode per context, host
 *                  time per step) through the public API, the summary table
 *   bench_ops.c    per-op times: each backend op at the model's shapes on random inputs
 *   bench_probe.c  the ceilings: copy bandwidth and a large GEMM's rate, on the same device
 *   bench_report.c the JSON document and the SVG plot of the prefill sweep
 *
 * Unlike the other subcommands, the per-op times and the probes reach below the public API (the
 * backend vtable, backend/backend.h): no public call runs a single op.
 */
#ifndef GLMOE_CLI_BENCH_H
#define GLMOE_CLI_BENCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "glmoe.h"
#include "model/config.h"

/* The device's ceilings, measured in the same run. */
typedef struct bench_probe {
    double copy_gb_s;      /* bytes read + written per second by a large device copy (memcpy on the CPU) */
    double gemm_tflop_s;   /* a large GEMM: cuBLAS bf16 with fp32 accumulation (OpenBLAS sgemm on the CPU) */
    int gemm_n;            /* its m = n = k */
    char gemm_what[96];
    char device[256];
} bench_probe;

/* The median of n values (sorts them in place). */
double bench_median(double *v, int n);

/* The backend a model runs on ("cpu" or "cuda"), re-created here for the probes and op timings. */
bool bench_probe_run(const char *backend, bench_probe *out, char *err, size_t err_len);

typedef struct bench_ops_opts {
    const char *backend;   /* "cpu" or "cuda" */
    int n_threads;
    int32_t prefill_tokens; /* T of the prefill-sized ops (512) */
    const int32_t *contexts; /* decode attention contexts */
    int n_contexts;
    double min_seconds;    /* time each op for at least this long */
    glmoe_quantize quantize; /* bits 0: none; else the affine cases too, at this format */
    double copy_gb_s;      /* the probe's copy bandwidth, for the affine cases' fraction */
} bench_ops_opts;

/* Times every op of the forward at cfg's shapes; appends {"op", "tokens", "context", "ms"}
 * objects to `ops` and prints one line per op. With o->quantize, also the matmuls of the weights
 * the model quantizes, at that format (bench_ops.c says which), each with the GB/s of the bytes
 * it must read and their fraction of copy_gb_s. False with a message when the backend fails. */
bool bench_ops_run(const gm_config *cfg, const bench_ops_opts *o, json_t *ops, char *err, size_t err_len);

/* `glmoe bench --dry-run` (bench_footprint.c): the bytes the weights of the model (--config NAME
 * with n_layers, or model_dir) take on the device in their final format (quantized as q says), per
 * kind and format, and the KV cache and activations of the bench's context (n_ctx positions,
 * n_batch tokens per forward), from the estimate the load's up-front memory check uses. Prints a
 * table; false (after saying why) when the model cannot be planned. */
bool bench_footprint(const char *cmd, const char *config, int32_t n_layers, const char *model_dir,
                     const glmoe_quantize *q, int32_t n_ctx, int32_t n_batch);

/* One measured prefill length. */
typedef struct bench_point {
    int32_t tokens;
    double ms;
} bench_point;

/* An SVG line plot of prefill tokens per second against the prompt length (log scale), written
 * to f (from cli_output_open; closed here, path names it in err). */
bool bench_write_svg(FILE *f, const char *path, const char *title, const bench_point *pts, int n, char *err,
                     size_t err_len);

/* Writes doc to f (pretty-printed JSON; f from cli_output_open, closed here). */
bool bench_write_json(FILE *f, const char *path, json_t *doc, char *err, size_t err_len);

#endif
