/*
 * tokenizer_decode.c — ids to text (one-shot and streaming) and the read-only lookups.
 *
 * Decoding is the ByteLevel decoder: each id contributes the bytes prepared at load time
 * (vocab.h, dec_off/dec_len), and the concatenation is made valid UTF-8 by replacing ill-formed
 * parts with U+FFFD, as Rust's from_utf8_lossy does. The one-shot decode is the stream decoder
 * run over all ids, so the two cannot disagree.
 *
 * The stream keeps at most 3 bytes: the start of a character whose remaining bytes have not
 * arrived. When the next bytes complete it, it is emitted; when they cannot (the sequence turns
 * ill-formed), the kept bytes become one U+FFFD, exactly where from_utf8_lossy would put it.
 */
#include <string.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/utf8.h"

static inline bool id_ok(const gm_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->vocab.n_ids && (tok->vocab.ids[id].flags & GM_TOKID_PRESENT);
}

void gm_tok_stream_init(gm_tok_stream *s, const gm_tokenizer *tok, bool skip_special) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
    s->skip_special = skip_special;
}

static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Feeds bytes b[0..n) into the stream. */
static bool stream_bytes(gm_tok_stream *s, const uint8_t *b, size_t n, gm_tok_bytes *out) {
    size_t used = 0;
    if (s->n_pending && n) {
        /* Decide the kept character using at most 3 new bytes (a character has at most 4). */
        uint8_t buf[8];
        size_t np = s->n_pending, take = n < 3 ? n : 3;
        memcpy(buf, s->pending, np);
        memcpy(buf + np, b, take);
        gm_utf8_kind kind;
        size_t k = gm_utf8_scan(buf, np + take, &kind);
        if (kind == GM_UTF8_PARTIAL) {
            /* still unfinished: everything given joins the kept bytes (np + n <= 3 here) */
            memcpy(s->pending + np, b, n);
            s->n_pending = (uint8_t)(np + n);
            return true;
        }
        /* The kept bytes are a valid prefix, so the character or the ill-formed part that
         * starts with them covers all of them: k >= np. */
        if (kind == GM_UTF8_CHAR) {
            if (!gm_tok_bytes_append(out, buf, k)) return false;
        } else if (!gm_tok_bytes_append(out, fffd, 3)) {
            return false;
        }
        used = k - np;
        s->n_pending = 0;
    }
    size_t tail;
    if (!gm_utf8_append_lossy_stream(out, b + used, n - used, &tail)) return false;
    memcpy(s->pending, b + n - tail, tail);
    s->n_pending = (uint8_t)tail;
    return true;
}

glmoe_status gm_tok_stream_push(gm_tok_stream *s, int32_t id, gm_tok_bytes *out, gm_err *err) {
    const gm_tokenizer *tok = s->tok;
    if (!id_ok(tok, id)) return gm_fail(err, GLMOE_E_TOKEN, "decode: token id %d is not in the vocabulary", id);
    const gm_vocab_id *d = &tok->vocab.ids[id];
    if (s->skip_special && (d->flags & GM_TOKID_SKIP)) return GLMOE_OK;
    if (!stream_bytes(s, (const uint8_t *)tok->vocab.arena + d->dec_off, d->dec_len, out))
        return gm_fail(err, GLMOE_E_NOMEM, "decode: out of memory");
    return GLMOE_OK;
}

glmoe_status gm_tok_stream_flush(gm_tok_stream *s, gm_tok_bytes *out, gm_err *err) {
    if (s->n_pending) {
        /* an unfinished character at the end: one U+FFFD, as from_utf8_lossy gives */
        if (!gm_tok_bytes_append(out, fffd, 3)) return gm_fail(err, GLMOE_E_NOMEM, "decode: out of memory");
        s->n_pending = 0;
    }
    return GLMOE_OK;
}

glmoe_status gm_tokenizer_decode(const gm_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
                                 gm_tok_bytes *out, gm_err *err) {
    if (!tok || !out || (!ids && n)) return gm_fail(err, GLMOE_E_ARG, "decode: NULL argument");
    for (size_t i = 0; i < n; i++)
        if (!id_ok(tok, ids[i]))
            return gm_fail(err, GLMOE_E_TOKEN, "decode: token id %d (position %zu) is not in the vocabulary", ids[i], i);
    size_t n0 = out->n;
    gm_tok_stream s;
    gm_tok_stream_init(&s, tok, skip_special);
    glmoe_status st = GLMOE_OK;
    for (size_t i = 0; st == GLMOE_OK && i < n; i++) st = gm_tok_stream_push(&s, ids[i], out, err);
    if (st == GLMOE_OK) st = gm_tok_stream_flush(&s, out, err);
    if (st != GLMOE_OK) out->n = n0;
    return st;
}

/* ---- lookups ------------------------------------------------------------------------------- */

int32_t gm_tokenizer_n_ids(const gm_tokenizer *tok) { return tok ? tok->vocab.n_ids : 0; }

int32_t gm_tokenizer_token_to_id(const gm_tokenizer *tok, const char *s, size_t len) {
    if (!tok || (!s && len)) return -1;
    int64_t e = gm_vocab_find(&tok->vocab, s, len);
    if (e < 0) return -1;
    const gm_vocab_entry *en = &tok->vocab.entries[e];
    return en->added_id >= 0 ? en->added_id : en->model_id;
}

const char *gm_tokenizer_id_to_token(const gm_tokenizer *tok, int32_t id, size_t *len) {
    if (!tok || !id_ok(tok, id)) return NULL;
    const gm_vocab_id *d = &tok->vocab.ids[id];
    if (len) *len = d->text_len;
    return tok->vocab.arena + d->text_off;
}

const char *gm_tokenizer_id_to_bytes(const gm_tokenizer *tok, int32_t id, size_t *len) {
    if (!tok || !id_ok(tok, id)) return NULL;
    const gm_vocab_id *d = &tok->vocab.ids[id];
    if (len) *len = d->dec_len;
    return tok->vocab.arena + d->dec_off;
}

bool gm_tokenizer_is_special(const gm_tokenizer *tok, int32_t id) {
    return tok && id_ok(tok, id) && (tok->vocab.ids[id].flags & GM_TOKID_SPECIAL);
}

bool gm_tokenizer_is_added(const gm_tokenizer *tok, int32_t id) {
    return tok && id_ok(tok, id) && (tok->vocab.ids[id].flags & GM_TOKID_ADDED);
}

const gm_tokenizer_config *gm_tokenizer_get_config(const gm_tokenizer *tok) { return tok ? &tok->config : NULL; }

int32_t gm_tokenizer_n_added(const gm_tokenizer *tok) { return tok ? (int32_t)tok->added.n : 0; }

double gm_tokenizer_load_seconds(const gm_tokenizer *tok) { return tok ? tok->load_seconds : 0.0; }
