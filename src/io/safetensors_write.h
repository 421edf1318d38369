/*
 * safetensors_write.h — writing a safetensors file as a stream, tensor by tensor.
 *
 * The tensors are declared up front (name, dtype, shape), in the order their data will follow,
 * so that the header (with every data offset) is written first; then each tensor's bytes are
 * appended, in pieces of any size, so that no more than a piece is ever held in memory. The
 * header is JSON in declaration order, padded with spaces to a multiple of 8 bytes (as the
 * reference writer does), with an optional "__metadata__" of string pairs. What is written is
 * read back by glmoe's reader (tests/unit/test_safetensors_write.c) and by the Python library.
 *
 * The file is created anew (O_EXCL: never overwrites); st_writer_close checks that every
 * declared byte was written and reports a short disk or a failed close.
 */
#ifndef GLMOE_IO_SAFETENSORS_WRITE_H
#define GLMOE_IO_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "io/safetensors.h"
#include "util/error.h"

typedef struct st_decl {
    const char *name;
    st_dtype dtype;
    int rank;
    uint64_t shape[ST_MAX_RANK];
} st_decl;

/* Bytes of a declared tensor. */
uint64_t st_decl_bytes(const st_decl *d);

typedef struct st_writer st_writer;

/* Creates path (which must not exist) and writes the header of the n declared tensors. metadata:
 * NULL or n_meta pairs of strings {key, value}. */
glmoe_status st_writer_open(st_writer **out, const char *path, const st_decl *decls, size_t n,
                            const char *const (*metadata)[2], size_t n_meta, gm_err *err);

/* Appends bytes to the data, continuing the current tensor and moving on to the next when it is
 * full; more than was declared is an error. */
glmoe_status st_writer_append(st_writer *w, const void *bytes, size_t len, gm_err *err);

/* Finishes the file: every declared byte must have been appended. Frees w in every case. On
 * failure the partial file is removed. NULL is fine. */
glmoe_status st_writer_close(st_writer *w, gm_err *err);

/* Frees w and removes the partial file (after an error elsewhere). NULL is fine. */
void st_writer_abort(st_writer *w);

#endif
