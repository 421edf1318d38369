/*
 * fuzz_chat.c — libFuzzer target for chat rendering from arbitrary message JSON (the public
 * glmoe_chat_render, which is chat_render_json in src/tokenizer/chat.h behind argument checks).
 *
 * Input: byte 0 sets the options (bit 0 add_generation_prompt; bits 1-2 enable_thinking and
 * bits 3-4 clear_thinking: 0 unset, 1 false, 2 true; bit 5 the GLM-4.7 style); the rest is the
 * messages JSON, optionally followed by a NUL byte and the tools JSON. Promises: a rendering is
 * NUL-terminated, *out_len long (the parser refuses \u0000, so no NUL inside), and starts with
 * [gMASK]<sop>; a refusal is GLMOE_E_ARG (or out of memory) with one line of message and *out
 * NULL.
 *
 * Seeds: tests/fuzz/corpus/chat/ (the conversations of the tests/data/chat golden files).
 * Build and run: `make fuzz`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "glmoe.h"

static int flag_of(unsigned bits) { return bits == 0 ? -1 : bits == 1 ? 0 : 1; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    glmoe_chat_params p = glmoe_chat_params_default();
    p.add_generation_prompt = data[0] & 1;
    p.enable_thinking = flag_of((data[0] >> 1) & 3u);
    p.clear_thinking = flag_of((data[0] >> 3) & 3u);
    p.style = (data[0] >> 5) & 1 ? GLMOE_CHAT_GLM47 : GLMOE_CHAT_GLM45;
    char *messages, *tools;
    size_t mlen, tlen;
    fuzz_split(data + 1, size - 1, &messages, &mlen, &tools, &tlen);
    if (!messages || (tlen && !tools)) goto done;

    char *out = (char *)&p; /* must be overwritten */
    size_t out_len = 12345;
    char err[512] = "";
    glmoe_status st = glmoe_chat_render(&out, &out_len, messages, tools, &p, err, sizeof err);
    if (st != GLMOE_OK) {
        REQUIRE(out == NULL);
        REQUIRE(st == GLMOE_E_ARG || st == GLMOE_E_NOMEM);
        REQUIRE(fuzz_msg_ok(err, ""));
    } else {
        REQUIRE(out != NULL && strlen(out) == out_len);
        REQUIRE(strncmp(out, "[gMASK]<sop>", 12) == 0);
        glmoe_free(out);
    }
done:
    free(messages);
    free(tools);
    return 0;
}
