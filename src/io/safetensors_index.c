/*
 * safetensors_index.c — a checkpoint directory: model.safetensors.index.json and its shards, or
 * model.safetensors alone (docs/spec/safetensors.md §7).
 *
 * The index is read with the same JSON strictness as a header. Its weight_map maps tensor names
 * to shard file names; every shard name must be a plain file name (no '/', '\\', "." or "..",
 * not empty) and is checked before any file is opened, so an index cannot reach outside the
 * directory (the b12x#171 path traversal). Symbolic links inside the directory are followed:
 * Hugging Face cache snapshots are made of them. Tensor names are never used to build paths.
 *
 * Every shard is validated in full (safetensors.c). Then, across shards: a tensor name in two
 * shards is an error (never pick one silently), every mapped name must be in the shard the map
 * names, and a tensor in a shard but not in the map is logged and left unreachable. Without an
 * index, model.safetensors is loaded; glmoe never globs *.safetensors (mlx-lm does, and then
 * loads stray files such as model-old.safetensors).
 *
 * Tested by tests/unit/test_safetensors.c (directories built under /tmp).
 */
#include "io/safetensors.h"
#include "io/file.h"
#include "util/quote.h"
#include "util/short_path.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/log.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define INDEX_MAX_BYTES 100000000u /* same bound as a safetensors header */

/* An open-addressing table name -> tensor (NULL = empty slot). */
typedef struct tensor_map {
    const st_tensor **slots;
    size_t cap; /* power of two */
} tensor_map;

struct st_set {
    st_file **files;           /* sorted by file name       */
    size_t n_files;
    const st_tensor **tensors; /* reachable by name         */
    size_t count;
    tensor_map map;            /* over `tensors`            */
};

__attribute__((format(printf, 4, 5))) static glmoe_status fail(gm_err *err, glmoe_status code,
                                                              const char *file, const char *fmt,
                                                              ...) {
    if (!err) return code;
    char body[GM_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return gm_fail(err, code, "%s: %s", file, body);
}

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool map_init(tensor_map *m, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    m->slots = calloc(cap, sizeof *m->slots);
    m->cap = m->slots ? cap : 0;
    return m->slots != NULL;
}

/* Inserts t unless its name is present; returns the tensor already there, or NULL. */
static const st_tensor *map_put(tensor_map *m, const st_tensor *t) {
    size_t s = (size_t)hash_name(t->name) & (m->cap - 1);
    for (; m->slots[s]; s = (s + 1) & (m->cap - 1))
        if (strcmp(m->slots[s]->name, t->name) == 0) return m->slots[s];
    m->slots[s] = t;
    return NULL;
}

static const st_tensor *map_get(const tensor_map *m, const char *name) {
    if (!m->cap) return NULL;
    for (size_t s = (size_t)hash_name(name) & (m->cap - 1); m->slots[s];
         s = (s + 1) & (m->cap - 1))
        if (strcmp(m->slots[s]->name, name) == 0) return m->slots[s];
    return NULL;
}

static char *join_path(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

/* A shard name from the index must name a file in the model directory itself. */
static bool is_plain_file_name(const char *s, size_t len) {
    return len > 0 && strlen(s) == len && !strchr(s, '/') && !strchr(s, '\\') &&
           strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Parses the index and returns the distinct shard names, sorted (pointers into *root). */
static glmoe_status parse_index(const char *buf, size_t len, json_t **root, const json_t **wmap,
                                const char ***shards, size_t *n_shards, gm_err *err) {
    char q[200], q2[200];
    json_error_t jerr;
    *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!*root) {
        char text[4 * JSON_ERROR_TEXT_LENGTH];
        return fail(err, GLMOE_E_FORMAT, INDEX_NAME, "not valid JSON: %s at byte %d",
                    gm_escape_controls(text, sizeof text, jerr.text), jerr.position);
    }
    if (!json_is_object(*root))
        return fail(err, GLMOE_E_FORMAT, INDEX_NAME, "top level is not a JSON object");
    const json_t *wm = json_object_get(*root, "weight_map");
    if (!json_is_object(wm))
        return fail(err, GLMOE_E_FORMAT, INDEX_NAME, "\"weight_map\" is %s, expected an object",
                    wm ? "not an object" : "missing");
    if (json_object_size(wm) == 0)
        return fail(err, GLMOE_E_FORMAT, INDEX_NAME, "\"weight_map\" is empty");
    /* Every value is checked before any shard is opened. */
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)wm, key, v) {
        if (!json_is_string(v))
            return fail(err, GLMOE_E_FORMAT, INDEX_NAME,
                        "weight_map[\"%s\"] is not a string (expected a shard file name)",
                        gm_quote(q, sizeof q, key));
        if (!is_plain_file_name(json_string_value(v), json_string_length(v)))
            return fail(err, GLMOE_E_FORMAT, INDEX_NAME,
                        "weight_map[\"%s\"] = \"%s\" is not a plain file name in the model "
                        "directory (no '/', '\\', \".\", \"..\" or empty names)",
                        gm_quote(q, sizeof q, key), gm_quote(q2, sizeof q2, json_string_value(v)));
    }
    const char **names = malloc(json_object_size(wm) * sizeof *names);
    if (!names) return fail(err, GLMOE_E_NOMEM, INDEX_NAME, "out of memory");
    size_t n = 0;
    json_object_foreach((json_t *)wm, key, v) names[n++] = json_string_value(v);
    qsort(names, n, sizeof *names, cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || strcmp(names[u - 1], names[i]) != 0) names[u++] = names[i];
    *wmap = wm;
    *shards = names;
    *n_shards = u;
    return GLMOE_OK;
}

/* Appends context to a message that a callee wrote. */
static void err_append(gm_err *err, const char *text) {
    if (!err) return;
    size_t o = strlen(err->msg);
    snprintf(err->msg + o, sizeof err->msg - o, "%s", text);
}

/* Files were opened in the sorted order of their names: binary search. */
static const st_file *find_file(const st_set *s, const char *name) {
    size_t lo = 0, hi = s->n_files;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st_file_name(s->files[mid]), name);
        if (c == 0) return s->files[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Cross-shard rules, then the reachable set (files in name order, tensors in offset order). */
static glmoe_status link_shards(st_set *s, const json_t *wm, gm_err *err) {
    char q[200];
    glmoe_status st = GLMOE_OK;
    tensor_map all = {0};
    size_t total = 0;
    for (size_t i = 0; i < s->n_files; i++) total += st_file_count(s->files[i]);
    if (!map_init(&all, total) || !map_init(&s->map, json_object_size(wm)) ||
        !(s->tensors = malloc((json_object_size(wm) ? json_object_size(wm) : 1) *
                              sizeof *s->tensors))) {
        st = fail(err, GLMOE_E_NOMEM, INDEX_NAME, "out of memory for %zu tensors", total);
        goto done;
    }
    for (size_t i = 0; i < s->n_files; i++) {
        for (size_t k = 0; k < st_file_count(s->files[i]); k++) {
            const st_tensor *t = st_file_tensor(s->files[i], k);
            const st_tensor *other = map_put(&all, t);
            if (other) {
                st = fail(err, GLMOE_E_FORMAT, st_file_name(s->files[i]),
                          "tensor \"%s\" is also in %s; a tensor may be in one shard only",
                          gm_quote(q, sizeof q, t->name), st_file_name(other->file));
                goto done;
            }
        }
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)wm, key, v) {
        const st_tensor *t = map_get(&all, key);
        const st_file *shard = find_file(s, json_string_value(v));
        if (!t || t->file != shard) {
            char elsewhere[300] = "";
            if (t) snprintf(elsewhere, sizeof elsewhere, " (it is in %s)", st_file_name(t->file));
            st = fail(err, GLMOE_E_FORMAT, INDEX_NAME,
                      "tensor \"%s\" is mapped to %s, which does not contain it%s",
                      gm_quote(q, sizeof q, key), json_string_value(v), elsewhere);
            goto done;
        }
        map_put(&s->map, t);
    }
    for (size_t i = 0; i < s->n_files; i++) {
        size_t unmapped = 0;
        const char *first = NULL;
        for (size_t k = 0; k < st_file_count(s->files[i]); k++) {
            const st_tensor *t = st_file_tensor(s->files[i], k);
            if (map_get(&s->map, t->name) == t) {
                s->tensors[s->count++] = t;
            } else {
                if (!unmapped++) first = t->name;
            }
        }
        if (unmapped)
            gm_warn("%s: %zu tensors are not in %s and are ignored (first: \"%s\")",
                    st_file_name(s->files[i]), unmapped, INDEX_NAME, gm_quote(q, sizeof q, first));
    }
done:
    free(all.slots);
    return st;
}

/* The index has been read whole (buf, len): its shards, each opened and validated, then linked. */
static glmoe_status open_with_index(st_set *s, const char *dir, const char *buf, size_t len, gm_err *err) {
    json_t *root = NULL;
    const json_t *wm = NULL;
    const char **shards = NULL;
    size_t n_shards = 0;
    glmoe_status st = parse_index(buf, len, &root, &wm, &shards, &n_shards, err);
    if (st != GLMOE_OK) goto done;
    if (!(s->files = calloc(n_shards, sizeof *s->files))) {
        st = fail(err, GLMOE_E_NOMEM, INDEX_NAME, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_shards; i++) {
        char *shard_path = join_path(dir, shards[i]);
        if (!shard_path) {
            st = fail(err, GLMOE_E_NOMEM, INDEX_NAME, "out of memory");
            goto done;
        }
        st = st_file_open(&s->files[i], shard_path, err);
        free(shard_path);
        if (st != GLMOE_OK) {
            err_append(err, " (a shard named by " INDEX_NAME ")");
            goto done;
        }
        s->n_files++;
    }
    /* names are already sorted, so files are too */
    st = link_shards(s, wm, err);
done:
    free(shards);
    json_decref(root);
    return st;
}

static glmoe_status open_single(st_set *s, const char *dir, gm_err *err) {
    char *path = join_path(dir, SINGLE_NAME);
    if (!path) return fail(err, GLMOE_E_NOMEM, SINGLE_NAME, "out of memory");
    struct stat sb;
    if (stat(path, &sb) != 0 && errno == ENOENT) {
        free(path);
        char shown[GM_SHORT_PATH_MAX];
        return fail(err, GLMOE_E_IO, gm_short_path(shown, sizeof shown, dir),
                    "neither " INDEX_NAME " nor " SINGLE_NAME " is here (glmoe does not load "
                    "other *.safetensors files)");
    }
    if (!(s->files = calloc(1, sizeof *s->files))) {
        free(path);
        return fail(err, GLMOE_E_NOMEM, SINGLE_NAME, "out of memory");
    }
    glmoe_status st = st_file_open(&s->files[0], path, err);
    free(path);
    if (st != GLMOE_OK) return st;
    s->n_files = 1;
    st_file *f = s->files[0];
    if (!map_init(&s->map, st_file_count(f)) ||
        !(s->tensors = malloc((st_file_count(f) ? st_file_count(f) : 1) * sizeof *s->tensors)))
        return fail(err, GLMOE_E_NOMEM, SINGLE_NAME, "out of memory");
    for (size_t k = 0; k < st_file_count(f); k++) {
        const st_tensor *t = st_file_tensor(f, k);
        map_put(&s->map, t); /* names in one file are unique: the JSON rejects duplicates */
        s->tensors[s->count++] = t;
    }
    return GLMOE_OK;
}

glmoe_status st_set_open_dir(st_set **out, const char *dir, gm_err *err) {
    *out = NULL;
    st_set *s = calloc(1, sizeof *s);
    char *index_path = join_path(dir, INDEX_NAME);
    glmoe_status st;
    if (!s || !index_path) {
        st = gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", INDEX_NAME);
        goto done;
    }
    char *index = NULL;
    size_t index_len = 0;
    bool missing;
    st = gm_file_read(&index, &index_len, index_path, INDEX_MAX_BYTES, &missing, err);
    if (st != GLMOE_OK) gm_err_prefix(err, "%s: ", INDEX_NAME);
    else if (missing) st = open_single(s, dir, err);
    else st = open_with_index(s, dir, index, index_len, err);
    free(index);
done:
    free(index_path);
    if (st != GLMOE_OK) {
        st_set_close(s);
        return st;
    }
    *out = s;
    return GLMOE_OK;
}

void st_set_close(st_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_files; i++) st_file_close(s->files[i]);
    free(s->files);
    free(s->tensors);
    free(s->map.slots);
    free(s);
}

size_t st_set_count(const st_set *s) { return s ? s->count : 0; }

const st_tensor *st_set_tensor(const st_set *s, size_t i) {
    return s && i < s->count ? s->tensors[i] : NULL;
}

const st_tensor *st_set_find(const st_set *s, const char *name) {
    return s && name ? map_get(&s->map, name) : NULL;
}

size_t st_set_file_count(const st_set *s) { return s ? s->n_files : 0; }

const st_file *st_set_file(const st_set *s, size_t i) {
    return s && i < s->n_files ? s->files[i] : NULL;
}

uint64_t st_set_misaligned_bytes(const st_set *s) {
    uint64_t sum = 0;
    for (size_t i = 0; s && i < s->n_files; i++) sum += st_file_misaligned_bytes(s->files[i]);
    return sum;
}
