/* common.c — option parsing and model opening shared by the subcommands. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util/short_path.h"

void cli_error(const char *cmd, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One line, always: a message with a newline inside would break that promise. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    fprintf(stderr, "glmoe %s: %s\n", cmd, msg);
}

bool cli_parse_int(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || !*text || *end || errno || v < lo || v > hi) {
        cli_error(cmd, "%s expects an integer in [%ld, %ld], got \"%s\"", opt, lo, hi, text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t *out) {
    char *end;
    errno = 0;
    unsigned long long v = text && *text != '-' ? strtoull(text, &end, 10) : 0;
    if (!text || !*text || *text == '-' || *end || errno) {
        cli_error(cmd, "%s expects a non-negative integer, got \"%s\"", opt, text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_float(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = text ? strtod(text, &end) : 0;
    if (!text || !*text || *end || errno || !(v >= lo && v <= hi)) {
        cli_error(cmd, "%s expects a number in [%g, %g], got \"%s\"", opt, lo, hi, text ? text : "");
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_ids(const char *cmd, const char *text, int32_t **ids, size_t *n) {
    size_t cap = 16, len = 0;
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) {
        cli_error(cmd, "out of memory");
        return false;
    }
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (!*p) break;
        if (*p < '0' || *p > '9') goto bad;
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (errno || x > INT32_MAX) goto bad;
        if (len == cap) {
            int32_t *w = realloc(v, 2 * cap * sizeof *v);
            if (!w) goto bad;
            v = w;
            cap *= 2;
        }
        v[len++] = (int32_t)x;
        p = end;
        while (*p == ' ' || *p == '\t' || *p == '\n') p++;
        if (*p == ',') {
            p++;
            while (*p == ' ' || *p == '\t' || *p == '\n') p++;
            if (!*p) goto bad; /* trailing comma */
        } else if (*p) {
            goto bad;
        }
    }
    if (len == 0) {
        free(v);
        cli_error(cmd, "--ids is empty: give at least one token id, e.g. --ids 1,2,3");
        return false;
    }
    *ids = v;
    *n = len;
    return true;
bad:
    cli_error(cmd, "--ids: expected comma-separated non-negative integers below 2^31, bad text at offset %zu",
              (size_t)(p - text));
    free(v);
    return false;
}

/* The model options' help in three parts, so that a command whose --ctx means something else
 * (perplexity's window) states its own default once, in place of the common one. */
#define MODEL_OPTS_BEFORE_CTX                                                                                   \
    "  -m, --model DIR     Hugging Face checkpoint directory (config.json, *.safetensors)\n"                     \
    "  --device D          auto, cpu or cuda (default auto: the GPU if there is one)\n"                          \
    "  --threads N         CPU threads (default: one per 256 MiB of weights, at most all cores)\n"     \
    "  --gpus N            split the model over N devices: heads, MLP columns and experts cut, one\n"      \
    "                      all-reduce per block (default 1). On CUDA: GPUs 0..N-1 (CUDA_VISIBLE_DEVICES\n" \
    "                      picks them), joined by NCCL, opened from GLMOE_NCCL_LIBRARY or the library\n" \
    "                      path (the nvidia-nccl-cu13 wheel's libnccl.so.2); a collective that makes no\n" \
    "                      progress for GLMOE_NCCL_TIMEOUT_S seconds (120) fails. --device cpu runs N\n" \
    "                      simulated ranks, as CI tests it\n"                                             \
    "  --split M           tp or ep: routed experts cut by columns, or E/N whole experts per device\n"     \
    "                      (default tp, the faster at small batch; ep is CPU-only for now)\n"
#define MODEL_OPTS_CTX                                                                                          \
    "  -c, --ctx N         context length, the KV cache size (default min(model max, 4096));\n"                  \
    "                      also --ctx-size\n"
#define MODEL_OPTS_AFTER_CTX                                                                                    \
    "  --quantize Q        quantize float weights while loading, as mlx_lm.convert -q would:\n"                  \
    "                      q4, q8, or q<bits>[g<group>] (bits 2-6, 8; group 32, 64, 128; default 64)\n"          \
    "  --draft N           speculative decoding (generate, chat): up to N tokens drafted per step by the\n"      \
    "                      model's multi-token-prediction layer, verified in one forward; the output is\n"      \
    "                      the same (default 0, off: measured, drafts do not pay yet on the CPU or the\n"     \
    "                      GPU; BENCHMARKS.md)\n"                                                              \
    "  --no-mtp            leave out the model's multi-token-prediction layer (its memory; no drafts)\n"        \
    "  -v, --verbose       log loading details to stderr\n"

const char *const cli_model_opts_help = MODEL_OPTS_BEFORE_CTX MODEL_OPTS_CTX MODEL_OPTS_AFTER_CTX;

int cli_help_ctx(const char *help, const char *ctx_help) {
    fputs(help, stdout);
    fputs(MODEL_OPTS_BEFORE_CTX, stdout);
    fputs(ctx_help, stdout);
    fputs(MODEL_OPTS_AFTER_CTX, stdout);
    return 0;
}

bool cli_parse_quantize(const char *cmd, const char *opt, const char *text, glmoe_quantize *q) {
    int bits = 0, group = 64, n = 0;
    bool ok = text && (sscanf(text, "q%dg%d%n", &bits, &group, &n) == 2 || (group = 64, sscanf(text, "q%d%n", &bits, &n) == 1)) &&
              n == (int)strlen(text);
    ok = ok && (bits == 2 || bits == 3 || bits == 4 || bits == 5 || bits == 6 || bits == 8) &&
         (group == 32 || group == 64 || group == 128);
    if (!ok) {
        cli_error(cmd, "%s expects q4, q8 or q<bits>[g<group>] with bits 2, 3, 4, 5, 6 or 8 and group 32, 64 or 128, "
                  "got \"%s\"", opt, text ? text : "");
        return false;
    }
    *q = (glmoe_quantize){bits, group};
    return true;
}

int cli_model_opt(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o) {
    const char *a = argv[*i];
    bool has_value = *i + 1 < argc;
    const char *val = has_value ? argv[*i + 1] : NULL;
    long v;
    if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
        o->verbose = true;
        return 1;
    }
    if (!strcmp(a, "--no-mtp")) {
        o->no_mtp = true;
        return 1;
    }
    if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) a = "--ctx"; /* llama.cpp's names */
    if (strcmp(a, "-m") && strcmp(a, "--model") && strcmp(a, "--device") && strcmp(a, "--threads") &&
        strcmp(a, "--ctx") && strcmp(a, "--quantize") && strcmp(a, "--draft") && strcmp(a, "--gpus") &&
        strcmp(a, "--split"))
        return 0;
    if (!has_value) {
        cli_error(cmd, "%s needs a value", a);
        return -1;
    }
    (*i)++;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        o->model_dir = val;
    } else if (!strcmp(a, "--device")) {
        if (!strcmp(val, "auto")) o->device = GLMOE_DEVICE_AUTO;
        else if (!strcmp(val, "cpu")) o->device = GLMOE_DEVICE_CPU;
        else if (!strcmp(val, "cuda")) o->device = GLMOE_DEVICE_CUDA;
        else {
            cli_error(cmd, "--device expects auto, cpu or cuda, got \"%s\"", val);
            return -1;
        }
    } else if (!strcmp(a, "--quantize")) {
        if (!cli_parse_quantize(cmd, a, val, &o->quantize)) return -1;
    } else if (!strcmp(a, "--draft")) {
        if (!cli_parse_int(cmd, a, val, 0, GLMOE_MAX_DRAFT, &v)) return -1;
        o->n_draft = (int)v;
    } else if (!strcmp(a, "--gpus")) {
        if (!cli_parse_int(cmd, a, val, 1, 64, &v)) return -1;
        o->n_devices = (int)v;
    } else if (!strcmp(a, "--split")) {
        if (!strcmp(val, "tp")) o->split = GLMOE_SPLIT_TP;
        else if (!strcmp(val, "ep")) o->split = GLMOE_SPLIT_EP;
        else {
            cli_error(cmd, "--split expects tp or ep, got \"%s\"", val);
            return -1;
        }
    } else if (!strcmp(a, "--threads")) {
        if (!cli_parse_int(cmd, a, val, 0, 4096, &v)) return -1;
        o->n_threads = (int)v;
    } else {
        if (!cli_parse_int(cmd, a, val, 1, INT32_MAX, &v)) return -1;
        o->n_ctx = (int)v;
    }
    return 1;
}

static void log_to_stderr(glmoe_log_level level, const char *msg, void *user) {
    static const char *const names[] = {"debug", "info", "warning", "error"};
    fprintf(stderr, "glmoe: %s: %s\n", names[level], msg);
}

void cli_install_log(bool verbose) { glmoe_log_set(log_to_stderr, NULL, verbose ? GLMOE_LOG_INFO : GLMOE_LOG_WARN); }

/* Load progress on a terminal's stderr: shown once a load has taken a second (the environment
 * variable GLMOE_PROGRESS_AFTER, in seconds, moves that point; the tests set 0), rewritten in
 * place at most ten times a second, erased when the load ends; never shown when stderr is not a
 * terminal. */
typedef struct load_progress {
    double t0, after, last;
    bool shown;
} load_progress;

static void show_load_progress(uint64_t done, uint64_t total, const char *what, void *user) {
    load_progress *p = user;
    double now = cli_now(), secs = now - p->t0;
    if (done >= total) {
        if (p->shown) fputs("\r\033[K", stderr);
        p->shown = false;
        return;
    }
    if (secs < p->after || now - p->last < 0.1) return;
    double rate = secs > 0 ? (double)done / secs : 0, left = rate > 0 ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\rglmoe: loading %.2f of %.2f GB, %.2f GB/s, %.0f s left\033[K", (double)done / 1e9,
            (double)total / 1e9, rate / 1e9, left);
    fflush(stderr);
    p->shown = true;
    p->last = now;
}

bool cli_open(const char *cmd, cli_model_opts *o, glmoe_model **model, glmoe_context **ctx) {
    *model = NULL;
    *ctx = NULL;
    if (!o->model_dir) {
        cli_error(cmd, "no model: give -m DIR");
        return false;
    }
    cli_install_log(o->verbose);
    glmoe_model_params mp = glmoe_model_params_default();
    mp.device = o->device;
    mp.n_threads = o->n_threads;
    mp.quantize = o->quantize;
    mp.skip_mtp = o->no_mtp;
    mp.n_devices = o->n_devices;
    mp.split = o->split;
    const char *after = getenv("GLMOE_PROGRESS_AFTER");
    load_progress progress = {.t0 = cli_now(), .after = after ? atof(after) : 1.0};
    if (isatty(STDERR_FILENO)) {
        mp.progress = show_load_progress;
        mp.progress_user_data = &progress;
    }
    glmoe_status s = glmoe_model_load(model, o->model_dir, &mp);
    if (progress.shown) fputs("\r\033[K", stderr); /* a failed load: its message where the progress was */
    if (s) {
        char shown[GM_SHORT_PATH_MAX];
        /* A device asked for and not there is no fault of the model: name the option instead. */
        if (s == GLMOE_E_UNSUPPORTED && o->device == GLMOE_DEVICE_CUDA)
            snprintf(shown, sizeof shown, "--device cuda");
        else
            gm_short_path(shown, sizeof shown, o->model_dir);
        cli_error(cmd, "%s: %s", shown, *model ? glmoe_model_errmsg(*model) : glmoe_status_str(s));
        glmoe_model_free(*model);
        *model = NULL;
        return false;
    }
    glmoe_model_info info;
    glmoe_model_get_info(*model, &info);
    if (o->n_draft < 0) o->n_draft = CLI_DRAFT_DEFAULT;
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = o->n_ctx;
    cp.n_draft = o->n_draft;
    if ((s = glmoe_context_create(ctx, *model, &cp))) {
        cli_error(cmd, "%s", *ctx ? glmoe_context_errmsg(*ctx) : glmoe_status_str(s));
        glmoe_context_free(*ctx);
        *ctx = NULL;
        glmoe_model_free(*model);
        *model = NULL;
        return false;
    }
    return true;
}

uint64_t cli_peak_rss(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %llu kB", &kb) == 1) break;
    fclose(f);
    return (uint64_t)kb * 1024;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_sampling_opt(const char *cmd, int argc, char **argv, int *i, cli_sampling *s) {
    glmoe_sampler_params *sp = &s->params;
    const char *a = argv[*i];
    if (!strcmp(a, "--temperature")) a = "--temp"; /* mlx-lm's and OpenAI's name */
    if (!strcmp(a, "-s")) a = "--seed";            /* llama.cpp's */
    if (strcmp(a, "--temp") && strcmp(a, "--top-k") && strcmp(a, "--top-p") && strcmp(a, "--min-p") &&
        strcmp(a, "--repeat-penalty") && strcmp(a, "--seed"))
        return 0;
    if (*i + 1 >= argc) {
        cli_error(cmd, "%s needs a value", a);
        return -1;
    }
    const char *v = argv[++*i];
    double d;
    long l;
    uint64_t u;
    if (!strcmp(a, "--temp")) {
        if (!cli_parse_float(cmd, a, v, 0, 1e6, &d)) return -1;
        sp->temperature = (float)d;
    } else if (!strcmp(a, "--top-k")) {
        if (!cli_parse_int(cmd, a, v, 0, 1 << 30, &l)) return -1;
        sp->top_k = (int32_t)l;
    } else if (!strcmp(a, "--top-p")) {
        if (!cli_parse_float(cmd, a, v, 0, 1, &d)) return -1;
        sp->top_p = (float)d;
    } else if (!strcmp(a, "--min-p")) {
        if (!cli_parse_float(cmd, a, v, 0, 1, &d)) return -1;
        sp->min_p = (float)d;
    } else if (!strcmp(a, "--repeat-penalty")) {
        if (!cli_parse_float(cmd, a, v, 1e-3, 1e3, &d)) return -1;
        sp->repetition_penalty = (float)d;
    } else {
        if (!cli_parse_u64(cmd, a, v, &u)) return -1;
        sp->seed = u;
        s->seed_given = true;
    }
    return 1;
}

uint64_t cli_sampling_seed(cli_sampling *s) {
    if (!s->seed_given && s->params.temperature > 0) {
        /* A fresh seed per run, shown with the stats so that the run can be repeated with --seed.
         * 32 bits: short enough to type back. */
        uint32_t r = 0;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
            r = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
        s->params.seed = r;
        s->seed_given = true;
    }
    return s->params.seed;
}

/* ---- unknown options: say so, and suggest the nearest known one ---- */

/* Edit distance (insertions, deletions, substitutions, transpositions of neighbours) between two
 * short strings; options are at most a few dozen bytes, longer ones count as far apart. */
static size_t edit_distance(const char *a, const char *b) {
    enum { MAX = 64 };
    size_t n = strlen(a), m = strlen(b);
    if (n >= MAX || m >= MAX) return MAX;
    size_t d[MAX + 1][MAX + 1];
    for (size_t i = 0; i <= n; i++) d[i][0] = i;
    for (size_t j = 0; j <= m; j++) d[0][j] = j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            size_t best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[n][m];
}

/* Calls fn with each option name the help text lists: a word that starts with "-" and a letter
 * or "--" after a space, "(", "[", "|" or "," ("-m, --model DIR", "[--no-special]"). The help is
 * the one list of options, so what is suggested is what --help shows. */
static void each_option(const char *help, void (*fn)(const char *name, size_t len, void *user), void *user) {
    for (const char *p = help; *p; p++) {
        bool starts = p == help || p[-1] == ' ' || p[-1] == '(' || p[-1] == '[' || p[-1] == '|' || p[-1] == ',';
        bool dash = p[0] == '-' && (p[1] == '-' ? isalpha((unsigned char)p[2]) : isalpha((unsigned char)p[1]));
        if (!starts || !dash) continue;
        size_t len = 1;
        while (isalnum((unsigned char)p[len]) || p[len] == '-') len++;
        fn(p, len, user);
        p += len - 1;
    }
}

typedef struct option_search {
    const char *arg;
    bool known;
    char best[64];
    size_t best_distance;
} option_search;

static void consider(const char *name, size_t len, void *user) {
    option_search *s = user;
    char opt[64];
    if (len >= sizeof opt) return;
    memcpy(opt, name, len);
    opt[len] = '\0';
    if (!strcmp(opt, s->arg)) s->known = true;
    size_t d = edit_distance(s->arg, opt);
    if (d < s->best_distance) {
        s->best_distance = d;
        memcpy(s->best, opt, len + 1);
    }
}

int cli_bad_option(const char *cmd, const char *arg, const char *help, bool model_opts) {
    if (arg[0] != '-' || !arg[1]) {
        cli_error(cmd, "unexpected argument \"%s\" (see glmoe help %s)", arg, cmd);
        return CLI_EXIT_USAGE;
    }
    option_search s = {.arg = arg, .best_distance = (size_t)-1};
    each_option(help, consider, &s);
    if (model_opts) each_option(cli_model_opts_help, consider, &s);
    if (s.known) { /* a known option in the last place, its value missing */
        cli_error(cmd, "%s needs a value (see glmoe help %s)", arg, cmd);
        return CLI_EXIT_USAGE;
    }
    /* Near enough to be a typo: at most a third of the option's letters (and 3) wrong. */
    size_t letters = strlen(s.best) - (s.best[1] == '-' ? 2 : 1);
    if (s.best[0] && s.best_distance <= 3 && 3 * s.best_distance <= letters)
        cli_error(cmd, "unknown option %s; did you mean %s? (see glmoe help %s)", arg, s.best, cmd);
    else
        cli_error(cmd, "unknown option %s (see glmoe help %s)", arg, cmd);
    return CLI_EXIT_USAGE;
}

int cli_help(const char *help, bool model_opts) {
    fputs(help, stdout);
    if (model_opts) fputs(cli_model_opts_help, stdout);
    return 0;
}
