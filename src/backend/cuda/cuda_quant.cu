/*
 * cuda_quant.cu — affine-quantized weights (MLX's format, backend/formats.h) on the GPU: the
 * matmul and the embedding row lookup; the experts' projections are in cuda_moe.cu (their decode
 * GEMVs share this file's core, cuda_quant_gemv.h).
 *
 * matmul, out[T, N] = x[T, K] · W[N, K]^T (+ bias), x and out float32, in launches of at most
 * AFFINE_TOKENS tokens:
 *   - 4 and 8 bits, 16-byte aligned codes and x (every weight the backend uploads):
 *     affine_gemv_fast, a block of AFF_WARPS warps x R rows, x staged in shared memory, each code
 *     read once for all tokens of the launch with 128-bit streaming loads, s·Σxq + b·Σx per
 *     16-byte chunk (cuda_quant_gemv.h says how, and why that form). Per launch: 2·T·N·K FLOPs,
 *     N·K·B/8 bytes of codes + 2·N·(K/g)·sizeof(scale) of scales and biases (q4 g64 bf16:
 *     N·K·(1/2 + 1/16) bytes) + T·(K + N)·4 of x and out. HBM bound at T <= 2 (q4) / 4 (q8),
 *     beyond that bound by the T FMAs per code (cuda_quant_gemv.h).
 *   - 2, 3, 5, 6 bits (or unaligned codes): the general decoder, affine_gemv_kernel: a warp per
 *     row, one element at a time (two 32-bit loads per code at most, scale and bias through the
 *     cache), decoded exactly as the CPU does (cu_affine_elem). Correct, not tuned: said once in
 *     the log and listed in BENCHMARKS.md.
 *   - T > AFFINE_TOKENS (prefill): the tensor-core GEMM of cuda_quant_mma.cu.
 * embed: the row of each id decoded exactly (cu_affine_elem), one block per token.
 * Tested by tests/ops/check_affine.c (check_affine: every bit width x group x scale dtype, T 1..8 and
 * beyond, N not a multiple of the rows per block, K of one and several slices) against the
 * float64 reference, and by the MLX golden cases in tools/gpu/run_gpu.sh (float32 KV cache: the
 * general decoder within 7e-6 of MLX on an H100, 2026-12-07).
 */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_quant_gemv.h"

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

/* The general decoder: a warp per row, one element at a time (any bit width, any alignment). */
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

/* out[t][n0 + r] = row r · x_t (+ bias) for t < T: the lanes' partial sums reduced, lane 0 writes. */
template <int R, int TMAX>
__device__ __forceinline__ void aff_store_rows(float *out, const float (&acc)[R][TMAX], const aff_row (&rows)[R],
                                               const float *bias, int n0, int N, int T) {
#pragma unroll
    for (int r = 0; r < R; r++) {
        const float b = bias && rows[r].ok ? bias[n0 + r] : 0.0f;
#pragma unroll
        for (int t = 0; t < TMAX; t++) {
            if (t >= T) break;
            const float v = cu_warp_sum(acc[r][t]);
            if ((threadIdx.x & 31) == 0 && rows[r].ok) out[(int64_t)t * N + n0 + r] = v + b;
        }
    }
}

/* B-bit codes (4 or 8), T <= TMAX tokens: warp w of block i owns rows (i·AFF_WARPS + w)·R ..
 * + R - 1 (rows past N read nothing and are not written); the block stages x in slices of kc
 * chunks (cuda_quant_gemv.h). FLOPs, bytes and bound: the file comment. */
template <int B, int TMAX>
__global__ void __launch_bounds__(AFF_THREADS, 2) affine_gemv_fast(float *out, const float *x, cu_affine w,
                                                                   const float *bias, int T, int N, int K, int kc) {
    constexpr int R = aff_rows_per_warp(TMAX), U = aff_unroll(TMAX);
    extern __shared__ float4 aff_smem[];
    __shared__ const float *xrow[TMAX];
    if (threadIdx.x < T) xrow[threadIdx.x] = x + (int64_t)threadIdx.x * K;
    const int warp = threadIdx.x >> 5, n0 = (blockIdx.x * AFF_WARPS + warp) * R;
    aff_row rows[R];
#pragma unroll
    for (int r = 0; r < R; r++) rows[r] = aff_row_of<B>(w, n0 + r, n0 + r < N);
    float acc[R][TMAX];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < TMAX; t++) acc[r][t] = 0.0f;
    aff_block_dot<B, TMAX, R, U>(rows, xrow, T, K, kc, reinterpret_cast<float *>(aff_smem), acc);
    aff_store_rows<R, TMAX>(out, acc, rows, bias, n0, N, T);
}

/* The same dot products when x fits shared memory in one slice (T <= 2 at the decode shapes): a
 * grid of about two blocks per SM stages x once per block and its warps then walk row groups of
 * RP rows (gi = block·AFF_WARPS + warp, then + the grid's warps) with no further barrier, so
 * that each block's staging is paid once rather than per 32 rows, the warps drift apart (one's
 * loads in flight while another computes), and no half-empty last wave of blocks is left: the
 * per-block form ran at 29% of the copy bandwidth on the Air shapes (H100, 2026-12-07). */
template <int B, int TMAX>
__global__ void __launch_bounds__(AFF_THREADS, 2) affine_gemv_persist(float *out, const float *x, cu_affine w,
                                                                      const float *bias, int T, int N, int K, int kc) {
    constexpr int R = 2, U = TMAX <= 1 ? 4 : 2;
    extern __shared__ float4 aff_smem[];
    __shared__ const float *xrow[TMAX];
    if (threadIdx.x < T) xrow[threadIdx.x] = x + (int64_t)threadIdx.x * K;
    float *smem = reinterpret_cast<float *>(aff_smem);
    aff_stage_whole<B>(smem, xrow, T, K, kc);
    const int groups = (N + R - 1) / R;
    for (int gi = blockIdx.x * AFF_WARPS + (threadIdx.x >> 5); gi < groups; gi += gridDim.x * AFF_WARPS) {
        const int n0 = gi * R;
        aff_row rows[R];
#pragma unroll
        for (int r = 0; r < R; r++) rows[r] = aff_row_of<B>(w, n0 + r, n0 + r < N);
        float acc[R][TMAX] = {};
        aff_warp_dot_staged<B, TMAX, R, U>(rows, T, K, kc, smem, acc);
        aff_store_rows<R, TMAX>(out, acc, rows, bias, n0, N, T);
    }
}

/* The most tokens the GEMVs take; more go to the tensor cores (cuda_quant_mma.cu). The variable
 * GLMOE_CUDA_AFF_GEMV_TOKENS (1..8) moves the switch, for comparing the two paths. */
int aff_gemv_tokens(void) {
    static int v = 0;
    if (!v) {
        const char *e = getenv("GLMOE_CUDA_AFF_GEMV_TOKENS");
        const int n = e ? atoi(e) : 0;
        v = n >= 1 && n <= AFFINE_TOKENS ? n : AFFINE_TOKENS;
    }
    return v;
}

/* GLMOE_CUDA_AFF_PERSIST=0: the per-block forms only (for comparisons). */
bool aff_persist_on(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("GLMOE_CUDA_AFF_PERSIST");
        v = !(e && !strcmp(e, "0"));
    }
    return v != 0;
}

template <int B, int TMAX>
static glmoe_status affine_gemv_fast_launch(cuda_exec *cx, float *out, const float *x, const cu_affine &a,
                                            const float *bias, int T, int N, int K, gm_err *err) {
    const int kc = aff_slice_chunks(B, K, T);
    if (TMAX <= 2 && aff_fits_whole(B, K, kc) && aff_persist_on()) {
        const unsigned blocks = aff_walk_blocks(cu_blocks(N, 2 * AFF_WARPS), cx->cb->sm_count, 1);
        affine_gemv_persist<B, TMAX><<<blocks, AFF_THREADS, aff_smem_bytes(B, kc, T), cx->stream>>>(out, x, a, bias, T,
                                                                                                   N, K, kc);
        CU_LAUNCHED();
        return GLMOE_OK;
    }
    const unsigned blocks = cu_blocks(N, AFF_WARPS * aff_rows_per_warp(TMAX));
    affine_gemv_fast<B, TMAX><<<blocks, AFF_THREADS, aff_smem_bytes(B, kc, T), cx->stream>>>(out, x, a, bias, T, N, K,
                                                                                            kc);
    CU_LAUNCHED();
    return GLMOE_OK;
}

template <int B>
static glmoe_status affine_gemv_fast_tokens(cuda_exec *cx, float *out, const float *x, const cu_affine &a,
                                            const float *bias, int T, int N, int K, gm_err *err) {
    switch (aff_tmax(T)) {
    case 1: return affine_gemv_fast_launch<B, 1>(cx, out, x, a, bias, T, N, K, err);
    case 2: return affine_gemv_fast_launch<B, 2>(cx, out, x, a, bias, T, N, K, err);
    case 4: return affine_gemv_fast_launch<B, 4>(cx, out, x, a, bias, T, N, K, err);
    default: return affine_gemv_fast_launch<B, 8>(cx, out, x, a, bias, T, N, K, err);
    }
}

glmoe_status cuda_affine_matmul(cuda_exec *cx, float *out, const float *x, const gm_weight *W, const float *bias,
                                int32_t T, gm_err *err) {
    const int N = (int)W->rows, K = (int)W->cols;
    if (T > aff_gemv_tokens()) return cuda_affine_matmul_mma(cx, out, x, W, bias, T, err); /* cuda_quant_mma.cu */
    if (cuda_affine_mmv_takes(&W, 1, x, T)) return cuda_affine_mmv(cx, &out, x, &W, &bias, 1, T, err);
    const cu_affine a = cu_affine_of(W);
    /* x rows are 16-byte aligned when x is (K is a multiple of 32). */
    const bool fast = (aff_fast_layout(a, 4) || aff_fast_layout(a, 8)) && cu_aligned(x, 16) && K % 32 == 0;
    if (!fast) {
        static int said;
        char f[64];
        if (cu_first_time(&said))
            gm_info("cuda: %s weights%s run the general affine decoder (one element at a time: the slow path; "
                    "4 and 8 bits have the fast GEMV)", gm_weight_format_name(W, f, sizeof f),
                    W->q.bits == 4 || W->q.bits == 8 ? " at unaligned addresses" : "");
    }
    const unsigned blocks = cu_blocks(N, AFFINE_WARPS);
    for (int32_t t0 = 0; t0 < T; t0 += AFFINE_TOKENS) {
        const int n = T - t0 < AFFINE_TOKENS ? T - t0 : AFFINE_TOKENS;
        const float *xt = x + (int64_t)t0 * K;
        float *ot = out + (int64_t)t0 * N;
        glmoe_status s = GLMOE_OK;
        if (fast && a.bits == 4)
            s = affine_gemv_fast_tokens<4>(cx, ot, xt, a, bias, n, N, K, err);
        else if (fast)
            s = affine_gemv_fast_tokens<8>(cx, ot, xt, a, bias, n, N, K, err);
        else if (n == 1)
            affine_gemv_kernel<1><<<blocks, AFFINE_WARPS * 32, 0, cx->stream>>>(ot, xt, a, bias, n, N, K);
        else if (n <= 4)
            affine_gemv_kernel<4><<<blocks, AFFINE_WARPS * 32, 0, cx->stream>>>(ot, xt, a, bias, n, N, K);
        else
            affine_gemv_kernel<AFFINE_TOKENS><<<blocks, AFFINE_WARPS * 32, 0, cx->stream>>>(ot, xt, a, bias, n, N, K);
        if (s) return s;
        CU_LAUNCHED();
    }
    return GLMOE_OK;
}

/* Block (x, t) decodes elements [x·256·EMBED_PER_THREAD, ...) of token t's row: a decode step's
 * one row (4096 values) over 4 blocks rather than one, whose serial latency was 14 us (H100). */
#define EMBED_PER_THREAD 4
__global__ void affine_embed_kernel(float *out, cu_affine table, const int32_t *ids, int64_t V, int64_t H,
                                    int32_t *fault) {
    const int t = blockIdx.y;
    const int32_t id = ids[t];
    if (id < 0 || id >= V) {
        if (threadIdx.x == 0 && blockIdx.x == 0)
            cu_raise_fault(fault, CUDA_FAULT_TOKEN, id, (int32_t)(V < INT32_MAX ? V : INT32_MAX));
        return;
    }
    float *o = out + (int64_t)t * H;
    const int64_t i0 = (int64_t)blockIdx.x * blockDim.x * EMBED_PER_THREAD + threadIdx.x;
#pragma unroll
    for (int j = 0; j < EMBED_PER_THREAD; j++) {
        const int64_t i = i0 + (int64_t)j * blockDim.x;
        if (i < H) o[i] = cu_affine_elem(table, id, i);
    }
}

glmoe_status cuda_affine_embed(cuda_exec *cx, float *out, const gm_weight *table, const int32_t *ids, int32_t T,
                               gm_err *err) {
    for (int32_t t0 = 0; t0 < T; t0 += 65535) { /* the grid's y limit */
        const int32_t n = T - t0 < 65535 ? T - t0 : 65535;
        const dim3 grid(cu_blocks(table->cols, 256 * EMBED_PER_THREAD), (unsigned)n);
        affine_embed_kernel<<<grid, 256, 0, cx->stream>>>(out + (int64_t)t0 * table->cols, cu_affine_of(table),
                                                          ids + t0, table->rows, table->cols, cx->d_fault);
        CU_LAUNCHED();
    }
    return GLMOE_OK;
}
