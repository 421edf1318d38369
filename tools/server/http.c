/*
 * http.c — the HTTP side of `glmoe serve`, on GNU libmicrohttpd (Debian's libmicrohttpd-dev) in
 * thread-per-connection mode: MHD parses HTTP; this file routes, bounds and answers.
 *
 *   POST /v1/chat/completions   POST /v1/completions   GET /v1/models[/ID]   GET /health
 *   GET /metrics
 *
 * Each request: the API key (when set: "Authorization: Bearer KEY", compared in constant time,
 * on every path) and the route are checked on the first call, before any body is read; the body
 * is collected up to max_body (a larger Content-Length is refused at once, a body that turns out
 * larger is dropped while it comes and refused at the end: 413); then request.c parses it, the
 * prompt is rendered and tokenized here (in the connection's thread, so the engine never waits on
 * it), checked against the context (400), and the job goes to the scheduler (429 when its queue
 * is full, 503 while stopping).
 *
 * Waiting for the job: a whole reply is waited for in the access handler (MHD sends it when the
 * handler returns, however long that took); a stream is a chunked response whose reader callback
 * pops the job's events and writes them as server-sent events (`data: {...}\n\n`, then
 * `data: [DONE]\n\n`). MHD closes a connection idle for timeout_s, including one whose reader
 * callback blocks that long, so the callback never waits more than a third of it: with nothing
 * to send it writes an SSE comment (": keep-alive"). Both waits look at the socket every 200 ms:
 * a client that hung up (EOF or an error on its socket) cancels its job, which frees its
 * sequence at the engine's next step; a failed write does the same through the response's free
 * callback.
 *
 * Bounds: connections (max_connections; MHD refuses more), header bytes (MHD's 32 KiB pool per
 * connection: 431), the body (max_body), the idle time (timeout_s), and request.c's own.
 */
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

/* How often a waiting connection looks at its socket. */
#define POLL_MS 200

struct srv_http {
    struct MHD_Daemon *daemon;
    srv_http_opts o;
    srv_scheduler *sched;
    glmoe_tokenizer *tok;
    pthread_mutex_t tok_mu;  /* one encode at a time (glmoe.h: encode keeps scratch in the handle);
                                the connection threads take turns, the message read under it */
    srv_metrics *metrics;
    long long started;
};

/* Per connection (MHD's *con_cls). */
typedef struct conn {
    char *body;
    size_t len, cap;
    bool too_big;
} conn;

/* A stream being written. */
typedef struct stream {
    srv_http *h;
    srv_job *job;
    int fd;
    bool chat, role_sent, ended, include_usage;
    char id[48];
    srv_reply_info info;
    char *out;              /* bytes not yet handed to MHD */
    size_t out_len, out_pos;
    double last_write;
} stream;

/* ---- answering ----------------------------------------------------------------------------- */

static enum MHD_Result reply(srv_http *h, struct MHD_Connection *c, int status, const char *type, char *body) {
    const char *b = body ? body : "{\"error\": {\"message\": \"out of memory\", \"type\": \"server_error\"}}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(b), (void *)b, MHD_RESPMEM_MUST_COPY);
    free(body);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (status == 405) MHD_add_response_header(r, "Allow", "GET, POST");
    if (status == 401) MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    srv_metrics_request(h->metrics, status);
    return ret;
}

static enum MHD_Result reply_error(srv_http *h, struct MHD_Connection *c, const srv_error *e) {
    return reply(h, c, e->status, "application/json", srv_reply_error(e));
}

static enum MHD_Result fail(srv_http *h, struct MHD_Connection *c, int status, const char *type, const char *code,
                            const char *param, const char *msg) {
    srv_error e;
    srv_fail(&e, status, type, code, param, "%s", msg);
    return reply_error(h, c, &e);
}

/* The client hung up: EOF or an error on its socket (a request pipelined behind this one is data,
 * not a hang-up). */
static bool client_gone(int fd) {
    if (fd < 0) return false;
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLERR | POLLHUP | POLLRDHUP)) return true;
    char ch;
    return (p.revents & POLLIN) && recv(fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

static int conn_fd(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci ? ci->connect_fd : -1;
}

static bool key_ok(const srv_http *h, struct MHD_Connection *c) {
    if (!h->o.api_key) return true;
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!auth || strncmp(auth, "Bearer ", 7)) return false;
    const char *given = auth + 7, *want = h->o.api_key;
    size_t ng = strlen(given), nw = strlen(want);
    unsigned char diff = (unsigned char)(ng != nw);
    for (size_t i = 0; i < nw; i++) diff |= (unsigned char)(want[i] ^ (i < ng ? given[i] : 0));
    return diff == 0;
}

/* ---- GET endpoints ------------------------------------------------------------------------- */

static char *model_json(const srv_http *h) {
    json_t *m = json_pack("{s:s, s:s, s:I, s:s, s:i}", "id", h->o.model_id, "object", "model", "created",
                          (json_int_t)h->started, "owned_by", "glmoe", "context_length", h->o.n_ctx);
    char *s = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    return s;
}

static enum MHD_Result get_models(srv_http *h, struct MHD_Connection *c, const char *one) {
    if (one && strcmp(one, h->o.model_id))
        return fail(h, c, 404, "invalid_request_error", "model_not_found", "model", "no such model");
    char *m = model_json(h), *body = NULL;
    if (m && !one && asprintf(&body, "{\"object\":\"list\",\"data\":[%s]}", m) < 0) body = NULL;
    if (one) body = m, m = NULL;
    free(m);
    return reply(h, c, 200, "application/json", body);
}

/* ---- streams ------------------------------------------------------------------------------- */

static bool out_add(stream *st, const char *a, const char *b, const char *c) {
    size_t na = strlen(a), nb = b ? strlen(b) : 0, nc = c ? strlen(c) : 0;
    if (st->out_pos == st->out_len) st->out_pos = st->out_len = 0;
    char *p = realloc(st->out, st->out_len + na + nb + nc + 1);
    if (!p) return false;
    st->out = p;
    memcpy(p + st->out_len, a, na);
    if (nb) memcpy(p + st->out_len + na, b, nb);
    if (nc) memcpy(p + st->out_len + na + nb, c, nc);
    st->out_len += na + nb + nc;
    return true;
}

/* An SSE event of one chunk (NULL: out of memory, which ends the stream). */
static bool out_chunk(stream *st, char *json) {
    bool ok = json && out_add(st, "data: ", json, "\n\n");
    free(json);
    return ok;
}

/* Formats one event of the job. False: the stream ends badly (out of memory). */
static bool stream_event(stream *st, srv_event *ev) {
    if (ev->kind == SRV_EV_ERROR) {
        srv_error e;
        srv_fail(&e, (int)ev->index, ev->index == 503 ? "service_unavailable" : "server_error", NULL, NULL, "%s",
                 ev->text);
        st->ended = true;
        return out_chunk(st, srv_reply_error(&e)) && out_add(st, "data: [DONE]\n\n", NULL, NULL);
    }
    if (ev->kind == SRV_EV_FINISH) {
        st->ended = true;
        bool ok = out_chunk(st, st->chat ? srv_chunk_chat_finish(&st->info, ev->text)
                                         : srv_chunk_completion(&st->info, "", 0, ev->text));
        if (ok && st->include_usage) {
            pthread_mutex_lock(&st->job->mu); /* n_completion was written under it */
            char *u = srv_chunk_usage(&st->info, st->job, st->chat);
            pthread_mutex_unlock(&st->job->mu);
            ok = out_chunk(st, u);
        }
        return ok && out_add(st, "data: [DONE]\n\n", NULL, NULL);
    }
    if (!st->chat) return out_chunk(st, srv_chunk_completion(&st->info, ev->text, ev->len, NULL));
    char call_id[40] = "";
    if (ev->kind == SRV_EV_TOOL_CALL) srv_random_id(call_id, sizeof call_id, "call_", 24);
    return out_chunk(st, srv_chunk_chat_event(&st->info, ev, call_id));
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    stream *st = cls;
    (void)pos;
    double keepalive = st->h->o.timeout_s > 0 ? st->h->o.timeout_s / 3.0 : 15.0;
    for (;;) {
        if (st->out_pos < st->out_len) {
            size_t n = st->out_len - st->out_pos < max ? st->out_len - st->out_pos : max;
            memcpy(buf, st->out + st->out_pos, n);
            st->out_pos += n;
            st->last_write = srv_now();
            return (ssize_t)n;
        }
        if (st->ended) return MHD_CONTENT_READER_END_OF_STREAM;
        if (st->chat && !st->role_sent) {
            st->role_sent = true;
            if (!out_chunk(st, srv_chunk_chat_role(&st->info))) return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        srv_event *ev = srv_job_pop(st->job, POLL_MS);
        if (!ev) {
            if (client_gone(st->fd)) {
                srv_job_cancel(st->job);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            if (srv_now() - st->last_write > keepalive && !out_add(st, ": keep-alive\n\n", NULL, NULL))
                return MHD_CONTENT_READER_END_WITH_ERROR;
            continue;
        }
        bool ok = stream_event(st, ev);
        srv_event_free(ev);
        if (!ok) {
            srv_job_cancel(st->job);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

/* MHD is done with the stream (sent, or the connection closed): a job still running is
 * cancelled (no one reads it). */
static void stream_free(void *cls) {
    stream *st = cls;
    srv_job_cancel(st->job);
    srv_job_unref(st->job);
    free(st->out);
    free(st);
}

static enum MHD_Result start_stream(srv_http *h, struct MHD_Connection *c, srv_job *job, const srv_reply_info *info,
                                    const char *id) {
    stream *st = calloc(1, sizeof *st);
    if (!st) {
        srv_job_cancel(job);
        srv_job_unref(job);
        return fail(h, c, 500, "server_error", NULL, NULL, "out of memory");
    }
    st->h = h;
    st->job = job;
    st->fd = conn_fd(c);
    st->chat = job->params.kind == SRV_CHAT;
    st->include_usage = job->params.include_usage;
    snprintf(st->id, sizeof st->id, "%s", id);
    st->info = *info;
    st->info.id = st->id;
    st->last_write = srv_now();
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    srv_metrics_request(h->metrics, 200);
    return ret;
}

/* ---- completions --------------------------------------------------------------------------- */

/* Waits for the whole reply in this thread. */
static enum MHD_Result wait_whole(srv_http *h, struct MHD_Connection *c, srv_job *job, const srv_reply_info *info) {
    int fd = conn_fd(c);
    srv_result r = {0};
    srv_event *ev = NULL;
    bool ok = true;
    for (;;) {
        ev = srv_job_pop(job, POLL_MS);
        if (!ev) {
            if (client_gone(fd)) {
                srv_job_cancel(job);
                srv_job_unref(job);
                srv_result_free(&r);
                return MHD_NO; /* closes the connection */
            }
            continue;
        }
        if (ev->kind == SRV_EV_FINISH || ev->kind == SRV_EV_ERROR) break;
        ok = ok && srv_result_add(&r, ev);
        srv_event_free(ev);
    }
    enum MHD_Result ret;
    if (ev->kind == SRV_EV_ERROR) {
        ret = fail(h, c, (int)ev->index, ev->index == 503 ? "service_unavailable" : "server_error", NULL, NULL,
                   ev->text);
    } else if (!ok) {
        ret = fail(h, c, 500, "server_error", NULL, NULL, "out of memory");
    } else {
        snprintf(r.finish_reason, sizeof r.finish_reason, "%s", ev->text);
        pthread_mutex_lock(&job->mu);
        char *body = job->params.kind == SRV_CHAT ? srv_reply_chat(info, &r, job) : srv_reply_completion(info, &r, job);
        pthread_mutex_unlock(&job->mu);
        ret = reply(h, c, 200, "application/json", body);
    }
    srv_event_free(ev);
    srv_result_free(&r);
    srv_job_unref(job);
    return ret;
}

static enum MHD_Result completions(srv_http *h, struct MHD_Connection *c, srv_kind kind, const conn *cn) {
    srv_params p;
    srv_error e;
    if (!srv_parse_request(kind, cn->body ? cn->body : "", cn->len, &h->o.limits, &p, &e)) return reply_error(h, c, &e);
    if (p.model && strcmp(p.model, h->o.model_id)) {
        srv_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                 "the model '%.200s' does not exist; this server serves '%.200s'", p.model, h->o.model_id);
        srv_params_free(&p);
        return reply_error(h, c, &e);
    }
    char *text = NULL;
    size_t len = 0;
    bool starts_in_reasoning = false;
    if (kind == SRV_CHAT) {
        if (!srv_render_chat(&p, h->o.style, &text, &len, &e)) {
            srv_params_free(&p);
            return reply_error(h, c, &e);
        }
        starts_in_reasoning = len >= 7 && !memcmp(text + len - 7, "<think>", 7);
    }
    const char *src = kind == SRV_CHAT ? text : p.prompt;
    size_t src_len = kind == SRV_CHAT ? len : p.prompt_len;
    const char *param = kind == SRV_CHAT ? "messages" : "prompt";
    int32_t *ids = malloc((src_len + 16) * sizeof *ids); /* len + 16 ids always suffice (glmoe.h) */
    size_t n_ids = 0;
    bool encoded = false;
    if (ids) {
        pthread_mutex_lock(&h->tok_mu);
        encoded = glmoe_tokenizer_encode(h->tok, src, src_len, GLMOE_TOKENIZE_PARSE_SPECIAL, ids, src_len + 16,
                                         &n_ids) == GLMOE_OK;
        if (!encoded) srv_fail(&e, 400, "invalid_request_error", NULL, param, "%s: %s", param,
                               glmoe_tokenizer_errmsg(h->tok));
        pthread_mutex_unlock(&h->tok_mu);
    } else {
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
    }
    glmoe_free(text);
    if (!encoded) goto refuse;
    long room = (long)h->o.n_ctx - (long)n_ids;
    if (n_ids == 0) {
        srv_fail(&e, 400, "invalid_request_error", NULL, param, "%s: empty after tokenization", param);
        goto refuse;
    }
    if (room < 1) {
        srv_fail(&e, 400, "invalid_request_error", "context_length_exceeded", param,
                 "the prompt is %zu tokens; the context holds %d (--ctx), with room for at least one more", n_ids,
                 h->o.n_ctx);
        goto refuse;
    }
    long max_tokens = p.max_tokens;
    if (max_tokens > room) {
        srv_fail(&e, 400, "invalid_request_error", "context_length_exceeded", "max_tokens",
                 "max_tokens %ld is too many: the prompt is %zu tokens and the context holds %d, room for %ld", max_tokens,
                 n_ids, h->o.n_ctx, room);
        goto refuse;
    }
    if (max_tokens < 0) max_tokens = kind == SRV_CHAT ? room : (room < 16 ? room : 16); /* OpenAI: 16 */
    bool stream_it = p.stream;
    srv_job *job = srv_job_create(&p, ids, n_ids);
    if (!job) {
        srv_fail(&e, 500, "server_error", NULL, NULL, "out of memory");
        goto refuse;
    }
    ids = NULL;
    job->starts_in_reasoning = starts_in_reasoning;
    job->max_tokens = max_tokens;
    job->t_submit = srv_now();
    srv_submit sub = srv_scheduler_submit(h->sched, job);
    if (sub != SRV_SUBMITTED) {
        srv_job_unref(job);
        if (sub == SRV_QUEUE_FULL)
            return fail(h, c, 429, "rate_limit_error", "queue_full", NULL,
                        "the server is busy: its queue of waiting requests is full (--queue); retry later");
        return fail(h, c, 503, "service_unavailable", NULL, NULL, "the server is shutting down");
    }
    char id[48];
    srv_random_id(id, sizeof id, kind == SRV_CHAT ? "chatcmpl-" : "cmpl-", 24);
    srv_reply_info info = {.id = id, .model = h->o.model_id, .created = (long long)time(NULL)};
    if (stream_it) return start_stream(h, c, job, &info, id);
    return wait_whole(h, c, job, &info);
refuse:
    free(ids);
    srv_params_free(&p);
    return reply_error(h, c, &e);
}

/* ---- routing ------------------------------------------------------------------------------- */

typedef enum route { R_NONE, R_CHAT, R_COMPLETIONS, R_MODELS, R_MODEL, R_HEALTH, R_METRICS } route;

static route route_of(const char *url, bool *post) {
    *post = false;
    if (!strcmp(url, "/v1/chat/completions") || !strcmp(url, "/chat/completions")) return *post = true, R_CHAT;
    if (!strcmp(url, "/v1/completions") || !strcmp(url, "/completions")) return *post = true, R_COMPLETIONS;
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/models")) return R_MODELS;
    if (!strncmp(url, "/v1/models/", 11)) return R_MODEL;
    if (!strcmp(url, "/health")) return R_HEALTH;
    if (!strcmp(url, "/metrics")) return R_METRICS;
    return R_NONE;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    srv_http *h = cls;
    (void)version;
    bool post;
    route r = route_of(url, &post);
    conn *cn = *con_cls;
    if (!cn) {
        /* the first call: headers only; every refusal that needs no body is made now */
        if (!key_ok(h, c))
            return fail(h, c, 401, "invalid_request_error", "invalid_api_key", NULL,
                        "invalid or missing API key: send \"Authorization: Bearer KEY\"");
        if (r == R_NONE) return fail(h, c, 404, "invalid_request_error", "not_found", NULL, "no such endpoint");
        bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
        if (post ? strcmp(method, "POST") : !is_get) {
            char msg[96];
            snprintf(msg, sizeof msg, "%s is not allowed here (use %s)", method, post ? "POST" : "GET");
            return fail(h, c, 405, "invalid_request_error", "method_not_allowed", NULL, msg);
        }
        if (!post) {
            if (r == R_HEALTH) return reply(h, c, 200, "application/json", strdup("{\"status\":\"ok\"}"));
            if (r == R_METRICS) return reply(h, c, 200, "text/plain; version=0.0.4", srv_metrics_text(h->metrics));
            return get_models(h, c, r == R_MODEL ? url + 11 : NULL);
        }
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > h->o.limits.max_body) {
            char msg[128];
            snprintf(msg, sizeof msg, "the body is %s bytes, more than the %zu allowed (--max-body)", cl,
                     h->o.limits.max_body);
            return fail(h, c, 413, "invalid_request_error", "request_too_large", NULL, msg);
        }
        if (!(cn = calloc(1, sizeof *cn))) return MHD_NO;
        *con_cls = cn;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cn->too_big || cn->len + n > h->o.limits.max_body) { /* chunked, or a lying Content-Length */
            cn->too_big = true;
            return MHD_YES;
        }
        if (cn->len + n + 1 > cn->cap) {
            size_t cap = cn->cap ? cn->cap : 4096;
            while (cap < cn->len + n + 1) cap *= 2;
            if (cap > h->o.limits.max_body + 1) cap = h->o.limits.max_body + 1;
            char *b = realloc(cn->body, cap);
            if (!b) return MHD_NO;
            cn->body = b;
            cn->cap = cap;
        }
        memcpy(cn->body + cn->len, upload_data, n);
        cn->len += n;
        cn->body[cn->len] = '\0';
        return MHD_YES;
    }
    if (cn->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "the body is more than the %zu bytes allowed (--max-body)", h->o.limits.max_body);
        return fail(h, c, 413, "invalid_request_error", "request_too_large", NULL, msg);
    }
    return completions(h, c, r == R_CHAT ? SRV_CHAT : SRV_COMPLETION, cn);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    conn *cn = *con_cls;
    if (!cn) return;
    free(cn->body);
    free(cn);
    *con_cls = NULL;
}

/* ---- start and stop ------------------------------------------------------------------------ */

srv_http *srv_http_start(const srv_http_opts *o, srv_scheduler *sched, glmoe_tokenizer *tok, srv_metrics *metrics,
                         char *err, size_t err_size) {
    srv_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    h->o = *o;
    h->sched = sched;
    h->tok = tok;
    h->metrics = metrics;
    h->started = (long long)time(NULL);
    pthread_mutex_init(&h->tok_mu, NULL);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai) {
        snprintf(err, err_size, "--host %s: %s", o->host, gai_strerror(gai));
        free(h);
        return NULL;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_POLL;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, handle, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_CONNECTION_LIMIT, o->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
                                 o->timeout_s, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->daemon) {
        snprintf(err, err_size, "cannot listen on %s port %d (in use, or not an address of this machine?)", o->host,
                 o->port);
        free(h);
        return NULL;
    }
    return h;
}

int srv_http_port(const srv_http *h) {
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return di ? (int)di->port : -1;
}

void srv_http_quiesce(srv_http *h) {
    if (!h) return;
    MHD_socket fd = MHD_quiesce_daemon(h->daemon); /* the listening socket is ours to close now */
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void srv_http_stop(srv_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    pthread_mutex_destroy(&h->tok_mu);
    free(h);
}
