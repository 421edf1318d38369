/*
 * config.h — the model configuration as glmoe understands it (docs/spec/glm4_moe.md §1).
 *
 * Read from config.json (both the flat rope_theta/partial_rotary_factor form of the official
 * checkpoints and the nested rope_parameters form written by transformers >= 5) and
 * generation_config.json (extra eos ids). Absent optional fields take transformers'
 * Glm4MoeConfig defaults; inconsistent values are refused with a message naming the field.
 */
#ifndef GLMOE_MODEL_CONFIG_H
#define GLMOE_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "util/error.h"

#define GM_MAX_EOS 32

typedef struct gm_config {
    int32_t vocab_size;
    int32_t hidden_size;             /* H */
    int32_t n_layers;                /* num_hidden_layers: layers the forward runs */
    int32_t n_nextn_layers;          /* num_nextn_predict_layers (MTP, skipped)   */
    int32_t n_heads, n_kv_heads;     /* nh, nkv */
    int32_t head_dim;                /* D (not necessarily H / nh) */
    int32_t rotary_dim;              /* R = int(D * partial_rotary_factor), even */
    int32_t intermediate_size;       /* dense MLP width */
    int32_t moe_intermediate_size;   /* Im, width of one routed expert */
    int32_t n_experts;               /* n_routed_experts, E */
    int32_t n_experts_per_tok;       /* K */
    int32_t n_shared_experts;        /* shared expert width = Im * n_shared_experts */
    int32_t n_group, topk_group;
    int32_t first_k_dense_replace;   /* layers < this are dense */
    int32_t max_position_embeddings;
    bool attention_bias, use_qk_norm, norm_topk_prob, tie_word_embeddings;
    float rms_norm_eps, rope_theta, partial_rotary_factor, routed_scaling_factor;
    char dtype[32];                  /* "bfloat16", ... or "" */
    int32_t eos_ids[GM_MAX_EOS];
    int32_t n_eos;
} gm_config;

/* Loads dir/config.json and, if present, dir/generation_config.json. */
glmoe_status config_load(gm_config *cfg, const char *dir, gm_err *err);

/* Parses the text of a config.json (name is used in messages). generation_config.json, if
 * gen_text is non-NULL, adds its eos ids. Entry point for tests and fuzzing. */
glmoe_status config_parse(gm_config *cfg, const char *text, size_t len, const char *name,
                          const char *gen_text, size_t gen_len, gm_err *err);

/* The configuration of a released model by name (glm-4.5, glm-4.5-air, glm-4.6, glm-4.7), as its
 * config.json gives it, with num_hidden_layers cut to n_layers (0: all); first_k_dense_replace is
 * kept unless it exceeds the layers left. Unknown names are GLMOE_E_ARG listing the known ones. */
glmoe_status config_preset(gm_config *cfg, const char *name, int32_t n_layers, gm_err *err);
const char *config_preset_names(void);

static inline bool config_layer_is_moe(const gm_config *c, int layer) {
    return layer >= c->first_k_dense_replace;
}

/* 1 when a MoE layer's shared expert has the routed experts' shape (a single one) and so joins
 * their bank as its last entry, chosen by every token (weights.c finish_experts): one more expert
 * in the bank and one more slot per token. 0 otherwise. */
static inline int32_t config_shared_in_bank(const gm_config *c) { return c->n_shared_experts == 1; }

#endif
