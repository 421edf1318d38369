/*
 * partition.h — which part of the model each rank of a split holds (issue 20; DESIGN.md §5).
 *
 * A model split over N ranks (devices; simulated ranks on the CPU) keeps the embedding, the norms,
 * the routers and lm_head whole on every rank, and cuts the rest so that each rank's partial
 * output of an attention or FFN block is summed by one all-reduce (backend/comm.h):
 *   - attention by heads: rank r holds query heads [r·nh/N, (r+1)·nh/N) and KV heads
 *     [r·nkv/N, (r+1)·nkv/N) (rows of q/k/v and their biases, its own KV cache), and the matching
 *     input columns of o_proj;
 *   - the dense MLP and the shared expert by intermediate columns: rows of gate/up, columns of down;
 *   - the routed experts by mode: tp (tensor parallel) cuts every expert's moe_intermediate like
 *     the MLPs; ep (expert parallel) gives each rank a contiguous E/N of the experts of every MoE
 *     layer, whole.
 * Every range is contiguous; nothing is replicated but what stays whole. A split that does not
 * divide is refused naming the config field and N. Weights quantized in groups along their input
 * columns can be cut only on group boundaries (partition_check_group, used while binding).
 * Tested in tests/unit/test_partition.c.
 */
#ifndef GLMOE_MODEL_PARTITION_H
#define GLMOE_MODEL_PARTITION_H

#include <stdbool.h>
#include <stdint.h>

#include "model/config.h"
#include "util/error.h"

typedef enum gm_split_mode {
    GM_SPLIT_TP = 0,   /* routed experts cut by columns, like the MLPs */
    GM_SPLIT_EP,       /* each rank holds E/N whole experts */
} gm_split_mode;

/* [first, first + n) of some dimension. */
typedef struct gm_slice {
    int64_t first, n;
} gm_slice;

typedef struct gm_partition {
    int32_t rank, n_ranks;
    gm_split_mode mode;
    gm_slice heads, kv_heads;   /* query and KV heads */
    gm_slice dense;             /* the dense MLP's intermediate_size */
    gm_slice shared;            /* the shared expert's moe_intermediate_size * n_shared_experts */
    gm_slice expert_cols;       /* each routed expert's moe_intermediate_size (tp: cut; ep: whole) */
    gm_slice experts;           /* the routed experts held (ep: cut; tp: all) */
} gm_partition;

/* Rank `rank`'s part of a split of c over n_ranks in `mode`. n_ranks 1 is the whole model (any
 * mode). GLMOE_E_ARG for a rank outside [0, n_ranks) or n_ranks < 1; GLMOE_E_CONFIG when a field
 * that is cut is not divisible by n_ranks ("split over 3 ranks: num_key_value_heads 8 is not
 * divisible by 3"). Fields of layers the model does not have (no dense layer, no MoE layer, no
 * shared expert) are not checked. */
glmoe_status partition_plan(gm_partition *p, const gm_config *c, int32_t n_ranks, int32_t rank, gm_split_mode mode,
                            gm_err *err);

/* The whole model, as one rank (partition_plan of 1 rank). */
gm_partition partition_whole(const gm_config *c);

static inline bool partition_is_whole(const gm_partition *p) { return !p || p->n_ranks <= 1; }

/* Whether a rank's shared expert joins its bank of routed experts (config_shared_in_bank): only
 * when its slice keeps the experts' shape, i.e. whole or tp (ep cuts the shared expert by
 * columns but not the routed ones). */
bool partition_shared_in_bank(const gm_partition *p, const gm_config *c);

/* "tp", "ep". */
const char *partition_mode_name(gm_split_mode m);

/* Columns [first, first + n) of a weight quantized in groups of `group` along its columns: both
 * ends must fall on a group boundary, else GLMOE_E_UNSUPPORTED naming the tensor, the cut and the
 * group size. group 0 (a dense weight) always passes. */
glmoe_status partition_check_group(const gm_slice *cols, int32_t group, const char *tensor, int32_t n_ranks,
                                   gm_err *err);

#endif
