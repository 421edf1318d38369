/*
 * tokenizer_load.c — tokenizer.json to a gm_tokenizer.
 *
 * The file is treated as hostile input: every field is type-checked, every id range-checked, and
 * anything whose behaviour we do not reproduce exactly is refused with its JSON path (see the list
 * in tokenizer.h). Where HF's loader makes a choice (ids of added tokens, duplicate merges, which
 * string decoding uses) the comments below say which HF code we follow.
 *
 * Order matters and follows HF's: the model (vocab, merges) first, then the normalizer, then the
 * added tokens (their ids depend on the vocabulary, their patterns on the normalizer).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tokenizer_internal.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/utf8.h"

/* Ids beyond this are refused: the per-id table is dense (20 bytes an id, allocated for the largest
 * id), and no real vocabulary is near it. Same bound as config.json's vocab_size. */
#define MAX_TOKEN_ID (1 << 24)

/* Steps a normalizer or pre-tokenizer may have, and templates a post-processor may chain. Real
 * files use a handful. The encoder recurses once per pre-tokenizer step and runs every normalizer
 * step over the whole text, so a million-step file would overflow the stack or crawl. */
#define MAX_PIPELINE_STEPS 64

/* Bytes of tokenizer.json that jansson parses (everything but model.vocab and model.merges, which
 * the scanner reads). jansson needs up to ~80 bytes of memory per byte of input ("{}" is an object
 * of 200+ bytes), so a hostile 1 GB file of empty objects would ask for 80 GB. Real files: well
 * under 1 MB (DeepSeek-V3's 818 added tokens are 150 KB). */
#define MAX_DOM_BYTES (16u << 20)

typedef struct loader {
    gm_tokenizer *tok;
    gm_err *err;
    gm_tok_bytes a, b; /* scratch strings */
} loader;

static glmoe_status oom(loader *L) { return gm_fail(L->err, GLMOE_E_NOMEM, "out of memory"); }

/* ---- small jansson helpers ----------------------------------------------------------------- */

static const char *type_of(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

/* Reads an optional boolean member: absent or null gives def. */
static glmoe_status get_bool(loader *L, const json_t *obj, const char *key, bool def, bool *out, const char *path) {
    const json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return GLMOE_OK;
    }
    if (!json_is_boolean(v)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.%s must be a boolean, not %s", path, key, type_of(v));
    *out = json_is_true(v);
    return GLMOE_OK;
}

/* Reads a required string member. */
static glmoe_status get_string(loader *L, const json_t *obj, const char *key, const char **s, size_t *len, const char *path) {
    const json_t *v = json_object_get(obj, key);
    if (!v) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.%s is missing", path, key);
    if (!json_is_string(v)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.%s must be a string, not %s", path, key, type_of(v));
    *s = json_string_value(v);
    *len = json_string_length(v);
    return GLMOE_OK;
}

/* The "type" of a component object at `path`. */
static glmoe_status get_type(loader *L, const json_t *obj, const char *path, const char **type) {
    if (!json_is_object(obj)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s must be an object, not %s", path, type_of(obj));
    size_t len = 0;
    glmoe_status st = get_string(L, obj, "type", type, &len, path);
    if (st == GLMOE_OK && strlen(*type) != len) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.type contains a NUL", path);
    return st;
}

static glmoe_status unsupported_type(loader *L, const char *path, const char *type) {
    return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s.type \"%s\" is not supported", path, type);
}

/* A {"String": s} or {"Regex": s} pattern object. */
static glmoe_status get_pattern(loader *L, const json_t *obj, const char *path, const char **s, size_t *len, bool *literal) {
    const json_t *p = json_object_get(obj, "pattern");
    char where[256];
    snprintf(where, sizeof where, "%s.pattern", path);
    if (!p || !json_is_object(p)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s must be {\"String\": ...} or {\"Regex\": ...}", where);
    const json_t *str = json_object_get(p, "String"), *re = json_object_get(p, "Regex");
    if ((str != NULL) == (re != NULL) || json_object_size(p) != 1)
        return gm_fail(L->err, GLMOE_E_FORMAT, "%s must be {\"String\": ...} or {\"Regex\": ...}", where);
    const json_t *v = str ? str : re;
    if (!json_is_string(v)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.%s must be a string", where, str ? "String" : "Regex");
    *s = json_string_value(v);
    *len = json_string_length(v);
    *literal = str != NULL;
    return GLMOE_OK;
}

/* ---- normalizer ---------------------------------------------------------------------------- */

static glmoe_status parse_normalizer(loader *L, const json_t *n, const char *path) {
    if (!n || json_is_null(n)) return GLMOE_OK;
    const char *type;
    glmoe_status st = get_type(L, n, path, &type);
    if (st != GLMOE_OK) return st;
    gm_normalizer *nz = &L->tok->norm;
    char child[256];
    if (strcmp(type, "Sequence") == 0) {
        const json_t *arr = json_object_get(n, "normalizers");
        if (!json_is_array(arr)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.normalizers must be an array", path);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(child, sizeof child, "%s.normalizers[%zu]", path, i);
            if ((st = parse_normalizer(L, json_array_get(arr, i), child)) != GLMOE_OK) return st;
        }
        return GLMOE_OK;
    }
    if (nz->n >= MAX_PIPELINE_STEPS)
        return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s: more than %d normalizer steps are not supported", path,
                       MAX_PIPELINE_STEPS);
    if (strcmp(type, "NFC") == 0) return gm_normalizer_add_nf(nz, GM_NORM_NFC, path, L->err);
    if (strcmp(type, "NFD") == 0) return gm_normalizer_add_nf(nz, GM_NORM_NFD, path, L->err);
    if (strcmp(type, "NFKC") == 0) return gm_normalizer_add_nf(nz, GM_NORM_NFKC, path, L->err);
    if (strcmp(type, "NFKD") == 0) return gm_normalizer_add_nf(nz, GM_NORM_NFKD, path, L->err);
    if (strcmp(type, "Prepend") == 0) {
        const char *s;
        size_t len;
        if ((st = get_string(L, n, "prepend", &s, &len, path)) != GLMOE_OK) return st;
        return gm_normalizer_add_prepend(nz, s, len, path, L->err);
    }
    if (strcmp(type, "Replace") == 0) {
        const char *pat, *content;
        size_t pat_len, content_len;
        bool literal;
        if ((st = get_pattern(L, n, path, &pat, &pat_len, &literal)) != GLMOE_OK) return st;
        if ((st = get_string(L, n, "content", &content, &content_len, path)) != GLMOE_OK) return st;
        return gm_normalizer_add_replace(nz, pat, pat_len, literal, content, content_len, path, L->err);
    }
    return unsupported_type(L, path, type);
}

/* ---- pre-tokenizer ------------------------------------------------------------------------- */

static glmoe_status parse_pre(loader *L, const json_t *p, const char *path) {
    const char *type;
    glmoe_status st = get_type(L, p, path, &type);
    if (st != GLMOE_OK) return st;
    gm_pretokenizer *pre = &L->tok->pre;
    char child[256];
    if (strcmp(type, "Sequence") == 0) {
        const json_t *arr = json_object_get(p, "pretokenizers");
        if (!json_is_array(arr)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.pretokenizers must be an array", path);
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(child, sizeof child, "%s.pretokenizers[%zu]", path, i);
            if ((st = parse_pre(L, json_array_get(arr, i), child)) != GLMOE_OK) return st;
        }
        return GLMOE_OK;
    }
    if (pre->n >= MAX_PIPELINE_STEPS)
        return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s: more than %d pre-tokenizer steps are not supported", path,
                       MAX_PIPELINE_STEPS);
    if (pre->n && pre->steps[pre->n - 1].kind == GM_PRE_BYTELEVEL)
        return gm_fail(L->err, GLMOE_E_UNSUPPORTED,
                       "%s: a pre-tokenizer after ByteLevel is not supported (it would see byte-level text)", path);
    if (strcmp(type, "Split") == 0) {
        const char *pat, *behavior;
        size_t pat_len, blen;
        bool literal;
        if ((st = get_pattern(L, p, path, &pat, &pat_len, &literal)) != GLMOE_OK) return st;
        if ((st = get_string(L, p, "behavior", &behavior, &blen, path)) != GLMOE_OK) return st;
        static const struct { const char *name; gm_split_behavior b; } names[] = {
            {"Removed", GM_SPLIT_REMOVED},
            {"Isolated", GM_SPLIT_ISOLATED},
            {"MergedWithPrevious", GM_SPLIT_MERGED_WITH_PREVIOUS},
            {"MergedWithNext", GM_SPLIT_MERGED_WITH_NEXT},
            {"Contiguous", GM_SPLIT_CONTIGUOUS},
        };
        int found = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(behavior, names[i].name) == 0) found = i;
        if (found < 0) return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s.behavior \"%s\" is not supported", path, behavior);
        gm_pre_step *s = gm_pretokenizer_add(pre, GM_PRE_SPLIT);
        if (!s) return oom(L);
        s->behavior = names[found].b;
        if ((st = get_bool(L, p, "invert", false, &s->invert, path)) != GLMOE_OK) return st;
        snprintf(child, sizeof child, "%s.pattern.%s", path, literal ? "String" : "Regex");
        return gm_tok_regex_compile(&s->pattern, pat, pat_len, literal, child, L->err);
    }
    if (strcmp(type, "Digits") == 0) {
        gm_pre_step *s = gm_pretokenizer_add(pre, GM_PRE_DIGITS);
        if (!s) return oom(L);
        return get_bool(L, p, "individual_digits", false, &s->individual_digits, path);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        gm_pre_step *s = gm_pretokenizer_add(pre, GM_PRE_BYTELEVEL);
        if (!s) return oom(L);
        /* HF's defaults: add_prefix_space true, use_regex true (serde default_true). */
        if ((st = get_bool(L, p, "add_prefix_space", true, &s->add_prefix_space, path)) != GLMOE_OK) return st;
        if ((st = get_bool(L, p, "use_regex", true, &s->use_regex, path)) != GLMOE_OK) return st;
        if (s->use_regex && !gm_tok_regex_internal(&s->pattern, GM_GPT2_PATTERN))
            return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s: cannot compile the GPT-2 pattern", path);
        return GLMOE_OK;
    }
    return unsupported_type(L, path, type);
}

/* ---- post-processor and decoder ------------------------------------------------------------ */

static glmoe_status parse_template(loader *L, const json_t *p, const char *path) {
    const json_t *single = json_object_get(p, "single"), *specials = json_object_get(p, "special_tokens");
    if (!json_is_array(single)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.single must be an array", path);
    if (specials && !json_is_object(specials)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.special_tokens must be an object", path);
    gm_tokenizer *tok = L->tok;
    if (tok->n_templates >= MAX_PIPELINE_STEPS)
        return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s: more than %d TemplateProcessing steps are not supported", path,
                       MAX_PIPELINE_STEPS);
    gm_template *t = realloc(tok->templates, (tok->n_templates + 1) * sizeof *t);
    if (!t) return oom(L);
    tok->templates = t;
    t = &t[tok->n_templates++];
    memset(t, 0, sizeof *t);
    t->pieces = calloc(json_array_size(single) + 1, sizeof *t->pieces);
    if (!t->pieces) return oom(L);
    for (size_t i = 0; i < json_array_size(single); i++) {
        const json_t *piece = json_array_get(single, i);
        const json_t *seq = json_object_get(piece, "Sequence"), *sp = json_object_get(piece, "SpecialToken");
        const json_t *body = seq ? seq : sp;
        const json_t *idv = body ? json_object_get(body, "id") : NULL;
        if (!json_is_object(piece) || (seq != NULL) == (sp != NULL) || !json_is_string(idv))
            return gm_fail(L->err, GLMOE_E_FORMAT, "%s.single[%zu] must be {\"Sequence\": {\"id\": ...}} or {\"SpecialToken\": {\"id\": ...}}", path, i);
        gm_template_piece *tp = &t->pieces[t->n++];
        const char *id = json_string_value(idv);
        if (seq) {
            if (strcmp(id, "A") != 0)
                return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s.single[%zu]: sequence \"%s\" in a single-sequence template is not supported", path, i, id);
            /* A second $A would repeat the text; chained templates would then double it per step
             * (a 5 KB file made 9 ids into 9 million with 20 steps). */
            for (size_t k = 0; k + 1 < t->n; k++)
                if (t->pieces[k].is_sequence)
                    return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s.single[%zu]: a second sequence \"A\" (the text twice) is not supported", path, i);
            tp->is_sequence = true;
            continue;
        }
        const json_t *def = specials ? json_object_get(specials, id) : NULL;
        const json_t *ids = def ? json_object_get(def, "ids") : NULL;
        if (!json_is_array(ids))
            return gm_fail(L->err, GLMOE_E_FORMAT, "%s.special_tokens has no \"%s\" with an ids array", path, id);
        tp->ids = malloc((json_array_size(ids) + 1) * sizeof *tp->ids);
        if (!tp->ids) return oom(L);
        for (size_t k = 0; k < json_array_size(ids); k++) {
            const json_t *v = json_array_get(ids, k);
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
                return gm_fail(L->err, GLMOE_E_FORMAT, "%s.special_tokens.%s.ids[%zu] must be a token id", path, id, k);
            tp->ids[tp->n_ids++] = (int32_t)json_integer_value(v);
        }
    }
    return GLMOE_OK;
}

static glmoe_status parse_post(loader *L, const json_t *p, const char *path) {
    if (!p || json_is_null(p)) return GLMOE_OK;
    const char *type;
    glmoe_status st = get_type(L, p, path, &type);
    if (st != GLMOE_OK) return st;
    if (strcmp(type, "ByteLevel") == 0) return GLMOE_OK; /* it only trims offsets */
    if (strcmp(type, "TemplateProcessing") == 0) return parse_template(L, p, path);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *arr = json_object_get(p, "processors");
        if (!json_is_array(arr)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s.processors must be an array", path);
        char child[256];
        for (size_t i = 0; i < json_array_size(arr); i++) {
            snprintf(child, sizeof child, "%s.processors[%zu]", path, i);
            if ((st = parse_post(L, json_array_get(arr, i), child)) != GLMOE_OK) return st;
        }
        return GLMOE_OK;
    }
    return unsupported_type(L, path, type);
}

static glmoe_status parse_decoder(loader *L, const json_t *d) {
    if (!d || json_is_null(d))
        return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "decoder is null; only the ByteLevel decoder is supported");
    const char *type;
    glmoe_status st = get_type(L, d, "decoder", &type);
    if (st != GLMOE_OK) return st;
    if (strcmp(type, "ByteLevel") == 0) return GLMOE_OK;
    if (strcmp(type, "Sequence") == 0) {
        const json_t *arr = json_object_get(d, "decoders");
        if (!json_is_array(arr)) return gm_fail(L->err, GLMOE_E_FORMAT, "decoder.decoders must be an array");
        if (json_array_size(arr) != 1)
            return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "decoder.decoders: only a single ByteLevel decoder is supported");
        if ((st = get_type(L, json_array_get(arr, 0), "decoder.decoders[0]", &type)) != GLMOE_OK) return st;
        if (strcmp(type, "ByteLevel") == 0) return GLMOE_OK;
        return unsupported_type(L, "decoder.decoders[0]", type);
    }
    return unsupported_type(L, "decoder", type);
}

/* ---- model: vocab and merges ---------------------------------------------------------------- */

/* The ByteLevel decoder's view of a token string: when every character is one of the 256
 * byte-level characters, the bytes they stand for; otherwise the string's own UTF-8 (HF
 * decoders/byte_level.rs decode_chain). Appends to out. */
static bool byte_level_decode(const char *s, size_t n, gm_tok_bytes *out) {
    size_t start = out->n;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        i += (size_t)gm_utf8_next((const uint8_t *)s + i, &cp);
        int b = gm_byte_level_byte(cp);
        if (b < 0) {
            out->n = start;
            return gm_tok_bytes_append(out, s, n);
        }
        char c = (char)b;
        if (!gm_tok_bytes_append(out, &c, 1)) return false;
    }
    return true;
}

typedef struct merge_rec {
    int32_t left, right, merged;
} merge_rec;

static glmoe_status parse_vocab(loader *L, const char *json, size_t start, size_t end, int32_t *max_id) {
    gm_vocab *v = &L->tok->vocab;
    gm_json_cur c = {json, end, start};
    glmoe_status st = gm_json_expect(&c, '{', "model.vocab", L->err);
    if (st != GLMOE_OK) return st;
    *max_id = -1;
    /* First read every (string, id) pair, the strings straight into the arena; then intern them
     * all at once, which can prefetch. */
    uint32_t *offs = NULL, *lens = NULL;
    int32_t *ids = NULL;
    int64_t *idx = NULL;
    size_t n = 0, cap = 0;
    if (gm_json_ws(&c) && json[c.i] == '}') {
        c.i++;
        goto check_end;
    }
    for (;;) {
        if (n == cap) {
            size_t c2 = cap ? cap * 2 : 65536;
            uint32_t *o2 = realloc(offs, c2 * sizeof *o2);
            if (o2) offs = o2;
            uint32_t *l2 = realloc(lens, c2 * sizeof *l2);
            if (l2) lens = l2;
            int32_t *i2 = realloc(ids, c2 * sizeof *i2);
            if (i2) ids = i2;
            if (!o2 || !l2 || !i2) {
                st = oom(L);
                goto done;
            }
            cap = c2;
        }
        gm_tok_bytes arena = gm_vocab_arena_view(v);
        size_t before = arena.n;
        st = gm_json_string(&c, &arena, "model.vocab", L->err);
        gm_vocab_arena_commit(v, arena);
        if (st != GLMOE_OK) goto done;
        if (v->arena_n > UINT32_MAX) {
            st = gm_fail(L->err, GLMOE_E_UNSUPPORTED, "model.vocab: more than 4 GiB of token text");
            goto done;
        }
        offs[n] = (uint32_t)before;
        lens[n] = (uint32_t)(v->arena_n - before);
        if ((st = gm_json_expect(&c, ':', "model.vocab", L->err)) != GLMOE_OK) goto done;
        if ((st = gm_json_id(&c, &ids[n], "model.vocab", L->err)) != GLMOE_OK) goto done;
        if (ids[n] >= MAX_TOKEN_ID) {
            st = gm_fail(L->err, GLMOE_E_UNSUPPORTED, "model.vocab: id %d of \"%.*s\" is beyond the supported %d", ids[n],
                         (int)lens[n], v->arena + offs[n], MAX_TOKEN_ID);
            goto done;
        }
        if (ids[n] > *max_id) *max_id = ids[n];
        n++;
        if (!gm_json_ws(&c)) {
            st = gm_fail(L->err, GLMOE_E_FORMAT, "model.vocab: unterminated object");
            goto done;
        }
        if (json[c.i] == ',') {
            c.i++;
            continue;
        }
        if (json[c.i] == '}') {
            c.i++;
            break;
        }
        st = gm_fail(L->err, GLMOE_E_FORMAT, "model.vocab: expected ',' or '}' at byte %zu", c.i);
        goto done;
    }
    if (!(idx = malloc((n ? n : 1) * sizeof *idx))) {
        st = oom(L);
        goto done;
    }
    /* room for the vocabulary plus the added tokens that may follow */
    if (!gm_vocab_reserve(v, n + 4096) || gm_vocab_intern_many(v, offs, lens, n, idx) < 0) {
        st = oom(L);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (idx[i] < 0) {
            st = gm_fail(L->err, GLMOE_E_FORMAT, "model.vocab: \"%.*s\" appears twice", (int)lens[i], v->arena + offs[i]);
            goto done;
        }
        v->entries[idx[i]].model_id = ids[i];
    }
check_end:
    if (gm_json_ws(&c)) st = gm_fail(L->err, GLMOE_E_FORMAT, "model.vocab: unexpected data at byte %zu", c.i);
done:
    free(offs);
    free(lens);
    free(ids);
    free(idx);
    return st;
}

/* One merge while parsing: sides a and b are stored back to back in the scratch buffer, so the
 * merged token is the span [off, off + la + lb). */
typedef struct merge_text {
    size_t off;
    uint32_t la, lb;
} merge_text;

static glmoe_status merge_missing(loader *L, size_t rank, const char *s, size_t n) {
    return gm_fail(L->err, GLMOE_E_FORMAT, "model.merges[%zu]: \"%.*s\" is not in model.vocab", rank, (int)n, s);
}

static glmoe_status parse_merges(loader *L, const char *json, size_t start, size_t end, merge_rec **out, size_t *n_out) {
    gm_json_cur c = {json, end, start};
    glmoe_status st = gm_json_expect(&c, '[', "model.merges", L->err);
    if (st != GLMOE_OK) return st;
    merge_text *mt = NULL;
    merge_rec *recs = NULL;
    gm_vocab_key *keys = NULL;
    int64_t *found = NULL;
    size_t n = 0, cap = 0, index = 0;
    int form = 0; /* 1: "a b" strings, 2: ["a", "b"] pairs; HF takes one form for the whole list */
    gm_tok_bytes *txt = &L->b;
    txt->n = 0;
    *out = NULL;
    *n_out = 0;
    if (gm_json_ws(&c) && json[c.i] == ']') {
        c.i++;
        goto check_end;
    }
    for (;; index++) {
        if (!gm_json_ws(&c)) {
            st = gm_fail(L->err, GLMOE_E_FORMAT, "model.merges: unterminated array");
            goto fail;
        }
        int this_form = json[c.i] == '[' ? 2 : 1;
        if (form && this_form != form) {
            st = gm_fail(L->err, GLMOE_E_FORMAT, "model.merges[%zu]: merges mix the \"a b\" and [\"a\", \"b\"] forms", index);
            goto fail;
        }
        form = this_form;
        size_t off = txt->n, la, lb;
        const char *what = "model.merges";
        if (form == 2) {
            if ((st = gm_json_expect(&c, '[', what, L->err)) != GLMOE_OK) goto fail;
            if ((st = gm_json_string(&c, txt, what, L->err)) != GLMOE_OK) goto fail;
            la = txt->n - off;
            if ((st = gm_json_expect(&c, ',', what, L->err)) != GLMOE_OK) goto fail;
            if ((st = gm_json_string(&c, txt, what, L->err)) != GLMOE_OK) goto fail;
            lb = txt->n - off - la;
            if ((st = gm_json_expect(&c, ']', what, L->err)) != GLMOE_OK) goto fail;
        } else {
            if ((st = gm_json_string(&c, txt, what, L->err)) != GLMOE_OK) goto fail;
            char *p = txt->p + off;
            size_t len = txt->n - off;
            /* HF's convert_merges_to_hashmap: skip "#version" lines; otherwise exactly two parts
             * separated by one space */
            if (len >= 8 && memcmp(p, "#version", 8) == 0) {
                txt->n = off;
                index--;
                goto next;
            }
            char *sp = memchr(p, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - p))) {
                st = gm_fail(L->err, GLMOE_E_FORMAT, "model.merges[%zu]: \"%.*s\" is not two tokens separated by one space",
                             index, (int)len, p);
                goto fail;
            }
            la = (size_t)(sp - p);
            memmove(sp, sp + 1, len - la - 1); /* a and b back to back */
            txt->n--;
            lb = len - la - 1;
        }
        if (index >= INT32_MAX || la + lb > UINT32_MAX) {
            st = gm_fail(L->err, GLMOE_E_UNSUPPORTED, "model.merges: too many or too long merges");
            goto fail;
        }
        if (n == cap && !gm_tok_grow((void **)&mt, &cap, n, 1, sizeof *mt)) {
            st = oom(L);
            goto fail;
        }
        mt[n++] = (merge_text){off, (uint32_t)la, (uint32_t)lb};
    next:
        if (!gm_json_ws(&c)) {
            st = gm_fail(L->err, GLMOE_E_FORMAT, "model.merges: unterminated array");
            goto fail;
        }
        if (json[c.i] == ',') {
            c.i++;
            continue;
        }
        if (json[c.i] == ']') {
            c.i++;
            break;
        }
        st = gm_fail(L->err, GLMOE_E_FORMAT, "model.merges: expected ',' or ']' at byte %zu", c.i);
        goto fail;
    }
check_end:
    if (gm_json_ws(&c)) {
        st = gm_fail(L->err, GLMOE_E_FORMAT, "model.merges: unexpected data at byte %zu", c.i);
        goto fail;
    }
    /* Each side and the concatenation must be model tokens (HF: MergeTokenOutOfVocabulary). */
    keys = malloc((3 * n + 1) * sizeof *keys);
    found = malloc((3 * n + 1) * sizeof *found);
    recs = malloc((n + 1) * sizeof *recs);
    if (!keys || !found || !recs) {
        st = oom(L);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = txt->p + mt[i].off;
        keys[3 * i] = (gm_vocab_key){p, mt[i].la};
        keys[3 * i + 1] = (gm_vocab_key){p + mt[i].la, mt[i].lb};
        keys[3 * i + 2] = (gm_vocab_key){p, (size_t)mt[i].la + mt[i].lb};
    }
    gm_vocab_find_many(&L->tok->vocab, keys, 3 * n, found);
    const gm_vocab_entry *en = L->tok->vocab.entries;
    for (size_t i = 0; i < n; i++) {
        int32_t side[3];
        for (int k = 0; k < 3; k++) {
            int64_t e = found[3 * i + k];
            side[k] = e >= 0 ? en[e].model_id : -1;
            if (side[k] < 0) {
                st = merge_missing(L, i, keys[3 * i + k].s, keys[3 * i + k].n);
                goto fail;
            }
        }
        recs[i] = (merge_rec){side[0], side[1], side[2]};
    }
    free(mt);
    free(keys);
    free(found);
    *out = recs;
    *n_out = n;
    return GLMOE_OK;
fail:
    free(mt);
    free(keys);
    free(found);
    free(recs);
    return st;
}

static glmoe_status parse_model(loader *L, const json_t *m, const char *json, const gm_json_layout *lay, int32_t *max_id,
                                size_t *n_vocab) {
    if (!json_is_object(m)) return gm_fail(L->err, GLMOE_E_FORMAT, "model is missing or not an object");
    const json_t *type = json_object_get(m, "type");
    if (type && !json_is_string(type)) return gm_fail(L->err, GLMOE_E_FORMAT, "model.type must be a string");
    if (type && strcmp(json_string_value(type), "BPE") != 0)
        return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "model.type \"%s\" is not supported (only BPE)", json_string_value(type));
    if (lay->vocab_start == lay->vocab_end || lay->merges_start == lay->merges_end)
        return gm_fail(L->err, GLMOE_E_FORMAT, "model.%s is missing", lay->vocab_start == lay->vocab_end ? "vocab" : "merges");
    const json_t *dropout = json_object_get(m, "dropout");
    if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) && json_number_value(dropout) == 0.0))
        return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "model.dropout must be null or 0 (BPE dropout is not supported)");
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(m, affixes[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && json_string_length(v) == 0))
            return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "model.%s must be null or \"\" (subword affixes are not supported)", affixes[i]);
    }
    bool byte_fallback = false;
    glmoe_status st = get_bool(L, m, "byte_fallback", false, &byte_fallback, "model");
    if (st != GLMOE_OK) return st;
    if (byte_fallback) return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "model.byte_fallback true is not supported");
    gm_bpe *bpe = &L->tok->bpe;
    if ((st = get_bool(L, m, "fuse_unk", false, &bpe->fuse_unk, "model")) != GLMOE_OK) return st;
    if ((st = get_bool(L, m, "ignore_merges", false, &bpe->ignore_merges, "model")) != GLMOE_OK) return st;

    if ((st = parse_vocab(L, json, lay->vocab_start, lay->vocab_end, max_id)) != GLMOE_OK) return st;
    *n_vocab = L->tok->vocab.n_entries;

    merge_rec *recs;
    size_t n_merges;
    if ((st = parse_merges(L, json, lay->merges_start, lay->merges_end, &recs, &n_merges)) != GLMOE_OK) return st;
    if (!gm_pair_map_init(&bpe->merges, n_merges)) {
        free(recs);
        return oom(L);
    }
    for (size_t i = 0; i < n_merges; i++) gm_pair_map_put(&bpe->merges, recs[i].left, recs[i].right, (int32_t)i, recs[i].merged);
    free(recs);

    const json_t *unk = json_object_get(m, "unk_token");
    if (unk && !json_is_null(unk)) {
        if (!json_is_string(unk)) return gm_fail(L->err, GLMOE_E_FORMAT, "model.unk_token must be a string or null");
        int64_t e = gm_vocab_find(&L->tok->vocab, json_string_value(unk), json_string_length(unk));
        if (e < 0 || L->tok->vocab.entries[e].model_id < 0)
            return gm_fail(L->err, GLMOE_E_FORMAT, "model.unk_token \"%s\" is not in model.vocab", json_string_value(unk));
        bpe->unk_id = L->tok->vocab.entries[e].model_id;
    }
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        int k = gm_utf8_encode(gm_byte_level_char((uint8_t)b), u);
        int64_t e = gm_vocab_find(&L->tok->vocab, u, (size_t)k);
        bpe->byte_id[b] = e >= 0 ? L->tok->vocab.entries[e].model_id : -1;
    }
    bpe->vocab = &L->tok->vocab;
    return GLMOE_OK;
}

/* ---- added tokens --------------------------------------------------------------------------- */

static glmoe_status parse_added(loader *L, const json_t *arr, size_t n_vocab, int32_t *max_id) {
    if (!arr || json_is_null(arr)) return GLMOE_OK;
    if (!json_is_array(arr)) return gm_fail(L->err, GLMOE_E_FORMAT, "added_tokens must be an array");
    gm_tokenizer *tok = L->tok;
    gm_added *a = &tok->added;
    a->tokens = calloc(json_array_size(arr) + 1, sizeof *a->tokens);
    if (!a->tokens) return oom(L);
    /* HF AddedVocabulary::add_tokens: a content already in model.vocab keeps that id; others get
     * consecutive ids from the model's vocabulary size (its entry count). */
    int64_t next_id = (int64_t)n_vocab;
    char path[64];
    glmoe_status st;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        snprintf(path, sizeof path, "added_tokens[%zu]", i);
        const json_t *t = json_array_get(arr, i);
        if (!json_is_object(t)) return gm_fail(L->err, GLMOE_E_FORMAT, "%s must be an object", path);
        const char *content;
        size_t len;
        if ((st = get_string(L, t, "content", &content, &len, path)) != GLMOE_OK) return st;
        const json_t *idv = json_object_get(t, "id");
        if (!json_is_integer(idv) || json_integer_value(idv) < 0 || json_integer_value(idv) >= MAX_TOKEN_ID)
            return gm_fail(L->err, GLMOE_E_FORMAT, "%s.id must be a token id below %d", path, MAX_TOKEN_ID);
        if (len == 0) continue; /* HF ignores empty added tokens */
        gm_added_token at = {0};
        if ((st = get_bool(L, t, "special", false, &at.special, path)) != GLMOE_OK) return st;
        if ((st = get_bool(L, t, "normalized", true, &at.normalized, path)) != GLMOE_OK) return st;
        if ((st = get_bool(L, t, "lstrip", false, &at.lstrip, path)) != GLMOE_OK) return st;
        if ((st = get_bool(L, t, "rstrip", false, &at.rstrip, path)) != GLMOE_OK) return st;
        if ((st = get_bool(L, t, "single_word", false, &at.single_word, path)) != GLMOE_OK) return st;

        uint32_t off;
        bool created;
        if (!gm_vocab_arena_add(&tok->vocab, content, len, &off)) return oom(L);
        int64_t e = gm_vocab_intern(&tok->vocab, off, (uint32_t)len, &created);
        if (e < 0) return oom(L);
        gm_vocab_entry *en = &tok->vocab.entries[e];
        if (en->added_id >= 0)
            return gm_fail(L->err, GLMOE_E_FORMAT, "%s: \"%s\" is already an added token (id %d)", path, content, en->added_id);
        int64_t id = en->model_id >= 0 ? en->model_id : next_id++;
        if (id != json_integer_value(idv))
            return gm_fail(L->err, GLMOE_E_FORMAT,
                           "%s: \"%s\" has id %lld in the file, but Hugging Face tokenizers would give it id %lld",
                           path, content, (long long)json_integer_value(idv), (long long)id);
        if (id >= MAX_TOKEN_ID) return gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s: id %lld is too large", path, (long long)id);
        en->added_id = (int32_t)id;
        en->special = en->special || at.special;
        at.id = (int32_t)id;
        if (id > *max_id) *max_id = (int32_t)id;

        at.content = malloc(len);
        if (!at.content) return oom(L);
        memcpy(at.content, content, len);
        at.content_len = len;
        /* normalized tokens are searched for (and decoded) in their normalized form */
        L->b.n = 0;
        if (at.normalized) {
            if ((st = gm_tok_regex_run_begin(&tok->regex_run, L->err)) != GLMOE_OK ||
                (st = gm_normalize(&tok->norm, (const uint8_t *)content, len, &L->b, &tok->norm_scratch, &tok->regex_run,
                                   L->err)) != GLMOE_OK) {
                free(at.content);
                if (st != GLMOE_E_ARG) return st;
                /* the normalizer's output limit, hit by this file's own token: the file is at fault */
                gm_err_prefix(L->err, "%s: ", path);
                if (L->err) L->err->code = GLMOE_E_UNSUPPORTED;
                return GLMOE_E_UNSUPPORTED;
            }
        } else if (!gm_tok_bytes_append(&L->b, content, len)) {
            free(at.content);
            return oom(L);
        }
        at.pattern = malloc(L->b.n ? L->b.n : 1);
        if (!at.pattern) {
            free(at.content);
            return oom(L);
        }
        memcpy(at.pattern, L->b.p, L->b.n);
        at.pattern_len = L->b.n;
        a->tokens[a->n++] = at;
    }
    return gm_added_build(a, L->err);
}

/* ---- the per-id table ----------------------------------------------------------------------- */

/* Fills id's row from its string, already in the arena at text_off. */
static glmoe_status set_id(loader *L, int32_t id, uint32_t text_off, size_t n, uint8_t flags) {
    gm_vocab *v = &L->tok->vocab;
    L->b.n = 0;
    if (!byte_level_decode(v->arena + text_off, n, &L->b)) return oom(L);
    gm_vocab_id d = {.text_off = text_off, .text_len = (uint32_t)n, .dec_len = (uint32_t)L->b.n, .flags = flags};
    if (L->b.n == n && memcmp(L->b.p, v->arena + text_off, n) == 0) {
        d.dec_off = text_off; /* most tokens decode to their own spelling: share the bytes */
    } else if (!gm_vocab_arena_add(v, L->b.p, L->b.n, &d.dec_off)) {
        return oom(L);
    }
    v->ids[id] = d;
    return GLMOE_OK;
}

static glmoe_status build_ids(loader *L, int32_t max_id) {
    gm_tokenizer *tok = L->tok;
    gm_vocab *v = &tok->vocab;
    if (!gm_vocab_set_n_ids(v, max_id + 1)) return oom(L);
    glmoe_status st;
    size_t n_entries = v->n_entries;
    for (size_t e = 0; e < n_entries; e++) {
        gm_vocab_entry en = v->entries[e];
        if (en.model_id < 0) continue;
        if (v->ids[en.model_id].flags & GM_TOKID_PRESENT) {
            const gm_vocab_id *o = &v->ids[en.model_id];
            return gm_fail(L->err, GLMOE_E_FORMAT, "model.vocab: id %d is given to both \"%.*s\" and \"%.*s\"", en.model_id,
                           (int)o->text_len, v->arena + o->text_off, (int)en.len, v->arena + en.off);
        }
        if ((st = set_id(L, en.model_id, en.off, en.len, GM_TOKID_PRESENT)) != GLMOE_OK) return st;
    }
    /* Added tokens decode (and id_to_token) through their normalized form (HF simple_id_to_token). */
    for (size_t i = 0; i < tok->added.n; i++) {
        const gm_added_token *t = &tok->added.tokens[i];
        uint8_t flags = GM_TOKID_PRESENT | GM_TOKID_ADDED | (t->special ? GM_TOKID_SPECIAL : 0);
        uint32_t off;
        if (!gm_vocab_arena_add(v, t->pattern, t->pattern_len, &off)) return oom(L);
        if ((st = set_id(L, t->id, off, t->pattern_len, flags)) != GLMOE_OK) return st;
    }
    /* decode(skip_special_tokens) drops an id when its decode string is the content of a special
     * added token (HF compares strings, not ids): a model token spelled like one, or an added token
     * whose (normalized) decode string is one. */
    for (size_t e = 0; e < v->n_entries; e++) {
        const gm_vocab_entry *en = &v->entries[e];
        if (en->special && en->model_id >= 0 && !(v->ids[en->model_id].flags & GM_TOKID_ADDED))
            v->ids[en->model_id].flags |= GM_TOKID_SKIP;
    }
    for (size_t i = 0; i < tok->added.n; i++) {
        const gm_added_token *t = &tok->added.tokens[i];
        int64_t e = gm_vocab_find(v, t->pattern, t->pattern_len);
        if (e >= 0 && v->entries[e].special) v->ids[t->id].flags |= GM_TOKID_SKIP;
    }
    return GLMOE_OK;
}

/* ---- entry point ---------------------------------------------------------------------------- */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static glmoe_status load(loader *L, const char *json, size_t len) {
    gm_tokenizer *tok = L->tok;
    gm_json_layout lay;
    glmoe_status st = gm_json_layout_scan(json, len, &lay, L->err);
    if (st != GLMOE_OK) return st;

    /* jansson reads everything except the two big values, which become {} and []. */
    gm_tok_bytes small = {0};
    size_t cuts[2][2] = {{lay.vocab_start, lay.vocab_end}, {lay.merges_start, lay.merges_end}};
    const char *fill[2] = {"{}", "[]"};
    if (cuts[0][0] > cuts[1][0]) {
        size_t t0 = cuts[0][0], t1 = cuts[0][1];
        cuts[0][0] = cuts[1][0], cuts[0][1] = cuts[1][1], cuts[1][0] = t0, cuts[1][1] = t1;
        fill[0] = "[]", fill[1] = "{}";
    }
    size_t pos = 0;
    bool ok = true;
    for (int k = 0; k < 2; k++) {
        if (cuts[k][0] == cuts[k][1]) continue;
        ok = ok && gm_tok_bytes_append(&small, json + pos, cuts[k][0] - pos) && gm_tok_bytes_append(&small, fill[k], 2);
        pos = cuts[k][1];
    }
    ok = ok && gm_tok_bytes_append(&small, json + pos, len - pos);
    if (!ok) {
        gm_tok_bytes_free(&small);
        return oom(L);
    }
    if (small.n > MAX_DOM_BYTES) {
        st = gm_fail(L->err, GLMOE_E_UNSUPPORTED,
                     "%zu bytes outside model.vocab and model.merges, over the limit of %u (real files have under 1 MB)",
                     small.n, MAX_DOM_BYTES);
        gm_tok_bytes_free(&small);
        return st;
    }
    json_error_t jerr;
    json_t *root = json_loadb(small.p, small.n, JSON_ALLOW_NUL, &jerr);
    gm_tok_bytes_free(&small);
    if (!root) return gm_fail(L->err, GLMOE_E_FORMAT, "invalid JSON: %s", jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return gm_fail(L->err, GLMOE_E_FORMAT, "the top level must be an object");
    }

    static const char *const must_be_null[] = {"truncation", "padding"};
    for (int i = 0; i < 2; i++) {
        const json_t *v = json_object_get(root, must_be_null[i]);
        if (v && !json_is_null(v)) {
            st = gm_fail(L->err, GLMOE_E_UNSUPPORTED, "%s must be null (%s is not supported)", must_be_null[i], must_be_null[i]);
            goto done;
        }
    }
    size_t arena_guess = (lay.vocab_end - lay.vocab_start) + 4096;
    if (!gm_vocab_init(&tok->vocab, 1024, arena_guess)) {
        st = oom(L);
        goto done;
    }
    int32_t max_id = -1;
    size_t n_vocab = 0;
    if ((st = parse_model(L, json_object_get(root, "model"), json, &lay, &max_id, &n_vocab)) != GLMOE_OK) goto done;
    if ((st = parse_normalizer(L, json_object_get(root, "normalizer"), "normalizer")) != GLMOE_OK) goto done;
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    if (!pre || json_is_null(pre)) {
        st = gm_fail(L->err, GLMOE_E_UNSUPPORTED, "pre_tokenizer is null; a ByteLevel pre-tokenizer is required");
        goto done;
    }
    if ((st = parse_pre(L, pre, "pre_tokenizer")) != GLMOE_OK) goto done;
    if (tok->pre.n == 0 || tok->pre.steps[tok->pre.n - 1].kind != GM_PRE_BYTELEVEL) {
        st = gm_fail(L->err, GLMOE_E_UNSUPPORTED, "pre_tokenizer: a ByteLevel pre-tokenizer as the last step is required");
        goto done;
    }
    if ((st = parse_post(L, json_object_get(root, "post_processor"), "post_processor")) != GLMOE_OK) goto done;
    if ((st = parse_decoder(L, json_object_get(root, "decoder"))) != GLMOE_OK) goto done;
    if ((st = parse_added(L, json_object_get(root, "added_tokens"), n_vocab, &max_id)) != GLMOE_OK) goto done;
    if (max_id < 0) {
        st = gm_fail(L->err, GLMOE_E_FORMAT, "model.vocab is empty");
        goto done;
    }
    if ((st = build_ids(L, max_id)) != GLMOE_OK) goto done;
    for (size_t i = 0; i < tok->n_templates; i++)
        for (size_t k = 0; k < tok->templates[i].n; k++)
            for (size_t j = 0; j < tok->templates[i].pieces[k].n_ids; j++) {
                int32_t id = tok->templates[i].pieces[k].ids[j];
                if (id >= tok->vocab.n_ids || !(tok->vocab.ids[id].flags & GM_TOKID_PRESENT)) {
                    st = gm_fail(L->err, GLMOE_E_FORMAT, "post_processor: special token id %d is not in the vocabulary", id);
                    goto done;
                }
            }
    tok->levels = calloc(tok->pre.n + 1, sizeof *tok->levels);
    if (!tok->levels || !(tok->region = onig_region_new())) st = oom(L);
done:
    json_decref(root);
    return st;
}

glmoe_status gm_tokenizer_load_json(gm_tokenizer **out, const char *json, size_t len, const char *name, gm_err *err) {
    *out = NULL;
    if (!json && len) return gm_fail(err, GLMOE_E_ARG, "%s: NULL text", name ? name : "tokenizer.json");
    double t0 = now_seconds();
    gm_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok || !gm_bpe_init(&tok->bpe)) {
        gm_tokenizer_free(tok);
        return gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", name ? name : "tokenizer.json");
    }
    tok->config = (gm_tokenizer_config){.bos_id = -1, .eos_id = -1, .pad_id = -1};
    loader L = {.tok = tok, .err = err};
    glmoe_status st = load(&L, json, len);
    gm_tok_bytes_free(&L.a);
    gm_tok_bytes_free(&L.b);
    if (st != GLMOE_OK) {
        gm_err_prefix(err, "%s: ", name ? name : "tokenizer.json");
        gm_tokenizer_free(tok);
        return st;
    }
    tok->load_seconds = now_seconds() - t0;
    *out = tok;
    return GLMOE_OK;
}

void gm_tokenizer_free(gm_tokenizer *tok) {
    if (!tok) return;
    gm_vocab_free(&tok->vocab);
    gm_bpe_free(&tok->bpe);
    gm_added_free(&tok->added);
    gm_normalizer_free(&tok->norm);
    if (tok->levels)
        for (size_t i = 0; i <= tok->pre.n; i++) free(tok->levels[i].v);
    free(tok->levels);
    gm_pretokenizer_free(&tok->pre);
    for (size_t i = 0; i < tok->n_templates; i++) {
        for (size_t k = 0; k < tok->templates[i].n; k++) free(tok->templates[i].pieces[k].ids);
        free(tok->templates[i].pieces);
    }
    free(tok->templates);
    gm_tok_bytes_free(&tok->work);
    free(tok->raw_splits.v);
    free(tok->raw_splits.hits);
    free(tok->norm_splits.v);
    free(tok->norm_splits.hits);
    gm_pre_scratch_free(&tok->pre_scratch);
    gm_norm_scratch_free(&tok->norm_scratch);
    gm_tok_regex_run_free(&tok->regex_run);
    if (tok->region) onig_region_free(tok->region, 1);
    gm_tok_ids_free(&tok->seq);
    free(tok);
}
