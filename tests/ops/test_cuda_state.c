/*
 * test_cuda_state.c — the CUDA backend in bad states: no GPU, and out of device memory; after
 * each, glmoe (the GPU when there is one, and the CPU) still works in the same process.
 *
 * Usage: test_cuda_state REPO_ROOT   (uses the golden case tests/golden/glm45_like)
 *
 *   1. No GPU (no device, no driver, CUDA_VISIBLE_DEVICES= , or a build without CUDA): creating
 *      the CUDA backend fails with GLMOE_E_UNSUPPORTED and a message naming the cause; a model
 *      asked for on --device cuda fails the same way; --device auto loads it on the CPU, which
 *      evaluates. With a GPU, auto must pick it.
 *   2. Out of memory (GPU only; prints "SKIP: no CUDA device ..." and passes otherwise):
 *      a. a KV cache and a buffer larger than the device: GLMOE_E_NOMEM, and the message names
 *         the bytes needed and the bytes free; the backend then still computes an op exactly;
 *      b. a context created while the device's memory is taken (by a second backend's buffers,
 *         in pieces of 1 GiB down to 64 KiB until nothing more fits): glmoe_context_create fails
 *         with GLMOE_E_NOMEM and the same facts in its message; once the memory is released the
 *         same model makes a context and its greedy token equals the reference's.
 *      c. a model larger than the device (synthetic glm-4.5 in bf16, 716 GB): glmoe_model_load_synthetic
 *         fails with GLMOE_E_NOMEM before any weight is made, in one line naming the GB of weights
 *         needed and the GB free, and the device's free memory is the same afterwards (nothing
 *         half-loaded, nothing leaked).
 *   3. The CPU: a model loaded on the CPU afterwards gives the reference's greedy token too.
 * The greedy token checked is the first of reference.json's greedy continuation.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "glmoe.h"
#include "test.h"
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

/* The golden case's greedy prompt and its first greedy token. */
typedef struct golden {
    int32_t prompt[64];
    size_t n_prompt;
    int32_t first;
} golden;

static bool golden_read(const char *dir, golden *g) {
    char path[4200];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t jerr;
    json_t *ref = json_load_file(path, 0, &jerr);
    if (!ref) {
        fprintf(stderr, "%s: %s\n", path, jerr.text);
        return false;
    }
    json_t *p = json_object_get(ref, "greedy_prompt"), *n = json_object_get(ref, "greedy_new_ids");
    g->n_prompt = json_array_size(p);
    bool ok = g->n_prompt > 0 && g->n_prompt <= 64 && json_array_size(n) > 0;
    for (size_t i = 0; ok && i < g->n_prompt; i++) g->prompt[i] = (int32_t)json_integer_value(json_array_get(p, i));
    if (ok) g->first = (int32_t)json_integer_value(json_array_get(n, 0));
    json_decref(ref);
    return ok;
}

/* Evaluates the prompt in a fresh context of n_ctx positions; the argmax of the last logits, or
 * -1 (after printing why). */
static int32_t greedy_first(glmoe_model *m, const golden *g, int32_t n_ctx, const char *label) {
    glmoe_context *ctx = NULL;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = n_ctx;
    if (glmoe_context_create(&ctx, m, &cp)) {
        fprintf(stderr, "[%s] context: %s\n", label, glmoe_context_errmsg(ctx));
        glmoe_context_free(ctx);
        return -1;
    }
    int32_t best = -1;
    const float *l;
    size_t rows;
    if (glmoe_context_eval(ctx, g->prompt, g->n_prompt, GLMOE_LOGITS_LAST) ||
        glmoe_context_logits(ctx, &l, &rows)) {
        fprintf(stderr, "[%s] eval: %s\n", label, glmoe_context_errmsg(ctx));
    } else {
        glmoe_model_info info;
        glmoe_model_get_info(m, &info);
        best = 0;
        for (int32_t i = 1; i < info.vocab_size; i++)
            if (l[i] > l[best]) best = i;
        for (int32_t i = 0; i < info.vocab_size; i++)
            if (!isfinite(l[i])) best = -1;
    }
    glmoe_context_free(ctx);
    return best;
}

static bool gpu_present(void) {
#ifdef GLMOE_HAVE_CUDA
    gm_backend *be = NULL;
    gm_err err = {0};
    if (cuda_backend_create(&be, 0, &err) == GLMOE_OK) {
        be->ops->free(be);
        return true;
    }
    CHECK(err.code == GLMOE_E_UNSUPPORTED && strstr(err.msg, "no CUDA GPU: "),
          "cuda_backend_create without a usable GPU: status %d (want GLMOE_E_UNSUPPORTED), \"%s\"", (int)err.code,
          err.msg);
    printf("no GPU: cuda_backend_create: %s\n", err.msg);
#endif
    return false;
}

static void check_devices(const char *dir, const golden *g, bool gpu) {
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    if (!gpu) {
        mp.device = GLMOE_DEVICE_CUDA;
        glmoe_status s = glmoe_model_load(&m, dir, &mp);
        CHECK(s == GLMOE_E_UNSUPPORTED && glmoe_model_errmsg(m)[0],
              "--device cuda without a GPU: status %d (want GLMOE_E_UNSUPPORTED), \"%s\"", (int)s, glmoe_model_errmsg(m));
        printf("no GPU: --device cuda: %s\n", glmoe_model_errmsg(m));
        glmoe_model_free(m);
        m = NULL;
    }
    mp.device = GLMOE_DEVICE_AUTO;
    glmoe_status s = glmoe_model_load(&m, dir, &mp);
    CHECK(s == GLMOE_OK, "--device auto: %s", glmoe_model_errmsg(m));
    if (!s) {
        glmoe_model_info info;
        glmoe_model_get_info(m, &info);
        CHECK(!strcmp(info.backend, gpu ? "cuda" : "cpu"), "--device auto chose %s with%s a GPU", info.backend,
              gpu ? "" : "out");
        int32_t tok = greedy_first(m, g, 64, "auto");
        CHECK(tok == g->first, "--device auto (%s): greedy token %d, reference %d", info.backend, tok, g->first);
        printf("--device auto: %s, greedy token %s\n", info.backend, tok == g->first ? "as the reference" : "WRONG");
    }
    glmoe_model_free(m);
}

#ifdef GLMOE_HAVE_CUDA
/* An out-of-memory message must name the bytes needed and the bytes free (in bytes or GB). */
static bool says_bytes_and_free(const char *msg) { return (strstr(msg, "bytes") || strstr(msg, " GB")) && strstr(msg, "free"); }

/* The device's free memory in GB, as the backend's fit check reports it (-1: unknown). */
static double free_gb(void) {
    gm_backend *be = NULL;
    gm_err err = {0};
    double gb = -1;
    if (cuda_backend_create(&be, 0, &err)) return -1;
    if (be->ops->check_fit && be->ops->check_fit(be, (uint64_t)1 << 50, "a probe", &err) == GLMOE_E_NOMEM) {
        const char *p = strstr(err.msg, ") has ");
        if (p) sscanf(p + 6, "%lf", &gb);
    }
    be->ops->free(be);
    return gb;
}

/* 2c: a model larger than the device is refused up front, and leaves nothing behind. */
static void check_oom_model(void) {
    const double before = free_gb();
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CUDA;
    glmoe_status s = glmoe_model_load_synthetic(&m, "glm-4.5", 0, 0, &mp);
    const char *msg = glmoe_model_errmsg(m);
    CHECK(s == GLMOE_E_NOMEM && strstr(msg, "GB of weights") && says_bytes_and_free(msg) && !strchr(msg, '\n'),
          "glm-4.5 in bf16 on one GPU: status %d, \"%s\"", (int)s, msg);
    printf("out of memory: model: %s\n", msg);
    glmoe_model_free(m);
    const double after = free_gb();
    CHECK(before > 0 && after > 0 && after > before - 0.02, "free device memory %.2f GB before the refused load, %.2f GB after",
          before, after);
}

/* 2a: requests larger than the device, then an op on the same backend. */
static void check_oom_backend(void) {
    gm_backend *be = NULL;
    gm_err err = {0};
    if (cuda_backend_create(&be, 0, &err)) {
        CHECK(0, "cuda_backend_create: %s", err.msg);
        return;
    }
    gm_kv *kv = NULL;
    glmoe_status s = be->ops->kv_create(be, &kv, 1000, 1 << 20, 8, 128, &err); /* 4.4 TB of bf16 */
    CHECK(s == GLMOE_E_NOMEM && !kv && says_bytes_and_free(err.msg), "a 4.4 TB KV cache: status %d, \"%s\"", (int)s,
          err.msg);
    printf("out of memory: KV cache: %s\n", err.msg);
    gm_err_clear(&err);
    void *p = NULL;
    s = be->ops->alloc(be, (size_t)1 << 42, &p, &err);
    CHECK(s == GLMOE_E_NOMEM && !p && says_bytes_and_free(err.msg), "a 4.4 TB buffer: status %d, \"%s\"", (int)s,
          err.msg);
    printf("out of memory: buffer: %s\n", err.msg);

    /* The backend still works: resid += delta on fresh numbers, exact in float32. */
    enum { N = 1000 };
    float a[N], b[N], got[N];
    for (int i = 0; i < N; i++) a[i] = 0.25f * (float)(i % 97) + 1.0f, b[i] = -0.5f * (float)(i % 13) - 3.0f;
    float *da = NULL, *db = NULL;
    gm_exec *ex = NULL;
    gm_err_clear(&err);
    const gm_exec_sizes z = {.n_batch = 1, .n_ctx = 1, .hidden = N, .max_in = N, .max_out = N, .n_heads = 1, .head_dim = 1};
    bool ok = !be->ops->exec_create(be, &z, &ex, &err) && !be->ops->alloc(be, sizeof a, (void **)&da, &err) &&
              !be->ops->alloc(be, sizeof b, (void **)&db, &err) && !be->ops->copy_in(ex, da, a, sizeof a, &err) &&
              !be->ops->copy_in(ex, db, b, sizeof b, &err) && !be->ops->add(ex, da, db, N, &err) &&
              !be->ops->copy_out(ex, got, da, sizeof got, &err);
    for (int i = 0; ok && i < N; i++) ok = got[i] == a[i] + b[i];
    CHECK(ok, "an add after the refusals: %s", err.msg);
    if (da) be->ops->dealloc(be, da);
    if (db) be->ops->dealloc(be, db);
    if (ex) be->ops->exec_free(ex);
    be->ops->free(be);
}

/* 2b: a context while the device's memory is taken, then after it is given back. */
static void check_oom_context(const char *dir, const golden *g) {
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CUDA;
    if (glmoe_model_load(&m, dir, &mp)) {
        CHECK(0, "load %s on the GPU: %s", dir, glmoe_model_errmsg(m));
        glmoe_model_free(m);
        return;
    }
    gm_backend *hog = NULL;
    gm_err err = {0};
    if (cuda_backend_create(&hog, 0, &err)) {
        CHECK(0, "cuda_backend_create: %s", err.msg);
        glmoe_model_free(m);
        return;
    }
    size_t n = 0, cap = 256, taken = 0;
    void **bufs = malloc(cap * sizeof *bufs);
    for (size_t piece = (size_t)1 << 30; piece >= ((size_t)64 << 10); piece /= 2) {
        void *p = NULL;
        while (hog->ops->alloc(hog, piece, &p, &err) == GLMOE_OK) {
            if (n == cap) bufs = realloc(bufs, (cap *= 2) * sizeof *bufs);
            bufs[n++] = p;
            taken += piece;
        }
        gm_err_clear(&err);
    }
    printf("out of memory: %.2f GB of device memory taken in %zu pieces\n", (double)taken / 1e9, n);

    glmoe_context *ctx = NULL;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = 4096;
    glmoe_status s = glmoe_context_create(&ctx, m, &cp);
    CHECK(s == GLMOE_E_NOMEM && ctx && says_bytes_and_free(glmoe_context_errmsg(ctx)),
          "a context on a full device: status %d, \"%s\"", (int)s, glmoe_context_errmsg(ctx));
    printf("out of memory: context: %s\n", glmoe_context_errmsg(ctx));
    glmoe_context_free(ctx);

    for (size_t i = 0; i < n; i++) hog->ops->dealloc(hog, bufs[i]);
    free(bufs);
    hog->ops->free(hog);
    int32_t tok = greedy_first(m, g, 4096, "cuda after the memory came back");
    CHECK(tok == g->first, "the GPU after running out of memory: greedy token %d, reference %d", tok, g->first);
    printf("out of memory: afterwards the GPU's greedy token is %s\n", tok == g->first ? "the reference's" : "WRONG");
    glmoe_model_free(m);
}
#endif

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_cuda_state REPO_ROOT\n");
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/golden/glm45_like", argv[1]);
    golden g;
    CHECK(golden_read(dir, &g), "cannot read the golden case %s", dir);
    if (t_failed) return test_summary("test_cuda_state");

    const bool gpu = gpu_present();
    check_devices(dir, &g, gpu);
#ifdef GLMOE_HAVE_CUDA
    if (gpu) {
        check_oom_backend();
        check_oom_model();
        check_oom_context(dir, &g);
    }
#endif
    if (!gpu) printf("SKIP: no CUDA device: the out-of-memory checks need one\n");

    /* 3. The CPU, in the same process. */
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CPU;
    glmoe_status s = glmoe_model_load(&m, dir, &mp);
    CHECK(s == GLMOE_OK, "load on the CPU: %s", glmoe_model_errmsg(m));
    if (!s) {
        int32_t tok = greedy_first(m, &g, 64, "cpu");
        CHECK(tok == g.first, "the CPU afterwards: greedy token %d, reference %d", tok, g.first);
        printf("cpu afterwards: greedy token %s\n", tok == g.first ? "as the reference" : "WRONG");
    }
    glmoe_model_free(m);
    return test_summary("test_cuda_state");
}
