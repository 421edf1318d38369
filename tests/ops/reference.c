/*
 * reference.c — the double-precision reference ops (see reference.h). Each function is the
 * textbook formula of spec §2, written for clarity and not for speed; nothing here is shared with
 * the backends it checks.
 */
#include "ops/reference.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *ref_dtype_name(ref_dtype t) {
    switch (t) {
    case REF_F32: return "f32";
    case REF_BF16: return "bf16";
    case REF_F16: return "f16";
    case REF_AFFINE: return "affine";
    }
    return "?";
}

/* bf16 is the top half of a float32: sign, 8 exponent bits (bias 127), 7 mantissa bits. */
static double decode_bf16(uint16_t h) {
    int sign = h >> 15, e = (h >> 7) & 0xff, m = h & 0x7f;
    double v;
    if (e == 0xff) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp((double)m, -126 - 7);
    else v = ldexp(128.0 + m, e - 127 - 7);
    return sign ? -v : v;
}

/* IEEE binary16: sign, 5 exponent bits (bias 15), 10 mantissa bits; e = 0 is subnormal. */
static double decode_f16(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v;
    if (e == 0x1f) v = m ? NAN : INFINITY;
    else if (e == 0) v = ldexp((double)m, -14 - 10);
    else v = ldexp(1024.0 + m, e - 15 - 10);
    return sign ? -v : v;
}

/* Code c of row r of an affine matrix: bit by bit from the row's bytes. */
static unsigned affine_code(const ref_matrix *m, int64_t r, int64_t c) {
    const unsigned char *row = (const unsigned char *)m->data + (size_t)r * (size_t)(m->cols * m->bits / 8);
    unsigned q = 0;
    for (int k = 0; k < m->bits; k++) {
        const int64_t p = c * m->bits + k;
        q |= (unsigned)((row[p >> 3] >> (p & 7)) & 1) << k;
    }
    return q;
}

double ref_elem(const ref_matrix *m, int64_t r, int64_t c) {
    size_t i = (size_t)r * (size_t)m->cols + (size_t)c;
    const unsigned char *b = m->data;
    if (m->type == REF_AFFINE) {
        const ref_matrix s = {.type = m->scale_type, .rows = m->rows, .cols = m->cols / m->group, .data = m->scales};
        const ref_matrix z = {.type = m->scale_type, .rows = m->rows, .cols = m->cols / m->group, .data = m->biases};
        return ref_elem(&s, r, c / m->group) * (double)affine_code(m, r, c) + ref_elem(&z, r, c / m->group);
    }
    if (m->type == REF_F32) {
        float f;
        memcpy(&f, b + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, b + 2 * i, 2);
    return m->type == REF_BF16 ? decode_bf16(h) : decode_f16(h);
}

void ref_matmul(double *out, const float *x, const ref_matrix *W, const double *bias, int32_t T) {
    const int64_t N = W->rows, K = W->cols;
    double *w = malloc((size_t)K * sizeof *w);
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) w[k] = ref_elem(W, n, k); /* decode each row once */
        for (int32_t t = 0; t < T; t++) {
            double s = bias ? bias[n] : 0.0;
            for (int64_t k = 0; k < K; k++) s += w[k] * (double)x[(int64_t)t * K + k];
            out[(int64_t)t * N + n] = s;
        }
    }
    free(w);
}

void ref_embed(double *out, const ref_matrix *table, const int32_t *ids, int32_t T) {
    for (int32_t t = 0; t < T; t++)
        for (int64_t c = 0; c < table->cols; c++) out[(int64_t)t * table->cols + c] = ref_elem(table, ids[t], c);
}

void ref_add_rmsnorm(double *out, double *new_resid, const float *resid, const float *delta,
                     const double *w, int64_t rows, int64_t cols, float eps) {
    double *x = malloc((size_t)cols * sizeof *x);
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t i = 0; i < cols; i++) {
            /* The backend keeps the residual in float32, so the sum it normalises is rounded to
             * float32 first; do the same so that only the op's own error is measured. */
            x[i] = delta ? (double)(resid[r * cols + i] + delta[r * cols + i]) : (double)resid[r * cols + i];
            ss += x[i] * x[i];
        }
        double inv = 1.0 / sqrt(ss / (double)cols + (double)eps);
        for (int64_t i = 0; i < cols; i++) {
            out[r * cols + i] = w[i] * x[i] * inv;
            if (new_resid) new_resid[r * cols + i] = x[i];
        }
    }
    free(x);
}

void ref_swiglu(double *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i];
        out[i] = g / (1.0 + exp(-g)) * (double)up[i];
    }
}

/*
 * Why the angle is float32: transformers builds inv_freq as
 *     1.0 / (theta ** (torch.arange(0, R, 2).float() / R))            (float32 tensors)
 * and the angles as inv_freq.float() @ position_ids.float() with autocast off, i.e. one float32
 * product per (pos, i). At pos ~ 1e5 that product's rounding alone moves the angle by up to
 * ulp(1e5)/2 ~ 4e-3 rad from the exact value, far above float32's relative precision, and the
 * model was trained with those rounded angles. So the reference reproduces the float32 angle
 * (exponent 2i/R rounded to float32, theta^e rounded to float32, the reciprocal and the product
 * in float32) and only then takes cos/sin in double. A backend that computes inv_freq with a
 * powf one ulp away still lands within a few ulps of this angle; ref_rope's bound covers that.
 */
float ref_rope_angle(int32_t pos, int32_t i, int32_t rotary_dim, float theta) {
    float e = (float)(2 * i) / (float)rotary_dim;
    float p = (float)pow((double)theta, (double)e);
    float inv_freq = 1.0f / p;
    return (float)pos * inv_freq;
}

void ref_rope(double *out, double *bound, const float *x, const int32_t *pos, int32_t T, int32_t nh,
              int32_t D, int32_t R, float theta) {
    const int32_t half = R / 2;
    for (int64_t e = 0; e < (int64_t)T * nh * D; e++) {
        out[e] = x[e];
        if (bound) bound[e] = 0;
    }
    for (int32_t t = 0; t < T; t++)
        for (int32_t i = 0; i < half; i++) {
            float a = ref_rope_angle(pos[t], i, R, theta);
            double c = cos((double)a), s = sin((double)a);
            /* Angle uncertainty: inv_freq one ulp off moves pos*inv_freq by about one ulp of the
             * angle, the product's rounding by half of one; allow three. cosf/sinf and the
             * rotation's own float32 rounding add a few 1e-7 relative. */
            double ulp = (double)(nextafterf(fabsf(a), INFINITY) - fabsf(a));
            double delta = 3.0 * ulp + 5e-7;
            for (int32_t h = 0; h < nh; h++) {
                int64_t b = ((int64_t)t * nh + h) * D;
                double x0 = x[b + i], x1 = x[b + i + half];
                out[b + i] = x0 * c - x1 * s;
                out[b + i + half] = x1 * c + x0 * s;
                if (bound) bound[b + i] = bound[b + i + half] = delta * (fabs(x0) + fabs(x1));
            }
        }
}

void ref_attention(double *out, const float *q, const float *k_all, const float *v_all,
                   const float *mask, int32_t T, int32_t n_past, int32_t nh, int32_t nkv, int32_t D,
                   double scale) {
    const int64_t n_keys = (int64_t)n_past + T, row = (int64_t)nkv * D;
    const int32_t group = nh / nkv;
    double *p = malloc((size_t)n_keys * sizeof *p);
    for (int32_t t = 0; t < T; t++)
        for (int32_t h = 0; h < nh; h++) {
            const float *qv = q + ((int64_t)t * nh + h) * D;
            const int32_t g = h / group;
            const int64_t n = (int64_t)n_past + t + 1; /* causal: keys 0 .. n_past + t */
            double mx = -INFINITY;
            for (int64_t j = 0; j < n; j++) {
                double s = 0;
                for (int32_t d = 0; d < D; d++) s += (double)qv[d] * (double)k_all[j * row + (int64_t)g * D + d];
                s *= scale;
                if (mask) s += (double)mask[(int64_t)t * n_keys + j];
                p[j] = s;
                if (s > mx) mx = s;
            }
            double *o = out + ((int64_t)t * nh + h) * D;
            for (int32_t d = 0; d < D; d++) o[d] = 0;
            if (mx == -INFINITY) continue; /* every key hidden */
            double sum = 0;
            for (int64_t j = 0; j < n; j++) sum += (p[j] = exp(p[j] - mx));
            for (int64_t j = 0; j < n; j++)
                for (int32_t d = 0; d < D; d++) o[d] += p[j] / sum * (double)v_all[j * row + (int64_t)g * D + d];
        }
    free(p);
}

/* order[0..n) = indices of v sorted by descending value, ties to the lower index. */
static const double *sort_keys;
static int by_value_desc(const void *a, const void *b) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (sort_keys[i] != sort_keys[j]) return sort_keys[i] > sort_keys[j] ? -1 : 1;
    return i < j ? -1 : 1;
}
static void argsort_desc(const double *v, int32_t n, int32_t *order) {
    for (int32_t i = 0; i < n; i++) order[i] = i;
    sort_keys = v;
    qsort(order, (size_t)n, sizeof *order, by_value_desc);
}

/* The margin of the cut after the k best of v (sorted best first by order, k < n): the gap
 * between the k-th and the (k+1)-th value; where they are equal (an exact tie, which every
 * implementation breaks by index: the tests make such ties with zero router rows), the gap
 * between the tied run and the nearest different values on either side. */
static double cut_margin(const double *v, const int32_t *order, int32_t n, int32_t k) {
    const double a = v[order[k - 1]];
    if (a != v[order[k]]) return a - v[order[k]];
    int32_t lo = k - 1, hi = k;
    while (lo > 0 && v[order[lo - 1]] == a) lo--;
    while (hi < n - 1 && v[order[hi + 1]] == a) hi++;
    double gap = INFINITY;
    if (lo > 0) gap = v[order[lo - 1]] - a;
    if (hi < n - 1 && a - v[order[hi + 1]] < gap) gap = a - v[order[hi + 1]];
    return gap;
}

void ref_moe_route(int32_t *idx, double *weights, double *margin, const float *x, const ref_matrix *router,
                   const double *bias, const ref_route_params *p, int32_t T) {
    const int32_t E = p->n_experts, K = p->top_k, H = (int32_t)router->cols;
    const int32_t ng = p->n_group, per_group = E / ng;
    double *s = malloc((size_t)E * sizeof *s), *c = malloc((size_t)E * sizeof *c);
    double *gscore = malloc((size_t)ng * sizeof *gscore);
    int32_t *order = malloc((size_t)E * sizeof *order), *gorder = malloc((size_t)ng * sizeof *gorder);
    for (int32_t t = 0; t < T; t++) {
        double gap = INFINITY;
        /* 1-3: logits, sigmoid, selection score s + b. */
        for (int32_t e = 0; e < E; e++) {
            double l = 0;
            for (int32_t i = 0; i < H; i++) l += ref_elem(router, e, i) * (double)x[(int64_t)t * H + i];
            s[e] = 1.0 / (1.0 + exp(-l));
            c[e] = s[e] + (bias ? bias[e] : 0.0);
        }
        /* 4: group limiting. Experts of dropped groups can never be chosen: transformers
         * (5.x, masked_fill(..., -inf)) sets their selection scores to -inf. (The spec's text says
         * 0, which differs only when fewer than K kept experts have s + b > 0.) */
        if (ng > 1) {
            for (int32_t g = 0; g < ng; g++) {
                argsort_desc(c + (int64_t)g * per_group, per_group, order);
                gscore[g] = c[g * per_group + order[0]] + c[g * per_group + order[1]];
            }
            argsort_desc(gscore, ng, gorder);
            if (p->topk_group < ng) gap = cut_margin(gscore, gorder, ng, p->topk_group);
            for (int32_t r = p->topk_group; r < ng; r++)
                for (int32_t e = 0; e < per_group; e++) c[gorder[r] * per_group + e] = -INFINITY;
        }
        /* 5: top-K of the selection scores. */
        argsort_desc(c, E, order);
        if (K < E) {
            const double cut = cut_margin(c, order, E, K);
            if (cut < gap) gap = cut;
        }
        if (margin) margin[t] = gap;
        /* 6: weights from the unbiased sigmoid, renormalised, scaled. */
        double sum = 0;
        for (int32_t j = 0; j < K; j++) sum += s[order[j]];
        for (int32_t j = 0; j < K; j++) {
            double w = s[order[j]];
            if (p->norm_topk_prob) w /= sum + 1e-20;
            idx[(int64_t)t * K + j] = order[j];
            weights[(int64_t)t * K + j] = w * p->routed_scaling_factor;
        }
    }
    free(s);
    free(c);
    free(gscore);
    free(order);
    free(gorder);
}

void ref_moe_experts(double *out, const float *x, const int32_t *idx, const float *weights, int32_t top_k,
                     const ref_matrix *gate, const ref_matrix *up, const ref_matrix *down, int32_t T) {
    const int64_t H = down[0].rows, Im = gate[0].rows;
    double *h = malloc((size_t)Im * sizeof *h);
    for (int32_t t = 0; t < T; t++)
        for (int32_t j = 0; j < top_k; j++) {
            const int32_t e = idx[(int64_t)t * top_k + j];
            const float *u = x + (int64_t)t * H;
            for (int64_t r = 0; r < Im; r++) {
                double g = 0, v = 0;
                for (int64_t i = 0; i < H; i++) {
                    g += ref_elem(&gate[e], r, i) * (double)u[i];
                    v += ref_elem(&up[e], r, i) * (double)u[i];
                }
                h[r] = g / (1.0 + exp(-g)) * v;
            }
            const double w = weights[(int64_t)t * top_k + j];
            for (int64_t r = 0; r < H; r++) {
                double o = 0;
                for (int64_t i = 0; i < Im; i++) o += ref_elem(&down[e], r, i) * h[i];
                out[(int64_t)t * H + r] += w * o;
            }
        }
    free(h);
}
