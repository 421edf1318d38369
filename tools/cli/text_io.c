/* text_io.c — reading files whole and loading tokenizers for the CLI. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

bool cli_read_file(const char *cmd, const char *path, char **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        cli_error(cmd, "%s: cannot open: %s", path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        cli_error(cmd, "%s: not a regular file", path);
        return false;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf || fread(buf, 1, n, f) != n) {
        fclose(f);
        free(buf);
        cli_error(cmd, "%s: cannot read %zu bytes", path, n);
        return false;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return true;
}

bool cli_load_tokenizer(const char *cmd, const char *path, glmoe_tokenizer **tok) {
    char err[1024];
    if (glmoe_tokenizer_load(tok, path, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        return false;
    }
    return true;
}

bool cli_encode(const char *cmd, glmoe_tokenizer *tok, const char *text, size_t len, unsigned flags,
                int32_t **ids, size_t *n) {
    size_t cap = len + 16;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) {
        cli_error(cmd, "out of memory for %zu ids", cap);
        return false;
    }
    glmoe_status s = glmoe_tokenizer_encode(tok, text, len, flags, v, cap, n);
    if (s == GLMOE_E_ARG && *n > cap) { /* a post-processor added more than 16 ids */
        int32_t *w = realloc(v, *n * sizeof *v);
        if (w) {
            v = w;
            cap = *n;
            s = glmoe_tokenizer_encode(tok, text, len, flags, v, cap, n);
        }
    }
    if (s) {
        cli_error(cmd, "%s", glmoe_tokenizer_errmsg(tok));
        free(v);
        return false;
    }
    *ids = v;
    return true;
}
