/* error.c — gm_err formatting and the static status descriptions. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Messages are one line whatever they quote (file names, JSON parser excerpts of hostile input):
 * control bytes become '?'. */
static void one_line(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

glmoe_status gm_fail(gm_err *e, glmoe_status code, const char *fmt, ...) {
    if (!e) return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    one_line(e->msg);
    return code;
}

void gm_err_prefix(gm_err *e, const char *fmt, ...) {
    if (!e) return;
    char old[GM_ERR_MSG_MAX];
    memcpy(old, e->msg, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t used = (size_t)n < sizeof e->msg ? (size_t)n : sizeof e->msg - 1;
    size_t room = sizeof e->msg - 1 - used, len = strnlen(old, sizeof old - 1);
    if (len > room) len = room; /* the tail of an over-long message is cut */
    memcpy(e->msg + used, old, len);
    e->msg[used + len] = '\0';
    one_line(e->msg);
}

void gm_err_clear(gm_err *e) {
    if (!e) return;
    e->code = GLMOE_OK;
    e->msg[0] = '\0';
}

_Noreturn void gm_assert_fail(const char *expr, const char *file, int line) {
    /* The one place the library stops the process: a broken invariant means memory is no longer
     * trustworthy. Input errors never get here. */
    fprintf(stderr, "glmoe: internal error: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

const char *glmoe_status_str(glmoe_status s) {
    switch (s) {
    case GLMOE_OK: return "ok";
    case GLMOE_E_ARG: return "invalid argument";
    case GLMOE_E_IO: return "i/o error";
    case GLMOE_E_FORMAT: return "malformed file";
    case GLMOE_E_CONFIG: return "invalid configuration";
    case GLMOE_E_WEIGHTS: return "weights do not match the configuration";
    case GLMOE_E_UNSUPPORTED: return "unsupported";
    case GLMOE_E_NOMEM: return "out of memory";
    case GLMOE_E_TOKEN: return "token id out of range";
    case GLMOE_E_CONTEXT: return "context length exceeded";
    case GLMOE_E_BACKEND: return "backend failure";
    }
    return "unknown status";
}
