/*
 * test_comm_nccl.c — the NCCL group of a model split over GPUs (src/backend/cuda/comm_nccl.c,
 * reached through the module: cuda_comm_create), what a machine without GPUs can check:
 *   1. NCCL is not mapped by opening the CUDA module, nor by anything before a split asks for it;
 *   2. a group of 1 GPU is refused (GLMOE_E_ARG), as is any group when the module was built
 *      without nccl.h (GLMOE_E_UNSUPPORTED, "built without NCCL's header");
 *   3. GLMOE_NCCL_LIBRARY naming a missing file: GLMOE_E_UNSUPPORTED in one line naming it;
 *   4. (every build) the refusal of a split over more devices than are found, in one line
 *      ("--gpus 2: 1 CUDA device found"), which a load checks before it binds anything.
 * The collectives themselves need several GPUs (tests/split/test_split_synthetic.c --device cuda).
 * Usage: test_comm_nccl REPO_ROOT. A build without CUDA prints "SKIP" and passes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "mapped.h"
#include "test.h"

static void check_device_count(void) {
    gm_err err = {0};
    CHECK(gm_check_device_count(2, 2, "CUDA", &err) == GLMOE_OK && gm_check_device_count(2, 8, "CUDA", &err) == GLMOE_OK);
    glmoe_status s = gm_check_device_count(2, 1, "CUDA", &err);
    CHECK(s == GLMOE_E_UNSUPPORTED && !strcmp(err.msg, "--gpus 2: 1 CUDA device found"), "%d \"%s\"", s, err.msg);
    s = gm_check_device_count(4, 0, "CUDA", &err);
    CHECK(s == GLMOE_E_UNSUPPORTED && !strcmp(err.msg, "--gpus 4: 0 CUDA devices found"), "%d \"%s\"", s, err.msg);
}
#ifdef GLMOE_HAVE_CUDA
#include "backend/comm.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda_loader.h"


int main(void) {
    check_device_count();
    const gm_cuda_module *m;
    gm_err err = {0};
    if (cuda_module_get(&m, &err)) {
        printf("SKIP: the CUDA module does not open here: %s\n", err.msg);
        return test_summary("test_comm_nccl");
    }
    CHECK(!test_mapped("libnccl"), "NCCL is mapped once the CUDA module is open");
    const bool built = m->comm_create != NULL;
    printf("module built %s NCCL\n", built ? "with" : "without");
    gm_comm *ranks[2] = {NULL, NULL};
    const int32_t devices[2] = {0, 1};
    glmoe_status s = cuda_comm_create(ranks, devices, 1, &err);
    CHECK(s == (built ? GLMOE_E_ARG : GLMOE_E_UNSUPPORTED) && !strchr(err.msg, '\n'), "a group of 1: %d \"%s\"", s,
          err.msg);
    if (!built) CHECK(strstr(err.msg, "built without NCCL's header") != NULL, "\"%s\"", err.msg);
    setenv("GLMOE_NCCL_LIBRARY", "/nonexistent/libnccl.so.2", 1);
    s = cuda_comm_create(ranks, devices, 2, &err);
    printf("refused: %s\n", err.msg);
    CHECK(s == GLMOE_E_UNSUPPORTED && !strchr(err.msg, '\n') && ranks[0] == NULL, "status %d, \"%s\"", s, err.msg);
    if (built) CHECK(strstr(err.msg, "cannot open /nonexistent/libnccl.so.2") != NULL, "\"%s\"", err.msg);
    CHECK(!test_mapped("libnccl"), "NCCL is mapped after a refusal");
    return test_summary("test_comm_nccl");
}
#else
int main(void) {
    check_device_count();
    printf("built without CUDA: the NCCL group is not checked\n");
    return test_summary("test_comm_nccl");
}
#endif
