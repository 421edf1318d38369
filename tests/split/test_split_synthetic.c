/*
 * test_split_synthetic.c — a split over 2 and 4 ranks of a small synthetic model whose every cut
 * divides by 4 (no golden checkpoint has its KV heads divisible by 4), against the same model
 * unsplit, through the internal API (config_parse, weights_bind_rank, split_forward_batch).
 *
 * Usage: test_split_synthetic [--device cuda]
 *
 * The model: 8 query heads over 4 KV heads, one dense layer and two MoE layers of 8 experts
 * (top 2, one shared expert), widths that every rank cuts on groups of 32. For the weights in
 * bf16 and quantized to q8 g32 (made quantized, as --quantize would load them), each N in {2, 4}
 * and each mode (tp, ep), on the CPU's simulated ranks (comm_local):
 *   1. teacher-forced logits of 24 tokens in chunks of 5, then truncated to 12 and continued one
 *      token at a time, then two sequences interleaved in one batch: relative L2 error <= 1e-5
 *      and max |diff| <= 1e-5 · max(1, max |logit|);
 *   2. greedy ids of 6 steps: identical.
 * Since each rank generates its synthetic slices itself (weights.c, bind_synthetic: element
 * r0·cols + c0 onwards, or a column cut made on the host), this also checks that every rank's
 * slices are the whole model's numbers at those places: with a row cut's offset dropped
 * (bind_synthetic's seed without r0 · cols), every split case fails: relative L2 errors 0.96 to 1.04,
 * greedy ids differ.
 *
 * --device cuda: the same on GPUs, the split's rank r on CUDA device r joined by NCCL, against
 * the model unsplit on device 0 (a float32 KV cache on both, GLMOE_CUDA_KV=f32, so that keys that
 * differ in their last float32 bit do not round to different bf16s): N = 2 and 4 where that many
 * GPUs are present (else "SKIP" for that N, and "SKIP: no CUDA device" without any), tp only: ep
 * must be refused in one line (the CUDA expert kernels do not skip other ranks' experts yet). The
 * limit there is 1e-4, a first guess: no machine with several GPUs has run it yet.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/comm.h"
#include "model/model.h"
#include "model/split.h"
#include "split_compare.h"
#include "test.h"

static double g_tol = 1e-5;
static glmoe_device g_device = GLMOE_DEVICE_CPU;
#define MAX_RANKS 4
#define N_IDS 24
#define N_BATCH 5
#define N_CTX 48
#define N_GREEDY 6
#define SEED 20u

/* Every cut divides by 4: heads 8 and KV heads 4 (head_dim 16: o_proj's columns cut at 32),
 * intermediate 256 (64 per rank), moe_intermediate 128 (32 per rank with tp; the shared expert
 * is cut by columns in both modes), 8 experts (2 per rank with ep). */
static const char k_config[] =
    "{\"architectures\": [\"Glm4MoeForCausalLM\"], \"model_type\": \"glm4_moe\", \"attention_bias\": true,"
    " \"head_dim\": 16, \"hidden_act\": \"silu\", \"hidden_size\": 64, \"partial_rotary_factor\": 0.5,"
    " \"intermediate_size\": 256, \"max_position_embeddings\": 4096, \"moe_intermediate_size\": 128,"
    " \"norm_topk_prob\": true, \"num_attention_heads\": 8, \"n_group\": 1, \"topk_group\": 1,"
    " \"n_routed_experts\": 8, \"n_shared_experts\": 1, \"routed_scaling_factor\": 2.5,"
    " \"num_experts_per_tok\": 2, \"first_k_dense_replace\": 1, \"num_hidden_layers\": 3,"
    " \"num_key_value_heads\": 4, \"rms_norm_eps\": 1e-05, \"rope_theta\": 1000000,"
    " \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\", \"use_qk_norm\": true,"
    " \"vocab_size\": 256, \"eos_token_id\": [255]}";

/* A model over n ranks (n 1: unsplit), each with its backend, weights and state, the states
 * joined by one group. */
typedef struct ranks {
    int32_t n;
    gm_backend *be[MAX_RANKS];
    gm_weights w[MAX_RANKS];
    bool bound[MAX_RANKS];
    gm_state st[MAX_RANKS];
    bool has_state[MAX_RANKS];
    gm_comm *comm[MAX_RANKS];
} ranks;

typedef struct run {
    float *teacher, *cont, *batch;   /* [rows, V] each */
    int32_t n_teacher, n_cont, n_batch;
    int32_t greedy[N_GREEDY];
} run;

static void ranks_free(ranks *m, const gm_config *c) {
    for (int32_t r = 0; r < m->n; r++) {
        if (m->has_state[r]) state_free(&m->st[r]);
        if (m->bound[r]) weights_release(&m->w[r], c, m->be[r]);
        comm_free(m->comm[r]);
        if (m->be[r]) m->be[r]->ops->free(m->be[r]);
    }
    memset(m, 0, sizeof *m);
}

static glmoe_status ranks_create(ranks *m, const gm_config *c, int32_t n, gm_split_mode mode, const gm_affine *q,
                                 gm_err *err) {
    memset(m, 0, sizeof *m);
    m->n = n;
    glmoe_status s = gm_backend_create(&m->be[0], g_device, 1, err);
    if (!s && n > 1 && !(s = gm_backend_check_ranks(m->be[0], n, err))) s = gm_comm_create(m->comm, m->be[0], n, err);
    for (int32_t r = 0; r < n && !s; r++) {
        gm_partition part;
        gm_bind_stats stats;
        if ((s = partition_plan(&part, c, n, r, mode, err))) break;
        if (r && (s = gm_backend_create_rank(&m->be[r], m->be[0], r, 1, err))) break;
        if ((s = weights_bind_rank(&m->w[r], c, NULL, SEED, q, &part, m->be[r], &stats, err))) break;
        m->bound[r] = true;
        if ((s = state_create_rank(&m->st[r], c, &part, m->be[r], N_BATCH, N_CTX, 2, NULL, err))) break;
        m->has_state[r] = true;
        m->st[r].comm = m->comm[r];
    }
    if (s) ranks_free(m, c);
    return s;
}

static glmoe_status step(ranks *m, const gm_config *c, const gm_row *rows, int32_t T, float *logits, gm_err *err) {
    const gm_weights *w[MAX_RANKS];
    gm_state *st[MAX_RANKS];
    for (int32_t r = 0; r < m->n; r++) {
        w[r] = &m->w[r];
        st[r] = &m->st[r];
    }
    return split_forward_batch(c, w, st, m->n, rows, T, logits, err);
}

static void truncate_all(ranks *m, int32_t q, int32_t n) {
    for (int32_t r = 0; r < m->n; r++) state_seq_truncate(&m->st[r], q, n);
}

/* The four checks' logits (see the file's header) of model m on ids. */
static glmoe_status do_run(ranks *m, const gm_config *c, const int32_t *ids, run *out, gm_err *err) {
    const int32_t V = c->vocab_size;
    memset(out, 0, sizeof *out);
    out->teacher = malloc((size_t)N_IDS * V * sizeof(float));
    out->cont = malloc((size_t)N_IDS * V * sizeof(float));
    out->batch = malloc((size_t)12 * V * sizeof(float));
    if (!out->teacher || !out->cont || !out->batch) return gm_fail(err, GLMOE_E_NOMEM, "out of memory");
    gm_row rows[N_BATCH];
    glmoe_status s;
    for (int32_t i = 0; i < N_IDS; i += N_BATCH) { /* 1. teacher-forced, chunks of 5 */
        const int32_t T = N_IDS - i < N_BATCH ? N_IDS - i : N_BATCH;
        for (int32_t t = 0; t < T; t++) rows[t] = (gm_row){.seq = 0, .token = ids[i + t], .logits = true};
        if ((s = step(m, c, rows, T, out->teacher + (size_t)i * V, err))) return s;
    }
    out->n_teacher = N_IDS;
    truncate_all(m, 0, N_IDS / 2); /* 2. cut to half, then one at a time */
    for (int32_t i = N_IDS / 2; i < N_IDS; i++) {
        rows[0] = (gm_row){.seq = 0, .token = ids[i], .logits = true};
        if ((s = step(m, c, rows, 1, out->cont + (size_t)out->n_cont++ * V, err))) return s;
    }
    /* 3. sequence 1 starts while sequence 0 (cut to 2) goes on, rows of a sequence consecutive */
    truncate_all(m, 0, 2);
    for (int32_t k = 0; k < 12; k += 4) {
        gm_row b[4] = {{.seq = 0, .token = ids[N_IDS - 1 - k], .logits = true},
                       {.seq = 0, .token = ids[N_IDS - 2 - k], .logits = true},
                       {.seq = 1, .token = ids[k], .logits = true},
                       {.seq = 1, .token = ids[k + 1], .logits = true}};
        if ((s = step(m, c, b, 4, out->batch + (size_t)out->n_batch * V, err))) return s;
        out->n_batch += 4;
    }
    truncate_all(m, 0, 0); /* 4. greedy */
    int32_t tok = ids[0];
    float *lg = out->cont; /* its rows are compared already: reuse the first as scratch */
    float *saved = malloc((size_t)V * sizeof *saved);
    if (!saved) return gm_fail(err, GLMOE_E_NOMEM, "out of memory");
    memcpy(saved, lg, (size_t)V * sizeof *saved);
    for (int32_t k = 0; k < N_GREEDY && !s; k++) {
        rows[0] = (gm_row){.seq = 0, .token = tok, .logits = true};
        if ((s = step(m, c, rows, 1, lg, err))) break;
        int32_t best = 0;
        for (int32_t v = 1; v < V; v++)
            if (lg[v] > lg[best]) best = v;
        out->greedy[k] = tok = best;
    }
    memcpy(lg, saved, (size_t)V * sizeof *saved);
    free(saved);
    return s;
}

static void run_free(run *r) {
    free(r->teacher);
    free(r->cont);
    free(r->batch);
}


static void check_format(const gm_config *c, const int32_t *ids, const gm_affine *q, const char *format) {
    gm_err err = {0};
    ranks whole;
    run ref;
    glmoe_status s = ranks_create(&whole, c, 1, GM_SPLIT_TP, q, &err);
    CHECK(!s, "%s unsplit: %s", format, err.msg);
    if (s) return;
    s = do_run(&whole, c, ids, &ref, &err);
    CHECK(!s, "%s unsplit: %s", format, err.msg);
    ranks_free(&whole, c);
    const int32_t ns[2] = {2, 4};
    for (int k = 0; k < 2 && !s; k++)
        for (int mode = GM_SPLIT_TP; mode <= GM_SPLIT_EP; mode++) {
            printf("%s over %d ranks, %s\n", format, ns[k], partition_mode_name((gm_split_mode)mode));
            ranks m;
            run got = {0};
            glmoe_status e = ranks_create(&m, c, ns[k], (gm_split_mode)mode, q, &err);
            if (e && g_device == GLMOE_DEVICE_CUDA && strstr(err.msg, "CUDA device")) {
                printf("SKIP: %s\n", err.msg); /* fewer GPUs than ranks */
                continue;
            }
            if (g_device == GLMOE_DEVICE_CUDA && mode == GM_SPLIT_EP) {
                CHECK(e == GLMOE_E_UNSUPPORTED && strstr(err.msg, "expert parallelism") && !strchr(err.msg, '\n'),
                      "ep on CUDA: status %d, \"%s\"", e, err.msg);
                printf("refused: %s\n", err.msg);
                if (!e) ranks_free(&m, c);
                continue;
            }
            CHECK(!e, "%s over %d: %s", format, ns[k], err.msg);
            if (e) continue;
            e = do_run(&m, c, ids, &got, &err);
            CHECK(!e, "%s over %d: %s", format, ns[k], err.msg);
            if (!e) {
                const size_t V = (size_t)c->vocab_size;
                split_compare("teacher-forced, chunks of 5", got.teacher, ref.teacher, (size_t)ref.n_teacher * V, g_tol);
                split_compare("truncate and continue", got.cont, ref.cont, (size_t)ref.n_cont * V, g_tol);
                split_compare("two sequences in a batch", got.batch, ref.batch, (size_t)ref.n_batch * V, g_tol);
                CHECK(!memcmp(got.greedy, ref.greedy, sizeof got.greedy), "%s over %d %s: greedy ids differ", format,
                      ns[k], partition_mode_name((gm_split_mode)mode));
            }
            run_free(&got);
            ranks_free(&m, c);
        }
    run_free(&ref);
}

int main(int argc, char **argv) {
    gm_config c;
    gm_err err = {0};
    if (argc > 2 && !strcmp(argv[1], "--device") && !strcmp(argv[2], "cuda")) {
        char desc[300];
        if (gm_backend_check(GLMOE_DEVICE_CUDA, desc, sizeof desc, &err)) {
            printf("SKIP: no CUDA device: %s\n", err.msg);
            return 0;
        }
        setenv("GLMOE_CUDA_KV", "f32", 1); /* before any backend is made (see the file's header) */
        g_device = GLMOE_DEVICE_CUDA;
        g_tol = 1e-4;
    } else if (argc > 1) {
        fprintf(stderr, "usage: test_split_synthetic [--device cuda]\n");
        return 2;
    }
    glmoe_status s = config_parse(&c, k_config, strlen(k_config), "the test's configuration", NULL, 0, &err);
    CHECK(!s, "%s", err.msg);
    if (s) return test_summary("test_split_synthetic");
    int32_t ids[N_IDS];
    for (int32_t i = 0; i < N_IDS; i++) ids[i] = (int32_t)((i * 97 + 13) % c.vocab_size);
    const gm_affine bf16 = {0}, q8 = {8, 32, GM_W_BF16};
    check_format(&c, ids, &bf16, "bf16");
    check_format(&c, ids, &q8, "q8 g32");
    return test_summary("test_split_synthetic");
}
