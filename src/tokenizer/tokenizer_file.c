/*
 * tokenizer_file.c — finding and reading tokenizer files: a tokenizer.json path, a gzipped one,
 * or a model directory; plus the special-token facts of tokenizer_config.json.
 *
 * Gzip support (the test data is stored gzipped) needs zlib: it is compiled in when the build
 * defines GLMOE_HAVE_ZLIB and links zlib; otherwise a .gz file is refused with a message saying
 * so. Decompressed size is capped (GM_TOKENIZER_MAX_BYTES) so a hostile archive cannot exhaust
 * memory.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef GLMOE_HAVE_ZLIB
#include <zlib.h>
#endif

#include "io/file.h"
#include "util/short_path.h"
#include "tokenizer/tokenizer_internal.h"

#define GM_TOKENIZER_MAX_BYTES ((size_t)1 << 30)

/* The file's bytes appended to out (io/file.c: never blocks, regular files only, 1 GiB at most). */
static glmoe_status read_all(const char *path, gm_tok_bytes *out, gm_err *err) {
    char *data;
    size_t len;
    glmoe_status st = gm_file_read(&data, &len, path, GM_TOKENIZER_MAX_BYTES, NULL, err);
    if (st != GLMOE_OK) return st;
    if (out->n == 0) { /* the usual case: take the buffer over rather than copy a large file */
        free(out->p);
        *out = (gm_tok_bytes){.p = data, .n = len, .cap = len + 1};
        return GLMOE_OK;
    }
    char shown[GM_SHORT_PATH_MAX];
    if (!gm_tok_bytes_append(out, data, len))
        st = gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", gm_short_path(shown, sizeof shown, path));
    free(data);
    return st;
}

/* Inflates a gzip stream, appending to out. The output may never pass GM_TOKENIZER_MAX_BYTES: the
 * buffer grows (doubling) only up to one byte past the cap, inflate is never given room beyond
 * that byte, and the size is checked after every inflate call, before its end-of-stream is
 * accepted. So a gzip bomb is refused as soon as it crosses the cap, with memory near the cap
 * (a stream ending between 1 and 2 GiB used to be accepted; one of 2000 MiB peaked at 4.2 GB). */
static glmoe_status gunzip(const char *path, const gm_tok_bytes *in, gm_tok_bytes *out, gm_err *err) {
#ifdef GLMOE_HAVE_ZLIB
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return gm_fail(err, GLMOE_E_NOMEM, "%s: zlib init failed", path);
    zs.next_in = (Bytef *)in->p;
    zs.avail_in = (uInt)in->n; /* read_all caps files at 1 GiB, below UINT_MAX */
    const size_t base = out->n, most = base + GM_TOKENIZER_MAX_BYTES + 1; /* one byte past the cap */
    glmoe_status st = GLMOE_OK;
    for (;;) {
        if (out->cap - out->n == 0) {
            size_t cap = out->cap < 65536 ? 65536 : out->cap * 2;
            if (cap > most) cap = most;
            char *p = realloc(out->p, cap);
            if (!p) {
                st = gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", path);
                break;
            }
            out->p = p;
            out->cap = cap;
        }
        size_t room = (out->cap < most ? out->cap : most) - out->n;
        if (room > (1u << 30)) room = 1u << 30;
        zs.next_out = (Bytef *)out->p + out->n;
        zs.avail_out = (uInt)room;
        int rc = inflate(&zs, Z_NO_FLUSH);
        out->n += room - zs.avail_out;
        if (out->n - base > GM_TOKENIZER_MAX_BYTES) {
            st = gm_fail(err, GLMOE_E_FORMAT, "%s: decompresses to more than %zu bytes", path, GM_TOKENIZER_MAX_BYTES);
            break;
        }
        if (rc == Z_STREAM_END) break;
        if (rc != Z_OK || (zs.avail_in == 0 && zs.avail_out != 0)) {
            st = gm_fail(err, GLMOE_E_FORMAT, "%s: corrupt or truncated gzip data", path);
            break;
        }
    }
    inflateEnd(&zs);
    return st;
#else
    (void)in;
    (void)out;
    return gm_fail(err, GLMOE_E_UNSUPPORTED, "%s: gzip input needs glmoe built with zlib (GLMOE_HAVE_ZLIB)", path);
#endif
}

glmoe_status gm_tokenizer_read_file(const char *path, gm_tok_bytes *out, gm_err *err) {
    size_t n0 = out->n;
    char shown[GM_SHORT_PATH_MAX]; /* the path as messages show it */
    gm_short_path(shown, sizeof shown, path);
    glmoe_status st = read_all(path, out, err);
    if (st != GLMOE_OK) {
        out->n = n0;
        return st;
    }
    if (out->n - n0 >= 2 && (uint8_t)out->p[n0] == 0x1F && (uint8_t)out->p[n0 + 1] == 0x8B) {
        gm_tok_bytes raw = {0};
        if (!gm_tok_bytes_append(&raw, out->p + n0, out->n - n0))
            st = gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", shown);
        out->n = n0;
        if (st == GLMOE_OK) st = gunzip(shown, &raw, out, err);
        gm_tok_bytes_free(&raw);
        if (st != GLMOE_OK) out->n = n0;
    }
    return st;
}

static bool is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* A token named in tokenizer_config.json: a string, or an AddedToken object {"content": ...}. */
static int32_t config_token(const gm_tokenizer *tok, const json_t *v) {
    if (json_is_object(v)) v = json_object_get(v, "content");
    if (!json_is_string(v)) return -1;
    return gm_tokenizer_token_to_id(tok, json_string_value(v), json_string_length(v));
}

static glmoe_status read_config(gm_tokenizer *tok, const char *path, gm_err *err) {
    char shown[GM_SHORT_PATH_MAX];
    gm_short_path(shown, sizeof shown, path);
    gm_tok_bytes text = {0};
    glmoe_status st = read_all(path, &text, err); /* the same checks as tokenizer.json */
    if (st != GLMOE_OK) return st;
    json_error_t jerr;
    json_t *root = json_loadb(text.p, text.n, 0, &jerr);
    gm_tok_bytes_free(&text);
    if (!root) return gm_fail(err, GLMOE_E_FORMAT, "%s: invalid JSON at line %d: %s", shown, jerr.line, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return gm_fail(err, GLMOE_E_FORMAT, "%s: the top level must be an object", shown);
    }
    gm_tokenizer_config *c = &tok->config;
    c->present = true;
    c->bos_id = config_token(tok, json_object_get(root, "bos_token"));
    c->eos_id = config_token(tok, json_object_get(root, "eos_token"));
    c->pad_id = config_token(tok, json_object_get(root, "pad_token"));
    c->add_bos = json_is_true(json_object_get(root, "add_bos_token"));
    c->add_eos = json_is_true(json_object_get(root, "add_eos_token"));
    json_decref(root);
    return GLMOE_OK;
}

glmoe_status gm_tokenizer_load(gm_tokenizer **out, const char *path, gm_err *err) {
    *out = NULL;
    if (!path) return gm_fail(err, GLMOE_E_ARG, "tokenizer path is NULL");
    size_t plen = strlen(path);
    char *file = malloc(plen + 32), *dir = malloc(plen + 32);
    if (!file || !dir) {
        free(file);
        free(dir);
        return gm_fail(err, GLMOE_E_NOMEM, "out of memory");
    }
    if (is_dir(path)) {
        strcpy(dir, path);
        snprintf(file, plen + 32, "%s/tokenizer.json", path);
        if (!exists(file)) snprintf(file, plen + 32, "%s/tokenizer.json.gz", path);
        if (!exists(file)) {
            char shown[GM_SHORT_PATH_MAX];
            glmoe_status st = gm_fail(err, GLMOE_E_IO, "%s: no tokenizer.json in this directory",
                                      gm_short_path(shown, sizeof shown, path));
            free(file);
            free(dir);
            return st;
        }
    } else {
        strcpy(file, path);
        strcpy(dir, path);
        char *slash = strrchr(dir, '/');
        if (slash) slash[1] = '\0';
        else strcpy(dir, ".");
    }
    gm_tok_bytes text = {0};
    glmoe_status st = gm_tokenizer_read_file(file, &text, err);
    char shown[GM_SHORT_PATH_MAX]; /* tokenizer_load.c puts the name in front of its messages */
    if (st == GLMOE_OK) st = gm_tokenizer_load_json(out, text.p, text.n, gm_short_path(shown, sizeof shown, file), err);
    gm_tok_bytes_free(&text);
    if (st == GLMOE_OK) {
        double t = (*out)->load_seconds;
        snprintf(file, plen + 32, "%s/tokenizer_config.json", dir);
        if (exists(file)) st = read_config(*out, file, err);
        if (st != GLMOE_OK) {
            gm_tokenizer_free(*out);
            *out = NULL;
        } else {
            (*out)->load_seconds = t;
        }
    }
    free(file);
    free(dir);
    return st;
}
