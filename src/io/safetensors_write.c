/* safetensors_write.c — a streaming safetensors writer (safetensors_write.h). */
#include "io/safetensors_write.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct st_writer {
    int fd;
    char *path;
    uint64_t total, written; /* data bytes declared, appended */
    char name[64];           /* the file's base name, for messages */
};

uint64_t st_decl_bytes(const st_decl *d) {
    uint64_t n = 1;
    for (int i = 0; i < d->rank; i++) n *= d->shape[i];
    return n * st_dtype_bits(d->dtype) / 8;
}

static glmoe_status write_all(st_writer *w, const void *p, size_t len, gm_err *err) {
    const char *b = p;
    while (len) {
        ssize_t k = write(w->fd, b, len);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0)
            return gm_fail(err, GLMOE_E_IO, "%s: cannot write: %s", w->name, k < 0 ? strerror(errno) : "no progress");
        b += k;
        len -= (size_t)k;
    }
    return GLMOE_OK;
}

void st_writer_abort(st_writer *w) {
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    unlink(w->path);
    free(w->path);
    free(w);
}

glmoe_status st_writer_open(st_writer **out, const char *path, const st_decl *decls, size_t n,
                            const char *const (*metadata)[2], size_t n_meta, gm_err *err) {
    *out = NULL;
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    /* The header, in declaration order (jansson keeps insertion order). */
    json_t *h = json_object();
    if (!h) return gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", base);
    if (n_meta) {
        json_t *m = json_object();
        for (size_t i = 0; m && i < n_meta; i++) json_object_set_new(m, metadata[i][0], json_string(metadata[i][1]));
        json_object_set_new(h, "__metadata__", m);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const st_decl *d = &decls[i];
        json_t *shape = json_array();
        for (int k = 0; k < d->rank; k++) json_array_append_new(shape, json_integer((json_int_t)d->shape[k]));
        const uint64_t b = st_decl_bytes(d);
        json_t *t = json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype_name(d->dtype), "shape", shape, "data_offsets",
                              (json_int_t)off, (json_int_t)(off + b));
        if (!t || json_object_get(h, d->name)) {
            json_decref(t);
            json_decref(h);
            return gm_fail(err, GLMOE_E_ARG, "%s: tensor \"%s\" declared twice or out of memory", base, d->name);
        }
        json_object_set_new(h, d->name, t);
        off += b;
    }
    char *text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!text) return gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory for the header", base);
    size_t len = strlen(text);
    const size_t padded = (len + 7) & ~(size_t)7;

    st_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        free(text);
        return gm_fail(err, GLMOE_E_NOMEM, "%s: out of memory", base);
    }
    snprintf(w->name, sizeof w->name, "%s", base);
    w->total = off;
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        glmoe_status s = gm_fail(err, GLMOE_E_IO, "%s: cannot create %s: %s", base, path, strerror(errno));
        free(w->path);
        free(w);
        free(text);
        return s;
    }
    uint8_t n8[8];
    for (int i = 0; i < 8; i++) n8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    glmoe_status s = write_all(w, n8, 8, err);
    if (!s) s = write_all(w, text, len, err);
    for (size_t i = len; !s && i < padded; i++) s = write_all(w, " ", 1, err);
    free(text);
    if (s) {
        st_writer_abort(w);
        return s;
    }
    *out = w;
    return GLMOE_OK;
}

glmoe_status st_writer_append(st_writer *w, const void *bytes, size_t len, gm_err *err) {
    if (len > w->total - w->written)
        return gm_fail(err, GLMOE_E_ARG, "%s: %zu bytes more than the %llu declared", w->name,
                       len - (size_t)(w->total - w->written), (unsigned long long)w->total);
    glmoe_status s = write_all(w, bytes, len, err);
    if (!s) w->written += len;
    return s;
}

glmoe_status st_writer_close(st_writer *w, gm_err *err) {
    if (!w) return GLMOE_OK;
    glmoe_status s = GLMOE_OK;
    if (w->written != w->total)
        s = gm_fail(err, GLMOE_E_ARG, "%s: %llu of %llu declared bytes were written", w->name,
                    (unsigned long long)w->written, (unsigned long long)w->total);
    if (!s && (fsync(w->fd) != 0 && errno != EINVAL))
        s = gm_fail(err, GLMOE_E_IO, "%s: cannot flush to disk: %s", w->name, strerror(errno));
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0 && !s) s = gm_fail(err, GLMOE_E_IO, "%s: cannot close: %s", w->name, strerror(errno));
    if (s) {
        st_writer_abort(w);
        return s;
    }
    free(w->path);
    free(w);
    return GLMOE_OK;
}
