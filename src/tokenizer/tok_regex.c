/* tok_regex.c — Oniguruma patterns with Hugging Face's matching rules (see tok_regex.h). */
#include "tokenizer/tok_regex.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int rc = compile_locked(&r->re, pattern, len, &einfo);
    if (rc != ONIG_NORMAL) {
        char msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str((OnigUChar *)msg, rc, &einfo);
        r->re = NULL;
        return gm_fail(err, GLMOE_E_FORMAT, "%s: Oniguruma rejects the pattern: %s", where, msg);
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

int gm_tok_regex_next(const gm_tok_regex *r, OnigRegion *region, const uint8_t *s, size_t n,
                      gm_tok_match_iter *it, size_t *ms, size_t *me) {
    for (;;) {
        if (it->last_end > n) return 0;
        size_t start, end;
        if (r->re) {
            int pos = onig_search(r->re, s, s + n, s + it->last_end, s + n, region, ONIG_OPTION_NONE);
            if (pos == ONIG_MISMATCH) return 0;
            if (pos < 0) return pos;
            start = (size_t)region->beg[0];
            end = (size_t)region->end[0];
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
    char msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str((OnigUChar *)msg, code);
    snprintf(buf, size, "%s", msg);
}
