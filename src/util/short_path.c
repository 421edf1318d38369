/* short_path.c — shortening a path in the middle for a message (see short_path.h). */
#include "util/short_path.h"

#include <string.h>

static int is_continuation(char c) { return ((unsigned char)c & 0xc0) == 0x80; }

const char *gm_short_path(char *out, size_t cap, const char *path) {
    size_t n = strlen(path);
    if (n < cap) {
        memcpy(out, path, n + 1);
        return out;
    }
    const size_t room = cap - 4; /* "..." and the NUL */
    size_t head = room / 3, tail_start = n - (room - head);
    /* Cut at a directory boundary when one is near: "/a/b/" + "..." + "/y/z.json". */
    for (size_t i = head; i > head / 2; i--)
        if (path[i - 1] == '/') {
            head = i;
            break;
        }
    for (size_t i = tail_start, end = tail_start + (n - tail_start) / 2; i < end; i++)
        if (path[i] == '/') {
            tail_start = i;
            break;
        }
    /* Never split a UTF-8 character: the head ends before one, the tail starts at one. */
    while (head > 0 && is_continuation(path[head])) head--;
    while (tail_start < n && is_continuation(path[tail_start])) tail_start++;
    memcpy(out, path, head);
    memcpy(out + head, "...", 3);
    memcpy(out + head + 3, path + tail_start, n - tail_start + 1);
    return out;
}
