/*
 * cuda_quantize.cu — MLX's affine quantizer on the device, bit for bit the CPU's
 * gm_affine_quantize_row (src/backend/formats.c, whose header states the algorithm), for weights
 * made on the GPU: the synthetic models of `glmoe bench --config NAME --quantize q4` are generated
 * in bf16 and quantized here one tensor at a time, so that a 60 GB model needs no file and no
 * host copy (cuda_backend.cu, weight_synthetic_affine).
 *
 * Identical results, not close ones: every float operation is the host's, in the host's order,
 * through the round-to-nearest intrinsics (__fsub_rn, __fdiv_rn), so that neither FMA contraction
 * nor a fast-math flag could change a rounding; rintf rounds half to even as the host's does;
 * min and max are the host's comparisons (exact in any order). Scales and biases are stored
 * rounded to nearest even (__float2bfloat16_rn, __float2half_rn: the host's gm_f32_to_bf16 and
 * gm_f32_to_f16 on every finite value). Checked by tests/unit/test_synthetic.c against the CPU,
 * byte for byte (codes, scales, biases), on a GPU.
 *
 * Cost: one thread per group reads its `group` bf16 values twice (min/max, then codes; the second
 * read hits L1), 2·group bytes from memory, and writes group·bits/8 bytes of codes plus a scale
 * and a bias; a division per element. Bound by the divisions, far below a second for the whole
 * of GLM-4.5-Air; it runs once, at load.
 */
#include "backend/cuda/cuda_internal.h"

/* v rounded to the precision of the scale type t: the cast to the model's dtype that precedes
 * quantizing (the host's gm_round_to_type). */
__device__ __forceinline__ float cu_round_to_type(float v, int t) {
    if (t == GM_W_BF16) return __bfloat162float(__float2bfloat16_rn(v));
    if (t == GM_W_F16) return __half2float(__float2half_rn(v));
    return v;
}

__device__ __forceinline__ void cu_store_scalar(void *p, int t, int64_t i, float v) {
    if (t == GM_W_BF16)
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else if (t == GM_W_F16)
        ((__half *)p)[i] = __float2half_rn(v);
    else
        ((float *)p)[i] = v;
}

/* Group g (of n_groups, row-major over the rows: a row's groups are consecutive) of src, whose
 * start is 16-byte aligned (group * 2 bytes is a multiple of 64). Codes of group g start at word
 * g * group * bits / 32 (a group fills whole words), its scale and bias at index g. */
__global__ void affine_quantize_kernel(const __nv_bfloat16 *__restrict__ src, int64_t n_groups, int group, int bits,
                                       int scale_type, uint32_t *__restrict__ codes, void *scales, void *biases) {
    const float n_bins = (float)((1 << bits) - 1);
    const int words = group * bits / 32;
    for (int64_t g = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; g < n_groups; g += (int64_t)gridDim.x * blockDim.x) {
        const __nv_bfloat16 *v = src + g * group;
        float lo = __int_as_float(0x7f800000), hi = __int_as_float(0xff800000); /* +inf, -inf */
        for (int i = 0; i < group; i += 8) {
            float w[8];
            cu_load8(v + i, w);
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const float x = cu_round_to_type(w[j], scale_type);
                lo = x < lo ? x : lo;
                hi = x > hi ? x : hi;
            }
        }
        /* formats.c, in its order: s = max((hi - lo) / n_bins, 1e-7), signed towards the edge of
         * larger magnitude; q0 = rint(edge / s); scale, bias = (edge / q0, edge) unless q0 == 0. */
        float s = __fdiv_rn(__fsub_rn(hi, lo), n_bins);
        s = s > 1e-7f ? s : 1e-7f;
        const bool lo_edge = fabsf(lo) > fabsf(hi);
        const float edge = lo_edge ? lo : hi;
        if (!lo_edge) s = -s;
        const float q0 = rintf(__fdiv_rn(edge, s));
        float scale = s, bias = 0.0f;
        if (q0 != 0.0f) {
            scale = __fdiv_rn(edge, q0);
            bias = edge;
        }
        /* Codes packed LSB first: code i at bits [i*bits, i*bits + bits) of the group's words. */
        uint32_t *out = codes + g * words;
        uint64_t acc = 0;
        int n_acc = 0, wi = 0;
        for (int i = 0; i < group; i += 8) {
            float w[8];
            cu_load8(v + i, w);
#pragma unroll
            for (int j = 0; j < 8; j++) {
                float c = rintf(__fdiv_rn(__fsub_rn(cu_round_to_type(w[j], scale_type), bias), scale));
                c = c < 0.0f ? 0.0f : c > n_bins ? n_bins : c;
                acc |= (uint64_t)(uint32_t)c << n_acc;
                n_acc += bits;
                if (n_acc >= 32) {
                    out[wi++] = (uint32_t)acc;
                    acc >>= 32;
                    n_acc -= 32;
                }
            }
        }
        cu_store_scalar(scales, scale_type, g, scale);
        cu_store_scalar(biases, scale_type, g, bias);
    }
}

glmoe_status cuda_affine_quantize_bf16(cudaStream_t stream, const __nv_bfloat16 *src, int64_t rows, int64_t cols,
                                       const gm_affine *q, uint32_t *codes, void *scales, void *biases, gm_err *err) {
    if (!gm_affine_legal(q->bits, q->group) || cols % q->group != 0 || !cu_aligned(src, 16) || !cu_aligned(codes, 4))
        return gm_fail(err, GLMOE_E_ARG, "cuda: cannot quantize a [%lld, %lld] weight to q%d g%d", (long long)rows,
                       (long long)cols, (int)q->bits, (int)q->group);
    const int64_t n_groups = rows * (cols / q->group);
    const int threads = 256;
    unsigned blocks = cu_blocks(n_groups, threads);
    if (blocks > 65536u) blocks = 65536u; /* grid-stride beyond: each thread takes several groups */
    affine_quantize_kernel<<<blocks, threads, 0, stream>>>(src, n_groups, q->group, q->bits, (int)q->scale_type, codes,
                                                           scales, biases);
    CU_LAUNCHED();
    return GLMOE_OK;
}
