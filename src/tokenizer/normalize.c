/* normalize.c — tokenizer.json normalizers: Unicode forms via utf8proc, Prepend, Replace. */
#include "tokenizer/normalize.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/utf8.h"

bool gm_norm_inert(gm_norm_kind kind, int32_t cp) {
    if (cp < 0x80) return true;
    bool compat = kind == GM_NORM_NFKC || kind == GM_NORM_NFKD;
    bool compose = kind == GM_NORM_NFC || kind == GM_NORM_NFKC;
    /* Hangul is composed and decomposed by algorithm, not by table entries: conjoining jamo can
     * join a preceding syllable or jamo, and syllables split under the D forms. */
    if (cp >= 0x1100 && cp <= 0x11FF) return false;
    if (cp >= 0xAC00 && cp <= 0xD7A3) return compose;
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    if (p->combining_class != 0) return false; /* may be reordered or composed */
    /* comb_index >= 0x8000 marks the second character of a canonical composition. */
    if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return false;
    /* decomp_type 0 is a canonical decomposition (all forms apply it, the C forms may recompose
     * it differently); the other types are compatibility mappings, applied by NFKC/NFKD only. */
    if (p->decomp_seqindex != UINT16_MAX && (p->decomp_type == 0 || compat)) return false;
    return true;
}

static void step_free(gm_norm_step *s) {
    free(s->inert);
    free(s->text);
    gm_tok_regex_free(&s->pattern);
}

void gm_normalizer_free(gm_normalizer *nz) {
    for (size_t i = 0; i < nz->n; i++) step_free(&nz->steps[i]);
    free(nz->steps);
    nz->steps = NULL;
    nz->n = 0;
}

static gm_norm_step *push_step(gm_normalizer *nz) {
    gm_norm_step *s = realloc(nz->steps, (nz->n + 1) * sizeof *s);
    if (!s) return NULL;
    nz->steps = s;
    memset(&s[nz->n], 0, sizeof *s);
    return &s[nz->n++];
}

glmoe_status gm_normalizer_add_nf(gm_normalizer *nz, gm_norm_kind kind, gm_err *err) {
    gm_norm_step *s = push_step(nz);
    if (!s || !(s->inert = calloc(65536 / 8, 1))) return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
    s->kind = kind;
    for (int32_t cp = 0; cp < 0x10000; cp++)
        if ((cp < 0xD800 || cp > 0xDFFF) && gm_norm_inert(kind, cp)) s->inert[cp >> 3] |= (uint8_t)(1u << (cp & 7));
    return GLMOE_OK;
}

static bool dup_text(gm_norm_step *s, const char *text, size_t len) {
    s->text = malloc(len ? len : 1);
    if (!s->text) return false;
    if (len) memcpy(s->text, text, len);
    s->text_len = len;
    return true;
}

glmoe_status gm_normalizer_add_prepend(gm_normalizer *nz, const char *text, size_t len, gm_err *err) {
    gm_norm_step *s = push_step(nz);
    if (!s || !dup_text(s, text, len)) return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
    s->kind = GM_NORM_PREPEND;
    return GLMOE_OK;
}

glmoe_status gm_normalizer_add_replace(gm_normalizer *nz, const char *pattern, size_t pattern_len,
                                       bool literal, const char *content, size_t content_len,
                                       const char *where, gm_err *err) {
    gm_norm_step *s = push_step(nz);
    if (!s || !dup_text(s, content, content_len)) return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
    s->kind = GM_NORM_REPLACE;
    return gm_tok_regex_compile(&s->pattern, pattern, pattern_len, literal, where, err);
}

void gm_norm_scratch_free(gm_norm_scratch *s) {
    gm_tok_bytes_free(&s->a);
    gm_tok_bytes_free(&s->b);
    if (s->region) onig_region_free(s->region, 1);
    s->region = NULL;
}

static inline bool cp_inert(const gm_norm_step *s, int32_t cp) {
    return cp < 0x10000 ? (s->inert[cp >> 3] >> (cp & 7)) & 1 : gm_norm_inert(s->kind, cp);
}

static glmoe_status map_region(const gm_norm_step *s, const uint8_t *in, size_t n, gm_tok_bytes *dst, gm_err *err) {
    int flags = UTF8PROC_STABLE;
    flags |= (s->kind == GM_NORM_NFC || s->kind == GM_NORM_NFKC) ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
    if (s->kind == GM_NORM_NFKC || s->kind == GM_NORM_NFKD) flags |= UTF8PROC_COMPAT;
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t len = utf8proc_map(in, (utf8proc_ssize_t)n, &res, (utf8proc_option_t)flags);
    if (len < 0) {
        free(res);
        return gm_fail(err, len == UTF8PROC_ERROR_NOMEM ? GLMOE_E_NOMEM : GLMOE_E_ARG, "normalizer: utf8proc: %s",
                       utf8proc_errmsg(len));
    }
    bool ok = gm_tok_bytes_append(dst, res, (size_t)len);
    free(res);
    return ok ? GLMOE_OK : gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
}

/* A Unicode form, applied only where it can change something. An inert character X (see
 * gm_norm_inert) is a barrier: canonical reordering stops at it (combining class 0) and nothing
 * before it composes with it, so NF(a X b) = NF(a) NF(X b). Each run of non-inert characters is
 * therefore normalized together with the inert character just before it (which it may compose
 * with, e + U+0301), and everything else is copied. Sets *same when nothing needed normalizing. */
static glmoe_status apply_form(const gm_norm_step *s, const uint8_t *in, size_t n, gm_tok_bytes *dst, bool *same,
                               gm_err *err) {
    size_t copied = 0, i = 0, prev = 0; /* prev: start of the character before i */
    bool any = false;
    while (i < n) {
        if (in[i] < 0x80) {
            prev = i++;
            continue;
        }
        int32_t cp;
        int k = gm_utf8_next(in + i, &cp);
        if (cp_inert(s, cp)) {
            prev = i;
            i += (size_t)k;
            continue;
        }
        size_t start = i > copied ? prev : copied, j = i + (size_t)k;
        while (j < n) {
            int kk = gm_utf8_next(in + j, &cp);
            if (cp_inert(s, cp)) break;
            j += (size_t)kk;
        }
        if (!any) dst->n = 0;
        any = true;
        if (!gm_tok_bytes_append(dst, in + copied, start - copied)) return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
        glmoe_status st = map_region(s, in + start, j - start, dst, err);
        if (st != GLMOE_OK) return st;
        copied = i = j;
        prev = j;
    }
    if (!any) {
        *same = true;
        return GLMOE_OK;
    }
    return gm_tok_bytes_append(dst, in + copied, n - copied) ? GLMOE_OK : gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
}

/* Applies one step to in[0..n) into dst (emptied first). Returns GLMOE_OK and sets *same when
 * the step leaves the text unchanged (dst then holds nothing). */
static glmoe_status apply_step(const gm_norm_step *s, const uint8_t *in, size_t n, gm_tok_bytes *dst,
                               bool *same, OnigRegion *region, gm_err *err) {
    dst->n = 0;
    *same = false;
    switch (s->kind) {
    case GM_NORM_NFC:
    case GM_NORM_NFD:
    case GM_NORM_NFKC:
    case GM_NORM_NFKD:
        return apply_form(s, in, n, dst, same, err);
    case GM_NORM_PREPEND:
        /* HF prepends only to a non-empty string. */
        if (n == 0) {
            *same = true;
            return GLMOE_OK;
        }
        if (!gm_tok_bytes_append(dst, s->text, s->text_len) || !gm_tok_bytes_append(dst, in, n))
            return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
        return GLMOE_OK;
    case GM_NORM_REPLACE: {
        gm_tok_match_iter it = {0};
        size_t ms, me, done = 0;
        int rc;
        while ((rc = gm_tok_regex_next(&s->pattern, region, in, n, &it, &ms, &me)) == 1) {
            if (!gm_tok_bytes_append(dst, in + done, ms - done) || !gm_tok_bytes_append(dst, s->text, s->text_len))
                return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
            done = me;
        }
        if (rc < 0) {
            char msg[128];
            gm_tok_regex_errstr(rc, msg, sizeof msg);
            return gm_fail(err, rc == ONIGERR_MEMORY ? GLMOE_E_NOMEM : GLMOE_E_ARG,
                           "normalizer: Replace pattern failed on the input: %s", msg);
        }
        if (!gm_tok_bytes_append(dst, in + done, n - done)) return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
        return GLMOE_OK;
    }
    }
    return gm_fail(err, GLMOE_E_ARG, "normalizer: unknown step");
}

glmoe_status gm_normalize(const gm_normalizer *nz, const uint8_t *in, size_t n, gm_tok_bytes *out,
                          gm_norm_scratch *scratch, gm_err *err) {
    const uint8_t *cur = in;
    size_t cur_n = n;
    gm_tok_bytes *bufs[2] = {&scratch->a, &scratch->b};
    int next = 0;
    for (size_t i = 0; i < nz->n; i++) {
        const gm_norm_step *s = &nz->steps[i];
        if (s->kind == GM_NORM_REPLACE && !scratch->region && !(scratch->region = onig_region_new()))
            return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
        bool same;
        glmoe_status st = apply_step(s, cur, cur_n, bufs[next], &same, scratch->region, err);
        if (st != GLMOE_OK) return st;
        if (same) continue;
        cur = (const uint8_t *)bufs[next]->p;
        cur_n = bufs[next]->n;
        next ^= 1;
    }
    return gm_tok_bytes_append(out, cur, cur_n) ? GLMOE_OK : gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
}
