/* text_io.c — reading text files (through the library's one file path) and loading tokenizers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>

#include "cli.h"

/* Reads stdin to its end, at most CLI_TEXT_MAX_BYTES (more is refused, not cut). It waits for the
 * writer as long as it writes: a terminal's user ends the text with Ctrl-D. */
static bool read_stdin(const char *cmd, char **out, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (!buf) {
            cli_error(cmd, "stdin: out of memory");
            return false;
        }
        if (n == cap) {
            if (cap > CLI_TEXT_MAX_BYTES) {
                free(buf);
                cli_error(cmd, "stdin: more than %zu bytes (the most glmoe reads)", (size_t)CLI_TEXT_MAX_BYTES);
                return false;
            }
            cap *= 2;
            char *b = realloc(buf, cap + 1);
            if (!b) free(buf);
            buf = b;
            continue;
        }
        ssize_t got = read(STDIN_FILENO, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            cli_error(cmd, "stdin: cannot read: %s", strerror(errno));
            free(buf);
            return false;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return true;
}

bool cli_read_file(const char *cmd, const char *path, char **out, size_t *len) {
    if (!strcmp(path, "-")) return read_stdin(cmd, out, len);
    char err[1024];
    if (glmoe_file_read(out, len, path, CLI_TEXT_MAX_BYTES, err, sizeof err) == GLMOE_OK) return true;
    cli_error(cmd, "%s", err);
    return false;
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
