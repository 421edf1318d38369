/* added_tokens.c — the added-token tries and HF's find_matches (see added_tokens.h). */
#include "tokenizer/added_tokens.h"

#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_buf.h"
#include "tokenizer/utf8.h"

bool gm_is_white_space(int32_t cp) {
    /* Unicode PropList.txt White_Space (unchanged since Unicode 6.3). */
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

/* ---- trie ---------------------------------------------------------------------------------- */

static void trie_free(gm_trie *t) {
    free(t->edge_start);
    free(t->edge_byte);
    free(t->edge_child);
    free(t->term);
    memset(t, 0, sizeof *t);
}

/* Builds the trie of the tokens whose `normalized` flag equals norm_pass. The construction uses a
 * first-child/next-sibling tree, then lays each node's edges out sorted by byte. */
static glmoe_status trie_build(gm_trie *t, const gm_added *a, bool norm_pass, gm_err *err) {
    memset(t, 0, sizeof *t);
    size_t cap = 1;
    for (size_t i = 0; i < a->n; i++)
        if (a->tokens[i].normalized == norm_pass) cap += a->tokens[i].pattern_len;
    uint8_t *tbyte = malloc(cap);
    int32_t *tchild = malloc(cap * sizeof *tchild), *tsib = malloc(cap * sizeof *tsib);
    t->term = malloc(cap * sizeof *t->term);
    glmoe_status st = GLMOE_OK;
    if (!tbyte || !tchild || !tsib || !t->term) {
        st = gm_fail(err, GLMOE_E_NOMEM, "added_tokens: out of memory");
        goto done;
    }
    size_t n_nodes = 1;
    tchild[0] = tsib[0] = -1;
    t->term[0] = -1;
    for (size_t i = 0; i < a->n; i++) {
        const gm_added_token *tok = &a->tokens[i];
        if (tok->normalized != norm_pass || tok->pattern_len == 0) continue;
        int32_t node = 0;
        for (size_t k = 0; k < tok->pattern_len; k++) {
            uint8_t c = (uint8_t)tok->pattern[k];
            int32_t ch = tchild[node];
            while (ch >= 0 && tbyte[ch] != c) ch = tsib[ch];
            if (ch < 0) {
                ch = (int32_t)n_nodes++;
                tbyte[ch] = c;
                tchild[ch] = -1;
                tsib[ch] = tchild[node];
                t->term[ch] = -1;
                tchild[node] = ch;
            }
            node = ch;
        }
        if (t->term[node] >= 0) {
            const gm_added_token *o = &a->tokens[t->term[node]];
            st = gm_fail(err, GLMOE_E_FORMAT, "added_tokens: \"%.*s\" (id %d) and \"%.*s\" (id %d) match the same text",
                         (int)o->content_len, o->content, o->id, (int)tok->content_len, tok->content, tok->id);
            goto done;
        }
        t->term[node] = (int32_t)i;
        t->first[(uint8_t)tok->pattern[0]] = true;
    }
    t->n_nodes = n_nodes;
    t->edge_start = malloc((n_nodes + 1) * sizeof *t->edge_start);
    t->edge_byte = malloc(n_nodes);
    t->edge_child = malloc(n_nodes * sizeof *t->edge_child);
    if (!t->edge_start || !t->edge_byte || !t->edge_child) {
        st = gm_fail(err, GLMOE_E_NOMEM, "added_tokens: out of memory");
        goto done;
    }
    uint32_t e = 0;
    for (size_t node = 0; node < n_nodes; node++) {
        t->edge_start[node] = e;
        uint32_t first = e;
        for (int32_t ch = tchild[node]; ch >= 0; ch = tsib[ch]) {
            /* insertion sort by byte: a node has at most 256 children */
            uint32_t j = e++;
            while (j > first && t->edge_byte[j - 1] > tbyte[ch]) {
                t->edge_byte[j] = t->edge_byte[j - 1];
                t->edge_child[j] = t->edge_child[j - 1];
                j--;
            }
            t->edge_byte[j] = tbyte[ch];
            t->edge_child[j] = (uint32_t)ch;
        }
    }
    t->edge_start[n_nodes] = e;
done:
    free(tbyte);
    free(tchild);
    free(tsib);
    if (st != GLMOE_OK) trie_free(t);
    return st;
}

static inline int64_t trie_step(const gm_trie *t, uint32_t node, uint8_t c) {
    uint32_t lo = t->edge_start[node], hi = t->edge_start[node + 1];
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->edge_byte[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return (lo < t->edge_start[node + 1] && t->edge_byte[lo] == c) ? (int64_t)t->edge_child[lo] : -1;
}

/* Leftmost-longest match in s[from..n): the first position where some pattern starts, and the
 * longest pattern there. */
static bool trie_find(const gm_trie *t, const uint8_t *s, size_t n, size_t from, size_t *ms, size_t *me, int32_t *tok) {
    if (t->n_nodes <= 1) return false;
    for (size_t pos = from; pos < n; pos++) {
        if (!t->first[s[pos]]) continue;
        uint32_t node = 0;
        int32_t best = -1;
        size_t best_end = 0;
        for (size_t i = pos; i < n; i++) {
            int64_t ch = trie_step(t, node, s[i]);
            if (ch < 0) break;
            node = (uint32_t)ch;
            if (t->term[node] >= 0) best = t->term[node], best_end = i + 1;
        }
        if (best >= 0) {
            *ms = pos, *me = best_end, *tok = best;
            return true;
        }
    }
    return false;
}

glmoe_status gm_added_build(gm_added *a, gm_err *err) {
    glmoe_status st = trie_build(&a->raw, a, false, err);
    if (st == GLMOE_OK) st = trie_build(&a->norm, a, true, err);
    if (st != GLMOE_OK) return st;
    for (size_t i = 0; i < a->n; i++) {
        if (!a->tokens[i].single_word) continue;
        /* Rust regex's Unicode \w (UTS #18 annex C), which HF uses for single_word. */
        if (!gm_tok_regex_internal(&a->word_char, "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]"))
            return gm_fail(err, GLMOE_E_UNSUPPORTED, "added_tokens: cannot compile the word-character class");
        break;
    }
    return GLMOE_OK;
}

void gm_added_free(gm_added *a) {
    for (size_t i = 0; i < a->n; i++) {
        free(a->tokens[i].content);
        free(a->tokens[i].pattern);
    }
    free(a->tokens);
    trie_free(&a->raw);
    trie_free(&a->norm);
    gm_tok_regex_free(&a->word_char);
    memset(a, 0, sizeof *a);
}

/* ---- find_matches -------------------------------------------------------------------------- */

static bool is_word_char_at(const gm_added *a, const uint8_t *s, size_t n, size_t at, OnigRegion *region) {
    return onig_match(a->word_char.re, s, s + n, s + at, region, ONIG_OPTION_NONE) > 0;
}

static bool push_split(gm_added_splits *out, size_t start, size_t end, int32_t token) {
    if (out->n == out->cap && !gm_tok_grow((void **)&out->v, &out->cap, out->n, 1, sizeof *out->v)) return false;
    out->v[out->n++] = (gm_added_split){start, end, token};
    return true;
}

glmoe_status gm_added_split_text(const gm_added *a, bool norm_pass, const uint8_t *s, size_t n,
                                 bool parse_special, gm_added_splits *out, OnigRegion *region, gm_err *err) {
    out->n = 0;
    if (n == 0) return GLMOE_OK;
    const gm_trie *t = norm_pass ? &a->norm : &a->raw;
    size_t start_offset = 0, pos = 0, ms, me;
    int32_t ti;
    while (trie_find(t, s, n, pos, &ms, &me, &ti)) {
        pos = me; /* the automaton moves past every match, used or not */
        const gm_added_token *tok = &a->tokens[ti];
        size_t start = ms, stop = me;
        if (!parse_special && tok->special) continue;
        if (tok->single_word) {
            bool start_space = start == 0 || !is_word_char_at(a, s, n, gm_utf8_prev(s, start), region);
            bool stop_space = stop == n || !is_word_char_at(a, s, n, stop, region);
            if (!stop_space || !start_space) continue;
        }
        if (tok->lstrip) {
            /* start of the whitespace run that ends at `start`, but not before the last match */
            size_t ns = start;
            while (ns > 0) {
                size_t p = gm_utf8_prev(s, ns);
                int32_t cp;
                gm_utf8_next(s + p, &cp);
                if (!gm_is_white_space(cp)) break;
                ns = p;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (tok->rstrip) {
            while (stop < n) {
                int32_t cp;
                int k = gm_utf8_next(s + stop, &cp);
                if (!gm_is_white_space(cp)) break;
                stop += (size_t)k;
            }
        }
        if (start_offset < start && !push_split(out, start_offset, start, -1)) goto nomem;
        if (!push_split(out, start, stop, ti)) goto nomem;
        start_offset = stop;
    }
    if (start_offset != n && !push_split(out, start_offset, n, -1)) goto nomem;
    return GLMOE_OK;
nomem:
    return gm_fail(err, GLMOE_E_NOMEM, "added tokens: out of memory");
}
