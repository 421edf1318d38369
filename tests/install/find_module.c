/*
 * find_module.c — built by test_install.sh against an installed libglmoe.a and put in PREFIX/bin,
 * as an installed program would be: prints where the CUDA backend's module is found from there
 * (src/backend/cuda_loader.c: next to the program, then ../lib), or why not, and exits 1.
 */
#include <stdio.h>

#include "backend/cuda_loader.h"

int main(void) {
    const gm_cuda_module *m = NULL;
    char path[4096];
    gm_err err = {0};
    if (cuda_module_find(&m, path, sizeof path, &err) != GLMOE_OK) {
        fprintf(stderr, "find_module: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", path);
    return 0;
}
