/*
 * tok_hash.h — hashing for the tokenizer's tables: a byte-string hash (vocabulary, word cache)
 * and an open-addressing map from a pair of token ids to a merge (rank, merged id).
 *
 * The pair map is the BPE inner loop's only lookup, so it is a flat array of 16-byte slots with
 * linear probing, sized to at most ~60% load when it is built and never resized afterwards.
 * Keys are (left id << 32 | right id); ids are non-negative int32, so the all-ones key can mark
 * an empty slot.
 *
 * Tested through the BPE tests in tests/unit/test_tokenizer_parts.c and the parity tests.
 */
#ifndef GLMOE_TOKENIZER_TOK_HASH_H
#define GLMOE_TOKENIZER_TOK_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A 64-bit hash of n bytes: 8-byte words mixed with multiply-xorshift (splitmix64 finaliser).
 * Not cryptographic; the tables only need an even spread. */
static inline uint64_t gm_hash_bytes(const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    h ^= h >> 29;
    h *= 0x94D049BB133111EBull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t gm_hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xFF51AFD7ED558CCDull;
    x ^= x >> 33;
    return x;
}

/* ---- merge map: (left, right) -> (rank, merged id) ----------------------------------------- */

typedef struct gm_pair_slot {
    uint64_t key;   /* left << 32 | right; UINT64_MAX = empty */
    int32_t rank;   /* position in model.merges: lower merges first */
    int32_t merged; /* id of the concatenated token */
} gm_pair_slot;

typedef struct gm_pair_map {
    gm_pair_slot *slots;
    size_t mask; /* slot count - 1 (a power of two) */
    size_t n;
} gm_pair_map;

/* Allocates room for `expected` pairs. Returns false when out of memory. */
bool gm_pair_map_init(gm_pair_map *m, size_t expected);
void gm_pair_map_free(gm_pair_map *m);

/* Inserts or overwrites (Hugging Face keeps the last of duplicated merges, since it collects them
 * into a hash map). The map must have been sized for every insert. */
void gm_pair_map_put(gm_pair_map *m, int32_t left, int32_t right, int32_t rank, int32_t merged);

/* The merge of (left, right), or NULL when there is none. */
static inline const gm_pair_slot *gm_pair_map_get(const gm_pair_map *m, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t i = gm_hash_u64(key) & m->mask;
    for (;;) {
        const gm_pair_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == UINT64_MAX) return NULL;
        i = (i + 1) & m->mask;
    }
}

#endif
