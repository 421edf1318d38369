/*
 * weights.c — checks and binds the model's weights (spec §3.1), whatever the checkpoint's naming
 * and format, to the slots of gm_weights.
 *
 * For every weight the forward reads, in a fixed order (embedding, final norm, head, then each
 * layer), tensor_map.c finds its tensors; this file checks them against the configuration:
 *   - dense: BF16, F16 or F32, [rows, cols] (stacked experts: [E, rows, cols]);
 *   - affine (MLX): a U32 weight [.., rows, cols * bits / 32] and scales and biases of one float
 *     dtype, [.., rows, cols / group], with bits and group from config.json's quantization block
 *     (the module's override, else the global values), both checked against the shapes;
 *   - vectors (norms, biases, the router's correction bias) and the router: float only;
 * and the backend binds it. Messages name the file, the tensor, what was found and what the
 * config asks for. An override naming no module of the model is an error (it would silently be
 * ignored otherwise). The multi-token-prediction layer (layer index num_hidden_layers) is bound
 * when asked for (gm_bind_source.mtp) and the checkpoint has it, else its tensors are skipped and
 * counted; its embedding and head, copies of the model's in the released checkpoints, share the
 * model's when their bytes are equal. Any other tensor glmoe does not know is reported as unused.
 *
 * Quantizing while loading (gm_bind_source.requant, `--quantize`): the modules `mlx_lm.convert -q`
 * quantizes (tmap_quantizable: the Linears, the embedding and the experts; never the router,
 * norms or biases), when the group divides their input width, are quantized by
 * gm_affine_quantize_row after rounding to the config's dtype (mlx-lm casts the model to it
 * first), one tensor at a time, so that the result equals loading mlx-lm's converted files.
 *
 * Two passes share this code: weights_plan resolves and checks everything and records the formats
 * (no backend); weights_bind does the same and binds. weights_bind_synthetic fills the same slots
 * with random weights the backend generates (for benchmarks of a configuration alone), quantized
 * by the backend, where asked, exactly as loading them from a bf16 checkpoint with --quantize
 * would (held_format decides for both); weights_plan_synthetic is its planning pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/tensor_map.h"
#include "util/dtype.h"
#include "util/log.h"
#include "util/synthetic.h"

typedef struct binder {
    const gm_config *cfg;
    const gm_bind_source *src; /* NULL: synthetic weights made by the backend from seed */
    uint64_t seed;
    gm_affine requant;         /* bits 0: none; else the format float weights are quantized to */
    gm_backend *be;            /* NULL: planning (check only) */
    gm_partition part;         /* the rank's part of a split model (the whole model: one rank) */
    gm_bind_stats *stats;
    const st_tensor **used;    /* every tensor bound, to find the unused ones afterwards */
    size_t n_used;
    uint64_t done;             /* bytes bound so far, for src->progress */
    gm_err *err;
} binder;

/* What a weight is for: the kind it is counted under and the config fields behind its shape
 * (for messages). Which modules may be quantized is tensor_map.c's tmap_quantizable. */
typedef struct role {
    const char *kind;
    const char *why;
} role;

/* ---- accounting ----------------------------------------------------------------------------- */

/* One weight bound (or planned): w its format as held, `stored` its bytes in that format; a
 * vector is held as float32 whatever its stored type (backend.h, GM_BIND_VECTOR_F32). */
static void account(binder *b, const char *kind, const gm_weight *w, uint64_t stored, size_t copied, bool vector) {
    gm_bind_stats *st = b->stats;
    const uint64_t numel = (uint64_t)w->rows * (uint64_t)w->cols;
    st->bytes_copied += copied;
    st->bytes_held += vector ? 4 * numel : stored;
    st->n_params += numel;
    switch (w->type) {
    case GM_W_BF16: st->bytes_bf16 += stored; break;
    case GM_W_F16: st->bytes_f16 += stored; break;
    case GM_W_F32: st->bytes_f32 += stored; break;
    case GM_W_AFFINE: st->bytes_affine += stored; break;
    }
    gm_weight_group *g = NULL;
    for (int32_t i = 0; i < st->n_groups && !g; i++)
        if (!strcmp(st->groups[i].kind, kind) && gm_same_format(&st->groups[i].format, w)) g = &st->groups[i];
    if (!g && st->n_groups < GM_MAX_WEIGHT_GROUPS) {
        g = &st->groups[st->n_groups++];
        g->kind = kind;
        g->format = (gm_weight){.type = w->type, .q = w->q};
        gm_weight_format_name(w, g->format_name, sizeof g->format_name);
    }
    if (g) {
        g->n_tensors++;
        g->n_params += numel;
        g->bytes += stored;
    }
}

/* ---- messages ----------------------------------------------------------------------------------- */

static const char *shape_str(const st_tensor *t, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->rank && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, "%s%llu", i ? ", " : "", (unsigned long long)t->shape[i]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

/* "[E, a, b]" or "[a, b]" for what a tensor of a (stacked) weight should be. */
static const char *want_str(const gm_tensor_src *s, int64_t n_stacked, int64_t a, int64_t b, char *buf, size_t size) {
    if (s->index >= 0)
        snprintf(buf, size, "[%lld, %lld, %lld]", (long long)n_stacked, (long long)a, (long long)b);
    else
        snprintf(buf, size, "[%lld, %lld]", (long long)a, (long long)b);
    return buf;
}

static bool is_float(st_dtype d) { return d == ST_BF16 || d == ST_F16 || d == ST_F32; }

static gm_wtype wtype_of(st_dtype d) { return d == ST_BF16 ? GM_W_BF16 : d == ST_F16 ? GM_W_F16 : GM_W_F32; }

/* A tensor's shape is [E, a, b] (stacked, E = n_stacked) or [a, b]. */
static bool shape_is(const st_tensor *t, const gm_tensor_src *s, int64_t n_stacked, int64_t a, int64_t b) {
    if (s->index >= 0)
        return t->rank == 3 && (int64_t)t->shape[0] == n_stacked && (int64_t)t->shape[1] == a &&
               (int64_t)t->shape[2] == b;
    return t->rank == 2 && (int64_t)t->shape[0] == a && (int64_t)t->shape[1] == b;
}

/* ---- one weight ---------------------------------------------------------------------------------- */

/* The part of a [rows, cols] matrix a rank binds: rows [r0, r0 + nr), columns [c0, c0 + nc). */
typedef struct cut {
    int64_t r0, nr, c0, nc;
} cut;

static cut whole(int64_t rows, int64_t cols) { return (cut){0, rows, 0, cols}; }
static cut cut_rows(gm_slice s, int64_t unit, int64_t cols) { return (cut){s.first * unit, s.n * unit, 0, cols}; }
static cut cut_cols(int64_t rows, gm_slice s) { return (cut){0, rows, s.first, s.n}; }

/* A host tensor cut to k: rows by moving its pointers (still in the mapping), columns by copying
 * each row's piece (a group-aligned piece of an affine row: its codes, scales and biases) into
 * *block, a transient tensor the caller frees. false: out of memory. */
static bool host_cut(gm_host_tensor *h, const cut *k, void **block) {
    gm_weight *w = &h->w;
    const bool affine = w->type == GM_W_AFFINE;
    const size_t rb = gm_weight_row_bytes(w), sb = gm_weight_scale_row_bytes(w);
    w->data = (const char *)w->data + (size_t)k->r0 * rb;
    if (affine) {
        w->scales = (const char *)w->scales + (size_t)k->r0 * sb;
        w->biases = (const char *)w->biases + (size_t)k->r0 * sb;
    }
    w->rows = k->nr;
    if (k->nc == w->cols) return true;
    gm_weight sub = *w;
    sub.cols = k->nc;
    const size_t srb = gm_weight_row_bytes(&sub), ssb = gm_weight_scale_row_bytes(&sub);
    const size_t off = affine ? (size_t)k->c0 * (size_t)w->q.bits / 8 : (size_t)k->c0 * gm_wtype_size(w->type);
    const size_t soff = affine ? (size_t)(k->c0 / w->q.group) * gm_wtype_size(w->q.scale_type) : 0;
    uint8_t *p = malloc((size_t)k->nr * (srb + 2 * ssb) + 1);
    if (!p) return false;
    for (int64_t r = 0; r < k->nr; r++) {
        memcpy(p + (size_t)r * srb, (const char *)w->data + (size_t)r * rb + off, srb);
        if (!affine) continue;
        memcpy(p + (size_t)k->nr * srb + (size_t)r * ssb, (const char *)w->scales + (size_t)r * sb + soff, ssb);
        memcpy(p + (size_t)k->nr * (srb + ssb) + (size_t)r * ssb, (const char *)w->biases + (size_t)r * sb + soff, ssb);
    }
    sub.data = p;
    sub.scales = affine ? p + (size_t)k->nr * srb : NULL;
    sub.biases = affine ? p + (size_t)k->nr * (srb + ssb) : NULL;
    *h = (gm_host_tensor){.w = sub, .aligned = true, .transient = true};
    *block = p;
    return true;
}

/* A cut across the columns of a weight held quantized must fall on its groups. */
static glmoe_status check_cut(const binder *b, const gm_weight *held, int64_t cols, const cut *k, const char *tensor) {
    if (k->nc == cols || held->type != GM_W_AFFINE) return GLMOE_OK;
    const gm_slice c = {k->c0, k->nc};
    return partition_check_group(&c, held->q.group, tensor, b->part.n_ranks, b->err);
}

/* The host view of a checked source: the weight (expert `index` of a stacked one) in the mapping. */
static gm_host_tensor host_view(const gm_tensor_src *s, const gm_weight *fmt, int64_t rows, int64_t cols) {
    gm_host_tensor h = {.w = *fmt};
    h.w.rows = rows;
    h.w.cols = cols;
    const int64_t e = s->index >= 0 ? s->index : 0;
    const size_t data_rows = gm_weight_row_bytes(&h.w) * (size_t)rows, tab_rows = gm_weight_scale_row_bytes(&h.w) * (size_t)rows;
    h.w.data = s->t->data + (size_t)e * data_rows;
    bool aligned = s->t->aligned; /* the tensor's start; a stacked view moves by whole rows */
    if (fmt->type == GM_W_AFFINE) {
        h.w.scales = s->scales->data + (size_t)e * tab_rows;
        h.w.biases = s->biases->data + (size_t)e * tab_rows;
        aligned = aligned && s->scales->aligned && s->biases->aligned;
    }
    const size_t need = fmt->type == GM_W_AFFINE ? 4 : gm_wtype_size(fmt->type);
    h.aligned = aligned && ((uintptr_t)h.w.data % need) == 0;
    return h;
}

/* Checks a source against [rows, cols] and decides its format; the parameters of a quantized one
 * come from the quantization block. */
static glmoe_status check_source(binder *b, const gm_tensor_src *s, const role *r, int64_t rows, int64_t cols,
                                 gm_weight *fmt) {
    const gm_quant_config *qc = b->src->quant;
    const char *file = st_file_name(s->t->file);
    const int64_t E = b->cfg->n_experts;
    char got[96], want[96], want_codes[96];
    gm_quant_override *ov = quant_config_find(qc, s->module);
    if (ov) ov->used = true;
    if (!s->scales && !s->biases) { /* dense */
        if (!is_float(s->t->dtype))
            return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\": dtype %s is not supported (BF16, F16 or F32%s)",
                           file, s->t->name, st_dtype_name(s->t->dtype),
                           s->t->dtype == ST_U32 ? "; a U32 weight needs its .scales and .biases" : "");
        if (!shape_is(s->t, s, E, rows, cols))
            return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\" has shape %s but the config needs %s (%s)", file,
                           s->t->name, shape_str(s->t, got, sizeof got), want_str(s, E, rows, cols, want, sizeof want),
                           r->why);
        if (ov && ov->quantized && qc->present)
            return gm_fail(b->err, GLMOE_E_WEIGHTS,
                           "%s: tensor \"%s\" is %s, but config.json's %s quantizes \"%s\" (q%d g%d) and the checkpoint has "
                           "no \"%s.scales\"",
                           file, s->t->name, st_dtype_name(s->t->dtype), qc->key, s->module, ov->bits, ov->group, s->module);
        *fmt = (gm_weight){.type = wtype_of(s->t->dtype)};
        return GLMOE_OK;
    }
    /* affine */
    const st_tensor *sc = s->scales, *bi = s->biases;
    if (!tmap_quantizable(s->module))
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\" is quantized (it has \"%s.%s\"), but glmoe reads "
                       "the %s in float, as mlx-lm leaves it", file, s->t->name, s->module, sc ? "scales" : "biases",
                       r->kind);
    if (!sc || !bi)
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s.%s\" is missing: a quantized weight needs scales and biases",
                       file, s->module, sc ? "biases" : "scales");
    if (!qc->present)
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\" is quantized (it has \"%s.scales\") but config.json has "
                       "no quantization block", file, s->t->name, s->module);
    if (ov && !ov->quantized)
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\" is quantized but config.json's %s keeps \"%s\" in float",
                       file, s->t->name, qc->key, s->module);
    const int32_t bits = ov ? ov->bits : qc->bits, group = ov ? ov->group : qc->group;
    if (s->t->dtype != ST_U32)
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\": a quantized weight is U32, not %s", file,
                       s->t->name, st_dtype_name(s->t->dtype));
    if (!is_float(sc->dtype) || sc->dtype != bi->dtype)
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensors \"%s.scales\" (%s) and \"%s.biases\" (%s) must share one "
                       "dtype of BF16, F16 or F32", file, s->module, st_dtype_name(sc->dtype), s->module,
                       st_dtype_name(bi->dtype));
    if (cols % group != 0)
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\": group_size %d does not divide its %lld columns (%s)",
                       file, s->t->name, group, (long long)cols, r->why);
    if (!shape_is(s->t, s, E, rows, cols * bits / 32)) {
        /* Say which bit width the file's shape implies, if any. */
        const int64_t packed = s->t->rank >= 2 ? (int64_t)s->t->shape[s->t->rank - 1] : 0;
        char implied[64] = "";
        if (packed > 0 && packed * 32 % cols == 0)
            snprintf(implied, sizeof implied, "; its shape holds %lld bits per weight", (long long)(packed * 32 / cols));
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\" has shape %s but %d-bit codes of the config's %s need "
                       "%s (%s)%s", file, s->t->name, shape_str(s->t, got, sizeof got), bits, want_str(s, E, rows, cols, want, sizeof want),
                       want_str(s, E, rows, cols * bits / 32, want_codes, sizeof want_codes), r->why, implied);
    }
    for (int k = 0; k < 2; k++) {
        const st_tensor *t = k ? bi : sc;
        if (!shape_is(t, s, E, rows, cols / group))
            return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\" has shape %s but group_size %d needs %s", file,
                           t->name, shape_str(t, got, sizeof got), group,
                           want_str(s, E, rows, cols / group, want, sizeof want));
    }
    *fmt = (gm_weight){.type = GM_W_AFFINE, .q = {.bits = bits, .group = group, .scale_type = wtype_of(sc->dtype)}};
    return GLMOE_OK;
}

/* The dtype mlx-lm casts a model to before quantizing it: config.json's, else the tensor's. */
static gm_wtype cast_type(const gm_config *c, gm_wtype stored) {
    if (!strcmp(c->dtype, "bfloat16")) return GM_W_BF16;
    if (!strcmp(c->dtype, "float16")) return GM_W_F16;
    if (!strcmp(c->dtype, "float32")) return GM_W_F32;
    return stored;
}

/* The format a matrix of `module` whose tensor is `stored` (its type and affine parameters) is
 * bound in: quantized while binding (b->requant: `--quantize`, or a synthetic model asked for
 * quantized) as `mlx_lm.convert -q` chooses, i.e. a float weight of a module it quantizes
 * (tmap_quantizable) whose input width the group divides becomes affine, with scales of the
 * type it casts the model to; everything else stays as stored. The one place this is decided,
 * for checkpoints and synthetic models alike. */
static gm_weight held_format(const binder *b, const char *module, gm_bind_kind kind, const gm_weight *stored,
                             int64_t rows, int64_t cols) {
    const gm_affine *rq = &b->requant;
    gm_weight t = {.type = stored->type, .q = stored->q, .rows = rows, .cols = cols};
    if (rq->bits && kind == GM_BIND_MATRIX && tmap_quantizable(module) && stored->type != GM_W_AFFINE &&
        cols % rq->group == 0)
        t = (gm_weight){.type = GM_W_AFFINE, .q = {rq->bits, rq->group, cast_type(b->cfg, stored->type)}, .rows = rows,
                        .cols = cols};
    return t;
}

/* Quantizes a dense host tensor to fmt, as mlx_lm.convert would: each row rounded to the cast
 * type, then MLX's quantizer. *out (malloc'd in one block, freed by the caller) is transient. */
static glmoe_status quantize_host(binder *b, const gm_host_tensor *dense, const gm_weight *fmt, gm_host_tensor *out,
                                  void **block) {
    gm_weight w = *fmt;
    w.rows = dense->w.rows;
    w.cols = dense->w.cols;
    const size_t data = (size_t)w.rows * gm_weight_row_bytes(&w), tab = (size_t)w.rows * gm_weight_scale_row_bytes(&w);
    uint8_t *p = malloc(data + 2 * tab + 1);
    float *row = malloc((size_t)w.cols * sizeof(float));
    if (!p || !row) {
        free(p);
        free(row);
        return gm_fail(b->err, GLMOE_E_NOMEM, "out of memory quantizing a %lld x %lld weight", (long long)w.rows,
                       (long long)w.cols);
    }
    for (int64_t r = 0; r < w.rows; r++) {
        gm_weight_row_f32(&dense->w, r, 0, w.cols, row);
        gm_round_to_type(row, w.cols, fmt->q.scale_type);
        gm_affine_quantize_row(row, w.cols, &w.q, (uint32_t *)(void *)(p + (size_t)r * gm_weight_row_bytes(&w)),
                               p + data + (size_t)r * gm_weight_scale_row_bytes(&w),
                               p + data + tab + (size_t)r * gm_weight_scale_row_bytes(&w));
    }
    free(row);
    w.data = p;
    w.scales = p + data;
    w.biases = p + data + tab;
    *out = (gm_host_tensor){.w = w, .aligned = true, .transient = true};
    *block = p;
    return GLMOE_OK;
}

/* Binds host tensor h as `target` (quantized first where target is affine and h is not: as the
 * checkpoint is loaded with --quantize) and accounts for it. h_block, h's transient storage or
 * NULL, is freed as soon as h is no longer needed. */
static glmoe_status bind_host(binder *b, gm_weight *w, const gm_host_tensor *h, void *h_block, const gm_weight *target,
                              gm_bind_kind kind, const char *name, const role *r) {
    gm_host_tensor in = *h;
    void *block = NULL;
    glmoe_status st = GLMOE_OK;
    if (target->type == GM_W_AFFINE && h->w.type != GM_W_AFFINE) {
        gm_host_tensor q;
        st = quantize_host(b, h, target, &q, &block);
        free(h_block);
        h_block = NULL;
        if (st) return st;
        in = q;
        b->stats->n_quantized_on_load++;
    }
    size_t copied = 0;
    st = b->be->ops->weight_bind(b->be, w, &in, kind, &copied, b->err);
    free(block);
    free(h_block);
    if (st) {
        gm_err_prefix(b->err, "tensor \"%s\": ", name);
        return st;
    }
    account(b, r->kind, target, gm_weight_bytes(target), copied, false);
    return GLMOE_OK;
}

/* Checks, and (unless planning) binds, one matrix found at s. */
static glmoe_status bind_source(binder *b, gm_weight *w, const gm_tensor_src *s, const role *r, int64_t rows,
                                int64_t cols, gm_bind_kind kind, const cut *k) {
    gm_weight fmt;
    glmoe_status st = check_source(b, s, r, rows, cols, &fmt);
    if (st) return st;
    gm_host_tensor h = host_view(s, &fmt, rows, cols);
    /* Quantized or not as the whole model's weight would be, whatever the rank's cut of it. */
    gm_weight target = held_format(b, s->module, kind, &fmt, rows, cols);
    if ((st = check_cut(b, &target, cols, k, s->t->name))) return st;
    target.rows = k->nr;
    target.cols = k->nc;
    const uint64_t stored = gm_weight_bytes(&target);
    if (!b->be) { /* planning */
        account(b, r->kind, &target, stored, 0, false);
        return GLMOE_OK;
    }
    void *cut_block = NULL;
    if ((k->nr != rows || k->nc != cols) && !host_cut(&h, k, &cut_block))
        return gm_fail(b->err, GLMOE_E_NOMEM, "out of memory cutting tensor \"%s\" for its rank", s->t->name);
    if ((st = bind_host(b, w, &h, cut_block, &target, kind, s->t->name, r))) return st;
    b->done += stored;
    if (b->src->progress) b->src->progress(b->done, b->src->total, s->t->name, b->src->progress_user);
    /* Count each file tensor once (a stacked one serves every expert). */
    const st_tensor *ts[3] = {s->t, s->scales, s->biases};
    for (int i = 0; i < 3; i++)
        if (ts[i] && (s->index <= 0)) b->used[b->n_used++] = ts[i];
    return GLMOE_OK;
}

/* A synthetic tensor's distribution, as tools/gpu/make_synthetic.py draws a checkpoint's: norm
 * weights 1, the router's correction bias 0, everything else (matrices, attention biases)
 * mean 0 and standard deviation 0.02. */
static void synthetic_init(const char *name, float *mean, float *std) {
    size_t n = strlen(name);
    bool norm = n >= 11 && !strcmp(name + n - 11, "norm.weight");
    bool router_bias = strstr(name, "e_score_correction_bias") != NULL;
    *mean = norm ? 1.0f : 0.0f;
    *std = norm || router_bias ? 0.0f : 0.02f;
}

/* A rank's cut across the columns of a synthetic matrix, which is not contiguous in the whole
 * tensor's numbering: made on the host, bf16 as the backend would make it (element r * cols + c
 * of the whole), quantized as loading it would (held: the cut's format), then bound. */
static glmoe_status bind_synthetic_columns(binder *b, gm_weight *w, const char *name, const role *r, int64_t cols,
                                           const cut *k, const gm_weight *held) {
    float mean, std;
    synthetic_init(name, &mean, &std);
    const uint64_t seed = gm_synthetic_seed(b->seed, name);
    uint16_t *v = malloc((size_t)k->nr * (size_t)k->nc * sizeof *v);
    if (!v) return gm_fail(b->err, GLMOE_E_NOMEM, "out of memory making tensor \"%s\"", name);
    for (int64_t i = 0; i < k->nr; i++)
        for (int64_t j = 0; j < k->nc; j++)
            v[i * k->nc + j] = gm_f32_to_bf16(
                gm_synthetic_value(seed, (uint64_t)((k->r0 + i) * cols + k->c0 + j), mean, std));
    const gm_host_tensor h = {.w = {.type = GM_W_BF16, .rows = k->nr, .cols = k->nc, .data = v}, .aligned = true,
                              .transient = true};
    return bind_host(b, w, &h, v, held, GM_BIND_MATRIX, name, r);
}

/* A synthetic tensor `name` (of module `module`, for a matrix): a bf16 matrix (quantized as
 * held_format says, by the backend, as loading its checkpoint with --quantize would) or a float32
 * vector; planning (no backend) only counts it. */
static glmoe_status bind_synthetic(binder *b, gm_weight *w, const char *module, const char *name, const role *r,
                                   int64_t rows, int64_t cols, gm_bind_kind kind, const cut *k) {
    const gm_weight stored = {.type = kind == GM_BIND_VECTOR_F32 ? GM_W_F32 : GM_W_BF16};
    gm_weight target = held_format(b, module, kind, &stored, rows, cols);
    glmoe_status s = check_cut(b, &target, cols, k, name);
    if (s) return s;
    target.rows = k->nr;
    target.cols = k->nc;
    const bool quantize = target.type == GM_W_AFFINE;
    if (!b->be) {
        account(b, r->kind, &target, gm_weight_bytes(&target), 0, kind == GM_BIND_VECTOR_F32);
        return GLMOE_OK;
    }
    if (k->nc != cols && rows > 1) return bind_synthetic_columns(b, w, name, r, cols, k, &target);
    if (quantize ? !b->be->ops->weight_synthetic_affine : !b->be->ops->weight_synthetic)
        return gm_fail(b->err, GLMOE_E_UNSUPPORTED, "the %s backend cannot make %ssynthetic weights", b->be->ops->name,
                       quantize ? "quantized " : "");
    float mean, std;
    synthetic_init(name, &mean, &std);
    /* Element i of the whole tensor is value(seed + i): a cut of whole rows (or of a vector)
     * starts at element r0 * cols + c0 and is contiguous. */
    const uint64_t seed = gm_synthetic_seed(b->seed, name) + (uint64_t)(k->r0 * cols + k->c0);
    size_t bytes = 0;
    s = quantize ? b->be->ops->weight_synthetic_affine(b->be, w, &target.q, k->nr, k->nc, seed, mean, std, &bytes, b->err)
                 : b->be->ops->weight_synthetic(b->be, w, stored.type, k->nr, k->nc, seed, mean, std, &bytes, b->err);
    if (s) {
        gm_err_prefix(b->err, "tensor \"%s\": ", name);
        return s;
    }
    if (quantize) b->stats->n_quantized_on_load++;
    account(b, r->kind, w, bytes, bytes, kind == GM_BIND_VECTOR_F32);
    return GLMOE_OK;
}

/* A matrix of module `module` ("<module>.weight"), [rows, cols]. */
static glmoe_status bind_matrix_cut(binder *b, gm_weight *w, const char *module, const role *r, int64_t rows,
                                    int64_t cols, bool optional, cut k) {
    memset(w, 0, sizeof *w);
    if (!b->src) {
        char name[200];
        snprintf(name, sizeof name, "%s.weight", module);
        if (optional && !strcmp(module, "lm_head") && b->cfg->tie_word_embeddings) return GLMOE_OK;
        return bind_synthetic(b, w, module, name, r, rows, cols, GM_BIND_MATRIX, &k);
    }
    gm_tensor_src s;
    if (!tmap_module(b->src->set, module, &s)) {
        if (optional) return GLMOE_OK;
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "tensor \"%s.weight\" is missing from the checkpoint", module);
    }
    return bind_source(b, w, &s, r, rows, cols, GM_BIND_MATRIX, &k);
}

/* A matrix bound whole (on every rank of a split). */
static glmoe_status bind_matrix(binder *b, gm_weight *w, const char *module, const role *r, int64_t rows,
                                int64_t cols, bool optional) {
    return bind_matrix_cut(b, w, module, r, rows, cols, optional, whole(rows, cols));
}

/* A float vector named in full, of cols values, of which the rank binds [s.first, s.first + s.n). */
static glmoe_status bind_vector_cut(binder *b, gm_weight *w, const char *name, const role *r, int64_t cols, gm_slice part) {
    memset(w, 0, sizeof *w);
    const cut k = {0, 1, part.first, part.n};
    if (!b->src) return bind_synthetic(b, w, NULL, name, r, 1, cols, GM_BIND_VECTOR_F32, &k);
    const st_tensor *t = st_set_find(b->src->set, name);
    if (!t) return gm_fail(b->err, GLMOE_E_WEIGHTS, "tensor \"%s\" is missing from the checkpoint", name);
    const char *file = st_file_name(t->file);
    char got[96];
    if (!is_float(t->dtype))
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\": dtype %s is not supported (BF16, F16 or F32; glmoe "
                       "reads the %s in float)", file, name, st_dtype_name(t->dtype), r->kind);
    if (t->rank != 1 || (int64_t)t->shape[0] != cols)
        return gm_fail(b->err, GLMOE_E_WEIGHTS, "%s: tensor \"%s\" has shape %s but the config needs [%lld] (%s)", file,
                       name, shape_str(t, got, sizeof got), (long long)cols, r->why);
    gm_host_tensor h = {.w = {.type = wtype_of(t->dtype), .rows = 1, .cols = part.n,
                              .data = t->data + (size_t)part.first * (st_dtype_bits(t->dtype) / 8)},
                        .aligned = t->aligned};
    if (!b->be) {
        account(b, r->kind, &h.w, (uint64_t)part.n * (st_dtype_bits(t->dtype) / 8), 0, true);
        return GLMOE_OK;
    }
    size_t copied = 0;
    glmoe_status s = b->be->ops->weight_bind(b->be, w, &h, GM_BIND_VECTOR_F32, &copied, b->err);
    if (s) {
        gm_err_prefix(b->err, "tensor \"%s\": ", name);
        return s;
    }
    account(b, r->kind, &h.w, (uint64_t)part.n * (st_dtype_bits(t->dtype) / 8), copied, true); /* counted as stored */
    b->used[b->n_used++] = t;
    return GLMOE_OK;
}

static glmoe_status bind_vector(binder *b, gm_weight *w, const char *name, const role *r, int64_t cols) {
    return bind_vector_cut(b, w, name, r, cols, (gm_slice){0, cols});
}

/* The routed experts of layer i: Hugging Face per-expert modules or MLX's stacked ones; with room
 * for the shared expert after them when it has their shape (see fold_shared_expert). */
static glmoe_status bind_experts(binder *b, gm_experts *bank, int i) {
    const gm_config *c = b->cfg;
    const int64_t E = c->n_experts, H = c->hidden_size, Im = c->moe_intermediate_size;
    /* A split model's rank holds experts [e0, e0 + n) (ep), or its columns of every one (tp). */
    const gm_partition *P = &b->part;
    const int64_t e0 = P->experts.first, n = P->experts.n;
    const int64_t slots = n + partition_shared_in_bank(P, c);
    static const role experts = {"routed experts", "n_routed_experts, moe_intermediate_size, hidden_size"};
    bank->gate = calloc((size_t)slots, sizeof(gm_weight));
    bank->up = calloc((size_t)slots, sizeof(gm_weight));
    bank->down = calloc((size_t)slots, sizeof(gm_weight));
    if (!bank->gate || !bank->up || !bank->down)
        return gm_fail(b->err, GLMOE_E_NOMEM, "out of memory for %lld experts", (long long)E);
    bank->n = (int32_t)n;
    bank->first = (int32_t)e0;
    bank->n_all = n == E ? 0 : (int32_t)E;
    static const char *const proj[3] = {"gate_proj", "up_proj", "down_proj"};
    glmoe_status s;
    for (int64_t e = e0; e < e0 + n; e++) {
        gm_weight *slot[3] = {&bank->gate[e - e0], &bank->up[e - e0], &bank->down[e - e0]};
        for (int p = 0; p < 3; p++) {
            const int64_t rows = p == 2 ? H : Im, cols = p == 2 ? Im : H;
            const cut k = p == 2 ? cut_cols(H, P->expert_cols) : cut_rows(P->expert_cols, 1, H);
            if (!b->src) {
                char module[160], name[200];
                snprintf(module, sizeof module, "model.layers.%d.mlp.experts.%lld.%s", i, (long long)e, proj[p]);
                snprintf(name, sizeof name, "%s.weight", module);
                if ((s = bind_synthetic(b, slot[p], module, name, &experts, rows, cols, GM_BIND_MATRIX, &k))) return s;
                continue;
            }
            gm_tensor_src src;
            if (!tmap_expert(b->src->set, i, (int)e, proj[p], &src))
                return gm_fail(b->err, GLMOE_E_WEIGHTS,
                               "tensor \"model.layers.%d.mlp.experts.%lld.%s.weight\" is missing from the checkpoint (nor "
                               "is there a stacked \"model.layers.%d.mlp.switch_mlp.%s.weight\")",
                               i, (long long)e, proj[p], i, proj[p]);
            if ((s = bind_source(b, slot[p], &src, &experts, rows, cols, GM_BIND_MATRIX, &k))) return s;
        }
    }
    return GLMOE_OK;
}

/* A single shared expert has the routed experts' shape ([Im, H] and [H, Im]), so it joins their
 * bank as its last entry (descriptors copied, weights not: `owned` cleared so that they are
 * released once, as the layer's): the router appends it to every token with weight 1 and one
 * moe_experts call computes all of them, which on the GPU saves the shared MLP's four launches
 * per layer and reads its weights once per step with the rest. Then the backend describes the
 * bank (prepare_experts). */
static glmoe_status finish_experts(binder *b, gm_layer *L, int i) {
    gm_experts *bank = &L->experts;
    if (partition_shared_in_bank(&b->part, b->cfg)) {
        const int32_t e = bank->n;
        bank->gate[e] = L->sh_gate;
        bank->up[e] = L->sh_up;
        bank->down[e] = L->sh_down;
        bank->gate[e].owned = bank->up[e].owned = bank->down[e].owned = NULL;
        bank->n = e + 1;
        bank->shared = 1;
    }
    glmoe_status s;
    if (b->be && b->be->ops->prepare_experts && (s = b->be->ops->prepare_experts(b->be, bank, b->err))) {
        gm_err_prefix(b->err, "layer %d's experts: ", i);
        return s;
    }
    return GLMOE_OK;
}

static glmoe_status bind_layer(binder *b, gm_layer *L, int i) {
    const gm_config *c = b->cfg;
    const int64_t H = c->hidden_size, QD = (int64_t)c->n_heads * c->head_dim,
                  KD = (int64_t)c->n_kv_heads * c->head_dim;
    static const role norm = {"norms and biases", "hidden_size"};
    static const role attn_bias = {"norms and biases", "attention_bias is true"};
    static const role qk_norm = {"norms and biases", "use_qk_norm is true, head_dim"};
    static const role q = {"attention", "num_attention_heads*head_dim, hidden_size"};
    static const role kv = {"attention", "num_key_value_heads*head_dim, hidden_size"};
    static const role o = {"attention", "hidden_size, num_attention_heads*head_dim"};
    static const role dense = {"dense MLP", "intermediate_size, hidden_size"};
    static const role router = {"router", "n_routed_experts, hidden_size"};
    static const role shared = {"shared experts", "moe_intermediate_size*n_shared_experts, hidden_size"};
    char n[200];
    glmoe_status s;
#define NAME(suffix) (snprintf(n, sizeof n, "model.layers.%d.%s", i, suffix), n)
#define TRY(call)                                                                                                    \
    if ((s = (call))) return s
    TRY(bind_vector(b, &L->attn_norm, NAME("input_layernorm.weight"), &norm, H));
    TRY(bind_vector(b, &L->ffn_norm, NAME("post_attention_layernorm.weight"), &norm, H));
    /* A split model's rank: its heads' rows of q, k, v and their columns of o (partition.h). */
    const gm_partition *P = &b->part;
    const int64_t D = c->head_dim;
    const gm_slice qs = {P->heads.first * D, P->heads.n * D}, ks = {P->kv_heads.first * D, P->kv_heads.n * D};
    TRY(bind_matrix_cut(b, &L->wq, NAME("self_attn.q_proj"), &q, QD, H, false, cut_rows(qs, 1, H)));
    TRY(bind_matrix_cut(b, &L->wk, NAME("self_attn.k_proj"), &kv, KD, H, false, cut_rows(ks, 1, H)));
    TRY(bind_matrix_cut(b, &L->wv, NAME("self_attn.v_proj"), &kv, KD, H, false, cut_rows(ks, 1, H)));
    TRY(bind_matrix_cut(b, &L->wo, NAME("self_attn.o_proj"), &o, H, QD, false, cut_cols(H, qs)));
    if (c->attention_bias) {
        TRY(bind_vector_cut(b, &L->bq, NAME("self_attn.q_proj.bias"), &attn_bias, QD, qs));
        TRY(bind_vector_cut(b, &L->bk, NAME("self_attn.k_proj.bias"), &attn_bias, KD, ks));
        TRY(bind_vector_cut(b, &L->bv, NAME("self_attn.v_proj.bias"), &attn_bias, KD, ks));
    }
    if (c->use_qk_norm) {
        TRY(bind_vector(b, &L->q_norm, NAME("self_attn.q_norm.weight"), &qk_norm, c->head_dim));
        TRY(bind_vector(b, &L->k_norm, NAME("self_attn.k_norm.weight"), &qk_norm, c->head_dim));
    }
    L->is_moe = config_layer_is_moe(c, i);
    if (!L->is_moe) {
        const int64_t I = c->intermediate_size;
        TRY(bind_matrix_cut(b, &L->gate, NAME("mlp.gate_proj"), &dense, I, H, false, cut_rows(P->dense, 1, H)));
        TRY(bind_matrix_cut(b, &L->up, NAME("mlp.up_proj"), &dense, I, H, false, cut_rows(P->dense, 1, H)));
        static const role down = {"dense MLP", "hidden_size, intermediate_size"};
        TRY(bind_matrix_cut(b, &L->down, NAME("mlp.down_proj"), &down, H, I, false, cut_cols(H, P->dense)));
        return GLMOE_OK;
    }
    const int64_t E = c->n_experts, Is = (int64_t)c->moe_intermediate_size * c->n_shared_experts;
    TRY(bind_matrix(b, &L->router, NAME("mlp.gate"), &router, E, H, false));
    static const role router_bias = {"router", "n_routed_experts"};
    TRY(bind_vector(b, &L->router_bias, NAME("mlp.gate.e_score_correction_bias"), &router_bias, E));
    TRY(bind_experts(b, &L->experts, i));
    if (Is > 0) {
        const cut rows = cut_rows(P->shared, 1, H), cols = cut_cols(H, P->shared);
        TRY(bind_matrix_cut(b, &L->sh_gate, NAME("mlp.shared_experts.gate_proj"), &shared, Is, H, false, rows));
        TRY(bind_matrix_cut(b, &L->sh_up, NAME("mlp.shared_experts.up_proj"), &shared, Is, H, false, rows));
        static const role shared_down = {"shared experts", "hidden_size, moe_intermediate_size*n_shared_experts"};
        TRY(bind_matrix_cut(b, &L->sh_down, NAME("mlp.shared_experts.down_proj"), &shared_down, H, Is, false, cols));
    }
    TRY(finish_experts(b, L, i));
#undef TRY
#undef NAME
    return GLMOE_OK;
}

/* A matrix of the MTP layer that released checkpoints store as a copy of one of the model's
 * (embed_tokens, shared_head.head): the model's weight `same` when the bytes are equal (no
 * second copy on the device) or when the checkpoint leaves the copy out (the demo model does),
 * else its own. */
static glmoe_status bind_matrix_or_share(binder *b, gm_weight *w, const char *module, const role *r, int64_t rows,
                                         int64_t cols, const char *same_module, const gm_weight *same) {
    gm_tensor_src a, o;
    if (b->src && !tmap_module(b->src->set, module, &a)) {
        *w = *same;
        w->owned = NULL;
        return GLMOE_OK;
    }
    if (b->src && tmap_module(b->src->set, module, &a) && tmap_module(b->src->set, same_module, &o) &&
        o.index < 0 && a.t->dtype == o.t->dtype && a.t->nbytes == o.t->nbytes && !a.scales == !o.scales &&
        !a.biases == !o.biases && !memcmp(a.t->data, o.t->data, a.t->nbytes) &&
        (!a.scales || (a.scales->nbytes == o.scales->nbytes && !memcmp(a.scales->data, o.scales->data, a.scales->nbytes))) &&
        (!a.biases || (a.biases->nbytes == o.biases->nbytes && !memcmp(a.biases->data, o.biases->data, a.biases->nbytes)))) {
        gm_weight fmt;
        glmoe_status s = check_source(b, &a, r, rows, cols, &fmt); /* its shape, as if bound */
        if (s) return s;
        *w = *same; /* (planning: nothing bound, nothing more to count) */
        w->owned = NULL;
        const st_tensor *ts[3] = {a.t, a.scales, a.biases};
        for (int i = 0; i < 3; i++)
            if (ts[i]) b->used[b->n_used++] = ts[i];
        return GLMOE_OK;
    }
    return bind_matrix(b, w, module, r, rows, cols, false);
}

/* The multi-token-prediction layer at index L = num_hidden_layers (docs/spec/mtp.md). */
static glmoe_status bind_mtp(binder *b, gm_mtp *m, const gm_weights *w) {
    const gm_config *c = b->cfg;
    const int L = c->n_layers;
    const int64_t V = c->vocab_size, H = c->hidden_size;
    static const role norm = {"MTP layer", "hidden_size"};
    static const role embed = {"MTP layer", "vocab_size, hidden_size"};
    static const role eh = {"MTP layer", "hidden_size, 2*hidden_size"};
    char n[200], n2[200];
    glmoe_status s;
#define NAME(buf, suffix) (snprintf(buf, sizeof buf, "model.layers.%d.%s", L, suffix), buf)
    if ((s = bind_layer(b, &m->block, L))) return s;
    if ((s = bind_vector(b, &m->enorm, NAME(n, "enorm.weight"), &norm, H))) return s;
    if ((s = bind_vector(b, &m->hnorm, NAME(n, "hnorm.weight"), &norm, H))) return s;
    if ((s = bind_vector(b, &m->head_norm, NAME(n, "shared_head.norm.weight"), &norm, H))) return s;
    if ((s = bind_matrix(b, &m->eh_proj, NAME(n, "eh_proj"), &eh, H, 2 * H, false))) return s;
    if ((s = bind_matrix_or_share(b, &m->embed, NAME(n, "embed_tokens"), &embed, V, H, "model.embed_tokens", &w->embed)))
        return s;
    snprintf(n2, sizeof n2, "%s", c->tie_word_embeddings ? "model.embed_tokens" : "lm_head");
    if ((s = bind_matrix_or_share(b, &m->head, NAME(n, "shared_head.head"), &embed, V, H, n2, &w->lm_head))) return s;
#undef NAME
    return GLMOE_OK;
}

static int cmp_ptr(const void *a, const void *b) {
    uintptr_t x = (uintptr_t) * (const st_tensor *const *)a, y = (uintptr_t) * (const st_tensor *const *)b;
    return x < y ? -1 : x > y;
}

/* Counts what was not bound: MTP-layer tensors are expected and skipped; others are warned about. */
static void account_unbound(binder *b) {
    const st_set *set = b->src->set;
    qsort(b->used, b->n_used, sizeof *b->used, cmp_ptr);
    for (size_t i = 0; i < st_set_count(set); i++) {
        const st_tensor *t = st_set_tensor(set, i);
        if (bsearch(&t, b->used, b->n_used, sizeof *b->used, cmp_ptr)) continue;
        if (tmap_layer_index(t->name) >= b->cfg->n_layers) {
            b->stats->n_skipped++;
            b->stats->bytes_skipped += t->nbytes;
        } else {
            if (b->stats->n_unused < 8)
                gm_warn("%s: tensor \"%s\" is not used by the model", st_file_name(t->file), t->name);
            b->stats->n_unused++;
        }
    }
    if (b->stats->n_unused > 8) gm_warn("... %d unused tensors in all", b->stats->n_unused);
}

/* An override that matched no weight would be ignored silently: refuse it (unless it names a
 * module of the multi-token-prediction layer, which glmoe skips). */
static glmoe_status check_overrides(binder *b) {
    const gm_quant_config *qc = b->src->quant;
    for (size_t i = 0; i < qc->n_overrides; i++) {
        const gm_quant_override *o = &qc->overrides[i];
        if (!o->used && tmap_layer_index(o->module) < b->cfg->n_layers)
            return gm_fail(b->err, GLMOE_E_CONFIG, "config.json: %s[\"%s\"] names no quantizable module of the model",
                           qc->key, o->module);
    }
    return GLMOE_OK;
}

static glmoe_status bind_all(gm_weights *w, const gm_config *c, const gm_bind_source *src, uint64_t seed,
                             const gm_affine *requant, const gm_partition *part, gm_backend *be, gm_bind_stats *stats,
                             gm_err *err) {
    memset(w, 0, sizeof *w);
    memset(stats, 0, sizeof *stats);
    binder b = {.cfg = c, .src = src, .seed = seed, .be = be, .stats = stats, .err = err,
                .part = part ? *part : partition_whole(c)};
    const bool split = !partition_is_whole(&b.part);
    w->part = b.part;
    if (requant) b.requant = *requant;
    if (src)
        for (size_t i = 0; i < src->quant->n_overrides; i++) src->quant->overrides[i].used = false;
    /* A stacked tensor is counted once; every other is bound at most once. */
    b.used = calloc(3 * (src ? st_set_count(src->set) : 0) + 1, sizeof *b.used);
    w->layers = calloc((size_t)c->n_layers, sizeof *w->layers);
    glmoe_status s = GLMOE_OK;
    if (!b.used || !w->layers) {
        s = gm_fail(err, GLMOE_E_NOMEM, "out of memory binding weights");
        goto done;
    }
    const int64_t V = c->vocab_size, H = c->hidden_size;
    static const role embed = {"embedding", "vocab_size, hidden_size"};
    static const role head = {"lm_head", "vocab_size, hidden_size"};
    static const role final_norm = {"norms and biases", "hidden_size"};
    if ((s = bind_matrix(&b, &w->embed, "model.embed_tokens", &embed, V, H, false))) goto done;
    if ((s = bind_vector(&b, &w->final_norm, "model.norm.weight", &final_norm, H))) goto done;
    if ((s = bind_matrix(&b, &w->lm_head, "lm_head", &head, V, H, c->tie_word_embeddings))) goto done;
    if (!w->lm_head.rows) { /* tied: the head reads the embedding (not owned twice) */
        w->lm_head = w->embed;
        w->lm_head.owned = NULL;
    }
    for (int i = 0; i < c->n_layers; i++)
        if ((s = bind_layer(&b, &w->layers[i], i))) goto done;
    /* The MTP layer, when asked for and present (mlx-lm's conversions drop it). */
    char eh[96];
    snprintf(eh, sizeof eh, "model.layers.%d.eh_proj.weight", c->n_layers);
    if (src && src->mtp && !split && c->n_nextn_layers > 0 && st_set_find(src->set, eh)) { /* (not split yet) */
        const uint64_t before = stats->n_params;
        if (!(w->mtp = calloc(1, sizeof *w->mtp))) {
            s = gm_fail(err, GLMOE_E_NOMEM, "out of memory binding weights");
            goto done;
        }
        if ((s = bind_mtp(&b, w->mtp, w))) goto done;
        stats->n_params_mtp = stats->n_params - before;
        stats->n_params = before;
    }

    /* Active parameters: everything but the routed experts, plus K of them per MoE layer. */
    uint64_t per_expert = 3ull * (uint64_t)c->moe_intermediate_size * (uint64_t)H;
    int n_moe = c->n_layers - c->first_k_dense_replace;
    stats->n_params_active = stats->n_params - (uint64_t)n_moe * (uint64_t)c->n_experts * per_expert +
                             (uint64_t)n_moe * (uint64_t)c->n_experts_per_tok * per_expert;
    if (src) s = check_overrides(&b);
    if (!s && src && be && !split) account_unbound(&b); /* a rank leaves other ranks' experts unbound */
    if (!s && src && be && src->progress) src->progress(src->total, src->total, "", src->progress_user);
done:
    free(b.used);
    if (s || !be) weights_release(w, c, be);
    return s;
}

glmoe_status weights_plan(const gm_config *c, const gm_bind_source *src, gm_bind_stats *stats, gm_err *err) {
    gm_weights w;
    return bind_all(&w, c, src, 0, &src->requant, NULL, NULL, stats, err);
}

glmoe_status weights_bind(gm_weights *w, const gm_config *c, const gm_bind_source *src, gm_backend *be,
                          gm_bind_stats *stats, gm_err *err) {
    return bind_all(w, c, src, 0, &src->requant, NULL, be, stats, err);
}

glmoe_status weights_plan_synthetic(const gm_config *c, const gm_affine *requant, gm_bind_stats *stats, gm_err *err) {
    gm_weights w;
    return bind_all(&w, c, NULL, 0, requant, NULL, NULL, stats, err);
}

glmoe_status weights_bind_synthetic(gm_weights *w, const gm_config *c, uint64_t seed, const gm_affine *requant,
                                    gm_backend *be, gm_bind_stats *stats, gm_err *err) {
    return bind_all(w, c, NULL, seed, requant, NULL, be, stats, err);
}

glmoe_status weights_bind_rank(gm_weights *w, const gm_config *c, const gm_bind_source *src, uint64_t seed,
                               const gm_affine *requant, const gm_partition *part, gm_backend *be, gm_bind_stats *stats,
                               gm_err *err) {
    return bind_all(w, c, src, seed, src ? &src->requant : requant, part, be, stats, err);
}

uint64_t weights_plan_bytes(const gm_bind_stats *plan) { return plan->bytes_held; }

static void release(gm_backend *be, gm_weight *w) {
    if (w->owned && be) be->ops->weight_release(be, w);
}

static void release_layer(gm_backend *be, gm_layer *L) {
    gm_weight *all[] = {&L->attn_norm, &L->ffn_norm, &L->wq, &L->wk, &L->wv, &L->wo, &L->bq, &L->bk,
                        &L->bv, &L->q_norm, &L->k_norm, &L->gate, &L->up, &L->down, &L->router,
                        &L->router_bias, &L->sh_gate, &L->sh_up, &L->sh_down};
    for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) release(be, all[j]);
    gm_experts *bank = &L->experts;
    if (be && be->ops->release_experts) be->ops->release_experts(be, bank);
    for (int e = 0; bank->gate && e < bank->n; e++) {
        release(be, &bank->gate[e]);
        release(be, &bank->up[e]);
        release(be, &bank->down[e]);
    }
    free(bank->gate);
    free(bank->up);
    free(bank->down);
}

void weights_release(gm_weights *w, const gm_config *c, gm_backend *be) {
    if (!w) return;
    release(be, &w->embed);
    release(be, &w->final_norm);
    release(be, &w->lm_head);
    if (w->mtp) {
        gm_mtp *m = w->mtp;
        gm_weight *all[] = {&m->embed, &m->enorm, &m->hnorm, &m->eh_proj, &m->head_norm, &m->head};
        for (size_t j = 0; j < sizeof all / sizeof all[0]; j++) release(be, all[j]);
        release_layer(be, &m->block);
        free(m);
    }
    for (int i = 0; w->layers && i < c->n_layers; i++) release_layer(be, &w->layers[i]);
    free(w->layers);
    memset(w, 0, sizeof *w);
}
