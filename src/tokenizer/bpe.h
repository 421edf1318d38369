/*
 * bpe.h — byte-level BPE: one pre-tokenized piece (raw bytes) in, token ids out.
 *
 * The model is Hugging Face's BPE with the ByteLevel alphabet: every byte of the piece starts as
 * the vocabulary token of its GPT-2 "bytes_to_unicode" character, then the pair with the lowest
 * merge rank is merged, leftmost first, until no adjacent pair has a merge (HF models/bpe/word.rs
 * merge_all; its priority queue orders by rank, then position, which is what we do). Ranks and
 * merged ids come from model.merges in file order.
 *
 * We keep the vocabulary in raw bytes, not in the mapped alphabet: the mapping is a bijection
 * between bytes and 256 characters, so merging raw bytes is the same as merging mapped text.
 *
 * Options: ignore_merges (a piece that is itself a vocabulary token is emitted whole), unk_token
 * with fuse_unk (for bytes whose character is missing from the vocabulary; with no unk_token they
 * are dropped, as HF drops them). continuing_subword_prefix / end_of_word_suffix other than "",
 * byte_fallback and dropout are refused by the loader.
 *
 * Speed: pieces up to GM_BPE_SMALL bytes use an O(n^2) scan over cached pair ranks (fast for the
 * usual 2..15-byte words); longer pieces use a binary heap, O(n log n). Results of pieces up to
 * GM_BPE_CACHE_KEY bytes are cached (a bounded table, emptied when full); nothing allocates per
 * token once the scratch arrays have grown.
 *
 * Tested in tests/unit/test_tokenizer_parts.c (scan vs heap vs a naive reference on random words
 * and merge tables) and by the parity tests.
 */
#ifndef GLMOE_TOKENIZER_BPE_H
#define GLMOE_TOKENIZER_BPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_buf.h"
#include "tokenizer/tok_hash.h"
#include "tokenizer/vocab.h"
#include "util/error.h"

#define GM_BPE_SMALL 48
#define GM_BPE_CACHE_KEY 64
#define GM_BPE_CACHE_SLOTS (1u << 16)

/* GPT-2's bytes_to_unicode: the character that stands for byte b in byte-level vocabularies. */
int32_t gm_byte_level_char(uint8_t b);
/* The inverse: the byte for code point cp, or -1 when cp is not one of the 256 characters. */
int gm_byte_level_byte(int32_t cp);

typedef struct gm_bpe_cache_slot {
    uint64_t hash;    /* 0 = empty */
    uint32_t key_off; /* word bytes in key arena */
    uint32_t ids_off; /* ids in ids arena        */
    uint16_t key_len;
    uint16_t n_ids;
} gm_bpe_cache_slot;

typedef struct gm_bpe_heap_item {
    int32_t rank, pos, merged;
} gm_bpe_heap_item;

typedef struct gm_bpe {
    int32_t byte_id[256]; /* token of each byte's character, -1 when not in the vocabulary */
    int32_t unk_id;       /* -1: no unk_token                                            */
    bool fuse_unk;
    bool ignore_merges;
    gm_pair_map merges;
    const gm_vocab *vocab; /* for ignore_merges' whole-piece lookup                      */

    /* scratch, grown on demand (the encoder is used by one thread at a time) */
    int32_t *sym, *rank, *merged, *prev, *next;
    size_t scratch_cap;
    gm_bpe_heap_item *heap;
    size_t heap_cap;
    gm_tok_bytes mapped;

    /* word cache */
    gm_bpe_cache_slot *slots;
    uint8_t *cache_keys;
    int32_t *cache_ids;
    size_t cache_keys_n, cache_ids_n, cache_count;
    bool use_cache;
} gm_bpe;

/* Initialises everything but the merges and byte_id (set by the loader). */
bool gm_bpe_init(gm_bpe *b);
void gm_bpe_free(gm_bpe *b);

/* Sized for `expected` merges. */
bool gm_pair_map_init(gm_pair_map *m, size_t expected);

/* Appends the ids of piece w[0..n) (raw bytes, n > 0) to out. */
glmoe_status gm_bpe_encode(gm_bpe *b, const uint8_t *w, size_t n, gm_tok_ids *out, gm_err *err);

/* The merge loop alone, exposed for tests: merges sym[0..n) in place and returns the new count.
 * use_heap forces the heap path (otherwise chosen by length). Returns (size_t)-1 when out of
 * memory. */
size_t gm_bpe_merge(gm_bpe *b, int32_t *sym, size_t n, bool use_heap);

#endif
