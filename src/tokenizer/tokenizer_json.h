/*
 * tokenizer_json.h — a strict JSON scanner for the two large members of tokenizer.json.
 *
 * jansson builds a tree node per value; for a 150k-token vocabulary plus 150k merges that is
 * ~300 ms and ~100 MB before we even start (measured on Qwen3's 11 MB file). So the loader first
 * walks the document with this scanner to find where "model"."vocab" and "model"."merges" lie (the
 * walk checks the grammar of everything else; those two values are only bracket-matched here),
 * hands jansson a copy of the document with the two values replaced by {} and [] (jansson then
 * validates the rest), and parses the two values strictly itself, straight into the vocabulary and
 * merge tables: RFC 8259 grammar, UTF-8, escapes, surrogate pairs, integer ids, and a value must
 * end exactly where the walk said it ends.
 *
 * Hostile input: every read is bounds-checked against the buffer; nesting deeper than
 * GM_JSON_MAX_DEPTH is refused; errors give the byte offset. Fuzzed through the loader tests.
 */
#ifndef GLMOE_TOKENIZER_TOKENIZER_JSON_H
#define GLMOE_TOKENIZER_TOKENIZER_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_buf.h"
#include "util/error.h"

#define GM_JSON_MAX_DEPTH 256

typedef struct gm_json_cur {
    const char *s;
    size_t n, i;
} gm_json_cur;

/* Skips white space; true when a byte remains. */
bool gm_json_ws(gm_json_cur *c);

/* Skips one value of any kind at c->i (after white space), validating it. */
glmoe_status gm_json_skip(gm_json_cur *c, const char *what, gm_err *err);

/* Reads the string at c->i and appends its decoded UTF-8 bytes to out. */
glmoe_status gm_json_string(gm_json_cur *c, gm_tok_bytes *out, const char *what, gm_err *err);

/* Reads a non-negative integer that fits in int32 (no fraction or exponent). */
glmoe_status gm_json_id(gm_json_cur *c, int32_t *out, const char *what, gm_err *err);

/* Expects byte ch (after white space) and steps over it. */
glmoe_status gm_json_expect(gm_json_cur *c, char ch, const char *what, gm_err *err);

/* Where the big members are: [start, end) byte ranges of each value; start == end when absent. */
typedef struct gm_json_layout {
    size_t vocab_start, vocab_end;
    size_t merges_start, merges_end;
} gm_json_layout;

/* Validates the whole document and finds model.vocab and model.merges. */
glmoe_status gm_json_layout_scan(const char *s, size_t n, gm_json_layout *out, gm_err *err);

#endif
