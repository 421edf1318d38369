/*
 * compare_affine.c — the comparisons of affine-quantized (MLX) results with the reference that
 * both the affine op checks (check_affine.c) and the op-case table (opcases.c) use: in float32
 * terms, or per element against the sum of the magnitudes of their terms where a backend computes
 * in fp16 on the tensor cores (TOL_AFFINE_TC in checks.h says why).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/checks.h"

double ops_tol_affine_prefill = 0.0;
double ops_tol_affine_gemv = 0.0;

/* m's elements in double, [rows][cols] (malloc'd), as the reference decodes them. */
double *ops_ref_decode(const ref_matrix *m) {
    double *w = malloc((size_t)(m->rows * m->cols) * sizeof *w);
    for (int64_t r = 0; r < m->rows; r++)
        for (int64_t k = 0; k < m->cols; k++) w[r * m->cols + k] = ref_elem(m, r, k);
    return w;
}

/* Passes when max_i |out[i] - ref[i]| / mag[i] <= tol and nothing is NaN (TOL_AFFINE_TC says
 * why this measure); prints the worst element on failure. Records err = that maximum. */
bool ops_compare_terms(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref,
                       const double *mag, size_t n, double tol) {
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)out[i] - ref[i]) / (mag[i] > 0 ? mag[i] : 1e-300);
        if (isnan(e)) e = INFINITY;
        if (e > worst || i == 0) worst = e, at = i;
    }
    st->cases++;
    const double ratio = worst / tol;
    if (st->cases == 1 || !(ratio <= st->worst)) st->worst = ratio, st->worst_err = worst, st->worst_tol = tol;
    if (worst <= tol) return true;
    st->failures++;
    fprintf(stderr, "[%s] FAIL %s: max |out - ref| / sum|terms| %.3g (tol %.3g) at [%zu]: got %.9g, want %.9g (terms %.3g)\n",
            c->label, what, worst, tol, at, n ? out[at] : 0.0f, n ? ref[at] : 0.0, n ? mag[at] : 0.0);
    return false;
}

/* An affine matmul's result against the reference: in float32 terms (ops_compare) unless the
 * backend takes it on the tensor cores in fp16 (T > 8: ops_tol_affine_prefill; T <= 8 with 4 or 8
 * bits in the fast layout, gemv_tc: ops_tol_affine_gemv), then per element against
 * Σ|x·w| + |bias|. */
bool ops_affine_matmul_ok(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref,
                          const float *x, const ref_matrix *W, const double *bias, int32_t T, bool gemv_tc) {
    const int64_t N = W->rows, K = W->cols;
    const double tol = T > 8 ? ops_tol_affine_prefill : gemv_tc ? ops_tol_affine_gemv : 0.0;
    if (tol <= 0) return ops_compare(c, st, what, out, ref, (size_t)(T * N), TOL_MATMUL);
    double *w = ops_ref_decode(W), *mag = malloc((size_t)(T * N) * sizeof *mag);
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double m = bias ? fabs(bias[n]) : 0.0;
            for (int64_t k = 0; k < K; k++) m += fabs((double)x[t * K + k] * w[n * K + k]);
            mag[t * N + n] = m;
        }
    bool ok = ops_compare_terms(c, st, what, out, ref, mag, (size_t)(T * N), tol);
    free(w);
    free(mag);
    return ok;
}

/* Σ|terms| of each output of the experts, to first order through SwiGLU: with g = x·gate,
 * u = x·up known to ε·Sg, ε·Su (Sg = Σ|x_i·gate_i|), h = silu(g)·u is known to
 * ε·(|silu'(g)·u|·Sg + |silu(g)|·Su), and out = Σ_j w_j·down·h to ε·Σ_j |w_j|·Σ_k |down_k|·a_k with
 * a_k = |h_k| + that sensitivity (the |h| term covers h's own bf16 rounding). init: the starting
 * values (accumulate), or NULL. */
void ops_experts_terms(double *mag, const float *x, const int32_t *idx, const float *rw, int32_t K, int32_t E,
                       const ref_matrix *rg, const ref_matrix *ru, const ref_matrix *rd, int32_t T,
                       const float *init) {
    const int64_t H = rd[0].rows, Im = rg[0].rows;
    double **G = calloc((size_t)E, sizeof *G), **U = calloc((size_t)E, sizeof *U), **D = calloc((size_t)E, sizeof *D);
    double *a = malloc((size_t)Im * sizeof *a);
    for (int32_t e = 0; e < E; e++) G[e] = ops_ref_decode(&rg[e]), U[e] = ops_ref_decode(&ru[e]), D[e] = ops_ref_decode(&rd[e]);
    for (int64_t t = 0; t < T; t++) {
        const float *xt = x + t * H;
        for (int64_t n = 0; n < H; n++) mag[t * H + n] = init ? fabs((double)init[t * H + n]) : 0.0;
        for (int32_t j = 0; j < K; j++) {
            const int32_t e = idx[t * K + j];
            for (int64_t k = 0; k < Im; k++) {
                double gv = 0, sg = 0, uv = 0, su = 0;
                for (int64_t i = 0; i < H; i++) {
                    const double pg = xt[i] * G[e][k * H + i], pu = xt[i] * U[e][k * H + i];
                    gv += pg, sg += fabs(pg), uv += pu, su += fabs(pu);
                }
                const double sig = 1.0 / (1.0 + exp(-gv)), silu = gv * sig, dsilu = sig * (1.0 + gv * (1.0 - sig));
                a[k] = fabs(silu * uv) + fabs(dsilu * uv) * sg + fabs(silu) * su;
            }
            for (int64_t n = 0; n < H; n++) {
                double m = 0;
                for (int64_t k = 0; k < Im; k++) m += fabs(D[e][n * Im + k]) * a[k];
                mag[t * H + n] += fabs((double)rw[t * K + j]) * m;
            }
        }
    }
    for (int32_t e = 0; e < E; e++) free(G[e]), free(U[e]), free(D[e]);
    free(G), free(U), free(D), free(a);
}

/* The experts' result against the reference: float32 terms, or (bf16 prefill) per element. */
bool ops_affine_experts_ok(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref,
                           const float *x, const int32_t *idx, const float *rw, int32_t K, int32_t E,
                           const ref_matrix *rg, const ref_matrix *ru, const ref_matrix *rd, int32_t T,
                           const float *init, bool gemv_tc) {
    const int64_t H = rd[0].rows;
    const double tol = T > 8 ? ops_tol_affine_prefill : gemv_tc ? ops_tol_affine_gemv : 0.0;
    if (tol <= 0) return ops_compare(c, st, what, out, ref, (size_t)(T * H), TOL_EXPERTS);
    double *mag = malloc((size_t)(T * H) * sizeof *mag);
    ops_experts_terms(mag, x, idx, rw, K, E, rg, ru, rd, T, init);
    bool ok = ops_compare_terms(c, st, what, out, ref, mag, (size_t)(T * H), tol);
    free(mag);
    return ok;
}
