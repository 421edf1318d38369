/* tokenizer_json.c — the strict scanner for tokenizer.json's big members (see tokenizer_json.h). */
#include "tokenizer/tokenizer_json.h"

#include <stdio.h>
#include <string.h>

#include "tokenizer/utf8.h"

bool gm_json_ws(gm_json_cur *c) {
    while (c->i < c->n) {
        char ch = c->s[c->i];
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') return true;
        c->i++;
    }
    return false;
}

static glmoe_status fail_at(const gm_json_cur *c, const char *what, const char *msg, gm_err *err) {
    if (c->i >= c->n) return gm_fail(err, GLMOE_E_FORMAT, "%s: %s at the end of the file", what, msg);
    return gm_fail(err, GLMOE_E_FORMAT, "%s: %s at byte %zu", what, msg, c->i);
}

glmoe_status gm_json_expect(gm_json_cur *c, char ch, const char *what, gm_err *err) {
    if (!gm_json_ws(c) || c->s[c->i] != ch) {
        char msg[32];
        snprintf(msg, sizeof msg, "expected '%c'", ch);
        return fail_at(c, what, msg, err);
    }
    c->i++;
    return GLMOE_OK;
}

static int hex4(const char *p) {
    int v = 0;
    for (int k = 0; k < 4; k++) {
        char h = p[k];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Byte classes inside a string: 0 plain ASCII, 1 quote, 2 backslash, 3 control, 4 non-ASCII. */
static const uint8_t str_class[256] = {
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* Reads a string; appends decoded bytes to out when out is non-NULL. */
static glmoe_status string_impl(gm_json_cur *c, gm_tok_bytes *out, const char *what, gm_err *err) {
    if (!gm_json_ws(c) || c->s[c->i] != '"') return fail_at(c, what, "expected a string", err);
    c->i++;
    const uint8_t *s = (const uint8_t *)c->s;
    size_t run = c->i; /* start of bytes not yet copied */
    while (c->i < c->n) {
        uint8_t ch = s[c->i];
        if (str_class[ch] == 0) {
            c->i++;
            continue;
        }
        /* the byte-level alphabet is full of two-byte characters (U+0100..U+0143, Ġ, ...) */
        if (ch >= 0xC2 && ch <= 0xDF && c->i + 1 < c->n && (s[c->i + 1] & 0xC0) == 0x80) {
            c->i += 2;
            continue;
        }
        if (ch == '"') {
            if (out && !gm_tok_bytes_append(out, s + run, c->i - run)) goto nomem;
            c->i++;
            return GLMOE_OK;
        }
        if (ch < 0x20) return fail_at(c, what, "control character inside a string", err);
        if (ch >= 0x80) {
            gm_utf8_kind kind;
            size_t k = gm_utf8_scan(s + c->i, c->n - c->i, &kind);
            if (kind != GM_UTF8_CHAR) return fail_at(c, what, "ill-formed UTF-8 inside a string", err);
            c->i += k;
            continue;
        }
        if (ch != '\\') {
            c->i++;
            continue;
        }
        if (out && !gm_tok_bytes_append(out, s + run, c->i - run)) goto nomem;
        if (c->i + 1 >= c->n) break;
        char e = c->s[c->i + 1];
        char lit = 0;
        switch (e) {
        case '"': lit = '"'; break;
        case '\\': lit = '\\'; break;
        case '/': lit = '/'; break;
        case 'b': lit = '\b'; break;
        case 'f': lit = '\f'; break;
        case 'n': lit = '\n'; break;
        case 'r': lit = '\r'; break;
        case 't': lit = '\t'; break;
        case 'u': break;
        default: return fail_at(c, what, "invalid escape inside a string", err);
        }
        if (e != 'u') {
            if (out && !gm_tok_bytes_append(out, &lit, 1)) goto nomem;
            c->i += 2;
        } else {
            int cp = c->i + 6 <= c->n ? hex4(c->s + c->i + 2) : -1;
            if (cp < 0) return fail_at(c, what, "invalid \\u escape", err);
            c->i += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_at(c, what, "lone low surrogate in \\u escape", err);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = (c->i + 6 <= c->n && c->s[c->i] == '\\' && c->s[c->i + 1] == 'u') ? hex4(c->s + c->i + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return fail_at(c, what, "lone high surrogate in \\u escape", err);
                c->i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            uint8_t u[4];
            int k = gm_utf8_encode(cp, u);
            if (out && !gm_tok_bytes_append(out, u, (size_t)k)) goto nomem;
        }
        run = c->i;
    }
    return fail_at(c, what, "unterminated string", err);
nomem:
    return gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", what);
}

glmoe_status gm_json_string(gm_json_cur *c, gm_tok_bytes *out, const char *what, gm_err *err) {
    return string_impl(c, out, what, err);
}

static bool is_digit(char ch) { return ch >= '0' && ch <= '9'; }

static glmoe_status number(gm_json_cur *c, const char *what, gm_err *err) {
    size_t i = c->i;
    if (i < c->n && c->s[i] == '-') i++;
    if (i >= c->n || !is_digit(c->s[i])) goto bad;
    if (c->s[i] == '0') i++;
    else while (i < c->n && is_digit(c->s[i])) i++;
    if (i < c->n && c->s[i] == '.') {
        i++;
        if (i >= c->n || !is_digit(c->s[i])) goto bad;
        while (i < c->n && is_digit(c->s[i])) i++;
    }
    if (i < c->n && (c->s[i] == 'e' || c->s[i] == 'E')) {
        i++;
        if (i < c->n && (c->s[i] == '+' || c->s[i] == '-')) i++;
        if (i >= c->n || !is_digit(c->s[i])) goto bad;
        while (i < c->n && is_digit(c->s[i])) i++;
    }
    c->i = i;
    return GLMOE_OK;
bad:
    c->i = i;
    return fail_at(c, what, "invalid number", err);
}

glmoe_status gm_json_id(gm_json_cur *c, int32_t *out, const char *what, gm_err *err) {
    if (!gm_json_ws(c)) return fail_at(c, what, "expected a token id", err);
    size_t start = c->i;
    glmoe_status st = number(c, what, err);
    if (st != GLMOE_OK) return st;
    int64_t v = 0;
    for (size_t i = start; i < c->i; i++) {
        char ch = c->s[i];
        if (!is_digit(ch) || v > INT32_MAX) {
            c->i = start;
            return fail_at(c, what, "expected a token id (an integer from 0 to 2147483647)", err);
        }
        v = v * 10 + (ch - '0');
    }
    if (v > INT32_MAX) {
        c->i = start;
        return fail_at(c, what, "expected a token id (an integer from 0 to 2147483647)", err);
    }
    *out = (int32_t)v;
    return GLMOE_OK;
}

static glmoe_status skip_depth(gm_json_cur *c, int depth, const char *what, gm_err *err) {
    if (!gm_json_ws(c)) return fail_at(c, what, "expected a value", err);
    if (depth > GM_JSON_MAX_DEPTH) return fail_at(c, what, "nesting too deep", err);
    char ch = c->s[c->i];
    glmoe_status st;
    switch (ch) {
    case '"': return string_impl(c, NULL, what, err);
    case '{':
    case '[': {
        char close = ch == '{' ? '}' : ']';
        c->i++;
        if (!gm_json_ws(c)) return fail_at(c, what, "unterminated object or array", err);
        if (c->s[c->i] == close) {
            c->i++;
            return GLMOE_OK;
        }
        for (;;) {
            if (ch == '{') {
                if ((st = string_impl(c, NULL, what, err)) != GLMOE_OK) return st;
                if ((st = gm_json_expect(c, ':', what, err)) != GLMOE_OK) return st;
            }
            if ((st = skip_depth(c, depth + 1, what, err)) != GLMOE_OK) return st;
            if (!gm_json_ws(c)) return fail_at(c, what, "unterminated object or array", err);
            if (c->s[c->i] == ',') {
                c->i++;
                continue;
            }
            if (c->s[c->i] == close) {
                c->i++;
                return GLMOE_OK;
            }
            return fail_at(c, what, ch == '{' ? "expected ',' or '}'" : "expected ',' or ']'", err);
        }
    }
    case 't':
    case 'f':
    case 'n': {
        const char *lit = ch == 't' ? "true" : ch == 'f' ? "false" : "null";
        size_t k = strlen(lit);
        if (c->n - c->i < k || memcmp(c->s + c->i, lit, k) != 0) return fail_at(c, what, "invalid literal", err);
        c->i += k;
        return GLMOE_OK;
    }
    default: return number(c, what, err);
    }
}

glmoe_status gm_json_skip(gm_json_cur *c, const char *what, gm_err *err) { return skip_depth(c, 0, what, err); }

/* Walks the members of the object at c->i; for each key calls visit, which must consume the value.
 * depth is the object's own nesting level. */
typedef glmoe_status (*member_fn)(gm_json_cur *c, const char *key, size_t key_len, void *ctx, gm_err *err);

static glmoe_status walk_object(gm_json_cur *c, member_fn visit, void *ctx, const char *what, gm_err *err) {
    glmoe_status st = gm_json_expect(c, '{', what, err);
    if (st != GLMOE_OK) return st;
    gm_tok_bytes key = {0};
    if (!gm_json_ws(c)) {
        st = fail_at(c, what, "unterminated object", err);
        goto done;
    }
    if (c->s[c->i] == '}') {
        c->i++;
        goto done;
    }
    for (;;) {
        key.n = 0;
        if ((st = string_impl(c, &key, what, err)) != GLMOE_OK) goto done;
        if ((st = gm_json_expect(c, ':', what, err)) != GLMOE_OK) goto done;
        if (!gm_tok_bytes_cstr(&key)) {
            st = gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", what);
            goto done;
        }
        if ((st = visit(c, key.p, key.n, ctx, err)) != GLMOE_OK) goto done;
        if (!gm_json_ws(c)) {
            st = fail_at(c, what, "unterminated object", err);
            goto done;
        }
        if (c->s[c->i] == ',') {
            c->i++;
            continue;
        }
        if (c->s[c->i] == '}') {
            c->i++;
            goto done;
        }
        st = fail_at(c, what, "expected ',' or '}'", err);
        goto done;
    }
done:
    gm_tok_bytes_free(&key);
    return st;
}

/* Finds the end of the object or array at c->i without validating it: the loader parses these
 * values strictly afterwards and checks that the parse ends exactly there. A two-state byte loop
 * (inside a string or not) is all it takes. */
static glmoe_status skip_fast(gm_json_cur *c, const char *what, gm_err *err) {
    int depth = 0;
    bool in_str = false;
    const char *s = c->s;
    for (size_t i = c->i, n = c->n; i < n; i++) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\') i++;
            else if (ch == '"') in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '{' || ch == '[') {
            depth++;
        } else if ((ch == '}' || ch == ']') && --depth == 0) {
            c->i = i + 1;
            return GLMOE_OK;
        }
    }
    c->i = c->n;
    return fail_at(c, what, "unterminated object, array or string", err);
}

typedef struct layout_ctx {
    gm_json_layout *out;
    bool seen_model, seen_vocab, seen_merges;
} layout_ctx;

static bool key_is(const char *key, size_t len, const char *want) {
    return len == strlen(want) && memcmp(key, want, len) == 0;
}

static glmoe_status visit_model(gm_json_cur *c, const char *key, size_t len, void *vctx, gm_err *err) {
    layout_ctx *ctx = vctx;
    bool vocab = key_is(key, len, "vocab"), merges = key_is(key, len, "merges");
    if (!vocab && !merges) return gm_json_skip(c, "model", err);
    bool *seen = vocab ? &ctx->seen_vocab : &ctx->seen_merges;
    if (*seen) return gm_fail(err, GLMOE_E_FORMAT, "model.%s appears twice", key);
    *seen = true;
    gm_json_ws(c);
    size_t start = c->i;
    const char *what = vocab ? "model.vocab" : "model.merges";
    glmoe_status st = (c->i < c->n && (c->s[c->i] == '{' || c->s[c->i] == '[')) ? skip_fast(c, what, err)
                                                                                : gm_json_skip(c, what, err);
    if (st != GLMOE_OK) return st;
    if (vocab) ctx->out->vocab_start = start, ctx->out->vocab_end = c->i;
    else ctx->out->merges_start = start, ctx->out->merges_end = c->i;
    return GLMOE_OK;
}

static glmoe_status visit_top(gm_json_cur *c, const char *key, size_t len, void *vctx, gm_err *err) {
    layout_ctx *ctx = vctx;
    if (!key_is(key, len, "model")) return gm_json_skip(c, "top level", err);
    if (ctx->seen_model) return gm_fail(err, GLMOE_E_FORMAT, "\"model\" appears twice");
    ctx->seen_model = true;
    if (!gm_json_ws(c) || c->s[c->i] != '{') return gm_json_skip(c, "model", err);
    return walk_object(c, visit_model, ctx, "model", err);
}

glmoe_status gm_json_layout_scan(const char *s, size_t n, gm_json_layout *out, gm_err *err) {
    memset(out, 0, sizeof *out);
    gm_json_cur c = {s, n, 0};
    layout_ctx ctx = {.out = out};
    glmoe_status st = walk_object(&c, visit_top, &ctx, "top level", err);
    if (st != GLMOE_OK) return st;
    if (gm_json_ws(&c)) return fail_at(&c, "top level", "unexpected data after the top-level object", err);
    return GLMOE_OK;
}
