/*
 * job.c — one request shared by its connection thread and the engine thread.
 *
 * The engine pushes events (pieces of text, then FINISH or ERROR) into the job's channel; the
 * connection pops them. The channel is bounded: the engine never blocks on it, it stops
 * scheduling a sequence whose channel holds SRV_CHANNEL_EVENTS events (a client that reads
 * slowly slows only itself) and the connection wakes the engine when it makes room. A client
 * that goes away cancels the job; the engine frees its sequence at its next step. The job is
 * freed by whichever side lets go last (a reference count under the job's mutex).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server.h"

srv_job *srv_job_create(srv_params *p, int32_t *prompt, size_t n_prompt) {
    srv_job *job = calloc(1, sizeof *job);
    if (!job) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&job->mu, NULL) || pthread_cond_init(&job->cv, &ca)) {
        pthread_condattr_destroy(&ca);
        free(job);
        return NULL;
    }
    pthread_condattr_destroy(&ca);
    job->params = *p;
    memset(p, 0, sizeof *p);
    job->prompt = prompt;
    job->n_prompt = n_prompt;
    job->refs = 1;
    return job;
}

void srv_event_free(srv_event *ev) {
    if (!ev) return;
    free(ev->text);
    free(ev);
}

void srv_job_unref(srv_job *job) {
    if (!job) return;
    pthread_mutex_lock(&job->mu);
    int left = --job->refs;
    pthread_mutex_unlock(&job->mu);
    if (left > 0) return;
    for (srv_event *ev = job->head, *next; ev; ev = next) {
        next = ev->next;
        srv_event_free(ev);
    }
    srv_params_free(&job->params);
    free(job->prompt);
    pthread_cond_destroy(&job->cv);
    pthread_mutex_destroy(&job->mu);
    free(job);
}

bool srv_job_push(srv_job *job, srv_event_kind kind, size_t index, const char *text, size_t len) {
    srv_event *ev = calloc(1, sizeof *ev);
    char *copy = malloc(len + 1);
    if (!ev || !copy) {
        free(ev);
        free(copy);
        return false;
    }
    if (len) memcpy(copy, text, len);
    copy[len] = '\0';
    *ev = (srv_event){.kind = kind, .index = index, .text = copy, .len = len};
    pthread_mutex_lock(&job->mu);
    if (job->ended) { /* nothing goes after the end (a stop racing a shutdown) */
        pthread_mutex_unlock(&job->mu);
        srv_event_free(ev);
        return true;
    }
    if (job->tail) job->tail->next = ev;
    else job->head = ev;
    job->tail = ev;
    job->n_events++;
    if (kind == SRV_EV_FINISH || kind == SRV_EV_ERROR) job->ended = true;
    pthread_cond_signal(&job->cv);
    pthread_mutex_unlock(&job->mu);
    return true;
}

bool srv_job_has_room(srv_job *job) {
    pthread_mutex_lock(&job->mu);
    bool room = job->n_events < SRV_CHANNEL_EVENTS;
    pthread_mutex_unlock(&job->mu);
    return room;
}

bool srv_job_is_cancelled(srv_job *job) {
    pthread_mutex_lock(&job->mu);
    bool c = job->cancelled;
    pthread_mutex_unlock(&job->mu);
    return c;
}

void srv_job_cancel(srv_job *job) {
    pthread_mutex_lock(&job->mu);
    bool was = job->cancelled || job->ended;
    job->cancelled = true;
    struct srv_scheduler *s = job->sched;
    pthread_mutex_unlock(&job->mu);
    if (!was && s) srv_scheduler_wake(s);
}

srv_event *srv_job_pop(srv_job *job, int timeout_ms) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&job->mu);
    while (!job->head) {
        if (pthread_cond_timedwait(&job->cv, &job->mu, &until) == ETIMEDOUT) break;
    }
    srv_event *ev = job->head;
    bool was_full = false;
    if (ev) {
        was_full = job->n_events >= SRV_CHANNEL_EVENTS;
        job->head = ev->next;
        if (!job->head) job->tail = NULL;
        job->n_events--;
        ev->next = NULL;
    }
    struct srv_scheduler *s = job->sched;
    pthread_mutex_unlock(&job->mu);
    if (was_full && s) srv_scheduler_wake(s); /* the paused sequence may go on */
    return ev;
}
