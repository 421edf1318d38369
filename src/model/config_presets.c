/*
 * config_presets.c — the configurations of the released models, by name, for benchmarks that
 * need a model's shape but not its weights (`glmoe bench --config glm-4.5-air`).
 *
 * Each is the model's config.json in the official flat form (values from docs/spec
 * glm4_moe.md §1.1), parsed by config_parse like a file, with num_hidden_layers optionally cut.
 * GLM-4.6 and GLM-4.7 keep GLM-4.5's tensor shapes and differ only in their context length.
 */
#include <stdio.h>
#include <string.h>

#include "model/config.h"

typedef struct preset {
    const char *name;
    int hidden, intermediate, moe_intermediate, experts, dense_layers, layers, max_pos;
    const char *scaling;
    const char *qk_norm;
} preset;

static const preset k_presets[] = {
    {"glm-4.5", 5120, 12288, 1536, 160, 3, 92, 131072, "2.5", "true"},
    {"glm-4.5-air", 4096, 10944, 1408, 128, 1, 46, 131072, "1.0", "false"},
    {"glm-4.6", 5120, 12288, 1536, 160, 3, 92, 202752, "2.5", "true"},
    {"glm-4.7", 5120, 12288, 1536, 160, 3, 92, 202752, "2.5", "true"},
};

const char *config_preset_names(void) { return "glm-4.5, glm-4.5-air, glm-4.6, glm-4.7"; }

glmoe_status config_preset(gm_config *c, const char *name, int32_t n_layers, gm_err *err) {
    const preset *p = NULL;
    for (size_t i = 0; i < sizeof k_presets / sizeof k_presets[0]; i++)
        if (!strcmp(k_presets[i].name, name)) p = &k_presets[i];
    if (!p) return gm_fail(err, GLMOE_E_ARG, "unknown configuration \"%s\" (known: %s)", name, config_preset_names());
    if (n_layers < 0 || n_layers > p->layers)
        return gm_fail(err, GLMOE_E_ARG, "%s has %d layers; %d asked for", name, p->layers, n_layers);
    int layers = n_layers ? n_layers : p->layers;
    int dense = p->dense_layers < layers ? p->dense_layers : layers;
    char json[1536];
    snprintf(json, sizeof json,
             "{\"architectures\": [\"Glm4MoeForCausalLM\"], \"model_type\": \"glm4_moe\", \"attention_bias\": true,"
             " \"head_dim\": 128, \"hidden_act\": \"silu\", \"hidden_size\": %d, \"partial_rotary_factor\": 0.5,"
             " \"intermediate_size\": %d, \"max_position_embeddings\": %d, \"moe_intermediate_size\": %d,"
             " \"norm_topk_prob\": true, \"num_attention_heads\": 96, \"n_group\": 1, \"topk_group\": 1,"
             " \"n_routed_experts\": %d, \"n_shared_experts\": 1, \"routed_scaling_factor\": %s,"
             " \"num_experts_per_tok\": 8, \"first_k_dense_replace\": %d, \"num_hidden_layers\": %d,"
             " \"num_key_value_heads\": 8, \"rms_norm_eps\": 1e-05, \"rope_scaling\": null, \"rope_theta\": 1000000,"
             " \"num_nextn_predict_layers\": 1, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
             " \"use_qk_norm\": %s, \"vocab_size\": 151552, \"pad_token_id\": 151329,"
             " \"eos_token_id\": [151329, 151336, 151338]}",
             p->hidden, p->intermediate, p->max_pos, p->moe_intermediate, p->experts, p->scaling, dense, layers,
             p->qk_norm);
    char file[96];
    snprintf(file, sizeof file, "configuration %s", name);
    return config_parse(c, json, strlen(json), file, NULL, 0, err);
}
