/*
 * partition.c — a rank's part of a split model (partition.h): contiguous, equal ranges of heads,
 * intermediate columns and experts, refused where the config's sizes do not divide.
 */
#include "model/partition.h"

/* Rank r's piece of `total` cut in n equal ranges, or an error naming the field. */
static glmoe_status cut(gm_slice *out, int64_t total, int32_t n, int32_t r, const char *field, gm_err *err) {
    if (total % n != 0)
        return gm_fail(err, GLMOE_E_CONFIG, "split over %d ranks: %s %lld is not divisible by %d", n, field,
                       (long long)total, n);
    *out = (gm_slice){.first = total / n * r, .n = total / n};
    return GLMOE_OK;
}

glmoe_status partition_plan(gm_partition *p, const gm_config *c, int32_t n_ranks, int32_t rank, gm_split_mode mode,
                            gm_err *err) {
    if (n_ranks < 1 || rank < 0 || rank >= n_ranks)
        return gm_fail(err, GLMOE_E_ARG, "rank %d of a split over %d ranks", rank, n_ranks);
    if (mode != GM_SPLIT_TP && mode != GM_SPLIT_EP) return gm_fail(err, GLMOE_E_ARG, "unknown split mode %d", (int)mode);
    *p = (gm_partition){.rank = rank, .n_ranks = n_ranks, .mode = mode};
    const bool dense = c->first_k_dense_replace > 0, moe = c->first_k_dense_replace < c->n_layers && c->n_experts > 0;
    const int64_t Is = (int64_t)c->moe_intermediate_size * c->n_shared_experts;
    glmoe_status s;
    if ((s = cut(&p->heads, c->n_heads, n_ranks, rank, "num_attention_heads", err)) ||
        (s = cut(&p->kv_heads, c->n_kv_heads, n_ranks, rank, "num_key_value_heads", err)))
        return s;
    p->dense = (gm_slice){0, c->intermediate_size};
    if (dense && (s = cut(&p->dense, c->intermediate_size, n_ranks, rank, "intermediate_size", err))) return s;
    p->shared = (gm_slice){0, Is};
    p->expert_cols = (gm_slice){0, c->moe_intermediate_size};
    p->experts = (gm_slice){0, c->n_experts};
    if (!moe) return GLMOE_OK;
    if (Is > 0 && (s = cut(&p->shared, Is, n_ranks, rank, "moe_intermediate_size*n_shared_experts", err))) return s;
    if (mode == GM_SPLIT_TP)
        return cut(&p->expert_cols, c->moe_intermediate_size, n_ranks, rank, "moe_intermediate_size (--split tp)", err);
    return cut(&p->experts, c->n_experts, n_ranks, rank, "n_routed_experts (--split ep)", err);
}

gm_partition partition_whole(const gm_config *c) {
    gm_partition p;
    partition_plan(&p, c, 1, 0, GM_SPLIT_TP, NULL); /* one rank always divides */
    return p;
}

bool partition_shared_in_bank(const gm_partition *p, const gm_config *c) {
    return config_shared_in_bank(c) && (partition_is_whole(p) || p->mode == GM_SPLIT_TP);
}

const char *partition_mode_name(gm_split_mode m) { return m == GM_SPLIT_EP ? "ep" : "tp"; }

glmoe_status partition_check_group(const gm_slice *cols, int32_t group, const char *tensor, int32_t n_ranks,
                                   gm_err *err) {
    if (group <= 0 || (cols->first % group == 0 && cols->n % group == 0)) return GLMOE_OK;
    return gm_fail(err, GLMOE_E_UNSUPPORTED, "tensor \"%s\": a split over %d ranks cuts its columns at [%lld, %lld), "
                   "not on its quantization groups of %d (use fewer ranks, --split ep, or a smaller group size)",
                   tensor, n_ranks, (long long)cols->first, (long long)(cols->first + cols->n), group);
}
