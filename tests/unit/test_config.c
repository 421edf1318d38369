/*
 * test_config.c — config.json parsing: both RoPE forms, defaults, the eos union with
 * generation_config.json, and each inconsistent or broken value refused with the field named.
 */
#include <stdio.h>
#include <string.h>

#include "model/config.h"
#include "test.h"

/* A valid GLM-4.5-like config in the flat form of the official checkpoints; %s slots let each
 * case replace or add fields. */
static const char *base_fmt =
    "{\"architectures\": [\"Glm4MoeForCausalLM\"], \"model_type\": \"glm4_moe\","
    " \"vocab_size\": 151552, \"hidden_size\": 5120, \"num_hidden_layers\": 92,"
    " \"num_attention_heads\": 96, \"num_key_value_heads\": 8, \"head_dim\": 128,"
    " \"intermediate_size\": 12288, \"moe_intermediate_size\": 1536, \"n_routed_experts\": 160,"
    " \"num_experts_per_tok\": 8, \"n_shared_experts\": 1, \"first_k_dense_replace\": 3,"
    " \"routed_scaling_factor\": 2.5, \"use_qk_norm\": true, \"attention_bias\": true,"
    " \"eos_token_id\": [151329, 151336, 151338], \"torch_dtype\": \"bfloat16\"%s}";

static glmoe_status parse(gm_config *c, const char *extra, const char *gen, gm_err *e) {
    char buf[4096];
    snprintf(buf, sizeof buf, base_fmt, extra);
    return config_parse(c, buf, strlen(buf), "config.json", gen, gen ? strlen(gen) : 0, e);
}

static void expect_error(const char *extra, glmoe_status code, const char *needle) {
    gm_config c;
    gm_err e = {0};
    glmoe_status s = parse(&c, extra, NULL, &e);
    CHECK(s == code, "extra '%s': status %d, want %d (%s)", extra, s, code, e.msg);
    CHECK(strstr(e.msg, needle) != NULL, "extra '%s': message \"%s\" lacks \"%s\"", extra, e.msg, needle);
    CHECK(strstr(e.msg, "config.json") == e.msg, "message \"%s\" does not start with the file", e.msg);
}

int main(void) {
    gm_config c;
    gm_err e = {0};

    /* Flat form: rope_theta and partial_rotary_factor at the top level. */
    CHECK(parse(&c, ", \"rope_theta\": 1000000, \"partial_rotary_factor\": 0.5", NULL, &e) == GLMOE_OK, "%s", e.msg);
    CHECK(c.rope_theta == 1e6f && c.rotary_dim == 64 && c.head_dim == 128 && c.n_kv_heads == 8);
    CHECK(c.first_k_dense_replace == 3 && c.n_experts == 160 && c.routed_scaling_factor == 2.5f);
    CHECK(c.use_qk_norm && c.attention_bias && c.norm_topk_prob && c.n_group == 1);
    CHECK(strcmp(c.dtype, "bfloat16") == 0 && c.n_eos == 3 && c.eos_ids[1] == 151336);

    /* Nested form written by transformers >= 5, with "dtype". */
    CHECK(parse(&c, ", \"dtype\": \"float32\", \"rope_parameters\": {\"rope_type\": \"default\", "
                    "\"rope_theta\": 5000.0, \"partial_rotary_factor\": 0.25}", NULL, &e) == GLMOE_OK, "%s", e.msg);
    CHECK(c.rope_theta == 5000.0f && c.rotary_dim == 32 && strcmp(c.dtype, "float32") == 0);

    /* Defaults of transformers' Glm4MoeConfig: theta 10000, factor 0.5. */
    CHECK(parse(&c, "", NULL, &e) == GLMOE_OK, "%s", e.msg);
    CHECK(c.rope_theta == 10000.0f && c.rotary_dim == 64 && c.rms_norm_eps == 1e-5f);

    /* generation_config.json adds eos ids (union, no duplicates). */
    CHECK(parse(&c, "", "{\"eos_token_id\": [151329, 7], \"do_sample\": true}", &e) == GLMOE_OK, "%s", e.msg);
    CHECK(c.n_eos == 4 && c.eos_ids[3] == 7, "n_eos %d", c.n_eos);
    CHECK(parse(&c, "", "{\"eos_token_id\": 9}", &e) == GLMOE_OK && c.n_eos == 4 && c.eos_ids[3] == 9);
    CHECK(parse(&c, "", "[1]", &e) == GLMOE_E_CONFIG && strstr(e.msg, "generation_config.json"), "%s", e.msg);

    /* Broken or inconsistent values name the field. Duplicate keys are rejected, so these cases use
     * fields the base does not set; the rest are whole documents below. */
    expect_error(", \"n_group\": 3", GLMOE_E_CONFIG, "n_group");
    expect_error(", \"topk_group\": 2", GLMOE_E_CONFIG, "topk_group");
    expect_error(", \"rope_scaling\": {\"type\": \"yarn\"}", GLMOE_E_UNSUPPORTED, "rope_scaling");
    expect_error(", \"rope_parameters\": {\"rope_type\": \"yarn\"}", GLMOE_E_UNSUPPORTED, "rope_type");
    expect_error(", \"partial_rotary_factor\": 0.2578125", GLMOE_E_CONFIG, "rotary");
    expect_error(", \"partial_rotary_factor\": 1.5", GLMOE_E_CONFIG, "partial_rotary_factor");
    expect_error(", \"hidden_act\": \"gelu\"", GLMOE_E_UNSUPPORTED, "hidden_act");
    expect_error(", \"rms_norm_eps\": -1", GLMOE_E_CONFIG, "rms_norm_eps");
    expect_error(", \"rms_norm_eps\": \"small\"", GLMOE_E_CONFIG, "rms_norm_eps");
    expect_error(", \"num_nextn_predict_layers\": -1", GLMOE_E_CONFIG, "num_nextn_predict_layers");

    /* Whole documents for the fields the base sets. */
    struct {
        const char *json;
        glmoe_status code;
        const char *needle;
    } docs[] = {
        {"{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 10}", GLMOE_E_UNSUPPORTED, "LlamaForCausalLM"},
        {"{\"model_type\": \"llama\"}", GLMOE_E_UNSUPPORTED, "model_type"},
        {"{\"model_type\": \"glm4_moe\", \"hidden_size\": 64}", GLMOE_E_CONFIG, "vocab_size"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": -64}", GLMOE_E_CONFIG, "hidden_size"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 1e15}", GLMOE_E_CONFIG, "hidden_size"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 99999999999999999999}", GLMOE_E_FORMAT, "config.json"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
         " \"num_attention_heads\": 0}", GLMOE_E_CONFIG, "num_attention_heads"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
         " \"num_attention_heads\": 4, \"num_key_value_heads\": 3, \"intermediate_size\": 8,"
         " \"first_k_dense_replace\": 2}", GLMOE_E_CONFIG,
         "num_key_value_heads"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
         " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"first_k_dense_replace\": 1}", GLMOE_E_CONFIG,
         "moe_intermediate_size"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
         " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"moe_intermediate_size\": 8,"
         " \"n_routed_experts\": 4, \"num_experts_per_tok\": 5}", GLMOE_E_CONFIG, "num_experts_per_tok"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
         " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"first_k_dense_replace\": 3}", GLMOE_E_CONFIG,
         "first_k_dense_replace"},
        /* Routing beyond what any released model asks for (the bounds of config.c): a 28 MB
         * checkpoint with 65536 experts top-1024 cost 18 s per token before. */
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
         " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"moe_intermediate_size\": 8,"
         " \"n_routed_experts\": 65536, \"num_experts_per_tok\": 8}", GLMOE_E_CONFIG, "n_routed_experts"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
         " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"moe_intermediate_size\": 8,"
         " \"n_routed_experts\": 1024, \"num_experts_per_tok\": 1024}", GLMOE_E_CONFIG, "num_experts_per_tok"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
         " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"moe_intermediate_size\": 8,"
         " \"n_routed_experts\": 16, \"num_experts_per_tok\": 4, \"n_shared_experts\": 1000}", GLMOE_E_CONFIG,
         "n_shared_experts"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"vocab_size\": 11}", GLMOE_E_FORMAT, "duplicate"},
        {"{\"model_type\": \"glm4_moe\", ", GLMOE_E_FORMAT, "invalid JSON"},
        {"[]", GLMOE_E_CONFIG, "object"},
        {"{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
         " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"first_k_dense_replace\": 2,"
         " \"eos_token_id\": [1, \"x\"]}", GLMOE_E_CONFIG, "eos_token_id"},
    };
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        gm_err de = {0};
        glmoe_status s = config_parse(&c, docs[i].json, strlen(docs[i].json), "config.json", NULL, 0, &de);
        CHECK(s == docs[i].code, "doc %zu: status %d want %d (%s)", i, s, docs[i].code, de.msg);
        CHECK(strstr(de.msg, docs[i].needle) != NULL, "doc %zu: \"%s\" lacks \"%s\"", i, de.msg, docs[i].needle);
    }

    /* The largest routing the bounds allow still loads. */
    const char *widest = "{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
                         " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"moe_intermediate_size\": 8,"
                         " \"n_routed_experts\": 1024, \"num_experts_per_tok\": 64, \"n_shared_experts\": 64,"
                         " \"n_group\": 512, \"topk_group\": 64}";
    CHECK(config_parse(&c, widest, strlen(widest), "config.json", NULL, 0, &e) == GLMOE_OK, "%s", e.msg);
    CHECK(c.n_experts == 1024 && c.n_experts_per_tok == 64 && c.n_group == 512);

    /* A dense-only model needs no MoE fields. */
    const char *dense = "{\"model_type\": \"glm4_moe\", \"vocab_size\": 10, \"hidden_size\": 64, \"num_hidden_layers\": 2,"
                        " \"num_attention_heads\": 4, \"intermediate_size\": 8, \"first_k_dense_replace\": 2}";
    CHECK(config_parse(&c, dense, strlen(dense), "config.json", NULL, 0, &e) == GLMOE_OK, "%s", e.msg);
    return test_summary("test_config");
}
