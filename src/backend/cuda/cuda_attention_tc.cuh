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

/* Dims d, d + 1 of query row f of KV head kvh (token f / ratio, head kvh * ratio + f % ratio)
 * rotated at the token's position and rounded to bf16: the rope op's values. */
__device__ __forceinline__ uint32_t tc_rotated_q2(const cuda_attn_tc_args &a, int kvh, int f, int d) {
    const int t = f / a.ratio;
    const float *qr = a.q + ((int64_t)t * a.nh + kvh * a.ratio + f % a.ratio) * TC_D;
    const int32_t pos = a.rope.pos[t];
    return pack_bf16x2(cu_rope_elem(qr, d, pos, a.rope.inv_freq, a.rope.half),
                       cu_rope_elem(qr, d + 1, pos, a.rope.inv_freq, a.rope.half));
}

/* The A fragments of this thread's two query rows (g and g + 8 of its warp's 16: token tok[i],
 * head head[i], zeros where !valid[i]) read from a.q and rounded to bf16 once: dims
 * kstep * 16 + 2 * t4 (+1) and 8 further, as mma.m16n8k16's row-major A operand lays them out. */
__device__ __forceinline__ void tc_q_fragments(uint32_t (&qa)[TC_D / 16][4], const cuda_attn_tc_args &a,
                                               const int (&tok)[2], const int (&head)[2], const bool (&valid)[2],
                                               int t4) {
    const float *q0 = a.q + ((int64_t)tok[0] * a.nh + head[0]) * TC_D;
    const float *q1 = a.q + ((int64_t)tok[1] * a.nh + head[1]) * TC_D;
#pragma unroll
    for (int kstep = 0; kstep < TC_D / 16; kstep++) {
        const int d = kstep * 16 + 2 * t4;
        const float2 x0 = valid[0] ? *(const float2 *)(q0 + d) : make_float2(0.f, 0.f);
        const float2 x1 = valid[1] ? *(const float2 *)(q1 + d) : make_float2(0.f, 0.f);
        const float2 x2 = valid[0] ? *(const float2 *)(q0 + d + 8) : make_float2(0.f, 0.f);
        const float2 x3 = valid[1] ? *(const float2 *)(q1 + d + 8) : make_float2(0.f, 0.f);
        qa[kstep][0] = pack_bf16x2(x0.x, x0.y);
        qa[kstep][1] = pack_bf16x2(x1.x, x1.y);
        qa[kstep][2] = pack_bf16x2(x2.x, x2.y);
        qa[kstep][3] = pack_bf16x2(x3.x, x3.y);
    }
}

/* S of NT 8-key tiles from key0 on (the accumulators of mma.m16n8k16: row g / g + 8 of the warp's
 * 16, keys key0 + nt * 8 + 2 * t4 (+1)) scaled into the log2 domain (sl2 = scale · log2 e), the
 * explicit mask added, and -inf where the key is hidden: past key_end, in the row's future, or the
 * row not valid. */
template <int NT>
__device__ __forceinline__ void tc_scale_mask(float (&s)[NT][4], const float *mask, int key0, int key_end,
                                              int n_past, int n_keys, const int (&tok)[2], const bool (&valid)[2],
                                              int t4, float sl2) {
    const float log2e = 1.4426950408889634f;
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int i = e >> 1, key = key0 + nt * 8 + 2 * t4 + (e & 1);
            const bool seen = valid[i] && key < key_end && key <= n_past + tok[i];
            float v = s[nt][e] * sl2;
            if (seen && mask) v += mask[(int64_t)tok[i] * n_keys + key] * log2e;
            s[nt][e] = seen ? v : -INFINITY;
        }
}

/* The online softmax of this thread's two rows over NT tiles of S (log2 domain): the running max m
 * and sum l updated (the 4 lanes of a row combined by shuffles), S turned into P in place, and the
 * output accumulators o rescaled by 2^(m_old - m_new). */
template <int NT>
__device__ __forceinline__ void tc_online_softmax(float (&s)[NT][4], float (&m)[2], float (&l)[2],
                                                  float (&o)[TC_D / 8][4]) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
        float mx = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < NT; nt++) mx = fmaxf(mx, fmaxf(s[nt][2 * i], s[nt][2 * i + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float m_new = fmaxf(m[i], mx);
        /* a row with no key seen yet keeps m = -inf: nothing to rescale, p = 0 */
        const float alpha = m_new == -INFINITY ? 1.0f : exp2f(m[i] - m_new);
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int e = 2 * i; e < 2 * i + 2; e++) {
                const float p = m_new == -INFINITY ? 0.0f : exp2f(s[nt][e] - m_new);
                s[nt][e] = p;
                sum += p;
            }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        l[i] = l[i] * alpha + sum;
        m[i] = m_new;
#pragma unroll
        for (int j = 0; j < TC_D / 8; j++) {
            o[j][2 * i] *= alpha;
            o[j][2 * i + 1] *= alpha;
        }
    }
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

