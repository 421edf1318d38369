/*
 * test_sampler.c — tests of glmoe_sampler (src/sample/sampler.c) through the public API, plus its
 * vectorisable exp (src/sample/exp_nonpositive.h) directly.
 *
 * What is checked, and against what:
 *   - exp: 10^6 random points and the edges against exp() in double (<= 1.25 ulp), monotonicity
 *   - greedy: the argmax found here by a plain loop; the lowest id on ties; NaN/+inf handling
 *   - determinism: 1000 draws twice with one seed, once with another, and again after reset()
 *   - distribution: draw counts against softmax(logits / T) computed here in double, with a
 *     chi-square test (critical value at p ~ 5e-4 by the Wilson-Hilferty approximation), on one
 *     block of the vocabulary and on many
 *   - top-k, top-p, min-p: the support on crafted distributions (every kept token drawn, no other
 *     token drawn) and the frequencies against the renormalised reference, through each code path
 *     (heap and quickselect top-k; top-p by partition, by the block shortcut, and by its probe),
 *     against references found here by full sorts
 *   - repetition penalty: greedy flips at values chosen on either side of the HF formula's result,
 *     each distinct token penalised once, the window against a reference over random histories,
 *     and frequencies against the HF formula
 *   - frequency and presence penalties: hand-worked greedy sequences, a reference over random
 *     logits (alone and after the repetition penalty), accepted tokens not counted, reset, and
 *     the random path (a large presence penalty never draws a token twice)
 *   - parameter validation and bad arguments; vocabularies that grow and shrink
 *
 * Each check was seen to fail against a deliberately broken sampler (wrong tie rule, penalty
 * branches swapped or applied twice, window off by one, top-p/top-k cut off by one, temperature
 * ignored on either path, min-p threshold changed, exp coefficients perturbed, ...).
 *
 * The test data come from a splitmix64 stream of this file (seed printed; GLMOE_TEST_SEED overrides
 * it); the sampler's seeds are fixed, so every run with the same data seed is reproducible.
 * Run: build/tests/test_sampler (or `make test`). Also prints the CPU time per token for a
 * 151552-token vocabulary under common settings.
 */
#include "glmoe.h"
#include "sample/exp_nonpositive.h"
#include "test.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define GLM_VOCAB 151552

/* Draws for the frequency tests: the full count in optimised builds, a quarter in unoptimised
 * ones (the ASan build), where a draw costs ~20x more. Checks keep their power to fail, with less
 * margin. Tests that need every kept token to show up do not use it. */
#ifdef __OPTIMIZE__
#define DRAWS(n) (n)
#else
#define DRAWS(n) ((n) / 4)
#endif

/* ---- test data ------------------------------------------------------------------------------ */

static uint64_t data_state;

static uint64_t data_next(void) {
    uint64_t z = (data_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi), never exactly 0 (zeros hide sign bugs in the penalty). */
static float data_uniform(float lo, float hi) {
    for (;;) {
        double u = (double)(data_next() >> 11) * 0x1.0p-53;
        float v = (float)(lo + (hi - lo) * u);
        if (v != 0.0f) return v;
    }
}

static void random_logits(float *z, int n, float lo, float hi) {
    for (int i = 0; i < n; i++) z[i] = data_uniform(lo, hi);
}

/* ---- helpers -------------------------------------------------------------------------------- */

static glmoe_sampler *make_sampler(float temp, int top_k, float top_p, float min_p, float penalty,
                                   uint64_t seed) {
    glmoe_sampler_params p = glmoe_sampler_params_default();
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.repetition_penalty = penalty;
    p.seed = seed;
    glmoe_sampler *s = NULL;
    char err[256];
    glmoe_status st = glmoe_sampler_create(&s, &p, err, sizeof err);
    CHECK(st == GLMOE_OK && s, "create failed: %s", err);
    return s;
}

/* Draws n tokens into counts[0..vocab). Returns false (after a failed CHECK) on an error. */
static bool draw_counts(glmoe_sampler *s, const float *z, int vocab, int n, long *counts) {
    memset(counts, 0, (size_t)vocab * sizeof *counts);
    for (int i = 0; i < n; i++) {
        int32_t t = -1;
        glmoe_status st = glmoe_sampler_sample(s, z, vocab, &t);
        if (st != GLMOE_OK || t < 0 || t >= vocab) {
            CHECK(false, "sample returned status %d token %d", (int)st, (int)t);
            return false;
        }
        counts[t]++;
    }
    return true;
}

/* softmax(z / T) in double, over the tokens with keep[i] (all when keep is NULL). */
static void ref_softmax(const float *z, int vocab, double temp, const bool *keep, double *p) {
    double m = -INFINITY, sum = 0.0;
    for (int i = 0; i < vocab; i++)
        if ((!keep || keep[i]) && z[i] / temp > m) m = z[i] / temp;
    for (int i = 0; i < vocab; i++) {
        p[i] = (!keep || keep[i]) ? exp(z[i] / temp - m) : 0.0;
        sum += p[i];
    }
    for (int i = 0; i < vocab; i++) p[i] /= sum;
}

/* Chi-square critical value for df degrees of freedom at upper tail ~5e-4 (Wilson-Hilferty). */
static double chi2_critical(int df) {
    double k = df, zq = 3.29;
    double t = 1.0 - 2.0 / (9.0 * k) + zq * sqrt(2.0 / (9.0 * k));
    return k * t * t * t;
}

/* Chi-square of counts against probabilities p; tokens with p == 0 must have no draws (checked
 * separately by the callers). Returns the statistic; *df gets the degrees of freedom. */
static double chi2_stat(const long *counts, const double *p, int vocab, long n, int *df) {
    double chi2 = 0.0;
    int bins = 0;
    for (int i = 0; i < vocab; i++) {
        if (p[i] <= 0.0) continue;
        double e = p[i] * (double)n;
        chi2 += ((double)counts[i] - e) * ((double)counts[i] - e) / e;
        bins++;
    }
    *df = bins - 1;
    return chi2;
}

/* Checks that counts match p: the chi-square passes, and zero-probability tokens are never drawn. */
static void check_distribution(const char *what, const long *counts, const double *p, int vocab, long n) {
    int df;
    double chi2 = chi2_stat(counts, p, vocab, n, &df);
    if (df > 0)
        CHECK(chi2 < chi2_critical(df), "%s: chi2 %.1f >= %.1f (df %d)", what, chi2, chi2_critical(df), df);
    int outside = 0;
    for (int i = 0; i < vocab; i++)
        if (p[i] <= 0.0 && counts[i] > 0) outside++;
    CHECK(outside == 0, "%s: %d tokens outside the support were drawn", what, outside);
}

/* Checks that the drawn tokens are exactly the set keep[]. */
static void check_support(const char *what, const long *counts, const bool *keep, int vocab) {
    int missing = 0, extra = 0, first_bad = -1;
    for (int i = 0; i < vocab; i++) {
        if (keep[i] && counts[i] == 0) missing++;
        if (!keep[i] && counts[i] > 0) extra++;
        if (first_bad < 0 && (keep[i] != (counts[i] > 0))) first_bad = i;
    }
    CHECK(missing == 0 && extra == 0, "%s: %d kept tokens never drawn, %d dropped tokens drawn (first %d)",
          what, missing, extra, first_bad);
}

static int ref_argmax(const float *z, int vocab) {
    int best = 0;
    for (int i = 1; i < vocab; i++)
        if (z[i] > z[best]) best = i;
    return best;
}

/* ---- the vectorisable exp ------------------------------------------------------------------ */

/* |f - ref| in units in the last place of a float near ref. */
static double ulp_error(float f, double ref) {
    return fabs((double)f - ref) / ldexp(1.0, ilogb(ref) - 23);
}

static void test_exp(void) {
    double worst = 0.0;
    float worst_x = 0.0f;
    const float edges[] = {0.0f, -0.0f, -1e-30f, -1e-7f, -0.5f, -0.34657359f, -0.6931472f, -1.0f,
                           -10.0f, -86.99f, GM_EXP_MIN};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        double e = ulp_error(gm_exp_nonpositive(edges[i]), exp((double)edges[i]));
        if (e > worst) worst = e, worst_x = edges[i];
    }
    for (int i = 0; i < 1000000; i++) {
        float x = data_uniform(GM_EXP_MIN, 0.0f);
        double e = ulp_error(gm_exp_nonpositive(x), exp((double)x));
        if (e > worst) worst = e, worst_x = x;
    }
    /* 0.98 ulp at most with separate multiplies and adds, 1.01 where the compiler fuses them */
    CHECK(worst <= 1.25, "gm_exp_nonpositive: %.3f ulp at x = %.9g", worst, worst_x);
    CHECK(gm_exp_nonpositive(0.0f) == 1.0f && gm_exp_nonpositive(-0.0f) == 1.0f, "exp(0) != 1");
    /* Monotonic over runs of consecutive floats (the filters rely on weight order = logit order). */
    int drops = 0;
    for (int run = 0; run < 50; run++) {
        float x = data_uniform(GM_EXP_MIN, -1e-3f), prev = gm_exp_nonpositive(x);
        for (int i = 0; i < 20000; i++) {
            x = nextafterf(x, 0.0f);
            float y = gm_exp_nonpositive(x);
            drops += y < prev;
            prev = y;
        }
    }
    CHECK(drops == 0, "gm_exp_nonpositive decreased %d times over increasing x", drops);
}

/* ---- greedy --------------------------------------------------------------------------------- */

static void test_greedy(void) {
    enum { V = 1000 };
    static float z[V];
    glmoe_sampler *s = make_sampler(0.0f, 0, 1.0f, 0.0f, 1.0f, 1);
    glmoe_sampler *s_neg = make_sampler(-1.0f, 50, 0.5f, 0.1f, 1.0f, 1); /* filters don't matter */
    if (!s || !s_neg) return;
    int wrong = 0;
    for (int trial = 0; trial < 50; trial++) {
        random_logits(z, V, -10.0f, 10.0f);
        int32_t t = -1, t2 = -1;
        glmoe_sampler_sample(s, z, V, &t);
        glmoe_sampler_sample(s_neg, z, V, &t2);
        if (t != ref_argmax(z, V) || t2 != t) wrong++;
    }
    CHECK(wrong == 0, "greedy missed the argmax in %d of 50 rows", wrong);

    /* Exact ties: the lowest id. */
    random_logits(z, V, -10.0f, 10.0f);
    z[700] = 20.0f;
    z[310] = 20.0f;
    z[300] = 20.0f; /* 300 and 310 share a block of 64 */
    z[900] = 20.0f;
    int32_t t = -1;
    glmoe_sampler_sample(s, z, V, &t);
    CHECK(t == 300, "tie: got %d, want 300", (int)t);

    /* NaN never wins; +inf wins (the first one). */
    z[0] = NAN;
    z[10] = NAN;
    glmoe_sampler_sample(s, z, V, &t);
    CHECK(t == 300, "NaN present: got %d, want 300", (int)t);
    z[500] = INFINITY;
    z[400] = INFINITY;
    glmoe_sampler_sample(s, z, V, &t);
    CHECK(t == 400, "+inf present: got %d, want 400", (int)t);

    /* Nothing selectable: all NaN or -inf. */
    for (int i = 0; i < V; i++) z[i] = (i % 2) ? NAN : -INFINITY;
    t = 77;
    glmoe_status st = glmoe_sampler_sample(s, z, V, &t);
    CHECK(st == GLMOE_E_ARG, "all NaN/-inf: status %d, want GLMOE_E_ARG", (int)st);
    CHECK(t == 77, "all NaN/-inf: token written (%d)", (int)t);
    /* ... and the sampler says why, with the counts and the first value */
    CHECK(strstr(glmoe_sampler_errmsg(s), "the logits are not finite: no token to choose, all 1000 are NaN or -inf "
                                          "(500 NaN, 500 -inf; the first, logits[0], is -inf)"),
          "all NaN/-inf message: \"%s\"", glmoe_sampler_errmsg(s));
    for (int i = 0; i < V; i++) z[i] = NAN;
    glmoe_sampler_sample(s, z, V, &t);
    CHECK(strstr(glmoe_sampler_errmsg(s), "(1000 NaN, 0 -inf; the first, logits[0], is nan)") ||
              strstr(glmoe_sampler_errmsg(s), "(1000 NaN, 0 -inf; the first, logits[0], is -nan)"),
          "all NaN message: \"%s\"", glmoe_sampler_errmsg(s));
    /* the random path (temperature > 0) and the penalty say the same */
    glmoe_sampler *s_pen = make_sampler(0.8f, 0, 0.9f, 0.0f, 1.3f, 1);
    if (s_pen) {
        int32_t seen = 5;
        glmoe_sampler_accept(s_pen, &seen, 1);
        st = glmoe_sampler_sample(s_pen, z, V, &t);
        CHECK(st == GLMOE_E_ARG && strstr(glmoe_sampler_errmsg(s_pen), "not finite"), "sampling, penalty: %d \"%s\"",
              (int)st, glmoe_sampler_errmsg(s_pen));
        glmoe_sampler_free(s_pen);
    }
    /* a success clears the message */
    random_logits(z, V, -10.0f, 10.0f);
    CHECK(glmoe_sampler_sample(s, z, V, &t) == GLMOE_OK && glmoe_sampler_errmsg(s)[0] == '\0',
          "message after a success: \"%s\"", glmoe_sampler_errmsg(s));
    glmoe_sampler_free(s);
    glmoe_sampler_free(s_neg);
}

/* ---- determinism ---------------------------------------------------------------------------- */

static void draw_sequence(glmoe_sampler *s, const float *z, int vocab, int n, int32_t *out) {
    for (int i = 0; i < n; i++) {
        out[i] = -1;
        glmoe_sampler_sample(s, z, vocab, &out[i]);
    }
}

static void test_determinism(void) {
    enum { V = 64, N = 1000 };
    float z[V];
    static int32_t a[N], b[N], c[N], d[N];
    random_logits(z, V, -2.0f, 2.0f);
    glmoe_sampler *sa = make_sampler(1.0f, 0, 0.95f, 0.0f, 1.0f, 12345);
    glmoe_sampler *sb = make_sampler(1.0f, 0, 0.95f, 0.0f, 1.0f, 12345);
    glmoe_sampler *sc = make_sampler(1.0f, 0, 0.95f, 0.0f, 1.0f, 12346);
    if (!sa || !sb || !sc) return;
    draw_sequence(sa, z, V, N, a);
    draw_sequence(sb, z, V, N, b);
    draw_sequence(sc, z, V, N, c);
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed gave different sequences");
    int differ = 0, distinct = 0;
    for (int i = 0; i < N; i++) differ += a[i] != c[i];
    bool seen[V] = {false};
    for (int i = 0; i < N; i++) {
        if (!seen[a[i]]) distinct++;
        seen[a[i]] = true;
    }
    /* Two independent streams over ~60 tokens agree on a few percent of positions. */
    CHECK(differ > N / 2, "seeds 12345 and 12346 differ at only %d of %d positions", differ, N);
    CHECK(distinct > 20, "only %d distinct tokens in %d draws", distinct, N);

    /* reset() goes back to the seed. */
    glmoe_sampler_reset(sa);
    draw_sequence(sa, z, V, N, d);
    CHECK(memcmp(a, d, sizeof a) == 0, "reset did not reproduce the sequence");
    glmoe_sampler_free(sa);
    glmoe_sampler_free(sb);
    glmoe_sampler_free(sc);
}

/* ---- plain temperature sampling ------------------------------------------------------------- */

static void test_frequencies(void) {
    enum { V = 24, N = DRAWS(200000) };
    float z[V];
    double p[V];
    long counts[V];
    const float temps[] = {1.0f, 0.6f, 1.7f};
    for (int k = 0; k < 3; k++) {
        random_logits(z, V, -2.5f, 2.5f);
        glmoe_sampler *s = make_sampler(temps[k], 0, 1.0f, 0.0f, 1.0f, 100 + (uint64_t)k);
        if (!s) return;
        ref_softmax(z, V, temps[k], NULL, p);
        if (draw_counts(s, z, V, N, counts)) {
            char what[64];
            snprintf(what, sizeof what, "softmax(z/%.1f)", temps[k]);
            check_distribution(what, counts, p, V, N);
        }
        glmoe_sampler_free(s);
    }

    /* NaN logits are never drawn; the rest keep their softmax. */
    random_logits(z, V, -2.0f, 2.0f);
    bool keep[V];
    for (int i = 0; i < V; i++) {
        keep[i] = i % 3 != 0;
        if (!keep[i]) z[i] = (i % 2) ? NAN : -INFINITY;
    }
    glmoe_sampler *s = make_sampler(1.0f, 0, 1.0f, 0.0f, 1.0f, 7);
    if (!s) return;
    ref_softmax(z, V, 1.0, keep, p);
    if (draw_counts(s, z, V, N / 4, counts)) check_distribution("NaN/-inf logits", counts, p, V, N / 4);

    /* +inf logits share the mass evenly. */
    random_logits(z, V, -2.0f, 2.0f);
    z[3] = INFINITY;
    z[12] = INFINITY;
    z[17] = NAN;
    if (draw_counts(s, z, V, 20000, counts)) {
        for (int i = 0; i < V; i++) p[i] = (i == 3 || i == 12) ? 0.5 : 0.0;
        check_distribution("+inf logits", counts, p, V, 20000);
    }
    glmoe_sampler_free(s);

    /* A vocabulary of many blocks (the draw walks block sums, then one block), with min-p on:
     * counts grouped into 50 runs of 20 consecutive ids against the reference. */
    enum { VB = 1000, GROUPS = 50, NB = DRAWS(100000) };
    static float zb[VB];
    static double pb[VB];
    static long cb[VB];
    static bool kb[VB];
    double pg[GROUPS];
    long cg[GROUPS];
    random_logits(zb, VB, -3.0f, 3.0f);
    const float min_p = 0.02f, temp = 0.9f;
    double zmax = zb[0];
    for (int i = 1; i < VB; i++) zmax = zb[i] > zmax ? zb[i] : zmax;
    for (int i = 0; i < VB; i++) kb[i] = exp((zb[i] - zmax) / temp) >= min_p;
    ref_softmax(zb, VB, temp, kb, pb);
    s = make_sampler(temp, 0, 1.0f, min_p, 1.0f, 8);
    if (!s) return;
    if (draw_counts(s, zb, VB, NB, cb)) {
        int outside = 0;
        for (int i = 0; i < VB; i++) outside += !kb[i] && cb[i] > 0;
        CHECK(outside == 0, "blocks + min-p: %d tokens below min-p drawn", outside);
        for (int g = 0; g < GROUPS; g++) {
            pg[g] = 0.0;
            cg[g] = 0;
            for (int i = g * (VB / GROUPS); i < (g + 1) * (VB / GROUPS); i++) {
                pg[g] += pb[i];
                cg[g] += cb[i];
            }
        }
        check_distribution("blocks + min-p (grouped)", cg, pg, GROUPS, NB);
    }
    glmoe_sampler_free(s);
}

/* ---- top-k ---------------------------------------------------------------------------------- */

/* keep[i] = z[i] is among the k largest, the lower id winning ties. */
static void ref_top_k(const float *z, int vocab, int k, bool *keep) {
    for (int i = 0; i < vocab; i++) {
        int better = 0;
        for (int j = 0; j < vocab; j++)
            if (z[j] > z[i] || (z[j] == z[i] && j < i)) better++;
        keep[i] = better < k;
    }
}

static void test_top_k(void) {
    enum { V = 300, N = DRAWS(100000) };
    static float z[V];
    static double p[V];
    static long counts[V];
    static bool keep[V];

    /* top-k = 1 is greedy, at any temperature. */
    glmoe_sampler *s1 = make_sampler(1.5f, 1, 1.0f, 0.0f, 1.0f, 3);
    if (!s1) return;
    int wrong = 0;
    for (int trial = 0; trial < 200; trial++) {
        random_logits(z, V, -1.0f, 1.0f);
        int32_t t = -1;
        glmoe_sampler_sample(s1, z, V, &t);
        if (t != ref_argmax(z, V)) wrong++;
    }
    CHECK(wrong == 0, "top-k=1 differed from the argmax %d times in 200", wrong);
    glmoe_sampler_free(s1);

    /* top-k = 12 (the heap path): support and renormalised frequencies. 20 tokens spread over
     * [1, 5] make the kept ones differ enough for the temperature to show. */
    random_logits(z, V, -1.0f, 1.0f);
    for (int j = 0; j < 20; j++) z[data_next() % V] = data_uniform(1.0f, 5.0f);
    glmoe_sampler *s = make_sampler(1.3f, 12, 1.0f, 0.0f, 1.0f, 4);
    if (!s) return;
    ref_top_k(z, V, 12, keep);
    ref_softmax(z, V, 1.3, keep, p);
    if (draw_counts(s, z, V, N, counts)) {
        check_support("top-k 12", counts, keep, V);
        check_distribution("top-k 12", counts, p, V, N);
    }
    glmoe_sampler_free(s);

    /* Fewer finite tokens than k: NaN and -inf never enter the heap. */
    random_logits(z, V, -1.0f, 1.0f);
    for (int i = 0; i < V; i++) {
        keep[i] = i == 7 || i == 150 || i == 299;
        if (!keep[i]) z[i] = (i % 2) ? NAN : -INFINITY;
    }
    s = make_sampler(1.0f, 5, 1.0f, 0.0f, 1.0f, 8);
    if (!s) return;
    ref_softmax(z, V, 1.0, keep, p);
    if (draw_counts(s, z, V, 20000, counts)) {
        check_support("top-k 5 of 3 finite", counts, keep, V);
        check_distribution("top-k 5 of 3 finite", counts, p, V, 20000);
    }
    glmoe_sampler_free(s);

    /* +inf tokens: top-k 2 of three keeps the two lowest ids, evenly. */
    random_logits(z, V, -1.0f, 1.0f);
    z[20] = INFINITY;
    z[4] = INFINITY;
    z[11] = INFINITY;
    s = make_sampler(1.0f, 2, 1.0f, 0.0f, 1.0f, 9);
    if (!s) return;
    for (int i = 0; i < V; i++) p[i] = (i == 4 || i == 11) ? 0.5 : 0.0;
    if (draw_counts(s, z, V, 20000, counts)) check_distribution("top-k 2 of +inf", counts, p, V, 20000);
    glmoe_sampler_free(s);

    /* Ties at the cut: all logits equal, so the k lowest ids stay (heap path). */
    for (int i = 0; i < V; i++) z[i] = 0.75f;
    s = make_sampler(1.0f, 5, 1.0f, 0.0f, 1.0f, 5);
    if (!s) return;
    for (int i = 0; i < V; i++) keep[i] = i < 5;
    if (draw_counts(s, z, V, 5000, counts)) check_support("top-k 5 ties", counts, keep, V);
    glmoe_sampler_free(s);
}

static int cmp_desc_logit(const void *a, const void *b, void *ctx) {
    const float *z = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (z[i] != z[j]) return z[i] > z[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* order[] = the ids sorted by logit, descending, ties by id. */
static void order_desc(const float *z, int vocab, int *order) {
    for (int i = 0; i < vocab; i++) order[i] = i;
    qsort_r(order, (size_t)vocab, sizeof *order, cmp_desc_logit, (void *)z);
}

/* top-k above the heap limit (the quickselect path) on a flat vocabulary. A token wrongly kept at
 * the cut has p ~ 1/K, so N ~ 20 K draws show it ~20 times. */
static void test_top_k_large(void) {
    enum { V = 1500, K = 1100, N = DRAWS(22000) };
    static float z[V];
    static long counts[V];
    static bool keep[V];
    static int order[V];
    random_logits(z, V, 0.0f, 0.5f);
    order_desc(z, V, order);
    for (int i = 0; i < V; i++) keep[i] = false;
    for (int i = 0; i < K; i++) keep[order[i]] = true;
    glmoe_sampler *s = make_sampler(1.0f, K, 1.0f, 0.0f, 1.0f, 6);
    if (!s) return;
    if (draw_counts(s, z, V, N, counts)) {
        int extra = 0;
        for (int i = 0; i < V; i++)
            if (!keep[i] && counts[i] > 0) extra++;
        CHECK(extra == 0, "top-k %d of %d: %d tokens outside the top-k drawn", K, V, extra);
    }
    glmoe_sampler_free(s);

    /* top-k above the heap limit, then top-p with a small nucleus (found by top-p's heap probe):
     * 8 strong tokens over a weak background; the reference takes the top K by a full sort, the
     * softmax over them, and a p halfway between the 3rd and 4th cumulative sums. */
    {
        static double p[V];
        for (int i = 0; i < V; i++) z[i] = data_uniform(-6.0f, -2.0f);
        for (int j = 0; j < 8; j++) z[data_next() % V] = data_uniform(8.0f, 9.0f);
        order_desc(z, V, order);
        for (int i = 0; i < V; i++) keep[i] = false;
        for (int i = 0; i < K; i++) keep[order[i]] = true;
        ref_softmax(z, V, 1.0, keep, p);
        const int cut = 4;
        double cum = 0.0;
        for (int i = 0; i < cut - 1; i++) cum += p[order[i]];
        float top_p = (float)(cum + 0.5 * p[order[cut - 1]]);
        for (int i = 0; i < V; i++) keep[i] = false;
        for (int i = 0; i < cut; i++) keep[order[i]] = true;
        s = make_sampler(1.0f, K, top_p, 0.0f, 1.0f, 10);
        if (!s) return;
        if (draw_counts(s, z, V, 2000, counts)) check_support("top-k 1100 + top-p", counts, keep, V);
        glmoe_sampler_free(s);
    }

    /* All equal: ids [0, K) survive. */
    for (int i = 0; i < V; i++) z[i] = -0.5f;
    s = make_sampler(1.0f, K, 1.0f, 0.0f, 1.0f, 7);
    if (!s) return;
    if (draw_counts(s, z, V, N, counts)) {
        int extra = 0;
        for (int i = K; i < V; i++) extra += counts[i] > 0;
        CHECK(extra == 0, "top-k %d on ties: %d tokens with id >= %d drawn", K, extra, K);
    }
    glmoe_sampler_free(s);
}

/* ---- top-p ---------------------------------------------------------------------------------- */

/* Logits log(probs[i]) placed at shuffled ids; where[i] is the id of probs[i]. */
static void place_probs(const double *probs, int n, float *z, int *where) {
    for (int i = 0; i < n; i++) where[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(data_next() % (uint64_t)(i + 1));
        int t = where[i];
        where[i] = where[j];
        where[j] = t;
    }
    for (int i = 0; i < n; i++) z[where[i]] = (float)log(probs[i]);
}

static void test_top_p(void) {
    enum { V = 7, N = DRAWS(100000) };
    /* Sorted, sum 1. Cumulative: .40 .65 .80 .90 .95 .98 1. */
    const double probs[V] = {0.40, 0.25, 0.15, 0.10, 0.05, 0.03, 0.02};
    float z[V];
    int where[V];
    double p[V];
    long counts[V];
    bool keep[V];
    place_probs(probs, V, z, where);

    /* (top_p, temperature, nucleus size): at T = 0.5 the probabilities become p^2 / sum p^2 =
     * .617 .241 .087 ..., so 0.7 keeps two tokens there but three at T = 1: this checks that the
     * temperature comes before top-p, as in HF. */
    const struct { float top_p, temp; int size; } cases[] = {
        {0.70f, 1.0f, 3}, {0.92f, 1.0f, 5}, {0.30f, 1.0f, 1}, {0.0f, 1.0f, 1},
        {0.99f, 1.0f, 7}, {0.70f, 0.5f, 2},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        glmoe_sampler *s = make_sampler(cases[c].temp, 0, cases[c].top_p, 0.0f, 1.0f, 20 + c);
        if (!s) return;
        for (int i = 0; i < V; i++) keep[where[i]] = i < cases[c].size;
        ref_softmax(z, V, cases[c].temp, keep, p);
        if (draw_counts(s, z, V, N, counts)) {
            char what[64];
            snprintf(what, sizeof what, "top-p %.2f T %.1f", cases[c].top_p, cases[c].temp);
            check_support(what, counts, keep, V);
            check_distribution(what, counts, p, V, N);
        }
        glmoe_sampler_free(s);
    }
}

static int cmp_desc_prob(const void *a, const void *b, void *ctx) {
    const double *p = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    if (p[i] != p[j]) return p[i] > p[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

/* One top-p case against a nucleus found here by a full sort: p is put halfway between two
 * cumulative sums, so that rounding cannot move the cut. exact: every nucleus token must be drawn
 * (the caller makes them likely enough); otherwise only "nothing outside is drawn" is checked, and
 * the outside must hold enough mass for a leak to show. */
static void nucleus_case(const char *what, const float *z, int vocab, float temp, int cut, int draws,
                         bool exact, uint64_t seed) {
    double *p = malloc((size_t)vocab * sizeof *p);
    int *order = malloc((size_t)vocab * sizeof *order);
    bool *keep = malloc((size_t)vocab * sizeof *keep);
    long *counts = malloc((size_t)vocab * sizeof *counts);
    if (!p || !order || !keep || !counts) {
        CHECK(false, "%s: out of memory", what);
        goto done;
    }
    ref_softmax(z, vocab, temp, NULL, p);
    for (int i = 0; i < vocab; i++) order[i] = i;
    qsort_r(order, (size_t)vocab, sizeof *order, cmp_desc_prob, p);
    double cum = 0.0;
    for (int i = 0; i < cut - 1; i++) cum += p[order[i]];
    float top_p = (float)(cum + 0.5 * p[order[cut - 1]]);
    for (int i = 0; i < vocab; i++) keep[i] = false;
    for (int i = 0; i < cut; i++) keep[order[i]] = true;

    glmoe_sampler *s = make_sampler(temp, 0, top_p, 0.0f, 1.0f, seed);
    if (!s) goto done;
    if (draw_counts(s, z, vocab, draws, counts)) {
        if (exact) {
            check_support(what, counts, keep, vocab);
        } else {
            double outside = 1.0 - cum - p[order[cut - 1]];
            CHECK(outside * draws > 40.0, "%s: test too weak (outside mass %.3f)", what, outside);
            int extra = 0;
            for (int i = 0; i < vocab; i++) extra += !keep[i] && counts[i] > 0;
            CHECK(extra == 0, "%s: %d tokens outside the nucleus of %d drawn", what, extra, cut);
        }
    }
    glmoe_sampler_free(s);
done:
    free(p);
    free(order);
    free(keep);
    free(counts);
}

/* Places n strong logits in [lo, hi) at distinct random ids over a weak background. */
static void strong_over_weak(float *z, int vocab, int n, float lo, float hi, float weak_lo, float weak_hi) {
    random_logits(z, vocab, weak_lo, weak_hi);
    for (int placed = 0; placed < n;) {
        int i = (int)(data_next() % (uint64_t)vocab);
        if (z[i] >= lo) continue;
        z[i] = data_uniform(lo, hi);
        placed++;
    }
}

/* Top-p through each of its paths (see src/sample/sampler.c): the partition on a full candidate
 * list (small vocabulary), the shortcut through the 256 blocks with the largest maxima (vocabulary
 * above 16384), the shortcut falling short on a flat distribution, and a large nucleus inside the
 * shortcut (its heap probe falls short, the partition runs on the collected tokens). */
static void test_top_p_large(void) {
    enum { V = 20000 };
    static float z[V];

    /* 60 strong among 400: each nucleus token has p >= ~0.01, so 4000 draws see them all. */
    strong_over_weak(z, 400, 60, 3.0f, 4.0f, -3.0f, -1.0f);
    nucleus_case("top-p partition (V 400)", z, 400, 1.0f, 20 + (int)(data_next() % 30), 4000, true, 31);

    /* 12 strong among 20000: p >= ~0.05 each; 500 draws. */
    strong_over_weak(z, V, 12, 8.0f, 9.0f, -6.0f, -2.0f);
    nucleus_case("top-p blocks (V 20000)", z, V, 1.0f, 3 + (int)(data_next() % 7), 500, true, 32);

    /* Flat: the blocks hold too little mass, the partition runs on everything. */
    random_logits(z, V, 0.01f, 1.0f);
    nucleus_case("top-p flat (V 20000)", z, V, 0.8f, V * 2 / 3, 300, false, 33);

    /* 1500 strong in ids [0, 1500) (24 blocks) and a nucleus of ~1000 of them. */
    random_logits(z, V, -6.0f, -2.0f);
    for (int i = 0; i < 1500; i++) z[i] = data_uniform(5.0f, 6.0f);
    nucleus_case("top-p large nucleus in blocks (V 20000)", z, V, 1.0f, 950 + (int)(data_next() % 100), 300,
                 false, 34);
}

/* ---- min-p ---------------------------------------------------------------------------------- */

static void test_min_p(void) {
    enum { V = 6, N = DRAWS(100000) };
    const double probs[V] = {0.50, 0.20, 0.10, 0.09, 0.06, 0.05};
    float z[V];
    int where[V];
    double p[V];
    long counts[V];
    bool keep[V];
    place_probs(probs, V, z, where);

    /* min_p 0.15: threshold 0.075 keeps four; 0.19 (0.095) keeps three; 1 keeps only the max. */
    const struct { float min_p; int size; } cases[] = {{0.15f, 4}, {0.19f, 3}, {1.0f, 1}, {0.05f, 6}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        glmoe_sampler *s = make_sampler(1.0f, 0, 1.0f, cases[c].min_p, 1.0f, 40 + c);
        if (!s) return;
        for (int i = 0; i < V; i++) keep[where[i]] = i < cases[c].size;
        ref_softmax(z, V, 1.0, keep, p);
        if (draw_counts(s, z, V, N, counts)) {
            char what[64];
            snprintf(what, sizeof what, "min-p %.2f", cases[c].min_p);
            check_support(what, counts, keep, V);
            check_distribution(what, counts, p, V, N);
        }
        glmoe_sampler_free(s);
    }

    /* All three filters together: top-k 5 -> {.5 .2 .1 .09 .06}; top-p .85 of that mass
     * (.95 -> .8075) -> {.5 .2 .1 .09}; min-p .19 -> {.5 .2 .1}. */
    glmoe_sampler *s = make_sampler(1.0f, 5, 0.85f, 0.19f, 1.0f, 50);
    if (!s) return;
    for (int i = 0; i < V; i++) keep[where[i]] = i < 3;
    ref_softmax(z, V, 1.0, keep, p);
    if (draw_counts(s, z, V, N, counts)) {
        check_support("top-k+top-p+min-p", counts, keep, V);
        check_distribution("top-k+top-p+min-p", counts, p, V, N);
    }
    glmoe_sampler_free(s);
}

/* ---- repetition penalty --------------------------------------------------------------------- */

static int32_t greedy_with_history(const float *z, int vocab, float penalty, int window,
                                   const int32_t *hist, size_t n_hist) {
    glmoe_sampler_params p = glmoe_sampler_params_default();
    p.repetition_penalty = penalty;
    p.repetition_window = window;
    glmoe_sampler *s = NULL;
    if (glmoe_sampler_create(&s, &p, NULL, 0) != GLMOE_OK) return -2;
    glmoe_sampler_accept(s, hist, n_hist);
    int32_t t = -1;
    glmoe_sampler_sample(s, z, vocab, &t);
    glmoe_sampler_free(s);
    return t;
}

static void test_repetition_penalty(void) {
    /* HF: score < 0 ? score * penalty : score / penalty. Each case puts the competitor between
     * the correct result and the result of a plausible mistake. */
    {
        const float z[4] = {3.0f, 2.5f, -4.0f, -5.0f};
        const int32_t h[1] = {0};
        CHECK(greedy_with_history(z, 4, 1.3f, 0, h, 1) == 1, "3/1.3 = 2.31 should lose to 2.5");
        CHECK(greedy_with_history(z, 4, 1.1f, 0, h, 1) == 0, "3/1.1 = 2.73 should beat 2.5");
        CHECK(greedy_with_history(z, 4, 1.0f, 0, h, 1) == 0, "penalty 1 must be off");
        CHECK(greedy_with_history(z, 4, 0.8f, 0, h, 1) == 0, "penalty < 1 favours the token");
    }
    {
        const float z[4] = {-3.0f, -1.0f, -1.2f, -6.0f};
        const int32_t h[1] = {1};
        /* *penalty: -1.3 < -1.2. Dividing instead would give -0.77 and keep token 1. */
        CHECK(greedy_with_history(z, 4, 1.3f, 0, h, 1) == 2, "negative logit: -1*1.3 should lose to -1.2");
        CHECK(greedy_with_history(z, 4, 1.1f, 0, h, 1) == 1, "negative logit: -1*1.1 should beat -1.2");
    }
    {
        /* Each distinct token once: 3/1.3 = 2.31 > 2.0, but 3/1.3^3 = 1.37 would lose. */
        const float z[3] = {3.0f, 2.0f, -1.0f};
        const int32_t h[5] = {0, 0, 2, 0, 0};
        CHECK(greedy_with_history(z, 3, 1.3f, 0, h, 5) == 0, "a repeated token was penalised more than once");
        /* Ids outside the vocabulary are ignored. */
        const int32_t bad[3] = {-5, 99, 1 << 30};
        CHECK(greedy_with_history(z, 3, 1.3f, 0, bad, 3) == 0, "out-of-range history ids changed the result");
    }
    {
        /* The window: token 0 is 3 tokens back. */
        const float z[8] = {3.0f, 2.5f, -1.0f, -1.0f, -1.0f, -2.0f, -2.0f, -1.0f};
        const int32_t h[3] = {0, 5, 6};
        CHECK(greedy_with_history(z, 8, 1.3f, 2, h, 3) == 0, "window 2 should not see token 0");
        CHECK(greedy_with_history(z, 8, 1.3f, 3, h, 3) == 1, "window 3 should see token 0");
        CHECK(greedy_with_history(z, 8, 1.3f, 0, h, 3) == 1, "window 0 (all) should see token 0");
        /* A long history through the compaction: 0 early, then 1000 other tokens. */
        static int32_t longh[1001];
        longh[0] = 0;
        for (int i = 1; i < 1001; i++) longh[i] = 5 + i % 3;
        CHECK(greedy_with_history(z, 8, 1.3f, 10, longh, 1001) == 0, "window 10: token 0 is 1000 back");
        CHECK(greedy_with_history(z, 8, 1.3f, 0, longh, 1001) == 1, "window 0: token 0 must count");
        CHECK(greedy_with_history(z, 8, 1.3f, 1001, longh, 1001) == 1, "window 1001: token 0 must count");
    }
    {
        /* The window against a reference, over random histories fed in random chunks (which runs
         * the history's compaction at every offset). Token 7 never occurs; the probed token t has
         * logit 3 and token 7 has 2.5, so greedy picks 7 exactly when t is in the window. */
        int wrong = 0;
        for (int trial = 0; trial < 300; trial++) {
            int window = 1 + (int)(data_next() % 12), len = 1 + (int)(data_next() % 60);
            int32_t h[60];
            for (int i = 0; i < len; i++) h[i] = (int32_t)(data_next() % 7);
            int32_t t = (int32_t)(data_next() % 7);
            bool seen = false;
            for (int i = len - window < 0 ? 0 : len - window; i < len; i++) seen |= h[i] == t;
            float z[8];
            for (int i = 0; i < 8; i++) z[i] = -5.0f;
            z[t] = 3.0f;
            z[7] = 2.5f;
            glmoe_sampler_params p = glmoe_sampler_params_default();
            p.repetition_penalty = 1.3f;
            p.repetition_window = window;
            glmoe_sampler *s = NULL;
            if (glmoe_sampler_create(&s, &p, NULL, 0) != GLMOE_OK) {
                wrong++;
                continue;
            }
            for (int i = 0; i < len;) {
                int chunk = 1 + (int)(data_next() % 7);
                if (chunk > len - i) chunk = len - i;
                glmoe_sampler_accept(s, h + i, (size_t)chunk);
                i += chunk;
            }
            int32_t got = -1;
            glmoe_sampler_sample(s, z, 8, &got);
            wrong += got != (seen ? 7 : t);
            glmoe_sampler_free(s);
        }
        CHECK(wrong == 0, "repetition window: %d of 300 random histories penalised wrongly", wrong);
    }
    {
        /* sample() appends what it picks; reset() forgets it. */
        const float z[3] = {3.0f, 2.5f, -1.0f};
        glmoe_sampler_params p = glmoe_sampler_params_default();
        p.repetition_penalty = 1.3f;
        glmoe_sampler *s = NULL;
        if (glmoe_sampler_create(&s, &p, NULL, 0) != GLMOE_OK) {
            CHECK(false, "create failed");
            return;
        }
        int32_t t1 = -1, t2 = -1, t3 = -1;
        glmoe_sampler_sample(s, z, 3, &t1);
        glmoe_sampler_sample(s, z, 3, &t2);
        glmoe_sampler_reset(s);
        glmoe_sampler_sample(s, z, 3, &t3);
        CHECK(t1 == 0 && t2 == 1 && t3 == 0, "history from sample(): got %d %d %d, want 0 1 0",
              (int)t1, (int)t2, (int)t3);
        glmoe_sampler_free(s);
    }

    /* Frequencies: random logits, some seen tokens; the reference applies the formula itself. */
    enum { V = 20, N = DRAWS(200000) };
    float z[V], zp[V];
    double p_ref[V], p_plain[V];
    long counts[V];
    random_logits(z, V, -2.0f, 2.0f);
    /* Seen tokens far enough from 0 that the penalty outweighs the renormalisation (a seen logit
     * near 0 barely moves, and can even gain probability when the others lose theirs). */
    z[3] = data_uniform(1.0f, 2.0f);
    z[7] = data_uniform(-2.0f, -1.0f);
    z[12] = data_uniform(0.6f, 1.5f);
    z[15] = data_uniform(-1.0f, -0.4f);
    const int32_t hist[6] = {3, 7, 7, 12, 3, 15};
    const float penalty = 1.6f;
    memcpy(zp, z, sizeof z);
    for (int i = 0; i < 6; i++) {
        int t = hist[i];
        zp[t] = z[t] < 0 ? z[t] * penalty : z[t] / penalty;
    }
    ref_softmax(zp, V, 0.9, NULL, p_ref);
    ref_softmax(z, V, 0.9, NULL, p_plain);
    /* A window of 6 and the six tokens accepted again before each draw: the penalty always sees
     * exactly hist, while one RNG stream runs through all the draws. */
    glmoe_sampler_params prm = glmoe_sampler_params_default();
    prm.temperature = 0.9f;
    prm.repetition_penalty = penalty;
    prm.repetition_window = 6;
    prm.seed = 60;
    glmoe_sampler *s = NULL;
    if (glmoe_sampler_create(&s, &prm, NULL, 0) != GLMOE_OK) {
        CHECK(false, "create failed");
        return;
    }
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < N; i++) {
        int32_t t = -1;
        glmoe_sampler_accept(s, hist, 6);
        if (glmoe_sampler_sample(s, z, V, &t) != GLMOE_OK || t < 0 || t >= V) {
            CHECK(false, "sample failed");
            break;
        }
        counts[t]++;
    }
    glmoe_sampler_free(s);
    check_distribution("repetition penalty 1.6", counts, p_ref, V, N);
    const int seen[4] = {3, 7, 12, 15};
    int lowered = 0;
    for (int i = 0; i < 4; i++) lowered += (double)counts[seen[i]] / N < p_plain[seen[i]];
    CHECK(lowered == 4, "only %d of 4 seen tokens became less likely", lowered);
    int unseen_gained = 0;
    for (int i = 0; i < V; i++)
        if (i != 3 && i != 7 && i != 12 && i != 15) unseen_gained += (double)counts[i] / N > p_plain[i];
    CHECK(unseen_gained >= V - 4 - 2, "only %d of %d unseen tokens gained", unseen_gained, V - 4);
}

/* ---- frequency and presence penalties (OpenAI) ---------------------------------------------- */

/* The reference: greedy over z[t] (after the HF repetition penalty over `hist`) minus
 * count[t] * freq + (count[t] > 0) * presence, in double, lowest id on ties. */
static int32_t ref_openai_greedy(const float *z, int vocab, const long *count, double freq, double presence,
                                 float rep, const int32_t *hist, size_t n_hist) {
    int32_t best = -1;
    double best_v = -INFINITY;
    for (int t = 0; t < vocab; t++) {
        double v = z[t];
        if (rep != 1.0f) {
            bool seen = false;
            for (size_t i = 0; i < n_hist; i++) seen |= hist[i] == t;
            if (seen) v = z[t] < 0.0f ? (double)(z[t] * rep) : (double)(z[t] / rep);
        }
        v -= (double)count[t] * freq + (count[t] > 0 ? presence : 0.0);
        if (v > best_v) {
            best_v = v;
            best = t;
        }
    }
    return best;
}

static void test_openai_penalties(void) {
    glmoe_sampler_params p = glmoe_sampler_params_default();
    CHECK(p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f, "the OpenAI penalties are not off by default");
    /* Hand-worked sequences on z = {3, 2.5, 2}: frequency 0.3 lets token 0 win twice (3, 2.7 >
     * 2.5), then 2.4 loses; presence 0.6 takes 0.6 once and never more. */
    const float z[3] = {3.0f, 2.5f, 2.0f};
    const struct { float freq, presence; int32_t want[6]; } cases[] = {
        {0.3f, 0.0f, {0, 0, 1, 0, 1, 0}},
        {0.0f, 0.6f, {0, 1, 0, 0, 0, 0}},
        {0.0f, 0.0f, {0, 0, 0, 0, 0, 0}},
        {-0.5f, 0.0f, {0, 0, 0, 0, 0, 0}}, /* negative favours repeats */
        {0.0f, -1.0f, {0, 0, 0, 0, 0, 0}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        p = glmoe_sampler_params_default();
        p.frequency_penalty = cases[c].freq;
        p.presence_penalty = cases[c].presence;
        glmoe_sampler *s = NULL;
        CHECK(glmoe_sampler_create(&s, &p, NULL, 0) == GLMOE_OK, "create");
        if (!s) continue;
        /* accepted tokens (the prompt) are not counted */
        const int32_t prompt[4] = {0, 0, 0, 0};
        glmoe_sampler_accept(s, prompt, 4);
        for (int round = 0; round < 2; round++) { /* the second after reset: the counts are gone */
            for (int i = 0; i < 6; i++) {
                int32_t t = -1;
                CHECK(glmoe_sampler_sample(s, z, 3, &t) == GLMOE_OK, "sample");
                CHECK(t == cases[c].want[i], "case %zu round %d step %d: token %d, want %d", c, round, i, t,
                      cases[c].want[i]);
            }
            glmoe_sampler_reset(s);
        }
        glmoe_sampler_free(s);
    }

    /* Random logits, many steps, against the reference, alone and with a repetition penalty. */
    enum { V = 300, STEPS = 400 };
    static float zr[V];
    static long count[V];
    static int32_t hist[STEPS + 8];
    for (int variant = 0; variant < 3; variant++) {
        random_logits(zr, V, -2.0f, 2.0f);
        memset(count, 0, sizeof count);
        p = glmoe_sampler_params_default();
        p.frequency_penalty = variant == 1 ? 0.0f : 0.05f;
        p.presence_penalty = variant == 0 ? 0.0f : 0.2f;
        p.repetition_penalty = variant == 2 ? 1.2f : 1.0f;
        glmoe_sampler *s = NULL;
        CHECK(glmoe_sampler_create(&s, &p, NULL, 0) == GLMOE_OK, "create");
        if (!s) continue;
        size_t n_hist = 0;
        const int32_t prompt[2] = {7, 11};
        glmoe_sampler_accept(s, prompt, 2);
        hist[n_hist++] = 7;
        hist[n_hist++] = 11;
        int mismatches = 0;
        for (int i = 0; i < STEPS; i++) {
            int32_t want = ref_openai_greedy(zr, V, count, p.frequency_penalty, p.presence_penalty,
                                             p.repetition_penalty, hist, n_hist), t = -1;
            glmoe_sampler_sample(s, zr, V, &t);
            mismatches += t != want;
            if (t < 0 || t >= V) break;
            count[t]++;
            hist[n_hist++] = t;
        }
        CHECK(mismatches == 0, "variant %d: %d of %d steps differ from the reference", variant, mismatches, STEPS);
        glmoe_sampler_free(s);
    }

    /* Sampling (temperature 1) sees the penalties too: with a presence penalty of 100 on equal
     * logits, 8 draws of 8 tokens give each token exactly once. */
    {
        p = glmoe_sampler_params_default();
        p.temperature = 1.0f;
        p.presence_penalty = 100.0f;
        p.seed = 5;
        glmoe_sampler *s = NULL;
        CHECK(glmoe_sampler_create(&s, &p, NULL, 0) == GLMOE_OK, "create");
        const float flat[8] = {0};
        int seen[8] = {0}, twice = 0;
        for (int i = 0; s && i < 8; i++) {
            int32_t t = -1;
            glmoe_sampler_sample(s, flat, 8, &t);
            if (t >= 0 && t < 8) twice += seen[t]++ > 0;
        }
        CHECK(twice == 0, "a sampled token came again %d times despite presence_penalty 100", twice);
        glmoe_sampler_free(s);
    }
}

/* ---- arguments ------------------------------------------------------------------------------ */

static void expect_rejected(const char *what, glmoe_sampler_params p) {
    glmoe_sampler *s = (glmoe_sampler *)&p; /* any non-NULL value: create must clear it */
    char err[200] = "unchanged";
    glmoe_status st = glmoe_sampler_create(&s, &p, err, sizeof err);
    CHECK(st == GLMOE_E_ARG, "%s: status %d, want GLMOE_E_ARG", what, (int)st);
    CHECK(s == NULL, "%s: *out not NULL on failure", what);
    CHECK(err[0] != '\0' && strcmp(err, "unchanged") != 0 && !strchr(err, '\n'),
          "%s: no one-line message (\"%s\")", what, err);
    /* err may be NULL, or tiny. */
    st = glmoe_sampler_create(&s, &p, NULL, 0);
    CHECK(st == GLMOE_E_ARG && !s, "%s: with err NULL: status %d", what, (int)st);
    char tiny[6];
    memset(tiny, 'x', sizeof tiny);
    st = glmoe_sampler_create(&s, &p, tiny, 4);
    CHECK(st == GLMOE_E_ARG && strlen(tiny) == 3 && tiny[5] == 'x', "%s: err_size not respected", what);
}

static void expect_accepted(const char *what, glmoe_sampler_params p) {
    glmoe_sampler *s = NULL;
    char err[200] = "";
    glmoe_status st = glmoe_sampler_create(&s, &p, err, sizeof err);
    CHECK(st == GLMOE_OK && s, "%s: rejected: %s", what, err);
    float z[5] = {0.5f, -1.0f, 2.0f, 1.5f, -0.25f};
    int32_t t = -1;
    if (s) CHECK(glmoe_sampler_sample(s, z, 5, &t) == GLMOE_OK && t >= 0 && t < 5, "%s: sample failed", what);
    glmoe_sampler_free(s);
}

static void test_arguments(void) {
    glmoe_sampler_params d = glmoe_sampler_params_default(), p;
    CHECK(d.temperature <= 0.0f && d.top_k <= 0 && d.top_p >= 1.0f && d.min_p <= 0.0f &&
              d.repetition_penalty == 1.0f, "defaults are not greedy with every filter off");
#define REJECT(field, value)                                                                    \
    do {                                                                                        \
        p = d;                                                                                  \
        p.field = value;                                                                        \
        expect_rejected(#field " = " #value, p);                                                \
    } while (0)
#define ACCEPT(field, value)                                                                    \
    do {                                                                                        \
        p = d;                                                                                  \
        p.temperature = 0.8f;                                                                   \
        p.field = value;                                                                        \
        expect_accepted(#field " = " #value, p);                                                \
    } while (0)
    REJECT(temperature, NAN);
    REJECT(temperature, INFINITY);
    REJECT(top_p, -0.1f);
    REJECT(top_p, NAN);
    REJECT(min_p, NAN);
    REJECT(min_p, 1.5f);
    REJECT(repetition_penalty, 0.0f);
    REJECT(repetition_penalty, -1.2f);
    REJECT(repetition_penalty, NAN);
    REJECT(repetition_penalty, INFINITY);
    REJECT(repetition_window, -1);
    REJECT(frequency_penalty, NAN);
    REJECT(frequency_penalty, INFINITY);
    REJECT(presence_penalty, NAN);
    REJECT(presence_penalty, -INFINITY);
    ACCEPT(temperature, -1.0f);
    ACCEPT(top_p, 0.0f);
    ACCEPT(top_p, 3.0f);
    ACCEPT(min_p, -2.0f);
    ACCEPT(min_p, 1.0f);
    ACCEPT(top_k, -5);
    ACCEPT(top_k, 1000000);
    ACCEPT(repetition_penalty, 0.5f);
    ACCEPT(frequency_penalty, -2.0f);
    ACCEPT(presence_penalty, 2.0f);
#undef REJECT
#undef ACCEPT

    CHECK(glmoe_sampler_create(NULL, &d, NULL, 0) == GLMOE_E_ARG, "out NULL accepted");
    glmoe_sampler *s = NULL;
    CHECK(glmoe_sampler_create(&s, NULL, NULL, 0) == GLMOE_OK && s, "params NULL should mean the defaults");
    float z[3] = {1.0f, 2.0f, 3.0f};
    int32_t t;
    CHECK(glmoe_sampler_sample(NULL, z, 3, &t) == GLMOE_E_ARG, "sampler NULL accepted");
    CHECK(glmoe_sampler_sample(s, NULL, 3, &t) == GLMOE_E_ARG, "logits NULL accepted");
    CHECK(strstr(glmoe_sampler_errmsg(s), "logits is NULL"), "logits NULL message: %s", glmoe_sampler_errmsg(s));
    CHECK(glmoe_sampler_sample(s, z, 3, NULL) == GLMOE_E_ARG, "token NULL accepted");
    CHECK(glmoe_sampler_sample(s, z, 0, &t) == GLMOE_E_ARG, "n_vocab 0 accepted");
    CHECK(strstr(glmoe_sampler_errmsg(s), "n_vocab 0 is not positive"), "n_vocab message: %s", glmoe_sampler_errmsg(s));
    CHECK(glmoe_sampler_sample(s, z, -3, &t) == GLMOE_E_ARG, "n_vocab < 0 accepted");
    CHECK(!strcmp(glmoe_sampler_errmsg(NULL), "no sampler (NULL handle)"), "NULL sampler message");
    glmoe_sampler_accept(NULL, NULL, 3); /* must not crash */
    glmoe_sampler_accept(s, NULL, 3);
    glmoe_sampler_reset(NULL);
    glmoe_sampler_free(s);
    glmoe_sampler_free(NULL);
}

/* ---- vocabulary growth and timing ----------------------------------------------------------- */

/* CPU time of this thread: steadier than wall time on a shared machine. */
static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Two shapes of GLM-sized logits: "peaked" looks like a trained model's row (a bell of logits
 * with sd ~1.8 and a few dozen far above it), "flat" is uniform in [-8, 8], the worst case for
 * top-p (a nucleus of tens of thousands of tokens). Small vocabularies are sampled before and after
 * each GLM-sized run: the buffers must grow and stay valid. Prints CPU microseconds per token. */
static void test_big_vocab_and_timing(void) {
    static float peaked[GLM_VOCAB], flat[GLM_VOCAB];
    for (int i = 0; i < GLM_VOCAB; i++) {
        float u = 0.0f;
        for (int k = 0; k < 6; k++) u += data_uniform(0.0f, 1.0f);
        peaked[i] = (u - 3.0f) * 2.5f;
    }
    for (int k = 0; k < 30; k++) peaked[data_next() % GLM_VOCAB] = data_uniform(14.0f, 22.0f);
    random_logits(flat, GLM_VOCAB, -8.0f, 8.0f);
    const float *rows[2] = {peaked, flat};

    const struct { const char *name; float temp; int top_k; float top_p, min_p, penalty; } cfg[] = {
        {"greedy", 0.0f, 0, 1.0f, 0.0f, 1.0f},
        {"T 1", 1.0f, 0, 1.0f, 0.0f, 1.0f},
        {"T 0.8 min-p 0.05", 0.8f, 0, 1.0f, 0.05f, 1.0f},
        {"T 0.8 top-k 40", 0.8f, 40, 1.0f, 0.0f, 1.0f},
        {"T 0.8 top-p 0.95", 0.8f, 0, 0.95f, 0.0f, 1.0f},
        {"T 0.6 top-k 20 top-p 0.95", 0.6f, 20, 0.95f, 0.0f, 1.0f},
        {"T 0.8 top-k 5000 top-p 0.9", 0.8f, 5000, 0.9f, 0.0f, 1.0f},
        {"T 0.8 top-p 0.95 penalty 1.1", 0.8f, 0, 0.95f, 0.0f, 1.1f},
    };
    int32_t prompt[512];
    for (int i = 0; i < 512; i++) prompt[i] = (int32_t)(data_next() % GLM_VOCAB);
    printf("  sampling a %d-token vocabulary, CPU us per token:     peaked      flat\n", GLM_VOCAB);
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        double us[2];
        for (int r = 0; r < 2; r++) {
            glmoe_sampler *s = make_sampler(cfg[c].temp, cfg[c].top_k, cfg[c].top_p, cfg[c].min_p,
                                            cfg[c].penalty, 70);
            if (!s) return;
            glmoe_sampler_accept(s, prompt, 512);
            int32_t t = -1;
            CHECK(glmoe_sampler_sample(s, rows[r], 10, &t) == GLMOE_OK && t >= 0 && t < 10, "%s: V=10",
                  cfg[c].name);
            int reps = DRAWS(48), bad = 0;
            double t0 = now_us();
            for (int i = 0; i < reps; i++) {
                glmoe_status st = glmoe_sampler_sample(s, rows[r], GLM_VOCAB, &t);
                bad += st != GLMOE_OK || t < 0 || t >= GLM_VOCAB;
            }
            us[r] = (now_us() - t0) / reps;
            CHECK(bad == 0, "%s: %d failed samples", cfg[c].name, bad);
            CHECK(glmoe_sampler_sample(s, rows[r], 10, &t) == GLMOE_OK && t >= 0 && t < 10, "%s: V=10 after",
                  cfg[c].name);
            glmoe_sampler_free(s);
        }
        printf("    %-48s %8.0f  %8.0f\n", cfg[c].name, us[0], us[1]);
    }
}

/* Runs one test function and says how long it took (the heavy ones draw 10^5 tokens). */
#define RUN(fn)                                                                                 \
    do {                                                                                        \
        double t0_ = now_us();                                                                  \
        fn();                                                                                   \
        printf("  %-28s %7.2f s\n", #fn, (now_us() - t0_) / 1e6);                               \
    } while (0)

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    const char *env = getenv("GLMOE_TEST_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 0) : 20250917u;
    data_state = seed;
    printf("test data seed %llu (set GLMOE_TEST_SEED to change)\n", (unsigned long long)seed);

    RUN(test_exp);
    RUN(test_greedy);
    RUN(test_determinism);
    RUN(test_frequencies);
    RUN(test_top_k);
    RUN(test_top_k_large);
    RUN(test_top_p);
    RUN(test_top_p_large);
    RUN(test_min_p);
    RUN(test_repetition_penalty);
    RUN(test_openai_penalties);
    RUN(test_arguments);
    RUN(test_big_vocab_and_timing);
    return test_summary("test_sampler");
}
