/*
 * comm_local.c — the in-process group of comm.h: N ranks as N threads of one process, for the CPU
 * backend's simulated ranks (the split tested in CI) and the tests.
 *
 * The all-reduce is two barriers: each rank publishes its buffer and waits for all; then each sums
 * the N buffers in rank order 0..N-1 into its own scratch (so all ranks compute the same bits, and
 * nobody writes a buffer another still reads); a second barrier says every rank is done reading;
 * then each copies its sum back. O(N·n) work per rank, which is nothing next to the forward it
 * serves on the CPU. The barriers are a mutex, a condition variable and a generation count; the
 * published pointers are read only between the two barriers, so the mutex orders them (what
 * ThreadSanitizer checks in tests/threads/test_comm.c).
 *
 * A broken group (comm_abort, a rank's scratch that cannot grow, sizes that differ) wakes every
 * waiting rank, and every collective until comm_reset returns GLMOE_E_BACKEND at once: never a
 * hang, as long as a failing rank says so.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend/comm.h"

typedef struct local_group {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t size;
    int32_t arrived;          /* ranks waiting at the current barrier */
    uint64_t generation;      /* barriers passed */
    bool broken;
    int32_t n_handles;        /* ranks not yet freed */
    const float **bufs;       /* [size] each rank's buffer in the current all-reduce */
    int64_t *lens;            /* [size] and its length */
} local_group;

typedef struct local_rank {
    gm_comm base;
    local_group *g;
    float *sum;               /* this rank's copy of the result, before it goes to its buffer */
    int64_t cap;
} local_rank;

static glmoe_status broken_error(const local_rank *r, gm_err *err) {
    return gm_fail(err, GLMOE_E_BACKEND, "rank %d of %d: another rank failed, the collective is abandoned",
                   r->base.rank, r->base.size);
}

/* Waits until every rank has arrived, or the group breaks. */
static glmoe_status barrier(local_rank *r, gm_err *err) {
    local_group *g = r->g;
    pthread_mutex_lock(&g->mu);
    if (g->broken) {
        pthread_mutex_unlock(&g->mu);
        return broken_error(r, err);
    }
    const uint64_t gen = g->generation;
    if (++g->arrived == g->size) {
        g->arrived = 0;
        g->generation++;
        pthread_cond_broadcast(&g->cv);
    } else {
        while (g->generation == gen && !g->broken) pthread_cond_wait(&g->cv, &g->mu);
    }
    const bool passed = g->generation != gen;
    pthread_mutex_unlock(&g->mu);
    return passed ? GLMOE_OK : broken_error(r, err);
}

static void local_abort(gm_comm *c) {
    local_group *g = ((local_rank *)c)->g;
    pthread_mutex_lock(&g->mu);
    g->broken = true;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void local_reset(gm_comm *c) {
    local_group *g = ((local_rank *)c)->g;
    pthread_mutex_lock(&g->mu);
    g->broken = false;
    g->arrived = 0;
    pthread_mutex_unlock(&g->mu);
}

static glmoe_status local_all_reduce_sum(gm_comm *c, float *buf, int64_t n, void *stream, gm_err *err) {
    (void)stream;
    local_rank *r = (local_rank *)c;
    local_group *g = r->g;
    const int32_t me = c->rank, N = c->size;
    if (n > r->cap) {
        float *p = realloc(r->sum, (size_t)n * sizeof *p);
        if (!p) {
            local_abort(c);
            return gm_fail(err, GLMOE_E_NOMEM, "rank %d: out of memory for an all-reduce of %lld floats", me,
                           (long long)n);
        }
        r->sum = p;
        r->cap = n;
    }
    pthread_mutex_lock(&g->mu);
    g->bufs[me] = buf;
    g->lens[me] = n;
    pthread_mutex_unlock(&g->mu);
    glmoe_status s = barrier(r, err);
    if (s) return s;
    for (int32_t k = 0; k < N; k++)
        if (g->lens[k] != n) { /* every rank sees this and leaves; the group is broken for good */
            local_abort(c);
            return gm_fail(err, GLMOE_E_BACKEND, "all-reduce: rank %d sums %lld values but rank %d %lld", k,
                           (long long)g->lens[k], me, (long long)n);
        }
    for (int64_t i = 0; i < n; i++) { /* rank order: the same additions, the same bits, on every rank */
        float s0 = g->bufs[0][i];
        for (int32_t k = 1; k < N; k++) s0 += g->bufs[k][i];
        r->sum[i] = s0;
    }
    if ((s = barrier(r, err))) return s; /* nobody reads buf any more */
    if (n) memcpy(buf, r->sum, (size_t)n * sizeof *buf);
    return GLMOE_OK;
}

static void local_free(gm_comm *c) {
    local_rank *r = (local_rank *)c;
    local_group *g = r->g;
    free(r->sum);
    free(r);
    pthread_mutex_lock(&g->mu);
    const bool last = --g->n_handles == 0;
    pthread_mutex_unlock(&g->mu);
    if (!last) return;
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g->bufs);
    free(g->lens);
    free(g);
}

static const gm_comm_ops local_ops = {
    .name = "local",
    .all_reduce_sum = local_all_reduce_sum,
    .abort = local_abort,
    .reset = local_reset,
    .free = local_free,
};

glmoe_status comm_local_create(gm_comm **ranks, int32_t n, gm_err *err) {
    if (n < 1) return gm_fail(err, GLMOE_E_ARG, "a group of %d ranks (at least 1)", n);
    local_group *g = calloc(1, sizeof *g);
    if (g) {
        g->bufs = calloc((size_t)n, sizeof *g->bufs);
        g->lens = calloc((size_t)n, sizeof *g->lens);
    }
    if (!g || !g->bufs || !g->lens) {
        if (g) {
            free(g->bufs);
            free(g->lens);
        }
        free(g);
        return gm_fail(err, GLMOE_E_NOMEM, "out of memory for a group of %d ranks", n);
    }
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->size = n;
    for (int32_t k = 0; k < n; k++) {
        local_rank *r = calloc(1, sizeof *r);
        if (!r) {
            for (int32_t j = 0; j < k; j++) local_free(ranks[j]);
            if (k == 0) { /* no handle holds the group */
                pthread_cond_destroy(&g->cv);
                pthread_mutex_destroy(&g->mu);
                free(g->bufs);
                free(g->lens);
                free(g);
            }
            return gm_fail(err, GLMOE_E_NOMEM, "out of memory for a group of %d ranks", n);
        }
        r->base = (gm_comm){.ops = &local_ops, .rank = k, .size = n};
        r->g = g;
        g->n_handles++;
        ranks[k] = &r->base;
    }
    return GLMOE_OK;
}
