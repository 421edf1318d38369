/*
 * vocab.h — every token string the tokenizer knows, and what each id decodes to.
 *
 * Two views over one string arena:
 *   - strings: a hash set of distinct token strings (model.vocab keys and added-token contents).
 *     Each entry says which model id and which added-token id carry that string, so the BPE
 *     loader can ask "is this in model.vocab" (merges must only use model tokens) while
 *     token_to_id answers as Hugging Face does (added tokens first, then the model).
 *   - ids: for each id in [0, n_ids) the string id_to_token returns, the bytes decoding produces
 *     (after the ByteLevel decoder's mapping), and flags. Ids that nothing defines are holes:
 *     id_to_token gives NULL and decoding refuses them.
 *
 * Offsets are 32-bit: a tokenizer.json whose strings exceed 4 GiB is refused at load.
 * Tested through tests/unit/test_tokenizer.c (lookups, decoding) and the loader tests.
 */
#ifndef GLMOE_TOKENIZER_VOCAB_H
#define GLMOE_TOKENIZER_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_buf.h"

enum {
    GM_TOKID_PRESENT = 1 << 0, /* some string has this id                                     */
    GM_TOKID_ADDED = 1 << 1,   /* an added token (tokenizer.json added_tokens) has this id      */
    GM_TOKID_SPECIAL = 1 << 2, /* that added token is marked "special": true                    */
    GM_TOKID_SKIP = 1 << 3,    /* dropped by decode(skip_special): its decode string is the
                                  content of a special added token (HF compares strings)        */
};

typedef struct gm_vocab_entry {
    uint32_t off, len; /* the string, in the arena                 */
    int32_t model_id;  /* id in model.vocab, or -1                  */
    int32_t added_id;  /* id of the added token with this content, or -1 */
    bool special;      /* an added token with this content is special */
} gm_vocab_entry;

typedef struct gm_vocab_id {
    uint32_t text_off, text_len; /* id_to_token                              */
    uint32_t dec_off, dec_len;   /* decode bytes (ByteLevel-mapped or raw)   */
    uint8_t flags;               /* GM_TOKID_*                               */
} gm_vocab_id;

typedef struct gm_vocab {
    char *arena;
    size_t arena_n, arena_cap;
    gm_vocab_entry *entries;
    size_t n_entries, cap_entries;
    uint64_t *slots; /* high 32 bits of the hash << 32 | (entry index + 1); 0 = empty. The hash
                        bits let most probes skip the string compare. */
    size_t mask;
    gm_vocab_id *ids;
    int32_t n_ids;
} gm_vocab;

/* Prepares an empty table expecting about `expected` strings and `arena_bytes` of text. */
bool gm_vocab_init(gm_vocab *v, size_t expected, size_t arena_bytes);
void gm_vocab_free(gm_vocab *v);

/* Appends bytes to the arena; *off receives where they start. False when out of memory or past
 * 4 GiB. The pointer v->arena may move: keep offsets, not pointers. */
bool gm_vocab_arena_add(gm_vocab *v, const void *s, size_t n, uint32_t *off);

/* Index of the entry for s[0..n), or -1. */
int64_t gm_vocab_find(const gm_vocab *v, const void *s, size_t n);

/* Many lookups at once: out[i] = gm_vocab_find(keys[i]). The loader looks up ~450k strings in a
 * table far larger than the caches; issuing prefetches several keys ahead hides most of the
 * memory latency (about 3x faster than one lookup after another). */
typedef struct gm_vocab_key {
    const char *s;
    size_t n;
} gm_vocab_key;
void gm_vocab_find_many(const gm_vocab *v, const gm_vocab_key *keys, size_t n, int64_t *out);

/* Index of the entry whose string is arena[off, off+n): found, or created (with no ids). The
 * bytes must already be in the arena (gm_vocab_arena_add). *created tells which. -1 when out of
 * memory. */
int64_t gm_vocab_intern(gm_vocab *v, uint32_t off, uint32_t n, bool *created);

/* gm_vocab_intern for n strings in order, with prefetching (see gm_vocab_find_many). out[i] is
 * the new entry's index, or -2 - index when the string was already there. Returns -1 when out of
 * memory, else 0. */
int64_t gm_vocab_intern_many(gm_vocab *v, const uint32_t *off, const uint32_t *len, size_t n, int64_t *out);

/* Makes room for n strings in all (avoids rehashing while interning them). */
bool gm_vocab_reserve(gm_vocab *v, size_t n);

/* Sizes v->ids for ids [0, n_ids), all holes. */
bool gm_vocab_set_n_ids(gm_vocab *v, int32_t n_ids);

/* The arena as a growable buffer, so a parser can decode strings straight into it; hand it back
 * with gm_vocab_arena_commit before any other call on v. */
static inline gm_tok_bytes gm_vocab_arena_view(const gm_vocab *v) {
    return (gm_tok_bytes){v->arena, v->arena_n, v->arena_cap};
}
static inline void gm_vocab_arena_commit(gm_vocab *v, gm_tok_bytes b) {
    v->arena = b.p, v->arena_n = b.n, v->arena_cap = b.cap;
}

static inline const char *gm_vocab_str(const gm_vocab *v, uint32_t off) { return v->arena + off; }

#endif
