/* bench_cliffs.h — the cliff rule of `glmoe bench`'s prefill sweep (bench_cliffs.c). */
#ifndef GLMOE_CLI_BENCH_CLIFFS_H
#define GLMOE_CLI_BENCH_CLIFFS_H

#include <stdint.h>

#define BENCH_CLIFF_RATIO 1.10

typedef struct bench_cliff {
    int at;   /* index of the slow length            */
    int next; /* index of the next longer length     */
} bench_cliff;

/* The cliffs among n lengths (any order) with their median and fastest times: writes up to cap
 * of them to out, in the order of the list, and returns how many there are. */
int bench_find_cliffs(const int32_t *lengths, const double *median_ms, const double *fastest_ms, int n,
                      bench_cliff *out, int cap);

#endif
