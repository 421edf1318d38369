/*
 * factory.c — the one place where backends are made: the device choice of glmoe_model_params and
 * the fallback of GLMOE_DEVICE_AUTO (the GPU when there is a usable one, else the CPU, saying
 * why in the log), and gm_backend_check, the same choice without making a backend. Nothing
 * above src/backend/ includes a backend's own header. The CUDA backend is a module opened on
 * demand (cuda_loader.c): a machine without a GPU never loads it.
 */
#include "backend/backend.h"

#include <stdio.h>

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
