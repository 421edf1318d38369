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

#include "backend/cpu/cpu_internal.h"
#include "util/dtype.h"
#include "util/synthetic.h"

const char *gm_wtype_name(gm_wtype t) {
    switch (t) {
    case GM_W_F32: return "F32";
    case GM_W_BF16: return "BF16";
    case GM_W_F16: return "F16";
    }
    return "?";
}

size_t gm_wtype_size(gm_wtype t) { return t == GM_W_F32 ? 4 : 2; }

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

static glmoe_status cpu_copy(gm_backend *be, void *dst, const void *src, size_t bytes, gm_err *err) {
    if (bytes) memcpy(dst, src, bytes);
    return GLMOE_OK;
}

static glmoe_status cpu_sync(gm_backend *be, gm_err *err) { return GLMOE_OK; }

void cpu_weight_row_f32(const gm_weight *w, int64_t row, int64_t c0, int64_t n, float *dst) {
    size_t base = (size_t)row * (size_t)w->cols + (size_t)c0;
    switch (w->type) {
    case GM_W_F32:
        memcpy(dst, (const float *)w->data + base, (size_t)n * sizeof(float));
        break;
    case GM_W_BF16: {
        const uint16_t *s = (const uint16_t *)w->data + base;
        for (int64_t i = 0; i < n; i++) dst[i] = gm_bf16_to_f32(s[i]);
        break;
    }
    case GM_W_F16: {
        const uint16_t *s = (const uint16_t *)w->data + base;
        for (int64_t i = 0; i < n; i++) dst[i] = gm_f16_to_f32(s[i]);
        break;
    }
    }
}

static glmoe_status cpu_weight_bind(gm_backend *be, gm_weight *w, const gm_host_tensor *src,
                                    gm_bind_kind kind, size_t *copied, gm_err *err) {
    w->type = src->type;
    w->rows = src->rows;
    w->cols = src->cols;
    w->owned = NULL;
    *copied = 0;
    size_t n = (size_t)src->rows * (size_t)src->cols;
    if (kind == GM_BIND_VECTOR_F32) {
        float *f = alloc64(n * sizeof(float));
        if (!f) return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate %zu bytes", n * sizeof(float));
        /* The source may be unaligned: read it bytewise. */
        if (src->type == GM_W_F32) {
            memcpy(f, src->data, n * sizeof(float));
        } else {
            const uint8_t *b = src->data;
            for (size_t i = 0; i < n; i++) {
                uint16_t h;
                memcpy(&h, b + 2 * i, 2);
                f[i] = src->type == GM_W_BF16 ? gm_bf16_to_f32(h) : gm_f16_to_f32(h);
            }
        }
        w->type = GM_W_F32;
        w->data = f;
        w->owned = f;
        *copied = n * sizeof(float);
        return GLMOE_OK;
    }
    if (src->aligned) {
        w->data = src->data;
        return GLMOE_OK;
    }
    size_t bytes = n * gm_wtype_size(src->type);
    void *p = alloc64(bytes);
    if (!p) return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate %zu bytes to realign a weight", bytes);
    memcpy(p, src->data, bytes);
    w->data = p;
    w->owned = p;
    *copied = bytes;
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

float *cpu_thread_scratch(cpu_backend *cb) {
    return cb->thread_scratch + (size_t)omp_get_thread_num() * cb->thread_scratch_floats;
}

/* Grows *p to hold n elements of size sz (never shrinks). */
static int grow(void **p, size_t *have, size_t n, size_t sz) {
    if (n <= *have) return 0;
    void *q = alloc64(n * sz);
    if (!q) return -1;
    free(*p);
    *p = q;
    *have = n;
    return 0;
}

static glmoe_status cpu_reserve(gm_backend *be, const gm_reserve *r, gm_err *err) {
    cpu_backend *cb = cpu_of(be);
    const gm_config *c = r->cfg;
    int64_t T = r->n_batch;
    /* Per thread: a converted weight row (the widest input dimension), attention scores over the
     * whole context, the router's scores and one converted router row (3E + H). */
    int64_t widest = c->hidden_size;
    int64_t cands[] = {c->intermediate_size, (int64_t)c->n_heads * c->head_dim,
                       (int64_t)c->moe_intermediate_size * (c->n_shared_experts > 0 ? c->n_shared_experts : 1),
                       r->n_ctx, 3 * (int64_t)c->n_experts + c->hidden_size, c->vocab_size};
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++)
        if (cands[i] > widest) widest = cands[i];
    size_t per_thread = (size_t)widest + 64;
    size_t have = cb->thread_scratch_floats * (size_t)cb->n_threads;
    if (per_thread > cb->thread_scratch_floats) {
        if (grow((void **)&cb->thread_scratch, &have, per_thread * (size_t)cb->n_threads, sizeof(float)))
            goto nomem;
        cb->thread_scratch_floats = per_thread;
    }
    /* Prefill attention scores: query rows x keys, in blocks of at most 4M floats (16 MB), and at
     * least one row of the whole context. */
    size_t attn = (size_t)T * (size_t)r->n_ctx;
    if (attn > ((size_t)4 << 20)) attn = (size_t)4 << 20;
    if (attn < (size_t)r->n_ctx) attn = (size_t)r->n_ctx;
    if (grow((void **)&cb->attn, &cb->attn_floats, attn, sizeof(float))) goto nomem;
    /* sgemm works on chunks of converted weight rows: at most 4M floats (16 MB) at a time. */
    if (grow((void **)&cb->convert, &cb->convert_floats, (size_t)4 << 20, sizeof(float))) goto nomem;

    if (c->first_k_dense_replace < c->n_layers) {
        size_t rows = (size_t)T * (size_t)c->n_experts_per_tok;
        size_t H = (size_t)c->hidden_size, Im = (size_t)c->moe_intermediate_size, E = (size_t)c->n_experts;
        if (rows > cb->moe_rows_cap || H > cb->moe_h_cap || Im > cb->moe_im_cap || E > cb->moe_experts_cap) {
            free(cb->moe_x); free(cb->moe_gate); free(cb->moe_up); free(cb->moe_out);
            free(cb->moe_rows); free(cb->moe_w); free(cb->moe_offsets); free(cb->moe_fill);
            cb->moe_rows_cap = cb->moe_h_cap = cb->moe_im_cap = cb->moe_experts_cap = 0;
            cb->moe_x = alloc64(rows * H * sizeof(float));
            cb->moe_gate = alloc64(rows * Im * sizeof(float));
            cb->moe_up = alloc64(rows * Im * sizeof(float));
            cb->moe_out = alloc64(rows * H * sizeof(float));
            cb->moe_rows = alloc64(rows * sizeof(int32_t));
            cb->moe_w = alloc64(rows * sizeof(float));
            cb->moe_offsets = alloc64((E + 1) * sizeof(int32_t));
            cb->moe_fill = alloc64((E + 1) * sizeof(int32_t));
            if (!cb->moe_x || !cb->moe_gate || !cb->moe_up || !cb->moe_out || !cb->moe_rows || !cb->moe_w ||
                !cb->moe_offsets || !cb->moe_fill)
                goto nomem;
            cb->moe_rows_cap = rows;
            cb->moe_h_cap = H;
            cb->moe_im_cap = Im;
            cb->moe_experts_cap = E;
        }
    }
    return GLMOE_OK;
nomem:
    return gm_fail(err, GLMOE_E_NOMEM, "cpu: cannot allocate scratch for a batch of %d tokens", r->n_batch);
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

static void cpu_kv_free(gm_backend *be, gm_kv *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv);
}

static void cpu_free(gm_backend *be) {
    if (!be) return;
    cpu_backend *cb = cpu_of(be);
    free(cb->convert);
    free(cb->thread_scratch);
    free(cb->attn);
    free(cb->moe_x); free(cb->moe_gate); free(cb->moe_up); free(cb->moe_out);
    free(cb->moe_rows); free(cb->moe_w); free(cb->moe_offsets); free(cb->moe_fill);
    free(cb);
}

static const gm_backend_ops cpu_ops = {
    .name = "cpu",
    .free = cpu_free,
    .alloc = cpu_alloc,
    .dealloc = cpu_dealloc,
    .copy_in = cpu_copy,
    .copy_out = cpu_copy,
    .sync = cpu_sync,
    .weight_bind = cpu_weight_bind,
    .weight_release = cpu_weight_release,
    .weight_synthetic = cpu_weight_synthetic,
    .reserve = cpu_reserve,
    .kv_create = cpu_kv_create,
    .kv_free = cpu_kv_free,
    .embed = cpu_embed,
    .add_rmsnorm = cpu_add_rmsnorm,
    .add = cpu_add,
    .matmul = cpu_matmul,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .moe_route = cpu_moe_route,
    .moe_experts = cpu_moe_experts,
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
