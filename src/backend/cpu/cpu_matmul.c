/*
 * cpu_matmul.c — out[T, N] = x[T, K] · W[N, K]^T (+ bias) with W in bf16, f16 or f32.
 *
 * Two paths, chosen by T:
 *   - few rows (decode, small expert groups): each thread takes a block of weight rows and dots
 *     each with every x row in one pass (cpu_dot_bf16, cpu_dot_f32: the same sums in the same
 *     order, so equal values give equal bits in either type), an f16 row converted to float32 in
 *     the thread's scratch first. Reads W once: bandwidth-bound, the floor for T = 1.
 *   - many rows (prefill): convert a chunk of W rows to float32 (in parallel) and hand the chunk to
 *     OpenBLAS sgemm. Conversion costs N*K per chunk against T*N*K multiply-adds, so it vanishes as T grows.
 * Both accumulate in float32.
 */
#include <cblas.h>
#include <string.h>

#include "backend/cpu/cpu_internal.h"

_Static_assert(CPU_GEMV_MAX_ROWS <= 8, "cpu_dot_bf16 and cpu_dot_f32 take 1..8 rows");

static void matmul_gemv(cpu_exec *cx, float *out, const float *x, const gm_weight *W,
                        const float *bias, int32_t T) {
    const int64_t N = W->rows, K = W->cols;
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if (N * K * T >= CPU_PARALLEL_MIN_WORK)
    for (int64_t n = 0; n < N; n++) {
        const float b = bias ? bias[n] : 0.0f;
        float dots[CPU_GEMV_MAX_ROWS];
        if (W->type == GM_W_BF16) {
            cpu_dot_bf16((const uint8_t *)W->data + (size_t)n * (size_t)K * 2, x, K, K, T, dots);
        } else if (W->type == GM_W_F32) {
            cpu_dot_f32((const uint8_t *)W->data + (size_t)n * (size_t)K * 4, x, K, K, T, dots);
        } else { /* f16: the row converted to float32 in the thread's scratch first */
            float *row = cpu_thread_scratch(cx);
            gm_weight_row_f32(W, n, 0, K, row);
            cpu_dot_f32((const uint8_t *)row, x, K, K, T, dots);
        }
        for (int32_t t = 0; t < T; t++) out[(int64_t)t * N + n] = dots[t] + b;
    }
}

static void matmul_gemm(cpu_exec *cx, float *out, const float *x, const gm_weight *W,
                        const float *bias, int32_t T) {
    const int64_t N = W->rows, K = W->cols;
    int64_t chunk = (int64_t)(cx->convert_floats / (size_t)K);
    if (chunk < 1) chunk = 1;
    for (int64_t n0 = 0; n0 < N; n0 += chunk) {
        int64_t nc = N - n0 < chunk ? N - n0 : chunk;
        const float *wc;
        if (W->type == GM_W_F32) {
            wc = (const float *)W->data + n0 * K;
        } else {
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if (nc * K >= CPU_PARALLEL_MIN_WORK)
            for (int64_t i = 0; i < nc; i++) gm_weight_row_f32(W, n0 + i, 0, K, cx->convert + i * K);
            wc = cx->convert;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, (int)nc, (int)K, 1.0f, x, (int)K, wc, (int)K,
                    0.0f, out + n0, (int)N);
    }
    if (bias) {
#pragma omp parallel for num_threads(cx->n_threads) schedule(static) if (T * N >= CPU_PARALLEL_MIN_WORK)
        for (int64_t t = 0; t < T; t++)
            for (int64_t n = 0; n < N; n++) out[t * N + n] += bias[n];
    }
}

glmoe_status cpu_matmul(gm_exec *ex, float *out, const float *x, const gm_weight *W,
                        const gm_weight *bias, int32_t T, gm_err *err) {
    cpu_exec *cx = cpu_exec_of(ex);
    const float *b = bias && bias->data ? (const float *)bias->data : NULL;
    if (T <= 0) return GLMOE_OK;
    if ((size_t)W->cols + 64 > cx->thread_scratch_floats)
        return gm_fail(err, GLMOE_E_BACKEND, "cpu: matmul with %lld inputs exceeds the reserved scratch",
                       (long long)W->cols);
    /* Below CPU_GEMV_MAX_ROWS the GEMV path wins: sgemm's packing is not amortised. */
    if (T <= CPU_GEMV_MAX_ROWS && W->type == GM_W_AFFINE)
        cpu_affine_gemv(cx, out, x, W, b, T);
    else if (T <= CPU_GEMV_MAX_ROWS)
        matmul_gemv(cx, out, x, W, b, T);
    else
        matmul_gemm(cx, out, x, W, b, T);
    return GLMOE_OK;
}
