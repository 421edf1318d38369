/*
 * cuda_elementwise.cu — embedding lookup, residual add + RMSNorm, add, SwiGLU and RoPE.
 *
 * RMSNorm: y = w ⊙ x / sqrt(mean(x²) + eps), one block per row; the sum of squares is kept in
 * double per thread and across the block, as the CPU backend does (spec §2.2). Rows of a
 * multiple of 4 floats (all of a real model's) take float4 loads and keep their values in
 * registers between the two passes: one round trip to memory per pass instead of one per
 * element (a decode step has 2 norms per layer on a single row, which are latency-bound).
 * RoPE: half-split pairs (i, i + R/2) on the first R dims of every head. inv_freq[i] =
 * theta^(-2i/R) is computed on the host with the same float32 powf as the CPU backend and
 * transformers, and uploaded once per (theta, R); the angle pos · inv_freq is a float32 product
 * and sinf/cosf are the accurate (not the fast-math) versions, so large positions stay within a
 * couple of ulps of the reference (spec §2.4.3). The attention op can take the rotation instead
 * (gm_attn_params.rope_pos): its kernels rotate q and k with the same arithmetic (cu_rope_elem).
 * Embed checks every id against the table on the device: a bad id raises CUDA_FAULT_TOKEN, which
 * the next copy_out/sync reports as GLMOE_E_TOKEN, and its row is never read nor written. No wait
 * for the host inside a step (the public API has already checked the ids on the host).
 */
#include <math.h>

#include "backend/cuda/cuda_internal.h"

/* ---- embed ------------------------------------------------------------------------------------ */

template <typename WT>
__global__ void embed_kernel(float *out, const WT *table, const int32_t *ids, int64_t V, int64_t H, int32_t *fault) {
    const int t = blockIdx.x;
    const int32_t id = ids[t];
    if (id < 0 || id >= V) {
        if (threadIdx.x == 0) cu_raise_fault(fault, CUDA_FAULT_TOKEN, id, (int32_t)(V < INT32_MAX ? V : INT32_MAX));
        return;
    }
    const WT *row = table + (int64_t)id * H;
    float *o = out + (int64_t)t * H;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) o[i] = cu_to_f(row[i]);
}

glmoe_status cuda_embed(gm_exec *ex, float *out, const gm_weight *table, const int32_t *ids, int32_t T,
                        gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    if (T <= 0) return GLMOE_OK;
    if (table->type == GM_W_AFFINE) return cuda_affine_embed(cx, out, table, ids, T, err);
    CU_DISPATCH_WTYPE(table->type, WT,
                      embed_kernel<WT><<<T, 256, 0, cx->stream>>>(out, (const WT *)table->data, ids, table->rows,
                                                                  table->cols, cx->d_fault));
    CU_LAUNCHED();
    return GLMOE_OK;
}

/* ---- add + RMSNorm ------------------------------------------------------------------------------ */

#define NORM_THREADS 256

__global__ void __launch_bounds__(NORM_THREADS) add_rmsnorm_kernel(float *out, float *resid, const float *delta,
                                                                   const float *w, int64_t cols, float eps) {
    __shared__ double partial[NORM_THREADS / 32];
    const int64_t r = blockIdx.x;
    float *x = resid + r * cols;
    const float *d = delta ? delta + r * cols : nullptr;
    double ss = 0;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = x[i];
        if (d) {
            v += d[i];
            x[i] = v;
        }
        ss += (double)v * v;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        double v = threadIdx.x < blockDim.x / 32 ? partial[threadIdx.x] : 0.0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) partial[0] = v;
    }
    __syncthreads();
    const float inv = (float)(1.0 / sqrt(partial[0] / (double)cols + (double)eps));
    float *y = out + r * cols;
    /* Each thread reads back only the elements it wrote above: in place (out == resid) is safe. */
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) y[i] = w[i] * (x[i] * inv);
}

/* Sum of a double over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it. */
__device__ __forceinline__ double block_sum(double v) {
    __shared__ double partial[32];
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        double u = threadIdx.x < (blockDim.x >> 5) ? partial[threadIdx.x] : 0.0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) u += __shfl_xor_sync(0xffffffffu, u, o);
        if (threadIdx.x == 0) partial[0] = u;
    }
    __syncthreads();
    return partial[0];
}

#define NORM_VEC 4 /* float4 chunks each thread keeps in registers */

/* cols % 4 == 0, 16-byte aligned rows, cols / 4 <= NORM_VEC * blockDim.x. */
__global__ void __launch_bounds__(1024) add_rmsnorm_vec_kernel(float *out, float *resid, const float *delta,
                                                               const float *w, int cols, float eps) {
    cu_pdl_trigger(); /* the next GEMV may start its weight loads (cu_launch_pdl) */
    const int n4 = cols >> 2;
    const int64_t r = blockIdx.x;
    float4 *x = reinterpret_cast<float4 *>(resid + r * cols);
    const float4 *d = delta ? reinterpret_cast<const float4 *>(delta + r * cols) : nullptr;
    float4 v[NORM_VEC], dv[NORM_VEC];
    /* All loads first, then the stores: x and out may be the same row. */
#pragma unroll
    for (int c = 0; c < NORM_VEC; c++) {
        const int i = threadIdx.x + c * blockDim.x;
        if (i < n4) {
            v[c] = x[i];
            if (d) dv[c] = d[i];
        }
    }
    double ss = 0;
#pragma unroll
    for (int c = 0; c < NORM_VEC; c++) {
        const int i = threadIdx.x + c * blockDim.x;
        if (i < n4) {
            if (d) {
                v[c].x += dv[c].x, v[c].y += dv[c].y, v[c].z += dv[c].z, v[c].w += dv[c].w;
                x[i] = v[c];
            }
            ss += (double)v[c].x * v[c].x + (double)v[c].y * v[c].y + (double)v[c].z * v[c].z +
                  (double)v[c].w * v[c].w;
        }
    }
    const float inv = (float)(1.0 / sqrt(block_sum(ss) / (double)cols + (double)eps));
    float4 *y = reinterpret_cast<float4 *>(out + r * cols);
    const float4 *w4 = reinterpret_cast<const float4 *>(w);
#pragma unroll
    for (int c = 0; c < NORM_VEC; c++) {
        const int i = threadIdx.x + c * blockDim.x;
        if (i < n4) {
            const float4 g = w4[i];
            y[i] = make_float4(g.x * (v[c].x * inv), g.y * (v[c].y * inv), g.z * (v[c].z * inv), g.w * (v[c].w * inv));
        }
    }
}

glmoe_status cuda_add_rmsnorm(gm_exec *ex, float *out, float *resid, const float *delta, const gm_weight *w,
                              int64_t rows, int64_t cols, float eps, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    if (rows <= 0) return GLMOE_OK;
    if (rows > INT32_MAX) return gm_fail(err, GLMOE_E_UNSUPPORTED, "cuda: add_rmsnorm over %lld rows", (long long)rows);
    if (cols % 4 == 0 && cols / 4 <= NORM_VEC * 1024 && cu_aligned(out, 16) && cu_aligned(resid, 16) &&
        cu_aligned(delta, 16) && cu_aligned(w->data, 16)) {
        int threads = (int)((cols / 4 + NORM_VEC - 1) / NORM_VEC);
        threads = (threads + 31) / 32 * 32;
        add_rmsnorm_vec_kernel<<<(unsigned)rows, threads, 0, cx->stream>>>(out, resid, delta, (const float *)w->data,
                                                                          (int)cols, eps);
        CU_LAUNCHED();
        return GLMOE_OK;
    }
    /* Short rows (per-head QK-norm) get a smaller block. */
    const int threads = cols <= 128 ? 64 : cols <= 1024 ? 128 : NORM_THREADS;
    add_rmsnorm_kernel<<<(unsigned)rows, threads, 0, cx->stream>>>(out, resid, delta, (const float *)w->data, cols,
                                                                   eps);
    CU_LAUNCHED();
    return GLMOE_OK;
}

/* ---- add, swiglu ------------------------------------------------------------------------------- */

__global__ void add_kernel(float *resid, const float *delta, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
        resid[i] += delta[i];
}

glmoe_status cuda_add(gm_exec *ex, float *resid, const float *delta, int64_t n, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    if (n <= 0) return GLMOE_OK;
    unsigned blocks = cu_blocks(n, 256);
    if (blocks > (unsigned)cx->cb->sm_count * 16) blocks = (unsigned)cx->cb->sm_count * 16;
    add_kernel<<<blocks, 256, 0, cx->stream>>>(resid, delta, n);
    CU_LAUNCHED();
    return GLMOE_OK;
}

glmoe_status cuda_copy_2d(gm_exec *ex, float *dst, int64_t dst_stride, const float *src, int64_t src_stride,
                          int64_t rows, int64_t width, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    if (rows <= 0 || width <= 0) return GLMOE_OK;
    CU_TRY(cudaMemcpy2DAsync(dst, (size_t)dst_stride * sizeof(float), src, (size_t)src_stride * sizeof(float),
                               (size_t)width * sizeof(float), (size_t)rows, cudaMemcpyDeviceToDevice, cx->stream));
    return GLMOE_OK;
}

/* out = silu(g) · u = g / (1 + e^-g) · u, as the CPU backend writes it. */
__global__ void swiglu_kernel(float *out, const float *gate, const float *up, int64_t n) {
    cu_pdl_trigger(); /* the next GEMV may start its weight loads (cu_launch_pdl) */
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

glmoe_status cuda_swiglu_launch(cuda_exec *cx, float *out, const float *gate, const float *up, int64_t n,
                                gm_err *err) {
    if (n <= 0) return GLMOE_OK;
    unsigned blocks = cu_blocks(n, 256);
    if (blocks > (unsigned)cx->cb->sm_count * 16) blocks = (unsigned)cx->cb->sm_count * 16;
    swiglu_kernel<<<blocks, 256, 0, cx->stream>>>(out, gate, up, n);
    CU_LAUNCHED();
    return GLMOE_OK;
}

glmoe_status cuda_swiglu(gm_exec *ex, float *out, const float *gate, const float *up, int64_t n, gm_err *err) {
    return cuda_swiglu_launch(cuda_exec_of(ex), out, gate, up, n, err);
}

/* ---- rope --------------------------------------------------------------------------------------- */

__global__ void rope_kernel(float *x, const int32_t *pos, const float *inv_freq, int32_t T, int32_t nh, int32_t D,
                            int32_t half) {
    const int64_t total = (int64_t)T * nh * half;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int32_t i = (int32_t)(e % half);
        const int64_t th = e / half; /* token * nh + head */
        const int32_t t = (int32_t)(th / nh);
        const float a = (float)pos[t] * inv_freq[i];
        float s, c;
        sincosf(a, &s, &c);
        float *v = x + th * D;
        const float x0 = v[i], x1 = v[i + half];
        v[i] = cu_rope_rotate(x0, x1, true, c, s);
        v[i + half] = cu_rope_rotate(x1, x0, false, c, s);
    }
}

glmoe_status cuda_rope_table(cuda_exec *cx, int32_t rotary_dim, float theta, const float **table, gm_err *err) {
    const int32_t half = rotary_dim / 2;
    if (half > 2048) return gm_fail(err, GLMOE_E_UNSUPPORTED, "rope: %d rotary dims is over 4096", rotary_dim);
    if (!cx->rope_freq) return gm_fail(err, GLMOE_E_BACKEND, "cuda: rope without its frequency table");
    if (half > 0 && (cx->rope_half != half || cx->rope_theta != theta || cx->rope_dim != rotary_dim)) {
        glmoe_status s = cuda_refuse_if_capturing(cx, "rope: a new frequency table", err); /* a copy from the stack */
        if (s) return s;
        float f[2048];
        for (int32_t i = 0; i < half; i++) f[i] = 1.0f / powf(theta, (float)(2 * i) / (float)rotary_dim);
        CU_TRY(cudaMemcpyAsync(cx->rope_freq, f, (size_t)half * sizeof(float), cudaMemcpyHostToDevice, cx->stream));
        cx->rope_half = half;
        cx->rope_theta = theta;
        cx->rope_dim = rotary_dim;
    }
    *table = cx->rope_freq;
    return GLMOE_OK;
}

glmoe_status cuda_rope(gm_exec *ex, float *x, const int32_t *pos, int32_t T, int32_t n_heads, int32_t head_dim,
                       int32_t rotary_dim, float theta, gm_err *err) {
    cuda_exec *cx = cuda_exec_of(ex);
    const int32_t half = rotary_dim / 2;
    if (half > 2048) return gm_fail(err, GLMOE_E_UNSUPPORTED, "rope: %d rotary dims is over 4096", rotary_dim);
    if (T <= 0 || half <= 0) return GLMOE_OK;
    const float *inv_freq = NULL;
    glmoe_status s = cuda_rope_table(cx, rotary_dim, theta, &inv_freq, err);
    if (s) return s;
    const int64_t total = (int64_t)T * n_heads * half;
    unsigned blocks = cu_blocks(total, 256);
    if (blocks > (unsigned)cx->cb->sm_count * 16) blocks = (unsigned)cx->cb->sm_count * 16;
    rope_kernel<<<blocks, 256, 0, cx->stream>>>(x, pos, inv_freq, T, n_heads, head_dim, half);
    CU_LAUNCHED();
    return GLMOE_OK;
}
