/*
 * server.h — `glmoe serve`, an OpenAI-compatible HTTP server over the batched engine.
 *
 * The pieces, one concern per file:
 *   cmd_serve.c  options, loading the model, start and orderly shutdown (SIGINT, SIGTERM)
 *   http.c       libmicrohttpd in thread-per-connection mode: routing, body and header bounds,
 *                the API key, error replies, waiting for a job and writing it (JSON or SSE)
 *   request.c    the OpenAI request JSON into srv_params, every field type-checked (400 naming
 *                the field), and the chat prompt rendered with the model's template
 *   job.c        one request between its connection thread and the engine: the bounded channel
 *                of events (mutex + condvar) and the reference count
 *   scheduler.c  the engine thread: one glmoe_context of `parallel` sequences, continuous
 *                batching with chunked prefill, prefix reuse, sampling, stop strings, the
 *                chat-stream parser, speculative steps
 *   response.c   the OpenAI JSON of replies, chunks and errors
 *   metrics.c    counters and gauges, as Prometheus text
 *
 * Threads: MHD gives each connection a thread; it parses and tokenizes its request (tokenizer
 * encode, one at a time), submits a job and waits on the job's channel. Only the engine thread
 * touches the context, the samplers and the streams.
 */
#ifndef GLMOE_SERVER_H
#define GLMOE_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glmoe.h"

/* ---- bounds on what a client sends (SECURITY.md lists them) ---- */

typedef struct srv_limits {
    size_t max_body;      /* bytes of a request body (--max-body)                            */
    size_t max_messages;  /* messages of a chat request                                      */
    size_t max_tools;     /* tools of a chat request                                         */
    size_t max_stop;      /* stop strings                                                    */
    size_t max_stop_len;  /* bytes of one stop string                                        */
} srv_limits;

#define SRV_MAX_BODY_DEFAULT ((size_t)8 << 20)
#define SRV_MAX_MESSAGES 4096
#define SRV_MAX_TOOLS 256
#define SRV_MAX_STOP 16
#define SRV_MAX_STOP_LEN 256

srv_limits srv_limits_default(void);

/* ---- errors, as OpenAI writes them ---- */

typedef struct srv_error {
    int status;           /* HTTP status: 400, 401, 404, 405, 413, 429, 500, 503             */
    const char *type;     /* "invalid_request_error", ...                                    */
    const char *code;     /* NULL or a short code: "model_not_found", "queue_full", ...      */
    char param[128];      /* the field at fault ("messages[2].content"), "" for none         */
    char message[768];
} srv_error;

/* Fills e and returns false (for `return srv_fail(...)`). */
bool srv_fail(srv_error *e, int status, const char *type, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* ---- a parsed request (request.c) ---- */

typedef enum srv_kind { SRV_CHAT = 0, SRV_COMPLETION } srv_kind;

typedef struct srv_params {
    srv_kind kind;
    char *model;                 /* "model", NULL when absent                                 */
    char *messages_json;         /* chat: the messages array (compact JSON)                   */
    char *tools_json;            /* chat: the tools array, NULL for none or tool_choice "none" */
    char *prompt;                /* completion: the prompt (UTF-8, may hold NUL)              */
    size_t prompt_len;
    bool stream, include_usage;  /* stream_options.include_usage                              */
    long max_tokens;             /* max_completion_tokens or max_tokens; -1 when absent       */
    glmoe_sampler_params sampling;
    bool has_seed;
    char **stop;                 /* n_stop strings (no NUL inside), each stop_len[i] bytes     */
    size_t *stop_len, n_stop;
    int enable_thinking;         /* chat_template_kwargs.enable_thinking: -1 unset, 0, 1      */
} srv_params;

/* Parses and checks a request body of `kind`. On failure e says why (status 400) and *out holds
 * nothing to free; on success srv_params_free releases it. */
bool srv_parse_request(srv_kind kind, const char *body, size_t len, const srv_limits *lim, srv_params *out,
                       srv_error *e);
void srv_params_free(srv_params *p);

/* The chat prompt of p with the model's template (glmoe_chat_render); *text is freed with
 * glmoe_free. A message the template refuses is a 400 naming it. */
bool srv_render_chat(const srv_params *p, glmoe_chat_style style, char **text, size_t *len, srv_error *e);

/* ---- a job: one request between its connection and the engine (job.c) ---- */

typedef enum srv_event_kind {
    SRV_EV_REASONING = 0,  /* chat: a piece of reasoning_content                              */
    SRV_EV_CONTENT,        /* chat: a piece of content                                        */
    SRV_EV_TOOL_CALL,      /* chat: call `index` begins; text is its name                     */
    SRV_EV_TOOL_ARGS,      /* chat: a piece of call `index`'s arguments                       */
    SRV_EV_TEXT,           /* completion: a piece of text                                     */
    SRV_EV_FINISH,         /* the end: text is the finish_reason; usage is in the job         */
    SRV_EV_ERROR,          /* the end, failed: text is the message, index the HTTP status     */
} srv_event_kind;

typedef struct srv_event {
    srv_event_kind kind;
    size_t index;
    char *text;            /* len bytes and a NUL                                             */
    size_t len;
    struct srv_event *next;
} srv_event;

/* Events a channel holds before the engine pauses the sequence (the client reads too slowly). */
#define SRV_CHANNEL_EVENTS 256

struct srv_scheduler;

typedef struct srv_job {
    /* written by the connection before submit; read-only afterwards */
    srv_params params;
    int32_t *prompt;             /* the prompt's token ids                                    */
    size_t n_prompt;
    bool starts_in_reasoning;    /* the rendered prompt ends inside <think>                   */
    long max_tokens;             /* resolved: at most n_ctx - n_prompt                        */
    double t_submit;

    /* the channel, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;           /* signalled when an event arrives                           */
    srv_event *head, *tail;
    size_t n_events;
    bool ended;                  /* FINISH or ERROR queued: nothing more comes                */
    bool cancelled;              /* the client went away: the engine frees the sequence       */
    int refs;                    /* the connection and, once submitted, the engine            */
    struct srv_scheduler *sched; /* woken when a full channel gets room                       */

    /* usage, set by the engine before FINISH */
    long n_completion, n_cached;
} srv_job;

/* A job holding p (moved in: p is left empty) and the prompt ids (taken). One reference. */
srv_job *srv_job_create(srv_params *p, int32_t *prompt, size_t n_prompt);
void srv_job_unref(srv_job *job);

/* Engine side. push copies text; false when out of memory. Room: fewer than
 * SRV_CHANNEL_EVENTS events wait. */
bool srv_job_push(srv_job *job, srv_event_kind kind, size_t index, const char *text, size_t len);
bool srv_job_has_room(srv_job *job);
bool srv_job_is_cancelled(srv_job *job);

/* Connection side: waits up to timeout_ms for an event; NULL on timeout. Free with
 * srv_event_free. */
srv_event *srv_job_pop(srv_job *job, int timeout_ms);
void srv_event_free(srv_event *ev);
void srv_job_cancel(srv_job *job);

/* ---- metrics (metrics.c) ---- */

typedef struct srv_metrics srv_metrics;

srv_metrics *srv_metrics_create(void);
void srv_metrics_free(srv_metrics *m);
void srv_metrics_request(srv_metrics *m, int status);
void srv_metrics_prompt(srv_metrics *m, long n_prompt, long n_reused);
void srv_metrics_first_token(srv_metrics *m, double seconds);
void srv_metrics_tokens(srv_metrics *m, long n);
void srv_metrics_step(srv_metrics *m, size_t rows, size_t n_seq, long drafted, long accepted);
void srv_metrics_finished(srv_metrics *m, bool cancelled);
void srv_metrics_gauges(srv_metrics *m, size_t queued, size_t active);
/* The Prometheus text exposition (malloc'd). */
char *srv_metrics_text(srv_metrics *m);

/* ---- the engine (scheduler.c) ---- */

typedef struct srv_scheduler srv_scheduler;

typedef struct srv_sched_opts {
    int n_draft;          /* drafts per speculative step; 0: off (the context's n_draft)     */
    int n_batch;          /* the context's n_batch: most rows per step                       */
    size_t max_queue;     /* jobs waiting for a sequence before submit answers "full"        */
} srv_sched_opts;

/* Starts the engine thread over ctx (n_seq_max sequences). The model, context and tokenizer must
 * outlive it. NULL with the reason in err on failure. */
srv_scheduler *srv_scheduler_start(glmoe_model *model, glmoe_context *ctx, glmoe_tokenizer *tok,
                                   const srv_sched_opts *o, srv_metrics *metrics, char *err, size_t err_size);

typedef enum srv_submit { SRV_SUBMITTED = 0, SRV_QUEUE_FULL, SRV_STOPPING } srv_submit;

/* Hands the job to the engine (which takes a reference). */
srv_submit srv_scheduler_submit(srv_scheduler *s, srv_job *job);

/* Wakes the engine (a full channel got room, a job was cancelled). */
void srv_scheduler_wake(srv_scheduler *s);

/* Ends every job with a 503 error, stops and joins the engine thread, frees. NULL is a no-op. */
void srv_scheduler_stop(srv_scheduler *s);

/* ---- replies (response.c) ---- */

typedef struct srv_reply_info {
    const char *id;       /* "chatcmpl-..." / "cmpl-..."                                     */
    const char *model;
    long long created;
} srv_reply_info;

/* What a job's events add up to (a non-streamed reply). */
typedef struct srv_result {
    char *reasoning, *content, *text;       /* malloc'd, NUL-terminated; lengths below       */
    size_t reasoning_len, content_len, text_len;
    size_t n_calls;
    struct srv_call { char id[40]; char *name; char *args; size_t args_len; } *calls;
    char finish_reason[16];
} srv_result;

/* Adds one event (not FINISH/ERROR) to r; false when out of memory. */
bool srv_result_add(srv_result *r, const srv_event *ev);
void srv_result_free(srv_result *r);

/* The reply of a finished job (malloc'd JSON). */
char *srv_reply_chat(const srv_reply_info *info, const srv_result *r, const srv_job *job);
char *srv_reply_completion(const srv_reply_info *info, const srv_result *r, const srv_job *job);

/* Streamed chunks (malloc'd JSON, without "data: "). The first chunk of a chat carries the role.
 * For a TOOL_CALL event, call_id is the id the call gets. */
char *srv_chunk_chat_role(const srv_reply_info *info);
char *srv_chunk_chat_event(const srv_reply_info *info, const srv_event *ev, const char *call_id);
char *srv_chunk_chat_finish(const srv_reply_info *info, const char *finish_reason);
char *srv_chunk_completion(const srv_reply_info *info, const char *text, size_t len, const char *finish_reason);
/* The usage chunk of stream_options.include_usage (choices: []). */
char *srv_chunk_usage(const srv_reply_info *info, const srv_job *job, bool chat);

/* {"error": {"message", "type", "param", "code"}} */
char *srv_reply_error(const srv_error *e);

/* "call_" and 24 random letters and digits (a call's id); "chatcmpl-"... for a reply. */
void srv_random_id(char *out, size_t size, const char *prefix, size_t n_random);

/* ---- http (http.c) ---- */

typedef struct srv_http_opts {
    const char *host;
    int port;             /* 0: any free port (printed)                                      */
    const char *api_key;  /* NULL: none                                                      */
    const char *model_id; /* what /v1/models lists and requests must name                    */
    srv_limits limits;
    unsigned max_connections;
    unsigned timeout_s;   /* idle connection timeout                                         */
    int n_ctx;
    glmoe_chat_style style;
} srv_http_opts;

typedef struct srv_http srv_http;

/* Starts listening. NULL with the reason in err on failure. */
srv_http *srv_http_start(const srv_http_opts *o, srv_scheduler *sched, glmoe_tokenizer *tok, srv_metrics *metrics,
                         char *err, size_t err_size);
int srv_http_port(const srv_http *h);
/* Stops accepting connections (before the scheduler stops). */
void srv_http_quiesce(srv_http *h);
/* Closes every connection and frees. NULL is a no-op. */
void srv_http_stop(srv_http *h);

double srv_now(void);

#endif
