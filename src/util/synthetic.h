/*
 * synthetic.h — the values of synthetic (random) weights, for benchmarks without a checkpoint.
 *
 * Element i of a tensor with seed s is mean + std * u, u uniform in [-√3, √3) (unit variance),
 * from a counter-based generator (splitmix64 of s + i): any element can be made independently,
 * so a GPU fills a tensor in parallel and the CPU makes the same numbers. bf16 tensors store the
 * value rounded to nearest even, on both.
 */
#ifndef GLMOE_UTIL_SYNTHETIC_H
#define GLMOE_UTIL_SYNTHETIC_H

#include <stdint.h>

#ifdef __CUDACC__
#define GM_HOST_DEVICE __host__ __device__
#else
#define GM_HOST_DEVICE
#endif

static inline GM_HOST_DEVICE uint64_t gm_splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static inline GM_HOST_DEVICE float gm_synthetic_value(uint64_t seed, uint64_t i, float mean, float std) {
    /* 24 random bits -> [0, 1), exactly representable, so host and device agree bit for bit */
    float u01 = (float)(gm_splitmix64(seed + i) >> 40) * (1.0f / 16777216.0f);
    float u = 2.0f * u01 - 1.0f; /* exact */
#ifdef __CUDA_ARCH__
    /* no fused multiply-add, so that the device rounds as the host does */
    return __fadd_rn(mean, __fmul_rn(std, __fmul_rn(1.7320508f, u)));
#else
    volatile float scaled = std * (1.7320508f * u); /* kept apart: a fused multiply-add would round differently */
    return mean + scaled;
#endif
}

/* A tensor's seed from the model's seed and the tensor's name (FNV-1a). */
static inline uint64_t gm_synthetic_seed(uint64_t model_seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull ^ model_seed;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return gm_splitmix64(h);
}

#endif
