/*
 * cli.h — shared pieces of the glmoe command-line tool: option parsing helpers and the
 * subcommands. The CLI uses only the public API (include/glmoe.h), and from src/util only
 * gm_short_path (util/short_path.h): every path put into a message is shortened the same way
 * in the library and here.
 *
 * Every error is one line on stderr, "glmoe <command>: <message>", and a non-zero exit:
 *   1 for a failure at run time (bad model, bad input, output that could not be written),
 *   2 for a usage error, 141 when stdout's reader went away (a closed pipe; no message).
 */
#ifndef GLMOE_CLI_H
#define GLMOE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "glmoe.h"

#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
/* stdout's reader went away before everything was written (EPIPE; SIGPIPE is ignored so that
 * glmoe ends quietly instead of being killed): 128 + SIGPIPE, the status a shell reports for a
 * command SIGPIPE killed, so `set -o pipefail` sees glmoe as any other command of the pipe. */
#define CLI_EXIT_PIPE 141

/* The largest text file the CLI reads (perplexity -f, tokenize --text-file). */
#define CLI_TEXT_MAX_BYTES ((size_t)1 << 30)

/* Prints "glmoe <cmd>: <message>\n" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parses "1,2,3" (also spaces) into a malloc'd array; on failure prints why and returns false. */
bool cli_parse_ids(const char *cmd, const char *text, int32_t **ids, size_t *n);

/* Strict number parsing: the whole string must be a number in range. */
bool cli_parse_int(const char *cmd, const char *opt, const char *text, long lo, long hi, long *out);
bool cli_parse_float(const char *cmd, const char *opt, const char *text, double lo, double hi, double *out);
bool cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t *out);

/* Options every model command takes: -m DIR, --device, --threads, --ctx, --verbose. Returns 1 if
 * argv[*i] was one of them (consuming its value), 0 if not, -1 on a usage error. */
typedef struct cli_model_opts {
    const char *model_dir;
    glmoe_device device;
    int n_threads;
    int n_devices;          /* --gpus (0: not split) */
    glmoe_split split;      /* --split */
    int n_ctx;
    bool verbose;
    glmoe_quantize quantize;    /* --quantize q4 / q8 / q<bits>[g<group>] */
    bool no_mtp;                /* --no-mtp: leave the MTP layer out (glmoe_model_params.skip_mtp) */
    int n_draft;                /* --draft N: tokens drafted per step by the MTP layer; -1: as
                                   cli_open decides (generate and chat start with it) */
} cli_model_opts;
int cli_model_opt(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o);
extern const char *const cli_model_opts_help;

/* "q4", "q8", "q<bits>g<group>" (e.g. q3g32) into *q; prints why and returns false otherwise. */
bool cli_parse_quantize(const char *cmd, const char *opt, const char *text, glmoe_quantize *q);

/* Sampling options (--temp/--temperature, --top-k, --top-p, --min-p, --repeat-penalty,
 * -s/--seed), same contract. */
typedef struct cli_sampling {
    glmoe_sampler_params params;
    bool seed_given;
} cli_sampling;
int cli_sampling_opt(const char *cmd, int argc, char **argv, int *i, cli_sampling *s);

/* The seed the run samples with: --seed's, or, when none was given and the run samples
 * (temperature > 0), a random one drawn now (and kept in s), to be printed with the stats. */
uint64_t cli_sampling_seed(cli_sampling *s);

/* The argument argv[i] that no option of the command took: prints "unknown option --x; did you
 * mean --y?" (the nearest option the help lists, when near enough), "--y needs a value" for a
 * known option in the last place, or "unexpected argument", and returns CLI_EXIT_USAGE. help is
 * the command's help text; model_opts: the command takes cli_model_opt's options too. */
int cli_bad_option(const char *cmd, const char *arg, const char *help, bool model_opts);

/* Prints the command's help (and cli_model_opts_help) on stdout; returns 0. */
int cli_help(const char *help, bool model_opts);
/* The same with the model options' --ctx entry replaced by ctx_help (its own default). */
int cli_help_ctx(const char *help, const char *ctx_help);

/* Drafts per step when --draft is not given (generate, chat, serve): the one place of that
 * policy. 0 on every device measured so far, because drafts do not pay there yet (BENCHMARKS.md,
 * "Speculative decoding"): on the CPU a verify forward of k + 1 tokens costs nearly k + 1 steps;
 * on the GPU speculative steps run op by op (no CUDA graph yet: k = 0 alone costs 1.6x the
 * graph's step on the demo model) and a verify of k + 1 tokens of a MoE model reads up to k + 1
 * times the experts (2.3x one token at k = 3 on the Air shape), against 2.38 tokens per step. */
#define CLI_DRAFT_DEFAULT 0

/* Loads the model and creates a context; prints the error and returns false on failure.
 * o->n_draft -1 becomes CLI_DRAFT_DEFAULT. */
bool cli_open(const char *cmd, cli_model_opts *o, glmoe_model **model, glmoe_context **ctx);

/* Log callback printing warnings (and info with --verbose) to stderr. */
void cli_install_log(bool verbose);

/* Peak resident set size of the process in bytes (VmHWM), 0 if unknown. */
uint64_t cli_peak_rss(void);
double cli_now(void);

/* Reads a whole text file (bytes as they are, at most CLI_TEXT_MAX_BYTES) through glmoe_file_read:
 * never blocks, regular files only; "-" reads stdin to its end (same bound). *out is freed with
 * glmoe_free. Prints why and returns false on failure. */
bool cli_read_file(const char *cmd, const char *path, char **out, size_t *len);

/* ---- output (output.c) ---- */

/* Flushes stdout and says whether everything written to it so far went out. Commands that print
 * as they go (generate, chat) call it after each piece and stop when it fails; main() calls it
 * once more after every command, so that none ends with status 0 having lost its output. */
bool cli_stdout_ok(void);

/* After cli_stdout_ok failed: one line on stderr ("glmoe <cmd>: stdout: cannot write: <reason>")
 * and CLI_EXIT_FAIL, or, for a closed pipe, nothing and CLI_EXIT_PIPE. Returns the exit status. */
int cli_stdout_failed(const char *cmd);

/* Creates (or truncates) an output file without blocking: a FIFO with no reader is refused
 * ("<path>: a FIFO with no reader") instead of waited on; /dev/null, /dev/stdout and a FIFO with
 * a reader are fine. NULL with the reason in err on failure. */
FILE *cli_output_open(const char *path, char *err, size_t err_size);

/* Flushes and closes f; false with "<path>: cannot write: <reason>" in err if any write failed. */
bool cli_output_close(FILE *f, const char *path, char *err, size_t err_size);

/* Loads a tokenizer from a tokenizer.json or a model directory. */
bool cli_load_tokenizer(const char *cmd, const char *path, glmoe_tokenizer **tok);

/* Encodes text into a malloc'd id array. */
bool cli_encode(const char *cmd, glmoe_tokenizer *tok, const char *text, size_t len, unsigned flags,
                int32_t **ids, size_t *n);

/* The sampling loop of generate and chat. */
typedef void (*cli_emit_fn)(const char *text, size_t len, void *user);
typedef struct cli_gen_opts {
    long n_gen;
    bool print_ids, ignore_eos;
    int n_draft;            /* speculative steps of up to n_draft drafts (the context's); 0: none */
    const char *const *stops; /* --stop strings: the text ends before the first that appears in it */
    size_t n_stops;
    cli_emit_fn emit;       /* where the text goes (chat: the reasoning split); NULL: stdout */
    void *emit_user;
    volatile sig_atomic_t *interrupted; /* when set (by a SIGINT handler), stop at the next token */
} cli_gen_opts;
typedef struct cli_gen_result {
    int32_t *ids;           /* malloc'd: the generated ids, eos included */
    long n;
    double seconds;
    const char *stop;       /* "token limit", "end of sequence", "stop string", "context full",
                               "interrupted" */
    long n_drafted, n_accepted, n_steps; /* speculative decoding */
    size_t n_text;          /* bytes of text put out */
    char last_byte;         /* the last of them ('\0' if none) */
} cli_gen_result;
/* The context holds the prompt and its last logits. stream may be NULL (ids are printed).
 * Returns 0, or the exit status to end with after the error was reported (CLI_EXIT_PIPE, without
 * a message, when stdout's reader went away: generation stops at the first token it loses).
 * The context ends holding the prompt and every generated token but the last (the one a next
 * evaluation would start with), as one-at-a-time decoding leaves it. */
int cli_generate(const char *cmd, glmoe_context *ctx, glmoe_sampler *sampler, const glmoe_model_info *info,
                  glmoe_tokenizer_stream *stream, const cli_gen_opts *o, cli_gen_result *r);

/* "; drafts: A of D accepted (P%), T tokens per step" for a run with speculative steps, else "". */
const char *cli_draft_stats(const cli_gen_result *r, char *buf, size_t size);

/* A malloc'd JSON string literal of s. */
char *cli_json_string(const char *s);


int cmd_generate(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv); /* bench/cmd_bench.c */
int cmd_quantize(int argc, char **argv);
int cmd_serve(int argc, char **argv); /* tools/server/cmd_serve.c */

#endif
