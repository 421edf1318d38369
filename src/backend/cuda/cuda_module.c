/*
 * cuda_module.c — the CUDA backend module's side of cuda_module.h: its one exported function,
 * and its gm_log, which hands messages to the library's log (util/log.h) through the function the
 * library gave the entry point. Compiled into libglmoe-cuda.so only (cmake/cuda.cmake), with
 * util/error.c and backend/formats.c; tested by tests/unit/test_cuda_module.c.
 */
#include <stdarg.h>
#include <stdio.h>

#include "backend/cuda/cuda_module.h"
#ifdef GLMOE_HAVE_NCCL
#include "backend/cuda/comm_nccl.h"
#endif
#include "util/log.h"

static gm_cuda_log_fn g_log;

void gm_log(glmoe_log_level level, const char *fmt, ...) {
    gm_cuda_log_fn log = __atomic_load_n(&g_log, __ATOMIC_ACQUIRE);
    if (!log) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log(level, buf);
}

__attribute__((visibility("default"))) const gm_cuda_module *glmoe_cuda_module_entry(gm_cuda_log_fn log) {
    static const gm_cuda_module table = {
        .build_id = GM_CUDA_BUILD_ID,
        .sizeof_ops = sizeof(gm_backend_ops),
        .sizeof_err = sizeof(gm_err),
        .sizeof_options = sizeof(cuda_backend_options),
        .create_ex = cuda_backend_create_ex,
        .counters_get = cuda_backend_counters_get,
        .probe = cuda_backend_probe,
#ifdef GLMOE_HAVE_NCCL
        .comm_create = comm_nccl_create,
#endif
    };
    __atomic_store_n(&g_log, log, __ATOMIC_RELEASE);
    return &table;
}
