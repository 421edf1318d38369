/*
 * chat_stream_check.h — the invariant of the streaming turn parser (glmoe_chat_stream_*), shared by
 * tests/unit/test_chat_stream.c and tests/fuzz/fuzz_chat_stream.c:
 *
 *   however a turn's text is cut into pushes, the deltas assembled (reasoning concatenated,
 *   content concatenated, each call's name and concatenated arguments) equal the one-shot result,
 *   and the one fails exactly when the other does.
 *
 * The one-shot result (cs_reference) shares no code with the stream: it splits the reasoning block
 * off the whole text by the rule glmoe.h states, written here again as plainly as possible, and
 * hands the rest to the public glmoe_chat_parse_tool_calls. cs_stream also checks what the stream
 * promises on the way: deltas in order (reasoning, content, then each call's name before its
 * arguments, calls numbered from 0), every delta non-empty well-formed UTF-8 followed by a NUL,
 * and at most 10 bytes held outside a call besides the reasoning's trailing newlines.
 *
 * Header-only (static functions); test code, so an allocation failure aborts.
 */
#ifndef GLMOE_TEST_CHAT_STREAM_CHECK_H
#define GLMOE_TEST_CHAT_STREAM_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "tokenizer/utf8.h"

typedef struct cs_buf {
    char *p;
    size_t n, cap;
} cs_buf;

static void cs_put(cs_buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        b->p = realloc(b->p, cap);
        if (!b->p) abort();
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

/* The parts of one parsed turn, or its failure. */
typedef struct cs_result {
    glmoe_status st;
    char msg[512];
    cs_buf reasoning, content;
    size_t n_calls;
    cs_buf *names, *args; /* n_calls of each */
} cs_result;

static void cs_result_free(cs_result *r) {
    free(r->reasoning.p);
    free(r->content.p);
    for (size_t i = 0; i < r->n_calls; i++) free(r->names[i].p), free(r->args[i].p);
    free(r->names);
    free(r->args);
    memset(r, 0, sizeof *r);
}

static void cs_add_call(cs_result *r) {
    r->names = realloc(r->names, (r->n_calls + 1) * sizeof *r->names);
    r->args = realloc(r->args, (r->n_calls + 1) * sizeof *r->args);
    if (!r->names || !r->args) abort();
    memset(&r->names[r->n_calls], 0, sizeof *r->names);
    memset(&r->args[r->n_calls], 0, sizeof *r->args);
    cs_put(&r->names[r->n_calls], "", 0);
    cs_put(&r->args[r->n_calls], "", 0);
    r->n_calls++;
}

/* The one-shot result: the reasoning block split off by glmoe.h's rule, the rest parsed by
 * glmoe_chat_parse_tool_calls. */
static void cs_reference(cs_result *r, const char *text, size_t len, bool starts_in_reasoning,
                         const char *tools_json) {
    memset(r, 0, sizeof *r);
    cs_put(&r->reasoning, "", 0);
    cs_put(&r->content, "", 0);
    size_t rest = 0, rest_end = len;
    if (!starts_in_reasoning) {
        while (rest < len && text[rest] == '\n') rest++; /* the newline after <|assistant|> */
    }
    bool block = starts_in_reasoning || (len - rest >= 7 && memcmp(text + rest, "<think>", 7) == 0);
    if (block) {
        size_t b = starts_in_reasoning ? 0 : rest + 7, e = len;
        const char *close = memmem(text + b, len - b, "</think>", 8);
        if (close) {
            e = (size_t)(close - text);
            rest = e + 8;
            while (rest < len && text[rest] == '\n') rest++; /* the newline after </think> */
        } else {
            rest = len; /* cut off while thinking: all of it is reasoning */
        }
        while (b < e && text[b] == '\n') b++;
        while (e > b && text[e - 1] == '\n') e--;
        if (gm_utf8_check((const uint8_t *)text + b, e - b) != e - b) {
            r->st = GLMOE_E_FORMAT;
            snprintf(r->msg, sizeof r->msg, "reasoning: not valid UTF-8");
            return;
        }
        cs_put(&r->reasoning, text + b, e - b);
    }
    char *out = NULL;
    r->st = glmoe_chat_parse_tool_calls(&out, NULL, text + rest, rest_end - rest, tools_json, r->msg, sizeof r->msg);
    if (r->st != GLMOE_OK) return;
    json_t *root = json_loads(out, JSON_ALLOW_NUL, NULL); /* content keeps the model's NULs */
    if (!root) abort();
    const json_t *c = json_object_get(root, "content");
    cs_put(&r->content, json_string_value(c), json_string_length(c));
    size_t i;
    const json_t *call;
    json_array_foreach(json_object_get(root, "tool_calls"), i, call) {
        const json_t *fn = json_object_get(call, "function");
        const json_t *name = json_object_get(fn, "name"), *args = json_object_get(fn, "arguments");
        cs_add_call(r);
        cs_put(&r->names[i], json_string_value(name), json_string_length(name));
        cs_put(&r->args[i], json_string_value(args), json_string_length(args));
    }
    json_decref(root);
    glmoe_free(out);
}

/* The newlines the reasoning may hold after s[0..n) was pushed: the run at its end, or before a
 * start of "</think>" there. */
static size_t cs_held_newlines(const char *s, size_t n) {
    size_t tag = 0;
    for (size_t k = n < 7 ? n : 7; k > 0 && !tag; k--)
        if (memcmp(s + n - k, "</think>", k) == 0) tag = k;
    size_t k = 0;
    while (k < n - tag && s[n - tag - 1 - k] == '\n') k++;
    return k;
}

/* Adds one push's deltas to r, checking their promises; false (with why) when one is broken. */
static bool cs_take(cs_result *r, int *phase, const glmoe_chat_delta *d, size_t n, char *why, size_t why_size) {
    for (size_t i = 0; i < n; i++) {
        if (!d[i].text || d[i].len == 0 || d[i].text[d[i].len] != '\0' ||
            gm_utf8_check((const uint8_t *)d[i].text, d[i].len) != d[i].len) {
            snprintf(why, why_size, "delta %zu: empty, not NUL-terminated or not UTF-8", i);
            return false;
        }
        /* phases: 0 reasoning, 1 content, 2 + 2k call k named, 3 + 2k call k's arguments begun */
        int k = (int)d[i].index, next = -1;
        switch (d[i].kind) {
        case GLMOE_CHAT_DELTA_REASONING:
            if (*phase == 0 && k == 0) next = 0;
            break;
        case GLMOE_CHAT_DELTA_CONTENT:
            if (*phase <= 1 && k == 0) next = 1;
            break;
        case GLMOE_CHAT_DELTA_TOOL_CALL: /* the next call, after the previous one's arguments */
            if (d[i].index == r->n_calls && (*phase <= 1 || *phase % 2 == 1)) next = 2 + 2 * k;
            break;
        case GLMOE_CHAT_DELTA_TOOL_ARGS: /* the call named last */
            if (*phase >= 2 && (*phase - 2) / 2 == k) next = 3 + 2 * k;
            break;
        }
        if (next < 0) {
            snprintf(why, why_size, "delta %zu (kind %d, index %zu) out of order (after phase %d)", i, (int)d[i].kind,
                     d[i].index, *phase);
            return false;
        }
        *phase = next;
        switch (d[i].kind) {
        case GLMOE_CHAT_DELTA_REASONING: cs_put(&r->reasoning, d[i].text, d[i].len); break;
        case GLMOE_CHAT_DELTA_CONTENT: cs_put(&r->content, d[i].text, d[i].len); break;
        case GLMOE_CHAT_DELTA_TOOL_CALL:
            cs_add_call(r);
            cs_put(&r->names[r->n_calls - 1], d[i].text, d[i].len);
            break;
        case GLMOE_CHAT_DELTA_TOOL_ARGS: cs_put(&r->args[r->n_calls - 1], d[i].text, d[i].len); break;
        }
    }
    return true;
}

/* Streams text[0..len) in pieces of cuts[0], cuts[1], ... bytes (the rest in one last push) and
 * assembles the result. False (with why) when a promise is broken on the way. */
static bool cs_stream(cs_result *r, const char *text, size_t len, bool starts_in_reasoning, const char *tools_json,
                      const size_t *cuts, size_t n_cuts, char *why, size_t why_size) {
    memset(r, 0, sizeof *r);
    cs_put(&r->reasoning, "", 0);
    cs_put(&r->content, "", 0);
    glmoe_chat_stream_params p = glmoe_chat_stream_params_default();
    p.tools_json = tools_json;
    p.starts_in_reasoning = starts_in_reasoning;
    glmoe_chat_stream *s = NULL;
    r->st = glmoe_chat_stream_create(&s, &p, r->msg, sizeof r->msg);
    if (r->st != GLMOE_OK) {
        snprintf(why, why_size, "create failed: %s", r->msg);
        return false;
    }
    const glmoe_chat_delta *d = NULL;
    size_t nd = 0, off = 0;
    int phase = 0;
    bool ok = true;
    for (size_t c = 0; c <= n_cuts && ok; c++) {
        size_t k = c < n_cuts ? cuts[c] : len - off;
        if (k > len - off) k = len - off;
        glmoe_status st = glmoe_chat_stream_push(s, text + off, k, &d, &nd);
        off += k;
        ok = cs_take(r, &phase, d, nd, why, why_size);
        if (st != GLMOE_OK) {
            r->st = st;
            snprintf(r->msg, sizeof r->msg, "%s", glmoe_chat_stream_errmsg(s));
            /* it stays failed, with the same message */
            if (glmoe_chat_stream_finish(s, &d, &nd) != st || nd != 0 || strcmp(r->msg, glmoe_chat_stream_errmsg(s))) {
                snprintf(why, why_size, "a failed stream did not stay failed");
                ok = false;
            }
            glmoe_chat_stream_free(s);
            return ok;
        }
        glmoe_chat_stream_info info;
        glmoe_chat_stream_get_info(s, &info);
        size_t nl = info.in_reasoning ? cs_held_newlines(text, off) : 0;
        if (ok && (info.n_pushed != off || (!info.in_tool_call && info.n_held > 10 + nl))) {
            snprintf(why, why_size, "after %zu bytes: %zu pushed, %zu held", off, info.n_pushed, info.n_held);
            ok = false;
        }
    }
    if (ok) {
        r->st = glmoe_chat_stream_finish(s, &d, &nd);
        ok = cs_take(r, &phase, d, nd, why, why_size);
        if (r->st != GLMOE_OK) snprintf(r->msg, sizeof r->msg, "%s", glmoe_chat_stream_errmsg(s));
        glmoe_chat_stream_info info;
        glmoe_chat_stream_get_info(s, &info);
        if (ok && r->st == GLMOE_OK && (info.n_held != 0 || info.n_tool_calls != r->n_calls || !info.finished)) {
            snprintf(why, why_size, "finished with %zu held, %zu calls counted (%zu given)", info.n_held,
                     info.n_tool_calls, r->n_calls);
            ok = false;
        }
        /* a call named but never given its arguments cannot end a successful turn */
        if (ok && r->st == GLMOE_OK && phase >= 2 && phase % 2 == 0) {
            snprintf(why, why_size, "call %zu has a name but no arguments", r->n_calls - 1);
            ok = false;
        }
    }
    glmoe_chat_stream_free(s);
    return ok;
}

static bool cs_same_buf(const cs_buf *a, const cs_buf *b) { return a->n == b->n && memcmp(a->p, b->p, a->n) == 0; }

/* Do the streamed and one-shot results agree? Failures agree when both fail with one status. */
static bool cs_equal(const cs_result *got, const cs_result *want, char *why, size_t why_size) {
    if (got->st != want->st) {
        snprintf(why, why_size, "status %d (%.200s), one-shot %d (%.200s)", (int)got->st, got->msg, (int)want->st, want->msg);
        return false;
    }
    if (got->st != GLMOE_OK) return true;
    if (!cs_same_buf(&got->reasoning, &want->reasoning)) {
        snprintf(why, why_size, "reasoning \"%.80s\" (%zu bytes), one-shot \"%.80s\" (%zu)", got->reasoning.p,
                 got->reasoning.n, want->reasoning.p, want->reasoning.n);
        return false;
    }
    if (!cs_same_buf(&got->content, &want->content)) {
        snprintf(why, why_size, "content \"%.80s\" (%zu bytes), one-shot \"%.80s\" (%zu)", got->content.p,
                 got->content.n, want->content.p, want->content.n);
        return false;
    }
    if (got->n_calls != want->n_calls) {
        snprintf(why, why_size, "%zu calls, one-shot %zu", got->n_calls, want->n_calls);
        return false;
    }
    for (size_t i = 0; i < got->n_calls; i++) {
        if (!cs_same_buf(&got->names[i], &want->names[i]) || !cs_same_buf(&got->args[i], &want->args[i])) {
            snprintf(why, why_size, "call %zu: %s(%.100s), one-shot %s(%.100s)", i, got->names[i].p, got->args[i].p,
                     want->names[i].p, want->args[i].p);
            return false;
        }
    }
    return true;
}

#endif
