/*
 * tok_regex_guard.h — what bounds the work of a tokenizer regex (see "Bounded work" in
 * tok_regex.h): the rewrite that gives a pattern its progress callouts, the check that the rewrite
 * changed nothing else, and the budgeted search. Used by tok_regex.c; exposed for its tests.
 *
 * The rewrite inserts `(?{}[gK])` — an Oniguruma contents callout with the tag gK, which matches
 * the empty string and never fails — at the start of the pattern (Oniguruma runs it at every match
 * attempt) and right after the opening of every look-around, `(?=`, `(?!`, `(?<=`, `(?<!` (it runs
 * each time the look-around is evaluated). A zero-width group that always succeeds changes no
 * match. The insertion points are found by a small lexer of Oniguruma's syntax (escapes, character
 * classes with nesting and a leading `]`, `(?#...)` comments); whatever it might get wrong is
 * caught afterwards: an insertion that landed inside a class or a comment would be literal text,
 * so its tag would not exist as a callout, and one that landed before a quantifier does not compile
 * ("target of repeat operator is invalid"). gm_tok_regex_guard_check verifies every tag and the
 * number of groups and names, and the pattern is refused when anything is off.
 *
 * Refused outright (GLMOE_E_UNSUPPORTED): patterns with their own callouts (`(?{`, `(*`), which
 * would share the progress function, and extended mode (`(?x)`, `(?imx:`), where `#` starts a
 * comment the lexer does not follow. Tokenizer files use neither.
 */
#ifndef GLMOE_TOKENIZER_TOK_REGEX_GUARD_H
#define GLMOE_TOKENIZER_TOK_REGEX_GUARD_H

#include <oniguruma.h>
#include <stddef.h>

#include "tokenizer/tok_buf.h"
#include "tokenizer/tok_regex.h"

/* Writes the pattern with its callouts into out (appended) and the number of callouts into
 * *n_tags. Returns NULL on success, or a static reason for refusing the pattern. */
const char *gm_tok_regex_guard_rewrite(const char *pattern, size_t len, gm_tok_bytes *out, int *n_tags);

/* Checks that `guarded` (the rewrite of `plain`, both compiled) has every tag g0..g(n_tags - 1) as
 * a callout and the same groups and names. Returns NULL or a static reason. */
const char *gm_tok_regex_guard_check(OnigRegex guarded, OnigRegex plain, int n_tags);

/* onig_search over s[from..n) of the whole piece s[0..n), with the run's retry budget and clock
 * (tok_regex.h): the position of the match (region in run->region), ONIG_MISMATCH, an Oniguruma
 * error, GM_TOK_REGEX_E_RETRIES or GM_TOK_REGEX_E_TIME. */
int gm_tok_regex_search(OnigRegex re, gm_tok_regex_run *run, const uint8_t *s, size_t n, size_t from);

#endif
