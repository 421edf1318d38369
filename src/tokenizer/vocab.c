/* vocab.c — the token string table (see vocab.h). */
#include "tokenizer/vocab.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_buf.h"
#include "tokenizer/tok_hash.h"

static size_t slots_for(size_t n) {
    size_t s = 1024;
    while (s < n + n / 2 + 1) s *= 2; /* load stays below 2/3 */
    return s;
}

bool gm_vocab_init(gm_vocab *v, size_t expected, size_t arena_bytes) {
    memset(v, 0, sizeof *v);
    size_t n_slots = slots_for(expected);
    v->slots = calloc(n_slots, sizeof *v->slots);
    v->mask = n_slots - 1;
    v->arena_cap = arena_bytes ? arena_bytes : 4096;
    v->arena = malloc(v->arena_cap);
    return v->slots && v->arena;
}

void gm_vocab_free(gm_vocab *v) {
    free(v->arena);
    free(v->entries);
    free(v->slots);
    free(v->ids);
    memset(v, 0, sizeof *v);
}

bool gm_vocab_arena_add(gm_vocab *v, const void *s, size_t n, uint32_t *off) {
    if (v->arena_n + n > UINT32_MAX) return false;
    if (!gm_tok_grow((void **)&v->arena, &v->arena_cap, v->arena_n, n, 1)) return false;
    if (n) memcpy(v->arena + v->arena_n, s, n);
    *off = (uint32_t)v->arena_n;
    v->arena_n += n;
    return true;
}

static inline int64_t find_hashed(const gm_vocab *v, const void *s, size_t n, uint64_t h) {
    uint64_t tag = h >> 32;
    for (size_t i = h & v->mask;; i = (i + 1) & v->mask) {
        uint64_t e = v->slots[i];
        if (!e) return -1;
        if ((e >> 32) != tag) continue;
        const gm_vocab_entry *en = &v->entries[(uint32_t)e - 1];
        if (en->len == n && memcmp(v->arena + en->off, s, n) == 0) return (uint32_t)e - 1;
    }
}

int64_t gm_vocab_find(const gm_vocab *v, const void *s, size_t n) { return find_hashed(v, s, n, gm_hash_bytes(s, n)); }

void gm_vocab_find_many(const gm_vocab *v, const gm_vocab_key *keys, size_t n, int64_t *out) {
    /* Four stages, D keys apart: hash and prefetch the slot; read the slot and prefetch the
     * entry; read the entry and prefetch its string; look up for real (all in cache by now). */
    enum { D = 12, RING = 64 };
    uint64_t h[RING];
    for (size_t i = 0; i < n + 3 * D; i++) {
        if (i < n) {
            h[i % RING] = gm_hash_bytes(keys[i].s, keys[i].n);
            __builtin_prefetch(&v->slots[h[i % RING] & v->mask]);
        }
        if (i >= D && i - D < n) {
            uint64_t e = v->slots[h[(i - D) % RING] & v->mask];
            if (e) __builtin_prefetch(&v->entries[(uint32_t)e - 1]);
        }
        if (i >= 2 * D && i - 2 * D < n) {
            uint64_t e = v->slots[h[(i - 2 * D) % RING] & v->mask];
            if (e) __builtin_prefetch(v->arena + v->entries[(uint32_t)e - 1].off);
        }
        if (i >= 3 * D && i - 3 * D < n) {
            size_t k = i - 3 * D;
            out[k] = find_hashed(v, keys[k].s, keys[k].n, h[k % RING]);
        }
    }
}

static bool rehash_to(gm_vocab *v, size_t n_slots) {
    size_t old_n = v->mask + 1;
    uint64_t *slots = calloc(n_slots, sizeof *slots);
    if (!slots) return false;
    for (size_t i = 0; i < old_n; i++) {
        uint64_t e = v->slots[i];
        if (!e) continue;
        const gm_vocab_entry *en = &v->entries[(uint32_t)e - 1];
        size_t j = gm_hash_bytes(v->arena + en->off, en->len) & (n_slots - 1);
        while (slots[j]) j = (j + 1) & (n_slots - 1);
        slots[j] = e;
    }
    free(v->slots);
    v->slots = slots;
    v->mask = n_slots - 1;
    return true;
}

static int64_t intern_hashed(gm_vocab *v, uint32_t off, uint32_t n, uint64_t h, bool *created) {
    *created = false;
    const char *s = v->arena + off;
    uint64_t tag = h >> 32;
    size_t i = h & v->mask;
    for (;; i = (i + 1) & v->mask) {
        uint64_t e = v->slots[i];
        if (!e) break;
        if ((e >> 32) != tag) continue;
        const gm_vocab_entry *en = &v->entries[(uint32_t)e - 1];
        if (en->len == n && memcmp(v->arena + en->off, s, n) == 0) return (uint32_t)e - 1;
    }
    if (v->n_entries >= UINT32_MAX - 1) return -1;
    if (!gm_tok_grow((void **)&v->entries, &v->cap_entries, v->n_entries, 1, sizeof *v->entries)) return -1;
    size_t idx = v->n_entries++;
    v->entries[idx] = (gm_vocab_entry){.off = off, .len = n, .model_id = -1, .added_id = -1};
    v->slots[i] = (tag << 32) | (idx + 1);
    *created = true;
    if (v->n_entries * 3 > (v->mask + 1) * 2 && !rehash_to(v, (v->mask + 1) * 2)) return -1;
    return (int64_t)idx;
}

int64_t gm_vocab_intern(gm_vocab *v, uint32_t off, uint32_t n, bool *created) {
    return intern_hashed(v, off, n, gm_hash_bytes(v->arena + off, n), created);
}

int64_t gm_vocab_intern_many(gm_vocab *v, const uint32_t *off, const uint32_t *len, size_t n, int64_t *out) {
    enum { D = 8, RING = 16 };
    uint64_t h[RING];
    for (size_t i = 0; i < n + D; i++) {
        if (i < n) {
            h[i % RING] = gm_hash_bytes(v->arena + off[i], len[i]);
            __builtin_prefetch(&v->slots[h[i % RING] & v->mask]);
        }
        if (i >= D) {
            size_t k = i - D;
            bool created;
            int64_t e = intern_hashed(v, off[k], len[k], h[k % RING], &created);
            if (e < 0) return -1;
            out[k] = created ? e : -2 - e;
        }
    }
    return 0;
}

bool gm_vocab_reserve(gm_vocab *v, size_t n) {
    size_t want = slots_for(n);
    return want <= v->mask + 1 || rehash_to(v, want);
}

bool gm_vocab_set_n_ids(gm_vocab *v, int32_t n_ids) {
    free(v->ids);
    v->ids = calloc(n_ids > 0 ? (size_t)n_ids : 1, sizeof *v->ids);
    v->n_ids = v->ids ? n_ids : 0;
    return v->ids != NULL;
}
