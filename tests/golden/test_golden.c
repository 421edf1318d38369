/*
 * test_golden.c — glmoe against transformers on one golden case (tools/reference/make_golden.py).
 *
 * Usage: test_golden CASE_DIR [--device cpu|cuda]   (default cpu)
 *
 * The case directory holds a checkpoint as save_pretrained wrote it, plus reference.json and
 * logits.f32 recorded by transformers in float32 with the same (bf16-rounded) weights. Checks:
 *   1. teacher-forced logits of the whole sequence in one prefill: max |diff| <= 2e-3 on the CPU;
 *      on the GPU (bf16 KV cache, tensor-core products) relative L2 error <= 1e-2;
 *   2. the same sequence in uneven prefill chunks and then one token at a time (KV cache, the
 *      GEMV path): same bound;
 *   3. the greedy continuation, stopping at the model's eos ids: identical ids.
 * With --device cuda and no usable GPU (or a build without CUDA) it prints "SKIP: ..." and passes.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "test.h"

#define TOL 2e-3       /* CPU: max |diff| of the logits                  */
#define TOL_GPU_L2 1e-2 /* GPU: ||out - ref|| / ||ref|| of the logits      */

/* How far a run's logits are from the reference. */
typedef struct diff {
    double max_abs;
    double num, den; /* Σ (out - ref)², Σ ref² */
} diff;

static double rel_l2(const diff *d) { return sqrt(d->num) / (d->den > 0 ? sqrt(d->den) : 1.0); }

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

static void add_diff(diff *d, const float *a, const float *ref, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)ref[i];
        if (!(fabs(e) <= d->max_abs)) d->max_abs = fabs(e); /* NaN propagates as a failure */
        d->num += e * e;
        d->den += (double)ref[i] * ref[i];
    }
}

/* Evaluates ids in chunks of the given sizes (cycled), collecting all logits against ref. */
static diff chunked(glmoe_context *ctx, const int32_t *ids, size_t n, const int *chunks, size_t n_chunks,
                    const float *ref, int32_t V) {
    glmoe_context_reset(ctx);
    diff worst = {0};
    size_t done = 0;
    for (size_t c = 0; done < n; c++) {
        size_t len = (size_t)chunks[c % n_chunks];
        if (len > n - done) len = n - done;
        if (glmoe_context_eval(ctx, ids + done, len, GLMOE_LOGITS_ALL)) {
            fprintf(stderr, "eval failed: %s\n", glmoe_context_errmsg(ctx));
            worst.max_abs = worst.num = INFINITY;
            return worst;
        }
        const float *l;
        size_t rows;
        glmoe_context_logits(ctx, &l, &rows);
        add_diff(&worst, l, ref + done * (size_t)V, len * (size_t)V);
        done += len;
    }
    return worst;
}

int main(int argc, char **argv) {
    bool gpu = argc == 4 && !strcmp(argv[2], "--device") && !strcmp(argv[3], "cuda");
    if (argc != 2 && !(argc == 4 && !strcmp(argv[2], "--device") && (gpu || !strcmp(argv[3], "cpu")))) {
        fprintf(stderr, "usage: test_golden CASE_DIR [--device cpu|cuda]\n");
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
    mp.device = gpu ? GLMOE_DEVICE_CUDA : GLMOE_DEVICE_CPU;
    glmoe_status s = glmoe_model_load(&model, dir, &mp);
    if (gpu && s == GLMOE_E_UNSUPPORTED) { /* no GPU here, or a build without CUDA */
        printf("SKIP: no CUDA device (%s)\n", glmoe_model_errmsg(model));
        glmoe_model_free(model);
        free(teacher);
        free(prompt);
        free(expect);
        json_decref(ref);
        return 0;
    }
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
        static const struct { const char *name; int chunks[4]; size_t n; } runs[] = {
            {"one prefill", {0}, 1}, {"chunks 5,1,11,2", {5, 1, 11, 2}, 4}, {"one token at a time", {1}, 1}};
        for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
            int whole[] = {(int)n_teacher};
            diff d = chunked(ctx, teacher, n_teacher, r == 0 ? whole : runs[r].chunks, runs[r].n, logits, V);
            printf("%s [%s]: teacher-forced logits, %s: max |diff| = %.3g, rel L2 = %.3g\n", dir, info.backend,
                   runs[r].name, d.max_abs, rel_l2(&d));
            if (gpu)
                CHECK(rel_l2(&d) <= TOL_GPU_L2, "%s: rel L2 %.3g > %g", runs[r].name, rel_l2(&d), TOL_GPU_L2);
            else
                CHECK(d.max_abs <= TOL, "%s: max |diff| %.3g > %g", runs[r].name, d.max_abs, TOL);
        }
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
        printf("%s [%s]: greedy continuation of %zu tokens: %s\n", dir, info.backend, n_expect,
               same ? "identical" : "DIFFERENT");
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
