/*
 * cuda_attention.cu — causal grouped-query attention over the KV cache (spec §2.4.4).
 *
 * For query row (t, h) at absolute position n_past + t, reading KV head g = h / ratio:
 *   s_j = q·k_j * scale (+ mask[t, j]) for j <= n_past + t,   o = Σ_j softmax(s)_j v_j,
 * and o = 0 when every key is hidden (as SDPA does).
 *
 * One kernel serves prefill and decode. A block takes 32 query rows of one KV head, numbered
 * f = t * ratio + (h mod ratio), so the `ratio` query heads that share a KV head are processed
 * together and each K/V tile is read once for all of them (no repeated K/V for GQA). K and V come
 * in tiles of 32 keys through shared memory (converted from the cache's bf16 to float32); each
 * warp owns 4 rows and keeps their online-softmax state (running max m, sum l, output o) in
 * registers: lane j scores key j of the tile, the warp takes max and sum by shuffles, and lanes
 * then own output dims d = lane + 32c. The causal mask is arithmetic (key <= n_past + t): no
 * mask is ever materialised. An explicit additive mask [T, n_past + T] is added when given.
 *
 * Split-KV: when the grid is too small to fill the GPU (decode: few rows, long context), the keys
 * are cut into splits (grid.z); each split writes its unnormalised (o, m, l) and a second kernel
 * merges them: M = max m_z, L = Σ l_z e^(m_z - M), o = Σ o_z e^(m_z - M) / L.
 *
 * n_past from device memory (gm_attn_params.n_past_mem, a recorded decode step): the cache row
 * written, the key count and each split's range are computed on the device from it, and the
 * split count from the cache length, so that one launch configuration serves every position.
 * All arithmetic is float32 (expf, not the fast-math exp). RoPE folded into the call
 * (gm_attn_params.rope_pos): kv_store_kernel rotates the keys it stores, attn_kernel the queries
 * it reads (cu_rope_elem: the rope op's arithmetic). A bf16 cache with 128-dim heads (the GPU's
 * default for GLM-4.5) goes to the tensor-core kernels of cuda_attention_tc.cu instead: prefill
 * after kv_store_kernel; decode (up to CUDA_ATTN_DECODE_TOKENS queries) in a single launch that
 * also rotates, stores and merges its own splits (no kv_store, no combine launch), or, with
 * GLMOE_CUDA_ATTN_WSPLIT=1 and up to 16 query rows per KV head, its warp-split variant
 * (cuda_attention_wsplit.cu).
 * Tested by tests/ops/test_ops.c: T 1..129 at n_past 0..500, lengths 1/127/128/129/4097 causal
 * and masked, GQA 1/2/12, D 16/64/128, random and all-hidden masks, chunked fills, n_past from
 * host and from device memory, RoPE folded in at 1..16 queries (short and split contexts), and a
 * recorded step replayed across the split thresholds.
 */
#include <math.h>

#include "backend/cuda/cuda_internal.h"

#define ATTN_WARPS 8
#define ATTN_ROWS_PER_WARP 4
#define ATTN_ROWS (ATTN_WARPS * ATTN_ROWS_PER_WARP)
#define ATTN_BKV 32
#define ATTN_MAX_SPLITS 32      /* as reserved by cuda_backend.cu */
static_assert(ATTN_MAX_SPLITS <= 32, "attn_combine_kernel gives each split a lane");
#define ATTN_SPLIT_TOKENS 16
static_assert(CUDA_ATTN_DECODE_TOKENS <= ATTN_SPLIT_TOKENS, "the partials are reserved for 16 tokens");
#define ATTN_MIN_SPLIT_KEYS 32  /* one tile: decode at a few hundred keys still fills the GPU */

struct attn_args {
    float *out;
    const float *q;
    const void *kc, *vc;   /* this layer's cache: [n_ctx][nkv][D] */
    const float *mask;
    float *part;           /* split partials [split][T * nh][D + 2], or NULL */
    const int32_t *past;   /* n_past in device memory (gm_attn_params.n_past_mem), or NULL */
    int32_t *fault;
    cu_rope_args rope;     /* q rotated as it is read (the keys were rotated when stored), or pos NULL */
    int T, n_past, nh, nkv, D, ratio, n_keys, split_len, n_ctx;
    float scale;
};

/* n_past, the key count and the split length of this call: from the arguments, or, when the
 * call reads n_past from device memory (a recorded decode step), from there, with the keys cut
 * into gridDim.z splits of whole tiles. False (after raising a fault) when the device's n_past
 * does not fit the cache: the caller checked the host's, so they disagree. */
__device__ __forceinline__ bool attn_extent(const attn_args &a, int &n_past, int &n_keys, int &split_len) {
    n_past = a.n_past;
    n_keys = a.n_keys;
    split_len = a.split_len;
    if (!a.past) return true;
    n_past = *a.past;
    if (n_past < 0 || n_past > a.n_ctx - a.T) {
        if (threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0 && blockIdx.z == 0)
            cu_raise_fault(a.fault, CUDA_FAULT_POSITION, n_past, a.n_ctx - a.T);
        return false;
    }
    n_keys = n_past + a.T;
    split_len = n_keys;
    if (gridDim.z > 1) split_len = ((n_keys + gridDim.z - 1) / gridDim.z + ATTN_BKV - 1) / ATTN_BKV * ATTN_BKV;
    return true;
}

__device__ __forceinline__ float kv_to_f(float v) { return v; }
__device__ __forceinline__ float kv_to_f(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename KT, int DC>
__global__ void __launch_bounds__(ATTN_WARPS * 32) attn_kernel(attn_args a) {
    extern __shared__ __align__(16) float smem[];
    const int D = a.D, DS = D | 1; /* odd row stride: lane j reading k[j][d] hits distinct banks */
    float *qs = smem;                      /* [ATTN_ROWS][D]   */
    float *ks = qs + ATTN_ROWS * D;        /* [ATTN_BKV][DS]   */
    float *vs = ks + ATTN_BKV * DS;        /* [ATTN_BKV][DS]   */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = blockIdx.y;
    const int rows_total = a.T * a.ratio;  /* query rows of this KV head */
    const int f0 = blockIdx.x * ATTN_ROWS;
    const int64_t kv_row = (int64_t)a.nkv * D;
    const KT *kc = (const KT *)a.kc, *vc = (const KT *)a.vc;
    int n_past, n_keys, split_len;
    if (!attn_extent(a, n_past, n_keys, split_len)) return; /* uniform over the block */

    /* Key range: this split, cut at the last row's causal limit. */
    const int t_last = min(a.T - 1, (f0 + ATTN_ROWS - 1) / a.ratio);
    const int key_lo = blockIdx.z * split_len;
    const int key_hi = min(min(n_keys, key_lo + split_len), n_past + t_last + 1);

    for (int i = threadIdx.x; i < ATTN_ROWS * D; i += blockDim.x) {
        int f = f0 + i / D, d = i % D;
        float v = 0.0f;
        if (f < rows_total) {
            int t = f / a.ratio, h = g * a.ratio + f % a.ratio;
            const float *qr = a.q + ((int64_t)t * a.nh + h) * D;
            v = a.rope.pos ? cu_rope_elem(qr, d, a.rope.pos[t], a.rope.inv_freq, a.rope.half) : qr[d];
        }
        qs[i] = v;
    }

    float m[ATTN_ROWS_PER_WARP], l[ATTN_ROWS_PER_WARP], o[ATTN_ROWS_PER_WARP][DC];
#pragma unroll
    for (int r = 0; r < ATTN_ROWS_PER_WARP; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int c = 0; c < DC; c++) o[r][c] = 0.0f;
    }

    for (int kt = key_lo; kt < key_hi; kt += ATTN_BKV) {
        __syncthreads(); /* the previous tile is consumed (and qs written, on the first pass) */
        if ((D & 7) == 0) {
            /* 8 elements per load (16 bytes of bf16, 32 of float32): rows of the cache start at
             * multiples of D elements, so these are aligned. */
            const int per_row = D >> 3;
            for (int i = threadIdx.x; i < ATTN_BKV * per_row; i += blockDim.x) {
                const int j = i / per_row, d = (i - j * per_row) * 8, key = kt + j;
                float kf[8], vf[8];
                if (key < key_hi) {
                    cu_load8(kc + key * kv_row + (int64_t)g * D + d, kf);
                    cu_load8(vc + key * kv_row + (int64_t)g * D + d, vf);
                } else {
#pragma unroll
                    for (int q = 0; q < 8; q++) kf[q] = vf[q] = 0.0f;
                }
#pragma unroll
                for (int q = 0; q < 8; q++) {
                    ks[j * DS + d + q] = kf[q];
                    vs[j * DS + d + q] = vf[q];
                }
            }
        } else {
            for (int i = threadIdx.x; i < ATTN_BKV * D; i += blockDim.x) {
                int j = i / D, d = i % D, key = kt + j;
                float kv = 0.0f, vv = 0.0f;
                if (key < key_hi) {
                    kv = kv_to_f(kc[key * kv_row + (int64_t)g * D + d]);
                    vv = kv_to_f(vc[key * kv_row + (int64_t)g * D + d]);
                }
                ks[j * DS + d] = kv;
                vs[j * DS + d] = vv;
            }
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < ATTN_ROWS_PER_WARP; r++) {
            const int rl = warp * ATTN_ROWS_PER_WARP + r, f = f0 + rl;
            if (f >= rows_total) continue; /* warp-uniform */
            const int t = f / a.ratio;
            const int qpos = n_past + t;
            if (kt > qpos) continue;       /* the whole tile is in this row's future */
            const int key = kt + lane;
            float s = -INFINITY;
            if (key < key_hi && key <= qpos) {
                const float *qr = qs + rl * D, *kr = ks + lane * DS;
                float dot = 0.0f;
#pragma unroll 8
                for (int d = 0; d < D; d++) dot += qr[d] * kr[d];
                s = dot * a.scale;
                if (a.mask) s += a.mask[(int64_t)t * n_keys + key];
            }
            const float m_new = fmaxf(m[r], cu_warp_max(s));
            if (m_new == -INFINITY) continue; /* nothing visible yet */
            const float p = expf(s - m_new);  /* 0 for hidden keys */
            const float corr = expf(m[r] - m_new);
            l[r] = l[r] * corr + cu_warp_sum(p);
#pragma unroll
            for (int c = 0; c < DC; c++) o[r][c] *= corr;
            for (int jj = 0; jj < ATTN_BKV; jj++) {
                const float pj = __shfl_sync(0xffffffffu, p, jj);
                const float *vr = vs + jj * DS;
#pragma unroll
                for (int c = 0; c < DC; c++) {
                    int d = c * 32 + lane;
                    if (d < D) o[r][c] += pj * vr[d];
                }
            }
            m[r] = m_new;
        }
    }

#pragma unroll
    for (int r = 0; r < ATTN_ROWS_PER_WARP; r++) {
        const int f = f0 + warp * ATTN_ROWS_PER_WARP + r;
        if (f >= rows_total) continue;
        const int t = f / a.ratio, h = g * a.ratio + f % a.ratio;
        const int64_t row = (int64_t)t * a.nh + h;
        if (a.part) {
            float *pp = a.part + ((int64_t)blockIdx.z * a.T * a.nh + row) * (D + 2);
#pragma unroll
            for (int c = 0; c < DC; c++) {
                int d = c * 32 + lane;
                if (d < D) pp[d] = o[r][c];
            }
            if (lane == 0) {
                pp[D] = m[r];
                pp[D + 1] = l[r];
            }
        } else {
            const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f; /* every key hidden: zeros */
            float *op = a.out + row * D;
#pragma unroll
            for (int c = 0; c < DC; c++) {
                int d = c * 32 + lane;
                if (d < D) op[d] = o[r][c] * inv;
            }
        }
    }
}

/* Merges the splits of each query row (one warp per row, splits <= 32): lane z reads split z's
 * (m, l), so the maximum and the weights come from shuffles; then each lane sums its output dims
 * over the splits, whose loads are independent (latency overlaps instead of adding up). */
__global__ void attn_combine_kernel(float *out, const float *part, int rows, int D, int splits) {
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    const int64_t stride = (int64_t)rows * (D + 2);
    const float *mine = part + (int64_t)lane * stride + (int64_t)row * (D + 2);
    const float mz = lane < splits ? mine[D] : -INFINITY, lz = lane < splits ? mine[D + 1] : 0.0f;
    const float M = cu_warp_max(mz);
    const float wz = mz != -INFINITY ? expf(mz - M) : 0.0f; /* an empty split weighs nothing */
    const float L = cu_warp_sum(lz * wz);
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    for (int d0 = 0; d0 < D; d0 += 32) { /* every lane runs each pass: the shuffles need all 32 */
        const int d = d0 + lane;
        float acc = 0.0f;
        for (int z0 = 0; z0 < splits; z0 += 8) {
            float w[8], v[8]; /* eight loads in flight before any is summed */
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const int z = z0 + u;
                w[u] = __shfl_sync(0xffffffffu, wz, z & 31);
                v[u] = z < splits && w[u] != 0.0f && d < D ? part[z * stride + (int64_t)row * (D + 2) + d] : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < 8; u++)
                if (z0 + u < splits) acc += w[u] * v[u];
        }
        if (d < D) out[(int64_t)row * D + d] = acc * inv;
    }
}

/* Writes k, v [T, nkv * D] (float32) into the cache rows [n_past, n_past + T) of kc, vc (the
 * layer's cache, rows of `row` elements), k rotated first when rope.pos is set; n_past from
 * *past when given. A device n_past that does not fit writes nothing (the attention kernel
 * raises the fault). */
template <typename KT>
__global__ void kv_store_kernel(KT *kc, KT *vc, const float *k, const float *v, int64_t n, int64_t row,
                                const int32_t *past, int n_past, int T, int n_ctx, int D, cu_rope_args rope) {
    if (past) n_past = *past;
    if (n_past < 0 || n_past > n_ctx - T) return;
    kc += (int64_t)n_past * row;
    vc += (int64_t)n_past * row;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float kv = k[i];
        if (rope.pos) { /* element d of the head row starting at i - d, token i / row */
            const int d = (int)(i % D);
            kv = cu_rope_elem(k + (i - d), d, rope.pos[i / row], rope.inv_freq, rope.half);
        }
        kc[i] = (KT)kv;
        vc[i] = (KT)v[i];
    }
}

template <typename KT, int DC>
static glmoe_status launch_attn(cuda_exec *cx, const attn_args &a, int splits, gm_err *err) {
    const size_t smem = ((size_t)ATTN_ROWS * a.D + 2 * (size_t)ATTN_BKV * (a.D | 1)) * sizeof(float);
    static cu_smem_allowed allowed; /* per instantiation */
    glmoe_status s = cuda_allow_smem((const void *)attn_kernel<KT, DC>, smem, &allowed, err);
    if (s) return s;
    dim3 grid(cu_blocks((int64_t)a.T * a.ratio, ATTN_ROWS), (unsigned)a.nkv, (unsigned)splits);
    attn_kernel<KT, DC><<<grid, ATTN_WARPS * 32, smem, cx->stream>>>(a);
    CU_LAUNCHED();
    return GLMOE_OK;
}

/* The most splits of the keys worth launching: enough blocks for two waves of the GPU, no more
 * than ATTN_MAX_SPLITS (the combine gives each a lane), none shorter than min_keys, and within the
 * partials' scratch. keys_max: the most keys a call of this launch may meet (with n_past in
 * device memory, the whole cache: one launch serves every position of a recorded step). */
static int attn_max_splits(const cuda_exec *cx, int64_t blocks_1, int64_t keys_max, int min_keys, size_t part_need) {
    if (blocks_1 >= 2 * cx->cb->sm_count || keys_max < 2 * min_keys) return 1;
    int64_t want = (2 * cx->cb->sm_count + blocks_1 - 1) / blocks_1, most = keys_max / min_keys;
    int64_t splits = want < most ? want : most;
    if (splits > ATTN_MAX_SPLITS) splits = ATTN_MAX_SPLITS;
    if ((size_t)splits * part_need > cx->attn_part_floats) return 1;
    return (int)splits;
}

template <typename KT>
static glmoe_status run_attention(cuda_exec *cx, cuda_kv *kv, int32_t layer, attn_args a, gm_err *err) {
    const int64_t kv_row = (int64_t)a.nkv * a.D;
    KT *kc = (KT *)kv->k + (int64_t)layer * kv->n_ctx * kv_row, *vc = (KT *)kv->v + (int64_t)layer * kv->n_ctx * kv_row;
    const bool tc = cuda_attention_tc_fits(a.D, sizeof(KT) == 2);
    const int64_t keys_max = a.past ? a.n_ctx : a.n_keys;
    const size_t part_need = (size_t)a.T * a.nh * (size_t)(a.D + 2);
    const float *k_new = (const float *)a.kc, *v_new = (const float *)a.vc;

    if (tc && a.T <= CUDA_ATTN_DECODE_TOKENS) {
        /* Decode: RoPE, the cache store, attention and the split merge in one launch; the kernel
         * cuts the keys it finds into at most this many splits. */
        const int64_t blocks_1 = (int64_t)cu_blocks((int64_t)a.T * a.ratio, CUDA_ATTN_TC_ROWS) * a.nkv;
        const int min_keys = cuda_attn_split_min_keys();
        int splits = attn_max_splits(cx, blocks_1, keys_max, min_keys, part_need);
        if ((size_t)blocks_1 > cx->attn_count_cap) splits = 1;
        const cuda_attn_tc_args t = {a.out, a.q, (__nv_bfloat16 *)kc, (__nv_bfloat16 *)vc, k_new, v_new, a.mask,
                                     cx->attn_part, cx->attn_count, a.past, a.fault, a.rope, a.T, a.n_past, a.nh,
                                     a.nkv, a.ratio, a.n_ctx, a.scale, min_keys};
        return cuda_attention_tc_decode(cx, t, splits, err);
    }

    const int64_t n_new = (int64_t)a.T * kv_row;
    unsigned blocks = cu_blocks(n_new, 256);
    if (blocks > (unsigned)cx->cb->sm_count * 16) blocks = (unsigned)cx->cb->sm_count * 16;
    kv_store_kernel<KT><<<blocks, 256, 0, cx->stream>>>(kc, vc, k_new, v_new, n_new, kv_row, a.past, a.n_past, a.T,
                                                         a.n_ctx, a.D, a.rope);
    CU_LAUNCHED();
    a.kc = kc;
    a.vc = vc;
    if (tc) { /* prefill on the tensor cores: enough rows to fill the GPU unsplit */
        const cuda_attn_tc_args t = {a.out, a.q, (__nv_bfloat16 *)kc, (__nv_bfloat16 *)vc, nullptr, nullptr, a.mask,
                                     nullptr, nullptr, a.past, a.fault, a.rope, a.T, a.n_past, a.nh, a.nkv, a.ratio,
                                     a.n_ctx, a.scale, 0};
        return cuda_attention_tc(cx, t, err);
    }
    if (a.T >= 32) { /* said once: prefills of this model take the slower float32 kernel */
        static int said;
        if (cu_first_time(&said))
            gm_info("cuda: attention with head_dim %d and a %s cache runs on the float32 kernel, not the tensor cores "
                    "(which take a bf16 cache and head_dim 128)", a.D, sizeof(KT) == 2 ? "bf16" : "float32");
    }

    /* The float32 kernel: splits (a second launch merges them) for up to ATTN_SPLIT_TOKENS
     * queries. With n_past in device memory the split count is chosen for the whole cache and
     * the kernel cuts the keys it finds into that many splits (some empty while the context is
     * short). */
    const int64_t blocks_1 = (int64_t)cu_blocks((int64_t)a.T * a.ratio, ATTN_ROWS) * a.nkv;
    int splits = a.T <= ATTN_SPLIT_TOKENS ? attn_max_splits(cx, blocks_1, keys_max, ATTN_MIN_SPLIT_KEYS, part_need) : 1;
    a.split_len = a.n_keys;
    a.part = nullptr;
    if (splits > 1) {
        if (!a.past) {
            a.split_len = (a.n_keys + splits - 1) / splits;
            a.split_len = (a.split_len + ATTN_BKV - 1) / ATTN_BKV * ATTN_BKV;
            splits = (a.n_keys + a.split_len - 1) / a.split_len;
        }
        a.part = cx->attn_part;
    }
    glmoe_status s;
    if (a.D <= 32) s = launch_attn<KT, 1>(cx, a, splits, err);
    else if (a.D <= 64) s = launch_attn<KT, 2>(cx, a, splits, err);
    else if (a.D <= 128) s = launch_attn<KT, 4>(cx, a, splits, err);
    else s = launch_attn<KT, 8>(cx, a, splits, err);
    if (s || splits == 1) return s;
    const int rows = a.T * a.nh;
    attn_combine_kernel<<<cu_blocks(rows, 8), 256, 0, cx->stream>>>(a.out, a.part, rows, a.D, splits);
    CU_LAUNCHED();
    return GLMOE_OK;
}

glmoe_status cuda_attention(gm_exec *ex, float *out, const float *q, const float *k, const float *v, gm_kv *h,
                            int32_t layer, const gm_attn_params *p, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    cuda_kv *kv = (cuda_kv *)h;
    const int64_t n_keys = (int64_t)p->n_past + p->n_tokens;
    if (n_keys > kv->n_ctx)
        return gm_fail(err, GLMOE_E_CONTEXT, "attention: %lld positions exceed the cache of %d", (long long)n_keys,
                       kv->n_ctx);
    if (layer < 0 || layer >= kv->n_layers || p->n_kv_heads != kv->n_kv_heads || p->head_dim != kv->head_dim)
        return gm_fail(err, GLMOE_E_ARG, "cuda: attention on layer %d with %d KV heads of %d dims; the cache has %d "
                       "layers of %d x %d", layer, p->n_kv_heads, p->head_dim, kv->n_layers, kv->n_kv_heads,
                       kv->head_dim);
    if (p->head_dim > 256 || p->head_dim <= 0)
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: attention with head_dim %d (at most 256)", p->head_dim);
    if (p->n_kv_heads <= 0 || p->n_heads % p->n_kv_heads)
        return gm_fail(err, GLMOE_E_ARG, "cuda: %d query heads are not a multiple of %d KV heads", p->n_heads,
                       p->n_kv_heads);
    if (p->n_tokens <= 0) return GLMOE_OK;
    cu_rope_args rope = {nullptr, nullptr, 0};
    if (p->rope_pos && p->rotary_dim / 2 > 0) {
        if (p->rotary_dim > p->head_dim)
            return gm_fail(err, GLMOE_E_ARG, "cuda: attention with RoPE on %d of %d dims", p->rotary_dim, p->head_dim);
        glmoe_status s = cuda_rope_table(cx, p->rotary_dim, p->rope_theta, &rope.inv_freq, err);
        if (s) return s;
        rope.pos = p->rope_pos;
        rope.half = p->rotary_dim / 2;
    }
    attn_args a;
    a.out = out;
    a.q = q;
    a.kc = k; /* the new keys and values until run_attention stores them */
    a.vc = v;
    a.mask = p->mask;
    a.part = nullptr;
    a.past = p->n_past_mem;
    a.fault = cx->d_fault;
    a.rope = rope;
    a.n_ctx = kv->n_ctx;
    a.T = p->n_tokens;
    a.n_past = p->n_past;
    a.nh = p->n_heads;
    a.nkv = p->n_kv_heads;
    a.D = p->head_dim;
    a.ratio = p->n_heads / p->n_kv_heads;
    a.n_keys = (int)n_keys;
    a.split_len = (int)n_keys;
    a.scale = p->scale;
    if (kv->bf16) return run_attention<__nv_bfloat16>(cx, kv, layer, a, err);
    return run_attention<float>(cx, kv, layer, a, err);
}
