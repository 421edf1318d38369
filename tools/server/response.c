/*
 * response.c — the JSON the server sends, in OpenAI's shapes:
 *   chat.completion        {"id", "object", "created", "model", "choices": [{"index": 0, "message":
 *                          {"role": "assistant", "content", "reasoning_content"?, "tool_calls"?},
 *                          "finish_reason"}], "usage"}
 *   chat.completion.chunk  the same with "delta" pieces; the first carries the role, the last an
 *                          empty delta and the finish_reason
 *   text_completion        {"choices": [{"index": 0, "text", "logprobs": null, "finish_reason"}]}
 *   errors                 {"error": {"message", "type", "param", "code"}}
 * A streamed reply's deltas are the events of the job one by one; a whole reply is the same
 * events added up (srv_result_add), so the two agree whatever the chunk boundaries.
 * Strings may hold NUL bytes (the model's text): jansson writes them \u0000.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

static char *dump(json_t *root) {
    if (!root) return NULL;
    char *s = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return s;
}

/* A string that may be NULL (then JSON null). */
static json_t *str_or_null(const char *s, size_t n) { return s ? json_stringn(s, n) : json_null(); }

void srv_random_id(char *out, size_t size, const char *prefix, size_t n_random) {
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    static __thread uint64_t state;
    if (!state) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40) ^ (uint64_t)(uintptr_t)&ts;
    }
    size_t n = (size_t)snprintf(out, size, "%s", prefix);
    for (size_t i = 0; i < n_random && n + 1 < size; i++) {
        /* xorshift64*: ids need to be unique, not secret */
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out[n++] = alphabet[((state * 0x2545F4914F6CDD1Dull) >> 33) % (sizeof alphabet - 1)];
    }
    out[n] = '\0';
}

/* ---- adding events up ---- */

static bool append(char **buf, size_t *len, const char *text, size_t n) {
    char *p = realloc(*buf, *len + n + 1);
    if (!p) return false;
    memcpy(p + *len, text, n);
    *len += n;
    p[*len] = '\0';
    *buf = p;
    return true;
}

bool srv_result_add(srv_result *r, const srv_event *ev) {
    switch (ev->kind) {
    case SRV_EV_REASONING: return append(&r->reasoning, &r->reasoning_len, ev->text, ev->len);
    case SRV_EV_CONTENT: return append(&r->content, &r->content_len, ev->text, ev->len);
    case SRV_EV_TEXT: return append(&r->text, &r->text_len, ev->text, ev->len);
    case SRV_EV_TOOL_CALL: {
        struct srv_call *c = realloc(r->calls, (r->n_calls + 1) * sizeof *c);
        if (!c) return false;
        r->calls = c;
        c = &r->calls[r->n_calls];
        memset(c, 0, sizeof *c);
        srv_random_id(c->id, sizeof c->id, "call_", 24);
        if (!(c->name = strdup(ev->text))) return false;
        r->n_calls++;
        return true;
    }
    case SRV_EV_TOOL_ARGS:
        if (ev->index >= r->n_calls) return true; /* cannot happen: a call's name comes first */
        return append(&r->calls[ev->index].args, &r->calls[ev->index].args_len, ev->text, ev->len);
    default: return true;
    }
}

void srv_result_free(srv_result *r) {
    free(r->reasoning);
    free(r->content);
    free(r->text);
    for (size_t i = 0; i < r->n_calls; i++) {
        free(r->calls[i].name);
        free(r->calls[i].args);
    }
    free(r->calls);
    memset(r, 0, sizeof *r);
}

/* ---- whole replies ---- */

static json_t *usage(const srv_job *job) {
    long completion = job->n_completion, prompt = (long)job->n_prompt;
    return json_pack("{s:I, s:I, s:I, s:{s:I}}", "prompt_tokens", (json_int_t)prompt, "completion_tokens",
                     (json_int_t)completion, "total_tokens", (json_int_t)(prompt + completion), "prompt_tokens_details",
                     "cached_tokens", (json_int_t)job->n_cached);
}

static json_t *head(const srv_reply_info *info, const char *object) {
    return json_pack("{s:s, s:s, s:I, s:s}", "id", info->id, "object", object, "created", (json_int_t)info->created,
                     "model", info->model);
}

char *srv_reply_chat(const srv_reply_info *info, const srv_result *r, const srv_job *job) {
    json_t *msg = json_pack("{s:s, s:o}", "role", "assistant", "content",
                            r->content || !r->n_calls ? json_stringn(r->content ? r->content : "", r->content_len)
                                                      : json_null());
    if (!msg) return NULL;
    if (r->reasoning) json_object_set_new(msg, "reasoning_content", json_stringn(r->reasoning, r->reasoning_len));
    if (r->n_calls) {
        json_t *calls = json_array();
        for (size_t i = 0; i < r->n_calls; i++)
            json_array_append_new(calls, json_pack("{s:s, s:s, s:{s:s, s:o}}", "id", r->calls[i].id, "type", "function",
                                                   "function", "name", r->calls[i].name, "arguments",
                                                   json_stringn(r->calls[i].args ? r->calls[i].args : "",
                                                                r->calls[i].args_len)));
        json_object_set_new(msg, "tool_calls", calls);
    }
    json_t *root = head(info, "chat.completion");
    if (!root) {
        json_decref(msg);
        return NULL;
    }
    json_object_set_new(root, "choices",
                        json_pack("[{s:i, s:o, s:s}]", "index", 0, "message", msg, "finish_reason", r->finish_reason));
    json_object_set_new(root, "usage", usage(job));
    return dump(root);
}

char *srv_reply_completion(const srv_reply_info *info, const srv_result *r, const srv_job *job) {
    json_t *root = head(info, "text_completion");
    if (!root) return NULL;
    json_object_set_new(root, "choices",
                        json_pack("[{s:i, s:o, s:n, s:s}]", "index", 0, "text",
                                  json_stringn(r->text ? r->text : "", r->text_len), "logprobs", "finish_reason",
                                  r->finish_reason));
    json_object_set_new(root, "usage", usage(job));
    return dump(root);
}

/* ---- chunks ---- */

static char *chat_chunk(const srv_reply_info *info, json_t *delta, const char *finish_reason) {
    json_t *root = head(info, "chat.completion.chunk");
    if (!root || !delta) {
        json_decref(root);
        json_decref(delta);
        return NULL;
    }
    json_object_set_new(root, "choices",
                        json_pack("[{s:i, s:o, s:o}]", "index", 0, "delta", delta, "finish_reason",
                                  finish_reason ? json_string(finish_reason) : json_null()));
    return dump(root);
}

char *srv_chunk_chat_role(const srv_reply_info *info) {
    return chat_chunk(info, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL);
}

char *srv_chunk_chat_event(const srv_reply_info *info, const srv_event *ev, const char *call_id) {
    json_t *delta = NULL;
    switch (ev->kind) {
    case SRV_EV_REASONING: delta = json_pack("{s:o}", "reasoning_content", json_stringn(ev->text, ev->len)); break;
    case SRV_EV_CONTENT: delta = json_pack("{s:o}", "content", json_stringn(ev->text, ev->len)); break;
    case SRV_EV_TOOL_CALL:
        delta = json_pack("{s:[{s:I, s:s, s:s, s:{s:o, s:s}}]}", "tool_calls", "index", (json_int_t)ev->index, "id",
                          call_id, "type", "function", "function", "name", json_stringn(ev->text, ev->len),
                          "arguments", "");
        break;
    case SRV_EV_TOOL_ARGS:
        delta = json_pack("{s:[{s:I, s:{s:o}}]}", "tool_calls", "index", (json_int_t)ev->index, "function",
                          "arguments", json_stringn(ev->text, ev->len));
        break;
    default: return NULL;
    }
    return chat_chunk(info, delta, NULL);
}

char *srv_chunk_chat_finish(const srv_reply_info *info, const char *finish_reason) {
    return chat_chunk(info, json_object(), finish_reason);
}

char *srv_chunk_completion(const srv_reply_info *info, const char *text, size_t len, const char *finish_reason) {
    json_t *root = head(info, "text_completion");
    if (!root) return NULL;
    json_object_set_new(root, "choices",
                        json_pack("[{s:i, s:o, s:n, s:o}]", "index", 0, "text", json_stringn(text ? text : "", len),
                                  "logprobs", "finish_reason",
                                  finish_reason ? json_string(finish_reason) : json_null()));
    return dump(root);
}

char *srv_chunk_usage(const srv_reply_info *info, const srv_job *job, bool chat) {
    json_t *root = head(info, chat ? "chat.completion.chunk" : "text_completion");
    if (!root) return NULL;
    json_object_set_new(root, "choices", json_array());
    json_object_set_new(root, "usage", usage(job));
    return dump(root);
}

char *srv_reply_error(const srv_error *e) {
    return dump(json_pack("{s:{s:s, s:s, s:o, s:o}}", "error", "message", e->message, "type",
                          e->type ? e->type : "invalid_request_error", "param",
                          str_or_null(e->param[0] ? e->param : NULL, strlen(e->param)), "code",
                          e->code ? json_string(e->code) : json_null()));
}
