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
 *
 * Output bound: a Replace step can multiply the text (a Sequence of seven Replace steps "a" -> 16
 * "a" turns one byte into 268 MB), so after any step the text is at most GM_NORM_MAX_GROWTH x the
 * input + GM_NORM_MAX_EXTRA bytes, and it never grows past GM_NORM_MAX_BYTES (an input already
 * longer than that may be normalized but not lengthened). The check runs before each write, so
 * memory stays near the limit. Real normalizers stay far inside it: the largest growth of any
 * Unicode form is 11x in UTF-8 (NFKC/NFKD of U+FDFA, UAX #15 section 9), Replace " " -> U+2581
 * (SentencePiece-style files) is 3x, and NFKD followed by that Replace is at most 13x; Prepend adds
 * its text once. Going over is GLMOE_E_ARG, naming the step's JSON path and the limit.
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

/* Output limits (see above): the text after every step is at most
 * min(GM_NORM_MAX_GROWTH * input + GM_NORM_MAX_EXTRA, max(input, GM_NORM_MAX_BYTES)) bytes. */
#define GM_NORM_MAX_GROWTH 32
#define GM_NORM_MAX_EXTRA 4096
#define GM_NORM_MAX_BYTES ((size_t)1 << 30)

typedef struct gm_norm_step {
    gm_norm_kind kind;
    char *where;         /* the step's JSON path, e.g. "normalizer.normalizers[2]", for errors      */
    uint8_t *inert;      /* NF*: bit per BMP code point, set = unchanged by this form in any context */
    char *text;          /* Prepend: the prefix; Replace: the replacement                             */
    size_t text_len;
    gm_tok_regex pattern; /* Replace                                                                  */
} gm_norm_step;

typedef struct gm_normalizer {
    gm_norm_step *steps;
    size_t n;
} gm_normalizer;

/* Appends a step. text/pattern are copied. `where` is the step's JSON path (copied), named by
 * errors at load and when the step's output goes over the limit. */
glmoe_status gm_normalizer_add_nf(gm_normalizer *nz, gm_norm_kind kind, const char *where, gm_err *err);
glmoe_status gm_normalizer_add_prepend(gm_normalizer *nz, const char *text, size_t len, const char *where,
                                       gm_err *err);
glmoe_status gm_normalizer_add_replace(gm_normalizer *nz, const char *pattern, size_t pattern_len,
                                       bool literal, const char *content, size_t content_len,
                                       const char *where, gm_err *err);
void gm_normalizer_free(gm_normalizer *nz);

/* Scratch for gm_normalize; zero-initialise, free with gm_norm_scratch_free. */
typedef struct gm_norm_scratch {
    gm_tok_bytes a, b;
} gm_norm_scratch;
void gm_norm_scratch_free(gm_norm_scratch *s);

/* Normalizes in[0..n) (well-formed UTF-8) and appends the result to out. Replace patterns run
 * within `run`'s budget (tok_regex.h). GLMOE_E_ARG when a step makes the text longer than the
 * output limit (nothing is appended then) or a pattern goes over its budget, GLMOE_E_NOMEM. */
glmoe_status gm_normalize(const gm_normalizer *nz, const uint8_t *in, size_t n, gm_tok_bytes *out,
                          gm_norm_scratch *scratch, gm_tok_regex_run *run, gm_err *err);

/* True when code point cp is left unchanged by `kind` whatever surrounds it (exposed for the test
 * that checks the fast path against utf8proc). */
bool gm_norm_inert(gm_norm_kind kind, int32_t cp);

#endif
