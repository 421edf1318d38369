/* tok_regex.c — Oniguruma patterns with Hugging Face's matching rules (see tok_regex.h); the work
 * bound is in tok_regex_guard.c. */
#include "tokenizer/tok_regex.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_regex_guard.h"

/* onig_initialize is process-wide, and the onig crate serialises onig_new behind a mutex; we do
 * the same so that tokenizers may be loaded from several threads. */
static pthread_mutex_t onig_lock = PTHREAD_MUTEX_INITIALIZER;
static bool onig_ready;

static int compile_locked(OnigRegex *re, const char *pattern, size_t len, OnigErrorInfo *einfo) {
    pthread_mutex_lock(&onig_lock);
    if (!onig_ready) {
        OnigEncoding encs[1] = {ONIG_ENCODING_UTF8};
        onig_initialize(encs, 1);
        onig_ready = true;
    }
    int rc = onig_new(re, (const OnigUChar *)pattern, (const OnigUChar *)pattern + len, ONIG_OPTION_NONE,
                      ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, einfo);
    pthread_mutex_unlock(&onig_lock);
    return rc;
}

glmoe_status gm_tok_regex_compile(gm_tok_regex *r, const char *pattern, size_t len, bool literal,
                                  const char *where, gm_err *err) {
    memset(r, 0, sizeof *r);
    if (literal) {
        if (len == 0)
            return gm_fail(err, GLMOE_E_UNSUPPORTED, "%s: an empty pattern is not supported", where);
        r->lit = malloc(len);
        if (!r->lit) return gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", where);
        memcpy(r->lit, pattern, len);
        r->lit_len = len;
        return GLMOE_OK;
    }
    OnigErrorInfo einfo;
    OnigRegex plain = NULL;
    int rc = compile_locked(&plain, pattern, len, &einfo);
    if (rc != ONIG_NORMAL) {
        char msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str((OnigUChar *)msg, rc, &einfo);
        return gm_fail(err, GLMOE_E_FORMAT, "%s: Oniguruma rejects the pattern: %s", where, msg);
    }
    /* The pattern as it runs: with the progress callouts that bound its work (tok_regex_guard.h).
     * The plain compile above gives the user's own errors; it is only kept long enough to check
     * that the rewrite changed no group. */
    gm_tok_bytes guarded = {0};
    int n_tags = 0;
    char why[ONIG_MAX_ERROR_MESSAGE_LEN + 64];
    const char *reason = gm_tok_regex_guard_rewrite(pattern, len, &guarded, &n_tags);
    if (!reason) {
        rc = compile_locked(&r->re, guarded.p, guarded.n, &einfo);
        if (rc != ONIG_NORMAL) {
            char msg[ONIG_MAX_ERROR_MESSAGE_LEN];
            onig_error_code_to_str((OnigUChar *)msg, rc, &einfo);
            snprintf(why, sizeof why, "with its progress checks it does not compile (%s)", msg);
            reason = why;
            r->re = NULL;
        } else {
            reason = gm_tok_regex_guard_check(r->re, plain, n_tags);
        }
    }
    onig_free(plain);
    gm_tok_bytes_free(&guarded);
    if (reason) {
        if (r->re) onig_free(r->re);
        r->re = NULL;
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "%s: the pattern is not supported: %s", where, reason);
    }
    return GLMOE_OK;
}

bool gm_tok_regex_internal(gm_tok_regex *r, const char *pattern) {
    memset(r, 0, sizeof *r);
    OnigErrorInfo einfo;
    if (compile_locked(&r->re, pattern, strlen(pattern), &einfo) != ONIG_NORMAL) {
        r->re = NULL;
        return false;
    }
    return true;
}

void gm_tok_regex_free(gm_tok_regex *r) {
    if (r->re) onig_free(r->re);
    free(r->lit);
    memset(r, 0, sizeof *r);
}

/* Byte length of the character starting at s[i] (1 past the end, as Rust's unwrap_or(1)). */
static size_t char_len_at(const uint8_t *s, size_t n, size_t i) {
    if (i >= n) return 1;
    uint8_t c = s[i];
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

int gm_tok_regex_next(const gm_tok_regex *r, gm_tok_regex_run *run, const uint8_t *s, size_t n,
                      gm_tok_match_iter *it, size_t *ms, size_t *me) {
    if (!it->started && r->re) {
        /* every walk earns its piece's share of the budget (tok_regex.h) */
        it->started = true;
        uint64_t add = (uint64_t)n * GM_TOK_REGEX_RETRIES_PER_BYTE;
        run->retries_left = UINT64_MAX - run->retries_left < add ? UINT64_MAX : run->retries_left + add;
        run->deadline += (double)n * GM_TOK_REGEX_SECONDS_PER_BYTE;
    }
    for (;;) {
        if (it->last_end > n) return 0;
        size_t start, end;
        if (r->re) {
            int pos = gm_tok_regex_search(r->re, run, s, n, it->last_end);
            if (pos == ONIG_MISMATCH) return 0;
            if (pos < 0) return pos;
            start = (size_t)run->region->beg[0];
            end = (size_t)run->region->end[0];
        } else {
            const uint8_t *hit = NULL;
            if (n - it->last_end >= r->lit_len)
                hit = memmem(s + it->last_end, n - it->last_end, r->lit, r->lit_len);
            if (!hit) return 0;
            start = (size_t)(hit - s);
            end = start + r->lit_len;
        }
        it->last_end = end;
        if (end == start) {
            /* onig's FindMatches: step over one character so the walk advances, and drop an empty
             * match that comes right after a non-empty one. */
            it->last_end += char_len_at(s, n, end);
            if (it->skip_next_empty) {
                it->skip_next_empty = false;
                continue;
            }
        } else {
            it->skip_next_empty = true;
        }
        *ms = start;
        *me = end;
        return 1;
    }
}

void gm_tok_regex_errstr(int code, char *buf, size_t size) {
    if (code == GM_TOK_REGEX_E_RETRIES) {
        snprintf(buf, size, "backtracking budget exhausted (%llu retries + %llu per byte of text)",
                 (unsigned long long)GM_TOK_REGEX_RETRIES_BASE, (unsigned long long)GM_TOK_REGEX_RETRIES_PER_BYTE);
        return;
    }
    if (code == GM_TOK_REGEX_E_TIME) {
        snprintf(buf, size, "regex time limit (%g s + %g s per MB of text, CPU time)", GM_TOK_REGEX_SECONDS_BASE,
                 GM_TOK_REGEX_SECONDS_PER_BYTE * 1e6);
        return;
    }
    char msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str((OnigUChar *)msg, code);
    snprintf(buf, size, "%s", msg);
}
