/*
 * cmd_tokenize.c — `glmoe tokenize` and `glmoe detokenize`: text to ids and back with a model's
 * tokenizer, as Hugging Face tokenizers does it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const tokenize_help =
    "usage: glmoe tokenize -t PATH (--text T | --text-file F) [--no-special]\n"
    "\n"
    "Encodes text and prints the ids space-separated on one line. PATH is a tokenizer.json or a\n"
    "model directory. The file's bytes are encoded exactly as they are (no newline stripping).\n"
    "Special tokens written in the text (\"<|user|>\") are recognised unless --no-special.\n";

static const char *const detokenize_help =
    "usage: glmoe detokenize -t PATH --ids 1,2,3 [--skip-special]\n"
    "\n"
    "Decodes ids to text and prints it (no newline is added).\n";

int cmd_tokenize(int argc, char **argv) {
    const char *cmd = "tokenize", *path = NULL, *text = NULL, *file = NULL;
    unsigned flags = GLMOE_TOKENIZE_PARSE_SPECIAL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(tokenize_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--no-special")) { flags &= ~(unsigned)GLMOE_TOKENIZE_PARSE_SPECIAL; continue; }
        if (i + 1 >= argc || (strcmp(a, "-t") && strcmp(a, "--text") && strcmp(a, "--text-file"))) {
            cli_error(cmd, "unknown option or missing value: %s (see glmoe tokenize --help)", a);
            return CLI_EXIT_USAGE;
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
    for (size_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
    printf("\n");
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
            cli_error(cmd, "unknown option or missing value: %s (see glmoe detokenize --help)", a);
            return CLI_EXIT_USAGE;
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
    rc = 0;
done:
    free(text);
    free(ids);
    glmoe_tokenizer_free(tok);
    return rc;
}
