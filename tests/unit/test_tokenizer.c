/*
 * test_tokenizer.c — parity with Hugging Face tokenizers on real tokenizer.json files.
 *
 * Replays the golden files written by tools/reference/make_tokenizer_golden.py
 * (tests/data/tokenizers/golden/VARIANT.jsonl): Qwen3, DeepSeek-V3, the Qwen3 vocabulary with GLM-4.5's
 * pre-tokenizer pattern, and feature variants (split behaviours, Digits, normalizers, added-token
 * options, TemplateProcessing, ignore_merges) made by the same text edits the script makes. For
 * every case it checks the ids (with and without special-token parsing, with the post-processor),
 * both decodes, and that the streaming decoder emits only whole UTF-8 characters and adds up to
 * the one-shot decode. Then the original 74-case reference files (tests/data/tokenizers/reference)
 * and the policies: ill-formed UTF-8 input, unknown ids, lookups, tokenizer_config.json.
 *
 * Usage: test_tokenizer <repo root> [variant]  (variant: run only that golden file)
 */
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "tokenizer/bpe.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

static const char *root;

/* ---- helpers --------------------------------------------------------------------------------- */

static bool ids_equal(const gm_tok_ids *got, const json_t *want) {
    if (got->n != json_array_size(want)) return false;
    for (size_t i = 0; i < got->n; i++)
        if (got->ids[i] != json_integer_value(json_array_get(want, i))) return false;
    return true;
}

static void report_ids(const char *what, const char *variant, size_t line, const gm_tok_ids *got, const json_t *want) {
    size_t n = json_array_size(want), i = 0;
    while (i < got->n && i < n && got->ids[i] == json_integer_value(json_array_get(want, i))) i++;
    fprintf(stderr, "  %s %s line %zu: %zu ids, expected %zu; first difference at %zu: got %d, expected %lld\n", variant,
            what, line, got->n, n, i, i < got->n ? got->ids[i] : -1,
            i < n ? (long long)json_integer_value(json_array_get(want, i)) : -1LL);
}

static bool bytes_equal(const gm_tok_bytes *b, const char *s, size_t n) { return b->n == n && (n == 0 || memcmp(b->p, s, n) == 0); }

/* The variant edits of make_tokenizer_golden.py: replace each old string (exactly once), then append
 * members to the top-level object. */
static bool edit_json(gm_tok_bytes *text, const json_t *header) {
    const json_t *replace = json_object_get(header, "replace"), *append = json_object_get(header, "append");
    for (size_t i = 0; i < json_array_size(replace); i++) {
        const char *old = json_string_value(json_array_get(json_array_get(replace, i), 0));
        const char *new = json_string_value(json_array_get(json_array_get(replace, i), 1));
        if (!gm_tok_bytes_cstr(text)) return false;
        char *at = strstr(text->p, old);
        if (!at || strstr(at + 1, old)) {
            fprintf(stderr, "  replace: \"%s\" does not occur exactly once\n", old);
            return false;
        }
        size_t off = (size_t)(at - text->p), lo = strlen(old), ln = strlen(new);
        gm_tok_bytes out = {0};
        bool ok = gm_tok_bytes_append(&out, text->p, off) && gm_tok_bytes_append(&out, new, ln) &&
                  gm_tok_bytes_append(&out, text->p + off + lo, text->n - off - lo);
        gm_tok_bytes_free(text);
        *text = out;
        if (!ok) return false;
    }
    if (json_object_size(append)) {
        while (text->n && (text->p[text->n - 1] == '\n' || text->p[text->n - 1] == ' ' || text->p[text->n - 1] == '\r')) text->n--;
        if (!text->n || text->p[text->n - 1] != '}') return false;
        text->n--;
        const char *key;
        json_t *value;
        json_object_foreach((json_t *)append, key, value) {
            char *v = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);
            bool ok = v && gm_tok_bytes_append(text, ", \"", 3) && gm_tok_bytes_append(text, key, strlen(key)) &&
                      gm_tok_bytes_append(text, "\": ", 3) && gm_tok_bytes_append(text, v, strlen(v));
            free(v);
            if (!ok) return false;
        }
        if (!gm_tok_bytes_append(text, "}", 1)) return false;
    }
    return true;
}

/* Streams ids through the stream decoder; checks each piece is whole UTF-8 and the total equals
 * `want`. */
static bool stream_matches(const gm_tokenizer *tok, const gm_tok_ids *ids, bool skip, const gm_tok_bytes *want) {
    gm_tok_stream s;
    gm_tok_stream_init(&s, tok, skip);
    gm_tok_bytes all = {0}, piece = {0};
    gm_err err = {0};
    bool ok = true;
    for (size_t i = 0; ok && i < ids->n; i++) {
        piece.n = 0;
        ok = gm_tok_stream_push(&s, ids->ids[i], &piece, &err) == GLMOE_OK &&
             gm_utf8_check((const uint8_t *)piece.p, piece.n) == piece.n && gm_tok_bytes_append(&all, piece.p, piece.n);
    }
    ok = ok && gm_tok_stream_flush(&s, &all, &err) == GLMOE_OK && bytes_equal(&all, want->p, want->n);
    gm_tok_bytes_free(&all);
    gm_tok_bytes_free(&piece);
    return ok;
}

/* ---- one golden file ------------------------------------------------------------------------- */

static void run_golden(const char *path) {
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    const char *variant = strrchr(path, '/') + 1;
    char *line = NULL;
    size_t cap = 0, lineno = 0, n_cases = 0, n_bad = 0;
    ssize_t len;
    gm_tokenizer *tok = NULL;
    gm_err err = {0};
    gm_tok_ids ids = {0};
    gm_tok_bytes text = {0}, dec = {0};
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t jerr;
        json_t *j = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, &jerr);
        CHECK(j != NULL, "%s line %zu: bad JSON: %s", variant, lineno, jerr.text);
        if (!j) continue;
        if (lineno == 1) {
            char file[4096];
            snprintf(file, sizeof file, "%s/tests/data/tokenizers/%s/tokenizer.json.gz", root,
                     json_string_value(json_object_get(j, "base")));
            glmoe_status st = gm_tokenizer_read_file(file, &text, &err);
            CHECK(st == GLMOE_OK, "%s: %s", variant, err.msg);
            bool edited = st == GLMOE_OK && edit_json(&text, j);
            CHECK(edited, "%s: cannot apply the variant's edits", variant);
            st = edited ? gm_tokenizer_load_json(&tok, text.p, text.n, variant, &err) : GLMOE_E_ARG;
            CHECK(st == GLMOE_OK, "%s: load: %s", variant, err.msg);
            gm_tok_bytes_free(&text);
            json_decref(j);
            if (st != GLMOE_OK) break;
            continue;
        }
        /* the input, literal or repeated */
        text.n = 0;
        const json_t *in = json_object_get(j, "input"), *rep = json_object_get(j, "input_repeat");
        if (in) {
            gm_tok_bytes_append(&text, json_string_value(in), json_string_length(in));
        } else {
            const json_t *piece = json_array_get(rep, 0);
            for (json_int_t k = 0; k < json_integer_value(json_array_get(rep, 1)); k++)
                gm_tok_bytes_append(&text, json_string_value(piece), json_string_length(piece));
        }
        const json_t *want = json_object_get(j, "ids");
        const json_t *want_plain = json_object_get(j, "ids_plain") ? json_object_get(j, "ids_plain") : want;
        const json_t *want_add = json_object_get(j, "ids_add") ? json_object_get(j, "ids_add") : want;
        bool bad = false;
        n_cases++;

        ids.n = 0;
        glmoe_status st = gm_tokenizer_encode(tok, text.p, text.n, GM_TOK_PARSE_SPECIAL, &ids, &err);
        CHECK(st == GLMOE_OK, "%s line %zu: encode: %s", variant, lineno, err.msg);
        bool same = st == GLMOE_OK && ids_equal(&ids, want);
        CHECK(same, "%s line %zu: ids differ from HF", variant, lineno);
        if (!same) report_ids("ids", variant, lineno, &ids, want), bad = true;

        /* decode (skip_special false and true); decoded defaults to the input itself */
        const json_t *jd = json_object_get(j, "decoded"), *jds = json_object_get(j, "decoded_skip");
        const char *d = jd ? json_string_value(jd) : text.p;
        size_t dn = jd ? json_string_length(jd) : text.n;
        dec.n = 0;
        st = gm_tokenizer_decode(tok, ids.ids, ids.n, false, &dec, &err);
        same = st == GLMOE_OK && bytes_equal(&dec, d, dn);
        CHECK(same, "%s line %zu: decode differs from HF", variant, lineno);
        bad |= !same;
        same = stream_matches(tok, &ids, false, &dec);
        CHECK(same, "%s line %zu: streaming decode differs from decode or splits a character", variant, lineno);
        bad |= !same;
        dec.n = 0;
        st = gm_tokenizer_decode(tok, ids.ids, ids.n, true, &dec, &err);
        same = st == GLMOE_OK && (jds ? bytes_equal(&dec, json_string_value(jds), json_string_length(jds)) : bytes_equal(&dec, d, dn));
        CHECK(same, "%s line %zu: decode(skip_special) differs from HF", variant, lineno);
        bad |= !same;
        same = stream_matches(tok, &ids, true, &dec);
        CHECK(same, "%s line %zu: streaming decode(skip_special) differs", variant, lineno);
        bad |= !same;

        /* special tokens not parsed (HF encode_special_tokens), and with the post-processor */
        ids.n = 0;
        st = gm_tokenizer_encode(tok, text.p, text.n, 0, &ids, &err);
        same = st == GLMOE_OK && ids_equal(&ids, want_plain);
        CHECK(same, "%s line %zu: ids without special-token parsing differ from HF", variant, lineno);
        if (!same) report_ids("ids_plain", variant, lineno, &ids, want_plain), bad = true;
        ids.n = 0;
        st = gm_tokenizer_encode(tok, text.p, text.n, GM_TOK_PARSE_SPECIAL | GM_TOK_ADD_SPECIAL, &ids, &err);
        same = st == GLMOE_OK && ids_equal(&ids, want_add);
        CHECK(same, "%s line %zu: ids with the post-processor differ from HF", variant, lineno);
        if (!same) report_ids("ids_add", variant, lineno, &ids, want_add), bad = true;

        n_bad += bad;
        json_decref(j);
    }
    printf("  %-28s %4zu cases, %zu failing\n", variant, n_cases, n_bad);
    CHECK(n_cases > 0, "%s: no cases", variant);
    free(line);
    fclose(f);
    gm_tokenizer_free(tok);
    gm_tok_ids_free(&ids);
    gm_tok_bytes_free(&text);
    gm_tok_bytes_free(&dec);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_golden(const char *only) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/data/tokenizers/golden", root);
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot open %s", dir);
    if (!d) return;
    char *names[256];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t l = strlen(e->d_name);
        if (l > 6 && strcmp(e->d_name + l - 6, ".jsonl") == 0) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    CHECK(n >= 3, "expected the golden files in %s", dir);
    for (size_t i = 0; i < n; i++) {
        if (!only || strncmp(names[i], only, strlen(only)) == 0) {
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            run_golden(path);
        }
        free(names[i]);
    }
}

/* ---- the original 74-case reference files ----------------------------------------------------- */

static void test_reference(const char *family) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/%s", root, family);
    gm_tokenizer *tok;
    gm_err err = {0};
    glmoe_status st = gm_tokenizer_load(&tok, path, &err); /* a directory: finds tokenizer.json.gz */
    CHECK(st == GLMOE_OK, "load %s: %s", path, err.msg);
    if (st != GLMOE_OK) return;
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/reference/%s.jsonl", root, family);
    json_error_t jerr;
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    char *line = NULL;
    size_t cap = 0, n = 0, ok = 0;
    gm_tok_ids ids = {0};
    gm_tok_bytes dec = {0};
    while (f && getline(&line, &cap, f) > 0) {
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &jerr);
        if (!j) continue;
        const json_t *in = json_object_get(j, "input");
        ids.n = dec.n = 0;
        bool good = gm_tokenizer_encode(tok, json_string_value(in), json_string_length(in), GM_TOK_PARSE_SPECIAL, &ids, &err) == GLMOE_OK &&
                    ids_equal(&ids, json_object_get(j, "ids")) &&
                    gm_tokenizer_decode(tok, ids.ids, ids.n, false, &dec, &err) == GLMOE_OK &&
                    bytes_equal(&dec, json_string_value(in), json_string_length(in));
        CHECK(good, "%s reference: \"%s\"", family, json_string_value(in));
        n++, ok += good;
        json_decref(j);
    }
    printf("  reference/%-18s %4zu cases, %zu failing\n", family, n, n - ok);
    CHECK(n == 74, "%s reference: %zu cases, expected 74", family, n);
    if (f) fclose(f);
    free(line);
    gm_tok_ids_free(&ids);
    gm_tok_bytes_free(&dec);
    gm_tokenizer_free(tok);
}

/* ---- policies and lookups -------------------------------------------------------------------- */

/* The token that stands for one byte in a byte-level vocabulary. */
static int32_t byte_token(const gm_tokenizer *tok, uint8_t b) {
    uint8_t u[4];
    int k = gm_utf8_encode(gm_byte_level_char(b), u);
    return gm_tokenizer_token_to_id(tok, (const char *)u, (size_t)k);
}

static void test_policies(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/qwen3/tokenizer.json.gz", root);
    gm_tokenizer *tok;
    gm_err err = {0};
    glmoe_status st = gm_tokenizer_load(&tok, path, &err);
    CHECK(st == GLMOE_OK, "load: %s", err.msg);
    if (st != GLMOE_OK) return;
    printf("  qwen3 loaded in %.1f ms (parse only, not a benchmark)\n", 1e3 * gm_tokenizer_load_seconds(tok));

    /* Ill-formed UTF-8 is refused with the offset of the first bad sequence; nothing is appended. */
    static const struct { const char *s; size_t n, offset; } bad[] = {
        {"abc\x80", 4, 3},          /* lone continuation byte           */
        {"ab\xC3", 3, 2},           /* truncated 2-byte character       */
        {"\xC0\xAF", 2, 0},         /* overlong '/'                     */
        {"x\xE0\x80\xAF", 4, 1},    /* overlong 3-byte                  */
        {"xy\xED\xA0\x80z", 6, 2},  /* surrogate U+D800                 */
        {"\xF4\x90\x80\x80", 4, 0}, /* above U+10FFFF                   */
        {"ok \xFF", 4, 3},          /* never valid                      */
        {"\xE4\xBD\xA0\xE5\xA5", 5, 3}, /* 你 then a cut-off 好         */
    };
    gm_tok_ids ids = {0};
    gm_tok_ids_push(&ids, 7);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        st = gm_tokenizer_encode(tok, bad[i].s, bad[i].n, GM_TOK_PARSE_SPECIAL, &ids, &err);
        char want[64];
        snprintf(want, sizeof want, "at byte %zu)", bad[i].offset);
        CHECK(st == GLMOE_E_ARG && strstr(err.msg, want) && ids.n == 1, "bad UTF-8 case %zu: status %d, \"%s\"", i, st, err.msg);
    }
    /* NUL bytes are ordinary characters, and appending keeps what was there */
    st = gm_tokenizer_encode(tok, "a\0b", 3, GM_TOK_PARSE_SPECIAL, &ids, &err);
    CHECK(st == GLMOE_OK && ids.n == 4 && ids.ids[0] == 7, "encode with NUL: %d ids", (int)ids.n);

    /* Unknown ids are refused (HF drops them silently). */
    gm_tok_bytes dec = {0};
    int32_t unknown[] = {9707, gm_tokenizer_n_ids(tok)};
    st = gm_tokenizer_decode(tok, unknown, 2, false, &dec, &err);
    CHECK(st == GLMOE_E_TOKEN && dec.n == 0, "decode of an unknown id: status %d", st);
    int32_t neg = -1;
    st = gm_tokenizer_decode(tok, &neg, 1, false, &dec, &err);
    CHECK(st == GLMOE_E_TOKEN, "decode of id -1: status %d", st);

    /* Lookups */
    CHECK(gm_tokenizer_n_ids(tok) == 151669, "n_ids %d", gm_tokenizer_n_ids(tok));
    CHECK(gm_tokenizer_token_to_id(tok, "<|im_start|>", 12) == 151644, "token_to_id <|im_start|>");
    CHECK(gm_tokenizer_token_to_id(tok, "\xC4\xA0the", 5) == 279, "token_to_id \"Ġthe\"");
    CHECK(gm_tokenizer_token_to_id(tok, "not a token at all", 18) == -1, "token_to_id of garbage");
    size_t len = 0;
    const char *s = gm_tokenizer_id_to_token(tok, 151645, &len);
    CHECK(s && len == 10 && memcmp(s, "<|im_end|>", 10) == 0, "id_to_token 151645");
    s = gm_tokenizer_id_to_token(tok, 279, &len);
    CHECK(s && len == 5 && memcmp(s, "\xC4\xA0the", 5) == 0, "id_to_token 279");
    s = gm_tokenizer_id_to_bytes(tok, 279, &len);
    CHECK(s && len == 4 && memcmp(s, " the", 4) == 0, "id_to_bytes 279");
    CHECK(gm_tokenizer_id_to_token(tok, -5, &len) == NULL && gm_tokenizer_id_to_token(tok, 151669, &len) == NULL, "id_to_token out of range");
    CHECK(gm_tokenizer_is_special(tok, 151643) && gm_tokenizer_is_special(tok, 151644), "is_special <|endoftext|>, <|im_start|>");
    CHECK(!gm_tokenizer_is_special(tok, 151667) && gm_tokenizer_is_added(tok, 151667), "<think> is added but not special");
    CHECK(!gm_tokenizer_is_special(tok, 279) && !gm_tokenizer_is_added(tok, 279), "Ġthe is a plain token");

    /* tokenizer_config.json next to the file: Qwen3 has no BOS and eos <|im_end|> */
    const gm_tokenizer_config *cfg = gm_tokenizer_get_config(tok);
    CHECK(cfg->present && cfg->bos_id == -1 && cfg->eos_id == 151645 && cfg->pad_id == 151643 && !cfg->add_bos,
          "qwen3 config: present %d bos %d eos %d pad %d", cfg->present, cfg->bos_id, cfg->eos_id, cfg->pad_id);

    /* Streaming never splits a character: U+1F600 fed as its four single-byte tokens comes out
     * only with the last one. */
    gm_tok_stream stream;
    gm_tok_stream_init(&stream, tok, false);
    const uint8_t emoji[4] = {0xF0, 0x9F, 0x98, 0x80};
    size_t emitted_before_last = 0;
    dec.n = 0;
    for (int k = 0; k < 4; k++) {
        st = gm_tok_stream_push(&stream, byte_token(tok, emoji[k]), &dec, &err);
        CHECK(st == GLMOE_OK, "stream push: %s", err.msg);
        if (k < 3) emitted_before_last += dec.n;
    }
    CHECK(emitted_before_last == 0 && dec.n == 4 && memcmp(dec.p, emoji, 4) == 0, "stream emitted %zu bytes early, %zu in all",
          emitted_before_last, dec.n);
    /* an unfinished character at the end becomes U+FFFD on flush */
    dec.n = 0;
    gm_tok_stream_init(&stream, tok, false);
    st = gm_tok_stream_push(&stream, byte_token(tok, 0xF0), &dec, &err);
    CHECK(st == GLMOE_OK && dec.n == 0, "a lead byte alone emits nothing");
    st = gm_tok_stream_flush(&stream, &dec, &err);
    CHECK(st == GLMOE_OK && dec.n == 3 && memcmp(dec.p, "\xEF\xBF\xBD", 3) == 0, "flush gives U+FFFD");
    /* the stream skips special tokens when asked */
    gm_tok_stream_init(&stream, tok, true);
    dec.n = 0;
    gm_tok_stream_push(&stream, 151644, &dec, &err);
    gm_tok_stream_push(&stream, 9707, &dec, &err);
    CHECK(dec.n == 5 && memcmp(dec.p, "Hello", 5) == 0, "stream skip_special");
    gm_tok_ids_free(&ids);
    gm_tok_bytes_free(&dec);
    gm_tokenizer_free(tok);

    /* DeepSeek-V3's config: add_bos_token true, BOS id 0 (not applied by encode, as in HF's tokenizer.json). */
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/deepseek_v3", root);
    st = gm_tokenizer_load(&tok, path, &err);
    CHECK(st == GLMOE_OK, "load deepseek: %s", err.msg);
    if (st == GLMOE_OK) {
        cfg = gm_tokenizer_get_config(tok);
        CHECK(cfg->present && cfg->bos_id == 0 && cfg->eos_id == 1 && cfg->add_bos && !cfg->add_eos, "deepseek config");
        CHECK(gm_tokenizer_n_ids(tok) == 128815, "deepseek n_ids %d", gm_tokenizer_n_ids(tok));
        gm_tokenizer_free(tok);
    }
    /* a directory without tokenizer.json says so */
    snprintf(path, sizeof path, "%s/tests/unit", root);
    st = gm_tokenizer_load(&tok, path, &err);
    CHECK(st == GLMOE_E_IO && tok == NULL && strstr(err.msg, "no tokenizer.json"), "directory without tokenizer: %s", err.msg);
    /* a missing file names the path */
    st = gm_tokenizer_load(&tok, "/nonexistent/tokenizer.json", &err);
    CHECK(st == GLMOE_E_IO && tok == NULL && strstr(err.msg, "/nonexistent/tokenizer.json"), "missing file: %s", err.msg);
}

int main(int argc, char **argv) {
    root = argc > 1 ? argv[1] : ".";
    const char *only = argc > 2 ? argv[2] : NULL;
    test_golden(only);
    if (!only) {
        test_reference("qwen3");
        test_reference("deepseek_v3");
        test_policies();
    }
    return test_summary("test_tokenizer");
}
