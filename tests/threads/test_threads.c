/*
 * test_threads.c — the header's thread rule, tested: several contexts share one model, and each
 * context is used by one thread at a time, so two contexts may be evaluated by two threads at once.
 *
 * Usage: test_threads REPO_ROOT [cpu|cuda] [n_threads]
 *   (cuda prints "SKIP: no CUDA device" and passes where there is no usable GPU)
 *
 * On the default model (models/glmoe-demo: dense and MoE layers, QK-norm, shared expert):
 *   1. Reference, one thread: for each of two prompts, a fresh context evaluates the prompt in
 *      chunks (prefill), then decodes greedy tokens one by one; then it truncates back into the
 *      prompt and evaluates the rest again (the cache reused after truncate). Every row of logits
 *      is kept.
 *   2. Two worker threads, each with two contexts of its own, replay those jobs in turn for a
 *      few rounds, while a third thread creates contexts of varied sizes, evaluates a little in
 *      them and frees them, and asks for contexts that cannot be made (its errors must be its
 *      own and must not touch the model's message).
 *   3. Every row the workers got must equal the reference bit for bit: the backends' reductions
 *      are deterministic, so any difference is state shared between contexts.
 * `make tsan` runs this under ThreadSanitizer (CPU), where a race fails the run even when the
 * numbers happen to agree.
 */
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "test.h"

#define N_PROMPTS 2
#define N_DECODE 10
#define N_ROUNDS 3
#define BATCH 16           /* tokens per forward: prompts of 37 and 29 take 3 and 2 chunks */
#define TRUNCATE_BACK 6    /* how far into the prompt the cache is cut before re-evaluating */
#define CTX 96

static const int32_t k_prompt_len[N_PROMPTS] = {37, 29};

typedef struct job_result {
    float *rows;      /* [n_rows, vocab] */
    size_t n_rows;
    char err[512];    /* "" if every call succeeded */
} job_result;

typedef struct shared {
    glmoe_model *model;
    int32_t vocab;
    int32_t prompts[N_PROMPTS][64];
    job_result ref[N_PROMPTS];
} shared;

static int32_t argmax(const float *v, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static bool keep_rows(job_result *r, const float *logits, size_t rows, int32_t vocab) {
    float *p = realloc(r->rows, (r->n_rows + rows) * (size_t)vocab * sizeof(float));
    if (!p) return false;
    r->rows = p;
    memcpy(r->rows + r->n_rows * (size_t)vocab, logits, rows * (size_t)vocab * sizeof(float));
    r->n_rows += rows;
    return true;
}

/* The job of step 1 on ctx (which must be empty): every row of logits it produces into r. */
static void run_job(const shared *sh, glmoe_context *ctx, int prompt, job_result *r) {
    const int32_t *ids = sh->prompts[prompt];
    const int32_t n = k_prompt_len[prompt];
    const float *l;
    size_t rows;
    memset(r, 0, sizeof *r);
#define STEP(call)                                                                                          \
    do {                                                                                                    \
        if ((call) || glmoe_context_logits(ctx, &l, &rows) || !keep_rows(r, l, rows, sh->vocab)) {          \
            snprintf(r->err, sizeof r->err, "%s: %s", #call, glmoe_context_errmsg(ctx));                  \
            return;                                                                                         \
        }                                                                                                   \
    } while (0)
    STEP(glmoe_context_eval(ctx, ids, (size_t)n, GLMOE_LOGITS_ALL));
    for (int i = 0; i < N_DECODE; i++) {
        int32_t next = argmax(l + (rows - 1) * (size_t)sh->vocab, sh->vocab);
        STEP(glmoe_context_eval(ctx, &next, 1, GLMOE_LOGITS_LAST));
    }
    glmoe_context_truncate(ctx, (size_t)(n - TRUNCATE_BACK));
    STEP(glmoe_context_eval(ctx, ids + n - TRUNCATE_BACK, TRUNCATE_BACK, GLMOE_LOGITS_ALL));
#undef STEP
}

static glmoe_status make_context(glmoe_model *m, int32_t n_ctx, int32_t n_batch, glmoe_context **ctx) {
    glmoe_context_params p = glmoe_context_params_default();
    p.n_ctx = n_ctx;
    p.n_batch = n_batch;
    return glmoe_context_create(ctx, m, &p);
}

/* ---- the workers ------------------------------------------------------------------------------ */

typedef struct worker {
    const shared *sh;
    int index;
    int jobs, mismatched_jobs;
    double max_diff;
    char err[600];
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    const shared *sh = w->sh;
    glmoe_context *ctx[2] = {NULL, NULL};
    for (int c = 0; c < 2; c++)
        if (make_context(sh->model, CTX, BATCH, &ctx[c])) {
            snprintf(w->err, sizeof w->err, "worker %d: context: %s", w->index, glmoe_context_errmsg(ctx[c]));
            goto done;
        }
    for (int round = 0; round < N_ROUNDS; round++)
        for (int c = 0; c < 2; c++) {
            const int prompt = (w->index + round + c) % N_PROMPTS;
            glmoe_context_reset(ctx[c]);
            job_result r;
            run_job(sh, ctx[c], prompt, &r);
            w->jobs++;
            const job_result *ref = &sh->ref[prompt];
            bool same = !r.err[0] && r.n_rows == ref->n_rows;
            for (size_t i = 0; same && i < r.n_rows * (size_t)sh->vocab; i++) {
                double d = fabs((double)r.rows[i] - (double)ref->rows[i]);
                if (!(d <= w->max_diff)) w->max_diff = d;
                if (memcmp(&r.rows[i], &ref->rows[i], sizeof(float))) same = false;
            }
            if (r.err[0] && !w->err[0]) snprintf(w->err, sizeof w->err, "worker %d: %s", w->index, r.err);
            if (!same) w->mismatched_jobs++;
            free(r.rows);
        }
done:
    for (int c = 0; c < 2; c++) glmoe_context_free(ctx[c]);
    return NULL;
}

/* ---- the churn thread: contexts made and freed while the workers run ---------------------------- */

typedef struct churner {
    const shared *sh;
    volatile int *stop;  /* set by the main thread once the workers are done (read only here) */
    pthread_mutex_t *lock;
    int made, refused;
    char err[600];
} churner;

static bool should_stop(churner *c) {
    pthread_mutex_lock(c->lock);
    bool s = *c->stop;
    pthread_mutex_unlock(c->lock);
    return s;
}

static void *churn_main(void *arg) {
    churner *c = arg;
    const shared *sh = c->sh;
    glmoe_model_info info;
    glmoe_model_get_info(sh->model, &info);
    uint32_t rng = 12345;
    while (!should_stop(c) && !c->err[0]) {
        rng = rng * 1664525u + 1013904223u;
        const int32_t n_ctx = 8 + (int32_t)(rng >> 8) % 300, n_batch = 1 + (int32_t)(rng >> 20) % 64;
        glmoe_context *ctx = NULL;
        if (make_context(sh->model, n_ctx, n_batch, &ctx)) {
            snprintf(c->err, sizeof c->err, "churn: context of %d/%d: %s", n_ctx, n_batch, glmoe_context_errmsg(ctx));
        } else if (glmoe_context_eval(ctx, sh->prompts[0], 5, GLMOE_LOGITS_LAST)) {
            snprintf(c->err, sizeof c->err, "churn: eval: %s", glmoe_context_errmsg(ctx));
        }
        glmoe_context_free(ctx);
        c->made++;
        /* A context that cannot be made: the reason belongs to this call, not to the model. */
        ctx = NULL;
        glmoe_status s = make_context(sh->model, info.max_position_embeddings + 1, 1, &ctx);
        if (s != GLMOE_E_ARG || !strstr(glmoe_context_errmsg(ctx), "max_position_embeddings"))
            snprintf(c->err, sizeof c->err, "churn: an over-long context: status %d, \"%s\"", (int)s,
                     glmoe_context_errmsg(ctx));
        glmoe_context_free(ctx);
        c->refused++;
    }
    return NULL;
}

/* ---- main ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: test_threads REPO_ROOT [cpu|cuda] [n_threads]\n");
        return 2;
    }
    const char *device = argc > 2 ? argv[2] : "cpu";
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/models/glmoe-demo", argv[1]);

    shared sh;
    memset(&sh, 0, sizeof sh);
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = !strcmp(device, "cuda") ? GLMOE_DEVICE_CUDA : GLMOE_DEVICE_CPU;
    /* 0: every core (n_threads 0 would give this small model one thread, and the test a team of
     * OpenMP threads per op is the point) */
    mp.n_threads = argc > 3 ? atoi(argv[3]) : 0;
    if (mp.n_threads == 0) mp.n_threads = omp_get_num_procs();
    glmoe_status s = glmoe_model_load(&sh.model, dir, &mp);
    if (s == GLMOE_E_UNSUPPORTED && mp.device == GLMOE_DEVICE_CUDA) {
        printf("SKIP: no CUDA device: %s\n", glmoe_model_errmsg(sh.model));
        glmoe_model_free(sh.model);
        return 0;
    }
    CHECK(s == GLMOE_OK, "load %s: %s", dir, glmoe_model_errmsg(sh.model));
    if (s) {
        glmoe_model_free(sh.model);
        return test_summary("test_threads");
    }
    glmoe_model_info info;
    glmoe_model_get_info(sh.model, &info);
    sh.vocab = info.vocab_size;
    uint32_t rng = 2024;
    for (int p = 0; p < N_PROMPTS; p++)
        for (int i = 0; i < k_prompt_len[p]; i++) {
            rng = rng * 1664525u + 1013904223u;
            sh.prompts[p][i] = (int32_t)((rng >> 8) % (uint32_t)sh.vocab);
        }

    /* 1. The reference, one thread. */
    for (int p = 0; p < N_PROMPTS; p++) {
        glmoe_context *ctx = NULL;
        if (make_context(sh.model, CTX, BATCH, &ctx)) {
            CHECK(0, "reference context: %s", glmoe_context_errmsg(ctx));
        } else {
            run_job(&sh, ctx, p, &sh.ref[p]);
            CHECK(!sh.ref[p].err[0], "reference job %d: %s", p, sh.ref[p].err);
            CHECK(sh.ref[p].n_rows == (size_t)k_prompt_len[p] + N_DECODE + TRUNCATE_BACK, "reference job %d: %zu rows",
                  p, sh.ref[p].n_rows);
        }
        glmoe_context_free(ctx);
    }
    if (t_failed) goto done;

    /* 2. Two workers and the churn thread at once. */
    worker w[2];
    pthread_t tw[2], tc;
    volatile int stop = 0;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    churner ch = {.sh = &sh, .stop = &stop, .lock = &lock};
    CHECK(pthread_create(&tc, NULL, churn_main, &ch) == 0, "pthread_create");
    for (int i = 0; i < 2; i++) {
        w[i] = (worker){.sh = &sh, .index = i};
        CHECK(pthread_create(&tw[i], NULL, worker_main, &w[i]) == 0, "pthread_create");
    }
    for (int i = 0; i < 2; i++) pthread_join(tw[i], NULL);
    pthread_mutex_lock(&lock);
    stop = 1;
    pthread_mutex_unlock(&lock);
    pthread_join(tc, NULL);

    /* 3. Bit for bit. */
    for (int i = 0; i < 2; i++) {
        CHECK(!w[i].err[0], "%s", w[i].err);
        CHECK(w[i].jobs == 2 * N_ROUNDS, "worker %d ran %d jobs", i, w[i].jobs);
        CHECK(w[i].mismatched_jobs == 0,
              "worker %d: %d of %d jobs differ from the one-thread reference (largest difference %g)", i,
              w[i].mismatched_jobs, w[i].jobs, w[i].max_diff);
        printf("%s, worker %d: %d jobs, %d differ from the reference, largest difference %g\n", info.backend, i,
               w[i].jobs, w[i].mismatched_jobs, w[i].max_diff);
    }
    CHECK(!ch.err[0], "%s", ch.err);
    CHECK(!glmoe_model_errmsg(sh.model)[0], "the model's message was written: \"%s\"", glmoe_model_errmsg(sh.model));
    printf("%s: %d contexts made and freed and %d refused meanwhile\n", info.backend, ch.made, ch.refused);
done:
    for (int p = 0; p < N_PROMPTS; p++) free(sh.ref[p].rows);
    glmoe_model_free(sh.model);
    return test_summary("test_threads");
}
