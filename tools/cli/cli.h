/*
 * cli.h — shared pieces of the glmoe command-line tool: option parsing helpers and the
 * subcommands. The CLI uses only the public API (include/glmoe.h).
 *
 * Every error is one line on stderr, "glmoe <command>: <message>", and a non-zero exit:
 *   1 for a failure at run time (bad model, bad input), 2 for a usage error.
 */
#ifndef GLMOE_CLI_H
#define GLMOE_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glmoe.h"

#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

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
    int n_ctx;
    bool verbose;
} cli_model_opts;
int cli_model_opt(const char *cmd, int argc, char **argv, int *i, cli_model_opts *o);
extern const char *const cli_model_opts_help;

/* Loads the model and creates a context; prints the error and returns false on failure. */
bool cli_open(const char *cmd, const cli_model_opts *o, glmoe_model **model, glmoe_context **ctx);

/* Log callback printing warnings (and info with --verbose) to stderr. */
void cli_install_log(bool verbose);

/* Peak resident set size of the process in bytes (VmHWM), 0 if unknown. */
uint64_t cli_peak_rss(void);
double cli_now(void);

int cmd_generate(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_info(int argc, char **argv);

#endif
