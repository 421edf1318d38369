/*
 * added_tokens.h — finding tokenizer.json's added tokens (special or not) inside input text.
 *
 * Hugging Face matches added tokens before anything else touches the text, in two passes:
 *   1. tokens with "normalized": false are found in the raw input;
 *   2. each remaining piece is normalized, and tokens with "normalized": true are found in it
 *      (their pattern is their content passed through the same normalizer).
 * Each pass is a leftmost-longest multi-pattern search, non-overlapping, left to right (HF: an
 * aho_corasick automaton with MatchKind::LeftmostLongest; its find_iter resumes at each match's
 * end). For each match, in this order: special tokens are skipped when special tokens are not
 * parsed (the skipped match still consumes its text); "single_word" tokens are skipped when a word
 * character (Rust regex \w) touches either side; "lstrip" takes the whitespace before it (not past
 * the previous match); "rstrip" takes the whitespace after it. That is HF's
 * AddedVocabulary::find_matches, step by step.
 *
 * How the search stays linear in the text. Leftmost-longest needs, at each position, the longest
 * pattern that starts there, and a forward scan cannot know it without looking ahead as far as
 * the longest pattern (restarting at every byte made an added token of 100,000 "a" + "b" on a
 * prompt of 100,000 "a" take 14 s). So the automaton is built on the *reversed* patterns, with
 * Aho-Corasick failure links, and runs over the text from its end: after reading s[i] its state
 * says which patterns start at i, and the longest of them is a lookup (`best`). One backward pass
 * records every position where a pattern starts, with its longest pattern; the forward walk then
 * takes the first hit at or after the end of the previous match. Both passes are O(text), and
 * the failure links make each byte O(1) amortized (a binary search over at most 256 edges).
 *
 * lstrip walks back over whitespace only as far as the end of the previous match (HF clamps it
 * there): walking the whole run for every match made an lstrip token " " on 100,000 spaces
 * quadratic (20 s).
 *
 * Memory: the automaton of a pass whose patterns total P bytes has at most P + 1 nodes and takes
 * 17 bytes per node (edge offsets, edge bytes, children, failure links, best match) plus a
 * 1028-byte table for the root: at most 17 (P + 1) + 1028 bytes. Building it needs 17 more bytes
 * per node for a moment. A search keeps 16 bytes per text position where some pattern starts.
 *
 * Tested in tests/unit/test_tokenizer_parts.c (lstrip/rstrip/single_word on a small tokenizer built
 * in the test) and through the parity tests (special tokens inside text).
 */
#ifndef GLMOE_TOKENIZER_ADDED_TOKENS_H
#define GLMOE_TOKENIZER_ADDED_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_regex.h"
#include "util/error.h"

typedef struct gm_added_token {
    int32_t id;
    char *content;     /* as written in tokenizer.json                        */
    size_t content_len;
    char *pattern;     /* what is searched for: content, or normalized content */
    size_t pattern_len;
    bool special, normalized, lstrip, rstrip, single_word;
} gm_added_token;

/* The automaton of one pass: a byte trie over the pass's patterns *reversed*, flattened with each
 * node's edges sorted by byte, plus Aho-Corasick failure links. Node 0 is the root. */
typedef struct gm_added_automaton {
    uint32_t *edge_start; /* node i's edges are [edge_start[i], edge_start[i+1])                     */
    uint8_t *edge_byte;
    uint32_t *edge_child;
    uint32_t *fail;       /* the node of the longest proper suffix (of the reversed string) in the trie */
    int32_t *best;        /* the token whose pattern is the longest one ending here (itself or through
                             the failure links): the longest pattern starting at the current text
                             position; -1 for none                                                     */
    uint32_t root_next[256]; /* the root's edges as a table (0: none): most text bytes start nothing */
    size_t n_nodes;
} gm_added_automaton;

typedef struct gm_added {
    gm_added_token *tokens;
    size_t n;
    gm_added_automaton raw;  /* pass 1: "normalized": false */
    gm_added_automaton norm; /* pass 2: "normalized": true  */
    gm_tok_regex word_char; /* Rust regex \w, compiled only when some token is single_word */
} gm_added;

/* Builds both automata from tokens[] (patterns already set). Two tokens with the same pattern in
 * the same pass are refused, as HF's automaton builder refuses duplicate patterns. */
glmoe_status gm_added_build(gm_added *a, gm_err *err);
void gm_added_free(gm_added *a);

/* One piece of a split: [start, end) of the searched text, and the index of the added token
 * found there or -1 for text between tokens. */
typedef struct gm_added_split {
    size_t start, end;
    int32_t token;
} gm_added_split;

/* A position of the text where a pattern starts, with the longest such pattern (search scratch). */
typedef struct gm_added_hit {
    size_t start;
    int32_t token;
} gm_added_hit;

/* The result of a split (v[0..n)) and the search's scratch (hits); zero-initialise, reuse, free
 * both arrays with free(). */
typedef struct gm_added_splits {
    gm_added_split *v;
    size_t n, cap;
    gm_added_hit *hits;
    size_t n_hits, cap_hits;
} gm_added_splits;

/* Splits s[0..n) on the tokens of one pass (norm_pass selects the automaton). parse_special false skips
 * matches of special tokens (HF's encode_special_tokens = true). Empty pieces are left out.
 * `region` is Oniguruma scratch (for single_word). Returns GLMOE_E_NOMEM on allocation failure. */
glmoe_status gm_added_split_text(const gm_added *a, bool norm_pass, const uint8_t *s, size_t n,
                                 bool parse_special, gm_added_splits *out, OnigRegion *region, gm_err *err);

/* Unicode White_Space, the set Rust's char::is_whitespace and regex \s use. */
bool gm_is_white_space(int32_t cp);

#endif
