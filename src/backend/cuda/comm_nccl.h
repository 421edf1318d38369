/*
 * comm_nccl.h — what the CUDA backend's module knows of its NCCL group (comm_nccl.c) beyond
 * comm.h: whether a comm is one, its health while a step's results are awaited, and the deadline.
 * Module-internal (built only with nccl.h: GLMOE_HAVE_NCCL).
 */
#ifndef GLMOE_CUDA_COMM_NCCL_H
#define GLMOE_CUDA_COMM_NCCL_H

#ifdef __cplusplus
extern "C" {
#endif

#include <stdbool.h>

#include "backend/comm.h"

/* A group of n ranks on CUDA devices devices[0, n) of this process (n >= 2), ranks[k] rank k's
 * handle: libnccl.so.2 opened on the first call (GLMOE_E_UNSUPPORTED, in one line, when it cannot
 * be), the communicators initialised together within the deadline (else aborted, and
 * GLMOE_E_BACKEND naming the rank and NCCL's message). Each handle is freed with comm_free. */
glmoe_status comm_nccl_create(gm_comm **ranks, const int32_t *devices, int32_t n, gm_err *err);

/* True if c is a rank of an NCCL group. */
bool comm_is_nccl(const gm_comm *c);

/* GLMOE_OK while c's group is healthy; GLMOE_E_BACKEND when it was aborted or NCCL reports an
 * asynchronous error on c (a peer failed). Cheap: polled while a step is awaited. */
glmoe_status comm_nccl_check(gm_comm *c, gm_err *err);

/* Seconds a wait involving the group may last before it counts as hung: GLMOE_NCCL_TIMEOUT_S,
 * default 120. */
double comm_nccl_timeout_s(void);

/* Between two polls of a wait that has lasted waited_s seconds: nothing for the first
 * millisecond, then a 100 µs sleep. */
void comm_nccl_pause(double waited_s);

#ifdef __cplusplus
}
#endif

#endif
