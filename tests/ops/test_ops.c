/*
 * test_ops.c — every op of the backend interface (src/backend/backend.h) against the
 * double-precision reference of tests/ops/reference.c.
 *
 * ops_check_backend() takes any gm_backend and runs all checks through its vtable only: inputs
 * are uploaded with alloc + copy_in, outputs read back with copy_out, weights bound with
 * weight_bind from host buffers made here (bf16, f16 with subnormals, f32; some at odd addresses
 * so the backend must realign them). So a GPU backend is checked by the same code; main() runs
 * it on the CPU backend with all cores and with one thread.
 *
 * Each case draws fresh random inputs (never zero) from a splitmix64 stream; the seed is printed
 * and GLMOE_TEST_SEED overrides it. Outputs are poisoned with NaN before each op and followed by
 * a guard: an element never written shows up as NaN (NaN never passes), a write past the end as
 * a broken guard. The measure is ||out - ref|| / ||ref|| against a per-op tolerance for float32
 * arithmetic; on failure the op, its sizes, the first mismatching index and both values are
 * printed. At the end: one line per op group with the worst error, then the summary.
 *
 * Cases: matmul T in {1,2,7,8,9,33,100} (GEMV and sgemm paths) x 37x53 and 129x1000 x three
 * dtypes x four bias variants, plus 4229x1001 (several sgemm chunks on the CPU); embed (+ rejection of bad ids); add; swiglu (+ aliasing);
 * add_rmsnorm with and without delta, per head in place; rope at D 128/R 64 and D 20/R 10, at
 * positions 0..300 and ~1e5; attention decode at n_past {0,1,7,127,128,129,500} and prefill
 * T {1,5,127,128,129} at n_past 0 and > 0, GQA 1/2/12, D 16/128, with and without masks, the KV
 * cache filled by earlier calls (chunked prefill) with another layer written in between;
 * moe_route K 1/8 of 160 and K 8/64 of 1024, n_group 1 and 4/2 (8/4), norm on/off, scaling 1 and 2.5, a bias that
 * changes the selection; decode T 1..8 at E 128/129/160/256/77/300, groups, every router dtype,
 * exact ties (broken by index), the order of the picks (best first); moe_experts T 1/3/40/80, H/Im 67/45 and 136/64, E 16, K 4, every
 * expert hit, accumulate on/off: on the GPU every path of cuda_moe.cu (per-token GEMVs, scalar
 * and vectorised tiles, cuBLAS on the bf16-cache backend).
 * Affine (MLX-quantized) weights (check_affine.c, run from here): matmul at every bit width x
 * group x T 1..9 and 33, embed, and the experts at T 1..8 and 21 with shared, disjoint and identical routings, every
 * format and mixed banks: every path of cuda_quant.cu and of the grouped expert decode; prefill
 * T 9..1100 and experts T 9/40/200 (check_affine_prefill, own execution state; T > 129 on the
 * GPU only), checked on the GPU per element against Σ|terms| (TOL_AFFINE_TC: fp16 operands).
 * Attention at the lengths 1, 127, 128, 129 and 4097 (prefill from an empty cache and a decode
 * step after length - 1 keys, causal and with a random mask; 4097 with few heads on the CPU).
 * Calls of up to 16 queries (and odd prefills) also pass n_past in backend memory.
 * Decode with RoPE folded into the call (check_attention_decode): T 1..16 at n_past 0..3000, GQA
 * 1..16, D 16/64/128, masks, n_past from memory and from the host: on the GPU the single-launch
 * decode kernel unsplit and split, with one to three blocks of query rows; T = 1 at GQA 12 and 16
 * at contexts 1, 63, 64, 65, 127, 128, 129, 500 and 4097. Under GLMOE_CUDA_ATTN_WSPLIT=1 every
 * decode call of up to 16 rows per KV head (these, the lengths above and the recorded steps
 * below) runs the warp-split kernel instead (cuda_attention_wsplit.cu).
 * Backends with graph_* ops (the GPU): a decode step (RoPE + attention) recorded once and
 * replayed at 149 positions against the reference, and again with RoPE in the attention call at
 * 299 positions across the decode kernel's split threshold; refusals while recording.
 * Error paths: embed of ids outside the table (GLMOE_E_TOKEN, from embed or the next sync),
 * attention past the cache (GLMOE_E_CONTEXT).
 * The op-case table (opcases.c, the cases `glmoe bench` times) in correctness mode at a small
 * GLM-4.5-form layer (check_opcases): every op at T 1 and 40, attention at 40, decode at 7 and
 * 100, and the q4 g64 affine cases, on the table's own execution state.
 *
 * Adding a backend: create it in main() and call ops_check_backend() on it; nothing else here
 * is CPU-specific (the execution state is sized for every case, ops_sizes()).
 * Run: build/tests/ops/test_ops (or `make test`); about 5 s of CPU in Release, 30 s under ASan.
 */
#include "ops/checks.h"
#include "ops/harness.h"
#include "ops/opcases.h"
#include "ops/reference.h"
#define TEST_COUNTERS_DEFINE /* check_affine.c counts in them too */
#include "test.h"
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Tolerances on ||out - ref|| / ||ref||. float32 rounds at 6e-8; a K-term float32 dot product
 * drifts by ~sqrt(K) of those, so 1e-5 leaves a margin of >10x at K = 1000 while still catching
 * any real mistake (a wrong index or a dropped term moves the error to 1e-3 or more). */
#define TOL_EXACT 0.0       /* embed: a bf16/f16/f32 -> f32 conversion is exact */
/* The others (TOL_ADD, TOL_ELEMENTWISE, TOL_ATTENTION, TOL_ROUTE, ...) are in checks.h: the op
 * table of opcases.c checks at them too. */

/* ---- matmul -------------------------------------------------------------------------------- */

static void check_matmul(ops_ctx *c, op_groups *g) {
    static const int32_t Ts[] = {1, 2, 7, 8, 9, 33, 100};
    static const struct { int64_t N, K; } shapes[] = {{37, 53}, {129, 1000}, {4229, 1001}};
    static const char *bias_names[] = {"no bias", "absent bias (data NULL)", "f32 bias", "bf16 bias"};
    int n_case = 0;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int ti = 0; ti < 3; ti++)
            for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++, n_case++) {
                const int64_t N = shapes[si].N, K = shapes[si].K;
                const int32_t T = Ts[i];
                /* The 4.2M-weight matrix (more than one 16 MB conversion chunk of the CPU's sgemm
                 * path) once, in bf16. */
                if (N * K > 4000000 && (T != 9 || dtype_of(ti) != REF_BF16)) continue;
                const int bias_kind = n_case % 4;
                const bool unaligned = n_case % 3 == 1;
                char what[160];
                snprintf(what, sizeof what, "matmul T=%d N=%lld K=%lld %s%s, %s", T, (long long)N, (long long)K,
                         ref_dtype_name(dtype_of(ti)), unaligned ? " unaligned" : "", bias_names[bias_kind]);

                ops_host_matrix *hw = ops_host_matrix_new(c, dtype_of(ti), N, K, 1.0, unaligned);
                gm_weight *W = ops_bind(c, hw, GM_BIND_MATRIX), absent = {0}, *B = NULL;
                double *bias_ref = NULL;
                if (bias_kind == 1) B = &absent;
                if (bias_kind >= 2) {
                    ops_host_matrix *hb = ops_host_matrix_new(c, bias_kind == 2 ? REF_F32 : REF_BF16, 1, N, 2.0,
                                                              bias_kind == 3);
                    B = ops_bind(c, hb, GM_BIND_VECTOR_F32);
                    bias_ref = ops_host_vector_values(hb);
                }
                float *x = ops_random_floats(c, (size_t)T * K, 0.01, 1.0), *out = malloc((size_t)T * N * 4);
                double *ref = malloc((size_t)T * N * sizeof *ref);
                float *dx = ops_upload_f(c, x, (size_t)T * K), *dout = ops_upload_f(c, NULL, (size_t)T * N);
                bool ok = W && (bias_kind < 2 || B) &&
                          op_ok(c, &g->matmul, c->be->ops->matmul(c->ex, dout, dx, W, B, T, &c->err), what) &&
                          ops_download_f(c, out, dout, (size_t)T * N, what);
                if (ok) {
                    ref_matmul(ref, x, &hw->ref, bias_ref, T);
                    ok = ops_compare(c, &g->matmul, what, out, ref, (size_t)T * N, TOL_MATMUL);
                }
                CHECK(ok, "%s", what);
                free(x);
                free(out);
                free(ref);
                free(bias_ref);
                ops_release(c);
            }
}

/* ---- embed --------------------------------------------------------------------------------- */

static void check_embed(ops_ctx *c, op_groups *g) {
    const int64_t V = 517, H = 73;
    const int32_t T = 9;
    for (int ti = 0; ti < 3; ti++) {
        char what[96];
        snprintf(what, sizeof what, "embed T=%d V=%lld H=%lld %s%s", T, (long long)V, (long long)H,
                 ref_dtype_name(dtype_of(ti)), ti == 2 ? " unaligned" : "");
        ops_host_matrix *ht = ops_host_matrix_new(c, dtype_of(ti), V, H, 1.0, ti == 2);
        gm_weight *table = ops_bind(c, ht, GM_BIND_MATRIX);
        int32_t ids[9];
        for (int32_t t = 0; t < T; t++) ids[t] = ops_rand_int(c, 0, (int32_t)V - 1);
        ids[1] = 0;                /* both ends of the table */
        ids[5] = (int32_t)V - 1;
        ids[7] = ids[2];           /* a repeated id */
        float *out = malloc((size_t)T * H * 4);
        double *ref = malloc((size_t)T * H * sizeof *ref);
        int32_t *dids = ops_upload_i(c, ids, T);
        float *dout = ops_upload_f(c, NULL, (size_t)T * H);
        bool ok = table && op_ok(c, &g->embed, c->be->ops->embed(c->ex, dout, table, dids, T, &c->err), what) &&
                  ops_download_f(c, out, dout, (size_t)T * H, what);
        if (ok) {
            ref_embed(ref, &ht->ref, ids, T);
            ok = ops_compare(c, &g->embed, what, out, ref, (size_t)T * H, TOL_EXACT);
        }
        CHECK(ok, "%s", what);

        /* Ids outside [0, V) are refused with GLMOE_E_TOKEN and a message naming the id, by embed
         * itself or (a backend that checks on the device) by the next sync; after that the
         * backend works as before. */
        const int32_t bad[][3] = {{3, (int32_t)V, 4}, {-1, 0, 1}, {2, 1, INT32_MAX}};
        const int32_t bad_id[] = {(int32_t)V, -1, INT32_MAX};
        for (size_t b = 0; table && b < sizeof bad / sizeof bad[0]; b++) {
            int32_t *dbad = ops_upload_i(c, bad[b], 3);
            gm_err_clear(&c->err);
            glmoe_status s = c->be->ops->embed(c->ex, dout, table, dbad, 3, &c->err);
            if (s == GLMOE_OK) s = c->be->ops->sync(c->ex, &c->err);
            char id[16];
            snprintf(id, sizeof id, "%d", bad_id[b]);
            CHECK(s == GLMOE_E_TOKEN && strstr(c->err.msg, id), "[%s] embed of ids {%d, %d, %d} in a table of %lld "
                  "rows: status %d (want GLMOE_E_TOKEN), message \"%s\"", c->label, bad[b][0], bad[b][1], bad[b][2],
                  (long long)V, (int)s, c->err.msg);
            gm_err_clear(&c->err);
            CHECK(c->be->ops->sync(c->ex, &c->err) == GLMOE_OK, "[%s] sync after a refused embed: %s", c->label,
                  c->err.msg);
        }
        /* The good ids still work after the refusals. */
        if (table && ok) {
            bool again = op_ok(c, &g->embed, c->be->ops->embed(c->ex, dout, table, dids, T, &c->err), what) &&
                         ops_download_f(c, out, dout, (size_t)T * H, what) &&
                         ops_compare(c, &g->embed, what, out, ref, (size_t)T * H, TOL_EXACT);
            CHECK(again, "%s, after bad ids", what);
        }
        free(out);
        free(ref);
        ops_release(c);
    }
}

/* ---- add, swiglu --------------------------------------------------------------------------- */

static void check_add_swiglu(ops_ctx *c, op_groups *g) {
    static const int64_t sizes[] = {1001, 70001}; /* the second is above the CPU's threading cut */
    for (size_t i = 0; i < 2; i++) {
        const int64_t n = sizes[i];
        char what[96];
        float *a = ops_random_floats(c, (size_t)n, 0.01, 3.0), *b = ops_random_floats(c, (size_t)n, 0.01, 3.0);
        float *out = malloc((size_t)n * 4);
        double *ref = malloc((size_t)n * sizeof *ref);

        snprintf(what, sizeof what, "add n=%lld", (long long)n);
        float *dr = ops_upload_f(c, a, (size_t)n), *dd = ops_upload_f(c, b, (size_t)n);
        bool ok = op_ok(c, &g->add, c->be->ops->add(c->ex, dr, dd, n, &c->err), what) &&
                  ops_download_f(c, out, dr, (size_t)n, what);
        if (ok) {
            for (int64_t k = 0; k < n; k++) ref[k] = (double)a[k] + (double)b[k];
            ok = ops_compare(c, &g->add, what, out, ref, (size_t)n, TOL_ADD);
        }
        CHECK(ok, "%s", what);

        /* swiglu with gate in ±8 (both tails of silu), into a fresh buffer and in place. */
        ops_fill(c, a, (size_t)n, 0.01, 8.0);
        ref_swiglu(ref, a, b, n);
        for (int alias = 0; alias < 2; alias++) {
            snprintf(what, sizeof what, "swiglu n=%lld%s", (long long)n, alias ? " out=gate" : "");
            float *dg = ops_upload_f(c, a, (size_t)n), *du = ops_upload_f(c, b, (size_t)n);
            float *dout = alias ? dg : ops_upload_f(c, NULL, (size_t)n);
            ok = op_ok(c, &g->swiglu, c->be->ops->swiglu(c->ex, dout, dg, du, n, &c->err), what) &&
                 ops_download_f(c, out, dout, (size_t)n, what) &&
                 ops_compare(c, &g->swiglu, what, out, ref, (size_t)n, TOL_ELEMENTWISE);
            CHECK(ok, "%s", what);
        }
        free(a);
        free(b);
        free(out);
        free(ref);
        ops_release(c);
    }
}

/* ---- add_rmsnorm ---------------------------------------------------------------------------- */

static void check_rmsnorm(ops_ctx *c, op_groups *g) {
    static const struct {
        int64_t rows, cols;
        bool delta, in_place;
        ref_dtype wtype;
        bool unaligned;
        const char *use;
    } cases[] = {
        {7, 333, true, false, REF_BF16, true, "residual add + norm"},
        {1, 1000, false, false, REF_F32, false, "norm"},
        {70, 101, true, false, REF_F16, false, "residual add + norm, threaded"},
        {5 * 24, 128, false, true, REF_BF16, false, "q_norm per head (T=5, 24 heads), in place"},
        {5 * 2, 128, false, true, REF_F32, true, "k_norm per head (T=5, 2 heads), in place"},
    };
    const float eps = 1e-5f;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int64_t rows = cases[i].rows, cols = cases[i].cols, n = rows * cols;
        char what[160];
        snprintf(what, sizeof what, "add_rmsnorm rows=%lld cols=%lld %s weight, %s", (long long)rows,
                 (long long)cols, ref_dtype_name(cases[i].wtype), cases[i].use);
        ops_host_matrix *hw = ops_host_matrix_new(c, cases[i].wtype, 1, cols, 1.5, cases[i].unaligned);
        gm_weight *w = ops_bind(c, hw, GM_BIND_VECTOR_F32);
        double *wv = ops_host_vector_values(hw);
        float *resid = ops_random_floats(c, (size_t)n, 0.01, 3.0), *delta = ops_random_floats(c, (size_t)n, 0.01, 1.0);
        float *out = malloc((size_t)n * 4), *new_resid = malloc((size_t)n * 4);
        double *ref = malloc((size_t)n * sizeof *ref), *ref_resid = malloc((size_t)n * sizeof *ref_resid);
        float *dr = ops_upload_f(c, resid, (size_t)n);
        float *dd = cases[i].delta ? ops_upload_f(c, delta, (size_t)n) : NULL;
        float *dout = cases[i].in_place ? dr : ops_upload_f(c, NULL, (size_t)n);
        bool ok = w && op_ok(c, &g->rmsnorm, c->be->ops->add_rmsnorm(c->ex, dout, dr, dd, w, rows, cols, eps, &c->err),
                             what) &&
                  ops_download_f(c, out, dout, (size_t)n, what);
        if (ok) {
            ref_add_rmsnorm(ref, ref_resid, resid, cases[i].delta ? delta : NULL, wv, rows, cols, eps);
            ok = ops_compare(c, &g->rmsnorm, what, out, ref, (size_t)n, TOL_ELEMENTWISE);
            if (ok && cases[i].delta) { /* the residual now holds resid + delta */
                char what_r[200];
                snprintf(what_r, sizeof what_r, "%s (updated residual)", what);
                ok = ops_download_f(c, new_resid, dr, (size_t)n, what_r) &&
                     ops_compare(c, &g->rmsnorm, what_r, new_resid, ref_resid, (size_t)n, TOL_ADD);
            }
        }
        CHECK(ok, "%s", what);
        free(wv);
        free(resid);
        free(delta);
        free(out);
        free(new_resid);
        free(ref);
        free(ref_resid);
        ops_release(c);
    }
}

/* ---- rope ----------------------------------------------------------------------------------- */

static void check_rope(ops_ctx *c, op_groups *g) {
    static const struct {
        int32_t T, nh, D, R;
        float theta;
        int32_t first_pos; /* -1: random positions around 1e5 */
    } cases[] = {
        {301, 3, 128, 64, 1e6f, 0},  {17, 5, 20, 10, 1e4f, 0},   {9, 24, 128, 64, 1e6f, -1},
        {9, 2, 20, 10, 1e4f, -1},    {4, 2, 128, 64, 1e6f, 131000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int32_t T = cases[i].T, nh = cases[i].nh, D = cases[i].D, R = cases[i].R;
        const int64_t n = (int64_t)T * nh * D;
        int32_t *pos = malloc((size_t)T * sizeof *pos);
        for (int32_t t = 0; t < T; t++)
            pos[t] = cases[i].first_pos >= 0 ? cases[i].first_pos + t : ops_rand_int(c, 90000, 110000);
        if (cases[i].first_pos < 0) pos[T / 2] = 100000;
        char what[160];
        snprintf(what, sizeof what, "rope T=%d heads=%d D=%d R=%d theta=%g positions %d..%d%s", T, nh, D, R,
                 (double)cases[i].theta, pos[0], pos[T - 1], cases[i].first_pos < 0 ? " (random)" : "");
        float *x = ops_random_floats(c, (size_t)n, 0.01, 2.0), *out = malloc((size_t)n * 4);
        double *ref = malloc((size_t)n * sizeof *ref), *bound = malloc((size_t)n * sizeof *bound);
        float *dx = ops_upload_f(c, x, (size_t)n);
        int32_t *dpos = ops_upload_i(c, pos, (size_t)T);
        bool ok = op_ok(c, &g->rope, c->be->ops->rope(c->ex, dx, dpos, T, nh, D, R, cases[i].theta, &c->err), what) &&
                  ops_download_f(c, out, dx, (size_t)n, what);
        if (ok) {
            ref_rope(ref, bound, x, pos, T, nh, D, R, cases[i].theta);
            /* The tolerance: the norm of the per-element bounds (angle rounding), relative. */
            double bb = 0, rr = 0;
            for (int64_t e = 0; e < n; e++) {
                bb += bound[e] * bound[e];
                rr += ref[e] * ref[e];
            }
            double tol = fmax(TOL_ROPE_MIN, sqrt(bb / rr));
            ok = ops_compare_ex(c, &g->rope, what, out, ref, (size_t)n, tol, 0);
            /* And element by element: rotated dims within their bound, the others untouched. */
            for (int64_t e = 0; ok && e < n; e++)
                if (!(fabs((double)out[e] - ref[e]) <= bound[e] + 1e-7 * fabs(ref[e]))) {
                    fprintf(stderr, "[%s] FAIL %s: element [%lld] (token %lld, head %lld, dim %lld): got %.9g, "
                            "want %.9g, bound %.3g\n", c->label, what, (long long)e, (long long)(e / ((int64_t)nh * D)),
                            (long long)(e / D % nh), (long long)(e % D), out[e], ref[e], bound[e]);
                    ok = false;
                }
        }
        CHECK(ok, "%s", what);
        free(pos);
        free(x);
        free(out);
        free(ref);
        free(bound);
        ops_release(c);
    }
}

/* ---- attention ------------------------------------------------------------------------------- */

enum { MASK_NONE, MASK_RANDOM, MASK_ALL };

typedef struct attn_case {
    int32_t T, n_past, n_kv_heads, ratio, D;
    int mask;
    int32_t rope_dim; /* > 0: RoPE on that many dims folded into the call (rope_pos = n_past + t) */
    bool host_past;   /* n_past from the host only, never from backend memory */
} attn_case;

#define ATTN_ROPE_THETA 10000.0f

/* x [1, nh, D] at position pos after the reference's RoPE with `theta`, rounded to float. */
static float *rope_rows_ref_at(const float *x, int32_t pos, int32_t nh, int32_t D, int32_t R, float theta) {
    double *r = malloc((size_t)nh * D * sizeof *r);
    float *out = malloc((size_t)nh * D * sizeof *out);
    ref_rope(r, NULL, x, &pos, 1, nh, D, R, theta);
    for (int64_t i = 0; i < (int64_t)nh * D; i++) out[i] = (float)r[i];
    free(r);
    return out;
}

/* x [n, nh, D] at positions first, first + 1, ... after the reference's RoPE, rounded to float:
 * what the reference attention reads when the op folds the rotation in. */
static float *rope_rows_ref(const float *x, int32_t n, int32_t first, int32_t nh, int32_t D, int32_t R) {
    const int64_t e = (int64_t)n * nh * D;
    int32_t *pos = calloc((size_t)(n > 0 ? n : 1), sizeof *pos);
    double *r = malloc((size_t)(e > 0 ? e : 1) * sizeof *r);
    float *out = malloc((size_t)(e > 0 ? e : 1) * sizeof *out);
    for (int32_t t = 0; t < n; t++) pos[t] = first + t;
    ref_rope(r, NULL, x, pos, n, nh, D, R, ATTN_ROPE_THETA);
    for (int64_t i = 0; i < e; i++) out[i] = (float)r[i];
    free(pos);
    free(r);
    return out;
}

#define ATTN_CTX 640  /* cache length of every case up to that many positions */
#define ATTN_MAX_CTX 4160 /* the longest case's (4097, rounded up), for the execution state */
#define ATTN_LAYERS 2 /* the checked calls use layer 1; layer 0 is written in between */

/* A mask [T, n_past + T]: random finite values, ~15% -inf; in MASK_RANDOM with T > 1 one whole
 * row is hidden (returned in *hidden_row, else -1); in MASK_ALL every entry is -inf. */
static float *make_mask(ops_ctx *c, int kind, int32_t T, int32_t n_past, int32_t *hidden_row) {
    const int64_t n_keys = (int64_t)n_past + T;
    float *m = malloc((size_t)(T * n_keys) * sizeof *m);
    *hidden_row = kind == MASK_RANDOM && T > 1 ? ops_rand_int(c, 0, T - 1) : -1;
    for (int32_t t = 0; t < T; t++)
        for (int64_t j = 0; j < n_keys; j++) {
            bool hide = kind == MASK_ALL || t == *hidden_row || ops_rand_u64(c) % 100 < 15;
            m[t * n_keys + j] = hide ? -INFINITY : (float)ops_rand_uniform(c, -2.0, 2.0);
        }
    return m;
}

/* Calls with more query rows than this compare only their first and last ATTN_EDGE_ROWS rows
 * with the reference (a float64 reference of all 4097 rows would take minutes); every row is
 * still checked to be finite, so a row never written (NaN) fails. */
#define ATTN_FULL_ROWS 1024
#define ATTN_EDGE_ROWS 33

/* Compares rows [r0, r0 + R) of out (a call of T queries at p0) with the reference. */
static bool attention_rows_ok(ops_ctx *c, ops_stats *st, const char *what, const float *out, const float *q,
                              const float *k_all, const float *v_all, const float *mask, int32_t T, int32_t p0,
                              int32_t r0, int32_t R, int32_t nh, int32_t nkv, int32_t D, float scale) {
    const int64_t n_keys = (int64_t)p0 + T, sub_keys = (int64_t)p0 + r0 + R, qrow = (int64_t)nh * D;
    /* The reference reads mask rows of its own key count: re-stride the rows it needs. */
    float *sub_mask = NULL;
    if (mask) {
        sub_mask = malloc((size_t)(R * sub_keys) * sizeof *sub_mask);
        for (int32_t t = 0; t < R; t++)
            memcpy(sub_mask + (int64_t)t * sub_keys, mask + (int64_t)(r0 + t) * n_keys, (size_t)sub_keys * 4);
    }
    double *ref = malloc((size_t)(R * qrow) * sizeof *ref);
    ref_attention(ref, q + (int64_t)r0 * qrow, k_all, v_all, sub_mask, R, p0 + r0, nh, nkv, D, (double)scale);
    bool ok = ops_compare(c, st, what, out + (int64_t)r0 * qrow, ref, (size_t)(R * qrow), ops_tol_attention);
    free(ref);
    free(sub_mask);
    return ok;
}

/* One attention call on `layer` of kv for queries [p0, p0 + T), checked against the reference
 * over keys [0, p0 + T) of k_all/v_all (whose rows [p0, p0 + T) are this call's new keys). Calls
 * of up to 16 queries, and odd-sized prefills, pass n_past in backend memory as well
 * (gm_attn_params.n_past_mem, what a recorded decode step does). */
static bool attention_call(ops_ctx *c, ops_stats *st, gm_kv *kv, int32_t layer, const attn_case *cs, int32_t p0,
                           int32_t T, const float *k_all, const float *v_all, bool check, const char *role) {
    const int32_t nkv = cs->n_kv_heads, nh = nkv * cs->ratio, D = cs->D;
    const int64_t qn = (int64_t)T * nh * D, kn = (int64_t)T * nkv * D, n_keys = (int64_t)p0 + T;
    const bool past_mem = !cs->host_past && (T <= 16 || T % 2 == 1);
    char what[240], rope_what[40] = "";
    if (cs->rope_dim) snprintf(rope_what, sizeof rope_what, ", RoPE on %d dims in the call", cs->rope_dim);
    snprintf(what, sizeof what, "attention %s T=%d n_past=%d heads=%d kv_heads=%d D=%d%s%s%s", role, T, p0, nh, nkv, D,
             cs->mask == MASK_NONE ? "" : cs->mask == MASK_ALL ? ", all keys masked" : ", random mask",
             past_mem ? ", n_past in memory" : "", rope_what);
    float *q = ops_random_floats(c, (size_t)qn, 0.01, 4.0), *out = malloc((size_t)qn * 4);
    int32_t hidden_row = -1;
    float *mask = cs->mask != MASK_NONE ? make_mask(c, cs->mask, T, p0, &hidden_row) : NULL;
    gm_attn_params p = {.n_heads = nh, .n_kv_heads = nkv, .head_dim = D, .n_tokens = T, .n_past = p0,
                        .scale = 1.0f / sqrtf((float)D)};
    float *dq = ops_upload_f(c, q, (size_t)qn), *dout = ops_upload_f(c, NULL, (size_t)qn);
    const float *dk = ops_upload_f(c, k_all + (int64_t)p0 * nkv * D, (size_t)kn);
    const float *dv = ops_upload_f(c, v_all + (int64_t)p0 * nkv * D, (size_t)kn);
    p.mask = mask ? ops_upload_f(c, mask, (size_t)(T * n_keys)) : NULL;
    p.n_past_mem = past_mem ? ops_upload_i(c, &p0, 1) : NULL;
    if (cs->rope_dim) {
        int32_t *pos = malloc((size_t)T * sizeof *pos);
        for (int32_t t = 0; t < T; t++) pos[t] = p0 + t;
        p.rope_pos = ops_upload_i(c, pos, (size_t)T);
        p.rotary_dim = cs->rope_dim;
        p.rope_theta = ATTN_ROPE_THETA;
        free(pos);
    }
    bool ok = op_ok(c, st, c->be->ops->attention(c->ex, dout, dq, dk, dv, kv, layer, &p, &c->err), what);
    /* With RoPE in the call, the reference reads q and every key rotated at its position (the
     * cache holds rotated keys: the earlier calls of the case rotated theirs too). */
    float *q_rot = NULL, *k_rot = NULL;
    if (ok && check && cs->rope_dim) {
        q_rot = rope_rows_ref(q, T, p0, nh, D, cs->rope_dim);
        k_rot = rope_rows_ref(k_all, (int32_t)n_keys, 0, nkv, D, cs->rope_dim);
    }
    const float *q_ref = q_rot ? q_rot : q, *k_ref = k_rot ? k_rot : k_all;
    if (ok && check) {
        ok = ops_download_f(c, out, dout, (size_t)qn, what);
        if (ok && T <= ATTN_FULL_ROWS) {
            ok = attention_rows_ok(c, st, what, out, q_ref, k_ref, v_all, mask, T, p0, 0, T, nh, nkv, D, p.scale);
        } else if (ok) {
            int64_t bad = 0;
            for (int64_t e = 0; e < qn; e++) bad += !isfinite(out[e]);
            if (bad) fprintf(stderr, "[%s] FAIL %s: %lld elements are not finite\n", c->label, what, (long long)bad);
            ok = !bad &&
                 attention_rows_ok(c, st, what, out, q_ref, k_ref, v_all, mask, T, p0, 0, ATTN_EDGE_ROWS, nh, nkv, D,
                                   p.scale) &&
                 attention_rows_ok(c, st, what, out, q_ref, k_ref, v_all, mask, T, p0, T - ATTN_EDGE_ROWS, ATTN_EDGE_ROWS,
                                   nh, nkv, D, p.scale);
        }
        /* A query with every key hidden outputs exact zeros (as SDPA does). */
        for (int64_t e = 0; ok && hidden_row >= 0 && e < (int64_t)nh * D; e++)
            if (out[(int64_t)hidden_row * nh * D + e] != 0.0f) {
                fprintf(stderr, "[%s] FAIL %s: row %d has every key masked but element %lld is %.9g, not 0\n",
                        c->label, what, hidden_row, (long long)e, out[(int64_t)hidden_row * nh * D + e]);
                ok = false;
            }
        CHECK(ok, "%s", what);
    }
    free(q);
    free(q_rot);
    free(k_rot);
    free(out);
    free(mask);
    return ok;
}

/* Cases whose past is longer than this fill the cache in unchecked chunks of ATTN_LONG_CHUNK
 * (the final call reads every key the fill wrote, so the cache is still checked). */
#define ATTN_LONG_PAST 1024
#define ATTN_LONG_CHUNK 512

static void check_attention_case(ops_ctx *c, ops_stats *st, const attn_case *cs) {
    const int32_t nkv = cs->n_kv_heads, D = cs->D, n_total = cs->n_past + cs->T;
    const int64_t row = (int64_t)nkv * D;
    const int32_t n_ctx = n_total <= ATTN_CTX ? ATTN_CTX : (n_total + 63) / 64 * 64;
    gm_kv *kv = NULL;
    if (c->be->ops->kv_create(c->be, &kv, ATTN_LAYERS, n_ctx, nkv, D, &c->err)) {
        fprintf(stderr, "[%s] FAIL kv_create: %s\n", c->label, c->err.msg);
        ops_stats_fail(st);
        CHECK(0, "kv_create");
        return;
    }
    /* Keys and values of the whole sequence; each call uploads its own rows. */
    float *k_all = ops_random_floats(c, (size_t)(n_total * row), 0.01, 1.0);
    float *v_all = ops_random_floats(c, (size_t)(n_total * row), 0.01, 1.0);
    float *k_other = ops_random_floats(c, (size_t)(n_total * row), 0.01, 1.0);
    bool ok = true;
    /* The past goes into the cache of layer 1 through earlier calls (chunked prefill of up to 128
     * tokens), each checked too; so the final call also checks what the cache kept. The fill
     * uses one query head per KV head (the cache holds KV heads only), which keeps it cheap. */
    attn_case fill = *cs;
    fill.ratio = 1;
    const bool long_past = cs->n_past > ATTN_LONG_PAST;
    const int32_t chunk = long_past ? ATTN_LONG_CHUNK : 128;
    for (int32_t p0 = 0; ok && p0 < cs->n_past; p0 += chunk) {
        int32_t n = cs->n_past - p0 < chunk ? cs->n_past - p0 : chunk;
        ok = attention_call(c, st, kv, 1, &fill, p0, n, k_all, v_all, !long_past, "fill");
    }
    /* Layer 0 gets other keys at the first positions: layer 1 must not see them. (One query
     * head per KV head: only the cache write matters here.) */
    if (ok) {
        attn_case other = *cs;
        other.ratio = 1;
        other.mask = MASK_NONE;
        ok = attention_call(c, st, kv, 0, &other, 0, n_total < 16 ? n_total : 16, k_other, k_other, false,
                            "other layer");
    }
    if (ok) ok = attention_call(c, st, kv, 1, cs, cs->n_past, cs->T, k_all, v_all, true, cs->T == 1 ? "decode" : "prefill");
    if (!ok) CHECK(0, "attention case T=%d n_past=%d", cs->T, cs->n_past);
    ops_release(c); /* before the next chunk's buffers pile up */
    free(k_all);
    free(v_all);
    free(k_other);
    c->be->ops->kv_free(c->be, kv);
}

/* The lengths the CUDA issue names, each as a prefill from an empty cache and as a decode step
 * after length - 1 keys, causal and with an explicit mask. On the CPU these use few heads (4 of
 * 64 dims, and 2 of 16 at 4097: its kernels do not depend on the head count, and the float64
 * reference under the sanitizers makes more slow); on other backends GQA 12 with 128 dims. */
static void check_attention_lengths(ops_ctx *c, op_groups *g) {
    static const int32_t lengths[] = {1, 127, 128, 129, 4097};
    const bool cpu = !strcmp(c->be->ops->name, "cpu");
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        const int32_t L = lengths[i];
        const bool big = L > ATTN_LONG_PAST;
        const int32_t nkv = big || cpu ? 1 : 2, ratio = !cpu ? 12 : big ? 2 : 4, D = !cpu ? 128 : big ? 16 : 64;
        for (int decode = 0; decode < 2; decode++) {
            if (decode && L == 1) continue; /* the prefill of one token is that decode step */
            for (int masked = 0; masked < 2; masked++) {
                attn_case cs = {decode ? 1 : L, decode ? L - 1 : 0, nkv, ratio, D, masked ? MASK_RANDOM : MASK_NONE, 0, false};
                check_attention_case(c, &g->attn_lengths, &cs);
            }
        }
    }
}

/* Decode steps of 1..16 queries with RoPE folded into the call, as forward() makes them: on the
 * GPU's bf16 cache with 128-dim heads, the single-launch decode kernel (rotation, cache store,
 * attention and split merge), unsplit at short contexts and split (the last split merging) at
 * longer ones, with 1 or 2 blocks of query rows per KV head (T x GQA up to 192 rows); n_past
 * from memory (one launch sized for the whole cache) and from the host; the float32 kernel on
 * the other cache and head sizes. Each case fills the cache through earlier calls with RoPE too. */
static void check_attention_decode(ops_ctx *c, op_groups *g) {
    static const attn_case cases[] = {
        {1, 0, 2, 12, 128, MASK_NONE, 64, false},    {1, 127, 2, 12, 128, MASK_NONE, 64, false},
        {1, 128, 2, 12, 128, MASK_NONE, 64, true},   {2, 200, 2, 12, 128, MASK_RANDOM, 64, false},
        {3, 253, 1, 2, 128, MASK_NONE, 64, false},   {1, 255, 2, 12, 128, MASK_NONE, 64, false},
        {1, 256, 2, 12, 128, MASK_NONE, 64, true},   {5, 300, 1, 1, 128, MASK_NONE, 128, false},
        {8, 511, 2, 12, 128, MASK_RANDOM, 64, false}, {8, 600, 1, 12, 128, MASK_NONE, 64, true},
        {16, 400, 1, 12, 128, MASK_NONE, 64, false}, {7, 1500, 1, 12, 128, MASK_NONE, 64, false},
        {1, 3000, 2, 6, 128, MASK_NONE, 64, true},   {4, 300, 2, 3, 64, MASK_RANDOM, 32, false},
        {1, 500, 1, 12, 16, MASK_NONE, 10, false},   {9, 129, 2, 2, 128, MASK_ALL, 64, false},
        {2, 300, 2, 8, 128, MASK_RANDOM, 64, false}, {16, 100, 1, 1, 128, MASK_NONE, 64, false},
        {1, 700, 2, 16, 128, MASK_ALL, 64, false},
    };
    const bool cpu = !strcmp(c->be->ops->name, "cpu");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        attn_case cs = cases[i];
        if (cpu && cs.n_past > 600) cs.n_past = 600; /* the float64 reference under the sanitizers */
        check_attention_case(c, &g->attn_decode, &cs);
    }
    /* GLM-4.5's decode step (T = 1, 12 query heads per KV head) and a full 16-row tile (ratio 16),
     * at contexts around the tile edges, the split threshold (CUDA_ATTN_TC_SPLIT_MIN_KEYS) and
     * long: the rows the warp-split variant takes (GLMOE_CUDA_ATTN_WSPLIT=1), and the default
     * kernel's 12 or 16 valid rows of 64 otherwise. Ratio 16 with a random mask; one context
     * with n_past from the host only. */
    static const int32_t contexts[] = {1, 63, 64, 65, 127, 128, 129, 500, 4097};
    for (int ratio = 12; ratio <= 16; ratio += 4)
        for (size_t i = 0; i < sizeof contexts / sizeof contexts[0]; i++) {
            const int32_t ctx = contexts[i];
            if (cpu && ctx > 600) continue; /* the float64 reference under the sanitizers */
            attn_case cs = {1, ctx - 1, 2, ratio, 128, ratio == 16 ? MASK_RANDOM : MASK_NONE, 64, ctx == 65};
            check_attention_case(c, &g->attn_decode, &cs);
        }
}

static void check_attention(ops_ctx *c, op_groups *g) {
    static const attn_case cases[] = {
        /* decode: T = 1 at every n_past bucket edge */
        {1, 0, 2, 12, 128, MASK_NONE, 0, false},     {1, 1, 1, 2, 16, MASK_RANDOM, 0, false},
        {1, 7, 2, 2, 16, MASK_ALL, 0, false},        {1, 127, 4, 1, 16, MASK_NONE, 0, false},
        {1, 128, 1, 12, 128, MASK_RANDOM, 0, false}, {1, 129, 1, 2, 128, MASK_NONE, 0, false},
        {1, 500, 1, 12, 16, MASK_RANDOM, 0, false},  {1, 500, 1, 1, 128, MASK_NONE, 0, false},
        /* prefill from an empty cache and after a past */
        {1, 0, 4, 2, 16, MASK_RANDOM, 0, false},     {5, 0, 2, 12, 128, MASK_RANDOM, 0, false},
        {127, 0, 4, 1, 16, MASK_NONE, 0, false},     {128, 0, 2, 2, 16, MASK_RANDOM, 0, false},
        {129, 0, 1, 12, 128, MASK_NONE, 0, false},   {5, 37, 1, 2, 128, MASK_RANDOM, 0, false},
        {127, 129, 2, 12, 16, MASK_NONE, 0, false},  {128, 1, 4, 2, 128, MASK_RANDOM, 0, false},
        {129, 129, 2, 1, 16, MASK_RANDOM, 0, false}, {129, 200, 1, 2, 128, MASK_NONE, 0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_attention_case(c, &g->attention, &cases[i]);
    check_attention_lengths(c, g);
    check_attention_decode(c, g);

    /* Beyond the cache: refused with GLMOE_E_CONTEXT. */
    gm_kv *kv = NULL;
    if (c->be->ops->kv_create(c->be, &kv, 1, 16, 1, 16, &c->err) == GLMOE_OK) {
        float *q = ops_random_floats(c, 4 * 2 * 16, 0.01, 1.0);
        float *dq = ops_upload_f(c, q, 4 * 2 * 16), *dk = ops_upload_f(c, q, 4 * 16), *dout = ops_upload_f(c, NULL, 4 * 2 * 16);
        gm_attn_params p = {.n_heads = 2, .n_kv_heads = 1, .head_dim = 16, .n_tokens = 4, .n_past = 13, .scale = 0.25f};
        glmoe_status s = c->be->ops->attention(c->ex, dout, dq, dk, dk, kv, 0, &p, &c->err);
        CHECK(s == GLMOE_E_CONTEXT, "[%s] attention at positions 13..16 of a 16-position cache: status %d, want "
              "GLMOE_E_CONTEXT", c->label, (int)s);
        free(q);
        ops_release(c);
        c->be->ops->kv_free(c->be, kv);
    }
}

/* ---- moe_route ------------------------------------------------------------------------------ */

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* True if the K indices at a and b are the same set (sorted copies compared). */
static bool same_set(const int32_t *a, const int32_t *b, int32_t K) {
    int32_t sa[64], sb[64];
    memcpy(sa, a, (size_t)K * 4);
    memcpy(sb, b, (size_t)K * 4);
    qsort(sa, (size_t)K, 4, cmp_i32);
    qsort(sb, (size_t)K, 4, cmp_i32);
    return memcmp(sa, sb, (size_t)K * 4) == 0;
}

/* One routing case. tied: only every 16th router row is random, the others are zero, so that
 * most experts score exactly sigmoid(0) = 0.5 (exact in float32 on every backend and in the
 * reference) and the K-th pick falls among equal scores: the lower index must win. */
typedef struct route_case {
    int32_t T, E, K, H, n_group, topk_group;
    bool norm, tied, unaligned;
    double scale;
    ref_dtype rtype;
    int bias_kind;      /* 0 none, 1 absent (data NULL), 2 present */
    bool bias_must_move; /* check that the bias changes some token's selection */
} route_case;

static void route_check_case(ops_ctx *c, op_groups *g, const route_case *rc) {
    const int32_t T = rc->T, E = rc->E, K = rc->K, H = rc->H;
    ref_route_params rp = {.n_experts = E, .top_k = K, .n_group = rc->n_group, .topk_group = rc->topk_group,
                           .norm_topk_prob = rc->norm, .routed_scaling_factor = rc->scale};
    const int bias_kind = rc->bias_kind;
    char what[240];
    snprintf(what, sizeof what, "moe_route T=%d E=%d K=%d H=%d n_group=%d topk_group=%d norm=%d scale=%g %s router%s%s%s",
             T, E, K, H, rp.n_group, rp.topk_group, (int)rp.norm_topk_prob, rp.routed_scaling_factor,
             ref_dtype_name(rc->rtype), rc->unaligned ? " (unaligned)" : "",
             bias_kind == 2 ? ", bias" : bias_kind == 1 ? ", absent bias" : "", rc->tied ? ", tied scores" : "");

    /* Logits ~ N(0, (0.45 * sqrt(H / 3))²) against inputs ±1: N(0, 1.5²) at H = 97. */
    ops_host_matrix *hr = ops_host_matrix_new(c, rc->rtype, E, H, 0.45 * sqrt(97.0 / H), rc->unaligned);
    if (rc->tied) {
        const size_t row = (size_t)H * (rc->rtype == REF_F32 ? 4 : 2);
        for (int32_t e = 0; e < E; e++)
            if (e % 16) memset((unsigned char *)hr->ref.data + (size_t)e * row, 0, row);
    }
    gm_weight *router = ops_bind(c, hr, GM_BIND_MATRIX), absent = {0}, *bias = NULL;
    double *bias_ref = NULL;
    if (bias_kind == 1) bias = &absent;
    if (bias_kind == 2) {
        /* As large as the spread of the sigmoid scores, so it moves the selection
         * (checked below), and often negative, so that s + b < 0 occurs. */
        float bv[1024];
        for (int32_t e = 0; e < E; e++) bv[e] = (float)ops_rand_uniform(c, -0.8, 0.5);
        ops_host_matrix *hb = host_vector_f32(c, bv, E, rc->unaligned);
        bias = ops_bind(c, hb, GM_BIND_VECTOR_F32);
        bias_ref = ops_host_vector_values(hb);
    }
    float *x = ops_random_floats(c, (size_t)T * H, 0.01, 1.0);
    float *dx = ops_upload_f(c, x, (size_t)T * H), *dw = ops_upload_f(c, NULL, (size_t)T * K);
    int32_t *didx = ops_upload_i(c, NULL, (size_t)T * K);
    int32_t *idx = malloc((size_t)T * K * 4), *ref_idx = malloc((size_t)T * K * 4);
    int32_t *plain_idx = malloc((size_t)T * K * 4);
    float *w = malloc((size_t)T * K * 4), *w_matched = malloc((size_t)T * K * 4);
    double *ref_w = malloc((size_t)T * K * sizeof *ref_w), *margin = malloc((size_t)T * sizeof *margin);
    gm_route_params bp = {.n_experts = E, .top_k = K, .n_group = rp.n_group, .topk_group = rp.topk_group,
                          .norm_topk_prob = rp.norm_topk_prob, .routed_scaling_factor = (float)rp.routed_scaling_factor};
    bool ok = router && (bias_kind < 2 || bias) &&
              op_ok(c, &g->route, c->be->ops->moe_route(c->ex, didx, dw, dx, router, bias, &bp, T, &c->err), what) &&
              ops_download_i(c, idx, didx, (size_t)T * K, what) && ops_download_f(c, w, dw, (size_t)T * K, what);
    if (ok) {
        ref_moe_route(ref_idx, ref_w, margin, x, &hr->ref, bias_ref, &rp, T);
        int ties = 0;
        for (int32_t t = 0; t < T && ok; t++) {
            const int32_t *ti = idx + (int64_t)t * K, *ri = ref_idx + (int64_t)t * K;
            const float *tw = w + (int64_t)t * K;
            for (int32_t j = 0; j < K && ok; j++) /* written, in range, distinct */
                for (int32_t m = 0; m <= j && ok; m++)
                    if (ti[j] < 0 || ti[j] >= E || (m < j && ti[m] == ti[j])) {
                        fprintf(stderr, "[%s] FAIL %s: token %d slot %d has expert %d (slot %d: %d)\n", c->label,
                                what, t, j, ti[j], m, ti[m]);
                        ok = false;
                        ops_stats_fail(&g->route);
                    }
            /* Best first: without a bias the selection score is s itself, so the weights (s
             * times a positive factor) never rise along the row, and equal scores come in
             * index order (checked where the weight is s exactly). */
            for (int32_t j = 1; j < K && ok && bias_kind < 2; j++) {
                const bool exact = !rp.norm_topk_prob && rp.routed_scaling_factor == 1.0;
                if (tw[j] > tw[j - 1] || (exact && tw[j] == tw[j - 1] && ti[j] < ti[j - 1])) {
                    fprintf(stderr, "[%s] FAIL %s: token %d: slot %d (expert %d, weight %.9g) should come before "
                            "slot %d (expert %d, weight %.9g)\n", c->label, what, t, j, ti[j], tw[j], j - 1,
                            ti[j - 1], tw[j - 1]);
                    ok = false;
                    ops_stats_fail(&g->route);
                }
            }
            if (!ok) break;
            if (margin[t] < ROUTE_TIE) { /* a near tie: either choice is right */
                ties++;
                for (int32_t j = 0; j < K; j++) w_matched[t * K + j] = (float)ref_w[t * K + j];
                continue;
            }
            if (!same_set(ti, ri, K)) {
                fprintf(stderr, "[%s] FAIL %s: token %d chose experts {", c->label, what, t);
                for (int32_t j = 0; j < K; j++) fprintf(stderr, "%s%d", j ? ", " : "", ti[j]);
                fprintf(stderr, "}, want {");
                for (int32_t j = 0; j < K; j++) fprintf(stderr, "%s%d", j ? ", " : "", ri[j]);
                fprintf(stderr, "}\n");
                ok = false;
                ops_stats_fail(&g->route);
                break;
            }
            /* Weights in the reference's order, found by expert id. */
            for (int32_t j = 0; j < K; j++)
                for (int32_t m = 0; m < K; m++)
                    if (ti[m] == ri[j]) w_matched[t * K + j] = w[t * K + m];
        }
        if (ties) printf("  note: %s: %d near-tied token(s) skipped\n", what, ties);
        if (ok && rc->tied) CHECK(ties < T, "%s: every token near-tied: the exact ties went unchecked", what);
        if (ok) ok = ops_compare(c, &g->route, what, w_matched, ref_w, (size_t)T * K, TOL_ROUTE);
        /* With the shared expert folded into the bank: the same choices and weights,
         * then expert E with weight exactly 1 in slot K of each token's row. */
        if (ok) {
            const size_t n1 = (size_t)T * (K + 1);
            float *dw1 = ops_upload_f(c, NULL, n1), *w1 = malloc(n1 * 4);
            int32_t *didx1 = ops_upload_i(c, NULL, n1), *idx1 = malloc(n1 * 4);
            gm_route_params sp = bp;
            sp.shared_expert = true;
            ok = op_ok(c, &g->route, c->be->ops->moe_route(c->ex, didx1, dw1, dx, router, bias, &sp, T, &c->err), what) &&
                 ops_download_i(c, idx1, didx1, n1, what) && ops_download_f(c, w1, dw1, n1, what);
            for (int32_t t = 0; t < T && ok; t++) {
                const int32_t *a = idx1 + (size_t)t * (K + 1);
                const float *aw = w1 + (size_t)t * (K + 1);
                ok = !memcmp(a, idx + (size_t)t * K, (size_t)K * 4) && !memcmp(aw, w + (size_t)t * K, (size_t)K * 4) &&
                     a[K] == E && aw[K] == 1.0f;
                if (!ok) {
                    fprintf(stderr, "[%s] FAIL %s, shared expert appended: token %d's row differs (slot %d: "
                            "expert %d, weight %g)\n", c->label, what, t, K, a[K], aw[K]);
                    ops_stats_fail(&g->route);
                }
            }
            free(w1);
            free(idx1);
        }
        /* The bias must matter here, or the test would not see it ignored. */
        if (ok && bias_ref && rc->bias_must_move) {
            ref_moe_route(plain_idx, ref_w, NULL, x, &hr->ref, NULL, &rp, T);
            int moved = 0;
            for (int32_t t = 0; t < T; t++) moved += !same_set(plain_idx + (int64_t)t * K, ref_idx + (int64_t)t * K, K);
            CHECK(moved > 0, "%s: the bias changes no token's selection: a weak case", what);
        }
    }
    CHECK(ok, "%s", what);
    free(bias_ref);
    free(x);
    free(idx);
    free(ref_idx);
    free(plain_idx);
    free(w);
    free(w_matched);
    free(ref_w);
    free(margin);
    ops_release(c);
}

static void check_route(ops_ctx *c, op_groups *g) {
    int n_case = 0;
    /* GLM-4.5's 160 experts (top-1 and top-8, 4 groups keeping 2), then the most the config
     * allows (1024 experts, top-64, 8 groups keeping 4): the selection is a heap of K. H = 97:
     * on the GPU, a matmul and then the routing launch. */
    for (int big = 0; big < 2; big++)
    for (int ki = 0; ki < 2; ki++)
        for (int gi = 0; gi < 2; gi++)
            for (int ni = 0; ni < 2; ni++, n_case++) {
                if (big && ni) continue; /* the large sizes once per K and grouping */
                const int32_t T = n_case % 3 == 0 ? 1 : 33;
                route_case rc = {.T = T, .E = big ? 1024 : 160, .K = big ? (ki ? 64 : 8) : (ki ? 8 : 1), .H = 97,
                                 .n_group = gi ? (big ? 8 : 4) : 1, .topk_group = gi ? (big ? 4 : 2) : 1,
                                 .norm = ni, .scale = n_case / 2 % 2 ? 2.5 : 1.0,
                                 .rtype = n_case % 2 ? REF_BF16 : REF_F32,
                                 .bias_kind = n_case == 3 ? 0 : n_case == 6 ? 1 : 2,
                                 .unaligned = n_case % 4 == 1, .bias_must_move = T > 1};
                route_check_case(c, g, &rc);
            }
    /* Decode, T = 1..8, as GLM-4.5-Air (128 experts + the shared one, top-8) and GLM-4.5 (160)
     * route it, and 256 experts in 8 groups keeping 4 (DeepSeek-V3's shape): on the GPU the
     * one-launch router (H a multiple of 8; H = 3072 has whole and partial batches of row
     * chunks per lane, H = 520 only a partial one), each router dtype, groups, exact ties
     * (tied), and an odd expert count; H = 100 (not a multiple of 8) and 300 experts take the
     * matmul and the routing launch. */
    static const struct {
        int32_t E, K, H, n_group, topk_group;
        bool tied;
    } dec[] = {{128, 8, 3072, 1, 1, false}, {160, 8, 520, 1, 1, false}, {160, 8, 520, 8, 4, false},
               {128, 8, 520, 1, 1, true},   {160, 8, 520, 4, 2, true},  {256, 8, 520, 8, 4, false},
               {77, 3, 520, 1, 1, false},   {129, 8, 520, 1, 1, true},  {128, 1, 520, 1, 1, true},
               {128, 8, 100, 1, 1, false},  {300, 8, 520, 1, 1, false}};
    for (size_t i = 0; i < sizeof dec / sizeof dec[0]; i++)
        for (int32_t T = 1; T <= 8; T++, n_case++) {
            if (dec[i].H == 3072 && T != 1 && T != 5 && T != 8) continue; /* large: a few T */
            if ((dec[i].H == 100 || dec[i].E == 300) && T != 1 && T != 8) continue;
            route_case rc = {.T = T, .E = dec[i].E, .K = dec[i].K, .H = dec[i].H, .n_group = dec[i].n_group,
                             .topk_group = dec[i].topk_group, .norm = T % 2 == 0, .tied = dec[i].tied,
                             .scale = T % 4 == 3 ? 2.5 : 1.0, .rtype = T % 3 == 0 ? REF_F32 : T % 3 == 1 ? REF_BF16 : REF_F16,
                             /* ties need equal selection scores: no bias there */
                             .bias_kind = dec[i].tied ? (T % 2 ? 0 : 1) : T % 4 == 1 ? 0 : 2,
                             .unaligned = T == 3};
            route_check_case(c, g, &rc);
        }
}

/* ---- moe_experts ----------------------------------------------------------------------------- */

static void check_experts(ops_ctx *c, op_groups *g) {
    static const struct {
        int32_t T;
        bool accumulate, mixed;
        int32_t H, Im;
    } cases[] = {/* the GPU's paths: T <= 8 per-token GEMVs; T = 40 unaligned or mixed: scalar tiles */
                 {1, false, false, 67, 45}, {40, true, true, 67, 45}, {40, false, false, 67, 45}, {1, true, true, 67, 45},
                 {3, false, false, 136, 64},
                 /* bf16 rows 16-byte aligned: vectorised tiles */
                 {40, true, false, 136, 64},
                 /* T = 80: vectorised tiles (aligned) or scalar tiles, or cuBLAS where switched on at 64 */
                 {80, true, false, 67, 45}, {80, false, false, 136, 64}};
    const int32_t E = 16, K = 4;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int32_t T = cases[i].T, H = cases[i].H, Im = cases[i].Im;
        char what[160];
        snprintf(what, sizeof what, "moe_experts T=%d E=%d K=%d H=%d Im=%d %s, %s", T, E, K, H, Im,
                 cases[i].mixed ? "mixed dtypes" : "bf16", cases[i].accumulate ? "accumulate" : "overwrite");
        ref_matrix rg[16], ru[16], rd[16];
        gm_weight wg[16], wu[16], wd[16];
        bool bound = true;
        for (int32_t e = 0; e < E; e++) {
            /* Mixed: every expert and projection its own dtype, every third at an odd address. */
            ref_dtype tg = cases[i].mixed ? dtype_of(e) : REF_BF16, tu = cases[i].mixed ? dtype_of(e + 1) : REF_BF16,
                      td = cases[i].mixed ? dtype_of(e + 2) : REF_BF16;
            ops_host_matrix *hg = ops_host_matrix_new(c, tg, Im, H, 0.3, e % 3 == 0);
            ops_host_matrix *hu = ops_host_matrix_new(c, tu, Im, H, 0.3, e % 3 == 1);
            ops_host_matrix *hd = ops_host_matrix_new(c, td, H, Im, 0.3, e % 3 == 2);
            gm_weight *pg = ops_bind(c, hg, GM_BIND_MATRIX), *pu = ops_bind(c, hu, GM_BIND_MATRIX),
                      *pd = ops_bind(c, hd, GM_BIND_MATRIX);
            if (!pg || !pu || !pd) {
                bound = false;
                break;
            }
            wg[e] = *pg, wu[e] = *pu, wd[e] = *pd;
            rg[e] = hg->ref, ru[e] = hu->ref, rd[e] = hd->ref;
        }
        /* Routing: distinct experts per token, token t's first one t mod E, so T >= E hits all. */
        int32_t *idx = malloc((size_t)T * K * 4);
        float *rw = malloc((size_t)T * K * 4);
        bool hit[16] = {false};
        for (int32_t t = 0; t < T; t++)
            for (int32_t j = 0; j < K; j++) {
                int32_t e = j == 0 ? t % E : ops_rand_int(c, 0, E - 1);
                for (int32_t m = 0; m < j; m++)
                    if (idx[t * K + m] == e) e = (e + 1) % E, m = -1; /* retry until distinct */
                idx[t * K + j] = e;
                hit[e] = true;
                rw[t * K + j] = (float)ops_rand_uniform(c, 0.05, 2.5);
            }
        int n_hit = 0;
        for (int32_t e = 0; e < E; e++) n_hit += hit[e];
        if (T >= E) CHECK(n_hit == E, "%s: only %d of %d experts routed to", what, n_hit, E);

        float *x = ops_random_floats(c, (size_t)T * H, 0.01, 1.0);
        float *init = ops_random_floats(c, (size_t)T * H, 0.01, 2.0); /* the shared expert's output */
        float *out = malloc((size_t)T * H * 4);
        double *ref = malloc((size_t)T * H * sizeof *ref);
        float *dx = ops_upload_f(c, x, (size_t)T * H), *dw = ops_upload_f(c, rw, (size_t)T * K);
        int32_t *didx = ops_upload_i(c, idx, (size_t)T * K);
        float *dout = ops_upload_f(c, cases[i].accumulate ? init : NULL, (size_t)T * H);
        gm_experts bank = {.n = E, .gate = wg, .up = wu, .down = wd};
        if (bound && c->be->ops->prepare_experts)
            bound = op_ok(c, &g->experts, c->be->ops->prepare_experts(c->be, &bank, &c->err), "prepare_experts");
        bool ok = bound &&
                  op_ok(c, &g->experts,
                        c->be->ops->moe_experts(c->ex, dout, cases[i].accumulate, dx, didx, dw, K, &bank, T, &c->err),
                        what) &&
                  ops_download_f(c, out, dout, (size_t)T * H, what);
        if (c->be->ops->release_experts) c->be->ops->release_experts(c->be, &bank);
        if (ok) {
            for (int64_t e = 0; e < (int64_t)T * H; e++) ref[e] = cases[i].accumulate ? init[e] : 0.0;
            ref_moe_experts(ref, x, idx, rw, K, rg, ru, rd, T);
            ok = ops_compare(c, &g->experts, what, out, ref, (size_t)T * H, TOL_EXPERTS);
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
}

/* ---- recorded steps (graph_*) ------------------------------------------------------------------ */

/* The ops a decode step runs on its changing inputs, with n_past read from dpos: RoPE of q and k
 * at the position in dpos by two rope calls then attention, or (fused) attention with the
 * rotation folded in (rope_pos = dpos), as forward() does. */
static glmoe_status graph_step_ops(ops_ctx *c, float *dout, float *dq, float *dk, float *dv, const int32_t *dpos,
                                   gm_kv *kv, int32_t n_past, int32_t nh, int32_t nkv, int32_t D, int32_t R,
                                   float theta, bool fused) {
    const gm_backend_ops *op = c->be->ops;
    glmoe_status s = GLMOE_OK;
    if (!fused) {
        s = op->rope(c->ex, dq, dpos, 1, nh, D, R, theta, &c->err);
        if (!s) s = op->rope(c->ex, dk, dpos, 1, nkv, D, R, theta, &c->err);
    }
    gm_attn_params p = {.n_heads = nh, .n_kv_heads = nkv, .head_dim = D, .n_tokens = 1, .n_past = n_past,
                        .scale = 1.0f / sqrtf((float)D), .n_past_mem = dpos};
    if (fused) {
        p.rope_pos = dpos;
        p.rotary_dim = R;
        p.rope_theta = theta;
    }
    if (!s) s = op->attention(c->ex, dout, dq, dk, dv, kv, 0, &p, &c->err);
    return s;
}

/* A backend that records steps (the GPU): one decode step recorded once and replayed at
 * positions 1..N-1 with fresh q, k, v each time, each output against the reference; what may not
 * happen while recording is refused (a copy; a RoPE table not made yet). With the rope ops, the
 * reference gets the backend's own rotated q and k (checked against ref_rope separately). Fused
 * (RoPE in the attention call), it rotates them itself, and the replays run to 300 keys in a
 * cache of 1024: on the GPU's bf16 cache the recorded launch allows 8 splits and the kernel goes
 * from one split to two at 256 keys, all from the same recording. Skipped on backends without
 * graph_* ops. */
static void check_graph_variant(ops_ctx *c, op_groups *g, bool fused) {
    const gm_backend_ops *op = c->be->ops;
    const int32_t nkv = 2, nh = 24, D = 128, R = 64, N = fused ? 300 : 150, n_ctx = fused ? 1024 : 200;
    const float theta = fused ? 234567.0f : 123457.0f; /* tables no earlier check made */
    const int64_t qn = (int64_t)nh * D, kn = (int64_t)nkv * D;
    gm_kv *kv = NULL;
    if (op->kv_create(c->be, &kv, 1, n_ctx, nkv, D, &c->err)) {
        CHECK(0, "[%s] kv_create: %s", c->label, c->err.msg);
        return;
    }
    float *q = malloc((size_t)qn * 4), *qr = malloc((size_t)qn * 4), *out = malloc((size_t)qn * 4);
    float *k_all = malloc((size_t)(N * kn) * 4), *v_all = ops_random_floats(c, (size_t)(N * kn), 0.01, 1.0);
    float *k_new = malloc((size_t)kn * 4);
    double *ref = malloc((size_t)qn * sizeof *ref), *rq = malloc((size_t)qn * sizeof *rq), *bq = malloc((size_t)qn * sizeof *bq);
    float *dq = ops_upload_f(c, NULL, (size_t)qn), *dk = ops_upload_f(c, NULL, (size_t)kn);
    float *dv = ops_upload_f(c, NULL, (size_t)kn), *dout = ops_upload_f(c, NULL, (size_t)qn);
    int32_t zero = 0, *dpos = ops_upload_i(c, &zero, 1);
    gm_graph *graph = NULL;
    bool ok = true;

    /* While recording: a copy is refused, and so is an op that would make its table now. */
    gm_err_clear(&c->err);
    glmoe_status s = op->graph_capture_begin(c->ex, &c->err);
    CHECK(s == GLMOE_OK, "[%s] graph_capture_begin: %s", c->label, c->err.msg);
    if (!s) {
        glmoe_status sc = op->copy_in(c->ex, dpos, &zero, 4, &c->err);
        CHECK(sc != GLMOE_OK && c->err.msg[0], "[%s] copy_in while recording: status %d", c->label, (int)sc);
        glmoe_status sr = graph_step_ops(c, dout, dq, dk, dv, dpos, kv, 0, nh, nkv, D, R, theta, fused);
        CHECK(sr != GLMOE_OK, "[%s] a RoPE table made while recording was not refused%s", c->label,
              fused ? " (RoPE in the attention call)" : "");
        gm_graph *bad = NULL;
        glmoe_status se = op->graph_capture_end(c->ex, &bad, &c->err);
        CHECK(se != GLMOE_OK && !bad, "[%s] a recording with a refused op gave a graph (status %d)", c->label, (int)se);
        op->graph_free(c->ex, bad);
    }

    for (int32_t n = 0; ok && n < N; n++) {
        char what[200];
        snprintf(what, sizeof what, "graph step at n_past=%d (heads=%d kv_heads=%d D=%d)%s%s", n, nh, nkv, D,
                 n == 0 ? ", op by op" : n == 1 ? ", recorded" : ", replayed", fused ? ", RoPE in the attention" : "");
        ops_fill(c, q, (size_t)qn, 0.01, 2.0);
        ops_fill(c, k_new, (size_t)kn, 0.01, 1.0);
        ok = !op->copy_in(c->ex, dq, q, (size_t)qn * 4, &c->err) && !op->copy_in(c->ex, dk, k_new, (size_t)kn * 4, &c->err) &&
             !op->copy_in(c->ex, dv, v_all + n * kn, (size_t)kn * 4, &c->err) &&
             !op->copy_in(c->ex, dpos, &n, 4, &c->err);
        if (ok && n == 0) { /* the first step op by op: it makes the RoPE table */
            ok = op_ok(c, &g->graph, graph_step_ops(c, dout, dq, dk, dv, dpos, kv, n, nh, nkv, D, R, theta, fused), what);
        } else if (ok) {
            if (n == 1) {
                ok = op_ok(c, &g->graph, op->graph_capture_begin(c->ex, &c->err), "graph_capture_begin");
                glmoe_status sr =
                    ok ? graph_step_ops(c, dout, dq, dk, dv, dpos, kv, n, nh, nkv, D, R, theta, fused) : GLMOE_OK;
                if (ok) ok = op_ok(c, &g->graph, op->graph_capture_end(c->ex, &graph, &c->err), "graph_capture_end") &&
                             op_ok(c, &g->graph, sr, what) && graph;
            }
            if (ok) ok = op_ok(c, &g->graph, op->graph_replay(c->ex, graph, &c->err), what);
        }
        ok = ok && ops_download_f(c, out, dout, (size_t)qn, what);
        if (ok && fused) {
            /* The reference rotates q and the new key itself; the op left dq and dk as given. */
            float *kr = rope_rows_ref_at(k_new, n, nkv, D, R, theta), *qf = rope_rows_ref_at(q, n, nh, D, R, theta);
            memcpy(k_all + n * kn, kr, (size_t)kn * 4);
            memcpy(qr, qf, (size_t)qn * 4);
            free(kr);
            free(qf);
        } else if (ok) {
            /* The backend's rotated q and k: checked against ref_rope, then the reference's inputs. */
            ok = ops_download_f(c, qr, dq, (size_t)qn, what) && ops_download_f(c, k_all + n * kn, dk, (size_t)kn, what);
            if (ok) {
                ref_rope(rq, bq, q, &n, 1, nh, D, R, theta);
                double bb = 0, rr = 0;
                for (int64_t e = 0; e < qn; e++) bb += bq[e] * bq[e], rr += rq[e] * rq[e];
                ok = ops_compare_ex(c, &g->rope, what, qr, rq, (size_t)qn, fmax(TOL_ROPE_MIN, sqrt(bb / rr)), 0);
            }
        }
        if (ok) {
            ref_attention(ref, qr, k_all, v_all, NULL, 1, n, nh, nkv, D, (double)(1.0f / sqrtf((float)D)));
            ok = ops_compare(c, &g->graph, what, out, ref, (size_t)qn, ops_tol_attention);
        }
        CHECK(ok, "[%s] %s: %s", c->label, what, c->err.msg);
    }

    op->graph_free(c->ex, graph);
    CHECK(op->sync(c->ex, &c->err) == GLMOE_OK, "[%s] sync after the graph checks: %s", c->label, c->err.msg);
    free(q);
    free(qr);
    free(out);
    free(k_all);
    free(v_all);
    free(k_new);
    free(ref);
    free(rq);
    free(bq);
    ops_release(c);
    op->kv_free(c->be, kv);
}

static void check_graph(ops_ctx *c, op_groups *g) {
    if (!c->be->ops->graph_capture_begin) return;
    check_graph_variant(c, g, false);
    check_graph_variant(c, g, true);
}

/* ---- the op-case table ----------------------------------------------------------------------- */

static void opcase_result(const char *what, bool ok) { CHECK(ok, "%s", what); }

/* The cases `glmoe bench` times (tests/ops/opcases.c), checked at a small layer of GLM-4.5's
 * form: head_dim 128 with half of it rotated, GQA 2, attention biases, 16 experts top-4 with the
 * scaling factor, a shared expert; prefill 40 tokens (past the GPU's T <= 8 GEMV paths), decode
 * at contexts 7 and 100 (a cache filled in three chunks), and the affine cases at q4 g64. */
static void check_opcases(ops_ctx *c, op_groups *g) {
    static const opcase_shape shape = {.hidden = 256, .n_heads = 4, .n_kv_heads = 2, .head_dim = 128, .rotary_dim = 64,
                                       .intermediate = 320, .moe_intermediate = 128, .n_experts = 16,
                                       .n_experts_per_tok = 4, .n_shared_experts = 1, .n_group = 1, .topk_group = 1,
                                       .norm_topk_prob = true, .attention_bias = true, .routed_scaling_factor = 2.5f,
                                       .rope_theta = 1e6f, .rms_norm_eps = 1e-5f};
    static const int32_t contexts[] = {7, 100};
    const glmoe_quantize q4 = {4, 64};
    opcases_check(c, &g->table, &shape, 40, contexts, 2, &q4, opcase_result);
}

/* ---- the harness entry point ------------------------------------------------------------------ */

/* The execution state's sizes: large enough for every case above (the widest matmul input is
 * 24 heads x 128 = 3072, the widest output 4229 rows; 1024 experts top-64 for the router;
 * experts up to 128 wide, the affine checks' Im). */
static gm_exec_sizes ops_sizes(void) {
    return (gm_exec_sizes){.n_batch = 129, .n_ctx = ATTN_MAX_CTX, .hidden = 1024, .max_in = 3072, .max_out = 4229,
                           .n_heads = 24, .head_dim = 128, .n_experts = 1024, .top_k = 64, .expert_width = 128};
}

static void print_stats(const char *label, const ops_stats *st) {
    if (!st->cases) return;
    printf("  [%s] %-12s %3d cases, %d failed; worst rel err %.2e (tol %.1e)\n", label, st->name, st->cases,
           st->failures, st->worst_err, st->worst_tol);
}

/* Runs every op check on be (only attention's and the recorded step's when attention_only). Failures are counted by CHECK
 * (test.h) and printed as they occur. */
static void ops_check_backend(gm_backend *be, const char *label, uint64_t seed, bool attention_only) {
    ops_ctx c;
    ops_init(&c, be, label, seed);
    const gm_exec_sizes z = ops_sizes();
    if (be->ops->exec_create(be, &z, &c.ex, &c.err)) {
        CHECK(0, "[%s] exec_create failed: %s", label, c.err.msg);
        ops_destroy(&c);
        return;
    }
    op_groups g = {.matmul = {.name = "matmul"}, .embed = {.name = "embed"}, .add = {.name = "add"},
                   .swiglu = {.name = "swiglu"}, .rmsnorm = {.name = "add_rmsnorm"}, .rope = {.name = "rope"},
                   .attention = {.name = "attention"}, .attn_lengths = {.name = "attn 1..4097"},
                   .attn_decode = {.name = "attn decode"},
                   .route = {.name = "moe_route"}, .experts = {.name = "moe_experts"}, .graph = {.name = "graph"},
                   .affine = {.name = "affine"}, .affine_prefill = {.name = "affine T>8"},
                   .table = {.name = "op table"}};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    static void (*const checks[])(ops_ctx *, op_groups *) = {check_matmul, check_affine, check_affine_prefill, check_embed, check_add_swiglu,
                                                              check_rmsnorm, check_rope, check_attention,
                                                              check_route, check_experts, check_graph,
                                                              check_opcases};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (!attention_only || checks[i] == check_attention || checks[i] == check_graph || checks[i] == check_experts)
            checks[i](&c, &g);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("backend %s (%s): %.1f s\n", be->ops->name, label,
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    const ops_stats *all[] = {&g.matmul, &g.embed, &g.add, &g.swiglu, &g.rmsnorm, &g.rope, &g.attention,
                              &g.attn_lengths, &g.attn_decode, &g.route, &g.experts, &g.graph, &g.affine,
                              &g.affine_prefill, &g.table};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) print_stats(label, all[i]);
    gm_exec *ex = c.ex;
    ops_destroy(&c);
    be->ops->exec_free(ex);
}

int main(void) {
    const char *env = getenv("GLMOE_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 20250918u;
    printf("test data seed %llu (set GLMOE_TEST_SEED to change)\n", (unsigned long long)seed);

    static const struct { int threads; const char *label; } cpus[] = {{0, "cpu all cores"}, {1, "cpu 1 thread"}};
    for (size_t i = 0; i < sizeof cpus / sizeof cpus[0]; i++) {
        gm_backend *be = NULL;
        gm_err err = {0};
        if (cpu_backend_create(&be, cpus[i].threads, &err)) {
            CHECK(0, "cpu_backend_create(%d): %s", cpus[i].threads, err.msg);
            continue;
        }
        ops_check_backend(be, cpus[i].label, seed, false);
        be->ops->free(be);
    }
#ifdef GLMOE_HAVE_CUDA
    /* The GPU with a float32 KV cache, so that attention is checked at float32 tolerance. */
    {
        gm_backend *be = NULL;
        gm_err err = {0};
        cuda_backend_options o = cuda_backend_options_default();
        o.kv_f32 = true;
        glmoe_status s = cuda_backend_create_ex(&be, &o, &err);
        if (s == GLMOE_E_UNSUPPORTED) {
            printf("SKIP: no CUDA device (%s)\n", err.msg);
        } else if (s) {
            CHECK(0, "cuda_backend_create: %s", err.msg);
        } else {
            ops_tol_affine_prefill = TOL_AFFINE_TC; /* T > 8: fp16 on the tensor cores */
            /* T <= 8, 4 and 8 bits: fp16 on the tensor cores too, unless switched off */
            const char *mmv = getenv("GLMOE_CUDA_AFF_MMV");
            ops_tol_affine_gemv = mmv && !strcmp(mmv, "0") ? 0.0 : TOL_AFFINE_TC;
            ops_check_backend(be, "cuda fp32 KV", seed, false);
            ops_tol_affine_prefill = ops_tol_affine_gemv = 0.0;
            be->ops->free(be);
        }
    }
    /* The default bf16 cache: attention again, and the recorded decode step (the tensor-core
     * kernel takes every 128-dim case, split over blocks for decode), at bf16 tolerance; and the
     * experts with the cuBLAS path switched on from 64 tokens (T = 80 takes it here, the tiles
     * on the backend above). */
    {
        gm_backend *be = NULL;
        gm_err err = {0};
        cuda_backend_options o = cuda_backend_options_default();
        o.moe_cublas_min_tokens = 64;
        if (cuda_backend_create_ex(&be, &o, &err) == GLMOE_OK) {
            ops_tol_attention = TOL_ATTENTION_BF16;
            ops_check_backend(be, "cuda bf16 KV", seed, true);
            ops_tol_attention = TOL_ATTENTION;
            be->ops->free(be);
        }
    }
#else
    printf("SKIP: no CUDA device (built without the CUDA backend)\n");
#endif
    return test_summary("test_ops");
}
