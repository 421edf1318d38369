/*
 * cmd_serve.c — `glmoe serve`: loads the model, starts the engine thread (scheduler.c) and the
 * HTTP server (http.c), and runs until SIGINT or SIGTERM; then it stops taking connections,
 * ends the running requests with a 503, and frees everything.
 */
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "server.h"

static const char *const help =
    "usage: glmoe serve -m DIR [options]\n"
    "\n"
    "An OpenAI-compatible HTTP server: POST /v1/chat/completions, POST /v1/completions,\n"
    "GET /v1/models, GET /health, GET /metrics (Prometheus). Requests run together in one batch\n"
    "(continuous batching); streamed replies are server-sent events.\n"
    "\n"
    "  --host H            address to listen on (default 127.0.0.1: this machine only)\n"
    "  --port P            TCP port (default 8080; 0: any free port, printed on stderr)\n"
    "  --api-key K         require \"Authorization: Bearer K\" on every request (default: the\n"
    "                      GLMOE_API_KEY environment variable, else none)\n"
    "  --alias NAME        the model's id in /v1/models and requests (default: DIR's name)\n"
    "  --tokenizer PATH    tokenizer.json, or a directory holding it (default: DIR)\n"
    "  --parallel N        sequences evaluated together (default 8); each gets --ctx tokens\n"
    "  --queue N           requests waiting for a sequence before 429 (default 64)\n"
    "  --max-body BYTES    largest request body (default 8388608)\n"
    "  --max-connections N open connections at most (default 256)\n"
    "  --timeout S         close a connection idle this long (default 60)\n"
    "\n";

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

int cmd_serve(int argc, char **argv) {
    const char *cmd = "serve", *host = "127.0.0.1", *api_key = getenv("GLMOE_API_KEY"), *alias = NULL,
               *tok_path = NULL;
    cli_model_opts mo = {.n_draft = -1};
    long port = 8080, parallel = 8, queue = 64, max_conn = 256, timeout = 60;
    uint64_t max_body = SRV_MAX_BODY_DEFAULT;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_model_opt(cmd, argc, argv, &i, &mo);
        if (r < 0) return CLI_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            fputs(cli_model_opts_help, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            cli_error(cmd, "%s needs a value (or is unknown; see glmoe serve --help)", a);
            return CLI_EXIT_USAGE;
        }
        const char *v = argv[++i];
        bool ok = true;
        if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--api-key")) api_key = v;
        else if (!strcmp(a, "--alias")) alias = v;
        else if (!strcmp(a, "--tokenizer")) tok_path = v;
        else if (!strcmp(a, "--port")) ok = cli_parse_int(cmd, a, v, 0, 65535, &port);
        else if (!strcmp(a, "--parallel")) ok = cli_parse_int(cmd, a, v, 1, 256, &parallel);
        else if (!strcmp(a, "--queue")) ok = cli_parse_int(cmd, a, v, 1, 1 << 20, &queue);
        else if (!strcmp(a, "--max-connections")) ok = cli_parse_int(cmd, a, v, 1, 1 << 16, &max_conn);
        else if (!strcmp(a, "--timeout")) ok = cli_parse_int(cmd, a, v, 1, 86400, &timeout);
        else if (!strcmp(a, "--max-body")) ok = cli_parse_u64(cmd, a, v, &max_body) && max_body > 0;
        else {
            cli_error(cmd, "unknown option %s (see glmoe serve --help)", a);
            return CLI_EXIT_USAGE;
        }
        if (!ok) {
            if (max_body == 0) cli_error(cmd, "--max-body must be at least 1");
            return CLI_EXIT_USAGE;
        }
    }
    if (!mo.model_dir) {
        cli_error(cmd, "no model: give -m DIR");
        return CLI_EXIT_USAGE;
    }
    if (api_key && !*api_key) api_key = NULL;

    int rc = CLI_EXIT_FAIL;
    glmoe_model *model = NULL;
    glmoe_context *ctx = NULL;
    glmoe_tokenizer *tok = NULL;
    srv_metrics *metrics = NULL;
    srv_scheduler *sched = NULL;
    srv_http *http = NULL;
    char err[1024], *dir_copy = strdup(mo.model_dir);
    srv_http_opts ho = {.host = host, .port = (int)port, .api_key = api_key, .limits = srv_limits_default(),
                        .max_connections = (unsigned)max_conn, .timeout_s = (unsigned)timeout};
    ho.limits.max_body = (size_t)max_body;
    /* SIGINT and SIGTERM end the server: blocked in every thread (those made from here on inherit
     * the mask: the engine, OpenMP's, MHD's) and taken by this one in sigsuspend */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!dir_copy) goto done;
    if (glmoe_chat_style_detect(&ho.style, mo.model_dir, err, sizeof err)) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    if (!cli_load_tokenizer(cmd, tok_path ? tok_path : mo.model_dir, &tok)) goto done;

    /* the model, and one context of `parallel` sequences (cli_open makes single-sequence ones) */
    cli_install_log(mo.verbose);
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = mo.device;
    mp.n_threads = mo.n_threads;
    mp.quantize = mo.quantize;
    mp.n_devices = mo.n_devices;
    mp.split = mo.split;
    mp.skip_mtp = mo.no_mtp;
    glmoe_status st = glmoe_model_load(&model, mo.model_dir, &mp);
    if (st) {
        cli_error(cmd, "%s: %s", mo.model_dir, model ? glmoe_model_errmsg(model) : glmoe_status_str(st));
        goto done;
    }
    glmoe_model_info info;
    glmoe_model_get_info(model, &info);
    if (mo.n_draft < 0) mo.n_draft = CLI_DRAFT_DEFAULT;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = mo.n_ctx;
    cp.n_seq_max = (int32_t)parallel;
    cp.n_draft = mo.n_draft;
    /* a speculative step puts 1 + n_draft rows of every sequence in one batch */
    cp.n_batch = 512;
    if (cp.n_batch < (int32_t)parallel * (1 + mo.n_draft)) cp.n_batch = (int32_t)parallel * (1 + mo.n_draft);
    if ((st = glmoe_context_create(&ctx, model, &cp))) {
        cli_error(cmd, "%s", ctx ? glmoe_context_errmsg(ctx) : glmoe_status_str(st));
        goto done;
    }
    ho.n_ctx = (int)glmoe_context_n_ctx(ctx);
    ho.model_id = alias ? alias : basename(dir_copy);
    if (!(metrics = srv_metrics_create())) goto done;
    srv_sched_opts so = {.n_draft = mo.n_draft, .n_batch = cp.n_batch, .max_queue = (size_t)queue};
    if (!(sched = srv_scheduler_start(model, ctx, tok, &so, metrics, err, sizeof err))) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    http = srv_http_start(&ho, sched, tok, metrics, err, sizeof err);
    if (!http) {
        cli_error(cmd, "%s", err);
        goto done;
    }
    fprintf(stderr,
            "glmoe serve: %s as \"%s\" on http://%s%s%s:%d/v1 (%ld sequences of %d tokens, drafts %d%s); Ctrl-C stops\n",
            info.backend, ho.model_id, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
            srv_http_port(http), parallel, ho.n_ctx, mo.n_draft, api_key ? ", API key required" : "");
    fflush(stderr);
    sigset_t wait_mask = old;
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGTERM);
    while (!g_stop) sigsuspend(&wait_mask);
    fprintf(stderr, "glmoe serve: stopping\n");
    rc = 0;
done:
    srv_http_quiesce(http);
    srv_scheduler_stop(sched); /* every job ends (503), so the connections finish */
    srv_http_stop(http);
    srv_metrics_free(metrics);
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    glmoe_tokenizer_free(tok);
    free(dir_copy);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    return rc;
}
