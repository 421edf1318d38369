/*
 * test_quantize.c — MLX-format quantized checkpoints written and read by glmoe, and every way a
 * quantized checkpoint can be wrong.
 *
 * On the golden case tests/golden/glm45_like (bf16, per-expert Hugging Face tensors; hidden 128 so
 * groups of 32/64/128 divide most inputs, experts of width 10 so their down projections stay in
 * float, as mlx_lm.convert leaves them):
 *   1. glmoe_quantize_checkpoint at q4 g64 and q8 g32 writes a new directory (and refuses an
 *      existing one); loading it gives logits bit for bit equal to loading the bf16 checkpoint
 *      with glmoe_model_params.quantize (the same quantizer, the same decode), in one prefill and
 *      token by token; model info lists the formats per kind; the stacked expert tensors and the
 *      quantization block are where mlx-lm puts them;
 *   2. the quantized logits stay near transformers' bf16 ones (a sanity bound: q8 within 5% rel. L2,
 *      q4 under 1; routing in this model is sensitive by design, so q4 flips experts);
 *   3. bad inputs, each refused in one line naming the file, tensor or field: bits or group size
 *      outside the legal sets, a group size that does not divide a row, missing scales or biases,
 *      scales and biases of different dtypes, a U32 shape that contradicts the bits, an override
 *      naming no module, a quantized router (read in float), another quantization scheme;
 *   4. glmoe_model_params.quantize with illegal values, and quantizing an already quantized one;
 *   5. mlx-lm's own converted files (tests/golden_quant, q4g64 and q8g32 of two models): their
 *      bf16 source quantized while loading gives the same logits bit for bit (the same codes,
 *      scales and biases as mlx_lm.convert wrote);
 *   6. the MTP layer (tests/golden/mtp) is quantized like the others, in the file and while
 *      loading, with the same result: its tensors stacked and quantized where mlx-lm would put a
 *      layer's, and the same drafts and tokens from speculative steps on both.
 * mlx-lm's own files and MLX's logits are checked by tests/golden_quant (test_golden_quant.c).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "glmoe.h"
#include "io/safetensors.h"
#include "io/safetensors_write.h"
#include "test.h"

static char g_src[4200], g_tmp[64];

static int32_t g_ids[24];
static size_t g_n_ids;

/* Teacher-forced logits of g_ids (all rows), malloc'd; NULL (after a CHECK) on failure. */
static float *logits_of(const char *dir, const glmoe_quantize *q, bool one_by_one, glmoe_model_info *info) {
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CPU;
    mp.n_threads = 1;
    if (q) mp.quantize = *q;
    glmoe_status s = glmoe_model_load(&m, dir, &mp);
    CHECK(s == GLMOE_OK, "load %s: %s", dir, glmoe_model_errmsg(m));
    if (s) {
        glmoe_model_free(m);
        return NULL;
    }
    glmoe_model_info mi;
    glmoe_model_get_info(m, &mi);
    if (info) *info = mi;
    glmoe_context *ctx = NULL;
    glmoe_context_params cp = {.n_ctx = 64, .n_batch = 64};
    float *out = NULL;
    if (glmoe_context_create(&ctx, m, &cp) == GLMOE_OK) {
        out = malloc(g_n_ids * (size_t)mi.vocab_size * sizeof *out);
        const float *l;
        size_t rows;
        for (size_t t = 0; t < g_n_ids; t += one_by_one ? 1 : g_n_ids) {
            const size_t n = one_by_one ? 1 : g_n_ids;
            if (glmoe_context_eval(ctx, g_ids + t, n, GLMOE_LOGITS_ALL) || glmoe_context_logits(ctx, &l, &rows)) {
                CHECK(0, "eval: %s", glmoe_context_errmsg(ctx));
                free(out);
                out = NULL;
                break;
            }
            memcpy(out + t * (size_t)mi.vocab_size, l, n * (size_t)mi.vocab_size * sizeof *out);
        }
    }
    glmoe_context_free(ctx);
    if (info) info->weight_groups = NULL; /* owned by the model */
    glmoe_model_free(m);
    return out;
}

static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num / (den > 0 ? den : 1));
}

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, f);
    b[*len] = 0;
    fclose(f);
    return b;
}

static void remove_dir(const char *dir) {
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

/* ---- 1, 2: writing and reading -------------------------------------------------------------------- */

static void test_roundtrip(const float *ref_logits, int32_t V) {
    static const glmoe_quantize qs[] = {{4, 64}, {8, 32}};
    for (size_t k = 0; k < 2; k++) {
        char out[200];
        snprintf(out, sizeof out, "%s/q%dg%d", g_tmp, qs[k].bits, qs[k].group_size);
        char err[512] = "";
        glmoe_status s = glmoe_quantize_checkpoint(g_src, out, &qs[k], NULL, NULL, err, sizeof err);
        CHECK(s == GLMOE_OK, "quantize to %s: %s", out, err);
        if (s) continue;
        /* Never over an existing directory. */
        s = glmoe_quantize_checkpoint(g_src, out, &qs[k], NULL, NULL, err, sizeof err);
        CHECK(s == GLMOE_E_IO && strstr(err, "exists"), "quantize over an existing directory: %d %s", (int)s, err);

        /* Where mlx-lm puts things. */
        char path[300];
        snprintf(path, sizeof path, "%s/config.json", out);
        json_error_t je;
        json_t *cfg = json_load_file(path, 0, &je);
        json_t *qb = json_object_get(cfg, "quantization");
        CHECK(json_integer_value(json_object_get(qb, "bits")) == qs[k].bits &&
                  json_integer_value(json_object_get(qb, "group_size")) == qs[k].group_size &&
                  json_equal(qb, json_object_get(cfg, "quantization_config")),
              "%s: quantization block", path);
        json_decref(cfg);
        st_file *f = NULL;
        gm_err e = {0};
        snprintf(path, sizeof path, "%s/model.safetensors", out);
        CHECK(st_file_open(&f, path, &e) == GLMOE_OK, "%s", e.msg);
        if (f) {
            const st_tensor *gate = st_file_find(f, "model.layers.3.mlp.switch_mlp.gate_proj.weight");
            const st_tensor *down = st_file_find(f, "model.layers.3.mlp.switch_mlp.down_proj.weight");
            const st_tensor *router = st_file_find(f, "model.layers.3.mlp.gate.weight");
            CHECK(gate && gate->dtype == ST_U32 && gate->rank == 3 && gate->shape[0] == 16 && gate->shape[1] == 10 &&
                      gate->shape[2] == (uint64_t)(128 * qs[k].bits / 32),
                  "stacked quantized gate_proj");
            CHECK(st_file_find(f, "model.layers.3.mlp.switch_mlp.gate_proj.scales") != NULL, "gate_proj.scales");
            CHECK(down && down->dtype == ST_BF16 && down->rank == 3 && !st_file_find(f, "model.layers.3.mlp.switch_mlp.down_proj.scales"),
                  "down_proj (10 inputs) stays bf16, stacked");
            CHECK(router && router->dtype == ST_BF16, "the router stays bf16");
            CHECK(!st_file_find(f, "model.layers.3.mlp.experts.0.gate_proj.weight"), "no per-expert names left");
            st_file_close(f);
        }

        glmoe_model_info a_info, b_info;
        float *a = logits_of(out, NULL, false, &a_info), *b = logits_of(g_src, &qs[k], false, &b_info);
        float *c = logits_of(out, NULL, true, NULL);
        const size_t n = g_n_ids * (size_t)V;
        if (a && b && c) {
            CHECK(!memcmp(a, b, n * sizeof *a), "q%d g%d: the written checkpoint and quantizing while loading differ",
                  qs[k].bits, qs[k].group_size);
            double tok = rel_l2(c, a, n);
            CHECK(tok < 1e-5, "q%d: token by token vs one prefill: rel L2 %g", qs[k].bits, tok);
            double r = rel_l2(a, ref_logits, n);
            printf("q%d g%d: written = quantized while loading (bit for bit); vs transformers bf16: rel L2 %.4f\n",
                   qs[k].bits, qs[k].group_size, r);
            CHECK(r < (qs[k].bits == 8 ? 0.05 : 1.0), "q%d: rel L2 %g against the bf16 logits", qs[k].bits, r);
            CHECK(a_info.bytes_quantized > 0 && a_info.n_quantized_on_load == 0 && b_info.n_quantized_on_load > 0,
                  "info: %llu bytes quantized, %d / %d quantized on load", (unsigned long long)a_info.bytes_quantized,
                  a_info.n_quantized_on_load, b_info.n_quantized_on_load);
        }
        free(a);
        free(b);
        free(c);
    }
}

/* ---- 3: bad inputs -------------------------------------------------------------------------------- */

/* A copy of dir q4g64 with config.json's quantization block edited (JSON text of the block) and the
 * tensors named in drop left out (comma separated); `retype` names a tensor whose dtype is
 * rewritten as F32 (its values are not looked at before the refusal); `add` is "new=old": a tensor
 * added with the bytes and shape of another. */
static void make_variant_add(const char *name, const char *block, const char *drop, const char *retype,
                             const char *add) {
    char src[300], dst[300], path[400];
    snprintf(src, sizeof src, "%s/q4g64", g_tmp);
    snprintf(dst, sizeof dst, "%s/%s", g_tmp, name);
    mkdir(dst, 0755);
    /* config.json */
    snprintf(path, sizeof path, "%s/config.json", src);
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    if (block) {
        json_t *b = json_loads(block, JSON_DECODE_ANY, &je);
        json_object_set(cfg, "quantization", b);
        json_object_set_new(cfg, "quantization_config", b);
    }
    snprintf(path, sizeof path, "%s/config.json", dst);
    json_dump_file(cfg, path, 0);
    json_decref(cfg);
    /* the weights */
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    st_file *f = NULL;
    gm_err e = {0};
    if (st_file_open(&f, path, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    const size_t n = st_file_count(f);
    st_decl *d = calloc(n + 1, sizeof *d);
    const st_tensor **keep = calloc(n + 1, sizeof *keep);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const st_tensor *t = st_file_tensor(f, i);
        char probe[300];
        snprintf(probe, sizeof probe, ",%s,", t->name);
        char list[600];
        snprintf(list, sizeof list, ",%s,", drop ? drop : "");
        if (strstr(list, probe)) continue;
        keep[k] = t;
        d[k] = (st_decl){.name = t->name, .dtype = t->dtype, .rank = t->rank};
        memcpy(d[k].shape, t->shape, sizeof t->shape);
        if (retype && !strcmp(retype, t->name)) { /* same bytes, twice the elements' size: halve a dim */
            d[k].dtype = ST_F32;
            d[k].shape[t->rank - 1] /= 2;
        }
        k++;
    }
    char added[200] = "";
    if (add) {
        const char *eq = strchr(add, '=');
        snprintf(added, sizeof added, "%.*s", (int)(eq - add), add);
        const st_tensor *t = st_file_find(f, eq + 1);
        keep[k] = t;
        d[k] = (st_decl){.name = added, .dtype = t->dtype, .rank = t->rank};
        memcpy(d[k].shape, t->shape, sizeof t->shape);
        k++;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dst);
    st_writer *w = NULL;
    if (st_writer_open(&w, path, d, k, NULL, 0, &e) == GLMOE_OK) {
        for (size_t i = 0; i < k; i++) st_writer_append(w, keep[i]->data, (size_t)keep[i]->nbytes, &e);
        CHECK(st_writer_close(w, &e) == GLMOE_OK, "%s", e.msg);
    } else {
        CHECK(0, "%s", e.msg);
    }
    free(d);
    free(keep);
    st_file_close(f);
}

static void make_variant(const char *name, const char *block, const char *drop, const char *retype) {
    make_variant_add(name, block, drop, retype, NULL);
}

static void expect_refusal(const char *name, glmoe_status want, const char *needle1, const char *needle2) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CPU;
    glmoe_status s = glmoe_model_load(&m, dir, &mp);
    const char *msg = glmoe_model_errmsg(m);
    CHECK(s == want && strstr(msg, needle1) && (!needle2 || strstr(msg, needle2)) && !strchr(msg, '\n'),
          "%s: status %d (want %d), message \"%s\" (want \"%s\"%s%s)", name, (int)s, (int)want, msg, needle1,
          needle2 ? " and " : "", needle2 ? needle2 : "");
    printf("refused: %s: %s\n", name, msg);
    glmoe_model_free(m);
}

static void test_bad_inputs(void) {
    make_variant("bits7", "{\"bits\": 7, \"group_size\": 64}", NULL, NULL);
    expect_refusal("bits7", GLMOE_E_CONFIG, "bits is 7", "2, 3, 4, 5, 6 or 8");
    make_variant("group48", "{\"bits\": 4, \"group_size\": 48}", NULL, NULL);
    expect_refusal("group48", GLMOE_E_CONFIG, "group_size is 48", NULL);
    make_variant("mxfp4", "{\"bits\": 4, \"group_size\": 32, \"mode\": \"mxfp4\"}", NULL, NULL);
    expect_refusal("mxfp4", GLMOE_E_UNSUPPORTED, "mode", "mxfp4");
    make_variant("bits_contradict", "{\"bits\": 8, \"group_size\": 64}", NULL, NULL);
    expect_refusal("bits_contradict", GLMOE_E_WEIGHTS, "model.embed_tokens.weight", "holds 4 bits");
    make_variant("group_contradict", "{\"bits\": 4, \"group_size\": 32}", NULL, NULL);
    expect_refusal("group_contradict", GLMOE_E_WEIGHTS, "model.embed_tokens.scales", "group_size 32");
    /* The attention's output projection reads 12 heads x 16 = 192 inputs: 128 does not divide. */
    make_variant("group_indivisible", "{\"bits\": 4, \"group_size\": 64, "
                 "\"model.layers.0.self_attn.o_proj\": {\"group_size\": 128}}", NULL, NULL);
    expect_refusal("group_indivisible", GLMOE_E_WEIGHTS, "model.layers.0.self_attn.o_proj.weight", "does not divide");
    make_variant("no_scales", NULL, "model.layers.1.self_attn.q_proj.scales", NULL);
    expect_refusal("no_scales", GLMOE_E_WEIGHTS, "model.layers.1.self_attn.q_proj.scales", "missing");
    make_variant("no_biases", NULL, "model.layers.1.self_attn.q_proj.biases", NULL);
    expect_refusal("no_biases", GLMOE_E_WEIGHTS, "model.layers.1.self_attn.q_proj.biases", "missing");
    make_variant("mixed_dtypes", NULL, NULL, "model.layers.2.self_attn.k_proj.scales");
    expect_refusal("mixed_dtypes", GLMOE_E_WEIGHTS, "model.layers.2.self_attn.k_proj.scales", "one dtype");
    make_variant("override_nowhere", "{\"bits\": 4, \"group_size\": 64, "
                 "\"model.layers.1.mlp.nothing_here\": {\"bits\": 8}}", NULL, NULL);
    expect_refusal("override_nowhere", GLMOE_E_CONFIG, "model.layers.1.mlp.nothing_here", "names no");
    make_variant("router_quantized", "{\"bits\": 4, \"group_size\": 64, \"model.layers.3.mlp.gate\": {\"bits\": 4}}",
                 NULL, NULL);
    expect_refusal("router_quantized", GLMOE_E_WEIGHTS, "model.layers.3.mlp.gate", "no \"model.layers.3.mlp.gate.scales\"");
    make_variant_add("router_scales", NULL, NULL, NULL, "model.layers.3.mlp.gate.scales=model.layers.3.mlp.gate.weight");
    expect_refusal("router_scales", GLMOE_E_WEIGHTS, "model.layers.3.mlp.gate.weight", "reads the router in float");
    make_variant("override_float", "{\"bits\": 4, \"group_size\": 64, \"model.layers.0.self_attn.q_proj\": false}",
                 NULL, NULL);
    expect_refusal("override_float", GLMOE_E_WEIGHTS, "model.layers.0.self_attn.q_proj.weight", "keeps");
    make_variant("no_block", "null", NULL, NULL);
    expect_refusal("no_block", GLMOE_E_WEIGHTS, "no quantization block", NULL);
    make_variant("gptq", "{\"bits\": 4, \"group_size\": 64, \"quant_method\": \"gptq\"}", NULL, NULL);
    /* "quantization" with a quant_method is still MLX's block (mlx-lm reads it), so the method
     * must come through quantization_config alone to be foreign: */
    {
        char path[300];
        snprintf(path, sizeof path, "%s/gptq/config.json", g_tmp);
        json_error_t je;
        json_t *c = json_load_file(path, 0, &je);
        json_object_del(c, "quantization");
        json_dump_file(c, path, 0);
        json_decref(c);
    }
    expect_refusal("gptq", GLMOE_E_UNSUPPORTED, "quant_method", "gptq");
}

/* 5: glmoe_model_params.quantize on mlx-lm's bf16 source = loading mlx-lm's converted files. */
static void test_same_as_mlx_lm(const char *root) {
    static const char *const models[] = {"glm45_like", "air_like"};
    static const struct { const char *dir; glmoe_quantize q; } variants[] = {{"q4g64", {4, 64}}, {"q8g32", {8, 32}}};
    int32_t saved_ids[24];
    const size_t saved_n = g_n_ids;
    memcpy(saved_ids, g_ids, sizeof saved_ids);
    for (size_t m = 0; m < 2; m++) {
        char src[4300], ref[4400];
        snprintf(src, sizeof src, "%s/tests/golden_quant/%s/bf16", root, models[m]);
        snprintf(ref, sizeof ref, "%s/reference.json", src);
        json_error_t je;
        json_t *r = json_load_file(ref, 0, &je);
        json_t *ids = json_object_get(r, "teacher_ids");
        g_n_ids = json_array_size(ids) < 24 ? json_array_size(ids) : 24;
        for (size_t i = 0; i < g_n_ids; i++) g_ids[i] = (int32_t)json_integer_value(json_array_get(ids, i));
        const size_t V = (size_t)json_integer_value(json_array_get(json_object_get(r, "logits_shape"), 1));
        json_decref(r);
        for (size_t v = 0; v < 2; v++) {
            char conv[4400];
            snprintf(conv, sizeof conv, "%s/tests/golden_quant/%s/%s", root, models[m], variants[v].dir);
            float *a = logits_of(conv, NULL, false, NULL), *b = logits_of(src, &variants[v].q, false, NULL);
            CHECK(a && b && !memcmp(a, b, g_n_ids * V * sizeof *a),
                  "%s: --quantize q%d g%d of the bf16 source differs from mlx_lm.convert's %s", models[m],
                  variants[v].q.bits, variants[v].q.group_size, variants[v].dir);
            if (a && b) printf("%s %s: quantized while loading = mlx_lm.convert's files, bit for bit\n", models[m],
                               variants[v].dir);
            /* glmoe quantize's file of the same source against MLX's float32 forward of mlx-lm's. */
            char out[300], err[512], mlx_path[4500];
            snprintf(out, sizeof out, "%s/%s_%s", g_tmp, models[m], variants[v].dir);
            CHECK(glmoe_quantize_checkpoint(src, out, &variants[v].q, NULL, NULL, err, sizeof err) == GLMOE_OK, "%s", err);
            float *c = logits_of(out, NULL, false, NULL);
            snprintf(mlx_path, sizeof mlx_path, "%s/logits.f32", conv);
            size_t len = 0;
            float *mlx = (float *)(void *)read_all(mlx_path, &len);
            double worst = INFINITY;
            if (c && mlx && len == g_n_ids * V * sizeof(float)) {
                worst = 0;
                for (size_t i = 0; i < g_n_ids * V; i++) worst = fmax(worst, fabs((double)c[i] - mlx[i]));
            }
            CHECK(worst <= 1e-4, "%s: glmoe quantize's q%d g%d file vs MLX's logits: max |diff| %g", models[m],
                  variants[v].q.bits, variants[v].q.group_size, worst);
            printf("%s %s: glmoe quantize's file vs MLX's float32 logits: max |diff| %.2e\n", models[m], variants[v].dir,
                   worst);
            free(c);
            free(mlx);
            free(a);
            free(b);
        }
    }
    g_n_ids = saved_n;
    memcpy(g_ids, saved_ids, sizeof saved_ids);
}

static void test_params(void) {
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CPU;
    mp.quantize = (glmoe_quantize){7, 64};
    CHECK(glmoe_model_load(&m, g_src, &mp) == GLMOE_E_ARG && strstr(glmoe_model_errmsg(m), "7 bits"),
          "quantize 7 bits: %s", glmoe_model_errmsg(m));
    glmoe_model_free(m);
    m = NULL;
    mp.quantize = (glmoe_quantize){4, 16};
    CHECK(glmoe_model_load(&m, g_src, &mp) == GLMOE_E_ARG && strstr(glmoe_model_errmsg(m), "groups of 16"),
          "quantize g16: %s", glmoe_model_errmsg(m));
    glmoe_model_free(m);
    char out[200], err[512];
    snprintf(out, sizeof out, "%s/again", g_tmp);
    char q4[200];
    snprintf(q4, sizeof q4, "%s/q4g64", g_tmp);
    const glmoe_quantize q = {4, 64};
    CHECK(glmoe_quantize_checkpoint(q4, out, &q, NULL, NULL, err, sizeof err) == GLMOE_E_ARG &&
              strstr(err, "quantized already"),
          "quantizing a quantized checkpoint: %s", err);
    struct stat sb;
    CHECK(stat(out, &sb) != 0, "a refused job leaves no directory");
}

/* ---- 6: the MTP layer ------------------------------------------------------------------------------- */

/* Greedy speculative steps after a fixed prompt: every draft and every token, into out. */
static bool spec_run(const char *dir, const glmoe_quantize *q, int32_t *out, size_t n_out) {
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CPU;
    mp.n_threads = 1;
    if (q) mp.quantize = *q;
    glmoe_status s = glmoe_model_load(&m, dir, &mp);
    glmoe_context *ctx = NULL;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = 64;
    cp.n_draft = 3;
    if (!s) s = glmoe_context_create(&ctx, m, &cp);
    const int32_t prompt[5] = {10, 20, 30, 40, 50};
    if (!s) s = glmoe_context_eval(ctx, prompt, 5, GLMOE_LOGITS_NONE);
    int32_t tok = 7;
    size_t k = 0;
    while (!s && k + 8 <= n_out) {
        glmoe_spec_seq x = {.seq = 0, .token = tok, .n_draft = 3};
        s = glmoe_context_speculate(ctx, &x, 1);
        for (int i = 0; i < 3; i++) out[k++] = x.drafts[i];
        for (int i = 0; i < x.n_out; i++) out[k++] = x.out[i];
        tok = x.out[x.n_out - 1];
    }
    CHECK(s == GLMOE_OK, "%s: %s", dir, ctx ? glmoe_context_errmsg(ctx) : glmoe_model_errmsg(m));
    glmoe_context_free(ctx);
    glmoe_model_free(m);
    return s == GLMOE_OK;
}

static void test_mtp_layer(const char *root) {
    char src[4300], out[200], path[300], err[512] = "";
    snprintf(src, sizeof src, "%s/tests/golden/mtp", root);
    snprintf(out, sizeof out, "%s/mtp-q4g32", g_tmp);
    const glmoe_quantize q = {4, 32};
    glmoe_status s = glmoe_quantize_checkpoint(src, out, &q, NULL, NULL, err, sizeof err);
    CHECK(s == GLMOE_OK, "quantize %s: %s", src, err);
    if (s) return;
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    st_file *f = NULL;
    gm_err e = {0};
    CHECK(st_file_open(&f, path, &e) == GLMOE_OK, "%s", e.msg);
    if (f) {
        static const char *const quantized[] = {"model.layers.2.eh_proj", "model.layers.2.shared_head.head",
                                                "model.layers.2.embed_tokens", "model.layers.2.self_attn.q_proj",
                                                "model.layers.2.mlp.switch_mlp.gate_proj"};
        for (size_t i = 0; i < sizeof quantized / sizeof quantized[0]; i++) {
            char w[200], sc[200];
            snprintf(w, sizeof w, "%s.weight", quantized[i]);
            snprintf(sc, sizeof sc, "%s.scales", quantized[i]);
            const st_tensor *t = st_file_find(f, w);
            CHECK(t && t->dtype == ST_U32 && st_file_find(f, sc), "%s: quantized in the file", quantized[i]);
        }
        CHECK(!st_file_find(f, "model.layers.2.mlp.experts.0.gate_proj.weight"), "the MTP layer's experts are stacked");
        st_file_close(f);
    }
    int32_t a[64] = {0}, b[64] = {0};
    if (spec_run(out, NULL, a, 64) && spec_run(src, &q, b, 64))
        CHECK(!memcmp(a, b, sizeof a), "drafts and tokens differ between the written file and quantizing while loading");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_quantize REPO_ROOT\n");
        return 2;
    }
    snprintf(g_src, sizeof g_src, "%s/tests/golden/glm45_like", argv[1]);
    snprintf(g_tmp, sizeof g_tmp, "/tmp/glmoe-test-quantize-XXXXXX");
    if (!mkdtemp(g_tmp)) {
        perror("mkdtemp");
        return 1;
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/reference.json", g_src);
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    json_t *ids = json_object_get(ref, "teacher_ids");
    g_n_ids = json_array_size(ids);
    for (size_t i = 0; i < g_n_ids && i < 24; i++) g_ids[i] = (int32_t)json_integer_value(json_array_get(ids, i));
    const int32_t V = (int32_t)json_integer_value(json_array_get(json_object_get(ref, "logits_shape"), 1));
    json_decref(ref);
    size_t len = 0;
    snprintf(path, sizeof path, "%s/logits.f32", g_src);
    float *ref_logits = (float *)(void *)read_all(path, &len);
    CHECK(ref_logits && len == g_n_ids * (size_t)V * sizeof(float), "reference logits");

    if (!t_failed) test_roundtrip(ref_logits, V);
    if (!t_failed) test_bad_inputs();
    test_params();
    test_same_as_mlx_lm(argv[1]);
    test_mtp_layer(argv[1]);
    free(ref_logits);
    remove_dir(g_tmp);
    return test_summary("test_quantize");
}
