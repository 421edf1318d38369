/*
 * tok_regex.h — the patterns of Split pre-tokenizers and Replace normalizers, matched the way
 * Hugging Face tokenizers matches them, with the work of a hostile pattern bounded.
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
 * Bounded work ("never a hang"). A backtracking engine can take time far beyond linear in the text:
 * `\w+(?=\d)|\s` on 100 KB of "a" takes 83 s in Oniguruma (HF: 108 s), because its retry limit
 * (10,000,000 backtracks) bounds one match attempt, not a search over a long text; `a+b` on "aaa…"
 * is quadratic without backtracking at all (Oniguruma makes `a+` possessive, so each attempt
 * scans to the end and fails once); a look-ahead inside a loop rescans the text on every
 * iteration. Oniguruma 6.9.8 (Debian 12) has retry limits per call but no time limit, so glmoe
 * bounds the regex work of one encode call (gm_tok_regex_run) in two ways, both per call through
 * an OnigMatchParam, never through Oniguruma's process-wide setters (other tokenizers on other
 * threads, and other users of Oniguruma in the process, keep their own limits):
 *
 *   1. Backtracking, deterministically. An encode may spend GM_TOK_REGEX_RETRIES_BASE retries
 *      plus GM_TOK_REGEX_RETRIES_PER_BYTE for every byte of every piece a pattern walks. Each
 *      search first runs with a limit of GM_TOK_REGEX_FIRST_TRY retries, not charged (real
 *      pretokenizer searches need 5-60; a failed match attempt costs one, so a sparse pattern
 *      spends about one per byte it skips); a search that needs more is rerun with 4x the limit
 *      until it succeeds, every try after the first charged in full. Going over: GLMOE_E_ARG,
 *      "backtracking budget exhausted". This stops the common catastrophic backtracking fast and
 *      the same way on every machine.
 *   2. Everything else, by the clock: every pattern is compiled with a progress callout at its
 *      start and at the start of every look-around (tok_regex_guard.c inserts them; they match
 *      nothing and change no match), so Oniguruma calls back at each match attempt and each
 *      look-around it evaluates. The callouts and the searches read the thread's CPU clock
 *      (every 1 to 256 of them, adaptively); past GM_TOK_REGEX_SECONDS_BASE +
 *      GM_TOK_REGEX_SECONDS_PER_BYTE x (bytes walked) of CPU time since the encode began, the
 *      search stops: GLMOE_E_ARG, "regex time limit". Real patterns cost at most ~200 ns a byte
 *      (one-character matches: 10 MB of digits), 10x inside the allowance; CPU time does not
 *      count the time a loaded machine gives to others. Patterns whose attempts cannot cost more
 *      than their own length (alternatives of plain atoms, only the last one repeated, such as
 *      `\p{N}{1,3}`) get no attempt callout: it would cost a call per byte they skip.
 *
 * So an encode's regex work is at most about 1 s + 2 s per MB of the text its patterns walk, plus
 * what runs between two clock reads (a few milliseconds). Unlike HF (which fails with
 * "retry-limit-in-match over" on a single match of over 10,000,000 backtracks, e.g. Qwen3's
 * `\s*[\r\n]+` on 10 MB of spaces), a long match is fine as long as the budget allows it.
 * Patterns with their own callouts ((?{...}), (*name)) or extended mode ((?x)), which the guard
 * cannot instrument safely, are refused at load (GLMOE_E_UNSUPPORTED).
 *
 * Tested in tests/unit/test_tokenizer_parts.c (empty-match walk, literal patterns, errors, the
 * guard's insertion on awkward patterns), test_limits.c (hostile patterns on long texts; real
 * patterns on 10 MB texts) and through every parity test.
 */
#ifndef GLMOE_TOKENIZER_TOK_REGEX_H
#define GLMOE_TOKENIZER_TOK_REGEX_H

#include <oniguruma.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* The work limits of one encode call (see above). */
#define GM_TOK_REGEX_RETRIES_BASE 1000000ull
#define GM_TOK_REGEX_RETRIES_PER_BYTE 32ull
#define GM_TOK_REGEX_FIRST_TRY 4096ull
#define GM_TOK_REGEX_SECONDS_BASE 1.0
#define GM_TOK_REGEX_SECONDS_PER_BYTE 2e-6

/* gm_tok_regex_next's own error codes, beyond Oniguruma's (which are > -1000). */
#define GM_TOK_REGEX_E_RETRIES (-100001) /* the backtracking budget is spent */
#define GM_TOK_REGEX_E_TIME (-100002)    /* the time allowance is spent     */

typedef struct gm_tok_regex {
    OnigRegex re; /* NULL for a literal pattern; compiled with the guard's callouts */
    char *lit;    /* the literal, when re is NULL                                  */
    size_t lit_len;
} gm_tok_regex;

/* Compiles `pattern` (len bytes, UTF-8). literal: match the text itself, not a regex. `where`
 * names the JSON field for the error message, e.g. "pre_tokenizer.pretokenizers[0].pattern.Regex".
 * An empty literal is refused (HF would split at every position), and so is a pattern the guard
 * cannot instrument (GLMOE_E_UNSUPPORTED, with the reason). */
glmoe_status gm_tok_regex_compile(gm_tok_regex *r, const char *pattern, size_t len, bool literal,
                                  const char *where, gm_err *err);
void gm_tok_regex_free(gm_tok_regex *r);

/* The regex work of one encode call: Oniguruma's scratch (region, match parameters with the
 * callout) and what is left of the budget. One per encoding thread, at a fixed address (the
 * callout points to it): zero-initialise, call gm_tok_regex_run_begin at the start of every
 * encode, gm_tok_regex_run_free at the end of its life. */
typedef struct gm_tok_regex_run {
    OnigRegion *region;
    OnigMatchParam *param;
    uint64_t retries_left; /* backtracking budget                                   */
    uint64_t param_limit;  /* the retry limit param holds now                        */
    double deadline;       /* thread CPU seconds; extended by every walk             */
    double last_read;      /* when the clock was last read                          */
    uint32_t period;       /* callouts and searches between clock reads (adaptive)  */
    uint32_t countdown;    /* ... until the next read                               */
    bool out_of_time;
} gm_tok_regex_run;

/* Starts a new budget: GM_TOK_REGEX_RETRIES_BASE retries, GM_TOK_REGEX_SECONDS_BASE of CPU time.
 * Allocates the scratch on first use (GLMOE_E_NOMEM). */
glmoe_status gm_tok_regex_run_begin(gm_tok_regex_run *run, gm_err *err);
void gm_tok_regex_run_free(gm_tok_regex_run *run);

/* State of one walk over the matches in a piece (onig's FindMatches). Zero-initialise. */
typedef struct gm_tok_match_iter {
    size_t last_end;
    bool skip_next_empty;
    bool started; /* the walk's bytes were added to the budget */
} gm_tok_match_iter;

/* The next match in s[0..n): returns 1 and sets [*ms, *me), 0 when there are no more, or a
 * negative error code: Oniguruma's (e.g. ONIGERR_MEMORY), GM_TOK_REGEX_E_RETRIES or
 * GM_TOK_REGEX_E_TIME — see gm_tok_regex_errstr. The first call of a walk adds the piece's length
 * to run's budget (retries and time). */
int gm_tok_regex_next(const gm_tok_regex *r, gm_tok_regex_run *run, const uint8_t *s, size_t n,
                      gm_tok_match_iter *it, size_t *ms, size_t *me);

/* The text for an error code from gm_tok_regex_next. */
void gm_tok_regex_errstr(int code, char *buf, size_t size);

/* Compiles a pattern used internally (a fixed, known-good pattern, run with onig_match, not through
 * the budget); false on failure. */
bool gm_tok_regex_internal(gm_tok_regex *r, const char *pattern);

#endif
