/*
 * test_batch.c — several sequences in one forward (glmoe_context_decode) give each sequence the
 * logits it gets alone.
 *
 * Usage: test_batch REPO_ROOT [cpu|cuda]
 *   (cuda prints "SKIP: no CUDA device" and passes where there is no usable GPU)
 *
 * On the default model and every golden model (dense and MoE layers, shared experts, odd sizes,
 * an MTP layer, MLX-quantized weights):
 *   1. The reference: each of N_SEQ token streams of different lengths evaluated alone in a
 *      one-sequence context, with every row's logits.
 *   2. The streams interleaved in one context of N_SEQ sequences: each step mixes prefill rows of
 *      some sequences with decode rows of others, in shuffled order between sequences, split into
 *      chunks of n_batch rows; every row's logits against the reference (CPU: max |diff| <= 1e-5;
 *      GPU: relative L2 <= 1e-2, the bf16 bar of the golden tests).
 *   3. Rollback: a sequence truncated back into its prompt and continued with other tokens equals
 *      a fresh evaluation of those tokens; a sequence truncated to 0 is free for a new stream.
 *   4. Prefix reuse: a sequence copied from another's first n positions and continued equals the
 *      reference of the shared prefix followed by its own tokens.
 *   5. Refusals: a bad sequence, position, token or a full sequence is refused before anything
 *      runs, with the row named, and no sequence grows.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "test.h"

#define N_SEQ 5
#define MAX_LEN 40
#define CTX 48
#define N_BATCH 7 /* a prime, so that chunks cut through every sequence's rows */
#define TOL_CPU 1e-5
#define TOL_GPU_L2 1e-2

static const int32_t k_prompt[N_SEQ] = {13, 1, 22, 5, 9}; /* prefill lengths */
static const int32_t k_total[N_SEQ] = {20, 9, 30, 17, 12}; /* then decoded one row a step */

static bool g_gpu;

static uint32_t g_rng = 7;
static uint32_t rnd(uint32_t n) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return (g_rng >> 8) % n;
}

typedef struct stream {
    int32_t ids[MAX_LEN];
    int32_t len;
    float *ref; /* [len, vocab]: the logits of each position evaluated alone */
} stream;

/* How far a row of logits is from its reference; false (and a message) past the bar. */
static bool row_close(const float *got, const float *ref, int32_t V, const char *what) {
    double max_abs = 0, num = 0, den = 0;
    for (int32_t i = 0; i < V; i++) {
        const double d = (double)got[i] - (double)ref[i];
        if (!(fabs(d) <= max_abs)) max_abs = fabs(d);
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    const double rel = sqrt(num) / (den > 0 ? sqrt(den) : 1.0);
    const bool ok = g_gpu ? rel <= TOL_GPU_L2 : max_abs <= TOL_CPU;
    if (!ok) fprintf(stderr, "  %s: max |diff| %.3g, rel L2 %.3g\n", what, max_abs, rel);
    return ok;
}

static glmoe_context *make_context(glmoe_model *m, int32_t n_seq) {
    glmoe_context_params p = glmoe_context_params_default();
    p.n_ctx = CTX;
    p.n_batch = N_BATCH;
    p.n_seq_max = n_seq;
    glmoe_context *ctx = NULL;
    glmoe_status s = glmoe_context_create(&ctx, m, &p);
    CHECK(s == GLMOE_OK, "context of %d sequences: %s", n_seq, glmoe_context_errmsg(ctx));
    if (s) {
        glmoe_context_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The logits of every position of ids[0..n) evaluated alone (the single-sequence API), or NULL. */
static float *alone(glmoe_model *m, const int32_t *ids, int32_t n, int32_t V) {
    glmoe_context *ctx = make_context(m, 1);
    if (!ctx) return NULL;
    float *out = NULL;
    const float *l;
    size_t rows;
    if (glmoe_context_eval(ctx, ids, (size_t)n, GLMOE_LOGITS_ALL) || glmoe_context_logits(ctx, &l, &rows) ||
        rows != (size_t)n) {
        CHECK(0, "eval alone: %s", glmoe_context_errmsg(ctx));
    } else {
        out = malloc((size_t)n * (size_t)V * sizeof *out);
        memcpy(out, l, (size_t)n * (size_t)V * sizeof *out);
    }
    glmoe_context_free(ctx);
    return out;
}

/* Evaluates rows, then checks each row that asked for logits against want[row] (NULL: none). */
static void decode_and_check(glmoe_context *ctx, const glmoe_batch_row *rows, size_t n, const float *const *want,
                             int32_t V, const char *label) {
    glmoe_status s = glmoe_context_decode(ctx, rows, n);
    CHECK(s == GLMOE_OK, "%s: decode of %zu rows: %s", label, n, glmoe_context_errmsg(ctx));
    if (s) return;
    for (size_t i = 0; i < n; i++) {
        const float *l = NULL;
        s = glmoe_context_row_logits(ctx, i, &l);
        if (!rows[i].logits) {
            CHECK(s == GLMOE_E_ARG && !l, "%s: row %zu asked for no logits but has some", label, i);
            continue;
        }
        char what[160];
        snprintf(what, sizeof what, "%s: row %zu (sequence %d, position %d)", label, i, rows[i].seq, rows[i].pos);
        CHECK(s == GLMOE_OK && l && row_close(l, want[i], V, what), "%s", what);
    }
}

static void shuffle_between_sequences(glmoe_batch_row *rows, const float **want, size_t n) {
    /* Random order that keeps each sequence's rows in position order: repeatedly swap adjacent
     * rows of different sequences. */
    for (size_t k = 0; k < 4 * n; k++) {
        const size_t i = rnd((uint32_t)n);
        if (i + 1 < n && rows[i].seq != rows[i + 1].seq) {
            glmoe_batch_row r = rows[i];
            rows[i] = rows[i + 1];
            rows[i + 1] = r;
            const float *w = want[i];
            want[i] = want[i + 1];
            want[i + 1] = w;
        }
    }
}

static void check_model(const char *dir, glmoe_device device) {
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = device;
    glmoe_model *m = NULL;
    glmoe_status s = glmoe_model_load(&m, dir, &mp);
    if (s == GLMOE_E_UNSUPPORTED && device == GLMOE_DEVICE_CUDA) {
        printf("SKIP: no CUDA device (%s): %s\n", dir, glmoe_model_errmsg(m));
        glmoe_model_free(m);
        return;
    }
    CHECK(s == GLMOE_OK, "load %s: %s", dir, glmoe_model_errmsg(m));
    if (s) {
        glmoe_model_free(m);
        return;
    }
    glmoe_model_info info;
    glmoe_model_get_info(m, &info);
    const int32_t V = info.vocab_size;
    const int failed_before = t_failed;

    /* 1. Each stream alone. */
    stream st[N_SEQ];
    for (int q = 0; q < N_SEQ; q++) {
        st[q].len = k_total[q];
        for (int32_t i = 0; i < st[q].len; i++) st[q].ids[i] = (int32_t)rnd((uint32_t)V);
        st[q].ref = alone(m, st[q].ids, st[q].len, V);
        if (!st[q].ref) goto done_streams;
    }

    /* 2. All of them interleaved in one context: each step gives every unfinished sequence its
     * next rows (all of its prompt in the first step it takes part in, then one token), the
     * sequences starting at different steps. */
    glmoe_context *ctx = make_context(m, N_SEQ);
    if (!ctx) goto done_streams;
    CHECK(glmoe_context_n_seq(ctx) == N_SEQ);
    {
        int32_t done[N_SEQ] = {0};
        for (int step = 0;; step++) {
            glmoe_batch_row rows[N_SEQ * MAX_LEN];
            const float *want[N_SEQ * MAX_LEN];
            size_t n = 0;
            for (int q = 0; q < N_SEQ; q++) {
                if (step < q / 2 || done[q] == st[q].len) continue; /* sequences 2, 3 join later */
                const int32_t take = done[q] == 0 ? k_prompt[q] : 1;
                for (int32_t i = 0; i < take; i++, n++) {
                    const int32_t pos = done[q] + i;
                    /* every decode row wants logits; of a prompt, the last row and every third */
                    const bool lg = take == 1 || i == take - 1 || i % 3 == 0;
                    rows[n] = (glmoe_batch_row){.seq = q, .pos = pos, .token = st[q].ids[pos], .logits = lg};
                    want[n] = st[q].ref + (size_t)pos * (size_t)V;
                }
                done[q] += take;
            }
            if (!n) break;
            shuffle_between_sequences(rows, want, n);
            char label[64];
            snprintf(label, sizeof label, "mixed step %d", step);
            decode_and_check(ctx, rows, n, want, V, label);
            if (t_failed > failed_before) break;
        }
        for (int q = 0; q < N_SEQ; q++)
            CHECK(glmoe_context_seq_length(ctx, q) == (size_t)st[q].len, "sequence %d: length %zu, not %d", q,
                  glmoe_context_seq_length(ctx, q), st[q].len);
        /* Sequence 0 is what the single-sequence calls see. */
        CHECK(glmoe_context_n_past(ctx) == (size_t)st[0].len);
    }

    /* 3. Rollback: sequence 2 back into its prompt, continued with other tokens, equals those
     * tokens evaluated fresh; sequence 1 freed and reused for a new stream. The others, untouched,
     * continue where they were. */
    {
        const int32_t keep = k_prompt[2] - 4, extra = 6;
        int32_t ids[MAX_LEN];
        memcpy(ids, st[2].ids, (size_t)keep * sizeof *ids);
        for (int32_t i = keep; i < keep + extra; i++) ids[i] = (int32_t)rnd((uint32_t)V);
        float *ref2 = alone(m, ids, keep + extra, V);
        int32_t fresh[8];
        for (int i = 0; i < 8; i++) fresh[i] = (int32_t)rnd((uint32_t)V);
        float *ref1 = alone(m, fresh, 8, V);
        int32_t more0[3];
        for (int i = 0; i < 3; i++) more0[i] = (int32_t)rnd((uint32_t)V);
        int32_t ids0[MAX_LEN + 3];
        memcpy(ids0, st[0].ids, (size_t)st[0].len * sizeof *ids0);
        memcpy(ids0 + st[0].len, more0, sizeof more0);
        float *ref0 = alone(m, ids0, st[0].len + 3, V);
        if (ref2 && ref1 && ref0) {
            CHECK(glmoe_context_seq_truncate(ctx, 2, (size_t)keep) == GLMOE_OK);
            CHECK(glmoe_context_seq_truncate(ctx, 1, 0) == GLMOE_OK);
            CHECK(glmoe_context_seq_truncate(ctx, 3, 1000) == GLMOE_OK, "truncating past the end changes nothing");
            CHECK(glmoe_context_seq_length(ctx, 2) == (size_t)keep && glmoe_context_seq_length(ctx, 1) == 0 &&
                  glmoe_context_seq_length(ctx, 3) == (size_t)st[3].len);
            glmoe_batch_row rows[32];
            const float *want[32];
            size_t n = 0;
            for (int32_t i = 0; i < extra; i++, n++) {
                rows[n] = (glmoe_batch_row){2, keep + i, ids[keep + i], true};
                want[n] = ref2 + (size_t)(keep + i) * (size_t)V;
            }
            for (int32_t i = 0; i < 8; i++, n++) {
                rows[n] = (glmoe_batch_row){1, i, fresh[i], true};
                want[n] = ref1 + (size_t)i * (size_t)V;
            }
            for (int32_t i = 0; i < 3; i++, n++) {
                rows[n] = (glmoe_batch_row){0, st[0].len + i, more0[i], true};
                want[n] = ref0 + (size_t)(st[0].len + i) * (size_t)V;
            }
            shuffle_between_sequences(rows, want, n);
            decode_and_check(ctx, rows, n, want, V, "after truncate");
        }
        free(ref2);
        free(ref1);
        free(ref0);
    }

    /* 4. Prefix reuse: sequence 4 becomes the first 10 positions of sequence 3, then goes its own
     * way, beside sequence 3 going on. */
    {
        const int32_t shared = 10;
        int32_t ids[MAX_LEN];
        memcpy(ids, st[3].ids, (size_t)shared * sizeof *ids);
        for (int32_t i = shared; i < shared + 5; i++) ids[i] = (int32_t)rnd((uint32_t)V);
        float *ref4 = alone(m, ids, shared + 5, V);
        if (ref4) {
            CHECK(glmoe_context_seq_copy(ctx, 4, 3, (size_t)shared) == GLMOE_OK, "%s", glmoe_context_errmsg(ctx));
            CHECK(glmoe_context_seq_length(ctx, 4) == (size_t)shared);
            CHECK(glmoe_context_seq_copy(ctx, 4, 3, (size_t)st[3].len + 1) == GLMOE_E_ARG,
                  "copying more than the source holds is refused");
            CHECK(glmoe_context_seq_copy(ctx, 4, N_SEQ, 1) == GLMOE_E_ARG && glmoe_context_seq_copy(ctx, -1, 3, 1) == GLMOE_E_ARG);
            CHECK(glmoe_context_seq_length(ctx, 4) == (size_t)shared, "a refused copy changes nothing");
            glmoe_batch_row rows[8];
            const float *want[8];
            for (int32_t i = 0; i < 5; i++) {
                rows[i] = (glmoe_batch_row){4, shared + i, ids[shared + i], true};
                want[i] = ref4 + (size_t)(shared + i) * (size_t)V;
            }
            decode_and_check(ctx, rows, 5, want, V, "after copy");
            /* The source is intact: its next token, alone, matches. */
            int32_t ids3[MAX_LEN + 1];
            memcpy(ids3, st[3].ids, (size_t)st[3].len * sizeof *ids3);
            ids3[st[3].len] = (int32_t)rnd((uint32_t)V);
            float *ref3 = alone(m, ids3, st[3].len + 1, V);
            if (ref3) {
                rows[0] = (glmoe_batch_row){3, st[3].len, ids3[st[3].len], true};
                want[0] = ref3 + (size_t)st[3].len * (size_t)V;
                decode_and_check(ctx, rows, 1, want, V, "source after copy");
            }
            free(ref3);
        }
        free(ref4);
    }

    /* 5. Refusals, each before anything runs: no sequence grows, and the message names the row. */
    {
        size_t before[N_SEQ];
        for (int q = 0; q < N_SEQ; q++) before[q] = glmoe_context_seq_length(ctx, q);
        const glmoe_batch_row ok0 = {0, (int32_t)before[0], 1, true};
        struct {
            glmoe_batch_row bad;
            glmoe_status want;
            const char *says;
        } cases[] = {
            {{N_SEQ, 0, 1, true}, GLMOE_E_ARG, "row 1: sequence 5 is outside"},
            {{-1, 0, 1, true}, GLMOE_E_ARG, "row 1: sequence -1"},
            {{1, (int32_t)before[1] + 1, 1, true}, GLMOE_E_ARG, "next position"},
            {{1, (int32_t)before[1], V, true}, GLMOE_E_TOKEN, "vocabulary"},
            {{1, (int32_t)before[1], -3, true}, GLMOE_E_TOKEN, "row 1: token id -3"},
        };
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
            glmoe_batch_row rows[2] = {ok0, cases[c].bad};
            s = glmoe_context_decode(ctx, rows, 2);
            CHECK(s == cases[c].want && strstr(glmoe_context_errmsg(ctx), cases[c].says), "case %zu: status %d, \"%s\"", c,
                  (int)s, glmoe_context_errmsg(ctx));
        }
        /* A sequence that would pass n_ctx. */
        glmoe_batch_row full[CTX + 1];
        for (int32_t i = 0; i <= CTX - (int32_t)before[1]; i++)
            full[i] = (glmoe_batch_row){1, (int32_t)before[1] + i, 2, false};
        s = glmoe_context_decode(ctx, full, (size_t)(CTX - (int32_t)before[1] + 1));
        CHECK(s == GLMOE_E_CONTEXT && strstr(glmoe_context_errmsg(ctx), "is full"), "status %d, \"%s\"", (int)s,
              glmoe_context_errmsg(ctx));
        CHECK(glmoe_context_decode(ctx, NULL, 0) == GLMOE_E_ARG);
        for (int q = 0; q < N_SEQ; q++)
            CHECK(glmoe_context_seq_length(ctx, q) == before[q], "sequence %d grew on a refused decode", q);
        CHECK(glmoe_context_seq_truncate(ctx, N_SEQ, 0) == GLMOE_E_ARG);
        const float *l;
        CHECK(glmoe_context_row_logits(ctx, 0, &l) == GLMOE_E_ARG, "no logits after a refused decode");
        /* Filling a sequence exactly to n_ctx works. */
        s = glmoe_context_decode(ctx, full, (size_t)(CTX - (int32_t)before[1]));
        CHECK(s == GLMOE_OK && glmoe_context_seq_length(ctx, 1) == CTX, "%s", glmoe_context_errmsg(ctx));
    }
    glmoe_context_free(ctx);

done_streams:
    for (int q = 0; q < N_SEQ; q++)
        free(st[q].ref);
    printf("%s %s: %s\n", g_gpu ? "cuda" : "cpu", dir, t_failed > failed_before ? "FAILED" : "ok");
    glmoe_model_free(m);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "cpu") && strcmp(argv[2], "cuda"))) {
        fprintf(stderr, "usage: test_batch REPO_ROOT [cpu|cuda]\n");
        return 2;
    }
    g_gpu = argc == 3 && !strcmp(argv[2], "cuda");
    static const char *const k_models[] = {
        "models/glmoe-demo",          "tests/golden/glm45_like",           "tests/golden/air_like",
        "tests/golden/shared2",       "tests/golden/odd_dims",             "tests/golden/mtp",
        "tests/golden_quant/air_like/q4g64", "tests/golden_quant/glm45_like/mixed",
    };
    for (size_t i = 0; i < sizeof k_models / sizeof k_models[0]; i++) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/%s", argv[1], k_models[i]);
        check_model(dir, g_gpu ? GLMOE_DEVICE_CUDA : GLMOE_DEVICE_CPU);
    }
    return test_summary("test_batch");
}
