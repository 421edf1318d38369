/*
 * output.c — where the CLI's output goes, checked: stdout (a full disk or a closed pipe is not
 * success) and the files it writes (logits -o, bench --json / --svg), opened without blocking.
 *
 * SIGPIPE is ignored (main.c), so a closed pipe shows up here as EPIPE: `glmoe generate | head`
 * ends quietly with CLI_EXIT_PIPE instead of dying from a signal or exiting 0 with output lost.
 * Tested by tests/cli/test_cli.sh (stdout on /dev/full and a closed pipe, FIFOs as outputs).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util/short_path.h"

static int stdout_errno; /* the reason of the first failure seen on stdout */

bool cli_stdout_ok(void) {
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout)) return true;
    if (!stdout_errno) stdout_errno = errno;
    return false;
}

int cli_stdout_failed(const char *cmd) {
    if (stdout_errno == EPIPE) return CLI_EXIT_PIPE;
    cli_error(cmd, "stdout: cannot write: %s", stdout_errno ? strerror(stdout_errno) : "write error");
    return CLI_EXIT_FAIL;
}

FILE *cli_output_open(const char *path, char *err, size_t err_size) {
    /* O_NONBLOCK: opening a FIFO for writing would otherwise wait for a reader, forever if none
     * comes; with it, open fails with ENXIO. */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0666);
    char shown[GM_SHORT_PATH_MAX];
    if (fd < 0) {
        int e = errno;
        gm_short_path(shown, sizeof shown, path);
        if (e == ENXIO) snprintf(err, err_size, "%s: a FIFO with no reader (glmoe does not wait for one)", shown);
        else snprintf(err, err_size, "%s: cannot create: %s", shown, strerror(e));
        return NULL;
    }
    /* Writes wait again: a pipe whose reader is slow is no error. */
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        snprintf(err, err_size, "%s: cannot create: %s", gm_short_path(shown, sizeof shown, path), strerror(errno));
        close(fd);
    }
    return f;
}

bool cli_output_close(FILE *f, const char *path, char *err, size_t err_size) {
    errno = 0;
    bool ok = fflush(f) == 0 && !ferror(f);
    int e = errno;
    if (fclose(f) != 0 && ok) {
        ok = false;
        e = errno;
    }
    char shown[GM_SHORT_PATH_MAX];
    if (!ok)
        snprintf(err, err_size, "%s: cannot write: %s", gm_short_path(shown, sizeof shown, path),
                 e ? strerror(e) : "write error");
    return ok;
}
