/*
 * test_limits.c — resource bounds on hostile input: memory stays bounded, the error is clear, and
 * nothing is killed for running out of memory.
 *
 * Each case runs in a forked child, so that a runaway allocation or a crash fails one case rather
 * than the whole test, and so that its peak memory can be read on its own: the parent reads the
 * child's peak RSS (wait4) and subtracts the RSS the child started with. In a plain build the child
 * also gets an address-space limit (RLIMIT_AS) a little above its budget, so an allocation the
 * budget does not allow fails inside glmoe, which must then answer GLMOE_E_NOMEM rather than crash.
 * Under AddressSanitizer (`make asan`) the address-space limit cannot be used (ASan reserves
 * terabytes of shadow) and freed memory sits in ASan's quarantine, so budgets are loosened there;
 * the behaviour checks stay the same.
 *
 * The cases:
 *   - safetensors headers that claim a huge size (N up to 2^64 - 1, tensors of 2^47 bytes, offsets
 *     past the file) in small files: refused without allocating what they claim;
 *   - a tokenizer.json with 2 million merges (and vocabulary to match): loads within a memory
 *     budget proportional to the file; the same file with a broken last merge: a clear error;
 *     a token id of 2^24: refused; a huge id just below it: no dense table is touched; 21 MB of
 *     "{}" where jansson would parse them: refused before it does;
 *   - a 10 MB prompt of several shapes (prose, one 10 MB word, whitespace, digits, newlines, mixed
 *     scripts): encodes in bounded memory and time, through the public API too; a 10 MB message
 *     renders through the chat template; 2.5 million ids against a 256-token context:
 *     GLMOE_E_CONTEXT, nothing allocated; a 10 MB word under a 64 MiB limit: GLMOE_E_NOMEM;
 *   - JSON nested 100,000 deep in config.json, chat messages and a safetensors header: refused
 *     (jansson's depth limit), no stack overflow.
 *   - hostile tokenizer.json features on the demo tokenizer: a normalizer that multiplies the text
 *     (refused at its output limit, the step named), and the real normalizer that grows text most
 *     (never refused); a 100,000-byte added token and an lstrip token " " on long prompts (linear);
 *     gzip streams of zeros at and over the 1 GiB cap (made in memory, ~1 KB per MiB).
 *   - regexes: three hostile Split patterns (catastrophic backtracking, a quadratic scan without
 *     backtracking, a look-ahead in a loop), each refused by its bound within seconds; the real
 *     pretokenizer patterns over eight 10 MB shapes, none near a bound; a hostile encode on one
 *     thread beside a real one on another, which must give its usual ids.
 *
 * Usage: test_limits <repo root>
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "glmoe.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "test.h"
#include "tokenizer/bpe.h"
#include "tokenizer/chat.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

static const char *g_root;

/* ---- the harness -------------------------------------------------------------------------- */

static long statm_field_kb(int field) {
    FILE *f = fopen("/proc/self/statm", "r");
    long v[2] = {0, 0};
    if (f) {
        if (fscanf(f, "%ld %ld", &v[0], &v[1]) != 2) v[0] = v[1] = 0;
        fclose(f);
    }
    return v[field] * (sysconf(_SC_PAGESIZE) / 1024);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Runs fn(arg) in a child with a memory budget (MiB above what the child starts with) and, when
 * max_seconds is not 0, a time limit (tripled under ASan) after which the child is killed: a case
 * that used to hang fails instead of stalling the suite. fn returns 0 when glmoe behaved as it
 * must; it prints its own reason otherwise. */
static void bounded_for(const char *name, long budget_mb, unsigned max_seconds, int (*fn)(void *), void *arg) {
    fflush(stdout);
    fflush(stderr);
    const long budget_kb = (UNDER_ASAN ? 3 * budget_mb + 320 : budget_mb) * 1024;
    const double t0 = now();
    int fds[2];
    if (pipe(fds) != 0) {
        CHECK(0, "%s: pipe: %s", name, strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        CHECK(0, "%s: fork: %s", name, strerror(errno));
        return;
    }
    if (pid == 0) {
        /* the child's own starting RSS: fork does not copy every page the parent has resident */
        long start_kb = statm_field_kb(1);
        if (write(fds[1], &start_kb, sizeof start_kb) != (ssize_t)sizeof start_kb) _exit(2);
        close(fds[1]);
        if (!UNDER_ASAN) {
            /* room for the budget plus the thread stacks and mappings a load may add */
            rlim_t as = (rlim_t)(statm_field_kb(0) + budget_kb + 256 * 1024) * 1024;
            struct rlimit rl = {as, as};
            setrlimit(RLIMIT_AS, &rl);
        }
        if (max_seconds) alarm(UNDER_ASAN ? 3 * max_seconds : max_seconds);
        int rc = fn(arg);
        fflush(stdout);
        _exit(rc == 0 ? 0 : 1);
    }
    close(fds[1]);
    long base_kb = 0;
    if (read(fds[0], &base_kb, sizeof base_kb) != (ssize_t)sizeof base_kb) base_kb = 0;
    close(fds[0]);
    int status = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
    }
    const long grew_kb = ru.ru_maxrss - base_kb;
    const double secs = now() - t0;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
        CHECK(0, "%s: still running after %.0f s, killed", name, secs);
        return;
    }
    if (WIFSIGNALED(status)) {
        CHECK(0, "%s: killed by signal %d (out of memory or a crash)", name, WTERMSIG(status));
        return;
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: wrong behaviour (see above)", name);
    CHECK(grew_kb <= budget_kb, "%s: peak memory grew %ld MiB, over the budget of %ld MiB", name, grew_kb / 1024,
          budget_kb / 1024);
    printf("  %-52s %6.1f MiB peak growth (budget %ld), %.2f s\n", name, grew_kb / 1024.0, budget_kb / 1024, secs);
}

static void bounded(const char *name, long budget_mb, int (*fn)(void *), void *arg) {
    bounded_for(name, budget_mb, 0, fn, arg);
}

#define EXPECT(cond, ...)                                                                       \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                     \
            fprintf(stderr, "" __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                                \
            return 1;                                                                           \
        }                                                                                       \
    } while (0)

/* ---- safetensors headers that claim a huge size -------------------------------------------- */

typedef struct st_case {
    uint64_t n;           /* the header length the file claims                  */
    const char *header;   /* the bytes that follow (may be shorter than n)      */
    size_t data_bytes;    /* zero bytes appended after the header               */
    const char *fragment; /* expected in the message                            */
} st_case;

static int st_claim(void *arg) {
    const st_case *c = arg;
    size_t hl = strlen(c->header), len = 8 + hl + c->data_bytes;
    uint8_t *buf = calloc(1, len);
    EXPECT(buf != NULL, "calloc");
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(c->n >> (8 * i));
    memcpy(buf + 8, c->header, hl);
    st_file *f = NULL;
    gm_err err = {0};
    glmoe_status st = st_file_parse(&f, buf, len, "claims.safetensors", &err);
    EXPECT(st == GLMOE_E_FORMAT && f == NULL, "status %d", st);
    EXPECT(strstr(err.msg, c->fragment) && strncmp(err.msg, "claims.safetensors: ", 20) == 0, "message: %s", err.msg);
    free(buf);
    return 0;
}

static void test_safetensors_claims(void) {
    static const st_case cases[] = {
        {UINT64_MAX, "{}", 0, "over the limit"},
        {1ull << 63, "{}", 0, "over the limit"},
        {UINT64_MAX - 7, "{}", 0, "over the limit"},       /* 8 + N wraps */
        {100000000ull, "{}", 0, "only 2 bytes follow"},    /* the largest allowed N, not there */
        {44, "{\"t\":{\"dtype\":\"U8\",\"shape\":[140737488355327],\"data_offsets\":[0,140737488355327]}}", 16, "140737488355327"},
        {62, "{\"t\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0, "4294967296"},
        {48, "{\"t\":{\"dtype\":\"U8\",\"shape\":[1099511627776],\"data_offsets\":[0,1099511627776]}}", 4, "1099511627776"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        st_case c = cases[i];
        if (c.n < 1000 && c.n != strlen(c.header)) c.n = strlen(c.header); /* entries: the real length */
        char name[96];
        snprintf(name, sizeof name, "safetensors: claim %d (N = %llu)", (int)i, (unsigned long long)c.n);
        bounded(name, 8, st_claim, &c);
    }
}

/* ---- a tokenizer with millions of merges --------------------------------------------------- */

/* Appends token t (bytes) in the byte-level alphabet, JSON-escaped, to out. */
static void put_token(gm_tok_bytes *out, const uint8_t *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint8_t u[4];
        int k = gm_utf8_encode(gm_byte_level_char(t[i]), u);
        if (k == 1 && (u[0] == '"' || u[0] == '\\')) gm_tok_bytes_append(out, "\\", 1);
        gm_tok_bytes_append(out, u, (size_t)k);
    }
}

/* A tokenizer.json whose vocabulary is the 256 bytes, every 2-byte token (65,536) and enough
 * 3-byte tokens to make n_merges merges in all: ab = a + b, abc = ab + c. With broken_last, the
 * last merge names a token that is not in the vocabulary. */
static gm_tok_bytes big_tokenizer(size_t n_merges, bool broken_last, int32_t extra_id) {
    gm_tok_bytes j = {0};
    const char *head =
        "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],\"normalizer\":null,"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true},"
        "\"post_processor\":null,\"decoder\":{\"type\":\"ByteLevel\"},"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{";
    gm_tok_bytes_append(&j, head, strlen(head));
    char num[32];
    int32_t id = 0;
    size_t n3 = n_merges > 65536 ? n_merges - 65536 : 0;
    for (size_t len = 1; len <= 3; len++) {
        size_t count = len == 1 ? 256 : len == 2 ? 65536 : n3;
        for (size_t i = 0; i < count; i++) {
            uint8_t t[3]; /* i written big-endian in len bytes */
            for (size_t b = 0; b < len; b++) t[b] = (uint8_t)(i >> (8 * (len - 1 - b)));
            gm_tok_bytes_append(&j, id ? ",\"" : "\"", id ? 2 : 1);
            put_token(&j, t, len);
            int k = snprintf(num, sizeof num, "\":%d", id++);
            gm_tok_bytes_append(&j, num, (size_t)k);
        }
    }
    if (extra_id >= 0) {
        int k = snprintf(num, sizeof num, ",\"<big>\":%d", extra_id);
        gm_tok_bytes_append(&j, num, (size_t)k);
    }
    gm_tok_bytes_append(&j, "},\"merges\":[", 12);
    for (size_t m = 0; m < n_merges; m++) {
        uint8_t t[3];
        size_t la;
        if (m < 65536) { /* a + b */
            t[0] = (uint8_t)(m >> 8), t[1] = (uint8_t)m, la = 1;
        } else { /* ab + c */
            size_t i = m - 65536;
            t[0] = (uint8_t)(i >> 16), t[1] = (uint8_t)(i >> 8), t[2] = (uint8_t)i, la = 2;
        }
        gm_tok_bytes_append(&j, m ? ",\"" : "\"", m ? 2 : 1);
        put_token(&j, t, la);
        gm_tok_bytes_append(&j, " ", 1);
        if (broken_last && m + 1 == n_merges) gm_tok_bytes_append(&j, "zz", 2);
        else put_token(&j, t + la, 1);
        gm_tok_bytes_append(&j, "\"", 1);
    }
    gm_tok_bytes_append(&j, "]}}", 3);
    return j;
}

typedef struct tok_case {
    size_t n_merges;
    bool broken;
    int32_t extra_id;
    glmoe_status want;
    const char *fragment;
} tok_case;

static int tok_load(void *arg) {
    const tok_case *c = arg;
    gm_tok_bytes j = big_tokenizer(c->n_merges, c->broken, c->extra_id);
    EXPECT(j.p != NULL, "building the file");
    if (c->n_merges > 65536) printf("    (a tokenizer.json of %.1f MB)\n", (double)j.n / 1e6);
    gm_tokenizer *tok = NULL;
    gm_err err = {0};
    glmoe_status st = gm_tokenizer_load_json(&tok, j.p, j.n, "big.json", &err);
    EXPECT(st == c->want, "status %d, want %d: %s", st, c->want, err.msg);
    if (c->fragment) EXPECT(strstr(err.msg, c->fragment) && strncmp(err.msg, "big.json: ", 10) == 0, "message: %s", err.msg);
    if (st == GLMOE_OK && c->n_merges > 65536 + 0x010203) {
        /* the merges work: "abc" is one token (id 256 + 65536 + (a<<16 | b<<8 | c)) when merged */
        gm_tok_ids ids = {0};
        EXPECT(gm_tokenizer_encode(tok, "\x01\x02\x03", 3, 0, &ids, &err) == GLMOE_OK, "%s", err.msg);
        EXPECT(ids.n == 1 && ids.ids[0] == 256 + 65536 + 0x010203, "%zu ids, first %d", ids.n, ids.n ? ids.ids[0] : -1);
        gm_tok_ids_free(&ids);
    }
    gm_tokenizer_free(tok);
    gm_tok_bytes_free(&j);
    return 0;
}

/* 20 MB of empty objects where the loader reads JSON with jansson (an unknown top-level field):
 * refused before jansson sees it (it would take ~1.5 GB). */
static int tok_dom(void *arg) {
    (void)arg;
    gm_tok_bytes j = big_tokenizer(1000, false, -1);
    j.n -= 1; /* reopen the top-level object */
    const char *field = ",\"padding_junk\":[";
    gm_tok_bytes_append(&j, field, strlen(field));
    for (size_t i = 0; i < 7000000; i++) gm_tok_bytes_append(&j, i ? ",{}" : "{}", i ? 3 : 2);
    gm_tok_bytes_append(&j, "]}", 2);
    gm_tokenizer *tok = NULL;
    gm_err err = {0};
    glmoe_status st = gm_tokenizer_load_json(&tok, j.p, j.n, "big.json", &err);
    EXPECT(st == GLMOE_E_UNSUPPORTED && tok == NULL && strstr(err.msg, "outside model.vocab and model.merges, over the limit"),
           "status %d: %s", st, err.msg);
    gm_tok_bytes_free(&j);
    return 0;
}

static void test_tokenizer_merges(void) {
    /* the file itself is ~60 MB (built inside the child, so it counts against the budget) */
    static tok_case ok = {2000000, false, -1, GLMOE_OK, NULL};
    bounded("tokenizer: 2,000,000 merges, loads", 1024, tok_load, &ok);
    static tok_case broken = {2000000, true, -1, GLMOE_E_FORMAT, "is not in model.vocab"};
    bounded("tokenizer: 2,000,000 merges, the last broken", 1024, tok_load, &broken);
    static tok_case huge_id = {1000, false, 1 << 24, GLMOE_E_UNSUPPORTED, "is beyond the supported"};
    bounded("tokenizer: a token id of 2^24", 64, tok_load, &huge_id);
    /* the largest id allowed: the per-id table is sized by it but only touched where ids exist */
    static tok_case high_id = {1000, false, (1 << 24) - 1, GLMOE_OK, NULL};
    bounded("tokenizer: a token id of 2^24 - 1", 512, tok_load, &high_id);
    bounded("tokenizer: 21 MB of {} outside the vocabulary", 128, tok_dom, NULL);
}

/* ---- a 10 MB prompt ------------------------------------------------------------------------ */

#define PROMPT_BYTES (10u << 20)

typedef struct prompt_case {
    const char *shape;
} prompt_case;

static char *make_prompt(const char *shape, size_t *len) {
    char *p = malloc(PROMPT_BYTES + 8);
    size_t n = 0;
    uint64_t r = 0x9E3779B97F4A7C15ull ^ (uint64_t)time(NULL);
    if (!strcmp(shape, "prose")) {
        char path[4096];
        snprintf(path, sizeof path, "%s/models/glmoe-demo/heldout.txt", g_root);
        FILE *f = fopen(path, "rb");
        size_t got = f ? fread(p, 1, PROMPT_BYTES, f) : 0;
        if (f) fclose(f);
        for (n = got; got && n < PROMPT_BYTES; n++) p[n] = p[n % got];
        /* do not end inside a character */
        while (n && ((uint8_t)p[n - 1] & 0xC0) == 0x80) n--;
        if (n && (uint8_t)p[n - 1] >= 0xC0) n--;
    } else if (!strcmp(shape, "one word")) {
        for (; n < PROMPT_BYTES; n++) p[n] = (char)('a' + (r = r * 6364136223846793005ull + 1) % 26);
    } else if (!strcmp(shape, "spaces")) {
        memset(p, ' ', PROMPT_BYTES);
        n = PROMPT_BYTES;
    } else if (!strcmp(shape, "digits")) {
        for (; n < PROMPT_BYTES; n++) p[n] = (char)('0' + (r = r * 6364136223846793005ull + 1) % 10);
    } else if (!strcmp(shape, "newlines and spaces")) {
        for (; n < PROMPT_BYTES; n++) p[n] = (r = r * 6364136223846793005ull + 1) >> 60 < 3 ? '\n' : ' ';
    } else if (!strcmp(shape, "capitals")) {
        for (; n < PROMPT_BYTES; n++) p[n] = (char)('A' + (r = r * 6364136223846793005ull + 1) % 26);
    } else if (!strcmp(shape, "punctuation")) {
        for (; n < PROMPT_BYTES; n++) p[n] = "!?.,;:'\"-()"[(r = r * 6364136223846793005ull + 1) % 11];
    } else { /* mixed scripts: random code points of 1 to 4 bytes, no surrogates */
        while (n + 4 < PROMPT_BYTES) {
            r = r * 6364136223846793005ull + 1;
            static const int32_t base[] = {0x20, 0x400, 0x4E00, 0x1F600};
            int32_t cp = base[(r >> 62) & 3] + (int32_t)((r >> 32) & 0xFF);
            n += (size_t)gm_utf8_encode(cp, (uint8_t *)p + n);
        }
    }
    *len = n;
    return p;
}

static int prompt_encode(void *arg) {
    const prompt_case *c = arg;
    char path[4096];
    snprintf(path, sizeof path, "%s/models/glmoe-demo/tokenizer.json", g_root);
    gm_tokenizer *tok = NULL;
    gm_err err = {0};
    EXPECT(gm_tokenizer_load(&tok, path, &err) == GLMOE_OK, "%s", err.msg);
    size_t len;
    char *p = make_prompt(c->shape, &len);
    EXPECT(p && len > PROMPT_BYTES - 8, "prompt of %zu bytes", len);
    gm_tok_ids ids = {0};
    /* Every shape encodes, 10 MB of spaces included: its one match needs ~20 million backtracks
     * (Qwen3's `\s*[\r\n]+`), over Oniguruma's per-match limit (HF fails there) but well inside
     * the per-byte budget (tok_regex.h). */
    glmoe_status st = gm_tokenizer_encode(tok, p, len, GM_TOK_PARSE_SPECIAL, &ids, &err);
    EXPECT(st == GLMOE_OK && ids.n > 0, "encode: %s", err.msg);
    /* the ids give the text back (the demo tokenizer has no normalizer) */
    gm_tok_bytes back = {0};
    EXPECT(gm_tokenizer_decode(tok, ids.ids, ids.n, false, &back, &err) == GLMOE_OK, "%s", err.msg);
    EXPECT(back.n == len && memcmp(back.p, p, len) == 0, "round trip of the 10 MB prompt");
    gm_tok_bytes_free(&back);
    gm_tok_ids_free(&ids);
    gm_tokenizer_free(tok);
    free(p);
    return 0;
}

/* The public API with a caller buffer that is too small: the size needed, no crash. */
static int prompt_public_api(void *arg) {
    (void)arg;
    char path[4096], err[256];
    snprintf(path, sizeof path, "%s/models/glmoe-demo", g_root);
    glmoe_tokenizer *tok = NULL;
    EXPECT(glmoe_tokenizer_load(&tok, path, err, sizeof err) == GLMOE_OK, "%s", err);
    size_t len, n = 0;
    char *p = make_prompt("prose", &len);
    int32_t small[16];
    glmoe_status st = glmoe_tokenizer_encode(tok, p, len, GLMOE_TOKENIZE_PARSE_SPECIAL, small, 16, &n);
    EXPECT(st == GLMOE_E_ARG && n > 16 && strstr(glmoe_tokenizer_errmsg(tok), "do not fit"), "status %d: %s", st,
           glmoe_tokenizer_errmsg(tok));
    int32_t *ids = malloc(n * sizeof *ids);
    size_t n2 = 0;
    EXPECT(glmoe_tokenizer_encode(tok, p, len, GLMOE_TOKENIZE_PARSE_SPECIAL, ids, n, &n2) == GLMOE_OK && n2 == n,
           "%s", glmoe_tokenizer_errmsg(tok));

    /* the model refuses a prompt longer than its context, before doing any work */
    /* one thread: thread stacks on a many-core machine would count against the address-space limit */
    glmoe_model_params mp = glmoe_model_params_default();
    mp.n_threads = 1;
    mp.device = GLMOE_DEVICE_CPU;
    glmoe_model *model = NULL;
    EXPECT(glmoe_model_load(&model, path, &mp) == GLMOE_OK, "%s", glmoe_model_errmsg(model));
    glmoe_context_params cp = glmoe_context_params_default();
    cp.n_ctx = 256;
    glmoe_context *ctx = NULL;
    EXPECT(glmoe_context_create(&ctx, model, &cp) == GLMOE_OK, "%s", glmoe_context_errmsg(ctx));
    st = glmoe_context_eval(ctx, ids, n, GLMOE_LOGITS_LAST);
    EXPECT(st == GLMOE_E_CONTEXT && glmoe_context_errmsg(ctx)[0], "eval of %zu ids: status %d", n, st);
    EXPECT(glmoe_context_n_past(ctx) == 0, "nothing was evaluated");
    glmoe_context_free(ctx);
    glmoe_model_free(model);
    free(ids);
    free(p);
    glmoe_tokenizer_free(tok);
    return 0;
}

static int prompt_chat(void *arg) {
    (void)arg;
    size_t len;
    char *p = make_prompt("prose", &len);
    json_t *msgs = json_pack("[{s:s, s:s%}]", "role", "user", "content", p, len);
    EXPECT(msgs != NULL, "json_pack of a 10 MB message");
    char *out = NULL;
    size_t out_len = 0;
    gm_err err = {0};
    EXPECT(chat_render(&out, &out_len, msgs, NULL, NULL, &err) == GLMOE_OK, "%s", err.msg);
    EXPECT(out_len > len && memmem(out, out_len, p, len) != NULL, "the message is in the render");
    free(out);
    json_decref(msgs);
    free(p);
    return 0;
}

/* Under a memory limit, the same 10 MB word runs Oniguruma out of memory: GLMOE_E_NOMEM (it used
 * to be GLMOE_E_ARG, blaming the input), and the tokenizer still works afterwards. */
static int prompt_out_of_memory(void *arg) {
    (void)arg;
    char path[4096];
    snprintf(path, sizeof path, "%s/models/glmoe-demo/tokenizer.json", g_root);
    gm_tokenizer *tok = NULL;
    gm_err err = {0};
    EXPECT(gm_tokenizer_load(&tok, path, &err) == GLMOE_OK, "%s", err.msg);
    size_t len;
    char *p = make_prompt("one word", &len);
    rlim_t as = (rlim_t)(statm_field_kb(0) + 64 * 1024) * 1024;
    struct rlimit rl = {as, as};
    EXPECT(setrlimit(RLIMIT_AS, &rl) == 0, "setrlimit");
    gm_tok_ids ids = {0};
    glmoe_status st = gm_tokenizer_encode(tok, p, len, 0, &ids, &err);
    EXPECT(st == GLMOE_E_NOMEM && ids.n == 0 && strstr(err.msg, "memory"), "status %d: %s", st, err.msg);
    st = gm_tokenizer_encode(tok, "State of the Union", 18, 0, &ids, &err);
    EXPECT(st == GLMOE_OK && ids.n > 0, "encode after the failure: %s", err.msg);
    gm_tok_ids_free(&ids);
    gm_tokenizer_free(tok);
    free(p);
    return 0;
}

static void test_prompts(void) {
    static const char *const shapes[] = {"prose", "one word", "spaces", "digits", "newlines and spaces", "mixed scripts"};
    static prompt_case cases[6];
    for (int i = 0; i < 6; i++) {
        char name[96];
        cases[i].shape = shapes[i];
        snprintf(name, sizeof name, "10 MB prompt, encode + decode: %s", shapes[i]);
        bounded(name, 512, prompt_encode, &cases[i]);
    }
    bounded("10 MB prompt through the public API, then eval", 384, prompt_public_api, NULL);
    bounded("10 MB message through the chat template", 128, prompt_chat, NULL);
    if (UNDER_ASAN) printf("  (10 MB word under a 64 MiB limit: skipped, ASan cannot run under RLIMIT_AS)\n");
    else bounded("10 MB word under a 64 MiB limit: out of memory", 512, prompt_out_of_memory, NULL);
}

/* ---- hostile tokenizer.json features, on the demo tokenizer ------------------------------------ */

/* The demo tokenizer.json with one top-level field replaced by the JSON text `value`; for
 * "added_tokens", `value` is one token object appended to the array. NULL on failure. */
static gm_tokenizer *demo_tokenizer_with(const char *field, const char *value, gm_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/glmoe-demo/tokenizer.json", g_root);
    json_t *root = json_load_file(path, 0, NULL), *v = json_loads(value, JSON_DECODE_ANY, NULL);
    gm_tokenizer *tok = NULL;
    if (root && v) {
        if (!strcmp(field, "added_tokens")) json_array_append(json_object_get(root, field), v);
        else json_object_set(root, field, v);
        char *text = json_dumps(root, JSON_COMPACT);
        if (text && gm_tokenizer_load_json(&tok, text, strlen(text), "hostile.json", err) != GLMOE_OK) tok = NULL;
        free(text);
    }
    json_decref(v);
    json_decref(root);
    return tok;
}

/* A Sequence of seven Replace steps "a" -> 16 "a": one byte would become 268 MB (73 s and 13 GB
 * before the output limit). Now the fourth step, the first to pass 32 x 1 + 4096 bytes, is named. */
static int norm_blowup(void *arg) {
    (void)arg;
    gm_tok_bytes seq = {0};
    const char *head = "{\"type\": \"Sequence\", \"normalizers\": [";
    gm_tok_bytes_append(&seq, head, strlen(head));
    for (int i = 0; i < 7; i++) {
        const char *step = "{\"type\": \"Replace\", \"pattern\": {\"String\": \"a\"}, \"content\": \"aaaaaaaaaaaaaaaa\"}";
        if (i) gm_tok_bytes_append(&seq, ", ", 2);
        gm_tok_bytes_append(&seq, step, strlen(step));
    }
    gm_tok_bytes_append(&seq, "]}", 3); /* with the NUL */
    gm_err err = {0};
    gm_tokenizer *tok = demo_tokenizer_with("normalizer", seq.p, &err);
    EXPECT(tok, "load: %s", err.msg[0] ? err.msg : "the test's JSON does not parse");
    gm_tok_ids ids = {0};
    glmoe_status st = gm_tokenizer_encode(tok, "a", 1, 0, &ids, &err);
    EXPECT(st == GLMOE_E_ARG && ids.n == 0 && strstr(err.msg, "normalizer.normalizers[3] (Replace)") &&
               strstr(err.msg, "limit of 4128 bytes for a 1-byte input"),
           "status %d: %s", st, err.msg);
    /* text without an "a" is untouched, and the tokenizer still works after the refusal */
    EXPECT(gm_tokenizer_encode(tok, "xyz", 3, 0, &ids, &err) == GLMOE_OK && ids.n > 0, "%s", err.msg);
    gm_tok_ids_free(&ids);
    gm_tokenizer_free(tok);
    /* an added token that the same normalizer blows up is refused at load, the token named */
    char path[4096];
    snprintf(path, sizeof path, "%s/models/glmoe-demo/tokenizer.json", g_root);
    json_t *file = json_load_file(path, 0, NULL);
    EXPECT(file, "reading %s", path);
    json_object_set_new(file, "normalizer", json_loads(seq.p, 0, NULL));
    json_array_append_new(json_object_get(file, "added_tokens"),
                          json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", 4096, "content", "<a>", "single_word", 0,
                                    "lstrip", 0, "rstrip", 0, "normalized", 1, "special", 0));
    char *text = json_dumps(file, JSON_COMPACT);
    st = gm_tokenizer_load_json(&tok, text, strlen(text), "hostile.json", &err);
    EXPECT(st == GLMOE_E_UNSUPPORTED && !tok &&
               strstr(err.msg, "hostile.json: added_tokens[36]: normalizer.normalizers[3] (Replace): the text grows"),
           "status %d: %s", st, err.msg);
    free(text);
    json_decref(file);
    gm_tok_bytes_free(&seq);
    return 0;
}

/* The normalizers real files use are never refused, even on the text that grows most: NFKD of
 * U+FDFA (11x in UTF-8) followed by Replace " " -> U+2581 (13x in all), and Prepend. */
static int norm_real(void *arg) {
    (void)arg;
    gm_err err = {0};
    gm_tokenizer *tok = demo_tokenizer_with(
        "normalizer",
        "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"NFKD\"}, {\"type\": \"Prepend\", \"prepend\": \"\\u2581\"},"
        " {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, \"content\": \"\\u2581\"}]}",
        &err);
    EXPECT(tok, "load: %s", err.msg);
    size_t n = 300000; /* 100,000 x U+FDFA */
    char *text = malloc(n);
    for (size_t i = 0; i < n; i += 3) memcpy(text + i, "\xEF\xB7\xBA", 3);
    gm_tok_ids ids = {0};
    EXPECT(gm_tokenizer_encode(tok, text, n, 0, &ids, &err) == GLMOE_OK && ids.n > 100000, "%s", err.msg);
    EXPECT(gm_tokenizer_encode(tok, "\xEF\xB7\xBA", 3, 0, &ids, &err) == GLMOE_OK, "one character: %s", err.msg);
    gm_tok_ids_free(&ids);
    gm_tokenizer_free(tok);
    free(text);
    return 0;
}

/* An added token of 100,000 "a" + "b" and a prompt of 300,000 "a": the search restarted at every
 * byte and walked up to 100,000 bytes from each (130 s). Now linear. */
static int added_long(void *arg) {
    (void)arg;
    size_t k = 100000, n = 300000;
    char *content = malloc(k + 2), *text = malloc(n);
    memset(content, 'a', k);
    memcpy(content + k, "b", 2);
    memset(text, 'a', n);
    json_t *t = json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", 4096, "content", content, "single_word", 0,
                          "lstrip", 0, "rstrip", 0, "normalized", 0, "special", 0);
    char *tj = json_dumps(t, JSON_COMPACT);
    gm_err err = {0};
    gm_tokenizer *tok = demo_tokenizer_with("added_tokens", tj, &err);
    EXPECT(tok, "load: %s", err.msg);
    gm_tok_ids ids = {0};
    EXPECT(gm_tokenizer_encode(tok, text, n, 0, &ids, &err) == GLMOE_OK && ids.n > 0, "%s", err.msg);
    for (size_t i = 0; i < ids.n; i++) EXPECT(ids.ids[i] != 4096, "no match in a text without \"b\"");
    /* the token itself is found where it is */
    text[k] = 'b';
    ids.n = 0;
    EXPECT(gm_tokenizer_encode(tok, text, n, 0, &ids, &err) == GLMOE_OK && ids.ids[0] == 4096, "%s", err.msg);
    gm_tok_ids_free(&ids);
    gm_tokenizer_free(tok);
    free(tj);
    json_decref(t);
    free(content);
    free(text);
    return 0;
}

/* An "lstrip" added token " " on 100,000 spaces: each match walked back over the whole run of
 * spaces before it (20 s). Now the walk stops at the previous match. */
static int added_lstrip(void *arg) {
    (void)arg;
    size_t n = 100000;
    char *text = malloc(n);
    memset(text, ' ', n);
    gm_err err = {0};
    gm_tokenizer *tok = demo_tokenizer_with("added_tokens",
                                            "{\"id\": 4096, \"content\": \" \", \"single_word\": false, \"lstrip\": true,"
                                            " \"rstrip\": false, \"normalized\": false, \"special\": false}",
                                            &err);
    EXPECT(tok, "load: %s", err.msg);
    gm_tok_ids ids = {0};
    EXPECT(gm_tokenizer_encode(tok, text, n, 0, &ids, &err) == GLMOE_OK && ids.n == n, "%s: %zu ids", err.msg, ids.n);
    for (size_t i = 0; i < ids.n; i++) EXPECT(ids.ids[i] == 4096, "every space is the token");
    gm_tok_ids_free(&ids);
    gm_tokenizer_free(tok);
    free(text);
    return 0;
}

static void deflate_into(z_stream *z, const unsigned char *in, size_t n, int flush, gm_tok_bytes *out) {
    unsigned char buf[1 << 16];
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    do {
        z->next_out = buf;
        z->avail_out = sizeof buf;
        deflate(z, flush);
        gm_tok_bytes_append(out, buf, sizeof buf - z->avail_out);
    } while (z->avail_out == 0);
}

/* A gzip stream of `mib` MiB of zeros, made in a moment: a MiB deflated after a full flush (which
 * forgets the history) gives the same bytes every time, so the stream is the header and first MiB,
 * that block repeated, the final block, and a trailer with the CRC of the whole (crc32_combine).
 * About 1 KB per MiB. Empty if zlib does not repeat itself. */
static gm_tok_bytes gzip_zeros(size_t mib) {
    gm_tok_bytes gz = {0}, block = {0}, again = {0}, tail = {0};
    const size_t chunk = 1u << 20;
    unsigned char *zeros = calloc(1, chunk);
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    deflate_into(&z, zeros, chunk, Z_FULL_FLUSH, &gz); /* the gzip header and the first MiB */
    deflate_into(&z, zeros, chunk, Z_FULL_FLUSH, &block);
    deflate_into(&z, zeros, chunk, Z_FULL_FLUSH, &again);
    deflate_into(&z, zeros, 0, Z_FINISH, &tail); /* the final block and a trailer (for 3 MiB) */
    deflateEnd(&z);
    if (block.n != again.n || memcmp(block.p, again.p, block.n) != 0 || tail.n < 8) {
        gz.n = 0;
    } else {
        for (size_t i = 1; i < mib; i++) gm_tok_bytes_append(&gz, block.p, block.n);
        gm_tok_bytes_append(&gz, tail.p, tail.n);
        uLong one = crc32(0, zeros, (uInt)chunk), all = 0;
        for (size_t i = 0; i < mib; i++) all = crc32_combine(all, one, (z_off_t)chunk);
        unsigned char *t = (unsigned char *)gz.p + gz.n - 8; /* CRC-32, then the size mod 2^32 */
        uint64_t total = (uint64_t)mib * chunk;
        for (int i = 0; i < 4; i++) t[i] = (unsigned char)(all >> (8 * i)), t[4 + i] = (unsigned char)(total >> (8 * i));
    }
    gm_tok_bytes_free(&block);
    gm_tok_bytes_free(&again);
    gm_tok_bytes_free(&tail);
    free(zeros);
    return gz;
}

/* A tokenizer.json.gz that inflates to exactly the 1 GiB cap is read; one that inflates to 1.5 GiB
 * is refused as soon as it crosses the cap, with memory near the cap (it used to be accepted: the
 * cap was checked only before the stream's end; one of 2000 MiB peaked at 2.2 GB). */
static int gzip_bomb(void *arg) {
    (void)arg;
    const size_t sizes[2] = {1024, 1536};
    for (int k = 0; k < 2; k++) {
        gm_tok_bytes gz = gzip_zeros(sizes[k]);
        EXPECT(gz.n > 0, "making the gzip stream");
        char path[] = "/tmp/glmoe-gzip-XXXXXX";
        int fd = mkstemp(path);
        EXPECT(fd >= 0 && write(fd, gz.p, gz.n) == (ssize_t)gz.n, "writing %s", path);
        close(fd);
        gm_tok_bytes out = {0};
        gm_err err = {0};
        glmoe_status st = gm_tokenizer_read_file(path, &out, &err);
        unlink(path);
        if (k == 0) {
            EXPECT(st == GLMOE_OK && out.n == ((size_t)1 << 30), "at the cap: status %d, %zu bytes: %s", st, out.n, err.msg);
        } else {
            EXPECT(st == GLMOE_E_FORMAT && out.n == 0 && strstr(err.msg, "decompresses to more than 1073741824 bytes"),
                   "over the cap: status %d, %zu bytes: %s", st, out.n, err.msg);
        }
        gm_tok_bytes_free(&out);
        gm_tok_bytes_free(&gz);
    }
    return 0;
}

/* ---- regexes: hostile patterns, and the real ones on every 10 MB shape ------------------------- */

typedef struct regex_case {
    const char *pattern;
    size_t n_a;         /* the prompt: this many "a" ...            */
    const char *suffix; /* ... then this                            */
    const char *want;   /* expected in the message                  */
} regex_case;

/* A Split pattern that would run for minutes or hours on the prompt: refused within seconds with
 * a message saying which bound it hit, and the tokenizer still works afterwards. */
static int regex_hostile(void *arg) {
    const regex_case *c = arg;
    char pre[512];
    snprintf(pre, sizeof pre,
             "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"%s\"}, "
             "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"add_prefix_space\": false, "
             "\"use_regex\": false}]}",
             c->pattern);
    gm_err err = {0};
    gm_tokenizer *tok = demo_tokenizer_with("pre_tokenizer", pre, &err);
    EXPECT(tok, "load: %s", err.msg);
    size_t k = strlen(c->suffix), n = c->n_a + k;
    char *text = malloc(n);
    memset(text, 'a', c->n_a);
    memcpy(text + c->n_a, c->suffix, k);
    gm_tok_ids ids = {0};
    double t0 = now();
    glmoe_status st = gm_tokenizer_encode(tok, text, n, 0, &ids, &err);
    printf("    (/%s/ on %zu bytes: %.2f s: %s)\n", c->pattern, n, now() - t0, err.msg);
    EXPECT(st == GLMOE_E_ARG && ids.n == 0 && strstr(err.msg, "pre_tokenizer: the Split pattern failed on the input: ") &&
               strstr(err.msg, c->want),
           "status %d: %s", st, err.msg);
    EXPECT(gm_tokenizer_encode(tok, "a1 b", 4, 0, &ids, &err) == GLMOE_OK && ids.n > 0, "afterwards: %s", err.msg);
    gm_tok_ids_free(&ids);
    gm_tokenizer_free(tok);
    free(text);
    return 0;
}

/* The pattern of pre_tokenizer.pretokenizers[i] in a tokenizer file of tests/data (NULL if absent). */
static char *file_pattern(const char *name, size_t i) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/%s/tokenizer.json.gz", g_root, name);
    gm_tok_bytes text = {0};
    gm_err err = {0};
    char *out = NULL;
    if (gm_tokenizer_read_file(path, &text, &err) == GLMOE_OK) {
        json_t *root = json_loadb(text.p, text.n, 0, NULL);
        json_t *step = json_array_get(json_object_get(json_object_get(root, "pre_tokenizer"), "pretokenizers"), i);
        const char *re = json_string_value(json_object_get(json_object_get(step, "pattern"), "Regex"));
        if (re) out = strdup(re);
        json_decref(root);
    }
    gm_tok_bytes_free(&text);
    return out;
}

/* The real pretokenizer patterns (GPT-2's, Qwen3's, GLM-4.5's, DeepSeek-V3's three) over every
 * 10 MB prompt shape, one walk each as an encode makes it: none hits a bound. */
static int regex_real(void *arg) {
    (void)arg;
    char *pats[6] = {strdup(GM_GPT2_PATTERN), file_pattern("qwen3", 0), NULL, file_pattern("deepseek_v3", 0),
                     file_pattern("deepseek_v3", 1), file_pattern("deepseek_v3", 2)};
    static const char *const names[6] = {"GPT-2", "Qwen3", "GLM-4.5", "DeepSeek-V3 [0]", "DeepSeek-V3 [1]", "DeepSeek-V3 [2]"};
    EXPECT(pats[1] && strstr(pats[1], "\\p{N}|"), "Qwen3's pattern");
    /* GLM-4.5's pattern is Qwen3's with \p{N}{1,3} for \p{N} (tests/data/tokenizers/README.md) */
    char *at = strstr(pats[1], "\\p{N}|");
    size_t pre = (size_t)(at - pats[1]);
    pats[2] = malloc(strlen(pats[1]) + 8);
    memcpy(pats[2], pats[1], pre);
    strcpy(pats[2] + pre, "\\p{N}{1,3}");
    strcat(pats[2], at + 5);
    static const char *const shapes[] = {"prose", "one word", "spaces", "digits", "newlines and spaces",
                                         "mixed scripts", "capitals", "punctuation"};
    char *texts[8];
    size_t lens[8];
    for (int k = 0; k < 8; k++) texts[k] = make_prompt(shapes[k], &lens[k]);
    gm_tok_regex_run run = {0};
    gm_err err = {0};
    for (int i = 0; i < 6; i++) {
        EXPECT(pats[i], "pattern %s", names[i]);
        gm_tok_regex re;
        EXPECT(gm_tok_regex_compile(&re, pats[i], strlen(pats[i]), false, names[i], &err) == GLMOE_OK, "%s", err.msg);
        double worst = 0, total = 0;
        int slowest = 0;
        for (int k = 0; k < 8; k++) {
            EXPECT(gm_tok_regex_run_begin(&run, &err) == GLMOE_OK, "%s", err.msg);
            gm_tok_match_iter it = {0};
            size_t ms, me, matches = 0;
            int rc;
            double t0 = now();
            while ((rc = gm_tok_regex_next(&re, &run, (const uint8_t *)texts[k], lens[k], &it, &ms, &me)) == 1) matches++;
            double dt = now() - t0;
            char msg[160];
            gm_tok_regex_errstr(rc, msg, sizeof msg);
            EXPECT(rc == 0, "%s on 10 MB of %s: %s", names[i], shapes[k], msg);
            total += dt;
            if (dt > worst) worst = dt, slowest = k;
        }
        printf("    (%-16s 8 shapes x 10 MB: %.2f s, the slowest %.2f s: %s)\n", names[i], total, worst, shapes[slowest]);
        gm_tok_regex_free(&re);
        free(pats[i]);
    }
    gm_tok_regex_run_free(&run);
    for (int k = 0; k < 8; k++) free(texts[k]);
    return 0;
}

/* One encode on another thread hits the time limit while this thread encodes real text with a real
 * tokenizer: the limits belong to each call (an OnigMatchParam per tokenizer), not to the process,
 * so the real encode is unaffected and gives the ids it gives alone. */
typedef struct encode_job {
    gm_tokenizer *tok;
    const char *text;
    size_t n;
    int repeat;
    gm_tok_ids ids;
    glmoe_status st;
    gm_err err;
} encode_job;

static void *encode_thread(void *arg) {
    encode_job *j = arg;
    for (int r = 0; r < j->repeat; r++) {
        j->ids.n = 0;
        j->st = gm_tokenizer_encode(j->tok, j->text, j->n, 0, &j->ids, &j->err);
    }
    return NULL;
}

static int regex_threads(void *arg) {
    (void)arg;
    gm_err err = {0};
    gm_tokenizer *hostile = demo_tokenizer_with(
        "pre_tokenizer",
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"a+b\"}, "
        "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
        &err);
    EXPECT(hostile, "load: %s", err.msg);
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/tokenizers/qwen3", g_root);
    gm_tokenizer *real = NULL;
    EXPECT(gm_tokenizer_load(&real, path, &err) == GLMOE_OK, "%s", err.msg);
    size_t n_prose;
    char *prose = make_prompt("prose", &n_prose), *as = malloc(1000000);
    n_prose = 1000000;
    while (((uint8_t)prose[n_prose - 1] & 0xC0) == 0x80 || (uint8_t)prose[n_prose - 1] >= 0xC0) n_prose--;
    memset(as, 'a', 1000000);
    gm_tok_ids alone = {0};
    EXPECT(gm_tokenizer_encode(real, prose, n_prose, 0, &alone, &err) == GLMOE_OK, "%s", err.msg);
    encode_job a = {.tok = hostile, .text = as, .n = 1000000, .repeat = 1};
    encode_job b = {.tok = real, .text = prose, .n = n_prose, .repeat = 5};
    pthread_t ta, tb;
    EXPECT(pthread_create(&ta, NULL, encode_thread, &a) == 0 && pthread_create(&tb, NULL, encode_thread, &b) == 0, "threads");
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    EXPECT(a.st == GLMOE_E_ARG && strstr(a.err.msg, "regex time limit"), "the hostile encode: %d %s", a.st, a.err.msg);
    EXPECT(b.st == GLMOE_OK && b.ids.n == alone.n && memcmp(b.ids.ids, alone.ids, alone.n * sizeof *alone.ids) == 0,
           "the real encode beside it: %d %s", b.st, b.err.msg);
    gm_tok_ids_free(&a.ids);
    gm_tok_ids_free(&b.ids);
    gm_tok_ids_free(&alone);
    gm_tokenizer_free(hostile);
    gm_tokenizer_free(real);
    free(prose);
    free(as);
    return 0;
}

static void test_regexes(void) {
    static const regex_case budget = {"\\\\w+(?=\\\\d)|\\\\s", 100000, "", "backtracking budget exhausted"};
    bounded_for("regex \\w+(?=\\d)|\\s on 100,000 a: retries", 64, 20, regex_hostile, (void *)&budget);
    static const regex_case scan = {"a+b", 1000000, "", "regex time limit"};
    bounded_for("regex a+b on 1,000,000 a: time", 64, 20, regex_hostile, (void *)&scan);
    static const regex_case nested = {"(?:(?=[a-z]*+)a)*+b", 100000, "!1b", "regex time limit"};
    bounded_for("regex (?:(?=[a-z]*+)a)*+b on 100,000 a: time", 64, 20, regex_hostile, (void *)&nested);
    bounded_for("real patterns on 8 shapes of 10 MB", 768, 300, regex_real, NULL);
    bounded_for("two threads: a pattern out of time beside Qwen3", 512, 60, regex_threads, NULL);
}

static void test_hostile_tokenizers(void) {
    bounded_for("normalizer: 7 x Replace a -> 16 a, one byte", 64, 20, norm_blowup, NULL);
    bounded_for("normalizer: NFKD + Prepend + Replace on 100,000 x U+FDFA", 256, 60, norm_real, NULL);
    bounded_for("added token of 100,000 a + b, 300,000 a", 128, 10, added_long, NULL);
    bounded_for("gzip: exactly 1 GiB, then 1.5 GiB of zeros", 1100, 120, gzip_bomb, NULL);
    bounded_for("lstrip added token \" \", 100,000 spaces", 128, 10, added_lstrip, NULL);
}

/* ---- deep nesting -------------------------------------------------------------------------- */

static char *nested(size_t depth, const char *prefix, const char *suffix) {
    size_t a = strlen(prefix), b = strlen(suffix);
    char *s = malloc(a + depth + b + 1);
    memcpy(s, prefix, a);
    memset(s + a, '[', depth);
    memcpy(s + a + depth, suffix, b + 1);
    return s;
}

static int deep_json(void *arg) {
    (void)arg;
    const size_t depth = 100000;
    gm_err err = {0};
    char *cfg = nested(depth, "{\"architectures\": ", "");
    gm_config c;
    glmoe_status st = config_parse(&c, cfg, strlen(cfg), "config.json", NULL, 0, &err);
    EXPECT(st == GLMOE_E_FORMAT && strstr(err.msg, "config.json: invalid JSON"), "config: %d %s", st, err.msg);
    free(cfg);

    char *msgs = nested(depth, "[{\"role\": \"user\", \"content\": ", "");
    char *out = NULL;
    st = chat_render_json(&out, NULL, msgs, NULL, NULL, &err);
    EXPECT(st == GLMOE_E_ARG && out == NULL && err.msg[0], "chat: %d %s", st, err.msg);
    free(msgs);

    char *hdr = nested(depth, "{\"t\": {\"dtype\": \"F32\", \"shape\": ", "");
    size_t hl = strlen(hdr);
    uint8_t *file = malloc(8 + hl);
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(file + 8, hdr, hl);
    st_file *f = NULL;
    st = st_file_parse(&f, file, 8 + hl, "deep.safetensors", &err);
    EXPECT(st == GLMOE_E_FORMAT && f == NULL && strstr(err.msg, "deep.safetensors"), "header: %d %s", st, err.msg);
    free(file);
    free(hdr);
    return 0;
}

int main(int argc, char **argv) {
    g_root = argc > 1 ? argv[1] : ".";
    if (UNDER_ASAN) printf("  under AddressSanitizer: no address-space limit, budgets x3 + 320 MiB\n");
    test_safetensors_claims();
    bounded("JSON nested 100,000 deep: config, chat, safetensors", 32, deep_json, NULL);
    test_tokenizer_merges();
    test_prompts();
    test_hostile_tokenizers();
    test_regexes();
    return test_summary("test_limits");
}
