/*
 * bench_footprint.c — `glmoe bench --dry-run`: what a model and the bench's context would take on
 * the device, without loading anything.
 *
 * Everything comes from glmoe_model_plan, the load's own plan: the weights in their final format
 * (the number the up-front memory check of glmoe_model_load compares with the GPU's free memory),
 * quantized ones (--quantize, or as an MLX checkpoint stores them) with their scales and biases,
 * vectors as float32. The KV cache is the CUDA backend's default, bf16: 2 (keys, values) x layers
 * x kv heads x head_dim x 2 bytes per position. The README's table of what each released model
 * needs is made with this.
 */
#include <stdio.h>

#include "bench/bench.h"
#include "cli.h"
#include "glmoe.h"

static double gb(uint64_t b) { return (double)b / 1e9; }

/* The plan of --config NAME (cut to n_layers) or of model_dir, quantized as q says, with one
 * context of n_ctx positions and n_batch tokens per forward. */
static bool plan_load(glmoe_load_plan *plan, const char *config, int32_t n_layers, const char *model_dir,
                      const glmoe_quantize *q, int32_t n_ctx, int32_t n_batch, char *err, size_t err_len) {
    glmoe_model_params mp = glmoe_model_params_default();
    if (q) mp.quantize = *q;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    return glmoe_model_plan(plan, config ? NULL : model_dir, config, n_layers, &mp, &cp, err, err_len) == GLMOE_OK;
}

bool bench_max_positions(const char *config, int32_t n_layers, const char *model_dir, int32_t *max_pos, char *err,
                         size_t err_len) {
    glmoe_load_plan plan;
    if (!plan_load(&plan, config, n_layers, model_dir, NULL, 0, 0, err, err_len)) return false;
    *max_pos = plan.max_position_embeddings;
    return true;
}

bool bench_footprint(const char *cmd, const char *config, int32_t n_layers, const char *model_dir,
                     const glmoe_quantize *q, int32_t n_ctx, int32_t n_batch) {
    glmoe_load_plan plan;
    char err[1024];
    if (!plan_load(&plan, config, n_layers, model_dir, q, n_ctx, n_batch, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        return false;
    }
    const uint64_t weights = plan.weight_bytes;
    const uint64_t kv_per_token = plan.kv_bytes_per_token_bf16;
    const uint64_t acts = plan.activation_bytes;
    char fmt[32] = "as stored";
    if (q->bits) snprintf(fmt, sizeof fmt, "q%d g%d", (int)q->bits, (int)(q->group_size ? q->group_size : 64));
    printf("model    %s, %d layers, weights %s: %.2fB parameters\n", config ? config : model_dir, plan.n_layers, fmt,
           (double)plan.n_params / 1e9);
    printf("weights  %8.2f GB on the device (final format; vectors as float32)\n", gb(weights));
    for (int32_t i = 0; i < plan.n_weight_groups; i++) {
        const glmoe_plan_group *g = &plan.weight_groups[i];
        printf("           %-17s %-22s %7llu tensors %8.3f GB\n", g->kind, g->format, (unsigned long long)g->n_tensors,
               gb(g->bytes));
    }
    printf("KV cache %8.4f GB per 1k tokens (bf16), %.2f GB for the bench's context of %d positions\n",
           gb(kv_per_token * 1000), gb(kv_per_token * (uint64_t)plan.n_ctx), plan.n_ctx);
    printf("buffers  %8.2f GB of activations for %d tokens per forward (backend scratch on top)\n", gb(acts),
           plan.n_batch);
    printf("total    %8.2f GB\n", gb(weights + kv_per_token * (uint64_t)plan.n_ctx + acts));
    return true;
}
