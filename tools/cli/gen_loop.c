/*
 * gen_loop.c — the sampling loop shared by `generate` and `chat`: sample, print (ids or streamed
 * text, through the --stop strings), stop at eos / a stop string / the token limit / a full
 * context / an interrupt / lost output, evaluate the new token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Text on its way out: what could still be the start of a --stop string is held back until the
 * next token decides (so a stop string cut across tokens is never half printed). */
typedef struct text_out {
    char *held;
    size_t n_held, cap;
} text_out;

static void emit(const cli_gen_opts *o, cli_gen_result *r, const char *text, size_t len) {
    if (!len) return;
    if (o->emit) o->emit(text, len, o->emit_user);
    else fwrite(text, 1, len, stdout);
    r->n_text += len;
    r->last_byte = text[len - 1];
}

/* The longest end of s[0..n) that is the start of a stop string (and not a whole one). */
static size_t stop_prefix_at_end(const cli_gen_opts *o, const char *s, size_t n) {
    size_t best = 0;
    for (size_t i = 0; i < o->n_stops; i++) {
        size_t m = strlen(o->stops[i]);
        for (size_t k = m - 1 < n ? m - 1 : n; k > best; k--)
            if (!memcmp(s + n - k, o->stops[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

/* Puts text out through the stop strings. Returns 1 when a stop string appeared (the text before
 * it is out, the rest dropped), 0 to go on, -1 out of memory. */
static int put_text(const cli_gen_opts *o, cli_gen_result *r, text_out *t, const char *text, size_t len) {
    if (!o->n_stops) {
        emit(o, r, text, len);
        return 0;
    }
    if (t->n_held + len > t->cap) {
        size_t cap = 2 * (t->n_held + len) + 64;
        char *p = realloc(t->held, cap);
        if (!p) return -1;
        t->held = p;
        t->cap = cap;
    }
    memcpy(t->held + t->n_held, text, len);
    t->n_held += len;
    const char *first = NULL;
    for (size_t i = 0; i < o->n_stops; i++) {
        const char *at = memmem(t->held, t->n_held, o->stops[i], strlen(o->stops[i]));
        if (at && (!first || at < first)) first = at;
    }
    if (first) {
        emit(o, r, t->held, (size_t)(first - t->held));
        t->n_held = 0;
        return 1;
    }
    size_t keep = stop_prefix_at_end(o, t->held, t->n_held);
    emit(o, r, t->held, t->n_held - keep);
    memmove(t->held, t->held + t->n_held - keep, keep);
    t->n_held = keep;
    return 0;
}

/* Takes one generated token: records and prints it. Returns 1 when generation stops there (eos,
 * a stop string, the token limit or an interrupt; r->stop says which), 0 to go on, or an exit
 * status + 2 on a lost stdout or no memory. */
static int take(const char *cmd, const glmoe_model_info *info, glmoe_tokenizer_stream *stream, const cli_gen_opts *o,
                cli_gen_result *r, text_out *t, int32_t tok) {
    r->ids[r->n++] = tok;
    bool is_eos = false, stopped = false;
    for (int j = 0; j < info->n_eos_ids; j++) is_eos |= tok == info->eos_ids[j];
    if (o->print_ids || !stream) {
        printf(r->n > 1 ? " %d" : "%d", tok);
    } else if (!(is_eos && !o->ignore_eos)) {
        const char *text;
        size_t len;
        if (glmoe_tokenizer_stream_push(stream, tok, &text, &len) == GLMOE_OK) {
            int st = put_text(o, r, t, text, len);
            if (st < 0) {
                cli_error(cmd, "out of memory");
                return CLI_EXIT_FAIL + 2;
            }
            stopped = st == 1;
        }
    }
    if (!cli_stdout_ok()) return cli_stdout_failed(cmd) + 2; /* no one reads the rest: stop now */
    if (is_eos && !o->ignore_eos) {
        r->stop = "end of sequence";
        return 1;
    }
    if (stopped) {
        r->stop = "stop string";
        return 1;
    }
    if (o->interrupted && *o->interrupted) {
        r->stop = "interrupted";
        return 1;
    }
    return r->n == o->n_gen;
}

int cli_generate(const char *cmd, glmoe_context *ctx, glmoe_sampler *sampler, const glmoe_model_info *info,
                 glmoe_tokenizer_stream *stream, const cli_gen_opts *o, cli_gen_result *r) {
    memset(r, 0, sizeof *r);
    r->stop = "token limit";
    r->ids = malloc(((size_t)o->n_gen + 1) * sizeof *r->ids);
    if (!r->ids) {
        cli_error(cmd, "out of memory");
        return CLI_EXIT_FAIL;
    }
    text_out t = {0};
    int rc = CLI_EXIT_FAIL;
    double t0 = cli_now();
    const size_t start = glmoe_context_n_past(ctx); /* the prompt */
    const float *logits;
    size_t rows;
    int32_t tok;
    if (glmoe_context_logits(ctx, &logits, &rows)) {
        cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
        goto out;
    }
    int done = 0;
    while (o->n_gen > 0 && !done) {
        if (glmoe_sampler_sample(sampler, logits, info->vocab_size, &tok)) {
            /* the token being picked goes at position n_past (0-based) of the sequence */
            cli_error(cmd, "position %zu: cannot sample the next token: %s", glmoe_context_n_past(ctx),
                      glmoe_sampler_errmsg(sampler));
            goto out;
        }
        if ((done = take(cmd, info, stream, o, r, &t, tok)) > 1) {
            rc = done - 2;
            goto out;
        }
        if (done) break;
        if (glmoe_context_n_past(ctx) >= glmoe_context_n_ctx(ctx)) {
            r->stop = "context full";
            break;
        }
        if (o->n_draft > 0) break; /* the rest in speculative steps */
        if (glmoe_context_eval(ctx, &tok, 1, GLMOE_LOGITS_LAST) || glmoe_context_logits(ctx, &logits, &rows)) {
            cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
            goto out;
        }
    }
    /* Speculative steps: each evaluates the last token and up to n_draft drafts, and gives the
     * tokens the sampler picks (the same as one at a time). What a step evaluated past a stop is
     * cut off again, so that the context ends where one-at-a-time decoding would have left it. */
    while (o->n_draft > 0 && !done && r->n < o->n_gen) {
        if (glmoe_context_n_past(ctx) >= glmoe_context_n_ctx(ctx)) {
            r->stop = "context full";
            break;
        }
        const long left = o->n_gen - r->n;
        glmoe_spec_seq x = {.seq = 0, .token = tok, .n_draft = left - 1 < o->n_draft ? (int32_t)(left - 1) : o->n_draft,
                            .sampler = sampler};
        if (glmoe_context_speculate(ctx, &x, 1)) {
            cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
            goto out;
        }
        r->n_steps++;
        r->n_drafted += x.n_drafted;
        r->n_accepted += x.n_out - 1;
        for (int i = 0; i < x.n_out && !done; i++) {
            tok = x.out[i];
            if ((done = take(cmd, info, stream, o, r, &t, tok)) > 1) {
                rc = done - 2;
                goto out;
            }
        }
        if (done) glmoe_context_truncate(ctx, start + (size_t)r->n - 1);
    }
    if (stream && !o->print_ids && strcmp(r->stop, "stop string")) {
        const char *text;
        size_t len;
        if (glmoe_tokenizer_stream_flush(stream, &text, &len) == GLMOE_OK && put_text(o, r, &t, text, len) == 1)
            r->stop = "stop string";
        if (strcmp(r->stop, "stop string")) emit(o, r, t.held, t.n_held); /* no stop string came */
    }
    r->seconds = cli_now() - t0;
    rc = cli_stdout_ok() ? 0 : cli_stdout_failed(cmd);
out:
    free(t.held);
    return rc;
}

const char *cli_draft_stats(const cli_gen_result *r, char *buf, size_t size) {
    if (!r->n_steps) return "";
    snprintf(buf, size, "; drafts: %ld of %ld accepted (%.0f%%), %.2f tokens per step", r->n_accepted, r->n_drafted,
             r->n_drafted ? 100.0 * (double)r->n_accepted / (double)r->n_drafted : 0.0,
             (double)(r->n_accepted + r->n_steps) / (double)r->n_steps);
    return buf;
}

/* JSON string literal of s (for building chat messages): quotes, backslash and control bytes escaped. */
char *cli_json_string(const char *s) {
    size_t n = strlen(s);
    char *out = malloc(6 * n + 3), *p = out;
    if (!out) return NULL;
    *p++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *p++ = '\\';
            *p++ = (char)*c;
        } else if (*c < 0x20) {
            p += sprintf(p, "\\u%04x", *c);
        } else {
            *p++ = (char)*c;
        }
    }
    *p++ = '"';
    *p = '\0';
    return out;
}
