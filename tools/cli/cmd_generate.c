/*
 * cmd_generate.c — `glmoe generate`: prefill a prompt, then sample token by token.
 *
 * The prompt is token ids (--ids) or text (-p, or -f FILE / stdin; encoded with the model's
 * tokenizer.json; with --chat it is first wrapped in the model's chat format as one user turn).
 * The output streams as text when the model has a tokenizer, else as ids; --print-ids always
 * prints the ids, space-separated, on one line. Timing goes to stderr. Generation stops at -n
 * tokens, at any eos id of the model (config.json and generation_config.json), before a --stop
 * string, or when the context is full.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char *const help =
    "usage: glmoe generate -m DIR (--ids 1,2,3 | -p TEXT | -f FILE) [options]\n"
    "\n"
    "Generates a continuation of the prompt. The text goes to stdout as it comes (with a newline at\n"
    "the end on a terminal; nothing is added when stdout is a file or a pipe); timing and the seed\n"
    "go to stderr.\n"
    "\n"
    "  --ids LIST          prompt as comma-separated token ids\n"
    "  -p, --prompt TEXT   prompt as text (encoded with DIR/tokenizer.json; special tokens such\n"
    "                      as <|user|> written in it are recognised)\n"
    "  -f, --file FILE     prompt as the text of FILE, or of stdin with -f - (at most 1 GiB)\n"
    "  --chat              wrap the prompt in the model's chat format as a user turn\n"
    "  --system TEXT       with --chat: a system message first\n"
    "  --no-think          with --chat: thinking off (GLM-4.5 appends /nothink)\n"
    "  --echo              print the prompt before the continuation (default: off, as mlx_lm.generate;\n"
    "                      llama-cli echoes)\n"
    "  -n, --max-tokens N  tokens to generate (default 64)\n"
    "  --stop TEXT         end the text before TEXT when it appears (repeatable, up to 16)\n"
    "  --temp T            temperature; 0 = greedy (default 0); also --temperature\n"
    "  --top-k K           keep the K most likely tokens (default off)\n"
    "  --top-p P           nucleus sampling mass (default off)\n"
    "  --min-p P           drop tokens below P x the top probability (default off)\n"
    "  --repeat-penalty R  penalise tokens already seen (default 1 = off)\n"
    "  -s, --seed S        RNG seed (default: a random one, printed with the stats)\n"
    "  --ignore-eos        do not stop at end-of-sequence tokens\n"
    "  --print-ids         print the generated ids, space-separated, on stdout (no text)\n";

/* The most --stop strings, and the longest: bounds the text held back while streaming. */
#define MAX_STOPS 16
#define MAX_STOP_BYTES 256

static bool has_tokenizer(const char *dir) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    return stat(path, &st) == 0;
}

/* --echo: the prompt as given (text), or its ids decoded (text output) or as they are (--print-ids). */
static bool print_prompt(const char *cmd, glmoe_tokenizer *tok, bool as_text, const char *prompt, const int32_t *ids,
                         size_t n) {
    if (!as_text) {
        for (size_t i = 0; i < n; i++) printf("%d ", ids[i]);
    } else if (prompt) {
        fputs(prompt, stdout);
    } else {
        size_t cap = 16 * n + 16, len = 0;
        char *text = malloc(cap);
        if (!text || glmoe_tokenizer_decode(tok, ids, n, true, text, cap, &len)) {
            cli_error(cmd, "--echo: cannot decode the prompt: %s", text ? glmoe_tokenizer_errmsg(tok) : "out of memory");
            free(text);
            return false;
        }
        fwrite(text, 1, len, stdout);
        free(text);
    }
    return true;
}

/* The rendered chat prompt for one user turn, or NULL after printing why. */
static char *chat_prompt(const char *cmd, const char *dir, const char *system, const char *user, bool think) {
    char *u = cli_json_string(user), *sys = system ? cli_json_string(system) : NULL, *msgs = NULL, *out = NULL;
    size_t n = strlen(u) + (sys ? strlen(sys) : 0) + 128, len;
    msgs = malloc(n);
    if (u && msgs && (!system || sys)) {
        if (sys)
            snprintf(msgs, n, "[{\"role\":\"system\",\"content\":%s},{\"role\":\"user\",\"content\":%s}]", sys, u);
        else
            snprintf(msgs, n, "[{\"role\":\"user\",\"content\":%s}]", u);
        glmoe_chat_params cp = glmoe_chat_params_default();
        if (!think) cp.enable_thinking = 0;
        char err[1024];
        if (glmoe_chat_style_detect(&cp.style, dir, err, sizeof err)) cli_error(cmd, "%s", err);
        else if (glmoe_chat_render(&out, &len, msgs, NULL, &cp, err, sizeof err))
            cli_error(cmd, "chat format: %s", err);
    }
    free(u);
    free(sys);
    free(msgs);
    return out;
}

int cmd_generate(int argc, char **argv) {
    const char *cmd = "generate";
    cli_model_opts mo = {.n_draft = -1};
    cli_sampling sp = {.params = glmoe_sampler_params_default()};
    const char *ids_text = NULL, *prompt = NULL, *prompt_file = NULL, *system = NULL, *stops[MAX_STOPS];
    cli_gen_opts go = {.n_gen = 64, .stops = stops};
    bool chat = false, think = true, echo = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r == 0) r = cli_sampling_opt(cmd, argc, argv, &i, &sp);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_help(help, true);
        if (!strcmp(a, "--print-ids")) { go.print_ids = true; continue; }
        if (!strcmp(a, "--ignore-eos")) { go.ignore_eos = true; continue; }
        if (!strcmp(a, "--chat")) { chat = true; continue; }
        if (!strcmp(a, "--no-think")) { think = false; continue; }
        if (!strcmp(a, "--echo")) { echo = true; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return cli_bad_option(cmd, a, help, true);
        if (!strcmp(a, "--ids")) ids_text = v;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) prompt_file = v;
        else if (!strcmp(a, "--system")) system = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
            if (!cli_parse_int(cmd, a, v, 0, 1 << 30, &go.n_gen)) return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--stop")) {
            if (go.n_stops == MAX_STOPS || !*v || strlen(v) > MAX_STOP_BYTES) {
                cli_error(cmd, "--stop: %s", !*v ? "an empty stop string"
                          : go.n_stops == MAX_STOPS ? "more than 16 stop strings"
                                                    : "a stop string longer than 256 bytes");
                return CLI_EXIT_USAGE;
            }
            stops[go.n_stops++] = v;
        } else return cli_bad_option(cmd, a, help, true);
        i++;
    }
    if ((prompt != NULL) + (ids_text != NULL) + (prompt_file != NULL) != 1) {
        cli_error(cmd, "give the prompt as exactly one of --ids 1,2,3, -p TEXT or -f FILE");
        return CLI_EXIT_USAGE;
    }
    if (chat && ids_text) {
        cli_error(cmd, "--chat needs the prompt as text (-p or -f)");
        return CLI_EXIT_USAGE;
    }
    if (go.n_stops && go.print_ids) {
        cli_error(cmd, "--stop works on the text; it cannot be used with --print-ids");
        return CLI_EXIT_USAGE;
    }
    if (!mo.model_dir) {
        cli_error(cmd, "no model: give -m DIR");
        return CLI_EXIT_USAGE;
    }
    int rc = CLI_EXIT_FAIL;
    int32_t *ids = NULL;
    size_t n_ids = 0, file_len = 0;
    char *rendered = NULL, *file_text = NULL, err[512];
    glmoe_model *model = NULL;
    glmoe_context *ctx = NULL;
    glmoe_sampler *sampler = NULL;
    glmoe_tokenizer *tok = NULL;
    glmoe_tokenizer_stream *stream = NULL;
    cli_gen_result res = {0};

    if (ids_text && !cli_parse_ids(cmd, ids_text, &ids, &n_ids)) return CLI_EXIT_USAGE;
    if (prompt_file) {
        if (!cli_read_file(cmd, prompt_file, &file_text, &file_len)) goto done;
        if (memchr(file_text, '\0', file_len)) {
            cli_error(cmd, "%s: a NUL byte at byte %zu (a prompt cannot hold one)",
                      strcmp(prompt_file, "-") ? prompt_file : "stdin",
                      (size_t)((char *)memchr(file_text, '\0', file_len) - file_text));
            goto done;
        }
        prompt = file_text;
    }
    if (prompt || (!go.print_ids && has_tokenizer(mo.model_dir))) {
        if (!cli_load_tokenizer(cmd, mo.model_dir, &tok)) goto done;
        if (glmoe_tokenizer_stream_create(&stream, tok, true)) {
            cli_error(cmd, "out of memory");
            goto done;
        }
    }
    if (prompt) {
        const char *text = prompt;
        if (chat && !(text = rendered = chat_prompt(cmd, mo.model_dir, system, prompt, think))) goto done;
        if (!cli_encode(cmd, tok, text, strlen(text), GLMOE_TOKENIZE_PARSE_SPECIAL, &ids, &n_ids)) goto done;
        if (n_ids == 0) {
            cli_error(cmd, "the prompt encodes to no tokens");
            goto done;
        }
    }

    double t0 = cli_now();
    if (!cli_open(cmd, &mo, &model, &ctx)) goto done;
    go.n_draft = mo.n_draft;
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    fprintf(stderr, "glmoe: loaded %s in %.2f s (%s, %.1fM params, peak RSS %.1f MB)\n", mo.model_dir,
            cli_now() - t0, info.backend, (double)info.n_params / 1e6, (double)cli_peak_rss() / 1e6);
    cli_sampling_seed(&sp);
    if (glmoe_sampler_create(&sampler, &sp.params, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    glmoe_sampler_accept(sampler, ids, n_ids);
    if (echo && !print_prompt(cmd, tok, stream && !go.print_ids, prompt, ids, n_ids)) goto done;

    double t1 = cli_now();
    if (glmoe_context_eval(ctx, ids, n_ids, GLMOE_LOGITS_LAST)) {
        cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
        goto done;
    }
    double t_prefill = cli_now() - t1;
    int st = cli_generate(cmd, ctx, sampler, &info, stream, &go, &res);
    if (st) {
        rc = st;
        goto done;
    }
    /* ids are a line; text gets its newline only on a terminal (where the stats line would
     * otherwise follow it on the same line): in a file or a pipe it stays the model's text. */
    if (go.print_ids || !stream || (isatty(STDOUT_FILENO) && res.n_text && res.last_byte != '\n')) printf("\n");
    char drafts[160], seed[48] = "";
    if (sp.params.temperature > 0) snprintf(seed, sizeof seed, "; seed: %llu", (unsigned long long)sp.params.seed);
    fprintf(stderr,
            "glmoe: prompt %zu tokens in %.3f s (%.1f tok/s); generated %ld tokens in %.3f s (%.1f tok/s); stop: %s%s%s\n",
            n_ids, t_prefill, (double)n_ids / t_prefill, res.n, res.seconds,
            res.n > 1 ? (double)(res.n - 1) / res.seconds : 0.0, res.stop, cli_draft_stats(&res, drafts, sizeof drafts),
            seed);
    rc = 0;
done:
    free(res.ids);
    glmoe_tokenizer_stream_free(stream);
    glmoe_tokenizer_free(tok);
    glmoe_sampler_free(sampler);
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    free(rendered);
    glmoe_free(file_text);
    free(ids);
    return rc;
}
