/*
 * cpu_quant.c — out[T, N] = x[T, K] · W^T for an affine-quantized W (backend/formats.h), few rows:
 * the decode GEMV. It reads the packed codes, never a decoded copy of the weight:
 *
 *     out[t, n] = Σ_g ( scale[n, g] · Σ_{k in g} q[n, k] · x[t, k]  +  bias[n, g] · Σ_{k in g} x[t, k] )
 *
 * (the same regrouping MLX's kernels use). The group sums of x are formed once per call. Codes of
 * 4 and 8 bits become floats eight at a time in registers, used for every token's x, and each
 * group's lanes are scaled as they are and summed once per row (affine_row); 2, 3, 5 and 6 bits
 * are unpacked a group at a time into floats (shifts within a word for 2, the bit-stream reader
 * for the others) and dotted with every token's x. Prefill (many
 * rows) decodes chunks of rows with gm_weight_row_f32 and hands them to sgemm (cpu_matmul.c).
 * Tested by tests/ops/test_ops.c (affine matmul cases against the float64 reference).
 */
#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "backend/cpu/cpu_internal.h"
#include "util/dtype.h"

static inline float table_f32(const void *p, gm_wtype t, int64_t i) {
    if (t == GM_W_F32) return ((const float *)p)[i];
    const uint16_t h = ((const uint16_t *)p)[i];
    return t == GM_W_BF16 ? gm_bf16_to_f32(h) : gm_f16_to_f32(h);
}

/* Codes 8c .. 8c + 7 of a group of 4- or 8-bit codes as floats (gm_affine_unpack_group's
 * values): a 4-bit word broadcast to eight lanes, each shifted to its code; 8 bits are bytes. */
static inline __attribute__((always_inline)) void codes8(cpu_f32x8 *f, const uint32_t *w, int32_t bits, int32_t c) {
    if (bits == 4) {
        const cpu_u32x8 shift = {0, 4, 8, 12, 16, 20, 24, 28};
        const cpu_u32x8 v = (((cpu_u32x8){0} + w[c]) >> shift) & 15u;
        *f = __builtin_convertvector(v, cpu_f32x8);
    } else {
#ifdef __AVX2__ /* one vpmovzxbd: GCC scalarizes the generic byte widening below */
        const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(w + 2 * c))));
        memcpy(f, &v, sizeof *f);
#else
        typedef uint8_t u8x8 __attribute__((vector_size(8)));
        u8x8 b;
        memcpy(&b, (const uint8_t *)w + 8 * c, sizeof b);
        *f = __builtin_convertvector(__builtin_convertvector(b, cpu_u32x8), cpu_f32x8);
#endif
    }
}

/* Row n of a 4- or 8-bit W against T (1..8) token rows, acc[t] the row's dot with x_t: per group,
 * the codes are made floats eight at a time in registers and used for every token (no scratch
 * copy), the eight lanes of Σ q·x stay apart and are scaled as they are (scale · lanes), so the
 * lanes are summed once per row rather than once per group (that horizontal sum, one chain of
 * dependent adds per group and token, was most of a q4 / q8 decode). T is a constant in each
 * call site (always_inline), so the partial sums stay in registers. */
static inline __attribute__((always_inline)) void affine_row(const gm_weight *W, int64_t n, const uint32_t *wrow,
                                                             size_t group_words, const float *x, const float *xsum,
                                                             int64_t K, int64_t G, int32_t T, float *acc) {
    const int32_t bits = W->q.bits, group = W->q.group;
    cpu_f32x8 lanes[CPU_GEMV_MAX_ROWS];
    float bsum[CPU_GEMV_MAX_ROWS];
    for (int32_t t = 0; t < T; t++) {
        lanes[t] = (cpu_f32x8){0};
        bsum[t] = 0;
    }
    for (int64_t g = 0; g < G; g++) {
        const uint32_t *wg = wrow + (size_t)g * group_words;
        cpu_f32x8 d[CPU_GEMV_MAX_ROWS];
        for (int32_t t = 0; t < T; t++) d[t] = (cpu_f32x8){0};
        for (int32_t c = 0; c < group / 8; c++) {
            cpu_f32x8 q, xv;
            codes8(&q, wg, bits, c);
            for (int32_t t = 0; t < T; t++) {
                cpu_load_f32x8(&xv, x + (int64_t)t * K + g * group + 8 * c);
                d[t] += q * xv;
            }
        }
        const float sc = table_f32(W->scales, W->q.scale_type, n * G + g);
        const float b = table_f32(W->biases, W->q.scale_type, n * G + g);
        for (int32_t t = 0; t < T; t++) {
            lanes[t] += d[t] * sc;
            bsum[t] += b * xsum[(int64_t)t * G + g];
        }
    }
    for (int32_t t = 0; t < T; t++) {
        float s = bsum[t];
        for (int l = 0; l < 8; l++) s += lanes[t][l];
        acc[t] = s;
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
    const bool fused = bits == 4 || bits == 8; /* groups are 32, 64 or 128: whole vectors of 8 */
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if (N * K * T >= CPU_PARALLEL_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        const uint32_t *wrow = (const uint32_t *)W->data + (size_t)n * row_words;
        float acc[CPU_GEMV_MAX_ROWS] = {0};
        if (fused) {
            switch (T) { /* a constant T per call: the partial sums in registers */
            case 1: affine_row(W, n, wrow, group_words, x, xsum, K, G, 1, acc); break;
            case 2: affine_row(W, n, wrow, group_words, x, xsum, K, G, 2, acc); break;
            case 3: affine_row(W, n, wrow, group_words, x, xsum, K, G, 3, acc); break;
            case 4: affine_row(W, n, wrow, group_words, x, xsum, K, G, 4, acc); break;
            default: affine_row(W, n, wrow, group_words, x, xsum, K, G, T, acc); break;
            }
        } else { /* 2, 3, 5, 6 bits: the group unpacked into floats, then dotted */
            float *q = cpu_thread_scratch(cx);
            for (int64_t g = 0; g < G; g++) {
                gm_affine_unpack_group(wrow + (size_t)g * group_words, bits, group, q);
                const float s = table_f32(W->scales, W->q.scale_type, n * G + g);
                const float b = table_f32(W->biases, W->q.scale_type, n * G + g);
                for (int32_t t = 0; t < T; t++)
                    acc[t] += s * cpu_dot(q, x + (int64_t)t * K + g * group, group) + b * xsum[(int64_t)t * G + g];
            }
        }
        const float bn = bias ? bias[n] : 0.0f;
        for (int32_t t = 0; t < T; t++) out[(int64_t)t * N + n] = acc[t] + bn;
    }
}
