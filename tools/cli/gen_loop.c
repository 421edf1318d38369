/*
 * gen_loop.c — the sampling loop shared by `generate` and `chat`: sample, print (ids or streamed
 * text), stop at eos / the token limit / a full context / lost output, evaluate the new token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_generate(const char *cmd, glmoe_context *ctx, glmoe_sampler *sampler, const glmoe_model_info *info,
                 glmoe_tokenizer_stream *stream, const cli_gen_opts *o, cli_gen_result *r) {
    memset(r, 0, sizeof *r);
    r->stop = "token limit";
    r->ids = malloc(((size_t)o->n_gen + 1) * sizeof *r->ids);
    if (!r->ids) {
        cli_error(cmd, "out of memory");
        return CLI_EXIT_FAIL;
    }
    double t0 = cli_now();
    glmoe_status s;
    while (r->n < o->n_gen) {
        const float *logits;
        size_t rows;
        int32_t tok;
        if (glmoe_context_logits(ctx, &logits, &rows)) {
            cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
            return CLI_EXIT_FAIL;
        }
        if ((s = glmoe_sampler_sample(sampler, logits, info->vocab_size, &tok))) {
            /* the token being picked goes at position n_past (0-based) of the sequence */
            cli_error(cmd, "position %zu: cannot sample the next token: %s", glmoe_context_n_past(ctx),
                      glmoe_sampler_errmsg(sampler));
            return CLI_EXIT_FAIL;
        }
        r->ids[r->n++] = tok;
        bool is_eos = false;
        for (int j = 0; j < info->n_eos_ids; j++) is_eos |= tok == info->eos_ids[j];
        if (o->print_ids || !stream) {
            printf(r->n > 1 ? " %d" : "%d", tok);
        } else if (!(is_eos && !o->ignore_eos)) {
            const char *text;
            size_t len;
            if (glmoe_tokenizer_stream_push(stream, tok, &text, &len) == GLMOE_OK) fwrite(text, 1, len, stdout);
        }
        if (!cli_stdout_ok()) return cli_stdout_failed(cmd); /* no one reads the rest: stop now */
        if (is_eos && !o->ignore_eos) {
            r->stop = "end of sequence";
            break;
        }
        if (r->n == o->n_gen) break;
        if (glmoe_context_n_past(ctx) >= glmoe_context_n_ctx(ctx)) {
            r->stop = "context full";
            break;
        }
        if ((s = glmoe_context_eval(ctx, &tok, 1, GLMOE_LOGITS_LAST))) {
            cli_error(cmd, "%s", glmoe_context_errmsg(ctx));
            return CLI_EXIT_FAIL;
        }
    }
    if (stream && !o->print_ids) {
        const char *text;
        size_t len;
        if (glmoe_tokenizer_stream_flush(stream, &text, &len) == GLMOE_OK) fwrite(text, 1, len, stdout);
    }
    r->seconds = cli_now() - t0;
    return cli_stdout_ok() ? 0 : cli_stdout_failed(cmd);
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
