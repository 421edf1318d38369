/*
 * cuda_quant.cu — affine-quantized weights (MLX's format, backend/formats.h) on the GPU: the
 * matmul and the embedding row lookup; the experts' projections use cu_affine_warp_dot
 * (cuda_internal.h) inside cuda_moe.cu's kernels.
 *
 * This is the correct, general first step, not yet the tuned one: every bit width and group size
 * goes through the same decoder (two 32-bit loads per code at most, the code's scale and bias
 * read through the cache), a warp per output row, float32 sums, for up to AFFINE_TOKENS rows of
 * tokens; more tokens (prefill) go to the tensor-core GEMM of cuda_quant_mma.cu. Tested by tests/ops/test_ops.c (check_affine) against the float64 reference and
 * by the MLX golden cases in tools/gpu/run_gpu.sh. Off by default (cuda_backend_options.affine,
 * GLMOE_CUDA_AFFINE=1) until that run has passed on a GPU: written without one at hand.
 */
#include "backend/cuda/cuda_internal.h"

#define AFFINE_WARPS 8
#define AFFINE_TOKENS 8

cu_affine cu_affine_of(const gm_weight *w) {
    cu_affine a;
    a.codes = (const uint32_t *)w->data;
    a.scales = w->scales;
    a.biases = w->biases;
    a.bits = w->q.bits;
    a.group = w->q.group;
    a.scale_type = (int)w->q.scale_type;
    a.row_words = w->cols * w->q.bits / 32;
    a.groups = w->cols / w->q.group;
    return a;
}

template <int TMAX>
__global__ void __launch_bounds__(AFFINE_WARPS * 32) affine_gemv_kernel(float *out, const float *x, cu_affine w,
                                                                        const float *bias, int T, int N, int K) {
    const int n = blockIdx.x * AFFINE_WARPS + (threadIdx.x >> 5);
    if (n >= N) return;
    float acc[TMAX];
#pragma unroll
    for (int t = 0; t < TMAX; t++) acc[t] = 0.0f;
    for (int k = threadIdx.x & 31; k < K; k += 32) {
        const float v = cu_affine_elem(w, n, k);
#pragma unroll
        for (int t = 0; t < TMAX; t++)
            if (t < T) acc[t] += v * x[(int64_t)t * K + k];
    }
    const float b = bias ? bias[n] : 0.0f;
#pragma unroll
    for (int t = 0; t < TMAX; t++) {
        if (t < T) {
            const float s = cu_warp_sum(acc[t]);
            if ((threadIdx.x & 31) == 0) out[(int64_t)t * N + n] = s + b;
        }
    }
}

glmoe_status cuda_affine_matmul(cuda_exec *cx, float *out, const float *x, const gm_weight *W, const float *bias,
                                int32_t T, gm_err *err) {
    const int N = (int)W->rows, K = (int)W->cols;
    if (T > AFFINE_TOKENS) return cuda_affine_matmul_mma(cx, out, x, W, bias, T, err); /* prefill: cuda_quant_mma.cu */
    const cu_affine a = cu_affine_of(W);
    const unsigned blocks = cu_blocks(N, AFFINE_WARPS);
    for (int32_t t0 = 0; t0 < T; t0 += AFFINE_TOKENS) {
        const int n = T - t0 < AFFINE_TOKENS ? T - t0 : AFFINE_TOKENS;
        const float *xt = x + (int64_t)t0 * K;
        float *ot = out + (int64_t)t0 * N;
        if (n == 1)
            affine_gemv_kernel<1><<<blocks, AFFINE_WARPS * 32, 0, cx->stream>>>(ot, xt, a, bias, n, N, K);
        else if (n <= 4)
            affine_gemv_kernel<4><<<blocks, AFFINE_WARPS * 32, 0, cx->stream>>>(ot, xt, a, bias, n, N, K);
        else
            affine_gemv_kernel<AFFINE_TOKENS><<<blocks, AFFINE_WARPS * 32, 0, cx->stream>>>(ot, xt, a, bias, n, N, K);
        CU_LAUNCHED();
    }
    return GLMOE_OK;
}

__global__ void affine_embed_kernel(float *out, cu_affine table, const int32_t *ids, int64_t V, int64_t H,
                                    int32_t *fault) {
    const int t = blockIdx.x;
    const int32_t id = ids[t];
    if (id < 0 || id >= V) {
        if (threadIdx.x == 0) cu_raise_fault(fault, CUDA_FAULT_TOKEN, id, (int32_t)(V < INT32_MAX ? V : INT32_MAX));
        return;
    }
    float *o = out + (int64_t)t * H;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) o[i] = cu_affine_elem(table, id, i);
}

glmoe_status cuda_affine_embed(cuda_exec *cx, float *out, const gm_weight *table, const int32_t *ids, int32_t T,
                               gm_err *err) {
    affine_embed_kernel<<<T, 256, 0, cx->stream>>>(out, cu_affine_of(table), ids, table->rows, table->cols,
                                                   cx->d_fault);
    CU_LAUNCHED();
    return GLMOE_OK;
}
