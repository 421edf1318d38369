/* tok_regex_guard.c — progress callouts in every pattern, and the budgeted search (see
 * tok_regex_guard.h and "Bounded work" in tok_regex.h). */
#include "tokenizer/tok_regex_guard.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ---- the rewrite ----------------------------------------------------------------------------- */

/* Length of the escape starting at p[i] == '\\': the backslash and the character after it, plus,
 * for a control or meta escape (\cX, \C-X, \M-X, \M-\C-X), the character it applies to, so that an
 * escaped "(" such as the X of \c( is never read as a group. */
static size_t escape_len(const char *p, size_t n, size_t i) {
    size_t j = i;
    for (;;) {
        if (j + 1 >= n) return n - i;
        char c = p[j + 1];
        if (c == 'c') j += 2;
        else if ((c == 'C' || c == 'M') && j + 2 < n && p[j + 2] == '-') j += 3;
        else return j + 2 - i;
        if (j >= n) return n - i;
        if (p[j] != '\\') return j + 1 - i; /* the character the escape applies to */
    }
}

/* Index just past the character class that opens at p[i] == '[': classes nest ([a[b]], [[:alpha:]]),
 * and a ']' right after '[' or '[^' is a literal. */
static size_t class_end(const char *p, size_t n, size_t i) {
    size_t j = i, depth = 0;
    while (j < n) {
        char c = p[j];
        if (c == '\\') {
            j += escape_len(p, n, j);
        } else if (c == '[') {
            depth++, j++;
            if (j < n && p[j] == '^') j++;
            if (j < n && p[j] == ']') j++;
        } else {
            j++;
            if (c == ']' && --depth == 0) return j;
        }
    }
    return n;
}

/* Index just past the (?#...) comment that opens at p[i]; a backslash escapes the next byte, as
 * in Oniguruma's parser. */
static size_t comment_end(const char *p, size_t n, size_t i) {
    size_t j = i + 3;
    while (j < n && p[j] != ')') j += p[j] == '\\' ? 2 : 1;
    return j < n ? j + 1 : n;
}

/* True when p[i..] is an option group, (?imx) or (?imx-imx:...), that turns extended mode on. */
static bool turns_on_extended(const char *p, size_t n, size_t i) {
    bool on = true, x = false;
    size_t k = i + 2;
    for (; k < n && ((p[k] >= 'a' && p[k] <= 'z') || (p[k] >= 'A' && p[k] <= 'Z') || p[k] == '-'); k++) {
        if (p[k] == '-') on = false;
        else if (p[k] == 'x' && on) x = true;
    }
    return x && k < n && (p[k] == ')' || p[k] == ':');
}

/* Index just past a quantifier at p[i] ('*', '+', '?' or '{...}') and its lazy or possessive mark. */
static size_t quantifier_end(const char *p, size_t n, size_t i) {
    size_t j = i + 1;
    if (p[i] == '{')
        while (j < n && p[j - 1] != '}') j++;
    if (j < n && (p[j] == '?' || p[j] == '+')) j++;
    return j;
}

/* True when every match attempt of the pattern costs O(pattern) plus what it matches, so that it
 * needs no attempt callout: alternatives of plain atoms (characters, classes, the escapes below)
 * where only the last atom of an alternative may be repeated. An attempt then fails within the
 * atoms before that last one, or succeeds (the repeat cannot fail afterwards: nothing follows
 * it). Nothing else qualifies: groups, back-references and other escapes keep the callout. This
 * spares the callout on each byte of sparse patterns such as DeepSeek-V3's `\p{N}{1,3}`. */
static bool attempts_are_cheap(const char *p, size_t n) {
    for (size_t i = 0; i < n;) {
        char c = p[i];
        size_t j = i + 1;
        if (c == '(' || c == ')') return false;
        if (c == '\\') {
            if (i + 1 >= n || !strchr("dDwWsShHpPxtnrfvaebBAzZG.-^$|?*+()[]{}\\/ '\"#", p[i + 1])) return false;
            j = i + escape_len(p, n, i);
            if ((p[i + 1] == 'p' || p[i + 1] == 'P' || p[i + 1] == 'x') && j < n && p[j] == '{')
                while (j < n && p[j - 1] != '}') j++;
        } else if (c == '[') {
            j = class_end(p, n, i);
        } else if (c == '*' || c == '+' || c == '?' || c == '{') {
            j = quantifier_end(p, n, i);
            if (j < n && p[j] != '|') return false; /* a repeat with more pattern after it */
        }
        i = j;
    }
    return true;
}

static bool put_tag(gm_tok_bytes *out, int *n_tags) {
    char tag[32];
    int k = snprintf(tag, sizeof tag, "(?{}[g%d])", (*n_tags)++);
    return gm_tok_bytes_append(out, tag, (size_t)k);
}

const char *gm_tok_regex_guard_rewrite(const char *p, size_t n, gm_tok_bytes *out, int *n_tags) {
    *n_tags = 0;
    if (!attempts_are_cheap(p, n) && !put_tag(out, n_tags)) return "out of memory";
    for (size_t i = 0; i < n;) {
        size_t j = i + 1; /* the end of the piece copied as it is */
        if (p[i] == '\\') {
            j = i + escape_len(p, n, i);
        } else if (p[i] == '[') {
            j = class_end(p, n, i);
        } else if (p[i] == '(' && i + 1 < n && p[i + 1] == '*') {
            return "callouts of the form (*name) are not supported";
        } else if (p[i] == '(' && i + 2 < n && p[i + 1] == '?') {
            char c = p[i + 2];
            if (c == '#') {
                j = comment_end(p, n, i);
            } else if (c == '{') {
                return "callouts of the form (?{...}) are not supported";
            } else if (turns_on_extended(p, n, i)) {
                return "extended mode (?x) is not supported";
            } else if (c == '=' || c == '!' || (c == '<' && i + 3 < n && (p[i + 3] == '=' || p[i + 3] == '!'))) {
                j = i + (c == '<' ? 4 : 3); /* a look-around: its body starts with a callout */
                if (!gm_tok_bytes_append(out, p + i, j - i) || !put_tag(out, n_tags)) return "out of memory";
                i = j;
                continue;
            }
        }
        if (!gm_tok_bytes_append(out, p + i, j - i)) return "out of memory";
        i = j;
    }
    return NULL;
}

const char *gm_tok_regex_guard_check(OnigRegex guarded, OnigRegex plain, int n_tags) {
    for (int k = 0; k < n_tags; k++) {
        char tag[16];
        int len = snprintf(tag, sizeof tag, "g%d", k);
        if (onig_get_callout_num_by_tag(guarded, (const OnigUChar *)tag, (const OnigUChar *)tag + len) <= 0)
            return "a progress check could not be placed in it (inside a class or comment?)";
    }
    if (onig_number_of_captures(guarded) != onig_number_of_captures(plain) ||
        onig_number_of_names(guarded) != onig_number_of_names(plain))
        return "its groups changed when progress checks were placed in it";
    return NULL;
}

/* ---- the budget ------------------------------------------------------------------------------ */

/* The CPU time of this thread: the work done, whatever else the machine runs. */
static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Counts a callout or a search; reads the clock every run->period of them. A read is a system
 * call (~0.5 us) and real patterns make a callout or search per few bytes, so the period adapts:
 * it doubles (up to 256) while reads come less than 0.2 ms apart, and drops 8x when they come
 * more than 2 ms apart, so that slow steps (a hostile pattern scanning a long piece per attempt)
 * are looked at often. True once out of time. */
static inline bool past_deadline(gm_tok_regex_run *run) {
    if (--run->countdown != 0) return run->out_of_time;
    double t = cpu_seconds(), since = t - run->last_read;
    run->last_read = t;
    if (since > 2e-3) run->period = run->period > 8 ? run->period / 8 : 1;
    else if (since < 2e-4 && run->period < 256) run->period *= 2;
    run->countdown = run->period;
    if (t > run->deadline) run->out_of_time = true;
    return run->out_of_time;
}

/* The progress callout: Oniguruma calls it at every match attempt and look-around (the guard's
 * callouts). A negative return other than ONIG_CALLOUT_FAIL ends the search with that code. */
static int on_progress(OnigCalloutArgs *args, void *user) {
    (void)args;
    return past_deadline(user) ? GM_TOK_REGEX_E_TIME : ONIG_CALLOUT_SUCCESS;
}

glmoe_status gm_tok_regex_run_begin(gm_tok_regex_run *run, gm_err *err) {
    if (!run->region && !(run->region = onig_region_new())) return gm_fail(err, GLMOE_E_NOMEM, "regex: out of memory");
    if (!run->param) {
        if (!(run->param = onig_new_match_param())) return gm_fail(err, GLMOE_E_NOMEM, "regex: out of memory");
        onig_initialize_match_param(run->param);
        onig_set_progress_callout_of_match_param(run->param, on_progress);
        onig_set_callout_user_data_of_match_param(run->param, run);
    }
    run->param_limit = 0; /* not yet set */
    run->retries_left = GM_TOK_REGEX_RETRIES_BASE;
    run->last_read = cpu_seconds();
    run->deadline = run->last_read + GM_TOK_REGEX_SECONDS_BASE;
    run->period = run->countdown = 32;
    run->out_of_time = false;
    return GLMOE_OK;
}

void gm_tok_regex_run_free(gm_tok_regex_run *run) {
    if (run->region) onig_region_free(run->region, 1);
    if (run->param) onig_free_match_param(run->param);
    memset(run, 0, sizeof *run);
}

int gm_tok_regex_search(OnigRegex re, gm_tok_regex_run *run, const uint8_t *s, size_t n, size_t from) {
    if (past_deadline(run)) return GM_TOK_REGEX_E_TIME;
    /* The first try is free: real searches fit in it. A search that needs more runs again with 4x
     * the limit, every try after the first charged in full, so the budget bounds the total. */
    uint64_t limit = run->retries_left < GM_TOK_REGEX_FIRST_TRY ? run->retries_left : GM_TOK_REGEX_FIRST_TRY;
    for (bool first = true;; first = false) {
        if (limit == 0) return GM_TOK_REGEX_E_RETRIES;
        if (limit != run->param_limit) { /* most searches keep the first try's limit */
            unsigned long lim = limit > ULONG_MAX ? ULONG_MAX : (unsigned long)limit;
            onig_set_retry_limit_in_match_of_match_param(run->param, lim);
            onig_set_retry_limit_in_search_of_match_param(run->param, lim);
            run->param_limit = limit;
        }
        int pos = onig_search_with_param(re, s, s + n, s + from, s + n, run->region, ONIG_OPTION_NONE, run->param);
        if (pos == GM_TOK_REGEX_E_TIME || run->out_of_time) return GM_TOK_REGEX_E_TIME;
        bool over = pos == ONIGERR_RETRY_LIMIT_IN_MATCH_OVER || pos == ONIGERR_RETRY_LIMIT_IN_SEARCH_OVER;
        if (over || !first) run->retries_left -= limit;
        if (!over) return pos;
        limit = run->retries_left / 4 < limit ? run->retries_left : limit * 4;
    }
}
