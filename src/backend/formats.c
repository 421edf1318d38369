/*
 * formats.c — the weight formats' traits (formats.h) and the affine quantizer.
 *
 * The quantizer follows MLX's CPU kernel (mlx/backend/cpu/quantized.cpp `quantize`, checked
 * against mlx 0.32.4 on the CPU by tests/unit/test_formats.c), not its Metal/CUDA kernels: the
 * CPU kernel is the one `mlx_lm.convert` runs on a Linux machine, the one the reference tests
 * can run, and the one whose result does not depend on the sign of a group (the GPU kernels
 * start the running maximum at 0, so an all-negative group gets another scale). Per group, in
 * float32:
 *     lo, hi = min, max (from +inf / -inf);  s = max((hi - lo) / (2^b - 1), 1e-7)
 *     edge = the endpoint of larger magnitude (hi on a tie), s negated when edge = hi
 *     q0 = rint(edge / s);  scale, bias = q0 != 0 ? (edge / q0, edge) : (s, 0)
 *     q = clamp(rint((w - bias) / scale), 0, 2^b - 1)      (rint: ties to even, as the CPU)
 * and scale and bias are stored rounded to the scale type (round to nearest even).
 *
 * Decoding (gm_weight_row_f32) widens scale and bias to float32 and computes scale * q + bias
 * in float32, as MLX's matrix kernels and its float32 forward do. (MLX's own `dequantize` of
 * BF16/F16 scales rounds each product and sum to the scale type first; glmoe keeps float32.)
 */
#include "backend/formats.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "util/dtype.h"

const char *gm_wtype_name(gm_wtype t) {
    switch (t) {
    case GM_W_F32: return "F32";
    case GM_W_BF16: return "BF16";
    case GM_W_F16: return "F16";
    case GM_W_AFFINE: return "affine";
    }
    return "?";
}

size_t gm_wtype_size(gm_wtype t) {
    switch (t) {
    case GM_W_F32: return 4;
    case GM_W_BF16:
    case GM_W_F16: return 2;
    case GM_W_AFFINE: return 0;
    }
    return 0;
}

const char *gm_weight_format_name(const gm_weight *w, char *buf, size_t size) {
    if (w->type == GM_W_AFFINE)
        snprintf(buf, size, "q%d g%d (%s scales)", (int)w->q.bits, (int)w->q.group, gm_wtype_name(w->q.scale_type));
    else
        snprintf(buf, size, "%s", gm_wtype_name(w->type));
    return buf;
}

bool gm_same_format(const gm_weight *a, const gm_weight *b) {
    if (a->type != b->type) return false;
    return a->type != GM_W_AFFINE ||
           (a->q.bits == b->q.bits && a->q.group == b->q.group && a->q.scale_type == b->q.scale_type);
}

size_t gm_weight_row_bytes(const gm_weight *w) {
    if (w->type == GM_W_AFFINE) return (size_t)w->cols * (size_t)w->q.bits / 8;
    return (size_t)w->cols * gm_wtype_size(w->type);
}

size_t gm_weight_scale_row_bytes(const gm_weight *w) {
    if (w->type != GM_W_AFFINE) return 0;
    return (size_t)(w->cols / w->q.group) * gm_wtype_size(w->q.scale_type);
}

uint64_t gm_weight_bytes(const gm_weight *w) {
    return (uint64_t)w->rows * (gm_weight_row_bytes(w) + 2 * gm_weight_scale_row_bytes(w));
}

bool gm_affine_legal(int32_t bits, int32_t group) {
    const bool b = bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8;
    return b && (group == 32 || group == 64 || group == 128);
}

/* Element i of a row of t (raw little-endian values; any alignment) as float32. */
static inline float scalar_f32(const void *p, gm_wtype t, int64_t i) {
    const uint8_t *b = p;
    uint16_t h;
    float f;
    switch (t) {
    case GM_W_BF16: memcpy(&h, b + 2 * i, 2); return gm_bf16_to_f32(h);
    case GM_W_F16: memcpy(&h, b + 2 * i, 2); return gm_f16_to_f32(h);
    default: memcpy(&f, b + 4 * i, 4); return f;
    }
}

static inline void store_scalar(void *p, gm_wtype t, int64_t i, float v) {
    uint8_t *b = p;
    uint16_t h;
    switch (t) {
    case GM_W_BF16: h = gm_f32_to_bf16(v); memcpy(b + 2 * i, &h, 2); break;
    case GM_W_F16: h = gm_f32_to_f16(v); memcpy(b + 2 * i, &h, 2); break;
    default: memcpy(b + 4 * i, &v, 4); break;
    }
}

void gm_affine_unpack_group(const uint32_t *w, int32_t bits, int32_t group, float *q) {
    switch (bits) {
    case 4:
        for (int32_t j = 0; j < group / 8; j++) {
            const uint32_t v = w[j];
            for (int k = 0; k < 8; k++) q[8 * j + k] = (float)((v >> (4 * k)) & 15u);
        }
        return;
    case 8:
        for (int32_t j = 0; j < group / 4; j++) {
            const uint32_t v = w[j];
            for (int k = 0; k < 4; k++) q[4 * j + k] = (float)((v >> (8 * k)) & 255u);
        }
        return;
    case 2:
        for (int32_t j = 0; j < group / 16; j++) {
            const uint32_t v = w[j];
            for (int k = 0; k < 16; k++) q[16 * j + k] = (float)((v >> (2 * k)) & 3u);
        }
        return;
    default:
        for (int32_t i = 0; i < group; i++) q[i] = (float)gm_affine_code(w, bits, i);
    }
}

void gm_weight_row_f32(const gm_weight *w, int64_t row, int64_t c0, int64_t n, float *dst) {
    if (w->type != GM_W_AFFINE) {
        const size_t esz = gm_wtype_size(w->type);
        const uint8_t *src = (const uint8_t *)w->data + ((size_t)row * (size_t)w->cols + (size_t)c0) * esz;
        /* One loop per type, so that each vectorizes (a type switch per element does not). */
        if (w->type == GM_W_F32) {
            memcpy(dst, src, (size_t)n * 4);
        } else if (w->type == GM_W_BF16) {
            for (int64_t i = 0; i < n; i++) dst[i] = scalar_f32(src, GM_W_BF16, i);
        } else {
            for (int64_t i = 0; i < n; i++) dst[i] = scalar_f32(src, GM_W_F16, i);
        }
        return;
    }
    /* Affine: the row's words may be unaligned in a mapping; read them through memcpy when so. */
    const int32_t bits = w->q.bits, group = w->q.group;
    const size_t row_bytes = gm_weight_row_bytes(w), srow = gm_weight_scale_row_bytes(w);
    const uint8_t *codes = (const uint8_t *)w->data + (size_t)row * row_bytes;
    const uint8_t *sc = (const uint8_t *)w->scales + (size_t)row * srow;
    const uint8_t *bi = (const uint8_t *)w->biases + (size_t)row * srow;
    uint32_t aligned_words[64];
    const uint32_t *words;
    int64_t first = c0, done = 0;
    while (done < n) {
        /* One group at a time: its words, its scale and bias. */
        const int64_t g = (first + done) / group, g0 = g * group;
        const int64_t from = first + done - g0, to = (first + n - g0 < group) ? first + n - g0 : group;
        const size_t word0 = (size_t)g0 * (size_t)bits / 32, n_words = (size_t)group * (size_t)bits / 32;
        if (((uintptr_t)(codes + 4 * word0) & 3) == 0) {
            words = (const uint32_t *)(const void *)(codes + 4 * word0);
        } else {
            memcpy(aligned_words, codes + 4 * word0, n_words * 4);
            words = aligned_words;
        }
        const float s = scalar_f32(sc, w->q.scale_type, g), b = scalar_f32(bi, w->q.scale_type, g);
        if (from == 0 && to == group) { /* a whole group: unpack it at once */
            float q[128];
            gm_affine_unpack_group(words, bits, group, q);
            for (int32_t i = 0; i < group; i++) {
                const float t = s * q[i];
                dst[done++] = t + b;
            }
            continue;
        }
        for (int64_t i = from; i < to; i++) {
            const float t = s * (float)gm_affine_code(words, bits, i);
            dst[done++] = t + b;
        }
    }
}

void gm_affine_pack_row(const uint8_t *codes, int64_t cols, int32_t bits, uint32_t *row) {
    memset(row, 0, (size_t)cols * (size_t)bits / 8);
    for (int64_t i = 0; i < cols; i++) {
        const int64_t p = i * bits;
        const int64_t word = p >> 5;
        const int off = (int)(p & 31);
        const uint64_t v = (uint64_t)codes[i] << off;
        row[word] |= (uint32_t)v;
        if (off + bits > 32) row[word + 1] |= (uint32_t)(v >> 32);
    }
}

void gm_affine_quantize_row(const float *w, int64_t cols, const gm_affine *q, uint32_t *row, void *scales,
                            void *biases) {
    const int32_t bits = q->bits, group = q->group;
    const float n_bins = (float)((1 << bits) - 1);
    uint8_t codes[128];
    for (int64_t g0 = 0, gi = 0; g0 < cols; g0 += group, gi++) {
        const float *v = w + g0;
        float lo = INFINITY, hi = -INFINITY;
        for (int32_t i = 0; i < group; i++) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
        }
        float s = (hi - lo) / n_bins;
        s = s > 1e-7f ? s : 1e-7f;
        const bool lo_edge = fabsf(lo) > fabsf(hi);
        const float edge = lo_edge ? lo : hi;
        if (!lo_edge) s = -s;
        const float q0 = rintf(edge / s);
        float scale = s, bias = 0.0f;
        if (q0 != 0.0f) {
            scale = edge / q0;
            bias = edge;
        }
        for (int32_t i = 0; i < group; i++) {
            float c = rintf((v[i] - bias) / scale);
            c = c < 0.0f ? 0.0f : c > n_bins ? n_bins : c;
            codes[i] = (uint8_t)c;
        }
        gm_affine_pack_row(codes, group, bits, row + (size_t)g0 * (size_t)bits / 32);
        store_scalar(scales, q->scale_type, gi, scale);
        store_scalar(biases, q->scale_type, gi, bias);
    }
}

void gm_round_to_type(float *v, int64_t n, gm_wtype t) {
    if (t == GM_W_BF16)
        for (int64_t i = 0; i < n; i++) v[i] = gm_bf16_to_f32(gm_f32_to_bf16(v[i]));
    else if (t == GM_W_F16)
        for (int64_t i = 0; i < n; i++) v[i] = gm_f16_to_f32(gm_f32_to_f16(v[i]));
}
