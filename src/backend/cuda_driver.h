/*
 * cuda_driver.h — is there an NVIDIA GPU glmoe can use? Asked of the driver alone (libcuda.so.1,
 * opened with dlopen), so that the answer costs no CUDA runtime or cuBLAS: on a machine without a
 * GPU, `--device auto` and `glmoe --version` stay as light as a CPU-only build.
 */
#ifndef GLMOE_CUDA_DRIVER_H
#define GLMOE_CUDA_DRIVER_H

#include <stddef.h>

#include "util/error.h"

/* GLMOE_OK when the driver is installed, initialises, and device `index` exists with compute
 * capability 8.0 or newer; desc (may be NULL) then receives "<name>, compute capability M.m,
 * <memory> GiB". Otherwise GLMOE_E_UNSUPPORTED, "cuda: no CUDA GPU: <why>" (no driver, the
 * driver's error, no device, CUDA_VISIBLE_DEVICES, an older GPU) or GLMOE_E_ARG for an index
 * past the devices. The driver is asked once per process (cuInit); thread-safe. */
glmoe_status gm_cuda_driver_check(int index, char *desc, size_t desc_size, gm_err *err);

/* The CUDA devices the driver sees (after CUDA_VISIBLE_DEVICES); 0 when there is no usable driver. */
int gm_cuda_driver_count(void);

#endif
