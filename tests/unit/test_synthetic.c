/*
 * test_synthetic.c — models that exist only as a configuration (`glmoe bench --config`):
 *   - the released configurations by name carry the values of spec §1.1, layers cut as asked;
 *   - synthetic values equal an independent Python implementation of the generator
 *     (splitmix64 / FNV-1a, computed with numpy float32 arithmetic) bit for bit;
 *   - weights_bind_synthetic fills every slot with the intended distribution (norms 1, router
 *     bias 0, matrices of standard deviation 0.02), deterministically from the seed, and the
 *     model runs: finite logits, the same for the same seed, different for another;
 *   - quantized synthetic models (weights_bind_synthetic with requant: q4 g64, which leaves the
 *     tiny model's 32- and 96-wide inputs in bf16 (a mixed model), q8 g32, q3 g128) equal, byte
 *     for byte, loading a bf16 checkpoint of the same synthetic weights with --quantize (written
 *     to a temporary directory and bound by weights_bind with gm_bind_source.requant: the load
 *     path itself); the CPU backend's weight_synthetic_affine equals gm_affine_quantize_row of the
 *     rounded bf16 values for every scale type; and the byte estimate of the plan
 *     (weights_plan_synthetic, weights_plan_bytes) equals the sum of the bound weights' sizes;
 *   - with a GPU: the CUDA backend generates the identical bytes on the device (bf16 and
 *     quantized: codes, scales and biases of every weight, and single tensors with F16 and F32
 *     scales of odd shapes), and its forward agrees with the CPU's (rel. L2 < 1e-2). Without one
 *     that part prints SKIP.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "io/safetensors_write.h"
#include "model/model.h"
#include "test.h"
#include "util/dtype.h"
#include "util/synthetic.h"
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#endif

static const char *const k_tiny =
    "{\"architectures\": [\"Glm4MoeForCausalLM\"], \"hidden_size\": 64, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"head_dim\": 16, \"intermediate_size\": 96, \"moe_intermediate_size\": 32,"
    " \"n_routed_experts\": 8, \"num_experts_per_tok\": 2, \"n_shared_experts\": 1, \"num_hidden_layers\": 2,"
    " \"first_k_dense_replace\": 1, \"vocab_size\": 256, \"attention_bias\": true, \"use_qk_norm\": true,"
    " \"partial_rotary_factor\": 0.5, \"max_position_embeddings\": 64, \"routed_scaling_factor\": 2.5}";

static void test_presets(void) {
    gm_config c;
    gm_err err = {0};
    CHECK(config_preset(&c, "glm-4.5-air", 0, &err) == GLMOE_OK, "%s", err.msg);
    CHECK(c.hidden_size == 4096 && c.n_layers == 46 && c.intermediate_size == 10944 &&
          c.moe_intermediate_size == 1408 && c.n_experts == 128 && c.n_experts_per_tok == 8 &&
          c.first_k_dense_replace == 1 && c.n_heads == 96 && c.n_kv_heads == 8 && c.head_dim == 128 &&
          c.rotary_dim == 64 && !c.use_qk_norm && c.attention_bias && c.routed_scaling_factor == 1.0f &&
          c.vocab_size == 151552 && c.max_position_embeddings == 131072 && c.n_eos == 3,
          "glm-4.5-air values");
    CHECK(config_preset(&c, "glm-4.5", 0, &err) == GLMOE_OK, "%s", err.msg);
    CHECK(c.hidden_size == 5120 && c.n_layers == 92 && c.first_k_dense_replace == 3 && c.n_experts == 160 &&
          c.moe_intermediate_size == 1536 && c.use_qk_norm && c.routed_scaling_factor == 2.5f,
          "glm-4.5 values");
    CHECK(config_preset(&c, "glm-4.7", 0, &err) == GLMOE_OK && c.max_position_embeddings == 202752, "glm-4.7");
    CHECK(config_preset(&c, "glm-4.5", 2, &err) == GLMOE_OK && c.n_layers == 2 && c.first_k_dense_replace == 2,
          "glm-4.5 cut to 2 layers keeps them dense: %d %d", c.n_layers, c.first_k_dense_replace);
    CHECK(config_preset(&c, "glm-4.5-air", 4, &err) == GLMOE_OK && c.n_layers == 4 && c.first_k_dense_replace == 1,
          "air cut to 4");
    CHECK(config_preset(&c, "glm-5", 0, &err) == GLMOE_E_ARG && strstr(err.msg, "unknown configuration \"glm-5\"") &&
              strstr(err.msg, "glm-4.5-air"),
          "unknown name: %s", err.msg);
    CHECK(config_preset(&c, "glm-4.5-air", 47, &err) == GLMOE_E_ARG && strstr(err.msg, "46 layers"), "%s", err.msg);
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void test_generator(void) {
    /* golden values from a Python reimplementation (see the file comment) */
    uint64_t s = gm_synthetic_seed(7, "model.layers.0.self_attn.q_proj.weight");
    CHECK(s == 0x6a03a92b48acc501ull, "tensor seed %llx", (unsigned long long)s);
    CHECK(bits(gm_synthetic_value(s, 0, 0.0f, 0.02f)) == 0x3cfc9ea9u, "value 0");
    CHECK(bits(gm_synthetic_value(s, 1, 0.0f, 0.02f)) == 0x3c1c1024u, "value 1");
    CHECK(bits(gm_synthetic_value(s, 12345, 0.0f, 0.02f)) == 0x3c28fe59u, "value 12345");
    CHECK(bits(gm_synthetic_value(s, 999999, 0.0f, 0.02f)) == 0xbce5a544u, "value 999999");
    double sum = 0, sq = 0, lo = 1, hi = -1;
    const int n = 1 << 20;
    for (int i = 0; i < n; i++) {
        double v = gm_synthetic_value(s, (uint64_t)i, 0.5f, 0.02f);
        sum += v;
        sq += (v - 0.5) * (v - 0.5);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    CHECK(fabs(sum / n - 0.5) < 1e-4, "mean %g", sum / n);
    CHECK(fabs(sqrt(sq / n) - 0.02) < 2e-4, "std %g", sqrt(sq / n));
    CHECK(lo >= 0.5 - 0.0347 && hi <= 0.5 + 0.0347 && lo < 0.5 - 0.034 && hi > 0.5 + 0.034, "range [%g, %g]", lo, hi);
}

/* Binds the tiny model synthetically on be (quantized as rq says, NULL: bf16) and returns its
 * logits for a few ids (malloc'd). */
static float *run_tiny_q(gm_backend *be, const gm_config *c, uint64_t seed, const gm_affine *rq, gm_weights *w) {
    gm_bind_stats st;
    gm_err err = {0};
    gm_state state;
    static const int32_t ids[] = {3, 200, 17, 99, 5};
    const int32_t T = 5;
    float *logits = malloc((size_t)T * c->vocab_size * sizeof(float));
    glmoe_status s = weights_bind_synthetic(w, c, seed, rq, be, &st, &err);
    CHECK(s == GLMOE_OK, "bind: %s", err.msg);
    if (s) {
        free(logits);
        return NULL;
    }
    CHECK(st.n_params > 0 && st.n_params_active < st.n_params, "stats %llu %llu", (unsigned long long)st.n_params,
          (unsigned long long)st.n_params_active);
    s = state_create(&state, c, be, 8, 16, 1, NULL, &err);
    CHECK(s == GLMOE_OK, "state: %s", err.msg);
    if (!s) {
        s = forward(c, w, &state, ids, T, 0, logits, &err);
        CHECK(s == GLMOE_OK, "forward: %s", err.msg);
        state_free(&state);
    }
    return logits;
}

static float *run_tiny(gm_backend *be, const gm_config *c, uint64_t seed, gm_weights *w) {
    return run_tiny_q(be, c, seed, NULL, w);
}

/* ---- every weight of a model, by name ------------------------------------------------------ */

#define MAX_SLOTS 512
typedef struct slots {
    size_t n;
    char name[MAX_SLOTS][96];
    gm_weight *w[MAX_SLOTS];
    bool vector[MAX_SLOTS];
} slots;

static void add_slot(slots *l, gm_weight *w, bool vector, const char *fmt, int i, int e) {
    if (!w->data || l->n >= MAX_SLOTS) return;
    char mod[80];
    snprintf(mod, sizeof mod, fmt, i, e);
    snprintf(l->name[l->n], sizeof l->name[0], "%s", mod);
    l->w[l->n] = w;
    l->vector[l->n++] = vector;
}

/* The weights of w in a fixed order, with their checkpoint names (the model's own layout). */
static void list_slots(const gm_config *c, gm_weights *w, slots *l) {
    l->n = 0;
    add_slot(l, &w->embed, false, "model.embed_tokens.weight", 0, 0);
    add_slot(l, &w->final_norm, true, "model.norm.weight", 0, 0);
    add_slot(l, &w->lm_head, false, "lm_head.weight", 0, 0);
    for (int i = 0; i < c->n_layers; i++) {
        gm_layer *L = &w->layers[i];
        add_slot(l, &L->attn_norm, true, "model.layers.%d.input_layernorm.weight", i, 0);
        add_slot(l, &L->ffn_norm, true, "model.layers.%d.post_attention_layernorm.weight", i, 0);
        add_slot(l, &L->wq, false, "model.layers.%d.self_attn.q_proj.weight", i, 0);
        add_slot(l, &L->wk, false, "model.layers.%d.self_attn.k_proj.weight", i, 0);
        add_slot(l, &L->wv, false, "model.layers.%d.self_attn.v_proj.weight", i, 0);
        add_slot(l, &L->wo, false, "model.layers.%d.self_attn.o_proj.weight", i, 0);
        add_slot(l, &L->bq, true, "model.layers.%d.self_attn.q_proj.bias", i, 0);
        add_slot(l, &L->bk, true, "model.layers.%d.self_attn.k_proj.bias", i, 0);
        add_slot(l, &L->bv, true, "model.layers.%d.self_attn.v_proj.bias", i, 0);
        add_slot(l, &L->q_norm, true, "model.layers.%d.self_attn.q_norm.weight", i, 0);
        add_slot(l, &L->k_norm, true, "model.layers.%d.self_attn.k_norm.weight", i, 0);
        add_slot(l, &L->gate, false, "model.layers.%d.mlp.gate_proj.weight", i, 0);
        add_slot(l, &L->up, false, "model.layers.%d.mlp.up_proj.weight", i, 0);
        add_slot(l, &L->down, false, "model.layers.%d.mlp.down_proj.weight", i, 0);
        add_slot(l, &L->router, false, "model.layers.%d.mlp.gate.weight", i, 0);
        add_slot(l, &L->router_bias, true, "model.layers.%d.mlp.gate.e_score_correction_bias", i, 0);
        for (int e = 0; L->is_moe && e < L->experts.n - L->experts.shared; e++) { /* the shared copy: below */
            add_slot(l, &L->experts.gate[e], false, "model.layers.%d.mlp.experts.%d.gate_proj.weight", i, e);
            add_slot(l, &L->experts.up[e], false, "model.layers.%d.mlp.experts.%d.up_proj.weight", i, e);
            add_slot(l, &L->experts.down[e], false, "model.layers.%d.mlp.experts.%d.down_proj.weight", i, e);
        }
        add_slot(l, &L->sh_gate, false, "model.layers.%d.mlp.shared_experts.gate_proj.weight", i, 0);
        add_slot(l, &L->sh_up, false, "model.layers.%d.mlp.shared_experts.up_proj.weight", i, 0);
        add_slot(l, &L->sh_down, false, "model.layers.%d.mlp.shared_experts.down_proj.weight", i, 0);
    }
}

/* The parts of a weight in host memory: data, scales, biases (NULL, 0 when absent). */
static void parts_of(const gm_weight *w, const void *p[3], size_t n[3]) {
    p[0] = w->data;
    n[0] = (size_t)w->rows * gm_weight_row_bytes(w);
    p[1] = w->scales;
    p[2] = w->biases;
    n[1] = n[2] = w->type == GM_W_AFFINE ? (size_t)w->rows * gm_weight_scale_row_bytes(w) : 0;
}

/* Two bound models hold the same formats and bytes, weight by weight; how many weights are affine. */
static int compare_models(const gm_config *c, gm_weights *a, gm_weights *b, const char *what) {
    static slots la, lb;
    list_slots(c, a, &la);
    list_slots(c, b, &lb);
    CHECK(la.n == lb.n && la.n > 0, "%s: %zu and %zu weights", what, la.n, lb.n);
    int n_affine = 0, n_bad = 0;
    for (size_t i = 0; i < la.n && i < lb.n; i++) {
        const gm_weight *x = la.w[i], *y = lb.w[i];
        bool same = gm_same_format(x, y) && x->rows == y->rows && x->cols == y->cols;
        const void *px[3], *py[3];
        size_t nx[3], ny[3];
        parts_of(x, px, nx);
        parts_of(y, py, ny);
        for (int k = 0; same && k < 3; k++) same = nx[k] == ny[k] && (!nx[k] || !memcmp(px[k], py[k], nx[k]));
        n_affine += x->type == GM_W_AFFINE;
        if (!same && n_bad++ < 5) CHECK(same, "%s: weight %s differs", what, la.name[i]);
    }
    CHECK(n_bad == 0, "%s: %d weights differ", what, n_bad);
    return n_affine;
}

/* ---- quantized synthetic models = a bf16 checkpoint of the same weights loaded with --quantize */

static char *write_checkpoint(const char *config_json, const gm_config *c, gm_weights *w) {
    static char dir[] = "/tmp/glmoe-test-synthetic-XXXXXX";
    if (!mkdtemp(dir)) return NULL;
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fputs(config_json, f);
    fclose(f);
    static slots l;
    static st_decl decls[MAX_SLOTS];
    list_slots(c, w, &l);
    for (size_t i = 0; i < l.n; i++) {
        const gm_weight *x = l.w[i];
        decls[i] = (st_decl){.name = l.name[i], .dtype = x->type == GM_W_BF16 ? ST_BF16 : ST_F32,
                             .rank = l.vector[i] ? 1 : 2};
        if (l.vector[i]) decls[i].shape[0] = (uint64_t)x->cols;
        else decls[i].shape[0] = (uint64_t)x->rows, decls[i].shape[1] = (uint64_t)x->cols;
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    gm_err err = {0};
    st_writer *wr = NULL;
    glmoe_status s = st_writer_open(&wr, path, decls, l.n, NULL, 0, &err);
    for (size_t i = 0; !s && i < l.n; i++) s = st_writer_append(wr, l.w[i]->data, st_decl_bytes(&decls[i]), &err);
    if (!s) s = st_writer_close(wr, &err);
    else st_writer_abort(wr);
    CHECK(s == GLMOE_OK, "writing the checkpoint: %s", err.msg);
    return s ? NULL : dir;
}

static void remove_checkpoint(const char *dir) {
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

/* The quantized synthetic model of rq equals the load path's --quantize of the bf16 one (bf16:
 * a checkpoint in dir), and the plan's byte estimate equals what was bound. */
static void test_quantized_cpu(gm_backend *cpu, const gm_config *c, const char *dir, const gm_affine *rq,
                               int want_affine, gm_weights *wq) {
    char what[64];
    snprintf(what, sizeof what, "q%d g%d", (int)rq->bits, (int)rq->group);
    gm_err err = {0};
    gm_bind_stats st, plan;
    CHECK(weights_bind_synthetic(wq, c, 7, rq, cpu, &st, &err) == GLMOE_OK, "%s: %s", what, err.msg);
    gm_config lc;
    gm_quant_config qc;
    st_set *set = NULL;
    gm_weights wl;
    memset(&wl, 0, sizeof wl);
    bool ok = config_load(&lc, dir, &err) == GLMOE_OK && quant_config_load(&qc, dir, &err) == GLMOE_OK &&
              st_set_open_dir(&set, dir, &err) == GLMOE_OK;
    CHECK(ok, "%s: opening the checkpoint: %s", what, err.msg);
    if (ok) {
        gm_bind_source src = {.set = set, .quant = &qc, .requant = *rq};
        gm_bind_stats lst;
        CHECK(weights_bind(&wl, &lc, &src, cpu, &lst, &err) == GLMOE_OK, "%s: loading with --quantize: %s", what, err.msg);
        CHECK(lst.n_quantized_on_load == st.n_quantized_on_load && st.n_quantized_on_load == want_affine,
              "%s: %d quantized while loading, %d synthetic, %d expected", what, lst.n_quantized_on_load,
              st.n_quantized_on_load, want_affine);
        int n = compare_models(c, wq, &wl, what);
        CHECK(n == want_affine, "%s: %d affine weights, %d expected", what, n, want_affine);
        printf("%s: the synthetic model equals its bf16 checkpoint loaded with --quantize (%d weights quantized)\n",
               what, n);
        weights_release(&wl, &lc, cpu);
        quant_config_free(&qc);
    }
    st_set_close(set);
    /* the estimate, against the weights actually bound */
    CHECK(weights_plan_synthetic(c, rq, &plan, &err) == GLMOE_OK, "%s: plan: %s", what, err.msg);
    static slots l;
    list_slots(c, wq, &l);
    uint64_t sum = 0;
    for (size_t i = 0; i < l.n; i++) sum += gm_weight_bytes(l.w[i]);
    CHECK(weights_plan_bytes(&plan) == sum && sum == st.bytes_copied,
          "%s: the plan estimates %llu bytes, the weights take %llu (bound: %llu)", what,
          (unsigned long long)weights_plan_bytes(&plan), (unsigned long long)sum, (unsigned long long)st.bytes_copied);
    CHECK(plan.bytes_affine == st.bytes_affine && plan.bytes_bf16 == st.bytes_bf16 && plan.n_params == st.n_params,
          "%s: plan and binding count other bytes", what);
}

/* The CPU's weight_synthetic_affine of one odd tensor = gm_affine_quantize_row of its bf16 values
 * rounded to the scale type, for each scale type. */
static void test_cpu_op(gm_backend *cpu) {
    const int64_t rows = 37, cols = 192;
    const gm_wtype types[] = {GM_W_BF16, GM_W_F16, GM_W_F32};
    const int bits[] = {4, 5, 8}, groups[] = {64, 32, 64};
    float *v = malloc((size_t)cols * sizeof(float));
    uint8_t *ref = malloc((size_t)cols * 4 * 3);
    for (int k = 0; k < 3; k++) {
        const gm_affine q = {bits[k], groups[k], types[k]};
        gm_weight w;
        size_t bytes = 0;
        gm_err err = {0};
        CHECK(cpu->ops->weight_synthetic_affine(cpu, &w, &q, rows, cols, 99 + k, 0.01f, 0.05f, &bytes, &err) == GLMOE_OK,
              "%s", err.msg);
        CHECK(bytes == gm_weight_bytes(&w), "bytes");
        bool same = true;
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t i = 0; i < cols; i++)
                v[i] = gm_bf16_to_f32(gm_f32_to_bf16(gm_synthetic_value(99 + k, (uint64_t)(r * cols + i), 0.01f, 0.05f)));
            gm_round_to_type(v, cols, q.scale_type);
            const size_t rb = gm_weight_row_bytes(&w), sb = gm_weight_scale_row_bytes(&w);
            gm_affine_quantize_row(v, cols, &q, (uint32_t *)(void *)ref, ref + rb, ref + rb + sb);
            same = same && !memcmp(ref, (const uint8_t *)w.data + r * rb, rb) &&
                   !memcmp(ref + rb, (const uint8_t *)w.scales + r * sb, sb) &&
                   !memcmp(ref + rb + sb, (const uint8_t *)w.biases + r * sb, sb);
        }
        CHECK(same, "cpu weight_synthetic_affine q%d g%d %s scales", bits[k], groups[k], gm_wtype_name(types[k]));
        cpu->ops->weight_release(cpu, &w);
    }
    free(v);
    free(ref);
}

static void check_cpu_weights(const gm_config *c, const gm_weights *w) {
    const gm_layer *L0 = &w->layers[0], *L1 = &w->layers[1];
    CHECK(L0->wq.type == GM_W_BF16 && L0->attn_norm.type == GM_W_F32, "types");
    const uint16_t *q = L0->wq.data;
    CHECK(q[0] == 0x3cfd && q[1] == 0x3c1c, "q_proj[0..1] = %04x %04x", q[0], q[1]);
    const float *norm = L1->ffn_norm.data, *rb = L1->router_bias.data;
    bool ones = true, zeros = true;
    for (int i = 0; i < c->hidden_size; i++) ones = ones && norm[i] == 1.0f;
    for (int i = 0; i < c->n_experts; i++) zeros = zeros && rb[i] == 0.0f;
    CHECK(ones, "norm weights are 1");
    CHECK(zeros, "router bias is 0");
    const uint16_t *d = L1->experts.down[5].data;
    double sq = 0;
    const int64_t n = L1->experts.down[5].rows * L1->experts.down[5].cols;
    for (int64_t i = 0; i < n; i++) sq += (double)gm_bf16_to_f32(d[i]) * gm_bf16_to_f32(d[i]);
    CHECK(fabs(sqrt(sq / n) - 0.02) < 0.002, "expert 5 down std %g", sqrt(sq / n));
    CHECK(memcmp(L1->experts.down[5].data, L1->experts.down[6].data, 64) != 0, "experts differ");
}

static double rel_l2(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* The quantized cases: q4 g64 leaves the tiny model's 96- and 32-wide inputs in bf16 (30 of its
 * 40 quantizable weights affine), the others quantize all 40. */
static const struct qcase {
    gm_affine q;
    int n_affine;
} k_qcases[] = {{{4, 64, GM_W_BF16}, 30}, {{8, 32, GM_W_BF16}, 40}, {{3, 32, GM_W_BF16}, 40}, {{6, 64, GM_W_BF16}, 30}};
#define N_QCASES (sizeof k_qcases / sizeof k_qcases[0])

#ifdef GLMOE_HAVE_CUDA
/* The GPU's weights, copied back, equal the CPU's byte for byte: every weight of the model. */
static void compare_gpu_model(gm_backend *gpu, gm_exec *ex, const gm_config *c, gm_weights *cpu_w, gm_weights *gpu_w,
                              const char *what) {
    static slots lc, lg;
    list_slots(c, cpu_w, &lc);
    list_slots(c, gpu_w, &lg);
    CHECK(lc.n == lg.n, "%s: %zu and %zu weights", what, lc.n, lg.n);
    int n_bad = 0;
    for (size_t i = 0; i < lc.n && i < lg.n; i++) {
        const void *ph[3], *pd[3];
        size_t nh[3], nd[3];
        parts_of(lc.w[i], ph, nh);
        parts_of(lg.w[i], pd, nd);
        bool same = gm_same_format(lc.w[i], lg.w[i]);
        for (int k = 0; same && k < 3; k++) {
            if (!nh[k]) continue;
            void *copy = malloc(nh[k]);
            gm_err e = {0};
            same = nh[k] == nd[k] && copy && gpu->ops->copy_out(ex, copy, pd[k], nh[k], &e) == GLMOE_OK &&
                   !memcmp(copy, ph[k], nh[k]);
            free(copy);
        }
        if (!same && n_bad++ < 5) CHECK(same, "%s: the GPU made other bytes than the CPU for %s", what, lc.name[i]);
    }
    CHECK(n_bad == 0, "%s: %d weights differ between the GPU and the CPU", what, n_bad);
}

/* One odd tensor per scale type, quantized on both backends: identical codes, scales, biases. */
static void compare_gpu_op(gm_backend *gpu, gm_exec *ex, gm_backend *cpu) {
    const int64_t rows = 37, cols = 384;
    const gm_affine qs[] = {{4, 64, GM_W_F16}, {5, 128, GM_W_F32}, {2, 32, GM_W_BF16}, {8, 128, GM_W_F16}};
    for (size_t k = 0; k < sizeof qs / sizeof qs[0]; k++) {
        gm_weight a, b;
        size_t na = 0, nb = 0;
        gm_err e = {0};
        bool ok = cpu->ops->weight_synthetic_affine(cpu, &a, &qs[k], rows, cols, 5 + k, -0.01f, 0.3f, &na, &e) == GLMOE_OK &&
                  gpu->ops->weight_synthetic_affine(gpu, &b, &qs[k], rows, cols, 5 + k, -0.01f, 0.3f, &nb, &e) == GLMOE_OK;
        CHECK(ok && na == nb, "q%d g%d: %s", (int)qs[k].bits, (int)qs[k].group, e.msg);
        if (!ok) continue;
        const void *ph[3], *pd[3];
        size_t nh[3], nd[3];
        parts_of(&a, ph, nh);
        parts_of(&b, pd, nd);
        for (int p = 0; p < 3; p++) {
            void *copy = malloc(nh[p]);
            CHECK(gpu->ops->copy_out(ex, copy, pd[p], nh[p], &e) == GLMOE_OK && !memcmp(copy, ph[p], nh[p]),
                  "q%d g%d %s scales: part %d differs between the GPU and the CPU", (int)qs[k].bits, (int)qs[k].group,
                  gm_wtype_name(qs[k].scale_type), p);
            free(copy);
        }
        cpu->ops->weight_release(cpu, &a);
        gpu->ops->weight_release(gpu, &b);
    }
}
#endif

int main(void) {
    test_presets();
    test_generator();

    gm_config c;
    gm_err err = {0};
    CHECK(config_parse(&c, k_tiny, strlen(k_tiny), "tiny", NULL, 0, &err) == GLMOE_OK, "%s", err.msg);
    gm_backend *cpu = NULL;
    CHECK(cpu_backend_create(&cpu, 1, &err) == GLMOE_OK, "%s", err.msg);
    gm_weights w1, w2, w3;
    float *a = run_tiny(cpu, &c, 7, &w1), *b = run_tiny(cpu, &c, 7, &w2), *d = run_tiny(cpu, &c, 8, &w3);
    const size_t n = (size_t)5 * c.vocab_size;
    if (a && b && d) {
        bool finite = true;
        for (size_t i = 0; i < n; i++) finite = finite && isfinite(a[i]);
        CHECK(finite, "logits finite");
        CHECK(!memcmp(a, b, n * sizeof(float)), "same seed, same logits");
        CHECK(rel_l2(d, a, n) > 0.1, "another seed, other logits: %g", rel_l2(d, a, n));
        check_cpu_weights(&c, &w1);
    }

    /* quantized: against the load path, and the estimate */
    test_cpu_op(cpu);
    gm_weights wq[N_QCASES];
    float *lq[N_QCASES] = {NULL};
    char *dir = write_checkpoint(k_tiny, &c, &w1);
    for (size_t k = 0; dir && k < N_QCASES; k++) {
        test_quantized_cpu(cpu, &c, dir, &k_qcases[k].q, k_qcases[k].n_affine, &wq[k]);
        weights_release(&wq[k], &c, cpu);
        lq[k] = run_tiny_q(cpu, &c, 7, &k_qcases[k].q, &wq[k]);
        if (lq[k] && a) {
            const double r = rel_l2(lq[k], a, n);
            /* q3 moves the logits most; all stay near the bf16 model's */
            CHECK(r > 0 && r < 0.5, "q%d g%d vs bf16 logits rel L2 %g", (int)k_qcases[k].q.bits,
                  (int)k_qcases[k].q.group, r);
        }
    }
    if (dir) remove_checkpoint(dir);
#ifdef GLMOE_HAVE_CUDA
    gm_backend *gpu = NULL;
    gm_err gerr = {0};
    cuda_backend_options opt = cuda_backend_options_default();
    opt.affine = true; /* the quantized models run too */
    if (cuda_backend_create_ex(&gpu, &opt, &gerr) != GLMOE_OK) {
        printf("SKIP: no CUDA device (%s): the GPU's synthetic weights were not compared\n", gerr.msg);
    } else {
        gm_weights wg;
        float *g = run_tiny(gpu, &c, 7, &wg);
        gm_exec *ex = NULL; /* for the copies back */
        const gm_exec_sizes z = model_exec_sizes(&c, 1, 16);
        CHECK(gpu->ops->exec_create(gpu, &z, &ex, &gerr) == GLMOE_OK, "%s", gerr.msg);
        if (g && ex) compare_gpu_model(gpu, ex, &c, &w1, &wg, "bf16");
        if (g && a) {
            double r = rel_l2(g, a, n);
            CHECK(r < 1e-2, "GPU vs CPU logits rel L2 %g", r);
            printf("cuda: synthetic weights identical to the CPU's; logits rel L2 %.2e\n", r);
        }
        free(g);
        weights_release(&wg, &c, gpu);
        if (ex) compare_gpu_op(gpu, ex, cpu);
        for (size_t k = 0; ex && k < N_QCASES; k++) {
            char what[32];
            snprintf(what, sizeof what, "q%d g%d", (int)k_qcases[k].q.bits, (int)k_qcases[k].q.group);
            g = run_tiny_q(gpu, &c, 7, &k_qcases[k].q, &wg);
            if (g) compare_gpu_model(gpu, ex, &c, &wq[k], &wg, what);
            if (g && lq[k]) {
                double r = rel_l2(g, lq[k], n);
                CHECK(r < 1e-2, "%s: GPU vs CPU logits rel L2 %g", what, r);
                printf("cuda: %s synthetic weights identical to the CPU's; logits rel L2 %.2e\n", what, r);
            }
            free(g);
            weights_release(&wg, &c, gpu);
        }
        if (ex) gpu->ops->exec_free(ex);
        gpu->ops->free(gpu);
    }
#endif
    for (size_t k = 0; k < N_QCASES; k++) {
        if (lq[k]) weights_release(&wq[k], &c, cpu);
        free(lq[k]);
    }
    free(a);
    free(b);
    free(d);
    weights_release(&w1, &c, cpu);
    weights_release(&w2, &c, cpu);
    weights_release(&w3, &c, cpu);
    cpu->ops->free(cpu);
    return test_summary("test_synthetic");
}
