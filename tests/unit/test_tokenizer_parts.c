/*
 * test_tokenizer_parts.c — the tokenizer's pieces, each against an independent reference:
 *   UTF-8 checks and lossy decoding   vs Unicode's own example and a brute-force reference built
 *                                      from every code point's encoding; streaming vs one-shot;
 *   GPT-2 byte alphabet                vs the bytes_to_unicode loop;
 *   BPE merge loop (scan and heap)     vs a naive "merge the lowest rank, leftmost" reference on
 *                                      random merge tables and words;
 *   Unicode normalization fast path    vs utf8proc on whole random strings;
 *   Oniguruma match walk               vs the onig crate's documented find_iter results;
 *   the regex guard (progress callouts) the rewrite of awkward patterns, its refusals, and the
 *                                      guarded patterns' matches vs the plain patterns' on random
 *                                      texts;
 *   added-token search (automaton)     vs a naive leftmost-longest search tried at every position,
 *                                      with HF's lstrip/rstrip/single_word/special handling, on
 *                                      random patterns and texts;
 *   tokenizer.json loader              refusals name the JSON path; truncated and corrupted files
 *                                      fail cleanly (run under ASan: `make asan`).
 * Usage: test_tokenizer_parts <repo root>
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#include "test.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tok_regex.h"
#include "tokenizer/tok_regex_guard.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

/* xorshift64*: reproducible randomness, a fresh seed per run printed for replay */
static uint64_t rng_state;
static uint64_t rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}
static uint32_t rnd_below(uint32_t n) { return (uint32_t)(rnd() % n); }

/* ---- UTF-8 ----------------------------------------------------------------------------------- */

/* Every code point's encoding as a big-endian 32-bit number, zero-padded: sorted, a prefix of k
 * bytes is the start of some character iff a binary search finds an encoding beginning with it. */
static uint32_t *all_enc;
static size_t n_enc;

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void build_encodings(void) {
    if (all_enc) return;
    all_enc = malloc(0x110000 * sizeof *all_enc);
    for (int32_t cp = 0; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        uint8_t u[4] = {0};
        int k = gm_utf8_encode(cp, u);
        (void)k;
        all_enc[n_enc++] = (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
    }
    qsort(all_enc, n_enc, sizeof *all_enc, cmp_u32);
}


/* Is b[0..k) (1 <= k <= 4) the beginning of some well-formed character? */
static bool ref_prefix(const uint8_t *b, size_t k) {
    /* zero padding would make "00 00" a prefix of U+0000, "EC 8F BF 00" one of U+C3FF */
    size_t longest = b[0] < 0x80 ? 1 : b[0] < 0xE0 ? 2 : b[0] < 0xF0 ? 3 : 4;
    if (k > longest) return false;
    uint32_t key = 0, mask = 0;
    for (size_t i = 0; i < 4; i++) {
        key = key << 8 | (i < k ? b[i] : 0);
        mask = mask << 8 | (i < k ? 0xFF : 0);
    }
    size_t lo = 0, hi = n_enc;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (all_enc[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo < n_enc && (all_enc[lo] & mask) == key;
}

static bool ref_complete(const uint8_t *b, size_t k) {
    uint32_t key = 0;
    for (size_t i = 0; i < 4; i++) key = key << 8 | (i < k ? b[i] : 0);
    if (!ref_prefix(b, k)) return false;
    /* complete when the encoding with these bytes has exactly k bytes */
    uint8_t lead = b[0];
    size_t want = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    return k == want;
}

/* Maximal-subpart lossy decoding, from the definition. */
static void ref_lossy(const uint8_t *s, size_t n, gm_tok_bytes *out) {
    size_t i = 0;
    while (i < n) {
        size_t k = 1;
        while (k < 4 && i + k < n && ref_prefix(s + i, k + 1)) k++;
        if (ref_complete(s + i, k)) {
            gm_tok_bytes_append(out, s + i, k);
        } else {
            if (!ref_prefix(s + i, k)) k = 1; /* the first byte is not a prefix of anything */
            gm_tok_bytes_append(out, "\xEF\xBF\xBD", 3);
        }
        i += k;
    }
}

static void test_utf8(void) {
    /* Unicode 3.9, table 3-8: a F1 80 80 | E1 80 | C2 | b | 80 | c | 80 | BF | d */
    const uint8_t ex[] = {0x61, 0xF1, 0x80, 0x80, 0xE1, 0x80, 0xC2, 0x62, 0x80, 0x63, 0x80, 0xBF, 0x64};
    const char want[] = "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD" "b\xEF\xBF\xBD" "c\xEF\xBF\xBD\xEF\xBF\xBD" "d";
    gm_tok_bytes out = {0};
    gm_utf8_append_lossy(&out, ex, sizeof ex);
    CHECK(out.n == sizeof want - 1 && memcmp(out.p, want, out.n) == 0, "Unicode table 3-8 example");
    CHECK(gm_utf8_check(ex, sizeof ex) == 1, "check stops at the first bad byte");

    build_encodings();
    static const uint8_t pool[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF,
                                   0xE0, 0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF};
    size_t bad_lossy = 0, bad_check = 0;
    for (int round = 0; round < 20000; round++) {
        uint8_t s[24];
        size_t n = 1 + rnd_below(sizeof s);
        for (size_t i = 0; i < n; i++) s[i] = pool[rnd_below(sizeof pool)];
        gm_tok_bytes a = {0}, b = {0};
        gm_utf8_append_lossy(&a, s, n);
        ref_lossy(s, n, &b);
        bool same = a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
        if (!same && bad_lossy == 0) {
            fprintf(stderr, "  lossy mismatch on");
            for (size_t i = 0; i < n; i++) fprintf(stderr, " %02X", s[i]);
            fprintf(stderr, "\n   got");
            for (size_t i = 0; i < a.n; i++) fprintf(stderr, " %02X", (uint8_t)a.p[i]);
            fprintf(stderr, "\n   ref");
            for (size_t i = 0; i < b.n; i++) fprintf(stderr, " %02X", (uint8_t)b.p[i]);
            fprintf(stderr, "\n");
        }
        bad_lossy += !same;
        /* check: the offset of the first replaced byte */
        size_t first_bad = n;
        for (size_t i = 0; i < n;) {
            size_t k = 1;
            while (k < 4 && i + k < n && ref_prefix(s + i, k + 1)) k++;
            if (!ref_complete(s + i, k)) {
                first_bad = i;
                break;
            }
            i += k;
        }
        bad_check += gm_utf8_check(s, n) != first_bad;
        gm_tok_bytes_free(&a);
        gm_tok_bytes_free(&b);
    }
    CHECK(bad_lossy == 0, "%zu of 20000 random strings decode differently from the reference", bad_lossy);
    CHECK(bad_check == 0, "%zu of 20000 random strings: gm_utf8_check offset differs", bad_check);
    gm_tok_bytes_free(&out);
}

/* ---- the GPT-2 byte alphabet ------------------------------------------------------------------- */

static void test_byte_alphabet(void) {
    /* bytes_to_unicode as written in GPT-2's encoder.py */
    int32_t table[256];
    bool printable[256] = {false};
    for (int b = '!'; b <= '~'; b++) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
    int n = 0;
    for (int b = 0; b < 256; b++) table[b] = printable[b] ? b : 256 + n++;
    int bad = 0;
    for (int b = 0; b < 256; b++) bad += gm_byte_level_char((uint8_t)b) != table[b] || gm_byte_level_byte(table[b]) != b;
    CHECK(bad == 0, "%d bytes map differently from bytes_to_unicode", bad);
    int extra = 0;
    for (int32_t cp = 0; cp < 0x400; cp++) extra += gm_byte_level_byte(cp) >= 0;
    CHECK(extra == 256, "%d code points map to bytes, expected 256", extra);
}

/* ---- BPE merges -------------------------------------------------------------------------------- */

static size_t naive_merge(const gm_pair_map *m, int32_t *sym, size_t n) {
    for (;;) {
        int32_t best = INT32_MAX, merged = -1;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++) {
            const gm_pair_slot *s = gm_pair_map_get(m, sym[i], sym[i + 1]);
            if (s && s->rank < best) best = s->rank, merged = s->merged, at = i;
        }
        if (merged < 0) return n;
        sym[at] = merged;
        memmove(sym + at + 1, sym + at + 2, (n - at - 2) * sizeof *sym);
        n--;
    }
}

static void test_bpe(void) {
    size_t bad_scan = 0, bad_heap = 0, words = 0;
    for (int table = 0; table < 40; table++) {
        gm_bpe b;
        gm_bpe_init(&b);
        int32_t n_base = 2 + (int32_t)rnd_below(5), next = n_base;
        int n_merges = (int)rnd_below(60);
        gm_pair_map_init(&b.merges, (size_t)n_merges);
        for (int r = 0; r < n_merges; r++) {
            int32_t l = (int32_t)rnd_below((uint32_t)next), rr = (int32_t)rnd_below((uint32_t)next);
            if (gm_pair_map_get(&b.merges, l, rr)) continue; /* one merge per pair, as in real files */
            gm_pair_map_put(&b.merges, l, rr, r, next++);
        }
        for (int w = 0; w < 200; w++, words++) {
            size_t n = 1 + rnd_below(w % 10 == 0 ? 300 : 40);
            int32_t a[300], c[300], d[300];
            for (size_t i = 0; i < n; i++) a[i] = c[i] = d[i] = (int32_t)rnd_below((uint32_t)n_base);
            size_t na = naive_merge(&b.merges, a, n);
            size_t nc = n <= GM_BPE_SMALL ? gm_bpe_merge(&b, c, n, false) : na;
            size_t nd = gm_bpe_merge(&b, d, n, true);
            if (n <= GM_BPE_SMALL) bad_scan += nc != na || memcmp(a, c, na * sizeof *a) != 0;
            bad_heap += nd != na || memcmp(a, d, na * sizeof *a) != 0;
        }
        gm_bpe_free(&b);
    }
    CHECK(bad_scan == 0, "scan merge differs from the reference on %zu of %zu words", bad_scan, words);
    CHECK(bad_heap == 0, "heap merge differs from the reference on %zu of %zu words", bad_heap, words);
}

/* ---- Unicode normalization ----------------------------------------------------------------------- */

static void test_normalize(void) {
    static const int32_t pool[] = {
        'a', 'e', 'A', 'o', ' ', '1', 0x300, 0x301, 0x308, 0x316, 0x323, 0x345, 0x344, 0x340, 0x0E9, 0x0C5, 0x212B, 0x1E9B,
        0x1E0B, 0x0385, 0x00A8, 0x2126, 0xFB01, 0xFF21, 0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x3131, 0x4E00, 0xF900,
        0x0915, 0x093C, 0x0958, 0x0F73, 0x0F71, 0x0F72, 0x1F600, 0x1F3FD, 0x200D, 0xFE0F, 0x0627, 0x0653, 0x0654, 0x05D0,
        0x05B7, 0x0E33, 0x3099, 0x304B, 0x30AB, 0xFF76, 0xFF9E, 0x00BD, 0x2460, 0x1D15E, 0x1D157, 0x1D165, 0x0CCA, 0x0CC6,
        0x0CD5, 0x0B4B, 0x0B47, 0x0B3E, 0x1FBE, 0x03B9, 0x0386, 0x2F800, 0x0000, 0x00A0};
    static const gm_norm_kind kinds[] = {GM_NORM_NFC, GM_NORM_NFD, GM_NORM_NFKC, GM_NORM_NFKD};
    static const int flags[] = {UTF8PROC_COMPOSE, UTF8PROC_DECOMPOSE, UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
                                UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT};
    gm_err err = {0};
    for (int k = 0; k < 4; k++) {
        gm_normalizer nz = {0};
        gm_normalizer_add_nf(&nz, kinds[k], "normalizer", &err);
        gm_norm_scratch scratch = {0};
        gm_tok_regex_run run = {0};
        gm_tok_regex_run_begin(&run, &err);
        size_t bad = 0;
        for (int round = 0; round < 4000; round++) {
            uint8_t s[128];
            size_t n = 0, len = 1 + rnd_below(20);
            for (size_t i = 0; i < len; i++) n += (size_t)gm_utf8_encode(pool[rnd_below(sizeof pool / sizeof *pool)], s + n);
            gm_tok_bytes got = {0};
            gm_normalize(&nz, s, n, &got, &scratch, &run, &err);
            utf8proc_uint8_t *ref = NULL;
            utf8proc_ssize_t rn = utf8proc_map(s, (utf8proc_ssize_t)n, &ref, UTF8PROC_STABLE | flags[k]);
            bad += rn < 0 || got.n != (size_t)rn || memcmp(got.p, ref, got.n) != 0;
            free(ref);
            gm_tok_bytes_free(&got);
        }
        CHECK(bad == 0, "form %d: %zu of 4000 random strings normalize differently from utf8proc", k, bad);
        /* every code point called inert must survive the form alone and after a base letter */
        size_t bad_inert = 0;
        for (int32_t cp = 0x80; cp < 0x30000; cp++) {
            if ((cp >= 0xD800 && cp <= 0xDFFF) || !gm_norm_inert(kinds[k], cp)) continue;
            uint8_t s[8] = {'e'};
            size_t n = 1 + (size_t)gm_utf8_encode(cp, s + 1);
            utf8proc_uint8_t *ref = NULL;
            utf8proc_ssize_t rn = utf8proc_map(s, (utf8proc_ssize_t)n, &ref, UTF8PROC_STABLE | flags[k]);
            bad_inert += rn != (utf8proc_ssize_t)n || memcmp(ref, s, n) != 0;
            free(ref);
        }
        CHECK(bad_inert == 0, "form %d: %zu code points called inert change under utf8proc", k, bad_inert);
        gm_norm_scratch_free(&scratch);
        gm_tok_regex_run_free(&run);
        gm_normalizer_free(&nz);
    }
}

/* ---- Oniguruma match walk ------------------------------------------------------------------------ */

static void expect_matches(const char *pattern, bool literal, const char *text, const size_t *want, size_t n_want) {
    gm_tok_regex re;
    gm_err err = {0};
    glmoe_status st = gm_tok_regex_compile(&re, pattern, strlen(pattern), literal, "test", &err);
    CHECK(st == GLMOE_OK, "compile %s: %s", pattern, err.msg);
    if (st != GLMOE_OK) return;
    gm_tok_regex_run run = {0};
    gm_tok_regex_run_begin(&run, &err);
    gm_tok_match_iter it = {0};
    size_t got[64], n = 0, ms, me;
    while (n + 2 <= 64 && gm_tok_regex_next(&re, &run, (const uint8_t *)text, strlen(text), &it, &ms, &me) == 1)
        got[n++] = ms, got[n++] = me;
    CHECK(n == n_want && memcmp(got, want, n * sizeof *got) == 0, "matches of /%s/ in \"%s\"", pattern, text);
    gm_tok_regex_run_free(&run);
    gm_tok_regex_free(&re);
}

static void test_regex(void) {
    /* the onig crate's own find_iter tests (onig/src/find.rs) */
    expect_matches("\\d+", false, "a12b2", (const size_t[]){1, 3, 4, 5}, 4);
    expect_matches("\\d*", false, "a1b2", (const size_t[]){0, 0, 1, 2, 3, 4}, 6);
    expect_matches("\\d*", false, "a1bbb2", (const size_t[]){0, 0, 1, 2, 3, 3, 4, 4, 5, 6}, 10);
    expect_matches("\\b", false, "test string", (const size_t[]){0, 0, 4, 4, 5, 5, 11, 11}, 8);
    expect_matches("ab", true, "abcabab", (const size_t[]){0, 2, 3, 5, 5, 7}, 6);
    expect_matches("a.c", true, "abc a.c", (const size_t[]){4, 7}, 2);
    expect_matches("(?i:'s|'t)", false, "IT'S it's", (const size_t[]){2, 4, 7, 9}, 4);
    gm_tok_regex re;
    gm_err err = {0};
    glmoe_status st = gm_tok_regex_compile(&re, "(abc", 4, false, "pre_tokenizer.pattern.Regex", &err);
    CHECK(st == GLMOE_E_FORMAT && strstr(err.msg, "pre_tokenizer.pattern.Regex"), "bad regex: %s", err.msg);
    st = gm_tok_regex_compile(&re, "", 0, true, "x.pattern.String", &err);
    CHECK(st == GLMOE_E_UNSUPPORTED, "empty literal refused");
}

/* ---- the regex guard --------------------------------------------------------------------------- */

static void expect_rewrite(const char *pattern, const char *want, const char *want_refusal) {
    gm_tok_bytes out = {0};
    int n_tags = -1;
    const char *why = gm_tok_regex_guard_rewrite(pattern, strlen(pattern), &out, &n_tags);
    if (want_refusal) {
        CHECK(why && strstr(why, want_refusal), "rewrite of %s: refusal \"%s\", want \"%s\"", pattern, why ? why : "(none)",
              want_refusal);
    } else {
        gm_tok_bytes_cstr(&out);
        CHECK(!why && strcmp(out.p, want) == 0, "rewrite of %s:\n    got:  %s\n    want: %s", pattern, why ? why : out.p, want);
    }
    gm_tok_bytes_free(&out);
}

/* The plain walk the guarded one must equal: onig_search without callouts or limits, with
 * find_iter's empty-match rule, as gm_tok_regex_next did before the guard. */
static size_t plain_walk(OnigRegex re, const uint8_t *s, size_t n, size_t *got, size_t cap) {
    OnigRegion *region = onig_region_new();
    size_t k = 0, last = 0;
    bool skip_empty = false;
    while (last <= n && k + 2 <= cap) {
        int pos = onig_search(re, s, s + n, s + last, s + n, region, ONIG_OPTION_NONE);
        if (pos < 0) break;
        size_t ms = (size_t)region->beg[0], me = (size_t)region->end[0];
        last = me;
        if (ms == me) {
            last += me < n ? (s[me] < 0x80 ? 1 : s[me] < 0xE0 ? 2 : s[me] < 0xF0 ? 3 : 4) : 1;
            if (skip_empty) {
                skip_empty = false;
                continue;
            }
        } else {
            skip_empty = true;
        }
        got[k++] = ms, got[k++] = me;
    }
    onig_region_free(region, 1);
    return k;
}

static void test_regex_guard(void) {
    /* where callouts go: the start of the pattern, and the start of each look-around's body */
    expect_rewrite("a+b", "(?{}[g0])a+b", NULL);
    expect_rewrite("\\s+(?!\\S)|\\s+", "(?{}[g0])\\s+(?!(?{}[g1])\\S)|\\s+", NULL);
    expect_rewrite("(?<=x)y(?<!z)", "(?{}[g0])(?<=(?{}[g1])x)y(?<!(?{}[g2])z)", NULL);
    /* not in classes (a leading ']' is literal, classes nest), escapes or comments */
    expect_rewrite("[(?=]x(?=y)", "(?{}[g0])[(?=]x(?=(?{}[g1])y)", NULL);
    expect_rewrite("[]a(?=][[:alpha:](?!]z+(?=x)", "(?{}[g0])[]a(?=][[:alpha:](?!]z+(?=(?{}[g1])x)", NULL);
    expect_rewrite("\\(?=a", "(?{}[g0])\\(?=a", NULL);
    expect_rewrite("(\\c(?=a)", "(?{}[g0])(\\c(?=a)", NULL);
    expect_rewrite("(?#(?=x\\)c)(?=d)", "(?{}[g0])(?#(?=x\\)c)(?=(?{}[g1])d)", NULL);
    /* named groups and options are not look-arounds; x turned off is fine */
    expect_rewrite("(?<n>a)(?i-x:b)", "(?{}[g0])(?<n>a)(?i-x:b)", NULL);
    /* attempts that cost O(pattern) get no attempt callout (sparse patterns would pay per byte) */
    expect_rewrite("\\p{N}{1,3}", "\\p{N}{1,3}", NULL);
    expect_rewrite("[\\x{4e00}-\\x{9fa5}]+|ab?", "[\\x{4e00}-\\x{9fa5}]+|ab?", NULL);
    expect_rewrite("a+b", "(?{}[g0])a+b", NULL);
    expect_rewrite("\\d+\\.", "(?{}[g0])\\d+\\.", NULL);
    expect_rewrite("(ab)+", "(?{}[g0])(ab)+", NULL);
    /* refused */
    expect_rewrite("(?{x})a", NULL, "(?{...})");
    expect_rewrite("a(*FAIL)", NULL, "(*name)");
    expect_rewrite("(?x) a b", NULL, "extended mode");
    expect_rewrite("(?ix:a b)", NULL, "extended mode");
    gm_tok_regex re;
    gm_err err = {0};
    CHECK(gm_tok_regex_compile(&re, "(?x) a # b", 10, false, "pre_tokenizer.pattern.Regex", &err) == GLMOE_E_UNSUPPORTED &&
              strstr(err.msg, "pre_tokenizer.pattern.Regex: the pattern is not supported: extended mode"),
          "(?x) refused at load: %s", err.msg);

    /* the check: a tag that is not a callout (here: inside a class) is caught */
    OnigRegex bad = NULL, plain = NULL;
    OnigErrorInfo einfo;
    const char *b = "(?{}[g0])[(?{}[g1])]", *pl = "[(?{}[g1])]";
    onig_new(&bad, (const OnigUChar *)b, (const OnigUChar *)b + strlen(b), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
             ONIG_SYNTAX_DEFAULT, &einfo);
    onig_new(&plain, (const OnigUChar *)pl, (const OnigUChar *)pl + strlen(pl), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
             ONIG_SYNTAX_DEFAULT, &einfo);
    CHECK(bad && plain && gm_tok_regex_guard_check(bad, plain, 2) != NULL, "a tag inside a class is caught");
    CHECK(bad && plain && gm_tok_regex_guard_check(bad, plain, 1) == NULL, "the real callout passes");
    if (bad) onig_free(bad);
    if (plain) onig_free(plain);

    /* The guarded patterns match exactly what the plain ones match, on random texts: the real
     * pretokenizer patterns and awkward ones (look-arounds, classes, anchors, empty matches). */
    static const char *const patterns[] = {
        GM_GPT2_PATTERN,
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
        "\\p{N}{1,3}", "a+b", "(?<=a)b*", "(?<!b)a|(?=b)", "\\b", "(?i)a(?=B)|b", "x*", "^a|b$", "[ab](?!a)(?<=b)", "(a)(?=\\1)",
    };
    const char alphabet[] = "ab AB1\n'.,x\xc3\xa9";
    size_t bad_walks = 0, walks = 0;
    gm_tok_regex_run run = {0};
    for (size_t pi = 0; pi < sizeof patterns / sizeof *patterns; pi++) {
        const char *pat = patterns[pi];
        OnigRegex ref = NULL;
        onig_new(&ref, (const OnigUChar *)pat, (const OnigUChar *)pat + strlen(pat), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                 ONIG_SYNTAX_DEFAULT, &einfo);
        glmoe_status st = gm_tok_regex_compile(&re, pat, strlen(pat), false, "test", &err);
        CHECK(ref && st == GLMOE_OK, "compile %s: %s", pat, err.msg);
        if (!ref || st != GLMOE_OK) continue;
        for (int round = 0; round < 300; round++) {
            uint8_t text[64];
            size_t n = 0, len = rnd_below(30);
            for (size_t i = 0; i < len; i++) {
                size_t c = rnd_below(sizeof alphabet - 2); /* the last two bytes are one character */
                if (c == sizeof alphabet - 3) text[n++] = 0xC3, text[n++] = 0xA9;
                else text[n++] = (uint8_t)alphabet[c];
            }
            size_t want[160], got[160], n_want = plain_walk(ref, text, n, want, 160), n_got = 0, ms, me;
            gm_tok_regex_run_begin(&run, &err);
            gm_tok_match_iter it = {0};
            while (n_got + 2 <= 160 && gm_tok_regex_next(&re, &run, text, n, &it, &ms, &me) == 1)
                got[n_got++] = ms, got[n_got++] = me;
            bad_walks += n_got != n_want || memcmp(got, want, n_got * sizeof *got) != 0;
            walks++;
        }
        onig_free(ref);
        gm_tok_regex_free(&re);
    }
    gm_tok_regex_run_free(&run);
    CHECK(bad_walks == 0, "guarded patterns match differently from the plain ones on %zu of %zu texts", bad_walks, walks);
}

/* ---- added-token search --------------------------------------------------------------------- */

/* The reference: HF's find_matches written the slow, obvious way. At each position from `pos` on,
 * every pattern is tried; the first position where one matches gives the match, the longest
 * pattern there wins. The word-character test is a plain ASCII one: the random texts below only
 * use ASCII, where it agrees with the Unicode class the tokenizer uses. */
static bool ref_word(uint8_t c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }

static size_t ref_split(const gm_added *a, const uint8_t *s, size_t n, bool parse_special, gm_added_split *out) {
    size_t k = 0, pos = 0, start_offset = 0;
    while (n) {
        size_t ms = n, me = 0;
        int32_t ti = -1;
        for (size_t p = pos; p < n && ti < 0; p++)
            for (size_t t = 0; t < a->n; t++) {
                const gm_added_token *tok = &a->tokens[t];
                if (tok->normalized || tok->pattern_len == 0 || tok->pattern_len > n - p) continue;
                if (memcmp(s + p, tok->pattern, tok->pattern_len) != 0) continue;
                if (ti < 0 || tok->pattern_len > me - ms) ms = p, me = p + tok->pattern_len, ti = (int32_t)t;
            }
        if (ti < 0) break;
        pos = me;
        const gm_added_token *tok = &a->tokens[ti];
        if (!parse_special && tok->special) continue;
        if (tok->single_word && ((ms > 0 && ref_word(s[ms - 1])) || (me < n && ref_word(s[me])))) continue;
        if (tok->lstrip) {
            size_t ns = ms;
            while (ns > 0 && (s[ns - 1] == ' ' || s[ns - 1] == '\n')) ns--;
            ms = ns > start_offset ? ns : start_offset;
        }
        if (tok->rstrip)
            while (me < n && (s[me] == ' ' || s[me] == '\n')) me++;
        if (start_offset < ms) out[k++] = (gm_added_split){start_offset, ms, -1};
        out[k++] = (gm_added_split){ms, me, ti};
        start_offset = me;
    }
    if (start_offset != n) out[k++] = (gm_added_split){start_offset, n, -1};
    return k;
}

static void test_added_search(void) {
    static const char alphabet[] = "aab \n";
    OnigRegion *region = onig_region_new();
    size_t bad = 0, rounds = 3000, splits = 0;
    for (size_t round = 0; round < rounds; round++) {
        gm_added a = {0};
        a.n = 1 + rnd_below(6);
        a.tokens = calloc(a.n, sizeof *a.tokens);
        for (size_t t = 0; t < a.n; t++) {
            gm_added_token *tok = &a.tokens[t];
            /* distinct patterns of 1 to 5 characters, often prefixes or suffixes of each other */
            do {
                tok->pattern_len = 1 + rnd_below(5);
                free(tok->pattern);
                tok->pattern = malloc(tok->pattern_len);
                for (size_t i = 0; i < tok->pattern_len; i++) tok->pattern[i] = alphabet[rnd_below(5)];
                bool dup = false;
                for (size_t u = 0; u < t; u++)
                    dup |= a.tokens[u].pattern_len == tok->pattern_len &&
                           memcmp(a.tokens[u].pattern, tok->pattern, tok->pattern_len) == 0;
                if (!dup) break;
            } while (1);
            tok->content = malloc(tok->pattern_len);
            memcpy(tok->content, tok->pattern, tok->pattern_len);
            tok->content_len = tok->pattern_len;
            tok->id = (int32_t)t;
            tok->special = rnd_below(3) == 0;
            tok->lstrip = rnd_below(3) == 0;
            tok->rstrip = rnd_below(3) == 0;
            tok->single_word = rnd_below(4) == 0;
        }
        gm_err err = {0};
        if (gm_added_build(&a, &err) != GLMOE_OK) {
            CHECK(0, "build: %s", err.msg);
            gm_added_free(&a);
            continue;
        }
        uint8_t text[48];
        size_t n = rnd_below(sizeof text);
        for (size_t i = 0; i < n; i++) text[i] = (uint8_t)alphabet[rnd_below(5)];
        bool parse_special = rnd_below(2);
        gm_added_split want[2 * sizeof text + 2];
        size_t n_want = ref_split(&a, text, n, parse_special, want);
        gm_added_splits got = {0};
        glmoe_status st = gm_added_split_text(&a, false, text, n, parse_special, &got, region, &err);
        bool same = st == GLMOE_OK && got.n == n_want;
        for (size_t i = 0; same && i < n_want; i++)
            same = got.v[i].start == want[i].start && got.v[i].end == want[i].end && got.v[i].token == want[i].token;
        if (!same && bad++ == 0)
            fprintf(stderr, "  added-token search: first difference on \"%.*s\" (%zu splits, want %zu)\n", (int)n,
                    (const char *)text, got.n, n_want);
        splits += n_want;
        free(got.v);
        free(got.hits);
        gm_added_free(&a);
    }
    CHECK(bad == 0, "added-token search differs from the reference on %zu of %zu random cases", bad, rounds);
    printf("  added-token search: %zu random cases, %zu splits, as the reference\n", rounds, splits);
    onig_region_free(region, 1);
}

/* ---- the loader on a small tokenizer.json ------------------------------------------------------- */

/* A byte-level tokenizer.json: the 256 byte characters (ids 0..255), "ab" 256, "abc" 257, "ĠĠ" 258,
 * merges a+b, ab+c, Ġ+Ġ, one special added token "<s>" 259. `subst` pairs replace placeholders. */
static char *tiny_json(const char *const *subst) {
    gm_tok_bytes t = {0};
    const char *tmpl =
        "{\"version\": \"1.0\", \"truncation\": @TRUNC@, \"padding\": null,\n"
        " \"added_tokens\": [{\"id\": @ADDID@, \"content\": \"<s>\", \"single_word\": false, \"lstrip\": false,"
        " \"rstrip\": false, \"normalized\": false, \"special\": true}],\n"
        " \"normalizer\": @NORM@,\n \"pre_tokenizer\": @PRE@,\n \"post_processor\": @POST@,\n \"decoder\": @DEC@,\n"
        " \"model\": {\"type\": @TYPE@, \"dropout\": @DROP@, \"unk_token\": null, \"continuing_subword_prefix\": @PREFIX@,"
        " \"end_of_word_suffix\": null, \"fuse_unk\": false, \"byte_fallback\": @BF@, \"ignore_merges\": false,\n"
        "  \"vocab\": {@VOCAB@},\n  \"merges\": @MERGES@}}";
    const char *defaults[] = {"@TRUNC@", "null", "@ADDID@", "259", "@NORM@", "null",
                              "@PRE@", "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}",
                              "@POST@", "null", "@DEC@", "{\"type\": \"ByteLevel\"}", "@TYPE@", "\"BPE\"", "@DROP@", "null",
                              "@PREFIX@", "null", "@BF@", "false",
                              "@MERGES@", "[[\"a\", \"b\"], [\"ab\", \"c\"], [\"\xC4\xA0\", \"\xC4\xA0\"]]", "@VOCAB@", NULL, NULL};
    for (const char *p = tmpl; *p;) {
        if (*p != '@') {
            gm_tok_bytes_append(&t, p++, 1);
            continue;
        }
        const char *end = strchr(p + 1, '@');
        size_t klen = (size_t)(end - p) + 1;
        const char *val = NULL;
        for (int i = 0; subst && subst[i]; i += 2)
            if (strlen(subst[i]) == klen && memcmp(subst[i], p, klen) == 0) val = subst[i + 1];
        for (int i = 0; !val && defaults[i]; i += 2)
            if (strlen(defaults[i]) == klen && memcmp(defaults[i], p, klen) == 0) val = defaults[i + 1];
        if (val) {
            gm_tok_bytes_append(&t, val, strlen(val));
        } else { /* @VOCAB@ */
            for (int b = 0; b < 256; b++) {
                uint8_t u[4];
                int k = gm_utf8_encode(gm_byte_level_char((uint8_t)b), u);
                char entry[32];
                bool esc = k == 1 && (u[0] == '"' || u[0] == '\\');
                snprintf(entry, sizeof entry, "\"%s%.*s\": %d, ", esc ? "\\" : "", k, (const char *)u, b);
                gm_tok_bytes_append(&t, entry, strlen(entry));
            }
            const char *rest = "\"ab\": 256, \"abc\": 257, \"\xC4\xA0\xC4\xA0\": 258";
            gm_tok_bytes_append(&t, rest, strlen(rest));
        }
        p += klen;
    }
    gm_tok_bytes_cstr(&t);
    return t.p;
}

static void expect_refusal(const char *const *subst, glmoe_status code, const char *fragment) {
    char *json = tiny_json(subst);
    gm_tokenizer *tok = NULL;
    gm_err err = {0};
    glmoe_status st = gm_tokenizer_load_json(&tok, json, strlen(json), "tiny.json", &err);
    CHECK(st == code && tok == NULL && strstr(err.msg, fragment) && strncmp(err.msg, "tiny.json: ", 11) == 0,
          "expected %d with \"%s\", got %d: %s", code, fragment, st, err.msg);
    gm_tokenizer_free(tok);
    free(json);
}

static void test_loader(void) {
    /* the valid one works */
    char *json = tiny_json(NULL);
    gm_tokenizer *tok = NULL;
    gm_err err = {0};
    glmoe_status st = gm_tokenizer_load_json(&tok, json, strlen(json), "tiny.json", &err);
    CHECK(st == GLMOE_OK, "tiny tokenizer: %s", err.msg);
    if (st == GLMOE_OK) {
        gm_tok_ids ids = {0};
        st = gm_tokenizer_encode(tok, "abc ab  x<s>", 12, GM_TOK_PARSE_SPECIAL, &ids, &err);
        /* GPT-2 regex pieces "abc" " ab" " " " x", then the added token; byte b has id b here */
        int32_t want[] = {257, ' ', 256, ' ', ' ', 'x', 259};
        CHECK(st == GLMOE_OK && ids.n == 7 && memcmp(ids.ids, want, sizeof want) == 0, "tiny encode: %zu ids", ids.n);
        /* Random id sequences (mostly single bytes, so characters break across ids): the stream
         * gives whole characters only, and with the flush it adds up to decode, which is the
         * reference lossy decoding of the ids' bytes. */
        size_t bad_stream = 0, bad_decode = 0;
        for (int round = 0; round < 3000; round++) {
            ids.n = 0;
            size_t n = rnd_below(16);
            gm_tok_bytes raw = {0}, dec = {0}, streamed = {0}, ref = {0};
            for (size_t i = 0; i < n; i++) {
                int32_t id = rnd_below(8) == 0 ? 256 + (int32_t)rnd_below(4) : (int32_t)(0x80 + rnd_below(128));
                if (rnd_below(6) == 0) id = (int32_t)rnd_below(128);
                gm_tok_ids_push(&ids, id);
                size_t bl;
                const char *b = gm_tokenizer_id_to_bytes(tok, id, &bl);
                if (id != 259) gm_tok_bytes_append(&raw, b, bl); /* <s> is skipped below */
            }
            gm_tokenizer_decode(tok, ids.ids, ids.n, true, &dec, &err);
            gm_tok_stream stream;
            gm_tok_stream_init(&stream, tok, true);
            bool whole = true;
            for (size_t i = 0; i < ids.n; i++) {
                size_t before = streamed.n;
                gm_tok_stream_push(&stream, ids.ids[i], &streamed, &err);
                whole &= gm_utf8_check((const uint8_t *)streamed.p + before, streamed.n - before) == streamed.n - before;
            }
            gm_tok_stream_flush(&stream, &streamed, &err);
            build_encodings();
            ref_lossy((const uint8_t *)raw.p, raw.n, &ref);
            bad_stream += !whole || streamed.n != dec.n || (dec.n && memcmp(streamed.p, dec.p, dec.n) != 0);
            bad_decode += ref.n != dec.n || (dec.n && memcmp(ref.p, dec.p, dec.n) != 0);
            gm_tok_bytes_free(&raw);
            gm_tok_bytes_free(&dec);
            gm_tok_bytes_free(&streamed);
            gm_tok_bytes_free(&ref);
        }
        CHECK(bad_stream == 0, "%zu of 3000 id sequences: the stream split a character or differs from decode", bad_stream);
        CHECK(bad_decode == 0, "%zu of 3000 id sequences: decode differs from the reference lossy decoding", bad_decode);
        gm_tok_ids_free(&ids);
        gm_tokenizer_free(tok);
    }
    free(json);

    expect_refusal((const char *[]){"@NORM@", "{\"type\": \"Lowercase\"}", NULL}, GLMOE_E_UNSUPPORTED,
                   "normalizer.type \"Lowercase\" is not supported");
    expect_refusal((const char *[]){"@NORM@", "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFC\"}, {\"type\": \"StripAccents\"}]}", NULL},
                   GLMOE_E_UNSUPPORTED, "normalizer.normalizers[1].type \"StripAccents\" is not supported");
    expect_refusal((const char *[]){"@PRE@", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": true},"
                                             " {\"type\": \"Metaspace\", \"replacement\": \"_\"}, {\"type\": \"ByteLevel\"}]}", NULL},
                   GLMOE_E_UNSUPPORTED, "pre_tokenizer.pretokenizers[1].type \"Metaspace\" is not supported");
    expect_refusal((const char *[]){"@PRE@", "null", NULL}, GLMOE_E_UNSUPPORTED, "ByteLevel pre-tokenizer is required");
    expect_refusal((const char *[]){"@PRE@", "{\"type\": \"Digits\"}", NULL}, GLMOE_E_UNSUPPORTED, "ByteLevel pre-tokenizer as the last step");
    expect_refusal((const char *[]){"@PRE@", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"ByteLevel\"}, {\"type\": \"Digits\"}]}", NULL},
                   GLMOE_E_UNSUPPORTED, "pre_tokenizer.pretokenizers[1]: a pre-tokenizer after ByteLevel");
    expect_refusal((const char *[]){"@PRE@", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"},"
                                             " \"behavior\": \"Sideways\", \"invert\": false}, {\"type\": \"ByteLevel\"}]}", NULL},
                   GLMOE_E_UNSUPPORTED, "pre_tokenizer.pretokenizers[0].behavior \"Sideways\" is not supported");
    expect_refusal((const char *[]){"@PRE@", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"},"
                                             " \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\"}]}", NULL},
                   GLMOE_E_FORMAT, "pre_tokenizer.pretokenizers[0].pattern.Regex: Oniguruma rejects the pattern");
    expect_refusal((const char *[]){"@DEC@", "{\"type\": \"WordPiece\", \"prefix\": \"##\"}", NULL}, GLMOE_E_UNSUPPORTED,
                   "decoder.type \"WordPiece\" is not supported");
    expect_refusal((const char *[]){"@DEC@", "null", NULL}, GLMOE_E_UNSUPPORTED, "decoder is null");
    expect_refusal((const char *[]){"@POST@", "{\"type\": \"BertProcessing\", \"sep\": [\"x\", 1], \"cls\": [\"y\", 2]}", NULL},
                   GLMOE_E_UNSUPPORTED, "post_processor.type \"BertProcessing\" is not supported");
    expect_refusal((const char *[]){"@TYPE@", "\"Unigram\"", NULL}, GLMOE_E_UNSUPPORTED, "model.type \"Unigram\" is not supported");
    expect_refusal((const char *[]){"@BF@", "true", NULL}, GLMOE_E_UNSUPPORTED, "model.byte_fallback");
    expect_refusal((const char *[]){"@DROP@", "0.1", NULL}, GLMOE_E_UNSUPPORTED, "model.dropout");
    expect_refusal((const char *[]){"@PREFIX@", "\"##\"", NULL}, GLMOE_E_UNSUPPORTED, "model.continuing_subword_prefix");
    expect_refusal((const char *[]){"@TRUNC@", "{\"max_length\": 8}", NULL}, GLMOE_E_UNSUPPORTED, "truncation must be null");
    expect_refusal((const char *[]){"@MERGES@", "[[\"a\", \"b\"], [\"a\", \"zz\"]]", NULL}, GLMOE_E_FORMAT,
                   "model.merges[1]: \"zz\" is not in model.vocab");
    expect_refusal((const char *[]){"@MERGES@", "[\"a b\", \"a b c\"]", NULL}, GLMOE_E_FORMAT,
                   "model.merges[1]: \"a b c\" is not two tokens");
    expect_refusal((const char *[]){"@MERGES@", "[\"a b\", [\"ab\", \"c\"]]", NULL}, GLMOE_E_FORMAT, "mix the");
    expect_refusal((const char *[]){"@ADDID@", "300", NULL}, GLMOE_E_FORMAT, "added_tokens[0]: \"<s>\" has id 300 in the file, but Hugging Face tokenizers would give it id 259");
    expect_refusal((const char *[]){"@MERGES@", "[[\"a\", \"b\"]], \"vocab\": {\"a\": 1.5}", NULL}, GLMOE_E_FORMAT, "model.vocab appears twice");

    /* string-form merges with a #version line load and merge the same */
    json = tiny_json((const char *[]){"@MERGES@", "[\"#version: 0.2\", \"a b\", \"ab c\", \"\xC4\xA0 \xC4\xA0\"]", NULL});
    st = gm_tokenizer_load_json(&tok, json, strlen(json), "tiny.json", &err);
    CHECK(st == GLMOE_OK, "string merges: %s", err.msg);
    if (st == GLMOE_OK) {
        gm_tok_ids ids = {0};
        gm_tokenizer_encode(tok, "abc", 3, 0, &ids, &err);
        CHECK(ids.n == 1 && ids.ids[0] == 257, "string merges encode abc");
        gm_tok_ids_free(&ids);
        gm_tokenizer_free(tok);
    }
    free(json);

    /* Hostile files: every truncation of the tiny file, and random corruptions, fail cleanly (no
     * crash, no leak, a message) or load. */
    json = tiny_json(NULL);
    size_t n = strlen(json), bad = 0, loaded = 0;
    for (size_t cut = 0; cut < n; cut += 1 + cut / 64) {
        st = gm_tokenizer_load_json(&tok, json, cut, NULL, &err);
        bad += st == GLMOE_OK || err.msg[0] == '\0';
        gm_tokenizer_free(tok);
    }
    CHECK(bad == 0, "%zu truncated files loaded or failed without a message", bad);
    for (int round = 0; round < 300; round++) {
        char *copy = strdup(json);
        for (int k = 0; k < 1 + (int)rnd_below(4); k++) copy[rnd_below((uint32_t)n)] = (char)rnd_below(256);
        err.msg[0] = '\0';
        st = gm_tokenizer_load_json(&tok, copy, n, NULL, &err);
        loaded += st == GLMOE_OK;
        CHECK(st == GLMOE_OK || err.msg[0] != '\0', "corrupted file failed without a message");
        if (st == GLMOE_OK) {
            gm_tok_ids ids = {0};
            gm_tokenizer_encode(tok, "abc <s> x", 9, GM_TOK_PARSE_SPECIAL, &ids, &err);
            gm_tok_ids_free(&ids);
        }
        gm_tokenizer_free(tok);
        free(copy);
    }
    printf("  corrupted tiny files: %zu of 300 still loaded\n", loaded);
    free(json);
}

int main(int argc, char **argv) {
    /* argv[2], when given, replays a run with the seed it printed */
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
    printf("  seed %llu (pass it as the second argument to replay)\n", (unsigned long long)rng_state);
    test_utf8();
    test_byte_alphabet();
    test_bpe();
    test_normalize();
    test_regex();
    test_regex_guard();
    test_added_search();
    test_loader();
    free(all_enc);
    return test_summary("test_tokenizer_parts");
}
