/*
 * test_file.c — the one file-open path (src/io/file.c) and the public calls over it:
 * glmoe_file_read and glmoe_chat_style_detect. Regular files are read whole with a NUL after
 * them; missing files are errors or "missing" as asked; a FIFO, a directory and a device are
 * refused at once with what they are; the size cap holds at the byte; a /proc file (size 0 to
 * fstat) is read to its end. FIFO cases run in a child with an alarm, so that a regression fails
 * the test instead of hanging it.
 *
 * Usage: test_file <repo root>
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "glmoe.h"
#include "io/file.h"
#include "test.h"

static char dir[] = "/tmp/glmoe-file-XXXXXX";

static const char *path_of(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void write_file(const char *name, const char *text, size_t len) {
    FILE *f = fopen(path_of(name), "wb");
    CHECK(f && fwrite(text, 1, len, f) == len && fclose(f) == 0, "writing %s", name);
}

static void test_regular(void) {
    write_file("a.txt", "hello\0world", 11);
    char *data = NULL;
    size_t len = 0;
    gm_err e = {0};
    glmoe_status st = gm_file_read(&data, &len, path_of("a.txt"), 100, NULL, &e);
    CHECK(st == GLMOE_OK && len == 11 && data && !memcmp(data, "hello\0world", 12), "read: %d %s", st, e.msg);
    free(data);
    /* the cap holds at the byte */
    st = gm_file_read(&data, &len, path_of("a.txt"), 11, NULL, &e);
    CHECK(st == GLMOE_OK && len == 11, "exactly the cap: %d %s", st, e.msg);
    free(data);
    st = gm_file_read(&data, &len, path_of("a.txt"), 10, NULL, &e);
    CHECK(st == GLMOE_E_FORMAT && !data && strstr(e.msg, "a.txt: 11 bytes, larger than the 10 allowed"), "over: %d %s",
          st, e.msg);
    /* empty */
    write_file("empty.txt", "", 0);
    st = gm_file_read(&data, &len, path_of("empty.txt"), 10, NULL, &e);
    CHECK(st == GLMOE_OK && len == 0 && data && data[0] == '\0', "empty: %d %s", st, e.msg);
    free(data);
    /* missing: an error, or "missing" when the caller allows it */
    bool missing = false;
    st = gm_file_read(&data, &len, path_of("nope.txt"), 10, NULL, &e);
    CHECK(st == GLMOE_E_IO && strstr(e.msg, "nope.txt: cannot open: No such file or directory"), "missing: %s", e.msg);
    st = gm_file_read(&data, &len, path_of("nope.txt"), 10, &missing, &e);
    CHECK(st == GLMOE_OK && missing && !data && len == 0, "missing allowed: %d", st);
    st = gm_file_read(&data, &len, path_of("a.txt"), 100, &missing, &e);
    CHECK(st == GLMOE_OK && !missing && len == 11, "present, missing allowed: %d", st);
    free(data);
    /* /proc files say 0 bytes to fstat: read to the end anyway, and capped */
    st = gm_file_read(&data, &len, "/proc/self/status", 1 << 20, NULL, &e);
    CHECK(st == GLMOE_OK && len > 0 && strstr(data, "VmRSS"), "/proc: %d %s", st, e.msg);
    free(data);
    st = gm_file_read(&data, &len, "/proc/self/status", 16, NULL, &e);
    CHECK(st == GLMOE_E_FORMAT && strstr(e.msg, "larger than the 16 bytes allowed"), "/proc capped: %d %s", st, e.msg);
}

static void test_not_regular(void) {
    char *data = NULL;
    size_t len;
    gm_err e = {0};
    CHECK(mkdir(path_of("sub"), 0700) == 0, "mkdir");
    glmoe_status st = gm_file_read(&data, &len, path_of("sub"), 100, NULL, &e);
    CHECK(st == GLMOE_E_IO && strstr(e.msg, "sub: not a regular file (a directory)"), "dir: %s", e.msg);
    st = gm_file_read(&data, &len, "/dev/zero", 100, NULL, &e);
    CHECK(st == GLMOE_E_IO && strstr(e.msg, "/dev/zero: not a regular file (a character device)"), "dev: %s", e.msg);
    CHECK(mkfifo(path_of("fifo"), 0600) == 0, "mkfifo: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        int bad = 0;
        gm_err ce = {0};
        int fd;
        uint64_t size;
        bad += !(gm_file_open(&fd, &size, path_of("fifo"), NULL, &ce) == GLMOE_E_IO && fd == -1 &&
                 strstr(ce.msg, "fifo: not a regular file (a FIFO)"));
        char *d = NULL, msg[256];
        size_t n;
        bad += !(glmoe_file_read(&d, &n, path_of("fifo"), 100, msg, sizeof msg) == GLMOE_E_IO && !d &&
                 strstr(msg, "fifo: not a regular file (a FIFO)"));
        _exit(bad);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "FIFO: %s %d",
          WIFSIGNALED(status) ? "hung (killed by signal)" : "not refused cleanly:",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

static void test_public_read(void) {
    char *data = NULL, msg[256] = "x";
    size_t len = 0;
    glmoe_status st = glmoe_file_read(&data, &len, path_of("a.txt"), 100, msg, sizeof msg);
    CHECK(st == GLMOE_OK && len == 11 && msg[0] == '\0', "public read: %d %s", st, msg);
    glmoe_free(data);
    st = glmoe_file_read(&data, &len, path_of("nope.txt"), 100, msg, sizeof msg);
    CHECK(st == GLMOE_E_IO && !data && strstr(msg, "nope.txt: cannot open"), "public missing: %s", msg);
    st = glmoe_file_read(NULL, &len, path_of("a.txt"), 100, msg, sizeof msg);
    CHECK(st == GLMOE_E_ARG && strstr(msg, "glmoe_file_read: NULL out"), "NULL out: %s", msg);
    st = glmoe_file_read(&data, &len, NULL, 100, NULL, 0);
    CHECK(st == GLMOE_E_ARG, "NULL path, no err buffer: %d", st);
}

static void test_chat_style(const char *root) {
    char msg[512], model[600];
    glmoe_chat_style style = (glmoe_chat_style)-1;
    /* neither file: the GLM-4.5 format */
    CHECK(mkdir(path_of("m45"), 0700) == 0, "mkdir");
    glmoe_status st = glmoe_chat_style_detect(&style, path_of("m45"), msg, sizeof msg);
    CHECK(st == GLMOE_OK && style == GLMOE_CHAT_GLM45, "no template: %d %s", st, msg);
    /* the shipped templates, as chat_template.jinja */
    const char *cases[][2] = {{"chat_template.jinja", "45"}, {"glm47_chat_template.jinja", "47"}};
    for (int i = 0; i < 2; i++) {
        snprintf(model, sizeof model, "%s/m%s", dir, cases[i][1]);
        mkdir(model, 0700);
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "cp '%s/tests/data/chat/%s' '%s/chat_template.jinja'", root, cases[i][0], model);
        CHECK(system(cmd) == 0, "%s", cmd);
        st = glmoe_chat_style_detect(&style, model, msg, sizeof msg);
        CHECK(st == GLMOE_OK && style == (i ? GLMOE_CHAT_GLM47 : GLMOE_CHAT_GLM45), "%s: %d %d %s", cases[i][0], st,
              style, msg);
    }
    /* GLM-4.7's template inside tokenizer_config.json only */
    CHECK(mkdir(path_of("m47cfg"), 0700) == 0, "mkdir");
    const char *cfg = "{\"chat_template\": \"{% if clear_thinking %}{% endif %}\"}";
    write_file("m47cfg/tokenizer_config.json", cfg, strlen(cfg));
    st = glmoe_chat_style_detect(&style, path_of("m47cfg"), msg, sizeof msg);
    CHECK(st == GLMOE_OK && style == GLMOE_CHAT_GLM47, "tokenizer_config.json: %d %s", st, msg);
    /* a FIFO named chat_template.jinja is refused at once, and *style is left alone */
    CHECK(mkdir(path_of("mfifo"), 0700) == 0, "mkdir");
    CHECK(mkfifo(path_of("mfifo/chat_template.jinja"), 0600) == 0, "mkfifo");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(10);
        glmoe_chat_style s = (glmoe_chat_style)7;
        char m[512];
        glmoe_status r = glmoe_chat_style_detect(&s, path_of("mfifo"), m, sizeof m);
        _exit(!(r == GLMOE_E_IO && s == (glmoe_chat_style)7 &&
                strstr(m, "chat_template.jinja: not a regular file (a FIFO)")));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "chat_template.jinja FIFO: %s",
          WIFSIGNALED(status) ? "hung (killed by signal)" : "not refused cleanly");
    st = glmoe_chat_style_detect(NULL, path_of("m45"), msg, sizeof msg);
    CHECK(st == GLMOE_E_ARG && strstr(msg, "NULL style"), "NULL style: %s", msg);
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : ".";
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    test_regular();
    test_not_regular();
    test_public_read();
    test_chat_style(root);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    return test_summary("test_file");
}
