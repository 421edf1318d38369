/*
 * chat.h — the GLM-4.5 chat format: renders a conversation to the exact text of the official
 * chat template, and parses the tool calls a model writes back.
 *
 * The renderer is plain C, not a Jinja engine: it reproduces, byte for byte, what Hugging Face
 * transformers' apply_chat_template(..., tokenize=False) makes of the model's own template
 * (tests/data/chat/chat_template.jinja; spec: docs/spec/glm4_moe.md §4.3, §4.4).
 * Input is a conversation in the OpenAI messages format:
 *
 *   [{"role": "system" | "user" | "assistant" | "tool",
 *     "content": string | [parts] | null,      parts: strings or {"type": "text", "text": ...}
 *     "reasoning_content": string | null,      (assistant; also read from "thinking"/"reasoning")
 *     "tool_calls": [{"type": "function",
 *                     "function": {"name": ..., "arguments": object | JSON string of one}}]}]
 *
 * plus optional tools (an array of OpenAI tool objects, each written out as Python's
 * json.dumps(tool, ensure_ascii=False) would). What the renderer does beyond the template, on
 * purpose: it parses tool-call "arguments" given as a JSON string (OpenAI's wire form; the template
 * needs a mapping), and it refuses input the template would render as Python reprs or silently
 * drop — a message without a role, an unknown role, content that is an object or a number — with
 * GLMOE_E_ARG and a one-line message naming the message index and the field.
 *
 * Two styles: CHAT_STYLE_GLM45 (GLM-4.5 / GLM-4.6, newline after each role token, `/nothink`) and
 * CHAT_STYLE_GLM47 (GLM-4.7, compact, `clear_thinking`).
 *
 * Tested by tests/unit/test_chat.c against golden renders made with jinja2 and transformers
 * (tools/reference/make_chat_golden.py, tests/data/chat/).
 */
#ifndef GLMOE_TOKENIZER_CHAT_H
#define GLMOE_TOKENIZER_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "util/error.h"

typedef enum chat_style {
    CHAT_STYLE_GLM45 = 0, /* GLM-4.5 and GLM-4.6 templates (newline style) */
    CHAT_STYLE_GLM47,     /* GLM-4.7 template (compact style)              */
} chat_style;

/* A template variable that may be left undefined: the templates test `x is defined`, so "not
 * passed" differs from "true" (for enable_thinking, unset behaves like true). */
typedef enum chat_flag {
    CHAT_FLAG_UNSET = 0,
    CHAT_FLAG_FALSE,
    CHAT_FLAG_TRUE,
} chat_flag;

typedef struct chat_options {
    bool add_generation_prompt; /* end with the assistant header the model continues from      */
    chat_flag enable_thinking;  /* FALSE: `/nothink` on user turns (4.5) and an empty think
                                   block after the generation prompt                            */
    chat_flag clear_thinking;   /* GLM-4.7 only: FALSE keeps the reasoning of every past turn   */
    chat_style style;
} chat_options;

/* Defaults: add_generation_prompt = true, enable_thinking and clear_thinking unset, GLM45. */
void chat_options_default(chat_options *opt);

/* Renders messages (a JSON array) and tools (a JSON array, or NULL / JSON null for none).
 * opt NULL means the defaults. On success *out is a NUL-terminated string the caller frees with
 * free(), and *out_len (if out_len is non-NULL) its length in bytes; the text holds a NUL only
 * if a string of the input does (chat_render_json's parser refuses \u0000). On failure *out is NULL and err says which message and field
 * are wrong: GLMOE_E_ARG for bad input, GLMOE_E_NOMEM. The inputs are not modified. */
glmoe_status chat_render(char **out, size_t *out_len, const json_t *messages, const json_t *tools,
                         const chat_options *opt, gm_err *err);

/* The same from JSON text: messages_json is the array; tools_json may be NULL. JSON syntax errors
 * are GLMOE_E_ARG with the line and column. */
glmoe_status chat_render_json(char **out, size_t *out_len, const char *messages_json,
                              const char *tools_json, const chat_options *opt, gm_err *err);

/* (The public glmoe_chat_parse_tool_calls, in chat_api.c, gives this to callers in OpenAI's shape.)
 *
 * Parses what the model wrote in one assistant turn (the text between the generation prompt and
 * the stop token, e.g. "\n<think>…</think>\nLet me check.\n<tool_call>get_weather\n
 * <arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n</tool_call>").
 *
 * *out_calls gets a new JSON array in the OpenAI form the renderer reads back,
 * [{"type": "function", "function": {"name": ..., "arguments": {...}}}] (empty when there are no
 * calls); free it with json_decref(). If out_content is non-NULL it gets a malloc'd copy of the
 * text before the first <tool_call> (the whole text when there is none), for the message's
 * "content"; the renderer itself splits off a leading <think> block.
 *
 * Both styles are accepted: the name ends at the first newline or <arg_key>; whitespace between
 * </arg_key> and <arg_value> is skipped. Keys are trimmed. A value is kept verbatim when tools
 * (may be NULL) declare that parameter of that function as "type": "string"; otherwise its trimmed
 * text is parsed as JSON and kept as a string when it is not JSON (as vLLM's GLM-4.5 parser does,
 * minus its Python-literal fallback).
 *
 * Errors (GLMOE_E_FORMAT, message naming the call index and byte offset): a <tool_call> without
 * </tool_call>, an empty name, <arg_key> without </arg_key> or without a following
 * <arg_value>…</arg_value>. */
glmoe_status chat_parse_tool_calls(json_t **out_calls, char **out_content, const char *text,
                                   size_t len, const json_t *tools, gm_err *err);

/* The pieces of chat_parse_tool_calls, for a caller that meets the calls one at a time (the
 * streaming parser, chat_stream.c), so that both give the same result from the same code.
 *
 * chat_parse_tool_call parses the text between one <tool_call> and its </tool_call>, in[0..n),
 * into a new {"type": "function", "function": {"name": ..., "arguments": {...}}} (rules and errors
 * as above); `base` is the offset of `in` in the turn and `k` the call's index, for messages.
 *
 * chat_tool_call_name finds the function name at the start of such text: it ends at the first
 * newline or <arg_key>, or (when `whole`, i.e. in[0..n) is the call's whole text) at its end, and
 * is trimmed. *out_name gets a new JSON string and *name_end (may be NULL) the offset where the
 * arguments start. When !whole and neither a newline nor <arg_key> has come yet, the name is not
 * known: GLMOE_OK with *out_name NULL. An empty name, or one that is not UTF-8 or holds NUL, is
 * GLMOE_E_FORMAT; text that may still grow cannot change that.
 *
 * chat_tool_call_arguments_text writes a parsed call's "arguments" as OpenAI sends them: the text
 * of Python's json.dumps(arguments, ensure_ascii=False), into a new malloc'd string. */
glmoe_status chat_parse_tool_call(json_t **out_call, const char *in, size_t n, size_t base, size_t k,
                                  const json_t *tools, gm_err *err);
glmoe_status chat_tool_call_name(json_t **out_name, size_t *name_end, const char *in, size_t n,
                                 bool whole, size_t base, size_t k, gm_err *err);
glmoe_status chat_tool_call_arguments_text(char **out, const json_t *call, gm_err *err);

/* Writes Python's json.dumps(value, ensure_ascii=False) into a new malloc'd string: separators
 * ", " and ": ", keys in insertion order, non-ASCII kept, control characters as \u00XX, floats in
 * Python's shortest repr (1e-05, 1e+16, 100.0). Exposed for tests. Caller frees *out. */
glmoe_status chat_json_dumps(char **out, const json_t *value, gm_err *err);

#endif
