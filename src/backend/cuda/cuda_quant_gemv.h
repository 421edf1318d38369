/*
 * cuda_quant_gemv.h — the core of the affine GEMVs of 1..8 tokens (CUDA C++ only): a block of
 * AFF_WARPS warps dots R weight rows per warp, 4- or 8-bit codes in MLX's layout (formats.h),
 * with up to TMAX rows of x staged in shared memory. cuda_quant.cu (the dense matmul) and
 * cuda_moe.cu (the experts' decode GEMVs) build their kernels on it; the other bit widths and
 * unaligned weights take the general per-element decoder (cu_affine_elem) instead.
 *
 * Reads. A row is read in 16-byte chunks of 128/B codes (32 at 4 bits, 16 at 8): lane l takes
 * chunks l, l + 32, ... (a warp instruction covers 512 contiguous bytes), and issues U chunks of
 * each of its R rows before using any (U·R·16 bytes in flight per lane), as streaming loads
 * (ld.global.nc.L1::no_allocate: every code byte is used once). Groups are 32, 64 or 128 codes,
 * multiples of the chunk, so a chunk has one scale and one bias (two 2- or 4-byte loads through
 * the cache, shared with the neighbouring lanes). Each code is read once for all the tokens.
 *
 * Arithmetic: per chunk, Σ_k x_k (s·q_k + b) = s·Σ_k x_k q_k + b·Σ_k x_k, MLX's own form
 * (docs/spec/quantization.md §2.4), float32 throughout. The decode of every element as the CPU
 * does it (s·q rounded, + b rounded) costs ~4 instructions per code before the product; at
 * 4 bits the HBM delivers ~29 codes per clock per SM, which would keep the SM's 128 lanes busy
 * at T = 1 already. The factored form costs one AND and T FMAs per code:
 *   - A code q at bits [B·p, B·p + B) of the low half of a word (the high half is shifted down
 *     once per word) is turned into a float by masking alone: the bit pattern q·2^(B·p) is the
 *     subnormal float q·2^(B·p - 149), exact. x is staged multiplied by 2^(64 - B·p) (exact:
 *     a power of two), so x_s · f = x·q·2^-85 for every position p, and the FMAs accumulate
 *     2^-85 · Σ x·q with the very roundings of a plain float32 sum (scaling by powers of two
 *     commutes with rounding while nothing under- or overflows: |x| < 2^64, and products
 *     below 2^-126 — |x·q| < 2^-41 — keep an absolute error under 2^-64). The FMAs are
 *     written in PTX without .ftz, so no flush-to-zero flag can break them.
 *   - Σ_k x_k per chunk and token is computed once when x is staged.
 * Error: the two terms s·Σxq and b·Σx are each about as large as the chunk's contribution, so
 * the float32 error stays at a few ulps of Σ|x|·|w| per chunk, as for a dot product of decoded
 * weights: the op tests (tests/ops/check_affine.c, against a float64 reference at
 * 1e-5 relative) hold it with two orders of magnitude to spare (estimated ~1e-7).
 *
 * x in shared memory: [token][chunk][128/B + 4 floats] (scaled copies; the 4-float pad makes
 * the lanes' 128-bit reads, 32 chunks apart, hit distinct banks in each quarter warp), then the
 * chunk sums [token][chunk]. When T·K does not fit AFF_SMEM_BYTES the row is done in slices of
 * kc chunks (aff_slice_chunks), restaging x per slice. The first chunks' codes are loaded before
 * x is staged, so that HBM latency overlaps the staging.
 *
 * Per code at T tokens: 1 AND + T FMAs (plus 1/(128/B) of the chunk's scale/bias work); the
 * shared-memory reads of x are 4·T/R bytes per code. Bound: HBM at T <= 2 (4 bits) and T <= 4
 * (8 bits); beyond, the FMAs (T per code at ~29 codes/clk/SM at 4 bits) exceed the SM's 128
 * lanes, and the kernel is compute bound near 128/(T+1) codes per clock.
 */
#ifndef GLMOE_CUDA_QUANT_GEMV_H
#define GLMOE_CUDA_QUANT_GEMV_H

#include "backend/cuda/cuda_internal.h"

#define AFF_WARPS 8
#define AFF_THREADS (AFF_WARPS * CUDA_WARP)
/* Dynamic shared memory per block: with the kernels' static shared memory (up to ~2 KB, the
 * experts' grouping) under the 48 KB a block may take without an opt-in. */
#define AFF_SMEM_BYTES (44 * 1024)
#define AFF_MAX_TOKENS 8

/* Rows per warp and chunks per row in flight, by the token capacity: more rows share each x read
 * from shared memory; with 8 tokens the accumulators take the registers. */
__host__ __device__ constexpr int aff_rows_per_warp(int tmax) { return tmax <= 2 ? 4 : 2; }
__host__ __device__ constexpr int aff_unroll(int tmax) { return tmax == 2 ? 1 : 2; }

/* One weight row as the core reads it. */
struct aff_row {
    const uint4 *q;          /* the row's codes (16-byte aligned) */
    const char *s, *b;       /* the row's first scale and bias */
    int st;                  /* their type (gm_wtype: F32, BF16, F16) */
    int cpg_log2;            /* log2 of the chunks per group */
    bool ok;                 /* false: past the matrix's end (reads nothing, adds nothing) */
};

/* Whether an affine weight has the layout the core reads: B bits, a 16-byte aligned base and rows
 * a multiple of 16 bytes (always true at 4 and 8 bits: cols is a multiple of 32). */
__host__ __device__ inline bool aff_fast_layout(const cu_affine &a, int B) {
    return a.bits == B && ((uintptr_t)a.codes & 15) == 0 && (a.row_words & 3) == 0;
}

/* Whether every row of a weight's scales and biases starts 4-byte aligned (the decode GEMVs'
 * asynchronous ring copies them as words: cuda_quant_mmv.cuh). */
__host__ __device__ inline bool aff_scale_rows_word_aligned(const cu_affine &a) {
    return ((uintptr_t)a.scales & 3) == 0 && ((uintptr_t)a.biases & 3) == 0 &&
           (a.scale_type == GM_W_F32 || a.groups % 2 == 0);
}

template <int B>
__device__ __forceinline__ aff_row aff_row_of(const cu_affine &a, int64_t row, bool ok) {
    aff_row r;
    r.ok = ok;
    if (!ok) row = 0;
    const int64_t es = a.scale_type == GM_W_F32 ? 4 : 2;
    r.q = reinterpret_cast<const uint4 *>(a.codes + row * a.row_words);
    r.s = (const char *)a.scales + row * a.groups * es;
    r.b = (const char *)a.biases + row * a.groups * es;
    r.st = a.scale_type;
    r.cpg_log2 = __ffs(a.group / (128 / B)) - 1;
    return r;
}

__device__ __forceinline__ uint4 aff_ld_stream(const uint4 *p) {
    uint4 v;
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
    return v;
}

/* a·b + c with subnormals honoured whatever the compiler's flush-to-zero setting. */
__device__ __forceinline__ float aff_fma(float a, float b, float c) {
    float d;
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(d) : "f"(a), "f"(b), "f"(c));
    return d;
}

__device__ __forceinline__ float aff_scale(const char *p, int st, int i) {
    if (st == GM_W_BF16) return __bfloat162float(__ldg(reinterpret_cast<const __nv_bfloat16 *>(p) + i));
    if (st == GM_W_F16) return __half2float(__ldg(reinterpret_cast<const __half *>(p) + i));
    return __ldg(reinterpret_cast<const float *>(p) + i);
}

__device__ __forceinline__ uint32_t aff_word(const uint4 &q, int j) {
    return j == 0 ? q.x : j == 1 ? q.y : j == 2 ? q.z : q.w;
}

/* The loads of U chunks (c, c + 32, ...) of R rows: codes, scales, biases; zeros past c_end. */
template <int R, int U>
struct aff_batch {
    uint4 q[U][R];
    float s[U][R], b[U][R];
};

template <int R, int U>
__device__ __forceinline__ void aff_load(aff_batch<R, U> &bt, const aff_row (&rows)[R], int c, int c_end) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int cu = c + 32 * u;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const bool v = cu < c_end && rows[r].ok;
            const int g = cu >> rows[r].cpg_log2;
            bt.q[u][r] = v ? aff_ld_stream(rows[r].q + cu) : make_uint4(0, 0, 0, 0);
            bt.s[u][r] = v ? aff_scale(rows[r].s, rows[r].st, g) : 0.0f;
            bt.b[u][r] = v ? aff_scale(rows[r].b, rows[r].st, g) : 0.0f;
        }
    }
}

/* acc[r][t] += this lane's chunks of the batch: per chunk s·Σ x·q + b·Σ x (file comment). xs and
 * xsum are the staged slice starting at chunk c0 (row stride ldx floats, kc chunk sums per
 * token). */
template <int B, int TMAX, int R, int U>
__device__ __forceinline__ void aff_compute(const aff_batch<R, U> &bt, int c, int c_end, int c0, const float *xs,
                                            const float *xsum, int ldx, int kc, int nt, float (&acc)[R][TMAX]) {
    constexpr int CPC = 128 / B, CPW = 32 / B, CPH = 16 / B; /* codes per chunk, word, half word */
    constexpr uint32_t MASK = (1u << B) - 1u;
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int lc = c + 32 * u - c0; /* the chunk in the slice */
        if (c + 32 * u >= c_end) break;
        const float *xc = xs + lc * (CPC + 4);
        float part[R][TMAX];
#pragma unroll
        for (int r = 0; r < R; r++)
#pragma unroll
            for (int t = 0; t < TMAX; t++) part[r][t] = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            float f[R][CPW]; /* the codes of word j as subnormals q·2^(B·p - 149) */
#pragma unroll
            for (int r = 0; r < R; r++) {
                const uint32_t w = aff_word(bt.q[u][r], j), hi = w >> 16;
#pragma unroll
                for (int p = 0; p < CPW; p++)
                    f[r][p] = __uint_as_float((p < CPH ? w : hi) & (MASK << (B * (p % CPH))));
            }
#pragma unroll
            for (int t = 0; t < TMAX; t++) {
                if (t >= nt) break;
                float xv[CPW];
#pragma unroll
                for (int v = 0; v < CPW / 4; v++) {
                    const float4 a = *reinterpret_cast<const float4 *>(xc + t * ldx + j * CPW + 4 * v);
                    xv[4 * v] = a.x, xv[4 * v + 1] = a.y, xv[4 * v + 2] = a.z, xv[4 * v + 3] = a.w;
                }
#pragma unroll
                for (int r = 0; r < R; r++)
#pragma unroll
                    for (int p = 0; p < CPW; p++) part[r][t] = aff_fma(xv[p], f[r][p], part[r][t]);
            }
        }
#pragma unroll
        for (int t = 0; t < TMAX; t++) {
            if (t >= nt) break;
            const float sx = xsum[t * kc + lc];
#pragma unroll
            for (int r = 0; r < R; r++)
                acc[r][t] = fmaf(bt.b[u][r], sx, fmaf(bt.s[u][r], part[r][t] * 0x1p85f, acc[r][t]));
        }
    }
}

/* Stages chunks [c0, c1) of the nt rows xrow[t] (16-byte aligned) into shared memory: the copies
 * scaled by 2^(64 - B·p) in the padded layout, and each chunk's plain sum (a fixed shuffle
 * order, so results are reproducible). Every thread of the block calls it. */
template <int B>
__device__ __forceinline__ void aff_stage(float *xs, float *xsum, const float *const *xrow, int nt, int c0, int c1,
                                          int ldx, int kc) {
    constexpr int CPC = 128 / B, F4 = CPC / 4, CPH = 16 / B; /* F4 float4s (lanes) per chunk */
    const int n4 = (c1 - c0) * F4, total = nt * n4;
    /* i0 steps by the block size, a multiple of F4: a chunk's F4 lanes are aligned in a warp */
    for (int i0 = 0; i0 < total; i0 += blockDim.x) {
        const int i = i0 + threadIdx.x;
        const bool v = i < total;
        const int t = v ? i / n4 : 0, f = v ? i - t * n4 : 0;
        const float4 a = v ? __ldg(reinterpret_cast<const float4 *>(xrow[t] + (int64_t)c0 * CPC + 4 * f))
                           : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        float sum = (a.x + a.y) + (a.z + a.w);
#pragma unroll
        for (int o = 1; o < F4; o <<= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (v) {
            /* 2^(64 - B·p) for the positions p = (4f + 0..3) mod CPH of the half word */
            const float e0 = __uint_as_float((uint32_t)(127 + 64) << 23);
            const float e1 = __uint_as_float((uint32_t)(127 + 64 - B * (1 % CPH)) << 23);
            const float e2 = __uint_as_float((uint32_t)(127 + 64 - B * (2 % CPH)) << 23);
            const float e3 = __uint_as_float((uint32_t)(127 + 64 - B * (3 % CPH)) << 23);
            const int ch = f / F4, w = f - ch * F4;
            *reinterpret_cast<float4 *>(xs + t * ldx + ch * (CPC + 4) + 4 * w) =
                make_float4(a.x * e0, a.y * e1, a.z * e2, a.w * e3);
            if (w == 0) xsum[t * kc + ch] = sum;
        }
    }
}

/* acc[r][t] (lane partials; reduce with cu_warp_sum) += row r · x row t, t < nt <= TMAX, over
 * K inputs, in slices of kc chunks. Every thread of the block calls it (it synchronises); smem
 * holds nt·kc·(128/B + 5) floats; xrow (nt pointers, may be in shared memory) is read after the
 * first barrier, so a caller may fill it just before the call. */
template <int B, int TMAX, int R, int U>
__device__ __forceinline__ void aff_block_dot(const aff_row (&rows)[R], const float *const *xrow, int nt, int K,
                                              int kc, float *smem, float (&acc)[R][TMAX]) {
    constexpr int CPC = 128 / B;
    const int nch = K / CPC, ldx = kc * (CPC + 4);
    float *xs = smem, *xsum = smem + nt * ldx;
    const int lane = threadIdx.x & 31;
    for (int c0 = 0; c0 < nch; c0 += kc) {
        const int c1 = min(c0 + kc, nch);
        int c = c0 + lane;
        aff_batch<R, U> bt;
        aff_load<R, U>(bt, rows, c, c1); /* in flight while x is staged */
        __syncthreads();                 /* the last slice's readers are done */
        aff_stage<B>(xs, xsum, xrow, nt, c0, c1, ldx, kc);
        __syncthreads();
        while (c < c1) {
            aff_compute<B, TMAX, R, U>(bt, c, c1, c0, xs, xsum, ldx, kc, nt, acc);
            c += 32 * U;
            if (c < c1) aff_load<R, U>(bt, rows, c, c1);
        }
    }
}

/* When x fits one slice (kc·128/B >= K): the block stages all of it once (every thread calls
 * this; it synchronises), and then each warp dots as many row groups as it is given without a
 * further barrier (aff_warp_dot_staged), so that a block's staging is paid once for all its rows
 * and its warps drift apart (one's loads in flight while another computes). */
template <int B>
__device__ __forceinline__ void aff_stage_whole(float *smem, const float *const *xrow, int nt, int K, int kc) {
    constexpr int CPC = 128 / B;
    const int ldx = kc * (CPC + 4);
    __syncthreads(); /* xrow written, and the smem's last readers done */
    aff_stage<B>(smem, smem + nt * ldx, xrow, nt, 0, K / CPC, ldx, kc);
    __syncthreads();
}

template <int B, int TMAX, int R, int U>
__device__ __forceinline__ void aff_warp_dot_staged(const aff_row (&rows)[R], int nt, int K, int kc,
                                                    const float *smem, float (&acc)[R][TMAX]) {
    constexpr int CPC = 128 / B;
    const int nch = K / CPC, ldx = kc * (CPC + 4);
    const float *xs = smem, *xsum = smem + nt * ldx;
    int c = threadIdx.x & 31;
    aff_batch<R, U> bt;
    aff_load<R, U>(bt, rows, c, nch);
    while (c < nch) {
        aff_compute<B, TMAX, R, U>(bt, c, nch, 0, xs, xsum, ldx, kc, nt, acc);
        c += 32 * U;
        if (c < nch) aff_load<R, U>(bt, rows, c, nch);
    }
}

/* Whether the kernels walk row groups after one staging of x (cuda_quant.cu; the environment
 * variable GLMOE_CUDA_AFF_PERSIST=0 turns it off, for comparisons). */
bool aff_persist_on(void);

/* The most tokens of a matmul or an experts' call the GEMVs take (cuda_quant.cu; default 8). */
int aff_gemv_tokens(void);

/* Whether x of K inputs, ntok rows, fits one slice (aff_stage_whole). */
static inline bool aff_fits_whole(int B, int K, int kc) { return kc * (128 / B) >= K; }

/* Blocks per row range when the warps walk row groups: about two blocks per SM over all the
 * `parallel` independent ranges (experts) of the launch, at most `full` (one row group per warp). */
static inline unsigned aff_walk_blocks(unsigned full, int sm_count, int parallel) {
    const unsigned want = (unsigned)((2 * sm_count + parallel - 1) / (parallel > 0 ? parallel : 1));
    return want < 1 ? 1 : want < full ? want : full;
}

/* Chunks per slice for K inputs and ntok staged rows, and the dynamic shared memory it takes. */
static inline int aff_slice_chunks(int B, int K, int ntok) {
    const int cpc = 128 / B, nch = K / cpc > 0 ? K / cpc : 1;
    int kc = (int)(AFF_SMEM_BYTES / ((size_t)ntok * (size_t)(cpc + 5) * sizeof(float)));
    if (kc >= 32) kc &= ~31; /* whole warps of chunks per slice */
    return kc < nch ? kc : nch;
}
static inline size_t aff_smem_bytes(int B, int kc, int ntok) {
    return (size_t)ntok * (size_t)kc * (size_t)(128 / B + 5) * sizeof(float);
}

/* The token capacity of a kernel for T tokens: 1, 2, 4 or 8. */
static inline int aff_tmax(int T) { return T <= 1 ? 1 : T == 2 ? 2 : T <= 4 ? 4 : 8; }

#endif
