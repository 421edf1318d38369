/*
 * normalize.h — the tokenizer.json "normalizer": a sequence of text rewrites applied to each piece
 * of input that is not an added token, before pre-tokenization.
 *
 * Supported (the types Hugging Face byte-level BPE files use): NFC, NFD, NFKC, NFKD (through
 * utf8proc), Prepend, Replace (String or Regex pattern), and Sequence of these. Anything else
 * (Lowercase, Strip, BertNormalizer, Precompiled, ...) is refused by the loader.
 *
 * Unicode normalization is the costly part, and most text is already in every normal form, so each
 * NF step scans the piece for code points that are not "inert" (inert: combining class 0, cannot
 * compose with what precedes it, no decomposition that this form applies, not Hangul jamo) and
 * hands utf8proc only the short runs around those; the rest is copied (a piece with none is left
 * untouched). Randomized tests check this against utf8proc run on whole strings, and every code
 * point called inert against utf8proc (tests/unit/test_tokenizer_parts.c).
 *
 * Unicode versions: utf8proc 2.8 implements Unicode 15; HF's Rust normalizer may be older. Only
 * code points assigned in between can differ.
 */
#ifndef GLMOE_TOKENIZER_NORMALIZE_H
#define GLMOE_TOKENIZER_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_buf.h"
#include "tokenizer/tok_regex.h"
#include "util/error.h"

typedef enum gm_norm_kind {
    GM_NORM_NFC,
    GM_NORM_NFD,
    GM_NORM_NFKC,
    GM_NORM_NFKD,
    GM_NORM_PREPEND,
    GM_NORM_REPLACE,
} gm_norm_kind;

typedef struct gm_norm_step {
    gm_norm_kind kind;
    uint8_t *inert;      /* NF*: bit per BMP code point, set = unchanged by this form in any context */
    char *text;          /* Prepend: the prefix; Replace: the replacement                             */
    size_t text_len;
    gm_tok_regex pattern; /* Replace                                                                  */
} gm_norm_step;

typedef struct gm_normalizer {
    gm_norm_step *steps;
    size_t n;
} gm_normalizer;

/* Appends a step. text/pattern are copied. `where` names the JSON field for errors. */
glmoe_status gm_normalizer_add_nf(gm_normalizer *nz, gm_norm_kind kind, gm_err *err);
glmoe_status gm_normalizer_add_prepend(gm_normalizer *nz, const char *text, size_t len, gm_err *err);
glmoe_status gm_normalizer_add_replace(gm_normalizer *nz, const char *pattern, size_t pattern_len,
                                       bool literal, const char *content, size_t content_len,
                                       const char *where, gm_err *err);
void gm_normalizer_free(gm_normalizer *nz);

/* Scratch for gm_normalize; zero-initialise, free with gm_norm_scratch_free. */
typedef struct gm_norm_scratch {
    gm_tok_bytes a, b;
    OnigRegion *region;
} gm_norm_scratch;
void gm_norm_scratch_free(gm_norm_scratch *s);

/* Normalizes in[0..n) (well-formed UTF-8) and appends the result to out. */
glmoe_status gm_normalize(const gm_normalizer *nz, const uint8_t *in, size_t n, gm_tok_bytes *out,
                          gm_norm_scratch *scratch, gm_err *err);

/* True when code point cp is left unchanged by `kind` whatever surrounds it (exposed for the test
 * that checks the fast path against utf8proc). */
bool gm_norm_inert(gm_norm_kind kind, int32_t cp);

#endif
