/* chat_api.c — the public chat-format entry points (glmoe_chat_*), over chat.c: argument checks,
 * the OpenAI shape of parsed tool calls, and errors into the caller's buffer. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "glmoe.h"
#include "tokenizer/chat.h"
#include "tokenizer/utf8.h"

glmoe_chat_params glmoe_chat_params_default(void) {
    return (glmoe_chat_params){.add_generation_prompt = true, .enable_thinking = -1, .clear_thinking = -1,
                               .style = GLMOE_CHAT_GLM45};
}

static chat_flag flag_of(int v) { return v < 0 ? CHAT_FLAG_UNSET : v ? CHAT_FLAG_TRUE : CHAT_FLAG_FALSE; }

glmoe_status glmoe_chat_render(char **out, size_t *out_len, const char *messages_json, const char *tools_json,
                               const glmoe_chat_params *params, char *err, size_t err_size) {
    gm_err e = {0};
    if (!out || !out_len || !messages_json) {
        if (err && err_size) snprintf(err, err_size, "glmoe_chat_render: out, out_len and messages_json are required");
        return GLMOE_E_ARG;
    }
    glmoe_chat_params p = params ? *params : glmoe_chat_params_default();
    chat_options opt;
    chat_options_default(&opt);
    opt.add_generation_prompt = p.add_generation_prompt;
    opt.enable_thinking = flag_of(p.enable_thinking);
    opt.clear_thinking = flag_of(p.clear_thinking);
    opt.style = p.style == GLMOE_CHAT_GLM47 ? CHAT_STYLE_GLM47 : CHAT_STYLE_GLM45;
    glmoe_status s = chat_render_json(out, out_len, messages_json, tools_json, &opt, &e);
    if (s && err && err_size) snprintf(err, err_size, "%s", e.msg);
    return s;
}

/* The parser's calls, {"type", "function": {"name", "arguments": {...}}}, as OpenAI sends them:
 * "arguments" becomes the object's text (chat_tool_call_arguments_text). In place. */
static glmoe_status arguments_as_text(json_t *calls, gm_err *err) {
    size_t i;
    json_t *call;
    json_array_foreach(calls, i, call) {
        char *text = NULL;
        glmoe_status st = chat_tool_call_arguments_text(&text, call, err);
        if (st != GLMOE_OK) return st;
        int bad = json_object_set_new(json_object_get(call, "function"), "arguments", json_string(text));
        free(text);
        if (bad) return gm_fail(err, GLMOE_E_NOMEM, "glmoe_chat_parse_tool_calls: out of memory");
    }
    return GLMOE_OK;
}

glmoe_status glmoe_chat_parse_tool_calls(char **out, size_t *out_len, const char *text, size_t len,
                                         const char *tools_json, char *err, size_t err_size) {
    gm_err e = {0};
    json_t *tools = NULL, *calls = NULL, *result = NULL;
    char *content = NULL;
    glmoe_status st = GLMOE_OK;
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!out || (!text && len)) {
        st = gm_fail(&e, GLMOE_E_ARG, "glmoe_chat_parse_tool_calls: out is required, and text unless len is 0");
        goto done;
    }
    if (tools_json) {
        json_error_t jerr; /* read as glmoe_chat_render reads it */
        tools = json_loads(tools_json, JSON_DECODE_ANY, &jerr);
        if (!tools) {
            st = gm_fail(&e, GLMOE_E_ARG, "tools: invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                         jerr.text);
            goto done;
        }
        if (!json_is_array(tools) && !json_is_null(tools)) {
            st = gm_fail(&e, GLMOE_E_ARG, "tools: expected an array of tools or null");
            goto done;
        }
    }
    if ((st = chat_parse_tool_calls(&calls, &content, text, len, tools, &e)) != GLMOE_OK) goto done;
    /* the content is the model's text up to the first <tool_call> (its bytes, NUL included) */
    const char *first = len ? memmem(text, len, "<tool_call>", 11) : NULL;
    size_t n_content = first ? (size_t)(first - text) : len;
    size_t bad = gm_utf8_check((const uint8_t *)content, n_content);
    if (bad != n_content) {
        st = gm_fail(&e, GLMOE_E_FORMAT, "content: not valid UTF-8 (ill-formed sequence at byte %zu)", bad);
        goto done;
    }
    if ((st = arguments_as_text(calls, &e)) != GLMOE_OK) goto done;
    result = json_pack("{s:s%, s:O}", "content", content, n_content, "tool_calls", calls);
    char *json = result ? json_dumps(result, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!json) {
        st = gm_fail(&e, GLMOE_E_NOMEM, "glmoe_chat_parse_tool_calls: out of memory");
        goto done;
    }
    *out = json;
    if (out_len) *out_len = strlen(json);
done:
    if (st != GLMOE_OK && err && err_size) snprintf(err, err_size, "%s", e.msg);
    json_decref(result);
    json_decref(calls);
    json_decref(tools);
    free(content);
    return st;
}

void glmoe_free(void *p) { free(p); }
