/*
 * build_info.c — what this build of the library is (version, commit) and which devices it can
 * run on now (include/glmoe.h: glmoe_version, glmoe_device_check). `glmoe --version` prints
 * them; tests/install/test_version.sh checks them against the CLI and the header.
 */
#include <stdio.h>

#include "backend/backend.h"
#include "glmoe.h"

/* CMakeLists.txt passes the commit to this file alone, so that a new commit recompiles one file. */
#ifndef GLMOE_GIT_COMMIT
#define GLMOE_GIT_COMMIT ""
#endif

#define GM_STR2(x) #x
#define GM_STR(x) GM_STR2(x)

const char *glmoe_version(void) {
    return GM_STR(GLMOE_VERSION_MAJOR) "." GM_STR(GLMOE_VERSION_MINOR) "." GM_STR(GLMOE_VERSION_PATCH);
}

const char *glmoe_version_commit(void) { return GLMOE_GIT_COMMIT; }

bool glmoe_device_built(glmoe_device device) {
    switch (device) {
    case GLMOE_DEVICE_AUTO:
    case GLMOE_DEVICE_CPU:
        return true;
    case GLMOE_DEVICE_CUDA:
#ifdef GLMOE_HAVE_CUDA
        return true;
#else
        return false;
#endif
    }
    return false;
}

glmoe_status glmoe_device_check(glmoe_device device, char *desc, size_t desc_size) {
    gm_err err = {0};
    char what[256] = "";
    glmoe_status s = gm_backend_check(device, what, sizeof what, &err);
    if (desc && desc_size) snprintf(desc, desc_size, "%s", s ? err.msg : what);
    return s;
}
