/*
 * cuda_backend.h — the CUDA backend: the whole forward on one NVIDIA GPU (compute capability 8.0
 * or newer), behind the same vtable as the CPU backend (backend/backend.h). A model split over
 * several GPUs has one backend per GPU (its device_index), their all_reduce ops joined by an NCCL
 * group (cuda_comm_create below; cuda/comm_nccl.c).
 *
 * What lives on the device: every weight in its stored dtype (bf16 stays bf16; small vectors are
 * float32, as the interface asks), the KV cache (bf16 by default), activations (float32) and the
 * scratch that reserve() sizes. Every op is queued on the backend's one stream; copy_out() and
 * sync() wait for it and report any fault a kernel raised (a token id or an expert index out of
 * range). A decode step is recorded once as a CUDA graph and replayed (the graph_* ops of
 * backend.h; src/model/forward.c decides when).
 *
 * Errors: no device, no driver or a GPU older than sm_80 → GLMOE_E_UNSUPPORTED (so that callers
 * can fall back to the CPU); device memory exhausted → GLMOE_E_NOMEM with bytes needed and free;
 * any other CUDA or cuBLAS failure → GLMOE_E_BACKEND naming the call, file:line and the driver's
 * message. Nothing here aborts.
 *
 * Where it lives: in a module of its own, libglmoe-cuda.so (the .cu files, linked with cudart and
 * cuBLAS), so that a program built with CUDA loads none of the CUDA libraries on a machine
 * without a GPU. In libglmoe (and glmoe_core) the functions below are served by the loader,
 * backend/cuda_loader.c: it asks the NVIDIA driver for a GPU first (backend/cuda_driver.c, which
 * needs nothing but libcuda.so.1), and only then opens the module and calls through its table
 * (cuda_module.h). In the module they are the .cu files' own.
 *
 * Threads: as backend.h says: the backend is shared by the contexts of a model and read-only
 * once the weights are bound; each context's execution state has its own stream, cuBLAS handle
 * and scratch (cuda_backend.cu). Tested by tests/ops/test_ops.c (every op, through the vtable)
 * and by tests/golden/test_golden.c --device cuda (whole models against transformers).
 */
#ifndef GLMOE_CUDA_BACKEND_H
#define GLMOE_CUDA_BACKEND_H

#ifdef __cplusplus
/* util/error.h declares gm_assert_fail with C11's _Noreturn, which C++ spells [[noreturn]]. */
#ifndef _Noreturn
#define _Noreturn [[noreturn]]
#endif
extern "C" {
#endif

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

typedef struct cuda_backend_options {
    int device_index;   /* CUDA device ordinal (default 0) */
    /* The KV cache holds bf16 (default: half the memory and bandwidth of float32, rel. error
     * ~4e-3 per element). kv_f32 keeps it float32, so that attention is float32 end to end: the
     * op tests use it to check the kernels at float32 tolerance. */
    bool kv_f32;
    /* Decline every step recording (graph_capture_begin answers GLMOE_E_UNSUPPORTED), so that
     * decode runs op by op. The environment variable GLMOE_CUDA_GRAPHS=0 does the same. */
    bool no_graphs;
    /* Prefills of at least this many tokens run bf16 experts through cuBLAS (cuda_moe.cu); 0:
     * the default (or the environment variable GLMOE_MOE_CUBLAS_MIN_TOKENS). Tests lower it. */
    int moe_cublas_min_tokens;
    /* Take affine-quantized weights (cuda_quant.cu; on by default since an H100 run of
     * tools/gpu/run_gpu.sh validated them on 2026-12-07). false, or the environment variable
     * GLMOE_CUDA_AFFINE=0, declines them (then --device auto runs quantized models on the CPU):
     * for comparisons. */
    bool affine;
} cuda_backend_options;

static inline cuda_backend_options cuda_backend_options_default(void) {
    cuda_backend_options o;
    o.device_index = 0;
    o.kv_f32 = false;
    o.no_graphs = false;
    o.moe_cublas_min_tokens = 0;
    o.affine = true;
    return o;
}

/* Creates a backend on device `device_index` with the default options. Without a usable GPU (no
 * driver, no device, one older than sm_80): GLMOE_E_UNSUPPORTED, "cuda: no CUDA GPU: <why>",
 * and the module is not opened. A GPU but no module (or one from another build):
 * GLMOE_E_BACKEND naming where it was looked for. */
glmoe_status cuda_backend_create(gm_backend **out, int device_index, gm_err *err);
glmoe_status cuda_backend_create_ex(gm_backend **out, const cuda_backend_options *opt, gm_err *err);

/* Counters summed over every CUDA backend of the process, for benchmarks: the host time spent
 * blocked in waits for the GPU (copy_out, sync) and how many there were, and how many steps were
 * recorded as graphs and replayed. The host time a step costs is its wall time minus wait_s.
 * Not synchronised: read them from the thread that runs the backends. */
typedef struct cuda_backend_counters {
    double wait_s;
    uint64_t waits, graphs_recorded, graph_replays;
} cuda_backend_counters;

void cuda_backend_counters_get(cuda_backend_counters *out);

/* True if be is a CUDA backend (its ops are named "cuda"). */
bool cuda_backend_is(const gm_backend *be);

/* The device's measured ceilings (cuda_probe.cu): copy bandwidth, bytes read + written per
 * second, and the rate of an n x n x n cuBLAS bf16 GEMM with fp32 accumulation. Takes about a
 * second and 1.4 GB of device memory for the moment; for benchmarks. */
typedef struct cuda_backend_probe_result {
    double copy_gb_s;
    double gemm_tflop_s;
    int gemm_n;
    char device[256];
} cuda_backend_probe_result;

glmoe_status cuda_backend_probe(gm_backend *be, cuda_backend_probe_result *out, gm_err *err);

/* The group (backend/comm.h) of a model split over the CUDA devices devices[0, n), n >= 2, one
 * handle per rank in ranks[0, n): NCCL (cuda/comm_nccl.c), opened only now. GLMOE_E_UNSUPPORTED
 * in one line when the module was built without nccl.h or libnccl.so.2 cannot be opened. Served by
 * the loader (cuda_loader.c) in the library. */
glmoe_status cuda_comm_create(gm_comm **ranks, const int32_t *devices, int32_t n, gm_err *err);

#ifdef __cplusplus
}
#endif

#endif
