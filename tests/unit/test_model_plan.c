/*
 * test_model_plan.c — glmoe_model_plan against the load it plans.
 *
 * For tests/golden/glm45_like (as stored, and quantized to q4 while loading) and tests/golden/mtp
 * (with its multi-token-prediction layer, and without it), the plan's weight bytes, parameters and
 * weight groups equal what glmoe_model_get_info reports after loading the same model on the CPU;
 * the KV bytes and the context follow the configuration and glmoe_context_create's defaults. Bad
 * requests fail with one line naming the file or field: a missing directory, a quantize format MLX
 * does not have, a context longer than max_position_embeddings, drafts without an MTP layer.
 */
#include <stdio.h>
#include <string.h>

#include "glmoe.h"
#include "test.h"

static char g_root[4096];

/* Plans dir with params, loads it on the CPU with the same, and compares. */
static void check_plan_matches_load(const char *name, const glmoe_model_params *params) {
    char dir[4200], err[512] = "";
    snprintf(dir, sizeof dir, "%s/tests/golden/%s", g_root, name);
    const char *how = params->quantize.bits ? "q4" : params->skip_mtp ? "skip_mtp" : "as stored";
    glmoe_load_plan plan;
    glmoe_status s = glmoe_model_plan(&plan, dir, NULL, 0, params, NULL, err, sizeof err);
    CHECK(s == GLMOE_OK, "%s %s: plan: %s", name, how, err);
    if (s) return;
    glmoe_model_params mp = *params;
    mp.device = GLMOE_DEVICE_CPU;
    glmoe_model *m = NULL;
    s = glmoe_model_load(&m, dir, &mp);
    CHECK(s == GLMOE_OK, "%s %s: load: %s", name, how, glmoe_model_errmsg(m));
    glmoe_model_info info;
    if (s || glmoe_model_get_info(m, &info)) {
        glmoe_model_free(m);
        return;
    }
    printf("%s %s: plan %llu bytes of weights in %d groups, load %llu\n", name, how,
           (unsigned long long)plan.weight_bytes, plan.n_weight_groups, (unsigned long long)info.weight_bytes_held);
    CHECK(plan.weight_bytes > 0 && plan.weight_bytes == info.weight_bytes_held, "%s %s: plan %llu bytes, load %llu",
          name, how, (unsigned long long)plan.weight_bytes, (unsigned long long)info.weight_bytes_held);
    CHECK(plan.n_params == info.n_params && plan.n_layers == info.n_layers &&
              plan.max_position_embeddings == info.max_position_embeddings,
          "%s %s: plan %llu params %d layers %d positions, load %llu %d %d", name, how,
          (unsigned long long)plan.n_params, plan.n_layers, plan.max_position_embeddings,
          (unsigned long long)info.n_params, info.n_layers, info.max_position_embeddings);
    CHECK(plan.n_weight_groups == info.n_weight_groups, "%s %s: %d groups planned, %d loaded", name, how,
          plan.n_weight_groups, info.n_weight_groups);
    for (int32_t i = 0; i < plan.n_weight_groups && i < info.n_weight_groups; i++) {
        const glmoe_plan_group *p = &plan.weight_groups[i];
        const glmoe_weight_group *g = &info.weight_groups[i];
        CHECK(!strcmp(p->kind, g->kind) && !strcmp(p->format, g->format) && p->bits == g->bits &&
                  p->group_size == g->group_size && p->n_tensors == g->n_tensors && p->n_params == g->n_params &&
                  p->bytes == g->bytes,
              "%s %s group %d: planned %s %s %llu bytes, loaded %s %s %llu bytes", name, how, i, p->kind, p->format,
              (unsigned long long)p->bytes, g->kind, g->format, (unsigned long long)g->bytes);
    }
    const uint64_t kv = 2ull * (uint64_t)info.n_layers * (uint64_t)info.n_kv_heads * (uint64_t)info.head_dim;
    CHECK(plan.kv_bytes_per_token_bf16 == 2 * kv && plan.kv_bytes_per_token_f32 == 4 * kv,
          "%s %s: KV per token %llu (bf16) %llu (f32), expected %llu %llu", name, how,
          (unsigned long long)plan.kv_bytes_per_token_bf16, (unsigned long long)plan.kv_bytes_per_token_f32,
          (unsigned long long)(2 * kv), (unsigned long long)(4 * kv));
    const int32_t n_ctx = info.max_position_embeddings < 4096 ? info.max_position_embeddings : 4096;
    CHECK(plan.n_ctx == n_ctx && plan.n_batch == (n_ctx < 512 ? n_ctx : 512) && plan.n_seq_max == 1 &&
              plan.activation_bytes > 0,
          "%s %s: context %d x %d x %d, %llu activation bytes", name, how, plan.n_ctx, plan.n_batch, plan.n_seq_max,
          (unsigned long long)plan.activation_bytes);
    glmoe_model_free(m);
}

/* A request that must fail with `code` and a message holding `want`. */
static void check_refused(const char *what, const char *dir, const char *config, const glmoe_model_params *mp,
                          const glmoe_context_params *cp, glmoe_status code, const char *want) {
    glmoe_load_plan plan;
    memset(&plan, 0xab, sizeof plan);
    char err[512] = "";
    glmoe_status s = glmoe_model_plan(&plan, dir, config, 0, mp, cp, err, sizeof err);
    CHECK(s == code && strstr(err, want) && !strchr(err, '\n') && plan.weight_bytes == 0 && plan.n_weight_groups == 0,
          "%s: status %d (want %d), \"%s\" (want \"%s\"), out %s", what, s, code, err, want,
          plan.weight_bytes ? "not zeroed" : "zeroed");
}

static void test_refusals(void) {
    char dir[4200], missing[4200];
    snprintf(dir, sizeof dir, "%s/tests/golden/glm45_like", g_root);
    snprintf(missing, sizeof missing, "%s/tests/golden/no_such_model", g_root);
    glmoe_model_params mp = glmoe_model_params_default();
    check_refused("missing dir", missing, NULL, NULL, NULL, GLMOE_E_IO, "no_such_model/config.json");
    check_refused("unknown preset", NULL, "glm-9", NULL, NULL, GLMOE_E_ARG, "glm-9");
    check_refused("nothing named", NULL, NULL, NULL, NULL, GLMOE_E_ARG, "no model directory");
    mp.quantize.bits = 7;
    check_refused("q7", dir, NULL, &mp, NULL, GLMOE_E_ARG, "quantize: 7 bits");
    mp = glmoe_model_params_default();
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = 4097;
    check_refused("n_ctx 4097", dir, NULL, &mp, &cp, GLMOE_E_ARG, "max_position_embeddings 4096");
    cp = glmoe_context_params_default();
    cp.n_draft = 2;
    check_refused("n_draft without MTP", dir, NULL, &mp, &cp, GLMOE_E_ARG, "multi-token-prediction");
    CHECK(glmoe_model_plan(NULL, dir, NULL, 0, NULL, NULL, NULL, 0) == GLMOE_E_ARG, "NULL out");
}

/* A released configuration, planned as glmoe bench --dry-run plans it (no weights made). */
static void test_synthetic(void) {
    glmoe_model_params mp = glmoe_model_params_default();
    mp.quantize.bits = 4;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = 16392;
    cp.n_batch = 4096;
    glmoe_load_plan q4, bf16;
    char err[512] = "";
    glmoe_status s = glmoe_model_plan(&q4, NULL, "glm-4.5-air", 0, &mp, &cp, err, sizeof err);
    CHECK(s == GLMOE_OK && q4.n_layers == 46 && q4.n_ctx == 16392 && q4.n_batch == 4096,
          "glm-4.5-air q4: %s (%d layers, context %d x %d)", err, q4.n_layers, q4.n_ctx, q4.n_batch);
    s = glmoe_model_plan(&bf16, NULL, "glm-4.5-air", 2, NULL, NULL, err, sizeof err);
    CHECK(s == GLMOE_OK && bf16.n_layers == 2 && bf16.weight_bytes > 0 && bf16.weight_bytes < q4.weight_bytes,
          "glm-4.5-air, 2 layers: %s (%d layers, %llu bytes)", err, bf16.n_layers,
          (unsigned long long)bf16.weight_bytes);
    /* 106.85B parameters at 4 bits and 64-weight groups of bf16 scale and bias: 60.14 GB held. */
    CHECK(q4.weight_bytes / 10000000 == 6014, "glm-4.5-air q4: %llu bytes", (unsigned long long)q4.weight_bytes);
}

int main(int argc, char **argv) {
    snprintf(g_root, sizeof g_root, "%s", argc > 1 ? argv[1] : ".");
    glmoe_model_params mp = glmoe_model_params_default();
    check_plan_matches_load("glm45_like", &mp);
    mp.quantize = (glmoe_quantize){.bits = 4, .group_size = 0};
    check_plan_matches_load("glm45_like", &mp);
    mp = glmoe_model_params_default();
    check_plan_matches_load("mtp", &mp);
    mp.skip_mtp = true;
    check_plan_matches_load("mtp", &mp);
    test_refusals();
    test_synthetic();
    return test_summary("test_model_plan");
}
