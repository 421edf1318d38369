/*
 * dtype.h — the element types glmoe reads from checkpoints, and scalar conversions to float.
 * Conversions go through memcpy so that unaligned sources are fine.
 */
#ifndef GLMOE_UTIL_DTYPE_H
#define GLMOE_UTIL_DTYPE_H

#include <stdint.h>
#include <string.h>

static inline float gm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round to nearest even; NaN stays NaN. */
static inline uint16_t gm_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Round to nearest even, with subnormals, overflow to infinity; NaN stays NaN. */
static inline uint16_t gm_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00u;                     /* NaN */
    if (a >= 0x477ff000u) return sign | 0x7c00u;                    /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                          /* below 2^-14: subnormal */
        if (a < 0x33000000u) return sign;                           /* below half the smallest */
        const uint32_t man = (a & 0x7fffffu) | 0x800000u;
        const int shift = 126 - (int)(a >> 23);                     /* 14..24 */
        uint32_t q = man >> shift, rem = man & ((1u << shift) - 1u), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return sign | (uint16_t)q;
    }
    uint32_t v = a - 0x38000000u;                                   /* rebias 127 -> 15 */
    v += 0xfffu + ((v >> 13) & 1u);
    return sign | (uint16_t)(v >> 13);
}

static inline float gm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) { man <<= 1; exp--; }
            u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
