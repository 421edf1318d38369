/* tensor_map.c — module paths to checkpoint tensors (tensor_map.h). */
#include "model/tensor_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const st_tensor *find_suffix(const st_set *set, const char *module, const char *suffix) {
    char name[200];
    if (snprintf(name, sizeof name, "%s.%s", module, suffix) >= (int)sizeof name) return NULL;
    return st_set_find(set, name);
}

bool tmap_module(const st_set *set, const char *module, gm_tensor_src *out) {
    memset(out, 0, sizeof *out);
    out->index = -1;
    snprintf(out->module, sizeof out->module, "%s", module);
    out->t = find_suffix(set, module, "weight");
    if (!out->t) return false;
    out->scales = find_suffix(set, module, "scales");
    out->biases = find_suffix(set, module, "biases");
    return true;
}

bool tmap_expert(const st_set *set, int layer, int e, const char *proj, gm_tensor_src *out) {
    char module[160];
    snprintf(module, sizeof module, "model.layers.%d.mlp.experts.%d.%s", layer, e, proj);
    if (tmap_module(set, module, out)) return true;
    snprintf(module, sizeof module, "model.layers.%d.mlp.switch_mlp.%s", layer, proj);
    if (!tmap_module(set, module, out)) return false;
    out->index = e;
    return true;
}

bool tmap_quantizable(const char *module) {
    if (!strcmp(module, "model.embed_tokens") || !strcmp(module, "lm_head")) return true;
    if (tmap_layer_index(module) < 0) return false;
    static const char *const linear[] = {".self_attn.q_proj", ".self_attn.k_proj", ".self_attn.v_proj",
                                         ".self_attn.o_proj", ".gate_proj", ".up_proj", ".down_proj",
                                         /* the MTP layer's own (mlx-lm drops the layer; glmoe
                                            quantizes it like the others) */
                                         ".eh_proj", ".shared_head.head", ".embed_tokens"};
    const size_t n = strlen(module);
    for (size_t i = 0; i < sizeof linear / sizeof linear[0]; i++) {
        const size_t k = strlen(linear[i]);
        if (n > k && !strcmp(module + n - k, linear[i])) return true;
    }
    return false;
}

long tmap_layer_index(const char *name) {
    const char *p = "model.layers.";
    if (strncmp(name, p, strlen(p)) != 0) return -1;
    char *end;
    long i = strtol(name + strlen(p), &end, 10);
    return end != name + strlen(p) && *end == '.' ? i : -1;
}
