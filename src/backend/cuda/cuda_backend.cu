/*
 * cuda_backend.cu — the CUDA backend's vtable, device selection, memory, weight upload, execution
 * states (stream, cuBLAS handle, scratch), KV cache and fault reporting. The ops live in
 * cuda_matmul.cu, cuda_elementwise.cu, cuda_attention.cu and cuda_moe.cu.
 *
 * Threads: the backend (cuda_backend) is what a model shares: the device and the weights. Each
 * context has an execution state (cuda_exec) with its own stream, cuBLAS handle, fault words,
 * pinned slots and scratch, so that two threads evaluate two contexts at once without sharing
 * anything they write. Weights are uploaded on the backend's load stream; an exec's stream waits
 * for the last upload (an event, once per generation of uploads) before the ops it queues next.
 *
 * Weights are uploaded once, in their stored dtype, from the file mapping through two pinned
 * staging slots (the copy of one slot overlaps the memcpy into the other); the mapping may be
 * unaligned (MLX files), which the memcpy absorbs. Progress goes to the log every 2 GB. Small
 * vectors bound as GM_BIND_VECTOR_F32 are converted to float32 on the host first.
 *
 * Inputs: copy_in goes through the exec's pinned slots (small copies: a ring of
 * CUDA_INPUT_SLOTS, each reused once its event has completed; large ones: the exec's io slot),
 * so that a decode step's ids and positions never wait for the device.
 *
 * Faults: kernels never trap on bad data (a token id or expert index out of range); they write
 * {code, value, limit} to the exec's device words, which copy_out() and sync() read back after
 * waiting and turn into an error. So no op waits for the host within a step.
 *
 * Graphs: graph_capture_begin/end record the ops of one step on the exec's stream (stream
 * capture, thread-local mode: other threads may allocate meanwhile) and instantiate them;
 * graph_replay launches the instance. A recording is refused for copies and waits (they would
 * be recorded with stale host pointers). GLMOE_CUDA_GRAPHS=0 (or the option no_graphs) declines
 * every recording, so that both paths can be timed in one build.
 *
 * Several GPUs (a model split over ranks, src/model/split.c): one backend per device, each rank's
 * exec on its own device; all_reduce queues the NCCL sum (cuda/comm_nccl.c) on the exec's
 * stream, so that a recorded step holds its collectives. Built only with nccl.h
 * (GLMOE_HAVE_NCCL): without it the op is absent and a split on CUDA is refused. Once an exec has
 * joined a group, its waits poll the stream, the group's health and a deadline instead of
 * blocking, so that a dead or hung peer ends them in one line instead of a hang.
 * Left out on purpose: host-memory offload of weights that do not fit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/cuda_internal.h"
#ifdef GLMOE_HAVE_NCCL
#include "backend/cuda/comm_nccl.h"
#endif

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

glmoe_status cuda_allow_smem(const void *kernel, size_t bytes, cu_smem_allowed *allowed, gm_err *err) {
    if (bytes <= 48 * 1024) return GLMOE_OK;
    int dev = 0;
    CU_TRY(cudaGetDevice(&dev)); /* exec_enter selected the exec's device on this thread */
    size_t *rec = dev >= 0 && dev < CU_SMEM_DEVICES ? &allowed->bytes[dev] : NULL;
    if (rec && bytes <= __atomic_load_n(rec, __ATOMIC_RELAXED)) return GLMOE_OK;
    CU_TRY(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    if (!rec) return GLMOE_OK;
    size_t seen = __atomic_load_n(rec, __ATOMIC_RELAXED);
    while (seen < bytes && !__atomic_compare_exchange_n(rec, &seen, bytes, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
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

/* Process-wide, for benchmarks (cuda_backend_counters_get); updated atomically, since several
 * threads may run execs at once. */
static uint64_t g_wait_ns, g_waits, g_graphs_recorded, g_graph_replays;

static void count(uint64_t *c, uint64_t n) { __atomic_fetch_add(c, n, __ATOMIC_RELAXED); }

extern "C" void cuda_backend_counters_get(cuda_backend_counters *out) {
    out->wait_s = 1e-9 * (double)__atomic_load_n(&g_wait_ns, __ATOMIC_RELAXED);
    out->waits = __atomic_load_n(&g_waits, __ATOMIC_RELAXED);
    out->graphs_recorded = __atomic_load_n(&g_graphs_recorded, __ATOMIC_RELAXED);
    out->graph_replays = __atomic_load_n(&g_graph_replays, __ATOMIC_RELAXED);
}

/* A copy or a wait would be recorded as part of the graph (with a host pointer that is only
 * valid now), or break the recording. */
glmoe_status cuda_refuse_if_capturing(cuda_exec *cx, const char *what, gm_err *err) {
    if (!cx->capturing) return GLMOE_OK;
    cx->capture_broken = true;
    return gm_fail(err, GLMOE_E_BACKEND, "cuda: %s while a step is being recorded as a graph", what);
}

/* Waits for the exec's stream. A rank of a split model polls it instead, with the group's health
 * and a deadline: a peer that failed (NCCL's asynchronous error, a rank that aborted the group)
 * or hangs would otherwise keep its collectives, and so this stream, waiting for ever. */
static glmoe_status stream_wait(cuda_exec *cx, gm_err *err) {
#ifdef GLMOE_HAVE_NCCL
    if (cx->comm) {
        const double t0 = now_s(), limit = comm_nccl_timeout_s();
        for (;;) {
            const cudaError_t e = cudaStreamQuery(cx->stream);
            if (e == cudaSuccess) return GLMOE_OK;
            if (e != cudaErrorNotReady) return cuda_fail(err, e, "cudaStreamQuery", __func__, __FILE__, __LINE__);
            glmoe_status s = comm_nccl_check(cx->comm, err);
            if (s) return s;
            const double waited = now_s() - t0;
            if (waited > limit) {
                comm_abort(cx->comm);
                return gm_fail(err, GLMOE_E_BACKEND,
                               "cuda: %s: a step with collectives did not finish in %.0f s (a GPU of the group failed "
                               "or hangs; GLMOE_NCCL_TIMEOUT_S sets the limit); the group is aborted",
                               cx->cb->device_name, limit);
            }
            comm_nccl_pause(waited);
        }
    }
#endif
    CU_TRY(cudaStreamSynchronize(cx->stream));
    return GLMOE_OK;
}

/* Waits for the exec's stream, then turns a fault raised by a kernel into an error (and clears it). */
static glmoe_status wait_and_check(cuda_exec *cx, gm_err *err) {
    glmoe_status s = cuda_refuse_if_capturing(cx, "a wait for the GPU", err);
    if (s) return s;
    CU_TRY(cudaMemcpyAsync(cx->h_fault, cx->d_fault, CUDA_FAULT_WORDS * sizeof(int32_t), cudaMemcpyDeviceToHost,
                           cx->stream));
    const double t0 = now_s();
    if ((s = stream_wait(cx, err))) return s;
    count(&g_wait_ns, (uint64_t)((now_s() - t0) * 1e9));
    count(&g_waits, 1);
    if (cx->h_fault[0] == CUDA_FAULT_NONE) return GLMOE_OK;
    int32_t code = cx->h_fault[0], value = cx->h_fault[1], limit = cx->h_fault[2];
    CU_TRY(cudaMemsetAsync(cx->d_fault, 0, CUDA_FAULT_WORDS * sizeof(int32_t), cx->stream));
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
    cuda_backend *cb = cuda_of(be);
    CU_TRY(cudaSetDevice(cb->device)); /* the current device is per host thread */
    return dev_alloc(cb, out, bytes, "a buffer", err);
}

static void cuda_dealloc(gm_backend *be, void *p) {
    if (p) cudaFree(p);
}

/* Before the exec's next ops: the current device of this thread, and every weight uploaded so far. */
static glmoe_status exec_enter(cuda_exec *cx, gm_err *err) {
    cuda_backend *cb = cx->cb;
    CU_TRY(cudaSetDevice(cb->device));
    if (cx->weights_gen_seen != cb->weights_gen) {
        CU_TRY(cudaStreamWaitEvent(cx->stream, cb->weights_ready, 0));
        cx->weights_gen_seen = cb->weights_gen;
    }
    return GLMOE_OK;
}

/* Small inputs go through a pinned slot (a copy from pageable memory makes the driver stage it
 * itself, slower and with less control); src is free for reuse when this returns. Larger ones go
 * through the io slot in pieces, each waiting for the previous piece to leave it. */
static glmoe_status cuda_copy_in(gm_exec *ex, void *dst, const void *src, size_t bytes, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    glmoe_status s = cuda_refuse_if_capturing(cx, "copy_in", err);
    if (s || (s = exec_enter(cx, err)) || !bytes) return s;
    if (bytes > CUDA_INPUT_SLOT_BYTES) {
        for (size_t done = 0; done < bytes;) {
            const size_t n = bytes - done < cx->io_slot_bytes ? bytes - done : cx->io_slot_bytes;
            CU_TRY(cudaStreamSynchronize(cx->stream)); /* the slot's previous piece has left */
            memcpy(cx->io_slot, (const char *)src + done, n);
            CU_TRY(cudaMemcpyAsync((char *)dst + done, cx->io_slot, n, cudaMemcpyHostToDevice, cx->stream));
            done += n;
        }
        return GLMOE_OK;
    }
    const int slot = cx->input_next;
    cx->input_next = (cx->input_next + 1) % CUDA_INPUT_SLOTS;
    CU_TRY(cudaEventSynchronize(cx->input_done[slot])); /* its previous copy has left the slot */
    memcpy(cx->input_slot[slot], src, bytes);
    CU_TRY(cudaMemcpyAsync(dst, cx->input_slot[slot], bytes, cudaMemcpyHostToDevice, cx->stream));
    CU_TRY(cudaEventRecord(cx->input_done[slot], cx->stream));
    return GLMOE_OK;
}

/* Through the pinned io slot, in pieces: a copy into pageable memory runs at a fraction of the
 * speed and blocks outside the wait the counters measure, and the logits cross every step. */
static glmoe_status cuda_copy_out(gm_exec *ex, void *dst, const void *src, size_t bytes, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    glmoe_status s = cuda_refuse_if_capturing(cx, "copy_out", err);
    if (s || (s = exec_enter(cx, err))) return s;
    if (!bytes) return wait_and_check(cx, err);
    for (size_t done = 0; done < bytes;) {
        const size_t n = bytes - done < cx->io_slot_bytes ? bytes - done : cx->io_slot_bytes;
        CU_TRY(cudaMemcpyAsync(cx->io_slot, (const char *)src + done, n, cudaMemcpyDeviceToHost, cx->stream));
        if ((s = wait_and_check(cx, err))) return s;
        memcpy((char *)dst + done, cx->io_slot, n);
        done += n;
    }
    return GLMOE_OK;
}

static glmoe_status cuda_sync(gm_exec *ex, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    glmoe_status s = exec_enter(cx, err);
    return s ? s : wait_and_check(cx, err);
}

/* ---- weights ---------------------------------------------------------------------------------- */

#define STAGING_SLOT_BYTES ((size_t)32 << 20) /* each of the two pinned slots */
#define UPLOAD_REPORT_BYTES ((uint64_t)2 << 30)

/* The two large pinned slots, allocated on first use. */
static glmoe_status ensure_staging(cuda_backend *cb, gm_err *err) {
    if (cb->staging[0]) return GLMOE_OK;
    for (int i = 0; i < 2; i++) {
        CU_TRY(cudaHostAlloc(&cb->staging[i], STAGING_SLOT_BYTES, cudaHostAllocDefault));
        CU_TRY(cudaEventCreateWithFlags(&cb->staged[i], cudaEventDisableTiming));
        CU_TRY(cudaEventRecord(cb->staged[i], cb->load_stream));
    }
    cb->staging_bytes = STAGING_SLOT_BYTES;
    cb->upload_t0 = now_s();
    cb->next_report = UPLOAD_REPORT_BYTES;
    return GLMOE_OK;
}

/* After work on the load stream that ops will read: execs wait for it before their next ops. */
static glmoe_status weights_changed(cuda_backend *cb, gm_err *err) {
    CU_TRY(cudaEventRecord(cb->weights_ready, cb->load_stream));
    cb->weights_gen++;
    return GLMOE_OK;
}

/* Copies bytes from host memory (any alignment) to the device on the load stream, through the
 * staging slots; src is free for reuse when this returns. A progress line every
 * UPLOAD_REPORT_BYTES. */
static glmoe_status stage_upload(cuda_backend *cb, void *dst, const void *src, size_t bytes, gm_err *err) {
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
        CU_TRY(cudaMemcpyAsync(d + done, cb->staging[slot], n, cudaMemcpyHostToDevice, cb->load_stream));
        CU_TRY(cudaEventRecord(cb->staged[slot], cb->load_stream));
        done += n;
    }
    cb->uploaded += bytes;
    if (cb->uploaded >= cb->next_report) {
        double dt = now_s() - cb->upload_t0;
        gm_info("cuda: %.1f GB of weights uploaded to %s (%.1f GB/s)", (double)cb->uploaded / 1e9, cb->device_name,
                dt > 0 ? (double)cb->uploaded / 1e9 / dt : 0.0);
        cb->next_report += UPLOAD_REPORT_BYTES;
    }
    return weights_changed(cb, err);
}

glmoe_status cuda_upload_table(cuda_backend *cb, void **dev, const void *host, size_t bytes, gm_err *err) {
    *dev = NULL;
    CU_TRY(cudaSetDevice(cb->device));
    glmoe_status s = dev_alloc(cb, dev, bytes, "a device table", err);
    if (s) return s;
    cudaError_t e = cudaMemcpyAsync(*dev, host, bytes, cudaMemcpyHostToDevice, cb->load_stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(cb->load_stream);
    if (e != cudaSuccess) {
        cudaFree(*dev);
        *dev = NULL;
        return cuda_fail(err, e, "cudaMemcpyAsync", __func__, __FILE__, __LINE__);
    }
    return GLMOE_OK;
}

/* Dense formats, and (unless switched off: cuda_backend_options.affine) the affine ones of every
 * legal bits x group x scale dtype (cuda_quant.cu). */
static bool cuda_supports(gm_backend *be, const gm_weight *format) {
    if (format->type == GM_W_AFFINE)
        return cuda_of(be)->affine && gm_affine_legal(format->q.bits, format->q.group) &&
               (format->q.scale_type == GM_W_F32 || format->q.scale_type == GM_W_BF16 || format->q.scale_type == GM_W_F16);
    return format->type == GM_W_F32 || format->type == GM_W_BF16 || format->type == GM_W_F16;
}

/* ---- weight memory ---------------------------------------------------------------------------
 * Weights are carved from slabs, never given a cudaMalloc each: the driver maps whole 2 MiB pages
 * to every allocation above 1 MiB, so a 3.24 MB expert projection (q4 g64 of GLM-4.5-Air) would
 * hold 4 MiB, 17 GB lost over the model's 17,664 of them (and 18 GB of its bf16 experts, 11.5 MB
 * in 12 MiB). A slab is one cudaMalloc; pieces are 256-byte aligned and taken first-fit from the
 * slabs made so far; a new slab is SLAB_MIN_BYTES, doubling up to SLAB_MAX_BYTES (a small model
 * stays small; the largest one loses at most the end of its last slab); a weight of
 * SLAB_OWN_BYTES or more gets a slab of its own size. gm_weight.owned is the slab (host memory),
 * which counts its pieces and is freed with the last one, in any order of release. Only binding
 * and releasing touch the slabs: one thread (backend.h). */
#define SLAB_MIN_BYTES ((size_t)2 << 20)
#define SLAB_MAX_BYTES ((size_t)256 << 20)
#define SLAB_OWN_BYTES ((size_t)32 << 20)

typedef struct cuda_slab {
    char *base;
    size_t size, used;
    int64_t pieces;              /* weights in it not yet released */
    struct cuda_slab *next;
} cuda_slab;

/* *p: `bytes` of device memory for a weight, *slab what holds it (for weight_release_piece). */
static glmoe_status weight_alloc(cuda_backend *cb, size_t bytes, void **p, cuda_slab **slab, const char *what,
                                 gm_err *err) {
    *p = NULL;
    *slab = NULL;
    const size_t need = (bytes + 255) & ~(size_t)255;
    cuda_slab *s = NULL;
    if (need < SLAB_OWN_BYTES)
        for (s = cb->slabs; s && s->size - s->used < need; s = s->next) {
        }
    if (!s) {
        if (!cb->slab_next_bytes) cb->slab_next_bytes = SLAB_MIN_BYTES;
        size_t size = need;
        if (need < SLAB_OWN_BYTES) {
            size = cb->slab_next_bytes > need ? cb->slab_next_bytes : need;
            if (cb->slab_next_bytes < SLAB_MAX_BYTES) cb->slab_next_bytes *= 2;
        }
        s = (cuda_slab *)calloc(1, sizeof *s);
        if (!s) return gm_fail(err, GLMOE_E_NOMEM, "cuda: out of host memory");
        glmoe_status st = dev_alloc(cb, (void **)&s->base, size, what, err);
        if (st) {
            free(s);
            return st;
        }
        s->size = size;
        s->next = cb->slabs;
        cb->slabs = s;
    }
    *p = s->base + s->used;
    s->used += need;
    s->pieces++;
    *slab = s;
    return GLMOE_OK;
}

/* Gives back one piece of slab s; the slab goes when its last piece does. */
static void weight_free_piece(cuda_backend *cb, cuda_slab *s) {
    if (!s || --s->pieces > 0) return;
    for (cuda_slab **link = &cb->slabs; *link; link = &(*link)->next)
        if (*link == s) {
            *link = s->next;
            break;
        }
    cudaFree(s->base); /* waits for the device: nothing still reads it */
    free(s);
}

/* The device layout of a weight of format f: the data, then (affine) the scales and the biases,
 * each part 256-byte aligned, in one piece. */
typedef struct weight_layout {
    size_t data, tab;            /* bytes of the data, and of the scales (as of the biases) */
    size_t data_padded, tab_padded, bytes;
} weight_layout;

static weight_layout layout_of(const gm_weight *f) {
    weight_layout l;
    l.data = (size_t)f->rows * gm_weight_row_bytes(f);
    l.tab = (size_t)f->rows * gm_weight_scale_row_bytes(f);
    l.data_padded = (l.data + 255) & ~(size_t)255;
    l.tab_padded = (l.tab + 255) & ~(size_t)255;
    l.bytes = l.data_padded + 2 * l.tab_padded;
    return l;
}

static glmoe_status cuda_weight_bind(gm_backend *be, gm_weight *w, const gm_host_tensor *src, gm_bind_kind kind,
                                     size_t *copied, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    *copied = 0;
    *w = src->w;
    w->owned = NULL;
    w->data = NULL;
    const size_t n = (size_t)src->w.rows * (size_t)src->w.cols;
    glmoe_status s;
    CU_TRY(cudaSetDevice(cb->device));
    if (kind == GM_BIND_VECTOR_F32) {
        float *f = (float *)malloc(n * sizeof(float) + 1);
        if (!f) return gm_fail(err, GLMOE_E_NOMEM, "cuda: cannot allocate %zu host bytes", n * sizeof(float));
        for (int64_t r = 0; r < src->w.rows; r++)
            gm_weight_row_f32(&src->w, r, 0, src->w.cols, f + (size_t)r * (size_t)src->w.cols);
        void *d = NULL;
        cuda_slab *slab = NULL;
        s = weight_alloc(cb, n * sizeof(float), &d, &slab, "a weight vector", err);
        if (!s) s = stage_upload(cb, d, f, n * sizeof(float), err);
        free(f);
        if (s) {
            weight_free_piece(cb, slab);
            return s;
        }
        *w = gm_weight{};
        w->type = GM_W_F32;
        w->rows = src->w.rows;
        w->cols = src->w.cols;
        w->data = d;
        w->owned = slab;
        *copied = n * sizeof(float);
        return GLMOE_OK;
    }
    if (!cuda_supports(be, &src->w)) {
        char f[64];
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: %s weights are not supported yet",
                       gm_weight_format_name(&src->w, f, sizeof f));
    }
    const weight_layout l = layout_of(&src->w);
    char *d = NULL;
    cuda_slab *slab = NULL;
    if ((s = weight_alloc(cb, l.bytes, (void **)&d, &slab, "a weight matrix", err))) return s;
    s = stage_upload(cb, d, src->w.data, l.data, err);
    if (!s && l.tab) s = stage_upload(cb, d + l.data_padded, src->w.scales, l.tab, err);
    if (!s && l.tab) s = stage_upload(cb, d + l.data_padded + l.tab_padded, src->w.biases, l.tab, err);
    if (s) {
        weight_free_piece(cb, slab);
        return s;
    }
    w->data = d;
    if (l.tab) {
        w->scales = d + l.data_padded;
        w->biases = d + l.data_padded + l.tab_padded;
    }
    w->owned = slab;
    *copied = l.data + 2 * l.tab;
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

/* Queues the fill of n synthetic values (F32 or BF16) at d on the load stream. */
static glmoe_status synthetic_fill(cuda_backend *cb, void *d, gm_wtype type, int64_t n, uint64_t seed, float mean,
                                   float std, gm_err *err) {
    const int blocks = (int)(n / 256 + 1 < 8192 ? n / 256 + 1 : 8192);
    if (type == GM_W_F32)
        synthetic_fill_kernel<float><<<blocks, 256, 0, cb->load_stream>>>((float *)d, n, seed, mean, std);
    else
        synthetic_fill_kernel<__nv_bfloat16><<<blocks, 256, 0, cb->load_stream>>>((__nv_bfloat16 *)d, n, seed, mean, std);
    CU_LAUNCHED();
    return GLMOE_OK;
}

static glmoe_status cuda_weight_synthetic(gm_backend *be, gm_weight *w, gm_wtype type, int64_t rows, int64_t cols,
                                          uint64_t seed, float mean, float std, size_t *bytes, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    memset(w, 0, sizeof *w);
    *bytes = 0;
    if (type != GM_W_F32 && type != GM_W_BF16)
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: synthetic weights are F32 or BF16, not %s", gm_wtype_name(type));
    glmoe_status s;
    CU_TRY(cudaSetDevice(cb->device));
    const int64_t n = rows * cols;
    const size_t size = (size_t)n * gm_wtype_size(type);
    void *d = NULL;
    cuda_slab *slab = NULL;
    if ((s = weight_alloc(cb, size, &d, &slab, "a synthetic weight", err))) return s;
    if ((s = synthetic_fill(cb, d, type, n, seed, mean, std, err))) {
        weight_free_piece(cb, slab);
        return s;
    }
    *w = gm_weight{};
    w->type = type;
    w->rows = rows;
    w->cols = cols;
    w->data = d;
    w->owned = slab;
    *bytes = size;
    return weights_changed(cb, err);
}

/* The bf16 tensor is made in a temporary the size of this one tensor, quantized into the
 * weight's piece, and freed before returning: the peak is the quantized model plus the largest
 * bf16 tensor (the embedding), never the bf16 model. */
static glmoe_status cuda_weight_synthetic_affine(gm_backend *be, gm_weight *w, const gm_affine *q, int64_t rows,
                                                 int64_t cols, uint64_t seed, float mean, float std, size_t *bytes,
                                                 gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    memset(w, 0, sizeof *w);
    *bytes = 0;
    gm_weight f = gm_weight{};
    f.type = GM_W_AFFINE;
    f.q = *q;
    f.rows = rows;
    f.cols = cols;
    if (!cuda_supports(be, &f) || cols % q->group != 0) {
        char name[64];
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: no synthetic %s weight of %lld columns",
                       gm_weight_format_name(&f, name, sizeof name), (long long)cols);
    }
    glmoe_status s;
    CU_TRY(cudaSetDevice(cb->device));
    const weight_layout l = layout_of(&f);
    char *d = NULL;
    void *tmp = NULL;
    cuda_slab *slab = NULL;
    if ((s = weight_alloc(cb, l.bytes, (void **)&d, &slab, "a synthetic quantized weight", err))) return s;
    if ((s = dev_alloc(cb, &tmp, (size_t)rows * (size_t)cols * 2, "the bf16 tensor of a synthetic weight to quantize",
                       err))) {
        weight_free_piece(cb, slab);
        return s;
    }
    s = synthetic_fill(cb, tmp, GM_W_BF16, rows * cols, seed, mean, std, err);
    if (!s)
        s = cuda_affine_quantize_bf16(cb->load_stream, (const __nv_bfloat16 *)tmp, rows, cols, q, (uint32_t *)d,
                                      d + l.data_padded, d + l.data_padded + l.tab_padded, err);
    cudaError_t e = cudaStreamSynchronize(cb->load_stream); /* the temporary is read until here */
    cudaFree(tmp);
    if (!s && e != cudaSuccess) s = cuda_fail(err, e, "cudaStreamSynchronize", __func__, __FILE__, __LINE__);
    if (s) {
        weight_free_piece(cb, slab);
        return s;
    }
    f.data = d;
    f.scales = d + l.data_padded;
    f.biases = d + l.data_padded + l.tab_padded;
    f.owned = slab;
    *w = f;
    *bytes = l.data + 2 * l.tab;
    return weights_changed(cb, err);
}

static void cuda_weight_release(gm_backend *be, gm_weight *w) {
    /* A pending upload may still read the staging slots, never the weight: freeing is safe. */
    if (w->owned) weight_free_piece(cuda_of(be), (cuda_slab *)w->owned);
    w->owned = NULL;
    w->data = NULL;
}

/* ---- execution states ------------------------------------------------------------------------- */

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* Split-KV attention keeps partials for up to this many splits of up to 16 query tokens. */
#define ATTN_MAX_SPLITS 32
#define ATTN_SPLIT_TOKENS 16
/* Large copies in and out go through a pinned slot of this many bytes at most, in pieces. */
#define IO_SLOT_BYTES ((size_t)4 << 20)

static void cuda_exec_free(gm_exec *ex) {
    if (!ex) return;
    cuda_exec *cx = cuda_exec_of(ex);
    cudaSetDevice(cx->cb->device);
    if (cx->stream) cudaStreamSynchronize(cx->stream);
    for (int i = 0; i < CUDA_INPUT_SLOTS; i++) {
        if (cx->input_slot[i]) cudaFreeHost(cx->input_slot[i]);
        if (cx->input_done[i]) cudaEventDestroy(cx->input_done[i]);
    }
    void *dev[] = {cx->d_fault, cx->split, cx->attn_part, cx->attn_count, cx->rope_freq, cx->moe_counts, cx->moe_fill,
                   cx->moe_offsets, cx->moe_ntiles, cx->moe_tiles, cx->moe_rows, cx->moe_slot_of, cx->moe_h,
                   cx->moe_y, cx->route_logits, cx->route_done, cx->moe_xs, cx->moe_hs, cx->moe_u};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        if (dev[i]) cudaFree(dev[i]);
    void *pinned[] = {cx->h_fault, cx->io_slot, cx->moe_host_offsets};
    for (size_t i = 0; i < sizeof pinned / sizeof pinned[0]; i++)
        if (pinned[i]) cudaFreeHost(pinned[i]);
    if (cx->cublas) cublasDestroy(cx->cublas);
    if (cx->stream) cudaStreamDestroy(cx->stream);
    free(cx);
}

/* A device buffer of n elements of sz bytes into *p, *cap = n, for exec_create. */
static glmoe_status scratch(cuda_exec *cx, void **p, size_t *cap, size_t n, size_t sz, const char *what, gm_err *err) {
    glmoe_status s = dev_alloc(cx->cb, p, n * sz, what, err);
    if (!s && cap) *cap = n;
    return s;
}

static glmoe_status exec_init(cuda_exec *cx, const gm_exec_sizes *z, gm_err *err) {
    cuda_backend *cb = cx->cb;
    CU_TRY(cudaSetDevice(cb->device));
    CU_TRY(cudaStreamCreateWithFlags(&cx->stream, cudaStreamNonBlocking));
    CU_TRY(cudaMalloc((void **)&cx->d_fault, CUDA_FAULT_WORDS * sizeof(int32_t)));
    CU_TRY(cudaMemsetAsync(cx->d_fault, 0, CUDA_FAULT_WORDS * sizeof(int32_t), cx->stream));
    CU_TRY(cudaHostAlloc((void **)&cx->h_fault, CUDA_FAULT_WORDS * sizeof(int32_t), cudaHostAllocDefault));
    for (int i = 0; i < CUDA_INPUT_SLOTS; i++) {
        CU_TRY(cudaHostAlloc(&cx->input_slot[i], CUDA_INPUT_SLOT_BYTES, cudaHostAllocDefault));
        CU_TRY(cudaEventCreateWithFlags(&cx->input_done[i], cudaEventDisableTiming));
    }
    /* The io slot holds a step's logits in one piece when they fit in IO_SLOT_BYTES. */
    cx->io_slot_bytes = (size_t)max64((int64_t)CUDA_INPUT_SLOT_BYTES,
                                      (int64_t)((size_t)z->max_out * sizeof(float) < IO_SLOT_BYTES
                                                    ? (size_t)z->max_out * sizeof(float)
                                                    : IO_SLOT_BYTES));
    CU_TRY(cudaHostAlloc(&cx->io_slot, cx->io_slot_bytes, cudaHostAllocDefault));
    CUBLAS_TRY(cublasCreate(&cx->cublas));
    CUBLAS_TRY(cublasSetStream(cx->cublas, cx->stream));
    /* No TF32 for float32 products; bf16 products use the tensor cores with float32 sums. */
    CUBLAS_TRY(cublasSetMathMode(cx->cublas, (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                                                             CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));

    const size_t T = (size_t)z->n_batch;
    glmoe_status s;
    /* cuBLAS path: x split into two bf16 halves, for the widest matmul input (K, not N). */
    if ((s = scratch(cx, (void **)&cx->split, &cx->split_elems, 2 * T * (size_t)max64(z->max_in, z->hidden),
                     sizeof(__nv_bfloat16), "matmul scratch", err)))
        return s;
    /* Split-KV partials: [splits][16 tokens x heads][D + 2]. */
    const size_t part = (size_t)ATTN_MAX_SPLITS * ATTN_SPLIT_TOKENS * (size_t)max64(z->n_heads, 1) *
                        (size_t)(max64(z->head_dim, 1) + 2);
    if ((s = scratch(cx, (void **)&cx->attn_part, &cx->attn_part_floats, part, sizeof(float), "attention scratch", err)))
        return s;
    /* The decode kernel's split counters, one per (block of 64 query rows, KV head): at most
     * 16 tokens x n_heads / 64 blocks rounded up per KV head, fewer than 2 x n_heads + 1. Zero,
     * and left zero by every launch. */
    const size_t counts = 2 * (size_t)max64(z->n_heads, 1) + 1;
    if ((s = scratch(cx, (void **)&cx->attn_count, &cx->attn_count_cap, counts, sizeof(int32_t), "attention scratch",
                     err)))
        return s;
    CU_TRY(cudaMemsetAsync(cx->attn_count, 0, counts * sizeof(int32_t), cx->stream));
    if ((s = scratch(cx, (void **)&cx->rope_freq, NULL, 2048, sizeof(float), "rope table", err))) return s;
    if (z->n_experts > 0) {
        const size_t rows = T * (size_t)max64(z->top_k, 1);
        const size_t E = (size_t)z->n_experts, H = (size_t)z->hidden, Im = (size_t)z->expert_width;
        const size_t tiles = (rows + CU_TILE_M - 1) / CU_TILE_M + E;
        if ((s = scratch(cx, (void **)&cx->moe_counts, &cx->moe_experts_cap, E + 1, 4, "MoE scratch", err)) ||
            (s = scratch(cx, (void **)&cx->moe_fill, NULL, E + 1, 4, "MoE scratch", err)) ||
            (s = scratch(cx, (void **)&cx->moe_offsets, NULL, E + 1, 4, "MoE scratch", err)) ||
            (s = scratch(cx, (void **)&cx->moe_ntiles, NULL, 1, 4, "MoE scratch", err)) ||
            (s = scratch(cx, (void **)&cx->moe_tiles, &cx->moe_tiles_cap, tiles, sizeof(int4), "MoE scratch", err)) ||
            (s = scratch(cx, (void **)&cx->moe_slot_of, NULL, rows, 4, "MoE scratch", err)) ||
            (s = scratch(cx, (void **)&cx->moe_rows, &cx->moe_rows_cap, rows, 4, "MoE scratch", err)) ||
            (s = scratch(cx, (void **)&cx->moe_h, &cx->moe_h_cap, rows * Im, sizeof(float), "MoE scratch", err)) ||
            (s = scratch(cx, (void **)&cx->route_logits, &cx->route_logits_cap, T * E, sizeof(float), "router scratch",
                         err)) ||
            (s = scratch(cx, (void **)&cx->route_done, NULL, 1, sizeof(unsigned), "router scratch", err)) ||
            (s = scratch(cx, (void **)&cx->moe_y, &cx->moe_y_cap, rows * H, sizeof(float), "MoE scratch", err)))
            return s;
        CU_TRY(cudaMemsetAsync(cx->route_done, 0, sizeof(unsigned), cx->stream));
        if ((int64_t)T >= cb->moe_cublas_min_tokens) { /* the cuBLAS expert path */
            if ((s = scratch(cx, (void **)&cx->moe_xs, &cx->moe_xs_cap, 2 * rows * H, sizeof(__nv_bfloat16),
                             "MoE scratch", err)) ||
                (s = scratch(cx, (void **)&cx->moe_hs, &cx->moe_hs_cap, 2 * rows * Im, sizeof(__nv_bfloat16),
                             "MoE scratch", err)) ||
                (s = scratch(cx, (void **)&cx->moe_u, &cx->moe_u_cap, rows * Im, sizeof(float), "MoE scratch", err)))
                return s;
            CU_TRY(cudaMallocHost((void **)&cx->moe_host_offsets, (E + 1) * sizeof(int32_t)));
        }
    }
    return GLMOE_OK;
}

static glmoe_status cuda_exec_create(gm_backend *be, const gm_exec_sizes *z, gm_exec **out, gm_err *err) {
    *out = NULL;
    cuda_exec *cx = (cuda_exec *)calloc(1, sizeof *cx);
    if (!cx) return gm_fail(err, GLMOE_E_NOMEM, "cuda: out of host memory");
    cx->base.be = be;
    cx->cb = cuda_of(be);
    glmoe_status s = exec_init(cx, z, err);
    if (s) {
        cuda_exec_free(&cx->base);
        return s;
    }
    *out = &cx->base;
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

static glmoe_status cuda_kv_copy(gm_exec *ex, gm_kv *hd, const gm_kv *hs, int32_t n, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    cuda_kv *dst = (cuda_kv *)hd;
    const cuda_kv *src = (const cuda_kv *)hs;
    if (dst->n_layers != src->n_layers || dst->n_ctx != src->n_ctx || dst->n_kv_heads != src->n_kv_heads ||
        dst->head_dim != src->head_dim || dst->bf16 != src->bf16 || n < 0 || n > src->n_ctx)
        return gm_fail(err, GLMOE_E_ARG, "cuda: kv_copy of %d positions between caches of other shapes", n);
    glmoe_status s = cuda_refuse_if_capturing(cx, "kv_copy", err);
    if (s || (s = exec_enter(cx, err))) return s;
    const size_t row = (size_t)src->n_kv_heads * (size_t)src->head_dim * (src->bf16 ? 2 : 4);
    const size_t layer = (size_t)src->n_ctx * row;
    for (int32_t l = 0; l < src->n_layers; l++) {
        CU_TRY(cudaMemcpyAsync((char *)dst->k + (size_t)l * layer, (const char *)src->k + (size_t)l * layer,
                               (size_t)n * row, cudaMemcpyDeviceToDevice, cx->stream));
        CU_TRY(cudaMemcpyAsync((char *)dst->v + (size_t)l * layer, (const char *)src->v + (size_t)l * layer,
                               (size_t)n * row, cudaMemcpyDeviceToDevice, cx->stream));
    }
    return GLMOE_OK;
}

static void cuda_kv_free(gm_backend *be, gm_kv *h) {
    cuda_kv *kv = (cuda_kv *)h;
    if (!kv) return;
    if (kv->k) cudaFree(kv->k);
    if (kv->v) cudaFree(kv->v);
    free(kv);
}

/* ---- several GPUs ------------------------------------------------------------------------------- */

#ifdef GLMOE_HAVE_NCCL
/* Queued on the exec's stream after its ops (and recorded with them while capturing): NCCL reads
 * buf when the stream gets there, and nothing here waits for it. */
static glmoe_status cuda_all_reduce(gm_exec *ex, gm_comm *comm, float *buf, int64_t n, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    if (!comm_is_nccl(comm))
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: all_reduce over a %s group (the CUDA backend needs NCCL's)",
                       comm->ops->name);
    if (cx->comm && cx->comm != comm)
        return gm_fail(err, GLMOE_E_BACKEND, "cuda: an execution state used by two groups");
    glmoe_status s = exec_enter(cx, err);
    if (s) return s;
    cx->comm = comm;
    if ((s = comm_all_reduce_sum(comm, buf, n, cx->stream, err)) && cx->capturing) cx->capture_broken = true;
    return s;
}
#endif

/* ---- step recording (CUDA graphs) -------------------------------------------------------------- */

struct gm_graph {
    cudaGraphExec_t exec;
    size_t nodes;
};

static glmoe_status cuda_graph_capture_begin(gm_exec *ex, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    if (cx->cb->graphs_off)
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: graphs are switched off (GLMOE_CUDA_GRAPHS=0)");
    glmoe_status s = cuda_refuse_if_capturing(cx, "graph_capture_begin", err);
    if (s || (s = exec_enter(cx, err))) return s;
    /* Thread-local: other threads (other contexts) may go on allocating and freeing meanwhile. */
    CU_TRY(cudaStreamBeginCapture(cx->stream, cudaStreamCaptureModeThreadLocal));
    cx->capturing = true;
    cx->capture_broken = false;
    return GLMOE_OK;
}

static glmoe_status cuda_graph_capture_end(gm_exec *ex, gm_graph **out, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    *out = NULL;
    if (!cx->capturing) return gm_fail(err, GLMOE_E_BACKEND, "cuda: graph_capture_end without graph_capture_begin");
    cx->capturing = false;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(cx->stream, &graph);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* an invalidated capture is not sticky: clear it */
        if (graph) cudaGraphDestroy(graph);
        return cuda_fail(err, e, "cudaStreamEndCapture", __func__, __FILE__, __LINE__);
    }
    if (cx->capture_broken) { /* an op was refused: the graph misses it */
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
    g->nodes = nodes;
    *out = g;
    /* Its first launch would otherwise pay for moving the graph to the device. */
    CU_TRY(cudaGraphUpload(exec, cx->stream));
    count(&g_graphs_recorded, 1);
    gm_info("cuda: decode step recorded as a graph of %zu kernels and copies", nodes);
    return GLMOE_OK;
}

static glmoe_status cuda_graph_replay(gm_exec *ex, gm_graph *g, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    glmoe_status s = cuda_refuse_if_capturing(cx, "graph_replay", err);
    if (s || (s = exec_enter(cx, err))) return s;
    CU_TRY(cudaGraphLaunch(g->exec, cx->stream));
    count(&g_graph_replays, 1);
    return GLMOE_OK;
}

static void cuda_graph_free(gm_exec *ex, gm_graph *g) {
    if (!g) return;
    cudaGraphExecDestroy(g->exec);
    free(g);
}

/* ---- lifetime --------------------------------------------------------------------------------- */

static void cuda_free(gm_backend *be) {
    if (!be) return;
    cuda_backend *cb = cuda_of(be);
    cudaSetDevice(cb->device);
    if (cb->load_stream) cudaStreamSynchronize(cb->load_stream);
    for (int i = 0; i < 2; i++) {
        if (cb->staging[i]) cudaFreeHost(cb->staging[i]);
        if (cb->staged[i]) cudaEventDestroy(cb->staged[i]);
    }
    while (cb->slabs) { /* weights never released (their model freed first): nothing may leak */
        cuda_slab *next = cb->slabs->next;
        cudaFree(cb->slabs->base);
        free(cb->slabs);
        cb->slabs = next;
    }
    if (cb->weights_ready) cudaEventDestroy(cb->weights_ready);
    if (cb->load_stream) cudaStreamDestroy(cb->load_stream);
    free(cb);
}

static glmoe_status cuda_check_fit(gm_backend *be, uint64_t bytes, const char *what, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    CU_TRY(cudaSetDevice(cb->device));
    size_t free_b = 0, total_b = 0;
    CU_TRY(cudaMemGetInfo(&free_b, &total_b));
    /* Keep room for the ends of the weight slabs, cuBLAS' workspace, the activations and a small
     * KV cache (a context checks its own). */
    const uint64_t margin = (uint64_t)512 << 20;
    if (bytes + margin > free_b)
        return gm_fail(err, GLMOE_E_NOMEM,
                       "cuda: %s needs %.2f GB of weights + %.2f GB of working room, the GPU (%s) has %.2f GB free "
                       "of %.2f GB: nothing was loaded; use --device cpu, fewer bits (--quantize) or a smaller model",
                       what, (double)bytes / 1e9, (double)margin / 1e9, cb->device_name, (double)free_b / 1e9,
                       (double)total_b / 1e9);
    return GLMOE_OK;
}

static gm_backend_ops make_ops(void) {
    gm_backend_ops o;
    memset(&o, 0, sizeof o);
    o.name = "cuda";
    o.free = cuda_free;
    o.alloc = cuda_alloc;
    o.dealloc = cuda_dealloc;
    o.check_fit = cuda_check_fit;
    o.supports = cuda_supports;
    o.weight_bind = cuda_weight_bind;
    o.weight_release = cuda_weight_release;
    o.weight_synthetic = cuda_weight_synthetic;
    o.weight_synthetic_affine = cuda_weight_synthetic_affine;
    o.prepare_experts = cuda_prepare_experts;
    o.release_experts = cuda_release_experts;
    o.exec_create = cuda_exec_create;
    o.exec_free = cuda_exec_free;
    o.kv_create = cuda_kv_create;
    o.kv_free = cuda_kv_free;
    o.kv_copy = cuda_kv_copy;
    o.copy_in = cuda_copy_in;
    o.copy_out = cuda_copy_out;
    o.sync = cuda_sync;
    o.embed = cuda_embed;
    o.add_rmsnorm = cuda_add_rmsnorm;
    o.add = cuda_add;
    o.copy_2d = cuda_copy_2d;
    o.matmul = cuda_matmul;
    o.matmul_n = cuda_matmul_n;
    o.rope = cuda_rope;
    o.attention = cuda_attention;
    o.swiglu = cuda_swiglu;
    o.moe_route = cuda_moe_route;
    o.moe_experts = cuda_moe_experts;
#ifdef GLMOE_HAVE_NCCL
    o.all_reduce = cuda_all_reduce;
#endif
    o.graph_capture_begin = cuda_graph_capture_begin;
    o.graph_capture_end = cuda_graph_capture_end;
    o.graph_replay = cuda_graph_replay;
    o.graph_free = cuda_graph_free;
    return o;
}

static const gm_backend_ops cuda_ops = make_ops();


/* Finds the device and checks it can run glmoe; GLMOE_E_UNSUPPORTED when it cannot. */
static glmoe_status pick_device(cuda_backend *cb, int index, gm_err *err) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        /* The runtime's own words mislead here: a machine with no NVIDIA driver at all gets
         * "CUDA driver version is insufficient for CUDA runtime version". */
        char runtime[64];
        snprintf(runtime, sizeof runtime, "the CUDA %d.%d runtime glmoe was built with", CUDART_VERSION / 1000,
                 CUDART_VERSION % 1000 / 10);
        if (e == cudaErrorInsufficientDriver)
            return gm_fail(err, GLMOE_E_UNSUPPORTED, "no CUDA GPU: no NVIDIA driver is loaded, or it is older than %s",
                           runtime);
        if (e == cudaErrorNoDevice || n == 0)
            return gm_fail(err, GLMOE_E_UNSUPPORTED, "no CUDA GPU: the NVIDIA driver finds no device");
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "no CUDA GPU: %s", cudaGetErrorString(e));
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
        const char *kv = getenv("GLMOE_CUDA_KV"); /* "f32": a float32 KV cache (for comparisons) */
        if (kv && !strcmp(kv, "f32")) cb->kv_bf16 = false;
        const char *g = getenv("GLMOE_CUDA_GRAPHS"); /* "0": every step op by op (for comparisons) */
        cb->graphs_off = o.no_graphs || (g && !strcmp(g, "0"));
        /* bf16 experts of prefills of at least this many tokens run on cuBLAS (cuda_moe.cu);
         * the variable moves the switch, for comparing the two paths */
        const char *af = getenv("GLMOE_CUDA_AFFINE"); /* "0": decline quantized weights (comparisons) */
        cb->affine = o.affine && !(af && !strcmp(af, "0"));
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
    {
        const char *pdl = getenv("GLMOE_CUDA_PDL"); /* "1": programmatic dependent launch (cu_launch_pdl) */
        cb->pdl = cb->cc_major >= 9 && pdl && !strcmp(pdl, "1");
    }
    /* From here on cuda_free() cleans up whatever was made. */
    cudaError_t e = cudaSetDevice(cb->device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&cb->load_stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&cb->weights_ready, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        s = cuda_fail(err, e, "cudaStreamCreateWithFlags", __func__, __FILE__, __LINE__);
        cuda_free(&cb->base);
        return s;
    }
    gm_info("cuda: using %s, compute capability %d.%d, %d multiprocessors, KV cache %s, decode %s", cb->device_name,
            cb->cc_major, cb->cc_minor, cb->sm_count, cb->kv_bf16 ? "bf16" : "float32",
            cb->graphs_off ? "op by op" : "as a graph");
    *out = &cb->base;
    return GLMOE_OK;
}

extern "C" glmoe_status cuda_backend_create(gm_backend **out, int device_index, gm_err *err) {
    cuda_backend_options o = cuda_backend_options_default();
    o.device_index = device_index;
    return cuda_backend_create_ex(out, &o, err);
}
