/*
 * check_affine.c — the op checks of affine-quantized (MLX) weights, run by test_ops.c: the
 * GEMVs of 1..8 tokens, the embedding, the experts' grouped decode, and prefill on the GPU's
 * tensor cores (the cases are listed above check_affine and check_affine_prefill).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/checks.h"
#include "test.h"

/* ---- affine (MLX-quantized) weights ------------------------------------------------------------ */

/* Whether the backend takes affine weights of these parameters; a case it does not is skipped,
 * said once per backend. */
static bool takes_affine(ops_ctx *c, int bits, int group, ref_dtype st) {
    const gm_weight f = {.type = GM_W_AFFINE,
                         .q = {bits, group, st == REF_F32 ? GM_W_F32 : st == REF_BF16 ? GM_W_BF16 : GM_W_F16}};
    if (!c->be->ops->supports || c->be->ops->supports(c->be, &f)) return true;
    static const gm_backend *said;
    if (said != c->be) printf("  [%s] SKIP affine weights: not supported by this backend\n", c->label);
    said = c->be;
    return false;
}

/* One affine matmul case: T x [N, K] (q bits, group, scales of type st) against the float64
 * reference; x_offset floats past an aligned address (1: the GPU's general decoder). */
static void affine_matmul_case(ops_ctx *c, op_groups *g, int bits, int group, ref_dtype st, int32_t T, int64_t N,
                               int64_t K, bool unaligned, bool biased, int x_offset) {
    char what[192];
    snprintf(what, sizeof what, "matmul T=%d N=%lld K=%lld q%d g%d %s scales%s%s%s", T, (long long)N, (long long)K,
             bits, group, ref_dtype_name(st), unaligned ? " unaligned" : "", biased ? ", bias" : "",
             x_offset ? ", x unaligned" : "");
    ops_host_matrix *hw = ops_affine_matrix_new(c, bits, group, st, N, K, 1.0, unaligned);
    gm_weight *W = ops_bind(c, hw, GM_BIND_MATRIX), *B = NULL;
    double *bias_ref = NULL;
    if (biased) {
        ops_host_matrix *hb = ops_host_matrix_new(c, REF_F32, 1, N, 2.0, false);
        B = ops_bind(c, hb, GM_BIND_VECTOR_F32);
        bias_ref = ops_host_vector_values(hb);
    }
    float *x = ops_random_floats(c, (size_t)T * K, 0.01, 1.0), *out = malloc((size_t)T * N * 4);
    double *ref = malloc((size_t)T * N * sizeof *ref);
    float *xs = x;
    if (x_offset) { /* the same rows x_offset floats further on */
        xs = calloc((size_t)T * K + (size_t)x_offset, sizeof *xs);
        memcpy(xs + x_offset, x, (size_t)T * K * sizeof *x);
    }
    float *dxb = ops_upload_f(c, xs, (size_t)T * K + (size_t)x_offset), *dout = ops_upload_f(c, NULL, (size_t)T * N);
    bool ok = W && (!biased || B) && dxb &&
              op_ok(c, &g->affine, c->be->ops->matmul(c->ex, dout, dxb + x_offset, W, B, T, &c->err), what) &&
              ops_download_f(c, out, dout, (size_t)T * N, what);
    if (ok) {
        ref_matmul(ref, x, &hw->ref, bias_ref, T);
        /* codes at odd host addresses are aligned again on a GPU's upload: the tensor cores too */
        ok = ops_affine_matmul_ok(c, &g->affine, what, out, ref, x, &hw->ref, bias_ref, T, (bits == 4 || bits == 8) && !x_offset);
    }
    CHECK(ok, "%s", what);
    if (xs != x) free(xs);
    free(x);
    free(out);
    free(ref);
    free(bias_ref);
    ops_release(c);
}

/* One affine expert projection: format bits/group (0: bf16, dense), or the rotating mixed bank. */
typedef struct affine_proj_format {
    int bits, group;
} affine_proj_format;

typedef enum { ROUTE_SHARED, ROUTE_DISJOINT, ROUTE_SAME } affine_routing;

typedef struct affine_experts_case {
    int32_t T, E, K, H, Im;
    affine_proj_format gateup, down;
    ref_dtype st;
    affine_routing routing;
    bool accumulate, mixed;
    bool aligned; /* every expert's codes at an aligned host address (else every third is not) */
} affine_experts_case;

static void affine_experts_case_run(ops_ctx *c, op_groups *g, const affine_experts_case *cs) {
    enum { MAX_E = 32 };
    static const char *routing_names[] = {"shared experts", "disjoint experts", "one expert set"};
    const int32_t T = cs->T, E = cs->E, K = cs->K, H = cs->H, Im = cs->Im;
    char what[224];
    if (cs->mixed)
        snprintf(what, sizeof what, "moe_experts T=%d E=%d K=%d H=%d Im=%d mixed q8/q3/bf16, %s, %s", T, E, K, H, Im,
                 routing_names[cs->routing], cs->accumulate ? "accumulate" : "overwrite");
    else
        snprintf(what, sizeof what, "moe_experts T=%d E=%d K=%d H=%d Im=%d gate/up %s%d g%d, down %s%d g%d, %s scales, %s, %s%s",
                 T, E, K, H, Im, cs->gateup.bits ? "q" : "bf", cs->gateup.bits ? cs->gateup.bits : 16,
                 cs->gateup.group, cs->down.bits ? "q" : "bf", cs->down.bits ? cs->down.bits : 16, cs->down.group,
                 ref_dtype_name(cs->st), routing_names[cs->routing], cs->accumulate ? "accumulate" : "overwrite",
                 cs->aligned ? ", all aligned" : "");
    ref_matrix rg[MAX_E], ru[MAX_E], rd[MAX_E];
    gm_weight wg[MAX_E], wu[MAX_E], wd[MAX_E];
    bool bound = E <= MAX_E;
    for (int32_t e = 0; e < E && bound; e++) {
        ops_host_matrix *h[3];
        for (int p = 0; p < 3; p++) {
            const int64_t rows = p == 2 ? H : Im, cols = p == 2 ? Im : H;
            affine_proj_format f = p == 2 ? cs->down : cs->gateup;
            if (cs->mixed) { /* every expert and projection its own format */
                static const affine_proj_format rot[3] = {{8, 64}, {3, 32}, {0, 0}};
                f = rot[(e + p) % 3];
            }
            h[p] = f.bits ? ops_affine_matrix_new(c, f.bits, f.group, cs->st, rows, cols, 0.3, !cs->aligned && e % 3 == 1)
                          : ops_host_matrix_new(c, REF_BF16, rows, cols, 0.3, e % 3 == 2);
        }
        gm_weight *pg = ops_bind(c, h[0], GM_BIND_MATRIX), *pu = ops_bind(c, h[1], GM_BIND_MATRIX),
                  *pd = ops_bind(c, h[2], GM_BIND_MATRIX);
        bound = pg && pu && pd;
        if (!bound) break;
        wg[e] = *pg, wu[e] = *pu, wd[e] = *pd;
        rg[e] = h[0]->ref, ru[e] = h[1]->ref, rd[e] = h[2]->ref;
    }
    int32_t *idx = malloc((size_t)T * K * 4);
    float *rw = malloc((size_t)T * K * 4);
    for (int32_t t = 0; t < T; t++)
        for (int32_t j = 0; j < K; j++) {
            int32_t e = 0;
            switch (cs->routing) {
            case ROUTE_SHARED: e = (t + 3 * j) % E; break;      /* neighbours share experts */
            case ROUTE_DISJOINT: e = (t * K + j) % E; break;    /* E >= T·K: no expert twice */
            case ROUTE_SAME: e = (5 * j + 1) % E; break;        /* every token the same K experts */
            }
            idx[t * K + j] = e;
            rw[t * K + j] = (float)ops_rand_uniform(c, 0.05, 2.5);
        }
    float *x = ops_random_floats(c, (size_t)T * H, 0.01, 1.0), *out = malloc((size_t)T * H * 4);
    float *init = ops_random_floats(c, (size_t)T * H, 0.01, 2.0);
    double *ref = malloc((size_t)T * H * sizeof *ref);
    float *dx = ops_upload_f(c, x, (size_t)T * H), *dw = ops_upload_f(c, rw, (size_t)T * K);
    int32_t *didx = ops_upload_i(c, idx, (size_t)T * K);
    float *dout = ops_upload_f(c, cs->accumulate ? init : NULL, (size_t)T * H);
    gm_experts bank = {.n = E, .gate = wg, .up = wu, .down = wd};
    if (bound && c->be->ops->prepare_experts)
        bound = op_ok(c, &g->affine, c->be->ops->prepare_experts(c->be, &bank, &c->err), "prepare_experts");
    bool ok = bound &&
              op_ok(c, &g->affine,
                    c->be->ops->moe_experts(c->ex, dout, cs->accumulate, dx, didx, dw, K, &bank, T, &c->err), what) &&
              ops_download_f(c, out, dout, (size_t)T * H, what);
    if (bound && c->be->ops->release_experts) c->be->ops->release_experts(c->be, &bank);
    if (ok) {
        for (int64_t i = 0; i < (int64_t)T * H; i++) ref[i] = cs->accumulate ? init[i] : 0.0;
        ref_moe_experts(ref, x, idx, rw, K, rg, ru, rd, T);
        const bool tc_bits = (cs->gateup.bits == 4 || cs->gateup.bits == 8) && (cs->down.bits == 4 || cs->down.bits == 8);
        ok = ops_affine_experts_ok(c, &g->affine, what, out, ref, x, idx, rw, K, E, rg, ru, rd, T,
                               cs->accumulate ? init : NULL, tc_bits && !cs->mixed);
    }
    CHECK(ok, "%s", what);
    free(idx);
    free(rw);
    free(x);
    free(init);
    free(out);
    free(ref);
    ops_release(c);
}

/* matmul, embed and the experts with affine weights, against the float64 reference decoding the
 * same bytes its own way. On the GPU (cuda_quant.cu, cuda_quant_gemv.h, cuda_moe.cu):
 *   - matmul: every bit width x group size x T 1..9 and 33 (each token count of the fast
 *     kernels, 1 / 2 / 3-4 / 5-8, and the launches of 8 beyond), scales of the three dtypes in
 *     turn, K of one group, 384 (12 chunks at 4 bits: lanes left idle) and three groups, N 37..41
 *     (not a multiple of any block's rows), codes at odd host addresses; then K = 3072 at 4 and
 *     8 bits, T 1, 4, 8 (one shared-memory slice of x at T = 1, two or three at T = 4 and 8) and
 *     x at an unaligned address (the general decoder at 4 bits);
 *   - the experts: q4 g64 at T 1..8 with tokens sharing experts, disjoint, or all the same;
 *     q8 and q4 at every group and scale dtype; 2, 3, 5 and 6 bits (the general decoder inside
 *     the grouped kernels); gate/up and down of different formats (q4 with bf16, bf16 with q8,
 *     q4 with q8) and Im or H that leave a block's rows partly past the end; H = 1024 (every lane
 *     busy; the slices of x are the dense checks' K = 3072, the same code); the rotating mixed
 *     bank (q8, q3, bf16); T 21 (grouped launches of 8); accumulate on and off. */
void check_affine(ops_ctx *c, op_groups *g) {
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    static const int32_t Ts[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 33};
    int n_case = 0;
    for (int bi = 0; bi < 6; bi++)
        for (int group = 32; group <= 128; group *= 2)
            for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++, n_case++) {
                const ref_dtype st = dtype_of(n_case);
                if (!takes_affine(c, bits[bi], group, st)) return;
                const int64_t N = 37 + n_case % 5, K = n_case % 3 == 0 ? group : n_case % 3 == 1 ? 384 : 3 * group;
                if (K % group) continue;
                affine_matmul_case(c, g, bits[bi], group, st, Ts[ti], N, K, n_case % 4 == 1, n_case % 2 == 0, 0);
            }
    for (int b = 4; b <= 8; b += 4)
        for (int32_t T = 1; T <= 8; T = 2 * T + 2) /* 1, 4, 8 */
            affine_matmul_case(c, g, b, 64, REF_BF16, T, 19, 3072, false, T == 1, 0);
    affine_matmul_case(c, g, 4, 64, REF_BF16, 3, 45, 256, false, false, 1);

    /* The embedding: rows of a quantized table, decoded exactly (float32 of scale * q + bias). */
    for (int bi = 0; bi < 6; bi++) {
        const int group = 32 << (bi % 3);
        const ref_dtype st = dtype_of(bi);
        if (!takes_affine(c, bits[bi], group, st)) return;
        const int64_t V = 301, H = 2 * group;
        const int32_t T = 7;
        char what[96];
        snprintf(what, sizeof what, "embed T=%d V=%lld H=%lld q%d g%d %s scales", T, (long long)V, (long long)H,
                 bits[bi], group, ref_dtype_name(st));
        ops_host_matrix *ht = ops_affine_matrix_new(c, bits[bi], group, st, V, H, 1.0, bi % 2 == 1);
        gm_weight *table = ops_bind(c, ht, GM_BIND_MATRIX);
        int32_t ids[7] = {0, (int32_t)V - 1, 5, 5, 150, 77, 299};
        float *out = malloc((size_t)T * H * 4);
        double *ref = malloc((size_t)T * H * sizeof *ref);
        int32_t *dids = ops_upload_i(c, ids, T);
        float *dout = ops_upload_f(c, NULL, (size_t)T * H);
        bool ok = table && op_ok(c, &g->affine, c->be->ops->embed(c->ex, dout, table, dids, T, &c->err), what) &&
                  ops_download_f(c, out, dout, (size_t)T * H, what);
        if (ok) {
            ref_embed(ref, &ht->ref, ids, T);
            ok = ops_compare(c, &g->affine, what, out, ref, (size_t)T * H, 1e-7); /* two float32 roundings */
        }
        CHECK(ok, "%s", what);
        free(out);
        free(ref);
        ops_release(c);
    }

    /* The experts. */
    if (!takes_affine(c, 4, 64, REF_BF16)) return;
    const affine_proj_format q4g64 = {4, 64}, bf16 = {0, 0};
    const affine_experts_case cases[] = {
        /* q4 g64, T 1..8, tokens sharing experts */
        {1, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, false, false, false},
        {2, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, true, false, false},
        {3, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, false, false, false},
        {4, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, true, false, false},
        {5, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, false, false, false},
        {6, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, true, false, false},
        {7, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, false, false, false},
        {8, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, true, false, false},
        /* disjoint experts, and every token the same experts (8 slots per expert) */
        {8, 32, 4, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_DISJOINT, false, false, false},
        {3, 32, 4, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_DISJOINT, true, false, false},
        {8, 16, 4, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SAME, true, false, false},
        {5, 16, 2, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SAME, false, false, false},
        /* 8 and 4 bits at every group and scale dtype */
        {2, 8, 3, 128, 128, {8, 32}, {8, 128}, REF_F16, ROUTE_SHARED, false, false, false},
        {4, 8, 3, 256, 64, {8, 64}, {8, 32}, REF_F32, ROUTE_SHARED, true, false, false},
        {1, 8, 3, 128, 128, {4, 128}, {4, 32}, REF_F16, ROUTE_SHARED, true, false, false},
        {6, 8, 3, 256, 128, {4, 32}, {4, 128}, REF_F32, ROUTE_SHARED, false, false, false},
        {8, 8, 2, 128, 64, {8, 128}, {8, 64}, REF_BF16, ROUTE_SHARED, false, false, false},
        /* the general decoder inside the grouped kernels */
        {2, 8, 3, 128, 64, {3, 32}, {5, 64}, REF_BF16, ROUTE_SHARED, false, false, false},
        {5, 8, 3, 128, 128, {6, 64}, {2, 128}, REF_F16, ROUTE_SHARED, true, false, false},
        /* gate/up and down of different formats; rows past the end of a block */
        {4, 8, 3, 96, 45, {4, 32}, bf16, REF_BF16, ROUTE_SHARED, true, false, false},
        {3, 8, 3, 67, 64, bf16, {8, 32}, REF_BF16, ROUTE_SHARED, false, false, false},
        {6, 8, 3, 128, 128, {4, 128}, {8, 64}, REF_BF16, ROUTE_SHARED, true, false, false},
        /* a whole warp of chunks per row at T = 8 */
        {8, 4, 2, 1024, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, false, false, false},
        /* the mixed bank; T beyond 8 */
        {2, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, false, true, false},
        {7, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, true, true, false},
        {21, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, false, false, false},
        {21, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, true, true, false},
        /* every expert aligned; the tensor-core decode (cuda_quant_mmv.cu) on the GPU, T 1..8,
         * K of part of a step (H 160 at 8 bits, Im 96), 8 slots of one expert, disjoint experts */
        {1, 8, 3, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SHARED, true, false, true},
        {2, 8, 3, 256, 96, {4, 32}, {4, 32}, REF_F16, ROUTE_SHARED, false, false, true},
        {3, 32, 4, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_DISJOINT, true, false, true},
        {5, 8, 3, 160, 96, {8, 32}, {8, 32}, REF_F16, ROUTE_SHARED, false, false, true},
        {7, 8, 3, 256, 128, {4, 128}, {8, 64}, REF_F32, ROUTE_SHARED, true, false, true},
        {8, 16, 4, 128, 64, q4g64, q4g64, REF_BF16, ROUTE_SAME, true, false, true},
        {8, 8, 2, 1024, 128, {8, 64}, {4, 64}, REF_BF16, ROUTE_SHARED, false, false, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) affine_experts_case_run(c, g, &cases[i]);
}

/* ---- affine weights in prefill (T > 8) ------------------------------------------------------- */

/* One q4/q8/... bank of E experts bound from fresh random weights: gate/up [Im, H] of gate_bits /
 * up_bits, down [H, Im] of down_bits, one group size and scale dtype per projection. */
typedef struct prefill_experts_case {
    int32_t T, H, Im, used;     /* used: experts routed to (E = 16: the rest stay unused) */
    int gate_bits, up_bits, down_bits, group_gu, group_down;
    ref_dtype st;
    bool accumulate;
} prefill_experts_case;

static void check_affine_prefill_experts(ops_ctx *c, ops_stats *st, const prefill_experts_case *pc) {
    enum { E = 16 };
    const int32_t K = 4, T = pc->T, H = pc->H, Im = pc->Im;
    char what[200];
    snprintf(what, sizeof what, "moe_experts T=%d E=%d (%d used) K=%d H=%d Im=%d gate q%d up q%d g%d, down q%d g%d, %s scales, %s",
             T, E, pc->used, K, H, Im, pc->gate_bits, pc->up_bits, pc->group_gu, pc->down_bits, pc->group_down,
             ref_dtype_name(pc->st), pc->accumulate ? "accumulate" : "overwrite");
    ref_matrix rg[E], ru[E], rd[E];
    gm_weight wg[E], wu[E], wd[E];
    bool bound = true;
    for (int32_t e = 0; e < E && bound; e++) {
        ops_host_matrix *hg = ops_affine_matrix_new(c, pc->gate_bits, pc->group_gu, pc->st, Im, H, 0.3, e % 3 == 0);
        ops_host_matrix *hu = ops_affine_matrix_new(c, pc->up_bits, pc->group_gu, pc->st, Im, H, 0.3, e % 3 == 1);
        ops_host_matrix *hd = ops_affine_matrix_new(c, pc->down_bits, pc->group_down, pc->st, H, Im, 0.3, e % 3 == 2);
        gm_weight *pg = ops_bind(c, hg, GM_BIND_MATRIX), *pu = ops_bind(c, hu, GM_BIND_MATRIX),
                  *pd = ops_bind(c, hd, GM_BIND_MATRIX);
        bound = pg && pu && pd;
        if (!bound) break;
        wg[e] = *pg, wu[e] = *pu, wd[e] = *pd;
        rg[e] = hg->ref, ru[e] = hu->ref, rd[e] = hd->ref;
    }
    /* Token t's first expert is t mod 3 (experts 0..2 get T/3 rows each: several 64-row tiles at
     * T = 200), the others distinct among 3..used-1. */
    int32_t *idx = malloc((size_t)T * K * 4);
    float *rw = malloc((size_t)T * K * 4);
    bool hit[E] = {false};
    for (int32_t t = 0; t < T; t++)
        for (int32_t j = 0; j < K; j++) {
            const int32_t e = j == 0 ? t % 3 : 3 + (t * 5 + 3 * j) % (pc->used - 3);
            idx[t * K + j] = e;
            hit[e] = true;
            rw[t * K + j] = (float)ops_rand_uniform(c, 0.05, 2.5);
        }
    int n_hit = 0;
    for (int32_t e = 0; e < E; e++) n_hit += hit[e];
    CHECK(n_hit == pc->used, "%s: %d experts routed to, %d meant", what, n_hit, pc->used);
    float *x = ops_random_floats(c, (size_t)T * H, 0.01, 1.0);
    float *init = ops_random_floats(c, (size_t)T * H, 0.01, 2.0);
    float *out = malloc((size_t)T * H * 4);
    double *ref = malloc((size_t)T * H * sizeof *ref);
    float *dx = ops_upload_f(c, x, (size_t)T * H), *dw = ops_upload_f(c, rw, (size_t)T * K);
    int32_t *didx = ops_upload_i(c, idx, (size_t)T * K);
    float *dout = ops_upload_f(c, pc->accumulate ? init : NULL, (size_t)T * H);
    gm_experts bank = {.n = E, .gate = wg, .up = wu, .down = wd};
    if (bound && c->be->ops->prepare_experts)
        bound = op_ok(c, st, c->be->ops->prepare_experts(c->be, &bank, &c->err), "prepare_experts");
    bool ok = bound &&
              op_ok(c, st, c->be->ops->moe_experts(c->ex, dout, pc->accumulate, dx, didx, dw, K, &bank, T, &c->err), what) &&
              ops_download_f(c, out, dout, (size_t)T * H, what);
    if (c->be->ops->release_experts) c->be->ops->release_experts(c->be, &bank);
    if (ok) {
        for (int64_t i = 0; i < (int64_t)T * H; i++) ref[i] = pc->accumulate ? init[i] : 0.0;
        ref_moe_experts(ref, x, idx, rw, K, rg, ru, rd, T);
        ok = ops_affine_experts_ok(c, st, what, out, ref, x, idx, rw, K, E, rg, ru, rd, T, pc->accumulate ? init : NULL,
                               false);
    }
    CHECK(ok, "%s", what);
    free(idx);
    free(rw);
    free(x);
    free(init);
    free(out);
    free(ref);
    ops_release(c);
}

/* Prefill with affine weights (the GPU's tensor-core kernels, cuda_quant_mma.cu): the matmul at
 * T in {9, 16, 17, 64, 127, 128, 129, 300, 1000} over every bit width x group size (three T per
 * format, so each T meets six formats, with the scale dtypes in turn), N in {37, 64, 129, 200}
 * (not multiples of the 64/128 tiles), K of one group, of three (96 = 64 + 32 with groups of 32:
 * a half stage), and 384; bias on and off; codes at odd host addresses. On a backend with a bf16
 * prefill also 1100 x 2200 cases that fill a GPU with 128 x 128 tiles (q4, q8, q3). Then the
 * experts at T 9, 40, 200: all 16 hit or some unused, several tiles per expert, 4 and 8 bits (the
 * fast decoders), 3, 5, 6 and mixed widths (the generic one), accumulate on and off. Runs on an
 * execution state of its own, sized for these T. */
void check_affine_prefill(ops_ctx *c, op_groups *g) {
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    static const int32_t Ts[] = {9, 16, 17, 64, 127, 128, 129, 300, 1000};
    static const int64_t Ns[] = {37, 64, 129, 200};
    if (!takes_affine(c, 4, 64, REF_BF16)) return;
    const gm_exec_sizes z = {.n_batch = 1100, .n_ctx = 16, .hidden = 256, .max_in = 2200, .max_out = 2200,
                             .n_heads = 1, .head_dim = 16, .n_experts = 16, .top_k = 4, .expert_width = 128};
    gm_exec *saved = c->ex, *ex = NULL;
    if (c->be->ops->exec_create(c->be, &z, &ex, &c->err)) {
        CHECK(0, "[%s] exec_create for the prefill cases failed: %s", c->label, c->err.msg);
        return;
    }
    c->ex = ex;
    typedef struct { int bits, group; ref_dtype st; int32_t T; int64_t N, K; bool biased, unaligned; } dense_case;
    dense_case cases[64];
    int n = 0;
    for (int f = 0; f < 18; f++)
        for (int r = 0; r < 3; r++) {
            const int group = 32 << (f % 3);
            cases[n++] = (dense_case){.bits = bits[f / 3], .group = group, .st = dtype_of(f + r), .T = Ts[(f + 3 * r) % 9],
                                      .N = Ns[(f + r) % 4], .K = r == 0 ? 3 * group : r == 1 ? group : 384,
                                      .biased = (f + r) % 2 == 0, .unaligned = (f + r) % 4 == 1};
        }
    if (ops_tol_affine_prefill > 0) {
        cases[n++] = (dense_case){4, 64, REF_BF16, 1100, 2200, 192, true, false};
        cases[n++] = (dense_case){8, 128, REF_F16, 1100, 2200, 256, false, false};
        cases[n++] = (dense_case){3, 32, REF_F32, 1100, 2200, 96, true, false};
    }
    for (int i = 0; i < n; i++) {
        const dense_case *dc = &cases[i];
        const int32_t T = dc->T;
        /* T > 129 on the float32 backends (the CPU): their prefill path is the same as at T = 129,
         * and the float64 reference of the large cases costs seconds of CI time. */
        if (T > 129 && ops_tol_affine_prefill <= 0) continue;
        const int64_t N = dc->N, K = dc->K;
        char what[160];
        snprintf(what, sizeof what, "matmul T=%d N=%lld K=%lld q%d g%d %s scales%s%s", T, (long long)N, (long long)K,
                 dc->bits, dc->group, ref_dtype_name(dc->st), dc->unaligned ? " unaligned" : "",
                 dc->biased ? ", bias" : "");
        if (!takes_affine(c, dc->bits, dc->group, dc->st)) break;
        ops_host_matrix *hw = ops_affine_matrix_new(c, dc->bits, dc->group, dc->st, N, K, 1.0, dc->unaligned);
        gm_weight *W = ops_bind(c, hw, GM_BIND_MATRIX), *B = NULL;
        double *bias_ref = NULL;
        if (dc->biased) {
            ops_host_matrix *hb = ops_host_matrix_new(c, REF_F32, 1, N, 2.0, false);
            B = ops_bind(c, hb, GM_BIND_VECTOR_F32);
            bias_ref = ops_host_vector_values(hb);
        }
        float *x = ops_random_floats(c, (size_t)(T * K), 0.01, 1.0), *out = malloc((size_t)(T * N) * 4);
        double *ref = malloc((size_t)(T * N) * sizeof *ref);
        float *dx = ops_upload_f(c, x, (size_t)(T * K)), *dout = ops_upload_f(c, NULL, (size_t)(T * N));
        bool ok = W && (!dc->biased || B) &&
                  op_ok(c, &g->affine_prefill, c->be->ops->matmul(c->ex, dout, dx, W, B, T, &c->err), what) &&
                  ops_download_f(c, out, dout, (size_t)(T * N), what);
        if (ok) {
            ref_matmul(ref, x, &hw->ref, bias_ref, T);
            ok = ops_affine_matmul_ok(c, &g->affine_prefill, what, out, ref, x, &hw->ref, bias_ref, T, false);
        }
        CHECK(ok, "%s", what);
        free(x);
        free(out);
        free(ref);
        free(bias_ref);
        ops_release(c);
    }

    static const prefill_experts_case ecases[] = {
        /* T, H, Im, used, gate/up/down bits, groups gate-up/down, scales, accumulate */
        {9, 160, 96, 16, 4, 4, 4, 32, 32, REF_BF16, false},    /* H, Im not multiples of the tiles */
        {40, 192, 128, 10, 4, 4, 4, 64, 64, REF_BF16, true},   /* six experts unused */
        {200, 256, 128, 16, 8, 8, 8, 128, 128, REF_F16, true}, /* several tiles for experts 0..2 */
        {200, 160, 96, 10, 4, 4, 4, 32, 32, REF_F32, false},   /* 4 bits with float32 scales */
        {40, 96, 64, 10, 3, 3, 3, 32, 32, REF_F32, false},     /* the generic decoder */
        {9, 128, 64, 16, 6, 6, 5, 64, 32, REF_BF16, true},
        {40, 128, 64, 16, 4, 8, 2, 64, 32, REF_BF16, false},   /* gate and up of different widths */
    };
    for (size_t i = 0; i < sizeof ecases / sizeof ecases[0]; i++) {
        if (!takes_affine(c, ecases[i].gate_bits, ecases[i].group_gu, ecases[i].st)) break;
        if (ecases[i].T > 129 && ops_tol_affine_prefill <= 0) continue; /* as the matmul cases */
        check_affine_prefill_experts(c, &g->affine_prefill, &ecases[i]);
    }
    c->ex = saved;
    c->be->ops->exec_free(ex);
}
