/*
 * fuzz_cli_ids.c — libFuzzer target for the CLI's id-list parser (cli_parse_ids in
 * tools/cli/common.c, compiled into this target by cmake/fuzz.cmake), checked against a small
 * independent reading of its contract: comma-separated decimal integers in [0, 2^31), with
 * spaces, tabs and newlines allowed around numbers and commas, at least one number, no empty
 * item and no trailing comma.
 *
 * Input: the --ids text (up to its first NUL byte, as argv would carry it). The parser prints one
 * line to stderr on refusal; run with -close_fd_mask=2 to keep the log short
 * (tests/fuzz/run_fuzzers.sh does).
 *
 * Seeds: tests/fuzz/corpus/cli_ids/. Build and run: `make fuzz`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fuzz_util.h"

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n'; }

/* The reference: returns the number of ids (filling out[] up to cap) or -1 when refused. */
static long reference_parse(const char *s, int32_t *out, size_t cap) {
    long n = 0;
    for (;;) {
        while (is_space(*s)) s++;
        if (*s == '\0') return n > 0 ? n : -1;
        if (*s < '0' || *s > '9') return -1;
        uint64_t v = 0;
        while (*s >= '0' && *s <= '9') {
            v = v * 10 + (uint64_t)(*s++ - '0');
            if (v > INT32_MAX) return -1;
        }
        if ((size_t)n < cap) out[n] = (int32_t)v;
        n++;
        while (is_space(*s)) s++;
        if (*s == ',') {
            s++;
            while (is_space(*s)) s++;
            if (*s == '\0') return -1; /* trailing comma */
        } else if (*s != '\0') {
            return -1;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = fuzz_cstr(data, size); /* argv strings end at their first NUL */
    if (!text) return 0;
    int32_t *ids = NULL;
    size_t n = 0;
    bool ok = cli_parse_ids("fuzz", text, &ids, &n);
    size_t cap = strlen(text) / 2 + 1; /* ids are at least one digit and one separator apart */
    int32_t *want = malloc(cap * sizeof *want);
    long ref = want ? reference_parse(text, want, cap) : -2;
    if (ref != -2) {
        REQUIRE(ok == (ref >= 0));
        if (ok) {
            REQUIRE(n == (size_t)ref && n > 0);
            REQUIRE(memcmp(ids, want, n * sizeof *ids) == 0);
        }
    }
    if (ok) free(ids);
    free(want);
    free(text);
    return 0;
}
