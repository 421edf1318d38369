/*
 * bench_tokenizer.c — tokenizer speed: load time and single-threaded encode MB/s.
 *
 *   bench_tokenizer [--reps N] [--chunk BYTES] TOKENIZER TEXT...
 *
 * TOKENIZER is a tokenizer.json (or .gz, or a model directory). For each TEXT file it encodes the
 * whole file as one string (or, with --chunk, pieces of about BYTES cut at line ends, one encode
 * call each) N times and reports the best and median MB/s, the id count and an FNV-1a hash of the
 * ids. tools/reference/bench_tokenizer_hf.py measures Hugging Face tokenizers the same way and
 * prints the same count and hash, so equal hashes show both produced the same ids.
 *
 * Load time: N loads of the tokenizer file (reading and parsing, as glmoe_tokenizer_load does),
 * best and median. The word cache is cold at the start of each text's first repetition and warm
 * afterwards, as in HF (whose BPE cache persists across calls too). Encoding does not include
 * reading the text file. One thread; CPU time is printed next to wall time because a busy machine
 * inflates wall time.
 *
 * Output: a human table, then one JSON line per measurement (prefix "json: ") for BENCHMARKS.md.
 * Build: see the CMake snippet in the tokenizer report (links glmoe_core; includes src/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer/tokenizer.h"

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* FNV-1a over the ids as little-endian 32-bit words (the Python script computes the same). */
static uint64_t hash_ids(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 4; k++) {
            h ^= (uint8_t)((uint32_t)ids[i] >> (8 * k));
            h *= 0x100000001b3ull;
        }
    return h;
}

int main(int argc, char **argv) {
    int reps = 5;
    size_t chunk = 0;
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--chunk") == 0 && i + 1 < argc) chunk = (size_t)atol(argv[++i]);
        else break;
    }
    if (argc - i < 2 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: %s [--reps N] [--chunk BYTES] TOKENIZER TEXT...\n", argv[0]);
        return 2;
    }
    const char *tok_path = argv[i++];
    gm_err err = {0};
    gm_tokenizer *tok = NULL;

    double load_wall[1000], load_cpu[1000];
    for (int r = 0; r < reps; r++) {
        double w = wall(), c = cpu();
        if (gm_tokenizer_load(&tok, tok_path, &err) != GLMOE_OK) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
            return 1;
        }
        load_wall[r] = 1e3 * (wall() - w);
        load_cpu[r] = 1e3 * (cpu() - c);
        if (r + 1 < reps) gm_tokenizer_free(tok);
    }
    double lw_best = load_wall[0], lc_best = load_cpu[0];
    for (int r = 1; r < reps; r++) {
        if (load_wall[r] < lw_best) lw_best = load_wall[r];
        if (load_cpu[r] < lc_best) lc_best = load_cpu[r];
    }
    double lw_med = median(load_wall, reps), lc_med = median(load_cpu, reps);
    printf("tokenizer %s: load best %.1f ms, median %.1f ms (cpu best %.1f, median %.1f), %d ids\n", tok_path, lw_best,
           lw_med, lc_best, lc_med, gm_tokenizer_n_ids(tok));
    printf("json: {\"impl\": \"glmoe\", \"what\": \"load\", \"tokenizer\": \"%s\", \"best_ms\": %.2f, \"median_ms\": %.2f, "
           "\"cpu_best_ms\": %.2f, \"cpu_median_ms\": %.2f}\n",
           tok_path, lw_best, lw_med, lc_best, lc_med);

    for (; i < argc; i++) {
        gm_tok_bytes text = {0};
        if (gm_tokenizer_read_file(argv[i], &text, &err) != GLMOE_OK) {
            fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
            return 1;
        }
        /* chunk boundaries: after the first newline at or past each multiple of `chunk` */
        size_t *cuts = malloc((text.n / (chunk ? chunk : text.n + 1) + 2) * sizeof *cuts), n_cuts = 0;
        cuts[n_cuts++] = 0;
        if (chunk)
            for (size_t pos = chunk; pos < text.n;) {
                const char *nl = memchr(text.p + pos, '\n', text.n - pos);
                if (!nl) break;
                pos = (size_t)(nl - text.p) + 1;
                cuts[n_cuts++] = pos;
                pos += chunk;
            }
        cuts[n_cuts] = text.n;
        double mbs[1000], mbs_cpu[1000];
        gm_tok_ids ids = {0};
        size_t n_ids = 0;
        uint64_t h = 0;
        for (int r = 0; r < reps; r++) {
            ids.n = 0;
            double w = wall(), c = cpu();
            for (size_t k = 0; k < n_cuts; k++) {
                if (gm_tokenizer_encode(tok, text.p + cuts[k], cuts[k + 1] - cuts[k], GM_TOK_PARSE_SPECIAL, &ids, &err) != GLMOE_OK) {
                    fprintf(stderr, "bench_tokenizer: %s: %s\n", argv[i], err.msg);
                    return 1;
                }
            }
            double dw = wall() - w, dc = cpu() - c;
            mbs[r] = (double)text.n / dw / 1e6;
            mbs_cpu[r] = (double)text.n / dc / 1e6;
            n_ids = ids.n;
            h = hash_ids(ids.ids, ids.n);
        }
        double best = mbs[0], best_cpu = mbs_cpu[0];
        for (int r = 1; r < reps; r++) {
            if (mbs[r] > best) best = mbs[r];
            if (mbs_cpu[r] > best_cpu) best_cpu = mbs_cpu[r];
        }
        double med = median(mbs, reps), med_cpu = median(mbs_cpu, reps);
        printf("  %s: %.2f MB, %zu calls: best %.2f MB/s, median %.2f MB/s (cpu best %.2f, median %.2f); %zu ids, hash %016llx\n",
               argv[i], (double)text.n / 1e6, n_cuts, best, med, best_cpu, med_cpu, n_ids, (unsigned long long)h);
        printf("json: {\"impl\": \"glmoe\", \"what\": \"encode\", \"tokenizer\": \"%s\", \"text\": \"%s\", \"bytes\": %zu, "
               "\"calls\": %zu, \"best_mb_s\": %.3f, \"median_mb_s\": %.3f, \"cpu_best_mb_s\": %.3f, \"cpu_median_mb_s\": %.3f, "
               "\"ids\": %zu, \"hash\": \"%016llx\"}\n",
               tok_path, argv[i], text.n, n_cuts, best, med, best_cpu, med_cpu, n_ids, (unsigned long long)h);
        gm_tok_ids_free(&ids);
        gm_tok_bytes_free(&text);
        free(cuts);
    }
    gm_tokenizer_free(tok);
    return 0;
}
