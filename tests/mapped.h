/*
 * mapped.h — whether a file whose name contains `what` is mapped into this process (Linux
 * /proc/self/maps): the tests that check a library is loaded only when asked for.
 */
#ifndef GLMOE_TEST_MAPPED_H
#define GLMOE_TEST_MAPPED_H

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static inline bool test_mapped(const char *what) {
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, what) != NULL;
    fclose(f);
    return found;
}

#endif
