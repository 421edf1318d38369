/*
 * test_version.c — glmoe_version() and glmoe_version_commit() against the header's macros, and
 * glmoe_device_built / glmoe_device_check: the CPU is always there, AUTO always answers with what
 * it would run, CUDA answers either a device or one line saying why not (on a machine without a
 * GPU: GLMOE_E_UNSUPPORTED naming cuda), an unknown device is GLMOE_E_ARG.
 */
#include <stdio.h>
#include <string.h>

#include "glmoe.h"
#include "test.h"

int main(void) {
    char want[64];
    snprintf(want, sizeof want, "%d.%d.%d", GLMOE_VERSION_MAJOR, GLMOE_VERSION_MINOR, GLMOE_VERSION_PATCH);
    CHECK(!strcmp(glmoe_version(), want), "glmoe_version() \"%s\", header %s", glmoe_version(), want);
    const char *commit = glmoe_version_commit();
    CHECK(commit && strlen(commit) < 64 && !strchr(commit, '\n'), "commit \"%s\"", commit ? commit : "(null)");

    CHECK(glmoe_device_built(GLMOE_DEVICE_CPU) && glmoe_device_built(GLMOE_DEVICE_AUTO));
#ifdef GLMOE_HAVE_CUDA
    CHECK(glmoe_device_built(GLMOE_DEVICE_CUDA));
#else
    CHECK(!glmoe_device_built(GLMOE_DEVICE_CUDA));
#endif
    char desc[512];
    CHECK(glmoe_device_check(GLMOE_DEVICE_CPU, desc, sizeof desc) == GLMOE_OK && !strcmp(desc, "cpu"), "%s", desc);
    CHECK(glmoe_device_check(GLMOE_DEVICE_AUTO, desc, sizeof desc) == GLMOE_OK &&
              (!strcmp(desc, "cpu") || !strncmp(desc, "cuda: ", 6)),
          "auto: %s", desc);
    printf("auto: %s\n", desc);
    glmoe_status s = glmoe_device_check(GLMOE_DEVICE_CUDA, desc, sizeof desc);
    CHECK(s == GLMOE_OK ? !strncmp(desc, "cuda: ", 6) : s == GLMOE_E_UNSUPPORTED && strstr(desc, "CUDA"), "cuda: %d %s",
          (int)s, desc);
    printf("cuda: %s%s\n", s ? "not usable: " : "", desc);
    CHECK(glmoe_device_check(GLMOE_DEVICE_CPU, NULL, 0) == GLMOE_OK);
    CHECK(glmoe_device_check((glmoe_device)42, desc, sizeof desc) == GLMOE_E_ARG && strstr(desc, "42"), "%s", desc);
    return test_summary("test_version");
}
