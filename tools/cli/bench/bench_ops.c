/*
 * bench_ops.c — the "ops" section of `glmoe bench`: the op-case table (tests/ops/opcases.h) in
 * timing mode at the model's shapes, each case printed as a line and kept in the JSON ("ops": the
 * schema of tools/bench/compare.py). What the cases are and how they are timed: opcases.c.
 */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "cli.h"

typedef struct ops_sink {
    json_t *ops;
    double copy_gb_s;
} ops_sink;

static bool report(const opcase_row *r, void *user, char *err, size_t err_len) {
    ops_sink *k = user;
    switch (r->kind) {
    case OPCASE_ROW_OP:
        json_array_append_new(k->ops, json_pack("{s:s, s:i, s:i, s:f}", "op", r->op, "tokens", r->tokens, "context",
                                                r->context, "ms", r->ms));
        printf("  %-12s T=%-5d ctx=%-6d %10.4f ms\n", r->op, r->tokens, r->context, r->ms);
        break;
    case OPCASE_ROW_NO_AFFINE:
        printf("  (no affine cases: the %s backend does not run %s weights)\n", r->backend, r->format);
        break;
    case OPCASE_ROW_AFFINE_BEGIN:
        printf("\n  affine weights: GB/s over their codes, scales and biases\n");
        break;
    case OPCASE_ROW_AFFINE: {
        const double gbs = r->bytes / (r->ms * 1e-3) / 1e9, pct = k->copy_gb_s > 0 ? 100 * gbs / k->copy_gb_s : 0;
        json_array_append_new(k->ops, json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:f, s:f, s:f}", "op", r->op, "weight",
                                                r->weight, "format", r->format, "tokens", r->tokens, "context", 0,
                                                "ms", r->ms, "bytes", r->bytes, "gb_s", gbs, "bw_pct", pct));
        if (!r->experts)
            printf("  %-7s %-14s T=%-5d [%lld x %lld] %10.4f ms %8.0f GB/s %6.1f%% of copy\n", r->format, r->weight,
                   r->tokens, (long long)r->rows, (long long)r->cols, r->ms, gbs, pct);
        else
            printf("  %-7s %-14s T=%-5d %.2f MB of chosen experts %10.4f ms %8.0f GB/s %6.1f%% of copy\n", r->format,
                   r->weight, r->tokens, r->bytes / 1e6, r->ms, gbs, pct);
        break;
    }
    }
    fflush(stdout);
    (void)err, (void)err_len;
    return true;
}

bool bench_ops_run(const glmoe_model_info *info, const bench_ops_opts *o, json_t *ops, char *err, size_t err_len) {
    const opcase_shape shape = opcase_shape_of(info);
    const opcase_time_opts t = {.backend = o->backend, .n_threads = o->n_threads, .prefill_tokens = o->prefill_tokens,
                                .contexts = o->contexts, .n_contexts = o->n_contexts, .min_seconds = o->min_seconds,
                                .quantize = o->quantize};
    ops_sink sink = {.ops = ops, .copy_gb_s = o->copy_gb_s};
    return opcases_time(&shape, &t, report, &sink, err, err_len);
}
