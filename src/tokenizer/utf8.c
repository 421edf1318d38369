/* utf8.c — well-formedness checks and lossy decoding (see utf8.h for the rules). */
#include "tokenizer/utf8.h"

#include <string.h>

/* True when all 8 bytes at s are ASCII; lets the common case skip the per-byte state machine. */
static inline bool ascii8(const uint8_t *s) {
    uint64_t w;
    memcpy(&w, s, 8);
    return (w & 0x8080808080808080ull) == 0;
}

size_t gm_utf8_scan(const uint8_t *s, size_t n, gm_utf8_kind *kind) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *kind = GM_UTF8_CHAR;
        return 1;
    }
    /* Unicode 3.9 table 3-7: the lead byte fixes the length and the range of the second byte. */
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c == 0xE0) need = 3, lo = 0xA0;
    else if (c == 0xED) need = 3, hi = 0x9F; /* excludes the surrogates */
    else if (c >= 0xE1 && c <= 0xEF) need = 3;
    else if (c == 0xF0) need = 4, lo = 0x90;
    else if (c == 0xF4) need = 4, hi = 0x8F; /* nothing above U+10FFFF */
    else if (c >= 0xF1 && c <= 0xF3) need = 4;
    else {
        *kind = GM_UTF8_BAD; /* 80..C1 (continuation or overlong lead), F5..FF */
        return 1;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *kind = GM_UTF8_PARTIAL;
            return n;
        }
        uint8_t b = s[i];
        if (b < lo || b > hi) {
            *kind = GM_UTF8_BAD;
            return i;
        }
        lo = 0x80, hi = 0xBF;
    }
    *kind = GM_UTF8_CHAR;
    return need;
}

size_t gm_utf8_check(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n && ascii8(s + i)) {
            i += 8;
            continue;
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        gm_utf8_kind kind;
        size_t k = gm_utf8_scan(s + i, n - i, &kind);
        if (kind != GM_UTF8_CHAR) return i;
        i += k;
    }
    return n;
}

int gm_utf8_encode(int32_t cp, uint8_t out[4]) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

static bool lossy(gm_tok_bytes *out, const uint8_t *s, size_t n, size_t *tail) {
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    /* Worst case every byte becomes U+FFFD (3 bytes); reserving once keeps the loop simple. */
    if (n > SIZE_MAX / 3 || !gm_tok_bytes_reserve(out, 3 * n)) return false;
    size_t i = 0, run = 0; /* s[run..i) is well-formed and not yet copied */
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        gm_utf8_kind kind;
        size_t k = gm_utf8_scan(s + i, n - i, &kind);
        if (kind == GM_UTF8_CHAR) {
            i += k;
            continue;
        }
        memcpy(out->p + out->n, s + run, i - run);
        out->n += i - run;
        if (kind == GM_UTF8_PARTIAL && tail) {
            *tail = n - i;
            return true;
        }
        memcpy(out->p + out->n, fffd, 3);
        out->n += 3;
        i += k; /* PARTIAL consumes the rest of the buffer: one U+FFFD for the cut-off character */
        run = i;
    }
    memcpy(out->p + out->n, s + run, n - run);
    out->n += n - run;
    if (tail) *tail = 0;
    return true;
}

bool gm_utf8_append_lossy(gm_tok_bytes *out, const uint8_t *s, size_t n) { return lossy(out, s, n, NULL); }

bool gm_utf8_append_lossy_stream(gm_tok_bytes *out, const uint8_t *s, size_t n, size_t *tail) {
    return lossy(out, s, n, tail);
}
