/*
 * speculate.c — one speculative step of several sequences with the model's MTP layer
 * (glmoe_context_speculate; docs/spec/mtp.md).
 *
 * For each sequence, of length n with its next token t chosen but not evaluated:
 *   1. draft: the MTP layer at position n - 1 reads t and the stashed hidden state of position
 *      n - 1 and proposes d1 (its most likely token); at n it reads d1 and its own normed output
 *      and proposes d2; ... k times. One MTP forward per draft covers every sequence.
 *   2. verify: one forward of the model over [t, d1, ..., dk] at positions n .. n + k, every row
 *      with logits, all sequences in one batch.
 *   3. accept: the sampler picks a token from the logits at n; while it equals the draft there,
 *      the next position's logits are used too. The picks are the output: accepted drafts, then
 *      the first pick that differs (or the pick after the last draft).
 *   4. roll back: the sequence keeps n + 1 + accepted positions; the MTP layer's cache keeps the
 *      rows whose next token was accepted, and the stash takes the hidden state of the last
 *      position kept, from the verify forward (st->hid), so that the next step drafts at once.
 * Drafts are argmax picks, so the rule "accept d with probability p(d), else draw from p without
 * d" of speculative sampling is exactly "draw from p, accept if it is d": the output is the
 * sampler's own stream, token for token.
 */
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

static int32_t argmax(const float *v, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* Drafts for every sequence with n_draft > 0, into drafts[i][0 .. n_draft). */
static glmoe_status draft(const gm_config *c, const gm_weights *w, gm_state *st, const glmoe_spec_seq *sp, int32_t n,
                          int32_t (*drafts)[GM_MAX_DRAFT], float *host_logits, gm_err *err) {
    const int64_t H = c->hidden_size;
    const int32_t V = c->vocab_size;
    gm_mtp_row rows[GM_MAX_SEQS];
    int32_t prev_row[GM_MAX_SEQS]; /* the sequence's row in the last MTP step: its output is in st->hid */
    int32_t k_max = 0;
    for (int32_t i = 0; i < n; i++) k_max = sp[i].n_draft > k_max ? sp[i].n_draft : k_max;
    for (int32_t j = 0; j < k_max; j++) {
        int32_t R = 0;
        for (int32_t i = 0; i < n; i++) {
            if (sp[i].n_draft <= j) continue;
            const gm_seq *sq = &st->seqs[sp[i].seq];
            if (j == 0 && !sq->stash_ok)
                return gm_fail(err, GLMOE_E_ARG, "speculate: sequence %d's last hidden state is not at hand", sp[i].seq);
            rows[R] = (gm_mtp_row){
                .seq = sp[i].seq,
                .pos = sq->n_past - 1 + j,
                .token = j == 0 ? sp[i].token : drafts[i][j - 1],
                .hidden = j == 0 ? gm_cptr_add(st->stash, (size_t)sp[i].seq * (size_t)H * 4)
                                 : gm_cptr_add(st->hid, (size_t)prev_row[i] * (size_t)H * 4),
            };
            prev_row[i] = R++;
        }
        glmoe_status s = mtp_forward(c, w, st, rows, R, host_logits, err);
        if (s) return s;
        for (int32_t i = 0, r = 0; i < n; i++) {
            if (sp[i].n_draft <= j) continue;
            drafts[i][j] = argmax(host_logits + (size_t)r++ * (size_t)V, V);
            st->seqs[sp[i].seq].mtp_len++;
        }
    }
    return GLMOE_OK;
}

glmoe_status speculate(const gm_config *c, const gm_weights *w, gm_state *st, glmoe_spec_seq *sp, int32_t n,
                       float *host_logits, gm_err *err) {
    const int64_t H = c->hidden_size;
    const int32_t V = c->vocab_size;
    int32_t (*drafts)[GM_MAX_DRAFT] = calloc((size_t)n, sizeof *drafts);
    int32_t *first = malloc((size_t)n * sizeof *first), *len0 = malloc((size_t)n * sizeof *len0);
    gm_row *rows = malloc((size_t)st->n_batch * sizeof *rows);
    glmoe_status s = GLMOE_OK;
    if (!drafts || !first || !len0 || !rows) {
        s = gm_fail(err, GLMOE_E_NOMEM, "out of memory");
        goto done;
    }
    for (int32_t i = 0; i < n; i++) len0[i] = st->seqs[sp[i].seq].n_past;

    /* 1. draft; the MTP rows at n - 1 .. are then the verify forward's to (re)write from n on. */
    s = draft(c, w, st, sp, n, drafts, host_logits, err);
    for (int32_t i = 0; i < n; i++) {
        gm_seq *sq = &st->seqs[sp[i].seq];
        sq->mtp_len = sp[i].n_draft > 0 && !s ? len0[i] : len0[i] - 1;
    }
    if (s) goto done;

    /* 2. verify */
    int32_t T = 0;
    for (int32_t i = 0; i < n; i++) {
        first[i] = T;
        rows[T++] = (gm_row){.seq = sp[i].seq, .token = sp[i].token, .logits = true};
        for (int32_t j = 0; j < sp[i].n_draft; j++)
            rows[T++] = (gm_row){.seq = sp[i].seq, .token = drafts[i][j], .logits = true};
    }
    if ((s = forward_batch(c, w, st, rows, T, host_logits, err))) goto done;

    /* 3. accept, 4. roll back */
    for (int32_t i = 0; i < n; i++) {
        glmoe_spec_seq *x = &sp[i];
        int32_t j = 0;
        for (;; j++) {
            const float *l = host_logits + (size_t)(first[i] + j) * (size_t)V;
            int32_t tok;
            if (x->sampler) {
                if ((s = glmoe_sampler_sample(x->sampler, l, V, &tok))) {
                    gm_fail(err, s, "sequence %d: %s", x->seq, glmoe_sampler_errmsg(x->sampler));
                    break;
                }
            } else {
                tok = argmax(l, V);
            }
            x->out[j] = tok;
            if (j == x->n_draft || tok != drafts[i][j]) break;
        }
        if (s) { /* every sequence as it was before the step */
            for (int32_t r = 0; r < n; r++) state_seq_truncate(st, sp[r].seq, len0[r]);
            goto done;
        }
        x->n_out = j + 1;
        x->n_drafted = x->n_draft;
        memcpy(x->drafts, drafts[i], (size_t)x->n_draft * sizeof *x->drafts);
        if (j < x->n_draft) { /* drafts j.. rejected: keep t and d1..dj, and position len0 + j's state */
            state_seq_truncate(st, x->seq, len0[i] + 1 + j);
            if ((s = st->be->ops->copy_2d(st->ex, gm_ptr_add(st->stash, (size_t)x->seq * (size_t)H * 4), H,
                                          gm_cptr_add(st->hid, (size_t)(first[i] + j) * (size_t)H * 4), H, 1, H, err)))
                goto done;
            st->seqs[x->seq].stash_ok = true;
        }
    }
done:
    free(drafts);
    free(first);
    free(len0);
    free(rows);
    return s;
}
