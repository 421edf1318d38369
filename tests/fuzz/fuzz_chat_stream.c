/*
 * fuzz_chat_stream.c — libFuzzer target for the streaming turn parser (glmoe_chat_stream_* in
 * src/tokenizer/chat_stream.c), which reads what a model writes as it writes it: as hostile as any
 * prompt, and cut at points nobody chooses.
 *
 * Input: byte 0 chooses whether the stream sees a tools list (bit 0: some arguments then stay
 * strings) and whether the turn starts inside the reasoning (bit 1); byte 1 seeds where the text
 * is cut; the rest is the assistant's text. The text is streamed whole, one byte at a time, cut in
 * two at a point the seed picks, and in two series of random pieces (empty pushes included).
 * Promises (tests/chat_stream_check.h): every way gives the one-shot result — the reasoning block
 * split off by glmoe.h's rule, glmoe_chat_parse_tool_calls on the rest — byte for byte, or fails
 * when it fails, with the same status, and with one message whichever way it was cut; deltas come
 * in order, non-empty, UTF-8 and NUL-terminated; outside a call at most 10 bytes are held besides
 * the reasoning's trailing newlines; a failed stream stays failed. No crash, no leak.
 *
 * Seeds: tests/fuzz/corpus/chat_stream/ (tests/fuzz/make_corpus.py). Build and run: `make fuzz`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../chat_stream_check.h"
#include "fuzz_util.h"
#include "glmoe.h"

static const char *TOOLS = "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
                           "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, "
                           "\"days\": {\"type\": \"integer\"}}}}}]";

/* A small, fixed PRNG: the cuts depend on the input only. */
static uint32_t next(uint32_t *x) {
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const char *tools = (data[0] & 1) ? TOOLS : NULL;
    const bool sir = (data[0] & 2) != 0;
    uint32_t seed = 0x9E3779B9u ^ data[1];
    const size_t len = size - 2;
    char *text = fuzz_cstr(data + 2, len); /* exactly sized: ASan sees a read past the end */
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    if (!text || !cuts) {
        free(text);
        free(cuts);
        return 0;
    }
    cs_result want, got;
    char why[1024], first_msg[512] = "";
    cs_reference(&want, text, len, sir, tools);
    REQUIRE(want.st == GLMOE_OK || want.st == GLMOE_E_FORMAT);
    for (int way = 0; way < 5; way++) {
        size_t n_cuts = 0;
        if (way == 1) { /* a byte at a time */
            for (size_t i = 0; i < len; i++) cuts[n_cuts++] = 1;
        } else if (way == 2) { /* in two */
            cuts[n_cuts++] = len ? next(&seed) % (len + 1) : 0;
        } else if (way >= 3) { /* random pieces, up to 3 and up to 40 bytes */
            size_t most = way == 3 ? 4 : 41;
            for (size_t at = 0; at < len && n_cuts < len;) {
                size_t k = next(&seed) % most;
                cuts[n_cuts++] = k;
                at += k;
            }
        }
        if (!cs_stream(&got, text, len, sir, tools, cuts, n_cuts, why, sizeof why)) {
            fprintf(stderr, "way %d: %s\n", way, why);
            REQUIRE(!"a promise of the stream");
        }
        if (!cs_equal(&got, &want, why, sizeof why)) {
            fprintf(stderr, "way %d: %s\n", way, why);
            REQUIRE(!"the streamed result equals the one-shot one");
        }
        if (got.st != GLMOE_OK) {
            REQUIRE(fuzz_msg_ok(got.msg, ""));
            if (way == 0) snprintf(first_msg, sizeof first_msg, "%s", got.msg);
            else if (strcmp(got.msg, first_msg) != 0) {
                fprintf(stderr, "way %d: \"%s\", whole: \"%s\"\n", way, got.msg, first_msg);
                REQUIRE(!"one message however the text is cut");
            }
        }
        cs_result_free(&got);
    }
    cs_result_free(&want);
    free(cuts);
    free(text);
    return 0;
}
