/*
 * cmd_chat.c — `glmoe chat`: an interactive multi-turn conversation in the model's chat format.
 *
 * The KV cache holds exactly the tokens evaluated so far: the first prompt as the official
 * template renders it, then each reply as the model wrote it (its reasoning included), then each
 * new user turn rendered alone and appended (what the template writes after the last message:
 * "<|user|>\n...<|assistant|>"). So a turn evaluates only its new tokens. Rendering the whole
 * conversation again would not do: the template drops the reasoning of earlier replies, so the
 * history would change under the cache and almost all of it be evaluated again. With --verbose
 * each turn says on stderr how many prompt tokens were reused and how many evaluated.
 *
 * When the conversation outgrows the context, the oldest turns are dropped (the system message
 * kept), the rest is rendered afresh, and the user's message is answered; a message that does not
 * fit even alone is refused with its size. Replies stream as text, the reasoning apart from the
 * answer (dimmed on a terminal; --hide-thinking leaves it out). Ctrl-C stops a reply; a second
 * Ctrl-C at an empty prompt, or Ctrl-D, ends the session. Input: chat_input.c; the
 * conversation, /save and /load: chat_messages.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "cli.h"

static const char *const help =
    "usage: glmoe chat -m DIR [options]\n"
    "\n"
    "Chats with the model on the terminal, with line editing and history. A line ending in \\\n"
    "continues the message on the next line, and so do lines pasted together. Ctrl-C stops a reply;\n"
    "Ctrl-C twice at an empty prompt, or Ctrl-D, leaves.\n"
    "\n"
    "  --system TEXT       a system message\n"
    "  --no-think          start with thinking off (toggle with /think)\n"
    "  --hide-thinking     do not show the model's reasoning (it is still generated and kept)\n"
    "  -n, --max-tokens N  most tokens per reply (default 512)\n"
    "  --ignore-eos        do not stop a reply at end-of-sequence tokens (for tests and benchmarks)\n"
    "  --temp T, --top-k K, --top-p P, --min-p P, --repeat-penalty R, -s/--seed S  as for generate\n"
    "                      (default: temperature 0.7, top-p 0.9, a random seed shown at the start)\n"
    "\n"
    "Commands (never sent to the model; start a message with // to send one that begins with /):\n";

static const char *const commands_help =
    "  /help               this list\n"
    "  /think              thinking on or off for the next replies\n"
    "  /reset              forget the conversation\n"
    "  /save FILE          write the conversation as OpenAI-style JSON messages\n"
    "  /load FILE          continue the conversation of FILE (as /save writes it; at most 16 MiB)\n"
    "  /quit, /exit        leave\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct text_buf {
    char *s;
    size_t len, cap;
} text_buf;

static bool buf_add(text_buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = 2 * (b->len + n + 1);
        char *p = realloc(b->s, cap);
        if (!p) return false;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return true;
}

typedef struct chat {
    const char *cmd;
    glmoe_context *ctx;
    glmoe_tokenizer *tok;
    glmoe_sampler *sampler;
    glmoe_chat_params cp;
    chat_messages msgs;
    int32_t *cache;       /* the ids in the KV cache, in order */
    size_t n_cache, cap_cache;
    int32_t pending;      /* the last reply's last token: sampled, not yet evaluated (-1: none) */
    bool fresh;           /* render the whole conversation next turn (start, /load, dropped turns) */
    bool verbose, hide_thinking, terminal;
    long turn;
    /* the reply being shown */
    glmoe_chat_stream *split;
    bool split_failed, in_reasoning;
    bool stopped;         /* Ctrl-C stopped the reply */
    text_buf reasoning, content;
} chat;

static bool cache_push(chat *c, const int32_t *ids, size_t n) {
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

/* ---- showing the reply: reasoning apart from the answer ---- */

static void show(chat *c, glmoe_chat_delta_kind kind, const char *text, size_t len) {
    if (kind == GLMOE_CHAT_DELTA_REASONING) {
        buf_add(&c->reasoning, text, len);
        if (c->hide_thinking) return;
        if (!c->in_reasoning) fputs(c->terminal ? "\033[2m" : "<think>", stdout); /* dim */
        c->in_reasoning = true;
        fwrite(text, 1, len, stdout);
        return;
    }
    if (c->in_reasoning) {
        fputs(c->terminal ? "\033[0m\n" : "</think>\n", stdout);
        c->in_reasoning = false;
    }
    if (kind == GLMOE_CHAT_DELTA_CONTENT) {
        buf_add(&c->content, text, len);
        fwrite(text, 1, len, stdout);
    } else if (kind == GLMOE_CHAT_DELTA_TOOL_CALL) {
        printf("\n[tool call %s", text);
    } else {
        printf(" %.*s]", (int)len, text);
    }
}

static void show_deltas(chat *c, const glmoe_chat_delta *d, size_t n) {
    for (size_t i = 0; i < n; i++) show(c, d[i].kind, d[i].text, d[i].len);
}

/* cli_generate's text goes here: split into reasoning and content as it comes. Text the split
 * refuses (not UTF-8, a malformed tool call) is shown and kept as it is from there on. */
static void emit_reply(const char *text, size_t len, void *user) {
    chat *c = user;
    const glmoe_chat_delta *d;
    size_t n;
    if (!c->split_failed) {
        glmoe_status s = glmoe_chat_stream_push(c->split, text, len, &d, &n);
        show_deltas(c, d, n);
        if (s == GLMOE_OK) return;
        /* What was certain is out; from here on the text is shown and kept as it comes. */
        c->split_failed = true;
        return;
    }
    show(c, GLMOE_CHAT_DELTA_CONTENT, text, len);
}

static void end_reply(chat *c) {
    const glmoe_chat_delta *d;
    size_t n;
    if (!c->split_failed && glmoe_chat_stream_finish(c->split, &d, &n) == GLMOE_OK) show_deltas(c, d, n);
    if (c->in_reasoning) fputs(c->terminal ? "\033[0m" : "</think>", stdout);
    c->in_reasoning = false;
}

/* ---- the prompt of a turn ---- */

static bool render(chat *c, const chat_messages *m, bool generation_prompt, char **out, size_t *len) {
    char *json = chat_messages_json(m, 0, m->n), err[1024];
    glmoe_chat_params cp = c->cp;
    cp.add_generation_prompt = generation_prompt;
    bool ok = json && glmoe_chat_render(out, len, json, NULL, &cp, err, sizeof err) == GLMOE_OK;
    if (!ok) cli_error(c->cmd, "chat format: %s", json ? err : "out of memory");
    free(json);
    return ok;
}

/* The text the template writes for the last (user) message after what comes before it: the
 * rendering of [system?, user] less that of [system?] (a prefix of it). NULL if it is not one. */
static char *user_turn_text(chat *c, size_t *len) {
    chat_messages m = {0};
    const chat_message *sys = c->msgs.n && !strcmp(c->msgs.v[0].role, "system") ? &c->msgs.v[0] : NULL;
    const chat_message *user = &c->msgs.v[c->msgs.n - 1];
    char *before = NULL, *all = NULL, *out = NULL;
    size_t n_before = 0, n_all = 0;
    if ((!sys || chat_messages_add(&m, "system", sys->content, NULL)) && render(c, &m, false, &before, &n_before) &&
        chat_messages_add(&m, "user", user->content, NULL) && render(c, &m, true, &all, &n_all) && n_all >= n_before &&
        !memcmp(all, before, n_before) && (out = malloc(n_all - n_before + 1))) {
        memcpy(out, all + n_before, n_all - n_before + 1);
        *len = n_all - n_before;
    }
    glmoe_free(before);
    glmoe_free(all);
    chat_messages_clear(&m);
    return out;
}

/* The ids of the turn's prompt: the cache's, the pending token and the new user turn; or, for a
 * fresh start, the whole conversation rendered. *text_end: whether the text ends inside the
 * reasoning block (GLM-4.7 with thinking on ends it with "<think>"). */
static bool build_prompt(chat *c, int32_t **ids, size_t *n_ids, bool *in_reasoning) {
    char *text = NULL;
    size_t len = 0;
    if (!c->fresh && (text = user_turn_text(c, &len))) {
        int32_t *turn_ids = NULL;
        size_t n_turn = 0;
        if (!cli_encode(c->cmd, c->tok, text, len, GLMOE_TOKENIZE_PARSE_SPECIAL, &turn_ids, &n_turn)) goto fail;
        size_t n = c->n_cache + (c->pending >= 0) + n_turn;
        int32_t *v = malloc((n ? n : 1) * sizeof *v);
        if (!v) {
            free(turn_ids);
            goto fail;
        }
        memcpy(v, c->cache, c->n_cache * sizeof *v);
        if (c->pending >= 0) v[c->n_cache] = c->pending;
        memcpy(v + n - n_turn, turn_ids, n_turn * sizeof *v);
        free(turn_ids);
        *ids = v;
        *n_ids = n;
    } else {
        if (!render(c, &c->msgs, true, &text, &len)) return false;
        if (!cli_encode(c->cmd, c->tok, text, len, GLMOE_TOKENIZE_PARSE_SPECIAL, ids, n_ids)) goto fail;
    }
    *in_reasoning = len >= 7 && !memcmp(text + len - 7, "<think>", 7);
    glmoe_free(text);
    return true;
fail:
    glmoe_free(text);
    return false;
}

/* ---- one turn ---- */

/* Answers the user message just added to c->msgs. Returns 0, or an exit status to end with
 * (stdout lost). A turn that cannot be answered says why and removes the message. */
static int answer(chat *c, const glmoe_model_info *info, glmoe_tokenizer_stream *stream, const cli_gen_opts *go) {
    const size_t n_ctx = glmoe_context_n_ctx(c->ctx);
    const size_t reserve = go->n_gen < (long)(n_ctx / 4) ? (size_t)go->n_gen : n_ctx / 4 ? n_ctx / 4 : 1;
    int32_t *ids = NULL;
    size_t n_ids = 0, dropped = 0;
    bool in_reasoning = false;
    for (;;) {
        free(ids);
        ids = NULL;
        if (!build_prompt(c, &ids, &n_ids, &in_reasoning)) goto refuse;
        if (n_ids + reserve <= n_ctx) break;
        /* Too long: the oldest turns go (never the system message, never this message), as many
         * as the excess suggests at the conversation's bytes per token, so that a long one (a
         * /load of thousands of messages) is rendered a few times, not once per turn. */
        size_t bytes = chat_messages_bytes(&c->msgs);
        size_t excess = (size_t)((double)bytes * (double)(n_ids + reserve - n_ctx) / (double)n_ids);
        size_t turns = chat_messages_drop_oldest_turns(&c->msgs, excess);
        if (!turns) {
            cli_error(c->cmd, "the message makes a prompt of %zu tokens; with %zu kept for the reply it does not fit "
                      "the context of %zu tokens (--ctx); not sent", n_ids, reserve, n_ctx);
            goto refuse;
        }
        dropped += turns;
        c->fresh = true;
    }
    if (dropped)
        fprintf(stderr, "glmoe: the conversation outgrew the context of %zu tokens: the oldest %zu turn%s dropped\n",
                n_ctx, dropped, dropped == 1 ? "" : "s");
    size_t same = 0; /* tokens of the prompt already in the cache */
    while (same < c->n_cache && same < n_ids && c->cache[same] == ids[same]) same++;
    if (same == n_ids) same--; /* evaluate at least the last token to get its logits */
    glmoe_context_truncate(c->ctx, same);
    c->n_cache = same;
    c->pending = -1;
    c->fresh = false;
    c->turn++;
    if (c->verbose) /* what the context kept, as it says: the evidence that the cache is reused */
        fprintf(stderr, "glmoe: turn %ld: %zu prompt tokens, %zu reused from the KV cache, %zu evaluated\n", c->turn,
                n_ids, glmoe_context_n_past(c->ctx), n_ids - glmoe_context_n_past(c->ctx));
    double t0 = cli_now();
    if (glmoe_context_eval(c->ctx, ids + same, n_ids - same, GLMOE_LOGITS_LAST)) {
        cli_error(c->cmd, "%s; not sent", glmoe_context_errmsg(c->ctx));
        glmoe_context_reset(c->ctx);
        c->n_cache = 0;
        c->fresh = true;
        goto refuse;
    }
    double t_prefill = cli_now() - t0;
    cache_push(c, ids + same, n_ids - same);
    glmoe_sampler_accept(c->sampler, ids + same, n_ids - same);
    free(ids);

    glmoe_chat_stream_params sp = glmoe_chat_stream_params_default();
    sp.starts_in_reasoning = in_reasoning;
    char err[512];
    c->reasoning.len = c->content.len = 0;
    c->split_failed = c->in_reasoning = false;
    if (glmoe_chat_stream_create(&c->split, &sp, err, sizeof err)) {
        cli_error(c->cmd, "%s", err);
        return CLI_EXIT_FAIL;
    }
    cli_gen_opts o = *go;
    o.emit = emit_reply;
    o.emit_user = c;
    cli_gen_result res;
    int st = cli_generate(c->cmd, c->ctx, c->sampler, info, stream, &o, &res);
    if (!st) end_reply(c);
    glmoe_chat_stream_free(c->split);
    c->split = NULL;
    if (st) {
        free(res.ids);
        return st;
    }
    const bool stopped = !strcmp(res.stop, "interrupted");
    printf(stopped ? " [stopped]\n" : "\n");
    if (!cli_stdout_ok()) {
        free(res.ids);
        return cli_stdout_failed(c->cmd);
    }
    /* The cache: every reply token the context evaluated; the last one, sampled but not
     * evaluated, goes in front of the next turn unless it ended the reply (an eos token is not
     * part of the conversation: the template starts the next turn with its own tags). */
    size_t evaluated = glmoe_context_n_past(c->ctx) - c->n_cache;
    cache_push(c, res.ids, evaluated);
    bool last_is_eos = false;
    for (int j = 0; res.n && j < info->n_eos_ids; j++) last_is_eos |= res.ids[res.n - 1] == info->eos_ids[j];
    c->pending = res.n && (size_t)res.n > evaluated && !last_is_eos ? res.ids[res.n - 1] : -1;
    if (!chat_messages_add(&c->msgs, "assistant", c->content.s ? c->content.s : "", c->reasoning.s ? c->reasoning.s : NULL)) {
        cli_error(c->cmd, "out of memory");
        free(res.ids);
        return CLI_EXIT_FAIL;
    }
    char drafts[160];
    fprintf(stderr, "[%zu prompt tokens (%zu new) at %.1f tok/s; %ld tokens at %.1f tok/s; stop: %s%s]\n", n_ids,
            n_ids - same, (double)(n_ids - same) / t_prefill, res.n, res.n > 1 ? (double)(res.n - 1) / res.seconds : 0.0,
            res.stop, cli_draft_stats(&res, drafts, sizeof drafts));
    free(res.ids);
    c->stopped = stopped;
    return 0;
refuse:
    free(ids);
    free(c->msgs.v[c->msgs.n - 1].role);
    free(c->msgs.v[c->msgs.n - 1].content);
    free(c->msgs.v[c->msgs.n - 1].reasoning);
    c->msgs.n--;
    return 0;
}

/* Whether a message can be sent; if not, says why on stderr (with the input line and the byte
 * offset) and the session goes on. A NUL byte cannot be carried by the chat format's JSON (glmoe
 * refuses \u0000); ill-formed UTF-8 is found by the tokenizer's own check, the one the prompt
 * will meet. */
static bool message_is_sendable(const char *cmd, glmoe_tokenizer *tok, const char *text, size_t len, long line_no) {
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        cli_error(cmd, "input line %ld: a NUL byte at byte %zu (a message cannot hold one); not sent", line_no,
                  (size_t)(nul - text));
        return false;
    }
    size_t n = 0;
    int32_t *ids = malloc((len + 16) * sizeof *ids); /* len + 16 ids always suffice (glmoe.h) */
    if (!ids) {
        cli_error(cmd, "input line %ld: out of memory; not sent", line_no);
        return false;
    }
    bool ok = glmoe_tokenizer_encode(tok, text, len, 0, ids, len + 16, &n) == GLMOE_OK;
    if (!ok) cli_error(cmd, "input line %ld: %s; not sent", line_no, glmoe_tokenizer_errmsg(tok));
    free(ids);
    return ok;
}

static void start_over(chat *c, const char *system) {
    chat_messages_clear(&c->msgs);
    if (system) chat_messages_add(&c->msgs, "system", system, NULL);
    glmoe_context_reset(c->ctx);
    glmoe_sampler_reset(c->sampler);
    c->n_cache = 0;
    c->pending = -1;
    c->fresh = true;
    c->turn = 0;
}

int cmd_chat(int argc, char **argv) {
    const char *cmd = "chat", *system = NULL;
    cli_model_opts mo = {.n_draft = -1};
    cli_sampling sp = {.params = glmoe_sampler_params_default()};
    sp.params.temperature = 0.7f;
    sp.params.top_p = 0.9f;
    cli_gen_opts go = {.n_gen = 512, .interrupted = &interrupted};
    bool think = true, hide_thinking = false;
    char full_help[4096];
    snprintf(full_help, sizeof full_help, "%s%s\n", help, commands_help);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r == 0) r = cli_sampling_opt(cmd, argc, argv, &i, &sp);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) return cli_help(full_help, true);
        if (!strcmp(a, "--no-think")) { think = false; continue; }
        if (!strcmp(a, "--hide-thinking")) { hide_thinking = true; continue; }
        if (!strcmp(a, "--ignore-eos")) { go.ignore_eos = true; continue; }
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
    glmoe_tokenizer_stream *stream = NULL;
    chat_input *in = NULL;
    chat c = {.cmd = cmd, .cp = glmoe_chat_params_default(), .pending = -1, .verbose = mo.verbose,
              .hide_thinking = hide_thinking, .terminal = isatty(STDOUT_FILENO)};
    char err[1024];
    long line_no = 0; /* of the input, for messages about a line */
    if (glmoe_chat_style_detect(&c.cp.style, mo.model_dir, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    c.cp.enable_thinking = think ? -1 : 0;
    if (!cli_load_tokenizer(cmd, mo.model_dir, &c.tok)) goto done;
    /* special tokens kept: the reasoning's <think> tags are special, and the split needs them */
    if (glmoe_tokenizer_stream_create(&stream, c.tok, false)) goto done;
    if (!cli_open(cmd, &mo, &model, &c.ctx)) goto done;
    c.verbose = mo.verbose;
    go.n_draft = mo.n_draft;
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    cli_sampling_seed(&sp);
    if (glmoe_sampler_create(&c.sampler, &sp.params, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    /* Ctrl-C only sets a flag (no SA_RESTART: a read waiting at the prompt returns at once). */
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    if (!(in = chat_input_open(&interrupted))) goto done;
    start_over(&c, system);
    fprintf(stderr, "glmoe: chat with %s, thinking %s, seed %llu. /help lists the commands; Ctrl-C stops a reply.\n",
            mo.model_dir, think ? "on" : "off", (unsigned long long)sp.params.seed);
    bool quit_armed = false; /* a Ctrl-C just happened: one more at an empty prompt leaves */
    for (;;) {
        if (!cli_stdout_ok()) { /* no one sees the replies: the session is over */
            rc = cli_stdout_failed(cmd);
            goto done;
        }
        const char *text;
        size_t len;
        chat_input_status s = chat_input_read(in, "> ", &text, &len, &line_no);
        if (s == CHAT_INPUT_EOF) break;
        if (s == CHAT_INPUT_ERROR) {
            cli_error(cmd, "cannot read the input");
            goto done;
        }
        if (s == CHAT_INPUT_INTERRUPT) {
            if (len == 0 && quit_armed) break;
            if (len == 0) fprintf(stderr, "glmoe: Ctrl-C again or Ctrl-D leaves\n");
            quit_armed = len == 0;
            continue;
        }
        quit_armed = false;
        if (s == CHAT_INPUT_TOO_LONG) {
            cli_error(cmd, "input line %ld: a message longer than %zu bytes; not sent", line_no, (size_t)CHAT_INPUT_MAX_BYTES);
            continue;
        }
        if (len == 0) continue;
        if (!message_is_sendable(cmd, c.tok, text, len, line_no)) continue;
        if (text[0] == '/' && text[1] != '/') {
            const char *arg = strchr(text, ' ');
            size_t name_len = arg ? (size_t)(arg - text) : len;
            while (arg && *arg == ' ') arg++;
            if (arg && !*arg) arg = NULL;
#define IS(name) (name_len == strlen(name) && !memcmp(text, name, name_len))
            if (IS("/quit") || IS("/exit")) break;
            if (IS("/help")) {
                fputs(commands_help, stdout);
            } else if (IS("/reset")) {
                start_over(&c, system);
                fprintf(stderr, "glmoe: the conversation starts over\n");
            } else if (IS("/think")) {
                think = !think;
                c.cp.enable_thinking = think ? -1 : 0;
                fprintf(stderr, "glmoe: thinking %s\n", think ? "on" : "off");
            } else if ((IS("/save") || IS("/load")) && !arg) {
                cli_error(cmd, "%.*s needs a file name: %.*s FILE", (int)name_len, text, (int)name_len, text);
            } else if (IS("/save")) {
                if (chat_messages_save(&c.msgs, arg, err, sizeof err))
                    fprintf(stderr, "glmoe: wrote %zu messages to %s\n", c.msgs.n, arg);
                else
                    cli_error(cmd, "/save: %s", err);
            } else if (IS("/load")) {
                if (chat_messages_load(&c.msgs, arg, err, sizeof err)) {
                    c.fresh = true; /* rendered whole at the next turn; the cache keeps what it can */
                    fprintf(stderr, "glmoe: loaded %zu messages from %s\n", c.msgs.n, arg);
                } else {
                    cli_error(cmd, "/load: %s", err);
                }
            } else {
                cli_error(cmd, "unknown command %.*s (/help lists them); not sent", (int)name_len, text);
            }
#undef IS
            continue;
        }
        if (text[0] == '/') { /* "//..." sends "/..." */
            text++;
            len--;
        }
        if (!chat_messages_add(&c.msgs, "user", text, NULL)) {
            cli_error(cmd, "out of memory");
            goto done;
        }
        int st = answer(&c, &info, stream, &go);
        if (st) {
            rc = st;
            goto done;
        }
        /* Ctrl-C stopped the reply: one more at the empty prompt leaves */
        quit_armed = c.stopped;
        c.stopped = false;
        interrupted = 0;
    }
    if (chat_input_is_terminal(in)) fputc('\n', stdout);
    rc = 0;
done:
    chat_input_close(in);
    chat_messages_clear(&c.msgs);
    free(c.cache);
    free(c.reasoning.s);
    free(c.content.s);
    glmoe_sampler_free(c.sampler);
    glmoe_tokenizer_stream_free(stream);
    glmoe_tokenizer_free(c.tok);
    glmoe_context_free(c.ctx);
    glmoe_model_free(model);
    return rc;
}
