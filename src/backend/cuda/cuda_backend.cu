/*
 * cuda_backend.cu — the CUDA backend's vtable, device selection, memory, weight upload, scratch,
 * KV cache and fault reporting. The ops live in cuda_matmul.cu, cuda_elementwise.cu,
 * cuda_attention.cu and cuda_moe.cu.
 *
 * Weights are uploaded once, in their stored dtype, from the file mapping through two pinned
 * staging slots (the copy of one slot overlaps the memcpy into the other); the mapping may be
 * unaligned (MLX files), which the memcpy absorbs. Progress goes to the log every 2 GB. Small
 * vectors bound as GM_BIND_VECTOR_F32 are converted to float32 on the host first.
 *
 * Inputs: copy_in goes through pinned slots (small copies: a ring of CUDA_INPUT_SLOTS, each
 * reused once its event has completed; large ones: the weight staging slots), so that a decode
 * step's ids and positions never wait for the device.
 *
 * Faults: kernels never trap on bad data (a token id or expert index out of range); they write
 * {code, value, limit} to device words that copy_out() and sync() read back after waiting, and
 * turn into an error. So no op waits for the host within a step.
 *
 * Graphs: graph_capture_begin/end record the ops of one step on the stream (stream capture) and
 * instantiate them; graph_replay launches the instance. A recording is refused for copies,
 * waits and lazily made tables (they would be recorded with stale host pointers); the model
 * runs one step op by op first, which makes those tables. GLMOE_CUDA_GRAPHS=0 (or the option
 * no_graphs) declines every recording, so that both paths can be timed in one build.
 * Left out on purpose: multi-GPU, host-memory offload of weights that do not fit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/cuda_internal.h"

extern "C" {
#include "util/dtype.h"
#include "util/synthetic.h"
}

/* ---- errors -------------------------------------------------------------------------------- */

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

glmoe_status cuda_fail(gm_err *err, cudaError_t e, const char *stmt, const char *func, const char *file, int line) {
    glmoe_status code = e == cudaErrorMemoryAllocation ? GLMOE_E_NOMEM : GLMOE_E_BACKEND;
    return gm_fail(err, code, "cuda: %s failed in %s (%s:%d): %s (%s)", stmt, func, base_name(file), line,
                   cudaGetErrorString(e), cudaGetErrorName(e));
}

glmoe_status cublas_fail(gm_err *err, cublasStatus_t s, const char *stmt, const char *func, const char *file,
                         int line) {
    glmoe_status code = s == CUBLAS_STATUS_ALLOC_FAILED ? GLMOE_E_NOMEM : GLMOE_E_BACKEND;
    return gm_fail(err, code, "cuda: %s failed in %s (%s:%d): cuBLAS status %d (%s)", stmt, func, base_name(file),
                   line, (int)s, cublasGetStatusString(s));
}

glmoe_status cuda_allow_smem(const void *kernel, size_t bytes, gm_err *err) {
    if (bytes <= 48 * 1024) return GLMOE_OK;
    CU_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    return GLMOE_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* cudaMalloc that says, on failure, how much was asked for and how much is free. */
static glmoe_status dev_alloc(cuda_backend *cb, void **p, size_t bytes, const char *what, gm_err *err) {
    *p = NULL;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 256);
    if (e == cudaSuccess) return GLMOE_OK;
    *p = NULL;
    cudaGetLastError(); /* an allocation failure is not sticky: clear it */
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    if (e == cudaErrorMemoryAllocation)
        return gm_fail(err, GLMOE_E_NOMEM, "cuda: out of device memory for %s: %zu bytes needed, %zu of %zu free on %s%s",
                       what, bytes, free_b, total_b, cb->device_name,
                       bytes <= free_b ? " (what is free is in pieces too small)" : "");
    return cuda_fail(err, e, "cudaMalloc", __func__, __FILE__, __LINE__);
}

/* ---- faults and waits ------------------------------------------------------------------------- */

/* Process-wide, for benchmarks (cuda_backend_counters_get). */
static cuda_backend_counters g_counters;

extern "C" void cuda_backend_counters_get(cuda_backend_counters *out) { *out = g_counters; }

/* A copy or a wait would be recorded as part of the graph (with a host pointer that is only
 * valid now), or break the recording; so would a table made lazily. */
glmoe_status cuda_refuse_if_capturing(cuda_backend *cb, const char *what, gm_err *err) {
    if (!cb->capturing) return GLMOE_OK;
    cb->capture_broken = true;
    return gm_fail(err, GLMOE_E_BACKEND, "cuda: %s while a step is being recorded as a graph", what);
}

static glmoe_status not_capturing(cuda_backend *cb, const char *what, gm_err *err) {
    return cuda_refuse_if_capturing(cb, what, err);
}

/* Waits for the stream, then turns a fault raised by a kernel into an error (and clears it). */
static glmoe_status wait_and_check(cuda_backend *cb, gm_err *err) {
    glmoe_status s = not_capturing(cb, "a wait for the GPU", err);
    if (s) return s;
    CU_TRY(cudaMemcpyAsync(cb->h_fault, cb->d_fault, CUDA_FAULT_WORDS * sizeof(int32_t), cudaMemcpyDeviceToHost,
                           cb->stream));
    const double t0 = now_s();
    CU_TRY(cudaStreamSynchronize(cb->stream));
    g_counters.wait_s += now_s() - t0;
    g_counters.waits++;
    if (cb->h_fault[0] == CUDA_FAULT_NONE) return GLMOE_OK;
    int32_t code = cb->h_fault[0], value = cb->h_fault[1], limit = cb->h_fault[2];
    CU_TRY(cudaMemsetAsync(cb->d_fault, 0, CUDA_FAULT_WORDS * sizeof(int32_t), cb->stream));
    switch (code) {
    case CUDA_FAULT_TOKEN:
        return gm_fail(err, GLMOE_E_TOKEN, "token id %d is outside the vocabulary [0, %d)", value, limit);
    case CUDA_FAULT_EXPERT:
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: moe_experts: expert index %d is out of range", value);
    case CUDA_FAULT_POSITION:
        return gm_fail(err, GLMOE_E_BACKEND,
                       "cuda: attention read n_past %d from device memory, outside [0, %d] (stale positions buffer)",
                       value, limit);
    default:
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: a kernel raised fault %d (value %d)", code, value);
    }
}

/* ---- memory ----------------------------------------------------------------------------------- */

static glmoe_status cuda_alloc(gm_backend *be, size_t bytes, void **out, gm_err *err) {
    return dev_alloc(cuda_of(be), out, bytes, "a buffer", err);
}

static void cuda_dealloc(gm_backend *be, void *p) {
    if (p) cudaFree(p);
}

static glmoe_status stage_copy(cuda_backend *cb, void *dst, const void *src, size_t bytes, gm_err *err);
static glmoe_status ensure_staging(cuda_backend *cb, gm_err *err);
#define STAGING_SLOT_BYTES ((size_t)32 << 20) /* each of the two pinned slots */

/* Small inputs go through a pinned slot (a copy from pageable memory makes the driver stage it
 * itself, slower and with less control); src is free for reuse when this returns. */
static glmoe_status cuda_copy_in(gm_backend *be, void *dst, const void *src, size_t bytes, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    glmoe_status s = not_capturing(cb, "copy_in", err);
    if (s || !bytes) return s;
    if (bytes > CUDA_INPUT_SLOT_BYTES) return stage_copy(cb, dst, src, bytes, err);
    const int slot = cb->input_next;
    cb->input_next = (cb->input_next + 1) % CUDA_INPUT_SLOTS;
    CU_TRY(cudaEventSynchronize(cb->input_done[slot])); /* its previous copy has left the slot */
    memcpy(cb->input_slot[slot], src, bytes);
    CU_TRY(cudaMemcpyAsync(dst, cb->input_slot[slot], bytes, cudaMemcpyHostToDevice, cb->stream));
    CU_TRY(cudaEventRecord(cb->input_done[slot], cb->stream));
    return GLMOE_OK;
}

static glmoe_status cuda_copy_out(gm_backend *be, void *dst, const void *src, size_t bytes, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    glmoe_status s0 = not_capturing(cb, "copy_out", err);
    if (s0) return s0;
    /* A model whose weights were generated on the device never uploaded anything: the slots are
     * made here then (a copy into pageable memory would also block inside cudaMemcpyAsync,
     * outside the wait that the counters measure). */
    if (bytes > ((size_t)64 << 10) && bytes <= STAGING_SLOT_BYTES && (s0 = ensure_staging(cb, err))) return s0;
    if (bytes && cb->staging[0] && bytes <= cb->staging_bytes) {
        /* Through a pinned slot: a copy into pageable memory runs at a fraction of the speed, and
         * the logits cross on every decode step. The slot's last upload precedes this copy on the
         * stream, and nothing uses the slot again before the memcpy below (we wait first). */
        CU_TRY(cudaMemcpyAsync(cb->staging[0], src, bytes, cudaMemcpyDeviceToHost, cb->stream));
        glmoe_status s = wait_and_check(cb, err);
        if (s) return s;
        memcpy(dst, cb->staging[0], bytes);
        return GLMOE_OK;
    }
    if (bytes) CU_TRY(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cb->stream));
    return wait_and_check(cb, err);
}

static glmoe_status cuda_sync(gm_backend *be, gm_err *err) { return wait_and_check(cuda_of(be), err); }

/* ---- weights ---------------------------------------------------------------------------------- */

#define UPLOAD_REPORT_BYTES ((uint64_t)2 << 30)

/* Copies bytes from host memory (any alignment) to the device through the two large pinned
 * slots, allocated on first use; src is free for reuse when this returns. */
static glmoe_status ensure_staging(cuda_backend *cb, gm_err *err) {
    if (cb->staging[0]) return GLMOE_OK;
    for (int i = 0; i < 2; i++) {
        CU_TRY(cudaHostAlloc(&cb->staging[i], STAGING_SLOT_BYTES, cudaHostAllocDefault));
        CU_TRY(cudaEventCreateWithFlags(&cb->staged[i], cudaEventDisableTiming));
        CU_TRY(cudaEventRecord(cb->staged[i], cb->stream));
    }
    cb->staging_bytes = STAGING_SLOT_BYTES;
    cb->upload_t0 = now_s();
    cb->next_report = UPLOAD_REPORT_BYTES;
    return GLMOE_OK;
}

static glmoe_status stage_copy(cuda_backend *cb, void *dst, const void *src, size_t bytes, gm_err *err) {
    glmoe_status st = ensure_staging(cb, err);
    if (st) return st;
    const char *s = (const char *)src;
    char *d = (char *)dst;
    for (size_t done = 0; done < bytes;) {
        size_t n = bytes - done < cb->staging_bytes ? bytes - done : cb->staging_bytes;
        int slot = cb->staging_next;
        cb->staging_next ^= 1;
        CU_TRY(cudaEventSynchronize(cb->staged[slot])); /* its previous copy has left the slot */
        memcpy(cb->staging[slot], s + done, n);
        CU_TRY(cudaMemcpyAsync(d + done, cb->staging[slot], n, cudaMemcpyHostToDevice, cb->stream));
        CU_TRY(cudaEventRecord(cb->staged[slot], cb->stream));
        done += n;
    }
    return GLMOE_OK;
}

/* stage_copy for weights, with a progress line every UPLOAD_REPORT_BYTES. */
static glmoe_status stage_upload(cuda_backend *cb, void *dst, const void *src, size_t bytes, gm_err *err) {
    glmoe_status s = stage_copy(cb, dst, src, bytes, err);
    if (s) return s;
    cb->uploaded += bytes;
    if (cb->uploaded >= cb->next_report) {
        double dt = now_s() - cb->upload_t0;
        gm_info("cuda: %.1f GB of weights uploaded to %s (%.1f GB/s)", (double)cb->uploaded / 1e9, cb->device_name,
                dt > 0 ? (double)cb->uploaded / 1e9 / dt : 0.0);
        cb->next_report += UPLOAD_REPORT_BYTES;
    }
    return GLMOE_OK;
}

static glmoe_status cuda_weight_bind(gm_backend *be, gm_weight *w, const gm_host_tensor *src, gm_bind_kind kind,
                                     size_t *copied, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    *copied = 0;
    w->rows = src->rows;
    w->cols = src->cols;
    w->owned = NULL;
    w->data = NULL;
    const size_t n = (size_t)src->rows * (size_t)src->cols;
    glmoe_status s;
    if (kind == GM_BIND_VECTOR_F32) {
        float *f = (float *)malloc(n * sizeof(float) + 1);
        if (!f) return gm_fail(err, GLMOE_E_NOMEM, "cuda: cannot allocate %zu host bytes", n * sizeof(float));
        if (src->type == GM_W_F32) {
            memcpy(f, src->data, n * sizeof(float));
        } else {
            const uint8_t *b = (const uint8_t *)src->data;
            for (size_t i = 0; i < n; i++) {
                uint16_t h;
                memcpy(&h, b + 2 * i, 2);
                f[i] = src->type == GM_W_BF16 ? gm_bf16_to_f32(h) : gm_f16_to_f32(h);
            }
        }
        void *d = NULL;
        s = dev_alloc(cb, &d, n * sizeof(float), "a weight vector", err);
        if (!s) s = stage_upload(cb, d, f, n * sizeof(float), err);
        free(f);
        if (s) {
            if (d) cudaFree(d);
            return s;
        }
        w->type = GM_W_F32;
        w->data = d;
        w->owned = d;
        *copied = n * sizeof(float);
        return GLMOE_OK;
    }
    const size_t bytes = n * gm_wtype_size(src->type);
    void *d = NULL;
    if ((s = dev_alloc(cb, &d, bytes, "a weight matrix", err))) return s;
    if ((s = stage_upload(cb, d, src->data, bytes, err))) {
        cudaFree(d);
        return s;
    }
    w->type = src->type;
    w->data = d;
    w->owned = d;
    *copied = bytes;
    return GLMOE_OK;
}

template <typename T>
__global__ void synthetic_fill_kernel(T *out, int64_t n, uint64_t seed, float mean, float std) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float v = gm_synthetic_value(seed, (uint64_t)i, mean, std);
        if constexpr (sizeof(T) == 4)
            out[i] = v;
        else
            out[i] = __float2bfloat16_rn(v);
    }
}

static glmoe_status cuda_weight_synthetic(gm_backend *be, gm_weight *w, gm_wtype type, int64_t rows, int64_t cols,
                                          uint64_t seed, float mean, float std, size_t *bytes, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    memset(w, 0, sizeof *w);
    *bytes = 0;
    if (type != GM_W_F32 && type != GM_W_BF16)
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: synthetic weights are F32 or BF16, not %s", gm_wtype_name(type));
    glmoe_status s;
    if ((s = not_capturing(cb, "a synthetic weight", err))) return s;
    const int64_t n = rows * cols;
    const size_t size = (size_t)n * gm_wtype_size(type);
    void *d = NULL;
    if ((s = dev_alloc(cb, &d, size, "a synthetic weight", err))) return s;
    const int blocks = (int)(n / 256 + 1 < 8192 ? n / 256 + 1 : 8192);
    if (type == GM_W_F32)
        synthetic_fill_kernel<float><<<blocks, 256, 0, cb->stream>>>((float *)d, n, seed, mean, std);
    else
        synthetic_fill_kernel<__nv_bfloat16><<<blocks, 256, 0, cb->stream>>>((__nv_bfloat16 *)d, n, seed, mean, std);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
        cudaFree(d);
        return cuda_fail(err, e, "synthetic_fill_kernel", __func__, __FILE__, __LINE__);
    }
    *w = (gm_weight){type, rows, cols, d, d};
    *bytes = size;
    return GLMOE_OK;
}

static void cuda_weight_release(gm_backend *be, gm_weight *w) {
    /* A pending upload may still read the staging slots, never the weight: freeing is safe. */
    if (w->owned) cudaFree(w->owned);
    w->owned = NULL;
    w->data = NULL;
}

/* ---- scratch ---------------------------------------------------------------------------------- */

/* Grows device buffer *p to n elements of size sz (contents are not kept). */
static glmoe_status grow(cuda_backend *cb, void **p, size_t *have, size_t n, size_t sz, const char *what, gm_err *err) {
    if (n <= *have && *p) return GLMOE_OK;
    if (*p) cudaFree(*p);
    *p = NULL;
    *have = 0;
    cb->epoch++; /* recorded graphs that used the old buffer are stale */
    glmoe_status s = dev_alloc(cb, p, n * sz, what, err);
    if (!s) *have = n;
    return s;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Split-KV attention keeps partials for up to this many splits of up to 16 query tokens. */
#define ATTN_MAX_SPLITS 32
#define ATTN_SPLIT_TOKENS 16

static glmoe_status cuda_reserve(gm_backend *be, const gm_reserve *r, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    const gm_config *c = r->cfg;
    const int64_t T = r->n_batch;
    glmoe_status s;
    CU_TRY(cudaSetDevice(cb->device));
    /* cuBLAS path: x split into two bf16 halves, for the widest matmul input (K, not N). */
    int64_t widest = c->hidden_size;
    const int64_t cands[] = {c->intermediate_size, (int64_t)c->n_heads * c->head_dim,
                             (int64_t)c->moe_intermediate_size * max64(c->n_shared_experts, 1)};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) widest = max64(widest, cands[i]);
    if ((s = grow(cb, (void **)&cb->split, &cb->split_elems, (size_t)(2 * T * widest), sizeof(__nv_bfloat16),
                  "matmul scratch", err)))
        return s;
    /* Split-KV partials: [splits][16 tokens x heads][D + 2]. */
    size_t part = (size_t)ATTN_MAX_SPLITS * ATTN_SPLIT_TOKENS * (size_t)max64(c->n_heads, 1) *
                  (size_t)(max64(c->head_dim, 1) + 2);
    if ((s = grow(cb, (void **)&cb->attn_part, &cb->attn_part_floats, part, sizeof(float), "attention scratch", err)))
        return s;
    if (!cb->rope_freq) {
        size_t have = 0;
        if ((s = grow(cb, (void **)&cb->rope_freq, &have, 2048, sizeof(float), "rope table", err))) return s;
    }
    if (c->first_k_dense_replace < c->n_layers && c->n_experts > 0) {
        const size_t rows = (size_t)T * (size_t)max64(c->n_experts_per_tok, 1);
        const size_t E = (size_t)c->n_experts, H = (size_t)c->hidden_size, Im = (size_t)c->moe_intermediate_size;
        const size_t tiles = (rows + CU_TILE_M - 1) / CU_TILE_M + E;
        size_t have;
        if (E > cb->moe_experts_cap) {
            have = 0;
            if ((s = grow(cb, (void **)&cb->moe_counts, &have, E + 1, 4, "MoE scratch", err))) return s;
            have = 0;
            if ((s = grow(cb, (void **)&cb->moe_fill, &have, E + 1, 4, "MoE scratch", err))) return s;
            have = 0;
            if ((s = grow(cb, (void **)&cb->moe_offsets, &have, E + 1, 4, "MoE scratch", err))) return s;
            cb->moe_experts_cap = E;
        }
        if (!cb->moe_ntiles) {
            have = 0;
            if ((s = grow(cb, (void **)&cb->moe_ntiles, &have, 1, 4, "MoE scratch", err))) return s;
        }
        if ((s = grow(cb, (void **)&cb->moe_tiles, &cb->moe_tiles_cap, tiles, sizeof(int4), "MoE scratch", err)))
            return s;
        if (rows > cb->moe_rows_cap) {
            have = 0;
            if ((s = grow(cb, (void **)&cb->moe_slot_of, &have, rows, 4, "MoE scratch", err))) return s;
            if ((s = grow(cb, (void **)&cb->moe_rows, &cb->moe_rows_cap, rows, 4, "MoE scratch", err))) return s;
        }
        if ((s = grow(cb, (void **)&cb->moe_h, &cb->moe_h_cap, rows * Im, sizeof(float), "MoE scratch", err))) return s;
        if ((s = grow(cb, (void **)&cb->route_logits, &cb->route_logits_cap, (size_t)T * E, sizeof(float),
                      "router scratch", err)))
            return s;
        if ((s = grow(cb, (void **)&cb->moe_y, &cb->moe_y_cap, rows * H, sizeof(float), "MoE scratch", err))) return s;
        if (T >= cb->moe_cublas_min_tokens) { /* the cuBLAS expert path */
            if ((s = grow(cb, (void **)&cb->moe_xs, &cb->moe_xs_cap, 2 * rows * H, sizeof(__nv_bfloat16), "MoE scratch", err)) ||
                (s = grow(cb, (void **)&cb->moe_hs, &cb->moe_hs_cap, 2 * rows * Im, sizeof(__nv_bfloat16), "MoE scratch", err)) ||
                (s = grow(cb, (void **)&cb->moe_u, &cb->moe_u_cap, rows * Im, sizeof(float), "MoE scratch", err)))
                return s;
            if (E + 1 > cb->moe_host_offsets_cap) {
                if (cb->moe_host_offsets) cudaFreeHost(cb->moe_host_offsets);
                cb->moe_host_offsets = nullptr;
                cb->moe_host_offsets_cap = 0;
                CU_TRY(cudaMallocHost((void **)&cb->moe_host_offsets, (E + 1) * sizeof(int32_t)));
                cb->moe_host_offsets_cap = E + 1;
            }
        }
    }
    return GLMOE_OK;
}

/* ---- KV cache --------------------------------------------------------------------------------- */

static glmoe_status cuda_kv_create(gm_backend *be, gm_kv **out, int32_t n_layers, int32_t n_ctx, int32_t n_kv_heads,
                                   int32_t head_dim, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    *out = NULL;
    CU_TRY(cudaSetDevice(cb->device));
    cuda_kv *kv = (cuda_kv *)calloc(1, sizeof *kv);
    if (!kv) return gm_fail(err, GLMOE_E_NOMEM, "cuda: out of host memory");
    const size_t n = (size_t)n_layers * (size_t)n_ctx * (size_t)n_kv_heads * (size_t)head_dim;
    const size_t esz = cb->kv_bf16 ? 2 : 4;
    char what[128];
    snprintf(what, sizeof what, "the KV cache (%d positions, %s)", n_ctx, cb->kv_bf16 ? "bf16" : "float32");
    /* Both halves at once, so that the message states the whole need. */
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && 2 * n * esz > free_b) {
        free(kv);
        return gm_fail(err, GLMOE_E_NOMEM, "cuda: %s needs %zu bytes but %s has %zu of %zu free (lower --ctx)", what,
                       2 * n * esz, cb->device_name, free_b, total_b);
    }
    glmoe_status s = dev_alloc(cb, &kv->k, n * esz, what, err);
    if (!s) s = dev_alloc(cb, &kv->v, n * esz, what, err);
    if (s) {
        if (kv->k) cudaFree(kv->k);
        free(kv);
        return s;
    }
    kv->n_layers = n_layers;
    kv->n_ctx = n_ctx;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->bf16 = cb->kv_bf16;
    *out = (gm_kv *)kv;
    return GLMOE_OK;
}

static void cuda_kv_free(gm_backend *be, gm_kv *h) {
    cuda_kv *kv = (cuda_kv *)h;
    if (!kv) return;
    if (kv->k) cudaFree(kv->k);
    if (kv->v) cudaFree(kv->v);
    free(kv);
}

/* ---- step recording (CUDA graphs) -------------------------------------------------------------- */

struct gm_graph {
    cudaGraphExec_t exec;
    uint64_t epoch;              /* cb->epoch when recorded */
    size_t nodes;
};

static glmoe_status cuda_graph_capture_begin(gm_backend *be, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    if (cb->graphs_off) return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: graphs are switched off (GLMOE_CUDA_GRAPHS=0)");
    glmoe_status s = not_capturing(cb, "graph_capture_begin", err);
    if (s) return s;
    /* Thread-local: another thread's backend (another device, say) may go on allocating. */
    CU_TRY(cudaStreamBeginCapture(cb->stream, cudaStreamCaptureModeThreadLocal));
    cb->capturing = true;
    cb->capture_broken = false;
    return GLMOE_OK;
}

static glmoe_status cuda_graph_capture_end(gm_backend *be, gm_graph **out, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    *out = NULL;
    if (!cb->capturing) return gm_fail(err, GLMOE_E_BACKEND, "cuda: graph_capture_end without graph_capture_begin");
    cb->capturing = false;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cb->stream, &graph);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* an invalidated capture is not sticky: clear it */
        if (graph) cudaGraphDestroy(graph);
        return cuda_fail(err, e, "cudaStreamEndCapture", __func__, __FILE__, __LINE__);
    }
    if (cb->capture_broken) { /* an op was refused: the graph misses it */
        cudaGraphDestroy(graph);
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: the recording is incomplete (an op was refused while recording)");
    }
    size_t nodes = 0;
    cudaGraphExec_t exec = NULL;
    e = cudaGraphGetNodes(graph, NULL, &nodes);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return cuda_fail(err, e, "cudaGraphInstantiate", __func__, __FILE__, __LINE__);
    }
    gm_graph *g = (gm_graph *)calloc(1, sizeof *g);
    if (!g) {
        cudaGraphExecDestroy(exec);
        return gm_fail(err, GLMOE_E_NOMEM, "cuda: out of host memory");
    }
    g->exec = exec;
    g->epoch = cb->epoch;
    g->nodes = nodes;
    *out = g;
    /* Its first launch would otherwise pay for moving the graph to the device. */
    CU_TRY(cudaGraphUpload(exec, cb->stream));
    g_counters.graphs_recorded++;
    gm_info("cuda: decode step recorded as a graph of %zu kernels and copies", nodes);
    return GLMOE_OK;
}

static glmoe_status cuda_graph_replay(gm_backend *be, gm_graph *g, bool *replayed, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    *replayed = false;
    glmoe_status s = not_capturing(cb, "graph_replay", err);
    if (s) return s;
    if (!g || g->epoch != cb->epoch) return GLMOE_OK; /* scratch reallocated since: record again */
    CU_TRY(cudaGraphLaunch(g->exec, cb->stream));
    *replayed = true;
    g_counters.graph_replays++;
    return GLMOE_OK;
}

static void cuda_graph_free(gm_backend *be, gm_graph *g) {
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}

/* ---- lifetime --------------------------------------------------------------------------------- */

static void cuda_free(gm_backend *be) {
    if (!be) return;
    cuda_backend *cb = cuda_of(be);
    cudaSetDevice(cb->device);
    if (cb->stream) cudaStreamSynchronize(cb->stream);
    for (int i = 0; i < 2; i++) {
        if (cb->staging[i]) cudaFreeHost(cb->staging[i]);
        if (cb->staged[i]) cudaEventDestroy(cb->staged[i]);
    }
    for (int i = 0; i < CUDA_INPUT_SLOTS; i++) {
        if (cb->input_slot[i]) cudaFreeHost(cb->input_slot[i]);
        if (cb->input_done[i]) cudaEventDestroy(cb->input_done[i]);
    }
    void *dev[] = {cb->d_fault, cb->split, cb->attn_part, cb->rope_freq, cb->moe_counts,
                   cb->moe_fill, cb->moe_offsets, cb->moe_ntiles, cb->moe_tiles, cb->moe_rows, cb->moe_slot_of,
                   cb->moe_h, cb->moe_y, cb->route_logits, cb->moe_xs, cb->moe_hs, cb->moe_u};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) cudaFree(dev[i]);
    if (cb->h_fault) cudaFreeHost(cb->h_fault);
    if (cb->moe_host_offsets) cudaFreeHost(cb->moe_host_offsets);
    for (size_t i = 0; i < cb->n_tables; i++) {
        free(cb->tables[i].host);
        if (cb->tables[i].dev) cudaFree(cb->tables[i].dev);
    }
    free(cb->tables);
    if (cb->cublas) cublasDestroy(cb->cublas);
    if (cb->stream) cudaStreamDestroy(cb->stream);
    free(cb);
}

static gm_backend_ops make_ops(void) {
    gm_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.free = cuda_free;
    o.alloc = cuda_alloc;
    o.dealloc = cuda_dealloc;
    o.copy_in = cuda_copy_in;
    o.copy_out = cuda_copy_out;
    o.sync = cuda_sync;
    o.weight_bind = cuda_weight_bind;
    o.weight_release = cuda_weight_release;
    o.weight_synthetic = cuda_weight_synthetic;
    o.reserve = cuda_reserve;
    o.kv_create = cuda_kv_create;
    o.kv_free = cuda_kv_free;
    o.embed = cuda_embed;
    o.add_rmsnorm = cuda_add_rmsnorm;
    o.add = cuda_add;
    o.matmul = cuda_matmul;
    o.rope = cuda_rope;
    o.attention = cuda_attention;
    o.swiglu = cuda_swiglu;
    o.moe_route = cuda_moe_route;
    o.moe_experts = cuda_moe_experts;
    o.graph_capture_begin = cuda_graph_capture_begin;
    o.graph_capture_end = cuda_graph_capture_end;
    o.graph_replay = cuda_graph_replay;
    o.graph_free = cuda_graph_free;
    return o;
}

static const gm_backend_ops cuda_ops = make_ops();

extern "C" bool cuda_backend_is(const gm_backend *be) { return be && be->ops == &cuda_ops; }

extern "C" cuda_backend_options cuda_backend_options_default(void) {
    cuda_backend_options o;
    o.device_index = 0;
    o.kv_f32 = false;
    o.no_graphs = false;
    o.moe_cublas_min_tokens = 0;
    return o;
}

/* Finds the device and checks it can run glmoe; GLMOE_E_UNSUPPORTED when it cannot. */
static glmoe_status pick_device(cuda_backend *cb, int index, gm_err *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: no usable CUDA device (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "the driver reports none");
    }
    if (index < 0 || index >= n)
        return gm_fail(err, GLMOE_E_ARG, "cuda: device %d does not exist (%d device%s)", index, n, n == 1 ? "" : "s");
    cudaDeviceProp p;
    CU_TRY(cudaGetDeviceProperties(&p, index));
    snprintf(cb->device_name, sizeof cb->device_name, "device %d (%.200s)", index, p.name);
    cb->sm_count = p.multiProcessorCount;
    cb->cc_major = p.major;
    cb->cc_minor = p.minor;
    if (p.major < 8)
        return gm_fail(err, GLMOE_E_UNSUPPORTED,
                       "cuda: %s has compute capability %d.%d; glmoe needs 8.0 or newer (Ampere, Ada, Hopper)",
                       cb->device_name, p.major, p.minor);
    return GLMOE_OK;
}

extern "C" glmoe_status cuda_backend_create_ex(gm_backend **out, const cuda_backend_options *opt, gm_err *err) {
    *out = NULL;
    cuda_backend_options o = opt ? *opt : cuda_backend_options_default();
    cuda_backend *cb = (cuda_backend *)calloc(1, sizeof *cb);
    if (!cb) return gm_fail(err, GLMOE_E_NOMEM, "cuda: out of host memory");
    cb->base.ops = &cuda_ops;
    cb->device = o.device_index;
    cb->kv_bf16 = !o.kv_f32;
    {
        const char *g = getenv("GLMOE_CUDA_GRAPHS"); /* "0": every step op by op (for comparisons) */
        cb->graphs_off = o.no_graphs || (g && !strcmp(g, "0"));
        /* bf16 experts of prefills of at least this many tokens run on cuBLAS (cuda_moe.cu);
         * the variable moves the switch, for comparing the two paths */
        const char *m = getenv("GLMOE_MOE_CUBLAS_MIN_TOKENS");
        cb->moe_cublas_min_tokens = o.moe_cublas_min_tokens > 0 ? o.moe_cublas_min_tokens
                                    : m && atoi(m) > 0                ? atoi(m)
                                                                      : MOE_CUBLAS_MIN_TOKENS;
    }
    glmoe_status s = pick_device(cb, o.device_index, err);
    if (s) {
        free(cb);
        return s;
    }
    /* From here on cuda_free() cleans up whatever was made. */
#define CREATE_TRY(stmt)                                                                             \
    do {                                                                                             \
        cudaError_t e_ = (stmt);                                                                     \
        if (e_ != cudaSuccess) {                                                                     \
            s = cuda_fail(err, e_, #stmt, __func__, __FILE__, __LINE__);                             \
            goto fail;                                                                               \
        }                                                                                            \
    } while (0)
    CREATE_TRY(cudaSetDevice(cb->device));
    CREATE_TRY(cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking));
    CREATE_TRY(cudaMalloc((void **)&cb->d_fault, CUDA_FAULT_WORDS * sizeof(int32_t)));
    CREATE_TRY(cudaMemset(cb->d_fault, 0, CUDA_FAULT_WORDS * sizeof(int32_t)));
    CREATE_TRY(cudaHostAlloc((void **)&cb->h_fault, CUDA_FAULT_WORDS * sizeof(int32_t), cudaHostAllocDefault));
    for (int i = 0; i < CUDA_INPUT_SLOTS; i++) {
        CREATE_TRY(cudaHostAlloc(&cb->input_slot[i], CUDA_INPUT_SLOT_BYTES, cudaHostAllocDefault));
        CREATE_TRY(cudaEventCreateWithFlags(&cb->input_done[i], cudaEventDisableTiming));
    }
#undef CREATE_TRY
    {
        cublasStatus_t bs = cublasCreate(&cb->cublas);
        if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(cb->cublas, cb->stream);
        /* No TF32 for float32 products; bf16 products use the tensor cores with float32 sums. */
        if (bs == CUBLAS_STATUS_SUCCESS)
            bs = cublasSetMathMode(cb->cublas, (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                                              CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION));
        if (bs != CUBLAS_STATUS_SUCCESS) {
            s = cublas_fail(err, bs, "cublasCreate", __func__, __FILE__, __LINE__);
            goto fail;
        }
    }
    gm_info("cuda: using %s, compute capability %d.%d, %d multiprocessors, KV cache %s, decode %s", cb->device_name,
            cb->cc_major, cb->cc_minor, cb->sm_count, cb->kv_bf16 ? "bf16" : "float32",
            cb->graphs_off ? "op by op" : "as a graph");
    *out = &cb->base;
    return GLMOE_OK;
fail:
    cuda_free(&cb->base);
    return s;
}

extern "C" glmoe_status cuda_backend_create(gm_backend **out, int device_index, gm_err *err) {
    cuda_backend_options o = cuda_backend_options_default();
    o.device_index = device_index;
    return cuda_backend_create_ex(out, &o, err);
}

extern "C" glmoe_status cuda_backend_check_fit(gm_backend *be, uint64_t bytes, const char *what, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    CU_TRY(cudaSetDevice(cb->device));
    size_t free_b = 0, total_b = 0;
    CU_TRY(cudaMemGetInfo(&free_b, &total_b));
    /* Keep room for cuBLAS' workspace, the activations and a small KV cache. */
    const uint64_t margin = (uint64_t)512 << 20;
    if (bytes + margin > free_b)
        return gm_fail(err, GLMOE_E_NOMEM,
                       "cuda: %s need %.2f GB (+%.2f GB working room) but %s has %.2f GB free of %.2f GB; "
                       "use --device cpu or a smaller model",
                       what, (double)bytes / 1e9, (double)margin / 1e9, cb->device_name, (double)free_b / 1e9,
                       (double)total_b / 1e9);
    return GLMOE_OK;
}
