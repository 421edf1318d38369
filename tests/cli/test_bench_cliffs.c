/*
 * test_bench_cliffs.c — the cliff rule of `glmoe bench` (tools/cli/bench/bench_cliffs.c): a length
 * is a cliff only when it is more than 1.10x slower than the next longer length in the median and
 * in the fastest repetition both (a busy machine slows medians, rarely the fastest run).
 */
#include <stdio.h>

#include "bench/bench_cliffs.h"
#include "test.h"

int main(void) {
    bench_cliff c[8];
    /* a real cliff: 128 tokens slower than 129 in the median and the fastest run */
    {
        const int32_t len[3] = {127, 128, 129};
        const double med[3] = {1.0, 2.0, 1.1}, fast[3] = {0.9, 1.9, 1.0};
        int n = bench_find_cliffs(len, med, fast, 3, c, 8);
        CHECK(n == 1 && c[0].at == 1 && c[0].next == 2, "one cliff at 128 -> 129: %d", n);
    }
    /* noise: the median is slow, the fastest repetition is not: no cliff */
    {
        const int32_t len[3] = {127, 128, 129};
        const double med[3] = {1.0, 2.0, 1.1}, fast[3] = {0.9, 1.0, 1.0};
        CHECK(bench_find_cliffs(len, med, fast, 3, c, 8) == 0, "a slow median alone is no cliff");
    }
    /* the fastest alone is slow: no cliff either */
    {
        const int32_t len[2] = {8, 16};
        const double med[2] = {1.0, 1.0}, fast[2] = {2.0, 1.0};
        CHECK(bench_find_cliffs(len, med, fast, 2, c, 8) == 0, "a slow fastest run alone is no cliff");
    }
    /* exactly 1.10x is not a cliff; the next longer length is found in any order; cap respected */
    {
        const int32_t len[4] = {64, 8, 32, 16};
        const double med[4] = {1.0, 3.0, 1.0, 1.1}, fast[4] = {1.0, 3.0, 1.0, 1.1};
        int n = bench_find_cliffs(len, med, fast, 4, c, 1);
        CHECK(n == 1 && c[0].at == 1 && c[0].next == 3, "8 -> 16 (listed out of order): n %d", n);
        /* 16 vs 32: 1.10x exactly, not more */
        const double med2[4] = {1.0, 1.0, 1.0, 1.1}, fast2[4] = {1.0, 1.0, 1.0, 1.1};
        CHECK(bench_find_cliffs(len, med2, fast2, 4, c, 8) == 0, "1.10x is the limit, not a cliff");
    }
    return test_summary("test_bench_cliffs");
}
