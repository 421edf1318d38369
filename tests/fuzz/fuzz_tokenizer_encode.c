/*
 * fuzz_tokenizer_encode.c — libFuzzer target for encoding arbitrary bytes, and decoding arbitrary
 * ids, with real tokenizers loaded once: the demo model's (models/glmoe-demo/tokenizer.json, no
 * normalizer, GLM-4.5-style regex), Qwen3's (NFC normalizer) and DeepSeek-V3's (three Splits,
 * 818 added tokens), from tests/data/tokenizers.
 *
 * Input: byte 0 picks the tokenizer (bits 0-1) and the flags (bits 2-3: GM_TOK_PARSE_SPECIAL,
 * GM_TOK_ADD_SPECIAL); the rest is the text. Promises:
 *   - ill-formed UTF-8 is refused with GLMOE_E_ARG and the offset gm_utf8_check gives; well-formed
 *     text always encodes;
 *   - every id exists; decode(encode(text)) == text for the demo and DeepSeek-V3 tokenizers (no
 *     normalizer, no prefix space: HF's byte-level round trip; Qwen3's NFC changes the text), and
 *     the streaming decoder equals decode;
 *   - the input read as 16-bit ids (some negative, some past the vocabulary) decodes, or is
 *     refused with GLMOE_E_TOKEN exactly when one id is not in the vocabulary.
 *
 * Seeds: tests/fuzz/corpus/tokenizer_encode/ (lines of the tokenizer golden files and the demo
 * model's held-out text). Build and run: `make fuzz`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

#define N_TOK 3
static gm_tokenizer *g_tok[N_TOK];
static gm_tok_ids g_ids, g_ids2;
static gm_tok_bytes g_text, g_streamed;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    static const char *const paths[N_TOK] = {
        GLMOE_SOURCE_DIR "/models/glmoe-demo/tokenizer.json",
        GLMOE_SOURCE_DIR "/tests/data/tokenizers/qwen3/tokenizer.json.gz",
        GLMOE_SOURCE_DIR "/tests/data/tokenizers/deepseek_v3/tokenizer.json.gz",
    };
    for (int i = 0; i < N_TOK; i++) {
        gm_err err = {0};
        if (gm_tokenizer_load(&g_tok[i], paths[i], &err) != GLMOE_OK) {
            fprintf(stderr, "fuzz_tokenizer_encode: %s\n", err.msg);
            exit(1);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const unsigned which = data[0] & 3u, flags = (data[0] >> 2) & 3u;
    gm_tokenizer *tok = g_tok[which == 3 ? 0 : which];
    const int32_t n_ids = gm_tokenizer_n_ids(tok);
    /* an exactly sized copy, so that ASan sees any read past the text */
    const size_t len = size - 1;
    char *text = malloc(len ? len : 1);
    if (!text) return 0;
    if (len) memcpy(text, data + 1, len);

    gm_err err = {0};
    g_ids.n = 0;
    glmoe_status st = gm_tokenizer_encode(tok, text, len, flags, &g_ids, &err);
    const size_t bad = gm_utf8_check((const uint8_t *)text, len);
    if (bad != len) {
        char want[64];
        snprintf(want, sizeof want, "at byte %zu)", bad);
        REQUIRE(st == GLMOE_E_ARG && g_ids.n == 0 && strstr(err.msg, want) && fuzz_msg_ok(err.msg, "encode: "));
    } else {
        REQUIRE(st == GLMOE_OK);
        for (size_t i = 0; i < g_ids.n; i++) REQUIRE(g_ids.ids[i] >= 0 && g_ids.ids[i] < n_ids);
        g_text.n = 0;
        REQUIRE(gm_tokenizer_decode(tok, g_ids.ids, g_ids.n, false, &g_text, &err) == GLMOE_OK);
        if (tok != g_tok[1]) REQUIRE(g_text.n == len && (len == 0 || memcmp(g_text.p, text, len) == 0));
        g_streamed.n = 0;
        gm_tok_stream s;
        gm_tok_stream_init(&s, tok, false);
        for (size_t i = 0; i < g_ids.n; i++) REQUIRE(gm_tok_stream_push(&s, g_ids.ids[i], &g_streamed, &err) == GLMOE_OK);
        REQUIRE(gm_tok_stream_flush(&s, &g_streamed, &err) == GLMOE_OK);
        REQUIRE(g_streamed.n == g_text.n && (g_text.n == 0 || memcmp(g_streamed.p, g_text.p, g_text.n) == 0));
    }

    /* The same bytes as ids: 16-bit little-endian values, shifted so that a few are negative. */
    g_ids2.n = 0;
    bool any_unknown = false;
    for (size_t i = 0; i + 1 < len; i += 2) {
        int32_t id = (int32_t)(((unsigned)(uint8_t)text[i] | (unsigned)(uint8_t)text[i + 1] << 8) % (unsigned)(n_ids + 16)) - 8;
        size_t tl;
        any_unknown |= gm_tokenizer_id_to_token(tok, id, &tl) == NULL;
        gm_tok_ids_push(&g_ids2, id);
    }
    g_text.n = 0;
    st = gm_tokenizer_decode(tok, g_ids2.ids, g_ids2.n, (flags & 1) != 0, &g_text, &err);
    REQUIRE(any_unknown ? (st == GLMOE_E_TOKEN && g_text.n == 0) : st == GLMOE_OK);
    if (st == GLMOE_OK) REQUIRE(gm_utf8_check((const uint8_t *)g_text.p, g_text.n) == g_text.n);
    free(text);
    return 0;
}
