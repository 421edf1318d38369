/*
 * cuda_moe.cu — the MoE router and the routed experts (spec §2.6), on the GPU: no host
 * synchronisation inside a decode step (the expert counts travel to the host only in a long
 * prefill, for the cuBLAS path).
 *
 * Router: the logits l = Wr·u, then one warp per token selects:
 *   s = sigmoid(l);  c = s + bias                                      (bias only steers selection)
 *   groups (n_group > 1): group score = sum of the 2 largest c of the group; the topk_group best
 *   groups are kept, the others' experts get c = -inf;  idx = top-K of c (K rounds of a warp
 *   argmax; ties go to the lower index, as in the CPU backend);  w = s[idx];
 *   if norm_topk_prob: w /= Σw + 1e-20;  w *= routed_scaling_factor;
 *   with a shared expert folded into the bank (gm_experts.shared), it is appended: idx = E', w = 1.
 * Decode (T <= 8) does both in one launch (route_fused_kernel); prefill runs cuda_matmul
 * (float32-quality tensor cores) and then the selection.
 *
 * Experts, out[t] (+)= Σ_j w[t,j] · down_e(silu(gate_e·x[t]) ⊙ up_e·x[t]), e = idx[t,j]:
 *   - decode (T <= DECODE_MAX_TOKENS): two GEMV launches that read only the selected experts'
 *     weights, all of them in one launch each: (1) h[t,j] = silu(gate_e·x) ⊙ up_e·x, a warp per
 *     row of Im (gate and up rows loaded interleaved), grid over (rows, T·K); (2) a warp per
 *     output row n sums w·down_e[n]·h[t,j] over j and writes (or adds to) out, so no atomics and
 *     a fixed summation order. That reads an expert once per token that chose it; dense banks
 *     keep it (at T = 1 it is the same reads).
 *   - banks with affine projections, per launch of at most DECODE_MAX_TOKENS tokens (prefill
 *     included, until a tile kernel takes it): the (token, slot) pairs are grouped by expert
 *     inside each block and each selected expert is read once for all its tokens (4 and 8 bits
 *     on the tensor cores, cuda_quant_mmv.cu; else the float32 core of cuda_quant_gemv.h), then
 *     an ordered combine (below: "decode of affine experts").
 *   - prefill: tokens are grouped by expert on the GPU (count, a one-thread plan of offsets and
 *     64-row tiles, scatter), then two grouped GEMMs over the tile list (gate+up fused with SwiGLU,
 *     then down), x rows gathered through the row list; a last kernel adds each token's K
 *     weighted rows back in slot order j. bf16 experts run on the tensor cores with x split into
 *     bf16 hi + lo (float32 quality, see tc_tile_mma); other dtypes use the float32 tile
 *     (cu_tile_mma); quantized (affine) experts run the tensor-core tiles of cuda_quant_mma.cu
 *     (fp16 operands, codes dequantized in shared memory). The grids are sized for the worst
 *     case (T·K/64 + E tiles); blocks past the real tile count exit at once.
 *   - prefill of T >= MOE_CUBLAS_MIN_TOKENS with bf16 experts: the same grouping, then cuBLAS
 *     GEMMs per expert (experts_cublas below); the one place where the host waits for the GPU
 *     inside a forward (for the per-expert row counts), never in a decode step.
 * Every expert and projection may have its own dtype (the device table carries it).
 * Tested by tests/ops/test_ops.c: route K 1/8 of 160 and 8/64 of 1024, groups, bias, norm,
 * scaling; decode T 1..8 at E 77..300, each router dtype, exact ties, pick order; experts T 1
 * and 40 with every expert hit, mixed dtypes, accumulate on/off; affine experts (check_affine)
 * at T 1..8 and 21, shared / disjoint / identical routings, every format, mixed banks.
 */
#include <math.h>
#include <mma.h>
#include <stdlib.h>
#include <string.h>

#include <type_traits>

#include "backend/cuda/cuda_quant_gemv.h"

namespace wmma = nvcuda::wmma;

#define DECODE_MAX_TOKENS 8
#define EXPERT_WARPS 8

static inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* ---- router ------------------------------------------------------------------------------------ */

/* One warp routes one token (no block barriers): lane l holds experts l, l + 32, ... (CAP slots,
 * E <= 32 CAP), and each of the K picks is a warp argmax of two redux instructions (the largest
 * key, then the lowest expert holding it) and one shuffle (the winner's sigmoid score).
 *
 * Decode (T <= ROUTE_FUSED_MAX_T, a dense router with H % 8 == 0, E <= 256) is ONE launch,
 * route_fused_kernel: block b computes the logits of router rows 2b and 2b + 1 for all tokens
 * (warp w: row w % 2, tokens w / 2 and w / 2 + 4), writes them to the scratch, and the last block
 * to finish (__threadfence + a ticket from an atomic counter, which that block resets to 0 for the
 * next launch or graph replay) routes the T tokens, a warp each. Each lane's dot product is the
 * one of cuda_matmul's GEMV (cu_warp_dot: the same chunks in the same order, cu_dot8, cu_warp_sum),
 * so the logits, and with them the choices and weights, are those of the two-launch path bit for
 * bit; only more of the row is in flight (16 chunks of 8 weights per lane, 8 for float32: the
 * whole 4096-wide bf16 row, and the matching x, issued before the first FMA; ~240 registers, one
 * block per SM), so the router's 1 MB is read in one round trip by E warps on E / 2 SMs, not in
 * 4 round trips by 16 SMs. The selection gives the old block-per-token kernel's ids, order and
 * weights bit for bit (NaN scores aside: a NaN now loses to every number, as on the CPU).
 * Bytes, GLM-4.5-Air (E = 128, H = 4096, bf16): 1 MiB of weights from DRAM (floor 0.3 us at
 * 3.35 TB/s); x, T x 16 KiB per warp from L2/L1 (T = 8: 256 KiB per SM through L1, ~1.2 us);
 * T x E logits out and back through L2; T x 9 ids and weights out. Expected on an H100: ~2.5 us
 * at T = 1 (one DRAM round trip, the fence and ticket, 8 picks of ~0.1 us), ~4 us at T = 8 (x
 * through L1), against 20.5 us for the GEMV (10.1) and the block-per-token selection (10.4).
 * Otherwise (prefill, odd H, a quantized router, E > 256): cuda_matmul writes the logits, then
 * route_select_kernel routes them, a warp per token. */

#define ROUTE_WARPS 8        /* warps per block: one token each in the selection */
#define ROUTE_ROWS 2         /* router rows per block of the fused kernel */
#define ROUTE_TOKEN_GROUPS (ROUTE_WARPS / ROUTE_ROWS) /* warps per row; warp g takes tokens g, g + 4 */
#define ROUTE_FUSED_MAX_T (2 * ROUTE_TOKEN_GROUPS)
#define ROUTE_MAX_E 1024     /* 32 slots per lane (config.c's bound on n_routed_experts) */
#define ROUTE_MAX_K 64       /* two picks per lane (config.c's bound on num_experts_per_tok) */

struct route_args {
    int E, K, n_group, topk_group, shared; /* shared: the shared expert's index, or -1 */
    bool norm;
    float scaling;
};

/* The selection order of a score as an unsigned key: a larger score has a larger key (the float
 * bits mapped monotonically, -0 taken as +0 since they compare equal), so equal scores have equal
 * keys and route_pick sends their tie to the lower index. NaN is 1, below every number (chosen
 * only when nothing else is left, as in the CPU backend); 0 marks an empty or taken slot. */
__device__ __forceinline__ uint32_t route_key(float c) {
    if (c != c) return 1u;
    const uint32_t b = __float_as_uint(c == 0.0f ? 0.0f : c);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* One pick of a warp argmax over the lanes' slots (item lane + 32 i in slot i): the item with the
 * largest key, the lowest item among equal keys; its slot is cleared. *mine: this lane's best slot
 * before the pick (the winner's lane uses it to fetch the winner's value). All 32 lanes call it,
 * and some slot must hold a key > 0. */
template <int CAP>
__device__ __forceinline__ int route_pick(uint32_t key[CAP], int *mine) {
    const int lane = threadIdx.x & 31;
    uint32_t bk = key[0];
    int bs = 0;
#pragma unroll
    for (int i = 1; i < CAP; i++)
        if (key[i] > bk) bk = key[i], bs = i; /* strict: the lower slot, the lower item, wins a tie */
    const uint32_t top = __reduce_max_sync(0xffffffffu, bk);
    const int win = (int)__reduce_min_sync(0xffffffffu, bk == top ? (uint32_t)(lane + 32 * bs) : 0xffffffffu);
#pragma unroll
    for (int i = 0; i < CAP; i++)
        if (lane + 32 * i == win) key[i] = 0;
    *mine = bs;
    return win;
}

/* Routes one token with one warp (all 32 lanes, converged), as the CPU backend and the spec say:
 *   s = sigmoid(l);  c = s + bias;  groups (n_group > 1): group score = sum of the 2 largest c of
 *   the group, the topk_group best groups kept (ties to the lower group), the others' c = -inf;
 *   idx = top-K of c, best first, ties to the lower index;  w = s[idx];
 *   if norm: w /= Σw + 1e-20 (Σ in pick order);  w *= scaling;  the shared expert appended (w 1).
 * logit: the token's E logits (read through L2: the fused kernel's other blocks wrote them);
 * ti, tw: the token's row of ids and weights; wc, wkeep: this warp's E floats and n_group ints of
 * shared memory (groups only). */
template <int CAP>
__device__ void route_token(const route_args &p, const float *logit, const float *bias, int32_t *ti, float *tw,
                            float *wc, int *wkeep) {
    const int lane = threadIdx.x & 31, E = p.E;
    float s[CAP], c[CAP];
#pragma unroll
    for (int i = 0; i < CAP; i++) {
        const int e = lane + 32 * i;
        s[i] = c[i] = 0.0f;
        if (e < E) {
            const float l = __ldcg(logit + e);
            s[i] = 1.0f / (1.0f + expf(-l));
            c[i] = s[i] + (bias ? bias[e] : 0.0f);
        }
    }
    if (p.n_group > 1) {
        const int ng = p.n_group, per = E / ng;
#pragma unroll
        for (int i = 0; i < CAP; i++) {
            const int e = lane + 32 * i;
            if (e < E) wc[e] = c[i];
            if (e < ng) wkeep[e] = 0;
        }
        __syncwarp();
        /* Group g's score by lane g % 32: the two best of its `per` scores, scanned in order. */
        uint32_t gkey[CAP];
#pragma unroll
        for (int i = 0; i < CAP; i++) {
            const int g = lane + 32 * i;
            gkey[i] = 0;
            if (g < ng) {
                const float *cg = wc + g * per;
                int b1 = -1, b2 = -1;
                for (int k = 0; k < per; k++)
                    if (b1 < 0 || cg[k] > cg[b1]) b1 = k;
                for (int k = 0; k < per; k++)
                    if (k != b1 && (b2 < 0 || cg[k] > cg[b2])) b2 = k;
                gkey[i] = route_key(cg[b1] + (b2 >= 0 ? cg[b2] : 0.0f));
            }
        }
        const int rounds = p.topk_group < ng ? p.topk_group : ng;
        for (int j = 0; j < rounds; j++) {
            int mine;
            const int g = route_pick<CAP>(gkey, &mine);
            if (lane == 0) wkeep[g] = 1;
        }
        __syncwarp();
#pragma unroll
        for (int i = 0; i < CAP; i++) {
            const int e = lane + 32 * i;
            if (e < E && !wkeep[e / per]) c[i] = -INFINITY;
        }
    }
    uint32_t key[CAP];
#pragma unroll
    for (int i = 0; i < CAP; i++) key[i] = lane + 32 * i < E ? route_key(c[i]) : 0u;

    /* Pick j goes to lane j % 32, slot j / 32. The sum runs in pick order, as on the CPU. */
    int sel[ROUTE_MAX_K / 32] = {0, 0};
    float sw[ROUTE_MAX_K / 32] = {0.0f, 0.0f};
    float sum = 0.0f;
    for (int j = 0; j < p.K; j++) {
        int mine;
        const int e = route_pick<CAP>(key, &mine);
        float v = 0.0f;
#pragma unroll
        for (int i = 0; i < CAP; i++)
            if (i == mine) v = s[i];
        v = __shfl_sync(0xffffffffu, v, e & 31);
        sum += v;
        if ((j & 31) == lane) {
            if (j < 32) sel[0] = e, sw[0] = v;
            else sel[1] = e, sw[1] = v;
        }
    }
#pragma unroll
    for (int m = 0; m < ROUTE_MAX_K / 32; m++) {
        const int j = lane + 32 * m;
        if (j < p.K) {
            float w = sw[m];
            if (p.norm) w /= sum + 1e-20f;
            w *= p.scaling;
            ti[j] = sel[m];
            tw[j] = w;
        }
    }
    if (p.shared >= 0 && lane == 0) ti[p.K] = p.shared, tw[p.K] = 1.0f;
}

/* Routes T tokens whose logits are in `logits` [T][E], a warp per token. */
template <int CAP>
__global__ void __launch_bounds__(ROUTE_WARPS * 32) route_select_kernel(int32_t *idx, float *weights,
                                                                        const float *logits, const float *bias,
                                                                        route_args p, int T) {
    extern __shared__ float rsm[];
    const int warp = threadIdx.x >> 5, t = blockIdx.x * ROUTE_WARPS + warp;
    if (t >= T) return; /* the whole warp */
    const int stride = p.K + (p.shared >= 0);
    float *wc = rsm + warp * (p.E + p.n_group);
    route_token<CAP>(p, logits + (int64_t)t * p.E, bias, idx + (int64_t)t * stride, weights + (int64_t)t * stride, wc,
                     (int *)(wc + p.E));
}

/* 8 weights from the 16 (2-byte types) or 32 (float) bytes at r, as cu_load8 converts them (the
 * conversions are exact: any order gives the same floats). */
template <typename WT>
__device__ __forceinline__ void route_unpack8(const uint4 *r, float w[8]) {
    if constexpr (sizeof(WT) == 4) {
        const float *f = reinterpret_cast<const float *>(r);
#pragma unroll
        for (int i = 0; i < 8; i++) w[i] = f[i];
    } else if constexpr (std::is_same<WT, __half>::value) {
        const __half2 *h = reinterpret_cast<const __half2 *>(r);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const float2 f = __half22float2(h[i]);
            w[2 * i] = f.x;
            w[2 * i + 1] = f.y;
        }
    } else {
        const uint32_t parts[4] = {r->x, r->y, r->z, r->w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            w[2 * i] = __uint_as_float(parts[i] << 16);
            w[2 * i + 1] = __uint_as_float(parts[i] & 0xffff0000u);
        }
    }
}

/* cu_warp_dot's vectorised lane sums (chunk k = lane * 8 + 256 i, ascending, acc[t] +=
 * cu_dot8), the same float32 arithmetic bit for bit, but with DEPTH chunks (64 registers) of the
 * row loaded before any is used rather than 4. No branches: a chunk past the row's end loads the
 * row's last chunk (and the matching x) and its sum is dropped, so that every weight and x load
 * can issue early. K % 8 == 0, w and x 16-byte aligned. */
template <typename WT, int TMAX>
__device__ __forceinline__ void route_warp_dot(const WT *w, const float *x, int64_t ldx, int T, int K,
                                               float acc[TMAX]) {
    constexpr int Q = sizeof(WT) / 2;   /* 16-byte pieces per chunk of 8 weights */
    constexpr int DEPTH = 16 / Q;       /* chunks in flight per lane */
    const int lane = threadIdx.x & 31;
    for (int k0 = lane * 8; k0 < K; k0 += DEPTH * 256) {
        uint4 raw[DEPTH][Q];
#pragma unroll
        for (int d = 0; d < DEPTH; d++) {
            const int k = min(k0 + d * 256, K - 8);
#pragma unroll
            for (int q = 0; q < Q; q++) raw[d][q] = __ldg(reinterpret_cast<const uint4 *>(w + k) + q);
        }
#pragma unroll
        for (int d = 0; d < DEPTH; d++) {
            const int k = k0 + d * 256, kc = min(k, K - 8);
            float wv[8];
            route_unpack8<WT>(raw[d], wv);
#pragma unroll
            for (int t = 0; t < TMAX; t++) {
                if (t < T) {
                    const float v = cu_dot8(wv, x + t * ldx + kc);
                    if (k < K) acc[t] += v;
                }
            }
        }
    }
}

/* The router of T <= ROUTE_FUSED_MAX_T tokens in one launch (see the section comment): grid
 * E / ROUTE_ROWS blocks of ROUTE_WARPS warps; `done` is zero before the launch and after it. */
template <typename WT, int TMAX, int CAP>
__global__ void __launch_bounds__(ROUTE_WARPS * 32, 1)
    route_fused_kernel(int32_t *idx, float *weights, float *logits, unsigned *done, const float *x, const WT *W,
                       const float *bias, route_args p, int T, int H) {
    extern __shared__ float rsm[];
    __shared__ bool last;
    cu_pdl_trigger(); /* the experts' GEMVs may start their launch (cu_launch_pdl) */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, E = p.E;
    const int n = blockIdx.x * ROUTE_ROWS + warp % ROUTE_ROWS, t0 = warp / ROUTE_ROWS;
    const int nt = t0 < T ? (T - t0 + ROUTE_TOKEN_GROUPS - 1) / ROUTE_TOKEN_GROUPS : 0; /* t0, t0 + 4 */
    if (n < E && nt > 0) { /* the whole warp */
        float acc[TMAX];
#pragma unroll
        for (int m = 0; m < TMAX; m++) acc[m] = 0.0f;
        route_warp_dot<WT, TMAX>(W + (int64_t)n * H, x + (int64_t)t0 * H, (int64_t)ROUTE_TOKEN_GROUPS * H, nt, H, acc);
#pragma unroll
        for (int m = 0; m < TMAX; m++) {
            if (m < nt) {
                const float v = cu_warp_sum(acc[m]);
                if (lane == 0) logits[(int64_t)(t0 + m * ROUTE_TOKEN_GROUPS) * E + n] = v;
            }
        }
    }
    /* Each writer's fence, then one ticket per block: the block drawing the last ticket sees
     * every block's logits (read through L2, __ldcg). */
    __threadfence();
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(done, 1u) == gridDim.x - 1;
        if (last) *done = 0; /* every block has drawn: ready for the next launch or replay */
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    if (warp >= T) return;
    const int stride = p.K + (p.shared >= 0);
    float *wc = rsm + warp * (E + p.n_group);
    route_token<CAP>(p, logits + (int64_t)warp * E, bias, idx + (int64_t)warp * stride,
                     weights + (int64_t)warp * stride, wc, (int *)(wc + E));
}

template <int CAP>
static glmoe_status route_select(cuda_exec *cx, int32_t *idx, float *weights, const float *bias, const route_args &a,
                                 int T, size_t smem, gm_err *err) {
    static cu_smem_allowed allowed;
    glmoe_status s = cuda_allow_smem((const void *)route_select_kernel<CAP>, smem, &allowed, err);
    if (s) return s;
    route_select_kernel<CAP><<<cu_blocks(T, ROUTE_WARPS), ROUTE_WARPS * 32, smem, cx->stream>>>(
        idx, weights, cx->route_logits, bias, a, T);
    CU_LAUNCHED();
    return GLMOE_OK;
}

template <typename WT, int CAP>
static glmoe_status route_fused(cuda_exec *cx, int32_t *idx, float *weights, const float *x, const WT *W,
                                const float *bias, const route_args &a, int T, int H, size_t smem, gm_err *err) {
    /* smem <= ROUTE_WARPS * (256 + 128) * 4 = 12 KiB: E <= 256 and groups of at least 2 */
    const unsigned blocks = cu_blocks(a.E, ROUTE_ROWS);
    if (T <= ROUTE_TOKEN_GROUPS)
        route_fused_kernel<WT, 1, CAP><<<blocks, ROUTE_WARPS * 32, smem, cx->stream>>>(
            idx, weights, cx->route_logits, cx->route_done, x, W, bias, a, T, H);
    else
        route_fused_kernel<WT, 2, CAP><<<blocks, ROUTE_WARPS * 32, smem, cx->stream>>>(
            idx, weights, cx->route_logits, cx->route_done, x, W, bias, a, T, H);
    CU_LAUNCHED();
    return GLMOE_OK;
}

glmoe_status cuda_moe_route(gm_exec *ex, int32_t *idx, float *weights, const float *x, const gm_weight *router,
                            const gm_weight *bias, const gm_route_params *p, int32_t T, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    if (T <= 0) return GLMOE_OK;
    const int n_group = p->n_group > 0 ? p->n_group : 1;
    if (p->top_k <= 0 || p->top_k > p->n_experts || p->n_experts % n_group || router->rows != p->n_experts)
        return gm_fail(err, GLMOE_E_ARG, "cuda: moe_route with %d experts (router %lld rows), top-%d, %d groups",
                       p->n_experts, (long long)router->rows, p->top_k, n_group);
    if (p->n_experts > ROUTE_MAX_E || p->top_k > ROUTE_MAX_K)
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: moe_route of %d experts, top-%d (at most %d and %d)",
                       p->n_experts, p->top_k, ROUTE_MAX_E, ROUTE_MAX_K);
    route_args a;
    a.E = p->n_experts;
    a.K = p->top_k;
    a.n_group = n_group;
    a.topk_group = p->topk_group;
    a.shared = p->shared_expert ? p->n_experts : -1;
    a.norm = p->norm_topk_prob;
    a.scaling = p->routed_scaling_factor;
    const float *b = bias && bias->data ? (const float *)bias->data : nullptr;
    if ((size_t)T * (size_t)a.E > cx->route_logits_cap || !cx->route_done)
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: moe_route of %d tokens x %d experts exceeds the reserved scratch",
                       T, a.E);
    const int H = (int)router->cols;
    const size_t smem = n_group > 1 ? (size_t)ROUTE_WARPS * (size_t)(a.E + n_group) * sizeof(float) : 0;
    const bool dense = router->type == GM_W_BF16 || router->type == GM_W_F16 || router->type == GM_W_F32;
    if (T <= ROUTE_FUSED_MAX_T && a.E <= 256 && smem <= 48 * 1024 && dense && router->cols <= INT32_MAX && H % 8 == 0 &&
        cu_aligned(router->data, 16) && cu_aligned(x, 16)) {
        glmoe_status s = GLMOE_OK;
        if (a.E <= 128)
            CU_DISPATCH_WTYPE(router->type, WT,
                              s = route_fused<WT, 4>(cx, idx, weights, x, (const WT *)router->data, b, a, T, H, smem, err));
        else
            CU_DISPATCH_WTYPE(router->type, WT,
                              s = route_fused<WT, 8>(cx, idx, weights, x, (const WT *)router->data, b, a, T, H, smem, err));
        return s;
    }
    if (T <= ROUTE_FUSED_MAX_T) { /* said once: decode pays a second launch for the router */
        static int said;
        if (cu_first_time(&said))
            gm_info("cuda: the MoE router (%d experts, %lld wide, %s) runs as a matmul and a routing launch, not "
                    "fused (that takes a bf16/f16/f32 router of at most 256 experts, width a multiple of 8)",
                    a.E, (long long)router->cols, router->type == GM_W_AFFINE ? "quantized" : "dense");
    }
    glmoe_status s = cuda_matmul(ex, cx->route_logits, x, router, nullptr, T, err);
    if (s) return s;
    if (a.E <= 128) return route_select<4>(cx, idx, weights, b, a, T, smem, err);
    if (a.E <= 256) return route_select<8>(cx, idx, weights, b, a, T, smem, err);
    return route_select<32>(cx, idx, weights, b, a, T, smem, err);
}

/* ---- expert tables ------------------------------------------------------------------------------ */

/* The device table of a layer's experts (gm_experts.table), made once when the model binds its
 * weights, so that no op builds or compares anything per call; again (replacing it) when the
 * caller changed the weights (the op tests do). */
extern "C" glmoe_status cuda_prepare_experts(gm_backend *be, gm_experts *bank, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    cuda_release_experts(be, bank);
    const int E = bank->n;
    if (E <= 0) return GLMOE_OK;
    /* The kernels index the bank by the router's expert ids; skipping another rank's would need
     * every MoE path to remap them. */
    if (bank->n_all)
        return gm_fail(err, GLMOE_E_UNSUPPORTED,
                       "cuda: expert parallelism (--split ep) is not supported by the CUDA expert kernels yet; "
                       "--split tp cuts every expert by columns instead");
    cuda_expert_table *tb = (cuda_expert_table *)calloc(1, sizeof *tb);
    cuda_expert *host = (cuda_expert *)calloc((size_t)E, sizeof(cuda_expert));
    if (!tb || !host) {
        free(tb);
        free(host);
        return gm_fail(err, GLMOE_E_NOMEM, "cuda: out of host memory");
    }
    tb->all_bf16 = true; /* every projection of every expert: the tensor-core and cuBLAS paths */
    tb->gateup_bits = tb->down_bits = 0;
    for (int e = 0; e < E; e++) {
        if (!tb->gateup_bits && bank->gate[e].type == GM_W_AFFINE) {
            tb->gateup_bits = bank->gate[e].q.bits;
            tb->scale_type = cu_affine_of(&bank->gate[e]).scale_type;
            tb->gateup_group = bank->gate[e].q.group;
        }
        if (!tb->down_group && bank->down[e].type == GM_W_AFFINE) tb->down_group = bank->down[e].q.group;
        if (!tb->down_bits && bank->down[e].type == GM_W_AFFINE) tb->down_bits = bank->down[e].q.bits;
        const gm_weight *w[3] = {&bank->gate[e], &bank->up[e], &bank->down[e]};
        cuda_proj *p[3] = {&host[e].gate, &host[e].up, &host[e].down};
        for (int k = 0; k < 3; k++) {
            p[k]->data = w[k]->data;
            p[k]->type = w[k]->type;
            if (w[k]->type == GM_W_AFFINE) p[k]->q = cu_affine_of(w[k]);
            tb->all_bf16 = tb->all_bf16 && w[k]->type == GM_W_BF16;
            tb->any_affine = tb->any_affine || w[k]->type == GM_W_AFFINE;
        }
    }
    tb->gateup_bits = tb->gateup_bits == 8 ? 8 : 4;
    tb->down_bits = tb->down_bits == 8 ? 8 : 4;
    for (int e = 0; e < E; e++) { /* what expert_*_grouped take on their fast path */
        const bool gateup = host[e].gate.type == GM_W_AFFINE && host[e].up.type == GM_W_AFFINE &&
                            aff_fast_layout(host[e].gate.q, tb->gateup_bits) &&
                            aff_fast_layout(host[e].up.q, tb->gateup_bits);
        const bool down = host[e].down.type == GM_W_AFFINE && aff_fast_layout(host[e].down.q, tb->down_bits);
        const bool same_scales = host[e].gate.q.scale_type == tb->scale_type &&
                                 host[e].up.q.scale_type == tb->scale_type && host[e].down.q.scale_type == tb->scale_type;
        tb->some_general = tb->some_general || !gateup || !down || !same_scales;
        tb->mmv_async = (e == 0 || tb->mmv_async) && gateup && down && aff_scale_rows_word_aligned(host[e].gate.q) &&
                        aff_scale_rows_word_aligned(host[e].up.q) && aff_scale_rows_word_aligned(host[e].down.q) &&
                        host[e].gate.q.group == tb->gateup_group && host[e].up.q.group == tb->gateup_group &&
                        host[e].down.q.group == tb->down_group;
    }
    cuda_affine_experts_plan(tb, bank); /* quantized experts: the prefill tiles of cuda_quant_mma.cu */
    glmoe_status s = cuda_upload_table(cb, (void **)&tb->dev, host, (size_t)E * sizeof(cuda_expert), err);
    free(host);
    if (s) {
        free(tb);
        return s;
    }
    bank->table = tb;
    return GLMOE_OK;
}

extern "C" void cuda_release_experts(gm_backend *be, gm_experts *bank) {
    cuda_expert_table *tb = (cuda_expert_table *)bank->table;
    if (!tb) return;
    if (tb->dev) cudaFree(tb->dev);
    free(tb);
    bank->table = NULL;
}

/* ---- decode: GEMV over the selected experts ---------------------------------------------------- */

/* Lane partials of a weight row of any dtype dotted with a float32 vector (reduce with
 * cu_warp_sum). */
__device__ __forceinline__ float warp_dot_partial_any(int type, const void *w, const float *x, int K) {
    const bool vec = (K & 7) == 0 && (((uintptr_t)w | (uintptr_t)x) & 15) == 0;
    float acc[1] = {0.0f};
    switch (type) {
    case GM_W_BF16:
        if (vec) cu_warp_dot<__nv_bfloat16, true, 1>((const __nv_bfloat16 *)w, x, K, 1, K, acc);
        else cu_warp_dot<__nv_bfloat16, false, 1>((const __nv_bfloat16 *)w, x, K, 1, K, acc);
        break;
    case GM_W_F16:
        if (vec) cu_warp_dot<__half, true, 1>((const __half *)w, x, K, 1, K, acc);
        else cu_warp_dot<__half, false, 1>((const __half *)w, x, K, 1, K, acc);
        break;
    default:
        if (vec) cu_warp_dot<float, true, 1>((const float *)w, x, K, 1, K, acc);
        else cu_warp_dot<float, false, 1>((const float *)w, x, K, 1, K, acc);
        break;
    }
    return acc[0];
}

__device__ __forceinline__ size_t wtype_bytes(int type) { return type == GM_W_F32 ? 4 : 2; }

/* Lane partials of row `row` of an expert's projection (K inputs) dotted with x: dense of any
 * dtype, or affine (decoded as cuda_quant.cu does). */
__device__ __forceinline__ float warp_dot_proj_partial(const cuda_proj &p, int64_t row, const float *x, int K) {
    if (p.type == GM_W_AFFINE) {
        float acc = 0.0f;
        for (int k = threadIdx.x & 31; k < K; k += 32) acc += cu_affine_elem(p.q, row, k) * x[k];
        return acc;
    }
    return warp_dot_partial_any(p.type, (const char *)p.data + (size_t)row * K * wtype_bytes(p.type), x, K);
}

/* Lane partials of two rows of the same dtype (an expert's gate and up rows) against one x, with
 * the loads of both rows interleaved (twice the loads in flight of two separate passes). Needs
 * K % 8 == 0 and 16-byte aligned rows. */
template <typename WT>
__device__ __forceinline__ void warp_dot2_vec(const WT *g, const WT *u, const float *x, int K, float &ag, float &au) {
    int k = (threadIdx.x & 31) * 8;
    for (; k + 256 < K; k += 512) {
        float g0[8], g1[8], u0[8], u1[8];
        cu_load8(g + k, g0);
        cu_load8(u + k, u0);
        cu_load8(g + k + 256, g1);
        cu_load8(u + k + 256, u1);
        ag += cu_dot8(g0, x + k) + cu_dot8(g1, x + k + 256);
        au += cu_dot8(u0, x + k) + cu_dot8(u1, x + k + 256);
    }
    for (; k < K; k += 256) {
        float g0[8], u0[8];
        cu_load8(g + k, g0);
        cu_load8(u + k, u0);
        ag += cu_dot8(g0, x + k);
        au += cu_dot8(u0, x + k);
    }
}

__device__ __forceinline__ void raise_expert_fault(int32_t *fault, int e) { cu_raise_fault(fault, CUDA_FAULT_EXPERT, e, 0); }

__global__ void __launch_bounds__(EXPERT_WARPS * 32) expert_gateup_gemv(float *h, const float *x, const int32_t *idx,
                                                                        const cuda_expert *ex, int E, int K, int H,
                                                                        int Im, int32_t *fault) {
    const int r = blockIdx.y, t = r / K, e = idx[r];
    if (e < 0 || e >= E) {
        if (blockIdx.x == 0 && threadIdx.x == 0) raise_expert_fault(fault, e);
        return;
    }
    const int i = blockIdx.x * EXPERT_WARPS + (threadIdx.x >> 5);
    if (i >= Im) return;
    const cuda_expert xe = ex[e];
    const float *u = x + (int64_t)t * H;
    float g, v;
    const void *grow = (const char *)xe.gate.data + (size_t)i * H * wtype_bytes(xe.gate.type);
    const void *urow = (const char *)xe.up.data + (size_t)i * H * wtype_bytes(xe.up.type);
    if (xe.gate.type == xe.up.type && xe.gate.type != GM_W_AFFINE && (H & 7) == 0 &&
        (((uintptr_t)grow | (uintptr_t)urow | (uintptr_t)u) & 15) == 0) {
        float ag = 0.0f, au = 0.0f;
        CU_DISPATCH_WTYPE(xe.gate.type, WT, warp_dot2_vec<WT>((const WT *)grow, (const WT *)urow, u, H, ag, au));
        g = cu_warp_sum(ag);
        v = cu_warp_sum(au);
    } else {
        g = cu_warp_sum(warp_dot_proj_partial(xe.gate, i, u, H));
        v = cu_warp_sum(warp_dot_proj_partial(xe.up, i, u, H));
    }
    if ((threadIdx.x & 31) == 0) h[(int64_t)r * Im + i] = g / (1.0f + expf(-g)) * v;
}

__global__ void __launch_bounds__(EXPERT_WARPS * 32) expert_down_gemv(float *out, bool accumulate, const float *h,
                                                                      const int32_t *idx, const float *w,
                                                                      const cuda_expert *ex, int E, int K, int H,
                                                                      int Im) {
    const int t = blockIdx.y, n = blockIdx.x * EXPERT_WARPS + (threadIdx.x >> 5);
    if (n >= H) return;
    float acc = 0.0f;
    for (int j = 0; j < K; j++) {
        const int r = t * K + j, e = idx[r];
        if (e < 0 || e >= E) continue; /* raised by expert_gateup_gemv */
        const cuda_expert xe = ex[e];
        /* Lane partials, weighted, summed over j; one reduction at the end. */
        acc += w[r] * warp_dot_proj_partial(xe.down, n, h + (int64_t)r * Im, Im);
    }
    acc = cu_warp_sum(acc);
    if ((threadIdx.x & 31) == 0) {
        float *o = out + (int64_t)t * H + n;
        *o = (accumulate ? *o : 0.0f) + acc;
    }
}

/* ---- decode of affine experts: each selected expert read once per step ----------------------
 *
 * The T·K (token, slot) pairs of a step are grouped by expert inside each block (no extra
 * kernel, no host wait): block (x, u) finds the u-th distinct expert of idx in order of first
 * appearance and the slots that chose it, in increasing order (moe_group_of), and computes its
 * rows x (rows per block) for all those slots from one read of the weights; blocks past the
 * step's distinct experts exit at once (the grid is sized for min(T·K, E)). Then:
 *   (1) expert_gateup_grouped: h[slot] = silu(gate_e·x[t]) ⊙ up_e·x[t], gate and up rows in the
 *       same block (x staged once for both);
 *   (2) expert_down_grouped: y[slot] = down_e·h[slot];
 *   (3) expert_combine_decode: out[t] (+)= Σ_j w[t,j]·y[t·K + j], j in order: a fixed summation
 *       order, no atomics, so results do not depend on the grouping.
 * Per step with U distinct experts (q4 g64, Im x H each of gate, up and down): 6·T·K·Im·H FLOPs,
 * 3·U·Im·H·(1/2 + 1/16) bytes of weights (each selected expert once), T·K·(2·Im + H)·4 bytes of
 * h and y through L2. HBM bound at T <= 2 (cuda_quant_gemv.h). An expert whose projections are
 * not in the kernel's format (another bit width, gate and up of different widths, unaligned)
 * takes the general decoder per slot in the same block (weights then re-read from the cache per
 * token): correct, not tuned, said once in the log. */
#define MOE_GROUP_MAX_SLOTS 256 /* T·K of one launch; DECODE_MAX_TOKENS x top-32 */

struct moe_group_smem {
    int32_t idx[MOE_GROUP_MAX_SLOTS];
    int32_t slots[MOE_GROUP_MAX_SLOTS];
    int32_t e, count;
};

/* g.e = the u-th distinct valid expert of idx[0..n) (in order of first appearance; -1 if there
 * are at most u), g.slots[0..g.count) = the slots r with idx[r] == g.e, increasing. Every thread
 * of the block calls it; n <= MOE_GROUP_MAX_SLOTS. An id outside [0, E) is skipped, and raised
 * as a fault when `fault` is given. */
__device__ bool moe_group_of(const int32_t *idx, int n, int E, int u, moe_group_smem &g, int32_t *fault) {
    for (int r = threadIdx.x; r < n; r += blockDim.x) g.idx[r] = idx[r];
    __syncthreads();
    if (threadIdx.x < CUDA_WARP) {
        const int lane = threadIdx.x;
        const unsigned below = (1u << lane) - 1u;
        int seen = 0, e = -1;
        for (int base = 0; base < n; base += CUDA_WARP) {
            const int r = base + lane;
            const int er = r < n ? g.idx[r] : -1;
            const bool valid = r < n && er >= 0 && er < E;
            if (r < n && !valid && fault) raise_expert_fault(fault, er);
            bool first = valid;
            for (int q = 0; q < r && first; q++) first = g.idx[q] != er;
            const unsigned m = __ballot_sync(0xffffffffu, first);
            const unsigned hit = __ballot_sync(0xffffffffu, first && seen + __popc(m & below) == u);
            const int found = __shfl_sync(0xffffffffu, er, hit ? __ffs(hit) - 1 : 0);
            if (e < 0 && hit) e = found;
            seen += __popc(m);
        }
        int count = 0;
        if (e >= 0)
            for (int base = 0; base < n; base += CUDA_WARP) {
                const int r = base + lane;
                const bool mine = r < n && g.idx[r] == e;
                const unsigned m = __ballot_sync(0xffffffffu, mine);
                if (mine) g.slots[count + __popc(m & below)] = r;
                count += __popc(m);
            }
        if (lane == 0) g.e = e, g.count = count;
    }
    __syncthreads();
    return g.e >= 0;
}

/* The gate rows i0 .. i0 + RG - 1 of expert xe, then its up rows (one row set of R = 2·RG). */
template <int B, int R>
__device__ __forceinline__ void gateup_rows(aff_row (&rows)[R], const cuda_expert &xe, int i0, int Im) {
    constexpr int RG = R / 2;
#pragma unroll
    for (int r = 0; r < RG; r++) {
        rows[r] = aff_row_of<B>(xe.gate.q, i0 + r, i0 + r < Im);
        rows[RG + r] = aff_row_of<B>(xe.up.q, i0 + r, i0 + r < Im);
    }
}

/* h[slots[t]][i0 + r] = silu(gate row r · x_t) · (up row r · x_t) for t < nt (lane 0 writes). */
template <int R, int TMAX>
__device__ __forceinline__ void gateup_store(float *h, const float (&acc)[R][TMAX], const aff_row (&rows)[R],
                                             const int32_t *slots, int nt, int i0, int Im) {
    constexpr int RG = R / 2;
#pragma unroll
    for (int r = 0; r < RG; r++)
#pragma unroll
        for (int t = 0; t < TMAX; t++) {
            if (t >= nt) break;
            const float g = cu_warp_sum(acc[r][t]), v = cu_warp_sum(acc[RG + r][t]);
            if ((threadIdx.x & 31) == 0 && rows[r].ok) h[(int64_t)slots[t] * Im + i0 + r] = cu_silu_mul(g, v);
        }
}

/* The down rows n0 .. n0 + R - 1 of expert xe. */
template <int B, int R>
__device__ __forceinline__ void down_rows(aff_row (&rows)[R], const cuda_expert &xe, int n0, int H) {
#pragma unroll
    for (int r = 0; r < R; r++) rows[r] = aff_row_of<B>(xe.down.q, n0 + r, n0 + r < H);
}

/* y[slots[t]][n0 + r] = down row r · h_t for t < nt (lane 0 writes). */
template <int R, int TMAX>
__device__ __forceinline__ void down_store(float *y, const float (&acc)[R][TMAX], const aff_row (&rows)[R],
                                           const int32_t *slots, int nt, int n0, int H) {
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int t = 0; t < TMAX; t++) {
            if (t >= nt) break;
            const float v = cu_warp_sum(acc[r][t]);
            if ((threadIdx.x & 31) == 0 && rows[r].ok) y[(int64_t)slots[t] * H + n0 + r] = v;
        }
}

/* Gate and up rows i0 .. i0 + RG - 1 per warp (RG = R/2), for the slots of one expert; the block
 * takes row ranges blockIdx.x, + gridDim.x, ... (one with a full grid). With `whole` (x of the
 * fast layout in one slice: aff_stage_whole), x is staged once and each warp walks its rows. */
template <int B, int TMAX>
__global__ void __launch_bounds__(AFF_THREADS, 2) expert_gateup_grouped(float *h, const float *x, const int32_t *idx,
                                                                        int n_slots, int K, const cuda_expert *ex,
                                                                        int E, int H, int Im, int kc, bool whole,
                                                                        int32_t *fault) {
    constexpr int R = aff_rows_per_warp(TMAX), RG = R / 2, U = aff_unroll(TMAX);
    extern __shared__ float4 aff_smem[];
    __shared__ moe_group_smem grp;
    __shared__ const float *xrow[TMAX];
    if (!moe_group_of(idx, n_slots, E, blockIdx.y, grp, blockIdx.x == 0 && blockIdx.y == 0 ? fault : nullptr))
        return;
    const cuda_expert xe = ex[grp.e];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, step = gridDim.x * AFF_WARPS * RG;
    float *smem = reinterpret_cast<float *>(aff_smem);
    const bool fast = aff_fast_layout(xe.gate.q, B) && aff_fast_layout(xe.up.q, B) && xe.gate.type == GM_W_AFFINE &&
                      xe.up.type == GM_W_AFFINE && ((uintptr_t)x & 15) == 0 && H % 4 == 0;
    if (fast && whole) { /* grp.count <= T <= TMAX: a token chooses an expert once */
        if (threadIdx.x < grp.count) xrow[threadIdx.x] = x + (int64_t)(grp.slots[threadIdx.x] / K) * H;
        aff_stage_whole<B>(smem, xrow, grp.count, H, kc);
        for (int i0 = (blockIdx.x * AFF_WARPS + warp) * RG; i0 < Im; i0 += step) {
            aff_row rows[R];
            gateup_rows<B, R>(rows, xe, i0, Im);
            float acc[R][TMAX] = {};
            aff_warp_dot_staged<B, TMAX, R, U>(rows, grp.count, H, kc, smem, acc);
            gateup_store<R, TMAX>(h, acc, rows, grp.slots, grp.count, i0, Im);
        }
        return;
    }
    for (int base = blockIdx.x * AFF_WARPS * RG; base < Im; base += step) { /* block-uniform: barriers inside */
        const int i0 = base + warp * RG;
        if (fast) {
            aff_row rows[R];
            gateup_rows<B, R>(rows, xe, i0, Im);
            for (int b0 = 0; b0 < grp.count; b0 += TMAX) {
                const int nt = min(TMAX, grp.count - b0);
                if (threadIdx.x < nt) xrow[threadIdx.x] = x + (int64_t)(grp.slots[b0 + threadIdx.x] / K) * H;
                float acc[R][TMAX] = {};
                aff_block_dot<B, TMAX, R, U>(rows, xrow, nt, H, kc, smem, acc);
                gateup_store<R, TMAX>(h, acc, rows, grp.slots + b0, nt, i0, Im);
            }
            continue;
        }
        for (int si = 0; si < grp.count; si++) {
            const int slot = grp.slots[si];
            const float *u = x + (int64_t)(slot / K) * H;
            for (int r = 0; r < RG; r++) {
                const int i = i0 + r;
                if (i >= Im) break;
                const float g = cu_warp_sum(warp_dot_proj_partial(xe.gate, i, u, H));
                const float v = cu_warp_sum(warp_dot_proj_partial(xe.up, i, u, H));
                if (lane == 0) h[(int64_t)slot * Im + i] = cu_silu_mul(g, v);
            }
        }
    }
}

/* Down rows n0 .. n0 + R - 1 per warp, for the slots of one expert: y[slot] = down_e · h[slot]; row
 * ranges and `whole` as in expert_gateup_grouped. */
template <int B, int TMAX>
__global__ void __launch_bounds__(AFF_THREADS, 2) expert_down_grouped(float *y, const float *h, const int32_t *idx,
                                                                      int n_slots, const cuda_expert *ex, int E, int H,
                                                                      int Im, int kc, bool whole) {
    constexpr int R = aff_rows_per_warp(TMAX), U = aff_unroll(TMAX);
    extern __shared__ float4 aff_smem[];
    __shared__ moe_group_smem grp;
    __shared__ const float *xrow[TMAX];
    if (!moe_group_of(idx, n_slots, E, blockIdx.y, grp, nullptr)) return;
    const cuda_expert xe = ex[grp.e];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, step = gridDim.x * AFF_WARPS * R;
    float *smem = reinterpret_cast<float *>(aff_smem);
    const bool fast = xe.down.type == GM_W_AFFINE && aff_fast_layout(xe.down.q, B) && ((uintptr_t)h & 15) == 0 &&
                      Im % 4 == 0;
    if (fast && whole) {
        if (threadIdx.x < grp.count) xrow[threadIdx.x] = h + (int64_t)grp.slots[threadIdx.x] * Im;
        aff_stage_whole<B>(smem, xrow, grp.count, Im, kc);
        for (int n0 = (blockIdx.x * AFF_WARPS + warp) * R; n0 < H; n0 += step) {
            aff_row rows[R];
            down_rows<B, R>(rows, xe, n0, H);
            float acc[R][TMAX] = {};
            aff_warp_dot_staged<B, TMAX, R, U>(rows, grp.count, Im, kc, smem, acc);
            down_store<R, TMAX>(y, acc, rows, grp.slots, grp.count, n0, H);
        }
        return;
    }
    for (int base = blockIdx.x * AFF_WARPS * R; base < H; base += step) { /* block-uniform: barriers inside */
        const int n0 = base + warp * R;
        if (fast) {
            aff_row rows[R];
            down_rows<B, R>(rows, xe, n0, H);
            for (int b0 = 0; b0 < grp.count; b0 += TMAX) {
                const int nt = min(TMAX, grp.count - b0);
                if (threadIdx.x < nt) xrow[threadIdx.x] = h + (int64_t)grp.slots[b0 + threadIdx.x] * Im;
                float acc[R][TMAX] = {};
                aff_block_dot<B, TMAX, R, U>(rows, xrow, nt, Im, kc, smem, acc);
                down_store<R, TMAX>(y, acc, rows, grp.slots + b0, nt, n0, H);
            }
            continue;
        }
        for (int si = 0; si < grp.count; si++) {
            const int slot = grp.slots[si];
            for (int r = 0; r < R; r++) {
                const int n = n0 + r;
                if (n >= H) break;
                const float v = cu_warp_sum(warp_dot_proj_partial(xe.down, n, h + (int64_t)slot * Im, Im));
                if (lane == 0) y[(int64_t)slot * H + n] = v;
            }
        }
    }
}

/* out[t][n] (+)= Σ_j w[t,j] · y[t·K + j][n] in slot order (slots of invalid experts add nothing). */
__global__ void expert_combine_decode(float *out, bool accumulate, const float *y, const int32_t *idx, const float *w,
                                      int E, int K, int H) {
    const int t = blockIdx.y, n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= H) return;
    float acc = accumulate ? out[(int64_t)t * H + n] : 0.0f;
    for (int j = 0; j < K; j++) {
        const int r = t * K + j, e = idx[r];
        if (e >= 0 && e < E) acc += w[r] * y[(int64_t)r * H + n];
    }
    out[(int64_t)t * H + n] = acc;
}

template <int B, int TMAX>
static void launch_gateup_grouped(cuda_exec *cx, dim3 grid, size_t smem, float *h, const float *x, const int32_t *idx,
                                  int n_slots, int K, const cuda_expert *ex, int E, int H, int Im, int kc, bool whole) {
    expert_gateup_grouped<B, TMAX><<<grid, AFF_THREADS, smem, cx->stream>>>(h, x, idx, n_slots, K, ex, E, H, Im, kc,
                                                                            whole, cx->d_fault);
}
template <int B, int TMAX>
static void launch_down_grouped(cuda_exec *cx, dim3 grid, size_t smem, float *y, const float *h, const int32_t *idx,
                                int n_slots, const cuda_expert *ex, int E, int H, int Im, int kc, bool whole) {
    expert_down_grouped<B, TMAX><<<grid, AFF_THREADS, smem, cx->stream>>>(y, h, idx, n_slots, ex, E, H, Im, kc, whole);
}

/* h and y of one decode step of T <= DECODE_MAX_TOKENS tokens with the float32 GEMV core (h and
 * y: the exec's MoE scratch, slot-major). */
static glmoe_status experts_grouped_gemv(cuda_exec *cx, const float *x, const int32_t *idx, int K,
                                         const cuda_expert_table *tb, int E, int H, int Im, int T, gm_err *err) {
    const int n_slots = T * K, tmax = aff_tmax(T), groups = n_slots < E ? n_slots : E;
    const int bg = tb->gateup_bits, bd = tb->down_bits;
    const cuda_expert *table = tb->dev;
    const int kc_g = aff_slice_chunks(bg, H, tmax), kc_d = aff_slice_chunks(bd, Im, tmax);
    const size_t smem_g = aff_smem_bytes(bg, kc_g, tmax), smem_d = aff_smem_bytes(bd, kc_d, tmax);
    /* x in one slice: x staged once per block and about two blocks per SM over all the step's
     * experts, the warps walking row groups (aff_walk_blocks); else a block per row group. */
    const bool whole_g = aff_persist_on() && aff_fits_whole(bg, H, kc_g),
               whole_d = aff_persist_on() && aff_fits_whole(bd, Im, kc_d);
    const unsigned full_g = cu_blocks(Im, AFF_WARPS * (aff_rows_per_warp(tmax) / 2)),
                   full_d = cu_blocks(H, AFF_WARPS * aff_rows_per_warp(tmax));
    const dim3 g1(whole_g ? aff_walk_blocks(full_g, cx->cb->sm_count, groups) : full_g, (unsigned)groups);
    const dim3 g2(whole_d ? aff_walk_blocks(full_d, cx->cb->sm_count, groups) : full_d, (unsigned)groups);
#define GROUPED_LAUNCH(BITS, TM)                                                                                    \
    do {                                                                                                            \
        if (bg == BITS) launch_gateup_grouped<BITS, TM>(cx, g1, smem_g, cx->moe_h, x, idx, n_slots, K, table, E, H, \
                                                        Im, kc_g, whole_g);                                         \
    } while (0)
    switch (tmax) {
    case 1: GROUPED_LAUNCH(4, 1); GROUPED_LAUNCH(8, 1); break;
    case 2: GROUPED_LAUNCH(4, 2); GROUPED_LAUNCH(8, 2); break;
    case 4: GROUPED_LAUNCH(4, 4); GROUPED_LAUNCH(8, 4); break;
    default: GROUPED_LAUNCH(4, 8); GROUPED_LAUNCH(8, 8); break;
    }
#undef GROUPED_LAUNCH
    CU_LAUNCHED();
#define GROUPED_LAUNCH(BITS, TM)                                                                                   \
    do {                                                                                                           \
        if (bd == BITS)                                                                                            \
            launch_down_grouped<BITS, TM>(cx, g2, smem_d, cx->moe_y, cx->moe_h, idx, n_slots, table, E, H, Im, kc_d, \
                                          whole_d);                                                                \
    } while (0)
    switch (tmax) {
    case 1: GROUPED_LAUNCH(4, 1); GROUPED_LAUNCH(8, 1); break;
    case 2: GROUPED_LAUNCH(4, 2); GROUPED_LAUNCH(8, 2); break;
    case 4: GROUPED_LAUNCH(4, 4); GROUPED_LAUNCH(8, 4); break;
    default: GROUPED_LAUNCH(4, 8); GROUPED_LAUNCH(8, 8); break;
    }
#undef GROUPED_LAUNCH
    CU_LAUNCHED();
    return GLMOE_OK;
}

/* The launches of one decode step of T <= DECODE_MAX_TOKENS tokens: h and y on the tensor cores
 * (cuda_quant_mmv.cu) when every expert is in the table's 4- or 8-bit format, else with the
 * float32 GEMV core; then the weighted sum over slots. */
static glmoe_status experts_grouped(cuda_exec *cx, float *out, bool accumulate, const float *x, const int32_t *idx,
                                    const float *weights, int K, const cuda_expert_table *tb, int E, int H, int Im,
                                    int T, gm_err *err) {
    const bool mmv = cuda_experts_mmv_takes(tb, x, T, H, Im);
    glmoe_status s = mmv ? cuda_experts_mmv(cx, cx->moe_h, cx->moe_y, x, idx, K, T, tb, E, H, Im, err)
                         : experts_grouped_gemv(cx, x, idx, K, tb, E, H, Im, T, err);
    if (s) return s;
    const dim3 g3(cu_blocks(H, 256), (unsigned)T);
    expert_combine_decode<<<g3, 256, 0, cx->stream>>>(out, accumulate, cx->moe_y, idx, weights, E, K, H);
    CU_LAUNCHED();
    return GLMOE_OK;
}

/* ---- prefill: grouping and grouped GEMMs ------------------------------------------------------- */

__global__ void moe_count_kernel(const int32_t *idx, int64_t n, int E, int32_t *counts, int32_t *fault) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n; r += (int64_t)gridDim.x * blockDim.x) {
        const int e = idx[r];
        if (e < 0 || e >= E) raise_expert_fault(fault, e);
        else atomicAdd(&counts[e], 1);
    }
}

/* One thread: E is a few hundred at most, and this avoids a scan across blocks. */
__global__ void moe_plan_kernel(const int32_t *counts, int E, int32_t *offsets, int32_t *fill, int4 *tiles,
                                int32_t *ntiles) {
    int off = 0, nt = 0;
    for (int e = 0; e < E; e++) {
        const int c = counts[e];
        offsets[e] = off;
        fill[e] = 0;
        for (int b = 0; b < c; b += CU_TILE_M) tiles[nt++] = make_int4(e, off + b, min(CU_TILE_M, c - b), 0);
        off += c;
    }
    offsets[E] = off;
    *ntiles = nt;
}

__global__ void moe_scatter_kernel(const int32_t *idx, int64_t n, int K, int E, const int32_t *offsets, int32_t *fill,
                                   int32_t *rows, int32_t *slot_of) {
    for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n; r += (int64_t)gridDim.x * blockDim.x) {
        const int e = idx[r];
        if (e < 0 || e >= E) {
            slot_of[r] = -1;
            continue;
        }
        const int slot = offsets[e] + atomicAdd(&fill[e], 1);
        rows[slot] = (int32_t)(r / K);
        slot_of[r] = slot;
    }
}

/* ---- tensor-core tiles (bf16 experts) ----------------------------------------------------------
 *
 * acc += A[64 rows, K] · W[n0 + 0..63, K]^T on the tensor cores (wmma 16x16x16, bf16 in, float32
 * sums). A is float32 (x or h): each element is split into bf16 hi + lo as it enters shared
 * memory and both halves are multiplied, so the product keeps 16 significant bits of A against
 * the exact bf16 weight: within ~4e-6 of float32 (the cuBLAS path of cuda_matmul.cu does the
 * same). Warp w of 8 owns rows 16 (w % 4).. and columns 32 (w / 4).. of the 64x64 tile: two
 * accumulator fragments per weight matrix. NB weight matrices share the A tile (gate and up). */
#define TC_KS 32                 /* k per shared-memory stage */
#define TC_LD (TC_KS + 8)        /* row stride in bf16: a multiple of 8, rows stay 16-byte aligned */
#define TC_LDC (CU_TILE_N + 4)   /* float row stride of the epilogue tile */

typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> tc_acc;

template <int NB>
struct tc_smem {
    __nv_bfloat16 ahi[CU_TILE_M][TC_LD], alo[CU_TILE_M][TC_LD], b[NB][CU_TILE_N][TC_LD];
};

/* The MMAs of one shared-memory stage. */
template <int NB>
__device__ __forceinline__ void tc_stage_mma(tc_acc (&acc)[NB][2], tc_smem<NB> &sm, int wm, int wn) {
#pragma unroll
    for (int kk = 0; kk < TC_KS; kk += 16) {
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ah, al;
        wmma::load_matrix_sync(ah, &sm.ahi[wm * 16][kk], TC_LD);
        wmma::load_matrix_sync(al, &sm.alo[wm * 16][kk], TC_LD);
#pragma unroll
        for (int b = 0; b < NB; b++)
#pragma unroll
            for (int j = 0; j < 2; j++) {
                /* B(k, n) = W[n0 + n][k]: W's rows are B's columns. */
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bf;
                wmma::load_matrix_sync(bf, &sm.b[b][wn * 32 + j * 16][kk], TC_LD);
                wmma::mma_sync(acc[b][j], ah, bf, acc[b][j]);
                wmma::mma_sync(acc[b][j], al, bf, acc[b][j]);
            }
    }
}

/* tc_tile_mma when every row is 16-byte aligned (K % 8 == 0, lda % 4 == 0, aligned bases, as
 * with every real model): each thread moves its 8 values of A (two float4) and of each weight
 * (one uint4) per stage, and the next stage's loads are issued before this stage's MMAs, so that
 * memory latency hides behind the tensor cores. Same arithmetic as the general loop. */
template <int NB>
__device__ __forceinline__ void tc_tile_mma_vec(tc_acc (&acc)[NB][2], tc_smem<NB> &sm, const float *arow,
                                                const __nv_bfloat16 *const (&wrow)[NB], int K, int lr, int lk,
                                                int wm, int wn) {
    float4 a0, a1;
    uint4 bw[NB];
    auto load = [&](int k0) {
        const int k = k0 + lk; /* k + 8 <= K whenever k < K, as K % 8 == 0 */
        const float4 z = make_float4(0.f, 0.f, 0.f, 0.f);
        a0 = arow && k < K ? __ldg((const float4 *)(arow + k)) : z;
        a1 = arow && k < K ? __ldg((const float4 *)(arow + k + 4)) : z;
#pragma unroll
        for (int b = 0; b < NB; b++) bw[b] = wrow[b] && k < K ? __ldg((const uint4 *)(wrow[b] + k)) : make_uint4(0, 0, 0, 0);
    };
    load(0);
    for (int k0 = 0; k0 < K; k0 += TC_KS) {
        const float v[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        __align__(16) __nv_bfloat16 hi[8], lo[8];
#pragma unroll
        for (int q = 0; q < 8; q++) cu_split_bf16(v[q], hi[q], lo[q]);
        *(uint4 *)&sm.ahi[lr][lk] = *(const uint4 *)hi;
        *(uint4 *)&sm.alo[lr][lk] = *(const uint4 *)lo;
#pragma unroll
        for (int b = 0; b < NB; b++) *(uint4 *)&sm.b[b][lr][lk] = bw[b];
        __syncthreads();
        if (k0 + TC_KS < K) load(k0 + TC_KS);
        tc_stage_mma<NB>(acc, sm, wm, wn);
        __syncthreads();
    }
}

template <int NB>
__device__ __forceinline__ void tc_tile_mma(tc_acc (&acc)[NB][2], tc_smem<NB> &sm, const float *A,
                                            const int32_t *a_rows, int m_valid, int64_t lda,
                                            const __nv_bfloat16 *const (&W)[NB], int n0, int N, int K) {
    const int tid = threadIdx.x, warp = tid >> 5, wm = warp & 3, wn = warp >> 2;
    const int lr = tid >> 2, lk = (tid & 3) * 8; /* loader: row lr, k offsets lk..lk+7 */
    const float *arow = nullptr;
    if (lr < m_valid) arow = A + (int64_t)(a_rows ? a_rows[lr] : lr) * lda;
    const __nv_bfloat16 *wrow[NB];
    bool vec = K % 8 == 0 && lda % 4 == 0 && ((uintptr_t)A & 15) == 0; /* the same for the whole block */
#pragma unroll
    for (int b = 0; b < NB; b++) {
        wrow[b] = n0 + lr < N ? W[b] + (int64_t)(n0 + lr) * K : nullptr;
        vec = vec && ((uintptr_t)W[b] & 15) == 0;
    }
    if (vec) {
        tc_tile_mma_vec<NB>(acc, sm, arow, wrow, K, lr, lk, wm, wn);
        return;
    }
    for (int k0 = 0; k0 < K; k0 += TC_KS) {
#pragma unroll
        for (int q = 0; q < 8; q++) {
            const int k = k0 + lk + q;
            cu_split_bf16(arow && k < K ? arow[k] : 0.0f, sm.ahi[lr][lk + q], sm.alo[lr][lk + q]);
#pragma unroll
            for (int b = 0; b < NB; b++) sm.b[b][lr][lk + q] = wrow[b] && k < K ? wrow[b][k] : __float2bfloat16_rn(0.0f);
        }
        __syncthreads();
        tc_stage_mma<NB>(acc, sm, wm, wn);
        __syncthreads();
    }
}

/* The accumulators of matrix b into c[b] (a 64 x TC_LDC float tile). */
template <int NB>
__device__ __forceinline__ void tc_store(float (*c)[CU_TILE_M][TC_LDC], tc_acc (&acc)[NB][2]) {
    const int warp = threadIdx.x >> 5, wm = warp & 3, wn = warp >> 2;
#pragma unroll
    for (int b = 0; b < NB; b++)
#pragma unroll
        for (int j = 0; j < 2; j++)
            wmma::store_matrix_sync(&c[b][wm * 16][wn * 32 + j * 16], acc[b][j], TC_LDC, wmma::mem_row_major);
}

/* Shared memory of the grouped kernels: the tensor-core stages, then (reused) the epilogue tile,
 * or the float32 tile of the other dtypes. */
template <int NB>
union moe_smem {
    tc_smem<NB> tc;
    float c[NB][CU_TILE_M][TC_LDC];
    cu_tile_smem simt;
};

__global__ void __launch_bounds__(256) moe_gateup_tile_kernel(float *h, const float *x, const int32_t *rows,
                                                              const int4 *tiles, const int32_t *ntiles,
                                                              const cuda_expert *ex, int H, int Im) {
    if ((int)blockIdx.y >= *ntiles) return;
    __shared__ __align__(32) moe_smem<2> smu;
    const int4 tl = tiles[blockIdx.y];
    const cuda_expert xe = ex[tl.x];
    const int slot0 = tl.y, m = tl.z, n0 = blockIdx.x * CU_TILE_N;
    if (xe.gate.type == GM_W_BF16 && xe.up.type == GM_W_BF16) {
        tc_acc acc[2][2];
#pragma unroll
        for (int b = 0; b < 2; b++)
#pragma unroll
            for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[b][j], 0.0f);
        const __nv_bfloat16 *const W[2] = {(const __nv_bfloat16 *)xe.gate.data, (const __nv_bfloat16 *)xe.up.data};
        tc_tile_mma<2>(acc, smu.tc, x, rows + slot0, m, H, W, n0, Im, H);
        tc_store<2>(smu.c, acc); /* the last __syncthreads of the loop freed the stages */
        __syncthreads();
        for (int i = threadIdx.x; i < CU_TILE_M * CU_TILE_N; i += blockDim.x) {
            const int row = i / CU_TILE_N, col = i % CU_TILE_N, n = n0 + col;
            if (row < m && n < Im) {
                const float g = smu.c[0][row][col], u = smu.c[1][row][col];
                h[(int64_t)(slot0 + row) * Im + n] = g / (1.0f + expf(-g)) * u;
            }
        }
        return;
    }
    cu_tile_smem &sm = smu.simt;
    float g[4][4] = {}, u[4][4] = {};
    CU_DISPATCH_WTYPE(xe.gate.type, WT, cu_tile_mma<WT>(g, sm, x, rows + slot0, m, H, (const WT *)xe.gate.data, n0, Im, H));
    CU_DISPATCH_WTYPE(xe.up.type, WT, cu_tile_mma<WT>(u, sm, x, rows + slot0, m, H, (const WT *)xe.up.data, n0, Im, H));
    const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = ty * 4 + i;
        if (row >= m) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int n = n0 + tx * 4 + j;
            if (n < Im) h[(int64_t)(slot0 + row) * Im + n] = g[i][j] / (1.0f + expf(-g[i][j])) * u[i][j];
        }
    }
}

__global__ void __launch_bounds__(256) moe_down_tile_kernel(float *y, const float *h, const int4 *tiles,
                                                            const int32_t *ntiles, const cuda_expert *ex, int H,
                                                            int Im) {
    if ((int)blockIdx.y >= *ntiles) return;
    __shared__ __align__(32) moe_smem<1> smu;
    const int4 tl = tiles[blockIdx.y];
    const cuda_expert xe = ex[tl.x];
    const int slot0 = tl.y, m = tl.z, n0 = blockIdx.x * CU_TILE_N;
    if (xe.down.type == GM_W_BF16) {
        tc_acc tacc[1][2];
        wmma::fill_fragment(tacc[0][0], 0.0f);
        wmma::fill_fragment(tacc[0][1], 0.0f);
        const __nv_bfloat16 *const W[1] = {(const __nv_bfloat16 *)xe.down.data};
        tc_tile_mma<1>(tacc, smu.tc, h + (int64_t)slot0 * Im, nullptr, m, Im, W, n0, H, Im);
        tc_store<1>(smu.c, tacc);
        __syncthreads();
        for (int i = threadIdx.x; i < CU_TILE_M * CU_TILE_N; i += blockDim.x) {
            const int row = i / CU_TILE_N, col = i % CU_TILE_N, n = n0 + col;
            if (row < m && n < H) y[(int64_t)(slot0 + row) * H + n] = smu.c[0][row][col];
        }
        return;
    }
    cu_tile_smem &sm = smu.simt;
    float acc[4][4] = {};
    CU_DISPATCH_WTYPE(xe.down.type, WT,
                      cu_tile_mma<WT>(acc, sm, h + (int64_t)slot0 * Im, nullptr, m, Im, (const WT *)xe.down.data, n0, H,
                                      Im));
    const int ty = threadIdx.x >> 4, tx = threadIdx.x & 15;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = ty * 4 + i;
        if (row >= m) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int n = n0 + tx * 4 + j;
            if (n < H) y[(int64_t)(slot0 + row) * H + n] = acc[i][j];
        }
    }
}

__global__ void moe_combine_kernel(float *out, bool accumulate, const float *y, const int32_t *slot_of,
                                   const float *w, int K, int H) {
    const int t = blockIdx.x;
    for (int n = threadIdx.x; n < H; n += blockDim.x) {
        float acc = accumulate ? out[(int64_t)t * H + n] : 0.0f;
        for (int j = 0; j < K; j++) {
            const int s = slot_of[t * K + j];
            if (s >= 0) acc += w[t * K + j] * y[(int64_t)s * H + n];
        }
        out[(int64_t)t * H + n] = acc;
    }
}

/* ---- many tokens per expert: cuBLAS ----------------------------------------------------------------
 *
 * With tens of tokens or more per expert the experts are ordinary GEMMs, and cuBLAS runs them
 * near the tensor cores' rate where the tile kernels above do not. After the same grouping
 * (count, plan, scatter), the per-expert offsets come back to the host (one wait per MoE layer
 * of a prefill; decode never takes this path, so recorded steps never wait), x's rows are
 * gathered in slot order as bf16 hi + lo halves, and per expert e with c rows at slot o:
 *   G = X·gate_e^T, U = X·up_e^T  (hi then lo with beta = 1: float32 quality, as cuda_matmul),
 *   then h = silu(G) ⊙ U for all rows in one launch, split into halves again, and
 *   Y = h·down_e^T; the combine kernel adds each token's K rows as in the tile path. */

__global__ void moe_gather_split_kernel(__nv_bfloat16 *hi, __nv_bfloat16 *lo, const float *x, const int32_t *rows,
                                        int64_t n_slots, int H) {
    const int64_t n = n_slots * H;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / H, c = i - r * H;
        cu_split_bf16(x[(int64_t)rows[r] * H + c], hi[i], lo[i]);
    }
}

__global__ void moe_swiglu_split_kernel(__nv_bfloat16 *hi, __nv_bfloat16 *lo, const float *g, const float *u,
                                        int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const float a = g[i];
        cu_split_bf16(a / (1.0f + expf(-a)) * u[i], hi[i], lo[i]);
    }
}

static glmoe_status experts_cublas(cuda_exec *cx, const float *x, const gm_weight *gate, const gm_weight *up,
                                   const gm_weight *down, int E, int H, int Im, gm_err *err) {
    int32_t *off = cx->moe_host_offsets;
    CU_TRY(cudaMemcpyAsync(off, cx->moe_offsets, (size_t)(E + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost, cx->stream));
    CU_TRY(cudaStreamSynchronize(cx->stream));
    const int64_t slots = off[E]; /* rows with a valid expert */
    if (slots <= 0) return GLMOE_OK;
    __nv_bfloat16 *xhi = cx->moe_xs, *xlo = cx->moe_xs + slots * H;
    const unsigned gb = (unsigned)min64(cu_blocks(slots * H, 256), (int64_t)cx->cb->sm_count * 16);
    moe_gather_split_kernel<<<gb, 256, 0, cx->stream>>>(xhi, xlo, x, cx->moe_rows, slots, H);
    CU_LAUNCHED();
    glmoe_status s;
    for (int e = 0; e < E; e++) {
        const int o = off[e], c = off[e + 1] - off[e];
        if (c <= 0) continue;
        const __nv_bfloat16 *a_hi = xhi + (int64_t)o * H, *a_lo = xlo + (int64_t)o * H;
        if ((s = cuda_gemm_split_bf16(cx, cx->moe_h + (int64_t)o * Im, gate[e].data, a_hi, a_lo, Im, c, H, err)) ||
            (s = cuda_gemm_split_bf16(cx, cx->moe_u + (int64_t)o * Im, up[e].data, a_hi, a_lo, Im, c, H, err)))
            return s;
    }
    __nv_bfloat16 *hhi = cx->moe_hs, *hlo = cx->moe_hs + slots * Im;
    const unsigned hb = (unsigned)min64(cu_blocks(slots * Im, 256), (int64_t)cx->cb->sm_count * 16);
    moe_swiglu_split_kernel<<<hb, 256, 0, cx->stream>>>(hhi, hlo, cx->moe_h, cx->moe_u, slots * Im);
    CU_LAUNCHED();
    for (int e = 0; e < E; e++) {
        const int o = off[e], c = off[e + 1] - off[e];
        if (c <= 0) continue;
        if ((s = cuda_gemm_split_bf16(cx, cx->moe_y + (int64_t)o * H, down[e].data, hhi + (int64_t)o * Im,
                                      hlo + (int64_t)o * Im, H, c, Im, err)))
            return s;
    }
    return GLMOE_OK;
}

/* ---- entry --------------------------------------------------------------------------------------- */

glmoe_status cuda_moe_experts(gm_exec *ex, float *out, bool accumulate, const float *x, const int32_t *idx,
                              const float *weights, int32_t top_k, const gm_experts *bank, int32_t T, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    if (T <= 0) return GLMOE_OK;
    const cuda_expert_table *tb = (const cuda_expert_table *)bank->table;
    if (!tb) return gm_fail(err, GLMOE_E_BACKEND, "cuda: moe_experts on experts that were not prepared");
    const gm_weight *gate = bank->gate, *up = bank->up, *down = bank->down;
    const int H = (int)down[0].rows, Im = (int)gate[0].rows, K = top_k, E = bank->n;
    const int64_t n_rows = (int64_t)T * K;
    if ((size_t)n_rows > cx->moe_rows_cap || (size_t)(n_rows * Im) > cx->moe_h_cap ||
        (size_t)(n_rows * H) > cx->moe_y_cap || (size_t)E > cx->moe_experts_cap)
        return gm_fail(err, GLMOE_E_BACKEND,
                       "cuda: moe_experts: %lld rows of width %d/%d over %d experts exceed the reserved scratch",
                       (long long)n_rows, H, Im, E);
    const cuda_expert *table = tb->dev;
    const bool bf16 = tb->all_bf16;
    glmoe_status s;

    if (tb->any_affine && (T <= (tb->affine_tiles ? aff_gemv_tokens() : DECODE_MAX_TOKENS) || !tb->affine_tiles) &&
        DECODE_MAX_TOKENS * K <= MOE_GROUP_MAX_SLOTS) {
        /* Quantized experts: each selected expert read once per launch of at most
         * DECODE_MAX_TOKENS tokens (a prefill of a bank the tiles of cuda_quant_mma.cu do not
         * take, mixing quantized and dense projections: the slow path, said once). */
        static int said, said_general;
        if (T > DECODE_MAX_TOKENS && cu_first_time(&said))
            gm_info("cuda: prefill with experts mixing quantized and dense projections runs the grouped expert "
                    "GEMVs per %d tokens (the slow path: the tiles take all-dense or all-quantized banks)",
                    DECODE_MAX_TOKENS);
        if (tb->some_general && cu_first_time(&said_general))
            gm_info("cuda: experts not all in one 4- or 8-bit format (gate and up alike, 16-byte aligned) run the "
                    "general GEMV per token for those experts (the slow path)");
        for (int32_t t0 = 0; t0 < T; t0 += DECODE_MAX_TOKENS) {
            const int32_t n = T - t0 < DECODE_MAX_TOKENS ? T - t0 : DECODE_MAX_TOKENS;
            const int64_t r0 = (int64_t)t0 * K;
            if ((s = experts_grouped(cx, out + (int64_t)t0 * H, accumulate, x + (int64_t)t0 * H, idx + r0, weights + r0,
                                     K, tb, E, H, Im, n, err)))
                return s;
        }
        return GLMOE_OK;
    }
    if ((T <= DECODE_MAX_TOKENS && !tb->affine_tiles) || (tb->any_affine && !tb->affine_tiles)) {
        /* A bank mixing quantized and dense projections takes this path at every T (the slow path
         * for prefill, said once: the grouped tiles take all-dense or all-quantized banks), in
         * chunks of tokens that keep the grid's y under 65535. */
        static int said;
        if (T > DECODE_MAX_TOKENS && cu_first_time(&said))
            gm_info("cuda: prefill with experts mixing quantized and dense projections runs the per-token expert "
                    "GEMVs (the slow path)");
        const int32_t chunk = (int32_t)(32768 / K);
        for (int32_t t0 = 0; t0 < T; t0 += chunk) {
            const int32_t n = T - t0 < chunk ? T - t0 : chunk;
            const int64_t r0 = (int64_t)t0 * K;
            dim3 g1(cu_blocks(Im, EXPERT_WARPS), (unsigned)(n * K));
            expert_gateup_gemv<<<g1, EXPERT_WARPS * 32, 0, cx->stream>>>(cx->moe_h + r0 * Im, x + (int64_t)t0 * H,
                                                                          idx + r0, table, E, K, H, Im, cx->d_fault);
            CU_LAUNCHED();
            dim3 g2(cu_blocks(H, EXPERT_WARPS), (unsigned)n);
            expert_down_gemv<<<g2, EXPERT_WARPS * 32, 0, cx->stream>>>(out + (int64_t)t0 * H, accumulate,
                                                                        cx->moe_h + r0 * Im, idx + r0, weights + r0,
                                                                        table, E, K, H, Im);
            CU_LAUNCHED();
        }
        return GLMOE_OK;
    }

    const unsigned max_tiles = (unsigned)((n_rows + CU_TILE_M - 1) / CU_TILE_M + E);
    if (max_tiles > cx->moe_tiles_cap)
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: moe_experts: %u tiles exceed the reserved %zu", max_tiles,
                       cx->moe_tiles_cap);
    CU_TRY(cudaMemsetAsync(cx->moe_counts, 0, (size_t)E * sizeof(int32_t), cx->stream));
    const unsigned rb = cu_blocks(n_rows, 256);
    moe_count_kernel<<<rb, 256, 0, cx->stream>>>(idx, n_rows, E, cx->moe_counts, cx->d_fault);
    CU_LAUNCHED();
    moe_plan_kernel<<<1, 1, 0, cx->stream>>>(cx->moe_counts, E, cx->moe_offsets, cx->moe_fill, cx->moe_tiles,
                                             cx->moe_ntiles);
    CU_LAUNCHED();
    moe_scatter_kernel<<<rb, 256, 0, cx->stream>>>(idx, n_rows, K, E, cx->moe_offsets, cx->moe_fill, cx->moe_rows,
                                                   cx->moe_slot_of);
    CU_LAUNCHED();
    if (tb->affine_tiles) {
        if ((s = cuda_affine_expert_tiles(cx, x, tb, T, H, Im, max_tiles, err))) return s;
    } else if (T >= cx->cb->moe_cublas_min_tokens && cx->moe_xs && (size_t)(2 * n_rows * H) <= cx->moe_xs_cap &&
        (size_t)(2 * n_rows * Im) <= cx->moe_hs_cap && (size_t)(n_rows * Im) <= cx->moe_u_cap && bf16) {
        if ((s = cuda_refuse_if_capturing(cx, "moe_experts: a prefill's expert offsets", err))) return s;
        if ((s = experts_cublas(cx, x, gate, up, down, E, H, Im, err))) return s;
    } else {
        static int said; /* the tiles are fast for bf16 rows aligned to 16 bytes only */
        if ((H % 8 || Im % 8 || !bf16) && cu_first_time(&said))
            gm_info("cuda: experts of %d x %d%s run on the slower scalar tiles", Im, H,
                    bf16 ? " (rows not 16-byte aligned)" : " (not all bf16)");
        dim3 g1(cu_blocks(Im, CU_TILE_N), max_tiles);
        moe_gateup_tile_kernel<<<g1, 256, 0, cx->stream>>>(cx->moe_h, x, cx->moe_rows, cx->moe_tiles, cx->moe_ntiles,
                                                           table, H, Im);
        CU_LAUNCHED();
        dim3 g2(cu_blocks(H, CU_TILE_N), max_tiles);
        moe_down_tile_kernel<<<g2, 256, 0, cx->stream>>>(cx->moe_y, cx->moe_h, cx->moe_tiles, cx->moe_ntiles, table, H,
                                                         Im);
        CU_LAUNCHED();
    }
    moe_combine_kernel<<<(unsigned)T, 256, 0, cx->stream>>>(out, accumulate, cx->moe_y, cx->moe_slot_of, weights, K, H);
    CU_LAUNCHED();
    return GLMOE_OK;
}
