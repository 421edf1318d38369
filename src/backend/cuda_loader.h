/*
 * cuda_loader.h — finding and opening the CUDA backend's module, libglmoe-cuda.so
 * (backend/cuda/cuda_module.h). The functions of backend/cuda/cuda_backend.h, in libglmoe, call
 * through it; these are for tests and `glmoe --version`.
 *
 * Where the module is looked for, first found first served:
 *   1. $GLMOE_CUDA_MODULE, a path to the file (then nowhere else);
 *   2. the directory of the binary that holds this code: libglmoe.so's own (installed or in the
 *      build tree), or a program's that links glmoe statically (build/glmoe);
 *   3. that directory's ../lib (an installed program: PREFIX/bin/glmoe, PREFIX/lib);
 *   4. the dynamic loader's search by name: the program's RUNPATH (the build tree's test programs
 *      carry the build directory there), LD_LIBRARY_PATH, the system's library directories;
 *   5. the library directory glmoe was configured to install into.
 * A module from another build (its build id differs) is skipped, and said so if none fits.
 */
#ifndef GLMOE_CUDA_LOADER_H
#define GLMOE_CUDA_LOADER_H

#include "backend/cuda/cuda_module.h"

/* The module, opened on the first call (the later ones give the same answer; thread-safe).
 * Failure: GLMOE_E_BACKEND, naming where it was looked for or why the one found did not load.
 * This does not ask for a GPU: the module opens on a machine without one. */
glmoe_status cuda_module_get(const gm_cuda_module **out, gm_err *err);

/* The path the module was opened from, or NULL before cuda_module_get succeeded. */
const char *cuda_module_path(void);

/* One search as cuda_module_get does it, not cached, for tests: path receives the file opened.
 * The handle is left open on success (a module is never unloaded: its backends may live on). */
glmoe_status cuda_module_find(const gm_cuda_module **out, char *path, size_t path_size, gm_err *err);

#endif
