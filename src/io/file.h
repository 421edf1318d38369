/*
 * file.h — the one way glmoe opens a file it is given to read.
 *
 * Every input file (config.json, generation_config.json, the shard index, the shards,
 * tokenizer.json, tokenizer_config.json, chat_template.jinja, and through glmoe_file_read the
 * CLI's text files) comes through here, so the promises of SECURITY.md hold in one place:
 *   - open() never blocks: O_NONBLOCK, so a FIFO with no writer (an untrusted archive can hold
 *     one) or a device is not waited on. The flag is harmless for a regular file;
 *   - only regular files are read: a FIFO, a device, a socket or a directory is refused with
 *     what it is, so /dev/zero cannot be read up to a size cap either;
 *   - reads have a size cap, checked against fstat before anything is allocated and again
 *     while reading (a file that grows, or /proc's files whose size reads as 0);
 *   - descriptors are O_CLOEXEC.
 * Messages are one line that starts with the path (shortened in the middle when long, so that
 * the cause always fits): "<path>: not a regular file (a FIFO)".
 *
 * Tested by tests/unit/test_file.c and, through every loader, test_regressions (FIFOs) and
 * tests/cli/test_cli.sh.
 */
#ifndef GLMOE_IO_FILE_H
#define GLMOE_IO_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Opens path for reading as above. On success *fd is the descriptor (the caller closes it) and
 * *size the file's size. If missing is not NULL, a file that does not exist is no error:
 * *missing is set, *fd is -1 and GLMOE_OK is returned; otherwise *missing is cleared.
 * Errors: GLMOE_E_IO ("<path>: cannot open: <reason>", "<path>: not a regular file (a FIFO)"). */
glmoe_status gm_file_open(int *fd, uint64_t *size, const char *path, bool *missing, gm_err *err);

/* gm_file_open, then the whole file into *data (malloc'd, the caller frees it; a NUL follows
 * the last byte so text can be used as a C string) and its length into *len. More than
 * max_bytes is GLMOE_E_FORMAT ("<path>: larger than N bytes"); a read error GLMOE_E_IO; no
 * memory GLMOE_E_NOMEM. missing as for gm_file_open (then *data is NULL and *len 0). */
glmoe_status gm_file_read(char **data, size_t *len, const char *path, size_t max_bytes, bool *missing,
                          gm_err *err);

#endif
