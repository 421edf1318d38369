/*
 * cpu_backend.c — the CPU backend's vtable, memory, weight binding, scratch and KV cache.
 * The ops live in cpu_matmul.c, cpu_elementwise.c, cpu_attention.c and cpu_moe.c.
 *
 * Weights stay in the file mapping when their data is aligned (the usual case for files written
 * by the Python safetensors library); unaligned ones (MLX writes unpadded headers) are copied to
 * aligned memory, and the copy is counted so the caller can report it.
 */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "backend/comm.h"
#include "backend/cpu/cpu_internal.h"
#include "util/dtype.h"
#include "util/synthetic.h"

static void *alloc64(size_t bytes) {
    size_t n = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, n ? n : 64);
}

static glmoe_status cpu_alloc(gm_backend *be, size_t bytes, void **out, gm_err *err) {
    *out = alloc64(bytes);
    if (!*out) return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate %zu bytes", bytes);
    return GLMOE_OK;
}

static void cpu_dealloc(gm_backend *be, void *p) { free(p); }

static glmoe_status cpu_copy(gm_exec *ex, void *dst, const void *src, size_t bytes, gm_err *err) {
    if (bytes) memcpy(dst, src, bytes);
    return GLMOE_OK;
}

static glmoe_status cpu_sync(gm_exec *ex, gm_err *err) { return GLMOE_OK; }

static glmoe_status cpu_weight_bind(gm_backend *be, gm_weight *w, const gm_host_tensor *src,
                                    gm_bind_kind kind, size_t *copied, gm_err *err) {
    *w = src->w;
    w->owned = NULL;
    *copied = 0;
    if (kind == GM_BIND_VECTOR_F32) {
        /* Read through the format's host decoder (any alignment). */
        const size_t n = (size_t)src->w.rows * (size_t)src->w.cols;
        float *f = alloc64(n * sizeof(float));
        if (!f) return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate %zu bytes", n * sizeof(float));
        for (int64_t r = 0; r < src->w.rows; r++)
            gm_weight_row_f32(&src->w, r, 0, src->w.cols, f + (size_t)r * (size_t)src->w.cols);
        *w = (gm_weight){.type = GM_W_F32, .rows = src->w.rows, .cols = src->w.cols, .data = f, .owned = f};
        *copied = n * sizeof(float);
        return GLMOE_OK;
    }
    if (src->aligned && !src->transient) return GLMOE_OK; /* read in place, from the mapping */
    /* One aligned block: the data, then (affine) the scales and the biases. */
    const size_t data = (size_t)src->w.rows * gm_weight_row_bytes(&src->w);
    const size_t tab = (size_t)src->w.rows * gm_weight_scale_row_bytes(&src->w);
    const size_t data_padded = (data + 63) & ~(size_t)63, tab_padded = (tab + 63) & ~(size_t)63;
    uint8_t *p = alloc64(data_padded + 2 * tab_padded);
    if (!p) return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate %zu bytes to realign a weight", data + 2 * tab);
    memcpy(p, src->w.data, data);
    w->data = p;
    if (tab) {
        memcpy(p + data_padded, src->w.scales, tab);
        memcpy(p + data_padded + tab_padded, src->w.biases, tab);
        w->scales = p + data_padded;
        w->biases = p + data_padded + tab_padded;
    }
    w->owned = p;
    *copied = data + 2 * tab;
    return GLMOE_OK;
}

static void cpu_weight_release(gm_backend *be, gm_weight *w) {
    free(w->owned);
    w->owned = NULL;
    w->data = NULL;
}

static glmoe_status cpu_weight_synthetic(gm_backend *be, gm_weight *w, gm_wtype type, int64_t rows, int64_t cols,
                                         uint64_t seed, float mean, float std, size_t *bytes, gm_err *err) {
    memset(w, 0, sizeof *w);
    *bytes = 0;
    if (type != GM_W_F32 && type != GM_W_BF16)
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "cpu: synthetic weights are F32 or BF16, not %s", gm_wtype_name(type));
    const int64_t n = rows * cols;
    const size_t size = (size_t)n * gm_wtype_size(type);
    void *p = alloc64(size);
    if (!p) return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate %zu bytes for a synthetic weight", size);
    if (type == GM_W_F32) {
        float *f = p;
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) f[i] = gm_synthetic_value(seed, (uint64_t)i, mean, std);
    } else {
        uint16_t *h = p;
#pragma omp parallel for schedule(static) if (n > (1 << 20))
        for (int64_t i = 0; i < n; i++) h[i] = gm_f32_to_bf16(gm_synthetic_value(seed, (uint64_t)i, mean, std));
    }
    *w = (gm_weight){.type = type, .rows = rows, .cols = cols, .data = p, .owned = p};
    *bytes = size;
    return GLMOE_OK;
}

/* Row by row: each row generated in float32, rounded to bf16 (the synthetic weight's values) and
 * to the scale type, then quantized, so that no bf16 copy of the whole tensor is ever made. */
static glmoe_status cpu_weight_synthetic_affine(gm_backend *be, gm_weight *w, const gm_affine *q, int64_t rows,
                                                int64_t cols, uint64_t seed, float mean, float std, size_t *bytes,
                                                gm_err *err) {
    memset(w, 0, sizeof *w);
    *bytes = 0;
    if (!gm_affine_legal(q->bits, q->group) || cols % q->group != 0 ||
        (q->scale_type != GM_W_F32 && q->scale_type != GM_W_BF16 && q->scale_type != GM_W_F16))
        return gm_fail(err, GLMOE_E_ARG, "cpu: no synthetic q%d g%d weight of %lld columns with %s scales", (int)q->bits,
                       (int)q->group, (long long)cols, gm_wtype_name(q->scale_type));
    gm_weight f = {.type = GM_W_AFFINE, .q = *q, .rows = rows, .cols = cols};
    const size_t row_bytes = gm_weight_row_bytes(&f), srow = gm_weight_scale_row_bytes(&f);
    const size_t data = (size_t)rows * row_bytes, tab = (size_t)rows * srow;
    const size_t data_padded = (data + 63) & ~(size_t)63, tab_padded = (tab + 63) & ~(size_t)63;
    uint8_t *p = alloc64(data_padded + 2 * tab_padded);
    float *vals = malloc((size_t)omp_get_max_threads() * (size_t)cols * sizeof(float));
    if (!p || !vals) {
        free(p);
        free(vals);
        return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate %zu bytes for a synthetic weight", data + 2 * tab);
    }
#pragma omp parallel for schedule(static) if ((int64_t)rows * cols > (1 << 20))
    for (int64_t r = 0; r < rows; r++) {
        float *v = vals + (size_t)omp_get_thread_num() * (size_t)cols;
        for (int64_t i = 0; i < cols; i++)
            v[i] = gm_bf16_to_f32(gm_f32_to_bf16(gm_synthetic_value(seed, (uint64_t)(r * cols + i), mean, std)));
        gm_round_to_type(v, cols, q->scale_type);
        gm_affine_quantize_row(v, cols, q, (uint32_t *)(void *)(p + (size_t)r * row_bytes),
                               p + data_padded + (size_t)r * srow, p + data_padded + tab_padded + (size_t)r * srow);
    }
    free(vals);
    f.data = p;
    f.scales = p + data_padded;
    f.biases = p + data_padded + tab_padded;
    f.owned = p;
    *w = f;
    *bytes = data + 2 * tab;
    return GLMOE_OK;
}

float *cpu_thread_scratch(cpu_exec *cx) {
    return cx->thread_scratch + (size_t)omp_get_thread_num() * cx->thread_scratch_floats;
}

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static void cpu_exec_free(gm_exec *ex) {
    if (!ex) return;
    cpu_exec *cx = cpu_exec_of(ex);
    free(cx->convert);
    free(cx->thread_scratch);
    free(cx->attn);
    free(cx->moe_x); free(cx->moe_gate); free(cx->moe_up); free(cx->moe_out);
    free(cx->moe_rows); free(cx->moe_w); free(cx->moe_offsets); free(cx->moe_fill);
    free(cx->affine_xsum);
    free(cx);
}

static glmoe_status cpu_exec_create(gm_backend *be, const gm_exec_sizes *z, gm_exec **out, gm_err *err) {
    *out = NULL;
    cpu_exec *cx = calloc(1, sizeof *cx);
    if (!cx) return gm_fail(err, GLMOE_E_NOMEM, "cpu: out of memory");
    cx->base.be = be;
    cx->n_threads = cpu_of(be)->n_threads;
    const int64_t T = z->n_batch;
    /* Per thread: a converted weight row (the widest input), attention scores over the whole
     * context, the router's scores and one converted router row (3E + H). */
    const int64_t widest = max64(max64(z->max_in, z->max_out), max64(z->n_ctx, 3 * (int64_t)z->n_experts + z->hidden));
    cx->thread_scratch_floats = (size_t)widest + 64;
    cx->thread_scratch = alloc64(cx->thread_scratch_floats * (size_t)cx->n_threads * sizeof(float));
    /* Prefill attention scores: query rows x keys, in blocks of at most 4M floats (16 MB), and at
     * least one row of the whole context. */
    size_t attn = (size_t)T * (size_t)z->n_ctx;
    if (attn > ((size_t)4 << 20)) attn = (size_t)4 << 20;
    if (attn < (size_t)z->n_ctx) attn = (size_t)z->n_ctx;
    cx->attn_floats = attn;
    cx->attn = alloc64(attn * sizeof(float));
    /* sgemm works on chunks of converted weight rows: at most 4M floats (16 MB) at a time. */
    cx->convert_floats = (size_t)4 << 20;
    cx->convert = alloc64(cx->convert_floats * sizeof(float));
    /* The affine GEMV's group sums: up to CPU_GEMV_MAX_ROWS tokens x the groups of the widest
     * input (groups of 32 at least). */
    cx->affine_xsum = alloc64((size_t)CPU_GEMV_MAX_ROWS * (size_t)(max64(z->max_in, z->max_out) / 32 + 1) * sizeof(float));
    bool ok = cx->thread_scratch && cx->attn && cx->convert && cx->affine_xsum;
    if (ok && z->n_experts > 0) {
        const size_t rows = (size_t)T * (size_t)max64(z->top_k, 1);
        const size_t H = (size_t)z->hidden, Im = (size_t)z->expert_width, E = (size_t)z->n_experts;
        cx->moe_x = alloc64(rows * H * sizeof(float));
        cx->moe_gate = alloc64(rows * Im * sizeof(float));
        cx->moe_up = alloc64(rows * Im * sizeof(float));
        cx->moe_out = alloc64(rows * H * sizeof(float));
        cx->moe_rows = alloc64(rows * sizeof(int32_t));
        cx->moe_w = alloc64(rows * sizeof(float));
        cx->moe_offsets = alloc64((E + 1) * sizeof(int32_t));
        cx->moe_fill = alloc64((E + 1) * sizeof(int32_t));
        ok = cx->moe_x && cx->moe_gate && cx->moe_up && cx->moe_out && cx->moe_rows && cx->moe_w &&
             cx->moe_offsets && cx->moe_fill;
        cx->moe_rows_cap = rows;
        cx->moe_h_cap = H;
        cx->moe_im_cap = Im;
        cx->moe_experts_cap = E;
    }
    if (!ok) {
        cpu_exec_free(&cx->base);
        return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate scratch for a batch of %d tokens", z->n_batch);
    }
    *out = &cx->base;
    return GLMOE_OK;
}

static glmoe_status cpu_kv_create(gm_backend *be, gm_kv **out, int32_t n_layers, int32_t n_ctx,
                                  int32_t n_kv_heads, int32_t head_dim, gm_err *err) {
    gm_kv *kv = calloc(1, sizeof *kv);
    size_t n = (size_t)n_layers * (size_t)n_ctx * (size_t)n_kv_heads * (size_t)head_dim;
    if (kv) {
        kv->k = alloc64(n * sizeof(float));
        kv->v = alloc64(n * sizeof(float));
    }
    if (!kv || !kv->k || !kv->v) {
        if (kv) { free(kv->k); free(kv->v); }
        free(kv);
        return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate a KV cache of %zu bytes (%d positions)",
                       2 * n * sizeof(float), n_ctx);
    }
    kv->n_layers = n_layers;
    kv->n_ctx = n_ctx;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    *out = kv;
    return GLMOE_OK;
}

static glmoe_status cpu_kv_copy(gm_exec *ex, gm_kv *dst, const gm_kv *src, int32_t n, gm_err *err) {
    if (dst->n_layers != src->n_layers || dst->n_ctx != src->n_ctx || dst->n_kv_heads != src->n_kv_heads ||
        dst->head_dim != src->head_dim || n < 0 || n > src->n_ctx)
        return gm_fail(err, GLMOE_E_ARG, "cpu: kv_copy of %d positions between caches of other shapes", n);
    const size_t row = (size_t)src->n_kv_heads * (size_t)src->head_dim, layer = (size_t)src->n_ctx * row;
    for (int32_t l = 0; l < src->n_layers; l++) {
        memcpy(dst->k + (size_t)l * layer, src->k + (size_t)l * layer, (size_t)n * row * sizeof(float));
        memcpy(dst->v + (size_t)l * layer, src->v + (size_t)l * layer, (size_t)n * row * sizeof(float));
    }
    return GLMOE_OK;
}

static void cpu_kv_free(gm_backend *be, gm_kv *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv);
}

static void cpu_free(gm_backend *be) { free(be); }

/* Every format: the ops read rows through gm_weight_row_f32 or a kernel of the format's own. */
static bool cpu_supports(gm_backend *be, const gm_weight *format) { return true; }

/* The ops before it ran as they were called, so the sum runs now, on this thread: the comm of a
 * CPU split is the in-process group (backend/comm_local.c), one thread per rank. */
static glmoe_status cpu_all_reduce(gm_exec *ex, gm_comm *comm, float *buf, int64_t n, gm_err *err) {
    (void)ex;
    return comm_all_reduce_sum(comm, buf, n, NULL, err);
}

static const gm_backend_ops cpu_ops = {
    .name = "cpu",
    .free = cpu_free,
    .supports = cpu_supports,
    .alloc = cpu_alloc,
    .dealloc = cpu_dealloc,
    .copy_in = cpu_copy,
    .copy_out = cpu_copy,
    .sync = cpu_sync,
    .weight_bind = cpu_weight_bind,
    .weight_release = cpu_weight_release,
    .weight_synthetic = cpu_weight_synthetic,
    .weight_synthetic_affine = cpu_weight_synthetic_affine,
    .exec_create = cpu_exec_create,
    .exec_free = cpu_exec_free,
    .kv_create = cpu_kv_create,
    .kv_free = cpu_kv_free,
    .kv_copy = cpu_kv_copy,
    .embed = cpu_embed,
    .add_rmsnorm = cpu_add_rmsnorm,
    .add = cpu_add,
    .copy_2d = cpu_copy_2d,
    .matmul = cpu_matmul,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .moe_route = cpu_moe_route,
    .moe_experts = cpu_moe_experts,
    .all_reduce = cpu_all_reduce,
};

glmoe_status cpu_backend_create(gm_backend **out, int n_threads, gm_err *err) {
    cpu_backend *cb = calloc(1, sizeof *cb);
    if (!cb) return gm_fail(err, GLMOE_E_NOMEM, "cpu: out of memory");
    cb->base.ops = &cpu_ops;
    cb->n_threads = n_threads > 0 ? n_threads : omp_get_num_procs();
    openblas_set_num_threads(cb->n_threads);
    *out = &cb->base;
    return GLMOE_OK;
}
