/*
 * cmd_generate.c — `glmoe generate`: prefill a prompt, then sample token by token.
 *
 * Token ids go to stdout as they are produced (with --print-ids, space-separated, one line);
 * timing goes to stderr. Generation stops at -n tokens, at any eos id of the model (config.json and
 * generation_config.json), or when the context is full.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const help =
    "usage: glmoe generate -m DIR (--ids 1,2,3 | -p TEXT) [options]\n"
    "\n"
    "Generates a continuation of the prompt.\n"
    "\n"
    "  --ids LIST          prompt as comma-separated token ids\n"
    "  -p, --prompt TEXT   prompt as text (needs the tokenizer; not available yet)\n"
    "  -n N                tokens to generate (default 64)\n"
    "  --temp T            temperature; 0 = greedy (default 0)\n"
    "  --top-k K           keep the K most likely tokens (default off)\n"
    "  --top-p P           nucleus sampling mass (default off)\n"
    "  --min-p P           drop tokens below P x the top probability (default off)\n"
    "  --repeat-penalty R  penalise tokens already seen (default 1 = off)\n"
    "  --seed S            RNG seed (default 0)\n"
    "  --ignore-eos        do not stop at end-of-sequence tokens\n"
    "  --print-ids         print the generated ids, space-separated, on stdout\n";

int cmd_generate(int argc, char **argv) {
    const char *cmd = "generate";
    cli_model_opts mo = {0};
    glmoe_sampler_params sp = glmoe_sampler_params_default();
    const char *ids_text = NULL, *prompt = NULL;
    long n_gen = 64;
    bool print_ids = false, ignore_eos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            fputs(cli_model_opts_help, stdout);
            return 0;
        }
        if (!strcmp(a, "--print-ids")) { print_ids = true; continue; }
        if (!strcmp(a, "--ignore-eos")) { ignore_eos = true; continue; }
        if (i + 1 >= argc) {
            cli_error(cmd, "%s needs a value (or is unknown; see glmoe generate --help)", a);
            return CLI_EXIT_USAGE;
        }
        const char *v = argv[++i];
        double d;
        long l;
        uint64_t u;
        if (!strcmp(a, "--ids")) ids_text = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "-n")) { if (!cli_parse_int(cmd, a, v, 0, 1 << 30, &n_gen)) return CLI_EXIT_USAGE; }
        else if (!strcmp(a, "--temp")) { if (!cli_parse_float(cmd, a, v, 0, 1e6, &d)) return CLI_EXIT_USAGE; sp.temperature = (float)d; }
        else if (!strcmp(a, "--top-k")) { if (!cli_parse_int(cmd, a, v, 0, 1 << 30, &l)) return CLI_EXIT_USAGE; sp.top_k = (int32_t)l; }
        else if (!strcmp(a, "--top-p")) { if (!cli_parse_float(cmd, a, v, 0, 1, &d)) return CLI_EXIT_USAGE; sp.top_p = (float)d; }
        else if (!strcmp(a, "--min-p")) { if (!cli_parse_float(cmd, a, v, 0, 1, &d)) return CLI_EXIT_USAGE; sp.min_p = (float)d; }
        else if (!strcmp(a, "--repeat-penalty")) { if (!cli_parse_float(cmd, a, v, 1e-3, 1e3, &d)) return CLI_EXIT_USAGE; sp.repetition_penalty = (float)d; }
        else if (!strcmp(a, "--seed")) { if (!cli_parse_u64(cmd, a, v, &u)) return CLI_EXIT_USAGE; sp.seed = u; }
        else {
            cli_error(cmd, "unknown option %s (see glmoe generate --help)", a);
            return CLI_EXIT_USAGE;
        }
    }
    if (prompt) {
        cli_error(cmd, "-p needs the tokenizer, which this build does not have yet; give the prompt as --ids");
        return CLI_EXIT_USAGE;
    }
    if (!ids_text) {
        cli_error(cmd, "no prompt: give --ids 1,2,3");
        return CLI_EXIT_USAGE;
    }
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!cli_parse_ids(cmd, ids_text, &ids, &n_ids)) return CLI_EXIT_USAGE;

    int rc = CLI_EXIT_FAIL;
    glmoe_model *model = NULL;
    glmoe_context *ctx = NULL;
    glmoe_sampler *sampler = NULL;
    char err[512];
    double t0 = cli_now();
    if (!cli_open(cmd, &mo, &model, &ctx)) goto done;
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    double t_load = cli_now() - t0;
    fprintf(stderr, "glmoe: loaded %s in %.2f s (%s, %.1fM params, peak RSS %.1f MB)\n", mo.model_dir, t_load,
            info.backend, (double)info.n_params / 1e6, (double)cli_peak_rss() / 1e6);
    if (glmoe_sampler_create(&sampler, &sp, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    glmoe_sampler_accept(sampler, ids, n_ids);

    double t1 = cli_now();
    glmoe_status s = glmoe_context_eval(ctx, ids, n_ids, GLMOE_LOGITS_LAST);
    if (s) {
        cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
        goto done;
    }
    double t_prefill = cli_now() - t1;

    double t2 = cli_now();
    long produced = 0;
    const char *stop = "token limit";
    for (; produced < n_gen; produced++) {
        const float *logits;
        size_t rows;
        int32_t tok;
        glmoe_context_logits(ctx, &logits, &rows);
        if ((s = glmoe_sampler_sample(sampler, logits, info.vocab_size, &tok))) {
            cli_error(cmd, "sampling failed: %s", glmoe_status_str(s));
            goto done;
        }
        printf(print_ids ? "%s%d" : "%s%d", produced ? " " : "", tok);
        fflush(stdout);
        bool is_eos = false;
        for (int j = 0; j < info.n_eos_ids; j++) is_eos |= tok == info.eos_ids[j];
        if (is_eos && !ignore_eos) {
            produced++;
            stop = "end of sequence";
            break;
        }
        if (produced + 1 == n_gen) { produced++; break; }
        if (glmoe_context_n_past(ctx) >= glmoe_context_n_ctx(ctx)) {
            produced++;
            stop = "context full";
            break;
        }
        if ((s = glmoe_context_eval(ctx, &tok, 1, GLMOE_LOGITS_LAST))) {
            cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
            goto done;
        }
    }
    printf("\n");
    double t_decode = cli_now() - t2;
    fprintf(stderr,
            "glmoe: prompt %zu tokens in %.3f s (%.1f tok/s); generated %ld tokens in %.3f s (%.1f tok/s); stop: %s\n",
            n_ids, t_prefill, (double)n_ids / t_prefill, produced, t_decode,
            produced > 1 ? (double)(produced - 1) / t_decode : 0.0, stop);
    rc = 0;
done:
    glmoe_sampler_free(sampler);
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    free(ids);
    return rc;
}
