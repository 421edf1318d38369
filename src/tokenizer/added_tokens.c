/* added_tokens.c — the added-token automata and HF's find_matches (see added_tokens.h). */
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

/* ---- the automaton -------------------------------------------------------------------------- */

static void automaton_free(gm_added_automaton *t) {
    free(t->edge_start);
    free(t->edge_byte);
    free(t->edge_child);
    free(t->fail);
    free(t->best);
    memset(t, 0, sizeof *t);
}

/* The child of `node` on byte c, or 0 (the root is never a child). */
static inline uint32_t step(const gm_added_automaton *t, uint32_t node, uint8_t c) {
    if (node == 0) return t->root_next[c];
    uint32_t lo = t->edge_start[node], hi = t->edge_start[node + 1], end = hi;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (t->edge_byte[mid] < c) lo = mid + 1;
        else hi = mid;
    }
    return (lo < end && t->edge_byte[lo] == c) ? t->edge_child[lo] : 0;
}

/* Builds the automaton of the tokens whose `normalized` flag equals norm_pass: the trie of the
 * reversed patterns (first-child/next-sibling while it grows), laid out with each node's edges
 * sorted by byte, then the failure links and `best` in breadth-first order. */
static glmoe_status automaton_build(gm_added_automaton *t, const gm_added *a, bool norm_pass, gm_err *err) {
    memset(t, 0, sizeof *t);
    size_t cap = 1;
    for (size_t i = 0; i < a->n; i++)
        if (a->tokens[i].normalized == norm_pass) cap += a->tokens[i].pattern_len;
    if (cap > UINT32_MAX) return gm_fail(err, GLMOE_E_UNSUPPORTED, "added_tokens: the patterns total over 4 GiB");
    uint8_t *tbyte = malloc(cap);
    int32_t *tchild = malloc(cap * sizeof *tchild), *tsib = malloc(cap * sizeof *tsib), *term = malloc(cap * sizeof *term);
    uint32_t *queue = NULL;
    glmoe_status st = GLMOE_OK;
    if (!tbyte || !tchild || !tsib || !term) goto nomem;
    size_t n_nodes = 1;
    tchild[0] = tsib[0] = term[0] = -1;
    for (size_t i = 0; i < a->n; i++) {
        const gm_added_token *tok = &a->tokens[i];
        if (tok->normalized != norm_pass || tok->pattern_len == 0) continue;
        int32_t node = 0;
        for (size_t k = tok->pattern_len; k-- > 0;) { /* the pattern read backwards */
            uint8_t c = (uint8_t)tok->pattern[k];
            int32_t ch = tchild[node];
            while (ch >= 0 && tbyte[ch] != c) ch = tsib[ch];
            if (ch < 0) {
                ch = (int32_t)n_nodes++;
                tbyte[ch] = c;
                tchild[ch] = term[ch] = -1;
                tsib[ch] = tchild[node];
                tchild[node] = ch;
            }
            node = ch;
        }
        if (term[node] >= 0) {
            const gm_added_token *o = &a->tokens[term[node]];
            st = gm_fail(err, GLMOE_E_FORMAT, "added_tokens: \"%.*s\" (id %d) and \"%.*s\" (id %d) match the same text",
                         (int)o->content_len, o->content, o->id, (int)tok->content_len, tok->content, tok->id);
            goto done;
        }
        term[node] = (int32_t)i;
    }
    t->n_nodes = n_nodes;
    t->edge_start = malloc((n_nodes + 1) * sizeof *t->edge_start);
    t->edge_byte = malloc(n_nodes);
    t->edge_child = malloc(n_nodes * sizeof *t->edge_child);
    t->fail = malloc(n_nodes * sizeof *t->fail);
    t->best = malloc(n_nodes * sizeof *t->best);
    queue = malloc(n_nodes * sizeof *queue);
    if (!t->edge_start || !t->edge_byte || !t->edge_child || !t->fail || !t->best || !queue) goto nomem;
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
    for (uint32_t k = t->edge_start[0]; k < t->edge_start[1]; k++) t->root_next[t->edge_byte[k]] = t->edge_child[k];

    /* Failure links, parents before children: fail(v) for v = child(u, c) is the deepest node
     * reached by stepping c from the failure chain of u, as in Aho and Corasick (1975). best(v) is
     * v's own token when a pattern ends at v, else best(fail(v)): the longest pattern that is a
     * suffix of v's string, i.e. (the trie being reversed) the longest that starts at the current
     * text position. */
    size_t head = 0, tail = 0;
    t->fail[0] = 0;
    t->best[0] = -1;
    queue[tail++] = 0;
    while (head < tail) {
        uint32_t u = queue[head++];
        for (uint32_t k = t->edge_start[u]; k < t->edge_start[u + 1]; k++) {
            uint32_t v = t->edge_child[k], f = 0;
            uint8_t c = t->edge_byte[k];
            if (u != 0) {
                f = t->fail[u];
                while (f != 0 && step(t, f, c) == 0) f = t->fail[f];
                f = step(t, f, c);
            }
            t->fail[v] = f;
            t->best[v] = term[v] >= 0 ? term[v] : t->best[f];
            queue[tail++] = v;
        }
    }
    goto done;
nomem:
    st = gm_fail(err, GLMOE_E_NOMEM, "added_tokens: out of memory");
done:
    free(tbyte);
    free(tchild);
    free(tsib);
    free(term);
    free(queue);
    if (st != GLMOE_OK) automaton_free(t);
    return st;
}

/* Records, from the end of s[0..n) backwards, every position where some pattern starts and the
 * longest pattern there. hits[] comes out in decreasing position. */
static bool find_hits(const gm_added_automaton *t, const uint8_t *s, size_t n, gm_added_splits *out) {
    out->n_hits = 0;
    uint32_t q = 0;
    for (size_t i = n; i-- > 0;) {
        uint8_t c = s[i];
        uint32_t next;
        while ((next = step(t, q, c)) == 0 && q != 0) q = t->fail[q];
        q = next;
        if (t->best[q] < 0) continue;
        if (out->n_hits == out->cap_hits &&
            !gm_tok_grow((void **)&out->hits, &out->cap_hits, out->n_hits, 1, sizeof *out->hits))
            return false;
        out->hits[out->n_hits++] = (gm_added_hit){i, t->best[q]};
    }
    return true;
}

glmoe_status gm_added_build(gm_added *a, gm_err *err) {
    glmoe_status st = automaton_build(&a->raw, a, false, err);
    if (st == GLMOE_OK) st = automaton_build(&a->norm, a, true, err);
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
    automaton_free(&a->raw);
    automaton_free(&a->norm);
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
    const gm_added_automaton *t = norm_pass ? &a->norm : &a->raw;
    if (t->n_nodes > 1 && !find_hits(t, s, n, out)) goto nomem;
    size_t start_offset = 0, pos = 0;
    /* the hits in increasing position: take the first one at or after the end of the last match */
    for (size_t h = t->n_nodes > 1 ? out->n_hits : 0; h-- > 0;) {
        if (out->hits[h].start < pos) continue;
        int32_t ti = out->hits[h].token;
        const gm_added_token *tok = &a->tokens[ti];
        size_t start = out->hits[h].start, stop = start + tok->pattern_len;
        pos = stop; /* the automaton moves past every match, used or not */
        if (!parse_special && tok->special) continue;
        if (tok->single_word) {
            bool start_space = start == 0 || !is_word_char_at(a, s, n, gm_utf8_prev(s, start), region);
            bool stop_space = stop == n || !is_word_char_at(a, s, n, stop, region);
            if (!stop_space || !start_space) continue;
        }
        if (tok->lstrip) {
            /* back over the whitespace before the token, but not past the last match: HF takes
             * max(start of the run, start_offset), and stopping there keeps this linear */
            size_t ns = start;
            while (ns > start_offset) {
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
