/*
 * test_golden.c — glmoe against transformers on one golden case (tools/reference/make_golden.py).
 *
 * The case directory holds a checkpoint as save_pretrained wrote it, plus reference.json and
 * logits.f32 recorded by transformers in float32 with the same (bf16-rounded) weights. Checks:
 *   1. teacher-forced logits of the whole sequence in one prefill: max |diff| <= 2e-3;
 *   2. the same sequence in uneven prefill chunks and then one token at a time (KV cache, the
 *      GEMV path): same bound;
 *   3. the greedy continuation, stopping at the model's eos ids: identical ids.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "test.h"

#define TOL 2e-3

static int32_t *int_array(const json_t *a, size_t *n) {
    *n = json_array_size(a);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++) v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return v;
}

static float *read_floats(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *v = malloc(n * sizeof *v);
    size_t got = fread(v, sizeof *v, n, f);
    bool extra = fgetc(f) != EOF;
    fclose(f);
    if (got != n || extra) {
        free(v);
        return NULL;
    }
    return v;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d; /* NaN propagates as a failure */
    }
    return m;
}

/* Evaluates ids in chunks of the given sizes (cycled), collecting all logits; returns max |diff|. */
static double chunked(glmoe_context *ctx, const int32_t *ids, size_t n, const int *chunks, size_t n_chunks,
                      const float *ref, int32_t V) {
    glmoe_context_reset(ctx);
    double worst = 0;
    size_t done = 0;
    for (size_t c = 0; done < n; c++) {
        size_t len = (size_t)chunks[c % n_chunks];
        if (len > n - done) len = n - done;
        if (glmoe_context_eval(ctx, ids + done, len, GLMOE_LOGITS_ALL)) {
            fprintf(stderr, "eval failed: %s\n", glmoe_context_errmsg(ctx));
            return INFINITY;
        }
        const float *l;
        size_t rows;
        glmoe_context_logits(ctx, &l, &rows);
        double d = max_abs_diff(l, ref + done * (size_t)V, len * (size_t)V);
        if (!(d <= worst)) worst = d;
        done += len;
    }
    return worst;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_golden CASE_DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    char path[4096];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t jerr;
    json_t *ref = json_load_file(path, 0, &jerr);
    if (!ref) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return 1;
    }
    size_t n_teacher, n_prompt, n_expect;
    int32_t *teacher = int_array(json_object_get(ref, "teacher_ids"), &n_teacher);
    int32_t *prompt = int_array(json_object_get(ref, "greedy_prompt"), &n_prompt);
    int32_t *expect = int_array(json_object_get(ref, "greedy_new_ids"), &n_expect);
    int32_t V = (int32_t)json_integer_value(json_array_get(json_object_get(ref, "logits_shape"), 1));

    glmoe_model *model = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CPU;
    glmoe_status s = glmoe_model_load(&model, dir, &mp);
    CHECK(s == GLMOE_OK, "load %s: %s", dir, glmoe_model_errmsg(model));
    if (s) return test_summary(dir);
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    CHECK(info.vocab_size == V, "vocab %d vs reference %d", info.vocab_size, V);

    snprintf(path, sizeof path, "%s/logits.f32", dir);
    float *logits = read_floats(path, n_teacher * (size_t)V);
    CHECK(logits != NULL, "cannot read %s as %zu x %d floats", path, n_teacher, V);

    glmoe_context *ctx = NULL;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = info.max_position_embeddings < 256 ? info.max_position_embeddings : 256;
    CHECK(glmoe_context_create(&ctx, model, &cp) == GLMOE_OK, "%s", glmoe_model_errmsg(model));

    if (logits && ctx) {
        int whole[] = {(int)n_teacher};
        double d = chunked(ctx, teacher, n_teacher, whole, 1, logits, V);
        printf("%s: teacher-forced logits, one prefill: max |diff| = %.3g\n", dir, d);
        CHECK(d <= TOL, "one prefill: max |diff| %.3g > %g", d, TOL);

        int uneven[] = {5, 1, 11, 2};
        d = chunked(ctx, teacher, n_teacher, uneven, 4, logits, V);
        printf("%s: teacher-forced logits, chunks 5,1,11,2: max |diff| = %.3g\n", dir, d);
        CHECK(d <= TOL, "chunked prefill: max |diff| %.3g > %g", d, TOL);

        int single[] = {1};
        d = chunked(ctx, teacher, n_teacher, single, 1, logits, V);
        printf("%s: teacher-forced logits, one token at a time: max |diff| = %.3g\n", dir, d);
        CHECK(d <= TOL, "token by token: max |diff| %.3g > %g", d, TOL);
    }

    if (ctx) { /* greedy continuation through the public sampler, stopping at eos like generate() */
        glmoe_sampler *smp = NULL;
        glmoe_sampler_params sp = glmoe_sampler_params_default();
        CHECK(glmoe_sampler_create(&smp, &sp, NULL, 0) == GLMOE_OK);
        glmoe_context_reset(ctx);
        int32_t *got = calloc(n_expect + 64, sizeof *got);
        size_t n_got = 0;
        s = glmoe_context_eval(ctx, prompt, n_prompt, GLMOE_LOGITS_LAST);
        while (!s && n_got < n_expect + 8) {
            const float *l;
            size_t rows;
            int32_t tok;
            glmoe_context_logits(ctx, &l, &rows);
            glmoe_sampler_sample(smp, l, V, &tok);
            got[n_got++] = tok;
            bool eos = false;
            for (int j = 0; j < info.n_eos_ids; j++) eos |= tok == info.eos_ids[j];
            if (eos || n_got == n_expect) break;
            s = glmoe_context_eval(ctx, &tok, 1, GLMOE_LOGITS_LAST);
        }
        bool same = n_got == n_expect && memcmp(got, expect, n_got * sizeof *got) == 0;
        printf("%s: greedy continuation of %zu tokens: %s\n", dir, n_expect, same ? "identical" : "DIFFERENT");
        CHECK(same, "greedy continuation differs (got %zu tokens, expected %zu)", n_got, n_expect);
        if (!same) {
            for (size_t i = 0; i < n_got || i < n_expect; i++)
                fprintf(stderr, "  %zu: got %d expected %d\n", i, i < n_got ? got[i] : -1, i < n_expect ? expect[i] : -1);
        }
        free(got);
        glmoe_sampler_free(smp);
    }

    glmoe_context_free(ctx);
    glmoe_model_free(model);
    free(logits);
    free(teacher);
    free(prompt);
    free(expect);
    json_decref(ref);
    return test_summary(dir);
}
