/*
 * sampler.c — glmoe_sampler: turns one row of logits into a token id.
 *
 * The pipeline follows Hugging Face generate() (the order of its LogitsProcessorList), which is
 * also llama.cpp's order except that llama.cpp applies the temperature last:
 *
 *   1. repetition penalty  CTRL-style, as RepetitionPenaltyLogitsProcessor: for every distinct
 *                          token t among the last `repetition_window` tokens of the history,
 *                          z[t] = z[t] < 0 ? z[t] * penalty : z[t] / penalty
 *   1b. OpenAI penalties   frequency and presence, as OpenAI's API and vLLM define them: for every
 *                          token t the sampler has *sampled* c[t] > 0 times since create/reset
 *                          (not the tokens given to accept(): the prompt is not penalised),
 *                          z[t] -= c[t] * frequency_penalty + presence_penalty
 *   2. greedy              temperature <= 0: the argmax of the penalized logits (the lowest id on
 *                          exact ties); steps 3-7 are skipped and the RNG is not touched
 *   3. top-k               keep the k largest (ties: the lower id wins)
 *   4. temperature+softmax w_i = exp((z_i - max z) / T), left unnormalised (the max gets exactly 1)
 *   5. top-p               keep the smallest set, in order of probability, whose mass is >= p of
 *                          the total (TopPLogitsWarper), never fewer than one token
 *   6. min-p               drop tokens with p_i < min_p * p_max (MinPLogitsWarper)
 *   7. draw                u ~ U[0,1) from the sampler's xoshiro256** stream (src/sample/rng.h);
 *                          the token is the first whose cumulative weight exceeds u * sum(w)
 *
 * The penalty applies in greedy mode too, as in HF. The same seed and inputs give the same tokens
 * with the same build; candidates are not walked in id order, and a compiler that rounds the
 * weights differently (FMA contraction) can change a rare draw.
 *
 * Parameters (glmoe_sampler_create; NULL means the defaults): temperature must be finite,
 * top_p >= 0, min_p <= 1, repetition_penalty finite and > 0, repetition_window >= 0,
 * frequency_penalty and presence_penalty finite (any sign; OpenAI's range is [-2, 2], which its
 * server checks); NaN is refused everywhere. top_k <= 0 or >= n_vocab, top_p >= 1 and min_p <= 0 turn a filter off.
 * A refusal is GLMOE_E_ARG with a one-line message naming the field and the value.
 * sample() returns GLMOE_E_ARG for a NULL argument or n_vocab <= 0, GLMOE_E_NOMEM if its buffers
 * cannot grow; *token is written only on success. Each failure leaves a one-line message in the
 * sampler (glmoe_sampler_errmsg, the sqlite way: per handle, cleared by the next sample()).
 *
 * Non-finite logits: NaN is treated as -inf, so it is never picked. -inf tokens have probability
 * zero. If any logit is +inf, the +inf tokens share all the mass equally (greedy: the first).
 * If every logit is NaN or -inf there is nothing to choose from: sample() returns GLMOE_E_ARG and
 * the message says so, with how many were NaN and how many -inf (one pass, on failure only).
 *
 * Precision: weights come from gm_exp_nonpositive() (src/sample/exp_nonpositive.h), a branch-free
 * exp that the compiler vectorises (about 1 ulp, monotonic, exp(0) = 1 exactly). Tokens with
 * (z - max) / T < -87 get weight 0 instead of their true weight (< 1.7e-38 against 1 for the top
 * token), which moves no probability by more than 3e-33. Masses are summed in double.
 *
 * Cost for a vocabulary V (151552 for GLM-4.5). Nothing is fully sorted; the dense passes compare
 * float bit patterns as integers so that GCC vectorises them without -ffast-math.
 *   - greedy: a vectorised max pass that keeps each block's maximum, then a search for the first
 *     block holding the maximum and its first index there;
 *   - top-k with k <= 1024: one pass with a k-entry heap that skips blocks of 64 whose maximum
 *     cannot enter it; the exp runs on the k kept tokens only;
 *   - otherwise the weights of all V tokens (vectorised), then:
 *   - no top-k/top-p: per-block sums, and the draw walks blocks, then one block;
 *   - top-p: the 256 blocks with the largest maxima hold every token above a threshold tau; when
 *     those tokens carry the needed mass (the usual, peaked case) only they are searched;
 *     otherwise, and for top-k > 1024, all positive weights are collected and cut with
 *     quickselect (expected O(V), by count for top-k, steered by the mass on each side of the
 *     pivot for top-p; introselect's depth limit falls back to qsort).
 * Buffers belong to the sampler and grow when a larger V shows up.
 *
 * Counts of sampled tokens (step 1b): kept only when a frequency or presence penalty is on, as a
 * count per id (grown to the vocabulary) plus the list of distinct ids, so that applying them
 * costs O(distinct ids), not O(vocabulary).
 *
 * History: kept only when the penalty is on (it is read by nothing else). accept() and sample()
 * append; with a window W > 0 only the last W tokens are retained. History ids outside
 * [0, n_vocab) of a given call are ignored by that call. If appending fails for lack of memory in
 * accept() (which cannot report it), the next sample() returns GLMOE_E_NOMEM until reset().
 *
 * Tested by tests/unit/test_sampler.c (greedy, determinism, frequencies vs softmax, each filter's
 * support on crafted distributions, the HF penalty formula, parameter validation, timings).
 */
#include "glmoe.h"
#include "sample/exp_nonpositive.h"
#include "sample/rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* top-k up to this size uses the one-pass heap; larger k collects everything and quickselects. */
#define GM_TOPK_HEAP_MAX 1024
/* top-p first looks for the nucleus among this many best tokens (or the tokens of this many best
 * blocks) before partitioning everything. */
#define GM_TOPP_PROBE 256
/* Ranges this small are finished with insertion sort instead of more partitioning. */
#define GM_SMALL_RANGE 16
/* Tokens per block in the blocked passes over the vocabulary. */
#define GM_BLOCK 64

/* One candidate token. `w` holds the logit in the top-k heap, the unnormalised probability after. */
typedef struct gm_cand {
    float w;
    int32_t id;
} gm_cand;
_Static_assert(sizeof(gm_cand) == 8, "partition() moves candidates as 8-byte words");

struct glmoe_sampler {
    glmoe_sampler_params params;
    bool greedy;
    bool penalize;       /* repetition_penalty != 1: the history is kept and applied */
    bool count_sampled;  /* frequency or presence penalty != 0: counts of sampled ids are kept */
    gm_rng rng;

    int32_t *history;    /* accepted and sampled ids, oldest first */
    size_t n_history, cap_history;
    bool history_lost;   /* an append failed for lack of memory; sample() says so until reset */

    uint32_t *sampled_count; /* [cap_count] times each id was sampled since create/reset */
    size_t cap_count;
    int32_t *sampled_ids;    /* [cap_count] the distinct ids with a count > 0, in first-seen order */
    size_t n_sampled_ids;

    size_t cap_vocab;    /* the vocabulary size the buffers below are sized for */
    float *penalized;    /* [cap_vocab] the logits with the penalties applied (only when one is on) */
    float *weights;      /* [cap_vocab] dense exp((z - max) / T) */
    gm_cand *cand;       /* [cap_vocab] candidate tokens */
    uint32_t *block_key; /* [cap_vocab / GM_BLOCK + 1] largest float_key() of the logits per block */
    double *block_sum;   /* [cap_vocab / GM_BLOCK + 1] mass per block of weights */
    gm_cand *block_max;  /* [cap_vocab / GM_BLOCK + 1] largest weight per block, with the block */
    gm_cand probe[GM_TOPP_PROBE];
    char errmsg[256];    /* why the last sample() failed; "" after a success */
};

glmoe_sampler_params glmoe_sampler_params_default(void) {
    glmoe_sampler_params p = {
        .temperature = 0.0f,
        .top_k = 0,
        .top_p = 1.0f,
        .min_p = 0.0f,
        .repetition_penalty = 1.0f,
        .repetition_window = 0,
        .frequency_penalty = 0.0f,
        .presence_penalty = 0.0f,
        .seed = 0,
    };
    return p;
}

/* ---- messages ---------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static glmoe_status sample_fail(glmoe_sampler *s, glmoe_status st,
                                                                      const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->errmsg, sizeof s->errmsg, fmt, ap);
    va_end(ap);
    return st;
}

/* Every logit is NaN or -inf (after the penalty, which keeps both): say so, and what they were. */
static glmoe_status fail_not_finite(glmoe_sampler *s, const float *logits, int32_t n_vocab) {
    int32_t n_nan = 0, n_neg_inf = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        n_nan += isnan(logits[i]) != 0;
        n_neg_inf += logits[i] == -INFINITY;
    }
    return sample_fail(s, GLMOE_E_ARG,
                       "the logits are not finite: no token to choose, all %d are NaN or -inf (%d NaN, %d -inf; "
                       "the first, logits[0], is %g)",
                       n_vocab, n_nan, n_neg_inf, (double)logits[0]);
}

const char *glmoe_sampler_errmsg(const glmoe_sampler *s) { return s ? s->errmsg : "no sampler (NULL handle)"; }

/* ---- parameters ------------------------------------------------------------------------- */

static glmoe_status sampler_fail(char *err, size_t err_size, const char *msg, double value) {
    if (err && err_size > 0) snprintf(err, err_size, "glmoe_sampler_create: %s (got %g)", msg, value);
    return GLMOE_E_ARG;
}

static glmoe_status check_params(const glmoe_sampler_params *p, char *err, size_t err_size) {
    if (!isfinite(p->temperature))
        return sampler_fail(err, err_size, "temperature must be a finite number (<= 0 for greedy)",
                            p->temperature);
    if (isnan(p->top_p) || p->top_p < 0.0f)
        return sampler_fail(err, err_size, "top_p must be >= 0 (>= 1 turns it off)", p->top_p);
    /* min_p > 1 would drop even the most likely token; <= 0 (including -inf) is "off". */
    if (isnan(p->min_p) || p->min_p > 1.0f)
        return sampler_fail(err, err_size, "min_p must be <= 1 (<= 0 turns it off)", p->min_p);
    if (!isfinite(p->repetition_penalty) || p->repetition_penalty <= 0.0f)
        return sampler_fail(err, err_size, "repetition_penalty must be a finite number > 0 (1 is off)",
                            p->repetition_penalty);
    if (p->repetition_window < 0)
        return sampler_fail(err, err_size, "repetition_window must be >= 0 (0 is the whole history)",
                            p->repetition_window);
    if (!isfinite(p->frequency_penalty))
        return sampler_fail(err, err_size, "frequency_penalty must be a finite number (0 is off)", p->frequency_penalty);
    if (!isfinite(p->presence_penalty))
        return sampler_fail(err, err_size, "presence_penalty must be a finite number (0 is off)", p->presence_penalty);
    return GLMOE_OK;
}

glmoe_status glmoe_sampler_create(glmoe_sampler **out, const glmoe_sampler_params *params,
                                  char *err, size_t err_size) {
    if (err && err_size > 0) err[0] = '\0';
    if (!out) {
        if (err && err_size > 0) snprintf(err, err_size, "glmoe_sampler_create: out is NULL");
        return GLMOE_E_ARG;
    }
    *out = NULL;
    glmoe_sampler_params p = params ? *params : glmoe_sampler_params_default();
    glmoe_status st = check_params(&p, err, err_size);
    if (st != GLMOE_OK) return st;

    glmoe_sampler *s = calloc(1, sizeof *s);
    if (!s) {
        if (err && err_size > 0) snprintf(err, err_size, "glmoe_sampler_create: out of memory");
        return GLMOE_E_NOMEM;
    }
    s->params = p;
    s->greedy = p.temperature <= 0.0f;
    s->penalize = p.repetition_penalty != 1.0f;
    s->count_sampled = p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f;
    gm_rng_seed(&s->rng, p.seed);
    *out = s;
    return GLMOE_OK;
}

void glmoe_sampler_free(glmoe_sampler *s) {
    if (!s) return;
    free(s->history);
    free(s->sampled_count);
    free(s->sampled_ids);
    free(s->penalized);
    free(s->weights);
    free(s->cand);
    free(s->block_key);
    free(s->block_sum);
    free(s->block_max);
    free(s);
}

void glmoe_sampler_reset(glmoe_sampler *s) {
    if (!s) return;
    s->n_history = 0;
    s->history_lost = false;
    for (size_t i = 0; i < s->n_sampled_ids; i++) s->sampled_count[s->sampled_ids[i]] = 0;
    s->n_sampled_ids = 0;
    gm_rng_seed(&s->rng, s->params.seed);
}

/* ---- history ------------------------------------------------------------------------------ */

/* Makes room for one more id: with a window W, the buffer is compacted to the last W ids once it
 * holds 2W (amortised O(1) per id, and the memory stays bounded by about 4W ids). */
static bool history_make_room(glmoe_sampler *s) {
    size_t w = (size_t)s->params.repetition_window;
    if (w > 0 && s->n_history >= 2 * w) {
        memmove(s->history, s->history + (s->n_history - w), w * sizeof *s->history);
        s->n_history = w;
    }
    if (s->n_history < s->cap_history) return true;
    size_t cap = s->cap_history ? 2 * s->cap_history : 256;
    if (cap > SIZE_MAX / sizeof *s->history) return false;
    int32_t *h = realloc(s->history, cap * sizeof *h);
    if (!h) return false;
    s->history = h;
    s->cap_history = cap;
    return true;
}

void glmoe_sampler_accept(glmoe_sampler *s, const int32_t *ids, size_t n_ids) {
    if (!s || !ids || !s->penalize || s->history_lost) return;
    for (size_t i = 0; i < n_ids; i++) {
        if (!history_make_room(s)) {
            s->history_lost = true;
            return;
        }
        s->history[s->n_history++] = ids[i];
    }
}

/* Step 1 on s->penalized (a copy of the logits made by the caller). Each value is computed from
 * the untouched input, so a token that occurs several times in the window is penalised once, as
 * HF's gather/scatter does. */
static void apply_penalty(glmoe_sampler *s, const float *logits, int32_t n_vocab) {
    size_t w = (size_t)s->params.repetition_window;
    size_t start = (w > 0 && s->n_history > w) ? s->n_history - w : 0;
    float penalty = s->params.repetition_penalty;
    for (size_t i = start; i < s->n_history; i++) {
        int32_t t = s->history[i];
        if (t < 0 || t >= n_vocab) continue;
        float x = logits[t];
        /* torch.where(score < 0, score * penalty, score / penalty) */
        s->penalized[t] = x < 0.0f ? x * penalty : x / penalty;
    }
}

/* Step 1b on s->penalized: OpenAI's logits[t] -= c[t] * frequency_penalty + (c[t] > 0) *
 * presence_penalty for each id sampled so far (vLLM's apply_penalties, after the repetition
 * penalty as there). */
static void apply_openai_penalties(glmoe_sampler *s, int32_t n_vocab) {
    float freq = s->params.frequency_penalty, presence = s->params.presence_penalty;
    for (size_t i = 0; i < s->n_sampled_ids; i++) {
        int32_t t = s->sampled_ids[i];
        if (t >= n_vocab) continue;
        s->penalized[t] -= (float)s->sampled_count[t] * freq + presence;
    }
}

/* Makes room to count any id up to t (a sampled id is below its call's n_vocab, so the arrays
 * grow to the largest vocabulary seen). */
static bool count_make_room(glmoe_sampler *s, int32_t t) {
    if ((size_t)t < s->cap_count) return true;
    size_t cap = s->cap_count ? s->cap_count : 256;
    while (cap <= (size_t)t) cap *= 2;
    uint32_t *c = realloc(s->sampled_count, cap * sizeof *c);
    if (!c) return false;
    memset(c + s->cap_count, 0, (cap - s->cap_count) * sizeof *c);
    s->sampled_count = c;
    int32_t *ids = realloc(s->sampled_ids, cap * sizeof *ids);
    if (!ids) return false; /* the counts grew, cap_count did not: the next call tries again */
    s->sampled_ids = ids;
    s->cap_count = cap;
    return true;
}

/* ---- dense passes over the vocabulary ---------------------------------------------------- */

/* Comparisons of floats stop GCC from vectorising a loop unless -fno-trapping-math (a NaN operand
 * could raise FE_INVALID), so the dense passes compare bit patterns as integers instead.
 * float_key maps a float's bits to an unsigned key with the same order (the radix-sort trick:
 * set the sign bit of positives, flip every bit of negatives); NaNs map to 0, below every number.
 * Weights are >= 0 and never NaN, so for them the plain bits already order like the values. */
static inline uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float float_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t float_key(float f) {
    uint32_t u = float_bits(f);
    uint32_t key = u ^ ((0u - (u >> 31)) | 0x80000000u);
    uint32_t not_nan = 0u - (uint32_t)((u & 0x7fffffffu) <= 0x7f800000u);
    return key & not_nan;
}

static inline float float_from_key(uint32_t key) {
    return float_from_bits((key & 0x80000000u) ? key ^ 0x80000000u : ~key);
}

static inline size_t n_blocks(int32_t n) { return ((size_t)n + GM_BLOCK - 1) / GM_BLOCK; }

/* The key of the largest logit (0 if every value is NaN); block_key[b] gets the largest key of
 * block b, so that the first index of the maximum can be found without a second full pass. */
static uint32_t max_key(const float *z, int32_t n, uint32_t *block_key) {
    uint32_t best = 0;
    for (int32_t begin = 0; begin < n; begin += GM_BLOCK) {
        int32_t end = n - begin < GM_BLOCK ? n : begin + GM_BLOCK;
        uint32_t m = 0;
        for (int32_t i = begin; i < end; i++) {
            uint32_t k = float_key(z[i]);
            m = k > m ? k : m;
        }
        block_key[begin / GM_BLOCK] = m;
        best = m > best ? m : best;
    }
    return best;
}

/* The first index whose key is `key`, which max_key() found. */
static int32_t first_index_of_key(const float *z, int32_t n, const uint32_t *block_key, uint32_t key) {
    size_t b = 0;
    while (block_key[b] != key) b++;
    int32_t i = (int32_t)(b * GM_BLOCK);
    while (float_key(z[i]) != key) i++;
    return i;
}

/* w[i] = exp((z[i] - max) / T), 0 for NaN, -inf and anything below GM_EXP_MIN.
 * d = (z - max) / T is <= 0 or NaN here, so as bits it is +0, a negative number, or a NaN: it is
 * kept when it is +0 or lies between -0 and GM_EXP_MIN (negative floats order as their bits).
 * The masks are all-ones or zero; the exp of a dropped d is computed on 0 and thrown away. */
static void dense_weights(const float *z, int32_t n, float max, float temp, float *w) {
    const uint32_t min_bits = float_bits(GM_EXP_MIN);
    for (int32_t i = 0; i < n; i++) {
        uint32_t u = float_bits((z[i] - max) / temp);
        uint32_t keep = 0u - (uint32_t)((u == 0u) | ((u >= 0x80000000u) & (u <= min_bits)));
        float e = gm_exp_nonpositive(float_from_bits(u & keep));
        w[i] = float_from_bits(float_bits(e) & keep);
    }
}

/* Sums w[i] >= threshold per block of GM_BLOCK into block_sum; returns the total. Eight lanes per
 * block let the compiler vectorise; the order is fixed, so results are reproducible. */
static double dense_block_sums(const float *w, int32_t n, float threshold, double *block_sum) {
    const uint32_t t_bits = float_bits(threshold);
    double total = 0.0;
    for (int32_t begin = 0; begin < n; begin += GM_BLOCK) {
        int32_t end = n - begin < GM_BLOCK ? n : begin + GM_BLOCK;
        double lane[8] = {0};
        int32_t i = begin;
        for (; i + 8 <= end; i += 8) {
            for (int j = 0; j < 8; j++) {
                uint32_t u = float_bits(w[i + j]);
                lane[j] += (double)float_from_bits(u & (0u - (uint32_t)(u >= t_bits)));
            }
        }
        double sum = 0.0;
        for (; i < end; i++) sum += w[i] >= threshold ? (double)w[i] : 0.0;
        for (int j = 0; j < 8; j++) sum += lane[j];
        block_sum[begin / GM_BLOCK] = sum;
        total += sum;
    }
    return total;
}

/* The largest weight of each block of GM_BLOCK, as {weight, block index}. */
static void dense_block_max(const float *w, int32_t n, gm_cand *block_max) {
    for (int32_t begin = 0; begin < n; begin += GM_BLOCK) {
        int32_t end = n - begin < GM_BLOCK ? n : begin + GM_BLOCK;
        uint32_t m = 0;
        for (int32_t i = begin; i < end; i++) {
            uint32_t u = float_bits(w[i]);
            m = u > m ? u : m;
        }
        block_max[begin / GM_BLOCK] = (gm_cand){float_from_bits(m), begin / GM_BLOCK};
    }
}

/* ---- candidate lists ---------------------------------------------------------------------- */

/* The total order every filter uses: larger w first, then the lower id. w is never NaN here. */
static inline bool cand_before(gm_cand a, gm_cand b) {
    return a.w > b.w || (a.w == b.w && a.id < b.id);
}

/* The same order as one integer, for weights (w >= 0, whose bits order like their values) with
 * ids >= 0: a larger key comes first. */
static inline uint64_t cand_key(gm_cand c) {
    return ((uint64_t)float_bits(c.w) << 32) | (uint64_t)(~(uint32_t)c.id);
}

static inline void cand_swap(gm_cand *a, gm_cand *b) {
    gm_cand t = *a;
    *a = *b;
    *b = t;
}

static int cand_cmp(const void *pa, const void *pb) {
    gm_cand a = *(const gm_cand *)pa, b = *(const gm_cand *)pb;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

static double cand_sum(const gm_cand *c, size_t n) {
    double lane[4] = {0};
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int j = 0; j < 4; j++) lane[j] += c[i + j].w;
    double sum = 0.0;
    for (; i < n; i++) sum += c[i].w;
    for (int j = 0; j < 4; j++) sum += lane[j];
    return sum;
}

/* Appends the tokens of w[begin, end) with weight > floor (floor >= 0) to c; returns the new count. */
static size_t gather_above(const float *w, int32_t begin, int32_t end, float floor, gm_cand *c, size_t n) {
    const uint32_t floor_bits = float_bits(floor);
    for (int32_t i = begin; i < end; i++) {
        c[n] = (gm_cand){w[i], i}; /* written always, kept only if above: no branch */
        n += float_bits(w[i]) > floor_bits;
    }
    return n;
}

static void sort_range(gm_cand *c, size_t lo, size_t hi) {
    if (hi - lo > GM_SMALL_RANGE) {
        qsort(c + lo, hi - lo, sizeof *c, cand_cmp);
        return;
    }
    for (size_t i = lo + 1; i < hi; i++) {
        gm_cand x = c[i];
        size_t j = i;
        for (; j > lo && cand_before(x, c[j - 1]); j--) c[j] = c[j - 1];
        c[j] = x;
    }
}

/* The median of the first, middle and last entries of [lo, hi) under cand_before. */
static size_t median_of_three(const gm_cand *c, size_t lo, size_t hi) {
    size_t a = lo, b = lo + (hi - lo) / 2, d = hi - 1;
    if (cand_before(c[a], c[b])) {
        if (cand_before(c[b], c[d])) return b;
        return cand_before(c[a], c[d]) ? d : a;
    }
    if (cand_before(c[a], c[d])) return a;
    return cand_before(c[b], c[d]) ? d : b;
}

/* Partitions the weights c[lo, hi) (hi - lo >= 2) around a pivot: afterwards [lo, p) comes before
 * c[p] and (p, hi) after it. Returns p.
 * Branch-free Lomuto: every element is swapped with c[store], and store advances only when the
 * element belongs in front. When it does not, the swap exchanges two elements of the back part
 * (or an element with itself), which keeps the invariant; the win is that no branch can
 * mispredict, where a branchy partition of random data mispredicts half the time. */
static size_t partition(gm_cand *c, size_t lo, size_t hi) {
    cand_swap(&c[median_of_three(c, lo, hi)], &c[hi - 1]);
    const uint64_t pivot = cand_key(c[hi - 1]);
    size_t store = lo;
    for (size_t i = lo; i < hi - 1; i++) {
        /* Whole 8-byte moves: a field-wise store followed by a whole load of the same slot (the
         * next iteration's c[store]) defeats store-to-load forwarding and stalls every time. */
        uint64_t xi, xs;
        memcpy(&xi, &c[i], sizeof xi);
        memcpy(&xs, &c[store], sizeof xs);
        gm_cand x;
        memcpy(&x, &xi, sizeof x);
        size_t front = cand_key(x) > pivot;
        memcpy(&c[i], &xs, sizeof xs);
        memcpy(&c[store], &xi, sizeof xi);
        store += front;
    }
    cand_swap(&c[store], &c[hi - 1]);
    return store;
}

/* Introselect's budget: partitions allowed before the range is simply sorted. */
static int depth_budget(size_t n) {
    int d = 4;
    while (n > 1) {
        n >>= 1;
        d += 2;
    }
    return d;
}

/* Moves the k best of c[0..n) to the front (in no particular order), 0 < k < n. */
static void select_top_k(gm_cand *c, size_t n, size_t k) {
    size_t lo = 0, hi = n;
    int depth = depth_budget(n);
    /* Invariant: [0, lo) precedes [lo, n), [lo, hi) precedes [hi, n), and lo <= k <= hi. */
    while (hi - lo > GM_SMALL_RANGE && depth-- > 0) {
        size_t p = partition(c, lo, hi);
        if (k <= p) hi = p;
        else lo = p + 1;
    }
    sort_range(c, lo, hi);
}

/* ---- heaps: the k best in one pass -------------------------------------------------------- */

/* The heap keeps the k best seen so far with the worst at the root, so a token that does not
 * make it costs one comparison. */
static void heap_sift_down(gm_cand *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_before(h[m], h[l])) m = l;
        if (r < n && cand_before(h[m], h[r])) m = r;
        if (m == i) return;
        cand_swap(&h[i], &h[m]);
        i = m;
    }
}

static void heap_sift_up(gm_cand *h, size_t i) {
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!cand_before(h[parent], h[i])) return;
        cand_swap(&h[i], &h[parent]);
        i = parent;
    }
}

static inline void heap_offer(gm_cand *h, size_t *n, size_t k, gm_cand x) {
    if (*n < k) {
        h[*n] = x;
        heap_sift_up(h, (*n)++);
    } else if (cand_before(x, h[0])) {
        h[0] = x;
        heap_sift_down(h, k, 0);
    }
}

/* The k largest values of v (NaN and -inf skipped) into h, w = the value. Returns the count,
 * below k when fewer values are finite. Scanning in id order, an equal value never displaces an
 * entry, so ties keep the lower id. Once the heap is full, blocks whose maximum (a vectorised
 * pass over float keys) does not beat the root are skipped whole. */
static size_t heap_top_k(const float *v, int32_t n_vocab, size_t k, gm_cand *h) {
    size_t n = 0;
    for (int32_t b = 0; b < n_vocab; b += GM_BLOCK) {
        int32_t end = n_vocab - b < GM_BLOCK ? n_vocab : b + GM_BLOCK;
        if (n == k) {
            uint32_t block_max = 0;
            for (int32_t i = b; i < end; i++) {
                uint32_t key = float_key(v[i]);
                block_max = key > block_max ? key : block_max;
            }
            if (block_max <= float_key(h[0].w)) continue;
        }
        for (int32_t i = b; i < end; i++) {
            float x = v[i];
            if (!(x > -INFINITY)) continue;
            if (n == k && !(x > h[0].w)) continue;
            heap_offer(h, &n, k, (gm_cand){x, i});
        }
    }
    return n;
}

/* ---- top-p and min-p ---------------------------------------------------------------------- */

/* Top-p: moves the nucleus to the front of c and returns its size. The nucleus is the shortest
 * prefix of c, in cand_before order, whose mass reaches need (p times the total mass, which may
 * include tokens no longer in c); at least one token is kept. c must hold that prefix.
 * try_probe: first look among the best GM_TOPP_PROBE, found with a heap, which usually hold it. */
static size_t select_top_p(glmoe_sampler *s, gm_cand *c, size_t n, double need, bool try_probe) {
    if (!(need > 0.0)) {
        /* p == 0: only the best token. */
        size_t best = 0;
        for (size_t i = 1; i < n; i++)
            if (cand_before(c[i], c[best])) best = i;
        cand_swap(&c[0], &c[best]);
        return 1;
    }
    if (try_probe && n > 4 * GM_TOPP_PROBE) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++) {
            if (m == GM_TOPP_PROBE && !cand_before(c[i], s->probe[0])) continue;
            heap_offer(s->probe, &m, GM_TOPP_PROBE, c[i]);
        }
        qsort(s->probe, m, sizeof *s->probe, cand_cmp);
        double acc = 0.0;
        for (size_t i = 0; i < m; i++) {
            acc += s->probe[i].w;
            if (acc >= need) {
                memcpy(c, s->probe, (i + 1) * sizeof *c);
                return i + 1;
            }
        }
    }

    /* Quickselect steered by mass: partition, and keep the side where the cut lies. */
    size_t lo = 0, hi = n;
    double acc = 0.0; /* mass of [0, lo), which is all in the nucleus; acc < need throughout */
    int depth = depth_budget(n);
    while (hi - lo > GM_SMALL_RANGE && depth-- > 0) {
        size_t p = partition(c, lo, hi);
        double front = cand_sum(c + lo, p - lo);
        if (acc + front >= need) {
            hi = p;                      /* the cut lies before the pivot */
        } else if (acc + front + c[p].w >= need) {
            return p + 1;                /* the pivot completes the nucleus */
        } else {
            acc += front + c[p].w;       /* everything up to the pivot is in; look after it */
            lo = p + 1;
        }
    }
    sort_range(c, lo, hi);
    for (size_t i = lo; i < hi; i++) {
        acc += c[i].w;
        if (acc >= need) return i + 1;
    }
    /* Only rounding gets here (the parts were summed in another order than the total). */
    return hi > 0 ? hi : 1;
}

/* Top-p straight from dense weights, for the usual case where the nucleus is small: tau is the
 * GM_TOPP_PROBE-th largest block maximum, so every token with w > tau lies in one of the
 * GM_TOPP_PROBE blocks with the largest maxima, and those tokens are the first ones in
 * cand_before order. If they carry the needed mass, the nucleus is among them: collect them into
 * c and return its size. Returns 0 if they fall short (a flat distribution). */
static size_t nucleus_from_blocks(glmoe_sampler *s, const float *w, int32_t n_vocab, double need,
                                  gm_cand *c) {
    size_t nb = n_blocks(n_vocab);
    if (nb <= GM_TOPP_PROBE || !(need > 0.0)) return 0;
    gm_cand *top = s->block_max;
    dense_block_max(w, n_vocab, top);
    select_top_k(top, nb, GM_TOPP_PROBE);
    float tau = top[0].w;
    for (size_t j = 1; j < GM_TOPP_PROBE; j++) tau = top[j].w < tau ? top[j].w : tau;
    size_t n = 0;
    for (size_t j = 0; j < GM_TOPP_PROBE; j++) {
        int32_t begin = top[j].id * GM_BLOCK;
        n = gather_above(w, begin, n_vocab - begin < GM_BLOCK ? n_vocab : begin + GM_BLOCK, tau, c, n);
    }
    if (cand_sum(c, n) < need) return 0;
    return select_top_p(s, c, n, need, true);
}

/* Min-p: keeps tokens with w >= min_p * max w, compacting them to the front; returns the count.
 * The best token always survives because min_p <= 1. */
static size_t filter_min_p(gm_cand *c, size_t n, float min_p) {
    float w_max = 0.0f;
    for (size_t i = 0; i < n; i++) w_max = c[i].w > w_max ? c[i].w : w_max;
    float threshold = min_p * w_max;
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        c[kept] = c[i];
        kept += c[i].w >= threshold;
    }
    return kept;
}

/* ---- sampling ----------------------------------------------------------------------------- */

/* Step 7 over a candidate list. The fallback (the last positive weight) only catches rounding. */
static int32_t draw_cand(gm_rng *rng, const gm_cand *c, size_t n) {
    double target = gm_rng_uniform(rng) * cand_sum(c, n);
    double acc = 0.0;
    int32_t last = c[0].id;
    for (size_t i = 0; i < n; i++) {
        if (!(c[i].w > 0.0f)) continue;
        acc += c[i].w;
        last = c[i].id;
        if (target < acc) return c[i].id;
    }
    return last;
}

/* Step 7 (with min-p) straight over dense weights whose maximum is 1, when no top-k/top-p asks
 * for a candidate list: tokens below the threshold count as zero. The block sums find the block
 * where the cumulative mass passes the target; the walk inside it finds the token. */
static int32_t draw_dense(glmoe_sampler *s, const float *w, int32_t n, float threshold) {
    double *bs = s->block_sum;
    size_t nb = n_blocks(n);
    double target = gm_rng_uniform(&s->rng) * dense_block_sums(w, n, threshold, bs);
    double acc = 0.0;
    size_t b = 0;
    while (b + 1 < nb && !(target < acc + bs[b])) acc += bs[b++];
    /* Rounding can leave the target past the last token of block b; then the last positive
     * weight at or before that block is taken. */
    for (;; b--) {
        int32_t begin = (int32_t)(b * GM_BLOCK), end = n - begin < GM_BLOCK ? n : begin + GM_BLOCK;
        int32_t last = -1;
        for (int32_t i = begin; i < end; i++) {
            if (!(w[i] > 0.0f && w[i] >= threshold)) continue;
            acc += w[i];
            last = i;
            if (target < acc) return i;
        }
        if (last >= 0 || b == 0) return last;
        acc = -INFINITY; /* from here on only the last positive weight is wanted */
    }
}

/* Steps 3-7 on penalized logits z whose largest value is max (finite or +inf). */
static int32_t sample_random(glmoe_sampler *s, const float *z, int32_t n_vocab, float max) {
    const glmoe_sampler_params *p = &s->params;
    gm_cand *c = s->cand;
    size_t n = 0;
    bool top_k_on = p->top_k > 0 && p->top_k < n_vocab;
    bool top_p_on = p->top_p < 1.0f;

    if (max == INFINITY) {
        /* Infinite logits swamp every finite one: the +inf tokens split the mass evenly. */
        for (int32_t i = 0; i < n_vocab; i++)
            if (z[i] == INFINITY) c[n++] = (gm_cand){1.0f, i};
    } else if (top_k_on && p->top_k <= GM_TOPK_HEAP_MAX) {
        n = heap_top_k(z, n_vocab, (size_t)p->top_k, c);
        for (size_t i = 0; i < n; i++) {
            float d = (c[i].w - max) / p->temperature;
            c[i].w = d >= GM_EXP_MIN ? gm_exp_nonpositive(d) : 0.0f;
        }
        top_k_on = false; /* done */
    } else {
        float *w = s->weights;
        dense_weights(z, n_vocab, max, p->temperature, w);
        if (!top_k_on && !top_p_on)
            return draw_dense(s, w, n_vocab, p->min_p > 0.0f ? p->min_p : 0.0f);
        double need = 0.0;
        if (!top_k_on) {
            need = (double)p->top_p * dense_block_sums(w, n_vocab, 0.0f, s->block_sum);
            n = nucleus_from_blocks(s, w, n_vocab, need, c);
            if (n > 0) top_p_on = false; /* done */
        }
        if (n == 0) {
            n = gather_above(w, 0, n_vocab, 0.0f, c, 0);
            if (!top_k_on && top_p_on) {
                /* the blocks fell short, so the heap probe would too: partition right away */
                n = select_top_p(s, c, n, need, false);
                top_p_on = false;
            }
        }
    }
    /* Ordering by weight is ordering by logit (exp is monotonic), except that logits so close that
     * their weights round to the same float are ordered by id, as exact ties are. */
    if (top_k_on && (size_t)p->top_k < n) {
        select_top_k(c, n, (size_t)p->top_k);
        n = (size_t)p->top_k;
    }
    if (top_p_on) n = select_top_p(s, c, n, (double)p->top_p * cand_sum(c, n), true);
    if (p->min_p > 0.0f) n = filter_min_p(c, n, p->min_p);
    return draw_cand(&s->rng, c, n);
}

/* Grows the per-sampler buffers to n_vocab entries; the contents need not survive. */
static bool ensure_buffers(glmoe_sampler *s, int32_t n_vocab) {
    size_t need = (size_t)n_vocab;
    if (need <= s->cap_vocab) return true;
    size_t nb = n_blocks(n_vocab);
    free(s->penalized);
    free(s->weights);
    free(s->cand);
    free(s->block_key);
    free(s->block_sum);
    free(s->block_max);
    bool adjust = s->penalize || s->count_sampled;
    s->penalized = adjust ? malloc(need * sizeof *s->penalized) : NULL;
    s->weights = malloc(need * sizeof *s->weights);
    s->cand = malloc(need * sizeof *s->cand);
    s->block_key = malloc(nb * sizeof *s->block_key);
    s->block_sum = malloc(nb * sizeof *s->block_sum);
    s->block_max = malloc(nb * sizeof *s->block_max);
    s->cap_vocab = need;
    if ((adjust && !s->penalized) || !s->weights || !s->cand || !s->block_key || !s->block_sum ||
        !s->block_max) {
        /* leave no half-grown set behind: the next call starts from nothing */
        free(s->penalized);
        free(s->weights);
        free(s->cand);
        free(s->block_key);
        free(s->block_sum);
        free(s->block_max);
        s->penalized = s->weights = NULL;
        s->cand = s->block_max = NULL;
        s->block_key = NULL;
        s->block_sum = NULL;
        s->cap_vocab = 0;
        return false;
    }
    return true;
}

glmoe_status glmoe_sampler_sample(glmoe_sampler *s, const float *logits, int32_t n_vocab,
                                  int32_t *token) {
    if (!s) return GLMOE_E_ARG;
    s->errmsg[0] = '\0';
    if (!logits || !token)
        return sample_fail(s, GLMOE_E_ARG, "glmoe_sampler_sample: %s is NULL", logits ? "token" : "logits");
    if (n_vocab <= 0) return sample_fail(s, GLMOE_E_ARG, "glmoe_sampler_sample: n_vocab %d is not positive", n_vocab);
    if (s->history_lost)
        return sample_fail(s, GLMOE_E_NOMEM,
                           "the repetition history could not grow in glmoe_sampler_accept (out of memory); "
                           "reset the sampler");
    if (!ensure_buffers(s, n_vocab))
        return sample_fail(s, GLMOE_E_NOMEM, "out of memory for the buffers of a %d-token vocabulary", n_vocab);
    /* Reserve the history slot first, so that a sampled token is never lost afterwards. */
    if (s->penalize && !history_make_room(s))
        return sample_fail(s, GLMOE_E_NOMEM, "out of memory growing the repetition history");
    /* The same for the counts: room for any id of this vocabulary before choosing. */
    if (s->count_sampled && !count_make_room(s, n_vocab - 1))
        return sample_fail(s, GLMOE_E_NOMEM, "out of memory for the counts of sampled tokens");

    const float *z = logits;
    bool repeat = s->penalize && s->n_history > 0, openai = s->count_sampled && s->n_sampled_ids > 0;
    if (repeat || openai) {
        memcpy(s->penalized, logits, (size_t)n_vocab * sizeof *logits);
        if (repeat) apply_penalty(s, logits, n_vocab);
        if (openai) apply_openai_penalties(s, n_vocab);
        z = s->penalized;
    }
    uint32_t key = max_key(z, n_vocab, s->block_key);
    float max = key ? float_from_key(key) : NAN;
    if (!(max > -INFINITY)) return fail_not_finite(s, logits, n_vocab); /* nothing to choose */

    int32_t tok = s->greedy ? first_index_of_key(z, n_vocab, s->block_key, key)
                            : sample_random(s, z, n_vocab, max);
    if (s->penalize) s->history[s->n_history++] = tok;
    if (s->count_sampled && s->sampled_count[tok]++ == 0) s->sampled_ids[s->n_sampled_ids++] = tok;
    *token = tok;
    return GLMOE_OK;
}
