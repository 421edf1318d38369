/*
 * utf8.h — the UTF-8 rules the tokenizer relies on, in one place.
 *
 * Well-formed means RFC 3629 / Unicode 3.9 table 3-7: no overlong forms, no surrogates
 * (U+D800..U+DFFF), nothing above U+10FFFF. Encoding refuses anything else (the input policy is
 * written in tokenizer.h); decoding turns ill-formed bytes into U+FFFD exactly as Rust's
 * String::from_utf8_lossy does, which is what Hugging Face tokenizers' decode returns: one U+FFFD
 * per "maximal subpart of an ill-formed subsequence" (Unicode 3.9, "U+FFFD Substitution of Maximal
 * Subparts"). The streaming decoder uses the same rule incrementally, so streamed pieces
 * concatenate to the one-shot result.
 *
 * Tested in tests/unit/test_tokenizer_parts.c against a byte-by-byte reference and known cases.
 */
#ifndef GLMOE_TOKENIZER_UTF8_H
#define GLMOE_TOKENIZER_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tok_buf.h"

/* Returns n when s[0..n) is well-formed UTF-8, else the byte offset of the first ill-formed
 * sequence (the first byte that cannot start or continue a well-formed character; an incomplete
 * character cut off at the end reports the offset where it starts). */
size_t gm_utf8_check(const uint8_t *s, size_t n);

/* Length (1..4) of the well-formed character at s[0..n) and its code point in *cp. s must hold
 * well-formed UTF-8 (gm_utf8_check passed); no checks are made. */
static inline int gm_utf8_next(const uint8_t *s, int32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    if (c < 0xE0) { *cp = ((c & 0x1F) << 6) | (s[1] & 0x3F); return 2; }
    if (c < 0xF0) { *cp = ((c & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F); return 3; }
    *cp = ((c & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

/* Start of the character that ends at s[end) (end > 0), for well-formed text starting at s. */
static inline size_t gm_utf8_prev(const uint8_t *s, size_t end) {
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xC0) == 0x80) i--;
    return i;
}

/* Writes cp (a Unicode scalar value) as UTF-8 into out; returns its length. */
int gm_utf8_encode(int32_t cp, uint8_t out[4]);

/* What the bytes at s[0..n) (n > 0) begin with, for the lossy decoders. */
typedef enum gm_utf8_kind {
    GM_UTF8_CHAR,    /* a well-formed character of the returned length                       */
    GM_UTF8_PARTIAL, /* all n bytes are a proper prefix of a well-formed character: more bytes
                        may complete it                                                      */
    GM_UTF8_BAD,     /* the returned length (>= 1) is the maximal subpart of an ill-formed
                        sequence: replace it by one U+FFFD                                   */
} gm_utf8_kind;

size_t gm_utf8_scan(const uint8_t *s, size_t n, gm_utf8_kind *kind);

/* Appends s[0..n) to out, each maximal ill-formed subpart replaced by U+FFFD (EF BF BD), exactly
 * like Rust's String::from_utf8_lossy. An incomplete character at the very end is replaced too.
 * Returns false only when out of memory. */
bool gm_utf8_append_lossy(gm_tok_bytes *out, const uint8_t *s, size_t n);

/* The same, except that an unfinished character at the end (a proper prefix of a well-formed
 * character) is not replaced: it is left out and its length stored in *tail, for a streaming
 * caller to complete with the next bytes. */
bool gm_utf8_append_lossy_stream(gm_tok_bytes *out, const uint8_t *s, size_t n, size_t *tail);

#endif
