/*
 * test.h — the whole test harness: a check macro that reports file:line and keeps going, and a
 * summary line in the form ctest and CI read ("N passed, N failed").
 */
#ifndef GLMOE_TEST_H
#define GLMOE_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int t_passed, t_failed;

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
