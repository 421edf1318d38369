/*
 * test_mtp.c — the multi-token-prediction layer against an independent PyTorch forward
 * (tools/reference/make_mtp_golden.py: transformers' own decoder layer with the layer's tensors,
 * the glue written from vLLM's and SGLang's description).
 *
 * On tests/golden/mtp (random weights, MTP tensors at model.layers.2.*), through the model code:
 *   1. the layer binds (its tensors counted as used, its own embedding and head kept apart since
 *      they differ from the model's), and the model's logits are unchanged by running it;
 *   2. teacher-forced MTP logits: after a forward over teacher_ids, every MTP row (the token at
 *      i + 1 and the hidden state at i) run through the whole layer equals mtp_logits.f32 within
 *      1e-4, and so do the rows written by the forward itself (KV only), read back by a draft;
 *   3. a refusal: MTP rows that do not continue the layer's cache.
 * The drafts chained from the layer's own output are checked through the public API
 * (test_speculate.c).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "test.h"

#define TOL 1e-4

static float *read_f32(const char *path, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    float *v = malloc(n * sizeof *v);
    size_t got = fread(v, sizeof *v, n, f);
    fclose(f);
    if (got != n) {
        free(v);
        return NULL;
    }
    return v;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_mtp REPO_ROOT\n");
        return 2;
    }
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/tests/golden/mtp", argv[1]);
    gm_err err = {0};
    gm_config c;
    gm_quant_config qc;
    st_set *set = NULL;
    gm_backend *be = NULL;
    glmoe_status s = config_load(&c, dir, &err);
    if (!s) s = quant_config_load(&qc, dir, &err);
    if (!s) s = st_set_open_dir(&set, dir, &err);
    if (!s) s = cpu_backend_create(&be, 1, &err);
    CHECK(s == GLMOE_OK, "%s: %s", dir, err.msg);
    if (s) return test_summary("test_mtp");

    /* reference.json's teacher_ids */
    snprintf(path, sizeof path, "%s/mtp_reference.json", dir);
    size_t len = 0;
    char *text = NULL;
    FILE *f = fopen(path, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        len = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        text = malloc(len + 1);
        len = fread(text, 1, len, f);
        text[len] = 0;
        fclose(f);
    }
    json_error_t je;
    json_t *ref = text ? json_loads(text, 0, &je) : NULL;
    free(text);
    json_t *tj = json_object_get(ref, "teacher_ids");
    CHECK(json_is_array(tj), "%s: no teacher_ids", path);
    const int32_t T = (int32_t)json_array_size(tj), V = c.vocab_size;
    int32_t ids[64];
    for (int32_t i = 0; i < T && i < 64; i++) ids[i] = (int32_t)json_integer_value(json_array_get(tj, (size_t)i));
    snprintf(path, sizeof path, "%s/mtp_logits.f32", dir);
    float *want_mtp = read_f32(path, (size_t)(T - 1) * (size_t)V);
    snprintf(path, sizeof path, "%s/logits.f32", dir);
    float *want_main = read_f32(path, (size_t)T * (size_t)V);
    CHECK(want_mtp && want_main && T <= 64, "reference files");
    if (!want_mtp || !want_main || T > 64) goto done_ref;

    /* 1. bind with the MTP layer */
    gm_weights w;
    gm_bind_stats stats;
    gm_bind_source src = {.set = set, .quant = &qc, .mtp = true};
    s = weights_bind(&w, &c, &src, be, &stats, &err);
    CHECK(s == GLMOE_OK && w.mtp, "bind: %s", err.msg);
    if (s) goto done_ref;
    CHECK(stats.n_skipped == 0 && stats.n_unused == 0 && stats.n_params_mtp > 0, "skipped %d, unused %d, mtp params %llu",
          stats.n_skipped, stats.n_unused, (unsigned long long)stats.n_params_mtp);
    CHECK(w.mtp->embed.data != w.embed.data && w.mtp->head.data != w.lm_head.data,
          "the MTP layer's own embedding and head differ from the model's here: not shared");

    gm_state st;
    s = state_create(&st, &c, be, 32, 64, 1, w.mtp, &err);
    CHECK(s == GLMOE_OK, "state: %s", err.msg);
    if (s) goto done_w;
    gm_row rows[64];
    for (int32_t i = 0; i < T; i++) rows[i] = (gm_row){.seq = 0, .token = ids[i], .logits = true};
    float *got = malloc((size_t)T * (size_t)V * sizeof *got);
    s = forward_batch(&c, &w, &st, rows, T, got, &err);
    CHECK(s == GLMOE_OK, "forward: %s", err.msg);
    if (!s) {
        double d = max_diff(got, want_main, (size_t)T * (size_t)V);
        CHECK(d <= 2e-3, "the model's logits with the MTP layer running: max |diff| %.3g", d);
        CHECK(st.seqs[0].mtp_len == T - 1 && st.seqs[0].stash_ok, "after the forward: mtp_len %d", st.seqs[0].mtp_len);
    }

    /* 2a. the rows the forward wrote (KV only), read by a full row at the end: position T - 2
     * again as a draft would see it after truncating the MTP cache by one. */
    const int64_t H = c.hidden_size;
    gm_mtp_row mr[64];
    if (!s) {
        st.seqs[0].mtp_len = T - 2;
        mr[0] = (gm_mtp_row){0, T - 2, ids[T - 1], gm_cptr_add(st.hid, (size_t)(T - 2) * (size_t)H * 4)};
        s = mtp_forward(&c, &w, &st, mr, 1, got, &err);
        CHECK(s == GLMOE_OK, "mtp row: %s", err.msg);
        double d = s ? 1e9 : max_diff(got, want_mtp + (size_t)(T - 2) * (size_t)V, (size_t)V);
        printf("MTP row %d over the cache the forward wrote: max |diff| %.3g\n", T - 2, d);
        CHECK(d <= TOL, "MTP row %d after the forward's KV-only rows: max |diff| %.3g > %g", T - 2, d, TOL);
    }
    /* 2b. every row through the whole layer (hid still holds the forward's hidden states: the
     * single row above wrote only row 0, so redo the forward first). */
    if (!s) {
        state_seq_truncate(&st, 0, 0);
        s = forward_batch(&c, &w, &st, rows, T, got, &err);
        CHECK(s == GLMOE_OK, "forward: %s", err.msg);
    }
    if (!s) {
        st.seqs[0].mtp_len = 0;
        for (int32_t i = 0; i + 1 < T; i++)
            mr[i] = (gm_mtp_row){0, i, ids[i + 1], gm_cptr_add(st.hid, (size_t)i * (size_t)H * 4)};
        s = mtp_forward(&c, &w, &st, mr, T - 1, got, &err);
        CHECK(s == GLMOE_OK, "mtp rows: %s", err.msg);
        double d = s ? 1e9 : max_diff(got, want_mtp, (size_t)(T - 1) * (size_t)V);
        printf("teacher-forced MTP logits (%d rows): max |diff| %.3g\n", T - 1, d);
        CHECK(d <= TOL, "teacher-forced MTP logits: max |diff| %.3g > %g", d, TOL);
    }
    /* 3. rows that skip a position of the MTP cache */
    if (!s) {
        mr[0] = (gm_mtp_row){0, 3, ids[4], st.hid}; /* mtp_len is T - 1 */
        s = mtp_forward(&c, &w, &st, mr, 1, got, &err);
        CHECK(s == GLMOE_E_ARG && strstr(err.msg, "does not continue"), "status %d: %s", (int)s, err.msg);
    }
    free(got);
    state_free(&st);
done_w:
    weights_release(&w, &c, be);
done_ref:
    json_decref(ref);
    free(want_mtp);
    free(want_main);
    be->ops->free(be);
    st_set_close(set);
    quant_config_free(&qc);
    return test_summary("test_mtp");
}
