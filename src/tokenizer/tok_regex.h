/*
 * tok_regex.h — the patterns of Split pre-tokenizers and Replace normalizers, matched the way
 * Hugging Face tokenizers matches them.
 *
 * HF compiles every such pattern with the Rust `onig` crate: onig::Regex::new, i.e. Oniguruma with
 * ONIG_OPTION_NONE, UTF-8 and OnigDefaultSyntax (the Oniguruma/Ruby syntax), and walks the matches
 * with onig's find_iter. We call the same library the same way: same syntax, same options, and
 * find_iter's rule for empty matches (after an empty match step one character; skip an empty match
 * that directly follows a non-empty one). A "String" pattern is the literal text (HF escapes it and
 * compiles that, which matches the same places as a plain substring search, used here).
 *
 * Matching runs over one piece at a time (HF passes each split as its own &str), so anchors and
 * look-arounds never see outside the piece.
 *
 * Tested in tests/unit/test_tokenizer_parts.c (empty-match walk, literal patterns, errors) and
 * through every parity test.
 */
#ifndef GLMOE_TOKENIZER_TOK_REGEX_H
#define GLMOE_TOKENIZER_TOK_REGEX_H

#include <oniguruma.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

typedef struct gm_tok_regex {
    OnigRegex re; /* NULL for a literal pattern        */
    char *lit;    /* the literal, when re is NULL       */
    size_t lit_len;
} gm_tok_regex;

/* Compiles `pattern` (len bytes, UTF-8). literal: match the text itself, not a regex. `where`
 * names the JSON field for the error message, e.g. "pre_tokenizer.pretokenizers[0].pattern.Regex".
 * An empty literal is refused (HF would split at every position). */
glmoe_status gm_tok_regex_compile(gm_tok_regex *r, const char *pattern, size_t len, bool literal,
                                  const char *where, gm_err *err);
void gm_tok_regex_free(gm_tok_regex *r);

/* State of one walk over the matches in a piece (onig's FindMatches). Zero-initialise. */
typedef struct gm_tok_match_iter {
    size_t last_end;
    bool skip_next_empty;
} gm_tok_match_iter;

/* The next match in s[0..n): returns 1 and sets [*ms, *me), 0 when there are no more, or a
 * negative Oniguruma error code (e.g. the backtracking limit) — see gm_tok_regex_errstr. `region`
 * is scratch space from onig_region_new (one per thread). */
int gm_tok_regex_next(const gm_tok_regex *r, OnigRegion *region, const uint8_t *s, size_t n,
                      gm_tok_match_iter *it, size_t *ms, size_t *me);

/* Oniguruma's text for an error code from gm_tok_regex_next. */
void gm_tok_regex_errstr(int code, char *buf, size_t size);

/* Compiles a pattern used internally (a fixed, known-good pattern); false on failure. */
bool gm_tok_regex_internal(gm_tok_regex *r, const char *pattern);

#endif
