/*
 * fuzz_tokenizer_load.c — libFuzzer target for tokenizer.json loading (gm_tokenizer_load_json in
 * src/tokenizer/tokenizer.h: jansson for the small parts, the dedicated scanner for model.vocab
 * and model.merges, Oniguruma for the pre-tokenizer regexes, utf8proc for normalizers).
 *
 * Input: tokenizer.json text. A refusal must be a status and one line starting with the file's
 * name. A tokenizer that loads must work: encoding a fixed text (ASCII, digits, whitespace runs,
 * CJK, emoji and the added tokens' own text) gives ids that all exist, decode gives them back as
 * text, the streaming decoder agrees with decode, and every id's token string is reachable.
 *
 * Seeds: tests/fuzz/corpus/tokenizer_load/, small tokenizer.json files cut from the demo model's,
 * Qwen3's and DeepSeek-V3's (first merges only, every other part kept; tests/fuzz/make_corpus.py).
 * Build and run: `make fuzz` (cmake/fuzz.cmake, tests/fuzz/run_fuzzers.sh).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

static const char k_text[] = "Hello,  world! 12345 \t\n\r\n  x\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x98\x80 it's <s><|endoftext|>[MASK]";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *json = fuzz_cstr(data, size);
    if (!json) return 0;
    gm_tokenizer *tok = NULL;
    gm_err err = {0};
    glmoe_status st = gm_tokenizer_load_json(&tok, json, size, "fuzz.json", &err);
    free(json);
    if (st != GLMOE_OK) {
        REQUIRE(tok == NULL);
        REQUIRE(st == GLMOE_E_FORMAT || st == GLMOE_E_UNSUPPORTED || st == GLMOE_E_NOMEM);
        REQUIRE(fuzz_msg_ok(err.msg, "fuzz.json: "));
        return 0;
    }
    const int32_t n_ids = gm_tokenizer_n_ids(tok);
    REQUIRE(n_ids > 0);
    gm_tok_ids ids = {0};
    gm_tok_bytes text = {0}, streamed = {0};
    for (unsigned flags = 0; flags < 4; flags++) {
        ids.n = 0;
        st = gm_tokenizer_encode(tok, k_text, sizeof k_text - 1, flags, &ids, &err);
        /* a regex that hits Oniguruma's backtracking limit is the only refusal of valid text */
        REQUIRE(st == GLMOE_OK || (st == GLMOE_E_ARG && fuzz_msg_ok(err.msg, "")));
        if (st != GLMOE_OK) continue;
        for (size_t i = 0; i < ids.n; i++) {
            size_t len;
            REQUIRE(ids.ids[i] >= 0 && ids.ids[i] < n_ids);
            REQUIRE(gm_tokenizer_id_to_token(tok, ids.ids[i], &len) != NULL);
        }
        text.n = streamed.n = 0;
        REQUIRE(gm_tokenizer_decode(tok, ids.ids, ids.n, false, &text, &err) == GLMOE_OK);
        gm_tok_stream s;
        gm_tok_stream_init(&s, tok, false);
        for (size_t i = 0; i < ids.n; i++) REQUIRE(gm_tok_stream_push(&s, ids.ids[i], &streamed, &err) == GLMOE_OK);
        REQUIRE(gm_tok_stream_flush(&s, &streamed, &err) == GLMOE_OK);
        REQUIRE(streamed.n == text.n && (text.n == 0 || memcmp(streamed.p, text.p, text.n) == 0));
    }
    /* every id either has a token string or is a hole that decode refuses */
    for (int32_t id = 0; id < n_ids && id < 4096; id++) {
        size_t len;
        const char *t = gm_tokenizer_id_to_token(tok, id, &len);
        text.n = 0;
        st = gm_tokenizer_decode(tok, &id, 1, false, &text, &err);
        REQUIRE(t ? st == GLMOE_OK : st == GLMOE_E_TOKEN);
        if (t) REQUIRE(gm_tokenizer_token_to_id(tok, t, len) >= 0);
    }
    int32_t bad[2] = {-1, n_ids};
    REQUIRE(gm_tokenizer_decode(tok, bad, 1, false, &text, &err) == GLMOE_E_TOKEN);
    REQUIRE(gm_tokenizer_decode(tok, bad + 1, 1, false, &text, &err) == GLMOE_E_TOKEN);
    gm_tok_ids_free(&ids);
    gm_tok_bytes_free(&text);
    gm_tok_bytes_free(&streamed);
    gm_tokenizer_free(tok);
    return 0;
}
