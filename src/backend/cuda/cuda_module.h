/*
 * cuda_module.h — what libglmoe and the CUDA backend's module (libglmoe-cuda.so) say to each other.
 *
 * The module exports one function, glmoe_cuda_module_entry (GM_CUDA_MODULE_ENTRY), which returns
 * its table: the functions of cuda_backend.h that need the GPU. Everything else goes through the
 * backend vtable (backend/backend.h) of the gm_backend that create_ex makes. The module keeps its
 * own copies of the stateless helpers it uses (util/error.c, backend/formats.c); the one piece of
 * state it shares with the library, the log callback, comes in as `log`.
 *
 * The two sides share struct layouts (gm_backend_ops, gm_err, the options), so they must come from
 * the same build: build_id (GM_CUDA_BUILD_ID) names the version, commit and those sizes, and the
 * loader refuses a module whose id differs from its own (backend/cuda_loader.c).
 */
#ifndef GLMOE_CUDA_MODULE_H
#define GLMOE_CUDA_MODULE_H

#include "backend/cuda/cuda_backend.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef GLMOE_GIT_COMMIT
#define GLMOE_GIT_COMMIT ""
#endif
#define GM_CUDA_STR2(x) #x
#define GM_CUDA_STR(x) GM_CUDA_STR2(x)
/* The build's identity as a string literal (both sides compile it; CMake gives both the commit). */
#define GM_CUDA_BUILD_ID                                                                                    \
    "glmoe " GM_CUDA_STR(GLMOE_VERSION_MAJOR) "." GM_CUDA_STR(GLMOE_VERSION_MINOR) "." GM_CUDA_STR(         \
        GLMOE_VERSION_PATCH) " " GLMOE_GIT_COMMIT " module-abi 2"

#define GM_CUDA_MODULE_ENTRY "glmoe_cuda_module_entry"

typedef void (*gm_cuda_log_fn)(glmoe_log_level level, const char *message);

typedef struct gm_cuda_module {
    const char *build_id;  /* GM_CUDA_BUILD_ID of the module's build; compare before anything else */
    size_t sizeof_ops, sizeof_err, sizeof_options; /* the layouts, checked too */
    glmoe_status (*create_ex)(gm_backend **out, const cuda_backend_options *opt, gm_err *err);
    void (*counters_get)(cuda_backend_counters *out);
    glmoe_status (*probe)(gm_backend *be, cuda_backend_probe_result *out, gm_err *err);
    /* The NCCL group of a model split over several GPUs (cuda/comm_nccl.h); NULL when the module
     * was built without nccl.h (GLMOE_NCCL_INCLUDE). */
    glmoe_status (*comm_create)(gm_comm **ranks, const int32_t *devices, int32_t n, gm_err *err);
} gm_cuda_module;

/* The module's entry point. `log` receives the module's log messages (formatted; the library
 * filters them by level), for the life of the process. */
typedef const gm_cuda_module *(*gm_cuda_module_entry_fn)(gm_cuda_log_fn log);

#ifdef __cplusplus
}
#endif

#endif
