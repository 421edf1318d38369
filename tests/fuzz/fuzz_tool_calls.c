/*
 * fuzz_tool_calls.c — libFuzzer target for the tool-call parser (chat_parse_tool_calls in
 * src/tokenizer/chat.h), which reads what a model wrote: as hostile as any prompt.
 *
 * Input: byte 0 chooses whether the parser sees a tools list (which makes some arguments strings
 * verbatim); the rest is the assistant text. Promises: a parse gives an array of
 * {"type": "function", "function": {"name": non-empty string, "arguments": object}} and content
 * that is the text before the first <tool_call>; the calls render again as an assistant message
 * (the renderer accepts what the parser makes); a refusal is GLMOE_E_FORMAT with one line.
 *
 * Seeds: tests/fuzz/corpus/tool_calls/. Build and run: `make fuzz`.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer/chat.h"

static json_t *g_tools;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
                         "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, "
                         "\"days\": {\"type\": \"integer\"}}}}}]", 0, NULL);
    return g_tools ? 0 : 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    const json_t *tools = (data[0] & 1) ? g_tools : NULL;
    const size_t len = size - 1;
    char *text = malloc(len ? len : 1);
    if (!text) return 0;
    if (len) memcpy(text, data + 1, len);
    json_t *calls = NULL;
    char *content = NULL;
    gm_err err = {0};
    glmoe_status st = chat_parse_tool_calls(&calls, &content, text, len, tools, &err);
    if (st != GLMOE_OK) {
        REQUIRE(calls == NULL && content == NULL);
        REQUIRE(st == GLMOE_E_FORMAT || st == GLMOE_E_NOMEM);
        REQUIRE(fuzz_msg_ok(err.msg, ""));
        free(text);
        return 0;
    }
    REQUIRE(json_is_array(calls) && content != NULL);
    const char *first = memmem(text, len, "<tool_call>", 11);
    size_t clen = first ? (size_t)(first - text) : len;
    REQUIRE(memcmp(content, text, clen) == 0 && content[clen] == '\0');
    size_t i;
    json_t *c;
    json_array_foreach(calls, i, c) {
        const json_t *fn = json_object_get(c, "function");
        REQUIRE(json_is_string(json_object_get(c, "type")) && json_is_object(fn));
        REQUIRE(json_is_string(json_object_get(fn, "name")) && json_string_length(json_object_get(fn, "name")) > 0);
        REQUIRE(json_is_object(json_object_get(fn, "arguments")));
    }
    /* What the parser makes, the renderer takes back (when the content is text it accepts). */
    json_t *msg = json_pack("[{s:s, s:s%, s:O}]", "role", "assistant", "content", content, clen, "tool_calls", calls);
    if (msg) {
        char *out = NULL;
        size_t out_len = 0;
        st = chat_render(&out, &out_len, msg, tools, NULL, &err);
        REQUIRE(st == GLMOE_OK || (st == GLMOE_E_ARG && fuzz_msg_ok(err.msg, "")));
        free(out);
        json_decref(msg);
    }
    json_decref(calls);
    free(content);
    free(text);
    return 0;
}
