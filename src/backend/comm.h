/*
 * comm.h — the communication between the ranks of a model split over several devices (issue 20):
 * what the partitioned forward (src/model/forward.c) needs, and no more.
 *
 * A group of N ranks; each rank holds one gm_comm and calls its collectives from its own thread,
 * every rank the same calls in the same order with the same sizes. Today's one collective is the
 * in-place float32 sum (all-reduce): after the attention's o_proj and after the FFN, each rank
 * holds a partial [T, H] that the sum makes whole.
 *
 * Implementations, one file each:
 *   - comm_local.c: N ranks as N threads of one process (the CPU backend's simulated ranks, which
 *     is how CI tests the split). Deterministic: every rank sums the N buffers in rank order
 *     0..N-1, so every rank holds the same bits.
 *   - cuda/comm_nccl.c: NCCL over GPUs of one process, queued on the rank's CUDA stream (in the
 *     CUDA module, built only with nccl.h; libnccl.so.2 opened at run time; made by
 *     gm_comm_create, backend.h). Its abort only marks the group and its reset (every rank
 *     returned) calls ncclCommAbort; an aborted NCCL group stays broken.
 *
 * Failure never hangs the group: a rank that fails (in a collective, or in its own work between
 * two) calls comm_abort, and every rank waiting in a collective, or entering one later, returns
 * GLMOE_E_BACKEND. A broken group stays broken until comm_reset, which the driver calls once every
 * rank has returned (src/model/split.c). Tested in tests/threads/test_comm.c (also under
 * ThreadSanitizer: `make tsan`).
 */
#ifndef GLMOE_BACKEND_COMM_H
#define GLMOE_BACKEND_COMM_H

#include <stdint.h>

#include "util/error.h"

typedef struct gm_comm gm_comm; /* also declared by backend.h */

typedef struct gm_comm_ops {
    const char *name;
    /* buf[0, n) of every rank becomes the sum over the ranks of their buf[0, n). stream: the queue
     * the sum is ordered on (a cudaStream_t for NCCL); NULL for comm_local, which sums on the
     * calling thread and returns when this rank's buf holds the result. */
    glmoe_status (*all_reduce_sum)(gm_comm *c, float *buf, int64_t n, void *stream, gm_err *err);
    /* Marks the group broken (this rank failed) and wakes the ranks waiting in a collective. */
    void (*abort)(gm_comm *c);
    /* The group usable again, when no rank is inside a collective. */
    void (*reset)(gm_comm *c);
    void (*free)(gm_comm *c);   /* this rank's handle; the group goes with its last rank */
} gm_comm_ops;

struct gm_comm {
    const gm_comm_ops *ops;
    int32_t rank, size;
};

static inline glmoe_status comm_all_reduce_sum(gm_comm *c, float *buf, int64_t n, void *stream, gm_err *err) {
    return c->ops->all_reduce_sum(c, buf, n, stream, err);
}
static inline void comm_abort(gm_comm *c) { c->ops->abort(c); }
static inline void comm_reset(gm_comm *c) { c->ops->reset(c); }
static inline void comm_free(gm_comm *c) {
    if (c) c->ops->free(c);
}

/* An in-process group of n ranks (n >= 1): ranks[r] is rank r's handle, to be used by one thread
 * at a time. Each handle is freed with comm_free. */
glmoe_status comm_local_create(gm_comm **ranks, int32_t n, gm_err *err);

#endif
