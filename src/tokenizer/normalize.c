/* normalize.c — tokenizer.json normalizers: Unicode forms via utf8proc, Prepend, Replace. */
#include "tokenizer/normalize.h"

#include <stdio.h>
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
    free(s->where);
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

static gm_norm_step *push_step(gm_normalizer *nz, const char *where) {
    gm_norm_step *s = realloc(nz->steps, (nz->n + 1) * sizeof *s);
    if (!s) return NULL;
    nz->steps = s;
    memset(&s[nz->n], 0, sizeof *s);
    size_t len = strlen(where ? where : "normalizer") + 1;
    if (!(s[nz->n].where = malloc(len))) return NULL;
    memcpy(s[nz->n].where, where ? where : "normalizer", len);
    return &s[nz->n++];
}

glmoe_status gm_normalizer_add_nf(gm_normalizer *nz, gm_norm_kind kind, const char *where, gm_err *err) {
    gm_norm_step *s = push_step(nz, where);
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

glmoe_status gm_normalizer_add_prepend(gm_normalizer *nz, const char *text, size_t len, const char *where,
                                       gm_err *err) {
    gm_norm_step *s = push_step(nz, where);
    if (!s || !dup_text(s, text, len)) return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
    s->kind = GM_NORM_PREPEND;
    return GLMOE_OK;
}

glmoe_status gm_normalizer_add_replace(gm_normalizer *nz, const char *pattern, size_t pattern_len,
                                       bool literal, const char *content, size_t content_len,
                                       const char *where, gm_err *err) {
    gm_norm_step *s = push_step(nz, where);
    if (!s || !dup_text(s, content, content_len)) return gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
    s->kind = GM_NORM_REPLACE;
    char field[320];
    snprintf(field, sizeof field, "%s.pattern", s->where);
    return gm_tok_regex_compile(&s->pattern, pattern, pattern_len, literal, field, err);
}

void gm_norm_scratch_free(gm_norm_scratch *s) {
    gm_tok_bytes_free(&s->a);
    gm_tok_bytes_free(&s->b);
}

static inline bool cp_inert(const gm_norm_step *s, int32_t cp) {
    return cp < 0x10000 ? (s->inert[cp >> 3] >> (cp & 7)) & 1 : gm_norm_inert(s->kind, cp);
}

static const char *kind_name(gm_norm_kind k) {
    switch (k) {
    case GM_NORM_NFC: return "NFC";
    case GM_NORM_NFD: return "NFD";
    case GM_NORM_NFKC: return "NFKC";
    case GM_NORM_NFKD: return "NFKD";
    case GM_NORM_PREPEND: return "Prepend";
    case GM_NORM_REPLACE: return "Replace";
    }
    return "?";
}

/* Where one step writes: its output buffer, the output limit for this input (see normalize.h) and
 * what an error must name. */
typedef struct step_out {
    gm_tok_bytes *dst;
    size_t limit;
    size_t n_input; /* the normalizer's input, for the message */
    const gm_norm_step *step;
    gm_err *err;
} step_out;

/* Appends p[0..k) unless that takes the text over the limit: the check runs before each append so
 * that a runaway step stops at the limit instead of allocating what it asks for. */
static glmoe_status put(step_out *o, const void *p, size_t k) {
    if (k > o->limit - o->dst->n)
        return gm_fail(o->err, GLMOE_E_ARG,
                       "%s (%s): the text grows over the limit of %zu bytes for a %zu-byte input (%d x the input + %d, "
                       "at most %zu)",
                       o->step->where, kind_name(o->step->kind), o->limit, o->n_input, GM_NORM_MAX_GROWTH,
                       GM_NORM_MAX_EXTRA, GM_NORM_MAX_BYTES);
    return gm_tok_bytes_append(o->dst, p, k) ? GLMOE_OK : gm_fail(o->err, GLMOE_E_NOMEM, "normalizer: out of memory");
}

static glmoe_status map_region(step_out *o, const uint8_t *in, size_t n) {
    const gm_norm_step *s = o->step;
    int flags = UTF8PROC_STABLE;
    flags |= (s->kind == GM_NORM_NFC || s->kind == GM_NORM_NFKC) ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE;
    if (s->kind == GM_NORM_NFKC || s->kind == GM_NORM_NFKD) flags |= UTF8PROC_COMPAT;
    utf8proc_uint8_t *res = NULL;
    utf8proc_ssize_t len = utf8proc_map(in, (utf8proc_ssize_t)n, &res, (utf8proc_option_t)flags);
    if (len < 0) {
        free(res);
        return gm_fail(o->err, len == UTF8PROC_ERROR_NOMEM ? GLMOE_E_NOMEM : GLMOE_E_ARG, "normalizer: utf8proc: %s",
                       utf8proc_errmsg(len));
    }
    glmoe_status st = put(o, res, (size_t)len);
    free(res);
    return st;
}

/* A Unicode form, applied only where it can change something. An inert character X (see
 * gm_norm_inert) is a barrier: canonical reordering stops at it (combining class 0) and nothing
 * before it composes with it, so NF(a X b) = NF(a) NF(X b). Each run of non-inert characters is
 * therefore normalized together with the inert character just before it (which it may compose
 * with, e + U+0301), and everything else is copied. Sets *same when nothing needed normalizing. */
static glmoe_status apply_form(step_out *o, const uint8_t *in, size_t n, bool *same) {
    size_t copied = 0, i = 0, prev = 0; /* prev: start of the character before i */
    bool any = false;
    glmoe_status st;
    while (i < n) {
        if (in[i] < 0x80) {
            prev = i++;
            continue;
        }
        int32_t cp;
        int k = gm_utf8_next(in + i, &cp);
        if (cp_inert(o->step, cp)) {
            prev = i;
            i += (size_t)k;
            continue;
        }
        size_t start = i > copied ? prev : copied, j = i + (size_t)k;
        while (j < n) {
            int kk = gm_utf8_next(in + j, &cp);
            if (cp_inert(o->step, cp)) break;
            j += (size_t)kk;
        }
        if (!any) o->dst->n = 0;
        any = true;
        if ((st = put(o, in + copied, start - copied)) != GLMOE_OK) return st;
        if ((st = map_region(o, in + start, j - start)) != GLMOE_OK) return st;
        copied = i = j;
        prev = j;
    }
    if (!any) {
        *same = true;
        return GLMOE_OK;
    }
    return put(o, in + copied, n - copied);
}

/* Applies one step to in[0..n) into o->dst (emptied first). Returns GLMOE_OK and sets *same when
 * the step leaves the text unchanged (o->dst then holds nothing). */
static glmoe_status apply_step(step_out *o, const uint8_t *in, size_t n, bool *same, gm_tok_regex_run *run) {
    const gm_norm_step *s = o->step;
    o->dst->n = 0;
    *same = false;
    glmoe_status st;
    switch (s->kind) {
    case GM_NORM_NFC:
    case GM_NORM_NFD:
    case GM_NORM_NFKC:
    case GM_NORM_NFKD:
        return apply_form(o, in, n, same);
    case GM_NORM_PREPEND:
        /* HF prepends only to a non-empty string. */
        if (n == 0) {
            *same = true;
            return GLMOE_OK;
        }
        if ((st = put(o, s->text, s->text_len)) != GLMOE_OK) return st;
        return put(o, in, n);
    case GM_NORM_REPLACE: {
        gm_tok_match_iter it = {0};
        size_t ms, me, done = 0;
        int rc;
        while ((rc = gm_tok_regex_next(&s->pattern, run, in, n, &it, &ms, &me)) == 1) {
            if ((st = put(o, in + done, ms - done)) != GLMOE_OK || (st = put(o, s->text, s->text_len)) != GLMOE_OK)
                return st;
            done = me;
        }
        if (rc < 0) {
            char msg[128];
            gm_tok_regex_errstr(rc, msg, sizeof msg);
            return gm_fail(o->err, rc == ONIGERR_MEMORY ? GLMOE_E_NOMEM : GLMOE_E_ARG,
                           "%s (Replace): the pattern failed on the input: %s", s->where, msg);
        }
        return put(o, in + done, n - done);
    }
    }
    return gm_fail(o->err, GLMOE_E_ARG, "normalizer: unknown step");
}

glmoe_status gm_normalize(const gm_normalizer *nz, const uint8_t *in, size_t n, gm_tok_bytes *out,
                          gm_norm_scratch *scratch, gm_tok_regex_run *run, gm_err *err) {
    const uint8_t *cur = in;
    size_t cur_n = n;
    gm_tok_bytes *bufs[2] = {&scratch->a, &scratch->b};
    int next = 0;
    /* the output limit for this input (normalize.h), without overflow for any n */
    size_t limit = n < (GM_NORM_MAX_BYTES - GM_NORM_MAX_EXTRA) / GM_NORM_MAX_GROWTH
                       ? n * GM_NORM_MAX_GROWTH + GM_NORM_MAX_EXTRA
                       : GM_NORM_MAX_BYTES;
    if (n > limit) limit = n; /* steps that only copy or shrink are never refused */
    for (size_t i = 0; i < nz->n; i++) {
        const gm_norm_step *s = &nz->steps[i];
        bool same;
        step_out o = {.dst = bufs[next], .limit = limit, .n_input = n, .step = s, .err = err};
        glmoe_status st = apply_step(&o, cur, cur_n, &same, run);
        if (st != GLMOE_OK) return st;
        if (same) continue;
        cur = (const uint8_t *)bufs[next]->p;
        cur_n = bufs[next]->n;
        next ^= 1;
    }
    return gm_tok_bytes_append(out, cur, cur_n) ? GLMOE_OK : gm_fail(err, GLMOE_E_NOMEM, "normalizer: out of memory");
}
