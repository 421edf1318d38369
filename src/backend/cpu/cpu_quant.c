/*
 * cpu_quant.c — out[T, N] = x[T, K] · W^T for an affine-quantized W (backend/formats.h), few rows:
 * the decode GEMV. It reads the packed codes, never a decoded copy of the weight:
 *
 *     out[t, n] = Σ_g ( scale[n, g] · Σ_{k in g} q[n, k] · x[t, k]  +  bias[n, g] · Σ_{k in g} x[t, k] )
 *
 * (the same regrouping MLX's kernels use). The group sums of x are formed once per call; each
 * group's codes are unpacked once into floats and dotted with every token's x. Codes of 2, 4 and 8
 * bits unpack with shifts within a word; 3, 5 and 6 bits take the bit-stream reader. Prefill (many
 * rows) decodes chunks of rows with gm_weight_row_f32 and hands them to sgemm (cpu_matmul.c).
 * Tested by tests/ops/test_ops.c (affine matmul cases against the float64 reference).
 */
#include "backend/cpu/cpu_internal.h"
#include "util/dtype.h"

static inline float table_f32(const void *p, gm_wtype t, int64_t i) {
    if (t == GM_W_F32) return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return t == GM_W_BF16 ? gm_bf16_to_f32(h) : gm_f16_to_f32(h);
}

/* One group's codes as floats, code i at q[i] (gm_affine_unpack_group's values): 4 bits eight
 * codes at a time (a word broadcast to eight lanes, each shifted to its code), as a vector, which
 * the compiler did not make of gm_affine_unpack_group's loop (with the dots, 80% of a q4 decode;
 * 2x faster since); other widths through gm_affine_unpack_group (8 bits: no faster this way). */
static void unpack_group(const uint32_t *w, int32_t bits, int32_t group, float *q) {
    if (bits == 4) {
        const cpu_u32x8 shift = {0, 4, 8, 12, 16, 20, 24, 28};
        for (int32_t j = 0; j < group / 8; j++) {
            const cpu_u32x8 v = (((cpu_u32x8){0} + w[j]) >> shift) & 15u;
            const cpu_f32x8 f = __builtin_convertvector(v, cpu_f32x8);
            memcpy(q + 8 * j, &f, sizeof f);
        }
    } else {
        gm_affine_unpack_group(w, bits, group, q);
    }
}

void cpu_affine_gemv(cpu_exec *cx, float *out, const float *x, const gm_weight *W, const float *bias, int32_t T) {
    const int64_t N = W->rows, K = W->cols;
    const int32_t bits = W->q.bits, group = W->q.group;
    const int64_t G = K / group;
    const size_t row_words = (size_t)K * (size_t)bits / 32, group_words = (size_t)group * (size_t)bits / 32;
    /* Σx per token and group. */
    float *xsum = cx->affine_xsum;
    for (int32_t t = 0; t < T; t++)
        for (int64_t g = 0; g < G; g++) {
            const float *xg = x + (int64_t)t * K + g * group;
            float s = 0;
            for (int32_t i = 0; i < group; i++) s += xg[i];
            xsum[(int64_t)t * G + g] = s;
        }
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if (N * K * T >= CPU_PARALLEL_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        float *q = cpu_thread_scratch(cx); /* one group's codes as floats */
        const uint32_t *wrow = (const uint32_t *)W->data + (size_t)n * row_words;
        float acc[8] = {0};
        for (int64_t g = 0; g < G; g++) {
            unpack_group(wrow + (size_t)g * group_words, bits, group, q);
            const float s = table_f32(W->scales, W->q.scale_type, n * G + g);
            const float b = table_f32(W->biases, W->q.scale_type, n * G + g);
            for (int32_t t = 0; t < T; t++)
                acc[t] += s * cpu_dot(q, x + (int64_t)t * K + g * group, group) + b * xsum[(int64_t)t * G + g];
        }
        const float bn = bias ? bias[n] : 0.0f;
        for (int32_t t = 0; t < T; t++) out[(int64_t)t * N + n] = acc[t] + bn;
    }
}
