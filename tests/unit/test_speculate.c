/*
 * test_speculate.c — speculative decoding with the model's MTP layer (glmoe_context_speculate),
 * through the public API, on tests/golden/mtp (random weights, so drafts are mostly rejected: what
 * matters here is that the output never depends on them).
 *
 *   1. drafts: after the prompt, the greedy drafts chained from the layer's own output equal the
 *      PyTorch reference's (mtp_reference.json);
 *   2. exactness: greedy and seeded sampled decoding give the same tokens with drafts (k = 1..4)
 *      as one token at a time; also several sequences in one call, after a truncate (the stash
 *      refilled) and after a copy;
 *   3. the acceptance rule keeps the model's distribution: over 4000 seeds, the first token a step
 *      emits and the second (given the first draft was accepted) follow the model's softmax by a
 *      chi-square test; the same test rejects a biased rule (always the second likeliest token),
 *      on the same distribution, so it could fail; on this model and on the default model, whose
 *      trained layer drafts well, so that the second token's test has thousands of samples;
 *   4. refusals: no MTP layer, too many drafts, empty or repeated sequences, a full batch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "glmoe.h"
#include "test.h"

#define MAX_GEN 48

static glmoe_model *g_model;
static int32_t g_vocab;
static glmoe_device g_device = GLMOE_DEVICE_CPU; /* argv[2]: cpu (default) or cuda */

static glmoe_context *context(int32_t n_seq, int32_t n_draft) {
    glmoe_context_params p = glmoe_context_params_default();
    p.n_ctx = 128;
    p.n_batch = 32;
    p.n_seq_max = n_seq;
    p.n_draft = n_draft;
    glmoe_context *ctx = NULL;
    glmoe_status s = glmoe_context_create(&ctx, g_model, &p);
    CHECK(s == GLMOE_OK, "context: %s", glmoe_context_errmsg(ctx));
    if (s) {
        glmoe_context_free(ctx);
        return NULL;
    }
    return ctx;
}

static glmoe_sampler *sampler(uint64_t seed, float temp) {
    glmoe_sampler_params p = glmoe_sampler_params_default();
    p.temperature = temp;
    p.top_p = 0.95f;
    p.seed = seed;
    glmoe_sampler *s = NULL;
    glmoe_sampler_create(&s, &p, NULL, 0);
    return s;
}

/* n tokens after prompt, one at a time (the reference): the first from the prompt's logits. */
static void plain(const int32_t *prompt, int32_t np, glmoe_sampler *smp, int32_t n, int32_t *out) {
    glmoe_context *ctx = context(1, 0);
    if (!ctx) return;
    const float *l;
    size_t rows;
    glmoe_status s = glmoe_context_eval(ctx, prompt, (size_t)np, GLMOE_LOGITS_LAST);
    for (int32_t i = 0; i < n && !s; i++) {
        glmoe_context_logits(ctx, &l, &rows);
        s = glmoe_sampler_sample(smp, l, g_vocab, &out[i]);
        if (!s && i + 1 < n) s = glmoe_context_eval(ctx, &out[i], 1, GLMOE_LOGITS_LAST);
    }
    CHECK(s == GLMOE_OK, "plain decoding: %s", glmoe_context_errmsg(ctx));
    glmoe_context_free(ctx);
}

/* The same with speculative steps of k drafts on sequence seq of ctx (its prompt evaluated). */
static glmoe_status spec(glmoe_context *ctx, int32_t seq, glmoe_sampler *smp, int32_t k, int32_t n, int32_t *out,
                         int32_t *accepted) {
    const float *l;
    glmoe_status s = glmoe_context_row_logits(ctx, 0, &l);
    if (s) {
        size_t rows;
        s = glmoe_context_logits(ctx, &l, &rows);
    }
    if (s) return s;
    if ((s = glmoe_sampler_sample(smp, l, g_vocab, &out[0]))) return s;
    int32_t have = 1;
    *accepted = 0;
    while (have < n) {
        glmoe_spec_seq x = {.seq = seq, .token = out[have - 1], .n_draft = k, .sampler = smp};
        if ((s = glmoe_context_speculate(ctx, &x, 1))) return s;
        *accepted += x.n_out - 1;
        for (int32_t i = 0; i < x.n_out && have < n; i++) out[have++] = x.out[i];
    }
    return GLMOE_OK;
}

static void test_drafts(const char *dir) {
    char path[4400];
    snprintf(path, sizeof path, "%s/mtp_reference.json", dir);
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    CHECK(ref, "%s: %s", path, je.text);
    if (!ref) return;
    json_t *teacher = json_object_get(ref, "teacher_ids"), *drafts = json_object_get(ref, "drafts");
    const int32_t P = (int32_t)json_integer_value(json_object_get(ref, "prompt_len"));
    const int32_t next = (int32_t)json_integer_value(json_object_get(ref, "next_token"));
    int32_t ids[64];
    for (int32_t i = 0; i < P; i++) ids[i] = (int32_t)json_integer_value(json_array_get(teacher, (size_t)i));
    glmoe_context *ctx = context(1, 4);
    if (ctx) {
        CHECK(glmoe_context_eval(ctx, ids, (size_t)P, GLMOE_LOGITS_NONE) == GLMOE_OK);
        glmoe_spec_seq x = {.seq = 0, .token = next, .n_draft = 4};
        glmoe_status s = glmoe_context_speculate(ctx, &x, 1);
        CHECK(s == GLMOE_OK && x.n_drafted == 4, "%s", glmoe_context_errmsg(ctx));
        bool same = true;
        for (int i = 0; i < 4; i++) same = same && x.drafts[i] == (int32_t)json_integer_value(json_array_get(drafts, (size_t)i));
        CHECK(same, "drafts %d %d %d %d differ from the reference's", x.drafts[0], x.drafts[1], x.drafts[2], x.drafts[3]);
        CHECK(glmoe_context_n_past(ctx) == (size_t)(P + x.n_out), "length %zu after %d out", glmoe_context_n_past(ctx),
              x.n_out);
    }
    glmoe_context_free(ctx);
    json_decref(ref);
}

static void test_exact(void) {
    int32_t prompt[3][20];
    uint32_t rng = 99;
    for (int q = 0; q < 3; q++)
        for (int i = 0; i < 20; i++) prompt[q][i] = (int32_t)((rng = rng * 1664525u + 1013904223u) >> 8) % g_vocab;
    const int32_t np[3] = {11, 5, 17};
    for (int sampled = 0; sampled < 2; sampled++) {
        const float temp = sampled ? 1.0f : 0.0f;
        int32_t want[3][MAX_GEN];
        for (int q = 0; q < 3; q++) {
            glmoe_sampler *smp = sampler(40 + (uint64_t)q, temp);
            plain(prompt[q], np[q], smp, MAX_GEN, want[q]);
            glmoe_sampler_free(smp);
        }
        /* one sequence at a time, k = 1..4 */
        for (int32_t k = 1; k <= 4; k++) {
            for (int q = 0; q < 3; q++) {
                glmoe_context *ctx = context(1, 4);
                if (!ctx) return;
                glmoe_sampler *smp = sampler(40 + (uint64_t)q, temp);
                int32_t got[MAX_GEN], acc = 0;
                glmoe_status s = glmoe_context_eval(ctx, prompt[q], (size_t)np[q], GLMOE_LOGITS_LAST);
                if (!s) s = spec(ctx, 0, smp, k, MAX_GEN, got, &acc);
                CHECK(s == GLMOE_OK, "%s", glmoe_context_errmsg(ctx));
                CHECK(!s && !memcmp(got, want[q], sizeof got), "%s, k %d, prompt %d: tokens differ from one at a time",
                      sampled ? "sampled" : "greedy", k, q);
                glmoe_sampler_free(smp);
                glmoe_context_free(ctx);
            }
        }
        /* three sequences in one call per step, then truncate and copy */
        glmoe_context *ctx = context(4, 3);
        if (!ctx) return;
        glmoe_sampler *smp[3];
        int32_t got[3][MAX_GEN + 8], have[3];
        glmoe_status s = GLMOE_OK;
        for (int q = 0; q < 3 && !s; q++) {
            smp[q] = sampler(40 + (uint64_t)q, temp);
            glmoe_batch_row rows[20];
            for (int i = 0; i < np[q]; i++) rows[i] = (glmoe_batch_row){q, i, prompt[q][i], i == np[q] - 1};
            const float *l;
            s = glmoe_context_decode(ctx, rows, (size_t)np[q]);
            if (!s) s = glmoe_context_row_logits(ctx, (size_t)np[q] - 1, &l);
            if (!s) s = glmoe_sampler_sample(smp[q], l, g_vocab, &got[q][0]);
            have[q] = 1;
        }
        while (!s && (have[0] < MAX_GEN || have[1] < MAX_GEN || have[2] < MAX_GEN)) {
            glmoe_spec_seq x[3];
            int n = 0;
            for (int q = 0; q < 3; q++)
                if (have[q] < MAX_GEN)
                    x[n++] = (glmoe_spec_seq){.seq = q, .token = got[q][have[q] - 1], .n_draft = 1 + q, .sampler = smp[q]};
            s = glmoe_context_speculate(ctx, x, (size_t)n);
            for (int i = 0; i < n && !s; i++)
                for (int j = 0; j < x[i].n_out; j++) got[x[i].seq][have[x[i].seq]++] = x[i].out[j];
        }
        CHECK(s == GLMOE_OK, "batched: %s", glmoe_context_errmsg(ctx));
        for (int q = 0; q < 3 && !s; q++)
            CHECK(!memcmp(got[q], want[q], MAX_GEN * sizeof(int32_t)), "%s, batched, sequence %d: tokens differ",
                  sampled ? "sampled" : "greedy", q);
        if (!sampled && !s) {
            /* truncate sequence 0 into its output, go on greedily: the same tokens again */
            const int32_t keep = np[0] + 10;
            CHECK(glmoe_context_seq_truncate(ctx, 0, (size_t)keep) == GLMOE_OK);
            /* sequence 3: a copy of sequence 1's first np[1] + 6 positions */
            CHECK(glmoe_context_seq_copy(ctx, 3, 1, (size_t)np[1] + 6) == GLMOE_OK);
            int32_t t0 = want[0][keep - np[0]], t3 = want[1][6];
            int32_t h0 = keep - np[0] + 1, h3 = 7;
            while (!s && (h0 < MAX_GEN || h3 < MAX_GEN)) {
                glmoe_spec_seq x[2] = {{.seq = 0, .token = t0, .n_draft = 3}, {.seq = 3, .token = t3, .n_draft = 2}};
                s = glmoe_context_speculate(ctx, x, 2);
                for (int j = 0; j < x[0].n_out && !s && h0 < MAX_GEN; j++) {
                    CHECK(x[0].out[j] == want[0][h0], "after truncate: position %d: %d, not %d", h0, x[0].out[j], want[0][h0]);
                    t0 = want[0][h0++];
                }
                for (int j = 0; j < x[1].n_out && !s && h3 < MAX_GEN; j++) {
                    CHECK(x[1].out[j] == want[1][h3], "after copy: position %d: %d, not %d", h3, x[1].out[j], want[1][h3]);
                    t3 = want[1][h3++];
                }
            }
            CHECK(s == GLMOE_OK, "after truncate and copy: %s", glmoe_context_errmsg(ctx));
        }
        for (int q = 0; q < 3; q++) glmoe_sampler_free(smp[q]);
        glmoe_context_free(ctx);
    }
}

/* ---- the acceptance rule's distribution ------------------------------------------------------- */

/* Upper 1e-4 point of chi-square with df degrees of freedom (Wilson-Hilferty). */
static double chi2_limit(int df) {
    const double z = 3.719, a = 2.0 / (9.0 * df);
    return df * pow(1 - a + z * sqrt(a), 3);
}

/* Pearson's chi-square of counts against probabilities p (bins with expected < 5 pooled). */
static double chi2(const int *count, const double *p, int n, int total, int *df) {
    double stat = 0, pool_e = 0, pool_o = 0;
    *df = -1;
    for (int i = 0; i < n; i++) {
        const double e = p[i] * total;
        if (e < 5) {
            pool_e += e;
            pool_o += count[i];
            continue;
        }
        stat += (count[i] - e) * (count[i] - e) / e;
        (*df)++;
    }
    if (pool_e > 0) {
        stat += (pool_o - pool_e) * (pool_o - pool_e) / (pool_e > 1e-9 ? pool_e : 1e-9);
        (*df)++;
    }
    return stat;
}

static void softmax(const float *l, int n, double *p) {
    double m = -INFINITY, sum = 0;
    for (int i = 0; i < n; i++) m = l[i] > m ? l[i] : m;
    for (int i = 0; i < n; i++) sum += p[i] = exp((double)l[i] - m);
    for (int i = 0; i < n; i++) p[i] /= sum;
}

/* Over TRIALS seeds, one step after prompt + t with sampler temperature 1: the first emitted token
 * against the model's softmax after prompt + t, and the second (when the first draft was taken)
 * against its softmax after prompt + t + d1. */
/* ASan builds draw fewer seeds: there the point is the memory and UB checks of the same code
 * path, and a Debug + ASan step is some 30x slower (4000 seeds on the default model took over 25
 * minutes of CI); the statistics keep their full power in the normal build. */
#define SPEC_TRIALS (UNDER_ASAN ? 600 : 4000)

static void test_distribution(glmoe_model *model, const int32_t *prompt, int32_t np, const char *what) {
    enum { TRIALS = SPEC_TRIALS };
    glmoe_model *saved = g_model;
    g_model = model;
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    const int32_t V = info.vocab_size;
    glmoe_context *ctx = context(1, 2);
    g_model = saved;
    if (!ctx) return;
    double *p1 = malloc((size_t)V * sizeof *p1), *p2 = malloc((size_t)V * sizeof *p2);
    int *c1 = calloc((size_t)V, sizeof *c1), *c2 = calloc((size_t)V, sizeof *c2);
    int32_t *ids = malloc(((size_t)np + 2) * sizeof *ids);
    const float *l;
    size_t rows;
    /* t: the model's greedy pick after the prompt; d1: the layer's draft after t */
    glmoe_status s = glmoe_context_eval(ctx, prompt, (size_t)np, GLMOE_LOGITS_LAST);
    if (!s) s = glmoe_context_logits(ctx, &l, &rows);
    int32_t t = 0;
    for (int32_t i = 1; !s && i < V; i++) t = l[i] > l[t] ? i : t;
    glmoe_spec_seq x = {.seq = 0, .token = t, .n_draft = 2};
    if (!s) s = glmoe_context_speculate(ctx, &x, 1);
    const int32_t d1 = x.drafts[0];
    memcpy(ids, prompt, (size_t)np * sizeof *ids);
    ids[np] = t;
    ids[np + 1] = d1;
    glmoe_context_reset(ctx);
    if (!s) s = glmoe_context_eval(ctx, ids, (size_t)np + 2, GLMOE_LOGITS_ALL);
    if (!s) s = glmoe_context_logits(ctx, &l, &rows);
    CHECK(s == GLMOE_OK, "%s: %s", what, glmoe_context_errmsg(ctx));
    if (s) goto done;
    softmax(l + (size_t)np * (size_t)V, V, p1);
    softmax(l + ((size_t)np + 1) * (size_t)V, V, p2);
    int accepted = 0;
    for (int trial = 0; trial < TRIALS && !s; trial++) {
        glmoe_context_truncate(ctx, (size_t)np);
        glmoe_sampler_params sp = glmoe_sampler_params_default();
        sp.temperature = 1.0f;
        sp.seed = 1000 + (uint64_t)trial;
        glmoe_sampler *smp = NULL;
        glmoe_sampler_create(&smp, &sp, NULL, 0);
        glmoe_spec_seq y = {.seq = 0, .token = t, .n_draft = 2, .sampler = smp};
        s = glmoe_context_speculate(ctx, &y, 1);
        glmoe_sampler_free(smp);
        if (s) break;
        CHECK(y.drafts[0] == d1, "%s: the draft changed: %d, not %d", what, y.drafts[0], d1);
        c1[y.out[0]]++;
        if (y.out[0] == d1) {
            accepted++;
            c2[y.out[1]]++;
        }
    }
    CHECK(s == GLMOE_OK, "%s: %s", what, glmoe_context_errmsg(ctx));
    int df1, df2;
    const double x1 = chi2(c1, p1, V, TRIALS, &df1), x2 = chi2(c2, p2, V, accepted, &df2);
    printf("%s: first token chi2 %.1f (df %d, limit %.1f); second, the draft taken: chi2 %.1f (df %d, limit %.1f, %d "
           "samples); p(draft) %.3f, taken %.3f\n",
           what, x1, df1, chi2_limit(df1), x2, df2, df2 > 0 ? chi2_limit(df2) : 0.0, accepted, p1[d1],
           (double)accepted / TRIALS);
    CHECK(x1 < chi2_limit(df1), "%s: the first token's distribution is not the model's: chi2 %.1f", what, x1);
    CHECK(df2 < 1 || x2 < chi2_limit(df2), "%s: the second token's distribution is not the model's: chi2 %.1f",
          what, x2);
    CHECK(fabs((double)accepted / TRIALS - p1[d1]) < 4 * sqrt(p1[d1] * (1 - p1[d1]) / TRIALS) + 1e-3,
          "%s: draft taken %.4f of the time, p(draft) %.4f", what, (double)accepted / TRIALS, p1[d1]);
    /* The test's power: a biased rule (take the model's second likeliest token whenever it is
     * the draft, i.e. always here) on the same p is rejected. */
    {
        int32_t top = 0, second = -1;
        for (int32_t i = 1; i < V; i++)
            if (p1[i] > p1[top]) top = i;
        for (int32_t i = 0; i < V; i++)
            if (i != top && (second < 0 || p1[i] > p1[second])) second = i;
        int *cb = calloc((size_t)V, sizeof *cb);
        for (int trial = 0; trial < TRIALS; trial++) cb[second]++;
        int dfb;
        const double xb = chi2(cb, p1, V, TRIALS, &dfb);
        CHECK(xb > chi2_limit(dfb), "%s: a biased rule passes the test: chi2 %.1f (limit %.1f)", what, xb, chi2_limit(dfb));
        free(cb);
    }
done:
    free(ids);
    free(p1);
    free(p2);
    free(c1);
    free(c2);
    glmoe_context_free(ctx);
}

/* The default model, once its MTP layer is trained (tools/train_demo/train_mtp.py): its drafts
 * are mostly right, so the second token's test has samples; and greedy acceptance is reported. */
static void test_demo(const char *root) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/models/glmoe-demo", root);
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = g_device;
    mp.n_threads = 1;
    glmoe_status s = glmoe_model_load(&m, dir, &mp);
    CHECK(s == GLMOE_OK, "%s", glmoe_model_errmsg(m));
    glmoe_model_info info;
    if (s || glmoe_model_get_info(m, &info) || !info.has_mtp) {
        if (!s) printf("SKIP: %s has no MTP layer\n", dir);
        glmoe_model_free(m);
        return;
    }
    glmoe_tokenizer *tok = NULL;
    char err[256];
    int32_t ids[64];
    size_t n = 0;
    static const char text[] = "The State of the Union is strong, and the Congress";
    s = glmoe_tokenizer_load(&tok, dir, err, sizeof err);
    if (!s) s = glmoe_tokenizer_encode(tok, text, sizeof text - 1, 0, ids, 64, &n);
    CHECK(s == GLMOE_OK && n > 4, "tokenize: %s", err);
    if (!s) test_distribution(m, ids, (int32_t)n, "acceptance rule, default model");
    glmoe_tokenizer_free(tok);
    glmoe_model_free(m);
}

static void test_refusals(const char *root) {
    glmoe_context *ctx = context(2, 2);
    if (!ctx) return;
    const int32_t ids[3] = {1, 2, 3};
    CHECK(glmoe_context_eval(ctx, ids, 3, GLMOE_LOGITS_NONE) == GLMOE_OK);
    struct {
        glmoe_spec_seq x[2];
        size_t n;
        glmoe_status want;
        const char *says;
    } cases[] = {
        {{{.seq = 0, .token = 5, .n_draft = 3}}, 1, GLMOE_E_ARG, "n_draft 3 is outside [0, 2]"},
        {{{.seq = 0, .token = 5, .n_draft = -1}}, 1, GLMOE_E_ARG, "n_draft -1"},
        {{{.seq = 1, .token = 5, .n_draft = 1}}, 1, GLMOE_E_ARG, "sequence 1 is empty"},
        {{{.seq = 2, .token = 5, .n_draft = 1}}, 1, GLMOE_E_ARG, "sequence 2 is outside"},
        {{{.seq = 0, .token = 5}, {.seq = 0, .token = 6}}, 2, GLMOE_E_ARG, "repeated"},
        {{{.seq = 0, .token = 100000, .n_draft = 1}}, 1, GLMOE_E_TOKEN, "vocabulary"},
        {{{.seq = 0, .token = 5}}, 0, GLMOE_E_ARG, "0 sequences"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        glmoe_status s = glmoe_context_speculate(ctx, cases[i].x, cases[i].n);
        CHECK(s == cases[i].want && strstr(glmoe_context_errmsg(ctx), cases[i].says), "case %zu: status %d, \"%s\"", i,
              (int)s, glmoe_context_errmsg(ctx));
    }
    CHECK(glmoe_context_n_past(ctx) == 3, "a refused step changes nothing");
    glmoe_context_free(ctx);

    /* a model without an MTP layer, and one loaded without it */
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tests/golden/glm45_like", root);
    glmoe_model *m = NULL;
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = GLMOE_DEVICE_CPU;
    CHECK(glmoe_model_load(&m, dir, &mp) == GLMOE_OK);
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_draft = 1;
    glmoe_status s = glmoe_context_create(&ctx, m, &cp);
    CHECK(s == GLMOE_E_ARG && strstr(glmoe_context_errmsg(ctx), "num_nextn_predict_layers is 0"), "%s",
          glmoe_context_errmsg(ctx));
    glmoe_context_free(ctx);
    glmoe_model_free(m);
    snprintf(dir, sizeof dir, "%s/tests/golden/mtp", root);
    mp.skip_mtp = true;
    CHECK(glmoe_model_load(&m, dir, &mp) == GLMOE_OK);
    glmoe_model_info info;
    glmoe_model_get_info(m, &info);
    CHECK(!info.has_mtp && info.n_tensors_skipped > 0, "skip_mtp: has_mtp %d, skipped %d", info.has_mtp,
          info.n_tensors_skipped);
    s = glmoe_context_create(&ctx, m, &cp);
    CHECK(s == GLMOE_E_ARG && strstr(glmoe_context_errmsg(ctx), "no multi-token-prediction layer loaded"), "%s",
          glmoe_context_errmsg(ctx));
    glmoe_context_free(ctx);
    cp.n_draft = GLMOE_MAX_DRAFT + 1;
    s = glmoe_context_create(&ctx, g_model, &cp);
    CHECK(s == GLMOE_E_ARG && strstr(glmoe_context_errmsg(ctx), "n_draft 9"), "%s", glmoe_context_errmsg(ctx));
    glmoe_context_free(ctx);
    glmoe_model_free(m);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "cpu") && strcmp(argv[2], "cuda"))) {
        fprintf(stderr, "usage: test_speculate REPO_ROOT [cpu|cuda]\n");
        return 2;
    }
    if (argc == 3 && !strcmp(argv[2], "cuda")) g_device = GLMOE_DEVICE_CUDA;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tests/golden/mtp", argv[1]);
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = g_device;
    mp.n_threads = 1;
    glmoe_status s = glmoe_model_load(&g_model, dir, &mp);
    if (s == GLMOE_E_UNSUPPORTED && g_device == GLMOE_DEVICE_CUDA) {
        printf("SKIP: no CUDA device (%s)\n", glmoe_model_errmsg(g_model));
        glmoe_model_free(g_model);
        return 0;
    }
    CHECK(s == GLMOE_OK, "%s", glmoe_model_errmsg(g_model));
    if (!s) {
        glmoe_model_info info;
        glmoe_model_get_info(g_model, &info);
        g_vocab = info.vocab_size;
        CHECK(info.has_mtp && info.n_params_mtp > 0, "the MTP layer is loaded by default");
        test_drafts(dir);
        test_exact();
        static const int32_t prompt[6] = {7, 99, 150, 3, 201, 64};
        test_distribution(g_model, prompt, 6, "acceptance rule, tests/golden/mtp");
        test_demo(argv[1]);
        test_refusals(argv[1]);
    }
    glmoe_model_free(g_model);
    return test_summary("test_speculate");
}
