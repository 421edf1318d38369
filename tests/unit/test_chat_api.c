/*
 * test_chat_api.c — glmoe_chat_parse_tool_calls through the public header, as an OpenAI-compatible
 * server calls it: no calls, one call, several calls in the GLM-4.5 and GLM-4.7 styles, argument
 * values that are JSON and values that stay strings (with and without a tools list), the exact
 * "arguments" text, and every malformed or unterminated tag with its one-line error; argument
 * checks and the error buffer. The parser's own corner cases are in test_chat.c.
 *
 * Usage: test_chat_api <repo root>   (the root is not needed)
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "test.h"

static const char *TOOLS =
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": \"integer\"},"
    " \"code\": {\"type\": \"string\"}}}}}]";

/* Parses text and compares the whole JSON result with `want` (compact, keys in order). */
static void expect_parse(const char *what, const char *text, const char *tools, const char *want) {
    char *out = NULL, err[256] = "";
    size_t out_len = 0;
    glmoe_status st = glmoe_chat_parse_tool_calls(&out, &out_len, text, strlen(text), tools, err, sizeof err);
    CHECK(st == GLMOE_OK && out && out_len == strlen(out), "%s: status %d: %s", what, st, err);
    CHECK(out && strcmp(out, want) == 0, "%s:\n    got:  %s\n    want: %s", what, out ? out : "(null)", want);
    /* what a server does next: the arguments text is a JSON object */
    json_t *root = out ? json_loads(out, 0, NULL) : NULL;
    size_t i;
    json_t *call;
    json_array_foreach(json_object_get(root, "tool_calls"), i, call) {
        const char *args = json_string_value(json_object_get(json_object_get(call, "function"), "arguments"));
        json_t *obj = args ? json_loads(args, 0, NULL) : NULL;
        CHECK(json_is_object(obj), "%s: call %zu: arguments is not a JSON object's text", what, i);
        json_decref(obj);
    }
    json_decref(root);
    glmoe_free(out);
}

static void expect_error(const char *text, size_t len, const char *tools, glmoe_status want, const char *want_msg) {
    char *out = (char *)1, err[256] = "";
    size_t out_len = 7;
    glmoe_status st = glmoe_chat_parse_tool_calls(&out, &out_len, text, len, tools, err, sizeof err);
    CHECK(st == want && out == NULL && out_len == 0, "error case \"%.40s\": status %d, want %d", text ? text : "(null)",
          st, want);
    CHECK(strcmp(err, want_msg) == 0, "error case \"%.40s\":\n    got:  %s\n    want: %s", text ? text : "(null)", err,
          want_msg);
}

static void test_calls(void) {
    /* no calls: everything is content */
    expect_parse("no calls", "The weather is fine.", NULL, "{\"content\":\"The weather is fine.\",\"tool_calls\":[]}");
    expect_parse("empty", "", NULL, "{\"content\":\"\",\"tool_calls\":[]}");

    /* one call, GLM-4.5 style, the reasoning and the text before it kept as content */
    expect_parse("one call (GLM-4.5)",
                 "<think>I need the weather.</think>\nLet me check.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
                 "<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>",
                 TOOLS,
                 "{\"content\":\"<think>I need the weather.</think>\\nLet me check.\\n\",\"tool_calls\":[{\"type\":"
                 "\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\": \\\"Paris\\\", "
                 "\\\"days\\\": 3}\"}}]}");

    /* several calls, GLM-4.7 style (no newlines), a call without arguments, text after the calls
     * dropped */
    expect_parse("several calls (GLM-4.7)",
                 "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Lyon</arg_value></tool_call>"
                 "<tool_call>get_time</tool_call><tool_call>get_weather<arg_key>city</arg_key><arg_value>Nice"
                 "</arg_value></tool_call>\n",
                 TOOLS,
                 "{\"content\":\"\",\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                 "\"arguments\":\"{\\\"city\\\": \\\"Lyon\\\"}\"}},{\"type\":\"function\",\"function\":{\"name\":"
                 "\"get_time\",\"arguments\":\"{}\"}},{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                 "\"arguments\":\"{\\\"city\\\": \\\"Nice\\\"}\"}}]}");

    /* values: JSON where the text is JSON (numbers, booleans, null, arrays, objects, quoted
     * strings), the text itself where it is not, verbatim where the tools say "string" */
    expect_parse("JSON values vs strings",
                 "<tool_call>f\n<arg_key>n</arg_key>\n<arg_value> 2.5 </arg_value>\n<arg_key>b</arg_key>\n"
                 "<arg_value>true</arg_value>\n<arg_key>z</arg_key>\n<arg_value>null</arg_value>\n"
                 "<arg_key>list</arg_key>\n<arg_value>[1, \"é\"]</arg_value>\n<arg_key>obj</arg_key>\n"
                 "<arg_value>{\"a\": {\"b\": 1}}</arg_value>\n<arg_key>q</arg_key>\n<arg_value>\"quoted\"</arg_value>\n"
                 "<arg_key>word</arg_key>\n<arg_value>Paris, France</arg_value>\n</tool_call>",
                 NULL,
                 "{\"content\":\"\",\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                 "\"{\\\"n\\\": 2.5, \\\"b\\\": true, \\\"z\\\": null, \\\"list\\\": [1, \\\"é\\\"], \\\"obj\\\": "
                 "{\\\"a\\\": {\\\"b\\\": 1}}, \\\"q\\\": \\\"quoted\\\", \\\"word\\\": \\\"Paris, France\\\"}\"}}]}");
    expect_parse("a string parameter stays verbatim",
                 "<tool_call>get_weather\n<arg_key>code</arg_key>\n<arg_value>007</arg_value>\n<arg_key>days"
                 "</arg_key>\n<arg_value>007</arg_value>\n<arg_key>city</arg_key>\n<arg_value> 12 </arg_value>\n"
                 "</tool_call>",
                 TOOLS,
                 "{\"content\":\"\",\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                 "\"arguments\":\"{\\\"code\\\": \\\"007\\\", \\\"days\\\": \\\"007\\\", \\\"city\\\": \\\" 12 \\\"}\"}}]}");
    expect_parse("without tools the same text is parsed",
                 "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value> 12 </arg_value>\n</tool_call>", "null",
                 "{\"content\":\"\",\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                 "\"arguments\":\"{\\\"city\\\": 12}\"}}]}");
    /* a repeated key keeps its first place and takes the last value (a Python dict) */
    expect_parse("repeated key",
                 "<tool_call>f<arg_key>a</arg_key><arg_value>1</arg_value><arg_key>b</arg_key><arg_value>2</arg_value>"
                 "<arg_key>a</arg_key><arg_value>3</arg_value></tool_call>",
                 NULL,
                 "{\"content\":\"\",\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":"
                 "\"{\\\"a\\\": 3, \\\"b\\\": 2}\"}}]}");
}

static void test_errors(void) {
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {"Sure. <tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>",
         "tool call 0 at byte 6: <tool_call> without </tool_call>"},
        {"<tool_call>f</tool_call><tool_call>g", "tool call 1 at byte 24: <tool_call> without </tool_call>"},
        {"<tool_call>\n<arg_key>a</arg_key><arg_value>1</arg_value></tool_call>", "tool call 0 at byte 11: empty function name"},
        {"<tool_call>f\n<arg_key>a<arg_value>1</arg_value></tool_call>", "tool call 0 at byte 13: <arg_key> without </arg_key>"},
        {"<tool_call>f\n<arg_key>a</arg_key>x<arg_value>1</arg_value></tool_call>",
         "tool call 0 at byte 23: </arg_key> not followed by <arg_value>"},
        {"<tool_call>f\n<arg_key>a</arg_key></tool_call>", "tool call 0 at byte 23: </arg_key> not followed by <arg_value>"},
        {"<tool_call>f\n<arg_key>a</arg_key> <arg_value>1</tool_call>", "tool call 0 at byte 34: <arg_value> without </arg_value>"},
        {"<tool_call>f\n<arg_key>a</arg_key><arg_value>\xff</arg_value></tool_call>",
         "tool call 0: an argument value is not valid UTF-8 (or holds NUL)"},
        {"caf\xc3 <tool_call>f</tool_call>", "content: not valid UTF-8 (ill-formed sequence at byte 3)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(cases[i].text, strlen(cases[i].text), NULL, GLMOE_E_FORMAT, cases[i].msg);

    /* arguments */
    expect_error(NULL, 3, NULL, GLMOE_E_ARG, "glmoe_chat_parse_tool_calls: out is required, and text unless len is 0");
    expect_error("x", 1, "[{", GLMOE_E_ARG, "tools: invalid JSON at line 1 column 2: string or '}' expected near end of file");
    expect_error("x", 1, "{}", GLMOE_E_ARG, "tools: expected an array of tools or null");
    char err[8];
    CHECK(glmoe_chat_parse_tool_calls(NULL, NULL, "x", 1, NULL, err, sizeof err) == GLMOE_E_ARG && strlen(err) == 7,
          "NULL out, a short error buffer is cut: \"%s\"", err);
    CHECK(glmoe_chat_parse_tool_calls(NULL, NULL, "x", 1, NULL, NULL, 0) == GLMOE_E_ARG, "NULL error buffer is allowed");

    /* NULL text with len 0, no out_len: an empty result */
    char *out = NULL;
    CHECK(glmoe_chat_parse_tool_calls(&out, NULL, NULL, 0, NULL, NULL, 0) == GLMOE_OK && out &&
              strcmp(out, "{\"content\":\"\",\"tool_calls\":[]}") == 0,
          "NULL text of length 0: %s", out ? out : "(null)");
    glmoe_free(out);
    /* the text need not be NUL-terminated, and a NUL in the content is kept */
    const char raw[] = "a\0b<tool_call>f</tool_call>XYZ";
    out = NULL;
    CHECK(glmoe_chat_parse_tool_calls(&out, NULL, raw, sizeof raw - 4, NULL, NULL, 0) == GLMOE_OK && out &&
              strcmp(out, "{\"content\":\"a\\u0000b\",\"tool_calls\":[{\"type\":\"function\",\"function\":{\"name\":"
                          "\"f\",\"arguments\":\"{}\"}}]}") == 0,
          "length-delimited text: %s", out ? out : "(null)");
    glmoe_free(out);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    test_calls();
    test_errors();
    return test_summary("test_chat_api");
}
