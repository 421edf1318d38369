/*
 * tok_buf.h — the two growable arrays the tokenizer hands around: bytes (text) and token ids.
 *
 * Both are plain structs the caller owns: zero-initialise one ({0}), let the tokenizer append to
 * it, read .p / .ids and .n, and release it with the matching *_free. Appends grow the capacity
 * geometrically, so a buffer that is reused across calls stops allocating once it is large enough
 * (the encoder's hot loop never calls malloc per token).
 *
 * Tested through every tokenizer test (tests/unit/test_tokenizer*.c).
 */
#ifndef GLMOE_TOKENIZER_TOK_BUF_H
#define GLMOE_TOKENIZER_TOK_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct gm_tok_bytes {
    char *p;    /* not NUL-terminated unless gm_tok_bytes_cstr was called */
    size_t n;   /* bytes used                                            */
    size_t cap; /* bytes allocated                                       */
} gm_tok_bytes;

typedef struct gm_tok_ids {
    int32_t *ids;
    size_t n;
    size_t cap;
} gm_tok_ids;

/* Makes room for `extra` more elements of size `elem`. Returns false when out of memory or when
 * the size would overflow; the buffer is unchanged then. */
static inline bool gm_tok_grow(void **p, size_t *cap, size_t n, size_t extra, size_t elem) {
    if (extra <= *cap - n) return true;
    if (extra > (SIZE_MAX / elem) - n) return false;
    size_t want = n + extra, c = *cap ? *cap : 16;
    while (c < want) c = c > SIZE_MAX / 2 / elem ? want : c * 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

static inline bool gm_tok_bytes_reserve(gm_tok_bytes *b, size_t extra) {
    return gm_tok_grow((void **)&b->p, &b->cap, b->n, extra, 1);
}

static inline bool gm_tok_bytes_append(gm_tok_bytes *b, const void *s, size_t n) {
    if (!gm_tok_bytes_reserve(b, n)) return false;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

/* Writes a NUL after the last byte (not counted in n) so .p can be used as a C string. */
static inline bool gm_tok_bytes_cstr(gm_tok_bytes *b) {
    if (!gm_tok_bytes_reserve(b, 1)) return false;
    b->p[b->n] = '\0';
    return true;
}

static inline void gm_tok_bytes_free(gm_tok_bytes *b) {
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

static inline bool gm_tok_ids_reserve(gm_tok_ids *v, size_t extra) {
    return gm_tok_grow((void **)&v->ids, &v->cap, v->n, extra, sizeof(int32_t));
}

static inline bool gm_tok_ids_push(gm_tok_ids *v, int32_t id) {
    if (v->n == v->cap && !gm_tok_ids_reserve(v, 1)) return false;
    v->ids[v->n++] = id;
    return true;
}

static inline void gm_tok_ids_free(gm_tok_ids *v) {
    free(v->ids);
    v->ids = NULL;
    v->n = v->cap = 0;
}

#endif
