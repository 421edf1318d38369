/*
 * opcases_probe.c — the ceilings the op cases' and `glmoe bench`'s times are read against (a
 * fraction of them), measured on the device the model runs on, in the same run (opcases.h).
 *
 * CUDA: cuda_backend_probe (src/backend/cuda/cuda_probe.cu): a 1 GiB device-to-device copy and
 * an 8192³ cuBLAS bf16 GEMM. CPU: memcpy of 256 MiB (bytes read + written) and an OpenBLAS
 * sgemm of 2048³ (float32: the CPU backend's prefill runs sgemm), each best of a few runs.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "ops/opcases.h"
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static bool probe_cpu(opcase_probe *out, char *err, size_t err_len) {
    const size_t bytes = (size_t)256 << 20;
    char *a = malloc(bytes), *b = malloc(bytes);
    const int n = 2048;
    float *x = malloc((size_t)n * n * sizeof(float)), *y = malloc((size_t)n * n * sizeof(float)),
          *z = malloc((size_t)n * n * sizeof(float));
    bool ok = a && b && x && y && z;
    if (!ok) {
        snprintf(err, err_len, "cpu probe: out of memory");
    } else {
        memset(a, 1, bytes);
        memset(b, 2, bytes);
        double best = 1e30;
        for (int r = 0; r < 5; r++) {
            double t0 = now_s();
            memcpy(b, a, bytes);
            double t = now_s() - t0;
            if (t < best) best = t;
        }
        out->copy_gb_s = 2.0 * (double)bytes / best / 1e9;
        for (size_t i = 0; i < (size_t)n * n; i++) {
            x[i] = (float)(i % 17) * 0.01f;
            y[i] = (float)(i % 13) * 0.02f;
        }
        best = 1e30;
        for (int r = 0; r < 3; r++) {
            double t0 = now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, x, n, y, n, 0.0f, z, n);
            double t = now_s() - t0;
            if (t < best) best = t;
        }
        out->gemm_tflop_s = 2.0 * n * (double)n * n / best / 1e12;
        out->gemm_n = n;
        snprintf(out->gemm_what, sizeof out->gemm_what, "OpenBLAS sgemm %d^3 (float32)", n);
        snprintf(out->device, sizeof out->device, "CPU");
    }
    free(a);
    free(b);
    free(x);
    free(y);
    free(z);
    return ok;
}

bool opcases_probe(const char *backend, opcase_probe *out, char *err, size_t err_len) {
    memset(out, 0, sizeof *out);
    if (!strcmp(backend, "cpu")) return probe_cpu(out, err, err_len);
#ifdef GLMOE_HAVE_CUDA
    if (!strcmp(backend, "cuda")) {
        gm_backend *be = NULL;
        gm_err e = {0};
        cuda_backend_probe_result r;
        glmoe_status s = cuda_backend_create(&be, 0, &e);
        if (!s) s = cuda_backend_probe(be, &r, &e);
        if (be) be->ops->free(be);
        if (s) {
            snprintf(err, err_len, "cuda probe: %s", e.msg);
            return false;
        }
        out->copy_gb_s = r.copy_gb_s;
        out->gemm_tflop_s = r.gemm_tflop_s;
        out->gemm_n = r.gemm_n;
        snprintf(out->gemm_what, sizeof out->gemm_what, "cuBLAS bf16 GEMM %d^3, fp32 accumulation", r.gemm_n);
        snprintf(out->device, sizeof out->device, "%s", r.device);
        return true;
    }
#endif
    snprintf(err, err_len, "no probe for backend \"%s\"", backend);
    return false;
}
