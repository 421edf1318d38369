/*
 * cmd_bench.c — `glmoe bench`: prefill and decode speed of a model, against the ceilings of the
 * device it runs on, measured in the same run.
 *
 * The model is a checkpoint directory (-m DIR, float or MLX-quantized) or a released configuration
 * with synthetic weights made on the device (--config glm-4.5-air [--layers N]; no file needed),
 * either quantized while loading with --quantize q4 (the synthetic weights quantized on the device
 * one tensor at a time: the full 46-layer Air at 4 bits needs no 60 GB file). --dry-run prints
 * what the model and the bench's context would take on the device (the estimate the load's
 * up-front memory check uses) and measures nothing. Measured:
 *   prefill   the time to evaluate a prompt of each length from an empty cache (one forward,
 *             logits of the last token only, copied to the host), median of --reps; lengths 1 to
 *             4096: powers of two, their midpoints, and every length from 112 to 144. Reported
 *             as ms, tokens/s, and TFLOP/s as a % of the probe's GEMM rate. FLOPs count the
 *             matmuls of the tokens (K routed experts each) and causal attention (the lower
 *             triangle only: 2·2·nh·D·L(L+1)/2 per layer), and one row of logits.
 *   decode    ms per one-token step (a fixed id fed, its logits copied to the host; no sampling,
 *             as in llama-bench) with C tokens in the cache, for each C of --contexts: the cache
 *             is filled by a prefill, then each step is timed and the sequence truncated back to C. Reported with the
 *             bytes a step must read (the weights it touches, as held: everything but the
 *             embedding table and the routed experts not chosen, i.e. K per MoE layer, quantized
 *             ones with their scales and biases; plus the whole KV cache) divided by the time, as a % of the probe's copy bandwidth; and the host time
 *             per step (the step's wall time minus the time the host waited for the GPU).
 *   verify    ms of one forward of T = 1..5 tokens at the first context (the verify step of
 *             speculative decoding with T - 1 drafts), as a multiple of the one-token step.
 *   batch     decode steps of N = 1, 4, 16, 64 sequences in one forward (glmoe_context_decode, one
 *             row each, at the first context): aggregate tokens/s and its multiple of N = 1.
 *   drafts    when the model has an MTP layer: greedy generation of --gen tokens after a prompt of
 *             fixed ids, one token at a time (a context without the layer) and in speculative
 *             steps of k = 0..4 drafts: tokens/s, drafts accepted, tokens per step.
 *   ops       every op of the forward alone (bench_ops.c), unless --no-ops.
 *   cliffs    any prefill length slower than 1.10x the next longer one, in the median and in the
 *             fastest repetition, is listed.
 * Output: a table on stdout, --json FILE (the schema of tools/bench/compare.py), --svg FILE.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "bench/bench_cliffs.h"
#include "cli.h"
#include "util/short_path.h"

#ifndef GLMOE_VERSION_STRING
#define GLMOE_VERSION_STRING "?"
#endif

static const char *const help =
    "usage: glmoe bench (-m DIR | --config NAME [--layers N]) [options]\n"
    "\n"
    "Prefill speed over prompt lengths, decode speed at several contexts, per-op times, each\n"
    "against the device's measured copy bandwidth and GEMM rate.\n"
    "\n"
    "  --config NAME      a released configuration with synthetic weights generated on the\n"
    "                     device: glm-4.5, glm-4.5-air, glm-4.6, glm-4.7\n"
    "  --layers N         keep the first N layers of --config (default: all)\n"
    "  --seed N           seed of the synthetic weights (default 0)\n"
    "  --quantize Q       quantize the weights while loading (q4, q8, q<bits>[g<group>]); with\n"
    "                     --config, each synthetic tensor is quantized on the device\n"
    "  --dry-run          print the bytes the weights and the bench's context would take on the\n"
    "                     device, per format, and exit without loading anything\n"
    "  --lengths LIST     prompt lengths, comma-separated, or \"sweep\" (default): 1..4096 by\n"
    "                     powers of two and their midpoints, and every length 112..144\n"
    "  --contexts LIST    decode contexts (default 128,2048,16384)\n"
    "  --steps N          timed decode steps per context (default 32)\n"
    "  --reps N           prefill repetitions per length, median taken (default 3)\n"
    "  --gen N            tokens generated per speculative-decoding run (default 128)\n"
    "  --no-ops           skip the per-op times\n"
    "  --json FILE        write the results as JSON\n"
    "  --svg FILE         write a plot of the prefill sweep\n"
    "\n";

/* 1..4096: powers of two, midpoints (3·2^k), and every length 112..144, sorted. */
static int sweep_lengths(int32_t *out) {
    int n = 0;
    for (int32_t p = 1; p <= 4096; p *= 2) {
        if (p < 112 || p > 144) out[n++] = p;
        if (p >= 2 && 3 * p / 2 <= 4096 && (3 * p / 2 < 112 || 3 * p / 2 > 144)) out[n++] = 3 * p / 2;
        if (p == 64)
            for (int32_t l = 112; l <= 144; l++) out[n++] = l;
    }
    return n;
}

static bool parse_list(const char *cmd, const char *opt, const char *text, int32_t *out, int *n, int cap) {
    int32_t *ids = NULL;
    size_t k = 0;
    if (!cli_parse_ids(cmd, text, &ids, &k)) return false;
    bool ok = k > 0 && (int)k <= cap;
    for (size_t i = 0; ok && i < k; i++) ok = ids[i] >= 1 && ids[i] <= (1 << 20);
    if (ok) memcpy(out, ids, k * sizeof *ids), *n = (int)k;
    else cli_error(cmd, "%s: 1 to %d values in [1, 1048576], got \"%s\"", opt, cap, text);
    free(ids);
    return ok;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof v[0], cmp_double);
    return v[n / 2];
}

/* Weights a decode step reads, in bytes (see the file comment), from the bytes the model holds
 * per kind and format (glmoe_model_info.weight_groups: quantized ones with their scales and
 * biases): one row of the embedding table, K of the E routed experts, everything else whole
 * (a tied head reads the whole table). The MTP layer, when loaded, is not run by a step: its
 * share of each per-layer kind is left out. */
static double decode_weight_bytes(const glmoe_model_info *info) {
    const int n_moe = info->n_layers - info->n_dense_layers;
    const double mtp_layers = info->has_mtp ? 1.0 : 0.0;
    double b = 0, embed = 0;
    bool head = false;
    for (int32_t i = 0; i < info->n_weight_groups; i++) {
        const glmoe_weight_group *g = &info->weight_groups[i];
        const double bytes = (double)g->bytes;
        if (!strcmp(g->kind, "embedding")) embed += bytes;
        else if (!strcmp(g->kind, "lm_head")) b += bytes, head = true;
        else if (!strcmp(g->kind, "MTP layer")) continue;
        else if (!strcmp(g->kind, "routed experts"))
            b += bytes * info->n_experts_per_tok / info->n_experts * n_moe / (n_moe + mtp_layers);
        else if (!strcmp(g->kind, "router") || !strcmp(g->kind, "shared experts"))
            b += bytes * n_moe / (n_moe + mtp_layers);
        else if (!strcmp(g->kind, "attention") || !strcmp(g->kind, "norms and biases"))
            b += bytes * info->n_layers / (info->n_layers + mtp_layers);
        else
            b += bytes;
    }
    return b + (head ? embed / info->vocab_size : embed + embed / info->vocab_size);
}

/* FLOPs of a prefill of L tokens (see the file comment). */
static double prefill_flops(const glmoe_model_info *c, int32_t L) {
    const double H = c->hidden_size, D = c->head_dim, QD = (double)c->n_heads * D, KD = (double)c->n_kv_heads * D;
    const double Im = c->moe_intermediate_size;
    double per_token = 0, attn = 0;
    for (int l = 0; l < c->n_layers; l++) {
        per_token += 2 * QD * H + 2 * KD * H;
        per_token += l >= c->n_dense_layers /* a MoE layer */
                         ? c->n_experts * H + 3 * H * Im * (c->n_shared_experts + c->n_experts_per_tok)
                         : 3 * H * c->intermediate_size;
        attn += 2.0 * 2.0 * c->n_heads * D * ((double)L * (L + 1) / 2);
    }
    return 2 * per_token * L + attn + 2.0 * c->vocab_size * H;
}

typedef struct run {
    const char *cmd;
    glmoe_context *ctx;
    int32_t *ids;   /* fixed pseudo-random ids: the prompts, then one per timed decode step */
    int32_t vocab;
} run;

/* The GPU backend's time blocked waiting for the GPU, and steps replayed from a recording. */
static double gpu_wait_s(uint64_t *replays) {
    glmoe_device_stats d;
    glmoe_device_stats_get(&d);
    *replays = d.graph_replays;
    return d.wait_seconds;
}

/* splitmix64's output for x: the fixed pseudo-random ids (the same on every run and machine). */
static uint64_t splitmix64(uint64_t x) {
    uint64_t z = x + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static bool eval(run *r, const int32_t *ids, size_t n, glmoe_logits_mode mode) {
    if (glmoe_context_eval(r->ctx, ids, n, mode) == GLMOE_OK) return true;
    cli_error(r->cmd, "%s", glmoe_context_errmsg(r->ctx));
    return false;
}

/* The median and the fastest of reps prefills of L tokens, in ms. */
static bool time_prefill(run *r, int32_t L, int reps, double *ms, double *fastest_ms) {
    double t[64];
    for (int i = 0; i < reps; i++) {
        glmoe_context_reset(r->ctx);
        double t0 = cli_now();
        if (!eval(r, r->ids, (size_t)L, GLMOE_LOGITS_LAST)) return false;
        t[i] = cli_now() - t0;
    }
    *ms = bench_median(t, reps) * 1e3; /* sorts t */
    *fastest_ms = t[0] * 1e3;
    return true;
}

static int32_t argmax_last(run *r) {
    const float *lg;
    size_t rows;
    glmoe_context_logits(r->ctx, &lg, &rows);
    int32_t b = 0;
    for (int32_t i = 1; i < r->vocab; i++)
        if (lg[i] > lg[b]) b = i;
    return b;
}

/* ms per step and host µs per step at context C. */
static bool time_decode(run *r, int32_t C, int steps, int32_t n_batch, double *ms, double *host_us, int *replayed) {
    glmoe_context_reset(r->ctx);
    for (int32_t done = 0; done < C;) {
        int32_t n = C - done < n_batch ? C - done : n_batch;
        if (!eval(r, r->ids + done, (size_t)n, done + n == C ? GLMOE_LOGITS_LAST : GLMOE_LOGITS_NONE)) return false;
        done += n;
    }
    int32_t tok = argmax_last(r);
    for (int i = 0; i < 3; i++) { /* warm-up: the step is recorded as a graph on the second */
        if (!eval(r, &tok, 1, GLMOE_LOGITS_LAST)) return false;
        glmoe_context_truncate(r->ctx, (size_t)C);
    }
    /* Timed steps feed fixed ids (as llama-bench does): the host's sampling is not the engine's. */
    uint64_t g0, g1;
    double w0 = gpu_wait_s(&g0), t0 = cli_now();
    for (int i = 0; i < steps; i++) {
        if (!eval(r, &r->ids[i], 1, GLMOE_LOGITS_LAST)) return false;
        glmoe_context_truncate(r->ctx, (size_t)C);
    }
    double t = cli_now() - t0, w = gpu_wait_s(&g1) - w0;
    *replayed = (int)(g1 - g0);
    *ms = t / steps * 1e3;
    *host_us = (t - w) / steps * 1e6;
    return true;
}

/* ms of one forward of T tokens at context C (median of steps), the cache cut back after each. */
static bool time_verify(run *r, int32_t C, int32_t T, int steps, int32_t n_batch, double *ms) {
    glmoe_context_reset(r->ctx);
    for (int32_t done = 0; done < C;) {
        int32_t n = C - done < n_batch ? C - done : n_batch;
        if (!eval(r, r->ids + done, (size_t)n, GLMOE_LOGITS_NONE)) return false;
        done += n;
    }
    double t[256];
    if (steps > 256) steps = 256;
    for (int i = -2; i < steps; i++) {
        double t0 = cli_now();
        if (!eval(r, r->ids + C, (size_t)T, GLMOE_LOGITS_ALL)) return false;
        if (i >= 0) t[i] = cli_now() - t0;
        glmoe_context_truncate(r->ctx, (size_t)C);
    }
    *ms = bench_median(t, steps) * 1e3;
    return true;
}

/* Aggregate decode tokens/s of n sequences of C tokens each, one row per sequence per step. */
static bool time_batch(run *r, glmoe_context *ctx, int32_t C, int32_t n, int steps, int32_t n_batch, double *tok_s) {
    for (int32_t q = 0; q < n; q++) glmoe_context_seq_truncate(ctx, q, 0);
    glmoe_batch_row *rows = malloc((size_t)(n > n_batch ? n : n_batch) * sizeof *rows);
    if (!rows) return false;
    bool ok = true;
    for (int32_t done = 0; ok && done < C;) { /* sequence 0's cache, copied to the others */
        int32_t k = C - done < n_batch ? C - done : n_batch;
        for (int32_t i = 0; i < k; i++) rows[i] = (glmoe_batch_row){0, done + i, r->ids[done + i], false};
        ok = glmoe_context_decode(ctx, rows, (size_t)k) == GLMOE_OK;
        done += k;
    }
    for (int32_t q = 1; ok && q < n; q++) ok = glmoe_context_seq_copy(ctx, q, 0, (size_t)C) == GLMOE_OK;
    double t[256];
    if (steps > 256) steps = 256;
    for (int i = -2; ok && i < steps; i++) {
        for (int32_t q = 0; q < n; q++) rows[q] = (glmoe_batch_row){q, C, r->ids[(q + i + 2) % C], true};
        double t0 = cli_now();
        ok = glmoe_context_decode(ctx, rows, (size_t)n) == GLMOE_OK;
        if (i >= 0) t[i] = cli_now() - t0;
        for (int32_t q = 0; q < n; q++) glmoe_context_seq_truncate(ctx, q, (size_t)C);
    }
    if (!ok) cli_error(r->cmd, "%s", glmoe_context_errmsg(ctx));
    else *tok_s = n / bench_median(t, steps);
    free(rows);
    return ok;
}

typedef struct gen_stats {
    double tok_s;
    long drafted, accepted, steps;
} gen_stats;

/* Greedy generation of n tokens after the first 16 fixed ids: one at a time (k < 0, ctx without
 * the MTP layer) or in speculative steps of k drafts. */
static bool time_generate(run *r, glmoe_context *ctx, int k, int n, gen_stats *g) {
    memset(g, 0, sizeof *g);
    glmoe_context_reset(ctx);
    double t0 = cli_now();
    glmoe_context *saved = r->ctx;
    r->ctx = ctx;
    bool ok = eval(r, r->ids, 16, GLMOE_LOGITS_LAST);
    int32_t tok = ok ? argmax_last(r) : 0;
    for (int have = 1; ok && have < n;) {
        if (k < 0) {
            ok = eval(r, &tok, 1, GLMOE_LOGITS_LAST);
            tok = argmax_last(r);
            have++;
            continue;
        }
        glmoe_spec_seq x = {.seq = 0, .token = tok, .n_draft = k < n - have - 1 ? k : n - have - 1};
        if (glmoe_context_speculate(ctx, &x, 1)) {
            cli_error(r->cmd, "%s", glmoe_context_errmsg(ctx));
            ok = false;
            break;
        }
        g->steps++;
        g->drafted += x.n_drafted;
        g->accepted += x.n_out - 1;
        have += x.n_out;
        tok = x.out[x.n_out - 1];
    }
    r->ctx = saved;
    g->tok_s = (n - 1) / (cli_now() - t0);
    return ok;
}

int cmd_bench(int argc, char **argv) {
    const char *cmd = "bench", *config = NULL, *json_path = NULL, *svg_path = NULL;
    cli_model_opts mo = {0};
    long layers = 0, steps = 32, reps = 3, n_gen = 128;
    uint64_t seed = 0;
    bool ops = true, dry_run = false;
    int32_t lengths[128], contexts[16] = {128, 2048, 16384};
    int n_lengths = sweep_lengths(lengths), n_contexts = 3;
    bool lengths_given = false, contexts_given = false; /* defaults are cut to what the model holds */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        bool has = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            return cli_help(help, true);
        } else if (!strcmp(a, "--config") && has) {
            config = argv[++i];
        } else if (!strcmp(a, "--layers") && has) {
            if (!cli_parse_int(cmd, a, argv[++i], 1, 4096, &layers)) return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--seed") && has) {
            if (!cli_parse_u64(cmd, a, argv[++i], &seed)) return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--lengths") && has) {
            if (strcmp(argv[++i], "sweep") && !parse_list(cmd, a, argv[i], lengths, &n_lengths, 128))
                return CLI_EXIT_USAGE;
            lengths_given = strcmp(argv[i], "sweep") != 0;
        } else if (!strcmp(a, "--contexts") && has) {
            if (!parse_list(cmd, a, argv[++i], contexts, &n_contexts, 16)) return CLI_EXIT_USAGE;
            contexts_given = true;
        } else if (!strcmp(a, "--steps") && has) {
            if (!cli_parse_int(cmd, a, argv[++i], 1, 100000, &steps)) return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--reps") && has) {
            if (!cli_parse_int(cmd, a, argv[++i], 1, 63, &reps)) return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--gen") && has) {
            if (!cli_parse_int(cmd, a, argv[++i], 2, 100000, &n_gen)) return CLI_EXIT_USAGE;
        } else if (!strcmp(a, "--no-ops")) {
            ops = false;
        } else if (!strcmp(a, "--dry-run")) {
            dry_run = true;
        } else if (!strcmp(a, "--json") && has) {
            json_path = argv[++i];
        } else if (!strcmp(a, "--svg") && has) {
            svg_path = argv[++i];
        } else {
            return cli_bad_option(cmd, a, help, true);
        }
    }
    if (!mo.model_dir == !config) {
        cli_error(cmd, "needs either -m DIR or --config NAME");
        return CLI_EXIT_USAGE;
    }
    if (layers && !config) {
        cli_error(cmd, "--layers goes with --config");
        return CLI_EXIT_USAGE;
    }
    cli_install_log(mo.verbose);

    int rc = CLI_EXIT_FAIL;
    glmoe_model *model = NULL;
    run r = {.cmd = cmd};
    json_t *doc = json_object(), *jpre = json_array(), *jdec = json_array(), *jops = json_array(), *jcliffs = json_array();
    json_t *jver = json_array(), *jdraft = json_array(), *jbatch = json_array();
    glmoe_context *spec_ctx = NULL, *batch_ctx = NULL;
    bench_point pts[128];
    double fastest[128]; /* of each length's repetitions, ms */
    char err[1024];
    FILE *json_file = NULL, *svg_file = NULL;

    /* The outputs first: a path that cannot be written is found before minutes of measuring. */
    if ((json_path && !(json_file = cli_output_open(json_path, err, sizeof err))) ||
        (svg_path && !(svg_file = cli_output_open(svg_path, err, sizeof err)))) {
        cli_error(cmd, "%s", err);
        goto done;
    }

    /* ---- the configuration, and the lengths and contexts it can hold ---- */
    int32_t max_pos;
    if (!bench_max_positions(config, (int32_t)layers, mo.model_dir, &max_pos, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    /* the defaults are cut to fit (said on stderr), what was asked for explicitly must fit */
    int kept = 0;
    for (int i = 0; i < n_lengths; i++)
        if (lengths_given || lengths[i] <= max_pos) lengths[kept++] = lengths[i];
    if (kept < n_lengths) fprintf(stderr, "glmoe bench: prompt lengths above max_position_embeddings %d skipped\n", max_pos);
    n_lengths = kept;
    kept = 0;
    for (int i = 0; i < n_contexts; i++)
        if (contexts_given || contexts[i] + 8 <= max_pos) contexts[kept++] = contexts[i];
    if (kept < n_contexts) fprintf(stderr, "glmoe bench: decode contexts above max_position_embeddings %d skipped\n", max_pos);
    n_contexts = kept;
    if (!n_contexts && !contexts_given && max_pos >= 16) contexts[n_contexts++] = max_pos / 2; /* a short model */
    if (!n_lengths || !n_contexts) {
        cli_error(cmd, "max_position_embeddings %d leaves nothing to measure", max_pos);
        goto done;
    }
    int32_t max_len = 0, max_ctx = 0;
    for (int i = 0; i < n_lengths; i++) max_len = lengths[i] > max_len ? lengths[i] : max_len;
    for (int i = 0; i < n_contexts; i++) max_ctx = contexts[i] > max_ctx ? contexts[i] : max_ctx;
    int32_t need = max_ctx + 8 > max_len ? max_ctx + 8 : max_len;
    if (dry_run) { /* what loading would need, and nothing loaded */
        rc = bench_footprint(cmd, config, (int32_t)layers, mo.model_dir, &mo.quantize, need, max_len) ? 0 : CLI_EXIT_FAIL;
        goto done;
    }

    /* ---- the model ---- */
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = mo.device;
    mp.n_threads = mo.n_threads;
    mp.quantize = mo.quantize;
    mp.n_devices = mo.n_devices;
    mp.split = mo.split;
    glmoe_status s = config ? glmoe_model_load_synthetic(&model, config, (int32_t)layers, seed, &mp)
                            : glmoe_model_load(&model, mo.model_dir, &mp);
    if (s) {
        char shown[GM_SHORT_PATH_MAX];
        cli_error(cmd, "%s: %s", gm_short_path(shown, sizeof shown, config ? config : mo.model_dir),
                  model ? glmoe_model_errmsg(model) : glmoe_status_str(s));
        goto done;
    }
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    r.vocab = info.vocab_size;
    if (info.has_mtp) { /* the speculative runs: a prompt of 16, n_gen tokens, room for drafts */
        if (16 + n_gen + 8 > max_pos) n_gen = max_pos - 24 > 2 ? max_pos - 24 : 2;
        if (need < 16 + (int32_t)n_gen + 8) need = 16 + (int32_t)n_gen + 8;
    }
    if (need > info.max_position_embeddings) {
        cli_error(cmd, "a context of %d tokens exceeds the model's max_position_embeddings %d (use --lengths / --contexts)",
                  need, info.max_position_embeddings);
        rc = CLI_EXIT_USAGE;
        goto done;
    }
    glmoe_context_params cp = {.n_ctx = need, .n_batch = max_len};
    if (glmoe_context_create(&r.ctx, model, &cp)) {
        cli_error(cmd, "%s", glmoe_context_errmsg(r.ctx));
        goto done;
    }
    /* The fixed ids feed the prompts (up to `need` tokens) and, one per step, the timed decode
     * steps: --steps may ask for more steps than the context has positions (each step is cut off
     * again), so the array covers both. */
    const int32_t n_fixed = need > (int32_t)steps ? need : (int32_t)steps;
    if (!(r.ids = malloc((size_t)n_fixed * sizeof(int32_t)))) {
        cli_error(cmd, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n_fixed; i++)
        r.ids[i] = (int32_t)(splitmix64((uint64_t)i) % (uint64_t)info.vocab_size);

    /* ---- the device's ceilings ---- */
    opcase_probe probe;
    if (!opcases_probe(info.backend, &probe, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    printf("model    %s: %d layers, %.2fB parameters (%.2fB active), %s backend\n", info.dir, info.n_layers,
           info.n_params / 1e9, info.n_params_active / 1e9, info.backend);
    printf("device   %s: copy %.0f GB/s, %s %.1f TFLOP/s\n", probe.device, probe.copy_gb_s, probe.gemm_what,
           probe.gemm_tflop_s);
    if (!cli_stdout_ok()) { /* the table has no reader: stop measuring */
        rc = cli_stdout_failed(cmd);
        goto done;
    }

    /* ---- warm-up, then the prefill sweep ---- */
    glmoe_context_reset(r.ctx);
    if (!eval(&r, r.ids, 8, GLMOE_LOGITS_LAST) || !eval(&r, r.ids + 8, 1, GLMOE_LOGITS_LAST)) goto done;
    printf("\nprefill  tokens       ms      tok/s   TFLOP/s  %%GEMM\n");
    for (int i = 0; i < n_lengths; i++) {
        double ms;
        if (!time_prefill(&r, lengths[i], (int)reps, &ms, &fastest[i])) goto done;
        double tflops = prefill_flops(&info, lengths[i]) / (ms * 1e-3) / 1e12;
        pts[i] = (bench_point){lengths[i], ms};
        printf("         %6d %8.3f %10.0f %9.2f %6.1f\n", lengths[i], ms, lengths[i] / (ms * 1e-3), tflops,
               100 * tflops / probe.gemm_tflop_s);
        if (!cli_stdout_ok()) { /* the table has no reader: stop measuring */
            rc = cli_stdout_failed(cmd);
            goto done;
        }
        json_array_append_new(jpre, json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "tokens", lengths[i], "ms", ms,
                                              "fastest_ms", fastest[i], "tok_s", lengths[i] / (ms * 1e-3), "tflop_s",
                                              tflops, "gemm_pct", 100 * tflops / probe.gemm_tflop_s));
    }
    /* cliffs (bench_cliffs.c): in the median and in the fastest repetition both */
    {
        double median[128];
        bench_cliff cliffs[128];
        for (int i = 0; i < n_lengths; i++) median[i] = pts[i].ms;
        int n_cliffs = bench_find_cliffs(lengths, median, fastest, n_lengths, cliffs, 128);
        for (int c = 0; c < n_cliffs && c < 128; c++) {
            int i = cliffs[c].at, j = cliffs[c].next;
            printf("CLIFF    %d tokens take %.3f ms, %.2fx the %.3f ms of %d tokens\n", lengths[i], pts[i].ms,
                   pts[i].ms / pts[j].ms, pts[j].ms, lengths[j]);
            json_array_append_new(jcliffs, json_pack("{s:i, s:f, s:i, s:f}", "tokens", lengths[i], "ms", pts[i].ms,
                                                     "next_tokens", lengths[j], "next_ms", pts[j].ms));
        }
    }

    /* ---- decode ---- */
    const double kv_bytes = !strcmp(info.backend, "cuda") ? 2 : 4; /* bf16 on the GPU, float32 on the CPU */
    const double step_weight_bytes = decode_weight_bytes(&info);
    /* the host's share of a step and the graph replays are the GPU's columns: on the CPU the
     * host is the device, and nothing is replayed */
    const bool gpu = strcmp(info.backend, "cpu") != 0;
    printf(gpu ? "\ndecode   context  ms/token  host us/step   GB/s  %%copy-BW  graph replays\n"
               : "\ndecode   context  ms/token   GB/s  %%copy-BW\n");
    for (int i = 0; i < n_contexts; i++) {
        double ms, host_us;
        int replayed;
        if (!time_decode(&r, contexts[i], (int)steps, max_len, &ms, &host_us, &replayed)) goto done;
        double bytes = step_weight_bytes +
                       2.0 * info.n_layers * info.n_kv_heads * info.head_dim * (contexts[i] + 1.0) * kv_bytes;
        double gbs = bytes / (ms * 1e-3) / 1e9;
        if (gpu)
            printf("         %7d %9.3f %13.1f %6.0f %8.1f %8d/%d\n", contexts[i], ms, host_us, gbs,
                   100 * gbs / probe.copy_gb_s, replayed, (int)steps);
        else
            printf("         %7d %9.3f %6.0f %8.1f\n", contexts[i], ms, gbs, 100 * gbs / probe.copy_gb_s);
        if (!cli_stdout_ok()) { /* the table has no reader: stop measuring */
            rc = cli_stdout_failed(cmd);
            goto done;
        }
        json_array_append_new(jdec, json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:i}", "context", contexts[i], "ms_per_token",
                                              ms, "host_us_per_step", host_us, "bytes", bytes, "gb_s", gbs,
                                              "bw_pct", 100 * gbs / probe.copy_gb_s, "graph_replays", replayed));
    }

    /* ---- verify steps: T tokens in one forward ---- */
    printf("\nverify   tokens  ms/step  x one-token  (context %d)\n", contexts[0]);
    double one = 0;
    for (int32_t T = 1; T <= 5; T++) {
        double ms;
        if (!time_verify(&r, contexts[0], T, (int)steps, max_len, &ms)) goto done;
        if (T == 1) one = ms;
        printf("         %6d %8.3f %12.2f\n", T, ms, ms / one);
        json_array_append_new(jver, json_pack("{s:i, s:i, s:f, s:f}", "tokens", T, "context", contexts[0], "ms", ms,
                                              "x_one", ms / one));
    }

    /* ---- several sequences per forward ---- */
    {
        static const int32_t ns[] = {1, 4, 16, 64};
        const int32_t C = contexts[0];
        glmoe_context_params bp = {.n_ctx = C + 8, .n_batch = max_len > 64 ? max_len : 64, .n_seq_max = 64};
        if (glmoe_context_create(&batch_ctx, model, &bp)) {
            cli_error(cmd, "%s", glmoe_context_errmsg(batch_ctx));
            goto done;
        }
        printf("\nbatch    sequences  tok/s (all)  x one  (decode at context %d, one row per sequence)\n", C);
        double one_seq = 0;
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            double tps;
            if (!time_batch(&r, batch_ctx, C, ns[i], (int)steps, bp.n_batch, &tps)) goto done;
            if (i == 0) one_seq = tps;
            printf("         %9d %12.1f %6.2f\n", ns[i], tps, tps / one_seq);
            json_array_append_new(jbatch, json_pack("{s:i, s:i, s:f, s:f}", "sequences", ns[i], "context", C, "tok_s", tps,
                                                    "x_one", tps / one_seq));
        }
        glmoe_context_free(batch_ctx);
        batch_ctx = NULL;
    }

    /* ---- speculative decoding with the MTP layer ---- */
    if (info.has_mtp) {
        /* a speculative step evaluates 1 + k rows, k up to 4, whatever the longest prefill asked */
        glmoe_context_params sp = {.n_ctx = need, .n_batch = max_len > 5 ? max_len : 5, .n_draft = 4};
        if (glmoe_context_create(&spec_ctx, model, &sp)) {
            cli_error(cmd, "%s", glmoe_context_errmsg(spec_ctx));
            goto done;
        }
        printf("\ndrafts   k    tok/s  speed-up  accepted   tokens/step  (greedy, %ld tokens)\n", n_gen);
        gen_stats base;
        if (!time_generate(&r, r.ctx, -1, (int)n_gen, &base)) goto done;
        printf("         -  %7.1f     1.00x         -          1.00  (one at a time, no MTP layer)\n", base.tok_s);
        json_array_append_new(jdraft, json_pack("{s:i, s:f, s:f}", "k", -1, "tok_s", base.tok_s, "speedup", 1.0));
        for (int k = 0; k <= 4; k++) {
            gen_stats g;
            if (!time_generate(&r, spec_ctx, k, (int)n_gen, &g)) goto done;
            const double acc = g.drafted ? (double)g.accepted / (double)g.drafted : 0.0;
            const double per_step = g.steps ? (double)(g.accepted + g.steps) / (double)g.steps : 1.0;
            printf("         %d  %7.1f  %7.2fx  %7.1f%%  %12.2f\n", k, g.tok_s, g.tok_s / base.tok_s, 100 * acc, per_step);
            json_array_append_new(jdraft, json_pack("{s:i, s:f, s:f, s:f, s:f}", "k", k, "tok_s", g.tok_s, "speedup",
                                                    g.tok_s / base.tok_s, "acceptance", acc, "tokens_per_step", per_step));
        }
        if (!cli_stdout_ok()) {
            rc = cli_stdout_failed(cmd);
            goto done;
        }
    }

    /* ---- per-op ---- */
    if (ops) {
        printf("\nops (each alone, synthetic weights of this shape)\n");
        bench_ops_opts oo = {.backend = info.backend, .n_threads = mo.n_threads, .prefill_tokens = 512,
                             .contexts = contexts, .n_contexts = n_contexts, .min_seconds = 0.02,
                             .quantize = mo.quantize, .copy_gb_s = probe.copy_gb_s};
        if (!bench_ops_run(&info, &oo, jops, err, sizeof err)) {
            cli_error(cmd, "%s", err);
            goto done;
        }
    }

    /* ---- reports ---- */
    char version[200], weights[64];
    if (mo.quantize.bits)
        snprintf(weights, sizeof weights, "q%d g%d weights (quantized while loading)", mo.quantize.bits,
                 mo.quantize.group_size);
    else
        snprintf(weights, sizeof weights, "%s weights", info.bytes_quantized ? "MLX-quantized" : "bf16");
    snprintf(version, sizeof version, "glmoe %s, %s backend, %s, %s KV cache", GLMOE_VERSION_STRING, info.backend,
             weights, kv_bytes == 2 ? "bf16" : "float32");
    json_object_set_new(doc, "engine", json_string("glmoe"));
    json_object_set_new(doc, "version", json_string(version));
    json_object_set_new(doc, "device", json_string(probe.device));
    json_object_set_new(doc, "model", json_pack("{s:s, s:s, s:i, s:f, s:f}", "name", config ? config : mo.model_dir,
                                                "dir", info.dir, "layers", info.n_layers, "params", (double)info.n_params,
                                                "active_params", (double)info.n_params_active));
    json_object_set_new(doc, "probe", json_pack("{s:f, s:f, s:s}", "copy_gb_s", probe.copy_gb_s, "gemm_tflop_s",
                                                probe.gemm_tflop_s, "gemm", probe.gemm_what));
    json_object_set(doc, "prefill", jpre);
    json_object_set(doc, "decode", jdec);
    json_object_set(doc, "ops", jops);
    json_object_set(doc, "cliffs", jcliffs);
    json_object_set(doc, "verify", jver);
    json_object_set(doc, "drafts", jdraft);
    json_object_set(doc, "batch", jbatch);
    bool written = !json_file || bench_write_json(json_file, json_path, doc, err, sizeof err);
    json_file = NULL;
    if (!written) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    char title[512];
    snprintf(title, sizeof title, "glmoe prefill, %s (%d layers), %s", config ? config : mo.model_dir, info.n_layers,
             probe.device);
    written = !svg_file || bench_write_svg(svg_file, svg_path, title, pts, n_lengths, err, sizeof err);
    svg_file = NULL;
    if (!written) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    rc = 0;
done:
    if (json_file) fclose(json_file);
    if (svg_file) fclose(svg_file);
    json_decref(doc);
    json_decref(jpre);
    json_decref(jdec);
    json_decref(jops);
    json_decref(jcliffs);
    json_decref(jver);
    json_decref(jdraft);
    json_decref(jbatch);
    glmoe_context_free(spec_ctx);
    glmoe_context_free(batch_ctx);
    free(r.ids);
    glmoe_context_free(r.ctx);
    glmoe_model_free(model);
    return rc;
}
