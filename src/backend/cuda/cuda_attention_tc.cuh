/*
 * cuda_attention_tc.cuh — what the tensor-core attention kernels share (cuda_attention_tc.cu:
 * attn_tc_kernel, prefill and decode; cuda_attention_wsplit.cu: the warp-split decode variant):
 * the tile sizes, the bf16 MMA, the decode split rule, the new rows of a decode call (rotated and
 * rounded as the cache holds them), and the end of a block (partials, the last split's merge, or
 * the output). Included by those two files only. The variant has a file of its own because its
 * dynamic shared memory (an extern __shared__ array, declared for the whole module) would pad
 * the static shared memory of attn_tc_kernel<true> from 35,844 to 35,856 bytes.
 */
#pragma once

#include <math.h>

#include "backend/cuda/cuda_internal.h"

#define TC_WARPS 4
#define TC_ROWS CUDA_ATTN_TC_ROWS /* query rows per block: 16 per warp */
#define TC_KEYS CUDA_ATTN_TC_KEYS /* keys per tile */
static_assert(TC_ROWS == TC_WARPS * 16, "a warp owns 16 query rows");
#define TC_D 128
#define TC_K_LD (TC_D + 8)      /* bf16 stride of a key row: rows 16-byte aligned, no bank conflicts */
#define TC_VT_LD (TC_KEYS + 8)  /* bf16 stride of a row of V^T */

__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi); /* .x (the lower index) in the low half */
    return *reinterpret_cast<uint32_t *>(&v);
}

/* c += a·b, m16n8k16, bf16 inputs, float32 accumulators (PTX ISA fragment layouts). */
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Splits of a decode launch, chosen on the device from n_keys (a recorded step reads n_past from
 * memory, so the host cannot choose): as many as the launch allows (gridDim.z, the host's count
 * for filling the GPU at the longest context), but none shorter than min_keys (a.split_min_keys),
 * so that a short context runs unsplit and writes its output directly. Splits are whole tiles;
 * blocks of z >= n_splits exit at once. */
__device__ __forceinline__ void decode_splits(int n_keys, int min_keys, int &split_len, int &n_splits) {
    int s = min((int)gridDim.z, n_keys / min_keys);
    s = max(s, 1);
    split_len = ((n_keys + s - 1) / s + TC_KEYS - 1) / TC_KEYS * TC_KEYS;
    n_splits = (n_keys + split_len - 1) / split_len;
}

/* Dims [c8, c8 + 8) of one new key or value row (float32), rotated when `rotate`, as the bf16 the
 * cache holds (round to nearest even, as kv_store_kernel converts). */
__device__ __forceinline__ uint4 new_row8(const float *row, int c8, bool rotate, const cu_rope_args &r, int32_t pos) {
    float x[8];
#pragma unroll
    for (int q = 0; q < 8; q++) x[q] = rotate ? cu_rope_elem(row, c8 + q, pos, r.inv_freq, r.half) : row[c8 + q];
    return make_uint4(pack_bf16x2(x[0], x[1]), pack_bf16x2(x[2], x[3]), pack_bf16x2(x[4], x[5]), pack_bf16x2(x[6], x[7]));
}

/* Blocks (x 0, z 0) of a decode launch: this call's new key and value rows of KV head kvh into
 * the cache (no block of the launch reads those rows: they take them from k_new, v_new). */
__device__ __forceinline__ void store_new_rows(const cuda_attn_tc_args &a, int kvh, int n_past, int64_t kv_row) {
    for (int i = threadIdx.x; i < a.T * (TC_D / 8); i += TC_WARPS * 32) {
        const int t = i / (TC_D / 8), c8 = (i % (TC_D / 8)) * 8;
        const int64_t src = ((int64_t)t * a.nkv + kvh) * TC_D, dst = (n_past + t) * kv_row + kvh * TC_D + c8;
        const int32_t pos = a.rope.pos ? a.rope.pos[t] : 0;
        *(uint4 *)(a.kc + dst) = new_row8(a.k_new + src, c8, a.rope.pos != nullptr, a.rope, pos);
        *(uint4 *)(a.vc + dst) = new_row8(a.v_new + src, c8, false, a.rope, 0);
    }
}

/* The end of a block, every thread: o, m (log2 domain), l of this thread's two rows (tok, head;
 * rows not `valid` are skipped), in the m16n8 accumulator layout of warp (threadIdx.x >> 5)'s 16
 * rows. Decode over several splits: the unnormalised partials, then, in the last split of this
 * (row block, KV head) to finish, the merge of all; else the normalised output. merge_here: a
 * __shared__ int. */
template <bool DECODE>
__device__ __forceinline__ void tc_finish(const cuda_attn_tc_args &a, float (&o)[TC_D / 8][4], float (&m)[2],
                                          float (&l)[2], const bool (&valid)[2], const int (&tok)[2],
                                          const int (&head)[2], int n_splits, int n_rows, int kvh, int warp, int lane,
                                          int t4, int &merge_here) {
    if (DECODE && n_splits > 1) {
        /* Unnormalised partials, m in natural-log units (as the merge below and attn_combine_kernel
         * read them); then the last split of this (row block, KV head) to finish merges them. */
#pragma unroll
        for (int i = 0; i < 2; i++) {
            if (!valid[i]) continue;
            const int64_t row = (int64_t)tok[i] * a.nh + head[i];
            float *pp = a.part + ((int64_t)blockIdx.z * a.T * a.nh + row) * (TC_D + 2);
#pragma unroll
            for (int j = 0; j < TC_D / 8; j++) *(float2 *)(pp + j * 8 + 2 * t4) = make_float2(o[j][2 * i], o[j][2 * i + 1]);
            if (t4 == 0) {
                pp[TC_D] = m[i] * 0.6931471805599453f;
                pp[TC_D + 1] = l[i];
            }
        }
        /* Release: every thread's partials are visible device-wide before the count moves. */
        __threadfence();
        __syncthreads();
        if (threadIdx.x == 0) {
            int32_t *count = a.count + blockIdx.y * gridDim.x + blockIdx.x;
            const int done = atomicAdd(count, 1);
            merge_here = done == n_splits - 1;
            if (merge_here) *count = 0; /* every split has counted: ready for the next launch */
        }
        __syncthreads();
        if (!merge_here) return;
        __threadfence(); /* acquire: the other splits' partials, read below past L1 (__ldcg) */
        const int64_t stride = (int64_t)a.T * a.nh * (TC_D + 2);
        const int f_end = min(n_rows, (int)(blockIdx.x + 1) * TC_ROWS);
        /* One warp per row; lane owns dims 2·lane, 2·lane + 1 and 64 more (float2: rows of D + 2
         * floats are 8-byte aligned). M = max m_z, L = Σ l_z e^(m_z - M), o = Σ o_z e^(m_z - M) / L;
         * an empty split (m = -inf) weighs nothing. */
        for (int f = blockIdx.x * TC_ROWS + warp; f < f_end; f += TC_WARPS) {
            const int64_t row = (int64_t)(f / a.ratio) * a.nh + kvh * a.ratio + f % a.ratio;
            const float *p0 = a.part + row * (TC_D + 2);
            float M = -INFINITY;
            for (int z = 0; z < n_splits; z++) M = fmaxf(M, __ldcg(p0 + z * stride + TC_D));
            float L = 0.0f;
            float2 acc0 = make_float2(0.f, 0.f), acc1 = make_float2(0.f, 0.f);
            for (int z = 0; M != -INFINITY && z < n_splits; z++) {
                const float *pz = p0 + z * stride;
                const float mz = __ldcg(pz + TC_D);
                if (mz == -INFINITY) continue;
                const float w = expf(mz - M);
                L += w * __ldcg(pz + TC_D + 1);
                const float2 v0 = __ldcg((const float2 *)(pz + 2 * lane)), v1 = __ldcg((const float2 *)(pz + 64 + 2 * lane));
                acc0.x += w * v0.x, acc0.y += w * v0.y, acc1.x += w * v1.x, acc1.y += w * v1.y;
            }
            const float inv = L > 0.0f ? 1.0f / L : 0.0f; /* every key hidden: zeros */
            float *orow = a.out + row * TC_D;
            *(float2 *)(orow + 2 * lane) = make_float2(acc0.x * inv, acc0.y * inv);
            *(float2 *)(orow + 64 + 2 * lane) = make_float2(acc1.x * inv, acc1.y * inv);
        }
        return;
    }
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (!valid[i]) continue;
        const int64_t row = (int64_t)tok[i] * a.nh + head[i];
        const float inv = l[i] > 0.0f ? 1.0f / l[i] : 0.0f; /* all keys hidden: zeros */
        float *orow = a.out + row * TC_D;
#pragma unroll
        for (int j = 0; j < TC_D / 8; j++)
            *(float2 *)(orow + j * 8 + 2 * t4) = make_float2(o[j][2 * i] * inv, o[j][2 * i + 1] * inv);
    }
}

