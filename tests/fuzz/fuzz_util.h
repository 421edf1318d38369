/*
 * fuzz_util.h — what every glmoe fuzz target checks besides "no crash": a broken promise stops the
 * fuzzer (abort, so libFuzzer saves the input), and every refusal is a status plus a one-line
 * message that names the input.
 *
 * Header-only; included by the tests/fuzz/fuzz_*.c targets (built by cmake/fuzz.cmake).
 */
#ifndef GLMOE_FUZZ_UTIL_H
#define GLMOE_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken promise is a glmoe bug: stop so that libFuzzer saves the input. */
#define REQUIRE(cond)                                                                           \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "%s:%d: promise broken: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

/* An error message is one non-empty line starting with `prefix` (may be "" for any). */
static inline bool fuzz_msg_ok(const char *msg, const char *prefix) {
    if (!msg || !msg[0] || strncmp(msg, prefix, strlen(prefix)) != 0) return false;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++)
        if (*p == '\n' || *p == '\r') return false;
    return true;
}

/* A NUL-terminated, exactly sized heap copy of the input, so that ASan sees reads past its end
 * (the fuzzer's own buffer may be followed by readable memory). NULL when out of memory. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) return NULL;
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* Splits the input at the first NUL byte: the part before it, and the rest (NULL when there is no
 * NUL). Lets one fuzz input carry two texts (config.json + generation_config.json, messages +
 * tools). Both are fresh NUL-terminated copies the caller frees. */
static inline void fuzz_split(const uint8_t *data, size_t size, char **first, size_t *first_len,
                              char **second, size_t *second_len) {
    const uint8_t *nul = size ? memchr(data, 0, size) : NULL;
    size_t n1 = nul ? (size_t)(nul - data) : size;
    *first = fuzz_cstr(data, n1);
    *first_len = n1;
    *second = NULL;
    *second_len = 0;
    if (nul) {
        *second_len = size - n1 - 1;
        *second = fuzz_cstr(nul + 1, *second_len);
    }
}

#endif
