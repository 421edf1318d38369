/*
 * bench_footprint.c — `glmoe bench --dry-run`: what a model and the bench's context would take on
 * the device, without loading anything.
 *
 * The weights come from the load's own plan (weights_plan / weights_plan_synthetic, then
 * weights_plan_bytes: the number the up-front memory check of glmoe_model_load compares with the
 * GPU's free memory): every weight in its final format, quantized ones (--quantize, or as an MLX
 * checkpoint stores them) with their scales and biases, vectors as float32. The KV cache is the
 * CUDA backend's default, bf16: 2 (keys, values) x layers x kv heads x head_dim x 2 bytes per
 * position. The README's table of what each released model needs is made with this.
 *
 * The one file of `glmoe bench` still below the public API (the load's plan, the configuration
 * before a model is loaded): no public call plans a load yet. tests/cli/check_bench_includes.sh
 * lists it as the exception; a glmoe_model_params.plan_only (info without weights) would end it.
 */
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"
#include "cli.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/quant_config.h"

static double gb(uint64_t b) { return (double)b / 1e9; }

bool bench_max_positions(const char *config, int32_t n_layers, const char *model_dir, int32_t *max_pos, char *err,
                         size_t err_len) {
    gm_config c;
    gm_err e = {0};
    if (config ? config_preset(&c, config, n_layers, &e) : config_load(&c, model_dir, &e)) {
        snprintf(err, err_len, "%s", e.msg);
        return false;
    }
    *max_pos = c.max_position_embeddings;
    return true;
}

bool bench_footprint(const char *cmd, const char *config, int32_t n_layers, const char *model_dir,
                     const glmoe_quantize *q, int32_t n_ctx, int32_t n_batch) {
    gm_config c;
    gm_quant_config qc;
    memset(&qc, 0, sizeof qc);
    st_set *set = NULL;
    gm_err err = {0};
    gm_bind_stats plan;
    const gm_affine rq = {q->bits, q->bits ? (q->group_size ? q->group_size : 64) : 0, GM_W_BF16};
    glmoe_status s;
    if (config) {
        s = config_preset(&c, config, n_layers, &err);
        if (!s) s = weights_plan_synthetic(&c, &rq, &plan, &err);
    } else {
        s = config_load(&c, model_dir, &err);
        if (!s) s = quant_config_load(&qc, model_dir, &err);
        if (!s) s = st_set_open_dir(&set, model_dir, &err);
        gm_bind_source src = {.set = set, .quant = &qc, .requant = rq, .mtp = true};
        if (!s) s = weights_plan(&c, &src, &plan, &err);
    }
    st_set_close(set);
    quant_config_free(&qc);
    if (s) {
        cli_error(cmd, "%s", err.msg);
        return false;
    }
    const uint64_t weights = weights_plan_bytes(&plan);
    const uint64_t kv_per_token = model_kv_bytes(&c, c.n_layers, 1, 2);
    const uint64_t acts = state_activation_bytes(&c, n_batch, n_ctx, 1, false);
    char fmt[32] = "as stored";
    if (rq.bits) snprintf(fmt, sizeof fmt, "q%d g%d", (int)rq.bits, (int)rq.group);
    printf("model    %s, %d layers, weights %s: %.2fB parameters\n", config ? config : model_dir, c.n_layers, fmt,
           (double)plan.n_params / 1e9);
    printf("weights  %8.2f GB on the device (final format; vectors as float32)\n", gb(weights));
    for (int32_t i = 0; i < plan.n_groups; i++) {
        const gm_weight_group *g = &plan.groups[i];
        printf("           %-17s %-22s %7llu tensors %8.3f GB\n", g->kind, g->format_name,
               (unsigned long long)g->n_tensors, gb(g->bytes));
    }
    printf("KV cache %8.4f GB per 1k tokens (bf16), %.2f GB for the bench's context of %d positions\n",
           gb(kv_per_token * 1000), gb(kv_per_token * (uint64_t)n_ctx), n_ctx);
    printf("buffers  %8.2f GB of activations for %d tokens per forward (backend scratch on top)\n", gb(acts), n_batch);
    printf("total    %8.2f GB\n", gb(weights + kv_per_token * (uint64_t)n_ctx + acts));
    return true;
}
