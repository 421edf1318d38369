/*
 * comm_nccl.c — the NCCL group of comm.h: the ranks of a model split over N GPUs of one process,
 * one communicator per rank, the all-reduce queued on the rank's CUDA stream (so that a recorded
 * decode step holds it: nothing in the step waits for the host).
 *
 * NCCL is not linked: libnccl.so.2 is opened with dlopen the first time a group is made, i.e.
 * only when a model runs on more than one GPU ($GLMOE_NCCL_LIBRARY names the file, else the
 * dynamic loader's search: LD_LIBRARY_PATH, the system's directories). The build needs only
 * nccl.h (the nvidia-nccl-cu13 wheel's, found by cmake/cuda.cmake); without it this file is not
 * built and a split on CUDA is refused in one line.
 *
 * Never a hang: the communicators are non-blocking (ncclConfig_t.blocking = 0), so that no NCCL
 * call waits for a peer; what can wait (their initialisation, an enqueue, their teardown) is
 * polled with ncclCommGetAsyncError against a deadline of GLMOE_NCCL_TIMEOUT_S seconds (default
 * 120), and the wait for a step's results on the GPU (cuda_backend.cu, wait_and_check) polls
 * comm_nccl_check and the same deadline. A failure anywhere aborts the group (comm_abort only
 * marks it; the driver's comm_reset, called once every rank's thread has returned, calls
 * ncclCommAbort on every communicator, which releases kernels waiting for a dead peer). An
 * aborted group stays broken: its collectives fail in one line, and the model must be loaded
 * again (the recorded decode steps hold the old communicators).
 *
 * Tested: built in CI wherever nccl.h is present (warning-free, -Werror); the runs over 2 and 4
 * GPUs (tests/split/test_split_synthetic.c --device cuda) need a machine with several GPUs.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "backend/comm.h"
#include "backend/cuda/comm_nccl.h"
#include "util/log.h"

/* ---- the library, opened once ---------------------------------------------------------------- */

/* Non-blocking communicators, ncclCommGetAsyncError's ncclInProgress and ncclCommFinalize came
 * with NCCL 2.14. */
#define NCCL_MIN_VERSION 21400

typedef struct nccl_api {
    ncclResult_t (*get_version)(int *);
    ncclResult_t (*get_unique_id)(ncclUniqueId *);
    ncclResult_t (*comm_init_rank_config)(ncclComm_t *, int, ncclUniqueId, int, ncclConfig_t *);
    ncclResult_t (*comm_get_async_error)(ncclComm_t, ncclResult_t *);
    ncclResult_t (*comm_finalize)(ncclComm_t);
    ncclResult_t (*comm_destroy)(ncclComm_t);
    ncclResult_t (*comm_abort)(ncclComm_t);
    ncclResult_t (*all_reduce)(const void *, void *, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, cudaStream_t);
    ncclResult_t (*group_start)(void);
    ncclResult_t (*group_end)(void);
    const char *(*get_error_string)(ncclResult_t);
    const char *(*get_last_error)(ncclComm_t);
    int version;
} nccl_api;

static struct {
    pthread_once_t once;
    nccl_api api;
    bool ok;
    gm_err err;
} g_nccl = {.once = PTHREAD_ONCE_INIT};

static void nccl_open_once(void) {
    const char *path = getenv("GLMOE_NCCL_LIBRARY");
    const char *file = path && path[0] ? path : "libnccl.so.2";
    void *lib = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        gm_fail(&g_nccl.err, GLMOE_E_UNSUPPORTED,
                "nccl: cannot open %s (%s): a model on several GPUs needs NCCL; install the nvidia-nccl-cu13 wheel and "
                "set GLMOE_NCCL_LIBRARY to its nvidia/nccl/lib/libnccl.so.2",
                file, why ? why : "not found");
        return;
    }
    nccl_api *a = &g_nccl.api;
    const char *missing = NULL;
    /* dlsym returns void *; each is cast to its own function type through memcpy (ISO C forbids
     * the direct conversion). */
#define NCCL_SYM(field, name)                                     \
    do {                                                          \
        void *p_ = dlsym(lib, name);                              \
        if (!p_ && !missing) missing = name;                      \
        memcpy(&a->field, &p_, sizeof p_);                        \
    } while (0)
    NCCL_SYM(get_version, "ncclGetVersion");
    NCCL_SYM(get_unique_id, "ncclGetUniqueId");
    NCCL_SYM(comm_init_rank_config, "ncclCommInitRankConfig");
    NCCL_SYM(comm_get_async_error, "ncclCommGetAsyncError");
    NCCL_SYM(comm_finalize, "ncclCommFinalize");
    NCCL_SYM(comm_destroy, "ncclCommDestroy");
    NCCL_SYM(comm_abort, "ncclCommAbort");
    NCCL_SYM(all_reduce, "ncclAllReduce");
    NCCL_SYM(group_start, "ncclGroupStart");
    NCCL_SYM(group_end, "ncclGroupEnd");
    NCCL_SYM(get_error_string, "ncclGetErrorString");
    NCCL_SYM(get_last_error, "ncclGetLastError");
#undef NCCL_SYM
    if (missing) {
        gm_fail(&g_nccl.err, GLMOE_E_UNSUPPORTED, "nccl: %s lacks %s (NCCL 2.14 or newer is needed)", file, missing);
        return; /* the library stays open: dlclose of NCCL is not safe once loaded */
    }
    if (a->get_version(&a->version) != ncclSuccess || a->version < NCCL_MIN_VERSION) {
        gm_fail(&g_nccl.err, GLMOE_E_UNSUPPORTED, "nccl: %s is NCCL version code %d; 2.14 (%d) or newer is needed",
                file, a->version, NCCL_MIN_VERSION);
        return;
    }
    gm_info("nccl: opened %s, version %d.%d.%d", file, a->version / 10000, a->version / 100 % 100, a->version % 100);
    g_nccl.ok = true;
}

static glmoe_status nccl_open(gm_err *err) {
    pthread_once(&g_nccl.once, nccl_open_once);
    return g_nccl.ok ? GLMOE_OK : gm_fail(err, g_nccl.err.code, "%s", g_nccl.err.msg);
}

/* ---- deadlines --------------------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double comm_nccl_timeout_s(void) {
    const char *v = getenv("GLMOE_NCCL_TIMEOUT_S");
    const double t = v ? atof(v) : 0;
    return t > 0 ? t : 120.0;
}

void comm_nccl_pause(double waited_s) {
    /* Spin for the first millisecond (a decode step's wait is usually shorter: no sleep on its
     * path), then poll every 100 µs. */
    if (waited_s < 1e-3) return;
    const struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
}

/* ---- the group ------------------------------------------------------------------------------------ */

typedef struct nccl_group {
    pthread_mutex_t mu;
    int32_t size, n_handles;
    bool broken;            /* comm_abort: a rank failed; the communicators are aborted at reset */
    bool aborted;           /* ncclCommAbort done: the communicators are gone */
    int32_t *devices;       /* [size] each rank's CUDA device */
    ncclComm_t *comms;      /* [size] */
} nccl_group;

typedef struct nccl_rank {
    gm_comm base;
    nccl_group *g;
} nccl_rank;

static const gm_comm_ops nccl_ops;

static glmoe_status nccl_fail(gm_err *err, ncclResult_t r, ncclComm_t comm, const char *what, int32_t rank) {
    const char *detail = comm && g_nccl.api.get_last_error ? g_nccl.api.get_last_error(comm) : NULL;
    return gm_fail(err, GLMOE_E_BACKEND, "nccl: %s failed on rank %d: %s%s%s", what, rank, g_nccl.api.get_error_string(r),
                   detail && detail[0] ? ": " : "", detail && detail[0] ? detail : "");
}

/* Waits until none of comms[0, n) has an operation in progress; an error or the deadline fails. */
static glmoe_status wait_ready(ncclComm_t *comms, int32_t n, int32_t first_rank, const char *what, gm_err *err) {
    const double t0 = now_s(), limit = comm_nccl_timeout_s();
    for (int32_t k = 0; k < n; k++)
        for (;;) {
            ncclResult_t state = ncclSuccess;
            ncclResult_t r = g_nccl.api.comm_get_async_error(comms[k], &state);
            if (r != ncclSuccess) return nccl_fail(err, r, comms[k], what, first_rank + k);
            if (state == ncclSuccess) break;
            if (state != ncclInProgress) return nccl_fail(err, state, comms[k], what, first_rank + k);
            const double waited = now_s() - t0;
            if (waited > limit)
                return gm_fail(err, GLMOE_E_BACKEND,
                               "nccl: %s on rank %d did not finish in %.0f s (a GPU of the group failed or hangs; "
                               "GLMOE_NCCL_TIMEOUT_S sets the limit)",
                               what, first_rank + k, limit);
            comm_nccl_pause(waited);
        }
    return GLMOE_OK;
}

static void abort_comms(nccl_group *g) {
    if (g->aborted) return;
    g->aborted = true;
    for (int32_t k = 0; k < g->size; k++)
        if (g->comms[k]) g_nccl.api.comm_abort(g->comms[k]);
}

static glmoe_status broken_error(const gm_comm *c, gm_err *err) {
    return gm_fail(err, GLMOE_E_BACKEND,
                   "nccl: rank %d of %d: the group was aborted after a failure (load the model again to go on)",
                   c->rank, c->size);
}

glmoe_status comm_nccl_check(gm_comm *c, gm_err *err) {
    nccl_rank *r = (nccl_rank *)c;
    nccl_group *g = r->g;
    pthread_mutex_lock(&g->mu);
    const bool broken = g->broken;
    pthread_mutex_unlock(&g->mu);
    if (broken) return broken_error(c, err);
    ncclResult_t state = ncclSuccess;
    ncclResult_t e = g_nccl.api.comm_get_async_error(g->comms[c->rank], &state);
    if (e != ncclSuccess) return nccl_fail(err, e, g->comms[c->rank], "a collective", c->rank);
    if (state != ncclSuccess && state != ncclInProgress)
        return nccl_fail(err, state, g->comms[c->rank], "a collective", c->rank);
    return GLMOE_OK;
}

bool comm_is_nccl(const gm_comm *c) { return c && c->ops == &nccl_ops; }

static glmoe_status nccl_all_reduce_sum(gm_comm *c, float *buf, int64_t n, void *stream, gm_err *err) {
    nccl_rank *r = (nccl_rank *)c;
    nccl_group *g = r->g;
    glmoe_status s = comm_nccl_check(c, err);
    if (s) return s;
    ncclComm_t comm = g->comms[c->rank];
    /* Queued on the rank's stream; non-blocking, so the enqueue may still be in progress when
     * it returns (never waiting for a peer): wait for the enqueue only, not for the sum. */
    ncclResult_t e = g_nccl.api.all_reduce(buf, buf, (size_t)n, ncclFloat32, ncclSum, comm, (cudaStream_t)stream);
    if (e == ncclInProgress) return wait_ready(&comm, 1, c->rank, "ncclAllReduce", err);
    return e == ncclSuccess ? GLMOE_OK : nccl_fail(err, e, comm, "ncclAllReduce", c->rank);
}

static void nccl_abort(gm_comm *c) {
    nccl_group *g = ((nccl_rank *)c)->g;
    pthread_mutex_lock(&g->mu);
    g->broken = true;
    pthread_mutex_unlock(&g->mu);
}

/* Called when no rank's thread is inside NCCL (split.c): the one safe place for ncclCommAbort. A
 * broken group is not made usable again (see the file's header). */
static void nccl_reset(gm_comm *c) {
    nccl_group *g = ((nccl_rank *)c)->g;
    pthread_mutex_lock(&g->mu);
    if (g->broken) abort_comms(g);
    pthread_mutex_unlock(&g->mu);
}

static void group_free(nccl_group *g) {
    if (!g->aborted) { /* flush, then free: bounded by the deadline, else aborted */
        int cur = 0;
        cudaGetDevice(&cur);
        gm_err err = {0};
        glmoe_status s = GLMOE_OK;
        g_nccl.api.group_start();
        for (int32_t k = 0; k < g->size; k++) g_nccl.api.comm_finalize(g->comms[k]);
        g_nccl.api.group_end();
        s = wait_ready(g->comms, g->size, 0, "ncclCommFinalize", &err);
        if (s) {
            gm_warn("%s; aborting the group", err.msg);
            abort_comms(g);
        } else {
            for (int32_t k = 0; k < g->size; k++) g_nccl.api.comm_destroy(g->comms[k]);
        }
        cudaSetDevice(cur);
    }
    pthread_mutex_destroy(&g->mu);
    free(g->comms);
    free(g->devices);
    free(g);
}

static void nccl_free(gm_comm *c) {
    nccl_rank *r = (nccl_rank *)c;
    nccl_group *g = r->g;
    free(r);
    pthread_mutex_lock(&g->mu);
    const bool last = --g->n_handles == 0;
    pthread_mutex_unlock(&g->mu);
    if (last) group_free(g);
}

static const gm_comm_ops nccl_ops = {
    .name = "nccl",
    .all_reduce_sum = nccl_all_reduce_sum,
    .abort = nccl_abort,
    .reset = nccl_reset,
    .free = nccl_free,
};

glmoe_status comm_nccl_create(gm_comm **ranks, const int32_t *devices, int32_t n, gm_err *err) {
    if (n < 2) return gm_fail(err, GLMOE_E_ARG, "nccl: a group of %d GPUs (at least 2)", n);
    glmoe_status s = nccl_open(err);
    if (s) return s;
    /* NVLink SHARP (multicast) stays off, whatever the environment says: on shared machines it can
     * take GPUs out of service, and one all-reduce of a token's hidden state gains nothing from it.
     * Set before the first communicator, when NCCL reads its parameters. */
    setenv("NCCL_NVLS_ENABLE", "0", 1);
    nccl_group *g = calloc(1, sizeof *g);
    if (g) {
        g->devices = calloc((size_t)n, sizeof *g->devices);
        g->comms = calloc((size_t)n, sizeof *g->comms);
    }
    if (!g || !g->devices || !g->comms) {
        if (g) {
            free(g->devices);
            free(g->comms);
        }
        free(g);
        return gm_fail(err, GLMOE_E_NOMEM, "nccl: out of memory for a group of %d GPUs", n);
    }
    pthread_mutex_init(&g->mu, NULL);
    g->size = n;
    memcpy(g->devices, devices, (size_t)n * sizeof *devices);
    int cur = 0;
    cudaGetDevice(&cur);
    ncclUniqueId id;
    ncclResult_t e = g_nccl.api.get_unique_id(&id);
    if (e != ncclSuccess) {
        s = nccl_fail(err, e, NULL, "ncclGetUniqueId", 0);
        g->aborted = true; /* no communicator to free */
        goto fail;
    }
    /* N ranks of one process: one group call initialises them all (each rank's init would wait for
     * the others otherwise), each on its own device. */
    g_nccl.api.group_start();
    for (int32_t k = 0; k < n && !s; k++) {
        ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
        config.blocking = 0;
        const cudaError_t ce = cudaSetDevice(devices[k]);
        if (ce != cudaSuccess) {
            s = gm_fail(err, GLMOE_E_BACKEND, "nccl: cannot select CUDA device %d for rank %d: %s", devices[k], k,
                        cudaGetErrorString(ce));
            break;
        }
        e = g_nccl.api.comm_init_rank_config(&g->comms[k], n, id, k, &config);
        if (e != ncclSuccess && e != ncclInProgress) s = nccl_fail(err, e, NULL, "ncclCommInitRankConfig", k);
    }
    e = g_nccl.api.group_end();
    if (!s && e != ncclSuccess && e != ncclInProgress) s = nccl_fail(err, e, NULL, "ncclGroupEnd (initialisation)", 0);
    if (!s) s = wait_ready(g->comms, n, 0, "the initialisation of the communicators", err);
    cudaSetDevice(cur);
    if (s) {
        abort_comms(g);
        goto fail;
    }
    for (int32_t k = 0; k < n; k++) {
        nccl_rank *r = calloc(1, sizeof *r);
        if (!r) { /* the handles made so far hold the group: free them, the last frees it */
            s = gm_fail(err, GLMOE_E_NOMEM, "nccl: out of memory for a group of %d GPUs", n);
            if (k == 0) {
                abort_comms(g);
                goto fail;
            }
            for (int32_t j = 0; j < k; j++) nccl_free(ranks[j]);
            return s;
        }
        r->base = (gm_comm){.ops = &nccl_ops, .rank = k, .size = n};
        r->g = g;
        g->n_handles++;
        ranks[k] = &r->base;
    }
    gm_info("nccl: a group of %d GPUs (NVLink multicast off), collectives time out after %.0f s", n,
            comm_nccl_timeout_s());
    return GLMOE_OK;
fail:
    pthread_mutex_destroy(&g->mu);
    free(g->comms);
    free(g->devices);
    free(g);
    return s;
}
