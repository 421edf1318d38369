/*
 * chat_stream.c — the streaming parser of one assistant turn (glmoe_chat_stream_*, contract in
 * include/glmoe.h): text in as the model writes it, OpenAI chat-completion deltas out as soon as
 * they are certain.
 *
 * The turn is read by a small state machine over the bytes not yet decided:
 *
 *   START       newlines dropped; "<think>" next -> THINK_OPEN, anything else -> CONTENT
 *   THINK_OPEN  newlines dropped (the block's leading ones), then THINK
 *   THINK       reasoning text up to the first "</think>"; a run of newlines is kept as a count
 *               until the next byte shows whether it ends the block (then it is dropped)
 *   AFTER_THINK newlines dropped, then CONTENT
 *   CONTENT     content text up to the first "<tool_call>"
 *   CALL        the call's text is held, unparsed, until "</tool_call>"; then it is parsed by
 *               chat_parse_tool_call, the code glmoe_chat_parse_tool_calls runs on each call
 *   BETWEEN     text after a call, dropped, up to the next "<tool_call>"
 *
 * A tag may be cut anywhere between pushes, so at a '<' whose bytes so far are the start of the
 * tag the state looks for, the machine stops and waits (at most 10 bytes: "<tool_call" is the
 * longest proper prefix); finish decides them as text. The machine never looks for a tag the
 * state does not: inside THINK only "</think>" ends anything, so a <tool_call> in the reasoning
 * is reasoning text, and inside CALL only "</tool_call>" ends the call (a value cannot hold it,
 * as in the one-shot parser).
 *
 * Why the calls are parsed whole and not pair by pair: a repeated key keeps its first position
 * and takes the last value (chat.h), so no "key": value piece is final until the call is; and one
 * parse by the same function is what makes the streamed arguments equal the one-shot ones byte for
 * byte, by construction. Only the name, which nothing after it can change, comes out early.
 *
 * The reasoning and the content must be UTF-8 (they become JSON strings, delta by delta): each
 * piece is checked as it comes out, and a character cut between two pushes is carried (at most 3
 * bytes) until its end arrives. The unsent text lives in one buffer, in[in_start..in_len), whose
 * consumed front is dropped only when it is at least as long as what remains, so a long call
 * pushed one byte at a time is copied O(1) times per byte, not once per push.
 *
 * Tested by tests/unit/test_chat_stream.c (recorded GLM-4.5 and GLM-4.7 turns cut at every point,
 * one byte at a time and at random, against glmoe_chat_parse_tool_calls; every error) and
 * tests/fuzz/fuzz_chat_stream.c.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "tokenizer/chat.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

static const char THINK_OPEN[] = "<think>", THINK_CLOSE[] = "</think>", CALL_OPEN[] = "<tool_call>",
                  CALL_CLOSE[] = "</tool_call>", ARG_KEY[] = "<arg_key>";
#define TAG_LEN(t) (sizeof(t) - 1)

typedef enum mode { M_START, M_THINK_OPEN, M_THINK, M_AFTER_THINK, M_CONTENT, M_CALL, M_BETWEEN } mode;

struct glmoe_chat_stream {
    json_t *tools; /* the request's tools (NULL for none), for the argument typing */
    mode mode;
    bool finished;
    glmoe_status failed; /* GLMOE_OK until the first failure, which sticks */
    gm_err err;

    /* Undecided input: in[in_start..in_len); in[0] is byte in_off of the turn. */
    char *in;
    size_t in_start, in_len, in_cap, in_off;
    size_t n_pushed, n_dropped;
    size_t nl_pending; /* THINK: newlines read but not given out (dropped if </think> follows) */

    /* An unfinished UTF-8 character at the end of the text given out, and where it starts. */
    uint8_t carry[4];
    size_t n_carry, carry_at;

    /* CALL: the open call's text is in[in_start..]; call_at is the turn offset of its
     * <tool_call>; the scans resume where the last push left them (offsets from in_start). */
    size_t n_calls, call_at, close_scan, name_scan;
    bool name_sent;

    /* The deltas of the last push or finish: their texts are laid end to end in `text`, each
     * followed by a NUL, and the pointers are set once the call is done (text may move). */
    glmoe_chat_delta *deltas;
    size_t n_deltas, cap_deltas;
    char *text;
    size_t text_len, text_cap;
};

/* ---- output ------------------------------------------------------------------------------- */

static bool grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return true;
    size_t c = *cap ? *cap : 64;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return false;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static glmoe_status oom(glmoe_chat_stream *s) {
    return gm_fail(&s->err, GLMOE_E_NOMEM, "chat stream: out of memory");
}

/* Appends p[0..n) to the output as `kind`: to the last delta when it is the same kind of text
 * for the same call, else as a new delta. n == 0 adds nothing (no delta is empty). */
static glmoe_status put(glmoe_chat_stream *s, glmoe_chat_delta_kind kind, size_t index, const char *p, size_t n) {
    if (n == 0) return GLMOE_OK;
    const glmoe_chat_delta *prev = s->n_deltas ? &s->deltas[s->n_deltas - 1] : NULL;
    bool extend = prev && prev->kind == kind && prev->index == index && kind != GLMOE_CHAT_DELTA_TOOL_CALL;
    /* Room first, so that running out of memory changes nothing: a NUL to end prev's text when a
     * new delta starts, the bytes, and one for the NUL that will end them. */
    size_t sep = !extend && prev;
    if (!extend && !grow((void **)&s->deltas, &s->cap_deltas, s->n_deltas + 1, sizeof *s->deltas)) return oom(s);
    if (n > SIZE_MAX - s->text_len - 2 || !grow((void **)&s->text, &s->text_cap, s->text_len + sep + n + 1, 1))
        return oom(s);
    if (!extend) {
        if (sep) s->text[s->text_len++] = '\0';
        s->deltas[s->n_deltas++] = (glmoe_chat_delta){.kind = kind, .index = index};
    }
    glmoe_chat_delta *last = &s->deltas[s->n_deltas - 1];
    memcpy(s->text + s->text_len, p, n);
    s->text_len += n;
    last->len += n;
    return GLMOE_OK;
}

/* Points each delta at its text, once nothing more is appended. */
static void seal(glmoe_chat_stream *s) {
    if (!s->n_deltas) return;
    s->text[s->text_len] = '\0';
    size_t off = 0;
    for (size_t i = 0; i < s->n_deltas; i++) {
        s->deltas[i].text = s->text + off;
        off += s->deltas[i].len + 1;
    }
}

static const char *text_name(glmoe_chat_delta_kind kind) {
    return kind == GLMOE_CHAT_DELTA_REASONING ? "reasoning" : "content";
}

/* Gives out p[0..n), byte `at` of the turn onward, as reasoning or content, in whole UTF-8
 * characters: a character cut off at the end is carried to the next call. */
static glmoe_status put_text(glmoe_chat_stream *s, glmoe_chat_delta_kind kind, const char *p, size_t n, size_t at) {
    const uint8_t *u = (const uint8_t *)p;
    glmoe_status st;
    if (s->n_carry && n) {
        /* Finish the carried character with the first bytes of this piece. */
        uint8_t ch[4];
        size_t have = s->n_carry, take = n < 4 - have ? n : 4 - have;
        memcpy(ch, s->carry, have);
        memcpy(ch + have, u, take);
        gm_utf8_kind k;
        size_t len = gm_utf8_scan(ch, have + take, &k);
        if (k == GM_UTF8_BAD)
            return gm_fail(&s->err, GLMOE_E_FORMAT, "%s: not valid UTF-8 (ill-formed sequence at byte %zu)",
                           text_name(kind), s->carry_at);
        if (k == GM_UTF8_PARTIAL) { /* still not whole: all of p went into it */
            memcpy(s->carry, ch, have + take);
            s->n_carry = have + take;
            return GLMOE_OK;
        }
        if ((st = put(s, kind, 0, (const char *)ch, len))) return st;
        s->n_carry = 0;
        u += len - have, n -= len - have, at += len - have;
    }
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        gm_utf8_kind k;
        size_t len = gm_utf8_scan(u + i, n - i, &k);
        if (k == GM_UTF8_CHAR) {
            i += len;
        } else if (k == GM_UTF8_PARTIAL) {
            memcpy(s->carry, u + i, n - i);
            s->n_carry = n - i;
            s->carry_at = at + i;
            break;
        } else {
            put(s, kind, 0, (const char *)u, i); /* what came before is still good */
            return gm_fail(&s->err, GLMOE_E_FORMAT, "%s: not valid UTF-8 (ill-formed sequence at byte %zu)",
                           text_name(kind), at + i);
        }
    }
    return put(s, kind, 0, (const char *)u, i);
}

/* The reasoning or the content ends here: a character still carried was cut off for good. */
static glmoe_status end_text(glmoe_chat_stream *s, glmoe_chat_delta_kind kind) {
    if (!s->n_carry) return GLMOE_OK;
    return gm_fail(&s->err, GLMOE_E_FORMAT, "%s: not valid UTF-8 (ill-formed sequence at byte %zu)",
                   text_name(kind), s->carry_at);
}

/* ---- the state machine -------------------------------------------------------------------- */

typedef enum match { MATCH_NO, MATCH_PREFIX, MATCH_FULL } match;

/* Does p[0..n) start with tag, or is it (all of it) the tag's start? */
static match match_tag(const char *p, size_t n, const char *tag, size_t tag_len) {
    size_t m = n < tag_len ? n : tag_len;
    if (memcmp(p, tag, m) != 0) return MATCH_NO;
    return n >= tag_len ? MATCH_FULL : MATCH_PREFIX;
}

static size_t skip_newlines(const char *p, size_t n) {
    size_t i = 0;
    while (i < n && p[i] == '\n') i++;
    return i;
}

/* Gives out the newlines of the reasoning held back so far: a byte other than </think> came. */
static glmoe_status put_newlines(glmoe_chat_stream *s, size_t at) {
    char nl[64];
    memset(nl, '\n', sizeof nl);
    while (s->nl_pending) {
        size_t k = s->nl_pending < sizeof nl ? s->nl_pending : sizeof nl;
        glmoe_status st = put_text(s, GLMOE_CHAT_DELTA_REASONING, nl, k, at - s->nl_pending);
        if (st) return st;
        s->nl_pending -= k;
    }
    return GLMOE_OK;
}

/* THINK over p[0..n) (byte `at` of the turn onward): *used gets how many bytes it consumed, and
 * *closed is set when </think> ended the block. */
static glmoe_status think(glmoe_chat_stream *s, const char *p, size_t n, size_t at, bool final, size_t *used,
                          bool *closed) {
    glmoe_status st;
    size_t i = 0, run = 0; /* p[run..i): reasoning bytes not given out yet, no newline among them */
    *closed = false;
    while (i < n) {
        char c = p[i];
        if (c == '\n') {
            if ((st = put_text(s, GLMOE_CHAT_DELTA_REASONING, p + run, i - run, at + run))) return st;
            s->nl_pending++;
            run = ++i;
            continue;
        }
        if (c == '<') {
            match m = match_tag(p + i, n - i, THINK_CLOSE, TAG_LEN(THINK_CLOSE));
            if (m == MATCH_FULL) {
                if ((st = put_text(s, GLMOE_CHAT_DELTA_REASONING, p + run, i - run, at + run))) return st;
                s->nl_pending = 0; /* the block's trailing newlines */
                *used = i + TAG_LEN(THINK_CLOSE);
                *closed = true;
                return end_text(s, GLMOE_CHAT_DELTA_REASONING);
            }
            if (m == MATCH_PREFIX && !final) break;
        }
        if (s->nl_pending && run == i && (st = put_newlines(s, at + i))) return st;
        i++;
    }
    if ((st = put_text(s, GLMOE_CHAT_DELTA_REASONING, p + run, i - run, at + run))) return st;
    *used = i;
    if (final) {
        s->nl_pending = 0; /* the turn ended in the block: its trailing newlines go as well */
        return end_text(s, GLMOE_CHAT_DELTA_REASONING);
    }
    return GLMOE_OK;
}

/* CONTENT over p[0..n): text up to the first <tool_call>. *opened is set when one began. */
static glmoe_status content(glmoe_chat_stream *s, const char *p, size_t n, size_t at, bool final, size_t *used,
                            bool *opened) {
    glmoe_status st;
    size_t i = 0;
    *opened = false;
    for (;;) {
        const char *lt = i < n ? memchr(p + i, '<', n - i) : NULL;
        if (!lt) {
            i = n;
            break;
        }
        i = (size_t)(lt - p);
        match m = match_tag(p + i, n - i, CALL_OPEN, TAG_LEN(CALL_OPEN));
        if (m == MATCH_FULL) {
            if ((st = put_text(s, GLMOE_CHAT_DELTA_CONTENT, p, i, at))) return st;
            if ((st = end_text(s, GLMOE_CHAT_DELTA_CONTENT))) return st;
            s->call_at = at + i;
            *used = i + TAG_LEN(CALL_OPEN);
            *opened = true;
            return GLMOE_OK;
        }
        if (m == MATCH_PREFIX && !final) break;
        i++;
    }
    if ((st = put_text(s, GLMOE_CHAT_DELTA_CONTENT, p, i, at))) return st;
    *used = i;
    /* At a held '<' a carried character is cut off already: say so now, which also keeps what is
     * held within 10 bytes. */
    return final || i < n ? end_text(s, GLMOE_CHAT_DELTA_CONTENT) : GLMOE_OK;
}

/* CALL over p[0..n), the call's text so far (byte `at` of the turn onward). Consumes nothing
 * until </tool_call> is there; then the whole call. *closed is set when it was. */
static glmoe_status call(glmoe_chat_stream *s, const char *p, size_t n, size_t at, bool final, size_t *used,
                         bool *closed) {
    const size_t k = s->n_calls;
    glmoe_status st;
    json_t *name = NULL, *parsed = NULL;
    char *args = NULL;
    *used = 0;
    *closed = false;
    /* Resume each search a tag's length before where the last one stopped: a tag may straddle. */
    size_t from = s->close_scan > TAG_LEN(CALL_CLOSE) ? s->close_scan - TAG_LEN(CALL_CLOSE) : 0;
    const char *close = memmem(p + from, n - from, CALL_CLOSE, TAG_LEN(CALL_CLOSE));
    s->close_scan = n;
    if (!close) {
        if (final)
            return gm_fail(&s->err, GLMOE_E_FORMAT, "tool call %zu at byte %zu: <tool_call> without </tool_call>",
                           k, s->call_at);
        if (s->name_sent) return GLMOE_OK;
        /* The name ends at the first newline or <arg_key>: once one is here, it is known. */
        from = s->name_scan > TAG_LEN(ARG_KEY) ? s->name_scan - TAG_LEN(ARG_KEY) : 0;
        bool ended = memchr(p + from, '\n', n - from) || memmem(p + from, n - from, ARG_KEY, TAG_LEN(ARG_KEY));
        s->name_scan = n;
        if (!ended) return GLMOE_OK;
        if ((st = chat_tool_call_name(&name, NULL, p, n, false, at, k, &s->err))) return st;
        GM_ASSERT(name != NULL); /* a newline or <arg_key> is there */
        st = put(s, GLMOE_CHAT_DELTA_TOOL_CALL, k, json_string_value(name), json_string_length(name));
        json_decref(name);
        s->name_sent = st == GLMOE_OK;
        return st;
    }
    size_t len = (size_t)(close - p);
    if (!s->name_sent) {
        if ((st = chat_tool_call_name(&name, NULL, p, len, true, at, k, &s->err))) goto done;
        if ((st = put(s, GLMOE_CHAT_DELTA_TOOL_CALL, k, json_string_value(name), json_string_length(name))))
            goto done;
    }
    if ((st = chat_parse_tool_call(&parsed, p, len, at, k, s->tools, &s->err))) goto done;
    if ((st = chat_tool_call_arguments_text(&args, parsed, &s->err))) goto done;
    if ((st = put(s, GLMOE_CHAT_DELTA_TOOL_ARGS, k, args, strlen(args)))) goto done;
    s->n_calls++;
    s->name_sent = false;
    s->close_scan = s->name_scan = 0;
    *used = len + TAG_LEN(CALL_CLOSE);
    *closed = true;
done:
    json_decref(name);
    json_decref(parsed);
    free(args);
    return st;
}

/* BETWEEN over p[0..n): dropped up to the next <tool_call>, keeping a possible start of one. */
static void between(glmoe_chat_stream *s, const char *p, size_t n, size_t at, bool final, size_t *used,
                    bool *opened) {
    const char *o = memmem(p, n, CALL_OPEN, TAG_LEN(CALL_OPEN));
    *opened = o != NULL;
    if (o) {
        s->n_dropped += (size_t)(o - p);
        s->call_at = at + (size_t)(o - p);
        *used = (size_t)(o - p) + TAG_LEN(CALL_OPEN);
        return;
    }
    size_t keep = 0;
    if (!final)
        for (size_t m = n < TAG_LEN(CALL_OPEN) - 1 ? n : TAG_LEN(CALL_OPEN) - 1; m > 0 && !keep; m--)
            if (memcmp(p + n - m, CALL_OPEN, m) == 0) keep = m;
    s->n_dropped += n - keep;
    *used = n - keep;
}

/* Runs the machine over the undecided input as far as it is decided; with `final` (the turn is
 * over) everything is. */
static glmoe_status run(glmoe_chat_stream *s, bool final) {
    for (;;) {
        const char *p = s->in ? s->in + s->in_start : ""; /* nothing pushed yet */
        size_t n = s->in_len - s->in_start, at = s->in_off + s->in_start, used = 0;
        bool next = false; /* the state changed: go round again */
        glmoe_status st = GLMOE_OK;
        switch (s->mode) {
        case M_START: {
            used = skip_newlines(p, n);
            if (used == n) break;
            match m = match_tag(p + used, n - used, THINK_OPEN, TAG_LEN(THINK_OPEN));
            if (m == MATCH_FULL) {
                used += TAG_LEN(THINK_OPEN);
                s->mode = M_THINK_OPEN;
            } else if (m == MATCH_NO || final) {
                s->mode = M_CONTENT;
            } else {
                break; /* "<thi": wait */
            }
            next = true;
            break;
        }
        case M_THINK_OPEN:
        case M_AFTER_THINK:
            used = skip_newlines(p, n);
            if (used < n) {
                s->mode = s->mode == M_THINK_OPEN ? M_THINK : M_CONTENT;
                next = true;
            }
            break;
        case M_THINK:
            st = think(s, p, n, at, final, &used, &next);
            if (next) s->mode = M_AFTER_THINK;
            break;
        case M_CONTENT:
            st = content(s, p, n, at, final, &used, &next);
            if (next) s->mode = M_CALL;
            break;
        case M_CALL:
            st = call(s, p, n, at, final, &used, &next);
            if (next) s->mode = M_BETWEEN;
            break;
        case M_BETWEEN:
            between(s, p, n, at, final, &used, &next);
            if (next) s->mode = M_CALL;
            break;
        }
        s->in_start += used;
        if (st) return st;
        if (!next) return GLMOE_OK;
    }
}

/* Drops the consumed front of the input once it is at least as long as what remains: each byte
 * is then moved a bounded number of times however the turn is cut. */
static void compact(glmoe_chat_stream *s) {
    size_t left = s->in_len - s->in_start;
    if (s->in_start == 0 || s->in_start < left) return;
    if (left) memmove(s->in, s->in + s->in_start, left);
    s->in_off += s->in_start;
    s->in_start = 0;
    s->in_len = left;
}

/* ---- public API --------------------------------------------------------------------------- */

glmoe_chat_stream_params glmoe_chat_stream_params_default(void) {
    return (glmoe_chat_stream_params){.tools_json = NULL, .starts_in_reasoning = false};
}

glmoe_status glmoe_chat_stream_create(glmoe_chat_stream **out, const glmoe_chat_stream_params *params, char *err,
                                      size_t err_size) {
    gm_err e = {0};
    glmoe_status st = GLMOE_OK;
    glmoe_chat_stream *s = NULL;
    if (!out) {
        st = gm_fail(&e, GLMOE_E_ARG, "glmoe_chat_stream_create: out is required");
        goto done;
    }
    *out = NULL;
    glmoe_chat_stream_params p = params ? *params : glmoe_chat_stream_params_default();
    s = calloc(1, sizeof *s);
    if (!s) {
        st = gm_fail(&e, GLMOE_E_NOMEM, "glmoe_chat_stream_create: out of memory");
        goto done;
    }
    if (p.tools_json) {
        json_error_t jerr; /* read as glmoe_chat_parse_tool_calls reads it */
        s->tools = json_loads(p.tools_json, JSON_DECODE_ANY, &jerr);
        if (!s->tools) {
            st = gm_fail(&e, GLMOE_E_ARG, "tools: invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                         jerr.text);
            goto done;
        }
        if (!json_is_array(s->tools) && !json_is_null(s->tools)) {
            st = gm_fail(&e, GLMOE_E_ARG, "tools: expected an array of tools or null");
            goto done;
        }
    }
    s->mode = p.starts_in_reasoning ? M_THINK_OPEN : M_START;
    *out = s;
    s = NULL;
done:
    if (st && err && err_size) snprintf(err, err_size, "%s", e.msg);
    glmoe_chat_stream_free(s);
    return st;
}

void glmoe_chat_stream_free(glmoe_chat_stream *s) {
    if (!s) return;
    json_decref(s->tools);
    free(s->in);
    free(s->deltas);
    free(s->text);
    free(s);
}

/* Starts a push or finish: the output of the last one is gone; a failed stream stays failed. */
static glmoe_status begin(glmoe_chat_stream *s, const char *what, const glmoe_chat_delta **deltas,
                          size_t *n_deltas) {
    if (deltas) *deltas = NULL;
    if (n_deltas) *n_deltas = 0;
    if (!s) return GLMOE_E_ARG;
    s->n_deltas = 0;
    s->text_len = 0;
    if (s->failed) return s->failed;
    if (!deltas || !n_deltas) return gm_fail(&s->err, GLMOE_E_ARG, "%s: deltas and n_deltas are required", what);
    if (s->finished) return gm_fail(&s->err, GLMOE_E_ARG, "%s: the turn is already finished", what);
    gm_err_clear(&s->err); /* the message is the last call's */
    return GLMOE_OK;
}

/* Ends a push or finish: hands out the deltas (also those before a failure) and keeps the
 * failure. */
static glmoe_status end(glmoe_chat_stream *s, glmoe_status st, const glmoe_chat_delta **deltas, size_t *n_deltas) {
    seal(s);
    *deltas = s->deltas;
    *n_deltas = s->n_deltas;
    if (st) s->failed = st;
    return st;
}

glmoe_status glmoe_chat_stream_push(glmoe_chat_stream *s, const char *text, size_t len,
                                    const glmoe_chat_delta **deltas, size_t *n_deltas) {
    glmoe_status st = begin(s, "glmoe_chat_stream_push", deltas, n_deltas);
    if (st) return st;
    if (!text && len) return gm_fail(&s->err, GLMOE_E_ARG, "glmoe_chat_stream_push: text is NULL and len is %zu", len);
    if (len) {
        if (len > SIZE_MAX - s->in_len || !grow((void **)&s->in, &s->in_cap, s->in_len + len, 1))
            return end(s, oom(s), deltas, n_deltas);
        memcpy(s->in + s->in_len, text, len);
        s->in_len += len;
        s->n_pushed += len;
    }
    st = run(s, false);
    compact(s);
    return end(s, st, deltas, n_deltas);
}

glmoe_status glmoe_chat_stream_finish(glmoe_chat_stream *s, const glmoe_chat_delta **deltas, size_t *n_deltas) {
    glmoe_status st = begin(s, "glmoe_chat_stream_finish", deltas, n_deltas);
    if (st) return st;
    s->finished = true;
    st = run(s, true);
    compact(s);
    return end(s, st, deltas, n_deltas);
}

glmoe_status glmoe_chat_stream_get_info(const glmoe_chat_stream *s, glmoe_chat_stream_info *out) {
    if (!s || !out) return GLMOE_E_ARG;
    *out = (glmoe_chat_stream_info){
        .n_pushed = s->n_pushed,
        .n_held = s->in_len - s->in_start + s->n_carry + s->nl_pending,
        .n_dropped = s->n_dropped,
        .n_tool_calls = s->n_calls,
        .in_reasoning = s->mode == M_THINK_OPEN || s->mode == M_THINK,
        .in_tool_call = s->mode == M_CALL,
        .finished = s->finished,
    };
    return GLMOE_OK;
}

const char *glmoe_chat_stream_errmsg(const glmoe_chat_stream *s) {
    return s ? s->err.msg : "no chat stream (NULL handle)";
}
