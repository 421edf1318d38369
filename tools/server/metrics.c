/*
 * metrics.c — what GET /metrics says, in Prometheus' text format (version 0.0.4).
 *
 * Counters since start (requests by status class, prompt tokens evaluated and reused, generated
 * tokens, decode steps and their rows, drafts), gauges (queued requests, running sequences, the
 * last step's batch), the time to first token as a histogram, and the generated tokens per second
 * over the last 10 seconds (rate() of the counter gives the same over any window).
 * One mutex; every update is a few additions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

static const double ttft_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define N_TTFT (sizeof ttft_buckets / sizeof ttft_buckets[0])
#define RATE_SECONDS 10

struct srv_metrics {
    pthread_mutex_t mu;
    unsigned long long requests[6];          /* by status class: 1xx..5xx at [1..5]       */
    unsigned long long prompt_tokens, prompt_reused, generated, steps, step_rows, step_seqs;
    unsigned long long drafted, accepted, finished, cancelled;
    unsigned long long ttft_count, ttft_bucket[N_TTFT];
    double ttft_sum;
    size_t queued, active, last_rows, last_seqs;
    unsigned long long per_second[RATE_SECONDS]; /* tokens generated in each of the last seconds */
    long long second;                            /* the second per_second's newest slot is for  */
    double start;
};

double srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

srv_metrics *srv_metrics_create(void) {
    srv_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    m->start = srv_now();
    m->second = (long long)m->start;
    return m;
}

void srv_metrics_free(srv_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* Moves the per-second ring to now; under mu. */
static void advance(srv_metrics *m) {
    long long now = (long long)srv_now();
    if (now - m->second >= RATE_SECONDS) {
        memset(m->per_second, 0, sizeof m->per_second);
        m->second = now;
    }
    while (m->second < now) m->per_second[++m->second % RATE_SECONDS] = 0;
}

void srv_metrics_request(srv_metrics *m, int status) {
    int c = status / 100;
    pthread_mutex_lock(&m->mu);
    m->requests[c >= 1 && c <= 5 ? c : 5]++;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_prompt(srv_metrics *m, long n_prompt, long n_reused) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (unsigned long long)n_prompt;
    m->prompt_reused += (unsigned long long)n_reused;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_first_token(srv_metrics *m, double seconds) {
    pthread_mutex_lock(&m->mu);
    m->ttft_count++;
    m->ttft_sum += seconds;
    for (size_t i = 0; i < N_TTFT; i++) m->ttft_bucket[i] += seconds <= ttft_buckets[i];
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_tokens(srv_metrics *m, long n) {
    pthread_mutex_lock(&m->mu);
    m->generated += (unsigned long long)n;
    advance(m);
    m->per_second[m->second % RATE_SECONDS] += (unsigned long long)n;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_step(srv_metrics *m, size_t rows, size_t n_seq, long drafted, long accepted) {
    pthread_mutex_lock(&m->mu);
    m->steps++;
    m->step_rows += rows;
    m->step_seqs += n_seq;
    m->last_rows = rows;
    m->last_seqs = n_seq;
    m->drafted += (unsigned long long)drafted;
    m->accepted += (unsigned long long)accepted;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_finished(srv_metrics *m, bool cancelled) {
    pthread_mutex_lock(&m->mu);
    m->finished++;
    m->cancelled += cancelled;
    pthread_mutex_unlock(&m->mu);
}

void srv_metrics_gauges(srv_metrics *m, size_t queued, size_t active) {
    pthread_mutex_lock(&m->mu);
    m->queued = queued;
    m->active = active;
    pthread_mutex_unlock(&m->mu);
}

char *srv_metrics_text(srv_metrics *m) {
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f) return NULL;
    pthread_mutex_lock(&m->mu);
    advance(m);
    unsigned long long recent = 0; /* the last RATE_SECONDS full seconds, not the current one */
    for (long long s = m->second - RATE_SECONDS + 1; s < m->second; s++)
        if (s >= 0) recent += m->per_second[s % RATE_SECONDS];
    double window = RATE_SECONDS - 1;
    if (srv_now() - m->start < window) window = srv_now() - m->start > 1 ? srv_now() - m->start : 1;
    fprintf(f, "# HELP glmoe_requests_total HTTP requests answered, by status class.\n"
               "# TYPE glmoe_requests_total counter\n");
    for (int c = 1; c <= 5; c++) fprintf(f, "glmoe_requests_total{status=\"%dxx\"} %llu\n", c, m->requests[c]);
#define COUNTER(name, help, v) fprintf(f, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n", v)
#define GAUGE(name, help, fmt, v) fprintf(f, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " " fmt "\n", v)
    COUNTER("glmoe_prompt_tokens_total", "Prompt tokens of admitted requests.", m->prompt_tokens);
    COUNTER("glmoe_prompt_tokens_reused_total", "Prompt tokens found in a sequence's KV cache (not evaluated).",
            m->prompt_reused);
    COUNTER("glmoe_generated_tokens_total", "Tokens generated.", m->generated);
    COUNTER("glmoe_decode_steps_total", "Forwards of the engine (steps of the running batch).", m->steps);
    COUNTER("glmoe_batch_rows_total", "Rows (tokens) evaluated in those steps.", m->step_rows);
    COUNTER("glmoe_draft_tokens_total", "Draft tokens tried in speculative steps.", m->drafted);
    COUNTER("glmoe_draft_tokens_accepted_total", "Draft tokens accepted.", m->accepted);
    COUNTER("glmoe_requests_finished_total", "Requests that left the engine (done, failed or cancelled).",
            m->finished);
    COUNTER("glmoe_requests_cancelled_total", "Requests whose client went away before the end.", m->cancelled);
    GAUGE("glmoe_queue_depth", "Requests waiting for a sequence.", "%zu", m->queued);
    GAUGE("glmoe_sequences_active", "Sequences running (prefilling or decoding).", "%zu", m->active);
    GAUGE("glmoe_batch_size", "Rows of the last step.", "%zu", m->last_rows);
    GAUGE("glmoe_batch_sequences", "Sequences that got a token in the last step.", "%zu", m->last_seqs);
    GAUGE("glmoe_tokens_per_second", "Tokens generated per second over the last 10 seconds.", "%.3f",
          (double)recent / window);
    fprintf(f, "# HELP glmoe_time_to_first_token_seconds From submission to the first token.\n"
               "# TYPE glmoe_time_to_first_token_seconds histogram\n");
    for (size_t i = 0; i < N_TTFT; i++)
        fprintf(f, "glmoe_time_to_first_token_seconds_bucket{le=\"%g\"} %llu\n", ttft_buckets[i], m->ttft_bucket[i]);
    fprintf(f, "glmoe_time_to_first_token_seconds_bucket{le=\"+Inf\"} %llu\n", m->ttft_count);
    fprintf(f, "glmoe_time_to_first_token_seconds_sum %.6f\nglmoe_time_to_first_token_seconds_count %llu\n",
            m->ttft_sum, m->ttft_count);
#undef COUNTER
#undef GAUGE
    pthread_mutex_unlock(&m->mu);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
