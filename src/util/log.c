/* log.c — the process-wide log callback. The default drops everything: a library does not print. */
#include "util/log.h"

#include <stdarg.h>
#include <stdio.h>

static glmoe_log_fn g_log_fn;
static void *g_log_user;
static glmoe_log_level g_log_min = GLMOE_LOG_INFO;

void glmoe_log_set(glmoe_log_fn fn, void *user_data, glmoe_log_level min_level) {
    g_log_fn = fn;
    g_log_user = user_data;
    g_log_min = min_level;
}

void gm_log(glmoe_log_level level, const char *fmt, ...) {
    if (!g_log_fn || level < g_log_min) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_log_fn(level, buf, g_log_user);
}
