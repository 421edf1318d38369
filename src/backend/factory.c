/*
 * factory.c — the one place where backends are made: the device choice of glmoe_model_params and
 * the fallback of GLMOE_DEVICE_AUTO (the GPU when there is a usable one, else the CPU, saying
 * why in the log), and gm_backend_check, the same choice without making a backend. Nothing
 * above src/backend/ includes a backend's own header. The CUDA backend is a module opened on
 * demand (cuda_loader.c): a machine without a GPU never loads it.
 */
#include "backend/backend.h"

#include <stdio.h>
#include <string.h>

#include "backend/comm.h"
#include "util/log.h"
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda_driver.h"
#include "backend/cuda_loader.h"
#endif

glmoe_status gm_backend_create(gm_backend **out, glmoe_device device, int n_threads, gm_err *err) {
    *out = NULL;
    switch (device) {
    case GLMOE_DEVICE_AUTO:
#ifdef GLMOE_HAVE_CUDA
        if (cuda_backend_create(out, 0, err) == GLMOE_OK) return GLMOE_OK;
        if (err->code == GLMOE_E_UNSUPPORTED)
            gm_info("running on the CPU: %s", err->msg);
        else
            gm_warn("the GPU is not usable, running on the CPU: %s", err->msg);
        gm_err_clear(err);
#endif
        return cpu_backend_create(out, n_threads, err);
    case GLMOE_DEVICE_CPU:
        return cpu_backend_create(out, n_threads, err);
    case GLMOE_DEVICE_CUDA:
#ifdef GLMOE_HAVE_CUDA
        return cuda_backend_create(out, 0, err);
#else
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "this build of glmoe has no CUDA backend");
#endif
    }
    return gm_fail(err, GLMOE_E_ARG, "unknown device %d", (int)device);
}

glmoe_status gm_backend_check(glmoe_device device, char *desc, size_t desc_size, gm_err *err) {
    if (desc_size) desc[0] = '\0';
    switch (device) {
    case GLMOE_DEVICE_CPU:
        snprintf(desc, desc_size, "cpu");
        return GLMOE_OK;
    case GLMOE_DEVICE_AUTO:
    case GLMOE_DEVICE_CUDA: {
#ifdef GLMOE_HAVE_CUDA
        /* what cuda_backend_create checks before it makes anything: a GPU, then the module */
        char gpu[300];
        const gm_cuda_module *m;
        glmoe_status s = gm_cuda_driver_check(0, gpu, sizeof gpu, err);
        if (!s) s = cuda_module_get(&m, err);
        if (!s) {
            snprintf(desc, desc_size, "cuda: %s", gpu);
            return GLMOE_OK;
        }
#else
        glmoe_status s = gm_fail(err, GLMOE_E_UNSUPPORTED, "this build of glmoe has no CUDA backend");
#endif
        if (device == GLMOE_DEVICE_CUDA) return s;
        gm_err_clear(err);
        snprintf(desc, desc_size, "cpu");
        return GLMOE_OK;
    }
    }
    return gm_fail(err, GLMOE_E_ARG, "unknown device %d", (int)device);
}

/* ---- a model split over several ranks ------------------------------------------------------ */

glmoe_status gm_check_device_count(int32_t asked, int32_t found, const char *kind, gm_err *err) {
    if (found >= asked) return GLMOE_OK;
    return gm_fail(err, GLMOE_E_UNSUPPORTED, "--gpus %d: %d %s device%s found", asked, found, kind,
                   found == 1 ? "" : "s");
}

static bool is_cuda(const gm_backend *be) { return !strcmp(be->ops->name, "cuda"); }

glmoe_status gm_backend_check_ranks(const gm_backend *first, int32_t n, gm_err *err) {
    if (!is_cuda(first)) return GLMOE_OK;
#ifdef GLMOE_HAVE_CUDA
    return gm_check_device_count(n, gm_cuda_driver_count(), "CUDA", err);
#else
    return gm_fail(err, GLMOE_E_UNSUPPORTED, "this build of glmoe has no CUDA backend");
#endif
}

glmoe_status gm_backend_create_rank(gm_backend **out, const gm_backend *first, int32_t rank, int n_threads,
                                    gm_err *err) {
    *out = NULL;
    if (!is_cuda(first)) return cpu_backend_create(out, n_threads, err);
#ifdef GLMOE_HAVE_CUDA
    return cuda_backend_create(out, rank, err);
#else
    return gm_fail(err, GLMOE_E_UNSUPPORTED, "this build of glmoe has no CUDA backend");
#endif
}

glmoe_status gm_comm_create(gm_comm **ranks, const gm_backend *first, int32_t n, gm_err *err) {
    if (!is_cuda(first)) return comm_local_create(ranks, n, err);
#ifdef GLMOE_HAVE_CUDA
    int32_t devices[64];
    if (n > (int32_t)(sizeof devices / sizeof devices[0]))
        return gm_fail(err, GLMOE_E_ARG, "a group of %d GPUs (at most %d)", n, (int)(sizeof devices / sizeof devices[0]));
    for (int32_t r = 0; r < n; r++) devices[r] = r;
    return cuda_comm_create(ranks, devices, n, err);
#else
    return gm_fail(err, GLMOE_E_UNSUPPORTED, "this build of glmoe has no CUDA backend");
#endif
}
