/*
 * fuzz_config.c — libFuzzer target for config.json + generation_config.json (config_parse in
 * src/model/config.h).
 *
 * Input: the text of a config.json, optionally followed by a NUL byte and the text of a
 * generation_config.json. The same text also goes to quant_config_parse (the quantization block
 * of MLX checkpoints: legal bits and group sizes, overrides sorted, unique and found). Every accepted config must keep the promises the weight binding and the
 * forward rely on (positive dimensions within the engine limits, an even rotary width that fits
 * in head_dim, whole GQA groups, a routing that can pick K experts, distinct eos ids); every
 * refusal is a status and one line naming the file.
 *
 * Seeds: tests/fuzz/corpus/config/ (the demo model's and the golden models' configs).
 * Build and run: `make fuzz` (cmake/fuzz.cmake, tests/fuzz/run_fuzzers.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "backend/formats.h"
#include "model/config.h"
#include "model/quant_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text, *gen;
    size_t len, gen_len;
    fuzz_split(data, size, &text, &len, &gen, &gen_len);
    if (!text || (gen_len && !gen)) {
        free(text);
        free(gen);
        return 0;
    }
    gm_config c;
    gm_err err = {0};
    glmoe_status st = config_parse(&c, text, len, "config.json", gen, gen_len, &err);
    if (st != GLMOE_OK) {
        REQUIRE(st == GLMOE_E_FORMAT || st == GLMOE_E_CONFIG || st == GLMOE_E_UNSUPPORTED ||
                st == GLMOE_E_NOMEM);
        REQUIRE(fuzz_msg_ok(err.msg, "config.json: ") ||
                (gen && fuzz_msg_ok(err.msg, "generation_config.json: ")));
    } else {
        REQUIRE(c.vocab_size >= 1 && c.vocab_size <= (1 << 24));
        REQUIRE(c.hidden_size >= 1 && c.hidden_size <= (1 << 20));
        REQUIRE(c.n_layers >= 1 && c.n_heads >= 1 && c.n_kv_heads >= 1);
        REQUIRE(c.n_heads % c.n_kv_heads == 0);
        REQUIRE(c.head_dim >= 1 && c.head_dim <= 4096);
        REQUIRE(c.rotary_dim >= 2 && c.rotary_dim % 2 == 0 && c.rotary_dim <= c.head_dim);
        REQUIRE(c.intermediate_size >= 1);
        REQUIRE(c.first_k_dense_replace >= 0 && c.first_k_dense_replace <= c.n_layers);
        REQUIRE(c.n_nextn_layers >= 0 && c.max_position_embeddings >= 1);
        if (c.first_k_dense_replace < c.n_layers) { /* at least one MoE layer */
            REQUIRE(c.moe_intermediate_size >= 1 && c.n_experts >= 1 && c.n_experts_per_tok >= 1);
            REQUIRE(c.n_group >= 1 && c.n_experts % c.n_group == 0);
            REQUIRE(c.topk_group >= 1 && c.topk_group <= c.n_group);
            REQUIRE(c.n_experts_per_tok <= c.topk_group * (c.n_experts / c.n_group));
            REQUIRE(c.n_experts_per_tok <= c.n_experts);
        }
        REQUIRE(c.n_shared_experts >= 0);
        REQUIRE(c.rms_norm_eps > 0 && c.rope_theta >= 1 && c.routed_scaling_factor > 0);
        REQUIRE(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1);
        REQUIRE(memchr(c.dtype, 0, sizeof c.dtype) != NULL);
        REQUIRE(c.n_eos >= 0 && c.n_eos <= GM_MAX_EOS);
        for (int i = 0; i < c.n_eos; i++) {
            REQUIRE(c.eos_ids[i] >= 0);
            for (int j = 0; j < i; j++) REQUIRE(c.eos_ids[i] != c.eos_ids[j]);
        }
    }
    /* The quantization block of the same text: legal parameters, sorted unique overrides. */
    gm_quant_config q;
    gm_err qerr = {0};
    st = quant_config_parse(&q, text, len, "config.json", &qerr);
    if (st != GLMOE_OK) {
        REQUIRE(st == GLMOE_E_FORMAT || st == GLMOE_E_CONFIG || st == GLMOE_E_UNSUPPORTED || st == GLMOE_E_NOMEM);
        REQUIRE(fuzz_msg_ok(qerr.msg, "config.json: "));
    } else {
        REQUIRE(!q.present || gm_affine_legal(q.bits, q.group));
        REQUIRE(q.n_overrides <= GM_QUANT_MAX_OVERRIDES);
        for (size_t i = 0; i < q.n_overrides; i++) {
            REQUIRE(q.overrides[i].module != NULL);
            REQUIRE(!q.overrides[i].quantized || gm_affine_legal(q.overrides[i].bits, q.overrides[i].group));
            REQUIRE(i == 0 || strcmp(q.overrides[i - 1].module, q.overrides[i].module) < 0);
            REQUIRE(quant_config_find(&q, q.overrides[i].module) == &q.overrides[i]);
        }
        quant_config_free(&q);
    }
    free(text);
    free(gen);
    return 0;
}
