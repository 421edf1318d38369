/*
 * chat_style.c — glmoe_chat_style_detect: which of the two chat formats a model directory's
 * template is.
 *
 * GLM-4.7's template is the one that knows clear_thinking; its checkpoints ship the template in
 * chat_template.jinja or inside tokenizer_config.json ("chat_template"), so both are looked at,
 * whole. Both are read through io/file.c: a FIFO named chat_template.jinja is refused at once
 * (it hung `glmoe chat` when the CLI opened it with fopen).
 *
 * Tested by tests/unit/test_file.c and tests/cli/test_cli.sh (FIFOs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h> /* memmem (_GNU_SOURCE): the files may hold NUL bytes */

#include "glmoe.h"
#include "io/file.h"

#define TEMPLATE_MAX_BYTES ((size_t)16 << 20)

glmoe_status glmoe_chat_style_detect(glmoe_chat_style *style, const char *model_dir, char *err, size_t err_size) {
    static const char *const names[] = {"chat_template.jinja", "tokenizer_config.json"};
    static const char marker[] = "clear_thinking";
    gm_err e = {0};
    glmoe_status st = GLMOE_OK;
    glmoe_chat_style found = GLMOE_CHAT_GLM45;
    if (!style || !model_dir)
        st = gm_fail(&e, GLMOE_E_ARG, "glmoe_chat_style_detect: NULL %s", style ? "model_dir" : "style");
    for (size_t i = 0; st == GLMOE_OK && i < sizeof names / sizeof names[0] && found == GLMOE_CHAT_GLM45; i++) {
        size_t n = strlen(model_dir) + strlen(names[i]) + 2, len;
        char *path = malloc(n), *text = NULL;
        bool missing;
        if (!path) {
            st = gm_fail(&e, GLMOE_E_NOMEM, "glmoe_chat_style_detect: out of memory");
            break;
        }
        snprintf(path, n, "%s/%s", model_dir, names[i]);
        st = gm_file_read(&text, &len, path, TEMPLATE_MAX_BYTES, &missing, &e);
        if (st == GLMOE_OK && text && memmem(text, len, marker, sizeof marker - 1)) found = GLMOE_CHAT_GLM47;
        free(text);
        free(path);
    }
    if (st == GLMOE_OK) *style = found;
    if (err && err_size) snprintf(err, err_size, "%s", st ? e.msg : "");
    return st;
}
