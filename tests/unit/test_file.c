/*
 * test_file.c — the one file-open path (src/io/file.c). Regular files are read whole with a NUL after
 * them; missing files are errors or "missing" as asked; a FIFO, a directory and a device are
 * refused at once with what they are; the size cap holds at the byte; a /proc file (size 0 to
 * fstat) is read to its end. FIFO cases run in a child with an alarm, so that a regression fails
 * the test instead of hanging it.
 *
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
        char *d = NULL;
        size_t n;
        bad += !(gm_file_read(&d, &n, path_of("fifo"), 100, NULL, &ce) == GLMOE_E_IO && !d &&
                 strstr(ce.msg, "fifo: not a regular file (a FIFO)"));
        _exit(bad);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "FIFO: %s %d",
          WIFSIGNALED(status) ? "hung (killed by signal)" : "not refused cleanly:",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
}

int main(void) {
    if (!mkdtemp(dir)) {
        fprintf(stderr, "mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    test_regular();
    test_not_regular();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "%s", cmd);
    return test_summary("test_file");
}
