/*
 * cuda_probe.cu — what the device can do, measured, for benchmarks to report fractions of:
 * the device-to-device copy bandwidth (the ceiling of a memory-bound decode step) and the rate
 * of a large cuBLAS bf16 GEMM (the ceiling of a compute-bound prefill).
 *
 * Copy: cudaMemcpyAsync of 1 GiB between two device buffers, 20 times after 3 warm-ups; bytes
 * read + written per second (the convention of `nvbandwidth` and of tools/gpu/run_gpu.sh).
 * GEMM: C[m,n] = A[m,k]·B[k,n] with m = n = k = 8192, bf16 inputs, fp32 accumulation
 * (CUBLAS_COMPUTE_32F), cuBLAS's default algorithm, 10 runs after 3 warm-ups; 2mnk / time.
 * Both on the backend's load stream (with a cuBLAS handle of their own), timed with events. Buffers are freed before returning.
 */
#include <stdio.h>
#include <string.h>

#include "backend/cuda/cuda_internal.h"

namespace {

struct probe_buffers {
    void *a = nullptr, *b = nullptr, *c = nullptr;
    cudaEvent_t start = nullptr, stop = nullptr;
    cublasHandle_t cublas = nullptr;
    ~probe_buffers() {
        if (cublas) cublasDestroy(cublas);
        if (a) cudaFree(a);
        if (b) cudaFree(b);
        if (c) cudaFree(c);
        if (start) cudaEventDestroy(start);
        if (stop) cudaEventDestroy(stop);
    }
};

__global__ void fill_bf16(__nv_bfloat16 *p, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ seed;
        h ^= h >> 15;
        p[i] = __float2bfloat16((float)(h & 0xffff) / 65536.0f - 0.5f);
    }
}

} // namespace

extern "C" glmoe_status cuda_backend_probe(gm_backend *be, cuda_backend_probe_result *out, gm_err *err) {
    cuda_backend *cb = cuda_of(be);
    memset(out, 0, sizeof *out);
    probe_buffers p;
    CU_TRY(cudaSetDevice(cb->device));
    CU_TRY(cudaEventCreate(&p.start));
    CU_TRY(cudaEventCreate(&p.stop));
    float ms = 0;

    const size_t copy_bytes = (size_t)1 << 30;
    CU_TRY(cudaMalloc(&p.a, copy_bytes));
    CU_TRY(cudaMalloc(&p.b, copy_bytes));
    CU_TRY(cudaMemsetAsync(p.a, 1, copy_bytes, cb->load_stream));
    for (int i = 0; i < 3; i++) CU_TRY(cudaMemcpyAsync(p.b, p.a, copy_bytes, cudaMemcpyDeviceToDevice, cb->load_stream));
    CU_TRY(cudaEventRecord(p.start, cb->load_stream));
    for (int i = 0; i < 20; i++) CU_TRY(cudaMemcpyAsync(p.b, p.a, copy_bytes, cudaMemcpyDeviceToDevice, cb->load_stream));
    CU_TRY(cudaEventRecord(p.stop, cb->load_stream));
    CU_TRY(cudaEventSynchronize(p.stop));
    CU_TRY(cudaEventElapsedTime(&ms, p.start, p.stop));
    out->copy_gb_s = 2.0 * 20 * (double)copy_bytes / (ms * 1e-3) / 1e9;
    CU_TRY(cudaFree(p.a));
    CU_TRY(cudaFree(p.b));
    p.a = p.b = nullptr;

    const int n = 8192;
    const size_t elems = (size_t)n * n;
    CU_TRY(cudaMalloc(&p.a, elems * 2));
    CU_TRY(cudaMalloc(&p.b, elems * 2));
    CU_TRY(cudaMalloc(&p.c, elems * 2));
    fill_bf16<<<1024, 256, 0, cb->load_stream>>>((__nv_bfloat16 *)p.a, elems, 1);
    CU_LAUNCHED();
    fill_bf16<<<1024, 256, 0, cb->load_stream>>>((__nv_bfloat16 *)p.b, elems, 2);
    CU_LAUNCHED();
    CUBLAS_TRY(cublasCreate(&p.cublas));
    CUBLAS_TRY(cublasSetStream(p.cublas, cb->load_stream));
    const float one = 1.0f, zero = 0.0f;
    auto gemm = [&]() {
        return cublasGemmEx(p.cublas, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, p.a, CUDA_R_16BF, n, p.b,
                            CUDA_R_16BF, n, &zero, p.c, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    };
    for (int i = 0; i < 3; i++) CUBLAS_TRY(gemm());
    CU_TRY(cudaEventRecord(p.start, cb->load_stream));
    for (int i = 0; i < 10; i++) CUBLAS_TRY(gemm());
    CU_TRY(cudaEventRecord(p.stop, cb->load_stream));
    CU_TRY(cudaEventSynchronize(p.stop));
    CU_TRY(cudaEventElapsedTime(&ms, p.start, p.stop));
    out->gemm_tflop_s = 2.0 * n * (double)n * n * 10 / (ms * 1e-3) / 1e12;
    out->gemm_n = n;
    snprintf(out->device, sizeof out->device, "%s", cb->device_name);
    return GLMOE_OK;
}
