/*
 * test_golden.c — glmoe against transformers on one golden case (tools/reference/make_golden.py).
 *
 * Usage: test_golden CASE_DIR [--device cpu|cuda] [--long N] [--tol T]   (default cpu)
 *
 * The case directory holds a checkpoint as save_pretrained wrote it, plus reference.json and
 * logits.f32 recorded by transformers in float32 with the same (bf16-rounded) weights. Checks:
 *   1. teacher-forced logits of the whole sequence in one prefill: max |diff| <= 2e-3 on the CPU;
 *      on the GPU (bf16 KV cache, tensor-core products) relative L2 error <= 1e-2;
 *   2. the same sequence in uneven prefill chunks and then one token at a time (KV cache, the
 *      GEMV path): same bound;
 *   3. truncate and continue: half the sequence, six other tokens, the cache cut back to the half,
 *      then the true second half (one token at a time, and in one chunk after another cut): the
 *      rows after the cut against the reference, same bound;
 *   4. the greedy continuation, stopping at the model's eos ids: identical ids.
 * With --device cuda and no usable GPU (or a build without CUDA) it prints "SKIP: ..." and passes.
 *
 * --long N replaces those checks by a long greedy generation on the device: N tokens after the
 * case's greedy prompt (not stopping at eos; the context is the model's whole
 * max_position_embeddings), one token per eval, so that on the GPU every step after the first
 * two is the recorded decode graph. Checks: the first LONG_SAME ids equal the CPU backend's
 * greedy ids; the same device and the CPU, each fed the N ids in one evaluation, give logits
 * that agree with every step's (check_steps: the median error of every 256 steps, and few
 * outliers); on the GPU the log says the step was recorded as a graph, once.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "glmoe.h"
#include "test.h"

#define TOL 2e-3       /* CPU: max |diff| of the logits (--tol sets another) */
static double g_tol = TOL;
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
        if (getenv("GLMOE_GOLDEN_ROWS")) /* diagnosis: which positions differ */
            for (size_t r = 0; r < len; r++) {
                diff row = {0};
                add_diff(&row, l + r * (size_t)V, ref + (done + r) * (size_t)V, (size_t)V);
                printf("  position %zu: rel L2 %.3g\n", done + r, sqrt(row.num / (row.den > 0 ? row.den : 1)));
            }
        done += len;
    }
    return worst;
}

/* glmoe_context_truncate, then continuing: the first half of ids in one prefill, then six other
 * tokens one at a time (on the GPU the decode step is recorded and replayed), then the cache cut
 * back to the first half and the true second half evaluated, one token at a time and then again
 * (after another cut) in one chunk. Every row after a cut is compared with the reference: the
 * continuation must see the first half and nothing of the six tokens it replaced. */
static diff truncated(glmoe_context *ctx, const int32_t *ids, size_t n, const float *ref, int32_t V) {
    diff worst = {0};
    const size_t half = n / 2;
    glmoe_context_reset(ctx);
    glmoe_status s = glmoe_context_eval(ctx, ids, half, GLMOE_LOGITS_NONE);
    for (int i = 0; !s && i < 6; i++) {
        const int32_t other = (ids[(size_t)i % n] + 1 + i) % V; /* not the sequence's next token */
        s = glmoe_context_eval(ctx, &other, 1, GLMOE_LOGITS_LAST);
    }
    const float *l;
    size_t rows;
    for (int pass = 0; !s && pass < 2; pass++) {
        glmoe_context_truncate(ctx, half);
        if (glmoe_context_n_past(ctx) != half) s = GLMOE_E_ARG;
        if (pass == 0)
            for (size_t t = half; !s && t < n; t++) {
                if (!(s = glmoe_context_eval(ctx, ids + t, 1, GLMOE_LOGITS_LAST)) &&
                    !(s = glmoe_context_logits(ctx, &l, &rows)))
                    add_diff(&worst, l, ref + t * (size_t)V, (size_t)V);
            }
        else if (!(s = glmoe_context_eval(ctx, ids + half, n - half, GLMOE_LOGITS_ALL)) &&
                 !(s = glmoe_context_logits(ctx, &l, &rows)))
            add_diff(&worst, l, ref + half * (size_t)V, (n - half) * (size_t)V);
    }
    if (s) {
        fprintf(stderr, "truncate and continue: %s\n", glmoe_context_errmsg(ctx));
        worst.max_abs = worst.num = INFINITY;
    }
    return worst;
}

/* ---- --long N ------------------------------------------------------------------------------- */

#define LONG_SAME 64 /* greedy ids that must equal the CPU's */

static int32_t argmax(const float *v, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static int g_graph_recordings; /* log lines saying a decode step was recorded as a graph */

static void count_graph_logs(glmoe_log_level level, const char *msg, void *user) {
    (void)level;
    (void)user;
    if (strstr(msg, "recorded as a graph")) g_graph_recordings++;
    fprintf(stderr, "glmoe: %s\n", msg);
}

/* Greedy generation of n tokens after prompt, one eval per token; ids[n] and, when logits is
 * non-NULL, each step's logits [n][V]. False (after printing why) on an error. */
static bool greedy_run(glmoe_model *m, const int32_t *prompt, size_t n_prompt, size_t n, int32_t n_ctx, int32_t V,
                       int32_t *ids, float *logits) {
    glmoe_context *ctx = NULL;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = n_ctx;
    if (glmoe_context_create(&ctx, m, &cp)) {
        fprintf(stderr, "context: %s\n", glmoe_context_errmsg(ctx));
        glmoe_context_free(ctx);
        return false;
    }
    glmoe_status s = glmoe_context_eval(ctx, prompt, n_prompt, GLMOE_LOGITS_LAST);
    for (size_t i = 0; !s && i < n; i++) {
        const float *l;
        size_t rows;
        glmoe_context_logits(ctx, &l, &rows);
        if (logits) memcpy(logits + i * (size_t)V, l, (size_t)V * sizeof *l);
        ids[i] = argmax(l, V);
        if (i + 1 < n) s = glmoe_context_eval(ctx, &ids[i], 1, GLMOE_LOGITS_LAST);
    }
    if (s) fprintf(stderr, "greedy step: %s\n", glmoe_context_errmsg(ctx));
    glmoe_context_free(ctx);
    return !s;
}

/* Logits of every step of a greedy run, recomputed by feeding prompt + ids[0, n - 1) in one
 * evaluation (prefill chunks, no decode steps): out[i] = logits at position n_prompt - 1 + i. */
static bool teacher_forced(glmoe_model *m, const int32_t *prompt, size_t n_prompt, const int32_t *ids, size_t n,
                           int32_t n_ctx, int32_t V, float *out) {
    glmoe_context *ctx = NULL;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = n_ctx;
    int32_t *seq = malloc((n_prompt + n) * sizeof *seq);
    memcpy(seq, prompt, n_prompt * sizeof *seq);
    memcpy(seq + n_prompt, ids, (n - 1) * sizeof *seq); /* the last id's logits are not needed */
    const float *l = NULL;
    size_t rows = 0;
    bool ok = glmoe_context_create(&ctx, m, &cp) == GLMOE_OK &&
              glmoe_context_eval(ctx, seq, n_prompt + n - 1, GLMOE_LOGITS_ALL) == GLMOE_OK &&
              glmoe_context_logits(ctx, &l, &rows) == GLMOE_OK;
    if (ok) memcpy(out, l + (n_prompt - 1) * (size_t)V, n * (size_t)V * sizeof *out);
    else fprintf(stderr, "teacher-forced run: %s\n", glmoe_context_errmsg(ctx));
    glmoe_context_free(ctx);
    free(seq);
    return ok;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, size_t n) {
    double *c = malloc(n * sizeof *c);
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_double);
    double m = c[n / 2];
    free(c);
    return m;
}

#define LONG_BUCKET 256 /* steps per bucket of the error profile */

/* Compares the decode steps' logits with a reference, step by step (rel. L2 of each step's
 * logits), and prints the profile. A real fault (a wrong position, a stale buffer, a bad split of
 * the keys) spoils every step of a range, so the check is on the median of each bucket of
 * LONG_BUCKET steps (<= tol_median) and on how many steps exceed tol (at most max_outliers): an
 * isolated step may differ more, where a router's top-k choice sits on a near-tie that the two
 * sides break differently (the golden cases have gaps of 1e-3 between chosen and unchosen
 * experts' scores). */
static void check_steps(const char *label, const float *dec, const float *ref, size_t n, int32_t V, double tol,
                        double tol_median, size_t max_outliers) {
    double *e = malloc(n * sizeof *e);
    size_t worst = 0, over = 0;
    for (size_t i = 0; i < n; i++) {
        diff d = {0};
        add_diff(&d, dec + i * (size_t)V, ref + i * (size_t)V, (size_t)V);
        e[i] = rel_l2(&d);
        if (!(e[i] <= e[worst])) worst = i; /* NaN is worst */
        over += !(e[i] <= tol);
    }
    char profile[1024] = "";
    double worst_bucket = 0;
    for (size_t b = 0; b * LONG_BUCKET < n; b++) {
        size_t len = n - b * LONG_BUCKET < LONG_BUCKET ? n - b * LONG_BUCKET : LONG_BUCKET;
        double m = median(e + b * LONG_BUCKET, len);
        if (!(m <= worst_bucket)) worst_bucket = m;
        size_t used = strlen(profile);
        snprintf(profile + used, sizeof profile - used, "%s%.1e", b ? " " : "", m);
    }
    printf("%s: per-step rel L2 median %.2e, max %.3g at step %zu, %zu of %zu steps above %g; medians per %d steps: "
           "%s\n", label, median(e, n), e[worst], worst, over, n, tol, LONG_BUCKET, profile);
    CHECK(worst_bucket <= tol_median && over <= max_outliers,
          "%s: worst bucket median %.3g (at most %g), %zu steps above %g (at most %zu)", label, worst_bucket, tol_median,
          over, tol, max_outliers);
    free(e);
}

static int long_generation(const char *dir, bool gpu, size_t n, const int32_t *prompt, size_t n_prompt, int32_t V) {
    glmoe_log_set(count_graph_logs, NULL, GLMOE_LOG_INFO);
    glmoe_model *model = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = gpu ? GLMOE_DEVICE_CUDA : GLMOE_DEVICE_CPU;
    glmoe_status s = glmoe_model_load(&model, dir, &mp);
    if (gpu && s == GLMOE_E_UNSUPPORTED) {
        printf("SKIP: no CUDA device (%s)\n", glmoe_model_errmsg(model));
        glmoe_model_free(model);
        return 0;
    }
    CHECK(s == GLMOE_OK, "load %s: %s", dir, glmoe_model_errmsg(model));
    if (s) return test_summary(dir);
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    const int32_t n_ctx = info.max_position_embeddings;
    CHECK(n >= LONG_SAME && n_prompt + n <= (size_t)n_ctx, "--long %zu: the case's context is %d positions", n, n_ctx);
    if (t_failed) {
        glmoe_model_free(model);
        return test_summary(dir);
    }
    int32_t *ids = malloc(n * sizeof *ids), cpu_ids[LONG_SAME];
    float *logits = malloc(n * (size_t)V * sizeof *logits), *ref = malloc(n * (size_t)V * sizeof *ref);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool ok = greedy_run(model, prompt, n_prompt, n, n_ctx, V, ids, logits);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(ok, "greedy generation of %zu tokens on %s", n, info.backend);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%s [%s]: long greedy generation of %zu tokens (context %d): %.2f s, %.3f ms/token\n", dir, info.backend,
           n, n_ctx, secs, 1e3 * secs / (double)n);
    if (gpu)
        CHECK(g_graph_recordings == 1, "the decode step was recorded %d times (want once)", g_graph_recordings);
    char label[4200];
    /* The same device fed the same ids in prefill chunks (op by op, no graph): only the order of
     * float32 sums differs, so the steps must agree closely. */
    if (ok && teacher_forced(model, prompt, n_prompt, ids, n, n_ctx, V, ref)) {
        snprintf(label, sizeof label, "%s [%s]: decode steps vs the same device's prefill of the ids", dir, info.backend);
        check_steps(label, logits, ref, n, V, 1e-2, 1e-3, n / 100);
    } else {
        CHECK(0, "teacher-forced run on %s", info.backend);
    }
    glmoe_model_free(model);

    /* The CPU: its own greedy ids, then the device's ids fed back in one evaluation. */
    glmoe_model *cpu = NULL;
    mp.device = GLMOE_DEVICE_CPU;
    CHECK(glmoe_model_load(&cpu, dir, &mp) == GLMOE_OK, "load on the CPU: %s", glmoe_model_errmsg(cpu));
    if (ok && cpu) {
        bool same_ok = greedy_run(cpu, prompt, n_prompt, LONG_SAME, n_ctx, V, cpu_ids, NULL);
        size_t same = 0;
        while (same_ok && same < LONG_SAME && cpu_ids[same] == ids[same]) same++;
        printf("%s [%s]: first %d greedy ids vs the CPU's: %s (%zu equal)\n", dir, info.backend, LONG_SAME,
               same == LONG_SAME ? "identical" : "DIFFERENT", same);
        CHECK(same == LONG_SAME, "greedy id %zu: %s %d, cpu %d", same, info.backend, same < LONG_SAME ? ids[same] : -1,
              same < LONG_SAME ? cpu_ids[same] : -1);
        if (teacher_forced(cpu, prompt, n_prompt, ids, n, n_ctx, V, ref)) {
            snprintf(label, sizeof label, "%s [%s]: decode steps vs the CPU fed the same ids", dir, info.backend);
            const double tol = gpu ? TOL_GPU_L2 : 1e-4;
            check_steps(label, logits, ref, n, V, tol, tol, n / 20);
        } else {
            CHECK(0, "teacher-forced run on the CPU");
        }
    }
    glmoe_model_free(cpu);
    free(ids);
    free(logits);
    free(ref);
    return test_summary(dir);
}

int main(int argc, char **argv) {
    bool gpu = false, usage = argc < 2;
    size_t n_long = 0;
    for (int i = 2; !usage && i < argc; i += 2) {
        if (i + 1 >= argc) usage = true;
        else if (!strcmp(argv[i], "--device") && (!strcmp(argv[i + 1], "cuda") || !strcmp(argv[i + 1], "cpu")))
            gpu = !strcmp(argv[i + 1], "cuda");
        else if (!strcmp(argv[i], "--long") && atol(argv[i + 1]) > 0)
            n_long = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--tol") && atof(argv[i + 1]) > 0)
            g_tol = atof(argv[i + 1]);
        else
            usage = true;
    }
    if (usage) {
        fprintf(stderr, "usage: test_golden CASE_DIR [--device cpu|cuda] [--long N] [--tol T]\n");
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
    if (n_long) {
        int rc = long_generation(dir, gpu, n_long, prompt, n_prompt, V);
        free(teacher);
        free(prompt);
        free(expect);
        json_decref(ref);
        return rc;
    }

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
    CHECK(glmoe_context_create(&ctx, model, &cp) == GLMOE_OK, "%s", glmoe_context_errmsg(ctx));

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
                CHECK(d.max_abs <= g_tol, "%s: max |diff| %.3g > %g", runs[r].name, d.max_abs, g_tol);
        }
        diff d = truncated(ctx, teacher, n_teacher, logits, V);
        printf("%s [%s]: teacher-forced logits after truncate and continue: max |diff| = %.3g, rel L2 = %.3g\n", dir,
               info.backend, d.max_abs, rel_l2(&d));
        if (gpu)
            CHECK(rel_l2(&d) <= TOL_GPU_L2, "truncate and continue: rel L2 %.3g > %g", rel_l2(&d), TOL_GPU_L2);
        else
            CHECK(d.max_abs <= g_tol, "truncate and continue: max |diff| %.3g > %g", d.max_abs, g_tol);
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
