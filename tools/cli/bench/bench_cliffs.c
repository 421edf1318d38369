/*
 * bench_cliffs.c — where a prefill sweep has a cliff: a prompt length that takes longer than 1.10x
 * the next longer length, in the median of its repetitions and in the fastest one both. A machine
 * busy with something else slows some repetitions, rarely the fastest, so a cliff seen only in the
 * medians is noise (issue 18). Pure: tests/cli/test_bench_cliffs.c.
 */
#include "bench_cliffs.h"

int bench_find_cliffs(const int32_t *lengths, const double *median_ms, const double *fastest_ms, int n,
                      bench_cliff *out, int cap) {
    int found = 0;
    for (int i = 0; i < n; i++) {
        int next = -1; /* the next longer length, wherever it is in the list */
        for (int j = 0; j < n; j++)
            if (lengths[j] > lengths[i] && (next < 0 || lengths[j] < lengths[next])) next = j;
        if (next < 0) continue;
        if (median_ms[i] > BENCH_CLIFF_RATIO * median_ms[next] && fastest_ms[i] > BENCH_CLIFF_RATIO * fastest_ms[next]) {
            if (found < cap) out[found] = (bench_cliff){i, next};
            found++;
        }
    }
    return found;
}
