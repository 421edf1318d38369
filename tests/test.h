/*
 * test.h — the whole test harness: a check macro that reports file:line and keeps going, and a
 * summary line in the form ctest and CI read ("N passed, N failed").
 */
#ifndef GLMOE_TEST_H
#define GLMOE_TEST_H

/* 1 when the test is built under AddressSanitizer (gcc's or clang's): some tests bound their
 * sizes or trial counts by it, the ~10-30x slower steps checking the same code paths. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#include <stdio.h>
#include <stdlib.h>

/* A test built from several files (TEST_SHARED_COUNTERS, set by its CMake target) counts in one
 * pair of counters, defined by the file that prints the summary (TEST_COUNTERS_DEFINE); else each
 * test file has its own. */
#if defined(TEST_SHARED_COUNTERS) && !defined(TEST_COUNTERS_DEFINE)
extern int t_passed, t_failed;
#elif defined(TEST_SHARED_COUNTERS)
int t_passed, t_failed;
#else
static int t_passed, t_failed;
#endif

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (cond) {                                                                             \
            t_passed++;                                                                         \
        } else {                                                                                \
            t_failed++;                                                                         \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                     \
            fprintf(stderr, "" __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                                \
        }                                                                                       \
    } while (0)

/* Prints the summary and returns the process exit code. */
static inline int test_summary(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, t_passed, t_failed);
    return t_failed ? 1 : 0;
}

#endif
