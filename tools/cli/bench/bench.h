/*
 * bench.h — `glmoe bench`: how fast a model runs, end to end and op by op, against the device's
 * own measured ceilings (see cmd_bench.c for what is measured and how).
 *
 *   cmd_bench.c    options, the model-level timings (prefill sweep, decode per context, host
 *                  time per step) through the public API, the summary table
 *   bench_ops.c    per-op times: the op-case table (tests/ops/opcases.h) in timing mode at the
 *                  model's shapes, printed and put in the JSON
 *   bench_report.c the JSON document and the SVG plot of the prefill sweep
 *   bench_footprint.c  --dry-run: what the model and the context would take, from the public API
 *
 * Like the other subcommands, `glmoe bench` uses only the public API (include/glmoe.h), plus the
 * op-case table (tests/ops/opcases.h, itself reaching the backends: no public call runs a single
 * op) for the per-op times and the device's ceilings (opcases_probe). tests/cli/
 * check_bench_includes.sh fails when a file here includes anything else.
 */
#ifndef GLMOE_CLI_BENCH_H
#define GLMOE_CLI_BENCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "glmoe.h"
#include "ops/opcases.h"

/* The median of n values (sorts them in place). */
double bench_median(double *v, int n);

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

/* Times every case of the op table (tests/ops/opcases.h) at the shapes of the model `info`
 * describes; appends {"op", "tokens", "context", "ms"} objects to `ops` and prints one line per op.
 * With o->quantize, also the matmuls of the weights the model quantizes, at that format, each with
 * the GB/s of the bytes it must read and their fraction of copy_gb_s. False with a message when
 * the backend fails. */
bool bench_ops_run(const glmoe_model_info *info, const bench_ops_opts *o, json_t *ops, char *err, size_t err_len);

/* `glmoe bench --dry-run` (bench_footprint.c): the bytes the weights of the model (--config NAME
 * with n_layers, or model_dir) take on the device in their final format (quantized as q says), per
 * kind and format, and the KV cache and activations of the bench's context (n_ctx positions,
 * n_batch tokens per forward), from glmoe_model_plan (the estimate the load's up-front memory check
 * uses). Prints a table; false (after saying why) when the model cannot be planned. */
bool bench_footprint(const char *cmd, const char *config, int32_t n_layers, const char *model_dir,
                     const glmoe_quantize *q, int32_t n_ctx, int32_t n_batch);

/* The max_position_embeddings of --config NAME (cut to n_layers) or of model_dir's config.json,
 * read before the model loads (glmoe_model_plan, bench_footprint.c); false with the loader's message. */
bool bench_max_positions(const char *config, int32_t n_layers, const char *model_dir, int32_t *max_pos, char *err,
                         size_t err_len);

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
