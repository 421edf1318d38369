/*
 * cuda_attention_tc.cu — attention on the tensor cores, for a bf16 KV cache and 128-dim heads
 * (GLM-4.5's): the same causal GQA attention as cuda_attention.cu (whose kernel remains for
 * float32 caches and other head sizes), in the manner of FlashAttention-2, for prefill and, with
 * the keys split over blocks (FlashDecoding), for decode: the 12 query heads of a KV head make
 * 12 rows of one MMA tile, so a decode step reads each K/V tile once, on the tensor cores.
 *
 * A block of 4 warps takes 64 query rows of one KV head, numbered as in cuda_attention.cu
 * (f = t * ratio + h mod ratio, so the query heads that share the KV head share every K/V tile);
 * each warp owns 16 rows. Per tile of 64 keys, read once into shared memory (V transposed):
 *   S = Q·K^T     mma.m16n8k16 (bf16 in, float32 sums); Q was rounded to bf16 once, in registers;
 *   online softmax in float32 registers, in the log2 domain (scale·log2 e folded in): running max
 *                 m and sum l per row, the 4 lanes of a row combined by shuffles;
 *   O += P·V      P rounded to bf16 straight from the S accumulators (their layout is the A
 *                 operand's), O in float32 registers, rescaled by 2^(m_old - m_new).
 * Masks: causal by position arithmetic; an explicit additive mask is added to S. A row whose keys
 * are all hidden outputs zeros. With RoPE folded in, the block's query rows are rotated once into
 * shared memory (then the A fragments), the new keys as they are read (cu_rope_elem).
 *
 * Decode (attn_tc_kernel<true>, up to CUDA_ATTN_DECODE_TOKENS queries): one launch per layer
 * does what took five (rope q, rope k, kv_store, attention, combine). The keys at n_past and
 * after come from the call's k and v (float32, rotated and rounded to bf16 here), so no block
 * waits for the cache store, which blocks (x 0, z 0) do on the side. The keys are split over
 * grid.z for long contexts (FlashDecoding); the split count comes from n_keys on the device
 * (a recorded step reads n_past from memory): none shorter than CUDA_ATTN_TC_SPLIT_MIN_KEYS (or
 * GLMOE_CUDA_ATTN_SPLIT_KEYS), so short contexts run unsplit. Each split writes unnormalised partials (o, m, l); the last split of
 * a (row block, KV head) to finish, found by an atomic counter after a fence, merges them and
 * resets the counter for the next launch. Bytes: n_keys x nkv x 128 x 2 x 2 of cache (0.5 MB at
 * 128 keys and 8 KV heads) plus the partials (splits x rows x 130 x 4, from L2); at short
 * contexts the bound is latency: one tile's load, the MMAs and the output store.
 *
 * Decode calls of up to 16 query rows per KV head (T = 1 for GLM-4.5/Air) may take the
 * warp-split variant instead (cuda_attention_wsplit.cu, opt-in GLMOE_CUDA_ATTN_WSPLIT=1): one
 * 16-row block per KV head whose 4 warps share each key tile, with the tiles double-buffered,
 * rather than 3 warps of 4 computing padding rows. The pieces both kernels use are in
 * cuda_attention_tc.cuh.
 *
 * Precision: q, k, v and p carry 8 significant bits (the cache is bf16 anyway); sums are
 * float32: ~1e-3 relative, checked by tests/ops/test_ops.c ("cuda bf16 KV").
 */
#include <stdlib.h>

#include "backend/cuda/cuda_attention_tc.cuh"

/* DECODE false: prefill, the new keys already in the cache, one split. DECODE true: keys at and
 * past n_past come from k_new/v_new (rotated here), which the blocks (x 0, z 0) also store in the
 * cache (no block of the launch reads those cache rows), and the keys are split over gridDim.z
 * (decode_splits); the last split of each (row block, KV head) to finish merges the partials. */
template <bool DECODE>
__global__ void __launch_bounds__(TC_WARPS * 32) attn_tc_kernel(cuda_attn_tc_args a) {
    __shared__ __align__(16) __nv_bfloat16 ks[TC_KEYS][TC_K_LD];
    __shared__ __align__(16) __nv_bfloat16 vt[TC_D][TC_VT_LD];
    __shared__ int merge_here;
    cu_pdl_trigger(); /* o_proj's GEMV may start its weight loads (cu_launch_pdl) */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t4 = lane & 3;
    const int kvh = blockIdx.y, n_rows = a.T * a.ratio;
    /* n_past from device memory when given (forward() passes it; it equals the host's) */
    const int n_past = a.past ? *a.past : a.n_past, n_keys = n_past + a.T;
    if (n_past < 0 || n_keys > a.n_ctx) {
        if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0)
            cu_raise_fault(a.fault, CUDA_FAULT_POSITION, n_past, a.n_ctx - a.T);
        return;
    }
    const int64_t kv_row = (int64_t)a.nkv * TC_D;

    if (DECODE && blockIdx.x == 0 && blockIdx.z == 0) store_new_rows(a, kvh, n_past, kv_row);

    /* Keys any row of the block may see (up to the last row's position), cut to this split. */
    int key_lo = 0, key_hi = n_keys, n_splits = 1;
    if (DECODE) {
        int split_len;
        decode_splits(n_keys, a.split_min_keys, split_len, n_splits);
        if ((int)blockIdx.z >= n_splits) return; /* uniform over the block */
        key_lo = blockIdx.z * split_len;
        key_hi = min(n_keys, key_lo + split_len);
    }
    const int f_last = min(n_rows, (int)(blockIdx.x + 1) * TC_ROWS) - 1;
    const int key_end = min(key_hi, n_past + f_last / a.ratio + 1);

    /* This thread's two rows: g and g + 8 of the warp's 16. */
    int tok[2], head[2];
    bool valid[2];
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int f = blockIdx.x * TC_ROWS + warp * 16 + g + 8 * i;
        valid[i] = f < n_rows;
        tok[i] = valid[i] ? f / a.ratio : 0;
        head[i] = kvh * a.ratio + (valid[i] ? f % a.ratio : 0);
    }
    uint32_t qa[TC_D / 16][4];
    if (a.rope.pos) {
        /* RoPE folded in: the block's rows are rotated and rounded to bf16 once, staged in ks
         * (64 rows of 128 dims; the first tile's barrier orders its reuse), then read as the
         * A fragments: the same bf16 values as the rope op followed by the direct load below. */
        for (int i = threadIdx.x; i < TC_ROWS * (TC_D / 2); i += TC_WARPS * 32) {
            const int r = i / (TC_D / 2), d = (i % (TC_D / 2)) * 2, f = blockIdx.x * TC_ROWS + r;
            uint32_t v = 0;
            if (f < n_rows) v = tc_rotated_q2(a, kvh, f, d);
            *(uint32_t *)&ks[r][d] = v;
        }
        __syncthreads();
        const int r0 = warp * 16 + g, r1 = r0 + 8;
#pragma unroll
        for (int kstep = 0; kstep < TC_D / 16; kstep++) {
            const int d = kstep * 16 + 2 * t4;
            qa[kstep][0] = *(const uint32_t *)&ks[r0][d];
            qa[kstep][1] = *(const uint32_t *)&ks[r1][d];
            qa[kstep][2] = *(const uint32_t *)&ks[r0][d + 8];
            qa[kstep][3] = *(const uint32_t *)&ks[r1][d + 8];
        }
    } else {
        tc_q_fragments(qa, a, tok, head, valid, t4);
    }
    float o[TC_D / 8][4];
#pragma unroll
    for (int j = 0; j < TC_D / 8; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const float sl2 = a.scale * 1.4426950408889634f; /* scale · log2 e: S in the log2 domain */

    for (int j0 = key_lo; j0 < key_end; j0 += TC_KEYS) {
        __syncthreads(); /* the previous tile is consumed */
        /* Lanes run over keys, so that the transposed V stores hit distinct banks. The trip count
         * is fixed and unrolled: every load of the tile is in flight before the first store. */
#pragma unroll
        for (int it = 0; it < TC_KEYS * (TC_D / 8) / (TC_WARPS * 32); it++) {
            const int i = threadIdx.x + it * TC_WARPS * 32;
            const int kr = i % TC_KEYS, c8 = (i / TC_KEYS) * 8, key = j0 + kr;
            if (DECODE && key >= n_past && key < key_end) continue; /* a new key: stored below */
            uint4 kv4 = make_uint4(0, 0, 0, 0), vv4 = make_uint4(0, 0, 0, 0);
            if (key < key_end) {
                kv4 = *(const uint4 *)(a.kc + key * kv_row + kvh * TC_D + c8);
                vv4 = *(const uint4 *)(a.vc + key * kv_row + kvh * TC_D + c8);
            }
            *(uint4 *)&ks[kr][c8] = kv4;
            const __nv_bfloat16 *vv = (const __nv_bfloat16 *)&vv4;
#pragma unroll
            for (int q = 0; q < 8; q++) vt[c8 + q][kr] = vv[q];
        }
        if (DECODE) { /* keys [n_past, n_keys) of this tile come from this call's inputs */
            const int new_lo = max(j0, n_past), new_n = min(j0 + TC_KEYS, key_end) - new_lo;
            for (int i = threadIdx.x; i < new_n * (TC_D / 8); i += TC_WARPS * 32) {
                const int key = new_lo + i / (TC_D / 8), c8 = (i % (TC_D / 8)) * 8, kr = key - j0, t = key - n_past;
                const int64_t src = ((int64_t)t * a.nkv + kvh) * TC_D;
                const int32_t pos = a.rope.pos ? a.rope.pos[t] : 0;
                *(uint4 *)&ks[kr][c8] = new_row8(a.k_new + src, c8, a.rope.pos != nullptr, a.rope, pos);
                const uint4 vv4 = new_row8(a.v_new + src, c8, false, a.rope, 0);
                const __nv_bfloat16 *vv = (const __nv_bfloat16 *)&vv4;
#pragma unroll
                for (int q = 0; q < 8; q++) vt[c8 + q][kr] = vv[q];
            }
        }
        __syncthreads();

        float s[TC_KEYS / 8][4];
#pragma unroll
        for (int nt = 0; nt < TC_KEYS / 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kstep = 0; kstep < TC_D / 16; kstep++) {
                const uint32_t b0 = *(const uint32_t *)&ks[nt * 8 + g][kstep * 16 + 2 * t4];
                const uint32_t b1 = *(const uint32_t *)&ks[nt * 8 + g][kstep * 16 + 2 * t4 + 8];
                mma_bf16(s[nt], qa[kstep], b0, b1);
            }
        }
        /* scale, masks, then the online softmax of each of the two rows */
        tc_scale_mask<TC_KEYS / 8>(s, a.mask, j0, key_end, n_past, n_keys, tok, valid, t4, sl2);
        tc_online_softmax<TC_KEYS / 8>(s, m, l, o);
        /* O += P·V: P's accumulators are already the A operand's layout */
#pragma unroll
        for (int kk = 0; kk < TC_KEYS / 16; kk++) {
            const uint32_t pa[4] = {pack_bf16x2(s[2 * kk][0], s[2 * kk][1]), pack_bf16x2(s[2 * kk][2], s[2 * kk][3]),
                                    pack_bf16x2(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                                    pack_bf16x2(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
            for (int j = 0; j < TC_D / 8; j++) {
                const uint32_t b0 = *(const uint32_t *)&vt[j * 8 + g][kk * 16 + 2 * t4];
                const uint32_t b1 = *(const uint32_t *)&vt[j * 8 + g][kk * 16 + 2 * t4 + 8];
                mma_bf16(o[j], pa, b0, b1);
            }
        }
    }
    tc_finish<DECODE>(a, o, m, l, valid, tok, head, n_splits, n_rows, kvh, warp, lane, t4, merge_here);
}

bool cuda_attention_tc_fits(int D, bool bf16_cache) { return bf16_cache && D == TC_D; }

glmoe_status cuda_attention_tc(cuda_exec *cx, const cuda_attn_tc_args &a, gm_err *err) {
    dim3 grid((unsigned)((a.T * a.ratio + TC_ROWS - 1) / TC_ROWS), (unsigned)a.nkv, 1);
    attn_tc_kernel<false><<<grid, TC_WARPS * 32, 0, cx->stream>>>(a);
    CU_LAUNCHED();
    return GLMOE_OK;
}

glmoe_status cuda_attention_tc_decode(cuda_exec *cx, const cuda_attn_tc_args &a, int max_splits, gm_err *err) {
    if (a.T * a.ratio <= CUDA_ATTN_WSPLIT_ROWS && cuda_attn_wsplit()) return cuda_attention_tc_wsplit(cx, a, max_splits, err);
    dim3 grid((unsigned)((a.T * a.ratio + TC_ROWS - 1) / TC_ROWS), (unsigned)a.nkv, (unsigned)max_splits);
    attn_tc_kernel<true><<<grid, TC_WARPS * 32, 0, cx->stream>>>(a);
    CU_LAUNCHED();
    return GLMOE_OK;
}

int cuda_attn_split_min_keys(void) {
    static int v = 0;
    if (!v) {
        const char *e = getenv("GLMOE_CUDA_ATTN_SPLIT_KEYS");
        const int n = e ? atoi(e) : 0;
        v = n >= TC_KEYS && n % TC_KEYS == 0 ? n : CUDA_ATTN_TC_SPLIT_MIN_KEYS;
    }
    return v;
}
