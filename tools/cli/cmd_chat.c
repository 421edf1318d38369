/*
 * cmd_chat.c — `glmoe chat`: an interactive multi-turn conversation in the model's chat format.
 *
 * Each turn re-renders the whole conversation with the official template (earlier reasoning is
 * dropped as the template does), encodes it, and evaluates only what differs from the tokens
 * already in the KV cache (glmoe_context_truncate keeps the common prefix); with --verbose each
 * turn says on stderr how many prompt tokens were reused from the cache and how many evaluated.
 * Replies stream as text; speed goes to stderr after each reply.
 * Commands: /think (toggle thinking), /reset (forget the conversation), /quit.
 * A line that cannot be a message (ill-formed UTF-8, a NUL byte) is refused with one line that
 * names it and the byte, and the session goes on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char *const help =
    "usage: glmoe chat -m DIR [options]\n"
    "\n"
    "Chats with the model on the terminal (one line per message; end with Ctrl-D or /quit).\n"
    "\n"
    "  --system TEXT       a system message\n"
    "  --no-think          start with thinking off (toggle with /think)\n"
    "  -n N                most tokens per reply (default 512)\n"
    "  --temp T, --top-k K, --top-p P, --min-p P, --repeat-penalty R, --seed S  as for generate\n"
    "                      (default: temperature 0.7, top-p 0.9)\n"
    "\n"
    "Commands: /think toggles thinking, /reset starts over, /quit leaves.\n"
    "\n";

typedef struct chat_state {
    char *messages;      /* JSON array text, without the closing bracket */
    size_t len, cap;
    int32_t *cache;      /* the ids in the KV cache */
    size_t n_cache, cap_cache;
} chat_state;

static bool append(chat_state *c, const char *role, const char *content) {
    char *q = cli_json_string(content);
    if (!q) return false;
    size_t need = c->len + strlen(q) + strlen(role) + 64;
    if (need > c->cap) {
        char *p = realloc(c->messages, need * 2);
        if (!p) { free(q); return false; }
        c->messages = p;
        c->cap = need * 2;
    }
    c->len += (size_t)sprintf(c->messages + c->len, "%s{\"role\":\"%s\",\"content\":%s}", c->len > 1 ? "," : "",
                              role, q);
    free(q);
    return true;
}

/* Whether a line of input can be sent as a message; if not, says why on stderr (with the line
 * number and the byte offset) and the session goes on. A NUL byte cannot be carried by the chat
 * format's JSON (glmoe refuses \u0000); ill-formed UTF-8 is found by the tokenizer's own check,
 * the one the prompt will meet. */
static bool line_is_sendable(const char *cmd, glmoe_tokenizer *tok, const char *line, size_t len, long line_no) {
    const char *nul = memchr(line, '\0', len);
    if (nul) {
        cli_error(cmd, "input line %ld: a NUL byte at byte %zu (a message cannot hold one); not sent", line_no,
                  (size_t)(nul - line));
        return false;
    }
    size_t n = 0;
    int32_t *ids = malloc((len + 16) * sizeof *ids); /* len + 16 ids always suffice (glmoe.h) */
    if (!ids) {
        cli_error(cmd, "input line %ld: out of memory; not sent", line_no);
        return false;
    }
    bool ok = glmoe_tokenizer_encode(tok, line, len, 0, ids, len + 16, &n) == GLMOE_OK;
    if (!ok) cli_error(cmd, "input line %ld: %s; not sent", line_no, glmoe_tokenizer_errmsg(tok));
    free(ids);
    return ok;
}

static bool cache_push(chat_state *c, const int32_t *ids, size_t n) {
    if (c->n_cache + n > c->cap_cache) {
        size_t cap = (c->n_cache + n) * 2;
        int32_t *p = realloc(c->cache, cap * sizeof *p);
        if (!p) return false;
        c->cache = p;
        c->cap_cache = cap;
    }
    memcpy(c->cache + c->n_cache, ids, n * sizeof *ids);
    c->n_cache += n;
    return true;
}

int cmd_chat(int argc, char **argv) {
    const char *cmd = "chat", *system = NULL;
    cli_model_opts mo = {.n_draft = -1};
    cli_sampling sp = {.params = glmoe_sampler_params_default()};
    sp.params.temperature = 0.7f;
    sp.params.top_p = 0.9f;
    cli_gen_opts go = {.n_gen = 512};
    bool think = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r == 0) r = cli_sampling_opt(cmd, argc, argv, &i, &sp);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_help(help, true);
        if (!strcmp(a, "--no-think")) { think = false; continue; }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return cli_bad_option(cmd, a, help, true);
        if (!strcmp(a, "--system")) system = v;
        else if (!strcmp(a, "-n") || !strcmp(a, "--max-tokens")) {
            if (!cli_parse_int(cmd, a, v, 1, 1 << 30, &go.n_gen)) return CLI_EXIT_USAGE;
        } else return cli_bad_option(cmd, a, help, true);
        i++;
    }
    if (!mo.model_dir) {
        cli_error(cmd, "no model: give -m DIR");
        return CLI_EXIT_USAGE;
    }
    int rc = CLI_EXIT_FAIL;
    glmoe_model *model = NULL;
    glmoe_context *ctx = NULL;
    glmoe_tokenizer *tok = NULL;
    glmoe_tokenizer_stream *stream = NULL;
    glmoe_sampler *sampler = NULL;
    chat_state c = {0};
    char *line = NULL, err[1024];
    size_t line_cap = 0;
    long line_no = 0; /* of the input, for messages about a line */
    long turn = 0;    /* of the conversation since the last /reset */
    glmoe_chat_params cp = glmoe_chat_params_default();
    if (glmoe_chat_style_detect(&cp.style, mo.model_dir, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    if (!cli_load_tokenizer(cmd, mo.model_dir, &tok)) goto done;
    if (glmoe_tokenizer_stream_create(&stream, tok, true)) goto done;
    if (!cli_open(cmd, &mo, &model, &ctx)) goto done;
    go.n_draft = mo.n_draft;
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    cli_sampling_seed(&sp);
    if (glmoe_sampler_create(&sampler, &sp.params, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        goto done;
    }
reset:
    turn = 0;
    c.len = 0;
    c.n_cache = 0;
    glmoe_context_reset(ctx);
    glmoe_sampler_reset(sampler);
    if (!c.messages && !(c.messages = malloc(c.cap = 4096))) goto done;
    c.messages[c.len++] = '[';
    if (system && !append(&c, "system", system)) goto done;
    fprintf(stderr, "glmoe: chat with %s, thinking %s. /think toggles, /reset starts over, /quit leaves.\n",
            mo.model_dir, think ? "on" : "off");
    for (;;) {
        fputs("> ", stdout);
        if (!cli_stdout_ok()) { /* no one sees the replies: the session is over */
            rc = cli_stdout_failed(cmd);
            goto done;
        }
        ssize_t got = getline(&line, &line_cap, stdin);
        if (got < 0) break;
        line_no++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
        if (got == 0) continue;
        if (!line_is_sendable(cmd, tok, line, (size_t)got, line_no)) continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) goto reset;
        if (!strcmp(line, "/think")) {
            think = !think;
            fprintf(stderr, "thinking %s\n", think ? "on" : "off");
            continue;
        }
        if (!append(&c, "user", line)) goto done;
        /* Render the conversation with the assistant header the model continues from. */
        c.messages[c.len] = ']';
        c.messages[c.len + 1] = '\0';
        cp.enable_thinking = think ? -1 : 0;
        char *prompt = NULL;
        size_t prompt_len;
        if (glmoe_chat_render(&prompt, &prompt_len, c.messages, NULL, &cp, err, sizeof err)) {
            cli_error(cmd, "chat format: %s", err);
            goto done;
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        bool ok = cli_encode(cmd, tok, prompt, prompt_len, GLMOE_TOKENIZE_PARSE_SPECIAL, &ids, &n_ids);
        glmoe_free(prompt);
        if (!ok) goto done;
        size_t same = 0; /* tokens of the new prompt already in the cache */
        while (same < c.n_cache && same < n_ids && c.cache[same] == ids[same]) same++;
        if (same == n_ids) same--; /* evaluate at least the last token to get its logits */
        glmoe_context_truncate(ctx, same);
        c.n_cache = same;
        turn++;
        if (mo.verbose) /* what the context kept, as it says: the evidence that the cache is reused */
            fprintf(stderr, "glmoe: turn %ld: %zu prompt tokens, %zu reused from the KV cache, %zu evaluated\n", turn,
                    n_ids, glmoe_context_n_past(ctx), n_ids - glmoe_context_n_past(ctx));
        double t0 = cli_now();
        if (glmoe_context_eval(ctx, ids + same, n_ids - same, GLMOE_LOGITS_LAST)) {
            cli_error(cmd, "%s; starting over", glmoe_context_errmsg(ctx));
            free(ids);
            goto reset;
        }
        double t_prefill = cli_now() - t0;
        cache_push(&c, ids + c.n_cache, n_ids - c.n_cache);
        glmoe_sampler_accept(sampler, ids, n_ids);
        free(ids);
        cli_gen_result res;
        int st = cli_generate(cmd, ctx, sampler, &info, stream, &go, &res);
        if (st) {
            free(res.ids);
            rc = st;
            goto done;
        }
        printf("\n");
        size_t evaluated = glmoe_context_n_past(ctx) - c.n_cache;
        cache_push(&c, res.ids, evaluated);
        /* The reply as the template expects it back: the raw text, reasoning included. */
        size_t cap = 16 * (size_t)res.n + 16, len = 0;
        char *reply = malloc(cap);
        if (reply && glmoe_tokenizer_decode(tok, res.ids, (size_t)res.n, true, reply, cap, &len) == GLMOE_OK)
            append(&c, "assistant", reply);
        free(reply);
        char drafts[160];
        fprintf(stderr, "[%zu prompt tokens (%zu new) at %.1f tok/s; %ld tokens at %.1f tok/s; stop: %s%s]\n", n_ids,
                n_ids - same, (double)(n_ids - same) / t_prefill, res.n,
                res.n > 1 ? (double)(res.n - 1) / res.seconds : 0.0, res.stop, cli_draft_stats(&res, drafts, sizeof drafts));
        free(res.ids);
    }
    rc = 0;
done:
    free(line);
    free(c.messages);
    free(c.cache);
    glmoe_sampler_free(sampler);
    glmoe_tokenizer_stream_free(stream);
    glmoe_tokenizer_free(tok);
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    return rc;
}
