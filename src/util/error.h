/*
 * error.h — how internal code reports failure.
 *
 * Every internal function that can fail returns a glmoe_status and, when it fails, writes a
 * one-line message into a caller-provided gm_err (which may be NULL). The message is built where
 * the facts are known: the file, tensor or field, what was expected and what was found. Callers
 * add their own context in front with gm_err_prefix().
 *
 * Assertions (GM_ASSERT) are for glmoe's own invariants only; input never reaches them.
 */
#ifndef GLMOE_UTIL_ERROR_H
#define GLMOE_UTIL_ERROR_H

#include "glmoe.h"

#define GM_ERR_MSG_MAX 640

typedef struct gm_err {
    glmoe_status code;
    char msg[GM_ERR_MSG_MAX];
} gm_err;

/* Records code and a printf-style message in e (if non-NULL) and returns code. Control bytes in
 * the message are replaced so that it stays one line. */
glmoe_status gm_fail(gm_err *e, glmoe_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Puts "<prefix>" in front of the message already in e, e.g. the name of the file. */
void gm_err_prefix(gm_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void gm_err_clear(gm_err *e);

/* An internal invariant broke: this is a glmoe bug, not bad input. Reports and traps. */
#define GM_ASSERT(cond)                                                                         \
    do {                                                                                        \
        if (!(cond)) gm_assert_fail(#cond, __FILE__, __LINE__);                                 \
    } while (0)
_Noreturn void gm_assert_fail(const char *expr, const char *file, int line);

#endif
