/*
 * safetensors.h — a validating reader for safetensors files and sharded checkpoints.
 *
 * Format (docs/spec/safetensors.md): 8-byte little-endian header length N, N bytes of
 * UTF-8 JSON, then the tensor data back to back. The reader applies every rule of the Rust
 * reference reader (huggingface/safetensors tensor.rs) plus glmoe's engine limits, and maps
 * the file read-only: tensor data is never copied here. Nothing in the format guarantees that
 * tensor data is aligned, so `data` may be at any address: read it with memcpy or check
 * alignment first (st_tensor.aligned).
 *
 * A checkpoint directory is opened with st_set_open_dir(): model.safetensors.index.json and
 * the shards it names (names confined to the directory), or model.safetensors alone.
 *
 * Files must not be modified while open: the mapping would fault (SIGBUS).
 */
#ifndef GLMOE_IO_SAFETENSORS_H
#define GLMOE_IO_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Every dtype of the format (all are validated; glmoe computes with BF16, F16 and F32). */
typedef enum st_dtype {
    ST_BOOL, ST_U8, ST_I8, ST_F8_E4M3, ST_F8_E5M2, ST_F8_E8M0, ST_F8_E4M3FNUZ, ST_F8_E5M2FNUZ,
    ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_I64, ST_U64, ST_F64, ST_C64,
    ST_F4, ST_F6_E2M3, ST_F6_E3M2,
    ST_DTYPE_COUNT
} st_dtype;

const char *st_dtype_name(st_dtype dt); /* "BF16", ... as written in headers */
unsigned st_dtype_bits(st_dtype dt);    /* 4, 6, 8, 16, 32 or 64 */

#define ST_MAX_RANK 8

typedef struct st_tensor {
    const char *name;            /* NUL-terminated; owned by the file                          */
    st_dtype dtype;
    int rank;                    /* 0 for a scalar                                             */
    uint64_t shape[ST_MAX_RANK];
    uint64_t numel;              /* product of shape (1 for a scalar)                          */
    uint64_t nbytes;             /* end - begin                                                */
    uint64_t offset;             /* file offset of the data: 8 + N + begin                     */
    const uint8_t *data;         /* mapped bytes, nbytes long; NULL when nbytes == 0           */
    bool aligned;                /* data is a multiple of the element size (>= 1 byte)         */
    const struct st_file *file;  /* the file that holds it                                     */
} st_tensor;

typedef struct st_file st_file;

/* Validates a whole file held in memory (buf, len) — the entry point for fuzzing and for tests
 * that build files in memory. `name` is used in messages. On success *out references buf
 * (which must outlive it) and owns everything else. */
glmoe_status st_file_parse(st_file **out, const uint8_t *buf, size_t len, const char *name,
                           gm_err *err);

/* Opens, maps and validates a file. Messages start with the file's base name. */
glmoe_status st_file_open(st_file **out, const char *path, gm_err *err);

void st_file_close(st_file *f); /* NULL is a no-op */

const char *st_file_name(const st_file *f);      /* base name, e.g. "model-00001-of-00002.safetensors" */
size_t st_file_count(const st_file *f);          /* number of tensors                         */
const st_tensor *st_file_tensor(const st_file *f, size_t i); /* sorted by data offset         */
const st_tensor *st_file_find(const st_file *f, const char *name); /* NULL if absent          */
uint64_t st_file_size(const st_file *f);
uint64_t st_file_misaligned_bytes(const st_file *f); /* bytes of tensors that are not aligned */

/* A checkpoint: one or more files. */
typedef struct st_set st_set;

/* Opens a checkpoint directory. With model.safetensors.index.json: every distinct shard of its
 * weight_map (plain file names only: no '/', '\\', "." or ".."), each fully validated; every
 * mapped name must exist in the shard it names; a name in two shards is an error; a tensor in a
 * shard but not in the map is a warning and is not reachable. Without an index:
 * model.safetensors. Never globs. */
glmoe_status st_set_open_dir(st_set **out, const char *dir, gm_err *err);

void st_set_close(st_set *s); /* NULL is a no-op */

size_t st_set_count(const st_set *s);                       /* tensors reachable by name   */
const st_tensor *st_set_tensor(const st_set *s, size_t i);  /* any fixed order              */
const st_tensor *st_set_find(const st_set *s, const char *name);
size_t st_set_file_count(const st_set *s);
const st_file *st_set_file(const st_set *s, size_t i);
uint64_t st_set_misaligned_bytes(const st_set *s);

#endif
