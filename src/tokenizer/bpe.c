/* bpe.c — byte-level BPE merges, the word cache, and the GPT-2 byte alphabet (see bpe.h). */
#include "tokenizer/bpe.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/utf8.h"

/* ---- the byte-level alphabet ----------------------------------------------------------------- */

/* GPT-2 encoder.py bytes_to_unicode: printable Latin-1 bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF)
 * stand for themselves; the other 68 bytes, in increasing order, get U+0100, U+0101, ... */
static bool byte_is_printable(int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 other bytes are 0..32, 127..160 and 173, so the k-th of them (k = cp - 256) has a closed
 * form; checked against the definition in tests/unit/test_tokenizer_parts.c. */
int32_t gm_byte_level_char(uint8_t b) {
    if (byte_is_printable(b)) return b;
    if (b <= 32) return 256 + b;
    if (b >= 127 && b <= 160) return 256 + 33 + (b - 127);
    return 256 + 67; /* 173, the soft hyphen */
}

int gm_byte_level_byte(int32_t cp) {
    if (cp >= 0 && cp < 256) return byte_is_printable(cp) ? cp : -1;
    int32_t k = cp - 256;
    if (k < 0 || k > 67) return -1;
    if (k <= 32) return k;
    if (k <= 66) return 127 + (k - 33);
    return 173;
}

/* ---- merge map ----------------------------------------------------------------------------- */

bool gm_pair_map_init(gm_pair_map *m, size_t expected) {
    size_t n = 1024;
    while (n < expected + expected / 2 + 1) n *= 2;
    m->slots = malloc(n * sizeof *m->slots);
    if (!m->slots) return false;
    for (size_t i = 0; i < n; i++) m->slots[i].key = UINT64_MAX;
    m->mask = n - 1;
    m->n = 0;
    return true;
}

void gm_pair_map_free(gm_pair_map *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

void gm_pair_map_put(gm_pair_map *m, int32_t left, int32_t right, int32_t rank, int32_t merged) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t i = gm_hash_u64(key) & m->mask;
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != key) i = (i + 1) & m->mask;
    if (m->slots[i].key == UINT64_MAX) m->n++;
    m->slots[i] = (gm_pair_slot){key, rank, merged};
}

/* ---- model --------------------------------------------------------------------------------- */

bool gm_bpe_init(gm_bpe *b) {
    memset(b, 0, sizeof *b);
    b->unk_id = -1;
    for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
    b->use_cache = true;
    b->slots = calloc(GM_BPE_CACHE_SLOTS, sizeof *b->slots);
    b->cache_keys = malloc((size_t)GM_BPE_CACHE_SLOTS * 16);
    b->cache_ids = malloc((size_t)GM_BPE_CACHE_SLOTS * 8 * sizeof(int32_t));
    return b->slots && b->cache_keys && b->cache_ids;
}

void gm_bpe_free(gm_bpe *b) {
    gm_pair_map_free(&b->merges);
    free(b->sym);
    free(b->rank);
    free(b->merged);
    free(b->prev);
    free(b->next);
    free(b->heap);
    gm_tok_bytes_free(&b->mapped);
    free(b->slots);
    free(b->cache_keys);
    free(b->cache_ids);
    memset(b, 0, sizeof *b);
}

static bool scratch_reserve(gm_bpe *b, size_t n) {
    if (n <= b->scratch_cap) return true;
    if (n > SIZE_MAX / 2 / sizeof(int32_t)) return false;
    size_t cap = b->scratch_cap ? b->scratch_cap : 64;
    while (cap < n) cap *= 2;
    int32_t **arrays[] = {&b->sym, &b->rank, &b->merged, &b->prev, &b->next};
    for (size_t i = 0; i < sizeof arrays / sizeof *arrays; i++) {
        int32_t *p = realloc(*arrays[i], cap * sizeof(int32_t));
        if (!p) return false;
        *arrays[i] = p;
    }
    b->scratch_cap = cap;
    return true;
}

static inline void pair_rank(const gm_bpe *b, int32_t l, int32_t r, int32_t *rank, int32_t *merged) {
    const gm_pair_slot *s = gm_pair_map_get(&b->merges, l, r);
    *rank = s ? s->rank : INT32_MAX;
    *merged = s ? s->merged : -1;
}

/* Short pieces: keep the rank of every adjacent pair, merge the lowest (leftmost on ties), and
 * refresh only the two pairs that touch the merged symbol. */
static size_t merge_scan(gm_bpe *b, int32_t *sym, size_t n) {
    int32_t *rank = b->rank, *merged = b->merged;
    for (size_t i = 0; i + 1 < n; i++) pair_rank(b, sym[i], sym[i + 1], &rank[i], &merged[i]);
    while (n > 1) {
        int32_t best = INT32_MAX;
        size_t bi = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if (rank[i] < best) best = rank[i], bi = i;
        if (best == INT32_MAX) break;
        sym[bi] = merged[bi];
        /* drop symbol bi+1 and the pair that started at it (plain loops: these are a few
         * elements, and a memmove call per merge costs more than the move) */
        for (size_t i = bi + 1; i + 1 < n; i++) sym[i] = sym[i + 1];
        for (size_t i = bi + 1; i + 2 < n; i++) rank[i] = rank[i + 1], merged[i] = merged[i + 1];
        n--;
        if (bi > 0) pair_rank(b, sym[bi - 1], sym[bi], &rank[bi - 1], &merged[bi - 1]);
        if (bi + 1 < n) pair_rank(b, sym[bi], sym[bi + 1], &rank[bi], &merged[bi]);
    }
    return n;
}

static inline bool heap_less(const gm_bpe_heap_item *a, const gm_bpe_heap_item *c) {
    return a->rank != c->rank ? a->rank < c->rank : a->pos < c->pos;
}

static bool heap_push(gm_bpe *b, size_t *len, gm_bpe_heap_item it) {
    if (*len == b->heap_cap && !gm_tok_grow((void **)&b->heap, &b->heap_cap, *len, 1, sizeof *b->heap)) return false;
    gm_bpe_heap_item *h = b->heap;
    size_t i = (*len)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&it, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = it;
    return true;
}

static gm_bpe_heap_item heap_pop(gm_bpe *b, size_t *len) {
    gm_bpe_heap_item *h = b->heap, top = h[0], last = h[--*len];
    size_t i = 0, n = *len;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(&h[c + 1], &h[c])) c++;
        if (!heap_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (n) h[i] = last;
    return top;
}

/* Long pieces: HF's merge_all. Symbols form a linked list; the queue holds candidate merges by
 * (rank, position). An entry is stale when its left symbol was merged away or the pair at its
 * position no longer produces the same token (the concatenation only grows, so a changed pair
 * always yields a different token). */
static size_t merge_heap(gm_bpe *b, int32_t *sym, size_t n) {
    int32_t *prev = b->prev, *next = b->next;
    size_t hl = 0;
    for (size_t i = 0; i < n; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t r, m;
        pair_rank(b, sym[i], sym[i + 1], &r, &m);
        if (m >= 0 && !heap_push(b, &hl, (gm_bpe_heap_item){r, (int32_t)i, m})) return (size_t)-1;
    }
    while (hl) {
        gm_bpe_heap_item top = heap_pop(b, &hl);
        int32_t p = top.pos;
        if (sym[p] < 0 || next[p] < 0) continue;
        int32_t q = next[p];
        const gm_pair_slot *s = gm_pair_map_get(&b->merges, sym[p], sym[q]);
        if (!s || s->merged != top.merged) continue;
        sym[p] = top.merged;
        sym[q] = -1;
        next[p] = next[q];
        if (next[q] >= 0) prev[next[q]] = p;
        int32_t r, m;
        if (prev[p] >= 0) {
            pair_rank(b, sym[prev[p]], sym[p], &r, &m);
            if (m >= 0 && !heap_push(b, &hl, (gm_bpe_heap_item){r, prev[p], m})) return (size_t)-1;
        }
        if (next[p] >= 0) {
            pair_rank(b, sym[p], sym[next[p]], &r, &m);
            if (m >= 0 && !heap_push(b, &hl, (gm_bpe_heap_item){r, p, m})) return (size_t)-1;
        }
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) sym[k++] = sym[i];
    return k;
}

size_t gm_bpe_merge(gm_bpe *b, int32_t *sym, size_t n, bool use_heap) {
    if (n < 2) return n;
    if (!scratch_reserve(b, n)) return (size_t)-1;
    return (use_heap || n > GM_BPE_SMALL) ? merge_heap(b, sym, n) : merge_scan(b, sym, n);
}

/* ---- cache --------------------------------------------------------------------------------- */

#define CACHE_KEYS_CAP ((size_t)GM_BPE_CACHE_SLOTS * 16)
#define CACHE_IDS_CAP ((size_t)GM_BPE_CACHE_SLOTS * 8)

static const gm_bpe_cache_slot *cache_get(const gm_bpe *b, const uint8_t *w, size_t n, uint64_t h) {
    for (size_t i = h & (GM_BPE_CACHE_SLOTS - 1);; i = (i + 1) & (GM_BPE_CACHE_SLOTS - 1)) {
        const gm_bpe_cache_slot *s = &b->slots[i];
        if (!s->hash) return NULL;
        if (s->hash == h && s->key_len == n && memcmp(b->cache_keys + s->key_off, w, n) == 0) return s;
    }
}

static void cache_put(gm_bpe *b, const uint8_t *w, size_t n, uint64_t h, const int32_t *ids, size_t n_ids) {
    if (n_ids > UINT16_MAX) return;
    /* A full cache is emptied rather than evicted piecemeal: simple, and text that repeats keeps
     * refilling it with its own common words. */
    if (b->cache_count >= GM_BPE_CACHE_SLOTS / 2 || b->cache_keys_n + n > CACHE_KEYS_CAP ||
        b->cache_ids_n + n_ids > CACHE_IDS_CAP) {
        memset(b->slots, 0, GM_BPE_CACHE_SLOTS * sizeof *b->slots);
        b->cache_count = b->cache_keys_n = b->cache_ids_n = 0;
    }
    size_t i = h & (GM_BPE_CACHE_SLOTS - 1);
    while (b->slots[i].hash) i = (i + 1) & (GM_BPE_CACHE_SLOTS - 1);
    memcpy(b->cache_keys + b->cache_keys_n, w, n);
    memcpy(b->cache_ids + b->cache_ids_n, ids, n_ids * sizeof *ids);
    b->slots[i] = (gm_bpe_cache_slot){h, (uint32_t)b->cache_keys_n, (uint32_t)b->cache_ids_n, (uint16_t)n, (uint16_t)n_ids};
    b->cache_keys_n += n;
    b->cache_ids_n += n_ids;
    b->cache_count++;
}

/* ---- one piece ----------------------------------------------------------------------------- */

/* ignore_merges: the piece, spelled in the byte-level alphabet, looked up in model.vocab. */
static int32_t whole_piece_id(gm_bpe *b, const uint8_t *w, size_t n) {
    b->mapped.n = 0;
    if (!gm_tok_bytes_reserve(&b->mapped, 2 * n)) return -2;
    for (size_t i = 0; i < n; i++) {
        uint8_t u[4];
        int k = gm_utf8_encode(gm_byte_level_char(w[i]), u);
        memcpy(b->mapped.p + b->mapped.n, u, (size_t)k);
        b->mapped.n += (size_t)k;
    }
    int64_t e = gm_vocab_find(b->vocab, b->mapped.p, b->mapped.n);
    return e >= 0 ? b->vocab->entries[e].model_id : -1;
}

glmoe_status gm_bpe_encode(gm_bpe *b, const uint8_t *w, size_t n, gm_tok_ids *out, gm_err *err) {
    uint64_t h = 0;
    bool cacheable = b->use_cache && n <= GM_BPE_CACHE_KEY;
    if (cacheable) {
        h = gm_hash_bytes(w, n) | 1;
        const gm_bpe_cache_slot *s = cache_get(b, w, n, h);
        if (s) {
            if (!gm_tok_ids_reserve(out, s->n_ids)) goto nomem;
            memcpy(out->ids + out->n, b->cache_ids + s->ids_off, s->n_ids * sizeof(int32_t));
            out->n += s->n_ids;
            return GLMOE_OK;
        }
    }
    if (!scratch_reserve(b, n)) goto nomem;
    int32_t *sym = b->sym;
    size_t k = 0;
    int32_t whole = b->ignore_merges ? whole_piece_id(b, w, n) : -1;
    if (whole == -2) goto nomem;
    if (whole >= 0) {
        sym[k++] = whole;
    } else {
        /* initial symbols: one per byte; bytes missing from the vocabulary become unk (fused
         * into one when fuse_unk) or, with no unk_token, vanish, as in HF's merge_word */
        bool pending_unk = false;
        for (size_t i = 0; i < n; i++) {
            int32_t id = b->byte_id[w[i]];
            if (id >= 0) {
                if (pending_unk) sym[k++] = b->unk_id, pending_unk = false;
                sym[k++] = id;
            } else if (b->unk_id >= 0) {
                if (pending_unk && !b->fuse_unk) sym[k++] = b->unk_id;
                pending_unk = true;
            }
        }
        if (pending_unk) sym[k++] = b->unk_id;
        k = gm_bpe_merge(b, sym, k, false);
        if (k == (size_t)-1) goto nomem;
        sym = b->sym; /* gm_bpe_merge may not move it, but keep the invariant obvious */
    }
    if (!gm_tok_ids_reserve(out, k)) goto nomem;
    memcpy(out->ids + out->n, sym, k * sizeof *sym);
    out->n += k;
    if (cacheable) cache_put(b, w, n, h, sym, k);
    return GLMOE_OK;
nomem:
    return gm_fail(err, GLMOE_E_NOMEM, "bpe: out of memory");
}
