/* quote.h — making untrusted text safe to put inside a one-line message. */
#ifndef GLMOE_UTIL_QUOTE_H
#define GLMOE_UTIL_QUOTE_H

#include <stddef.h>

/* Copies s into out (cap >= 16 bytes) with quotes, backslashes and control bytes escaped, cut with
 * "..." at a character boundary when long. Returns out. For names that come from files. */
const char *gm_quote(char *out, size_t cap, const char *s);

/* Copies text into out with only control bytes escaped (\xNN), cut to fit. Returns out. For a
 * parser's excerpt of the input (jansson's "near '...'"). */
const char *gm_escape_controls(char *out, size_t cap, const char *text);

#endif
