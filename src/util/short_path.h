/* short_path.h — a path put into a one-line message, shortened in the middle when long. */
#ifndef GLMOE_UTIL_SHORT_PATH_H
#define GLMOE_UTIL_SHORT_PATH_H

#include <stddef.h>

/* The buffer size to give gm_short_path for a path in a message: long enough to recognise the
 * path, short enough that a message (GM_ERR_MSG_MAX, the CLI's line) keeps its cause after it
 * even with two paths in it. */
#define GM_SHORT_PATH_MAX 192

/* Copies path into out (cap bytes, >= 16) as it is when it fits, else its beginning and its end
 * around "...", cut at a '/' where one is near and never inside a UTF-8 character:
 * "/very/long/.../last/dirs/config.json". The end gets two thirds of the room: the file name
 * and its directories say most. Returns out. Every path glmoe puts into a message (the library
 * and the CLI) goes through it, so that a 3000-byte model path cannot push the cause out of a
 * fixed-size message. */
const char *gm_short_path(char *out, size_t cap, const char *path);

#endif
