/*
 * tensor_map.h — which checkpoint tensors hold a weight of the model, by name alone (no shapes, no
 * dtypes: weights.c checks those; no memory: the backend binds).
 *
 * A weight is addressed by its module path, as both Hugging Face and MLX name it
 * ("model.layers.3.self_attn.q_proj", "lm_head"); its tensors are "<module>.weight" and, when
 * MLX quantized it, "<module>.scales" and "<module>.biases". Routed experts come two ways:
 *   Hugging Face, one module per expert:  model.layers.L.mlp.experts.<e>.{gate,up,down}_proj
 *   MLX (mlx-lm's sanitize), stacked:      model.layers.L.mlp.switch_mlp.{gate,up,down}_proj
 *                                          [E, out, in] (quantized: codes and tables stacked too)
 * Vectors (norm weights, attention biases, the router's correction bias) are named in full.
 * Tensors of layers at index >= num_hidden_layers belong to the multi-token-prediction layer.
 */
#ifndef GLMOE_MODEL_TENSOR_MAP_H
#define GLMOE_MODEL_TENSOR_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"

/* The tensors behind one weight. */
typedef struct gm_tensor_src {
    const st_tensor *t;               /* the weight (elements, or U32 codes)                 */
    const st_tensor *scales, *biases; /* both present when quantized, else both NULL (or one
                                         of them, which weights.c refuses)                  */
    int64_t index;                    /* stacked: the expert, its leading index; else -1    */
    char module[160];                 /* the module path (quantization overrides use it)     */
} gm_tensor_src;

/* "<module>.weight" (+ .scales/.biases). False when there is no such weight. */
bool tmap_module(const st_set *set, const char *module, gm_tensor_src *out);

/* Expert e's projection ("gate_proj", "up_proj", "down_proj") of layer `layer`: the Hugging Face
 * per-expert module if the checkpoint has it, else the MLX stacked one at index e. False when
 * neither exists. */
bool tmap_expert(const st_set *set, int layer, int e, const char *proj, gm_tensor_src *out);

/* Layer index of "model.layers.<i>.…", or -1. */
long tmap_layer_index(const char *name);

/* Whether `mlx_lm.convert -q` quantizes this module (when the group divides its input width):
 * every nn.Linear, the embedding and the stacked experts — attention projections, dense and
 * shared-expert MLPs, routed experts (per-expert or switch_mlp), model.embed_tokens, lm_head —
 * and not the router (mlp.gate, a plain parameter in mlx-lm's glm4_moe), norms or biases. The MTP
 * layer, which mlx-lm drops, is quantized the same way, its eh_proj, shared_head.head and
 * embed_tokens included. */
bool tmap_quantizable(const char *module);

#endif
