/*
 * cuda_internal.h — state and device helpers shared by the CUDA backend's files (CUDA C++ only).
 *
 *   cuda_backend.cu     vtable, device selection, memory, weight upload, scratch, KV cache, faults
 *   cuda_matmul.cu      out = x·W^T: GEMV kernel for few rows, cuBLAS (bf16) or a tiled kernel
 *   cuda_elementwise.cu embed, add_rmsnorm, add, swiglu, rope
 *   cuda_attention.cu   causal GQA attention over the KV cache (tiled online softmax, split-KV)
 *   cuda_attention_tc.cu the same on the tensor cores (bf16 cache, 128-dim heads), with the
 *                       decode step's RoPE, cache store and split merge in one launch
 *   cuda_moe.cu         router and routed experts (decode GEMV, grouped prefill)
 *   cuda_quant.cu       affine (MLX) weights: matmul dispatch, the float32 GEMV core, embedding
 *   cuda_quant_mmv.cu   affine GEMVs of 1..8 tokens on the tensor cores (dense, several weights
 *                       sharing x, and the selected experts)
 *   cuda_quant_mma.cu   affine prefill GEMMs on the tensor cores (dense and grouped experts)
 *   cuda_quantize.cu    MLX's affine quantizer on the device (synthetic quantized weights)
 *
 * Conventions: every host function returns a glmoe_status and fills gm_err; CU_TRY wraps each
 * CUDA runtime call and CU_LAUNCHED() follows each kernel launch (a launch can fail late, e.g.
 * with lazy module loading). Kernels never trap on bad data: they raise a fault word that the
 * next sync point (copy_out, sync) turns into an error.
 */
#ifndef GLMOE_CUDA_INTERNAL_H
#define GLMOE_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "backend/cuda/cuda_backend.h"

extern "C" {
#include "util/log.h"
}

/* ---- errors ------------------------------------------------------------------------------- */

glmoe_status cuda_fail(gm_err *err, cudaError_t e, const char *stmt, const char *func, const char *file, int line);
glmoe_status cublas_fail(gm_err *err, cublasStatus_t s, const char *stmt, const char *func, const char *file,
                         int line);

#define CU_TRY(stmt)                                                                                 \
    do {                                                                                             \
        cudaError_t cu_e_ = (stmt);                                                                  \
        if (cu_e_ != cudaSuccess) return cuda_fail(err, cu_e_, #stmt, __func__, __FILE__, __LINE__); \
    } while (0)
#define CU_LAUNCHED() CU_TRY(cudaGetLastError())
#define CUBLAS_TRY(stmt)                                                                                   \
    do {                                                                                                   \
        cublasStatus_t cb_s_ = (stmt);                                                                     \
        if (cb_s_ != CUBLAS_STATUS_SUCCESS) return cublas_fail(err, cb_s_, #stmt, __func__, __FILE__, __LINE__); \
    } while (0)

/* Fault codes a kernel may raise: the device words are {code, value, limit, 0}; the first fault
 * wins, value is the offending input and limit its bound (when the message needs one). */
enum { CUDA_FAULT_NONE = 0, CUDA_FAULT_TOKEN = 1, CUDA_FAULT_EXPERT = 2, CUDA_FAULT_POSITION = 3 };
#define CUDA_FAULT_WORDS 4

__device__ __forceinline__ void cu_raise_fault(int32_t *fault, int32_t code, int32_t value, int32_t limit) {
    if (atomicCAS(fault, 0, code) == 0) {
        fault[1] = value;
        fault[2] = limit;
    }
}

/* ---- state -------------------------------------------------------------------------------- */

/* Prefills of at least this many tokens run bf16 experts through cuBLAS (cuda_moe.cu). */
#define MOE_CUBLAS_MIN_TOKENS 2048

#define CUDA_INPUT_SLOTS 8
#define CUDA_INPUT_SLOT_BYTES ((size_t)16 << 10)

/* An affine-quantized weight as kernels read it (cuda_quant.cu): packed codes, per-group scales
 * and biases of scale_type (a gm_wtype), row r's codes at codes + r * row_words. */
typedef struct cu_affine {
    const uint32_t *codes;
    const void *scales, *biases;
    int32_t bits, group, scale_type, pad;
    int64_t row_words, groups;   /* per row */
} cu_affine;

/* One projection of an expert in the device table: a dense weight (data, type) or an affine one
 * (type GM_W_AFFINE, q). */
typedef struct cuda_proj {
    const void *data;
    int32_t type, pad;
    cu_affine q;
} cuda_proj;

/* The device table of one layer's routed experts. */
typedef struct cuda_expert {
    cuda_proj gate, up, down;
} cuda_expert;

/* gm_experts.table on this backend, made at bind time (prepare_experts). */
typedef struct cuda_expert_table {
    cuda_expert *dev;            /* [n] on the device */
    bool all_bf16;               /* every projection bf16: the tensor-core and cuBLAS paths */
    bool any_affine;             /* some projection quantized: the GEMV path for every T */
    /* The bits the decode GEMVs of affine experts are instantiated for (4 or 8: those of the
     * first affine gate/up and down projection; experts of other formats take the general
     * decoder inside the same kernels). */
    int32_t gateup_bits, down_bits;
    int32_t scale_type;          /* of those projections' scales and biases (a gm_wtype) */
    int32_t gateup_group, down_group; /* their group sizes */
    bool mmv_async;              /* every expert in that format with those groups, scale rows 4-byte
                                  * aligned: the decode GEMVs' asynchronous ring may run */
    bool some_general;           /* some expert not in that format: the general decoder for it */
    /* Every projection quantized: prefill takes the tensor-core tiles of cuda_quant_mma.cu, with
     * gate/up and down decoded by the 4- or 8-bit decoder when every expert allows it, else 0. */
    bool affine_tiles;
    int8_t affine_gu_bits, affine_down_bits;
} cuda_expert_table;

/* A KV cache: [layer][pos][kv_head][head_dim] for keys and for values, bf16 or float32. */
typedef struct cuda_kv {
    int32_t n_layers, n_ctx, n_kv_heads, head_dim;
    bool bf16;
    void *k, *v;
} cuda_kv;

/* What the model shares: the device, its options, and the weight uploads. Written while weights
 * are bound (one thread), read-only while contexts run. */
typedef struct cuda_backend {
    gm_backend base;
    int device;
    char device_name[256];
    int sm_count, cc_major, cc_minor;
    bool kv_bf16;
    bool graphs_off;             /* GLMOE_CUDA_GRAPHS=0 */
    bool pdl;                    /* GLMOE_CUDA_PDL=1 on sm_90+: cu_launch_pdl */
    int moe_cublas_min_tokens;   /* T at or above which bf16 experts go through cuBLAS */
    bool affine;                 /* affine weights taken (cuda_backend_options.affine) */

    /* Weight uploads and synthetic weights run on this stream. Each one is followed by a
     * record of weights_ready and weights_gen++; an exec waits for that event (once per
     * generation) before its next ops, so that every weight is there before it is read. */
    cudaStream_t load_stream;
    cudaEvent_t weights_ready;
    uint64_t weights_gen;

    /* Weight memory: slabs that weights are carved from (cuda_backend.cu, "weight memory"). */
    struct cuda_slab *slabs;
    size_t slab_next_bytes;      /* the size of the next slab made (doubles up to a limit) */

    /* Weight upload: two pinned slots, each reusable once its event has completed. */
    void *staging[2];
    cudaEvent_t staged[2];
    size_t staging_bytes;
    int staging_next;
    uint64_t uploaded, next_report;
    double upload_t0;
} cuda_backend;

/* One sequence's execution state (backend.h: everything an evaluation writes lives here, so that
 * two threads may evaluate two contexts of one model at once): its stream and cuBLAS handle, its
 * fault words, its input and output slots, the recording state, and scratch sized once by
 * exec_create. */
typedef struct cuda_exec {
    gm_exec base;
    cuda_backend *cb;
    cudaStream_t stream;
    cublasHandle_t cublas;
    uint64_t weights_gen_seen;   /* the backend's weights_gen this stream has waited for */

    /* Kernel faults: CUDA_FAULT_WORDS on the device, read back into pinned host memory. */
    int32_t *d_fault, *h_fault;

    /* copy_in of small inputs (a step's ids and positions): pinned slots used in turn, each
     * reusable once the event recorded after its copy has completed; larger copies go through
     * io_slot. copy_out goes through io_slot (the logits of a decode step cross every step). */
    void *input_slot[CUDA_INPUT_SLOTS];
    cudaEvent_t input_done[CUDA_INPUT_SLOTS];
    int input_next;
    void *io_slot;
    size_t io_slot_bytes;

    /* Step recording (graph_capture_*): while capturing, nothing may be copied or waited for. */
    bool capturing;
    bool capture_broken;         /* something was refused while capturing: no graph */

    /* A rank of a split model: the group its all_reduce ops use (NULL: not split). Its waits
     * for the stream then poll, so that a failed or hung peer ends them (cuda_backend.cu). */
    gm_comm *comm;

    /* Scratch, allocated by exec_create. */
    __nv_bfloat16 *split;        /* x as bf16 hi + lo halves for the cuBLAS path      */
    size_t split_elems;
    float *attn_part;            /* split-KV partial results [split][row][D + 2]       */
    size_t attn_part_floats;
    int32_t *attn_count;         /* split-KV: splits finished per (row block, KV head); */
    size_t attn_count_cap;       /* zero between launches (the last split resets it)  */
    float *rope_freq;            /* inv_freq of the last (theta, rotary_dim)           */
    int32_t rope_half;
    float rope_theta;
    int32_t rope_dim;
    float *route_logits;         /* router logits [n_batch][E]                          */
    size_t route_logits_cap;
    unsigned *route_done;        /* the fused router's block counter, 0 between launches */
    /* MoE grouping */
    int32_t *moe_counts, *moe_fill, *moe_offsets, *moe_ntiles;
    int4 *moe_tiles;             /* {expert, first slot, rows, 0} per 64-row tile       */
    int32_t *moe_rows, *moe_slot_of;
    float *moe_h, *moe_y;
    size_t moe_rows_cap, moe_h_cap, moe_y_cap, moe_experts_cap, moe_tiles_cap;
    /* the cuBLAS expert path (cuda_moe.cu): gathered x and h as bf16 hi/lo halves, up outputs,
     * and the per-expert offsets read back to the host */
    __nv_bfloat16 *moe_xs, *moe_hs;
    float *moe_u;
    size_t moe_xs_cap, moe_hs_cap, moe_u_cap;
    int32_t *moe_host_offsets;   /* pinned, E + 1 */
} cuda_exec;

static inline cuda_backend *cuda_of(gm_backend *be) { return (cuda_backend *)be; }
static inline cuda_exec *cuda_exec_of(gm_exec *ex) { return (cuda_exec *)ex; }

/* ---- ops (one per vtable entry) ------------------------------------------------------------ */

glmoe_status cuda_embed(gm_exec *ex, float *out, const gm_weight *table, const int32_t *ids, int32_t T,
                        gm_err *err);
glmoe_status cuda_add_rmsnorm(gm_exec *ex, float *out, float *resid, const float *delta, const gm_weight *w,
                              int64_t rows, int64_t cols, float eps, gm_err *err);
glmoe_status cuda_add(gm_exec *ex, float *resid, const float *delta, int64_t n, gm_err *err);
glmoe_status cuda_copy_2d(gm_exec *ex, float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                          int64_t rows, int64_t width, gm_err *err);
glmoe_status cuda_swiglu(gm_exec *ex, float *out, const float *gate, const float *up, int64_t n, gm_err *err);
glmoe_status cuda_rope(gm_exec *ex, float *x, const int32_t *pos, int32_t T, int32_t n_heads, int32_t head_dim,
                       int32_t rotary_dim, float theta, gm_err *err);
/* The device table inv_freq[i] = theta^(-2i/rotary_dim), i < rotary_dim / 2, into *table: the
 * exec's, remade when (theta, rotary_dim) changed (refused while recording a step). */
glmoe_status cuda_rope_table(cuda_exec *cx, int32_t rotary_dim, float theta, const float **table, gm_err *err);
glmoe_status cuda_matmul(gm_exec *ex, float *out, const float *x, const gm_weight *W, const gm_weight *bias,
                         int32_t T, gm_err *err);
glmoe_status cuda_matmul_n(gm_exec *ex, float *const *out, const float *x, const gm_weight *const *W,
                           const gm_weight *const *bias, int n, int32_t T, gm_err *err);
/* Attention on the tensor cores (cuda_attention_tc.cu): a bf16 cache and 128-dim heads, prefill
 * and decode; a launch over grid.z splits of the keys writes partials for attn_combine. */
#define CUDA_ATTN_TC_ROWS 64   /* query rows per block */
#define CUDA_ATTN_TC_KEYS 64   /* keys per tile */
/* RoPE folded into a kernel that reads q or k (cu_rope_elem, below). pos NULL: no rotation. */
struct cu_rope_args {
    const int32_t *pos;      /* [T] positions, or NULL */
    const float *inv_freq;   /* [half], cuda_rope_table */
    int half;                /* rotary_dim / 2 */
};
struct cuda_attn_tc_args {
    float *out;
    const float *q;               /* [T][nh][128], rotated as read when rope.pos is set */
    __nv_bfloat16 *kc, *vc;       /* this layer's cache (prefill: the new keys already stored) */
    const float *k_new, *v_new;   /* decode: this call's keys and values [T][nkv][128] (float32) */
    const float *mask;
    float *part;                  /* decode splits: partials [split][T * nh][D + 2] (unnormalised o, m, l) */
    int32_t *count;               /* decode splits: [gridDim.x * nkv] zeros, left zero */
    const int32_t *past;          /* n_past in device memory (it must equal n_past), or NULL */
    int32_t *fault;
    cu_rope_args rope;
    int T, n_past, nh, nkv, ratio, n_ctx;
    float scale;
    int split_min_keys;           /* decode: no split shorter (cuda_attn_split_min_keys) */
};
/* CUDA_ATTN_TC_SPLIT_MIN_KEYS, or GLMOE_CUDA_ATTN_SPLIT_KEYS (a multiple of 64, for comparisons). */
int cuda_attn_split_min_keys(void);
bool cuda_attention_tc_fits(int D, bool bf16_cache);
/* Prefill: the keys and values already stored, one block per 64 rows and KV head. */
glmoe_status cuda_attention_tc(cuda_exec *cx, const cuda_attn_tc_args &a, gm_err *err);
/* Decode (T <= CUDA_ATTN_DECODE_TOKENS): stores k_new, v_new (rotated) in the cache and attends
 * in one launch, over up to max_splits splits of the keys, merged by the last split to finish. */
#define CUDA_ATTN_DECODE_TOKENS 16
/* No decode split is shorter than this: a split costs a round trip through its partials and the
 * merge, about what reading two more tiles costs in one block, so short contexts run unsplit. */
#define CUDA_ATTN_TC_SPLIT_MIN_KEYS (2 * CUDA_ATTN_TC_KEYS)
glmoe_status cuda_attention_tc_decode(cuda_exec *cx, const cuda_attn_tc_args &a, int max_splits, gm_err *err);
/* The warp-split decode variant (cuda_attention_wsplit.cu), for calls whose query rows per KV head
 * (T x ratio) fit one MMA tile of CUDA_ATTN_WSPLIT_ROWS: the 4 warps of a block share each key
 * tile instead of 3 of them computing padding rows. Opt-in: cuda_attention_tc_decode takes it
 * when cuda_attn_wsplit(), GLMOE_CUDA_ATTN_WSPLIT=1 (read once). Same arguments and results. */
#define CUDA_ATTN_WSPLIT_ROWS 16
bool cuda_attn_wsplit(void);
glmoe_status cuda_attention_tc_wsplit(cuda_exec *cx, const cuda_attn_tc_args &a, int max_splits, gm_err *err);

/* out^T [N, T] = W [K, N]^T · (hi + lo)^T [K, T] in cuBLAS's column-major view (out[T, N] row-major,
 * W[N, K] bf16 row-major): two bf16 GEMMs, the second with beta = 1 (cuda_matmul.cu). */
glmoe_status cuda_gemm_split_bf16(cuda_exec *cx, float *out, const void *W, const __nv_bfloat16 *hi,
                                  const __nv_bfloat16 *lo, int N, int T, int K, gm_err *err);

glmoe_status cuda_attention(gm_exec *ex, float *out, const float *q, const float *k, const float *v, gm_kv *kv,
                            int32_t layer, const gm_attn_params *p, gm_err *err);
glmoe_status cuda_moe_route(gm_exec *ex, int32_t *idx, float *weights, const float *x, const gm_weight *router,
                            const gm_weight *bias, const gm_route_params *p, int32_t T, gm_err *err);
glmoe_status cuda_moe_experts(gm_exec *ex, float *out, bool accumulate, const float *x, const int32_t *idx,
                              const float *weights, int32_t top_k, const gm_experts *bank, int32_t T, gm_err *err);

/* Affine weights (cuda_quant.cu): the matmul and the embedding of a GM_W_AFFINE weight, and its
 * description for kernels. */
cu_affine cu_affine_of(const gm_weight *w);
glmoe_status cuda_affine_matmul(cuda_exec *cx, float *out, const float *x, const gm_weight *W, const float *bias,
                                int32_t T, gm_err *err);
glmoe_status cuda_affine_embed(cuda_exec *cx, float *out, const gm_weight *table, const int32_t *ids, int32_t T,
                               gm_err *err);

/* The affine GEMVs of 1..8 tokens on the tensor cores (cuda_quant_mmv.cu): n <= 3 weights of the
 * same K and bits (4 or 8) applied to the same x, out[m] = x·W[m]^T (+ bias[m]); and the decode of
 * the selected experts (h[slot] = silu(gate·x) ⊙ up·x, then y[slot] = down·h[slot]) for
 * T <= 8 tokens of top-K slots, when every expert's projections are in the table's format. */
bool cuda_affine_mmv_takes(const gm_weight *const *W, int n, const float *x, int32_t T);
glmoe_status cuda_affine_mmv(cuda_exec *cx, float *const *out, const float *x, const gm_weight *const *W,
                             const float *const *bias, int n, int32_t T, gm_err *err);
bool cuda_experts_mmv_takes(const cuda_expert_table *tb, const float *x, int T, int H, int Im);
glmoe_status cuda_experts_mmv(cuda_exec *cx, float *h, float *y, const float *x, const int32_t *idx, int K, int T,
                              const cuda_expert_table *tb, int E, int H, int Im, gm_err *err);
bool mmv_on(void);

/* Prefill with affine weights on the tensor cores (cuda_quant_mma.cu): the matmul for T > 8, and
 * the experts' grouped gate/up and down GEMMs over the tile list (after count/plan/scatter; h as
 * bf16 in moe_h, y in moe_y for moe_combine_kernel). experts_plan fills tb's affine_* fields at
 * prepare time. */
glmoe_status cuda_affine_matmul_mma(cuda_exec *cx, float *out, const float *x, const gm_weight *W, const float *bias,
                                    int32_t T, gm_err *err);
void cuda_affine_experts_plan(cuda_expert_table *tb, const gm_experts *bank);
glmoe_status cuda_affine_expert_tiles(cuda_exec *cx, const float *x, const cuda_expert_table *tb, int32_t T, int H,
                                      int Im, unsigned max_tiles, gm_err *err);
/* Quantizes the bf16 [rows, cols] tensor src (device memory, 16-byte aligned) to format q, as the
 * CPU's gm_affine_quantize_row does after rounding each value to q->scale_type, bit for bit, into
 * codes [rows, cols * bits / 32] words and scales, biases [rows, cols / group] of q->scale_type;
 * queued on `stream` (cuda_quantize.cu). */
glmoe_status cuda_affine_quantize_bf16(cudaStream_t stream, const __nv_bfloat16 *src, int64_t rows, int64_t cols,
                                       const gm_affine *q, uint32_t *codes, void *scales, void *biases, gm_err *err);

/* gm_backend_ops.prepare_experts / release_experts (cuda_moe.cu). */
extern "C" glmoe_status cuda_prepare_experts(gm_backend *be, gm_experts *bank, gm_err *err);
extern "C" void cuda_release_experts(gm_backend *be, gm_experts *bank);

/* Copies a small table from host memory to new device memory on the load stream and waits for
 * it (bind time only); *dev is freed with cudaFree (cuda_backend.cu). */
glmoe_status cuda_upload_table(cuda_backend *cb, void **dev, const void *host, size_t bytes, gm_err *err);

/* While a step is being recorded: refuses `what` (something that cannot be recorded: a copy, a
 * wait, a table made lazily), marks the recording unusable and returns GLMOE_E_BACKEND.
 * Otherwise GLMOE_OK. */
glmoe_status cuda_refuse_if_capturing(cuda_exec *cx, const char *what, gm_err *err);

/* What cuda_allow_smem raised one kernel's limit to, per device: a function's attributes belong to
 * each device's context, so with a model split over GPUs (a rank per device, one thread each) a
 * limit raised on GPU 0 does not hold on GPU 1. Zero-initialised (a static): nothing raised yet.
 * Devices from CU_SMEM_DEVICES on are raised at every launch. */
#define CU_SMEM_DEVICES 64
struct cu_smem_allowed {
    size_t bytes[CU_SMEM_DEVICES];
};
/* Raises the dynamic shared memory limit of a kernel to `bytes` on the current device (above 48 KB
 * needs an opt-in), once per kernel, device and size class: `allowed` is the caller's record of
 * what was raised already, shared by every thread (an atomic maximum, so racing threads at worst
 * raise it twice). */
glmoe_status cuda_allow_smem(const void *kernel, size_t bytes, cu_smem_allowed *allowed, gm_err *err);

/* The elementwise/tile building blocks the MoE reuses. */
glmoe_status cuda_swiglu_launch(cuda_exec *cx, float *out, const float *gate, const float *up, int64_t n,
                                gm_err *err);

/* ---- device helpers ------------------------------------------------------------------------- */

#define CUDA_WARP 32

__device__ __forceinline__ float cu_to_f(float v) { return v; }
__device__ __forceinline__ float cu_to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float cu_to_f(__half v) { return __half2float(v); }

/* v as two bf16 halves, v ≈ hi + lo with 16 significant bits: a bf16 weight times each half is
 * exact in a float32 accumulator, so two tensor-core products give a float32-quality result. */
__device__ __forceinline__ void cu_split_bf16(float v, __nv_bfloat16 &hi, __nv_bfloat16 &lo) {
    hi = __float2bfloat16_rn(v);
    lo = __float2bfloat16_rn(v - __bfloat162float(hi));
}

/* Eight consecutive weights from a 16-byte (bf16/f16) or 32-byte (f32) aligned address. */
__device__ __forceinline__ void cu_load8(const __nv_bfloat16 *p, float w[8]) {
    uint4 u = __ldg(reinterpret_cast<const uint4 *>(p));
    const uint32_t parts[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        w[2 * i] = __uint_as_float(parts[i] << 16);
        w[2 * i + 1] = __uint_as_float(parts[i] & 0xffff0000u);
    }
}
__device__ __forceinline__ void cu_load8(const __half *p, float w[8]) {
    uint4 u = __ldg(reinterpret_cast<const uint4 *>(p));
    const __half2 *h = reinterpret_cast<const __half2 *>(&u);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        float2 f = __half22float2(h[i]);
        w[2 * i] = f.x;
        w[2 * i + 1] = f.y;
    }
}
__device__ __forceinline__ void cu_load8(const float *p, float w[8]) {
    float4 a = __ldg(reinterpret_cast<const float4 *>(p)), b = __ldg(reinterpret_cast<const float4 *>(p) + 1);
    w[0] = a.x, w[1] = a.y, w[2] = a.z, w[3] = a.w, w[4] = b.x, w[5] = b.y, w[6] = b.z, w[7] = b.w;
}

/* Σ w[i] · x[i] for 8 floats of x at a 16-byte aligned address (read-only cache). */
__device__ __forceinline__ float cu_dot8(const float w[8], const float *x) {
    const float4 a = __ldg(reinterpret_cast<const float4 *>(x)), b = __ldg(reinterpret_cast<const float4 *>(x) + 1);
    return w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y + w[6] * b.z + w[7] * b.w;
}

/* Half-split RoPE (spec §2.4.3) as the kernels apply it: the pair (x0, x1) = (v[i], v[i + half])
 * at angle pos · inv_freq[i] becomes (x0 c - x1 s, x1 c + x0 s). Written with explicit roundings
 * (no contraction into FMAs), so that rope_kernel and the attention kernels that rotate q and k
 * as they read them give the same bits (cu_rope_args, above: the rotation a kernel applies). */
__device__ __forceinline__ float cu_rope_rotate(float x, float partner, bool first, float c, float s) {
    return first ? __fsub_rn(__fmul_rn(x, c), __fmul_rn(partner, s)) : __fadd_rn(__fmul_rn(x, c), __fmul_rn(partner, s));
}
/* Element d of one head's row after RoPE at position p (d at or past 2·half: unrotated). */
__device__ __forceinline__ float cu_rope_elem(const float *row, int d, int32_t p, const float *inv_freq, int half) {
    if (d >= 2 * half) return row[d];
    const bool first = d < half;
    const int i = first ? d : d - half;
    float s, c;
    sincosf((float)p * inv_freq[i], &s, &c);
    return cu_rope_rotate(row[d], row[first ? d + half : i], first, c, s);
}

__device__ __forceinline__ float cu_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
/* silu(g)·u: SwiGLU's product in the experts' decode epilogues (cuda_moe.cu's float32 core and
 * the tensor-core GEMVs of cuda_quant_mmv.cu, one expression for both). */
__device__ __forceinline__ float cu_silu_mul(float g, float u) { return g / (1.0f + expf(-g)) * u; }
__device__ __forceinline__ float cu_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Lane-partial dot products of one weight row w[0..K) with TMAX rows of x (row stride ldx; only
 * the first T are used). VEC: 8 weights per lane per step, which needs K % 8 == 0 and 16-byte
 * aligned rows of w and x; otherwise one weight per lane per step. Each lane issues four 16-byte
 * weight loads before using them: decode is bound by (loads in flight / latency) before it is
 * bound by bandwidth. Callers reduce acc over the warp with cu_warp_sum. */
template <typename WT, bool VEC, int TMAX>
__device__ __forceinline__ void cu_warp_dot(const WT *w, const float *x, int64_t ldx, int T, int K, float acc[TMAX]) {
    const int lane = threadIdx.x & 31;
    if (VEC) {
        int k = lane * 8;
        /* Four weight loads issued before any is used, then the same one step at a time. */
        for (; k + 3 * 256 < K; k += 4 * 256) {
            float wv[4][8];
#pragma unroll
            for (int u = 0; u < 4; u++) cu_load8(w + k + u * 256, wv[u]);
#pragma unroll
            for (int u = 0; u < 4; u++)
#pragma unroll
                for (int t = 0; t < TMAX; t++)
                    if (t < T) acc[t] += cu_dot8(wv[u], x + t * ldx + k + u * 256);
        }
        for (; k < K; k += 256) {
            float wv[8];
            cu_load8(w + k, wv);
#pragma unroll
            for (int t = 0; t < TMAX; t++)
                if (t < T) acc[t] += cu_dot8(wv, x + t * ldx + k);
        }
    } else {
        for (int k = lane; k < K; k += 32) {
            float wv = cu_to_f(w[k]);
#pragma unroll
            for (int t = 0; t < TMAX; t++)
                if (t < T) acc[t] += wv * x[t * ldx + k];
        }
    }
}

/* Element (row, k) of an affine weight, decoded exactly as the CPU does (formats.c): the float32
 * product scale * q rounded, then the bias added, rounded (no fused multiply-add). */
__device__ __forceinline__ float cu_scale_value(const void *p, int type, int64_t i) {
    if (type == GM_W_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    if (type == GM_W_F16) return __half2float(((const __half *)p)[i]);
    return ((const float *)p)[i];
}
__device__ __forceinline__ float cu_affine_elem(const cu_affine &a, int64_t row, int64_t k) {
    const uint32_t *w = a.codes + row * a.row_words;
    const int64_t p = k * a.bits;
    const int off = (int)(p & 31);
    uint64_t v = __ldg(w + (p >> 5)) >> off;
    if (off + a.bits > 32) v |= (uint64_t)__ldg(w + (p >> 5) + 1) << (32 - off);
    const float q = (float)((uint32_t)v & ((1u << a.bits) - 1u));
    const int64_t g = row * a.groups + k / a.group;
    return __fadd_rn(__fmul_rn(cu_scale_value(a.scales, a.scale_type, g), q), cu_scale_value(a.biases, a.scale_type, g));
}

/* True the first time it is called with this flag in the process, from any thread: for things
 * said once in the log. */
static inline bool cu_first_time(int *flag) { return __atomic_exchange_n(flag, 1, __ATOMIC_RELAXED) == 0; }

/* Programmatic dependent launch (Hopper and later): a kernel launched with cu_launch_pdl may start
 * while the kernel before it in the stream is still running, do what does not read that kernel's
 * output (issue its first weight loads), then wait in cu_pdl_wait until it has finished and its
 * writes are visible. A kernel lets the next one start early by calling cu_pdl_trigger (else it
 * starts when this one ends, as without PDL). Both are no-ops before sm_90 and when the kernel
 * was launched without the attribute. Opt-in (GLMOE_CUDA_PDL=1): on an H100 (2026-12-07 21:55Z)
 * the 4-layer q4 decode took 1.151 ms with it and 1.148 without, the GEMVs' fixed costs being
 * elsewhere (cuda_quant_mmv.cuh); it stays for when the kernels around it are shorter. */
__device__ __forceinline__ void cu_pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void cu_pdl_trigger(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
/* kernel<<<grid, block, smem, stream>>>(args...), with programmatic stream serialisation allowed
 * when cb->pdl: the kernel must call cu_pdl_wait before it reads anything an earlier kernel of
 * the stream writes, or writes anything one reads. */
template <typename... P, typename... A>
static inline cudaError_t cu_launch_pdl(const cuda_backend *cb, void (*kernel)(P...), dim3 grid, dim3 block,
                                        size_t smem, cudaStream_t stream, A &&...args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = stream;
    cfg.attrs = attr, cfg.numAttrs = cb->pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, kernel, static_cast<P>(args)...);
}

/* True if p is aligned to `a` bytes. */
static inline bool cu_aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* Blocks of `threads` covering n items (at least 1, at most 2^31 - 1). */
static inline unsigned cu_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > 0x7fffffff ? 0x7fffffff : b);
}

/* ---- the tiled float32 GEMM core (cuda_matmul.cu; also the grouped MoE GEMMs) -------------- */

/* out tile = A[rows, K] · W[n0.., K]^T with 64x64 tiles, 256 threads, 4x4 outputs per thread,
 * float32 arithmetic whatever W's dtype (converted in shared memory). */
#define CU_TILE_M 64
#define CU_TILE_N 64
#define CU_TILE_K 16

struct cu_tile_smem {
    float a[CU_TILE_K][CU_TILE_M + 4];
    float b[CU_TILE_K][CU_TILE_N + 4];
};

/* acc[i][j] += Σ_k A[row(ty*4+i)][k] · W[n0 + tx*4 + j][k] where row(r) = a_rows ? a_rows[r] :
 * r (rows >= m_valid read as zeros) and A rows have stride lda. */
template <typename WT>
__device__ __forceinline__ void cu_tile_mma(float acc[4][4], cu_tile_smem &sm, const float *A, const int32_t *a_rows,
                                            int m_valid, int64_t lda, const WT *W, int n0, int N, int K) {
    const int tid = threadIdx.x;
    const int lr = tid >> 2, lk = (tid & 3) * 4; /* loader: row lr, k offset lk..lk+3 */
    const int ty = tid >> 4, tx = tid & 15;      /* compute: rows ty*4.., cols tx*4.. */
    const float *arow = nullptr;
    if (lr < m_valid) arow = A + (int64_t)(a_rows ? a_rows[lr] : lr) * lda;
    const WT *wrow = n0 + lr < N ? W + (int64_t)(n0 + lr) * K : nullptr;
    for (int k0 = 0; k0 < K; k0 += CU_TILE_K) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            int k = k0 + lk + q;
            sm.a[lk + q][lr] = arow && k < K ? arow[k] : 0.0f;
            sm.b[lk + q][lr] = wrow && k < K ? cu_to_f(wrow[k]) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < CU_TILE_K; kk++) {
            float4 a = *reinterpret_cast<const float4 *>(&sm.a[kk][ty * 4]);
            float4 b = *reinterpret_cast<const float4 *>(&sm.b[kk][tx * 4]);
            const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j];
        }
        __syncthreads();
    }
}

/* Runs the statements with WT the C++ type of a dense gm_wtype. Only dense weights reach the ops
 * (cuda_supports refuses the others before anything is bound), so nothing else is dispatched. */
#define CU_DISPATCH_WTYPE(type, WT, ...)                                                             \
    do {                                                                                             \
        switch (type) {                                                                              \
        case GM_W_BF16: { typedef __nv_bfloat16 WT; __VA_ARGS__; } break;                            \
        case GM_W_F16: { typedef __half WT; __VA_ARGS__; } break;                                    \
        case GM_W_F32: { typedef float WT; __VA_ARGS__; } break;                                     \
        default: break;                                                                              \
        }                                                                                            \
    } while (0)

#endif
