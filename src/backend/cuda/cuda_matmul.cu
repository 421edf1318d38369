/*
 * cuda_matmul.cu — out[T, N] = x[T, K] · W[N, K]^T (+ bias[N]), x and out float32, W bf16, f16 or
 * float32 in device memory.
 *
 * Three paths, chosen by T and W's dtype:
 *   - T <= GEMV_MAX_ROWS (decode, small batches): a bandwidth-bound GEMV. One warp per output
 *     row reads the weight row once (16-byte loads when K % 8 == 0) and dots it with every x row;
 *     float32 sums, reduced by shuffles. Reading W once is the floor for decode.
 *   - bf16 W, more rows: cuBLAS on the tensor cores. x is split into two bf16 halves,
 *     x = hi + lo with hi = bf16(x), lo = bf16(x - hi), and out = W·hi + W·lo (two GEMMs, the
 *     second with beta = 1). The bf16 weight times each half is exact in the float32 accumulator,
 *     and hi + lo carries 16 significant bits of x, so the result is within ~4e-6 (relative) of
 *     the float32 product: float32 quality at twice the tensor-core work.
 *   - f16/f32 W, more rows: the tiled float32 kernel of cuda_internal.h (cu_tile_mma).
 * Tested by tests/ops/test_ops.c (T 1..100, odd K and N, every dtype, unaligned sources, bias).
 */
#include "backend/cuda/cuda_internal.h"

#define GEMV_MAX_ROWS 8
#define GEMV_WARPS 8

/* ---- GEMV ----------------------------------------------------------------------------------- */

/* TMAX: the row count rounded up to 1, 2, 4 or 8, so that decode (T = 1) keeps one accumulator
 * and few registers (more warps per SM, more loads in flight). */
template <typename WT, bool VEC, int TMAX>
__global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_kernel(float *out, const float *x, const WT *W,
                                                               const float *bias, int T, int N, int K) {
    const int n = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (n >= N) return;
    float acc[TMAX];
#pragma unroll
    for (int t = 0; t < TMAX; t++) acc[t] = 0.0f;
    cu_warp_dot<WT, VEC, TMAX>(W + (int64_t)n * K, x, K, T, K, acc);
    const float b = bias ? bias[n] : 0.0f;
#pragma unroll
    for (int t = 0; t < TMAX; t++) {
        if (t < T) {
            float s = cu_warp_sum(acc[t]);
            if ((threadIdx.x & 31) == 0) out[(int64_t)t * N + n] = s + b;
        }
    }
}

template <typename WT>
static glmoe_status gemv(cuda_exec *cx, float *out, const float *x, const WT *W, const float *bias, int T, int N,
                         int K, gm_err *err) {
    const bool vec = K % 8 == 0 && cu_aligned(W, 16) && cu_aligned(x, 16);
    const unsigned blocks = cu_blocks(N, GEMV_WARPS);
#define GEMV_LAUNCH(TM)                                                                                  \
    do {                                                                                                 \
        if (vec)                                                                                         \
            gemv_kernel<WT, true, TM><<<blocks, GEMV_WARPS * 32, 0, cx->stream>>>(out, x, W, bias, T, N, K); \
        else                                                                                             \
            gemv_kernel<WT, false, TM><<<blocks, GEMV_WARPS * 32, 0, cx->stream>>>(out, x, W, bias, T, N, K); \
    } while (0)
    if (T == 1) GEMV_LAUNCH(1);
    else if (T == 2) GEMV_LAUNCH(2);
    else if (T <= 4) GEMV_LAUNCH(4);
    else GEMV_LAUNCH(GEMV_MAX_ROWS);
#undef GEMV_LAUNCH
    CU_LAUNCHED();
    return GLMOE_OK;
}

/* ---- cuBLAS with x split into bf16 halves ------------------------------------------------------ */

__global__ void split_bf16_kernel(__nv_bfloat16 *hi, __nv_bfloat16 *lo, const float *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        cu_split_bf16(x[i], hi[i], lo[i]);
}

glmoe_status cuda_gemm_split_bf16(cuda_exec *cx, float *out, const void *W, const __nv_bfloat16 *hi,
                                  const __nv_bfloat16 *lo, int N, int T, int K, gm_err *err) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_TRY(cublasGemmEx(cx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, W, CUDA_R_16BF, K, hi, CUDA_R_16BF,
                            K, &zero, out, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    CUBLAS_TRY(cublasGemmEx(cx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, N, T, K, &one, W, CUDA_R_16BF, K, lo, CUDA_R_16BF,
                            K, &one, out, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return GLMOE_OK;
}

__global__ void add_bias_kernel(float *out, const float *bias, int64_t T, int N) {
    const int64_t total = T * N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total; i += (int64_t)gridDim.x * blockDim.x)
        out[i] += bias[i % N];
}

static glmoe_status gemm_bf16(cuda_exec *cx, float *out, const float *x, const __nv_bfloat16 *W,
                              const float *bias, int T, int N, int K, gm_err *err) {
    const size_t n = (size_t)T * (size_t)K;
    if (2 * n > cx->split_elems)
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: matmul of %d x %d inputs exceeds the reserved scratch (%zu)", T, K,
                       cx->split_elems / 2);
    __nv_bfloat16 *hi = cx->split, *lo = cx->split + n;
    unsigned blocks = cu_blocks((int64_t)n, 256);
    if (blocks > (unsigned)cx->cb->sm_count * 16) blocks = (unsigned)cx->cb->sm_count * 16;
    split_bf16_kernel<<<blocks, 256, 0, cx->stream>>>(hi, lo, x, (int64_t)n);
    CU_LAUNCHED();
    glmoe_status s = cuda_gemm_split_bf16(cx, out, W, hi, lo, N, T, K, err);
    if (s) return s;
    if (bias) {
        unsigned bb = cu_blocks((int64_t)T * N, 256);
        if (bb > (unsigned)cx->cb->sm_count * 16) bb = (unsigned)cx->cb->sm_count * 16;
        add_bias_kernel<<<bb, 256, 0, cx->stream>>>(out, bias, T, N);
        CU_LAUNCHED();
    }
    return GLMOE_OK;
}

/* ---- tiled float32 GEMM (f16 / f32 weights) ------------------------------------------------- */

template <typename WT>
__global__ void __launch_bounds__(256) gemm_tile_kernel(float *out, const float *x, const WT *W, const float *bias,
                                                        int T, int N, int K) {
    __shared__ __align__(16) cu_tile_smem sm;
    const int m0 = blockIdx.y * CU_TILE_M, n0 = blockIdx.x * CU_TILE_N;
    float acc[4][4] = {};
    cu_tile_mma<WT>(acc, sm, x + (int64_t)m0 * K, nullptr, T - m0, K, W, n0, N, K);
    const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        int m = m0 + ty * 4 + i;
        if (m >= T) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int nn = n0 + tx * 4 + j;
            if (nn < N) out[(int64_t)m * N + nn] = acc[i][j] + (bias ? bias[nn] : 0.0f);
        }
    }
}

template <typename WT>
static glmoe_status gemm_tile(cuda_exec *cx, float *out, const float *x, const WT *W, const float *bias, int T,
                              int N, int K, gm_err *err) {
    dim3 grid(cu_blocks(N, CU_TILE_N), cu_blocks(T, CU_TILE_M));
    gemm_tile_kernel<WT><<<grid, 256, 0, cx->stream>>>(out, x, W, bias, T, N, K);
    CU_LAUNCHED();
    return GLMOE_OK;
}

/* ---- entry ------------------------------------------------------------------------------------ */

glmoe_status cuda_matmul(gm_exec *ex, float *out, const float *x, const gm_weight *W, const gm_weight *bias,
                         int32_t T, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    const float *b = bias && bias->data ? (const float *)bias->data : nullptr;
    if (T <= 0) return GLMOE_OK;
    if (W->rows > INT32_MAX || W->cols > INT32_MAX)
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: matmul of a %lld x %lld matrix is too large",
                       (long long)W->rows, (long long)W->cols);
    const int N = (int)W->rows, K = (int)W->cols;
    if (W->type == GM_W_AFFINE) return cuda_affine_matmul(cx, out, x, W, b, T, err);
    if (T <= GEMV_MAX_ROWS) {
        glmoe_status s = GLMOE_OK;
        CU_DISPATCH_WTYPE(W->type, WT, s = gemv<WT>(cx, out, x, (const WT *)W->data, b, T, N, K, err));
        return s;
    }
    if (W->type == GM_W_BF16) return gemm_bf16(cx, out, x, (const __nv_bfloat16 *)W->data, b, T, N, K, err);
    if (W->type == GM_W_F16) return gemm_tile<__half>(cx, out, x, (const __half *)W->data, b, T, N, K, err);
    return gemm_tile<float>(cx, out, x, (const float *)W->data, b, T, N, K, err);
}

/* Several weights on the same x: one launch of the tensor-core GEMVs when all are 4- or 8-bit
 * affine weights of one format and T <= 8 (cuda_quant_mmv.cu), else a matmul each. */
glmoe_status cuda_matmul_n(gm_exec *ex, float *const *out, const float *x, const gm_weight *const *W,
                           const gm_weight *const *bias, int n, int32_t T, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    if (cuda_affine_mmv_takes(W, n, x, T)) {
        const float *b[3] = {nullptr, nullptr, nullptr};
        for (int i = 0; i < n && i < 3; i++) b[i] = bias && bias[i] && bias[i]->data ? (const float *)bias[i]->data : nullptr;
        return cuda_affine_mmv(cx, out, x, W, b, n, T, err);
    }
    for (int i = 0; i < n; i++) {
        glmoe_status s = cuda_matmul(ex, out[i], x, W[i], bias ? bias[i] : nullptr, T, err);
        if (s) return s;
    }
    return GLMOE_OK;
}
