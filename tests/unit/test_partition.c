/*
 * test_partition.c — the split plan (src/model/partition.c): each rank's heads, intermediate
 * columns and experts on GLM-4.5's and GLM-4.5-Air's shapes in tp and ep; the ranges of all ranks
 * tile each dimension exactly once; splits that do not divide, and cuts off the quantization
 * groups, refused in one line naming the field (or tensor) and N.
 */
#include <stdio.h>
#include <string.h>

#include "model/partition.h"
#include "test.h"

/* Every rank's slices of one dimension cover [0, total) once, in rank order. */
static void check_tiles(const gm_partition *p, int32_t n, size_t offset, int64_t total, const char *what) {
    int64_t next = 0;
    for (int32_t r = 0; r < n; r++) {
        const gm_slice *s = (const gm_slice *)(const void *)((const char *)&p[r] + offset);
        CHECK(s->first == next && s->n > 0, "%s: rank %d of %d starts at %lld (want %lld), %lld long", what, r, n,
              (long long)s->first, (long long)next, (long long)s->n);
        next = s->first + s->n;
    }
    CHECK(next == total, "%s over %d ranks ends at %lld of %lld", what, n, (long long)next, (long long)total);
}

static void expect_refusal(const gm_config *c, int32_t n, gm_split_mode mode, glmoe_status code, const char *needle) {
    gm_partition p;
    gm_err e = {0};
    glmoe_status s = partition_plan(&p, c, n, n - 1, mode, &e);
    CHECK(s == code, "%d ranks %s: status %d, want %d (%s)", n, partition_mode_name(mode), s, code, e.msg);
    CHECK(strstr(e.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", e.msg, needle);
    CHECK(!strchr(e.msg, '\n'), "one line");
}

int main(void) {
    gm_err e = {0};
    gm_config air, g45;
    CHECK(config_preset(&air, "glm-4.5-air", 4, &e) == GLMOE_OK, "%s", e.msg);
    CHECK(config_preset(&g45, "glm-4.5", 4, &e) == GLMOE_OK, "%s", e.msg);

    /* The whole model. */
    gm_partition w = partition_whole(&air);
    CHECK(partition_is_whole(&w) && w.heads.n == air.n_heads && w.kv_heads.n == air.n_kv_heads &&
              w.experts.n == air.n_experts && w.expert_cols.n == air.moe_intermediate_size &&
              w.dense.n == air.intermediate_size && w.shared.n == air.moe_intermediate_size,
          "the whole model is one rank holding everything");
    CHECK(partition_shared_in_bank(&w, &air), "a single shared expert joins the bank of a whole model");

    const gm_config *cfgs[2] = {&air, &g45};
    for (int k = 0; k < 2; k++) {
        const gm_config *c = cfgs[k];
        for (int32_t n = 2; n <= 8; n *= 2)
            for (int m = 0; m < 2; m++) {
                gm_partition p[8];
                for (int32_t r = 0; r < n; r++)
                    CHECK(partition_plan(&p[r], c, n, r, (gm_split_mode)m, &e) == GLMOE_OK, "%s", e.msg);
                const char *what = k ? "glm-4.5" : "glm-4.5-air";
                check_tiles(p, n, offsetof(gm_partition, heads), c->n_heads, what);
                check_tiles(p, n, offsetof(gm_partition, kv_heads), c->n_kv_heads, what);
                check_tiles(p, n, offsetof(gm_partition, dense), c->intermediate_size, what);
                check_tiles(p, n, offsetof(gm_partition, shared), c->moe_intermediate_size, what);
                if (m == GM_SPLIT_TP) {
                    check_tiles(p, n, offsetof(gm_partition, expert_cols), c->moe_intermediate_size, what);
                    CHECK(p[n - 1].experts.first == 0 && p[n - 1].experts.n == c->n_experts, "tp holds every expert");
                    CHECK(partition_shared_in_bank(&p[0], c), "tp: the shared expert's slice has the experts' shape");
                } else {
                    check_tiles(p, n, offsetof(gm_partition, experts), c->n_experts, what);
                    CHECK(p[n - 1].expert_cols.first == 0 && p[n - 1].expert_cols.n == c->moe_intermediate_size,
                          "ep: whole experts");
                    CHECK(!partition_shared_in_bank(&p[0], c), "ep: the shared expert runs beside the bank");
                }
                /* GQA: a rank's query heads read only its own KV heads */
                const int32_t ratio = c->n_heads / c->n_kv_heads;
                for (int32_t r = 0; r < n; r++)
                    CHECK(p[r].heads.first / ratio == p[r].kv_heads.first &&
                              (p[r].heads.first + p[r].heads.n - 1) / ratio == p[r].kv_heads.first + p[r].kv_heads.n - 1,
                          "rank %d: query heads [%lld, +%lld) and KV heads [%lld, +%lld)", r, (long long)p[r].heads.first,
                          (long long)p[r].heads.n, (long long)p[r].kv_heads.first, (long long)p[r].kv_heads.n);
            }
    }
    CHECK(partition_plan(&w, &air, 4, 2, GM_SPLIT_TP, &e) == GLMOE_OK && w.heads.first == 48 && w.heads.n == 24 &&
              w.kv_heads.first == 4 && w.kv_heads.n == 2 && w.expert_cols.first == 704 && w.expert_cols.n == 352 &&
              w.dense.first == 5472 && w.dense.n == 2736,
          "glm-4.5-air rank 2 of 4 (tp): heads %lld+%lld", (long long)w.heads.first, (long long)w.heads.n);
    CHECK(partition_plan(&w, &g45, 8, 3, GM_SPLIT_EP, &e) == GLMOE_OK && w.experts.first == 60 && w.experts.n == 20,
          "glm-4.5 rank 3 of 8 (ep): experts %lld+%lld", (long long)w.experts.first, (long long)w.experts.n);

    /* Refusals, naming the field and N. */
    expect_refusal(&air, 3, GM_SPLIT_TP, GLMOE_E_CONFIG, "num_key_value_heads 8 is not divisible by 3");
    gm_config c = air;
    c.n_heads = 96;
    c.n_kv_heads = 96;
    expect_refusal(&c, 5, GM_SPLIT_TP, GLMOE_E_CONFIG, "num_attention_heads 96 is not divisible by 5");
    c = air;
    c.n_experts = 12;
    expect_refusal(&c, 8, GM_SPLIT_EP, GLMOE_E_CONFIG, "n_routed_experts (--split ep) 12 is not divisible by 8");
    CHECK(partition_plan(&w, &c, 8, 0, GM_SPLIT_TP, &e) == GLMOE_OK, "tp does not cut the expert count: %s", e.msg);
    c = air;
    c.moe_intermediate_size = 1412;
    expect_refusal(&c, 8, GM_SPLIT_TP, GLMOE_E_CONFIG, "moe_intermediate_size*n_shared_experts 1412 is not divisible by 8");
    c.n_shared_experts = 2; /* 2824 divides by 8, 1412 does not */
    expect_refusal(&c, 8, GM_SPLIT_TP, GLMOE_E_CONFIG, "moe_intermediate_size (--split tp) 1412 is not divisible by 8");
    c = air;
    c.intermediate_size = 10001;
    expect_refusal(&c, 2, GM_SPLIT_TP, GLMOE_E_CONFIG, "intermediate_size 10001 is not divisible by 2");
    c.first_k_dense_replace = 0; /* no dense layer: its width is not cut */
    CHECK(partition_plan(&w, &c, 2, 1, GM_SPLIT_TP, &e) == GLMOE_OK, "%s", e.msg);
    expect_refusal(&air, 0, GM_SPLIT_TP, GLMOE_E_ARG, "rank -1 of a split over 0 ranks");

    /* Quantization groups. */
    gm_slice ok = {128, 128}, off = {48, 48};
    CHECK(partition_check_group(&ok, 64, "t", 2, &e) == GLMOE_OK, "a cut on group boundaries");
    CHECK(partition_check_group(&off, 0, "t", 2, &e) == GLMOE_OK, "a dense weight is cut anywhere");
    CHECK(partition_check_group(&off, 32, "model.layers.1.mlp.down_proj", 2, &e) == GLMOE_E_UNSUPPORTED &&
              strstr(e.msg, "\"model.layers.1.mlp.down_proj\"") && strstr(e.msg, "[48, 96)") &&
              strstr(e.msg, "groups of 32"),
          "%s", e.msg);
    return test_summary("test_partition");
}
