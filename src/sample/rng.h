/*
 * rng.h — the pseudo-random generator behind sampling: xoshiro256** (Blackman & Vigna, 2018),
 * seeded by running splitmix64 over the user's 64-bit seed.
 *
 * Why these two: xoshiro256** is small (32 bytes of state), fast, passes BigCrush, and every value
 * of its output is reproducible across compilers and platforms because it uses only 64-bit integer
 * arithmetic. Its state must not be all zero; splitmix64 turns any seed, 0 included, into a
 * well-mixed non-zero state, which is the seeding its authors recommend.
 *
 * State lives in a gm_rng owned by its user (one per sampler); there is no global generator.
 * Tested through tests/unit/test_sampler.c (same seed -> same draws, frequencies match).
 */
#ifndef GLMOE_SAMPLE_RNG_H
#define GLMOE_SAMPLE_RNG_H

#include <stdint.h>

typedef struct gm_rng {
    uint64_t s[4];
} gm_rng;

/* splitmix64: advances *x and returns the next output. */
static inline uint64_t gm_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline void gm_rng_seed(gm_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = gm_splitmix64(&x);
}

static inline uint64_t gm_rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* xoshiro256**: the next 64 random bits. */
static inline uint64_t gm_rng_next(gm_rng *r) {
    uint64_t *s = r->s;
    const uint64_t result = gm_rotl64(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = gm_rotl64(s[3], 45);
    return result;
}

/* A uniform double in [0, 1) with 53 random bits (every value a multiple of 2^-53). */
static inline double gm_rng_uniform(gm_rng *r) { return (double)(gm_rng_next(r) >> 11) * 0x1.0p-53; }

#endif
