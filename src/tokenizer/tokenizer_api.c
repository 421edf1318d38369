/*
 * tokenizer_api.c — the public tokenizer API (glmoe_tokenizer_*), a thin layer over the internal
 * tokenizer (tokenizer.h): argument checks, caller-sized output buffers, per-handle messages.
 *
 * The declarations are in include/glmoe.h.
 * Tested by tests/unit/test_tokenizer_api.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "tokenizer/tokenizer.h"


struct glmoe_tokenizer {
    gm_tokenizer *tok;
    gm_tok_ids ids;    /* encode output before it is copied out */
    gm_tok_bytes text; /* decode output before it is copied out */
    gm_err err;        /* the last failure                      */
};

struct glmoe_tokenizer_stream {
    gm_tok_stream s;
    gm_tok_bytes text; /* the text of the last push or flush, NUL-terminated */
};

static glmoe_status fail(glmoe_tokenizer *t, glmoe_status st, const char *msg) {
    if (t) gm_fail(&t->err, st, "%s", msg);
    return st;
}

GLMOE_API glmoe_status glmoe_tokenizer_load(glmoe_tokenizer **out, const char *path, char *err, size_t err_size) {
    gm_err e = {0};
    glmoe_status st;
    if (!out || !path) {
        st = gm_fail(&e, GLMOE_E_ARG, "glmoe_tokenizer_load: NULL %s", out ? "path" : "out");
    } else {
        *out = NULL;
        glmoe_tokenizer *t = calloc(1, sizeof *t);
        if (!t) {
            st = gm_fail(&e, GLMOE_E_NOMEM, "glmoe_tokenizer_load: out of memory");
        } else if ((st = gm_tokenizer_load(&t->tok, path, &e)) != GLMOE_OK) {
            free(t);
        } else {
            *out = t;
        }
    }
    if (err && err_size) snprintf(err, err_size, "%s", st == GLMOE_OK ? "" : e.msg);
    return st;
}

GLMOE_API void glmoe_tokenizer_free(glmoe_tokenizer *t) {
    if (!t) return;
    gm_tokenizer_free(t->tok);
    gm_tok_ids_free(&t->ids);
    gm_tok_bytes_free(&t->text);
    free(t);
}

GLMOE_API const char *glmoe_tokenizer_errmsg(const glmoe_tokenizer *t) {
    return t ? t->err.msg : "glmoe_tokenizer_errmsg: NULL tokenizer";
}

GLMOE_API glmoe_status glmoe_tokenizer_encode(glmoe_tokenizer *t, const char *text, size_t len, unsigned flags,
                                              int32_t *ids, size_t capacity, size_t *n_ids) {
    if (!t || !n_ids || (!text && len) || (!ids && capacity))
        return fail(t, GLMOE_E_ARG, "glmoe_tokenizer_encode: NULL argument");
    gm_err_clear(&t->err);
    *n_ids = 0;
    unsigned internal = ((flags & GLMOE_TOKENIZE_PARSE_SPECIAL) ? GM_TOK_PARSE_SPECIAL : 0) |
                        ((flags & GLMOE_TOKENIZE_ADD_SPECIAL) ? GM_TOK_ADD_SPECIAL : 0);
    t->ids.n = 0;
    glmoe_status st = gm_tokenizer_encode(t->tok, text, len, internal, &t->ids, &t->err);
    if (st != GLMOE_OK) return st;
    *n_ids = t->ids.n;
    size_t k = t->ids.n < capacity ? t->ids.n : capacity;
    if (k) memcpy(ids, t->ids.ids, k * sizeof *ids);
    if (t->ids.n > capacity)
        return gm_fail(&t->err, GLMOE_E_ARG, "glmoe_tokenizer_encode: %zu ids do not fit in %zu", t->ids.n, capacity);
    return GLMOE_OK;
}

GLMOE_API glmoe_status glmoe_tokenizer_decode(glmoe_tokenizer *t, const int32_t *ids, size_t n_ids, bool skip_special,
                                              char *text, size_t capacity, size_t *len) {
    if (!t || !len || (!ids && n_ids) || (!text && capacity))
        return fail(t, GLMOE_E_ARG, "glmoe_tokenizer_decode: NULL argument");
    gm_err_clear(&t->err);
    *len = 0;
    t->text.n = 0;
    glmoe_status st = gm_tokenizer_decode(t->tok, ids, n_ids, skip_special, &t->text, &t->err);
    if (st != GLMOE_OK) return st;
    *len = t->text.n;
    if (capacity) {
        size_t k = t->text.n < capacity - 1 ? t->text.n : capacity - 1;
        memcpy(text, t->text.p, k);
        text[k] = '\0';
    }
    if (t->text.n + 1 > capacity)
        return gm_fail(&t->err, GLMOE_E_ARG, "glmoe_tokenizer_decode: %zu bytes and a NUL do not fit in %zu", t->text.n,
                       capacity);
    return GLMOE_OK;
}

GLMOE_API glmoe_status glmoe_tokenizer_stream_create(glmoe_tokenizer_stream **out, const glmoe_tokenizer *t,
                                                     bool skip_special) {
    if (!out) return GLMOE_E_ARG;
    *out = NULL;
    if (!t) return GLMOE_E_ARG;
    glmoe_tokenizer_stream *s = calloc(1, sizeof *s);
    if (!s) return GLMOE_E_NOMEM;
    gm_tok_stream_init(&s->s, t->tok, skip_special);
    *out = s;
    return GLMOE_OK;
}

GLMOE_API void glmoe_tokenizer_stream_free(glmoe_tokenizer_stream *s) {
    if (!s) return;
    gm_tok_bytes_free(&s->text);
    free(s);
}

static glmoe_status stream_out(glmoe_tokenizer_stream *s, glmoe_status st, const char **text, size_t *len) {
    if (st == GLMOE_OK && !gm_tok_bytes_cstr(&s->text)) st = GLMOE_E_NOMEM;
    if (st != GLMOE_OK) s->text.n = 0;
    if (text) *text = st == GLMOE_OK ? s->text.p : "";
    if (len) *len = st == GLMOE_OK ? s->text.n : 0;
    return st;
}

GLMOE_API glmoe_status glmoe_tokenizer_stream_push(glmoe_tokenizer_stream *s, int32_t id, const char **text, size_t *len) {
    if (!s) return GLMOE_E_ARG;
    s->text.n = 0;
    return stream_out(s, gm_tok_stream_push(&s->s, id, &s->text, NULL), text, len);
}

GLMOE_API glmoe_status glmoe_tokenizer_stream_flush(glmoe_tokenizer_stream *s, const char **text, size_t *len) {
    if (!s) return GLMOE_E_ARG;
    s->text.n = 0;
    return stream_out(s, gm_tok_stream_flush(&s->s, &s->text, NULL), text, len);
}

GLMOE_API int32_t glmoe_tokenizer_n_vocab(const glmoe_tokenizer *t) { return t ? gm_tokenizer_n_ids(t->tok) : 0; }

GLMOE_API int32_t glmoe_tokenizer_token_to_id(const glmoe_tokenizer *t, const char *token, size_t len) {
    return t ? gm_tokenizer_token_to_id(t->tok, token, len) : -1;
}

GLMOE_API const char *glmoe_tokenizer_id_to_token(const glmoe_tokenizer *t, int32_t id, size_t *len) {
    return t ? gm_tokenizer_id_to_token(t->tok, id, len) : NULL;
}

GLMOE_API bool glmoe_tokenizer_is_special(const glmoe_tokenizer *t, int32_t id) {
    return t && gm_tokenizer_is_special(t->tok, id);
}

GLMOE_API glmoe_status glmoe_tokenizer_get_info(const glmoe_tokenizer *t, glmoe_tokenizer_info *out) {
    if (!t || !out) return GLMOE_E_ARG;
    const gm_tokenizer_config *c = gm_tokenizer_get_config(t->tok);
    *out = (glmoe_tokenizer_info){
        .n_vocab = gm_tokenizer_n_ids(t->tok),
        .n_added = gm_tokenizer_n_added(t->tok),
        .bos_id = c->bos_id,
        .eos_id = c->eos_id,
        .pad_id = c->pad_id,
        .add_bos = c->add_bos,
        .load_seconds = gm_tokenizer_load_seconds(t->tok),
    };
    return GLMOE_OK;
}
