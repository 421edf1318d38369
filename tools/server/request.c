/*
 * request.c — the JSON of POST /v1/chat/completions and /v1/completions into srv_params.
 *
 * Every field the server acts on is type- and range-checked; a bad one is a 400 whose message and
 * "param" name the field ("messages[2].content", "stop[1]"), as OpenAI's API does. Fields the
 * server does not act on are ignored (clients send user, metadata, store, ...), except those whose
 * silent neglect would change the answer: n != 1, logprobs, tool_choice "required" or a named
 * function (no constrained decoding), response_format other than text, echo, suffix, best_of.
 * Messages are checked here as far as shape and count go; the template's renderer
 * (glmoe_chat_render) checks roles, contents and tool calls and names the message it refuses.
 *
 * Bounds (srv_limits): the body size is the HTTP layer's; here the number of messages, of tools
 * and of stop strings and the length of each stop string. Nesting depth is jansson's (2048).
 *
 * No model is needed: tests/fuzz/fuzz_server_request.c drives srv_parse_request and
 * srv_render_chat with arbitrary bodies; tests/server/test_server.py sends the same errors over
 * HTTP.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server.h"

srv_limits srv_limits_default(void) {
    return (srv_limits){.max_body = SRV_MAX_BODY_DEFAULT, .max_messages = SRV_MAX_MESSAGES,
                        .max_tools = SRV_MAX_TOOLS, .max_stop = SRV_MAX_STOP, .max_stop_len = SRV_MAX_STOP_LEN};
}

bool srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    /* one line, always */
    for (char *p = e->message; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    return false;
}

#define BAD(param, ...) srv_fail(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

static const char *type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* A field that is absent or null counts as not given, as OpenAI reads it. */
static const json_t *field(const json_t *obj, const char *key) {
    const json_t *v = json_object_get(obj, key);
    return v && !json_is_null(v) ? v : NULL;
}

static bool get_bool(const json_t *root, const char *key, bool *out, srv_error *e) {
    const json_t *v = field(root, key);
    if (!v) return true;
    if (!json_is_boolean(v)) return BAD(key, "'%s': expected a boolean, got %s", key, type_name(v));
    *out = json_is_true(v);
    return true;
}

/* A number in [lo, hi]; *given says whether it was there. */
static bool get_number(const json_t *root, const char *key, double lo, double hi, double *out, bool *given,
                       srv_error *e) {
    const json_t *v = field(root, key);
    if (given) *given = v != NULL;
    if (!v) return true;
    if (!json_is_number(v)) return BAD(key, "'%s': expected a number, got %s", key, type_name(v));
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi)) return BAD(key, "'%s': %g is out of range [%g, %g]", key, d, lo, hi);
    *out = d;
    return true;
}

static bool get_integer(const json_t *root, const char *key, long long lo, long long hi, long long *out, bool *given,
                        srv_error *e) {
    const json_t *v = field(root, key);
    if (given) *given = v != NULL;
    if (!v) return true;
    /* 3.0 is an integer to a JSON reader in JavaScript or Python's clients; accept it. */
    double d = json_is_real(v) ? json_real_value(v) : 0;
    if (!json_is_integer(v) && !(json_is_real(v) && d == floor(d) && fabs(d) < 9e15))
        return BAD(key, "'%s': expected an integer, got %s", key, type_name(v));
    long long x = json_is_integer(v) ? (long long)json_integer_value(v) : (long long)d;
    if (x < lo || x > hi) return BAD(key, "'%s': %lld is out of range [%lld, %lld]", key, x, lo, hi);
    *out = x;
    return true;
}

static char *dup_bytes(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static bool oom(srv_error *e) { return srv_fail(e, 500, "server_error", NULL, NULL, "out of memory"); }

/* "stop": a string or an array of strings, each non-empty, without NUL, at most max_stop_len bytes. */
static bool parse_stop(const json_t *root, const srv_limits *lim, srv_params *p, srv_error *e) {
    const json_t *v = field(root, "stop");
    if (!v) return true;
    size_t n = json_is_string(v) ? 1 : json_is_array(v) ? json_array_size(v) : 0;
    if (!json_is_string(v) && !json_is_array(v))
        return BAD("stop", "'stop': expected a string or an array of strings, got %s", type_name(v));
    if (n > lim->max_stop) return BAD("stop", "'stop': %zu strings, at most %zu", n, lim->max_stop);
    if (n == 0) return true;
    p->stop = calloc(n, sizeof *p->stop);
    p->stop_len = calloc(n, sizeof *p->stop_len);
    if (!p->stop || !p->stop_len) return oom(e);
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        char param[32];
        snprintf(param, sizeof param, json_is_string(v) ? "stop" : "stop[%zu]", i);
        if (!json_is_string(s)) return BAD(param, "'%s': expected a string, got %s", param, type_name(s));
        size_t len = json_string_length(s);
        if (len == 0) return BAD(param, "'%s': empty stop string", param);
        if (len > lim->max_stop_len)
            return BAD(param, "'%s': %zu bytes, at most %zu", param, len, lim->max_stop_len);
        if (memchr(json_string_value(s), '\0', len)) return BAD(param, "'%s': holds a NUL character", param);
        if (!(p->stop[i] = dup_bytes(json_string_value(s), len))) return oom(e);
        p->stop_len[i] = len;
        p->n_stop = i + 1;
    }
    return true;
}

/* The sampling fields common to both endpoints. */
static bool parse_sampling(const json_t *root, srv_params *p, srv_error *e) {
    glmoe_sampler_params *s = &p->sampling;
    *s = glmoe_sampler_params_default();
    double d = 1.0;
    if (!get_number(root, "temperature", 0.0, 2.0, &d, NULL, e)) return false;
    s->temperature = (float)d;
    d = 1.0;
    if (!get_number(root, "top_p", 0.0, 1.0, &d, NULL, e)) return false;
    s->top_p = (float)d;
    d = 0.0;
    if (!get_number(root, "min_p", 0.0, 1.0, &d, NULL, e)) return false;
    s->min_p = (float)d;
    long long k = 0;
    if (!get_integer(root, "top_k", -1, 1 << 30, &k, NULL, e)) return false;
    s->top_k = (int32_t)(k < 0 ? 0 : k);
    d = 0.0;
    if (!get_number(root, "presence_penalty", -2.0, 2.0, &d, NULL, e)) return false;
    s->presence_penalty = (float)d;
    d = 0.0;
    if (!get_number(root, "frequency_penalty", -2.0, 2.0, &d, NULL, e)) return false;
    s->frequency_penalty = (float)d;
    d = 1.0;
    if (!get_number(root, "repetition_penalty", 0.01, 100.0, &d, NULL, e)) return false;
    s->repetition_penalty = (float)d;
    long long seed = 0;
    if (!get_integer(root, "seed", INT64_MIN, INT64_MAX, &seed, &p->has_seed, e)) return false;
    s->seed = (uint64_t)seed;
    return true;
}

/* Fields that would change the answer if silently ignored. */
static bool refuse_unsupported(const json_t *root, srv_kind kind, srv_error *e) {
    long long n = 1;
    if (!get_integer(root, "n", 1, 1, &n, NULL, e)) {
        if (json_is_integer(field(root, "n")))
            return BAD("n", "'n': only 1 choice per request is supported, got %lld",
                       (long long)json_integer_value(field(root, "n")));
        return false;
    }
    const json_t *lp = field(root, "logprobs");
    if (lp && !json_is_false(lp) && !(json_is_integer(lp) && json_integer_value(lp) == 0))
        return BAD("logprobs", "'logprobs': log probabilities are not supported");
    if (kind == SRV_COMPLETION) {
        bool echo = false;
        if (!get_bool(root, "echo", &echo, e)) return false;
        if (echo) return BAD("echo", "'echo': echoing the prompt is not supported");
        const json_t *suffix = field(root, "suffix");
        if (suffix && !(json_is_string(suffix) && json_string_length(suffix) == 0))
            return BAD("suffix", "'suffix': insertion is not supported");
        long long best_of = 1;
        if (!get_integer(root, "best_of", 1, 1, &best_of, NULL, e)) return false;
    } else {
        const json_t *rf = field(root, "response_format");
        if (rf) {
            const json_t *t = json_is_object(rf) ? json_object_get(rf, "type") : NULL;
            if (!json_is_string(t))
                return BAD("response_format", "'response_format': expected an object with a string \"type\"");
            if (strcmp(json_string_value(t), "text"))
                return BAD("response_format.type", "'response_format.type': \"%s\" is not supported (only \"text\")",
                           json_string_value(t));
        }
    }
    return true;
}

/* messages: a non-empty array of objects, at most max_messages. */
static bool parse_messages(const json_t *root, const srv_limits *lim, srv_params *p, srv_error *e) {
    const json_t *m = json_object_get(root, "messages");
    if (!m || json_is_null(m)) return BAD("messages", "'messages': required");
    if (!json_is_array(m)) return BAD("messages", "'messages': expected an array, got %s", type_name(m));
    size_t n = json_array_size(m);
    if (n == 0) return BAD("messages", "'messages': empty; give at least one message");
    if (n > lim->max_messages) return BAD("messages", "'messages': %zu messages, at most %zu", n, lim->max_messages);
    for (size_t i = 0; i < n; i++) {
        const json_t *msg = json_array_get(m, i);
        char param[48];
        snprintf(param, sizeof param, "messages[%zu]", i);
        if (!json_is_object(msg)) return BAD(param, "'%s': expected an object, got %s", param, type_name(msg));
    }
    if (!(p->messages_json = json_dumps(m, JSON_COMPACT | JSON_ENSURE_ASCII))) return oom(e);
    return true;
}

/* tools (array of {"type": "function", "function": {"name": string, ...}}) and tool_choice. */
static bool parse_tools(const json_t *root, const srv_limits *lim, srv_params *p, srv_error *e) {
    const json_t *tools = field(root, "tools");
    const json_t *choice = field(root, "tool_choice");
    bool none = false;
    if (choice) {
        if (json_is_string(choice)) {
            const char *c = json_string_value(choice);
            if (!strcmp(c, "none")) none = true;
            else if (strcmp(c, "auto"))
                return BAD("tool_choice", "'tool_choice': \"%s\" is not supported (\"auto\" or \"none\": glmoe does not "
                           "constrain the output)", c);
        } else if (json_is_object(choice)) {
            return BAD("tool_choice", "'tool_choice': naming a function is not supported (\"auto\" or \"none\": glmoe "
                       "does not constrain the output)");
        } else {
            return BAD("tool_choice", "'tool_choice': expected a string, got %s", type_name(choice));
        }
    }
    if (!tools) return true;
    if (!json_is_array(tools)) return BAD("tools", "'tools': expected an array, got %s", type_name(tools));
    size_t n = json_array_size(tools);
    if (n > lim->max_tools) return BAD("tools", "'tools': %zu tools, at most %zu", n, lim->max_tools);
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_array_get(tools, i);
        char param[64];
        snprintf(param, sizeof param, "tools[%zu]", i);
        if (!json_is_object(t)) return BAD(param, "'%s': expected an object, got %s", param, type_name(t));
        const json_t *type = json_object_get(t, "type");
        if (!json_is_string(type) || strcmp(json_string_value(type), "function"))
            return BAD(param, "'%s.type': expected \"function\"", param);
        const json_t *fn = json_object_get(t, "function");
        if (!json_is_object(fn)) return BAD(param, "'%s.function': expected an object", param);
        const json_t *name = json_object_get(fn, "name");
        if (!json_is_string(name) || json_string_length(name) == 0)
            return BAD(param, "'%s.function.name': expected a non-empty string", param);
        const json_t *params = json_object_get(fn, "parameters");
        if (params && !json_is_null(params) && !json_is_object(params))
            return BAD(param, "'%s.function.parameters': expected an object, got %s", param, type_name(params));
    }
    if (n > 0 && !none && !(p->tools_json = json_dumps(tools, JSON_COMPACT | JSON_ENSURE_ASCII))) return oom(e);
    return true;
}

static bool parse_prompt(const json_t *root, srv_params *p, srv_error *e) {
    const json_t *v = json_object_get(root, "prompt");
    if (!v || json_is_null(v)) return BAD("prompt", "'prompt': required");
    /* ["text"] is what some clients send for one prompt */
    if (json_is_array(v) && json_array_size(v) == 1 && json_is_string(json_array_get(v, 0))) v = json_array_get(v, 0);
    if (json_is_array(v))
        return BAD("prompt", "'prompt': only one prompt string per request is supported (no token arrays or batches)");
    if (!json_is_string(v)) return BAD("prompt", "'prompt': expected a string, got %s", type_name(v));
    if (json_string_length(v) == 0) return BAD("prompt", "'prompt': empty");
    p->prompt_len = json_string_length(v);
    if (!(p->prompt = dup_bytes(json_string_value(v), p->prompt_len))) return oom(e);
    return true;
}

bool srv_parse_request(srv_kind kind, const char *body, size_t len, const srv_limits *lim, srv_params *out,
                       srv_error *e) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->enable_thinking = -1;
    out->max_tokens = -1;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    bool ok = false;
    if (!root) {
        BAD(NULL, "the body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        goto done;
    }
    if (!json_is_object(root)) {
        BAD(NULL, "the body must be a JSON object, got %s", type_name(root));
        goto done;
    }
    const json_t *model = field(root, "model");
    if (model && !json_is_string(model)) {
        BAD("model", "'model': expected a string, got %s", type_name(model));
        goto done;
    }
    if (model && !(out->model = dup_bytes(json_string_value(model), json_string_length(model)))) {
        oom(e);
        goto done;
    }
    if (!refuse_unsupported(root, kind, e) || !parse_sampling(root, out, e) || !parse_stop(root, lim, out, e) ||
        !get_bool(root, "stream", &out->stream, e))
        goto done;
    const json_t *so = field(root, "stream_options");
    if (so) {
        if (!json_is_object(so)) {
            BAD("stream_options", "'stream_options': expected an object, got %s", type_name(so));
            goto done;
        }
        const json_t *iu = field(so, "include_usage");
        if (iu && !json_is_boolean(iu)) {
            BAD("stream_options.include_usage", "'stream_options.include_usage': expected a boolean, got %s",
                type_name(iu));
            goto done;
        }
        out->include_usage = json_is_true(iu);
    }
    /* max_completion_tokens is the newer name; it wins when both are there */
    long long mt = -1, mct = -1;
    bool has_mct = false;
    if (!get_integer(root, "max_tokens", 1, INT32_MAX, &mt, NULL, e) ||
        !get_integer(root, "max_completion_tokens", 1, INT32_MAX, &mct, &has_mct, e))
        goto done;
    out->max_tokens = has_mct ? (long)mct : (long)mt;
    if (kind == SRV_CHAT) {
        if (!parse_messages(root, lim, out, e) || !parse_tools(root, lim, out, e)) goto done;
        const json_t *kw = field(root, "chat_template_kwargs");
        if (kw) {
            if (!json_is_object(kw)) {
                BAD("chat_template_kwargs", "'chat_template_kwargs': expected an object, got %s", type_name(kw));
                goto done;
            }
            const json_t *et = field(kw, "enable_thinking");
            if (et && !json_is_boolean(et)) {
                BAD("chat_template_kwargs.enable_thinking",
                    "'chat_template_kwargs.enable_thinking': expected a boolean, got %s", type_name(et));
                goto done;
            }
            if (et) out->enable_thinking = json_is_true(et);
        }
    } else if (!parse_prompt(root, out, e)) {
        goto done;
    }
    ok = true;
done:
    json_decref(root);
    if (!ok) srv_params_free(out);
    return ok;
}

void srv_params_free(srv_params *p) {
    if (!p) return;
    free(p->model);
    free(p->messages_json);
    free(p->tools_json);
    free(p->prompt);
    for (size_t i = 0; i < p->n_stop; i++) free(p->stop[i]);
    free(p->stop);
    free(p->stop_len);
    srv_kind kind = p->kind;
    memset(p, 0, sizeof *p);
    p->kind = kind;
}

bool srv_render_chat(const srv_params *p, glmoe_chat_style style, char **text, size_t *len, srv_error *e) {
    glmoe_chat_params cp = glmoe_chat_params_default();
    cp.style = style;
    cp.enable_thinking = p->enable_thinking;
    char err[512];
    glmoe_status st = glmoe_chat_render(text, len, p->messages_json, p->tools_json, &cp, err, sizeof err);
    if (st == GLMOE_E_NOMEM) return oom(e);
    if (st != GLMOE_OK) {
        /* the renderer's message starts with the field ("messages[1].role: ...") */
        char param[64] = "messages";
        size_t n = strcspn(err, ": ");
        if (n > 0 && n < sizeof param && (!strncmp(err, "messages", 8) || !strncmp(err, "tools", 5)))
            snprintf(param, sizeof param, "%.*s", (int)n, err);
        return BAD(param, "%s", err);
    }
    return true;
}
