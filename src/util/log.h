/* log.h — internal logging through the user's callback (glmoe_log_set). */
#ifndef GLMOE_UTIL_LOG_H
#define GLMOE_UTIL_LOG_H
#include "glmoe.h"

void gm_log(glmoe_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define gm_debug(...) gm_log(GLMOE_LOG_DEBUG, __VA_ARGS__)
#define gm_info(...) gm_log(GLMOE_LOG_INFO, __VA_ARGS__)
#define gm_warn(...) gm_log(GLMOE_LOG_WARN, __VA_ARGS__)
#endif
