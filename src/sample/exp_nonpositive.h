/*
 * exp_nonpositive.h — a branch-free exp(x) for x in [GM_EXP_MIN, 0], the range of the softmax
 * weights exp((z - max) / T) that the sampler computes over the whole vocabulary.
 *
 * Why not expf(): GCC vectorises a loop that calls expf() only under -ffast-math (through
 * glibc's libmvec), which glmoe does not use. This function is plain arithmetic, so the loop in
 * src/sample/sampler.c vectorises with AVX2 as it stands.
 *
 * Method: Cody-Waite reduction x = n ln2 + r with |r| <= ln2/2 (ln2 split in two so that n times
 * the first part is exact), then the degree-5 minimax polynomial of Cephes' expf for e^r, then a
 * scale by 2^n built in the exponent bits. For x >= GM_EXP_MIN, n >= -126, so 2^n and the result
 * are normal floats. Over every float in [-87, 0] the error is at most 0.98 ulp (glibc's expf:
 * 0.50; about 1.01 where the compiler contracts a * b + c into FMAs, as clang does), the function
 * is monotonic, and exp(0) is exactly 1. It relies on round-to-nearest (the default) for the
 * integer rounding trick.
 *
 * Tested by tests/unit/test_sampler.c (random and edge points against exp() in double,
 * monotonicity, exp(0) == 1).
 */
#ifndef GLMOE_SAMPLE_EXP_NONPOSITIVE_H
#define GLMOE_SAMPLE_EXP_NONPOSITIVE_H

#include <stdint.h>
#include <string.h>

/* Below this, exp() is subnormal in float32; callers treat such weights as 0. */
#define GM_EXP_MIN (-87.0f)

/* exp(x) for x in [GM_EXP_MIN, 0]; outside that range the result is meaningless. */
static inline float gm_exp_nonpositive(float x) {
    const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float n = (x * 1.44269504088896341f + round_magic) - round_magic;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * (r * r) + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return e * scale;
}

#endif
