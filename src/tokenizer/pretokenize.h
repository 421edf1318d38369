/*
 * pretokenize.h — the tokenizer.json "pre_tokenizer": cutting normalized text into the pieces
 * that BPE encodes one at a time.
 *
 * Supported steps, in a Sequence or alone:
 *   Split      a regex (Oniguruma, see tok_regex.h) or literal pattern, with "invert" and each
 *              delimiter behaviour: Removed, Isolated, MergedWithPrevious, MergedWithNext,
 *              Contiguous;
 *   Digits     numeric characters (Unicode Nd, Nl, No: Rust's char::is_numeric) as one piece each
 *              ("individual_digits") or in runs;
 *   ByteLevel  add_prefix_space (a space before every piece not starting with one) and use_regex
 *              (the GPT-2 pattern); it must be the last step, since it also maps bytes to the
 *              byte-level alphabet and anything after it would see mapped text.
 * The behaviours are HF's NormalizedString::split folds, ported one to one; empty pieces are
 * dropped after every step, as PreTokenizedString::split does.
 *
 * Pieces are spans (offset, length) of a caller-owned work buffer: ByteLevel's prefix space writes
 * a new copy of the piece at the end of that buffer, and offsets stay valid when it grows.
 * Tested in tests/unit/test_tokenizer_parts.c (every behaviour against hand-made expectations)
 * and by the parity tests.
 */
#ifndef GLMOE_TOKENIZER_PRETOKENIZE_H
#define GLMOE_TOKENIZER_PRETOKENIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_buf.h"
#include "tokenizer/tok_regex.h"
#include "util/error.h"

typedef enum gm_split_behavior {
    GM_SPLIT_REMOVED,
    GM_SPLIT_ISOLATED,
    GM_SPLIT_MERGED_WITH_PREVIOUS,
    GM_SPLIT_MERGED_WITH_NEXT,
    GM_SPLIT_CONTIGUOUS,
} gm_split_behavior;

typedef enum gm_pre_kind {
    GM_PRE_SPLIT,
    GM_PRE_DIGITS,
    GM_PRE_BYTELEVEL,
} gm_pre_kind;

typedef struct gm_pre_step {
    gm_pre_kind kind;
    gm_tok_regex pattern;       /* Split; ByteLevel with use_regex (GPT-2's pattern)   */
    gm_split_behavior behavior; /* Split                                               */
    bool invert;                /* Split                                               */
    bool individual_digits;     /* Digits                                              */
    bool add_prefix_space;      /* ByteLevel                                           */
    bool use_regex;             /* ByteLevel                                           */
} gm_pre_step;

typedef struct gm_pretokenizer {
    gm_pre_step *steps;
    size_t n;
} gm_pretokenizer;

/* The pattern ByteLevel uses when use_regex is true (HF pre_tokenizers/byte_level.rs). */
#define GM_GPT2_PATTERN "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* Appends a zeroed step of the given kind; NULL when out of memory. */
gm_pre_step *gm_pretokenizer_add(gm_pretokenizer *p, gm_pre_kind kind);
void gm_pretokenizer_free(gm_pretokenizer *p);

typedef struct gm_span {
    size_t off, len;
} gm_span;

typedef struct gm_spans {
    gm_span *v;
    size_t n, cap;
} gm_spans;

/* A delimiter search result: [start, end) relative to the piece, and whether it matched. */
typedef struct gm_pre_match {
    size_t start, end;
    bool is_match;
} gm_pre_match;

typedef struct gm_pre_scratch {
    gm_pre_match *m;
    size_t n, cap;
} gm_pre_scratch;
void gm_pre_scratch_free(gm_pre_scratch *s);

/* Applies one step to the piece `in` of work: the non-empty resulting pieces are appended to out
 * (out->n is not reset). May append to work (ByteLevel's prefix space). Regex steps run within
 * `run`'s budget (tok_regex.h). */
glmoe_status gm_pre_step_apply(const gm_pre_step *st, gm_tok_bytes *work, gm_span in, gm_spans *out,
                               gm_pre_scratch *scratch, gm_tok_regex_run *run, gm_err *err);

#endif
