/*
 * test_synthetic.c — models that exist only as a configuration (`glmoe bench --config`):
 *   - the released configurations by name carry the values of spec §1.1, layers cut as asked;
 *   - synthetic values equal an independent Python implementation of the generator
 *     (splitmix64 / FNV-1a, computed with numpy float32 arithmetic) bit for bit;
 *   - weights_bind_synthetic fills every slot with the intended distribution (norms 1, router
 *     bias 0, matrices of standard deviation 0.02), deterministically from the seed, and the
 *     model runs: finite logits, the same for the same seed, different for another;
 *   - with a GPU: the CUDA backend generates the identical bytes on the device, and its forward
 *     agrees with the CPU's (rel. L2 < 1e-2). Without one that part prints SKIP.
 */
#include <math.h>
#include <string.h>

#include "backend/backend.h"
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

/* Binds the tiny model synthetically on be and returns its logits for a few ids (malloc'd). */
static float *run_tiny(gm_backend *be, const gm_config *c, uint64_t seed, gm_weights *w) {
    gm_bind_stats st;
    gm_err err = {0};
    gm_state state;
    static const int32_t ids[] = {3, 200, 17, 99, 5};
    const int32_t T = 5;
    float *logits = malloc((size_t)T * c->vocab_size * sizeof(float));
    glmoe_status s = weights_bind_synthetic(w, c, seed, be, &st, &err);
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
#ifdef GLMOE_HAVE_CUDA
    gm_backend *gpu = NULL;
    gm_err gerr = {0};
    if (cuda_backend_create(&gpu, 0, &gerr) != GLMOE_OK) {
        printf("SKIP: no CUDA device (%s): the GPU's synthetic weights were not compared\n", gerr.msg);
    } else {
        gm_weights wg;
        float *g = run_tiny(gpu, &c, 7, &wg);
        gm_exec *ex = NULL; /* for the copies back */
        const gm_exec_sizes z = model_exec_sizes(&c, 1, 16);
        CHECK(gpu->ops->exec_create(gpu, &z, &ex, &gerr) == GLMOE_OK, "%s", gerr.msg);
        /* every matrix and vector of layer 1 (MoE) and the head, byte for byte */
        const gm_weight *pairs[][2] = {{&w1.lm_head, &wg.lm_head},
                                       {&w1.layers[1].wq, &wg.layers[1].wq},
                                       {&w1.layers[1].bq, &wg.layers[1].bq},
                                       {&w1.layers[1].q_norm, &wg.layers[1].q_norm},
                                       {&w1.layers[1].router, &wg.layers[1].router},
                                       {&w1.layers[1].experts.up[7], &wg.layers[1].experts.up[7]},
                                       {&w1.layers[1].sh_down, &wg.layers[1].sh_down},
                                       {&w1.layers[0].down, &wg.layers[0].down}};
        for (size_t i = 0; g && ex && i < sizeof pairs / sizeof pairs[0]; i++) {
            const gm_weight *h = pairs[i][0], *dv = pairs[i][1];
            size_t bytes = (size_t)h->rows * h->cols * gm_wtype_size(h->type);
            void *copy = malloc(bytes);
            CHECK(gpu->ops->copy_out(ex, copy, dv->data, bytes, &gerr) == GLMOE_OK, "%s", gerr.msg);
            CHECK(!memcmp(copy, h->data, bytes), "weight %zu: the GPU made other bytes than the CPU", i);
            free(copy);
        }
        if (g && a) {
            double r = rel_l2(g, a, n);
            CHECK(r < 1e-2, "GPU vs CPU logits rel L2 %g", r);
            printf("cuda: synthetic weights identical to the CPU's; logits rel L2 %.2e\n", r);
        }
        free(g);
        if (ex) gpu->ops->exec_free(ex);
        weights_release(&wg, &c, gpu);
        gpu->ops->free(gpu);
    }
#endif
    free(a);
    free(b);
    free(d);
    weights_release(&w1, &c, cpu);
    weights_release(&w2, &c, cpu);
    weights_release(&w3, &c, cpu);
    cpu->ops->free(cpu);
    return test_summary("test_synthetic");
}
