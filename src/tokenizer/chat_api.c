/* chat_api.c — the public chat-format entry points (glmoe_chat_*), over chat.c. */
#include <stdio.h>
#include <stdlib.h>

#include "glmoe.h"
#include "tokenizer/chat.h"

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

void glmoe_free(void *p) { free(p); }
