/*
 * added_tokens.h — finding tokenizer.json's added tokens (special or not) inside input text.
 *
 * Hugging Face matches added tokens before anything else touches the text, in two passes:
 *   1. tokens with "normalized": false are found in the raw input;
 *   2. each remaining piece is normalized, and tokens with "normalized": true are found in it
 *      (their pattern is their content passed through the same normalizer).
 * Each pass is a leftmost-longest multi-pattern search (an Aho-Corasick automaton in HF; a byte
 * trie tried at each position here, which finds the same matches), non-overlapping, left to
 * right. For each match, in this order: special tokens are skipped when special tokens are not
 * parsed (the skipped match still consumes its text); "single_word" tokens are skipped when a word
 * character (Rust regex \w) touches either side; "lstrip" takes the whitespace before it (not past
 * the previous match); "rstrip" takes the whitespace after it. That is HF's
 * AddedVocabulary::find_matches, step by step.
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

/* A byte trie over the patterns of one pass, flattened with each node's edges sorted by byte. */
typedef struct gm_trie {
    uint32_t *edge_start; /* node i's edges are [edge_start[i], edge_start[i+1]) */
    uint8_t *edge_byte;
    uint32_t *edge_child;
    int32_t *term;        /* index into gm_added.tokens of the pattern ending here, or -1 */
    size_t n_nodes;
    bool first[256];      /* bytes that start some pattern */
} gm_trie;

typedef struct gm_added {
    gm_added_token *tokens;
    size_t n;
    gm_trie raw;  /* pass 1: "normalized": false */
    gm_trie norm; /* pass 2: "normalized": true  */
    gm_tok_regex word_char; /* Rust regex \w, compiled only when some token is single_word */
} gm_added;

/* Builds both tries from tokens[] (patterns already set). Two tokens with the same pattern in
 * the same pass are refused, as HF's automaton builder refuses duplicate patterns. */
glmoe_status gm_added_build(gm_added *a, gm_err *err);
void gm_added_free(gm_added *a);

/* One piece of a split: [start, end) of the searched text, and the index of the added token
 * found there or -1 for text between tokens. */
typedef struct gm_added_split {
    size_t start, end;
    int32_t token;
} gm_added_split;

typedef struct gm_added_splits {
    gm_added_split *v;
    size_t n, cap;
} gm_added_splits;

/* Splits s[0..n) on the tokens of one pass (norm_pass selects the trie). parse_special false skips
 * matches of special tokens (HF's encode_special_tokens = true). Empty pieces are left out.
 * `region` is Oniguruma scratch (for single_word). Returns GLMOE_E_NOMEM on allocation failure. */
glmoe_status gm_added_split_text(const gm_added *a, bool norm_pass, const uint8_t *s, size_t n,
                                 bool parse_special, gm_added_splits *out, OnigRegion *region, gm_err *err);

/* Unicode White_Space, the set Rust's char::is_whitespace and regex \s use. */
bool gm_is_white_space(int32_t cp);

#endif
