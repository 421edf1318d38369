/*
 * test_model_load.c — loading checkpoints that differ from the golden ones in dtype, alignment or
 * layout, and the API's behaviour on bad requests.
 *
 * Each case rewrites tests/golden/odd_dims/model.safetensors into a temporary model directory
 * through a small safetensors writer, then compares logits with the original:
 *   - every BF16 tensor stored as F32: identical logits (the values are the same);
 *   - every BF16 tensor stored as F16: logits within 2e-3 (f16 holds each bf16 value of these
 *     weights exactly unless it is below f16's normal range);
 *   - MLX-style unpadded header: every tensor unaligned, copied at load, identical logits;
 *   - a weight stored as I32: refused, naming the tensor and the dtype;
 *   - tie_word_embeddings with no lm_head: the head reads the embedding, equal to an untied copy.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glmoe.h"
#include "io/safetensors.h"
#include "test.h"
#include "util/dtype.h"

static char g_src[4096];   /* tests/golden/odd_dims */
static char g_tmp[64];

typedef enum { AS_IS, TO_F32, TO_F16, ONE_I32, DROP_LM_HEAD, LM_HEAD_FROM_EMBED } rewrite;

static uint16_t f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffffu;
    if (exp <= 0) { /* subnormal or zero in f16 */
        if (exp < -10) return (uint16_t)sign;
        man |= 0x800000u;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    if (exp >= 31) return (uint16_t)(sign | 0x7c00u);
    uint32_t h = sign | ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)h;
}

static void copy_file(const char *name, const char *dst_dir) {
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/%s", g_src, name);
    snprintf(b, sizeof b, "%s/%s", dst_dir, name);
    FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
    char buf[65536];
    size_t n;
    while (in && out && (n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    if (in) fclose(in);
    if (out) fclose(out);
}

/* Writes dir/model.safetensors from the golden file with one rewrite applied. pad: align the
 * data section to 8 bytes as the Python writer does (false: MLX style, every tensor misaligned). */
static void write_model(const char *dir, rewrite how, bool pad) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", g_src);
    st_file *f = NULL;
    gm_err err = {0};
    if (st_file_open(&f, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    size_t n = st_file_count(f);
    char *hdr = malloc(1 << 20);
    uint8_t **data = calloc(n, sizeof *data);
    size_t *len = calloc(n, sizeof *len);
    const st_tensor *embed = st_file_find(f, "model.embed_tokens.weight");
    size_t h = 0, off = 0;
    h += (size_t)sprintf(hdr + h, "{");
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_file_tensor(f, i);
        bool is_head = strcmp(t->name, "lm_head.weight") == 0;
        if (how == DROP_LM_HEAD && is_head) continue;
        const st_tensor *src = how == LM_HEAD_FROM_EMBED && is_head ? embed : t;
        const char *dt = st_dtype_name(t->dtype);
        size_t bytes = src->nbytes;
        uint8_t *d = malloc(bytes * 2 + 8);
        memcpy(d, src->data, bytes);
        if (t->dtype == ST_BF16 && how == TO_F32) {
            float *o = (float *)d;
            for (size_t k = bytes / 2; k-- > 0;) {
                uint16_t v;
                memcpy(&v, src->data + 2 * k, 2);
                o[k] = gm_bf16_to_f32(v);
            }
            bytes *= 2;
            dt = "F32";
        } else if (t->dtype == ST_BF16 && how == TO_F16) {
            for (size_t k = 0; k < bytes / 2; k++) {
                uint16_t v, o;
                memcpy(&v, src->data + 2 * k, 2);
                o = f32_to_f16(gm_bf16_to_f32(v));
                memcpy(d + 2 * k, &o, 2);
            }
            dt = "F16";
        } else if (how == ONE_I32 && strcmp(t->name, "model.layers.0.self_attn.o_proj.weight") == 0) {
            /* same bytes, half the elements: a 32-bit integer tensor of half the columns */
            dt = "I32";
        }
        data[i] = d;
        len[i] = bytes;
        char shape[128];
        if (how == ONE_I32 && strcmp(dt, "I32") == 0)
            snprintf(shape, sizeof shape, "[%llu,%llu]", (unsigned long long)t->shape[0],
                     (unsigned long long)t->shape[1] / 2);
        else if (t->rank == 1)
            snprintf(shape, sizeof shape, "[%llu]", (unsigned long long)t->shape[0]);
        else
            snprintf(shape, sizeof shape, "[%llu,%llu]", (unsigned long long)t->shape[0], (unsigned long long)t->shape[1]);
        h += (size_t)sprintf(hdr + h, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]}",
                             first ? "" : ",", t->name, dt, shape, off, off + bytes);
        first = false;
        off += bytes;
    }
    h += (size_t)sprintf(hdr + h, "}");
    if (pad)
        while (h % 8) hdr[h++] = ' ';
    else if (h % 2 == 0)
        hdr[h++] = ' '; /* an odd header length misaligns every 2- and 4-byte tensor */
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *o = fopen(path, "wb");
    uint64_t hl = h;
    fwrite(&hl, 8, 1, o);
    fwrite(hdr, 1, h, o);
    for (size_t i = 0; i < n; i++)
        if (data[i]) fwrite(data[i], 1, len[i], o);
    fclose(o);
    for (size_t i = 0; i < n; i++) free(data[i]);
    free(data);
    free(len);
    free(hdr);
    st_file_close(f);
}

static void make_case(char *dir, size_t cap, const char *name, rewrite how, bool pad, bool tie) {
    snprintf(dir, cap, "%s/%s", g_tmp, name);
    mkdir(dir, 0755);
    copy_file("generation_config.json", dir);
    char src[4200], dst[4200];
    snprintf(src, sizeof src, "%s/config.json", g_src);
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    FILE *in = fopen(src, "rb"), *out = fopen(dst, "wb");
    char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, in);
    buf[n] = 0;
    fclose(in);
    if (tie) {
        char *p = strstr(buf, "\"tie_word_embeddings\": false");
        if (p) memcpy(p, "\"tie_word_embeddings\": true ", strlen("\"tie_word_embeddings\": true "));
    }
    fputs(buf, out);
    fclose(out);
    write_model(dir, how, pad);
}

/* Logits of a fixed sequence, or NULL if the model fails to load (message in err). */
static float *run(const char *dir, char *err, size_t err_size, glmoe_model_info *info_out) {
    glmoe_model *m = NULL;
    glmoe_status s = glmoe_model_load(&m, dir, NULL);
    if (s) {
        snprintf(err, err_size, "%s", glmoe_model_errmsg(m));
        glmoe_model_free(m);
        return NULL;
    }
    glmoe_model_info info;
    glmoe_model_get_info(m, &info);
    if (info_out) *info_out = info;
    glmoe_context *ctx = NULL;
    glmoe_context_create(&ctx, m, NULL);
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = (i * 37 + 5) % info.vocab_size;
    glmoe_context_eval(ctx, ids, 12, GLMOE_LOGITS_ALL);
    const float *l;
    size_t rows;
    glmoe_context_logits(ctx, &l, &rows);
    float *copy = malloc(rows * (size_t)info.vocab_size * sizeof *copy);
    memcpy(copy, l, rows * (size_t)info.vocab_size * sizeof *copy);
    glmoe_context_free(ctx);
    glmoe_model_free(m);
    return copy;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static void test_api_misuse(void) {
    glmoe_model *m = NULL;
    CHECK(glmoe_model_load(&m, NULL, NULL) == GLMOE_E_ARG && m && strstr(glmoe_model_errmsg(m), "directory"));
    glmoe_model_free(m);
    glmoe_model_free(NULL);
    glmoe_context_free(NULL);
    CHECK(strlen(glmoe_model_errmsg(NULL)) > 0);
    CHECK(strcmp(glmoe_status_str(GLMOE_E_TOKEN), "token id out of range") == 0);

    CHECK(glmoe_model_load(&m, g_src, NULL) == GLMOE_OK, "%s", glmoe_model_errmsg(m));
    glmoe_context *ctx = NULL;
    glmoe_context_params cp = {.n_ctx = 8, .n_batch = 3};
    CHECK(glmoe_context_create(&ctx, m, &cp) == GLMOE_OK);
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK(glmoe_context_eval(ctx, ids, 9, GLMOE_LOGITS_LAST) == GLMOE_E_CONTEXT);
    CHECK(strstr(glmoe_context_errmsg(ctx), "do not fit") != NULL, "%s", glmoe_context_errmsg(ctx));
    CHECK(glmoe_context_n_past(ctx) == 0);
    int32_t bad[3] = {1, 509, 2};
    CHECK(glmoe_context_eval(ctx, bad, 3, GLMOE_LOGITS_LAST) == GLMOE_E_TOKEN);
    CHECK(strstr(glmoe_context_errmsg(ctx), "509") != NULL, "%s", glmoe_context_errmsg(ctx));
    int32_t neg = -1;
    CHECK(glmoe_context_eval(ctx, &neg, 1, GLMOE_LOGITS_LAST) == GLMOE_E_TOKEN);
    CHECK(glmoe_context_n_past(ctx) == 0);
    CHECK(glmoe_context_eval(ctx, ids, 8, GLMOE_LOGITS_NONE) == GLMOE_OK && glmoe_context_n_past(ctx) == 8);
    const float *l;
    size_t rows;
    CHECK(glmoe_context_logits(ctx, &l, &rows) != GLMOE_OK && rows == 0);
    CHECK(glmoe_context_eval(ctx, ids, 1, GLMOE_LOGITS_LAST) == GLMOE_E_CONTEXT, "full context must refuse");
    glmoe_context_reset(ctx);
    CHECK(glmoe_context_eval(ctx, ids, 1, GLMOE_LOGITS_LAST) == GLMOE_OK);
    glmoe_context_free(ctx);
    cp.n_ctx = 1 << 30;
    CHECK(glmoe_context_create(&ctx, m, &cp) == GLMOE_E_ARG && ctx != NULL);
    CHECK(strstr(glmoe_context_errmsg(ctx), "max_position_embeddings") != NULL, "%s", glmoe_context_errmsg(ctx));
    CHECK(!glmoe_model_errmsg(m)[0], "a failed context wrote the model's message: %s", glmoe_model_errmsg(m));
    CHECK(glmoe_context_eval(ctx, ids, 1, GLMOE_LOGITS_LAST) == GLMOE_E_ARG, "eval on a context that failed");
    CHECK(strstr(glmoe_context_errmsg(ctx), "max_position_embeddings") != NULL, "the failed create's message is kept");
    glmoe_context_free(ctx);
    ctx = NULL;
    CHECK(glmoe_context_create(&ctx, NULL, NULL) == GLMOE_E_ARG && ctx && strstr(glmoe_context_errmsg(ctx), "NULL"));
    glmoe_context_free(ctx);
    glmoe_model_free(m);
}

/* glmoe_model_params.progress: called after each matrix, done rising to total, then once with
 * done == total and ""; total is the bytes of the weights as held (the info's groups). */
typedef struct progress_log {
    int calls, finals;
    uint64_t last_done, total;
    bool rising, named;
} progress_log;

static void on_progress(uint64_t done, uint64_t total, const char *what, void *user) {
    progress_log *p = user;
    p->rising &= done >= p->last_done && done <= total && (!p->calls || total == p->total);
    p->calls++;
    p->last_done = done;
    p->total = total;
    if (done == total && !*what) p->finals++;
    else p->named &= what && strstr(what, ".weight") != NULL;
}

static void test_progress(void) {
    progress_log log = {.rising = true, .named = true};
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CPU;
    mp.progress = on_progress;
    mp.progress_user_data = &log;
    glmoe_model *m = NULL;
    CHECK(glmoe_model_load(&m, g_src, &mp) == GLMOE_OK, "load with progress: %s", glmoe_model_errmsg(m));
    glmoe_model_info info;
    glmoe_model_get_info(m, &info);
    uint64_t bytes = 0;
    for (int32_t i = 0; i < info.n_weight_groups; i++) bytes += info.weight_groups[i].bytes;
    CHECK(log.calls > info.n_layers && log.rising && log.named && log.finals == 1 && log.last_done == log.total &&
              log.total == bytes,
          "progress: %d calls, rising %d, named %d, %d final, last %llu of %llu, weights %llu", log.calls, log.rising,
          log.named, log.finals, (unsigned long long)log.last_done, (unsigned long long)log.total,
          (unsigned long long)bytes);
    glmoe_model_free(m);
}

int main(int argc, char **argv) {
    snprintf(g_src, sizeof g_src, "%s/tests/golden/odd_dims", argc > 1 ? argv[1] : ".");
    snprintf(g_tmp, sizeof g_tmp, "/tmp/glmoe_load_XXXXXX");
    if (!mkdtemp(g_tmp)) return 1;
    char err[1024] = "", dir[4200];
    glmoe_model_info info;

    float *base = run(g_src, err, sizeof err, &info);
    CHECK(base != NULL, "golden odd_dims: %s", err);
    if (!base) return test_summary("test_model_load");
    size_t n = 12 * (size_t)info.vocab_size;
    CHECK(info.bytes_f32 > 0 && info.bytes_bf16 > 0 && info.bytes_realigned == 0);

    make_case(dir, sizeof dir, "f32", TO_F32, true, false);
    float *l = run(dir, err, sizeof err, &info);
    CHECK(l && max_diff(l, base, n) == 0.0, "F32 weights: %s diff %g", err, l ? max_diff(l, base, n) : -1);
    CHECK(info.bytes_bf16 == 0 && info.bytes_f32 > 0);
    free(l);

    make_case(dir, sizeof dir, "f16", TO_F16, true, false);
    l = run(dir, err, sizeof err, &info);
    double d = l ? max_diff(l, base, n) : INFINITY;
    printf("F16 weights: max |diff| %.3g\n", d);
    CHECK(l && d <= 2e-3 && info.bytes_f16 > 0, "F16 weights: %s diff %g", err, d);
    free(l);

    make_case(dir, sizeof dir, "mlx_unaligned", AS_IS, false, false);
    l = run(dir, err, sizeof err, &info);
    CHECK(l && max_diff(l, base, n) == 0.0, "unaligned: %s", err);
    CHECK(info.bytes_realigned > 0, "realigned %llu", (unsigned long long)info.bytes_realigned);
    printf("unaligned file: %llu bytes realigned, logits identical\n", (unsigned long long)info.bytes_realigned);
    free(l);

    make_case(dir, sizeof dir, "i32", ONE_I32, true, false);
    l = run(dir, err, sizeof err, NULL);
    CHECK(!l && strstr(err, "model.layers.0.self_attn.o_proj.weight") && strstr(err, "I32"), "I32: %s", err);
    free(l);

    char untied[4200];
    make_case(untied, sizeof untied, "untied_copy", LM_HEAD_FROM_EMBED, true, false);
    make_case(dir, sizeof dir, "tied", DROP_LM_HEAD, true, true);
    float *a = run(untied, err, sizeof err, NULL), *b = run(dir, err, sizeof err, NULL);
    CHECK(a && b && max_diff(a, b, n) == 0.0, "tied embeddings: %s", err);
    free(a);
    free(b);

    make_case(dir, sizeof dir, "untied_missing_head", DROP_LM_HEAD, true, false);
    l = run(dir, err, sizeof err, NULL);
    CHECK(!l && strstr(err, "lm_head.weight") && strstr(err, "missing"), "missing head: %s", err);
    free(l);

    test_api_misuse();
    test_progress();
    free(base);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    return test_summary("test_model_load");
}
