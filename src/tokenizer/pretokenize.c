/* pretokenize.c — Split, Digits and ByteLevel pre-tokenizer steps (see pretokenize.h). */
#include "tokenizer/pretokenize.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/utf8.h"

gm_pre_step *gm_pretokenizer_add(gm_pretokenizer *p, gm_pre_kind kind) {
    gm_pre_step *s = realloc(p->steps, (p->n + 1) * sizeof *s);
    if (!s) return NULL;
    p->steps = s;
    memset(&s[p->n], 0, sizeof *s);
    s[p->n].kind = kind;
    return &s[p->n++];
}

void gm_pretokenizer_free(gm_pretokenizer *p) {
    for (size_t i = 0; i < p->n; i++) gm_tok_regex_free(&p->steps[i].pattern);
    free(p->steps);
    p->steps = NULL;
    p->n = 0;
}

void gm_pre_scratch_free(gm_pre_scratch *s) {
    free(s->m);
    memset(s, 0, sizeof *s);
}

static bool push_match(gm_pre_scratch *s, size_t start, size_t end, bool is_match) {
    if (s->n == s->cap && !gm_tok_grow((void **)&s->m, &s->cap, s->n, 1, sizeof *s->m)) return false;
    s->m[s->n++] = (gm_pre_match){start, end, is_match};
    return true;
}

static bool push_span(gm_spans *out, size_t off, size_t len) {
    if (len == 0) return true; /* PreTokenizedString::split drops empty pieces */
    if (out->n == out->cap && !gm_tok_grow((void **)&out->v, &out->cap, out->n, 1, sizeof *out->v)) return false;
    out->v[out->n++] = (gm_span){off, len};
    return true;
}

/* HF's Pattern::find_matches for a regex: matches and the gaps between them, in order. */
static glmoe_status regex_matches(const gm_tok_regex *re, const uint8_t *s, size_t n, gm_pre_scratch *scr,
                                  gm_tok_regex_run *run, gm_err *err) {
    gm_tok_match_iter it = {0};
    size_t prev = 0, ms, me;
    int rc;
    while ((rc = gm_tok_regex_next(re, run, s, n, &it, &ms, &me)) == 1) {
        if (prev != ms && !push_match(scr, prev, ms, false)) goto nomem;
        if (!push_match(scr, ms, me, true)) goto nomem;
        prev = me;
    }
    if (rc < 0) {
        char msg[128];
        gm_tok_regex_errstr(rc, msg, sizeof msg);
        /* Running out of memory is not the input's fault (Oniguruma's backtracking stack takes
         * ~30 bytes per byte of a long run of letters or spaces); the work bounds are. */
        return gm_fail(err, rc == ONIGERR_MEMORY ? GLMOE_E_NOMEM : GLMOE_E_ARG,
                       "pre_tokenizer: the Split pattern failed on the input: %s", msg);
    }
    if (prev != n && !push_match(scr, prev, n, false)) goto nomem;
    return GLMOE_OK;
nomem:
    return gm_fail(err, GLMOE_E_NOMEM, "pre_tokenizer: out of memory");
}

static bool is_numeric(int32_t cp) {
    utf8proc_category_t c = utf8proc_category(cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

/* HF's Pattern::find_matches for a character predicate: each matching character is its own
 * match; the runs between them are gaps. */
static bool digit_matches(const uint8_t *s, size_t n, gm_pre_scratch *scr) {
    size_t last = 0;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = gm_utf8_next(s + i, &cp);
        if (is_numeric(cp)) {
            if (last < i && !push_match(scr, last, i, false)) return false;
            if (!push_match(scr, i, i + (size_t)k, true)) return false;
            last = i + (size_t)k;
        }
        i += (size_t)k;
    }
    if (n > last && !push_match(scr, last, n, false)) return false;
    return true;
}

/* NormalizedString::split: folds the match list by behaviour and appends the kept pieces. The
 * folds are HF's, including their treatment of the first element. */
static bool fold(const gm_pre_scratch *scr, gm_split_behavior behavior, size_t base, gm_spans *out) {
    const gm_pre_match *m = scr->m;
    size_t n = scr->n;
    switch (behavior) {
    case GM_SPLIT_ISOLATED:
        for (size_t i = 0; i < n; i++)
            if (!push_span(out, base + m[i].start, m[i].end - m[i].start)) return false;
        return true;
    case GM_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++)
            if (!m[i].is_match && !push_span(out, base + m[i].start, m[i].end - m[i].start)) return false;
        return true;
    case GM_SPLIT_CONTIGUOUS:
    case GM_SPLIT_MERGED_WITH_PREVIOUS: {
        /* cur is HF's acc.last(): it may be empty and still be extended. */
        bool prev_match = false, have = false;
        size_t cur_s = 0, cur_e = 0;
        for (size_t i = 0; i < n; i++) {
            bool extend = behavior == GM_SPLIT_CONTIGUOUS ? (m[i].is_match == prev_match)
                                                          : (m[i].is_match && !prev_match);
            if (extend && have) {
                cur_e = m[i].end;
            } else {
                if (have && !push_span(out, base + cur_s, cur_e - cur_s)) return false;
                cur_s = m[i].start, cur_e = m[i].end, have = true;
            }
            prev_match = m[i].is_match;
        }
        return !have || push_span(out, base + cur_s, cur_e - cur_s);
    }
    case GM_SPLIT_MERGED_WITH_NEXT: {
        /* HF folds from the end, so a match joins the piece after it; we fold backwards into a
         * temporary run of spans, then append them in forward order. */
        size_t first = out->n;
        bool prev_match = false, have = false;
        size_t cur_s = 0, cur_e = 0;
        for (size_t i = n; i-- > 0;) {
            if (m[i].is_match && !prev_match && have) {
                cur_s = m[i].start;
            } else {
                if (have && !push_span(out, base + cur_s, cur_e - cur_s)) return false;
                cur_s = m[i].start, cur_e = m[i].end, have = true;
            }
            prev_match = m[i].is_match;
        }
        if (have && !push_span(out, base + cur_s, cur_e - cur_s)) return false;
        for (size_t a = first, b = out->n; a + 1 < b; a++, b--) {
            gm_span t = out->v[a];
            out->v[a] = out->v[b - 1];
            out->v[b - 1] = t;
        }
        return true;
    }
    }
    return false;
}

glmoe_status gm_pre_step_apply(const gm_pre_step *st, gm_tok_bytes *work, gm_span in, gm_spans *out,
                               gm_pre_scratch *scr, gm_tok_regex_run *run, gm_err *err) {
    scr->n = 0;
    switch (st->kind) {
    case GM_PRE_SPLIT: {
        glmoe_status s = regex_matches(&st->pattern, (const uint8_t *)work->p + in.off, in.len, scr, run, err);
        if (s != GLMOE_OK) return s;
        if (st->invert)
            for (size_t i = 0; i < scr->n; i++) scr->m[i].is_match = !scr->m[i].is_match;
        break;
    }
    case GM_PRE_DIGITS:
        if (!digit_matches((const uint8_t *)work->p + in.off, in.len, scr))
            return gm_fail(err, GLMOE_E_NOMEM, "pre_tokenizer: out of memory");
        break;
    case GM_PRE_BYTELEVEL:
        if (st->add_prefix_space && (in.len == 0 || work->p[in.off] != ' ')) {
            /* HF prepends a space to every piece that does not start with one. */
            size_t off = work->n;
            if (!gm_tok_bytes_reserve(work, in.len + 1)) return gm_fail(err, GLMOE_E_NOMEM, "pre_tokenizer: out of memory");
            work->p[work->n++] = ' ';
            memcpy(work->p + work->n, work->p + in.off, in.len);
            work->n += in.len;
            in = (gm_span){off, in.len + 1};
        }
        if (!st->use_regex) return push_span(out, in.off, in.len) ? GLMOE_OK : gm_fail(err, GLMOE_E_NOMEM, "pre_tokenizer: out of memory");
        glmoe_status s = regex_matches(&st->pattern, (const uint8_t *)work->p + in.off, in.len, scr, run, err);
        if (s != GLMOE_OK) return s;
        return fold(scr, GM_SPLIT_ISOLATED, in.off, out) ? GLMOE_OK : gm_fail(err, GLMOE_E_NOMEM, "pre_tokenizer: out of memory");
    }
    gm_split_behavior b = st->kind == GM_PRE_DIGITS
                              ? (st->individual_digits ? GM_SPLIT_ISOLATED : GM_SPLIT_CONTIGUOUS)
                              : st->behavior;
    return fold(scr, b, in.off, out) ? GLMOE_OK : gm_fail(err, GLMOE_E_NOMEM, "pre_tokenizer: out of memory");
}
