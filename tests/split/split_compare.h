/*
 * split_compare.h — the check of the split tests: a split model's logits against the unsplit
 * model's, by relative L2 and by max |diff| scaled by the largest logit.
 */
#ifndef GLMOE_SPLIT_COMPARE_H
#define GLMOE_SPLIT_COMPARE_H

#include <math.h>
#include <stddef.h>

#include "test.h"

static inline void split_compare(const char *what, const float *a, const float *b, size_t n, double tol) {
    double num = 0, den = 0, max_abs = 0, max_ref = 1;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
        if (fabs(d) > max_abs) max_abs = fabs(d);
        if (fabs(b[i]) > max_ref) max_ref = fabs(b[i]);
    }
    const double rel = sqrt(num) / (den > 0 ? sqrt(den) : 1);
    printf("  %-28s rel L2 %.2e  max |diff| %.2e\n", what, rel, max_abs);
    CHECK(rel <= tol && max_abs <= tol * max_ref, "%s: rel L2 %.3e, max |diff| %.3e (max |logit| %.2f)", what, rel,
          max_abs, max_ref);
}

#endif
