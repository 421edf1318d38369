/*
 * fuzz_safetensors.c — libFuzzer target for the safetensors reader (docs/spec/safetensors.md
 * §8 item 39). Feeds arbitrary bytes to st_file_parse() and, for every input it accepts, checks
 * the promises the rest of glmoe relies on: each tensor's bytes lie inside the input, their count
 * is numel * bits / 8, the shape respects the engine limits, tensors are sorted by offset and
 * tile the data section exactly, and every name is found again by st_file_find().
 *
 * Build and run with the other targets: `make fuzz` (cmake/fuzz.cmake builds build-fuzz/, and
 * tests/fuzz/run_fuzzers.sh runs each target from its seeds; jansson itself is not instrumented).
 * One target alone: tests/fuzz/run_fuzzers.sh build-fuzz 60 safetensors.
 * Seeds: tests/fuzz/corpus/safetensors/, small files cut from the golden checkpoints
 * (tests/fuzz/make_corpus.py), plus the spec's edge cases that load.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/safetensors.h"

/* A broken promise is a reader bug: stop so that libFuzzer saves the input. */
#define REQUIRE(cond)                                                                           \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "fuzz_safetensors: %s:%d: %s\n", __FILE__, __LINE__, #cond);        \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file *f = NULL;
    gm_err err = {0};
    glmoe_status st = st_file_parse(&f, data, size, "fuzz.safetensors", &err);
    if (st != GLMOE_OK) {
        REQUIRE(f == NULL);
        REQUIRE(st == GLMOE_E_FORMAT || st == GLMOE_E_NOMEM);
        REQUIRE(strncmp(err.msg, "fuzz.safetensors: ", 18) == 0 && !strchr(err.msg, '\n'));
        return 0;
    }
    REQUIRE(size >= 8);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | data[i];
    REQUIRE(n <= 100000000u && n <= size - 8);
    const uint64_t data_start = 8 + n;
    uint64_t next = data_start; /* the tensors tile [8 + N, size) in order */
    for (size_t i = 0; i < st_file_count(f); i++) {
        const st_tensor *t = st_file_tensor(f, i);
        REQUIRE(t && t->file == f && t->name);
        unsigned bits = st_dtype_bits(t->dtype);
        REQUIRE(bits > 0 && t->rank >= 0 && t->rank <= ST_MAX_RANK);
        uint64_t numel = 1, nonzero = 1, nbits;
        for (int d = 0; d < t->rank; d++) {
            REQUIRE(t->shape[d] < (1ull << 48));
            REQUIRE(!__builtin_mul_overflow(numel, t->shape[d], &numel));
            if (t->shape[d]) REQUIRE(!__builtin_mul_overflow(nonzero, t->shape[d], &nonzero));
        }
        REQUIRE(nonzero < (1ull << 48));
        REQUIRE(t->numel == numel);
        REQUIRE(!__builtin_mul_overflow(numel, (uint64_t)bits, &nbits) && nbits % 8 == 0);
        REQUIRE(t->nbytes == nbits / 8);
        REQUIRE(t->offset >= data_start && t->offset <= size && t->nbytes <= size - t->offset);
        REQUIRE(t->offset == next);
        next = t->offset + t->nbytes;
        if (t->nbytes) {
            REQUIRE(t->data == data + t->offset);
            volatile uint8_t sink = t->data[0] ^ t->data[t->nbytes - 1]; /* ASan checks the ends */
            (void)sink;
        } else {
            REQUIRE(t->data == NULL);
        }
        REQUIRE(st_file_find(f, t->name) == t);
    }
    REQUIRE(next == size);
    REQUIRE(st_file_tensor(f, st_file_count(f)) == NULL);
    st_file_close(f);
    return 0;
}
