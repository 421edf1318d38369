/*
 * cmd_perplexity.c — `glmoe perplexity`: teacher-forced perplexity of a text file.
 *
 * The file is encoded whole (special tokens written in it are not recognised), cut into
 * non-overlapping windows of --ctx tokens from token 0 (the last may be shorter; one of a single
 * token predicts nothing and is dropped), and each window is evaluated on its own from position 0.
 * Every token of a window but the first is predicted:
 *     perplexity = exp(Σ -log p(token | window prefix) / number of predicted tokens),
 * with log-softmax in double. This is the definition tools/train_demo/train.py uses in PyTorch.
 * The last line of stdout is "perplexity: X".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/short_path.h"

static const char *const help =
    "usage: glmoe perplexity -m DIR -f FILE [--ctx N] [options]\n"
    "\n"
    "Teacher-forced perplexity of FILE (encoded with DIR/tokenizer.json) in non-overlapping\n"
    "windows of N tokens (default 512, at most the model's max_position_embeddings).\n"
    "The last line of stdout is \"perplexity: X\".\n"
    "\n";

int cmd_perplexity(int argc, char **argv) {
    const char *cmd = "perplexity", *file = NULL;
    cli_model_opts mo = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_help(help, true);
        if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && i + 1 < argc) {
            file = argv[++i];
            continue;
        }
        return cli_bad_option(cmd, a, help, true);
    }
    if (!mo.model_dir || !file) {
        cli_error(cmd, "needs -m DIR and -f FILE");
        return CLI_EXIT_USAGE;
    }
    if (mo.n_ctx == 0) mo.n_ctx = 512;
    int rc = CLI_EXIT_FAIL;
    char *text = NULL;
    size_t len = 0, n_ids = 0;
    int32_t *ids = NULL;
    glmoe_tokenizer *tok = NULL;
    glmoe_model *model = NULL;
    glmoe_context *ctx = NULL;
    if (!cli_read_file(cmd, file, &text, &len)) goto done;
    if (!cli_load_tokenizer(cmd, mo.model_dir, &tok)) goto done;
    if (!cli_encode(cmd, tok, text, len, 0, &ids, &n_ids)) goto done;
    if (n_ids < 2) {
        char shown[GM_SHORT_PATH_MAX];
        cli_error(cmd, "%s: %zu tokens; perplexity needs at least 2", gm_short_path(shown, sizeof shown, file), n_ids);
        goto done;
    }
    if (!cli_open(cmd, &mo, &model, &ctx)) goto done;
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    const size_t W = glmoe_context_n_ctx(ctx), V = (size_t)info.vocab_size;
    double nll = 0, t0 = cli_now();
    size_t predicted = 0;
    for (size_t start = 0; start + 1 < n_ids; start += W) {
        size_t n = n_ids - start < W ? n_ids - start : W;
        glmoe_context_reset(ctx);
        if (glmoe_context_eval(ctx, ids + start, n, GLMOE_LOGITS_ALL)) {
            cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
            goto done;
        }
        const float *logits;
        size_t rows;
        glmoe_context_logits(ctx, &logits, &rows);
        for (size_t t = 0; t + 1 < n; t++) {
            const float *row = logits + t * V;
            double mx = row[0], sum = 0;
            for (size_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
            for (size_t v = 0; v < V; v++) sum += exp((double)row[v] - mx);
            nll += mx + log(sum) - (double)row[ids[start + t + 1]];
            predicted++;
        }
    }
    double secs = cli_now() - t0;
    fprintf(stderr, "glmoe: %zu tokens in windows of %zu, %zu predicted, %.2f s (%.1f tok/s)\n", n_ids, W, predicted,
            secs, (double)n_ids / secs);
    printf("nll: %.6f over %zu tokens\n", nll, predicted);
    printf("perplexity: %.4f\n", exp(nll / (double)predicted));
    rc = 0;
done:
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    glmoe_tokenizer_free(tok);
    free(ids);
    glmoe_free(text);
    return rc;
}
