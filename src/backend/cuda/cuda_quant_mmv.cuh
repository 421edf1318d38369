/*
 * cuda_quant_mmv.cuh — the core of the affine GEMVs of 1..8 tokens on the tensor cores (CUDA C++
 * only): a warp multiplies a tile of 16 weight rows, 4- or 8-bit codes in MLX's layout
 * (formats.h), by up to 8 token columns with mma.sync m16n8k16 (fp16 operands, float32
 * accumulation). cuda_quant.cu (dense matmuls) and cuda_moe.cu (the experts' decode) build their
 * kernels on it.
 *
 * Why the tensor cores for a GEMV: the 8 columns of the mma's n dimension are the tokens, so 1 to
 * 8 tokens cost the same instructions, and the decode per code is a few fp16 instructions with no
 * per-token work: ~2 instructions per code at every T, where the float32 core (cuda_quant_gemv.h)
 * spends 1 + T per code and is compute bound from T = 3 (q4).
 *
 * Reads: a step is 4 threads x 16 bytes of each of the tile's 16 rows (thread (g, t) of the warp,
 * g = lane / 4, t = lane % 4, takes rows g and g + 8 at the 16-byte chunk 4·step + t), 128 codes
 * of a row at 4 bits, 64 at 8: 64 contiguous bytes per row, whole 32-byte sectors. Chunks are
 * read with streaming loads (every code byte is used once); a warp loads its next batch of
 * MMV_UNROLL steps while it computes the current one (mmv_pipeline), across tile boundaries.
 * A chunk lies in one group (groups of 32, 64 or 128 codes; a chunk is 32 or 16 codes), so it
 * takes one scale and one bias per row.
 *
 * The mma's k order is free: a dot product does not care in which order its terms are summed, as
 * long as weights and x are permuted alike. Thread t of the mma holds logical k {2t, 2t+1, 2t+8,
 * 2t+9} of its A rows and of its B column, so each thread feeds the mma the codes of its own
 * chunk: at 4 bits, word j of the chunk (codes p = 0..7 at bits 4p) gives two mmas, the pairs of
 * codes (p, p + 4) for p = 0, 1 (first) and 2, 3 (second); at 8 bits, word j (codes at bits 8p)
 * gives one mma, the pairs (0, 2) and (1, 3). A pair of codes becomes an fp16 pair by one LOP3
 * (the code under the exponent of 1024: the half 1024 + q exactly; at 4 bits the odd pairs are
 * masked in place, 1024 + 16q, so that a word takes one shift, not three), one HSUB2 or HFMA2 (q,
 * exact) and one HFMA2 (q·s + b, rounded once to fp16). x is staged in shared memory as fp16 in the same pair
 * order, so that one 16-byte shared load gives a thread the B registers of its word(s).
 *
 * Error: the weight s·q + b and x are rounded to fp16 (relative 2^-11 each), the products and
 * sums are exact-then-float32: the error is ~2^-11 of Σ|w·x|, as the fp16 tensor-core prefill
 * (cuda_quant_mma.cu), and the op tests hold it to the same bar (tests/ops/checks.h,
 * TOL_AFFINE_TC). Values beyond fp16's range are clipped to ±65504 (x) — activations of the
 * released models stay far inside. Scales or biases below fp16's normal range (6.1e-5) keep an
 * absolute error of 2^-25.
 *
 * Measured (H100, 2026-12-07, Nsight Compute; BENCHMARKS.md): 19-45% of the DRAM peak at 12-21%
 * achieved occupancy and 22-40% of issue slots. More bytes in flight did not help: 8 warps per
 * block, 4 steps per batch and Hopper's bulk L2 prefetch of upcoming tiles each made the 4-layer
 * decode 9-11% slower (21:55Z), and were removed. What the warps wait on is shared memory: about
 * half their stall cycles (short scoreboard) are the x fragments each word loads right before its
 * mma (mmv_step). The fragment-first step (mmv_compute_batch's XF, GLMOE_CUDA_MMV_XFRAG=1) is the
 * change that answers it, written after the session's last device call: opt-in until timed.
 * The SASS of that kernel then showed the other half of the cost: the scale type read at run
 * time made every scale and bias load a three-way branch (~80 of a step's ~235 instructions);
 * it is a template argument since (~135). And the register pipeline keeps only about one batch
 * in flight per warp: the asynchronous ring (mmv_pipeline_async, GLMOE_CUDA_MMV_ASYNC=4 or 8)
 * streams the weights through shared memory with cp.async instead; opt-in until timed.
 *
 * Shared memory for x: [column][K rounded up to a step, + 32 halves] (the 64-byte pad puts
 * columns g and g + 1 in different bank halves); within a step the halves are ordered
 * [8-half unit u][thread t][8 halves in pair order], so that the 4 threads of a row read 64
 * contiguous bytes.
 */
#ifndef GLMOE_CUDA_QUANT_MMV_CUH
#define GLMOE_CUDA_QUANT_MMV_CUH

#include "backend/cuda/cuda_quant_gemv.h"

/* Warps per block, by kernel: gate/up 4 (two tiles per warp: 165 registers, 3 blocks per SM);
 * the dense and down GEMVs 4 (8 measured 9% slower, H100 2026-12-07 21:55Z). Registers decide the
 * blocks per SM here: code that is never run still costs them (an L2 prefetch switched off at run
 * time took gate/up from 165 to 187 registers, 2 blocks per SM, 55 -> 69 us). */
#define MMV_WARPS_DENSE 4
#define MMV_WARPS_GATEUP 4
#define MMV_COLS 8     /* token columns of the mma: at most 8 tokens per launch */
#define MMV_STAGE_LOADS_DENSE 8  /* loads in flight per thread while staging x (mmv_stage) */
#define MMV_STAGE_LOADS_GATEUP 1
#define MMV_STAGE_LOADS_DOWN 1
#define MMV_UNROLL 2   /* steps per batch (two batches in flight per warp; 4 measured 11% slower) */

/* Codes per 16-byte chunk, and per step (4 chunks). */
__host__ __device__ constexpr int mmv_codes_per_chunk(int B) { return 128 / B; }
__host__ __device__ constexpr int mmv_codes_per_step(int B) { return 512 / B; }

/* log2 of the chunks per group of a weight of B bits (groups of 32, 64 or 128 codes). */
__host__ __device__ inline int mmv_cpg_log2(int group, int B) {
    const int chunks = group / mmv_codes_per_chunk(B);
#ifdef __CUDA_ARCH__
    return __ffs(chunks) - 1;
#else
    return __builtin_ctz((unsigned)chunks);
#endif
}

/* Halves per staged column: K rounded up to a step, + the 32-half pad. */
__host__ __device__ inline int mmv_ldx(int B, int K) {
    const int cps = mmv_codes_per_step(B);
    return (K + cps - 1) / cps * cps + 32;
}
static inline size_t mmv_stage_bytes(int B, int K, int ncols) { return (size_t)ncols * (size_t)mmv_ldx(B, K) * 2; }
/* Whether ncols staged columns of K inputs and the reduction buffers fit a block's shared memory
 * (the 227 KB an H100 block may opt into, with room for the static part): K <= ~13,000 at 8
 * columns, every released GLM shape. */
static inline bool mmv_fits(int B, int K, int ncols) { return mmv_stage_bytes(B, K, ncols) + 16 * 1024 <= 220 * 1024; }

/* Where x[k] of a column goes in the staged order (file comment). */
template <int B>
__device__ __forceinline__ int mmv_pos(int k) {
    constexpr int CPC = mmv_codes_per_chunk(B), CPS = mmv_codes_per_step(B);
    const int s = k / CPS, r = k % CPS, t = r / CPC, within = r % CPC;
    const int u = within / 8, w8 = within % 8;
    /* 4 bits: word w8 / 8 of the unit is one word, the pair order (0,4,1,5,2,6,3,7);
     * 8 bits: a unit is two words of 4 codes, each in the pair order (0,2,1,3). */
    const int p = B == 4 ? (w8 % 4) * 2 + w8 / 4 : (w8 / 4) * 4 + (w8 % 2) * 2 + (w8 % 4) / 2;
    return s * CPS + u * 32 + t * 8 + p;
}

/* Stages ncols columns of K floats (column c at src[c], 16-byte aligned) as fp16 into xs in the
 * staged order; halves past K in the last step are zero. Every thread of the block calls it; the
 * caller synchronises before and after. A thread issues SL loads before it converts any: the
 * staging is on every block's critical path (x comes from L2, ~0.5 us a round trip), and a loop of
 * one load at a time made K = 12288 cost 24 round trips. But the SL float4 are registers on top of
 * the batch in flight: on an H100 (2026-12-07 21:55Z) SL = 8 took o_proj from 45.6 to 39.3 us and
 * the dense MLP's down from 46.1 to 41.5, and the experts' gate/up (165 -> 187 registers) from 55.2
 * to 69.3 and their down (113 -> 166) from 34.9 to 38.3; hence a count per kernel. */
template <int B, int SL>
__device__ __forceinline__ void mmv_stage(__half *xs, const float *const *src, int ncols, int K) {
    const int ldx = mmv_ldx(B, K), kr = ldx - 32, n4 = kr / 4, total = ncols * n4;
    for (int i0 = threadIdx.x; i0 < total; i0 += SL * blockDim.x) {
        float4 v[SL];
#pragma unroll
        for (int r = 0; r < SL; r++) {
            const int i = i0 + r * blockDim.x, c = i / n4, k = (i - c * n4) * 4;
            v[r] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (i < total && k < K) v[r] = __ldg(reinterpret_cast<const float4 *>(src[c] + k));
        }
#pragma unroll
        for (int r = 0; r < SL; r++) {
            const int i = i0 + r * blockDim.x, c = i / n4, k = (i - c * n4) * 4;
            if (i >= total) break;
            __half *col = xs + (size_t)c * ldx;
            const float lim = 65504.0f;
            col[mmv_pos<B>(k + 0)] = __float2half_rn(fminf(fmaxf(v[r].x, -lim), lim));
            col[mmv_pos<B>(k + 1)] = __float2half_rn(fminf(fmaxf(v[r].y, -lim), lim));
            col[mmv_pos<B>(k + 2)] = __float2half_rn(fminf(fmaxf(v[r].z, -lim), lim));
            col[mmv_pos<B>(k + 3)] = __float2half_rn(fminf(fmaxf(v[r].w, -lim), lim));
        }
    }
}

/* d += A·B. FREE: not volatile, so that the scheduler may move loads above it (the fragment-first
 * step, mmv_step's XF); the default step keeps the volatile form, as measured. */
template <bool FREE = false>
__device__ __forceinline__ void mmv_mma(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3, uint32_t b0,
                                        uint32_t b1) {
    if (FREE)
        asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
            "{%0,%1,%2,%3};"
            : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
            : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                     "{%0,%1,%2,%3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t mmv_lop3_mask_or(uint32_t a, uint32_t mask, uint32_t magic) {
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(d) : "r"(a), "r"(mask), "r"(magic)); /* (a & b) | c */
    return d;
}

__device__ __forceinline__ uint32_t h2_bits(__half2 h) { return *reinterpret_cast<uint32_t *>(&h); }
__device__ __forceinline__ __half2 bits_h2(uint32_t u) { return *reinterpret_cast<__half2 *>(&u); }

/* The fp16 pair (s·q_a + b, s·q_b + b) of two codes sitting as 1024 + q in the halves of m. */
__device__ __forceinline__ uint32_t mmv_decode_pair(uint32_t m, __half2 s2, __half2 b2) {
    const __half2 k1024 = __halves2half2(__ushort_as_half(0x6400), __ushort_as_half(0x6400));
    return h2_bits(__hfma2(__hsub2(bits_h2(m), k1024), s2, b2));
}

/* The same from 1024 + 16·q in each half (a nibble masked in place at bits 4..7): m/16 - 64 = q,
 * exact in fp16, in the HFMA2 that mmv_decode_pair spends on its HSUB2. */
__device__ __forceinline__ uint32_t mmv_decode_pair_hi(uint32_t m, __half2 s2, __half2 b2) {
    const __half2 k16th = __halves2half2(__ushort_as_half(0x2c00), __ushort_as_half(0x2c00)); /* 1/16 */
    const __half2 km64 = __halves2half2(__ushort_as_half(0xd400), __ushort_as_half(0xd400));  /* -64 */
    return h2_bits(__hfma2(__hfma2(bits_h2(m), k16th, km64), s2, b2));
}

/* One row's chunk as the mma reads it: 4 words of codes and the fp16 pairs (s, s), (b, b). */
struct mmv_chunk {
    uint4 q;
    __half2 s, b;
};

/* A weight tile: 16 rows of an affine matrix (rows past `rows` read nothing). */
struct mmv_tile {
    const uint4 *q0, *q1;  /* rows g and g + 8 of this thread: their chunk 0 */
    const char *s0, *s1, *b0, *b1;
    int cpg_log2;          /* log2 of the chunks per group */
    bool ok0, ok1;
    int nchunks;           /* chunks per row */
};

/* ST: the scale type (a gm_wtype), a template argument: read at run time it took every scale load
 * a three-way branch, ~80 of a step's ~235 instructions (SASS of mmv_dense_kernel, 2026-12-07). */
template <int B, int ST>
__device__ __forceinline__ mmv_tile mmv_tile_of(const cu_affine &a, int64_t row0, int64_t rows) {
    mmv_tile tl;
    const int g = (threadIdx.x & 31) >> 2;
    const int64_t r0 = row0 + g, r1 = row0 + g + 8;
    tl.ok0 = r0 < rows, tl.ok1 = r1 < rows;
    const int64_t es = ST == GM_W_F32 ? 4 : 2;
    const int64_t q0 = tl.ok0 ? r0 : 0, q1 = tl.ok1 ? r1 : 0;
    tl.q0 = reinterpret_cast<const uint4 *>(a.codes + q0 * a.row_words);
    tl.q1 = reinterpret_cast<const uint4 *>(a.codes + q1 * a.row_words);
    tl.s0 = (const char *)a.scales + q0 * a.groups * es;
    tl.s1 = (const char *)a.scales + q1 * a.groups * es;
    tl.b0 = (const char *)a.biases + q0 * a.groups * es;
    tl.b1 = (const char *)a.biases + q1 * a.groups * es;
    tl.cpg_log2 = mmv_cpg_log2(a.group, B);
    tl.nchunks = (int)(a.row_words / 4);
    return tl;
}

/* The fp16 pair (v, v) of scale or bias i of a row. */
template <int ST>
__device__ __forceinline__ __half2 mmv_scale2(const char *p, int i) {
    if (ST == GM_W_F16) return __half2half2(__ldg(reinterpret_cast<const __half *>(p) + i));
    if (ST == GM_W_BF16) return __float2half2_rn(__bfloat162float(__ldg(reinterpret_cast<const __nv_bfloat16 *>(p) + i)));
    return __float2half2_rn(__ldg(reinterpret_cast<const float *>(p) + i));
}

/* Loads this thread's chunks of U steps [s0, s0 + U) (steps past s_end, chunks past the row or
 * rows past the tile's end: zero codes, zero scale and bias, adding nothing). */
template <int U, int ST>
__device__ __forceinline__ void mmv_load(mmv_chunk (&c0)[U], mmv_chunk (&c1)[U], const mmv_tile &tl, int s0,
                                         int s_end) {
    const int t = threadIdx.x & 3;
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int ch = 4 * (s0 + u) + t;
        const bool v = s0 + u < s_end && ch < tl.nchunks;
        const bool v0 = v && tl.ok0, v1 = v && tl.ok1;
        const int gi = ch >> tl.cpg_log2;
        c0[u].q = v0 ? aff_ld_stream(tl.q0 + ch) : make_uint4(0, 0, 0, 0);
        c1[u].q = v1 ? aff_ld_stream(tl.q1 + ch) : make_uint4(0, 0, 0, 0);
        c0[u].s = v0 ? mmv_scale2<ST>(tl.s0, gi) : __float2half2_rn(0.0f);
        c0[u].b = v0 ? mmv_scale2<ST>(tl.b0, gi) : __float2half2_rn(0.0f);
        c1[u].s = v1 ? mmv_scale2<ST>(tl.s1, gi) : __float2half2_rn(0.0f);
        c1[u].b = v1 ? mmv_scale2<ST>(tl.b1, gi) : __float2half2_rn(0.0f);
    }
}

/* The A fragments of 4-bit word j of rows g and g + 8 (two mmas: a[0], a[1]): pairs 0 and 1 from
 * the word, 2 and 3 from it shifted by 8 (one shift a word); even pairs mask the low nibble of
 * each half (1024 + q), odd pairs the next one (1024 + 16q, brought back to q exactly by
 * mmv_decode_pair_hi). A: {row g k-pair 0, row g+8 k-pair 0, row g k-pair 1, row g+8 k-pair 1}. */
__device__ __forceinline__ void mmv_word_q4(uint32_t (&a)[2][4], uint32_t word0, uint32_t word1, const mmv_chunk &c0,
                                            const mmv_chunk &c1) {
#pragma unroll
    for (int p = 0; p < 4; p++) {
        const uint32_t w0 = p < 2 ? word0 : word0 >> 8, w1 = p < 2 ? word1 : word1 >> 8;
        const uint32_t mask = p & 1 ? 0x00f000f0u : 0x000f000fu;
        const uint32_t m0 = mmv_lop3_mask_or(w0, mask, 0x64006400u);
        const uint32_t m1 = mmv_lop3_mask_or(w1, mask, 0x64006400u);
        a[p >> 1][(p & 1) * 2 + 0] = p & 1 ? mmv_decode_pair_hi(m0, c0.s, c0.b) : mmv_decode_pair(m0, c0.s, c0.b);
        a[p >> 1][(p & 1) * 2 + 1] = p & 1 ? mmv_decode_pair_hi(m1, c1.s, c1.b) : mmv_decode_pair(m1, c1.s, c1.b);
    }
}

/* The A fragment of 8-bit words w0 (row g), w1 (row g + 8): bytes (0, 2) and (1, 3) under the
 * exponent byte 0x64. */
__device__ __forceinline__ void mmv_word_q8(uint32_t (&a)[4], uint32_t w0, uint32_t w1, const mmv_chunk &c0,
                                            const mmv_chunk &c1) {
    a[0] = mmv_decode_pair(__byte_perm(w0, 0x64u, 0x4240), c0.s, c0.b);
    a[1] = mmv_decode_pair(__byte_perm(w1, 0x64u, 0x4240), c1.s, c1.b);
    a[2] = mmv_decode_pair(__byte_perm(w0, 0x64u, 0x4341), c0.s, c0.b);
    a[3] = mmv_decode_pair(__byte_perm(w1, 0x64u, 0x4341), c1.s, c1.b);
}

/* The staged x's B fragment of unit j (16 bytes: one 4-bit word's two mmas, or two 8-bit words')
 * of step `step` for this thread: column g at xcol, or zeros when xcol is null. */
template <int B>
__device__ __forceinline__ uint4 mmv_x_frag(const __half *xcol, int step, int j) {
    const int t = threadIdx.x & 3;
    return xcol ? *reinterpret_cast<const uint4 *>(xcol + step * mmv_codes_per_step(B) + j * 32 + t * 8)
                : make_uint4(0, 0, 0, 0);
}

/* d += the chunks of rows g, g + 8 (c0, c1) of step `step` times the staged x. The default (XF
 * false, as measured on an H100, 2026-12-07) loads each unit's x fragment right before its mmas,
 * the mma volatile: Nsight Compute (21:55Z) found the warps waiting on these shared loads for about
 * half their stall cycles. XF: the fragments come loaded (xf: mmv_x_frag, 4 at 4 bits, 2 at 8) and
 * the mma is not volatile (mmv_compute_batch). */
template <int B, bool XF>
__device__ __forceinline__ void mmv_step(float (&d)[4], const mmv_chunk &c0, const mmv_chunk &c1, const __half *xcol,
                                         int step, const uint4 *xf) {
    const uint32_t words0[4] = {c0.q.x, c0.q.y, c0.q.z, c0.q.w};
    const uint32_t words1[4] = {c1.q.x, c1.q.y, c1.q.z, c1.q.w};
    if (B == 4) {
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const uint4 bx = XF ? xf[j] : mmv_x_frag<B>(xcol, step, j);
            uint32_t a[2][4];
            mmv_word_q4(a, words0[j], words1[j], c0, c1);
            mmv_mma<XF>(d, a[0][0], a[0][1], a[0][2], a[0][3], bx.x, bx.y);
            mmv_mma<XF>(d, a[1][0], a[1][1], a[1][2], a[1][3], bx.z, bx.w);
        }
    } else {
#pragma unroll
        for (int jp = 0; jp < 2; jp++) {
            const uint4 bx = XF ? xf[jp] : mmv_x_frag<B>(xcol, step, jp);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                uint32_t a[4];
                mmv_word_q8(a, words0[2 * jp + h], words1[2 * jp + h], c0, c1);
                mmv_mma<XF>(d, a[0], a[1], a[2], a[3], h ? bx.z : bx.x, h ? bx.w : bx.y);
            }
        }
    }
}

/* One batch of U steps of NT tiles in registers. */
template <int NT, int U>
struct mmv_batch {
    mmv_chunk c0[NT][U], c1[NT][U];
};

template <int NT, int U, int ST>
__device__ __forceinline__ void mmv_load_batch(mmv_batch<NT, U> &bt, const mmv_tile (&tl)[NT], int s, int s_end) {
#pragma unroll
    for (int i = 0; i < NT; i++) mmv_load<U, ST>(bt.c0[i], bt.c1[i], tl[i], s, s_end);
}

/* XF (GLMOE_CUDA_MMV_XFRAG=1, opt-in until timed): a step's x fragments are loaded together, once
 * for the NT tiles of the batch (gate and up share them), and the mmas are not volatile. */
template <int B, int NT, int U, bool XF>
__device__ __forceinline__ void mmv_compute_batch(float (&d)[NT][4], const mmv_batch<NT, U> &bt, const __half *xcol,
                                                  int s, int s_end) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        if (s + u >= s_end) break;
        uint4 xf[4];
        if (XF)
#pragma unroll
            for (int j = 0; j < (B == 4 ? 4 : 2); j++) xf[j] = mmv_x_frag<B>(xcol, s + u, j);
#pragma unroll
        for (int i = 0; i < NT; i++) mmv_step<B, XF>(d[i], bt.c0[i][u], bt.c1[i][u], xcol, s + u, xf);
    }
}

/* The steps of warp w of W over S steps: contiguous ranges of ceil(S / W) (the last may be short
 * or empty), so that every warp runs the same number of batches and the block's barriers line up. */
__device__ __forceinline__ void mmv_warp_steps(int S, int w, int W, int *begin, int *end) {
    const int per = (S + W - 1) / W;
    *begin = min(S, w * per);
    *end = min(S, *begin + per);
}

/* The loop of a block over its tiles [t0, t1), with the weight stream never waiting on the
 * arithmetic: the loads of the next batch (U steps of this warp's K range, NT tiles) are issued
 * before the current batch is computed, across tile boundaries too, and the first batch before
 * the block's prologue (staging x), whose latency it hides.
 *   tiles_of(tile, tl):   the NT weight tiles of `tile` (no barrier);
 *   prologue():           once, after the first loads (may synchronise: every thread calls it);
 *   begin(tile) -> xcol:  before the tile's first batch is computed (may synchronise);
 *   end(tile, d):         after its last (the reduction; may synchronise);
 * Every warp runs the same sequence (mmv_warp_steps), so barriers inside the callbacks are
 * reached by the whole block in the same order. */
template <int B, int ST, int NT, int U, int W, bool XF, class TilesOf, class Prologue, class Begin, class End>
__device__ __forceinline__ void mmv_pipeline(int t0, int t1, int S, TilesOf tiles_of, Prologue prologue,
                                             Begin begin, End end) {
    int sb, se;
    mmv_warp_steps(S, threadIdx.x >> 5, W, &sb, &se);
    const int nb = ((S + W - 1) / W + U - 1) / U; /* batches per tile, every warp */
    const int total = (t1 - t0) * nb;
    mmv_tile tl[NT];
    mmv_batch<NT, U> bt0, bt1; /* ping-pong: two named buffers, no register array indexed at run time */
    if (total > 0) {
        tiles_of(t0, tl);
        mmv_load_batch<NT, U, ST>(bt0, tl, sb, se);
    }
    prologue();
    float d[NT][4] = {};
    const __half *xcol = nullptr;
    auto step = [&](int j, const mmv_batch<NT, U> &cur, mmv_batch<NT, U> &nxt) {
        const int tile = t0 + j / nb, b = j - (j / nb) * nb;
        if (j + 1 < total) { /* the next batch: this tile's, or the next tile's first */
            if (b + 1 == nb) tiles_of(tile + 1, tl);
            const int bn = b + 1 == nb ? 0 : b + 1;
            mmv_load_batch<NT, U, ST>(nxt, tl, sb + bn * U, se);
        }
        if (b == 0) xcol = begin(tile);
        mmv_compute_batch<B, NT, U, XF>(d, cur, xcol, sb + b * U, se);
        if (b + 1 == nb) {
            end(tile, d);
#pragma unroll
            for (int i = 0; i < NT; i++) d[i][0] = d[i][1] = d[i][2] = d[i][3] = 0.0f;
        }
    };
    for (int j = 0; j < total; j += 2) {
        step(j, bt0, bt1);
        if (j + 1 < total) step(j + 1, bt1, bt0);
    }
}

/* ---- the asynchronous weight stream (MMV_MODE_ASYNC, GLMOE_CUDA_MMV_ASYNC=1: opt-in until timed) ----
 * Why: the register pipeline above keeps about one batch (2 KB of codes per warp) in flight, and
 * 8-16 warps per SM hold 16-32 KB: at ~1 us of DRAM latency under load that is 2-4 TB/s across
 * the GPU only if every warp re-issues at once, and the measured GEMVs sit at 20-45% of the copy
 * bandwidth with occupancy 12-25%. More steps per batch cost registers (4 steps: 11% slower).
 * Here each thread streams its own chunks into its own ring of R steps in shared memory
 * with cp.async (no registers held while in flight): R - 1 steps (1.5 KB each per warp and tile,
 * R = 4 or 8) are always in flight. A thread reads back only what it copied itself, so the ring
 * needs no barrier: cp.async.wait_group orders a thread's copies before its own reads, and a slot
 * is refilled only after its values were consumed by the previous step's mmas.
 * Ring of a warp: [R][NT][3][32] uint4: codes of row g, codes of row g + 8, and the 4-byte
 * words holding the scale and bias of each row (s0, b0, s1, b1) for the step's chunk. The word of
 * a 2-byte scale is its aligned 4 bytes (aff_scale_rows_word_aligned),
 * so group gi sits in half gi & 1. */
#define MMV_SLOT_UINT4 96 /* 3 x 32 lanes: one tile's step in a warp's ring */

__device__ __forceinline__ void mmv_cp16(void *dst, const void *src, bool v) {
    const uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(src), "r"(v ? 16 : 0) : "memory");
}
__device__ __forceinline__ void mmv_cp4(void *dst, const void *src, bool v) {
    const uint32_t d = (uint32_t)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;" ::"r"(d), "l"(src), "r"(v ? 4 : 0) : "memory");
}
__device__ __forceinline__ void mmv_cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void mmv_cp_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

/* Issues this thread's copies of step s of tile tl into its slot (zero-filled where mmv_load would
 * give zeros; no address outside the weight is formed). */
template <int ST>
__device__ __forceinline__ void mmv_issue(uint4 *slot, const mmv_tile &tl, int s, int s_end) {
    const int lane = threadIdx.x & 31, t = lane & 3;
    const int ch = 4 * s + t;
    const bool v = s < s_end && ch < tl.nchunks;
    const bool v0 = v && tl.ok0, v1 = v && tl.ok1;
    const int chc = v ? ch : 0;
    mmv_cp16(slot + lane, tl.q0 + chc, v0);
    mmv_cp16(slot + 32 + lane, tl.q1 + chc, v1);
    constexpr int es = ST == GM_W_F32 ? 4 : 2;
    const int64_t off = (int64_t)(chc >> tl.cpg_log2) * es & ~(int64_t)3;
    uint32_t *w = reinterpret_cast<uint32_t *>(slot + 64 + lane);
    mmv_cp4(w + 0, tl.s0 + off, v0);
    mmv_cp4(w + 1, tl.b0 + off, v0);
    mmv_cp4(w + 2, tl.s1 + off, v1);
    mmv_cp4(w + 3, tl.b1 + off, v1);
}

/* The fp16 pair (v, v) of the scale in word w (half h of a 2-byte type). */
template <int ST>
__device__ __forceinline__ __half2 mmv_word_scale2(uint32_t w, int h) {
    if (ST == GM_W_F32) return __float2half2_rn(__uint_as_float(w));
    const uint32_t bits = h ? w >> 16 : w & 0xffffu;
    if (ST == GM_W_F16) return __half2half2(__ushort_as_half((unsigned short)bits));
    return __float2half2_rn(__uint_as_float(bits << 16));
}

/* mmv_pipeline's contract, with the weights streamed through the ring (ring: this warp's). Every
 * warp runs the same steps per tile (ceil(S / W); steps past its range are skipped), so the
 * callbacks' barriers line up as there. cpg_log2 (log2 of the chunks per group) is the same for
 * every tile of a launch (the host checks). */
template <int B, int ST, int NT, int W, int R, bool XF, class TilesOf, class Prologue, class Begin, class End>
__device__ __forceinline__ void mmv_pipeline_async(int t0, int t1, int S, int cpg_log2, uint4 *ring, TilesOf tiles_of,
                                                   Prologue prologue, Begin begin, End end) {
    int sb, se;
    mmv_warp_steps(S, threadIdx.x >> 5, W, &sb, &se);
    const int n = (S + W - 1) / W; /* steps per tile, every warp */
    const int total = (t1 - t0) * n;
    const int lane = threadIdx.x & 31, t = lane & 3;
    mmv_tile tl[NT];
    /* Cursors, advanced by one step at a time (no division in the loop): the next step to issue
     * (tile index iq from t0, step ik of n, ring slot is & (R - 1)) and the step to compute. */
    int iq = 0, ik = 0;
    unsigned is = 0;
    auto issue = [&]() {
        if (iq < t1 - t0) {
            if (ik == 0) tiles_of(t0 + iq, tl);
            uint4 *slot = ring + (is & (R - 1)) * NT * MMV_SLOT_UINT4;
#pragma unroll
            for (int i = 0; i < NT; i++) mmv_issue<ST>(slot + i * MMV_SLOT_UINT4, tl[i], sb + ik, se);
            if (++ik == n) ik = 0, iq++;
        }
        is++;
        mmv_cp_commit(); /* empty groups too: wait_group counts groups */
    };
#pragma unroll
    for (int j = 0; j < R - 1; j++) issue();
    prologue();
    float d[NT][4] = {};
    const __half *xcol = nullptr;
    int q = 0, k = 0;
    for (unsigned j = 0; j < (unsigned)total; j++) {
        mmv_cp_wait<R - 2>();
        const int s = sb + k;
        const uint4 *slot = ring + (j & (R - 1)) * NT * MMV_SLOT_UINT4;
        mmv_chunk c0[NT], c1[NT];
        const int h = ((4 * s + t) >> cpg_log2) & 1;
#pragma unroll
        for (int i = 0; i < NT; i++) {
            const uint4 *p = slot + i * MMV_SLOT_UINT4;
            const uint4 w = p[64 + lane];
            c0[i].q = p[lane];
            c1[i].q = p[32 + lane];
            c0[i].s = mmv_word_scale2<ST>(w.x, h), c0[i].b = mmv_word_scale2<ST>(w.y, h);
            c1[i].s = mmv_word_scale2<ST>(w.z, h), c1[i].b = mmv_word_scale2<ST>(w.w, h);
        }
        issue(); /* into the slot read one step ago, whose values the mmas consumed */
        if (k == 0) xcol = begin(t0 + q);
        if (s < se) {
            uint4 xf[4];
            if (XF)
#pragma unroll
                for (int u = 0; u < (B == 4 ? 4 : 2); u++) xf[u] = mmv_x_frag<B>(xcol, s, u);
#pragma unroll
            for (int i = 0; i < NT; i++) mmv_step<B, XF>(d[i], c0[i], c1[i], xcol, s, xf);
        }
        if (k == n - 1) {
            end(t0 + q, d);
#pragma unroll
            for (int i = 0; i < NT; i++) d[i][0] = d[i][1] = d[i][2] = d[i][3] = 0.0f;
            k = 0, q++;
        } else {
            k++;
        }
    }
    mmv_cp_wait<0>();
}

/* Which pipeline a kernel runs: the register one (mmv_step's default or fragment-first form) or
 * the asynchronous ring of 4 or 8 steps. */
enum { MMV_MODE_SYNC = 0, MMV_MODE_XFRAG = 1, MMV_MODE_ASYNC = 2, MMV_MODE_ASYNC8 = 3 };
__host__ __device__ constexpr int mmv_ring_steps(int mode) {
    return mode == MMV_MODE_ASYNC ? 4 : mode == MMV_MODE_ASYNC8 ? 8 : 0;
}

/* The ring's bytes for a block of W warps and NT tiles in mode `mode` (0 without a ring). */
static inline size_t mmv_ring_bytes(int mode, int nt, int warps) {
    return (size_t)warps * mmv_ring_steps(mode) * nt * MMV_SLOT_UINT4 * 16;
}

/* The kernels' loop in mode MODE (ring: the block's ring, used by MMV_MODE_ASYNC only). */
template <int B, int ST, int NT, int W, int MODE, class TilesOf, class Prologue, class Begin, class End>
__device__ __forceinline__ void mmv_run(int t0, int t1, int S, int cpg_log2, uint4 *ring, TilesOf tiles_of,
                                        Prologue prologue, Begin begin, End end) {
    constexpr int R = mmv_ring_steps(MODE);
    if constexpr (R > 0)
        mmv_pipeline_async<B, ST, NT, W, R, false>(t0, t1, S, cpg_log2, ring + (threadIdx.x >> 5) * R * NT * MMV_SLOT_UINT4,
                                                   tiles_of, prologue, begin, end);
    else
        mmv_pipeline<B, ST, NT, MMV_UNROLL, W, MODE == MMV_MODE_XFRAG>(t0, t1, S, tiles_of, prologue, begin, end);
}

/* Reduction of the W warps' fragments of NT tiles: red holds [NT][W][32][4] floats. After the
 * caller's barrier, mmv_sum(red, i, r, c) is tile i's row r (0..15), column c (0..7). */
template <int NT, int W>
__device__ __forceinline__ void mmv_put(float *red, const float (&d)[NT][4]) {
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
    for (int i = 0; i < NT; i++)
        *reinterpret_cast<float4 *>(red + (((size_t)i * W + w) * 32 + lane) * 4) =
            make_float4(d[i][0], d[i][1], d[i][2], d[i][3]);
}
template <int W>
__device__ __forceinline__ float mmv_sum(const float *red, int i, int r, int c) {
    const int lane = (r & 7) * 4 + (c >> 1), e = (r >> 3) * 2 + (c & 1);
    float v = 0.0f;
#pragma unroll
    for (int w = 0; w < W; w++) v += red[(((size_t)i * W + w) * 32 + lane) * 4 + e];
    return v;
}

/* Whether the mma GEMVs take a weight (4 or 8 bits, the fast layout, cols a multiple of a chunk). */
__host__ __device__ inline bool mmv_takes(const cu_affine &a, int B) { return aff_fast_layout(a, B); }

/* GLMOE_CUDA_AFF_MMV=0: the float32 GEMV core instead (for comparisons; cuda_quant.cu). */
bool mmv_on(void);

/* GLMOE_CUDA_MMV_XFRAG=1: the kernels with the fragment-first step (mmv_compute_batch's XF),
 * written from the 21:55Z profile after the session's last device call; not yet run. */
bool mmv_xfrag_on(void);

/* GLMOE_CUDA_MMV_ASYNC=4 or 8: the kernels with the asynchronous ring of that many steps
 * (mmv_pipeline_async), where the weights allow it; written 2026-12-07 from the profile, not yet
 * run. 0 (default): the register pipeline. */
int mmv_async_steps(void);

#endif
