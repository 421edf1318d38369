/*
 * test_short_path.c — gm_short_path (src/util/short_path.c): a path that fits comes back as it
 * is; a long one keeps its beginning and its end around "...", fits the buffer exactly, cuts at
 * a '/' when one is near, and never splits a UTF-8 character. And through the loaders: a
 * 3000-byte model path leaves the cause at the end of the message.
 */
#include <string.h>

#include "model/config.h"
#include "test.h"
#include "util/short_path.h"

static void test_shapes(void) {
    char out[GM_SHORT_PATH_MAX], path[4096];
    CHECK(!strcmp(gm_short_path(out, sizeof out, "models/glmoe-demo/config.json"), "models/glmoe-demo/config.json"),
          "short path: %s", out);
    /* exactly cap - 1 bytes still fits */
    memset(path, 'a', sizeof out - 1);
    path[sizeof out - 1] = '\0';
    CHECK(!strcmp(gm_short_path(out, sizeof out, path), path), "cap - 1 bytes: %zu", strlen(out));
    /* 30 directories of 100 bytes, then the file */
    size_t n = 0;
    for (int i = 0; i < 30; i++) n += (size_t)snprintf(path + n, sizeof path - n, "/dir%02d_%094d", i, 0);
    snprintf(path + n, sizeof path - n, "/config.json");
    gm_short_path(out, sizeof out, path);
    CHECK(strlen(out) < sizeof out && strlen(out) > sizeof out - 110, "length %zu", strlen(out));
    CHECK(!strncmp(out, "/dir00_", 7) && strstr(out, "...") && strstr(out, "/dir29_") &&
              !strcmp(out + strlen(out) - 12, "/config.json"),
          "shape: %s", out);
    CHECK(strstr(out, ".../dir29_") != NULL, "the tail starts at a directory: %s", out);
    /* a path of multi-byte characters (é = c3 a9) is cut between characters */
    n = 0;
    while (n + 2 < 1000) path[n++] = (char)0xc3, path[n++] = (char)0xa9;
    path[n] = '\0';
    gm_short_path(out, sizeof out, path);
    const char *dots = strstr(out, "...");
    CHECK(dots && (dots - out) % 2 == 0 && strlen(dots + 3) % 2 == 0 && (unsigned char)dots[3] == 0xc3,
          "UTF-8 boundaries: head %td, tail %zu", dots ? dots - out : -1, dots ? strlen(dots + 3) : 0);
    /* the smallest buffer allowed */
    char small[16];
    gm_short_path(small, sizeof small, path);
    CHECK(strlen(small) < sizeof small && strstr(small, "..."), "cap 16: %s", small);
}

static void test_loader_message(void) {
    char dir[4096];
    size_t n = (size_t)snprintf(dir, sizeof dir, "/nonexistent");
    for (int i = 0; i < 30; i++) n += (size_t)snprintf(dir + n, sizeof dir - n, "/d%098d", i);
    gm_config cfg;
    gm_err err = {0};
    glmoe_status st = config_load(&cfg, dir, &err);
    const char *cause = "config.json: cannot open: No such file or directory";
    size_t len = strlen(err.msg);
    CHECK(st == GLMOE_E_IO && len > strlen(cause) && !strcmp(err.msg + len - strlen(cause), cause) &&
              strstr(err.msg, "..."),
          "a 3000-byte path: %s", err.msg);
}

int main(void) {
    test_shapes();
    test_loader_message();
    return test_summary("test_short_path");
}
