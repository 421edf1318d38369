/*
 * test_comm.c — the in-process communication group (src/backend/comm_local.c).
 *
 *   1. Sums: groups of 1..5 ranks, one thread each, run a series of all-reduces of random data
 *      (sizes 0, 1, odd, large); every rank's result is within float32 rounding of the float64 sum
 *      of the inputs, and all ranks hold the same bits (each sums in rank order 0..N-1).
 *   2. Failure: one rank of four aborts instead of joining the second collective; the other three
 *      return GLMOE_E_BACKEND (no hang: ctest's timeout would catch one), also when they arrive
 *      after the abort; after comm_reset the group sums again.
 *   3. Mismatch: ranks that pass different sizes all get an error naming the sizes.
 * `make tsan` runs it under ThreadSanitizer: the published buffers are read by other threads.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/comm.h"
#include "test.h"

#define MAX_RANKS 5
static const int64_t k_sizes[] = {0, 1, 7, 1000, 65537, 3};
#define N_SIZES (sizeof k_sizes / sizeof k_sizes[0])

static float rand_value(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0) * 10.0f;
}

typedef struct job {
    gm_comm *comm;
    float *data[N_SIZES];       /* in: the rank's values; out: the sums */
    glmoe_status status[N_SIZES];
    int mode;                   /* 0 sums; 1 aborts at step 1; 2 arrives late at step 1; 3 odd size */
    char msg[N_SIZES][GM_ERR_MSG_MAX];
} job;

static void *run(void *arg) {
    job *j = arg;
    for (size_t k = 0; k < N_SIZES; k++) {
        gm_err err = {0};
        if (j->mode == 1 && k == 1) {
            comm_abort(j->comm);
            j->status[k] = GLMOE_E_BACKEND;
            continue;
        }
        if (j->mode == 2 && k == 1) { /* arrive once the abort has surely happened */
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        const int64_t n = j->mode == 3 ? k_sizes[k] + 1 : k_sizes[k];
        j->status[k] = comm_all_reduce_sum(j->comm, j->data[k], n, NULL, &err);
        snprintf(j->msg[k], sizeof j->msg[k], "%s", err.msg);
        if (j->status[k]) break; /* a broken group: the rest would fail too */
    }
    return NULL;
}

/* Runs one group of n ranks with the given modes; fills jobs. */
static void run_group(int32_t n, const int *modes, job *jobs, uint64_t seed) {
    gm_comm *ranks[MAX_RANKS];
    gm_err err = {0};
    CHECK(comm_local_create(ranks, n, &err) == GLMOE_OK, "%s", err.msg);
    pthread_t th[MAX_RANKS];
    for (int32_t r = 0; r < n; r++) {
        jobs[r].comm = ranks[r];
        jobs[r].mode = modes ? modes[r] : 0;
        for (size_t k = 0; k < N_SIZES; k++) {
            jobs[r].data[k] = malloc((size_t)(k_sizes[k] + 1) * sizeof(float));
            uint64_t s = seed * 1000003u + (uint64_t)r * 7919u + k;
            for (int64_t i = 0; i <= k_sizes[k]; i++) jobs[r].data[k][i] = rand_value(&s);
            jobs[r].status[k] = GLMOE_OK;
        }
    }
    for (int32_t r = 0; r < n; r++) pthread_create(&th[r], NULL, run, &jobs[r]);
    for (int32_t r = 0; r < n; r++) pthread_join(th[r], NULL);
    /* a second round after a reset: the group works again */
    if (modes) {
        comm_reset(ranks[0]);
        for (int32_t r = 0; r < n; r++) jobs[r].mode = 0;
        job again[MAX_RANKS];
        memcpy(again, jobs, (size_t)n * sizeof *jobs);
        for (int32_t r = 0; r < n; r++) pthread_create(&th[r], NULL, run, &again[r]);
        for (int32_t r = 0; r < n; r++) pthread_join(th[r], NULL);
        for (int32_t r = 0; r < n; r++)
            for (size_t k = 0; k < N_SIZES; k++)
                CHECK(again[r].status[k] == GLMOE_OK, "after reset, rank %d: %s", r, again[r].msg[k]);
    }
    for (int32_t r = 0; r < n; r++) comm_free(ranks[r]);
}

static void free_jobs(job *jobs, int32_t n) {
    for (int32_t r = 0; r < n; r++)
        for (size_t k = 0; k < N_SIZES; k++) free(jobs[r].data[k]);
}

static void test_sums(void) {
    for (int32_t n = 1; n <= MAX_RANKS; n++) {
        job jobs[MAX_RANKS];
        memset(jobs, 0, sizeof jobs);
        /* the expected sums, from the same inputs in float64 */
        double *want[N_SIZES];
        for (size_t k = 0; k < N_SIZES; k++) want[k] = calloc((size_t)k_sizes[k] + 1, sizeof(double));
        for (int32_t r = 0; r < n; r++)
            for (size_t k = 0; k < N_SIZES; k++) {
                uint64_t s = 42 * 1000003u + (uint64_t)r * 7919u + k;
                for (int64_t i = 0; i <= k_sizes[k]; i++) want[k][i] += rand_value(&s);
            }
        run_group(n, NULL, jobs, 42);
        int bad = 0, differ = 0;
        for (int32_t r = 0; r < n; r++)
            for (size_t k = 0; k < N_SIZES; k++) {
                CHECK(jobs[r].status[k] == GLMOE_OK, "n %d rank %d: %s", n, r, jobs[r].msg[k]);
                for (int64_t i = 0; i < k_sizes[k]; i++) {
                    /* n - 1 float additions of values below 10 in magnitude */
                    if (fabs(jobs[r].data[k][i] - want[k][i]) > 1e-6 * 10.0 * n * n) bad++;
                    if (memcmp(&jobs[r].data[k][i], &jobs[0].data[k][i], sizeof(float))) differ++;
                }
                /* the element past n is the rank's own, untouched */
                uint64_t s = 42 * 1000003u + (uint64_t)r * 7919u + k;
                float own = 0;
                for (int64_t i = 0; i <= k_sizes[k]; i++) own = rand_value(&s);
                CHECK(jobs[r].data[k][k_sizes[k]] == own, "n %d rank %d size %lld: wrote past n", n, r,
                      (long long)k_sizes[k]);
            }
        CHECK(bad == 0, "n %d: %d sums off the float64 sum", n, bad);
        CHECK(differ == 0, "n %d: %d values differ between ranks", n, differ);
        free_jobs(jobs, n);
        for (size_t k = 0; k < N_SIZES; k++) free(want[k]);
    }
}

static void test_abort(void) {
    const int modes[4] = {0, 2, 1, 0}; /* rank 2 fails; rank 1 arrives after it did */
    job jobs[4];
    memset(jobs, 0, sizeof jobs);
    run_group(4, modes, jobs, 7);
    for (int32_t r = 0; r < 4; r++) {
        CHECK(jobs[r].status[0] == GLMOE_OK, "rank %d: %s", r, jobs[r].msg[0]);
        CHECK(jobs[r].status[1] == GLMOE_E_BACKEND, "rank %d: the broken collective returned %d", r, jobs[r].status[1]);
        if (r != 2) CHECK(strstr(jobs[r].msg[1], "another rank failed") != NULL, "rank %d: %s", r, jobs[r].msg[1]);
    }
    free_jobs(jobs, 4);
}

static void test_mismatch(void) {
    const int modes[3] = {0, 3, 0}; /* rank 1 passes one value more */
    job jobs[3];
    memset(jobs, 0, sizeof jobs);
    run_group(3, modes, jobs, 9);
    for (int32_t r = 0; r < 3; r++) {
        CHECK(jobs[r].status[0] == GLMOE_E_BACKEND, "rank %d: sizes that differ returned %d", r, jobs[r].status[0]);
        CHECK(strstr(jobs[r].msg[0], "values but rank") != NULL, "rank %d: %s", r, jobs[r].msg[0]);
        CHECK(strchr(jobs[r].msg[0], '\n') == NULL, "one line");
    }
    free_jobs(jobs, 3);
}

int main(void) {
    test_sums();
    test_abort();
    test_mismatch();
    gm_comm *r[1];
    gm_err err = {0};
    CHECK(comm_local_create(r, 0, &err) == GLMOE_E_ARG, "a group of 0 ranks");
    return test_summary("test_comm");
}
