/*
 * bench_gpu.c — prefill and decode timing of one model through the public API, for
 * tools/gpu/run_gpu.sh (the full benchmark suite is `glmoe bench`, issue 6).
 *
 * usage: glmoe_gpu_bench MODEL_DIR [--device auto|cpu|cuda] [--prompt N] [--gen N] [--reps N]
 *
 * Prompt ids are a fixed pseudo-random sequence. After one warm-up (prefill + 4 decode steps,
 * so that module loading and cuBLAS set-up stay out of the numbers):
 *   prefill: the prompt evaluated --reps times from an empty cache, logits of the last row only;
 *            the median time gives tokens per second;
 *   decode:  --gen greedy steps after the prompt, one token per eval (argmax on the host, which
 *            is included, as is the copy of the logits); mean ms per token. With the CUDA
 *            backend also the host time per step: the time spent inside glmoe_context_eval minus
 *            the time it was blocked waiting for the GPU (what the host itself spends to issue a
 *            step and copy its logits), and how many steps were replayed from the recorded graph
 *            (GLMOE_CUDA_GRAPHS=0 in the environment runs every step op by op, for comparison).
 * Prints one line `key=value ...` per model, and an FNV-1a hash of the last logits row (equal
 * hashes: the same numbers; it moves when an optimisation changes the arithmetic).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "glmoe.h"
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

/* The CUDA backend's wait time and graph replays so far (zeros without CUDA). */
static void counters(double *wait_s, unsigned long long *replays) {
    *wait_s = 0;
    *replays = 0;
#ifdef GLMOE_HAVE_CUDA
    cuda_backend_counters c;
    cuda_backend_counters_get(&c);
    *wait_s = c.wait_s;
    *replays = (unsigned long long)c.graph_replays;
#endif
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int32_t argmax(const float *v, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

static void log_stderr(glmoe_log_level level, const char *msg, void *user) {
    (void)level;
    (void)user;
    fprintf(stderr, "glmoe: %s\n", msg);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: glmoe_gpu_bench MODEL_DIR [--device auto|cpu|cuda] [--prompt N] [--gen N] [--reps N]\n");
        return 2;
    }
    const char *dir = argv[1];
    glmoe_model_params mp = glmoe_model_params_default();
    int prompt_len = 128, gen = 64, reps = 5;
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--device"))
            mp.device = !strcmp(v, "cpu") ? GLMOE_DEVICE_CPU : !strcmp(v, "cuda") ? GLMOE_DEVICE_CUDA : GLMOE_DEVICE_AUTO;
        else if (!strcmp(a, "--prompt")) prompt_len = atoi(v);
        else if (!strcmp(a, "--gen")) gen = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else {
            fprintf(stderr, "glmoe_gpu_bench: unknown option %s\n", a);
            return 2;
        }
    }
    if (prompt_len < 1 || gen < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "glmoe_gpu_bench: --prompt, --gen and --reps must be positive (reps <= 100)\n");
        return 2;
    }
    glmoe_log_set(log_stderr, NULL, GLMOE_LOG_INFO);

    double t0 = now_s();
    glmoe_model *model = NULL;
    if (glmoe_model_load(&model, dir, &mp)) {
        fprintf(stderr, "glmoe_gpu_bench: %s: %s\n", dir, glmoe_model_errmsg(model));
        glmoe_model_free(model);
        return 1;
    }
    double t_load = now_s() - t0;
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    /* Fit the run into the model's context. */
    if (prompt_len + gen + 8 > info.max_position_embeddings) {
        gen = gen < info.max_position_embeddings / 4 ? gen : info.max_position_embeddings / 4;
        prompt_len = info.max_position_embeddings - gen - 8;
    }
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = prompt_len + gen + 8;
    cp.n_batch = prompt_len;
    glmoe_context *ctx = NULL;
    if (glmoe_context_create(&ctx, model, &cp)) {
        fprintf(stderr, "glmoe_gpu_bench: %s\n", glmoe_context_errmsg(ctx));
        glmoe_context_free(ctx);
        glmoe_model_free(model);
        return 1;
    }
    const int32_t V = info.vocab_size;
    int32_t *ids = malloc((size_t)prompt_len * sizeof *ids);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < prompt_len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = (int32_t)(x % (uint64_t)V);
    }
    int rc = 1;
    const float *logits;
    size_t rows;
    double *times = malloc((size_t)reps * sizeof *times);

    /* Warm-up. */
    if (glmoe_context_eval(ctx, ids, (size_t)prompt_len, GLMOE_LOGITS_LAST)) goto fail;
    for (int i = 0; i < 4; i++) {
        glmoe_context_logits(ctx, &logits, &rows);
        int32_t tok = argmax(logits, V);
        if (glmoe_context_eval(ctx, &tok, 1, GLMOE_LOGITS_LAST)) goto fail;
    }

    for (int r = 0; r < reps; r++) {
        glmoe_context_reset(ctx);
        double a = now_s();
        if (glmoe_context_eval(ctx, ids, (size_t)prompt_len, GLMOE_LOGITS_LAST)) goto fail;
        glmoe_context_logits(ctx, &logits, &rows); /* eval already waited for the logits */
        times[r] = now_s() - a;
    }
    qsort(times, (size_t)reps, sizeof *times, cmp_double);
    double t_prefill = times[reps / 2];

    double wait0, wait1, t_eval = 0;
    unsigned long long rep0, rep1;
    counters(&wait0, &rep0);
    double a = now_s();
    int32_t first[8] = {0};
    for (int i = 0; i < gen; i++) {
        glmoe_context_logits(ctx, &logits, &rows);
        int32_t tok = argmax(logits, V);
        if (i < 8) first[i] = tok;
        double e0 = now_s();
        if (glmoe_context_eval(ctx, &tok, 1, GLMOE_LOGITS_LAST)) goto fail;
        t_eval += now_s() - e0;
    }
    double t_decode = now_s() - a;
    counters(&wait1, &rep1);
    const double host_us = 1e6 * (t_eval - (wait1 - wait0)) / gen;
    glmoe_context_logits(ctx, &logits, &rows);
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *b = (const unsigned char *)logits;
    for (size_t i = 0; i < (size_t)V * sizeof(float); i++) h = (h ^ b[i]) * 0x100000001b3ull;

    const char *name = strrchr(dir, '/');
    name = name && name[1] ? name + 1 : dir;
    printf("bench model=%s backend=%s params=%.3fB active=%.3fB load_s=%.2f prompt=%d prefill_ms=%.3f "
           "prefill_tok_s=%.1f gen=%d decode_ms_tok=%.3f decode_tok_s=%.1f host_us_step=%.1f graph_replays=%llu "
           "first_ids=%d,%d,%d,%d logits_fnv=%016llx\n",
           name, info.backend, (double)info.n_params / 1e9, (double)info.n_params_active / 1e9, t_load, prompt_len,
           1e3 * t_prefill, prompt_len / t_prefill, gen, 1e3 * t_decode / gen, gen / t_decode, host_us, rep1 - rep0,
           first[0], first[1], first[2], first[3], (unsigned long long)h);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "glmoe_gpu_bench: %s\n", glmoe_context_errmsg(ctx));
    free(times);
    free(ids);
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    return rc;
}
