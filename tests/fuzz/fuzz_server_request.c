/*
 * fuzz_server_request.c — libFuzzer target for the request parser of `glmoe serve`
 * (tools/server/request.c: srv_parse_request, srv_render_chat), which reads HTTP bodies from
 * anyone who can reach the server.
 *
 * Input: byte 0 chooses the endpoint (bit 0: chat or completions) and the chat style (bit 1:
 * GLM-4.5 or GLM-4.7); the rest is the body. Promises: a refusal is a 400 (or a 500 for lack of
 * memory) with a one-line message, and its OpenAI error JSON is valid JSON; an accepted request
 * keeps the bounds (stop strings: count, length, no NUL), its sampling parameters are ones
 * glmoe_sampler_create accepts, a chat request has its messages, and rendering it either gives a
 * prompt or a 400 naming the messages or tools.
 *
 * Seeds: tests/fuzz/corpus/server_request/ (first byte 0x00 chat, 0x01 completions). Build and
 * run: `make fuzz`.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "glmoe.h"
#include "server.h"

static void check_error(const srv_error *e) {
    REQUIRE(e->status == 400 || e->status == 500);
    REQUIRE(fuzz_msg_ok(e->message, ""));
    char *json = srv_reply_error(e);
    if (!json) return; /* out of memory */
    json_t *root = json_loads(json, 0, NULL);
    REQUIRE(root && json_is_string(json_object_get(json_object_get(root, "error"), "message")));
    json_decref(root);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    srv_kind kind = (data[0] & 1) ? SRV_COMPLETION : SRV_CHAT;
    glmoe_chat_style style = (data[0] & 2) ? GLMOE_CHAT_GLM47 : GLMOE_CHAT_GLM45;
    char *body = fuzz_cstr(data + 1, size - 1);
    if (!body) return 0;
    srv_limits lim = srv_limits_default();
    lim.max_messages = 64;
    lim.max_tools = 16;
    lim.max_stop = 4;
    lim.max_stop_len = 32;
    srv_params p;
    srv_error e;
    if (!srv_parse_request(kind, body, size - 1, &lim, &p, &e)) {
        check_error(&e);
        free(body);
        return 0;
    }
    REQUIRE(p.kind == kind && p.n_stop <= lim.max_stop);
    for (size_t i = 0; i < p.n_stop; i++)
        REQUIRE(p.stop_len[i] > 0 && p.stop_len[i] <= lim.max_stop_len && !memchr(p.stop[i], 0, p.stop_len[i]));
    REQUIRE(p.max_tokens == -1 || p.max_tokens >= 1);
    glmoe_sampler *s = NULL;
    REQUIRE(glmoe_sampler_create(&s, &p.sampling, NULL, 0) != GLMOE_E_ARG);
    glmoe_sampler_free(s);
    if (kind == SRV_CHAT) {
        REQUIRE(p.messages_json != NULL && p.prompt == NULL);
        char *text = NULL;
        size_t len = 0;
        if (srv_render_chat(&p, style, &text, &len, &e)) {
            REQUIRE(text && len > 0 && strlen(text) == len);
        } else {
            check_error(&e);
            REQUIRE(e.status == 500 || !strncmp(e.param, "messages", 8) || !strncmp(e.param, "tools", 5));
        }
        glmoe_free(text);
    } else {
        REQUIRE(p.prompt != NULL && p.prompt_len > 0 && p.messages_json == NULL);
    }
    srv_params_free(&p);
    free(body);
    return 0;
}
