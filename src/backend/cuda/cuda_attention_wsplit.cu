/*
 * cuda_attention_wsplit.cu — decode attention on the tensor cores when a KV head's query rows fit
 * one MMA tile: the warp-split variant of attn_tc_kernel<true> (cuda_attention_tc.cu), opt-in with
 * GLMOE_CUDA_ATTN_WSPLIT=1 (read once; cuda_attention_tc_decode picks it for T x ratio <= 16, which
 * is T = 1 for GLM-4.5 and Air: 12 query heads per KV head).
 *
 * Why: attn_tc_kernel gives each of its 4 warps 16 query rows, so at T = 1 warp 0 holds the 12
 * valid rows and warps 1-3 run their 128 MMAs per 64-key tile on padding, serially after the
 * tile's load. Here every warp holds the same 16 rows (q rotated, only the valid rows, and rounded
 * once) and takes 16 keys of each tile: S for its keys (2 n-tiles x 8 k-steps = 16 MMAs), its own
 * online softmax (m, l per row, the 4 lanes of a row combined by shuffles), and P·V over its keys
 * (1 k-step x 16 n-tiles = 16 MMAs) into its own o. The tiles come through a 2-stage cp.async
 * ring, K and V both row-major (V's B fragments by ldmatrix.trans, K's by ldmatrix), so the next
 * tile's copies fly during this tile's math; this call's new keys (rotated) and the zeros past the
 * last key are stored directly. At the end the 4 warps' (m, l, o) of the same rows merge through
 * shared memory into warp 0 (M = max m_w, L = Σ l_w 2^(m_w - M), o = Σ o_w 2^(m_w - M)), and the
 * block finishes as attn_tc_kernel does (tc_finish): with grid.z splits (FlashDecoding, the split
 * count chosen on the device by decode_splits), unnormalised partials and the last split's merge,
 * else the normalised output.
 *
 * Bytes: as attn_tc_kernel<true>, n_keys x nkv x 128 x 2 x 2 of cache (0.5 MB at 128 keys and 8 KV
 * heads), q (T x nh x 128 x 4), the partials when split. Shared memory: 2 stages of K and V (64 x
 * 136 bf16 each, 34 KB a stage) and the rotated q (16 x 136 bf16): 73,984 bytes, dynamic (allowed
 * above 48 KB by cuda_allow_smem); the merge reuses the stages. Bound: latency, as before, now the
 * first tile's copies, 32 MMAs per warp per tile, the merge (3 x 16 x 128 floats through shared
 * memory) and the output store. Grid (1, nkv, splits): one block of 16 rows per KV head and split.
 *
 * Tested by tests/ops/test_ops.c under GLMOE_CUDA_ATTN_WSPLIT=1 (every decode case of up to 16
 * rows per KV head runs here; "cuda bf16 KV"), at the default kernel's tolerance.
 */
#include <string.h>

#include "backend/cuda/cuda_attention_tc.cuh"

#define WS_ROWS CUDA_ATTN_WSPLIT_ROWS         /* a block's query rows: one m16 tile, held by every warp */
static_assert(WS_ROWS == 16, "the rows make one m16 tile");
#define WS_WARP_KEYS (TC_KEYS / TC_WARPS)     /* keys of a tile per warp: one k-step of P·V */
static_assert(WS_WARP_KEYS == 16, "a warp's keys of a tile make one k-step of P·V");
#define WS_LD TC_K_LD                         /* bf16 stride of a K or V row (both row-major here) */
#define WS_STAGE (2 * TC_KEYS * WS_LD)        /* bf16 elements of one stage: K, then V */
#define WS_SMEM ((size_t)(2 * WS_STAGE + WS_ROWS * WS_LD) * 2) /* two stages, then the rotated q */
/* the merge of the warps' states reuses the stages: o as float4 [warp - 1][TC_D / 8][32], (m, l) [warp - 1][32] */
static_assert((TC_WARPS - 1) * (TC_D / 8 + 1) * 32 * 16 <= 2 * WS_STAGE * 2, "the merge fits the stages");

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global -> shared, asynchronously, in this thread's current group (L2 only: read once). */
__device__ __forceinline__ void cp_async16(void *dst, const void *src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_u32(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit(void) { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
/* Waits until at most N of this thread's groups are pending (the newest ones). */
template <int N> __device__ __forceinline__ void cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Four 8x8 bf16 matrices from shared memory; lane L gives the address of row L % 8 of matrix
 * L / 8. Plain: r[i] holds row g, columns 2·t4 and 2·t4 + 1 of matrix i (an operand fragment of a
 * row-major tile); .trans: row 2·t4 and 2·t4 + 1 of column g (the same of its transpose). */
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p))
                 : "memory");
}

/* Keys [j0, j0 + TC_KEYS) of KV head kvh into one stage, ks and vs [TC_KEYS][WS_LD], both
 * row-major (a thread per 16 bytes, so a key row is one 256-byte read): cached keys by cp.async
 * (in the caller's current group), this call's keys (n_past and after) rotated and rounded here,
 * zeros past key_end (P·V multiplies them by p = 0; stale bytes could be NaN). Every byte of the
 * stage's 64 rows is written. Not unrolled: the copies are asynchronous, and the rotation's sincosf
 * once in the code is enough. */
__device__ __forceinline__ void ws_fill(const cuda_attn_tc_args &a, __nv_bfloat16 *ks, __nv_bfloat16 *vs, int j0,
                                        int key_end, int n_past, int kvh, int64_t kv_row) {
#pragma unroll 1
    for (int i = threadIdx.x; i < TC_KEYS * (TC_D / 8); i += TC_WARPS * 32) {
        const int kr = i / (TC_D / 8), c8 = (i % (TC_D / 8)) * 8, key = j0 + kr;
        __nv_bfloat16 *kd = ks + kr * WS_LD + c8, *vd = vs + kr * WS_LD + c8;
        if (key < n_past && key < key_end) {
            cp_async16(kd, a.kc + key * kv_row + kvh * TC_D + c8);
            cp_async16(vd, a.vc + key * kv_row + kvh * TC_D + c8);
        } else if (key < key_end) {
            const int t = key - n_past;
            const int64_t src = ((int64_t)t * a.nkv + kvh) * TC_D;
            const int32_t pos = a.rope.pos ? a.rope.pos[t] : 0;
            *(uint4 *)kd = new_row8(a.k_new + src, c8, a.rope.pos != nullptr, a.rope, pos);
            *(uint4 *)vd = new_row8(a.v_new + src, c8, false, a.rope, 0);
        } else {
            *(uint4 *)kd = make_uint4(0, 0, 0, 0);
            *(uint4 *)vd = make_uint4(0, 0, 0, 0);
        }
    }
}

/* Decode with every query row of a KV head in one m16 tile (T · ratio <= WS_ROWS; the grid is
 * (1, nkv, splits)): each warp holds the same 16 rows and takes 16 keys of each tile, with its
 * own online-softmax state; the 4 states merge at the end, and the block finishes as
 * attn_tc_kernel<true> does (tc_finish: partials and the last split's merge, or the output). */
__global__ void __launch_bounds__(TC_WARPS * 32) attn_tc_wsplit_kernel(cuda_attn_tc_args a) {
    extern __shared__ __align__(16) __nv_bfloat16 ws_smem[];
    __shared__ int merge_here;
    cu_pdl_trigger(); /* o_proj's GEMV may start its weight loads (cu_launch_pdl) */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int kvh = blockIdx.y, n_rows = a.T * a.ratio;
    const int n_past = a.past ? *a.past : a.n_past, n_keys = n_past + a.T;
    if (n_past < 0 || n_keys > a.n_ctx) {
        if (threadIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0)
            cu_raise_fault(a.fault, CUDA_FAULT_POSITION, n_past, a.n_ctx - a.T);
        return;
    }
    const int64_t kv_row = (int64_t)a.nkv * TC_D;
    if (blockIdx.z == 0) store_new_rows(a, kvh, n_past, kv_row);

    int split_len, n_splits;
    decode_splits(n_keys, a.split_min_keys, split_len, n_splits);
    if ((int)blockIdx.z >= n_splits) return; /* uniform over the block */
    const int key_lo = blockIdx.z * split_len, key_hi = min(n_keys, key_lo + split_len);
    const int key_end = min(key_hi, n_past + (n_rows - 1) / a.ratio + 1);

    __nv_bfloat16 *const qs = ws_smem + 2 * WS_STAGE; /* [WS_ROWS][WS_LD] */
    /* The first tile's loads fly while q is rotated. Each thread commits one group here and one
     * per tile below (empty when there is nothing to fill), so that wait_group 1 at tile i
     * leaves only tile i + 1's copies pending. */
    if (key_lo < key_end) ws_fill(a, ws_smem, ws_smem + TC_KEYS * WS_LD, key_lo, key_end, n_past, kvh, kv_row);
    cp_async_commit();

    /* This thread's two rows, g and g + 8 (the same in every warp). */
    int tok[2], head[2];
    bool valid[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int f = g + 8 * i;
        valid[i] = f < n_rows;
        tok[i] = valid[i] ? f / a.ratio : 0;
        head[i] = kvh * a.ratio + (valid[i] ? f % a.ratio : 0);
    }
    uint32_t qa[TC_D / 16][4];
    if (a.rope.pos) {
        /* Only the valid rows are rotated (the others are zeros), into their own region of
         * shared memory, then read as the A fragments as attn_tc_kernel reads them. */
        for (int i = threadIdx.x; i < WS_ROWS * (TC_D / 2); i += TC_WARPS * 32) {
            const int f = i / (TC_D / 2), d = (i % (TC_D / 2)) * 2;
            uint32_t v = 0;
            if (f < n_rows) v = tc_rotated_q2(a, kvh, f, d);
            *(uint32_t *)&qs[f * WS_LD + d] = v;
        }
        __syncthreads();
#pragma unroll
        for (int kstep = 0; kstep < TC_D / 16; kstep++) {
            const int d = kstep * 16 + 2 * t4;
            qa[kstep][0] = *(const uint32_t *)&qs[g * WS_LD + d];
            qa[kstep][1] = *(const uint32_t *)&qs[(g + 8) * WS_LD + d];
            qa[kstep][2] = *(const uint32_t *)&qs[g * WS_LD + d + 8];
            qa[kstep][3] = *(const uint32_t *)&qs[(g + 8) * WS_LD + d + 8];
        }
    } else {
        tc_q_fragments(qa, a, tok, head, valid, t4);
    }
    float o[TC_D / 8][4];
#pragma unroll
    for (int j = 0; j < TC_D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const float sl2 = a.scale * 1.4426950408889634f; /* scale · log2 e: S in the log2 domain */
    const int kb = warp * WS_WARP_KEYS; /* this warp's keys within a tile */

    int stage = 0;
    for (int j0 = key_lo; j0 < key_end; j0 += TC_KEYS, stage ^= 1) {
        /* The next tile into the other stage, whose last readers passed the barrier that ended
         * the previous iteration; then this tile's copies (this thread's: wait_group; everyone's,
         * and the plain stores of ws_fill: the barrier). */
        __nv_bfloat16 *const next = ws_smem + (stage ^ 1) * WS_STAGE;
        if (j0 + TC_KEYS < key_end)
            ws_fill(a, next, next + TC_KEYS * WS_LD, j0 + TC_KEYS, key_end, n_past, kvh, kv_row);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const __nv_bfloat16 *const ks = ws_smem + stage * WS_STAGE, *const vs = ks + TC_KEYS * WS_LD;
        if (j0 + kb < key_end) { /* warp-uniform: a warp whose 16 keys are all past the end idles */
            /* S for keys kb..kb+15: ldmatrix rows are keys, so the plain fragments are the B
             * operand of Q·K^T (lanes 0-15: keys kb..kb+7, dims +0 and +8; lanes 16-31: kb+8..) */
            float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
            const __nv_bfloat16 *krow = ks + (kb + (lane & 7) + ((lane >> 4) << 3)) * WS_LD + ((lane >> 3) & 1) * 8;
#pragma unroll
            for (int kstep = 0; kstep < TC_D / 16; kstep++) {
                uint32_t b[4];
                ldsm_x4(b, krow + kstep * 16);
                mma_bf16(s[0], qa[kstep], b[0], b[1]);
                mma_bf16(s[1], qa[kstep], b[2], b[3]);
            }
            tc_scale_mask<2>(s, a.mask, j0 + kb, key_end, n_past, n_keys, tok, valid, t4, sl2);
            tc_online_softmax<2>(s, m, l, o);
            /* O += P·V over the warp's 16 keys: .trans fragments of row-major V are the B
             * operand (lanes 0-7: keys kb..kb+7, 8-15: kb+8..kb+15, dims +0; 16-31: dims +8). */
            const uint32_t pa[4] = {pack_bf16x2(s[0][0], s[0][1]), pack_bf16x2(s[0][2], s[0][3]),
                                    pack_bf16x2(s[1][0], s[1][1]), pack_bf16x2(s[1][2], s[1][3])};
            const __nv_bfloat16 *vrow = vs + (kb + (lane & 15)) * WS_LD + (lane >> 4) * 8;
#pragma unroll
            for (int jp = 0; jp < TC_D / 16; jp++) {
                uint32_t b[4];
                ldsm_x4_trans(b, vrow + jp * 16);
                mma_bf16(o[2 * jp], pa, b[0], b[1]);
                mma_bf16(o[2 * jp + 1], pa, b[2], b[3]);
            }
        }
        __syncthreads(); /* this stage is consumed: the next iteration but one refills it */
    }
    cp_async_wait<0>(); /* nothing pending (the last groups are empty) before the stages are reused */
    __syncthreads();

    /* The 4 warps' states of the same 16 rows into warp 0's registers, in the log2 domain:
     * M = max m_w, L = Σ l_w 2^(m_w - M), o = Σ o_w 2^(m_w - M); a warp that saw no key of a row
     * (m_w = -inf) weighs nothing. */
    float4 *const mo = (float4 *)ws_smem, *const mml = mo + (TC_WARPS - 1) * (TC_D / 8) * 32;
    if (warp > 0) {
#pragma unroll
        for (int j = 0; j < TC_D / 8; j++) mo[((warp - 1) * (TC_D / 8) + j) * 32 + lane] = make_float4(o[j][0], o[j][1], o[j][2], o[j][3]);
        mml[(warp - 1) * 32 + lane] = make_float4(m[0], m[1], l[0], l[1]);
    }
    __syncthreads();
    if (warp == 0) {
        float w_self[2], w_other[TC_WARPS - 1][2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            float mw[TC_WARPS - 1], lw[TC_WARPS - 1], M = m[i];
#pragma unroll
            for (int w = 0; w < TC_WARPS - 1; w++) {
                const float4 v = mml[w * 32 + lane];
                mw[w] = i ? v.y : v.x;
                lw[w] = i ? v.w : v.z;
                M = fmaxf(M, mw[w]);
            }
            w_self[i] = m[i] == -INFINITY ? 0.0f : exp2f(m[i] - M);
            float L = l[i] * w_self[i];
#pragma unroll
            for (int w = 0; w < TC_WARPS - 1; w++) {
                w_other[w][i] = mw[w] == -INFINITY ? 0.0f : exp2f(mw[w] - M);
                L += w_other[w][i] * lw[w];
            }
            m[i] = M;
            l[i] = L;
        }
#pragma unroll
        for (int j = 0; j < TC_D / 8; j++) {
            o[j][0] *= w_self[0], o[j][1] *= w_self[0], o[j][2] *= w_self[1], o[j][3] *= w_self[1];
#pragma unroll
            for (int w = 0; w < TC_WARPS - 1; w++) {
                const float4 v = mo[(w * (TC_D / 8) + j) * 32 + lane];
                o[j][0] += w_other[w][0] * v.x, o[j][1] += w_other[w][0] * v.y;
                o[j][2] += w_other[w][1] * v.z, o[j][3] += w_other[w][1] * v.w;
            }
        }
    } else {
        valid[0] = valid[1] = false; /* warp 0 holds the block's rows now */
    }
    tc_finish<true>(a, o, m, l, valid, tok, head, n_splits, n_rows, kvh, warp, lane, t4, merge_here);
}

glmoe_status cuda_attention_tc_wsplit(cuda_exec *cx, const cuda_attn_tc_args &a, int max_splits, gm_err *err) {
    static cu_smem_allowed allowed;
    glmoe_status s = cuda_allow_smem((const void *)attn_tc_wsplit_kernel, WS_SMEM, &allowed, err);
    if (s) return s;
    attn_tc_wsplit_kernel<<<dim3(1, (unsigned)a.nkv, (unsigned)max_splits), TC_WARPS * 32, WS_SMEM, cx->stream>>>(a);
    CU_LAUNCHED();
    return GLMOE_OK;
}

bool cuda_attn_wsplit(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("GLMOE_CUDA_ATTN_WSPLIT");
        v = e && !strcmp(e, "1");
    }
    return v == 1;
}
