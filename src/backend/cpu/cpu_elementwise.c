/*
 * cpu_elementwise.c — embedding lookup, residual add + RMSNorm, add, SwiGLU, RoPE.
 *
 * RMSNorm: y = w ⊙ x / sqrt(mean(x²) + eps), statistics in double (spec §2.2).
 * RoPE: half-split ("rotate_half") pairs (i, i + R/2) on the first R dims of each head, with
 * inv_freq[i] = theta^(-2i/R) and the angle pos * inv_freq computed in float32 exactly as
 * transformers does (spec §2.4.3).
 */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

glmoe_status cpu_embed(gm_exec *ex, float *out, const gm_weight *table, const int32_t *ids,
                       int32_t T, gm_err *err) {
    cpu_exec *cx = cpu_exec_of(ex);
    const int64_t H = table->cols;
    for (int32_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= table->rows)
            return gm_fail(err, GLMOE_E_TOKEN, "token id %d is outside the vocabulary [0, %lld)", ids[t],
                           (long long)table->rows);
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if ((int64_t)T * H >= CPU_PARALLEL_MIN_WORK)
    for (int32_t t = 0; t < T; t++) gm_weight_row_f32(table, ids[t], 0, H, out + (int64_t)t * H);
    return GLMOE_OK;
}

glmoe_status cpu_add_rmsnorm(gm_exec *ex, float *out, float *resid, const float *delta,
                             const gm_weight *w, int64_t rows, int64_t cols, float eps, gm_err *err) {
    cpu_exec *cx = cpu_exec_of(ex);
    const float *wf = w->data;
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if (rows * cols >= CPU_PARALLEL_MIN_WORK)
    for (int64_t r = 0; r < rows; r++) {
        float *x = resid + r * cols;
        if (delta)
            for (int64_t i = 0; i < cols; i++) x[i] += delta[r * cols + i];
        double ss = 0;
        for (int64_t i = 0; i < cols; i++) ss += (double)x[i] * x[i];
        float inv = (float)(1.0 / sqrt(ss / (double)cols + (double)eps));
        float *y = out + r * cols;
        for (int64_t i = 0; i < cols; i++) y[i] = wf[i] * (x[i] * inv);
    }
    return GLMOE_OK;
}

glmoe_status cpu_add(gm_exec *ex, float *resid, const float *delta, int64_t n, gm_err *err) {
    cpu_exec *cx = cpu_exec_of(ex);
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if (n >= CPU_PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < n; i++) resid[i] += delta[i];
    return GLMOE_OK;
}

glmoe_status cpu_copy_2d(gm_exec *ex, float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                         int64_t rows, int64_t width, gm_err *err) {
    (void)ex;
    (void)err;
    for (int64_t r = 0; r < rows; r++) memcpy(dst + r * dst_stride, src + r * src_stride, (size_t)width * sizeof *dst);
    return GLMOE_OK;
}

glmoe_status cpu_swiglu(gm_exec *ex, float *out, const float *gate, const float *up, int64_t n,
                        gm_err *err) {
    cpu_exec *cx = cpu_exec_of(ex);
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if (n >= CPU_PARALLEL_MIN_WORK)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
    return GLMOE_OK;
}

glmoe_status cpu_rope(gm_exec *ex, float *x, const int32_t *pos, int32_t T, int32_t n_heads,
                      int32_t head_dim, int32_t rotary_dim, float theta, gm_err *err) {
    cpu_exec *cx = cpu_exec_of(ex);
    const int32_t half = rotary_dim / 2;
    float inv_freq[2048];
    if (half > 2048) return gm_fail(err, GLMOE_E_UNSUPPORTED, "rope: %d rotary dims is over 4096", rotary_dim);
    for (int32_t i = 0; i < half; i++) inv_freq[i] = 1.0f / powf(theta, (float)(2 * i) / (float)rotary_dim);
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if ((int64_t)T * n_heads * rotary_dim >= CPU_PARALLEL_MIN_WORK)
    for (int32_t t = 0; t < T; t++) {
        for (int32_t i = 0; i < half; i++) {
            float a = (float)pos[t] * inv_freq[i];
            float c = cosf(a), s = sinf(a);
            for (int32_t h = 0; h < n_heads; h++) {
                float *v = x + ((int64_t)t * n_heads + h) * head_dim;
                float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x1 * c + x0 * s;
            }
        }
    }
    return GLMOE_OK;
}
