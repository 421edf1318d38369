/*
 * config.c — config.json and generation_config.json → gm_config, with every check the forward
 * relies on. Limits are generous for real models (GLM-4.5: H 5120, V 151552, E 160) and small
 * enough that every product the engine forms (V*H, E*Im*H, nh*D, ...) fits in 63 bits.
 */
#include "model/config.h"

#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "io/file.h"
#include "io/json.h"

#define MAX_DIM (1 << 20)      /* any width or count */
#define MAX_VOCAB (1 << 24)
/* Routing: released MoE models use at most a few hundred routed experts (GLM-4.5 160, DeepSeek-V3
 * 256, Qwen3-Next 512), top-8 to top-10 of them, and one or two shared experts. These bounds keep
 * a hostile config's router, expert tables and scratch (E x K per token) small. */
#define MAX_EXPERTS 1024
#define MAX_EXPERTS_PER_TOK 64
#define MAX_SHARED_EXPERTS 64

/* Reads an integer field into an int32_t; `required` fields must be present. */
static glmoe_status get_i32(const json_t *o, const char *key, int64_t lo, int64_t hi, bool required,
                            int32_t *out, const char *file, gm_err *err) {
    int64_t v = *out;
    bool present;
    glmoe_status s = gm_json_get_int(o, key, lo, hi, &v, &present, file, err);
    if (s) return s;
    if (!present && required)
        return gm_fail(err, GLMOE_E_CONFIG, "%s: required field \"%s\" is missing", file, key);
    *out = (int32_t)v;
    return GLMOE_OK;
}

static glmoe_status get_f32(const json_t *o, const char *key, double lo, double hi, float *out,
                            bool *present, const char *file, gm_err *err) {
    double v = *out;
    glmoe_status s = gm_json_get_number(o, key, lo, hi, &v, present, file, err);
    if (!s) *out = (float)v;
    return s;
}

/* eos_token_id may be an integer or a list of integers; adds those not yet in cfg. */
static glmoe_status add_eos(gm_config *c, const json_t *o, const char *file, gm_err *err) {
    const json_t *v = json_object_get(o, "eos_token_id");
    if (!v || json_is_null(v)) return GLMOE_OK;
    size_t n = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > INT32_MAX)
            return gm_fail(err, GLMOE_E_CONFIG,
                           "%s: field \"eos_token_id\": expected a non-negative integer or a list of them",
                           file);
        int32_t id = (int32_t)json_integer_value(e);
        bool seen = false;
        for (int j = 0; j < c->n_eos; j++) seen |= c->eos_ids[j] == id;
        if (seen) continue;
        if (c->n_eos == GM_MAX_EOS)
            return gm_fail(err, GLMOE_E_CONFIG, "%s: field \"eos_token_id\": more than %d ids", file,
                           GM_MAX_EOS);
        c->eos_ids[c->n_eos++] = id;
    }
    return GLMOE_OK;
}

static glmoe_status check_architecture(const json_t *o, const char *file, gm_err *err) {
    const json_t *arch = json_object_get(o, "architectures");
    const char *model_type = NULL;
    bool has_type = false;
    glmoe_status s = gm_json_get_string(o, "model_type", &model_type, &has_type, file, err);
    if (s) return s;
    if (arch && !json_is_null(arch)) {
        if (!json_is_array(arch))
            return gm_fail(err, GLMOE_E_CONFIG, "%s: field \"architectures\": expected a list", file);
        size_t i;
        json_t *a;
        json_array_foreach(arch, i, a) {
            if (json_is_string(a) && strcmp(json_string_value(a), "Glm4MoeForCausalLM") == 0)
                return GLMOE_OK;
        }
        const json_t *first = json_array_get(arch, 0);
        return gm_fail(err, GLMOE_E_UNSUPPORTED,
                       "%s: field \"architectures\": %s is not supported (glmoe runs Glm4MoeForCausalLM)",
                       file, json_is_string(first) ? json_string_value(first) : "(empty)");
    }
    if (has_type && strcmp(model_type, "glm4_moe") == 0) return GLMOE_OK;
    return gm_fail(err, GLMOE_E_UNSUPPORTED,
                   "%s: neither \"architectures\" lists Glm4MoeForCausalLM nor is \"model_type\" glm4_moe (found %s)",
                   file, has_type ? model_type : "no model_type");
}

/* RoPE: flat keys (official configs) or rope_parameters (transformers >= 5). Only plain RoPE. */
static glmoe_status parse_rope(gm_config *c, const json_t *o, const char *file, gm_err *err) {
    glmoe_status s;
    bool present;
    const json_t *scaling = json_object_get(o, "rope_scaling");
    if (scaling && !json_is_null(scaling))
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "%s: field \"rope_scaling\": only plain RoPE is supported (null)",
                       file);
    if ((s = get_f32(o, "rope_theta", 1.0, 1e12, &c->rope_theta, &present, file, err))) return s;
    if ((s = get_f32(o, "partial_rotary_factor", 1e-6, 1.0, &c->partial_rotary_factor, &present, file, err)))
        return s;
    const json_t *rp = json_object_get(o, "rope_parameters");
    if (rp && !json_is_null(rp)) {
        if (!json_is_object(rp))
            return gm_fail(err, GLMOE_E_CONFIG, "%s: field \"rope_parameters\": expected an object", file);
        const char *type = "default";
        if ((s = gm_json_get_string(rp, "rope_type", &type, &present, file, err))) return s;
        if (strcmp(type, "default") != 0)
            return gm_fail(err, GLMOE_E_UNSUPPORTED,
                           "%s: field \"rope_parameters.rope_type\": \"%s\" is not supported (only \"default\")",
                           file, type);
        if ((s = get_f32(rp, "rope_theta", 1.0, 1e12, &c->rope_theta, &present, file, err))) return s;
        if ((s = get_f32(rp, "partial_rotary_factor", 1e-6, 1.0, &c->partial_rotary_factor, &present, file, err)))
            return s;
    }
    return GLMOE_OK;
}

static glmoe_status validate(gm_config *c, const char *file, gm_err *err) {
    if (c->n_heads % c->n_kv_heads != 0)
        return gm_fail(err, GLMOE_E_CONFIG,
                       "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)", file,
                       c->n_heads, c->n_kv_heads);
    c->rotary_dim = (int32_t)((double)c->head_dim * (double)c->partial_rotary_factor);
    if (c->rotary_dim < 2 || c->rotary_dim % 2 != 0)
        return gm_fail(err, GLMOE_E_CONFIG,
                       "%s: head_dim %d x partial_rotary_factor %g gives %d rotary dims; it must be even and >= 2",
                       file, c->head_dim, (double)c->partial_rotary_factor, c->rotary_dim);
    if (c->first_k_dense_replace > c->n_layers)
        return gm_fail(err, GLMOE_E_CONFIG, "%s: first_k_dense_replace (%d) exceeds num_hidden_layers (%d)",
                       file, c->first_k_dense_replace, c->n_layers);
    bool any_moe = c->first_k_dense_replace < c->n_layers;
    if (any_moe) {
        if (c->n_experts % c->n_group != 0)
            return gm_fail(err, GLMOE_E_CONFIG, "%s: n_routed_experts (%d) is not a multiple of n_group (%d)",
                           file, c->n_experts, c->n_group);
        if (c->n_group > 1 && c->n_experts / c->n_group < 2)
            return gm_fail(err, GLMOE_E_CONFIG,
                           "%s: n_group (%d) leaves fewer than 2 experts per group; group scores need 2", file,
                           c->n_group);
        if (c->topk_group > c->n_group)
            return gm_fail(err, GLMOE_E_CONFIG, "%s: topk_group (%d) exceeds n_group (%d)", file, c->topk_group,
                           c->n_group);
        int64_t selectable = (int64_t)c->topk_group * (c->n_experts / c->n_group);
        if (c->n_experts_per_tok > selectable)
            return gm_fail(err, GLMOE_E_CONFIG,
                           "%s: num_experts_per_tok (%d) exceeds the %lld experts that topk_group %d of n_group %d can offer",
                           file, c->n_experts_per_tok, (long long)selectable, c->topk_group, c->n_group);
    }
    if (c->tie_word_embeddings == false && c->vocab_size <= 0)
        return gm_fail(err, GLMOE_E_CONFIG, "%s: vocab_size must be positive", file);
    return GLMOE_OK;
}

glmoe_status config_parse(gm_config *c, const char *text, size_t len, const char *file,
                          const char *gen_text, size_t gen_len, gm_err *err) {
    memset(c, 0, sizeof *c);
    /* transformers' Glm4MoeConfig defaults for optional fields */
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->partial_rotary_factor = 0.5f;
    c->routed_scaling_factor = 1.0f;
    c->n_group = c->topk_group = 1;
    c->n_shared_experts = 1;
    c->first_k_dense_replace = 1;
    c->norm_topk_prob = true;
    c->max_position_embeddings = 131072;
    c->n_nextn_layers = 0;

    json_t *o = NULL;
    glmoe_status s = gm_json_load_buffer(&o, text, len, file, err);
    if (s) return s;
    if (!json_is_object(o)) {
        s = gm_fail(err, GLMOE_E_CONFIG, "%s: expected a JSON object at the top level", file);
        goto done;
    }
    if ((s = check_architecture(o, file, err))) goto done;

    if ((s = get_i32(o, "vocab_size", 1, MAX_VOCAB, true, &c->vocab_size, file, err))) goto done;
    if ((s = get_i32(o, "hidden_size", 1, MAX_DIM, true, &c->hidden_size, file, err))) goto done;
    if ((s = get_i32(o, "num_hidden_layers", 1, 4096, true, &c->n_layers, file, err))) goto done;
    if ((s = get_i32(o, "num_attention_heads", 1, 4096, true, &c->n_heads, file, err))) goto done;
    c->n_kv_heads = c->n_heads;
    if ((s = get_i32(o, "num_key_value_heads", 1, 4096, false, &c->n_kv_heads, file, err))) goto done;
    c->head_dim = c->hidden_size / c->n_heads;
    if ((s = get_i32(o, "head_dim", 1, 4096, false, &c->head_dim, file, err))) goto done;
    if (c->head_dim < 1) {
        s = gm_fail(err, GLMOE_E_CONFIG, "%s: hidden_size / num_attention_heads is 0 and no head_dim is given", file);
        goto done;
    }
    /* the derived default obeys the same limit as an explicit head_dim */
    if (c->head_dim > 4096) {
        s = gm_fail(err, GLMOE_E_CONFIG,
                    "%s: hidden_size / num_attention_heads is %d, over the head_dim limit of 4096, and no head_dim is given",
                    file, c->head_dim);
        goto done;
    }
    if ((s = get_i32(o, "intermediate_size", 1, MAX_DIM, true, &c->intermediate_size, file, err))) goto done;
    if ((s = get_i32(o, "first_k_dense_replace", 0, 4096, false, &c->first_k_dense_replace, file, err))) goto done;
    if ((s = get_i32(o, "num_nextn_predict_layers", 0, 64, false, &c->n_nextn_layers, file, err))) goto done;
    if ((s = get_i32(o, "max_position_embeddings", 1, INT32_MAX, false, &c->max_position_embeddings, file, err)))
        goto done;
    {
        bool moe = c->first_k_dense_replace < c->n_layers;
        if ((s = get_i32(o, "moe_intermediate_size", 1, MAX_DIM, moe, &c->moe_intermediate_size, file, err))) goto done;
        if ((s = get_i32(o, "n_routed_experts", 1, MAX_EXPERTS, moe, &c->n_experts, file, err))) goto done;
        if ((s = get_i32(o, "num_experts_per_tok", 1, MAX_EXPERTS_PER_TOK, moe, &c->n_experts_per_tok, file, err)))
            goto done;
        if ((s = get_i32(o, "n_shared_experts", 0, MAX_SHARED_EXPERTS, false, &c->n_shared_experts, file, err)))
            goto done;
        if ((s = get_i32(o, "n_group", 1, MAX_EXPERTS, false, &c->n_group, file, err))) goto done;
        if ((s = get_i32(o, "topk_group", 1, MAX_EXPERTS, false, &c->topk_group, file, err))) goto done;
    }
    bool present;
    if ((s = gm_json_get_bool(o, "attention_bias", &c->attention_bias, &present, file, err))) goto done;
    if ((s = gm_json_get_bool(o, "use_qk_norm", &c->use_qk_norm, &present, file, err))) goto done;
    if ((s = gm_json_get_bool(o, "norm_topk_prob", &c->norm_topk_prob, &present, file, err))) goto done;
    if ((s = gm_json_get_bool(o, "tie_word_embeddings", &c->tie_word_embeddings, &present, file, err))) goto done;
    if ((s = get_f32(o, "rms_norm_eps", 1e-12, 1.0, &c->rms_norm_eps, &present, file, err))) goto done;
    if ((s = get_f32(o, "routed_scaling_factor", 1e-6, 1e6, &c->routed_scaling_factor, &present, file, err)))
        goto done;
    if ((s = parse_rope(c, o, file, err))) goto done;
    {
        const char *act = "silu";
        if ((s = gm_json_get_string(o, "hidden_act", &act, &present, file, err))) goto done;
        if (strcmp(act, "silu") != 0) {
            s = gm_fail(err, GLMOE_E_UNSUPPORTED, "%s: field \"hidden_act\": \"%s\" is not supported (silu)", file,
                        act);
            goto done;
        }
        const char *dt = "";
        if ((s = gm_json_get_string(o, "torch_dtype", &dt, &present, file, err))) goto done;
        if ((s = gm_json_get_string(o, "dtype", &dt, &present, file, err))) goto done;
        snprintf(c->dtype, sizeof c->dtype, "%s", dt);
    }
    if ((s = add_eos(c, o, file, err))) goto done;
    if ((s = validate(c, file, err))) goto done;

    if (gen_text) {
        json_t *g = NULL;
        if ((s = gm_json_load_buffer(&g, gen_text, gen_len, "generation_config.json", err))) goto done;
        if (!json_is_object(g))
            s = gm_fail(err, GLMOE_E_CONFIG, "generation_config.json: expected a JSON object at the top level");
        else
            s = add_eos(c, g, "generation_config.json", err);
        json_decref(g);
    }
done:
    json_decref(o);
    return s;
}

/* Reads a small text file whole; *text is NULL (and OK is returned) if it does not exist and
 * optional is set. */
static glmoe_status read_text(const char *dir, const char *name, bool optional, char **text, size_t *len,
                              gm_err *err) {
    *text = NULL;
    *len = 0;
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", name);
    snprintf(path, n, "%s/%s", dir, name);
    bool missing;
    glmoe_status s = gm_file_read(text, len, path, 16 << 20, optional ? &missing : NULL, err);
    free(path);
    return s;
}

glmoe_status config_load(gm_config *cfg, const char *dir, gm_err *err) {
    char *text = NULL, *gen = NULL;
    size_t len = 0, gen_len = 0;
    glmoe_status s = read_text(dir, "config.json", false, &text, &len, err);
    if (!s) s = read_text(dir, "generation_config.json", true, &gen, &gen_len, err);
    if (!s) s = config_parse(cfg, text, len, "config.json", gen, gen_len, err);
    free(text);
    free(gen);
    return s;
}
