/*
 * cuda_quant_mma.cu — prefill (T > 8 tokens) with affine-quantized weights (MLX's format,
 * backend/formats.h, docs/spec/quantization.md) on the tensor cores: the dense matmul
 * out[T, N] = x[T, K] · dequant(W)[N, K]^T (+ bias), and the grouped expert GEMMs of the MoE
 * layers (gate and up fused with SwiGLU, then down) over cuda_moe.cu's tile list.
 *
 * Algorithm (one thread block per output tile BM x BN; K in stages of BK = 64):
 *   - x (float32) is converted once per call to an fp16 copy (a pre-pass into the exec's
 *     matmul scratch; the experts' hidden h is written as fp16 by the gate/up kernel). Why a
 *     pre-pass rather than converting on the way into shared memory: x is read once per column of
 *     blocks (N / BN times, mostly from L2); the pre-pass costs 6 bytes per element once and
 *     halves every later read, and it lets cp.async move A straight into shared memory.
 *   - A stage = BM rows x 64 fp16 of x (rows gathered through a row list for the experts) and the
 *     packed codes of the BN weight rows x 64 columns, both by cp.async into a QMMA_STAGES-deep
 *     ring: the copies of stage kt + 3 are in flight while stage kt is multiplied.
 *   - The codes of stage kt + 1 are dequantized into an fp16 tile in shared memory (two buffers)
 *     while the tensor cores work on stage kt, w = scale * q + bias rounded once to fp16 (never a
 *     full-size dequantized copy in device memory). Two threads per weight row, 32 codes each, so
 *     one scale and one bias per thread and stage, loaded into registers one stage ahead.
 *     4 bits with bf16 scales: two codes per instruction (codes as fp16 1024 + q, one half2 FMA);
 *     4 and 8 bits otherwise: float32 FMA per code; 2, 3, 5, 6 bits: a generic bit-stream decoder
 *     (4-byte copies, slower, said once in the log).
 *   - MMA: mma.sync m16n8k16 fp16 -> float32, fragments by ldmatrix from XOR-swizzled 128-byte
 *     rows (16-byte chunk c of row r stored at chunk c ^ (r & 7): conflict-free ldmatrix and
 *     stores). One __syncthreads per stage.
 *   - Tiles (BM x BN, warps): 128x128 (8 warps of 64x32) when the grid fills the GPU; 64x128
 *     (8 warps of 32x32) below that; 64x64 (4 warps of 32x32) for T <= 128; 32x64 (4 warps of
 *     32x16) for T <= 32. Experts: gate and up 64x(64 + 64) (8 warps of 32x16 per matrix), down
 *     64x128; 64 = the tile list's rows per tile (CU_TILE_M).
 * Cost: 2·T·N·K FLOPs; bytes = N·K·bits/8 + 2·N·(K/group)·sizeof(scale) of weights per M-block
 * row (re-reads hit L2 for the model's matrices), plus 6·T·K (pre-pass) + 2·T·K·N/BN (A) + 4·T·N
 * (out). At T >= ~256 the weights are a small part and the kernel is bound by the tensor cores
 * and by the dequantization that shares the SM with them (~2.5 integer/FP instructions per code
 * for q4 with bf16 scales, ~5 otherwise, against BM·2 FMAs of tensor work per code); at small T
 * by the weight bytes (each weight is read ceil(T / BM) times, not T / 8 times as by the GEMV).
 * Accuracy: x and the dequantized weight each carry an fp16 rounding (relative 2^-12), sums in
 * float32: |out - exact| <= ~2^-11 · Σ_k |x_k w_k| (tests/ops/checks.h, TOL_AFFINE_TC; the
 * worst case of the op tests on an H100: 2.6e-4 of Σ|terms|).
 *
 * Leaves out: split-K for few, wide-K tiles (a 64-token prefill of a 4096-row matrix is 64
 * blocks); Hopper's wgmma and TMA (mma.sync runs at roughly two thirds of their rate).
 * Tested by tests/ops/check_affine.c (check_affine_prefill: T 9..1100, every bit width and group size,
 * shapes not multiples of the tiles; experts T 9, 40, 200, experts unused, accumulate on/off).
 */
#include <cuda_fp16.h>

#include "backend/cuda/cuda_internal.h"

/* The tensor cores' operands are fp16, not bf16: its 11-bit significand (against 8) makes the two
 * roundings (x, and the dequantized weight) 8 times smaller, which the GPU bar needs: with bf16
 * operands the logits of two MLX golden cases were 1.6e-2 and 2.0e-2 (relative L2) from MLX's
 * float32 forward (H100, 2026-12-07), above the 1e-2 bar. fp16's range ends at 65504: values
 * beyond it are clipped to ±65504 on conversion (qmma_pack; NaN passes), never turned into inf. */
typedef __half qmma_t;
typedef __half2 qmma_t2;

#define QMMA_BK 64            /* k per stage: one or two scale groups, half of a 128 group */
#define QMMA_STAGES 4         /* cp.async ring depth (stage kt + 3 in flight during kt) */
#define QMMA_ROW_BYTES 128    /* an fp16 row of one stage (64 values, 8 chunks of 16 bytes) */
#define QMMA_MOE_ROWS 64      /* rows per expert tile: the tile list's */

static_assert(QMMA_MOE_ROWS == CU_TILE_M, "the expert kernels take the tile list's 64-row tiles");

/* ---- PTX helpers ------------------------------------------------------------------------------ */

__device__ __forceinline__ uint32_t qmma_smem(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global -> shared, bypassing L1; zeros when !valid (src is then not read). */
__device__ __forceinline__ void qmma_cp16(uint32_t dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void qmma_cp4(uint32_t dst, const void *src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 4 : 0)
                 : "memory");
}
/* The "memory" clobbers keep the compiler from moving shared-memory reads across the copies. */
__device__ __forceinline__ void qmma_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void qmma_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void qmma_ldmatrix4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* d += a · b, a 16x16 (row), b 16x8 (col), fp16 in, float32 accumulators. */
__device__ __forceinline__ void qmma_mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Byte offset of (row r, column k) in a tile of 128-byte rows, 16-byte chunks XOR-swizzled by the
 * row: the 8 rows an ldmatrix phase reads (same k, consecutive r) hit 8 different chunks. */
__device__ __forceinline__ uint32_t qmma_swz(int r, int k) {
    return (uint32_t)(r * QMMA_ROW_BYTES + ((((k >> 3) ^ r) & 7) << 4) + (k & 7) * 2);
}

/* ---- dequantization ------------------------------------------------------------------------------ */

/* The float value of a code < 2^23, exactly (2^23 + q as a float's bits, minus 2^23). */
__device__ __forceinline__ float qmma_code(uint32_t q) { return __uint_as_float(0x4B000000u | q) - 8388608.0f; }

/* v clipped to fp16's finite range (NaN passes). */
__device__ __forceinline__ float qmma_sat(float v) { return v > 65504.0f ? 65504.0f : v < -65504.0f ? -65504.0f : v; }

__device__ __forceinline__ uint32_t qmma_pack(float lo, float hi) {
    __half2 v = __floats2half2_rn(qmma_sat(lo), qmma_sat(hi));
    return *reinterpret_cast<const uint32_t *>(&v);
}

/* A scale or bias that fp16 holds as a normal number (or zero): the two-codes-per-instruction
 * decode in fp16 arithmetic keeps its 11 bits; smaller ones take the float32 decode. */
__device__ __forceinline__ bool qmma_half_normal(float v) { return v == 0.0f || fabsf(v) >= 6.2e-5f; }

/* 8 codes (4 bits, LSB first in w) -> 8 fp16 values s·q + b, float32 FMA, one rounding to fp16. */
__device__ __forceinline__ uint4 qmma_deq4_f32(uint32_t w, float s, float b) {
    uint32_t o[4];
#pragma unroll
    for (int p = 0; p < 4; p++)
        o[p] = qmma_pack(fmaf(s, qmma_code((w >> (8 * p)) & 15u), b), fmaf(s, qmma_code((w >> (8 * p + 4)) & 15u), b));
    return make_uint4(o[0], o[1], o[2], o[3]);
}

/* The same with fp16 arithmetic, two codes per instruction: the fp16 pair 0x6400|q = 1024 + q
 * (exact: fp16 holds integers to 2048 at that exponent), minus 1024 (exact), then one half2 FMA
 * s·q + b, rounded once as the float32 path. (w >> 4p) & 0x000F000F holds codes p and p + 4. */
__device__ __forceinline__ uint4 qmma_deq4_h2(uint32_t w, __half2 s2, __half2 b2) {
    const __half2 c1024 = __floats2half2_rn(1024.0f, 1024.0f);
    uint32_t pr[4];
#pragma unroll
    for (int p = 0; p < 4; p++) {
        const uint32_t t = ((w >> (4 * p)) & 0x000F000Fu) | 0x64006400u;
        const __half2 q = __hsub2(*reinterpret_cast<const __half2 *>(&t), c1024);
        const __half2 v = __hfma2(s2, q, b2);
        pr[p] = *reinterpret_cast<const uint32_t *>(&v);
    }
    /* pr[p] = (value p, value p + 4): regroup into (0,1) (2,3) (4,5) (6,7). */
    return make_uint4(__byte_perm(pr[0], pr[1], 0x5410), __byte_perm(pr[2], pr[3], 0x5410),
                      __byte_perm(pr[0], pr[1], 0x7632), __byte_perm(pr[2], pr[3], 0x7632));
}

/* 8 codes (8 bits) from two words -> 8 fp16 values. */
__device__ __forceinline__ uint4 qmma_deq8(uint32_t w0, uint32_t w1, float s, float b) {
    uint32_t o[4];
#pragma unroll
    for (int p = 0; p < 2; p++) {
        o[p] = qmma_pack(fmaf(s, qmma_code(w0 >> (16 * p) & 255u), b), fmaf(s, qmma_code(w0 >> (16 * p + 8) & 255u), b));
        o[p + 2] = qmma_pack(fmaf(s, qmma_code(w1 >> (16 * p) & 255u), b), fmaf(s, qmma_code(w1 >> (16 * p + 8) & 255u), b));
    }
    return make_uint4(o[0], o[1], o[2], o[3]);
}

/* ---- the tile core ------------------------------------------------------------------------------ */

/* A block shape: BM rows of A, NB weight matrices of BN rows each sharing the A tile (gate and
 * up), warps WARPS_M x WARPS_N each owning a (BM/WARPS_M) x (BN/WARPS_N) piece of every matrix. */
template <int BM_, int BN_, int NB_, int WARPS_M_, int WARPS_N_>
struct qmma_shape {
    static constexpr int BM = BM_, BN = BN_, NB = NB_, WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
    static constexpr int THREADS = 32 * WARPS_M * WARPS_N;
    static constexpr int WTM = BM / WARPS_M, WTN = BN / WARPS_N;
    static constexpr int MF = WTM / 16, NF = WTN / 8; /* m16 and n8 fragments per warp and matrix */
    static constexpr int BROWS = NB * BN;             /* weight rows dequantized per stage */
    static constexpr int A_CHUNKS = BM * 8 / THREADS; /* 16-byte copies of A per thread and stage */
    static_assert(WTM % 16 == 0 && WTN % 16 == 0, "warp tiles of whole m16 and n16 pieces");
    static_assert(BROWS * 2 == THREADS, "two threads dequantize each weight row (32 codes each)");
    static_assert(A_CHUNKS * THREADS == BM * 8 && THREADS % 64 == 0, "A copies divide evenly");
};

/* Words of packed codes per weight row and stage in shared memory (64 codes; the generic decoder
 * keeps room for 8 bits). */
template <int BITS>
__host__ __device__ constexpr int qmma_raw_words() { return BITS ? 2 * BITS : 16; }

template <class S, int BITS>
constexpr size_t qmma_smem_bytes() {
    return (size_t)QMMA_STAGES * S::BM * QMMA_ROW_BYTES + 2 * (size_t)S::BROWS * QMMA_ROW_BYTES +
           (size_t)QMMA_STAGES * S::BROWS * qmma_raw_words<BITS>() * 4;
}

/* What a block multiplies: A rows (fp16, row stride lda; row r is a_rows[r] when a_rows is
 * set; rows >= m_valid are zeros) by NB affine matrices (rows n0.. of N, K columns). */
template <int NB>
struct qmma_job {
    const qmma_t *a;
    const int32_t *a_rows;
    int64_t lda;
    int m_valid;
    cu_affine w[NB];
    int n0, N, K;
};

/* acc[b][i][j] += A · dequant(W_b)^T for the block's tile: fragment (i, j) of the warp is rows
 * wm·WTM + 16i.., columns wn·WTN + 8j.. (the m16n8 accumulator layout). BITS: 4 or 8 (codes
 * 16-byte aligned, the fast decoders), or 0 (any width, the generic decoder). */
template <class S, int BITS>
__device__ __forceinline__ void qmma_tile(float (&acc)[S::NB][S::MF][S::NF][4], const qmma_job<S::NB> &job,
                                          unsigned char *smem) {
    constexpr int RW = qmma_raw_words<BITS>();
    const uint32_t sA = qmma_smem(smem);                                        /* [STAGES][BM] rows   */
    const uint32_t sB = sA + QMMA_STAGES * S::BM * QMMA_ROW_BYTES;              /* [2][BROWS] rows     */
    uint32_t *raw = (uint32_t *)(smem + (QMMA_STAGES * S::BM + 2 * S::BROWS) * QMMA_ROW_BYTES); /* [STAGES][BROWS][RW] */
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp % S::WARPS_M, wn = warp / S::WARPS_M;
    const int K = job.K, KT = (K + QMMA_BK - 1) / QMMA_BK;

    /* A copies: chunk kc of rows ar + i·(THREADS/8). */
    const int akc = tid & 7, ar = tid >> 3;
    const qmma_t *asrc[S::A_CHUNKS];
#pragma unroll
    for (int i = 0; i < S::A_CHUNKS; i++) {
        const int r = ar + i * (S::THREADS / 8);
        asrc[i] = r < job.m_valid ? job.a + (int64_t)(job.a_rows ? job.a_rows[r] : r) * job.lda + akc * 8 : nullptr;
    }
    const uint32_t adst = (uint32_t)(ar * QMMA_ROW_BYTES + ((akc ^ (ar & 7)) << 4)); /* + i·(THREADS/8) rows */

    /* This thread's weight row and half (32 codes) for the copies and the dequantization. */
    const int brow = tid >> 1, half = tid & 1, n = job.n0 + brow % S::BN;
    /* Its matrix's fields by selects (a runtime index into job.w would put it in local memory). */
    const bool second = S::NB > 1 && brow >= S::BN;
    const cu_affine &w0 = job.w[0], &w1 = job.w[S::NB - 1];
    const uint32_t *codes = second ? w1.codes : w0.codes;
    const void *scales = second ? w1.scales : w0.scales, *biases = second ? w1.biases : w0.biases;
    const int scale_type = second ? w1.scale_type : w0.scale_type;
    const int bits = BITS ? BITS : second ? w1.bits : w0.bits;
    const bool row_ok = n < job.N;
    const uint32_t *crow = codes + (row_ok ? (int64_t)n * (second ? w1.row_words : w0.row_words) : 0);
    const int gshift = __ffs(second ? w1.group : w0.group) - 1;
    const int64_t gbase = (int64_t)(row_ok ? n : 0) * (second ? w1.groups : w0.groups);
    const bool bf16_scales = scale_type == GM_W_BF16;

    auto half_ok = [&](int kt) { return row_ok && kt * QMMA_BK + 32 * half < K; };
    auto load_stage = [&](int kt) {
        const int slot = kt % QMMA_STAGES;
        const uint32_t a_slot = sA + slot * S::BM * QMMA_ROW_BYTES + adst;
#pragma unroll
        for (int i = 0; i < S::A_CHUNKS; i++) {
            const bool ok = asrc[i] && kt * QMMA_BK + akc * 8 < K;
            qmma_cp16(a_slot + i * (S::THREADS / 8) * QMMA_ROW_BYTES, ok ? asrc[i] + kt * QMMA_BK : job.a, ok);
        }
        uint32_t *dst = raw + ((size_t)slot * S::BROWS + brow) * RW + half * (RW / 2);
        const bool ok = half_ok(kt);
        if (BITS) {
            /* 32 codes = BITS words = BITS / 4 chunks of 16 bytes, at word kt·2·BITS + half·BITS. */
            const uint32_t *src = ok ? crow + (int64_t)kt * RW + half * (RW / 2) : codes;
#pragma unroll
            for (int c = 0; c < BITS / 4; c++) qmma_cp16(qmma_smem(dst + 4 * c), src + (ok ? 4 * c : 0), ok);
        } else {
            const uint32_t *src = ok ? crow + (int64_t)kt * 2 * bits + half * bits : codes;
            for (int c = 0; c < bits; c++) qmma_cp4(qmma_smem(dst + c), src + (ok ? c : 0), ok);
        }
    };
    /* Scale and bias of this thread's 32 codes at stage kt (one group: spans start at multiples
     * of 32 and groups are 32, 64 or 128 long). */
    auto load_sb = [&](int kt, float &s, float &b) {
        s = b = 0.0f;
        if (half_ok(kt)) {
            const int64_t g = gbase + ((kt * QMMA_BK + 32 * half) >> gshift);
            s = cu_scale_value(scales, scale_type, g);
            b = cu_scale_value(biases, scale_type, g);
        }
    };
    /* The 32 codes of stage kt -> fp16 tile buffer buf, row brow, chunks 4·half.. (zeros past N
     * or K, so that the tensor cores never see stale or uninitialised values). */
    auto dequant = [&](int kt, int buf, float s, float b) {
        const uint32_t *src = raw + ((size_t)(kt % QMMA_STAGES) * S::BROWS + brow) * RW + half * (RW / 2);
        uint4 v[4];
        if (!half_ok(kt)) {
#pragma unroll
            for (int c = 0; c < 4; c++) v[c] = make_uint4(0, 0, 0, 0);
        } else if (BITS == 4) {
            const uint4 w = *reinterpret_cast<const uint4 *>(src);
            const uint32_t ws[4] = {w.x, w.y, w.z, w.w};
            if (bf16_scales && qmma_half_normal(s) && qmma_half_normal(b)) {
                const __half2 s2 = __float2half2_rn(s), b2 = __float2half2_rn(b); /* exact (bf16 in fp16's range) */
#pragma unroll
                for (int c = 0; c < 4; c++) v[c] = qmma_deq4_h2(ws[c], s2, b2);
            } else {
#pragma unroll
                for (int c = 0; c < 4; c++) v[c] = qmma_deq4_f32(ws[c], s, b);
            }
        } else if (BITS == 8) {
            const uint4 w0 = *reinterpret_cast<const uint4 *>(src), w1 = *reinterpret_cast<const uint4 *>(src + 4);
            v[0] = qmma_deq8(w0.x, w0.y, s, b);
            v[1] = qmma_deq8(w0.z, w0.w, s, b);
            v[2] = qmma_deq8(w1.x, w1.y, s, b);
            v[3] = qmma_deq8(w1.z, w1.w, s, b);
        } else {
            /* Code i of the half at bits [i·bits, i·bits + bits) of its `bits` words. */
            const uint32_t mask = (1u << bits) - 1u;
            uint32_t o[16];
#pragma unroll
            for (int i = 0; i < 32; i += 2) {
                float f[2];
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int p = (i + e) * bits, wd = p >> 5, off = p & 31;
                    uint32_t q = src[wd] >> off;
                    if (off + bits > 32) q |= src[wd + 1] << (32 - off);
                    f[e] = fmaf(s, qmma_code(q & mask), b);
                }
                o[i >> 1] = qmma_pack(f[0], f[1]);
            }
#pragma unroll
            for (int c = 0; c < 4; c++) v[c] = make_uint4(o[4 * c], o[4 * c + 1], o[4 * c + 2], o[4 * c + 3]);
        }
        const uint32_t row_base = sB + (uint32_t)((buf * S::BROWS + brow) * QMMA_ROW_BYTES);
#pragma unroll
        for (int c = 0; c < 4; c++) {
            const uint32_t addr = row_base + ((((4 * half + c) ^ brow) & 7) << 4);
            asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(v[c].x), "r"(v[c].y), "r"(v[c].z),
                         "r"(v[c].w)
                         : "memory");
        }
    };
    /* The MMAs of one stage: 4 steps of k16, A fragments by ldmatrix.x4 (rows lane & 15, k chunk
     * lane >> 4), B fragments two n8 blocks per ldmatrix.x4 (n lane & 7 + 8·(lane >> 4), k chunk
     * (lane >> 3) & 1). */
    auto mma_stage = [&](int kt, int buf) {
        const uint32_t a_base = sA + (kt % QMMA_STAGES) * S::BM * QMMA_ROW_BYTES;
        const uint32_t b_base = sB + buf * S::BROWS * QMMA_ROW_BYTES;
#pragma unroll
        for (int ks = 0; ks < QMMA_BK / 16; ks++) {
            uint32_t af[S::MF][4];
#pragma unroll
            for (int i = 0; i < S::MF; i++)
                qmma_ldmatrix4(af[i], a_base + qmma_swz(wm * S::WTM + i * 16 + (lane & 15), ks * 16 + (lane >> 4) * 8));
#pragma unroll
            for (int b = 0; b < S::NB; b++)
#pragma unroll
                for (int jj = 0; jj < S::NF / 2; jj++) {
                    uint32_t bf[4];
                    const int r = b * S::BN + wn * S::WTN + jj * 16 + ((lane >> 4) << 3) + (lane & 7);
                    qmma_ldmatrix4(bf, b_base + qmma_swz(r, ks * 16 + ((lane >> 3) & 1) * 8));
#pragma unroll
                    for (int i = 0; i < S::MF; i++) {
                        qmma_mma(acc[b][i][2 * jj], af[i], bf[0], bf[1]);
                        qmma_mma(acc[b][i][2 * jj + 1], af[i], bf[2], bf[3]);
                    }
                }
        }
    };

#pragma unroll
    for (int b = 0; b < S::NB; b++)
#pragma unroll
        for (int i = 0; i < S::MF; i++)
#pragma unroll
            for (int j = 0; j < S::NF; j++) acc[b][i][j][0] = acc[b][i][j][1] = acc[b][i][j][2] = acc[b][i][j][3] = 0.0f;

    /* Prologue: stages 0..STAGES-2 in flight, stage 0 dequantized. */
#pragma unroll
    for (int j = 0; j < QMMA_STAGES - 1; j++) {
        if (j < KT) load_stage(j);
        qmma_commit();
    }
    float s_cur, b_cur, s_next, b_next;
    load_sb(0, s_cur, b_cur);
    load_sb(1, s_next, b_next);
    qmma_wait<QMMA_STAGES - 2>();
    __syncthreads();
    dequant(0, 0, s_cur, b_cur);
    s_cur = s_next, b_cur = b_next;

    /* Iteration kt: stage kt + 1's copies have landed (groups 0..kt+STAGES-2 were committed), and
     * after the barrier every thread is done with iteration kt - 1, so the slot of stage kt - 1
     * (its A rows multiplied, its codes dequantized two iterations ago) takes stage kt + 3, and
     * the fp16 buffer of stage kt - 1 takes stage kt + 1. */
    for (int kt = 0; kt < KT; kt++) {
        qmma_wait<QMMA_STAGES - 3>();
        __syncthreads();
        if (kt + QMMA_STAGES - 1 < KT) load_stage(kt + QMMA_STAGES - 1);
        qmma_commit();
        if (kt + 2 < KT) load_sb(kt + 2, s_next, b_next);
        mma_stage(kt, kt & 1);
        if (kt + 1 < KT) dequant(kt + 1, (kt + 1) & 1, s_cur, b_cur);
        s_cur = s_next, b_cur = b_next;
    }
    qmma_wait<0>(); /* nothing may still write shared memory when the caller reuses it or exits */
}

/* Visits the accumulators: fn(b, row, col, v0, v1) for the pairs (row, col), (row, col + 1)
 * of the tile (rows and columns relative to the tile; the caller checks the bounds). */
template <class S, class F>
__device__ __forceinline__ void qmma_for_each(float (&acc)[S::NB][S::MF][S::NF][4], F fn) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = warp % S::WARPS_M, wn = warp / S::WARPS_M;
#pragma unroll
    for (int b = 0; b < S::NB; b++)
#pragma unroll
        for (int i = 0; i < S::MF; i++)
#pragma unroll
            for (int j = 0; j < S::NF; j++) {
                const int row = wm * S::WTM + i * 16 + (lane >> 2), col = wn * S::WTN + j * 8 + (lane & 3) * 2;
                fn(b, row, col, acc[b][i][j][0], acc[b][i][j][1]);
                fn(b, row + 8, col, acc[b][i][j][2], acc[b][i][j][3]);
            }
}

/* ---- kernels ------------------------------------------------------------------------------------ */

/* x (float32) -> fp16 (clipped to its range), 4 values per step when both are 16- and 8-byte aligned and n % 4 == 0. */
__global__ void qmma_to_half_kernel(qmma_t *dst, const float *src, int64_t n, bool vec) {
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    if (vec) {
        for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n / 4; i += stride) {
            const float4 v = __ldg(reinterpret_cast<const float4 *>(src) + i);
            uint2 o = make_uint2(qmma_pack(v.x, v.y), qmma_pack(v.z, v.w));
            reinterpret_cast<uint2 *>(dst)[i] = o;
        }
    } else {
        for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += stride)
            dst[i] = __float2half_rn(qmma_sat(src[i]));
    }
}

template <class S, int BITS>
__global__ void __launch_bounds__(S::THREADS, 256 / S::THREADS + 1) qmma_dense_kernel(float *out, const qmma_t *xb,
                                                                                        cu_affine w, const float *bias,
                                                                                        int T, int N, int K) {
    extern __shared__ __align__(128) unsigned char qmma_sm[];
    const int m0 = blockIdx.y * S::BM, n0 = blockIdx.x * S::BN;
    qmma_job<1> job;
    job.a = xb + (int64_t)m0 * K;
    job.a_rows = nullptr;
    job.lda = K;
    job.m_valid = T - m0;
    job.w[0] = w;
    job.n0 = n0, job.N = N, job.K = K;
    float acc[1][S::MF][S::NF][4];
    qmma_tile<S, BITS>(acc, job, qmma_sm);
    qmma_for_each<S>(acc, [&](int, int r, int c, float v0, float v1) {
        const int m = m0 + r, nn = n0 + c;
        if (m >= T) return;
        float *o = out + (int64_t)m * N + nn;
        if (nn + 1 < N) {
            v0 += bias ? bias[nn] : 0.0f;
            v1 += bias ? bias[nn + 1] : 0.0f;
            if (((uintptr_t)o & 7) == 0) *reinterpret_cast<float2 *>(o) = make_float2(v0, v1);
            else o[0] = v0, o[1] = v1;
        } else if (nn < N) {
            o[0] = v0 + (bias ? bias[nn] : 0.0f);
        }
    });
}

/* Gate and up of one expert tile (tiles[blockIdx.y] = {expert, first slot, rows}), columns
 * blockIdx.x·BN.. of Im: h[slot] = silu(x·gate^T) ⊙ x·up^T as fp16 (down's A operand), x rows
 * gathered from the fp16 copy through rows[]. */
template <class S, int BITS>
__global__ void __launch_bounds__(S::THREADS, 2) qmma_gateup_kernel(qmma_t *h, const qmma_t *xb,
                                                                     const int32_t *rows, const int4 *tiles,
                                                                     const int32_t *ntiles, const cuda_expert *ex,
                                                                     int H, int Im) {
    if ((int)blockIdx.y >= *ntiles) return;
    extern __shared__ __align__(128) unsigned char qmma_sm[];
    const int4 tl = tiles[blockIdx.y];
    const int slot0 = tl.y, m = tl.z, n0 = blockIdx.x * S::BN;
    qmma_job<2> job;
    job.a = xb;
    job.a_rows = rows + slot0;
    job.lda = H;
    job.m_valid = m;
    job.w[0] = ex[tl.x].gate.q;
    job.w[1] = ex[tl.x].up.q;
    job.n0 = n0, job.N = Im, job.K = H;
    float acc[2][S::MF][S::NF][4];
    qmma_tile<S, BITS>(acc, job, qmma_sm);
    /* Gate and up of the same (row, column) sit in the same thread: acc[0] and acc[1]. */
#pragma unroll
    for (int i = 0; i < S::MF; i++)
#pragma unroll
        for (int j = 0; j < S::NF; j++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++) {
                const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
                const int wm = warp % S::WARPS_M, wn = warp / S::WARPS_M;
                const int r = wm * S::WTM + i * 16 + (lane >> 2) + 8 * hr, nn = n0 + wn * S::WTN + j * 8 + (lane & 3) * 2;
                if (r >= m || nn >= Im) continue; /* Im is even (a multiple of down's group) */
                const float g0 = acc[0][i][j][2 * hr], g1 = acc[0][i][j][2 * hr + 1];
                const float u0 = acc[1][i][j][2 * hr], u1 = acc[1][i][j][2 * hr + 1];
                const uint32_t v = qmma_pack(g0 / (1.0f + expf(-g0)) * u0, g1 / (1.0f + expf(-g1)) * u1);
                *reinterpret_cast<uint32_t *>(h + (int64_t)(slot0 + r) * Im + nn) = v;
            }
}

/* Down of one expert tile: y[slot] = h[slot] · down^T (float32, for moe_combine_kernel). */
template <class S, int BITS>
__global__ void __launch_bounds__(S::THREADS, 2) qmma_down_kernel(float *y, const qmma_t *h, const int4 *tiles,
                                                                   const int32_t *ntiles, const cuda_expert *ex, int H,
                                                                   int Im) {
    if ((int)blockIdx.y >= *ntiles) return;
    extern __shared__ __align__(128) unsigned char qmma_sm[];
    const int4 tl = tiles[blockIdx.y];
    const int slot0 = tl.y, m = tl.z, n0 = blockIdx.x * S::BN;
    qmma_job<1> job;
    job.a = h + (int64_t)slot0 * Im;
    job.a_rows = nullptr;
    job.lda = Im;
    job.m_valid = m;
    job.w[0] = ex[tl.x].down.q;
    job.n0 = n0, job.N = H, job.K = Im;
    float acc[1][S::MF][S::NF][4];
    qmma_tile<S, BITS>(acc, job, qmma_sm);
    qmma_for_each<S>(acc, [&](int, int r, int c, float v0, float v1) {
        const int nn = n0 + c;
        if (r >= m || nn >= H) return; /* H is even (a multiple of gate's group) */
        *reinterpret_cast<float2 *>(y + (int64_t)(slot0 + r) * H + nn) = make_float2(v0, v1);
    });
}

/* ---- host --------------------------------------------------------------------------------------- */

typedef qmma_shape<128, 128, 1, 2, 4> qmma_s128;   /* T large, enough blocks to fill the GPU  */
typedef qmma_shape<64, 128, 1, 2, 4> qmma_s64w;    /* medium T; also the experts' down        */
typedef qmma_shape<64, 64, 1, 2, 2> qmma_s64;      /* T <= 128                                */
typedef qmma_shape<32, 64, 1, 1, 4> qmma_s32;      /* T <= 32                                 */
typedef qmma_shape<64, 64, 2, 2, 4> qmma_sgu;      /* experts' gate + up                      */
static_assert(qmma_sgu::BM == QMMA_MOE_ROWS && qmma_s64w::BM == QMMA_MOE_ROWS, "expert tiles are 64 rows");

/* The fast decoders' width for codes at `codes` (4 or 8 bits, 16-byte aligned rows and base),
 * else 0: the generic decoder. Rows of 4- and 8-bit codes are multiples of 16 bytes (K % 32 == 0). */
static int qmma_fast_bits(int bits, const void *codes) { return (bits == 4 || bits == 8) && cu_aligned(codes, 16) ? bits : 0; }

static void qmma_say_generic(void) {
    static int said;
    if (cu_first_time(&said))
        gm_info("cuda: quantized weights of 2, 3, 5 or 6 bits (or of mixed widths, or codes not 16-byte aligned) take "
                "the generic decoder of the tensor-core prefill (slower than the tuned 4 and 8 bits)");
}

static glmoe_status qmma_to_half(cuda_exec *cx, qmma_t *dst, const float *src, int64_t n, gm_err *err) {
    const bool vec = n % 4 == 0 && cu_aligned(src, 16) && cu_aligned(dst, 8);
    unsigned blocks = cu_blocks(vec ? n / 4 : n, 256);
    if (blocks > (unsigned)cx->cb->sm_count * 8) blocks = (unsigned)cx->cb->sm_count * 8;
    qmma_to_half_kernel<<<blocks, 256, 0, cx->stream>>>(dst, src, n, vec);
    CU_LAUNCHED();
    return GLMOE_OK;
}

template <class S, int BITS>
static glmoe_status qmma_dense_launch(cuda_exec *cx, float *out, const qmma_t *xb, const cu_affine &w,
                                      const float *bias, int T, int N, int K, gm_err *err) {
    constexpr size_t smem = qmma_smem_bytes<S, BITS>();
    static cu_smem_allowed allowed;
    glmoe_status s = cuda_allow_smem((const void *)qmma_dense_kernel<S, BITS>, smem, &allowed, err);
    if (s) return s;
    dim3 grid(cu_blocks(N, S::BN), cu_blocks(T, S::BM));
    qmma_dense_kernel<S, BITS><<<grid, S::THREADS, smem, cx->stream>>>(out, xb, w, bias, T, N, K);
    CU_LAUNCHED();
    return GLMOE_OK;
}

template <class S>
static glmoe_status qmma_dense_bits(cuda_exec *cx, int bits, float *out, const qmma_t *xb, const cu_affine &w,
                                    const float *bias, int T, int N, int K, gm_err *err) {
    if (bits == 4) return qmma_dense_launch<S, 4>(cx, out, xb, w, bias, T, N, K, err);
    if (bits == 8) return qmma_dense_launch<S, 8>(cx, out, xb, w, bias, T, N, K, err);
    return qmma_dense_launch<S, 0>(cx, out, xb, w, bias, T, N, K, err);
}

glmoe_status cuda_affine_matmul_mma(cuda_exec *cx, float *out, const float *x, const gm_weight *W, const float *bias,
                                    int32_t T, gm_err *err) {
    const int N = (int)W->rows, K = (int)W->cols;
    const int64_t n = (int64_t)T * K;
    if ((size_t)n > cx->split_elems)
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: quantized matmul of %d x %d inputs exceeds the reserved scratch (%zu)",
                       T, K, cx->split_elems);
    qmma_t *xb = reinterpret_cast<qmma_t *>(cx->split); /* the matmul scratch, as fp16 */
    glmoe_status s = qmma_to_half(cx, xb, x, n, err);
    if (s) return s;
    const cu_affine a = cu_affine_of(W);
    const int bits = qmma_fast_bits(a.bits, a.codes);
    if (!bits) qmma_say_generic();
    if (T <= 32) return qmma_dense_bits<qmma_s32>(cx, bits, out, xb, a, bias, T, N, K, err);
    if (T <= 128) return qmma_dense_bits<qmma_s64>(cx, bits, out, xb, a, bias, T, N, K, err);
    const int64_t big_blocks = (int64_t)cu_blocks(T, qmma_s128::BM) * cu_blocks(N, qmma_s128::BN);
    if (big_blocks >= cx->cb->sm_count) return qmma_dense_bits<qmma_s128>(cx, bits, out, xb, a, bias, T, N, K, err);
    return qmma_dense_bits<qmma_s64w>(cx, bits, out, xb, a, bias, T, N, K, err);
}

/* ---- experts ------------------------------------------------------------------------------------ */

void cuda_affine_experts_plan(cuda_expert_table *tb, const gm_experts *bank) {
    bool all = bank->n > 0;
    int gu_bits = -1, down_bits = -1;
    for (int e = 0; e < bank->n && all; e++) {
        const gm_weight *g = &bank->gate[e], *u = &bank->up[e], *d = &bank->down[e];
        all = g->type == GM_W_AFFINE && u->type == GM_W_AFFINE && d->type == GM_W_AFFINE;
        if (!all) break;
        /* The fast decoders need one width for a whole launch and aligned codes. */
        const int fg = qmma_fast_bits(g->q.bits, g->data), fu = qmma_fast_bits(u->q.bits, u->data);
        const int fgu = fg == fu ? fg : 0, fd = qmma_fast_bits(d->q.bits, d->data);
        gu_bits = gu_bits < 0 || gu_bits == fgu ? fgu : 0;
        down_bits = down_bits < 0 || down_bits == fd ? fd : 0;
    }
    tb->affine_tiles = all;
    tb->affine_gu_bits = (int8_t)(all ? gu_bits : 0);
    tb->affine_down_bits = (int8_t)(all ? down_bits : 0);
}

template <int BITS>
static glmoe_status qmma_gateup_launch(cuda_exec *cx, const qmma_t *xb, const cuda_expert_table *tb,
                                       unsigned max_tiles, int H, int Im, gm_err *err) {
    typedef qmma_sgu S;
    constexpr size_t smem = qmma_smem_bytes<S, BITS>();
    static cu_smem_allowed allowed;
    glmoe_status s = cuda_allow_smem((const void *)qmma_gateup_kernel<S, BITS>, smem, &allowed, err);
    if (s) return s;
    dim3 grid(cu_blocks(Im, S::BN), max_tiles);
    qmma_gateup_kernel<S, BITS><<<grid, S::THREADS, smem, cx->stream>>>(
        (qmma_t *)cx->moe_h, xb, cx->moe_rows, cx->moe_tiles, cx->moe_ntiles, tb->dev, H, Im);
    CU_LAUNCHED();
    return GLMOE_OK;
}

template <int BITS>
static glmoe_status qmma_down_launch(cuda_exec *cx, const cuda_expert_table *tb, unsigned max_tiles, int H, int Im,
                                     gm_err *err) {
    typedef qmma_s64w S;
    constexpr size_t smem = qmma_smem_bytes<S, BITS>();
    static cu_smem_allowed allowed;
    glmoe_status s = cuda_allow_smem((const void *)qmma_down_kernel<S, BITS>, smem, &allowed, err);
    if (s) return s;
    dim3 grid(cu_blocks(H, S::BN), max_tiles);
    qmma_down_kernel<S, BITS><<<grid, S::THREADS, smem, cx->stream>>>(
        cx->moe_y, (const qmma_t *)cx->moe_h, cx->moe_tiles, cx->moe_ntiles, tb->dev, H, Im);
    CU_LAUNCHED();
    return GLMOE_OK;
}

glmoe_status cuda_affine_expert_tiles(cuda_exec *cx, const float *x, const cuda_expert_table *tb, int32_t T, int H,
                                      int Im, unsigned max_tiles, gm_err *err) {
    const int64_t n = (int64_t)T * H;
    if ((size_t)n > cx->split_elems)
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: quantized experts of %d x %d inputs exceed the reserved scratch (%zu)",
                       T, H, cx->split_elems);
    if (!tb->affine_gu_bits || !tb->affine_down_bits) qmma_say_generic();
    qmma_t *xb = reinterpret_cast<qmma_t *>(cx->split); /* the matmul scratch, as fp16 */
    glmoe_status s = qmma_to_half(cx, xb, x, n, err);
    if (s) return s;
    /* h (fp16) reuses moe_h, sized for as many float32 values. */
    switch (tb->affine_gu_bits) {
    case 4: s = qmma_gateup_launch<4>(cx, xb, tb, max_tiles, H, Im, err); break;
    case 8: s = qmma_gateup_launch<8>(cx, xb, tb, max_tiles, H, Im, err); break;
    default: s = qmma_gateup_launch<0>(cx, xb, tb, max_tiles, H, Im, err); break;
    }
    if (s) return s;
    switch (tb->affine_down_bits) {
    case 4: return qmma_down_launch<4>(cx, tb, max_tiles, H, Im, err);
    case 8: return qmma_down_launch<8>(cx, tb, max_tiles, H, Im, err);
    default: return qmma_down_launch<0>(cx, tb, max_tiles, H, Im, err);
    }
}
