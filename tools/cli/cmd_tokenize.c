/*
 * cmd_tokenize.c — `glmoe tokenize` and `glmoe detokenize`: text to ids and back with a model's
 * tokenizer, as Hugging Face tokenizers does it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char *const tokenize_help =
    "usage: glmoe tokenize -t PATH (--text T | --text-file F) [--no-special] [--pieces]\n"
    "\n"
    "Encodes text and prints the ids space-separated on one line. PATH is a tokenizer.json or a\n"
    "model directory. The file's bytes are encoded exactly as they are (no newline stripping);\n"
    "--text-file - reads stdin. Special tokens written in the text (\"<|user|>\") are recognised\n"
    "unless --no-special.\n"
    "  --pieces            one token per line, its id and its text, as llama-tokenize: 464 -> 'The'\n";

static const char *const detokenize_help =
    "usage: glmoe detokenize -t PATH --ids 1,2,3 [--skip-special]\n"
    "\n"
    "Decodes ids to text and prints it (a newline is added only when stdout is a terminal).\n";

/* The text of one token, as decoding it alone gives it (a piece of a UTF-8 character comes out
 * as U+FFFD, as in HF), into out, control bytes written \n, \t, \r or \xNN so that each token
 * stays on its line; "" when it cannot be decoded. */
static const char *piece(glmoe_tokenizer *tok, int32_t id, char *out, size_t cap) {
    char raw[256];
    size_t len = 0, n = 0;
    if (glmoe_tokenizer_decode(tok, &id, 1, false, raw, sizeof raw, &len) || len > sizeof raw) len = 0;
    for (size_t i = 0; i < len && n + 5 < cap; i++) {
        unsigned char c = (unsigned char)raw[i];
        if (c == '\n') n += (size_t)snprintf(out + n, cap - n, "\\n");
        else if (c == '\t') n += (size_t)snprintf(out + n, cap - n, "\\t");
        else if (c == '\r') n += (size_t)snprintf(out + n, cap - n, "\\r");
        else if (c < 0x20 || c == 0x7f) n += (size_t)snprintf(out + n, cap - n, "\\x%02x", c);
        else out[n++] = (char)c;
    }
    out[n] = '\0';
    return out;
}

int cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize", *path = NULL, *text = NULL, *file = NULL;
    unsigned flags = GLMOE_TOKENIZE_PARSE_SPECIAL;
    bool pieces = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(tokenize_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--no-special")) { flags &= ~(unsigned)GLMOE_TOKENIZE_PARSE_SPECIAL; continue; }
        if (!strcmp(a, "--pieces")) { pieces = true; continue; }
        if (i + 1 >= argc || (strcmp(a, "-t") && strcmp(a, "--text") && strcmp(a, "--text-file"))) {
            return cli_bad_option(cmd, a, tokenize_help, false);
        }
        const char *v = argv[++i];
        if (!strcmp(a, "-t")) path = v;
        else if (!strcmp(a, "--text")) text = v;
        else file = v;
    }
    if (!path || (!text == !file)) {
        cli_error(cmd, "needs -t PATH and exactly one of --text or --text-file");
        return CLI_EXIT_USAGE;
    }
    char *buf = NULL;
    size_t len = 0;
    if (file) {
        if (!cli_read_file(cmd, file, &buf, &len)) return CLI_EXIT_FAIL;
    } else {
        len = strlen(text);
    }
    int rc = CLI_EXIT_FAIL;
    glmoe_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t n = 0;
    if (!cli_load_tokenizer(cmd, path, &tok)) goto done;
    if (!cli_encode(cmd, tok, file ? buf : text, len, flags, &ids, &n)) goto done;
    if (pieces) {
        char text_of[1024];
        for (size_t i = 0; i < n && cli_stdout_ok(); i++) printf("%6d -> '%s'\n", ids[i], piece(tok, ids[i], text_of, sizeof text_of));
    } else {
        for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    rc = 0;
done:
    free(ids);
    glmoe_free(buf);
    glmoe_tokenizer_free(tok);
    return rc;
}

int cmd_detokenize(int argc, char **argv) {
    const char *cmd = "detokenize", *path = NULL, *ids_text = NULL;
    bool skip_special = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(detokenize_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--skip-special")) { skip_special = true; continue; }
        if (i + 1 >= argc || (strcmp(a, "-t") && strcmp(a, "--ids"))) {
            return cli_bad_option(cmd, a, detokenize_help, false);
        }
        if (!strcmp(a, "-t")) path = argv[++i];
        else ids_text = argv[++i];
    }
    if (!path || !ids_text) {
        cli_error(cmd, "needs -t PATH and --ids");
        return CLI_EXIT_USAGE;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (!cli_parse_ids(cmd, ids_text, &ids, &n)) return CLI_EXIT_USAGE;
    int rc = CLI_EXIT_FAIL;
    glmoe_tokenizer *tok = NULL;
    char *text = NULL;
    if (!cli_load_tokenizer(cmd, path, &tok)) goto done;
    size_t len = 0, cap = 16 * n + 16;
    for (int attempt = 0; attempt < 2; attempt++) {
        free(text);
        text = malloc(cap);
        glmoe_status s = glmoe_tokenizer_decode(tok, ids, n, skip_special, text, cap, &len);
        if (s == GLMOE_OK) break;
        if (s != GLMOE_E_ARG || len < cap) {
            cli_error(cmd, "%s", glmoe_tokenizer_errmsg(tok));
            goto done;
        }
        cap = len + 1;
    }
    fwrite(text, 1, len, stdout);
    /* On a terminal the shell's prompt would follow the text on its line; a pipe gets the text as
     * it is (detokenize after tokenize gives the bytes back). */
    if (isatty(STDOUT_FILENO) && len && text[len - 1] != '\n') putchar('\n');
    rc = 0;
done:
    free(text);
    free(ids);
    glmoe_tokenizer_free(tok);
    return rc;
}
