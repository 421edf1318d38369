/*
 * quantize_checkpoint.h — writing an MLX-format quantized checkpoint from a float one, as
 * `mlx_lm.convert -q --q-bits B --q-group-size G` would (glmoe_quantize_checkpoint in glmoe.h).
 *
 * Output (a new directory): config.json with the "quantization" and "quantization_config" blocks
 * {"group_size": G, "bits": B, "mode": "affine"}; safetensors shards of at most 5 GiB
 * (model.safetensors, or model-0000i-of-0000N.safetensors) with metadata {"format": "mlx"} and
 * model.safetensors.index.json (weight_map sorted by name, total_size, total_parameters); the
 * tokenizer and generation files copied. Per tensor, sorted by name:
 *   - the weights mlx-lm quantizes (tensor_map.c tmap_quantizable) whose input width G divides:
 *     "<module>.weight" U32 codes, ".scales" and ".biases" in the config's dtype, each row cast
 *     to that dtype first and quantized by MLX's CPU algorithm (backend/formats.c);
 *   - Hugging Face per-expert tensors stacked into "model.layers.L.mlp.switch_mlp.<proj>"
 *     [E, out, in] (quantized as above when G divides), as mlx-lm's sanitize does;
 *   - everything else (norms, biases, the router, the multi-token-prediction layer) copied as is.
 * It streams: a tensor is read from the mapping, quantized row by row and appended; only a
 * tensor's scales and biases are held until its codes are written. Nothing is overwritten: the
 * output directory must not exist; on failure it is removed with what was written into it.
 */
#ifndef GLMOE_MODEL_QUANTIZE_CHECKPOINT_H
#define GLMOE_MODEL_QUANTIZE_CHECKPOINT_H

#include <stdint.h>

#include "backend/formats.h"
#include "util/error.h"

typedef void (*checkpoint_progress_fn)(uint64_t done_bytes, uint64_t total_bytes, const char *tensor, void *user);

glmoe_status checkpoint_quantize(const char *in_dir, const char *out_dir, int32_t bits, int32_t group,
                                 checkpoint_progress_fn progress, void *user, gm_err *err);

#endif
