/*
 * tokenizer_encode.c — text to ids, in HF's order (tokenizer/mod.rs encode_single_sequence):
 *
 *   1. added tokens with "normalized": false are cut out of the raw text;
 *   2. every other piece is normalized, then added tokens with "normalized": true are cut out;
 *   3. every remaining piece goes through the pre-tokenizer steps, depth first (each step splits
 *      each piece independently, so depth-first order equals HF's step-by-step order);
 *   4. every final piece is BPE-encoded;
 *   5. with GM_TOK_ADD_SPECIAL, the post-processor templates wrap the ids.
 *
 * Scratch space lives in the tokenizer, so after the first calls nothing here allocates.
 */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

static glmoe_status pretok(gm_tokenizer *tok, size_t step, gm_span piece, gm_tok_ids *out, gm_err *err) {
    if (step == tok->pre.n) return gm_bpe_encode(&tok->bpe, (const uint8_t *)tok->work.p + piece.off, piece.len, out, err);
    const gm_pre_step *st = &tok->pre.steps[step];
    /* The usual last step (ByteLevel without prefix space or regex) leaves the piece as it is. */
    if (step + 1 == tok->pre.n && st->kind == GM_PRE_BYTELEVEL && !st->add_prefix_space && !st->use_regex)
        return gm_bpe_encode(&tok->bpe, (const uint8_t *)tok->work.p + piece.off, piece.len, out, err);
    gm_spans *lv = &tok->levels[step];
    lv->n = 0;
    glmoe_status s = gm_pre_step_apply(st, &tok->work, piece, lv, &tok->pre_scratch, &tok->regex_run, err);
    for (size_t i = 0; s == GLMOE_OK && i < lv->n; i++) s = pretok(tok, step + 1, lv->v[i], out, err);
    return s;
}

/* Steps 2-4 for one piece of raw text that is not an added token. */
static glmoe_status encode_segment(gm_tokenizer *tok, const uint8_t *s, size_t n, bool parse_special, gm_tok_ids *out,
                                   gm_err *err) {
    tok->work.n = 0;
    glmoe_status st = gm_normalize(&tok->norm, s, n, &tok->work, &tok->norm_scratch, &tok->regex_run, err);
    if (st != GLMOE_OK) return st;
    size_t m = tok->work.n;
    if (m == 0) return GLMOE_OK;
    if (tok->added.norm.n_nodes <= 1) return pretok(tok, 0, (gm_span){0, m}, out, err);
    gm_added_splits *sp = &tok->norm_splits;
    st = gm_added_split_text(&tok->added, true, (const uint8_t *)tok->work.p, m, parse_special, sp, tok->region, err);
    for (size_t i = 0; st == GLMOE_OK && i < sp->n; i++) {
        gm_added_split x = sp->v[i];
        if (x.token >= 0) st = gm_tok_ids_push(out, tok->added.tokens[x.token].id) ? GLMOE_OK : gm_fail(err, GLMOE_E_NOMEM, "encode: out of memory");
        else st = pretok(tok, 0, (gm_span){x.start, x.end - x.start}, out, err);
    }
    return st;
}

static glmoe_status encode_text(gm_tokenizer *tok, const uint8_t *s, size_t n, bool parse_special, gm_tok_ids *out,
                                gm_err *err) {
    gm_added_splits *sp = &tok->raw_splits;
    glmoe_status st = gm_added_split_text(&tok->added, false, s, n, parse_special, sp, tok->region, err);
    for (size_t i = 0; st == GLMOE_OK && i < sp->n; i++) {
        gm_added_split x = sp->v[i];
        if (x.token >= 0) st = gm_tok_ids_push(out, tok->added.tokens[x.token].id) ? GLMOE_OK : gm_fail(err, GLMOE_E_NOMEM, "encode: out of memory");
        else st = encode_segment(tok, s + x.start, x.end - x.start, parse_special, out, err);
    }
    return st;
}

/* TemplateProcessing, single sequence: the template's pieces in order, `seq` where the sequence
 * goes. Templates of a post-processor Sequence wrap one another in order. */
static glmoe_status apply_templates(const gm_tokenizer *tok, gm_tok_ids *seq, gm_tok_ids *out, gm_err *err) {
    gm_tok_ids cur = *seq, next = {0};
    glmoe_status st = GLMOE_OK;
    for (size_t t = 0; t < tok->n_templates && st == GLMOE_OK; t++) {
        const gm_template *tp = &tok->templates[t];
        next.n = 0;
        for (size_t k = 0; k < tp->n; k++) {
            const int32_t *src = tp->pieces[k].is_sequence ? cur.ids : tp->pieces[k].ids;
            size_t cnt = tp->pieces[k].is_sequence ? cur.n : tp->pieces[k].n_ids;
            if (!gm_tok_ids_reserve(&next, cnt)) {
                st = gm_fail(err, GLMOE_E_NOMEM, "encode: out of memory");
                break;
            }
            if (cnt) memcpy(next.ids + next.n, src, cnt * sizeof *src);
            next.n += cnt;
        }
        gm_tok_ids tmp = cur;
        cur = next;
        next = tmp;
    }
    if (st == GLMOE_OK) {
        if (gm_tok_ids_reserve(out, cur.n)) {
            if (cur.n) memcpy(out->ids + out->n, cur.ids, cur.n * sizeof *cur.ids);
            out->n += cur.n;
        } else {
            st = gm_fail(err, GLMOE_E_NOMEM, "encode: out of memory");
        }
    }
    /* exactly one of cur/next is *seq's storage; keep it in *seq and free the other */
    if (cur.ids == seq->ids) {
        *seq = cur;
        gm_tok_ids_free(&next);
    } else {
        *seq = next;
        gm_tok_ids_free(&cur);
    }
    return st;
}

glmoe_status gm_tokenizer_encode(gm_tokenizer *tok, const char *text, size_t len, unsigned flags, gm_tok_ids *out,
                                 gm_err *err) {
    if (!tok || !out || (!text && len)) return gm_fail(err, GLMOE_E_ARG, "encode: NULL argument");
    const uint8_t *s = (const uint8_t *)text;
    size_t bad = gm_utf8_check(s, len);
    if (bad != len) return gm_fail(err, GLMOE_E_ARG, "encode: the input is not valid UTF-8 (ill-formed sequence at byte %zu)", bad);
    size_t n0 = out->n;
    bool parse_special = flags & GM_TOK_PARSE_SPECIAL;
    glmoe_status st = gm_tok_regex_run_begin(&tok->regex_run, err); /* this call's regex budget */
    if (st != GLMOE_OK) return st;
    if ((flags & GM_TOK_ADD_SPECIAL) && tok->n_templates) {
        tok->seq.n = 0;
        st = encode_text(tok, s, len, parse_special, &tok->seq, err);
        if (st == GLMOE_OK) st = apply_templates(tok, &tok->seq, out, err);
    } else {
        st = encode_text(tok, s, len, parse_special, out, err);
    }
    if (st != GLMOE_OK) out->n = n0;
    return st;
}
