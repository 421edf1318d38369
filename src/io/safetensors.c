/*
 * safetensors.c — validates one safetensors file and gives read-only access to its tensors.
 *
 * Layout (docs/spec/safetensors.md §1): an 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON, then the data buffer. st_file_parse() checks, in the order of the Rust reference
 * reader (huggingface/safetensors tensor.rs, spec §3), so that a file breaking several rules gets
 * the same diagnosis as there:
 *   1. length >= 8;  2. N <= 100,000,000;  3. N fits the file;  4. the header is UTF-8;
 *   5. it is a JSON object of tensor entries (+ optional __metadata__, string values only);
 *   6-8. sorted by (begin, end), the ranges chain from 0 with no hole or overlap, and each range
 *   is exactly numel * bits / 8 bytes (products checked for overflow);
 *   9. the chain ends exactly at the end of the file.
 * Then glmoe's own engine limits (spec §6.2), reported as such: rank <= 8, each dimension < 2^48,
 * product of the non-zero dimensions < 2^48, name length <= 4096. The tensor count (<= 1,000,000)
 * is checked as soon as the JSON is parsed, so that no table is sized from a hostile count.
 * JSON goes through jansson, which is stricter than the reference on purpose: it rejects
 * duplicate keys (a parser differential otherwise, spec §2) and \u0000.
 *
 * st_file_parse() touches no file system, so the libFuzzer target (tests/fuzz/fuzz_safetensors.c)
 * can call it on arbitrary bytes. st_file_open() adds open + fstat + mmap around it.
 *
 * Not here: reading tensor values (callers memcpy from st_tensor.data), sharded checkpoints
 * (safetensors_index.c). Tested by tests/unit/test_safetensors.c, which builds every hostile
 * case of spec §8.
 */
#include "io/safetensors.h"
#include "io/file.h"
#include "util/quote.h"
#include "util/short_path.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util/log.h"

#define ST_MAX_HEADER 100000000ull   /* reference limit on N (inclusive)               */
#define ST_MAX_TENSORS 1000000u      /* engine limit                                    */
#define ST_MAX_NAME 4096u            /* engine limit on a tensor name, in bytes         */
#define ST_DIM_LIMIT (1ull << 48)    /* engine limit: dims and non-zero products below  */

static const char k_hint[] = "is this a Git LFS pointer or not a safetensors file?";

static const struct {
    const char *name;
    unsigned bits;
} k_dtypes[ST_DTYPE_COUNT] = {
    [ST_BOOL] = {"BOOL", 8},
    [ST_U8] = {"U8", 8},
    [ST_I8] = {"I8", 8},
    [ST_F8_E4M3] = {"F8_E4M3", 8},
    [ST_F8_E5M2] = {"F8_E5M2", 8},
    [ST_F8_E8M0] = {"F8_E8M0", 8},
    [ST_F8_E4M3FNUZ] = {"F8_E4M3FNUZ", 8},
    [ST_F8_E5M2FNUZ] = {"F8_E5M2FNUZ", 8},
    [ST_I16] = {"I16", 16},
    [ST_U16] = {"U16", 16},
    [ST_F16] = {"F16", 16},
    [ST_BF16] = {"BF16", 16},
    [ST_I32] = {"I32", 32},
    [ST_U32] = {"U32", 32},
    [ST_F32] = {"F32", 32},
    [ST_I64] = {"I64", 64},
    [ST_U64] = {"U64", 64},
    [ST_F64] = {"F64", 64},
    [ST_C64] = {"C64", 64},
    [ST_F4] = {"F4", 4},
    [ST_F6_E2M3] = {"F6_E2M3", 6},
    [ST_F6_E3M2] = {"F6_E3M2", 6},
};

const char *st_dtype_name(st_dtype dt) {
    return (unsigned)dt < ST_DTYPE_COUNT ? k_dtypes[dt].name : "?";
}

unsigned st_dtype_bits(st_dtype dt) {
    return (unsigned)dt < ST_DTYPE_COUNT ? k_dtypes[dt].bits : 0;
}

struct st_file {
    char *name;              /* base name, for messages and st_file_name()                 */
    const uint8_t *buf;      /* the whole file: the caller's buffer or our mapping         */
    size_t len;
    void *map;               /* non-NULL when we own a mapping of map_len bytes            */
    size_t map_len;
    uint64_t header_len;     /* N                                                          */
    st_tensor *tensors;      /* sorted by offset                                           */
    size_t count;
    char *names;             /* one block holding every tensor name                        */
    uint32_t *slots;         /* open-addressing table: tensor index + 1, 0 = empty         */
    size_t n_slots;          /* power of two, > 2 * count; 0 when count == 0               */
    uint64_t misaligned;
};

/* ---- messages -------------------------------------------------------------------------- */

/* Every message starts with "<file>: ". */
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

/* "[128, 4096]", at most ST_MAX_RANK dimensions shown. Entries are already known to be
 * non-negative integers. */
static const char *shape_str(char *out, size_t cap, const json_t *shape) {
    size_t n = json_array_size(shape), o = 0;
    o += (size_t)snprintf(out, cap, "[");
    for (size_t i = 0; i < n && o < cap; i++) {
        if (i == ST_MAX_RANK) {
            o += (size_t)snprintf(out + o, cap - o, ", ... (%zu dims)", n);
            break;
        }
        o += (size_t)snprintf(out + o, cap - o, "%s%" JSON_INTEGER_FORMAT, i ? ", " : "",
                              json_integer_value(json_array_get(shape, i)));
    }
    if (o < cap) snprintf(out + o, cap - o, "]");
    return out;
}

/* ---- small checks ------------------------------------------------------------------------ */

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Strict UTF-8 (as Rust's str::from_utf8): no overlong forms, no surrogates, <= U+10FFFF.
 * Returns the offset of the first bad byte, or len when all is well. */
static size_t utf8_bad_offset(const uint8_t *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
        if (c < 0x80) { i++; continue; }
        if (c >= 0xc2 && c <= 0xdf) n = 1;
        else if (c == 0xe0) { n = 2; lo = 0xa0; }
        else if (c == 0xed) { n = 2; hi = 0x9f; }       /* no UTF-16 surrogates */
        else if (c >= 0xe1 && c <= 0xef) n = 2;
        else if (c == 0xf0) { n = 3; lo = 0x90; }
        else if (c >= 0xf1 && c <= 0xf3) n = 3;
        else if (c == 0xf4) { n = 3; hi = 0x8f; }       /* nothing above U+10FFFF */
        else return i;
        if (len - i <= n) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80) return i;
        i += n + 1;
    }
    return len;
}

static bool dtype_from_name(const char *s, st_dtype *out) {
    for (int d = 0; d < ST_DTYPE_COUNT; d++) {
        if (strcmp(s, k_dtypes[d].name) == 0) {
            *out = (st_dtype)d;
            return true;
        }
    }
    return false;
}

/* A JSON value usable as a shape entry or an offset: an integer literal >= 0. jansson keeps
 * 2.0 and 1e3 as reals, and refuses integers >= 2^63 while parsing. */
static bool is_uint(const json_t *v) {
    return json_is_integer(v) && json_integer_value(v) >= 0;
}

static const char *json_kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* ---- the name table -------------------------------------------------------------------- */

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static glmoe_status build_table(st_file *f, gm_err *err) {
    if (f->count == 0) return GLMOE_OK;
    size_t n = 16;
    while (n < 2 * f->count) n *= 2; /* count <= 1e6: no overflow */
    f->slots = calloc(n, sizeof *f->slots);
    if (!f->slots) return fail(err, GLMOE_E_NOMEM, f->name, "out of memory for the name table");
    f->n_slots = n;
    for (size_t i = 0; i < f->count; i++) {
        size_t s = (size_t)hash_name(f->tensors[i].name) & (n - 1);
        while (f->slots[s]) s = (s + 1) & (n - 1);
        f->slots[s] = (uint32_t)(i + 1);
    }
    return GLMOE_OK;
}

const st_tensor *st_file_find(const st_file *f, const char *name) {
    if (!f || !name || f->n_slots == 0) return NULL;
    size_t mask = f->n_slots - 1;
    for (size_t s = (size_t)hash_name(name) & mask; f->slots[s]; s = (s + 1) & mask) {
        const st_tensor *t = &f->tensors[f->slots[s] - 1];
        if (strcmp(t->name, name) == 0) return t;
    }
    return NULL;
}

/* ---- parsing --------------------------------------------------------------------------- */

/* One tensor entry while the JSON tree is alive. */
typedef struct entry {
    const char *name;     /* key in the JSON tree */
    const json_t *shape;  /* array of integers >= 0 */
    st_dtype dtype;
    uint64_t begin, end;  /* relative to the data buffer */
} entry;

static int entry_cmp(const void *a, const void *b) {
    const entry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name); /* a total order: messages do not depend on qsort */
}

/* Step 5 for one tensor entry: the types, as serde would decode them. */
static glmoe_status decode_entry(entry *e, const char *key, const json_t *v, const char *file,
                                 const char **unknown_field, gm_err *err) {
    char q[200];
    e->name = key;
    if (!json_is_object(v))
        return fail(err, GLMOE_E_FORMAT, file, "tensor \"%s\": entry is %s, expected an object",
                    gm_quote(q, sizeof q, key), json_kind(v));
    const json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape"),
                 *off = json_object_get(v, "data_offsets");
    const char *missing = !dt ? "dtype" : !shape ? "shape" : !off ? "data_offsets" : NULL;
    if (missing)
        return fail(err, GLMOE_E_FORMAT, file, "tensor \"%s\": missing field \"%s\"",
                    gm_quote(q, sizeof q, key), missing);
    if (!json_is_string(dt))
        return fail(err, GLMOE_E_FORMAT, file, "tensor \"%s\": dtype is %s, expected a string",
                    gm_quote(q, sizeof q, key), json_kind(dt));
    if (!dtype_from_name(json_string_value(dt), &e->dtype)) {
        char qd[64];
        return fail(err, GLMOE_E_FORMAT, file,
                    "tensor \"%s\": unknown dtype \"%s\" (names are case-sensitive, e.g. BF16)",
                    gm_quote(q, sizeof q, key), gm_quote(qd, sizeof qd, json_string_value(dt)));
    }
    if (!json_is_array(shape))
        return fail(err, GLMOE_E_FORMAT, file, "tensor \"%s\": shape is %s, expected an array",
                    gm_quote(q, sizeof q, key), json_kind(shape));
    for (size_t i = 0; i < json_array_size(shape); i++) {
        const json_t *d = json_array_get(shape, i);
        if (!is_uint(d))
            return fail(err, GLMOE_E_FORMAT, file,
                        "tensor \"%s\": shape[%zu] is %s, expected an integer >= 0",
                        gm_quote(q, sizeof q, key), i,
                        json_is_integer(d) ? "negative" : json_kind(d));
    }
    e->shape = shape;
    if (!json_is_array(off) || json_array_size(off) != 2 || !is_uint(json_array_get(off, 0)) ||
        !is_uint(json_array_get(off, 1)))
        return fail(err, GLMOE_E_FORMAT, file,
                    "tensor \"%s\": data_offsets must be [begin, end], two integers >= 0",
                    gm_quote(q, sizeof q, key));
    e->begin = (uint64_t)json_integer_value(json_array_get(off, 0));
    e->end = (uint64_t)json_integer_value(json_array_get(off, 1));
    if (!*unknown_field) {
        const char *k;
        const json_t *unused;
        json_object_foreach((json_t *)v, k, unused) {
            (void)unused;
            if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets")) {
                *unknown_field = k;
                break;
            }
        }
    }
    return GLMOE_OK;
}

static glmoe_status check_metadata(const json_t *md, const char *file, gm_err *err) {
    if (json_is_null(md)) return GLMOE_OK; /* MLX writes null when given no metadata */
    if (!json_is_object(md))
        return fail(err, GLMOE_E_FORMAT, file, "__metadata__ is %s, expected an object of strings",
                    json_kind(md));
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)md, k, v) {
        if (!json_is_string(v)) {
            char q[200];
            return fail(err, GLMOE_E_FORMAT, file,
                        "__metadata__ \"%s\" is %s; metadata values must be strings",
                        gm_quote(q, sizeof q, k), json_kind(v));
        }
    }
    return GLMOE_OK;
}

/* Steps 6-8: the sorted ranges chain from 0 and each matches its shape and dtype.
 * On success *data_end is where the chain stops. */
static glmoe_status walk(entry *es, size_t n, const char *file, uint64_t *data_end, gm_err *err) {
    uint64_t expected = 0;
    const entry *prev = NULL;
    char q[200], q2[200], sh[256];
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        if (e->end < e->begin)
            return fail(err, GLMOE_E_FORMAT, file,
                        "tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "]: end is before begin",
                        gm_quote(q, sizeof q, e->name), e->begin, e->end);
        if (e->begin > expected)
            return fail(err, GLMOE_E_FORMAT, file,
                        "tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] leave a hole: "
                        "the data before it ends at %" PRIu64,
                        gm_quote(q, sizeof q, e->name), e->begin, e->end, expected);
        if (e->begin < expected)
            return fail(err, GLMOE_E_FORMAT, file,
                        "tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] overlap tensor "
                        "\"%s\", which ends at %" PRIu64,
                        gm_quote(q, sizeof q, e->name), e->begin, e->end,
                        gm_quote(q2, sizeof q2, prev->name), expected);
        /* Left to right with overflow checks, exactly as the reference: [0, 2^32, 2^32] passes
         * here (the engine limits catch it), [2^32, 2^32, 0] does not. */
        uint64_t numel = 1, nbits;
        bool overflow = false;
        for (size_t d = 0; d < json_array_size(e->shape) && !overflow; d++)
            overflow = __builtin_mul_overflow(
                numel, (uint64_t)json_integer_value(json_array_get(e->shape, d)), &numel);
        unsigned bits = k_dtypes[e->dtype].bits;
        if (overflow || __builtin_mul_overflow(numel, (uint64_t)bits, &nbits))
            return fail(err, GLMOE_E_FORMAT, file,
                        "tensor \"%s\": %s %s: the %s count overflows 64 bits",
                        gm_quote(q, sizeof q, e->name), k_dtypes[e->dtype].name,
                        shape_str(sh, sizeof sh, e->shape), overflow ? "element" : "bit");
        if (nbits % 8)
            return fail(err, GLMOE_E_FORMAT, file,
                        "tensor \"%s\": %s %s is %" PRIu64 " bits, not a whole number of bytes",
                        gm_quote(q, sizeof q, e->name), k_dtypes[e->dtype].name,
                        shape_str(sh, sizeof sh, e->shape), nbits);
        if (e->end - e->begin != nbits / 8)
            return fail(err, GLMOE_E_FORMAT, file,
                        "tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] but %s %s needs "
                        "%" PRIu64 " bytes",
                        gm_quote(q, sizeof q, e->name), e->begin, e->end, k_dtypes[e->dtype].name,
                        shape_str(sh, sizeof sh, e->shape), nbits / 8);
        expected = e->end;
        prev = e;
    }
    *data_end = expected;
    return GLMOE_OK;
}

/* glmoe's limits beyond the reference, so that strides and counts computed later from an
 * accepted shape can never overflow, even for empty tensors. */
static glmoe_status engine_limits(const entry *es, size_t n, const char *file, gm_err *err) {
    char q[200], sh[256];
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        size_t len = strlen(e->name), rank = json_array_size(e->shape);
        if (len > ST_MAX_NAME)
            return fail(err, GLMOE_E_FORMAT, file,
                        "tensor \"%s\": name is %zu bytes, over glmoe's engine limit of %u",
                        gm_quote(q, sizeof q, e->name), len, ST_MAX_NAME);
        if (rank > ST_MAX_RANK)
            return fail(err, GLMOE_E_FORMAT, file,
                        "tensor \"%s\": rank %zu is over glmoe's engine limit of %d",
                        gm_quote(q, sizeof q, e->name), rank, ST_MAX_RANK);
        uint64_t prod = 1;
        for (size_t d = 0; d < rank; d++) {
            uint64_t dim = (uint64_t)json_integer_value(json_array_get(e->shape, d));
            if (dim >= ST_DIM_LIMIT)
                return fail(err, GLMOE_E_FORMAT, file,
                            "tensor \"%s\": shape %s: dimension %zu is %" PRIu64
                            ", over glmoe's engine limit of 2^48",
                            gm_quote(q, sizeof q, e->name), shape_str(sh, sizeof sh, e->shape), d,
                            dim);
            if (dim && (__builtin_mul_overflow(prod, dim, &prod) || prod >= ST_DIM_LIMIT))
                return fail(err, GLMOE_E_FORMAT, file,
                            "tensor \"%s\": shape %s: the product of its non-zero dimensions "
                            "reaches glmoe's engine limit of 2^48",
                            gm_quote(q, sizeof q, e->name), shape_str(sh, sizeof sh, e->shape));
        }
    }
    return GLMOE_OK;
}

/* Turns validated entries into the public tensors: names copied, data pointers set. */
static glmoe_status fill_tensors(st_file *f, const entry *es, size_t n, gm_err *err) {
    size_t pool = 0;
    for (size_t i = 0; i < n; i++)
        if (__builtin_add_overflow(pool, strlen(es[i].name) + 1, &pool))
            return fail(err, GLMOE_E_NOMEM, f->name, "tensor names too large");
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    f->names = malloc(pool ? pool : 1);
    if (!f->tensors || !f->names)
        return fail(err, GLMOE_E_NOMEM, f->name, "out of memory for %zu tensor entries", n);
    f->count = n;
    const uint64_t data_start = 8 + f->header_len;
    char *dst = f->names;
    for (size_t i = 0; i < n; i++) {
        const entry *e = &es[i];
        st_tensor *t = &f->tensors[i];
        size_t len = strlen(e->name);
        memcpy(dst, e->name, len + 1);
        t->name = dst;
        dst += len + 1;
        t->dtype = e->dtype;
        t->rank = (int)json_array_size(e->shape);
        t->numel = 1;
        for (int d = 0; d < t->rank; d++) {
            t->shape[d] = (uint64_t)json_integer_value(json_array_get(e->shape, (size_t)d));
            t->numel *= t->shape[d]; /* cannot overflow: checked by walk() */
        }
        t->nbytes = e->end - e->begin;
        t->offset = data_start + e->begin; /* <= len: checked by the coverage rule */
        t->data = t->nbytes ? f->buf + t->offset : NULL;
        unsigned elem = k_dtypes[e->dtype].bits >= 8 ? k_dtypes[e->dtype].bits / 8 : 1;
        t->aligned = !t->data || (uintptr_t)t->data % elem == 0;
        if (!t->aligned) f->misaligned += t->nbytes;
        t->file = f;
    }
    return GLMOE_OK;
}

glmoe_status st_file_parse(st_file **out, const uint8_t *buf, size_t len, const char *name,
                           gm_err *err) {
    *out = NULL;
    const char *slash = name ? strrchr(name, '/') : NULL;
    const char *base = slash ? slash + 1 : name ? name : "<memory>";
    glmoe_status st = GLMOE_OK;
    json_t *root = NULL;
    entry *es = NULL;
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->name = strdup(base))) {
        st = fail(err, GLMOE_E_NOMEM, base, "out of memory");
        goto done;
    }
    f->buf = buf;
    f->len = len;

    /* 1-3: the length prefix, checked before anything is sized from it. */
    if (len < 8) {
        st = fail(err, GLMOE_E_FORMAT, base,
                  "file is %zu bytes, too short for the 8-byte header length (%s)", len, k_hint);
        goto done;
    }
    const uint64_t n = read_le64(buf);
    const bool lfs = len >= 7 && memcmp(buf, "version", 7) == 0;
    if (n > ST_MAX_HEADER) {
        st = fail(err, GLMOE_E_FORMAT, base,
                  "header length %" PRIu64 " is over the limit of %llu bytes (%s%s)", n,
                  ST_MAX_HEADER, k_hint, lfs ? " It starts with \"version\", like a Git LFS pointer" : "");
        goto done;
    }
    if (n > len - 8) { /* not 8 + n > len: that sum is where other readers wrapped */
        st = fail(err, GLMOE_E_FORMAT, base,
                  "header length %" PRIu64 " but only %zu bytes follow the 8-byte prefix "
                  "(truncated file? %s)",
                  n, len - 8, k_hint);
        goto done;
    }
    f->header_len = n;
    const uint8_t *header = buf + 8;
    const uint64_t data_len = len - 8 - n;

    /* 4: the reference decodes all N bytes as UTF-8, padding included. */
    size_t bad = utf8_bad_offset(header, (size_t)n);
    if (bad < n) {
        st = fail(err, GLMOE_E_FORMAT, base,
                  "header byte %zu (0x%02x) is not valid UTF-8 (%s)", bad, header[bad], k_hint);
        goto done;
    }
    if (n == 0) {
        st = fail(err, GLMOE_E_FORMAT, base, "empty header (length 0): expected a JSON object");
        goto done;
    }

    /* 5: the JSON itself. jansson bounds nesting depth (2048), so deep input cannot exhaust
     * the stack, and rejects trailing non-whitespace. */
    json_error_t jerr;
    root = json_loadb((const char *)header, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char text[4 * JSON_ERROR_TEXT_LENGTH];
        st = fail(err, GLMOE_E_FORMAT, base, "header is not valid JSON: %s at byte %d",
                  gm_escape_controls(text, sizeof text, jerr.text), jerr.position);
        goto done;
    }
    if (!json_is_object(root)) {
        st = fail(err, GLMOE_E_FORMAT, base, "header is %s, expected a JSON object",
                  json_kind(root));
        goto done;
    }
    const json_t *md = json_object_get(root, "__metadata__");
    size_t n_tensors = json_object_size(root) - (md ? 1 : 0);
    if (n_tensors > ST_MAX_TENSORS) {
        st = fail(err, GLMOE_E_FORMAT, base,
                  "%zu tensors, over glmoe's engine limit of %u", n_tensors, ST_MAX_TENSORS);
        goto done;
    }
    if (md && (st = check_metadata(md, base, err)) != GLMOE_OK) goto done;
    es = calloc(n_tensors ? n_tensors : 1, sizeof *es);
    if (!es) {
        st = fail(err, GLMOE_E_NOMEM, base, "out of memory for %zu tensor entries", n_tensors);
        goto done;
    }
    size_t k = 0;
    const char *key, *unknown_field = NULL, *unknown_in = NULL;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) continue;
        const char *before = unknown_field;
        if ((st = decode_entry(&es[k], key, val, base, &unknown_field, err)) != GLMOE_OK) goto done;
        if (!before && unknown_field) unknown_in = key;
        k++;
    }

    /* 6-9 */
    uint64_t data_end = 0;
    qsort(es, n_tensors, sizeof *es, entry_cmp);
    if ((st = walk(es, n_tensors, base, &data_end, err)) != GLMOE_OK) goto done;
    if (data_end != data_len) {
        char q[200];
        if (data_end > data_len)
            st = fail(err, GLMOE_E_FORMAT, base,
                      "tensor \"%s\" ends at data byte %" PRIu64 " but the file has only %" PRIu64
                      " data bytes after the header (truncated file?)",
                      gm_quote(q, sizeof q, es[n_tensors - 1].name), data_end, data_len);
        else
            st = fail(err, GLMOE_E_FORMAT, base,
                      "%" PRIu64 " trailing bytes: the tensors cover %" PRIu64
                      " of the %" PRIu64 " data bytes after the header",
                      data_len - data_end, data_end, data_len);
        goto done;
    }
    if ((st = engine_limits(es, n_tensors, base, err)) != GLMOE_OK) goto done;

    if ((st = fill_tensors(f, es, n_tensors, err)) != GLMOE_OK) goto done;
    if ((st = build_table(f, err)) != GLMOE_OK) goto done;
    if (unknown_field) {
        char q[200], q2[64];
        gm_warn("%s: tensor \"%s\": unknown field \"%s\" ignored (there may be others)", base,
                gm_quote(q, sizeof q, unknown_in), gm_quote(q2, sizeof q2, unknown_field));
    }
    if (f->misaligned)
        gm_warn("%s: %" PRIu64 " bytes of tensor data are not aligned to their element size "
                "and will be copied to be read",
                base, f->misaligned);

done:
    free(es);
    json_decref(root); /* names were copied by fill_tensors */
    if (st != GLMOE_OK) {
        st_file_close(f);
        return st;
    }
    *out = f;
    return GLMOE_OK;
}

/* ---- files ----------------------------------------------------------------------------- */

glmoe_status st_file_open(st_file **out, const char *path, gm_err *err) {
    *out = NULL;
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    int fd;
    uint64_t size;
    glmoe_status opened = gm_file_open(&fd, &size, path, NULL, err);
    if (opened != GLMOE_OK) {
        gm_err_prefix(err, "%s: ", base);
        return opened;
    }
    char shown[GM_SHORT_PATH_MAX];
    if (size > SIZE_MAX) {
        close(fd);
        return fail(err, GLMOE_E_IO, base, "%s: size %llu cannot be mapped", gm_short_path(shown, sizeof shown, path),
                    (unsigned long long)size);
    }
    size_t len = (size_t)size;
    void *map = NULL;
    if (len > 0) { /* mmap of 0 bytes fails; an empty file is a format error below */
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return fail(err, GLMOE_E_IO, base, "cannot map %s (%zu bytes): %s",
                        gm_short_path(shown, sizeof shown, path), len, strerror(e));
        }
    }
    /* The mapping holds its own reference to the file: the descriptor is not needed. */
    close(fd);
    static const uint8_t empty[1];
    glmoe_status st = st_file_parse(out, map ? map : empty, len, base, err);
    if (st != GLMOE_OK) {
        if (map) munmap(map, len);
        return st;
    }
    (*out)->map = map;
    (*out)->map_len = len;
    return GLMOE_OK;
}

void st_file_close(st_file *f) {
    if (!f) return;
    if (f->map) munmap(f->map, f->map_len);
    free(f->slots);
    free(f->names);
    free(f->tensors);
    free(f->name);
    free(f);
}

const char *st_file_name(const st_file *f) { return f ? f->name : NULL; }
size_t st_file_count(const st_file *f) { return f ? f->count : 0; }
uint64_t st_file_size(const st_file *f) { return f ? f->len : 0; }
uint64_t st_file_misaligned_bytes(const st_file *f) { return f ? f->misaligned : 0; }

const st_tensor *st_file_tensor(const st_file *f, size_t i) {
    return f && i < f->count ? &f->tensors[i] : NULL;
}
