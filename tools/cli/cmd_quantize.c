/*
 * cmd_quantize.c — `glmoe quantize`: an MLX-format quantized copy of a float checkpoint
 * (glmoe_quantize_checkpoint), with progress on stderr.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char *const help =
    "usage: glmoe quantize -m IN -o OUT [--bits B] [--group G] [-q Q] [-v]\n"
    "\n"
    "Writes an MLX-format quantized copy of the float checkpoint IN to the new directory OUT, as\n"
    "`mlx_lm.convert -q --q-bits B --q-group-size G` would, so that glmoe and mlx-lm both load it:\n"
    "the Linear modules, the embedding, lm_head and the experts (stacked as mlx-lm's switch_mlp)\n"
    "in MLX's affine format where the group divides their input width; the router, norms and\n"
    "biases as they are; config.json with the quantization block; the tokenizer files copied.\n"
    "It streams tensor by tensor and never overwrites: OUT must not exist.\n"
    "\n"
    "  -m, --model IN   the float checkpoint (Hugging Face directory)\n"
    "  -o, --out OUT    the new directory\n"
    "  --bits B         2, 3, 4, 5, 6 or 8 (default 4)\n"
    "  --group G        32, 64 or 128 (default 64)\n"
    "  -q, --quantize Q the same as q<bits>[g<group>], e.g. q4, q8, q3g32\n"
    "  -v, --verbose    a line per tensor\n";

typedef struct progress {
    bool verbose;
    int last_percent;
} progress;

static void on_progress(uint64_t done, uint64_t total, const char *what, void *user) {
    progress *p = user;
    const int percent = total ? (int)(100.0 * (double)done / (double)total) : 100;
    if (p->verbose) {
        fprintf(stderr, "glmoe quantize: %3d%% %s\n", percent, what);
    } else if (percent / 10 != p->last_percent / 10 || percent == 100) {
        fprintf(stderr, "glmoe quantize: %3d%% (%.2f of %.2f GB read)\n", percent, (double)done / 1e9,
                (double)total / 1e9);
    }
    p->last_percent = percent;
}

int cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize", *in = NULL, *out = NULL;
    glmoe_quantize q = {4, 64};
    progress p = {.last_percent = -10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(help, stdout);
            return 0;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            p.verbose = true;
            continue;
        }
        const bool known = !strcmp(a, "-m") || !strcmp(a, "--model") || !strcmp(a, "-o") || !strcmp(a, "--out") ||
                           !strcmp(a, "--bits") || !strcmp(a, "--group") || !strcmp(a, "-q") || !strcmp(a, "--quantize");
        if (!known) return cli_bad_option(cmd, a, help, false);
        if (i + 1 >= argc) {
            cli_error(cmd, "%s needs a value", a);
            return CLI_EXIT_USAGE;
        }
        const char *v = argv[++i];
        long n;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            in = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--out")) {
            out = v;
        } else if (!strcmp(a, "--bits")) {
            if (!cli_parse_int(cmd, a, v, 2, 8, &n)) return CLI_EXIT_USAGE;
            if (n == 7) {
                cli_error(cmd, "--bits expects 2, 3, 4, 5, 6 or 8, got 7");
                return CLI_EXIT_USAGE;
            }
            q.bits = (int32_t)n;
        } else if (!strcmp(a, "--group")) {
            if (!cli_parse_int(cmd, a, v, 32, 128, &n)) return CLI_EXIT_USAGE;
            if (n != 32 && n != 64 && n != 128) {
                cli_error(cmd, "--group expects 32, 64 or 128, got %s", v);
                return CLI_EXIT_USAGE;
            }
            q.group_size = (int32_t)n;
        } else if (!cli_parse_quantize(cmd, a, v, &q)) {
            return CLI_EXIT_USAGE;
        }
    }
    if (!in || !out) {
        cli_error(cmd, "needs -m IN and -o OUT");
        return CLI_EXIT_USAGE;
    }
    cli_install_log(p.verbose);
    const double t0 = cli_now();
    char err[1024];
    if (glmoe_quantize_checkpoint(in, out, &q, on_progress, &p, err, sizeof err) != GLMOE_OK) {
        cli_error(cmd, "%s", err);
        return CLI_EXIT_FAIL;
    }
    fprintf(stderr, "glmoe quantize: wrote %s (q%d g%d) in %.1f s\n", out, q.bits, q.group_size, cli_now() - t0);
    return 0;
}
