/*
 * test_tokenizer_api.c — the public glmoe_tokenizer_* calls: loading and its error buffer, caller
 * sized buffers (too small: GLMOE_E_ARG and the size needed), per-handle messages, the stream,
 * lookups and info. Parity itself is tested in test_tokenizer.c.
 * Usage: test_tokenizer_api <repo root>
 */
#include <stdio.h>
#include <string.h>

#include "glmoe.h"
#include "test.h"

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : ".";
    char path[4096], err[256];
    glmoe_tokenizer *tok = (glmoe_tokenizer *)1;

    /* a failing load: NULL handle, the message names the file */
    glmoe_status st = glmoe_tokenizer_load(&tok, "/nonexistent/dir/tokenizer.json", err, sizeof err);
    CHECK(st == GLMOE_E_IO && tok == NULL && strstr(err, "/nonexistent/dir/tokenizer.json"), "missing file: %s", err);
    st = glmoe_tokenizer_load(&tok, NULL, err, sizeof err);
    CHECK(st == GLMOE_E_ARG && tok == NULL, "NULL path");
    st = glmoe_tokenizer_load(&tok, "/nonexistent", NULL, 0);
    CHECK(st != GLMOE_OK, "NULL error buffer is allowed");

    snprintf(path, sizeof path, "%s/tests/data/tokenizers/qwen3", root);
    st = glmoe_tokenizer_load(&tok, path, err, sizeof err);
    CHECK(st == GLMOE_OK && tok && err[0] == '\0', "load %s: %s", path, err);
    if (st != GLMOE_OK) return test_summary("test_tokenizer_api");
    CHECK(strcmp(glmoe_tokenizer_errmsg(tok), "") == 0, "no message after a clean load");

    /* encode: "Hello world" is [9707, 1879] in Qwen3 */
    int32_t ids[64];
    size_t n = 0;
    st = glmoe_tokenizer_encode(tok, "Hello world", 11, GLMOE_TOKENIZE_PARSE_SPECIAL, ids, 64, &n);
    CHECK(st == GLMOE_OK && n == 2 && ids[0] == 9707 && ids[1] == 1879, "encode Hello world: %zu ids", n);
    /* too small: the ones that fit are written, n tells how many are needed */
    int32_t one[1] = {-7};
    st = glmoe_tokenizer_encode(tok, "Hello world", 11, 0, one, 1, &n);
    CHECK(st == GLMOE_E_ARG && n == 2 && one[0] == 9707 && strstr(glmoe_tokenizer_errmsg(tok), "do not fit"),
          "encode into 1 slot: st %d n %zu", st, n);
    st = glmoe_tokenizer_encode(tok, "Hello world", 11, 0, NULL, 0, &n);
    CHECK(st == GLMOE_E_ARG && n == 2, "encode with no buffer reports the size");
    /* special tokens parsed or not */
    st = glmoe_tokenizer_encode(tok, "<|im_start|>", 12, GLMOE_TOKENIZE_PARSE_SPECIAL, ids, 64, &n);
    CHECK(st == GLMOE_OK && n == 1 && ids[0] == 151644, "special parsed");
    st = glmoe_tokenizer_encode(tok, "<|im_start|>", 12, 0, ids, 64, &n);
    CHECK(st == GLMOE_OK && n > 1, "special not parsed: %zu ids", n);
    /* ill-formed UTF-8: refused, the message gives the offset */
    st = glmoe_tokenizer_encode(tok, "ok\xC3(", 4, 0, ids, 64, &n);
    CHECK(st == GLMOE_E_ARG && n == 0 && strstr(glmoe_tokenizer_errmsg(tok), "byte 2"), "bad UTF-8: %s", glmoe_tokenizer_errmsg(tok));
    st = glmoe_tokenizer_encode(NULL, "x", 1, 0, ids, 64, &n);
    CHECK(st == GLMOE_E_ARG, "NULL tokenizer");

    /* decode, with room, without, and with skip_special */
    char text[64];
    size_t len = 0;
    int32_t msg[] = {151644, 9707, 1879, 151645};
    st = glmoe_tokenizer_decode(tok, msg, 4, false, text, sizeof text, &len);
    CHECK(st == GLMOE_OK && len == 33 && strcmp(text, "<|im_start|>Hello world<|im_end|>") == 0, "decode: %s", text);
    st = glmoe_tokenizer_decode(tok, msg, 4, true, text, sizeof text, &len);
    CHECK(st == GLMOE_OK && len == 11 && strcmp(text, "Hello world") == 0, "decode skip_special: %s", text);
    char small[6];
    st = glmoe_tokenizer_decode(tok, msg + 1, 2, false, small, sizeof small, &len);
    CHECK(st == GLMOE_E_ARG && len == 11 && strcmp(small, "Hello") == 0, "decode into 6 bytes: st %d len %zu", st, len);
    st = glmoe_tokenizer_decode(tok, msg + 1, 2, false, small, 0, &len);
    CHECK(st == GLMOE_E_ARG && len == 11, "decode with no buffer reports the size");
    int32_t unknown[] = {9707, 999999};
    st = glmoe_tokenizer_decode(tok, unknown, 2, false, text, sizeof text, &len);
    CHECK(st == GLMOE_E_TOKEN && strstr(glmoe_tokenizer_errmsg(tok), "999999"), "unknown id: %s", glmoe_tokenizer_errmsg(tok));

    /* the stream drops the special tokens (skip_special) and passes the text through */
    glmoe_tokenizer_stream *s = NULL;
    st = glmoe_tokenizer_stream_create(&s, tok, true);
    CHECK(st == GLMOE_OK && s, "stream create");
    const char *piece;
    size_t plen;
    int32_t parts[] = {151644, 9707, 101059, 151645};
    char joined[64] = "";
    for (int i = 0; s && i < 4; i++) {
        st = glmoe_tokenizer_stream_push(s, parts[i], &piece, &plen);
        CHECK(st == GLMOE_OK && strlen(piece) == plen, "stream push %d", i);
        strncat(joined, piece, sizeof joined - strlen(joined) - 1);
    }
    if (s) {
        st = glmoe_tokenizer_stream_flush(s, &piece, &plen);
        CHECK(st == GLMOE_OK && plen == 0 && piece[0] == '\0', "flush with nothing held");
        CHECK(strcmp(joined, "Hello\xE6\x97\xA5\xE6\x9C\xAC") == 0, "stream text: %s", joined);
        st = glmoe_tokenizer_stream_push(s, -3, &piece, &plen);
        CHECK(st == GLMOE_E_TOKEN && plen == 0, "stream unknown id");
    }
    glmoe_tokenizer_stream_free(s);
    glmoe_tokenizer_stream_free(NULL);

    /* lookups and info */
    CHECK(glmoe_tokenizer_n_vocab(tok) == 151669, "n_vocab %d", glmoe_tokenizer_n_vocab(tok));
    CHECK(glmoe_tokenizer_token_to_id(tok, "<|im_end|>", 10) == 151645, "token_to_id");
    CHECK(glmoe_tokenizer_token_to_id(tok, "<|im_end|", 9) == -1, "token_to_id unknown");
    const char *t = glmoe_tokenizer_id_to_token(tok, 9707, &len);
    CHECK(t && len == 5 && memcmp(t, "Hello", 5) == 0, "id_to_token");
    CHECK(glmoe_tokenizer_id_to_token(tok, 151669, &len) == NULL, "id_to_token past the end");
    CHECK(glmoe_tokenizer_is_special(tok, 151645) && !glmoe_tokenizer_is_special(tok, 9707), "is_special");
    glmoe_tokenizer_info info;
    st = glmoe_tokenizer_get_info(tok, &info);
    CHECK(st == GLMOE_OK && info.n_vocab == 151669 && info.n_added == 26 && info.eos_id == 151645 && info.bos_id == -1 &&
              info.pad_id == 151643 && !info.add_bos && info.load_seconds > 0,
          "info: n_vocab %d n_added %d eos %d", info.n_vocab, info.n_added, info.eos_id);
    CHECK(glmoe_tokenizer_n_vocab(NULL) == 0 && glmoe_tokenizer_token_to_id(NULL, "a", 1) == -1 &&
              glmoe_tokenizer_id_to_token(NULL, 0, &len) == NULL && !glmoe_tokenizer_is_special(NULL, 0) &&
              glmoe_tokenizer_get_info(NULL, &info) == GLMOE_E_ARG && glmoe_tokenizer_errmsg(NULL)[0] != '\0',
          "NULL tokenizer lookups");
    glmoe_tokenizer_free(tok);
    glmoe_tokenizer_free(NULL);
    return test_summary("test_tokenizer_api");
}
