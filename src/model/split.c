/*
 * split.c — one step of a split model: every rank's forward_batch at once, rank 0 on the calling
 * thread and each other rank on a thread of its own, started per step (microseconds next to a
 * step of even the smallest model; a pool would save them when it matters).
 *
 * A rank that fails aborts the group (comm_abort), so that the others return from the collective
 * they wait in instead of hanging; the first failure is the one reported, the others being its
 * echo ("another rank failed"). Afterwards the group is reset and each rank's sequences are put
 * back to the lengths they had, so the ranks stay in step: forward_batch appends nothing on
 * failure, but a rank that got past its last collective before another failed would have.
 * Tested by tests/split/test_split.c.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend/comm.h"
#include "model/split.h"

typedef struct split_step split_step;

typedef struct rank_job {
    split_step *step;
    int32_t rank;
    const gm_weights *w;
    gm_state *st;
    const gm_row *rows;
    float *logits;
    glmoe_status status;
    gm_err err;
} rank_job;

struct split_step {
    const gm_config *c;
    int32_t T;
    pthread_mutex_t mu;
    int32_t first_failed;     /* the rank whose failure broke the group, or -1 */
};

static void *rank_run(void *arg) {
    rank_job *j = arg;
    split_step *sp = j->step;
    j->status = forward_batch(sp->c, j->w, j->st, j->rows, sp->T, j->logits, &j->err);
    if (j->status) {
        pthread_mutex_lock(&sp->mu);
        if (sp->first_failed < 0) sp->first_failed = j->rank;
        pthread_mutex_unlock(&sp->mu);
        comm_abort(j->st->comm);
    }
    return NULL;
}

glmoe_status split_forward_batch(const gm_config *c, const gm_weights *const *w, gm_state *const *st, int32_t n,
                                 const gm_row *rows, int32_t T, float *host_logits, gm_err *err) {
    if (n == 1) return forward_batch(c, w[0], st[0], rows, T, host_logits, err);
    rank_job *jobs = calloc((size_t)n, sizeof *jobs);
    pthread_t *threads = calloc((size_t)n, sizeof *threads);
    gm_row *quiet = malloc((size_t)(T > 0 ? T : 1) * sizeof *quiet); /* the rows without logits */
    int32_t *saved = malloc((size_t)st[0]->n_seq * sizeof *saved);
    if (!jobs || !threads || !quiet || !saved) {
        free(jobs);
        free(threads);
        free(quiet);
        free(saved);
        return gm_fail(err, GLMOE_E_NOMEM, "out of memory for a step of %d ranks", n);
    }
    for (int32_t t = 0; t < T; t++) quiet[t] = (gm_row){.seq = rows[t].seq, .token = rows[t].token, .logits = false};
    for (int32_t q = 0; q < st[0]->n_seq; q++) saved[q] = st[0]->seqs[q].n_past;
    split_step sp = {.c = c, .T = T, .first_failed = -1};
    pthread_mutex_init(&sp.mu, NULL);
    int32_t started = 1;
    for (int32_t r = 0; r < n; r++)
        jobs[r] = (rank_job){.step = &sp, .rank = r, .w = w[r], .st = st[r], .rows = r ? quiet : rows,
                             .logits = r ? NULL : host_logits};
    glmoe_status s = GLMOE_OK;
    for (; started < n; started++)
        if (pthread_create(&threads[started], NULL, rank_run, &jobs[started])) {
            s = gm_fail(err, GLMOE_E_BACKEND, "cannot start the thread of rank %d of %d", started, n);
            comm_abort(st[0]->comm); /* the ranks started leave their first collective */
            break;
        }
    if (!s) rank_run(&jobs[0]);
    for (int32_t r = 1; r < started; r++) pthread_join(threads[r], NULL);
    if (!s && sp.first_failed >= 0) {
        s = jobs[sp.first_failed].status;
        gm_fail(err, s, "%s", jobs[sp.first_failed].err.msg);
        if (sp.first_failed) gm_err_prefix(err, "rank %d of %d: ", sp.first_failed, n);
    }
    if (s) { /* every rank as it was before the step, and the group usable again */
        comm_reset(st[0]->comm);
        for (int32_t r = 0; r < n; r++)
            for (int32_t q = 0; q < st[r]->n_seq; q++) st[r]->seqs[q].n_past = saved[q];
    }
    pthread_mutex_destroy(&sp.mu);
    free(jobs);
    free(threads);
    free(quiet);
    free(saved);
    return s;
}
