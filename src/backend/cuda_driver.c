/*
 * cuda_driver.c — gm_cuda_driver_check (cuda_driver.h): the NVIDIA driver's own API, reached with
 * dlopen("libcuda.so.1") and a handful of dlsym'd functions, so that nothing here links the CUDA
 * toolkit. The driver library stays open (the CUDA runtime opens it again anyway when the GPU is
 * used). Tested by tests/unit/test_cuda_module.c (no driver here: the refusal and its cause) and
 * on a GPU by tools/gpu/run_gpu.sh (the device named; CUDA_VISIBLE_DEVICES= gives "no device").
 */
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda_driver.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

/* The driver API's types, as cuda.h declares them (CUresult and CUdevice are ints). */
typedef int (*cu_init_fn)(unsigned flags);
typedef int (*cu_count_fn)(int *count);
typedef int (*cu_get_fn)(int *device, int ordinal);
typedef int (*cu_name_fn)(char *name, int len, int device);
typedef int (*cu_attr_fn)(int *value, int attribute, int device);
typedef int (*cu_mem_fn)(size_t *bytes, int device);
typedef int (*cu_errname_fn)(int result, const char **name);
enum { CU_ATTR_CC_MAJOR = 75, CU_ATTR_CC_MINOR = 76 }; /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_* */

static struct {
    pthread_once_t once;
    gm_err err;            /* why there is no GPU (code 0: the driver works) */
    int n_devices;
    cu_get_fn get;
    cu_name_fn name;
    cu_attr_fn attr;
    cu_mem_fn mem;
} g_driver = {.once = PTHREAD_ONCE_INIT};

static const char *result_name(cu_errname_fn errname, int r) {
    const char *s = NULL;
    if (errname && errname(r, &s) == 0 && s) return s;
    return "unknown error";
}

static void driver_open(void) {
    gm_err *err = &g_driver.err;
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        gm_fail(err, GLMOE_E_UNSUPPORTED, "no CUDA GPU: the NVIDIA driver is not installed (%s)",
                why ? why : "libcuda.so.1 not found");
        return;
    }
    cu_init_fn init = (cu_init_fn)dlsym(lib, "cuInit");
    cu_count_fn count = (cu_count_fn)dlsym(lib, "cuDeviceGetCount");
    cu_errname_fn errname = (cu_errname_fn)dlsym(lib, "cuGetErrorName");
    g_driver.get = (cu_get_fn)dlsym(lib, "cuDeviceGet");
    g_driver.name = (cu_name_fn)dlsym(lib, "cuDeviceGetName");
    g_driver.attr = (cu_attr_fn)dlsym(lib, "cuDeviceGetAttribute");
    g_driver.mem = (cu_mem_fn)dlsym(lib, "cuDeviceTotalMem_v2");
    if (!init || !count || !g_driver.get || !g_driver.name || !g_driver.attr) {
        gm_fail(err, GLMOE_E_UNSUPPORTED, "no CUDA GPU: libcuda.so.1 lacks the driver API (cuInit, cuDeviceGet...)");
        return;
    }
    int r = init(0);
    if (r != 0) {
        gm_fail(err, GLMOE_E_UNSUPPORTED, "no CUDA GPU: the NVIDIA driver does not start (cuInit: %s)",
                result_name(errname, r));
        return;
    }
    r = count(&g_driver.n_devices);
    if (r != 0 || g_driver.n_devices <= 0) {
        const char *visible = getenv("CUDA_VISIBLE_DEVICES");
        gm_fail(err, GLMOE_E_UNSUPPORTED, "no CUDA GPU: the NVIDIA driver sees no device%s%s%s%s",
                r ? " (cuDeviceGetCount: " : "", r ? result_name(errname, r) : "", r ? ")" : "",
                visible ? (visible[0] ? ", CUDA_VISIBLE_DEVICES hides them" : " (CUDA_VISIBLE_DEVICES is empty)") : "");
        g_driver.n_devices = 0;
    }
}

glmoe_status gm_cuda_driver_check(int index, char *desc, size_t desc_size, gm_err *err) {
    if (desc && desc_size) desc[0] = '\0';
    pthread_once(&g_driver.once, driver_open);
    if (g_driver.err.code) return gm_fail(err, g_driver.err.code, "%s", g_driver.err.msg);
    if (index < 0 || index >= g_driver.n_devices)
        return gm_fail(err, GLMOE_E_ARG, "cuda: device %d does not exist (%d device%s)", index, g_driver.n_devices,
                       g_driver.n_devices == 1 ? "" : "s");
    int dev = 0, major = 0, minor = 0;
    char name[256] = "an NVIDIA GPU";
    size_t bytes = 0;
    if (g_driver.get(&dev, index) != 0 || g_driver.attr(&major, CU_ATTR_CC_MAJOR, dev) != 0 ||
        g_driver.attr(&minor, CU_ATTR_CC_MINOR, dev) != 0)
        return gm_fail(err, GLMOE_E_UNSUPPORTED, "no CUDA GPU: the driver cannot describe device %d", index);
    if (g_driver.name(name, (int)sizeof name, dev) != 0) snprintf(name, sizeof name, "device %d", index);
    if (g_driver.mem && g_driver.mem(&bytes, dev) != 0) bytes = 0;
    if (major < 8)
        return gm_fail(err, GLMOE_E_UNSUPPORTED,
                       "no CUDA GPU: %.200s has compute capability %d.%d; glmoe needs 8.0 or newer (Ampere, "
                       "Ada, Hopper)",
                       name, major, minor);
    if (desc && desc_size)
        snprintf(desc, desc_size, "%.200s, compute capability %d.%d, %.1f GiB", name, major, minor,
                 (double)bytes / (1024.0 * 1024.0 * 1024.0));
    return GLMOE_OK;
}
int gm_cuda_driver_count(void) {
    pthread_once(&g_driver.once, driver_open);
    return g_driver.err.code ? 0 : g_driver.n_devices;
}
#endif
