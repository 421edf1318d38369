/*
 * harness.c — random data, backend buffers with guards, host weights and output comparison for
 * the op checks (see harness.h). Uses only the backend's vtable.
 */
#include "ops/harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A NaN with a payload no arithmetic produces: the guard after every buffer. */
#define GUARD_BITS 0x7fa5a5a5u

void ops_init(ops_ctx *c, gm_backend *be, const char *label, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->be = be;
    c->label = label;
    c->rng = seed;
}

/* Appends p to a growable pointer list; aborts the test on out of memory (test code only). */
static void track(void ***list, size_t *n, size_t *cap, void *p) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 32;
        *list = realloc(*list, *cap * sizeof **list);
        if (!*list) {
            fprintf(stderr, "test_ops: out of memory\n");
            exit(2);
        }
    }
    (*list)[(*n)++] = p;
}

void ops_release(ops_ctx *c) {
    for (size_t i = 0; i < c->n_weights; i++) {
        c->be->ops->weight_release(c->be, c->weights[i]);
        free(c->weights[i]);
    }
    for (size_t i = 0; i < c->n_dev; i++) c->be->ops->dealloc(c->be, c->dev[i]);
    for (size_t i = 0; i < c->n_hosts; i++) {
        free(c->hosts[i]->alloc);
        free(c->hosts[i]);
    }
    c->n_weights = c->n_dev = c->n_hosts = 0;
}

void ops_destroy(ops_ctx *c) {
    ops_release(c);
    free(c->weights);
    free(c->dev);
    free(c->hosts);
    memset(c, 0, sizeof *c);
}

/* ---- random data: splitmix64 ------------------------------------------------------------- */

uint64_t ops_rand_u64(ops_ctx *c) {
    uint64_t z = (c->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double ops_rand_uniform(ops_ctx *c, double lo, double hi) {
    return lo + (hi - lo) * (double)(ops_rand_u64(c) >> 11) * 0x1p-53;
}

int32_t ops_rand_int(ops_ctx *c, int32_t lo, int32_t hi) {
    return lo + (int32_t)(ops_rand_u64(c) % (uint64_t)((int64_t)hi - lo + 1));
}

void ops_fill(ops_ctx *c, float *v, size_t n, double lo_mag, double hi_mag) {
    for (size_t i = 0; i < n; i++) {
        double m = ops_rand_uniform(c, lo_mag, hi_mag);
        v[i] = (float)(ops_rand_u64(c) & 1 ? m : -m);
    }
}

float *ops_random_floats(ops_ctx *c, size_t n, double lo_mag, double hi_mag) {
    float *v = malloc((n ? n : 1) * sizeof *v);
    ops_fill(c, v, n, lo_mag, hi_mag);
    return v;
}

/* ---- host matrices ------------------------------------------------------------------------ */

/* f16 bits of a (truncated towards zero), |v| < 65504, for normal and subnormal values. */
static uint16_t f16_bits(double v) {
    uint16_t sign = v < 0 ? 0x8000 : 0;
    double a = fabs(v);
    if (a < 0x1p-14) return sign | (uint16_t)(a * 0x1p24); /* subnormal: units of 2^-24 */
    int e;
    double m = frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
    return sign | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)((2 * m - 1) * 1024);
}

ops_host_matrix *ops_host_matrix_new(ops_ctx *c, ref_dtype t, int64_t rows, int64_t cols, double scale,
                                     bool unaligned) {
    ops_host_matrix *m = calloc(1, sizeof *m);
    size_t n = (size_t)rows * (size_t)cols, esz = t == REF_F32 ? 4 : 2;
    m->alloc = malloc(n * esz + 16);
    if (!m || !m->alloc) {
        fprintf(stderr, "test_ops: out of memory\n");
        exit(2);
    }
    unsigned char *data = (unsigned char *)m->alloc + (unaligned ? 1 : 0);
    for (size_t i = 0; i < n; i++) {
        double mag = ops_rand_uniform(c, 1.0 / 64, 1.0) * scale;
        double v = ops_rand_u64(c) & 1 ? mag : -mag;
        if (t == REF_F32) {
            float f = (float)v;
            memcpy(data + 4 * i, &f, 4);
        } else if (t == REF_BF16) {
            float f = (float)v;
            uint32_t u;
            memcpy(&u, &f, 4);
            uint16_t h = (uint16_t)(u >> 16); /* truncation: any bf16 value will do */
            memcpy(data + 2 * i, &h, 2);
        } else {
            /* One value in 50 is an f16 subnormal, to exercise that branch of the conversion. */
            if (ops_rand_u64(c) % 50 == 0) v = (v < 0 ? -1 : 1) * ops_rand_uniform(c, 0x1p-23, 0x1p-14);
            uint16_t h = f16_bits(v);
            memcpy(data + 2 * i, &h, 2);
        }
    }
    m->ref = (ref_matrix){.type = t, .rows = rows, .cols = cols, .data = data};
    gm_wtype wt = t == REF_F32 ? GM_W_F32 : t == REF_BF16 ? GM_W_BF16 : GM_W_F16;
    m->host = (gm_host_tensor){.w = {.type = wt, .rows = rows, .cols = cols, .data = data}, .aligned = !unaligned};
    track((void ***)&c->hosts, &c->n_hosts, &c->cap_hosts, m);
    return m;
}

/* A scale-type value's raw bits (bf16 truncated, f16 via f16_bits, f32 as is) at p[i]. */
static void put_scalar(void *p, ref_dtype t, size_t i, double v) {
    unsigned char *b = p;
    float f = (float)v;
    if (t == REF_F32) {
        memcpy(b + 4 * i, &f, 4);
    } else if (t == REF_BF16) {
        uint32_t u;
        memcpy(&u, &f, 4);
        uint16_t h = (uint16_t)(u >> 16);
        memcpy(b + 2 * i, &h, 2);
    } else {
        uint16_t h = f16_bits(v);
        memcpy(b + 2 * i, &h, 2);
    }
}

ops_host_matrix *ops_affine_matrix_new(ops_ctx *c, int bits, int group, ref_dtype scale_type, int64_t rows,
                                       int64_t cols, double scale, bool unaligned) {
    ops_host_matrix *m = calloc(1, sizeof *m);
    const size_t code_bytes = (size_t)rows * (size_t)cols * (size_t)bits / 8;
    const size_t n_tab = (size_t)rows * (size_t)(cols / group), esz = scale_type == REF_F32 ? 4 : 2;
    m->alloc = malloc(code_bytes + 2 * n_tab * esz + 64);
    if (!m || !m->alloc) {
        fprintf(stderr, "test_ops: out of memory\n");
        exit(2);
    }
    unsigned char *codes = (unsigned char *)m->alloc + (unaligned ? 1 : 0);
    unsigned char *scales = (unsigned char *)m->alloc + ((code_bytes + 1 + 15) & ~(size_t)15);
    unsigned char *biases = scales + n_tab * esz;
    for (size_t i = 0; i < code_bytes; i++) codes[i] = (unsigned char)ops_rand_u64(c);
    const double step = scale / (double)((1 << bits) - 1);
    for (size_t i = 0; i < n_tab; i++) {
        double s = ops_rand_uniform(c, 0.5, 1.5) * step;
        put_scalar(scales, scale_type, i, ops_rand_u64(c) & 1 ? s : -s); /* MLX's scales take both signs */
        put_scalar(biases, scale_type, i, ops_rand_uniform(c, -0.5, 0.5) * scale);
    }
    m->ref = (ref_matrix){.type = REF_AFFINE, .rows = rows, .cols = cols, .data = codes, .bits = bits, .group = group,
                          .scale_type = scale_type, .scales = scales, .biases = biases};
    const gm_wtype st = scale_type == REF_F32 ? GM_W_F32 : scale_type == REF_BF16 ? GM_W_BF16 : GM_W_F16;
    m->host = (gm_host_tensor){.w = {.type = GM_W_AFFINE, .q = {bits, group, st}, .rows = rows, .cols = cols,
                                     .data = codes, .scales = scales, .biases = biases},
                               .aligned = !unaligned};
    track((void ***)&c->hosts, &c->n_hosts, &c->cap_hosts, m);
    return m;
}

gm_weight *ops_bind(ops_ctx *c, const ops_host_matrix *m, gm_bind_kind kind) {
    gm_weight *w = calloc(1, sizeof *w);
    size_t copied = 0;
    if (!w) exit(2);
    glmoe_status s = c->be->ops->weight_bind(c->be, w, &m->host, kind, &copied, &c->err);
    if (s) {
        fprintf(stderr, "[%s] weight_bind %s %lldx%lld failed: %s\n", c->label, ref_dtype_name(m->ref.type),
                (long long)m->ref.rows, (long long)m->ref.cols, c->err.msg);
        free(w);
        return NULL;
    }
    track((void ***)&c->weights, &c->n_weights, &c->cap_weights, w);
    /* Bytes at an odd address cannot be used in place: the backend must have copied them. */
    size_t bytes = (size_t)m->ref.rows * (size_t)m->ref.cols *
                   (m->ref.type == REF_AFFINE ? (size_t)m->ref.bits : m->ref.type == REF_F32 ? 32 : 16) / 8;
    if (kind == GM_BIND_MATRIX && !m->host.aligned && copied < bytes) {
        fprintf(stderr, "[%s] FAIL weight_bind of an unaligned %s %lldx%lld matrix reports %zu bytes copied, "
                "want >= %zu\n", c->label, ref_dtype_name(m->ref.type), (long long)m->ref.rows,
                (long long)m->ref.cols, copied, bytes);
        return NULL;
    }
    return w;
}

double *ops_host_vector_values(const ops_host_matrix *m) {
    size_t n = (size_t)m->ref.rows * (size_t)m->ref.cols;
    double *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = ref_elem(&m->ref, 0, (int64_t)i);
    return v;
}

/* ---- backend buffers ---------------------------------------------------------------------- */

/* Allocates n 4-byte elements + guard and uploads `init` (n elements) followed by the guard. */
static void *upload(ops_ctx *c, const void *init, size_t n) {
    size_t bytes = (n + OPS_GUARD) * 4;
    uint32_t *h = malloc(bytes);
    void *d = NULL;
    if (!h) exit(2);
    memcpy(h, init, n * 4);
    for (size_t i = n; i < n + OPS_GUARD; i++) h[i] = GUARD_BITS;
    if (c->be->ops->alloc(c->be, bytes, &d, &c->err) || c->be->ops->copy_in(c->ex, d, h, bytes, &c->err)) {
        fprintf(stderr, "[%s] cannot allocate or fill %zu bytes: %s\n", c->label, bytes, c->err.msg);
        exit(2);
    }
    free(h);
    track(&c->dev, &c->n_dev, &c->cap_dev, d);
    return d;
}

float *ops_upload_f(ops_ctx *c, const float *host, size_t n) {
    if (host) return upload(c, host, n);
    float *nan_fill = malloc((n ? n : 1) * sizeof *nan_fill);
    for (size_t i = 0; i < n; i++) nan_fill[i] = NAN;
    float *d = upload(c, nan_fill, n);
    free(nan_fill);
    return d;
}

int32_t *ops_upload_i(ops_ctx *c, const int32_t *host, size_t n) {
    if (host) return upload(c, host, n);
    int32_t *fill = malloc((n ? n : 1) * sizeof *fill);
    for (size_t i = 0; i < n; i++) fill[i] = -1;
    int32_t *d = upload(c, fill, n);
    free(fill);
    return d;
}

static bool download(ops_ctx *c, void *host, const void *dev, size_t n, const char *what) {
    size_t bytes = (n + OPS_GUARD) * 4;
    uint32_t *h = malloc(bytes);
    if (!h) exit(2);
    if (c->be->ops->copy_out(c->ex, h, dev, bytes, &c->err)) {
        fprintf(stderr, "[%s] %s: copy_out failed: %s\n", c->label, what, c->err.msg);
        free(h);
        return false;
    }
    bool ok = true;
    for (size_t i = n; i < n + OPS_GUARD; i++)
        if (h[i] != GUARD_BITS) {
            fprintf(stderr, "[%s] %s: wrote past its %zu elements (guard element %zu is 0x%08x)\n", c->label,
                    what, n, i - n, h[i]);
            ok = false;
            break;
        }
    memcpy(host, h, n * 4);
    free(h);
    return ok;
}

bool ops_download_f(ops_ctx *c, float *host, const float *dev, size_t n, const char *what) {
    return download(c, host, dev, n, what);
}

bool ops_download_i(ops_ctx *c, int32_t *host, const int32_t *dev, size_t n, const char *what) {
    return download(c, host, dev, n, what);
}

/* ---- comparison --------------------------------------------------------------------------- */

bool ops_compare_ex(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref, size_t n,
                    double tol, double elem_factor) {
    double num = 0, den = 0;
    size_t nans = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)out[i] - ref[i];
        if (isnan(out[i])) nans++;
        num += d * d;
        den += ref[i] * ref[i];
    }
    double err = sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
    /* Element by element: a single wrong element hardly moves the norm of a long output. */
    double rms = sqrt(den / (double)(n ? n : 1));
    size_t first = n, worst = 0;
    double worst_d = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)out[i] - ref[i]);
        if (isnan(d)) d = INFINITY;
        if (d > worst_d) worst_d = d, worst = i;
        double scale = fabs(ref[i]) > rms ? fabs(ref[i]) : rms;
        if (first == n && elem_factor > 0 && d > elem_factor * tol * (scale > 0 ? scale : 1.0)) first = i;
    }
    bool ok = nans == 0 && err <= tol && first == n; /* NaN makes err NaN, which fails too */
    st->cases++;
    double ratio = isnan(err) ? INFINITY : tol > 0 ? err / tol : err > 0 ? INFINITY : 0;
    if (st->cases == 1 || !(ratio <= st->worst)) {
        st->worst = ratio;
        st->worst_err = err;
        st->worst_tol = tol;
    }
    if (ok) return true;
    st->failures++;
    if (first == n) first = worst;
    fprintf(stderr, "[%s] FAIL %s: rel err %.3g (tol %.3g)", c->label, what, err, tol);
    if (n) fprintf(stderr, "; first mismatch at [%zu]: got %.9g, want %.9g", first, out[first], ref[first]);
    if (nans) fprintf(stderr, "; %zu of %zu elements NaN (not written?)", nans, n);
    fputc('\n', stderr);
    return false;
}

bool ops_compare(ops_ctx *c, ops_stats *st, const char *what, const float *out, const double *ref, size_t n,
                 double tol) {
    return ops_compare_ex(c, st, what, out, ref, n, tol, OPS_ELEM_FACTOR);
}

void ops_stats_fail(ops_stats *st) {
    st->cases++;
    st->failures++;
    st->worst = INFINITY;
}
