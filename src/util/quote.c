/* quote.c — escaping untrusted text for one-line messages. */
#include "util/quote.h"

#include <stdio.h>
#include <string.h>

const char *gm_quote(char *out, size_t cap, const char *s) {
    size_t o = 0;
    const size_t keep = cap - 8; /* room for an escape, "..." and the NUL */
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (o >= keep && (*p & 0xc0) != 0x80) {
            memcpy(out + o, "...", 4);
            return out;
        }
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
    return out;
}

const char *gm_escape_controls(char *out, size_t cap, const char *text) {
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && o + 5 < cap; p++) {
        if (*p < 0x20 || *p == 0x7f) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", *p);
        else out[o++] = (char)*p;
    }
    out[o] = '\0';
    return out;
}
