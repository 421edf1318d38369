/*
 * test_formats.c — the weight formats of backend/formats.c: MLX's affine packing, quantizer and
 * decoding, and the float16 conversion they use.
 *
 *   1. pack / unpack round trips for every bit width on random codes, rows of several groups;
 *   2. the worked examples of docs/spec/quantization.md §9 (A-D, G-J), bit for bit: codes, words,
 *      scales, biases and decoded values, with MLX's CPU behaviour where the GPU's differs (the
 *      tie of Example H rounds to even; the all-negative group of Example J keeps its maximum);
 *   3. MLX's own output (tests/data/quant/, made by tools/reference/make_quant_vectors.py with
 *      mlx on the CPU): for every bits x group x input dtype, glmoe's quantizer gives MLX's codes,
 *      scales and biases byte for byte, and gm_weight_row_f32 decodes them to MLX's dequantize of
 *      the float32-widened scales exactly (and to MLX's own dequantize within one rounding of
 *      the scale dtype);
 *   4. float32 -> float16 round to nearest even over every f16 value and every midpoint.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/formats.h"
#include "io/safetensors.h"
#include "test.h"
#include "util/dtype.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 16);
}

static void test_pack_roundtrip(void) {
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    for (size_t b = 0; b < 6; b++) {
        for (int64_t cols = 32; cols <= 32 * 9; cols += 32 * 4) { /* 1, 5, 9 words' worth of groups */
            uint8_t codes[288], back[288];
            uint32_t row[288];
            for (int64_t i = 0; i < cols; i++) codes[i] = (uint8_t)(rnd() & ((1u << bits[b]) - 1));
            gm_affine_pack_row(codes, cols, bits[b], row);
            bool same = true;
            for (int64_t i = 0; i < cols; i++) {
                back[i] = (uint8_t)gm_affine_code(row, bits[b], i);
                same = same && back[i] == codes[i];
            }
            CHECK(same, "pack/unpack of %lld %d-bit codes", (long long)cols, bits[b]);
            /* The bit stream: code i at bits [i*b, i*b + b) of the row, least significant first. */
            bool stream = true;
            for (int64_t i = 0; i < cols; i++)
                for (int k = 0; k < bits[b]; k++) {
                    const int64_t p = i * bits[b] + k;
                    stream = stream && (((row[p >> 5] >> (p & 31)) & 1u) == ((codes[i] >> k) & 1u));
                }
            CHECK(stream, "%d-bit codes follow the bit-stream layout", bits[b]);
        }
    }
}

/* One group of 32 made of an 8-value pattern repeated, quantized to `bits` with F32 scales. */
typedef struct example {
    const char *name;
    int bits;
    float pattern[8];
    uint32_t word0;       /* the first packed word */
    float scale, bias;
    uint8_t codes[8];
} example;

static void test_examples(void) {
    static const example ex[] = {
        {"A", 4, {-5, -3, 0, 1, 2, 4, 7, 10}, 0x03689ADFu, -1.0f, 10.0f, {15, 13, 10, 9, 8, 6, 3, 0}},
        {"B", 4, {-10, -7, -1, 0, 1, 2, 3, 5}, 0xFDCBA930u, 1.0f, -10.0f, {0, 3, 9, 10, 11, 12, 13, 15}},
        {"C", 4, {-0.75f, -0.5f, 0, 0.25f, 1, 1.5f, 2.75f, 3}, 0x0168BCEFu, -0.25f, 3.0f, {15, 14, 12, 11, 8, 6, 1, 0}},
        {"D", 3, {7, 6, 5, 4, 3, 2, 1, 0}, 0x88FAC688u, -1.0f, 7.0f, {0, 1, 2, 3, 4, 5, 6, 7}},
        /* H: 3.5 is exactly code 6.5; MLX's CPU rounds half to even (the GPU would give 7). */
        {"H (CPU tie)", 4, {-5, 3.5f, 0, 1, 2, 4, 7, 10}, 0x03689A6Fu, -1.0f, 10.0f, {15, 6, 10, 9, 8, 6, 3, 0}},
        {"I", 4, {-1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 2.5f}, 0x02479BDFu, 2.5f / -11.0f, 2.5f, {15, 13, 11, 9, 7, 4, 2, 0}},
        /* J: all negative; the CPU's range is [-4, -1] (the GPU's [-4, 0]). */
        {"J (CPU, negative)", 4, {-4, -3, -1.75f, -1, -4, -3, -1.75f, -1}, 0xFB50FB50u, 0.2f, -4.0f, {0, 5, 11, 15, 0, 5, 11, 15}},
    };
    for (size_t k = 0; k < sizeof ex / sizeof ex[0]; k++) {
        const example *e = &ex[k];
        float w[32], dec[32];
        for (int i = 0; i < 32; i++) w[i] = e->pattern[i % 8];
        uint32_t row[8];
        float scale, bias;
        const gm_affine q = {e->bits, 32, GM_W_F32};
        gm_affine_quantize_row(w, 32, &q, row, &scale, &bias);
        CHECK(row[0] == e->word0, "example %s: word 0x%08X, want 0x%08X", e->name, row[0], e->word0);
        CHECK(scale == e->scale && bias == e->bias, "example %s: scale %.9g bias %.9g, want %.9g %.9g", e->name,
              scale, bias, e->scale, e->bias);
        bool codes = true;
        for (int i = 0; i < 8; i++) codes = codes && gm_affine_code(row, e->bits, i) == e->codes[i];
        CHECK(codes, "example %s: codes", e->name);
        gm_weight g = {.type = GM_W_AFFINE, .q = q, .rows = 1, .cols = 32, .data = row, .scales = &scale, .biases = &bias};
        gm_weight_row_f32(&g, 0, 0, 32, dec);
        bool exact = true;
        for (int i = 0; i < 32; i++) exact = exact && dec[i] == scale * (float)e->codes[i % 8] + bias;
        CHECK(exact, "example %s: decoded values", e->name);
    }
    /* D: the straddling 3-bit codes, every word. */
    {
        float w[32];
        for (int i = 0; i < 32; i++) w[i] = (float)(7 - i % 8);
        uint32_t row[3];
        float s, b;
        const gm_affine q = {3, 32, GM_W_F32};
        gm_affine_quantize_row(w, 32, &q, row, &s, &b);
        CHECK(row[0] == 0x88FAC688u && row[1] == 0xC688FAC6u && row[2] == 0xFAC688FAu, "example D words %08X %08X %08X",
              row[0], row[1], row[2]);
    }
    /* Example I with BF16 scales: stored -0.2275390625 (0xBE69) and 2.5 (0x4020). */
    {
        float w[32];
        static const float pat[8] = {-1, -0.5f, 0, 0.5f, 1, 1.5f, 2, 2.5f};
        for (int i = 0; i < 32; i++) w[i] = pat[i % 8];
        uint32_t row[4];
        uint16_t s, b;
        const gm_affine q = {4, 32, GM_W_BF16};
        gm_affine_quantize_row(w, 32, &q, row, &s, &b);
        CHECK(s == 0xBE69 && b == 0x4020, "example I in BF16: scale %04X bias %04X", s, b);
        gm_weight g = {.type = GM_W_AFFINE, .q = q, .rows = 1, .cols = 32, .data = row, .scales = &s, .biases = &b};
        float dec[32];
        gm_weight_row_f32(&g, 0, 0, 32, dec);
        CHECK(fabsf(dec[2] - -0.0029296875f) < 1e-9f, "example I: zero decodes to %.9g (the stored scale moves it)",
              dec[2]);
    }
    /* Constant groups: all codes 0, decoding to the value; zero to zero. */
    {
        float w[64];
        for (int i = 0; i < 32; i++) w[i] = 0.5f, w[32 + i] = 0.0f;
        uint32_t row[8];
        float s[2], b[2], dec[64];
        const gm_affine q = {4, 32, GM_W_F32};
        gm_affine_quantize_row(w, 64, &q, row, s, b);
        gm_weight g = {.type = GM_W_AFFINE, .q = q, .rows = 1, .cols = 64, .data = row, .scales = s, .biases = b};
        gm_weight_row_f32(&g, 0, 0, 64, dec);
        CHECK(row[0] == 0 && row[4] == 0 && dec[0] == 0.5f && dec[40] == 0.0f && b[1] == 0.0f,
              "constant groups: %g %g", dec[0], dec[40]);
    }
    /* Example G: 8 bits. */
    {
        float w[32];
        for (int i = 0; i < 31; i++) w[i] = (float)i;
        w[31] = 255;
        uint32_t row[8];
        float s, b;
        const gm_affine q = {8, 32, GM_W_F32};
        gm_affine_quantize_row(w, 32, &q, row, &s, &b);
        CHECK(row[0] == 0xFCFDFEFFu && row[1] == 0xF8F9FAFBu && row[7] == 0x00E1E2E3u && s == -1.0f && b == 255.0f,
              "example G: %08X %08X %08X", row[0], row[1], row[7]);
    }
}

/* A row decoded from any offset equals the whole row's slice (the path the ops use for chunks). */
static void test_partial_rows(void) {
    float w[256], whole[256], part[256];
    for (int i = 0; i < 256; i++) w[i] = (float)((int)(rnd() % 2001) - 1000) / 700.0f;
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    for (int b = 0; b < 6; b++)
        for (int group = 32; group <= 128; group *= 2) {
            uint32_t row[64];
            uint16_t s[8], bi[8];
            const gm_affine q = {bits[b], group, GM_W_F16};
            gm_affine_quantize_row(w, 256, &q, row, s, bi);
            gm_weight g = {.type = GM_W_AFFINE, .q = q, .rows = 1, .cols = 256, .data = row, .scales = s, .biases = bi};
            gm_weight_row_f32(&g, 0, 0, 256, whole);
            gm_weight_row_f32(&g, 0, 37, 150, part);
            CHECK(!memcmp(part, whole + 37, 150 * sizeof(float)), "q%d g%d: a row decoded from column 37", bits[b], group);
            double err = 0, range = 0;
            for (int i = 0; i < 256; i++) {
                err = fmax(err, fabs((double)whole[i] - w[i]));
                range = fmax(range, fabs(w[i]));
            }
            /* At most about half a step of the group's range (plus the nudge of the edge rule). */
            CHECK(err <= 2.0 * range * 2 / ((1 << bits[b]) - 1) * 0.6 + 1e-3, "q%d g%d: decode error %g", bits[b], group,
                  err);
        }
}

static void test_f16(void) {
    long bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 31) == 31 && (h & 1023)) continue; /* NaNs */
        if (gm_f32_to_f16(gm_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    for (uint32_t h = 0; h < 0x7bff; h++) { /* midpoints go to the even neighbour, above them up */
        const float a = gm_f16_to_f32((uint16_t)h), b = gm_f16_to_f32((uint16_t)(h + 1)), m = (a + b) / 2;
        if (gm_f32_to_f16(m) != ((h & 1) ? h + 1 : h)) bad++;
        if (gm_f32_to_f16(nextafterf(m, 1e9f)) != h + 1) bad++;
    }
    CHECK(bad == 0, "float16 conversion: %ld values wrong", bad);
    CHECK(gm_f32_to_f16(65520.0f) == 0x7c00 && gm_f32_to_f16(65519.0f) == 0x7bff && gm_f32_to_f16(-0.0f) == 0x8000,
          "float16 overflow and signs");
}

/* ---- MLX's own output ------------------------------------------------------------------------- */

static const st_tensor *need(const st_file *f, const char *name) {
    const st_tensor *t = st_file_find(f, name);
    CHECK(t != NULL, "tests/data/quant: tensor %s missing", name);
    return t;
}

/* Element i of a tensor of BF16, F16 or F32 values, as float. */
static float dtype_value(const st_tensor *t, gm_wtype type, int64_t i) {
    uint16_t h;
    float f;
    if (type == GM_W_F32) {
        memcpy(&f, t->data + 4 * i, 4);
        return f;
    }
    memcpy(&h, t->data + 2 * i, 2);
    return type == GM_W_BF16 ? gm_bf16_to_f32(h) : gm_f16_to_f32(h);
}

static gm_wtype dtype_of(st_dtype d) { return d == ST_BF16 ? GM_W_BF16 : d == ST_F16 ? GM_W_F16 : GM_W_F32; }

static void test_mlx_vectors(const char *root) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/data/quant/vectors.safetensors", root);
    st_file *f = NULL;
    gm_err err = {0};
    if (st_file_open(&f, path, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    static const char *const dts[] = {"bf16", "f16", "f32"};
    int cases = 0;
    for (int b = 0; b < 6; b++)
        for (int group = 32; group <= 128; group *= 2)
            for (int d = 0; d < 3; d++) {
                char n[96];
#define T(suffix) (snprintf(n, sizeof n, "b%d_g%d_%s.%s", bits[b], group, dts[d], suffix), need(f, n))
                const st_tensor *in = T("input"), *wq = T("weight"), *sc = T("scales"), *bi = T("biases"),
                                *deq = T("dequant"), *deq32 = T("dequant_f32");
#undef T
                if (!in || !wq || !sc || !bi || !deq || !deq32) continue;
                cases++;
                const int64_t rows = (int64_t)in->shape[0], cols = (int64_t)in->shape[1];
                const gm_affine q = {bits[b], group, dtype_of(in->dtype)};
                const gm_weight src = {.type = dtype_of(in->dtype), .rows = rows, .cols = cols, .data = in->data};
                const size_t row_words = (size_t)cols * (size_t)bits[b] / 32, groups = (size_t)(cols / group);
                const size_t esz = gm_wtype_size(q.scale_type);
                uint32_t *codes = malloc((size_t)rows * row_words * 4);
                uint8_t *s = malloc((size_t)rows * groups * esz), *bs = malloc((size_t)rows * groups * esz);
                float *w = malloc((size_t)cols * sizeof(float)), *dec = malloc((size_t)cols * sizeof(float));
                bool same_q = true, exact = true, close = true;
                for (int64_t r = 0; r < rows; r++) {
                    gm_weight_row_f32(&src, r, 0, cols, w);
                    gm_affine_quantize_row(w, cols, &q, codes + r * row_words, s + r * groups * esz,
                                           bs + r * groups * esz);
                }
                same_q = !memcmp(codes, wq->data, (size_t)rows * row_words * 4) &&
                         !memcmp(s, sc->data, (size_t)rows * groups * esz) &&
                         !memcmp(bs, bi->data, (size_t)rows * groups * esz);
                /* Decoding MLX's tensors. */
                const gm_weight mw = {.type = GM_W_AFFINE, .q = q, .rows = rows, .cols = cols, .data = wq->data,
                                      .scales = sc->data, .biases = bi->data};
                for (int64_t r = 0; r < rows; r++) {
                    gm_weight_row_f32(&mw, r, 0, cols, dec);
                    const float *want32 = (const float *)(const void *)deq32->data + r * cols;
                    for (int64_t i = 0; i < cols; i++) {
                        float m;
                        memcpy(&m, (const uint8_t *)deq->data + 4 * (r * cols + i), 4);
                        exact = exact && !memcmp(&dec[i], &want32[i], 4);
                        /* MLX's dequantize rounds the product and then the sum to the scale dtype:
                         * half an ulp of each, relative to the product and to the result. */
                        const double eps = q.scale_type == GM_W_F32 ? 0.0 : q.scale_type == GM_W_BF16 ? 0x1p-8 : 0x1p-11;
                        const float bias = dtype_value(bi, q.scale_type, r * (int64_t)groups + i / group);
                        const double bound = eps * (fabs((double)dec[i] - bias) + fabs((double)m)) + 1e-30;
                        close = close && fabs((double)dec[i] - m) <= bound;
                    }
                }
                CHECK(same_q, "q%d g%d %s: codes, scales and biases differ from mlx.core.quantize", bits[b], group, dts[d]);
                CHECK(exact, "q%d g%d %s: decoding differs from mlx.core.dequantize of float32 scales", bits[b], group,
                      dts[d]);
                CHECK(close, "q%d g%d %s: decoding is not within a rounding of mlx.core.dequantize", bits[b], group,
                      dts[d]);
                free(codes);
                free(s);
                free(bs);
                free(w);
                free(dec);
            }
    CHECK(cases == 54, "%d of 54 MLX cases found", cases);
    printf("MLX vectors: %d cases (bits x group x dtype)\n", cases);
    st_file_close(f);
}

int main(int argc, char **argv) {
    test_pack_roundtrip();
    test_examples();
    test_partial_rows();
    test_f16();
    if (argc > 1) test_mlx_vectors(argv[1]);
    return test_summary("test_formats");
}
