/*
 * chat.c — the GLM-4.5 / GLM-4.7 chat templates written out in C (contract in chat.h).
 *
 * Each function below mirrors one piece of the Jinja template; the template line it implements is
 * quoted above it. Whitespace matters everywhere: transformers renders with trim_blocks and
 * lstrip_blocks, so the newlines that survive are exactly the ones written as string literals here
 * (rules and examples: docs/spec/glm4_moe.md §4.3, §4.4).
 *
 * Three pieces of Python semantics have to be reproduced, because the template calls them:
 *   - str.strip() strips Unicode whitespace (U+3000, U+00A0, U+2028, U+001C..U+001F, ...), not
 *     just ASCII: py_strip().
 *   - tojson is json.dumps(x, ensure_ascii=False): ", " / ": " separators, \u00XX for control
 *     characters, floats in repr() form: py_dump().
 *   - repr(float) is the shortest decimal that reads back to the same double, written in fixed
 *     notation when the decimal exponent is in [-4, 16) and as 1e+16 / 1e-05 otherwise: py_float().
 *
 * Deliberately left out: the template's fallbacks that print Python reprs of objects (content that
 * is a mapping or a number, tool results that are mappings without "output"); they are refused as
 * GLMOE_E_ARG instead, because no caller means them.
 *
 * Tested by tests/unit/test_chat.c (golden renders from jinja2 + transformers, bad-input messages,
 * json.dumps corner cases, the tool-call parser).
 */
#include "tokenizer/chat.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable output buffer ---------------------------------------------------------------- */

/* Appends never fail at the call site: an allocation failure sets `oom`, later appends do nothing,
 * and the caller checks once at the end. That keeps the template code readable. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom || n == 0) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_free(sbuf *b) {
    free(b->p);
    *b = (sbuf){0};
}

/* Hands the text over as a NUL-terminated malloc'd string (an empty one when nothing was added). */
static glmoe_status sb_finish(sbuf *b, char **out, size_t *out_len, gm_err *err) {
    if (!b->oom && !b->p) { /* nothing was appended: hand back "" */
        b->p = calloc(1, 1);
        b->cap = 1;
    }
    if (b->oom || !b->p) {
        sb_free(b);
        return gm_fail(err, GLMOE_E_NOMEM, "chat: out of memory building the rendered text");
    }
    *out = b->p;
    if (out_len) *out_len = b->len;
    *b = (sbuf){0};
    return GLMOE_OK;
}

/* A borrowed piece of text. */
typedef struct strv {
    const char *p;
    size_t n;
} strv;

static strv sv(const char *p, size_t n) { return (strv){p, n}; }

/* First occurrence of needle in [p, p+n), or NULL. */
static const char *find(const char *p, size_t n, const char *needle) {
    return memmem(p, n, needle, strlen(needle));
}

/* Last occurrence of needle in [p, p+n), or NULL. */
static const char *rfind(const char *p, size_t n, const char *needle) {
    size_t k = strlen(needle);
    if (k > n) return NULL;
    for (size_t i = n - k + 1; i-- > 0;)
        if (memcmp(p + i, needle, k) == 0) return p + i;
    return NULL;
}

static bool ends_with(strv s, const char *suffix) {
    size_t k = strlen(suffix);
    return s.n >= k && memcmp(s.p + s.n - k, suffix, k) == 0;
}

/* ---- Python str.strip() -------------------------------------------------------------------- */

/* str.isspace(): bidirectional class WS, B or S, or category Zs (CPython _PyUnicode_IsWhitespace). */
static bool py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decodes the UTF-8 sequence at s[0..n). Returns its length, or 0 (with *cp unset) when the bytes
 * are not a well-formed sequence; such bytes are never whitespace. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned char c = s[0];
    size_t len;
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        len = 2, v = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
        len = 3, v = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
        len = 4, v = c & 0x07;
    } else {
        return 0;
    }
    if (len > n) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

static strv py_lstrip(strv s) {
    while (s.n > 0) {
        uint32_t c;
        size_t k = utf8_decode((const unsigned char *)s.p, s.n, &c);
        if (k == 0 || !py_isspace(c)) break;
        s.p += k, s.n -= k;
    }
    return s;
}

static strv py_rstrip(strv s) {
    while (s.n > 0) {
        /* Step back to the lead byte of the last character (at most 3 continuation bytes). */
        size_t start = s.n - 1;
        while (start > 0 && s.n - start < 4 && (((unsigned char)s.p[start]) & 0xC0) == 0x80) start--;
        uint32_t c;
        size_t k = utf8_decode((const unsigned char *)s.p + start, s.n - start, &c);
        if (k != s.n - start || !py_isspace(c)) break;
        s.n = start;
    }
    return s;
}

static strv py_strip(strv s) { return py_rstrip(py_lstrip(s)); }

/* str.lstrip('\n') and str.rstrip('\n'): only newline characters. */
static strv lstrip_nl(strv s) {
    while (s.n > 0 && s.p[0] == '\n') s.p++, s.n--;
    return s;
}

static strv rstrip_nl(strv s) {
    while (s.n > 0 && s.p[s.n - 1] == '\n') s.n--;
    return s;
}

/* ---- Python json.dumps(x, ensure_ascii=False) ---------------------------------------------- */

/* repr(float): the shortest digit string that strtod reads back as x (CPython uses David Gay's
 * dtoa, mode 0). The correctly rounded p-digit decimal is the nearest candidate of that length; at
 * a power of two the rounding interval is lopsided, so its neighbours one unit away are tried too
 * before moving to p + 1 digits. */
static void py_float(sbuf *b, double x) {
    if (isnan(x)) return sb_puts(b, "NaN");
    if (isinf(x)) return sb_puts(b, x < 0 ? "-Infinity" : "Infinity");
    if (signbit(x)) sb_puts(b, "-"), x = -x;
    if (x == 0) return sb_puts(b, "0.0");

    char digits[32] = {0};
    int exp10 = 0; /* x = d.ddd × 10^exp10 */
    for (int p = 1; p <= 17; p++) {
        char tmp[48];
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, x);
        /* tmp is "d.ddde±XX": take the mantissa digits as an integer and the exponent. */
        uint64_t m = 0;
        const char *q = tmp;
        for (; *q && *q != 'e'; q++)
            if (*q >= '0' && *q <= '9') m = m * 10 + (uint64_t)(*q - '0');
        int e = atoi(q + 1);
        uint64_t cands[3] = {m, m - 1, m + 1};
        int ncand = 3;
        if (m == 0) ncand = 1; /* cannot happen for x > 0, kept for safety */
        for (int i = 0; i < ncand; i++) {
            char c[48];
            int nd = snprintf(c, sizeof c, "%" PRIu64, cands[i]);
            if (nd != p) continue; /* m±1 changed length: covered at another p */
            char back[64];
            snprintf(back, sizeof back, "%se%d", c, e - (p - 1));
            if (strtod(back, NULL) == x) {
                memcpy(digits, c, (size_t)nd + 1);
                exp10 = e;
                goto found;
            }
        }
    }
    /* 17 significant digits always round-trip; not reachable. */
    snprintf(digits, sizeof digits, "%.16e", x);
    return sb_puts(b, digits);

found:;
    /* Trailing zeros carry no information (Gay's digits never have them). */
    int nd = (int)strlen(digits);
    while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = '\0';
    int decpt = exp10 + 1; /* x = 0.digits × 10^decpt */
    char out[64];
    int o = 0;
    if (decpt > -4 && decpt <= 16) {
        /* Fixed notation, always with a fractional part: 100.0, 0.001, 1.5. */
        if (decpt <= 0) {
            out[o++] = '0', out[o++] = '.';
            for (int i = 0; i < -decpt; i++) out[o++] = '0';
            for (int i = 0; i < nd; i++) out[o++] = digits[i];
        } else if (decpt >= nd) {
            for (int i = 0; i < nd; i++) out[o++] = digits[i];
            for (int i = nd; i < decpt; i++) out[o++] = '0';
            out[o++] = '.', out[o++] = '0';
        } else {
            for (int i = 0; i < decpt; i++) out[o++] = digits[i];
            out[o++] = '.';
            for (int i = decpt; i < nd; i++) out[o++] = digits[i];
        }
        out[o] = '\0';
    } else {
        /* Scientific: 1e+16, 2.5e-05 (at least two exponent digits, explicit sign). */
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            for (int i = 1; i < nd; i++) out[o++] = digits[i];
        }
        int e = decpt - 1;
        snprintf(out + o, sizeof out - (size_t)o, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    sb_puts(b, out);
}

/* json.dumps string escaping with ensure_ascii=False: only '"', '\\' and U+0000..U+001F are
 * escaped; DEL, U+2028 and all other non-ASCII characters are written as they are. */
static void py_string(sbuf *b, const char *s, size_t n) {
    sb_put(b, "\"", 1);
    size_t run = 0; /* start of the pending unescaped run */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char ubuf[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
                esc = ubuf;
            }
        }
        if (esc) {
            sb_put(b, s + run, i - run);
            sb_puts(b, esc);
            run = i + 1;
        }
    }
    sb_put(b, s + run, n - run);
    sb_put(b, "\"", 1);
}

static void py_dump(sbuf *b, const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        sb_puts(b, "{");
        const char *key;
        json_t *item;
        bool first = true;
        /* jansson keeps insertion order, which is Python's dict order. */
        json_object_foreach((json_t *)v, key, item) {
            if (!first) sb_puts(b, ", ");
            first = false;
            py_string(b, key, strlen(key));
            sb_puts(b, ": ");
            py_dump(b, item);
        }
        sb_puts(b, "}");
        break;
    }
    case JSON_ARRAY: {
        sb_puts(b, "[");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) sb_puts(b, ", ");
            py_dump(b, json_array_get(v, i));
        }
        sb_puts(b, "]");
        break;
    }
    case JSON_STRING: py_string(b, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: {
        char tmp[32];
        snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        sb_puts(b, tmp);
        break;
    }
    case JSON_REAL: py_float(b, json_real_value(v)); break;
    case JSON_TRUE: sb_puts(b, "true"); break;
    case JSON_FALSE: sb_puts(b, "false"); break;
    case JSON_NULL: sb_puts(b, "null"); break;
    }
}

glmoe_status chat_json_dumps(char **out, const json_t *value, gm_err *err) {
    if (!out || !value) return gm_fail(err, GLMOE_E_ARG, "chat_json_dumps: NULL argument");
    *out = NULL;
    sbuf b = {0};
    py_dump(&b, value);
    return sb_finish(&b, out, NULL, err);
}

/* ---- input checks ---------------------------------------------------------------------------- */

static const char *type_name(const json_t *v) {
    if (!v) return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "an unknown value";
}

/* A short, single-line, printable excerpt of user text for an error message. */
static void excerpt(char *dst, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    if (o + 4 >= cap && n > o) memcpy(dst + o, "...", 3), o += 3;
    dst[o] = '\0';
}

/* A field that must be absent, null or a string. *out is NULL when absent or null. */
static glmoe_status opt_string(const json_t *m, const char *field, size_t i, const json_t **out,
                               gm_err *err) {
    const json_t *v = json_object_get(m, field);
    *out = NULL;
    if (!v || json_is_null(v)) return GLMOE_OK;
    if (!json_is_string(v))
        return gm_fail(err, GLMOE_E_ARG, "messages[%zu].%s: expected a string or null, got %s", i,
                       field, type_name(v));
    *out = v;
    return GLMOE_OK;
}

/* ---- the template ---------------------------------------------------------------------------- */

typedef enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL } role;

typedef struct render_ctx {
    sbuf out;
    const chat_options *opt;
    bool glm47;
    gm_err *err;
} render_ctx;

static glmoe_status message_role(const json_t *m, size_t i, role *r, gm_err *err) {
    if (!json_is_object(m))
        return gm_fail(err, GLMOE_E_ARG, "messages[%zu]: expected an object, got %s", i, type_name(m));
    const json_t *v = json_object_get(m, "role");
    if (!v || json_is_null(v)) return gm_fail(err, GLMOE_E_ARG, "messages[%zu]: missing \"role\"", i);
    if (!json_is_string(v))
        return gm_fail(err, GLMOE_E_ARG, "messages[%zu].role: expected a string, got %s", i,
                       type_name(v));
    const char *s = json_string_value(v);
    if (strcmp(s, "system") == 0) *r = ROLE_SYSTEM;
    else if (strcmp(s, "user") == 0) *r = ROLE_USER;
    else if (strcmp(s, "assistant") == 0) *r = ROLE_ASSISTANT;
    else if (strcmp(s, "tool") == 0) *r = ROLE_TOOL;
    else {
        char ex[48];
        excerpt(ex, sizeof ex, s, json_string_length(v));
        return gm_fail(err, GLMOE_E_ARG,
                       "messages[%zu].role: unknown role \"%s\" (expected system, user, assistant or tool)",
                       i, ex);
    }
    return GLMOE_OK;
}

/* {%- macro visible_text(content) -%}: a string as it is; for a list, its string items and the
 * "text" of its {"type": "text"} items, concatenated; missing or null content is "". Written into
 * `text` (cleared first). */
static glmoe_status visible_text(sbuf *text, const json_t *m, size_t i, gm_err *err) {
    text->len = 0;
    if (text->p) text->p[0] = '\0';
    const json_t *c = json_object_get(m, "content");
    if (!c || json_is_null(c)) return GLMOE_OK; /* transformers drops None; Undefined renders "" */
    if (json_is_string(c)) {
        sb_put(text, json_string_value(c), json_string_length(c));
        return GLMOE_OK;
    }
    if (!json_is_array(c))
        return gm_fail(err, GLMOE_E_ARG,
                       "messages[%zu].content: expected a string, an array of parts or null, got %s",
                       i, type_name(c));
    for (size_t j = 0; j < json_array_size(c); j++) {
        const json_t *item = json_array_get(c, j);
        if (json_is_string(item)) {
            sb_put(text, json_string_value(item), json_string_length(item));
        } else if (json_is_object(item)) {
            const json_t *type = json_object_get(item, "type");
            if (!json_is_string(type) || strcmp(json_string_value(type), "text") != 0)
                continue; /* images and other parts are not text: the template skips them */
            const json_t *t = json_object_get(item, "text");
            if (!t) continue; /* Undefined renders as "" */
            if (!json_is_string(t))
                return gm_fail(err, GLMOE_E_ARG, "messages[%zu].content[%zu].text: expected a string, got %s",
                               i, j, type_name(t));
            sb_put(text, json_string_value(t), json_string_length(t));
        }
        /* numbers, nulls and nested arrays are skipped by the template as well */
    }
    return GLMOE_OK;
}

static void render_tools_header(render_ctx *x, const json_t *tools) {
    sbuf *b = &x->out;
    sb_puts(b, "<|system|>\n# Tools\n\nYou may call one or more functions to assist with the user "
               "query.\n\nYou are provided with function signatures within <tools></tools> XML "
               "tags:\n<tools>\n");
    /* {% for tool in tools %}{{ tool | tojson(ensure_ascii=False) }}⏎{% endfor %} */
    for (size_t i = 0; i < json_array_size(tools); i++) {
        py_dump(b, json_array_get(tools, i));
        sb_puts(b, "\n");
    }
    sb_puts(b, "</tools>\n\nFor each function call, output the function name and arguments within "
               "the following XML format:\n");
    if (x->glm47)
        sb_puts(b, "<tool_call>{function-name}<arg_key>{arg-key-1}</arg_key><arg_value>{arg-value-1}"
                   "</arg_value><arg_key>{arg-key-2}</arg_key><arg_value>{arg-value-2}</arg_value>..."
                   "</tool_call>");
    else
        sb_puts(b, "<tool_call>{function-name}\n<arg_key>{arg-key-1}</arg_key>\n<arg_value>"
                   "{arg-value-1}</arg_value>\n<arg_key>{arg-key-2}</arg_key>\n<arg_value>"
                   "{arg-value-2}</arg_value>\n...\n</tool_call>");
}

/* <|user|>⏎{{ visible_text(m.content) }}{{- '/nothink' if (enable_thinking is defined and not
 * enable_thinking and not visible_text(m.content).endswith("/nothink")) else '' -}}
 * GLM-4.7: <|user|>{{ visible_text(m.content) }} */
static void render_user(render_ctx *x, strv text) {
    sb_puts(&x->out, x->glm47 ? "<|user|>" : "<|user|>\n");
    sb_put(&x->out, text.p, text.n);
    if (!x->glm47 && x->opt->enable_thinking == CHAT_FLAG_FALSE && !ends_with(text, "/nothink"))
        sb_puts(&x->out, "/nothink");
}

static void render_system(render_ctx *x, strv text) {
    sb_puts(&x->out, x->glm47 ? "<|system|>" : "<|system|>\n");
    sb_put(&x->out, text.p, text.n);
}

/* One tool call: {%- if tc.function %}{%- set tc = tc.function %}{%- endif %} then the name and
 * {% for k, v in tc.arguments.items() %}, values as they are when strings, else tojson. */
static glmoe_status render_tool_call(render_ctx *x, const json_t *tc, size_t i, size_t j) {
    gm_err *err = x->err;
    if (!json_is_object(tc))
        return gm_fail(err, GLMOE_E_ARG, "messages[%zu].tool_calls[%zu]: expected an object, got %s",
                       i, j, type_name(tc));
    const char *where = "";
    const json_t *fn = json_object_get(tc, "function");
    /* Jinja truthiness: a missing, null or empty "function" leaves the call itself in place (the
     * flat form {"name", "arguments"}); any other value replaces it. */
    bool nested = fn && !json_is_null(fn) &&
                  !(json_is_object(fn) && json_object_size(fn) == 0) &&
                  !(json_is_array(fn) && json_array_size(fn) == 0) &&
                  !(json_is_string(fn) && json_string_length(fn) == 0) && !json_is_false(fn);
    if (nested) {
        if (!json_is_object(fn))
            return gm_fail(err, GLMOE_E_ARG,
                           "messages[%zu].tool_calls[%zu].function: expected an object, got %s", i,
                           j, type_name(fn));
        tc = fn;
        where = ".function";
    }
    const json_t *name = json_object_get(tc, "name");
    if (!name || json_is_null(name))
        return gm_fail(err, GLMOE_E_ARG, "messages[%zu].tool_calls[%zu]%s.name: missing", i, j, where);
    if (!json_is_string(name))
        return gm_fail(err, GLMOE_E_ARG, "messages[%zu].tool_calls[%zu]%s.name: expected a string, got %s",
                       i, j, where, type_name(name));

    /* Arguments: a mapping, or OpenAI's JSON string of one (parsed here, as the caller of the
     * template must: the template calls arguments.items()). */
    const json_t *args = json_object_get(tc, "arguments");
    json_t *parsed = NULL;
    if (!args || json_is_null(args))
        return gm_fail(err, GLMOE_E_ARG, "messages[%zu].tool_calls[%zu]%s.arguments: missing", i, j,
                       where);
    if (json_is_string(args)) {
        json_error_t je;
        parsed = json_loadb(json_string_value(args), json_string_length(args), JSON_DECODE_ANY, &je);
        if (!parsed)
            return gm_fail(err, GLMOE_E_ARG,
                           "messages[%zu].tool_calls[%zu]%s.arguments: not valid JSON at column %d: %s",
                           i, j, where, je.column, je.text);
        if (!json_is_object(parsed)) {
            glmoe_status st = gm_fail(err, GLMOE_E_ARG,
                                      "messages[%zu].tool_calls[%zu]%s.arguments: the JSON string "
                                      "holds %s, expected an object",
                                      i, j, where, type_name(parsed));
            json_decref(parsed);
            return st;
        }
        args = parsed;
    } else if (!json_is_object(args)) {
        return gm_fail(err, GLMOE_E_ARG,
                       "messages[%zu].tool_calls[%zu]%s.arguments: expected an object or a JSON "
                       "string of one, got %s",
                       i, j, where, type_name(args));
    }

    sbuf *b = &x->out;
    sb_puts(b, x->glm47 ? "<tool_call>" : "\n<tool_call>");
    sb_put(b, json_string_value(name), json_string_length(name));
    if (!x->glm47) sb_puts(b, "\n");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)args, key, v) {
        sb_puts(b, "<arg_key>");
        sb_puts(b, key);
        sb_puts(b, "</arg_key>");
        if (!x->glm47) sb_puts(b, "\n");
        sb_puts(b, "<arg_value>");
        if (json_is_string(v)) sb_put(b, json_string_value(v), json_string_length(v));
        else py_dump(b, v);
        sb_puts(b, "</arg_value>");
        if (!x->glm47) sb_puts(b, "\n");
    }
    sb_puts(b, "</tool_call>");
    json_decref(parsed);
    return GLMOE_OK;
}

/* The assistant turn: reasoning (from reasoning_content, or split off a <think> block in the
 * content), then the content, then the tool calls. `after_last_user` is loop.index0 >
 * ns.last_user_index: only the reasoning of the turns answering the last user message is kept. */
static glmoe_status render_assistant(render_ctx *x, const json_t *m, size_t i, bool after_last_user,
                                     sbuf *scratch) {
    gm_err *err = x->err;
    glmoe_status st = visible_text(scratch, m, i, err);
    if (st) return st;
    strv content = sv(scratch->p ? scratch->p : "", scratch->len);

    /* transformers copies "thinking" or "reasoning" into reasoning_content when that is missing
     * (_alias_reasoning_fields: first non-null of the three). */
    static const char *const fields[] = {"reasoning_content", "thinking", "reasoning"};
    const json_t *rc = NULL;
    for (int f = 0; f < 3 && !rc; f++) {
        st = opt_string(m, fields[f], i, &rc, err);
        if (st) return st;
    }

    strv reasoning = sv("", 0);
    if (rc) {
        reasoning = sv(json_string_value(rc), json_string_length(rc));
    } else if (find(content.p, content.n, "</think>")) {
        /* content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
        const char *close = find(content.p, content.n, "</think>");
        strv before = rstrip_nl(sv(content.p, (size_t)(close - content.p)));
        const char *open = rfind(before.p, before.n, "<think>");
        if (open) before = sv(open + 7, before.n - (size_t)(open + 7 - before.p));
        reasoning = lstrip_nl(before);
        /* content.split('</think>')[-1].lstrip('\n') */
        const char *last = rfind(content.p, content.n, "</think>");
        content = lstrip_nl(sv(last + 8, content.n - (size_t)(last + 8 - content.p)));
    }

    sbuf *b = &x->out;
    sb_puts(b, "<|assistant|>");
    bool keep = after_last_user || (x->glm47 && x->opt->clear_thinking == CHAT_FLAG_FALSE);
    if (keep && reasoning.n > 0) {
        strv r = py_strip(reasoning);
        sb_puts(b, x->glm47 ? "<think>" : "\n<think>");
        sb_put(b, r.p, r.n);
        sb_puts(b, "</think>");
    } else {
        sb_puts(b, x->glm47 ? "</think>" : "\n<think></think>");
    }
    strv c = py_strip(content);
    if (c.n > 0) {
        if (!x->glm47) sb_puts(b, "\n");
        sb_put(b, c.p, c.n);
    }

    /* {% if m.tool_calls %}: absent, null and [] all mean none. */
    const json_t *calls = json_object_get(m, "tool_calls");
    if (!calls || json_is_null(calls)) return GLMOE_OK;
    if (!json_is_array(calls))
        return gm_fail(err, GLMOE_E_ARG, "messages[%zu].tool_calls: expected an array, got %s", i,
                       type_name(calls));
    for (size_t j = 0; j < json_array_size(calls); j++) {
        st = render_tool_call(x, json_array_get(calls, j), i, j);
        if (st) return st;
    }
    return GLMOE_OK;
}

/* A tool result. String content: <|observation|> (only at the start of a run of tool messages),
 * then ⏎<tool_response>⏎{content}⏎</tool_response>. List content (several results in one
 * message): <|observation|> always, then one block per item, the item being a string or an object
 * whose "output" is. Missing content renders the bare <|observation|>, as the template does. */
static glmoe_status render_tool(render_ctx *x, const json_t *m, size_t i, bool prev_is_tool) {
    sbuf *b = &x->out;
    const char *open = x->glm47 ? "<tool_response>" : "\n<tool_response>\n";
    const char *close = x->glm47 ? "</tool_response>" : "\n</tool_response>";
    const json_t *c = json_object_get(m, "content");
    if (json_is_string(c)) {
        if (!prev_is_tool) sb_puts(b, "<|observation|>");
        sb_puts(b, open);
        sb_put(b, json_string_value(c), json_string_length(c));
        sb_puts(b, close);
        return GLMOE_OK;
    }
    if (c && !json_is_null(c) && !json_is_array(c))
        return gm_fail(x->err, GLMOE_E_ARG,
                       "messages[%zu].content: expected a string, an array of results or null, got %s",
                       i, type_name(c));
    sb_puts(b, "<|observation|>");
    for (size_t j = 0; j < json_array_size(c); j++) { /* 0 for NULL / null */
        const json_t *item = json_array_get(c, j);
        const json_t *text = json_is_object(item) ? json_object_get(item, "output") : item;
        if (!json_is_string(text))
            return gm_fail(x->err, GLMOE_E_ARG,
                           "messages[%zu].content[%zu]: expected a string or an object with a "
                           "string \"output\", got %s",
                           i, j, json_is_object(item) ? "an object without one" : type_name(item));
        /* GLM-4.5 writes "\n\n<tool_response>" in the template, trim_blocks eats one newline. */
        sb_puts(b, open);
        sb_put(b, json_string_value(text), json_string_length(text));
        sb_puts(b, close);
    }
    return GLMOE_OK;
}

void chat_options_default(chat_options *opt) {
    *opt = (chat_options){.add_generation_prompt = true,
                          .enable_thinking = CHAT_FLAG_UNSET,
                          .clear_thinking = CHAT_FLAG_UNSET,
                          .style = CHAT_STYLE_GLM45};
}

glmoe_status chat_render(char **out, size_t *out_len, const json_t *messages, const json_t *tools,
                         const chat_options *opt, gm_err *err) {
    if (!out) return gm_fail(err, GLMOE_E_ARG, "chat_render: out is NULL");
    *out = NULL;
    if (out_len) *out_len = 0;
    chat_options defaults;
    if (!opt) chat_options_default(&defaults), opt = &defaults;
    if (opt->style != CHAT_STYLE_GLM45 && opt->style != CHAT_STYLE_GLM47)
        return gm_fail(err, GLMOE_E_ARG, "chat: unknown style %d", (int)opt->style);
    if (!json_is_array(messages))
        return gm_fail(err, GLMOE_E_ARG, "messages: expected an array, got %s", type_name(messages));
    if (tools && !json_is_null(tools) && !json_is_array(tools))
        return gm_fail(err, GLMOE_E_ARG, "tools: expected an array or null, got %s", type_name(tools));

    /* First pass: every role is known before anything is written, and the last user turn is
     * found ({%- set ns = namespace(last_user_index=-1) %} ... ). */
    size_t n = json_array_size(messages);
    long last_user = -1;
    for (size_t i = 0; i < n; i++) {
        role r;
        glmoe_status st = message_role(json_array_get(messages, i), i, &r, err);
        if (st) return st;
        if (r == ROLE_USER) last_user = (long)i;
    }

    render_ctx x = {.opt = opt, .glm47 = opt->style == CHAT_STYLE_GLM47, .err = err};
    sbuf text = {0};
    glmoe_status st = GLMOE_OK;
    sb_puts(&x.out, "[gMASK]<sop>");
    if (json_array_size(tools) > 0) render_tools_header(&x, tools); /* {%- if tools -%} */

    role prev = ROLE_SYSTEM;
    for (size_t i = 0; i < n && st == GLMOE_OK; i++) {
        const json_t *m = json_array_get(messages, i);
        role r;
        message_role(m, i, &r, NULL); /* checked above */
        switch (r) {
        case ROLE_USER:
        case ROLE_SYSTEM:
            st = visible_text(&text, m, i, err);
            if (st) break;
            if (r == ROLE_USER) render_user(&x, sv(text.p ? text.p : "", text.len));
            else render_system(&x, sv(text.p ? text.p : "", text.len));
            break;
        case ROLE_ASSISTANT: st = render_assistant(&x, m, i, (long)i > last_user, &text); break;
        case ROLE_TOOL: st = render_tool(&x, m, i, i > 0 && prev == ROLE_TOOL); break;
        }
        prev = r;
    }
    sb_free(&text);
    if (st) {
        sb_free(&x.out);
        return st;
    }

    if (opt->add_generation_prompt) {
        bool off = opt->enable_thinking == CHAT_FLAG_FALSE;
        sb_puts(&x.out, "<|assistant|>");
        if (x.glm47) sb_puts(&x.out, off ? "</think>" : "<think>");
        else if (off) sb_puts(&x.out, "\n<think></think>");
    }
    return sb_finish(&x.out, out, out_len, err);
}

glmoe_status chat_render_json(char **out, size_t *out_len, const char *messages_json,
                              const char *tools_json, const chat_options *opt, gm_err *err) {
    if (!out) return gm_fail(err, GLMOE_E_ARG, "chat_render_json: out is NULL");
    *out = NULL;
    if (!messages_json) return gm_fail(err, GLMOE_E_ARG, "messages: no JSON text given");
    json_error_t je;
    json_t *messages = json_loads(messages_json, JSON_DECODE_ANY, &je);
    if (!messages)
        return gm_fail(err, GLMOE_E_ARG, "messages: invalid JSON at line %d column %d: %s", je.line,
                       je.column, je.text);
    json_t *tools = NULL;
    if (tools_json) {
        tools = json_loads(tools_json, JSON_DECODE_ANY, &je);
        if (!tools) {
            json_decref(messages);
            return gm_fail(err, GLMOE_E_ARG, "tools: invalid JSON at line %d column %d: %s", je.line,
                           je.column, je.text);
        }
    }
    glmoe_status st = chat_render(out, out_len, messages, tools, opt, err);
    json_decref(messages);
    json_decref(tools);
    return st;
}

/* ---- parsing the model's tool calls ---------------------------------------------------------- */

/* Does tools declare parameter `key` of function `name` as "type": "string"? (vLLM's
 * _is_string_type: the first tool with that name decides; no schema means no.) */
static bool is_string_param(const json_t *tools, const char *name, const char *key) {
    for (size_t i = 0; i < json_array_size(tools); i++) {
        const json_t *fn = json_object_get(json_array_get(tools, i), "function");
        const json_t *fname = json_object_get(fn, "name");
        if (!json_is_string(fname) || strcmp(json_string_value(fname), name) != 0) continue;
        const json_t *props = json_object_get(json_object_get(fn, "parameters"), "properties");
        const json_t *type = json_object_get(json_object_get(props, key), "type");
        return json_is_string(type) && strcmp(json_string_value(type), "string") == 0;
    }
    return false;
}

/* A JSON string from model text, which may hold invalid UTF-8 (a byte-level BPE model can emit
 * anything). */
static glmoe_status text_value(json_t **out, strv s, const char *what, size_t call, gm_err *err) {
    *out = memchr(s.p, '\0', s.n) ? NULL : json_stringn(s.p, s.n);
    if (!*out)
        return gm_fail(err, GLMOE_E_FORMAT, "tool call %zu: %s is not valid UTF-8 (or holds NUL)",
                       call, what);
    return GLMOE_OK;
}

glmoe_status chat_tool_call_name(json_t **out_name, size_t *name_end, const char *in, size_t n,
                                 bool whole, size_t base, size_t k, gm_err *err) {
    *out_name = NULL;
    const char *nl = memchr(in, '\n', n);
    const char *ak = find(in, n, "<arg_key>");
    const char *end = whole ? in + n : NULL;
    if (nl && (!end || nl < end)) end = nl;
    if (ak && (!end || ak < end)) end = ak;
    if (!end) return GLMOE_OK; /* the name may still go on */
    strv name = py_strip(sv(in, (size_t)(end - in)));
    if (name.n == 0)
        return gm_fail(err, GLMOE_E_FORMAT, "tool call %zu at byte %zu: empty function name", k, base);
    glmoe_status st = text_value(out_name, name, "the function name", k, err);
    if (st == GLMOE_OK && name_end) *name_end = (size_t)(end - in);
    return st;
}

glmoe_status chat_parse_tool_call(json_t **out_call, const char *text, size_t n, size_t base, size_t k,
                                  const json_t *tools, gm_err *err) {
    static const char KO[] = "<arg_key>", KC[] = "</arg_key>", VO[] = "<arg_value>",
                      VC[] = "</arg_value>";
    *out_call = NULL;
    strv in = sv(text, n);
    json_t *jname = NULL, *args = NULL, *call = NULL;
    size_t name_end = 0;
    glmoe_status st = chat_tool_call_name(&jname, &name_end, in.p, in.n, true, base, k, err);
    if (st) return st;
    args = json_object();
    if (!args) {
        st = gm_fail(err, GLMOE_E_NOMEM, "tool call %zu: out of memory", k);
        goto fail;
    }

    const char *p = in.p + name_end, *end = in.p + in.n;
    for (;;) {
        const char *ko = find(p, (size_t)(end - p), KO);
        if (!ko) break;
        const char *kc = find(ko, (size_t)(end - ko), KC);
        if (!kc) {
            st = gm_fail(err, GLMOE_E_FORMAT, "tool call %zu at byte %zu: <arg_key> without </arg_key>",
                         k, base + (size_t)(ko - in.p));
            goto fail;
        }
        strv key = py_strip(sv(ko + sizeof KO - 1, (size_t)(kc - ko) - (sizeof KO - 1)));
        strv gap = py_lstrip(sv(kc + sizeof KC - 1, (size_t)(end - kc) - (sizeof KC - 1)));
        if (gap.n < sizeof VO - 1 || memcmp(gap.p, VO, sizeof VO - 1) != 0) {
            st = gm_fail(err, GLMOE_E_FORMAT, "tool call %zu at byte %zu: </arg_key> not followed by <arg_value>",
                         k, base + (size_t)(kc - in.p));
            goto fail;
        }
        const char *vs = gap.p + sizeof VO - 1;
        const char *vc = find(vs, (size_t)(end - vs), VC);
        if (!vc) {
            st = gm_fail(err, GLMOE_E_FORMAT, "tool call %zu at byte %zu: <arg_value> without </arg_value>",
                         k, base + (size_t)(gap.p - in.p));
            goto fail;
        }
        json_t *jkey = NULL, *value = NULL;
        if ((st = text_value(&jkey, key, "an argument name", k, err))) goto fail;
        strv raw = sv(vs, (size_t)(vc - vs));
        if (is_string_param(tools, json_string_value(jname), json_string_value(jkey))) {
            st = text_value(&value, raw, "an argument value", k, err); /* verbatim */
        } else {
            strv t = py_strip(raw);
            value = json_loadb(t.p, t.n, JSON_DECODE_ANY, NULL);
            if (!value) st = text_value(&value, t, "an argument value", k, err); /* not JSON */
        }
        if (st) {
            json_decref(jkey);
            goto fail;
        }
        /* A repeated key keeps its first position and takes the last value, as a Python dict. */
        if (json_object_set_new(args, json_string_value(jkey), value)) {
            json_decref(jkey);
            st = gm_fail(err, GLMOE_E_NOMEM, "tool call %zu: out of memory", k);
            goto fail;
        }
        json_decref(jkey);
        p = vc + sizeof VC - 1;
    }

    /* json_pack's "o" steals the references, also when packing fails. */
    call = json_pack("{s:s, s:{s:o, s:o}}", "type", "function", "function", "name", jname,
                     "arguments", args);
    jname = args = NULL;
    if (!call) {
        st = gm_fail(err, GLMOE_E_NOMEM, "tool call %zu: out of memory", k);
        goto fail;
    }
    *out_call = call;
    return GLMOE_OK;

fail:
    json_decref(jname);
    json_decref(args);
    return st;
}

glmoe_status chat_tool_call_arguments_text(char **out, const json_t *call, gm_err *err) {
    *out = NULL;
    const json_t *args = json_object_get(json_object_get(call, "function"), "arguments");
    if (!json_is_object(args))
        return gm_fail(err, GLMOE_E_ARG, "chat_tool_call_arguments_text: not a parsed call");
    return chat_json_dumps(out, args, err);
}

glmoe_status chat_parse_tool_calls(json_t **out_calls, char **out_content, const char *text,
                                   size_t len, const json_t *tools, gm_err *err) {
    static const char OPEN[] = "<tool_call>", CLOSE[] = "</tool_call>";
    if (!out_calls || (!text && len)) return gm_fail(err, GLMOE_E_ARG, "chat_parse_tool_calls: NULL argument");
    *out_calls = NULL;
    if (out_content) *out_content = NULL;
    if (!text) text = "";
    json_t *calls = json_array();
    if (!calls) return gm_fail(err, GLMOE_E_NOMEM, "chat_parse_tool_calls: out of memory");

    const char *p = text, *end = text + len, *first = NULL;
    glmoe_status st = GLMOE_OK;
    for (size_t k = 0;; k++) {
        const char *o = find(p, (size_t)(end - p), OPEN);
        if (!o) break;
        if (!first) first = o;
        const char *in = o + sizeof OPEN - 1;
        const char *c = find(in, (size_t)(end - in), CLOSE);
        if (!c) {
            st = gm_fail(err, GLMOE_E_FORMAT, "tool call %zu at byte %zu: <tool_call> without </tool_call>",
                         k, (size_t)(o - text));
            break;
        }
        json_t *call = NULL;
        st = chat_parse_tool_call(&call, in, (size_t)(c - in), (size_t)(in - text), k, tools, err);
        if (st) break;
        if (json_array_append_new(calls, call)) { /* append steals call either way */
            st = gm_fail(err, GLMOE_E_NOMEM, "tool call %zu: out of memory", k);
            break;
        }
        p = c + sizeof CLOSE - 1;
    }
    if (st == GLMOE_OK && out_content) {
        size_t n = first ? (size_t)(first - text) : len;
        *out_content = malloc(n + 1);
        if (!*out_content) {
            st = gm_fail(err, GLMOE_E_NOMEM, "chat_parse_tool_calls: out of memory");
        } else {
            memcpy(*out_content, text, n);
            (*out_content)[n] = '\0';
        }
    }
    if (st) {
        json_decref(calls);
        return st;
    }
    *out_calls = calls;
    return GLMOE_OK;
}
