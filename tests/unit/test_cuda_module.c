/*
 * test_cuda_module.c — the CUDA backend as a module opened on demand (src/backend/cuda_loader.c):
 *   1. without a GPU, nothing of CUDA's is mapped (libcudart, libcublas, the module) after what a
 *      CPU run does: glmoe_device_check, a model loaded with --device auto (which runs on the
 *      CPU) and with --device cuda (refused: GLMOE_E_UNSUPPORTED, "no CUDA GPU" and the cause);
 *   2. the module is found from the build tree and opens on any machine; its create refuses
 *      without a GPU (GLMOE_E_UNSUPPORTED naming cuda), or makes a backend with one;
 *   3. GLMOE_CUDA_MODULE naming a missing file, a file that is not a library, and a library that
 *      is not the module (the C library): three clear refusals.
 * Usage: test_cuda_module REPO_ROOT. A build without CUDA prints "SKIP" and passes.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "mapped.h"
#include "test.h"
#ifdef GLMOE_HAVE_CUDA
#include "backend/cuda_loader.h"
#endif

#ifdef GLMOE_HAVE_CUDA
static bool cuda_mapped(void) {
    return test_mapped("libcudart") || test_mapped("libcublas") || test_mapped("libglmoe-cuda");
}

static void check_cpu_runs_map_nothing(const char *repo) {
    char dir[4200], desc[512];
    snprintf(dir, sizeof dir, "%s/tests/golden/glm45_like", repo);
    CHECK(!cuda_mapped(), "a CUDA library is mapped before anything ran");
    bool gpu = glmoe_device_check(GLMOE_DEVICE_CUDA, desc, sizeof desc) == GLMOE_OK;
    printf("--version would say: %s\n", desc);
    if (gpu) {
        printf("SKIP: a GPU is here: the no-GPU checks need a machine without one\n");
        return;
    }
    CHECK(strstr(desc, "no CUDA GPU: "), "why no GPU: %s", desc);
    glmoe_model_params mp = glmoe_model_params_default();
    glmoe_model *m = NULL;
    mp.device = GLMOE_DEVICE_AUTO;
    CHECK(glmoe_model_load(&m, dir, &mp) == GLMOE_OK, "--device auto: %s", glmoe_model_errmsg(m));
    glmoe_model_info info;
    if (!glmoe_model_get_info(m, &info)) CHECK(!strcmp(info.backend, "cpu"), "auto chose %s", info.backend);
    glmoe_model_free(m);
    m = NULL;
    mp.device = GLMOE_DEVICE_CUDA;
    glmoe_status s = glmoe_model_load(&m, dir, &mp);
    CHECK(s == GLMOE_E_UNSUPPORTED && strstr(glmoe_model_errmsg(m), "no CUDA GPU: "), "--device cuda: %d %s", (int)s,
          glmoe_model_errmsg(m));
    printf("--device cuda: %s\n", glmoe_model_errmsg(m));
    glmoe_model_free(m);
    CHECK(!cuda_mapped(), "CPU runs mapped a CUDA library");
}

/* GLMOE_CUDA_MODULE=path: the search stops there; want the status and a part of the message. */
static void check_env(const char *path, glmoe_status want, const char *want_msg) {
    setenv("GLMOE_CUDA_MODULE", path, 1);
    const gm_cuda_module *m = NULL;
    char found[4096];
    gm_err err = {0};
    glmoe_status s = cuda_module_find(&m, found, sizeof found, &err);
    CHECK(s == want && !m && strstr(err.msg, want_msg), "GLMOE_CUDA_MODULE=%s: %d \"%s\", want %d \"%s\"", path, (int)s,
          err.msg, (int)want, want_msg);
    printf("GLMOE_CUDA_MODULE=%s: %s\n", path, err.msg);
    unsetenv("GLMOE_CUDA_MODULE");
}

static void check_module(const char *repo) {
    char text[4200];
    snprintf(text, sizeof text, "%s/tests/unit/test_cuda_module.c", repo);
    check_env("/nonexistent/libglmoe-cuda.so", GLMOE_E_BACKEND, "does not exist: /nonexistent/libglmoe-cuda.so");
    check_env(text, GLMOE_E_BACKEND, "cannot load the CUDA backend module");

    const gm_cuda_module *m = NULL;
    char path[4096];
    gm_err err = {0};
    glmoe_status s = cuda_module_find(&m, path, sizeof path, &err);
    CHECK(s == GLMOE_OK && m && strstr(path, "/libglmoe-cuda.so"), "the module from the build tree: %s", err.msg);
    if (s) return;
    printf("module: %s (%s)\n", path, m->build_id);
    CHECK(strstr(m->build_id, glmoe_version()), "%s", m->build_id);
    CHECK(test_mapped("libcudart"), "the module is open but cudart is not mapped");

    /* a shared library that is not the module: the C library */
    Dl_info libc;
    CHECK(dladdr((void *)&fopen, &libc) && libc.dli_fname && libc.dli_fname[0] == '/');
    if (libc.dli_fname) check_env(libc.dli_fname, GLMOE_E_BACKEND, "not a glmoe CUDA module");

    gm_backend *be = NULL;
    cuda_backend_options o = cuda_backend_options_default();
    s = m->create_ex(&be, &o, &err);
    if (s == GLMOE_OK) {
        printf("the module made a backend: a GPU is here\n");
        be->ops->free(be);
    } else {
        CHECK(s == GLMOE_E_UNSUPPORTED && strstr(err.msg, "no CUDA GPU"), "the module without a GPU: %d %s", (int)s, err.msg);
        printf("the module without a GPU: %s\n", err.msg);
    }
}
#endif

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_cuda_module REPO_ROOT\n");
        return 2;
    }
#ifdef GLMOE_HAVE_CUDA
    check_cpu_runs_map_nothing(argv[1]);
    check_module(argv[1]);
#else
    printf("SKIP: built without the CUDA backend\n");
#endif
    return test_summary("test_cuda_module");
}
