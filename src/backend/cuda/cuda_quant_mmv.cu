/*
 * cuda_quant_mmv.cu — the affine GEMVs of 1..8 tokens on the tensor cores (the core and why:
 * cuda_quant_mmv.cuh): the dense matmul of several weights that share their input (q, k and v in
 * one launch), and the decode of the selected experts (gate and up with SwiGLU, then down).
 *
 * Work: a tile is 16 rows of a weight; a block of W warps (MMV_WARPS_*) takes a contiguous range of
 * tiles, and its warps split each tile's K into contiguous ranges of steps, so that a block's x,
 * staged once as fp16, serves all its tiles; the warps' fragments are summed through shared
 * memory (a fixed order: results do not depend on the grid). Ranges are of equal length
 * (ceil(tiles / resident blocks)), so that no block runs a second round alone.
 *
 * Per launch of T tokens over weights of N rows x K: 2·T·N·K FLOPs (on the tensor cores, 8
 * columns whatever T), N·K·B/8 bytes of codes + 2·N·(K/g)·2 of bf16 scales and biases, x and out
 * through L2 (each block stages all of x: blocks·T·K·4 bytes, ~1/10 of the codes' bytes at q4,
 * K = 4096, T = 1).
 *
 * Experts: the (token, slot) pairs of a step are grouped by expert in every block (a warp scans
 * idx, as moe_group_of), tiles numbered expert-major over the distinct experts; gate and up tiles
 * of the same rows go together (h = silu(gate·x) ⊙ up·x in the epilogue), then down; the
 * weighted sum over slots is expert_combine_decode's (cuda_moe.cu), in slot order.
 */
#include <stdlib.h>
#include <string.h>

#include <type_traits>

#include "backend/cuda/cuda_quant_mmv.cuh"

bool mmv_xfrag_on(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("GLMOE_CUDA_MMV_XFRAG");
        v = e && !strcmp(e, "1");
    }
    return v != 0;
}

int mmv_async_steps(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("GLMOE_CUDA_MMV_ASYNC");
        v = e && !strcmp(e, "4") ? 4 : e && !strcmp(e, "8") ? 8 : 0;
    }
    return v;
}

bool mmv_on(void) {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("GLMOE_CUDA_AFF_MMV");
        v = !(e && !strcmp(e, "0"));
    }
    return v != 0;
}

/* The reduction buffer: two parities (a tile's sums are read while the next tile's are written)
 * x NT tiles x warps x 32 lanes x 4 floats. */
__host__ __device__ inline size_t mmv_red_bytes(int nt, int warps) { return (size_t)2 * nt * warps * 32 * 4 * sizeof(float); }

/* This block's tile range [*t0, *t1) of `tiles`: ranges of ceil(tiles / blocks) tiles (trailing
 * blocks may have none). */
__device__ __forceinline__ void mmv_block_tiles(int tiles, int *t0, int *t1) {
    const int per = (tiles + (int)gridDim.x - 1) / (int)gridDim.x;
    *t0 = blockIdx.x * per;
    *t1 = min(tiles, *t0 + per);
}

/* ---- dense: up to 3 weights of the same K, bits and input ------------------------------------- */

#define MMV_MAX_MATS 3

struct mmv_dense_args {
    cu_affine w[MMV_MAX_MATS];
    float *out[MMV_MAX_MATS];
    const float *bias[MMV_MAX_MATS];
    int rows[MMV_MAX_MATS];
    int first_tile[MMV_MAX_MATS + 1]; /* tiles of weight m: [first_tile[m], first_tile[m + 1]) */
    int nmat, T, K;
    int cpg_log2; /* log2 of the chunks per group, the same for every weight (MMV_MODE_ASYNC) */
    const float *x;
};

template <int B, int ST, int MODE>
__global__ void __launch_bounds__(MMV_WARPS_DENSE * CUDA_WARP) mmv_dense_kernel(mmv_dense_args a) {
    constexpr int W = MMV_WARPS_DENSE;
    extern __shared__ uint4 mmv_smem[];
    __shared__ const float *src[MMV_COLS];
    const int ldx = mmv_ldx(B, a.K);
    __half *xs = reinterpret_cast<__half *>(mmv_smem);
    float *red = reinterpret_cast<float *>(xs + (size_t)a.T * ldx);
    uint4 *ring = reinterpret_cast<uint4 *>(red + mmv_red_bytes(1, W) / sizeof(float));
    const int CPG = a.cpg_log2;
    const int tiles = a.first_tile[a.nmat];
    int t0, t1;
    mmv_block_tiles(tiles, &t0, &t1);
    if (t0 >= t1) return;
    const int g = (threadIdx.x & 31) >> 2;
    const int S = (a.K + mmv_codes_per_step(B) - 1) / mmv_codes_per_step(B);
    int parity = 0;
    auto mat_of = [&](int tile) {
        int m = 0;
        while (m + 1 < a.nmat && tile >= a.first_tile[m + 1]) m++;
        return m;
    };
    mmv_run<B, ST, 1, W, MODE>(
        t0, t1, S, CPG, ring,
        [&](int tile, mmv_tile (&tl)[1]) {
            const int m = mat_of(tile);
            tl[0] = mmv_tile_of<B, ST>(a.w[m], (int64_t)(tile - a.first_tile[m]) * 16, a.rows[m]);
        },
        [&]() {
            cu_pdl_wait(); /* x is the previous kernel's output; the weight loads above were not */
            cu_pdl_trigger();
            if (threadIdx.x < a.T) src[threadIdx.x] = a.x + (int64_t)threadIdx.x * a.K;
            __syncthreads();
            mmv_stage<B, MMV_STAGE_LOADS_DENSE>(xs, src, a.T, a.K);
            __syncthreads();
        },
        [&](int) -> const __half * { return g < a.T ? xs + (size_t)g * ldx : nullptr; },
        [&](int tile, const float (&d)[1][4]) {
            const int m = mat_of(tile), row0 = (tile - a.first_tile[m]) * 16;
            float *rp = red + (size_t)parity * W * 32 * 4;
            parity ^= 1;
            mmv_put<1, W>(rp, d);
            __syncthreads();
            for (int i = threadIdx.x; i < 16 * a.T; i += blockDim.x) {
                const int r = i & 15, c = i >> 4, n = row0 + r;
                if (n < a.rows[m])
                    a.out[m][(int64_t)c * a.rows[m] + n] = mmv_sum<W>(rp, 0, r, c) + (a.bias[m] ? a.bias[m][n] : 0.0f);
            }
        });
}

/* Resident blocks per SM of a kernel with `smem` dynamic bytes (at least 1). */
static int mmv_per_sm(const void *kernel, int threads, size_t smem) {
    int n = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kernel, threads, smem) != cudaSuccess || n < 1) {
        (void)cudaGetLastError();
        n = 1;
    }
    return n;
}

/* The grid for `tiles` tiles (at most): one block per tile, or the resident blocks. */
static unsigned mmv_grid(int64_t tiles, int sm_count, int per_sm) {
    const int64_t cap = (int64_t)sm_count * per_sm;
    return (unsigned)(tiles < cap ? (tiles > 0 ? tiles : 1) : cap);
}

/* Calls f(bits, scale type, mode) with each as a std::integral_constant: the kernels are
 * instantiated for 4 and 8 bits, bf16, f16 and f32 scales, and the three pipelines (mmv_run). */
template <class F>
static glmoe_status mmv_dispatch(int bits, int scale_type, int mode, F f) {
    auto by_st = [&](auto b, auto m) {
        if (scale_type == GM_W_BF16) return f(b, std::integral_constant<int, GM_W_BF16>{}, m);
        if (scale_type == GM_W_F16) return f(b, std::integral_constant<int, GM_W_F16>{}, m);
        return f(b, std::integral_constant<int, GM_W_F32>{}, m);
    };
    auto by_bits = [&](auto m) {
        return bits == 4 ? by_st(std::integral_constant<int, 4>{}, m) : by_st(std::integral_constant<int, 8>{}, m);
    };
    if (mode == MMV_MODE_ASYNC8) return by_bits(std::integral_constant<int, MMV_MODE_ASYNC8>{});
    if (mode == MMV_MODE_ASYNC) return by_bits(std::integral_constant<int, MMV_MODE_ASYNC>{});
    if (mode == MMV_MODE_XFRAG) return by_bits(std::integral_constant<int, MMV_MODE_XFRAG>{});
    return by_bits(std::integral_constant<int, MMV_MODE_SYNC>{});
}

/* The pipeline for weights the async ring takes (async_ok), with `smem` bytes of a block besides
 * the ring of a block of `warps` warps and nt tiles (the ring only where it fits). */
static int mmv_mode(bool async_ok, size_t smem, int nt, int warps) {
    const int mode = mmv_async_steps() == 8 ? MMV_MODE_ASYNC8 : MMV_MODE_ASYNC;
    if (mmv_async_steps() && async_ok && smem + mmv_ring_bytes(mode, nt, warps) + 4 * 1024 <= 227 * 1024) return mode;
    return mmv_xfrag_on() ? MMV_MODE_XFRAG : MMV_MODE_SYNC;
}

template <int B, int ST, int MODE>
static glmoe_status mmv_dense_launch(cuda_exec *cx, mmv_dense_args &a, gm_err *err) {
    static cu_smem_allowed allowed;
    constexpr int threads = MMV_WARPS_DENSE * CUDA_WARP;
    const size_t smem = mmv_stage_bytes(B, a.K, a.T) + mmv_red_bytes(1, MMV_WARPS_DENSE) +
                        mmv_ring_bytes(MODE, 1, MMV_WARPS_DENSE);
    glmoe_status s = cuda_allow_smem((const void *)mmv_dense_kernel<B, ST, MODE>, smem, &allowed, err);
    if (s) return s;
    const int tiles = a.first_tile[a.nmat];
    const unsigned blocks =
        mmv_grid(tiles, cx->cb->sm_count, mmv_per_sm((const void *)mmv_dense_kernel<B, ST, MODE>, threads, smem));
    CU_TRY(cu_launch_pdl(cx->cb, mmv_dense_kernel<B, ST, MODE>, blocks, threads, smem, cx->stream, a));
    return GLMOE_OK;
}

/* Whether cuda_affine_mmv takes these weights for T tokens of x (T <= aff_gemv_tokens()). */
bool cuda_affine_mmv_takes(const gm_weight *const *W, int n, const float *x, int32_t T) {
    if (!mmv_on() || T < 1 || T > MMV_COLS || T > aff_gemv_tokens() || n < 1 || n > MMV_MAX_MATS || !cu_aligned(x, 16))
        return false;
    for (int m = 0; m < n; m++) { /* cu_affine_of only of affine weights (it divides by the group) */
        if (W[m]->type != GM_W_AFFINE || W[m]->cols != W[0]->cols || W[m]->q.bits != W[0]->q.bits ||
            (W[m]->q.bits != 4 && W[m]->q.bits != 8) || W[m]->cols % 32 || W[m]->rows > INT32_MAX / MMV_COLS)
            return false;
        const cu_affine q = cu_affine_of(W[m]);
        if (!mmv_takes(q, W[m]->q.bits) || q.scale_type != cu_affine_of(W[0]).scale_type) return false;
    }
    return mmv_fits(W[0]->q.bits, (int)W[0]->cols, T);
}

glmoe_status cuda_affine_mmv(cuda_exec *cx, float *const *out, const float *x, const gm_weight *const *W,
                             const float *const *bias, int n, int32_t T, gm_err *err) {
    mmv_dense_args a;
    memset(&a, 0, sizeof a);
    a.nmat = n, a.T = T, a.K = (int)W[0]->cols, a.x = x;
    a.first_tile[0] = 0;
    for (int m = 0; m < n; m++) {
        a.w[m] = cu_affine_of(W[m]);
        a.out[m] = out[m];
        a.bias[m] = bias ? bias[m] : nullptr;
        a.rows[m] = (int)W[m]->rows;
        a.first_tile[m + 1] = a.first_tile[m] + (a.rows[m] + 15) / 16;
    }
    bool async_ok = true;
    for (int m = 0; m < n; m++) async_ok = async_ok && aff_scale_rows_word_aligned(a.w[m]) && a.w[m].group == a.w[0].group;
    a.cpg_log2 = mmv_cpg_log2(a.w[0].group, a.w[0].bits);
    const int B = a.w[0].bits;
    const int mode =
        mmv_mode(async_ok, mmv_stage_bytes(B, a.K, T) + mmv_red_bytes(1, MMV_WARPS_DENSE), 1, MMV_WARPS_DENSE);
    return mmv_dispatch(B, a.w[0].scale_type, mode, [&](auto b, auto st, auto m) {
        return mmv_dense_launch<decltype(b)::value, decltype(st)::value, decltype(m)::value>(cx, a, err);
    });
}

/* ---- experts ---------------------------------------------------------------------------------- */

#define MMV_MAX_SLOTS 256 /* T·K of one launch (as MOE_GROUP_MAX_SLOTS) */
#define MMV_MAX_GROUPS 128

/* The step's distinct experts in order of first appearance, each with its slots (increasing;
 * at most MMV_COLS: a token chooses an expert once, T <= MMV_COLS). */
struct mmv_groups {
    int32_t n;
    int32_t e[MMV_MAX_GROUPS];
    int8_t count[MMV_MAX_GROUPS];
    int16_t slot[MMV_MAX_GROUPS][MMV_COLS];
};

/* Every thread of the block calls it; one warp fills g (ids outside [0, E) are skipped, and
 * raised as a fault when `fault` is given). */
__device__ void mmv_group(const int32_t *idx, int n, int E, mmv_groups &g, int32_t *fault) {
    if (threadIdx.x < CUDA_WARP) {
        const int lane = threadIdx.x;
        const unsigned below = (1u << lane) - 1u;
        int ng = 0;
        for (int base = 0; base < n; base += CUDA_WARP) {
            const int r = base + lane;
            const int er = r < n ? idx[r] : -1;
            const bool valid = r < n && er >= 0 && er < E;
            if (r < n && !valid && fault) cu_raise_fault(fault, CUDA_FAULT_EXPERT, er, E);
            bool first = valid;
            for (int q = 0; q < r && first; q++) first = idx[q] != er;
            const unsigned m = __ballot_sync(0xffffffffu, first);
            const int u = ng + __popc(m & below);
            if (first && u < MMV_MAX_GROUPS) g.e[u] = er, g.count[u] = 0;
            ng += __popc(m);
        }
        __syncwarp();
        ng = min(ng, MMV_MAX_GROUPS);
        /* the slots of each group, in increasing order: lane u walks idx for groups u, u + 32, ... */
        for (int u = lane; u < ng; u += CUDA_WARP) {
            int c = 0;
            for (int r = 0; r < n && c < MMV_COLS; r++)
                if (idx[r] == g.e[u]) g.slot[u][c++] = (int16_t)r;
            g.count[u] = (int8_t)c;
        }
        if (lane == 0) g.n = ng;
    }
    __syncthreads();
}

struct mmv_expert_args {
    const cuda_expert *ex;
    const int32_t *idx;
    int n_slots, K, E, H, Im, T;
    const float *x;  /* gate/up: [T][H] */
    const float *h;  /* down: [slot][Im] */
    float *hout;     /* gate/up: h[slot][Im] */
    float *y;        /* down: y[slot][H] */
    int32_t *fault;
    int cpg_gateup, cpg_down; /* log2 of the chunks per group of each (MMV_MODE_ASYNC) */
};

/* Gate and up tiles of 16 rows, for every distinct expert: h[slot] = silu(gate·x_t) ⊙ up·x_t. */
/* XF: registers capped at 170 (3 blocks per SM, as the default's 165; uncapped it took 184). */
template <int B, int ST, int MODE>
__global__ void __launch_bounds__(MMV_WARPS_GATEUP * CUDA_WARP, MODE == MMV_MODE_XFRAG ? 3 : 0) mmv_gateup_kernel(mmv_expert_args a) {
    constexpr int W = MMV_WARPS_GATEUP;
    extern __shared__ uint4 mmv_smem[];
    __shared__ mmv_groups grp;
    __shared__ const float *src[MMV_COLS];
    const int ldx = mmv_ldx(B, a.H);
    __half *xs = reinterpret_cast<__half *>(mmv_smem);
    float *red = reinterpret_cast<float *>(xs + (size_t)a.T * ldx);
    uint4 *ring = reinterpret_cast<uint4 *>(red + mmv_red_bytes(2, W) / sizeof(float));
    const int CPG = a.cpg_gateup;
    cu_pdl_wait(); /* idx and x are earlier kernels' outputs */
    cu_pdl_trigger();
    mmv_group(a.idx, a.n_slots, a.E, grp, blockIdx.x == 0 ? a.fault : nullptr);
    const int tpe = (a.Im + 15) / 16, tiles = grp.n * tpe;
    int t0, t1;
    mmv_block_tiles(tiles, &t0, &t1);
    if (t0 >= t1) return;
    const int g = (threadIdx.x & 31) >> 2;
    const int S = (a.H + mmv_codes_per_step(B) - 1) / mmv_codes_per_step(B);
    int parity = 0;
    mmv_run<B, ST, 2, W, MODE>(
        t0, t1, S, CPG, ring,
        [&](int tile, mmv_tile (&tl)[2]) {
            const int u = tile / tpe, i0 = (tile - u * tpe) * 16;
            const cuda_expert &xe = a.ex[grp.e[u]];
            tl[0] = mmv_tile_of<B, ST>(xe.gate.q, i0, a.Im);
            tl[1] = mmv_tile_of<B, ST>(xe.up.q, i0, a.Im);
        },
        [&]() {
            if (threadIdx.x < a.T) src[threadIdx.x] = a.x + (int64_t)threadIdx.x * a.H;
            __syncthreads();
            mmv_stage<B, MMV_STAGE_LOADS_GATEUP>(xs, src, a.T, a.H);
            __syncthreads();
        },
        [&](int tile) -> const __half * {
            const int u = tile / tpe;
            return g < grp.count[u] ? xs + (size_t)(grp.slot[u][g] / a.K) * ldx : nullptr;
        },
        [&](int tile, const float (&d)[2][4]) {
            const int u = tile / tpe, i0 = (tile - u * tpe) * 16, cnt = grp.count[u];
            float *rp = red + (size_t)parity * 2 * W * 32 * 4;
            parity ^= 1;
            mmv_put<2, W>(rp, d);
            __syncthreads();
            for (int i = threadIdx.x; i < 16 * cnt; i += blockDim.x) {
                const int r = i & 15, c = i >> 4, n = i0 + r;
                if (n < a.Im)
                    a.hout[(int64_t)grp.slot[u][c] * a.Im + n] =
                        cu_silu_mul(mmv_sum<W>(rp, 0, r, c), mmv_sum<W>(rp, 1, r, c));
            }
        });
}

/* Down tiles of 16 rows, for every distinct expert: y[slot] = down · h[slot]. The h rows of the
 * tile's expert are staged when the expert changes (ranges are contiguous: once or twice per
 * block). */
template <int B, int ST, int MODE>
__global__ void __launch_bounds__(MMV_WARPS_DENSE * CUDA_WARP) mmv_down_kernel(mmv_expert_args a) {
    constexpr int W = MMV_WARPS_DENSE;
    extern __shared__ uint4 mmv_smem[];
    __shared__ mmv_groups grp;
    __shared__ const float *src[MMV_COLS];
    const int ldx = mmv_ldx(B, a.Im);
    __half *xs = reinterpret_cast<__half *>(mmv_smem);
    float *red = reinterpret_cast<float *>(xs + (size_t)MMV_COLS * ldx);
    uint4 *ring = reinterpret_cast<uint4 *>(red + mmv_red_bytes(1, W) / sizeof(float));
    const int CPG = a.cpg_down;
    cu_pdl_wait(); /* idx and h are earlier kernels' outputs */
    cu_pdl_trigger();
    mmv_group(a.idx, a.n_slots, a.E, grp, nullptr);
    const int tpe = (a.H + 15) / 16, tiles = grp.n * tpe;
    int t0, t1;
    mmv_block_tiles(tiles, &t0, &t1);
    if (t0 >= t1) return;
    const int g = (threadIdx.x & 31) >> 2;
    const int S = (a.Im + mmv_codes_per_step(B) - 1) / mmv_codes_per_step(B);
    int parity = 0, staged = -1;
    mmv_run<B, ST, 1, W, MODE>(
        t0, t1, S, CPG, ring,
        [&](int tile, mmv_tile (&tl)[1]) {
            const int u = tile / tpe;
            tl[0] = mmv_tile_of<B, ST>(a.ex[grp.e[u]].down.q, (int64_t)(tile - u * tpe) * 16, a.H);
        },
        [&]() {},
        [&](int tile) -> const __half * {
            const int u = tile / tpe, cnt = grp.count[u];
            if (u != staged) { /* block-uniform */
                __syncthreads(); /* the last expert's readers are done */
                if (threadIdx.x < cnt) src[threadIdx.x] = a.h + (int64_t)grp.slot[u][threadIdx.x] * a.Im;
                __syncthreads();
                mmv_stage<B, MMV_STAGE_LOADS_DOWN>(xs, src, cnt, a.Im);
                __syncthreads();
                staged = u;
            }
            return g < cnt ? xs + (size_t)g * ldx : nullptr;
        },
        [&](int tile, const float (&d)[1][4]) {
            const int u = tile / tpe, n0 = (tile - u * tpe) * 16, cnt = grp.count[u];
            float *rp = red + (size_t)parity * W * 32 * 4;
            parity ^= 1;
            mmv_put<1, W>(rp, d);
            __syncthreads();
            for (int i = threadIdx.x; i < 16 * cnt; i += blockDim.x) {
                const int r = i & 15, c = i >> 4, n = n0 + r;
                if (n < a.H) a.y[(int64_t)grp.slot[u][c] * a.H + n] = mmv_sum<W>(rp, 0, r, c);
            }
        });
}

template <int B, int ST, int MODE>
static glmoe_status mmv_gateup_launch(cuda_exec *cx, mmv_expert_args &a, int groups, gm_err *err) {
    static cu_smem_allowed allowed;
    constexpr int threads = MMV_WARPS_GATEUP * CUDA_WARP;
    const size_t smem = mmv_stage_bytes(B, a.H, a.T) + mmv_red_bytes(2, MMV_WARPS_GATEUP) +
                        mmv_ring_bytes(MODE, 2, MMV_WARPS_GATEUP);
    glmoe_status s = cuda_allow_smem((const void *)mmv_gateup_kernel<B, ST, MODE>, smem, &allowed, err);
    if (s) return s;
    const int64_t tiles = (int64_t)groups * ((a.Im + 15) / 16);
    const unsigned blocks = mmv_grid(tiles, cx->cb->sm_count, mmv_per_sm((const void *)mmv_gateup_kernel<B, ST, MODE>, threads, smem));
    CU_TRY(cu_launch_pdl(cx->cb, mmv_gateup_kernel<B, ST, MODE>, blocks, threads, smem, cx->stream, a));
    return GLMOE_OK;
}

template <int B, int ST, int MODE>
static glmoe_status mmv_down_launch(cuda_exec *cx, mmv_expert_args &a, int groups, gm_err *err) {
    static cu_smem_allowed allowed;
    constexpr int threads = MMV_WARPS_DENSE * CUDA_WARP;
    const size_t smem = mmv_stage_bytes(B, a.Im, MMV_COLS) + mmv_red_bytes(1, MMV_WARPS_DENSE) +
                        mmv_ring_bytes(MODE, 1, MMV_WARPS_DENSE);
    glmoe_status s = cuda_allow_smem((const void *)mmv_down_kernel<B, ST, MODE>, smem, &allowed, err);
    if (s) return s;
    const int64_t tiles = (int64_t)groups * ((a.H + 15) / 16);
    const unsigned blocks =
        mmv_grid(tiles, cx->cb->sm_count, mmv_per_sm((const void *)mmv_down_kernel<B, ST, MODE>, threads, smem));
    CU_TRY(cu_launch_pdl(cx->cb, mmv_down_kernel<B, ST, MODE>, blocks, threads, smem, cx->stream, a));
    return GLMOE_OK;
}

bool cuda_experts_mmv_takes(const cuda_expert_table *tb, const float *x, int T, int H, int Im) {
    return mmv_on() && !tb->some_general && T >= 1 && T <= MMV_COLS && T <= aff_gemv_tokens() && cu_aligned(x, 16) &&
           H % 32 == 0 && Im % 32 == 0 && mmv_fits(tb->gateup_bits, H, T) && mmv_fits(tb->down_bits, Im, MMV_COLS);
}

template <int BG, int BD, int ST, int MODE>
static glmoe_status mmv_experts_launch(cuda_exec *cx, mmv_expert_args &a, int groups, gm_err *err) {
    glmoe_status s = mmv_gateup_launch<BG, ST, MODE>(cx, a, groups, err);
    return s ? s : mmv_down_launch<BD, ST, MODE>(cx, a, groups, err);
}

glmoe_status cuda_experts_mmv(cuda_exec *cx, float *h, float *y, const float *x, const int32_t *idx, int K, int T,
                              const cuda_expert_table *tb, int E, int H, int Im, gm_err *err) {
    mmv_expert_args a;
    memset(&a, 0, sizeof a);
    a.ex = tb->dev, a.idx = idx, a.n_slots = T * K, a.K = K, a.E = E, a.H = H, a.Im = Im, a.T = T;
    a.x = x, a.h = h, a.hout = h, a.y = y, a.fault = cx->d_fault;
    /* the grid is sized for the most distinct experts the step can have; blocks past the real
     * number of tiles exit at once */
    const int groups = T * K < E ? T * K : E;
    a.cpg_gateup = mmv_cpg_log2(tb->gateup_group, tb->gateup_bits);
    a.cpg_down = mmv_cpg_log2(tb->down_group, tb->down_bits);
    const size_t gu = mmv_stage_bytes(tb->gateup_bits, H, T) + mmv_red_bytes(2, MMV_WARPS_GATEUP);
    const size_t dn = mmv_stage_bytes(tb->down_bits, Im, MMV_COLS) + mmv_red_bytes(1, MMV_WARPS_DENSE);
    const int mode = mmv_mode(tb->mmv_async, gu > dn ? gu : dn, 2, MMV_WARPS_GATEUP);
    if (tb->down_bits == tb->gateup_bits)
        return mmv_dispatch(tb->gateup_bits, tb->scale_type, mode, [&](auto b, auto st, auto m) {
            return mmv_experts_launch<decltype(b)::value, decltype(b)::value, decltype(st)::value, decltype(m)::value>(
                cx, a, groups, err);
        });
    return mmv_dispatch(tb->gateup_bits, tb->scale_type, mode, [&](auto b, auto st, auto m) { /* 4 and 8 mixed */
        return mmv_experts_launch<decltype(b)::value, 12 - decltype(b)::value, decltype(st)::value, decltype(m)::value>(
            cx, a, groups, err);
    });
}
