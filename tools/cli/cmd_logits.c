/*
 * cmd_logits.c — `glmoe logits`: one teacher-forced forward over the ids; writes float32
 * little-endian logits of shape [n_ids, vocab], row-major, to a file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const help =
    "usage: glmoe logits -m DIR --ids 1,2,3 -o FILE [options]\n"
    "\n"
    "Runs the ids through the model (teacher forcing) and writes the logits of every position\n"
    "to FILE as float32 little-endian, shape [n_ids, vocab], row-major.\n"
    "\n";

int cmd_logits(int argc, char **argv) {
    const char *cmd = "logits";
    cli_model_opts mo = {0};
    const char *ids_text = NULL, *out_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_help(help, true);
        if (i + 1 >= argc || (strcmp(a, "--ids") && strcmp(a, "-o"))) return cli_bad_option(cmd, a, help, true);
        if (!strcmp(a, "--ids")) ids_text = argv[++i];
        else out_path = argv[++i];
    }
    if (!ids_text || !out_path) {
        cli_error(cmd, "needs --ids and -o FILE");
        return CLI_EXIT_USAGE;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (!cli_parse_ids(cmd, ids_text, &ids, &n)) return CLI_EXIT_USAGE;
    int rc = CLI_EXIT_FAIL;
    glmoe_model *model = NULL;
    glmoe_context *ctx = NULL;
    char err[1024];
    /* The output first: a path that cannot be written is found before the model is loaded. */
    FILE *f = cli_output_open(out_path, err, sizeof err);
    if (!f) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    if (!cli_open(cmd, &mo, &model, &ctx)) goto done;
    if (glmoe_context_eval(ctx, ids, n, GLMOE_LOGITS_ALL)) {
        cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
        goto done;
    }
    const float *logits;
    size_t rows;
    glmoe_context_logits(ctx, &logits, &rows);
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    /* x86-64 and aarch64 are little-endian: the floats are written as they lie in memory. */
    size_t count = rows * (size_t)info.vocab_size;
    fwrite(logits, sizeof(float), count, f); /* a short write leaves ferror set: the close reports it */
    bool written = cli_output_close(f, out_path, err, sizeof err);
    f = NULL;
    if (!written) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    fprintf(stderr, "glmoe: wrote %zu x %d logits to %s\n", rows, info.vocab_size, out_path);
    rc = 0;
done:
    if (f) fclose(f);
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    free(ids);
    return rc;
}
