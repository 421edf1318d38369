/* file.c — opening and reading input files without blocking (see file.h). */
#include "io/file.h"
#include "util/short_path.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* What a file that is not a regular file is, for the message. */
static const char *file_kind(mode_t mode) {
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a plain file";
}

glmoe_status gm_file_open(int *fd, uint64_t *size, const char *path, bool *missing, gm_err *err) {
    *fd = -1;
    *size = 0;
    if (missing) *missing = false;
    if (!path) return gm_fail(err, GLMOE_E_ARG, "no file name given");
    char shown[GM_SHORT_PATH_MAX]; /* the path as messages show it */
    /* O_NONBLOCK: a FIFO is refused below, not waited on in open() until a writer appears. */
    int f = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f < 0) {
        int e = errno;
        if (missing && e == ENOENT) {
            *missing = true;
            return GLMOE_OK;
        }
        return gm_fail(err, GLMOE_E_IO, "%s: cannot open: %s", gm_short_path(shown, sizeof shown, path), strerror(e));
    }
    struct stat sb;
    if (fstat(f, &sb) != 0) {
        int e = errno;
        close(f);
        return gm_fail(err, GLMOE_E_IO, "%s: cannot stat: %s", gm_short_path(shown, sizeof shown, path), strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(f);
        return gm_fail(err, GLMOE_E_IO, "%s: not a regular file (%s)", gm_short_path(shown, sizeof shown, path),
                       file_kind(sb.st_mode));
    }
    *fd = f;
    *size = sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
    return GLMOE_OK;
}

glmoe_status gm_file_read(char **data, size_t *len, const char *path, size_t max_bytes, bool *missing,
                          gm_err *err) {
    *data = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    glmoe_status st = gm_file_open(&fd, &size, path, missing, err);
    if (st != GLMOE_OK || fd < 0) return st;
    char shown[GM_SHORT_PATH_MAX];
    gm_short_path(shown, sizeof shown, path);
    if (max_bytes > SIZE_MAX - 2) max_bytes = SIZE_MAX - 2;
    if (size > max_bytes) {
        close(fd);
        return gm_fail(err, GLMOE_E_FORMAT, "%s: %llu bytes, larger than the %zu allowed", shown,
                       (unsigned long long)size, max_bytes);
    }
    /* Sized from fstat, but read to the end of the file: it may have grown, and /proc's files
     * say 0. One byte more than the cap is room to notice a file over it. */
    size_t cap = (size_t)size + 1, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return gm_fail(err, GLMOE_E_NOMEM, "%s: cannot allocate %zu bytes", shown, cap + 1);
    }
    for (;;) {
        if (n == cap) {
            if (n > max_bytes) {
                st = gm_fail(err, GLMOE_E_FORMAT, "%s: larger than the %zu bytes allowed", shown, max_bytes);
                break;
            }
            size_t grown = cap < max_bytes / 2 ? 2 * cap : max_bytes + 1;
            char *p = realloc(buf, grown + 1);
            if (!p) {
                st = gm_fail(err, GLMOE_E_NOMEM, "%s: cannot allocate %zu bytes", shown, grown + 1);
                break;
            }
            buf = p;
            cap = grown;
        }
        ssize_t r = read(fd, buf + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            st = gm_fail(err, GLMOE_E_IO, "%s: cannot read: %s", shown, strerror(errno));
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (st != GLMOE_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return GLMOE_OK;
}

/* ---- the public entry point (include/glmoe.h) ---------------------------------------------- */

glmoe_status glmoe_file_read(char **out, size_t *out_len, const char *path, size_t max_bytes, char *err,
                             size_t err_size) {
    gm_err e = {0};
    glmoe_status st;
    if (!out || !out_len || !path)
        st = gm_fail(&e, GLMOE_E_ARG, "glmoe_file_read: NULL %s", !out ? "out" : !out_len ? "out_len" : "path");
    else
        st = gm_file_read(out, out_len, path, max_bytes, NULL, &e);
    if (err && err_size) snprintf(err, err_size, "%s", st ? e.msg : "");
    return st;
}
