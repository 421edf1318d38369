/*
 * scheduler.c — the engine thread: continuous batching over one glmoe_context of n_seq
 * sequences ("slots").
 *
 * Each step builds one batch of rows for glmoe_context_decode:
 *   - one row per decoding sequence: its next token (chosen, not yet evaluated), with logits;
 *   - then prompt rows of the sequences still prefilling, in chunks, up to n_batch rows in all,
 *     so that a long prompt is spread over several steps and never stalls the others; the last
 *     prompt row asks for logits and gives the first token.
 * Requests join at any step (a free slot takes the oldest queued job) and leave at any step (stop,
 * length, error, or a client that went away: its slot is freed at the next step). A sequence
 * whose client reads too slowly (its channel is full) is skipped until there is room.
 * With drafts (n_draft > 0: the model's MTP layer) a step in which no sequence is prefilling is a
 * speculative step of every decoding sequence instead (glmoe_context_speculate: each its own
 * sampler; the tokens are those of one-at-a-time decoding, greedy or sampled).
 *
 * Each token: sampled with the request's own sampler, turned into text by a tokenizer stream,
 * checked against the stop strings (the text that may be the start of one is held back), then
 * for a chat request fed to the chat-stream parser, which splits reasoning, content and tool
 * calls; what comes out goes to the job's channel as events.
 *
 * Prefix reuse: every slot remembers the tokens in its KV cache, also after its request ended.
 * A new request takes the free slot whose cache shares the longest prefix with its prompt
 * (truncated to that prefix); when another slot, busy or free, shares a longer one (a common
 * system prompt), its KV is copied over (glmoe_context_seq_copy) instead of recomputed.
 *
 * Tested end to end by tests/server/test_server.py (greedy answers equal alone and concurrent,
 * cached_tokens on a repeated prompt, drafts give the same text as none).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

/* A copy from another slot is made only when it saves at least this many prompt tokens. */
#define SRV_MIN_COPY 16

typedef struct srv_slot {
    int32_t seq;
    srv_job *job;              /* NULL: free                                                  */
    int32_t *cache;            /* [n_ctx] the tokens in the sequence's KV cache               */
    size_t n_cache;
    int32_t next;              /* decoding: the token chosen and not yet evaluated            */
    bool decoding;             /* the prompt is evaluated                                     */
    long n_gen;
    glmoe_sampler *sampler;
    glmoe_tokenizer_stream *detok;
    glmoe_chat_stream *chat;
    char *hold;                /* text held back: it may be the start of a stop string        */
    size_t n_hold, cap_hold;
    uint64_t last_used;
} srv_slot;

struct srv_scheduler {
    glmoe_context *ctx;
    glmoe_tokenizer *tok;
    srv_metrics *metrics;
    int32_t n_vocab;
    int32_t eos[16];
    int n_eos;
    int n_seq, n_batch, n_draft;
    size_t n_ctx, max_queue;

    pthread_t thread;
    bool started;
    pthread_mutex_t mu;        /* the queue, stopping, woken                                  */
    pthread_cond_t cv;
    srv_job **queue;           /* a ring of max_queue + n_seq                                 */
    size_t q_head, q_len;
    bool stopping, woken;
    int n_busy;                /* slots with a job (under mu): submit counts the free ones    */

    srv_slot *slots;
    glmoe_batch_row *rows;     /* [n_batch]                                                   */
    srv_slot **row_slot;       /* [n_batch]                                                   */
    glmoe_spec_seq *spec;      /* [n_seq]                                                     */
    srv_slot **spec_slot;
    uint64_t tick, seed_state;
    size_t rr;                 /* where the prefill scan starts (fairness)                    */
};

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---- ending a request ---------------------------------------------------------------------- */

static void slot_release(srv_scheduler *s, srv_slot *sl, bool cancelled) {
    glmoe_sampler_free(sl->sampler);
    glmoe_tokenizer_stream_free(sl->detok);
    glmoe_chat_stream_free(sl->chat);
    sl->sampler = NULL;
    sl->detok = NULL;
    sl->chat = NULL;
    sl->n_hold = 0;
    srv_job_unref(sl->job);
    sl->job = NULL;
    sl->last_used = ++s->tick;
    pthread_mutex_lock(&s->mu);
    s->n_busy--;
    pthread_mutex_unlock(&s->mu);
    srv_metrics_finished(s->metrics, cancelled);
}

static void slot_fail(srv_scheduler *s, srv_slot *sl, int status, const char *msg) {
    srv_job_push(sl->job, SRV_EV_ERROR, (size_t)status, msg, strlen(msg));
    slot_release(s, sl, false);
}

/* ---- text out ------------------------------------------------------------------------------ */

static bool push_deltas(srv_slot *sl, const glmoe_chat_delta *d, size_t n) {
    for (size_t i = 0; i < n; i++) {
        srv_event_kind k = d[i].kind == GLMOE_CHAT_DELTA_REASONING ? SRV_EV_REASONING
                           : d[i].kind == GLMOE_CHAT_DELTA_CONTENT ? SRV_EV_CONTENT
                           : d[i].kind == GLMOE_CHAT_DELTA_TOOL_CALL ? SRV_EV_TOOL_CALL
                                                                     : SRV_EV_TOOL_ARGS;
        if (!srv_job_push(sl->job, k, d[i].index, d[i].text, d[i].len)) return false;
    }
    return true;
}

/* Sends text[0..n) on: through the chat parser, or as completion text. False when the request
 * failed (and the slot was released). */
static bool emit(srv_scheduler *s, srv_slot *sl, const char *text, size_t n) {
    if (n == 0) return true;
    if (!sl->chat) {
        if (srv_job_push(sl->job, SRV_EV_TEXT, 0, text, n)) return true;
        slot_fail(s, sl, 500, "out of memory");
        return false;
    }
    const glmoe_chat_delta *d;
    size_t nd;
    glmoe_status st = glmoe_chat_stream_push(sl->chat, text, n, &d, &nd);
    if (!push_deltas(sl, d, nd)) st = GLMOE_E_NOMEM;
    if (st == GLMOE_OK) return true;
    char msg[600];
    snprintf(msg, sizeof msg, "the model's reply could not be parsed: %s", glmoe_chat_stream_errmsg(sl->chat));
    slot_fail(s, sl, 500, msg);
    return false;
}

/* Length of the longest suffix of h[0..n) that is a proper prefix of a stop string. */
static size_t stop_overlap(const srv_params *p, const char *h, size_t n) {
    size_t best = 0;
    for (size_t i = 0; i < p->n_stop; i++) {
        size_t k = p->stop_len[i] - 1 < n ? p->stop_len[i] - 1 : n;
        for (; k > best; k--)
            if (!memcmp(h + n - k, p->stop[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

typedef enum take_result { TAKE_OK, TAKE_STOPPED, TAKE_FAILED } take_result;

/* Takes new text of the reply: with stop strings, holds back what may start one and cuts the
 * reply at the first one found. `final`: nothing more comes, emit what is held. */
static take_result take_text(srv_scheduler *s, srv_slot *sl, const char *text, size_t n, bool final) {
    const srv_params *p = &sl->job->params;
    if (p->n_stop == 0) return emit(s, sl, text, n) ? TAKE_OK : TAKE_FAILED;
    if (sl->n_hold + n + 1 > sl->cap_hold) {
        size_t cap = 2 * (sl->n_hold + n + 1);
        char *h = realloc(sl->hold, cap);
        if (!h) {
            slot_fail(s, sl, 500, "out of memory");
            return TAKE_FAILED;
        }
        sl->hold = h;
        sl->cap_hold = cap;
    }
    memcpy(sl->hold + sl->n_hold, text, n);
    sl->n_hold += n;
    sl->hold[sl->n_hold] = '\0';
    /* the earliest stop string in the held text (it holds no stop string's start from before) */
    size_t cut = SIZE_MAX;
    for (size_t i = 0; i < p->n_stop; i++) {
        const char *m = memmem(sl->hold, sl->n_hold, p->stop[i], p->stop_len[i]);
        if (m && (size_t)(m - sl->hold) < cut) cut = (size_t)(m - sl->hold);
    }
    if (cut != SIZE_MAX) {
        sl->n_hold = 0;
        return emit(s, sl, sl->hold, cut) ? TAKE_STOPPED : TAKE_FAILED;
    }
    size_t keep = final ? 0 : stop_overlap(p, sl->hold, sl->n_hold);
    size_t out = sl->n_hold - keep;
    if (!emit(s, sl, sl->hold, out)) return TAKE_FAILED;
    memmove(sl->hold, sl->hold + out, keep);
    sl->n_hold = keep;
    return TAKE_OK;
}

/* The request ends: what is held comes out, the parser finishes, FINISH goes last. */
static void slot_finish(srv_scheduler *s, srv_slot *sl, const char *reason, bool at_stop_string) {
    if (!at_stop_string) {
        const char *text;
        size_t n = 0;
        if (glmoe_tokenizer_stream_flush(sl->detok, &text, &n) != GLMOE_OK) n = 0;
        take_result t = take_text(s, sl, n ? text : "", n, true);
        if (t == TAKE_FAILED) return;
        if (t == TAKE_STOPPED) reason = "stop";
    }
    if (sl->chat) {
        const glmoe_chat_delta *d;
        size_t nd;
        glmoe_status st = glmoe_chat_stream_finish(sl->chat, &d, &nd);
        if (!push_deltas(sl, d, nd)) st = GLMOE_E_NOMEM;
        /* a call cut off by max_tokens is the length's fault, not a malformed reply */
        if (st != GLMOE_OK && strcmp(reason, "length")) {
            char msg[600];
            snprintf(msg, sizeof msg, "the model's reply could not be parsed: %s", glmoe_chat_stream_errmsg(sl->chat));
            slot_fail(s, sl, 500, msg);
            return;
        }
        glmoe_chat_stream_info info;
        if (st == GLMOE_OK && !strcmp(reason, "stop") && glmoe_chat_stream_get_info(sl->chat, &info) == GLMOE_OK &&
            info.n_tool_calls > 0)
            reason = "tool_calls";
    }
    pthread_mutex_lock(&sl->job->mu);
    sl->job->n_completion = sl->n_gen;
    pthread_mutex_unlock(&sl->job->mu);
    srv_job_push(sl->job, SRV_EV_FINISH, 0, reason, strlen(reason));
    slot_release(s, sl, false);
}

/* One token chosen for the sequence. */
static void on_token(srv_scheduler *s, srv_slot *sl, int32_t tok) {
    sl->n_gen++;
    sl->next = tok;
    srv_metrics_tokens(s->metrics, 1);
    for (int i = 0; i < s->n_eos; i++)
        if (tok == s->eos[i]) {
            slot_finish(s, sl, "stop", false);
            return;
        }
    const char *text;
    size_t n;
    if (glmoe_tokenizer_stream_push(sl->detok, tok, &text, &n) != GLMOE_OK) {
        slot_fail(s, sl, 500, "the model chose a token outside the tokenizer's vocabulary");
        return;
    }
    take_result t = take_text(s, sl, text, n, false);
    if (t == TAKE_FAILED) return;
    if (t == TAKE_STOPPED) slot_finish(s, sl, "stop", true);
    else if (sl->n_gen >= sl->job->max_tokens) slot_finish(s, sl, "length", false);
}

/* ---- joining ------------------------------------------------------------------------------- */

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t n = 0, m = na < nb ? na : nb;
    while (n < m && a[n] == b[n]) n++;
    return n;
}

/* Gives a queued job a free slot: its KV from the best prefix, its sampler and streams. */
static void slot_start(srv_scheduler *s, srv_job *job) {
    /* at least the last prompt token is evaluated, for its logits */
    size_t limit = job->n_prompt - 1;
    srv_slot *dst = NULL, *src = NULL;
    size_t dst_n = 0, src_n = 0;
    for (int i = 0; i < s->n_seq; i++) {
        srv_slot *sl = &s->slots[i];
        size_t n = common_prefix(sl->cache, sl->n_cache, job->prompt, limit);
        if (!sl->job && (!dst || n > dst_n || (n == dst_n && sl->last_used < dst->last_used))) {
            dst = sl;
            dst_n = n;
        }
        if (!src || n > src_n) {
            src = sl;
            src_n = n;
        }
    }
    size_t reused = dst_n;
    if (src != dst && src_n >= dst_n + SRV_MIN_COPY &&
        glmoe_context_seq_copy(s->ctx, dst->seq, src->seq, src_n) == GLMOE_OK) {
        memcpy(dst->cache, src->cache, src_n * sizeof *dst->cache);
        reused = src_n;
    } else {
        glmoe_context_seq_truncate(s->ctx, dst->seq, dst_n);
    }
    dst->n_cache = reused;
    dst->job = job;
    dst->decoding = false;
    dst->n_gen = 0;
    dst->n_hold = 0;
    pthread_mutex_lock(&job->mu);
    job->n_cached = (long)reused;
    pthread_mutex_unlock(&job->mu);
    srv_metrics_prompt(s->metrics, (long)job->n_prompt, (long)reused);

    glmoe_sampler_params sp = job->params.sampling;
    if (!job->params.has_seed) sp.seed = splitmix(&s->seed_state);
    char err[256];
    if (glmoe_sampler_create(&dst->sampler, &sp, err, sizeof err)) {
        slot_fail(s, dst, 400, err);
        return;
    }
    glmoe_sampler_accept(dst->sampler, job->prompt, job->n_prompt);
    bool chat = job->params.kind == SRV_CHAT;
    if (glmoe_tokenizer_stream_create(&dst->detok, s->tok, !chat)) {
        slot_fail(s, dst, 500, "out of memory");
        return;
    }
    if (chat) {
        glmoe_chat_stream_params cp = glmoe_chat_stream_params_default();
        cp.tools_json = job->params.tools_json;
        cp.starts_in_reasoning = job->starts_in_reasoning;
        if (glmoe_chat_stream_create(&dst->chat, &cp, err, sizeof err)) {
            slot_fail(s, dst, 500, err);
            return;
        }
    }
}

/* Under s->mu: free slots take queued jobs, oldest first. */
static void admit_locked(srv_scheduler *s) {
    while (s->q_len > 0) {
        bool free_slot = false;
        for (int i = 0; i < s->n_seq && !free_slot; i++) free_slot = !s->slots[i].job;
        if (!free_slot) return;
        srv_job *job = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % (s->max_queue + (size_t)s->n_seq);
        s->q_len--;
        if (srv_job_is_cancelled(job)) { /* gone while waiting */
            srv_job_unref(job);
            srv_metrics_finished(s->metrics, true);
            continue;
        }
        s->n_busy++;
        pthread_mutex_unlock(&s->mu); /* slot_start may fail the job: slot_release takes mu */
        slot_start(s, job);
        pthread_mutex_lock(&s->mu);
    }
}

/* ---- a step -------------------------------------------------------------------------------- */

/* Every decoding sequence (n of them, all with room) speculates: its next token and drafts in one
 * forward, the tokens its sampler picks up to the first rejected draft. */
static void speculative_step(srv_scheduler *s, size_t n) {
    long rows = 0, drafted = 0, accepted = 0;
    for (size_t i = 0; i < n; i++) {
        srv_slot *sl = s->spec_slot[i];
        long left = sl->job->max_tokens - sl->n_gen; /* >= 1 */
        long k = s->n_draft < left - 1 ? s->n_draft : left - 1;
        s->spec[i] = (glmoe_spec_seq){.seq = sl->seq, .token = sl->next, .n_draft = (int32_t)k, .sampler = sl->sampler};
    }
    if (glmoe_context_speculate(s->ctx, s->spec, n) != GLMOE_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "the engine failed: %s", glmoe_context_errmsg(s->ctx));
        for (size_t i = 0; i < n; i++) slot_fail(s, s->spec_slot[i], 500, msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        srv_slot *sl = s->spec_slot[i];
        const glmoe_spec_seq *x = &s->spec[i];
        /* evaluated: the token and the accepted drafts, i.e. out[0 .. n_out - 2] after it */
        sl->cache[sl->n_cache++] = x->token;
        for (int j = 0; j + 1 < x->n_out; j++) sl->cache[sl->n_cache++] = x->out[j];
        rows += 1 + x->n_drafted;
        drafted += x->n_drafted;
        accepted += x->n_out - 1;
        for (int j = 0; j < x->n_out && sl->job; j++) on_token(s, sl, x->out[j]);
    }
    srv_metrics_step(s->metrics, (size_t)rows, n, drafted, accepted);
}

/* One step; false when there was nothing to do. */
static bool step(srv_scheduler *s) {
    size_t n_active = 0, n_decode = 0;
    bool prefilling = false;
    for (int i = 0; i < s->n_seq; i++) {
        srv_slot *sl = &s->slots[i];
        if (!sl->job) continue;
        if (srv_job_is_cancelled(sl->job)) {
            slot_release(s, sl, true);
            continue;
        }
        n_active++;
        if (!sl->decoding) prefilling = true;
        else if (srv_job_has_room(sl->job)) s->spec_slot[n_decode++] = sl;
    }
    if (s->n_draft > 0 && !prefilling && n_decode > 0) {
        speculative_step(s, n_decode);
        return true;
    }
    size_t n = 0;
    for (size_t i = 0; i < n_decode; i++) {
        srv_slot *sl = s->spec_slot[i];
        s->row_slot[n] = sl;
        s->rows[n++] = (glmoe_batch_row){.seq = sl->seq, .pos = (int32_t)sl->n_cache, .token = sl->next, .logits = true};
    }
    /* prompt chunks fill the rest of the batch, starting at a rotating slot */
    for (int k = 0; k < s->n_seq && n < (size_t)s->n_batch; k++) {
        srv_slot *sl = &s->slots[(s->rr + (size_t)k) % (size_t)s->n_seq];
        if (!sl->job || sl->decoding) continue;
        size_t done = sl->n_cache;
        for (size_t p = 0; done + p < sl->job->n_prompt && n < (size_t)s->n_batch; p++) {
            s->row_slot[n] = sl;
            s->rows[n++] = (glmoe_batch_row){.seq = sl->seq, .pos = (int32_t)(done + p),
                                             .token = sl->job->prompt[done + p],
                                             .logits = done + p + 1 == sl->job->n_prompt};
        }
    }
    s->rr++;
    if (n == 0) return false;
    if (glmoe_context_decode(s->ctx, s->rows, n) != GLMOE_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "the engine failed: %s", glmoe_context_errmsg(s->ctx));
        for (size_t r = 0; r < n; r++)
            if (s->row_slot[r]->job) slot_fail(s, s->row_slot[r], 500, msg);
        return true;
    }
    for (size_t r = 0; r < n; r++) {
        srv_slot *sl = s->row_slot[r];
        sl->cache[sl->n_cache++] = s->rows[r].token;
    }
    size_t n_seqs = 0;
    for (size_t r = 0; r < n; r++) {
        srv_slot *sl = s->row_slot[r];
        if (!s->rows[r].logits) continue;
        n_seqs++;
        if (!sl->job) continue;
        const float *logits;
        int32_t tok;
        if (glmoe_context_row_logits(s->ctx, r, &logits) != GLMOE_OK ||
            glmoe_sampler_sample(sl->sampler, logits, s->n_vocab, &tok) != GLMOE_OK) {
            char msg[400];
            snprintf(msg, sizeof msg, "cannot sample the next token: %s", glmoe_sampler_errmsg(sl->sampler));
            slot_fail(s, sl, 500, msg);
            continue;
        }
        if (!sl->decoding) {
            sl->decoding = true;
            srv_metrics_first_token(s->metrics, srv_now() - sl->job->t_submit);
        }
        on_token(s, sl, tok);
    }
    srv_metrics_step(s->metrics, n, n_seqs, 0, 0);
    return true;
}

static void *engine_main(void *arg) {
    srv_scheduler *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        admit_locked(s);
        size_t active = 0;
        for (int i = 0; i < s->n_seq; i++) active += s->slots[i].job != NULL;
        srv_metrics_gauges(s->metrics, s->q_len, active);
        pthread_mutex_unlock(&s->mu);
        bool worked = step(s);
        pthread_mutex_lock(&s->mu);
        if (!worked && !s->woken && !s->stopping) {
            /* nothing to do: sleep until a submit, a cancel or room in a channel (or 100 ms) */
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_nsec += 100 * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
        }
        s->woken = false;
    }
    /* shutting down: every job ends with a 503 */
    static const char bye[] = "the server is shutting down";
    while (s->q_len > 0) {
        srv_job *job = s->queue[s->q_head];
        s->q_head = (s->q_head + 1) % (s->max_queue + (size_t)s->n_seq);
        s->q_len--;
        srv_job_push(job, SRV_EV_ERROR, 503, bye, strlen(bye));
        srv_job_unref(job);
    }
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->n_seq; i++)
        if (s->slots[i].job) slot_fail(s, &s->slots[i], 503, bye);
    return NULL;
}

/* ---- public -------------------------------------------------------------------------------- */

srv_scheduler *srv_scheduler_start(glmoe_model *model, glmoe_context *ctx, glmoe_tokenizer *tok,
                                   const srv_sched_opts *o, srv_metrics *metrics, char *err, size_t err_size) {
    glmoe_model_info info;
    srv_scheduler *s = calloc(1, sizeof *s);
    if (!s || glmoe_model_get_info(model, &info) != GLMOE_OK) {
        snprintf(err, err_size, "out of memory");
        free(s);
        return NULL;
    }
    s->ctx = ctx;
    s->tok = tok;
    s->metrics = metrics;
    s->n_vocab = info.vocab_size;
    for (int i = 0; i < info.n_eos_ids && s->n_eos < 16; i++) s->eos[s->n_eos++] = info.eos_ids[i];
    s->n_seq = glmoe_context_n_seq(ctx);
    s->n_ctx = glmoe_context_n_ctx(ctx);
    s->n_batch = o->n_batch;
    s->n_draft = o->n_draft;
    s->max_queue = o->max_queue > 0 ? o->max_queue : 1;
    s->seed_state = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    s->queue = calloc(s->max_queue + (size_t)s->n_seq, sizeof *s->queue);
    s->slots = calloc((size_t)s->n_seq, sizeof *s->slots);
    s->rows = calloc((size_t)s->n_batch, sizeof *s->rows);
    s->row_slot = calloc((size_t)s->n_batch, sizeof *s->row_slot);
    s->spec = calloc((size_t)s->n_seq, sizeof *s->spec);
    s->spec_slot = calloc((size_t)s->n_seq, sizeof *s->spec_slot);
    bool ok = s->queue && s->slots && s->rows && s->row_slot && s->spec && s->spec_slot;
    for (int i = 0; ok && i < s->n_seq; i++) {
        s->slots[i].seq = i;
        ok = (s->slots[i].cache = malloc(s->n_ctx * sizeof(int32_t))) != NULL;
    }
    if (ok && pthread_create(&s->thread, NULL, engine_main, s) == 0) {
        s->started = true;
        return s;
    }
    snprintf(err, err_size, ok ? "cannot start the engine thread" : "out of memory");
    srv_scheduler_stop(s);
    return NULL;
}

srv_submit srv_scheduler_submit(srv_scheduler *s, srv_job *job) {
    pthread_mutex_lock(&s->mu);
    srv_submit r = SRV_SUBMITTED;
    if (s->stopping) r = SRV_STOPPING;
    /* the queue's room, plus the free sequences the engine has not handed out yet */
    else if (s->q_len >= s->max_queue + (size_t)(s->n_seq - s->n_busy)) r = SRV_QUEUE_FULL;
    if (r == SRV_SUBMITTED) {
        pthread_mutex_lock(&job->mu);
        job->refs++;
        job->sched = s;
        pthread_mutex_unlock(&job->mu);
        s->queue[(s->q_head + s->q_len) % (s->max_queue + (size_t)s->n_seq)] = job;
        s->q_len++;
        s->woken = true;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

void srv_scheduler_wake(srv_scheduler *s) {
    pthread_mutex_lock(&s->mu);
    s->woken = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void srv_scheduler_stop(srv_scheduler *s) {
    if (!s) return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    for (int i = 0; s->slots && i < s->n_seq; i++) free(s->slots[i].cache), free(s->slots[i].hold);
    free(s->queue);
    free(s->slots);
    free(s->rows);
    free(s->row_slot);
    free(s->spec);
    free(s->spec_slot);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
