/* text_io.c — reading text files (through the library's one file path) and loading tokenizers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool cli_read_file(const char *cmd, const char *path, char **out, size_t *len) {
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
