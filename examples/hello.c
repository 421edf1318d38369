/* hello.c: load a model, tokenize a prompt, evaluate it, then sample 32 tokens one at a time and
 * print them as text. Build it against the installed library:
 *     cc hello.c $(pkg-config --cflags --libs glmoe) -o hello && ./hello models/glmoe-demo */
#include <glmoe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models/glmoe-demo";
    const char *prompt = argc > 2 ? argv[2] : "The State of the Union";
    glmoe_model *model = NULL;
    glmoe_context *ctx = NULL;
    glmoe_tokenizer *tok = NULL;
    glmoe_tokenizer_stream *stream = NULL;
    glmoe_sampler *sampler = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    char err[512];
    int rc = 1;

    /* Every handle carries the message of its last failure; free it in either case. */
    if (glmoe_model_load(&model, dir, NULL) != GLMOE_OK) { /* NULL: defaults, --device auto */
        fprintf(stderr, "hello: %s\n", glmoe_model_errmsg(model));
        goto done;
    }
    if (glmoe_context_create(&ctx, model, NULL) != GLMOE_OK) { /* its KV cache and buffers */
        fprintf(stderr, "hello: %s\n", glmoe_context_errmsg(ctx));
        goto done;
    }
    if (glmoe_tokenizer_load(&tok, dir, err, sizeof err) != GLMOE_OK) {
        fprintf(stderr, "hello: %s\n", err);
        goto done;
    }
    glmoe_sampler_params sp = glmoe_sampler_params_default(); /* greedy unless told otherwise */
    sp.temperature = 0.8f;
    sp.top_p = 0.95f;
    sp.seed = 1;
    if (glmoe_sampler_create(&sampler, &sp, err, sizeof err) != GLMOE_OK ||
        glmoe_tokenizer_stream_create(&stream, tok, true) != GLMOE_OK) {
        fprintf(stderr, "hello: cannot create the sampler or the text stream\n");
        goto done;
    }

    /* Text to ids: each id covers at least one byte, so len + 16 ids always suffice. */
    size_t len = strlen(prompt);
    if (!(ids = malloc((len + 16) * sizeof *ids)) ||
        glmoe_tokenizer_encode(tok, prompt, len, 0, ids, len + 16, &n_ids) != GLMOE_OK) {
        fprintf(stderr, "hello: %s\n", ids ? glmoe_tokenizer_errmsg(tok) : "out of memory");
        goto done;
    }
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    printf("%s", prompt);
    for (int i = 0; i < 32; i++) {
        /* The first eval is the whole prompt (prefill); each later one is a single token. */
        const float *logits; /* borrowed: valid until the next eval */
        size_t rows;
        int32_t next;
        if (glmoe_context_eval(ctx, ids, n_ids, GLMOE_LOGITS_LAST) != GLMOE_OK ||
            glmoe_context_logits(ctx, &logits, &rows) != GLMOE_OK) {
            fprintf(stderr, "hello: %s\n", glmoe_context_errmsg(ctx));
            goto done;
        }
        if (glmoe_sampler_sample(sampler, logits, info.vocab_size, &next) != GLMOE_OK) {
            fprintf(stderr, "hello: %s\n", glmoe_sampler_errmsg(sampler));
            goto done;
        }
        bool eos = false;
        for (int32_t j = 0; j < info.n_eos_ids; j++) eos |= next == info.eos_ids[j];
        if (eos) break;
        const char *text; /* whole UTF-8 characters only; a split one waits for its next id */
        size_t n;
        if (glmoe_tokenizer_stream_push(stream, next, &text, &n) == GLMOE_OK) fwrite(text, 1, n, stdout);
        fflush(stdout);
        ids[0] = next;
        n_ids = 1;
    }
    const char *rest;
    size_t n_rest;
    if (glmoe_tokenizer_stream_flush(stream, &rest, &n_rest) == GLMOE_OK) fwrite(rest, 1, n_rest, stdout);
    printf("\n");
    rc = 0;
done:
    free(ids);
    glmoe_tokenizer_stream_free(stream);
    glmoe_sampler_free(sampler);
    glmoe_tokenizer_free(tok);
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    return rc;
}
