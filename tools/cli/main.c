/* main.c — `glmoe <command> [options]`: dispatches to one file per subcommand. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} commands[] = {
    {"generate", cmd_generate, "generate text or tokens from a prompt"},
    {"chat", cmd_chat, "chat with the model in its chat format"},
    {"perplexity", cmd_perplexity, "teacher-forced perplexity of a text file"},
    {"logits", cmd_logits, "teacher-forced logits of a token sequence, as float32"},
    {"tokenize", cmd_tokenize, "text to token ids"},
    {"detokenize", cmd_detokenize, "token ids to text"},
    {"info", cmd_info, "show a model's configuration and weights"},
    {"bench", cmd_bench, "prefill and decode speed against the device's limits"},
    {"quantize", cmd_quantize, "write an MLX-format quantized copy of a checkpoint"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server (tools/server)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: glmoe <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`glmoe help <command>` (or `glmoe <command> --help`) describes each command; `glmoe --version`\n"
                 "the build.\n");
}

/* `glmoe --version`: the library's version and commit, the backends built in, and whether a GPU
 * is usable now (found without loading the CUDA libraries where there is none). */
static int print_version(void) {
    const char *commit = glmoe_version_commit();
    printf("glmoe %s%s%s%s\n", glmoe_version(), commit[0] ? " (" : "", commit, commit[0] ? ")" : "");
    printf("backends: cpu%s\n", glmoe_device_built(GLMOE_DEVICE_CUDA) ? ", cuda" : "");
    char desc[512];
    if (glmoe_device_built(GLMOE_DEVICE_CUDA)) {
        glmoe_status s = glmoe_device_check(GLMOE_DEVICE_CUDA, desc, sizeof desc);
        printf("gpu: %s%s\n", s ? "none usable: " : "", desc);
    } else {
        printf("gpu: none (built without the CUDA backend)\n");
    }
    return cli_stdout_ok() ? 0 : cli_stdout_failed("--version");
}

int main(int argc, char **argv) {
    /* A closed pipe is EPIPE on the write, seen and reported by cli_stdout_ok (output.c), not a
     * signal that kills glmoe in the middle of a line. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    /* `glmoe help CMD` is `glmoe CMD --help`. */
    char *help_argv[] = {argv[0], argc > 2 ? argv[2] : NULL, "--help", NULL};
    if (!strcmp(argv[1], "help") && argc > 2) {
        argc = 3;
        argv = help_argv;
    } else if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return cli_stdout_ok() ? 0 : cli_stdout_failed("help");
    }
    if (!strcmp(argv[1], "--version")) return print_version();
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name)) continue;
        int rc = commands[i].run(argc - 1, argv + 1);
        /* Output lost on the way out (the last buffer, or an earlier write) is a failure too; a
         * command that failed already said why, once. */
        if (!cli_stdout_ok() && rc == 0) rc = cli_stdout_failed(commands[i].name);
        return rc;
    }
    fprintf(stderr, "glmoe: unknown command \"%s\" (try glmoe --help)\n", argv[1]);
    return CLI_EXIT_USAGE;
}
