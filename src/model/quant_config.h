/*
 * quant_config.h — the `quantization` block of an MLX checkpoint's config.json (docs/spec/quantization.md
 * §6): global bits and group size, and per-module overrides.
 *
 *     "quantization": {"group_size": 64, "bits": 4, "mode": "affine",
 *                      "model.layers.3.mlp.switch_mlp.down_proj": {"group_size": 64, "bits": 6},
 *                      "lm_head": {"bits": 8}, "model.layers.0.self_attn.q_proj": false}
 *
 * "quantization" is read; "quantization_config" only when "quantization" is absent and it has bits
 * and group_size and no "quant_method" (a key that marks another scheme: AWQ, GPTQ, ...). "mode"
 * must be "affine" (absent: affine). An override is an object with any of group_size, bits, mode
 * (absent or null: the global value), or false (the module stays in float) or true (global).
 * Which weights are quantized is decided by the tensors (`<module>.scales` present), as mlx-lm
 * does; the block gives their parameters, and weights.c checks the two agree.
 *
 * Tested in tests/unit/test_quant_config.c and fuzzed with config.json (tests/fuzz/fuzz_config.c).
 */
#ifndef GLMOE_MODEL_QUANT_CONFIG_H
#define GLMOE_MODEL_QUANT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* At most this many per-module overrides (GLM-4.5: 92 layers x ~10 modules). */
#define GM_QUANT_MAX_OVERRIDES 65536

typedef struct gm_quant_override {
    char *module;         /* module path, e.g. "model.layers.3.mlp.switch_mlp.down_proj" */
    bool quantized;       /* false: the module stays in float ("module": false) */
    int32_t bits, group;  /* when quantized */
    bool used;            /* a weight of the model matched it (weights.c) */
} gm_quant_override;

typedef struct gm_quant_config {
    bool present;         /* the checkpoint has a quantization block */
    const char *key;      /* "quantization" or "quantization_config" (for messages) */
    int32_t bits, group;  /* global */
    gm_quant_override *overrides;  /* sorted by module path */
    size_t n_overrides;
} gm_quant_config;

/* Parses the block from config.json's text (file names it in messages). No block: q->present
 * false. Illegal bits or group sizes, another mode, a malformed override: GLMOE_E_CONFIG (or
 * GLMOE_E_UNSUPPORTED for another scheme) naming the field. */
glmoe_status quant_config_parse(gm_quant_config *q, const char *text, size_t len, const char *file, gm_err *err);

/* The same from dir/config.json. */
glmoe_status quant_config_load(gm_quant_config *q, const char *dir, gm_err *err);

/* The override of a module path, or NULL. */
gm_quant_override *quant_config_find(const gm_quant_config *q, const char *module);

void quant_config_free(gm_quant_config *q);

#endif
