/*
 * fuzz_tool_calls.c — libFuzzer target for the tool-call parser (chat_parse_tool_calls in
 * src/tokenizer/chat.h, and the public glmoe_chat_parse_tool_calls over it), which reads what a
 * model wrote: as hostile as any prompt.
 *
 * Input: byte 0 chooses whether the parser sees a tools list (which makes some arguments strings
 * verbatim); the rest is the assistant text. Promises: a parse gives an array of
 * {"type": "function", "function": {"name": non-empty string, "arguments": object}} and content
 * that is the text before the first <tool_call>; the calls render again as an assistant message
 * (the renderer accepts what the parser makes); a refusal is GLMOE_E_FORMAT with one line. The
 * public call agrees: the same refusal, or (for content that is UTF-8) JSON whose content is that
 * text and whose calls carry the same names and, as text, the same argument objects.
 *
 * Seeds: tests/fuzz/corpus/tool_calls/. Build and run: `make fuzz`.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "glmoe.h"
#include "tokenizer/chat.h"
#include "tokenizer/utf8.h"

static json_t *g_tools;
static char *g_tools_json;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_tools = json_loads("[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": "
                         "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, "
                         "\"days\": {\"type\": \"integer\"}}}}}]", 0, NULL);
    g_tools_json = g_tools ? json_dumps(g_tools, JSON_COMPACT) : NULL;
    return g_tools && g_tools_json ? 0 : 1;
}

/* The public call on the same text: it must agree with the internal parse (calls, content). */
static void check_public(const char *text, size_t len, bool with_tools, glmoe_status st, const json_t *calls,
                         const char *content, size_t clen, const char *msg) {
    char *out = NULL, err[GM_ERR_MSG_MAX];
    size_t out_len = 0;
    glmoe_status pst = glmoe_chat_parse_tool_calls(&out, &out_len, text, len, with_tools ? g_tools_json : NULL, err, sizeof err);
    if (st != GLMOE_OK) {
        REQUIRE(pst == st && out == NULL && strcmp(err, msg) == 0);
        return;
    }
    if (gm_utf8_check((const uint8_t *)content, clen) != clen) {
        REQUIRE(pst == GLMOE_E_FORMAT && out == NULL && fuzz_msg_ok(err, "content: not valid UTF-8"));
        return;
    }
    if (pst == GLMOE_E_NOMEM) return;
    REQUIRE(pst == GLMOE_OK && out && out_len == strlen(out));
    json_t *root = json_loads(out, JSON_ALLOW_NUL, NULL); /* content keeps the model's NULs, as \u0000 */
    REQUIRE(root);
    const json_t *c = json_object_get(root, "content"), *pc = json_object_get(root, "tool_calls");
    REQUIRE(json_string_length(c) == clen && memcmp(json_string_value(c), content, clen) == 0);
    REQUIRE(json_array_size(pc) == json_array_size(calls));
    for (size_t i = 0; i < json_array_size(calls); i++) {
        const json_t *fn = json_object_get(json_array_get(calls, i), "function");
        const json_t *pfn = json_object_get(json_array_get(pc, i), "function");
        REQUIRE(json_equal(json_object_get(fn, "name"), json_object_get(pfn, "name")));
        json_t *args = json_loads(json_string_value(json_object_get(pfn, "arguments")), JSON_DECODE_ANY, NULL);
        REQUIRE(args && json_equal(args, json_object_get(fn, "arguments")));
        json_decref(args);
    }
    json_decref(root);
    glmoe_free(out);
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
        if (st == GLMOE_E_FORMAT) check_public(text, len, tools != NULL, st, NULL, NULL, 0, err.msg);
        free(text);
        return 0;
    }
    REQUIRE(json_is_array(calls) && content != NULL);
    const char *first = memmem(text, len, "<tool_call>", 11);
    size_t clen = first ? (size_t)(first - text) : len;
    check_public(text, len, tools != NULL, st, calls, content, clen, NULL);
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
