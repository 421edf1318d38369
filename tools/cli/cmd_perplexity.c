/*
 * cmd_perplexity.c — `glmoe perplexity`: teacher-forced perplexity of a text file.
 *
 * The file is encoded whole (special tokens written in it are not recognised), cut into
 * non-overlapping windows of --ctx tokens from token 0 (the last may be shorter; one of a single
 * token predicts nothing and is dropped), and each window is evaluated on its own from position 0.
 * Every token of a window but the first is predicted:
 *     perplexity = exp(Σ -log p(token | window prefix) / number of predicted tokens),
 * with log-softmax in double. This is the definition tools/train_demo/train.py uses in PyTorch.
 * As llama-perplexity, each window prints the value so far, and the final value comes with its
 * standard error: that of the mean NLL (the spread of the per-token NLLs over sqrt(n - 1)),
 * carried to the perplexity by its derivative, se(ppl) = ppl x se(mean NLL). On a terminal stderr
 * shows the progress (window, tokens/s, time left).
 * The last line of stdout is "perplexity: X +/- E".
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/short_path.h"

static const char *const help =
    "usage: glmoe perplexity -m DIR -f FILE [--ctx N] [options]\n"
    "\n"
    "Teacher-forced perplexity of FILE (-f - reads stdin; encoded with DIR/tokenizer.json) in\n"
    "non-overlapping windows of --ctx tokens. Each window prints the perplexity so far\n"
    "(\"[3/40] 26.1234\"); the last line of stdout is \"perplexity: X +/- E\", E its standard error\n"
    "(as llama-perplexity). On a terminal stderr shows the progress.\n"
    "\n"
    "  -f, --file FILE     the text\n";

static const char *const ctx_help =
    "  -c, --ctx N         window length in tokens (default 512, at most the model's\n"
    "                      max_position_embeddings); also --ctx-size\n";

/* One line of progress on a terminal's stderr, rewritten in place. */
static void progress(size_t done, size_t total, size_t tokens, double secs) {
    double rate = secs > 0 ? (double)tokens / secs : 0;
    double left = done ? secs * (double)(total - done) / (double)done : 0;
    fprintf(stderr, "\rglmoe: window %zu/%zu, %.0f tok/s, %.0f s left\033[K", done, total, rate, left);
    fflush(stderr);
}

int cmd_perplexity(int argc, char **argv) {
    const char *cmd = "perplexity", *file = NULL;
    cli_model_opts mo = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_help_ctx(help, ctx_help);
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
    const size_t n_windows = (n_ids - 1 + W - 1) / W; /* every window that predicts something */
    const bool show_progress = isatty(STDERR_FILENO);
    double nll = 0, nll2 = 0, t0 = cli_now();
    size_t predicted = 0, window = 0;
    for (size_t start = 0; start + 1 < n_ids; start += W) {
        size_t n = n_ids - start < W ? n_ids - start : W;
        glmoe_context_reset(ctx);
        if (glmoe_context_eval(ctx, ids + start, n, GLMOE_LOGITS_ALL)) {
            if (show_progress) fputs("\n", stderr);
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
            double x = mx + log(sum) - (double)row[ids[start + t + 1]];
            nll += x;
            nll2 += x * x;
            predicted++;
        }
        window++;
        printf("[%zu/%zu] %.4f\n", window, n_windows, exp(nll / (double)predicted));
        if (!cli_stdout_ok()) {
            if (show_progress) fputs("\n", stderr);
            rc = cli_stdout_failed(cmd);
            goto done;
        }
        if (show_progress) progress(window, n_windows, start + n, cli_now() - t0);
    }
    if (show_progress) fputs("\r\033[K", stderr);
    double secs = cli_now() - t0, mean = nll / (double)predicted;
    /* the standard error of the mean NLL; 0 for a single prediction, which has no spread */
    double var = nll2 / (double)predicted - mean * mean;
    double se = predicted > 1 && var > 0 ? sqrt(var / (double)(predicted - 1)) : 0;
    fprintf(stderr, "glmoe: %zu tokens in windows of %zu, %zu predicted, %.2f s (%.1f tok/s)\n", n_ids, W, predicted,
            secs, (double)n_ids / secs);
    printf("nll: %.6f over %zu tokens (mean %.6f +/- %.6f)\n", nll, predicted, mean, se);
    printf("perplexity: %.4f +/- %.4f\n", exp(mean), exp(mean) * se);
    rc = 0;
done:
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    glmoe_tokenizer_free(tok);
    free(ids);
    glmoe_free(text);
    return rc;
}
