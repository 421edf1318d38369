/*
 * formats.h — how a weight's numbers are stored, and what every backend may ask of a format.
 *
 * A weight is dense (F32, BF16 or F16 elements, row-major [rows, cols]) or affine-quantized as MLX
 * writes it (../spec: quantization.md §2-4, restated in docs/spec/quantization.md): each row's codes
 * packed LSB-first into little-endian uint32 words, `bits` per code; each group of `group`
 * consecutive elements of a row has a scale and a bias (F32, BF16 or F16), and
 *     w[r, c] = scale[r, c / group] * q[r, c] + bias[r, c / group].
 * Legal: bits 2, 3, 4, 5, 6, 8; group 32, 64, 128, dividing cols (so every row and group starts on
 * a word). The traits here (names, sizes, a row decoded to float32 on the host) are the one
 * place a format is described: backends and tools consult them, and a backend says which formats
 * its ops take (gm_backend_ops.supports), so that an unknown one is an error, never read as float.
 *
 * Also the affine quantizer: MLX's algorithm as its CPU kernel runs it (formats.c says which of
 * MLX's two behaviours and why). Tested in tests/unit/test_formats.c against MLX's own output.
 */
#ifndef GLMOE_BACKEND_FORMATS_H
#define GLMOE_BACKEND_FORMATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum gm_wtype {
    GM_W_F32 = 0,
    GM_W_BF16,
    GM_W_F16,
    GM_W_AFFINE,   /* packed codes + scales + biases per group (gm_affine) */
} gm_wtype;

/* The parameters of an affine weight. */
typedef struct gm_affine {
    int32_t bits;          /* 2, 3, 4, 5, 6, 8 */
    int32_t group;         /* 32, 64, 128 */
    gm_wtype scale_type;   /* F32, BF16 or F16: the dtype of scales and biases */
} gm_affine;

/* A weight tensor bound to a backend. A vector is rows = 1. [rows, cols] is the logical shape
 * (the Hugging Face layout: rows = out features, cols = in features) whatever the format. */
typedef struct gm_weight {
    gm_wtype type;
    gm_affine q;           /* type == GM_W_AFFINE only */
    int64_t rows, cols;
    const void *data;      /* backend memory: elements, or the packed codes; NULL when the tensor
                              is absent (optional weights) */
    const void *scales, *biases; /* affine: [rows, cols / group] of q.scale_type */
    void *owned;           /* what the backend allocated for it (released by weight_release) */
} gm_weight;

/* "F32", "BF16", "F16", "affine" (static strings). */
const char *gm_wtype_name(gm_wtype t);
/* Bytes per element of the dense types (and of scale types); 0 for GM_W_AFFINE. */
size_t gm_wtype_size(gm_wtype t);
/* "BF16", or "q4 g64 (BF16 scales)" for an affine weight, into buf (returned). */
const char *gm_weight_format_name(const gm_weight *w, char *buf, size_t size);
/* Two weights store their numbers the same way (type, and the affine parameters). */
bool gm_same_format(const gm_weight *a, const gm_weight *b);

/* Bytes of one row of data (elements or packed codes), and of one row of scales (as of biases;
 * 0 for dense weights). */
size_t gm_weight_row_bytes(const gm_weight *w);
size_t gm_weight_scale_row_bytes(const gm_weight *w);
/* Bytes of the whole weight in its format: data plus scales and biases. */
uint64_t gm_weight_bytes(const gm_weight *w);

/* dst[0..n) = float32 of row `row`, columns [c0, c0 + n), of a weight in host memory, any format
 * (affine: decoded exactly as MLX's dequantize to float32: scale * q + bias, rounded twice). */
void gm_weight_row_f32(const gm_weight *w, int64_t row, int64_t c0, int64_t n, float *dst);

/* ---- affine ------------------------------------------------------------------------------- */

/* bits and group form a legal affine format (MLX's set). */
bool gm_affine_legal(int32_t bits, int32_t group);

/* Code i of a packed row (the bit stream of quantization.md §3: bits [i*b, i*b + b)). */
static inline uint32_t gm_affine_code(const uint32_t *row, int32_t bits, int64_t i) {
    const int64_t p = i * bits;
    const int64_t word = p >> 5;
    const int off = (int)(p & 31);
    uint64_t v = row[word] >> off;
    if (off + bits > 32) v |= (uint64_t)row[word + 1] << (32 - off);
    return (uint32_t)v & ((1u << bits) - 1u);
}

/* The `group` codes starting at word w (a group starts on a word) as floats q[0..group). */
void gm_affine_unpack_group(const uint32_t *w, int32_t bits, int32_t group, float *q);

/* Packs codes[0..cols) (each < 2^bits) into cols * bits / 32 words. */
void gm_affine_pack_row(const uint8_t *codes, int64_t cols, int32_t bits, uint32_t *row);

/* Quantizes one row w[0..cols) as MLX's CPU kernel does (formats.c): the packed codes into
 * row[cols * bits / 32], and per group a scale and a bias of scale_type into scales[cols / group],
 * biases[cols / group] (raw little-endian values). cols must be a multiple of group. */
void gm_affine_quantize_row(const float *w, int64_t cols, const gm_affine *q, uint32_t *row, void *scales,
                            void *biases);

/* Rounds v[0..n) in place to the precision of t (BF16, F16: to nearest even; F32: unchanged): the
 * cast mlx-lm applies to a model (to its dtype, the scales' type) before quantizing it. */
void gm_round_to_type(float *v, int64_t n, gm_wtype t);

#endif
