/*
 * fuzz_safetensors_index.c — libFuzzer target for the shard index: model.safetensors.index.json
 * read by st_set_open_dir() (src/io/safetensors_index.c), with its shards.
 *
 * The index parser has no in-memory entry point, so the target works on a real directory (under
 * /dev/shm when it exists): at start-up it writes the shards that the index of
 * tests/golden/shared2 names, each holding a 4-byte F32 tensor for every name mapped to it, plus
 * two traps (an empty file "empty.safetensors" and a directory "dir.safetensors"). Each input is
 * written as the directory's model.safetensors.index.json and opened. Seeds (corpus/index/) are
 * real index files, so the fuzzer starts from indexes that load and mutates names, shard names
 * and structure.
 *
 * Promises checked on every accepted index: the input is a JSON object whose weight_map maps
 * exactly the reachable tensors, each found by name in the shard the map names (by its plain file
 * name: an accepted "./x" or "../dir/x" would fail this), and nothing else is reachable. Every
 * refusal: a status and a one-line message. The path-traversal cases themselves (spec §8 item 35)
 * are unit tests in tests/unit/test_safetensors.c.
 *
 * Build and run: `make fuzz` (cmake/fuzz.cmake, tests/fuzz/run_fuzzers.sh).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_util.h"
#include "io/safetensors.h"

#define FIXTURE_INDEX GLMOE_SOURCE_DIR "/tests/golden/shared2/model.safetensors.index.json"

static char g_dir[256];
static char g_index_path[300];

static bool write_file(const char *path, const void *data, size_t len) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return false;
    const uint8_t *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            close(fd);
            return false;
        }
        p += w;
        len -= (size_t)w;
    }
    return close(fd) == 0;
}

/* One shard: an F32 [1] tensor (4 random bytes) for every name the index maps to `shard`. */
static void write_shard(const json_t *wmap, const char *shard) {
    json_t *hdr = json_object();
    size_t n = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)wmap, key, v) {
        if (strcmp(json_string_value(v), shard) != 0) continue;
        json_object_set_new(hdr, key, json_pack("{s:s, s:[i], s:[I, I]}", "dtype", "F32", "shape", 1,
                                                "data_offsets", (json_int_t)(4 * n), (json_int_t)(4 * n + 4)));
        n++;
    }
    char *text = json_dumps(hdr, JSON_COMPACT);
    size_t tlen = strlen(text), padded = (tlen + 7) & ~(size_t)7, total = 8 + padded + 4 * n;
    uint8_t *buf = malloc(total);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, text, tlen);
    memset(buf + 8 + tlen, ' ', padded - tlen);
    for (size_t i = 0; i < 4 * n; i++) buf[8 + padded + i] = (uint8_t)(0x3f ^ i);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", g_dir, shard);
    if (!write_file(path, buf, total)) {
        fprintf(stderr, "fuzz_safetensors_index: cannot write %s\n", path);
        exit(1);
    }
    free(buf);
    free(text);
    json_decref(hdr);
}

static void remove_fixture(void) {
    char cmd[400];
    /* Only the directory made by mkdtemp below, whose name we know. */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (g_dir[0] && system(cmd) != 0) fprintf(stderr, "fuzz_safetensors_index: could not remove %s\n", g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    snprintf(g_dir, sizeof g_dir, "%s/glmoe-fuzz-index-XXXXXX", base);
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "fuzz_safetensors_index: mkdtemp %s: %s\n", g_dir, strerror(errno));
        exit(1);
    }
    atexit(remove_fixture);
    snprintf(g_index_path, sizeof g_index_path, "%s/model.safetensors.index.json", g_dir);

    json_error_t jerr;
    json_t *index = json_load_file(FIXTURE_INDEX, 0, &jerr);
    const json_t *wmap = json_object_get(index, "weight_map");
    if (!json_is_object(wmap)) {
        fprintf(stderr, "fuzz_safetensors_index: cannot read %s: %s\n", FIXTURE_INDEX, jerr.text);
        exit(1);
    }
    const char *key;
    json_t *v;
    json_t *done = json_object();
    json_object_foreach((json_t *)wmap, key, v) {
        if (json_object_get(done, json_string_value(v))) continue;
        write_shard(wmap, json_string_value(v));
        json_object_set_new(done, json_string_value(v), json_true());
    }
    json_decref(done);
    json_decref(index);

    char path[600];
    snprintf(path, sizeof path, "%s/empty.safetensors", g_dir);
    write_file(path, "", 0);
    snprintf(path, sizeof path, "%s/dir.safetensors", g_dir);
    mkdir(path, 0755);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!write_file(g_index_path, data, size)) return 0;
    st_set *set = NULL;
    gm_err err = {0};
    glmoe_status st = st_set_open_dir(&set, g_dir, &err);
    if (st != GLMOE_OK) {
        REQUIRE(set == NULL);
        REQUIRE(st == GLMOE_E_FORMAT || st == GLMOE_E_IO || st == GLMOE_E_NOMEM);
        REQUIRE(fuzz_msg_ok(err.msg, ""));
        return 0;
    }
    /* Accepted: the input is an index whose weight_map is exactly what is reachable. */
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    const json_t *wmap = json_object_get(root, "weight_map");
    REQUIRE(json_is_object(wmap) && json_object_size(wmap) > 0);
    REQUIRE(st_set_count(set) == json_object_size(wmap));
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)wmap, key, v) {
        const st_tensor *t = st_set_find(set, key);
        REQUIRE(t && strcmp(t->name, key) == 0);
        REQUIRE(json_is_string(v) && strcmp(st_file_name(t->file), json_string_value(v)) == 0);
        REQUIRE(t->nbytes == 4 && t->data != NULL);
    }
    for (size_t i = 0; i < st_set_count(set); i++) {
        const st_tensor *t = st_set_tensor(set, i);
        REQUIRE(t && st_set_find(set, t->name) == t && json_object_get(wmap, t->name));
    }
    REQUIRE(st_set_tensor(set, st_set_count(set)) == NULL);
    json_decref(root);
    st_set_close(set);
    return 0;
}
