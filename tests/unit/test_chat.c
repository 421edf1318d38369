/*
 * test_chat.c — the chat renderer and the tool-call parser (src/tokenizer/chat.h).
 *
 *  1. Golden renders: every case of tests/data/chat/glm45_golden.jsonl and glm47_golden.jsonl
 *     (made by tools/reference/make_chat_golden.py with jinja2 + transformers from the official
 *     templates) must come out byte for byte; a mismatch prints the first differing byte.
 *  2. repr(float): 3720 doubles (every power of two, random bit patterns) against Python's repr.
 *  3. Bad input: each refused with GLMOE_E_ARG and the exact one-line message.
 *  4. The tool-call parser: fixed outputs in both styles, error cases, and a round trip of random
 *     calls through the renderer and back (fresh seed each run, printed).
 *
 * Run: build/test_chat <repo root>   (ctest passes the root).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"
#include "tokenizer/chat.h"

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = (size_t)n;
    return buf;
}

/* Prints s[from, from+n) with control characters escaped, for mismatch reports. */
static void show(const char *label, const char *s, size_t len, size_t from, size_t n) {
    fprintf(stderr, "    %s: \"", label);
    for (size_t i = from; i < len && i < from + n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stderr);
        else if (c < 0x20) fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    fputs("\"\n", stderr);
}

static chat_flag flag_of(const json_t *v) {
    if (!v || json_is_null(v)) return CHAT_FLAG_UNSET;
    return json_is_true(v) ? CHAT_FLAG_TRUE : CHAT_FLAG_FALSE;
}

/* ---- 1. golden renders -------------------------------------------------------------------- */

static void test_golden(const char *root, const char *file, chat_style style) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/chat/%s", root, file);
    char *data = slurp(path, NULL);
    CHECK(data != NULL, "cannot read %s", path);
    if (!data) return;
    int ncases = 0, nok = 0;
    for (char *line = strtok(data, "\n"); line; line = strtok(NULL, "\n")) {
        json_error_t je;
        json_t *c = json_loads(line, 0, &je);
        CHECK(c != NULL, "%s: bad line: %s", file, je.text);
        if (!c) continue;
        ncases++;
        const char *name = json_string_value(json_object_get(c, "name"));
        const char *expected = json_string_value(json_object_get(c, "expected"));
        size_t elen = json_string_length(json_object_get(c, "expected"));
        chat_options opt;
        chat_options_default(&opt);
        opt.style = style;
        opt.add_generation_prompt = json_is_true(json_object_get(c, "add_generation_prompt"));
        opt.enable_thinking = flag_of(json_object_get(c, "enable_thinking"));
        opt.clear_thinking = flag_of(json_object_get(c, "clear_thinking"));

        json_t *messages = json_object_get(c, "messages");
        char *before = json_dumps(messages, JSON_COMPACT | JSON_PRESERVE_ORDER);
        char *out = NULL;
        size_t olen = 0;
        gm_err err = {0};
        glmoe_status st = chat_render(&out, &olen, messages, json_object_get(c, "tools"), &opt, &err);
        CHECK(st == GLMOE_OK, "%s/%s: render failed: %s", file, name, err.msg);
        if (st == GLMOE_OK) {
            bool same = olen == elen && memcmp(out, expected, elen) == 0 && strlen(out) == olen;
            CHECK(same, "%s/%s: rendered text differs from the template's", file, name);
            if (!same) {
                size_t k = 0;
                while (k < olen && k < elen && out[k] == expected[k]) k++;
                size_t from = k > 40 ? k - 40 : 0;
                fprintf(stderr, "    first difference at byte %zu (got %zu bytes, want %zu)\n", k,
                        olen, elen);
                show("got ", out, olen, from, 100);
                show("want", expected, elen, from, 100);
            } else {
                nok++;
            }
        }
        /* The renderer must not touch its input (string arguments are parsed into a copy). */
        char *after = json_dumps(messages, JSON_COMPACT | JSON_PRESERVE_ORDER);
        CHECK(before && after && strcmp(before, after) == 0, "%s/%s: input was modified", file, name);
        free(before);
        free(after);
        free(out);
        json_decref(c);
    }
    CHECK(ncases >= 100, "%s: only %d cases", file, ncases);
    printf("  %s: %d/%d cases byte-identical\n", file, nok, ncases);
    free(data);
}

/* ---- 2. repr(float) ------------------------------------------------------------------------- */

static void test_floats(const char *root) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/chat/py_float_repr.json", root);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    CHECK(doc != NULL, "cannot read %s: %s", path, je.text);
    if (!doc) return;
    json_t *cases = json_object_get(doc, "cases");
    size_t bad = 0;
    for (size_t i = 0; i < json_array_size(cases); i++) {
        json_t *c = json_array_get(cases, i);
        uint64_t bits = strtoull(json_string_value(json_array_get(c, 0)), NULL, 16);
        double x;
        memcpy(&x, &bits, sizeof x);
        const char *want = json_string_value(json_array_get(c, 1));
        json_t *v = json_real(x);
        char *got = NULL;
        chat_json_dumps(&got, v, NULL);
        if (!got || strcmp(got, want) != 0) {
            if (bad++ < 10) fprintf(stderr, "    repr(%016" PRIx64 "): got %s, want %s\n", bits, got, want);
        }
        free(got);
        json_decref(v);
    }
    CHECK(bad == 0, "%zu of %zu doubles differ from Python's repr", bad, json_array_size(cases));
    CHECK(json_array_size(cases) > 3000, "too few float cases");
    json_decref(doc);

    /* Escaping: only '"', '\\' and C0 controls; DEL, U+2028 and non-ASCII stay raw. */
    json_t *s = json_pack("{s:s, s:[i, f, b, n]}", "k\"ey", "\x01\x1f\x7f\xe2\x80\xa8\xc3\xa9\"\\\b\f\n\r\t",
                          "l", -7, 0.5, 1);
    char *got = NULL;
    chat_json_dumps(&got, s, NULL);
    const char *want = "{\"k\\\"ey\": \"\\u0001\\u001f\x7f\xe2\x80\xa8\xc3\xa9\\\"\\\\\\b\\f\\n\\r\\t\", "
                       "\"l\": [-7, 0.5, true, null]}";
    CHECK(got && strcmp(got, want) == 0, "json.dumps escaping: got %s", got);
    free(got);
    json_decref(s);
}

/* ---- 3. bad input ---------------------------------------------------------------------------- */

typedef struct bad_case {
    const char *messages, *tools;
    const char *msg; /* exact, or a prefix when it ends in '*' */
} bad_case;

static const bad_case BAD[] = {
    {"[{\"content\":\"hi\"}]", NULL, "messages[0]: missing \"role\""},
    {"[{\"role\":null,\"content\":\"hi\"}]", NULL, "messages[0]: missing \"role\""},
    {"[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"bot\",\"content\":\"x\"}]", NULL,
     "messages[1].role: unknown role \"bot\" (expected system, user, assistant or tool)"},
    {"[{\"role\":\"bo\\nt\"}]", NULL,
     "messages[0].role: unknown role \"bo?t\" (expected system, user, assistant or tool)"},
    {"[{\"role\":5}]", NULL, "messages[0].role: expected a string, got a number"},
    {"[3]", NULL, "messages[0]: expected an object, got a number"},
    {"{\"role\":\"user\"}", NULL, "messages: expected an array, got an object"},
    {"[{\"role\":\"user\",\"content\":{\"a\":1}}]", NULL,
     "messages[0].content: expected a string, an array of parts or null, got an object"},
    {"[{\"role\":\"user\",\"content\":\"ok\"},{\"role\":\"system\",\"content\":12}]", NULL,
     "messages[1].content: expected a string, an array of parts or null, got a number"},
    {"[{\"role\":\"assistant\",\"content\":true}]", NULL,
     "messages[0].content: expected a string, an array of parts or null, got a boolean"},
    {"[{\"role\":\"user\",\"content\":[\"a\",{\"type\":\"text\",\"text\":3}]}]", NULL,
     "messages[0].content[1].text: expected a string, got a number"},
    {"[{\"role\":\"assistant\",\"content\":\"x\",\"reasoning_content\":5}]", NULL,
     "messages[0].reasoning_content: expected a string or null, got a number"},
    {"[{\"role\":\"assistant\",\"content\":\"x\",\"reasoning\":[]}]", NULL,
     "messages[0].reasoning: expected a string or null, got an array"},
    {"[{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"assistant\",\"tool_calls\":[{\"type\":"
     "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1,2]\"}}]}]",
     NULL, "messages[1].tool_calls[0].function.arguments: the JSON string holds an array, expected an object"},
    {"[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":\"{bad\"}}]}]",
     NULL, "messages[0].tool_calls[0].function.arguments: not valid JSON at column *"},
    {"[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\",\"arguments\":42}}]}]", NULL,
     "messages[0].tool_calls[0].function.arguments: expected an object or a JSON string of one, got a number"},
    {"[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":\"f\"}}]}]", NULL,
     "messages[0].tool_calls[0].function.arguments: missing"},
    {"[{\"role\":\"assistant\",\"tool_calls\":[{\"name\":\"f\",\"arguments\":[1]}]}]", NULL,
     "messages[0].tool_calls[0].arguments: expected an object or a JSON string of one, got an array"},
    {"[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"arguments\":{}}}]}]", NULL,
     "messages[0].tool_calls[0].function.name: missing"},
    {"[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":{\"name\":3,\"arguments\":{}}}]}]", NULL,
     "messages[0].tool_calls[0].function.name: expected a string, got a number"},
    {"[{\"role\":\"assistant\",\"tool_calls\":\"x\"}]", NULL,
     "messages[0].tool_calls: expected an array, got a string"},
    {"[{\"role\":\"assistant\",\"tool_calls\":[5]}]", NULL,
     "messages[0].tool_calls[0]: expected an object, got a number"},
    {"[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":\"f\"}]}]", NULL,
     "messages[0].tool_calls[0].function: expected an object, got a string"},
    {"[{\"role\":\"tool\",\"content\":{\"a\":1}}]", NULL,
     "messages[0].content: expected a string, an array of results or null, got an object"},
    {"[{\"role\":\"tool\",\"content\":[\"ok\",{\"x\":1}]}]", NULL,
     "messages[0].content[1]: expected a string or an object with a string \"output\", got an object without one"},
    {"[{\"role\":\"tool\",\"content\":[7]}]", NULL,
     "messages[0].content[0]: expected a string or an object with a string \"output\", got a number"},
    {"[{\"role\":\"user\",\"content\":\"hi\"}]", "{\"type\":\"function\"}",
     "tools: expected an array or null, got an object"},
    {"[{", NULL, "messages: invalid JSON at line 1 column *"},
    {"[]", "[", "tools: invalid JSON at line 1 column *"},
};

static void test_bad_inputs(void) {
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const bad_case *b = &BAD[i];
        for (int style = CHAT_STYLE_GLM45; style <= CHAT_STYLE_GLM47; style++) {
            chat_options opt;
            chat_options_default(&opt);
            opt.style = (chat_style)style;
            char *out = (char *)"sentinel";
            gm_err err = {0};
            glmoe_status st = chat_render_json(&out, NULL, b->messages, b->tools, &opt, &err);
            size_t n = strlen(b->msg);
            bool prefix = b->msg[n - 1] == '*';
            bool match = prefix ? strncmp(err.msg, b->msg, n - 1) == 0 : strcmp(err.msg, b->msg) == 0;
            CHECK(st == GLMOE_E_ARG && err.code == GLMOE_E_ARG, "case %zu: status %d", i, (int)st);
            CHECK(match, "case %zu: message\n    got:  %s\n    want: %s", i, err.msg, b->msg);
            CHECK(out == NULL, "case %zu: *out not reset on failure", i);
            CHECK(strchr(err.msg, '\n') == NULL, "case %zu: message is not one line", i);
        }
    }
    /* Valid edge inputs the template accepts. */
    char *out = NULL;
    size_t len = 0;
    CHECK(chat_render_json(&out, &len, "[]", "null", NULL, NULL) == GLMOE_OK && out &&
              strcmp(out, "[gMASK]<sop><|assistant|>") == 0 && len == strlen(out),
          "empty conversation: %s", out ? out : "(null)");
    free(out);
    out = NULL;
    chat_options opt;
    chat_options_default(&opt);
    opt.add_generation_prompt = false;
    CHECK(chat_render_json(&out, &len, "[]", NULL, &opt, NULL) == GLMOE_OK && out &&
              strcmp(out, "[gMASK]<sop>") == 0 && len == 12,
          "no prompt: %s", out ? out : "(null)");
    free(out);
}

/* ---- 4. tool-call parser ----------------------------------------------------------------------- */

static const char *TOOLS =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"city\":{\"type\":\"string\"},\"days\":{\"type\":\"integer\"},\"code\":{\"type\":\"string\"}}}}}]";

static void check_calls(const char *what, const char *text, const json_t *tools, const char *want_calls,
                        const char *want_content) {
    json_t *calls = NULL;
    char *content = NULL;
    gm_err err = {0};
    glmoe_status st = chat_parse_tool_calls(&calls, &content, text, strlen(text), tools, &err);
    CHECK(st == GLMOE_OK, "%s: %s", what, err.msg);
    json_t *want = json_loads(want_calls, 0, NULL);
    char *got = calls ? json_dumps(calls, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    CHECK(want && calls && json_equal(calls, want), "%s: calls %s", what, got ? got : "(null)");
    CHECK(content && strcmp(content, want_content) == 0, "%s: content \"%s\"", what, content ? content : "(null)");
    free(got);
    free(content);
    json_decref(want);
    json_decref(calls);
}

static void test_parser_fixed(void) {
    json_t *tools = json_loads(TOOLS, 0, NULL);
    /* GLM-4.5 newline style; "code" is a string parameter, so "007" stays a string. */
    check_calls("glm45",
                "\n<think>need it</think>\nChecking.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
                "<arg_value> Paris </arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n"
                "<arg_key>code</arg_key>\n<arg_value>007</arg_value>\n<arg_key>extra</arg_key>\n"
                "<arg_value>{\"a\": [1, 2.5]}</arg_value>\n</tool_call>",
                tools,
                "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":{"
                "\"city\":\" Paris \",\"days\":3,\"code\":\"007\",\"extra\":{\"a\":[1,2.5]}}}}]",
                "\n<think>need it</think>\nChecking.\n");
    /* GLM-4.7 compact style, two calls, no schema: JSON-looking values are parsed, others kept. */
    check_calls("glm47",
                "<tool_call>get_weather<arg_key>city</arg_key><arg_value>Lyon</arg_value>"
                "<arg_key>days</arg_key><arg_value>007</arg_value></tool_call>"
                "<tool_call>ping</tool_call>",
                NULL,
                "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":{"
                "\"city\":\"Lyon\",\"days\":\"007\"}}},"
                "{\"type\":\"function\",\"function\":{\"name\":\"ping\",\"arguments\":{}}}]",
                "");
    check_calls("no calls", "Just text, 42.", tools, "[]", "Just text, 42.");

    static const struct {
        const char *text, *msg;
    } errs[] = {
        {"hi <tool_call>f\n<arg_key>a</arg_key>", "tool call 0 at byte 3: <tool_call> without </tool_call>"},
        {"<tool_call>\n<arg_key>a</arg_key><arg_value>1</arg_value></tool_call>",
         "tool call 0 at byte 11: empty function name"},
        {"<tool_call>f\n<arg_key>a<arg_value>1</arg_value></tool_call>",
         "tool call 0 at byte 13: <arg_key> without </arg_key>"},
        {"<tool_call>f\n<arg_key>a</arg_key>x<arg_value>1</arg_value></tool_call>",
         "tool call 0 at byte 23: </arg_key> not followed by <arg_value>"},
        {"<tool_call>f\n<arg_key>a</arg_key> <arg_value>1</tool_call>",
         "tool call 0 at byte 34: <arg_value> without </arg_value>"},
        {"<tool_call>f</tool_call><tool_call>g\n<arg_key>a</arg_key><arg_value>\xff</arg_value></tool_call>",
         "tool call 1: an argument value is not valid UTF-8 (or holds NUL)"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        json_t *calls = (json_t *)1;
        gm_err err = {0};
        glmoe_status st = chat_parse_tool_calls(&calls, NULL, errs[i].text, strlen(errs[i].text), NULL, &err);
        CHECK(st == GLMOE_E_FORMAT && calls == NULL, "parser error %zu: status %d", i, (int)st);
        CHECK(strcmp(err.msg, errs[i].msg) == 0, "parser error %zu:\n    got:  %s\n    want: %s", i,
              err.msg, errs[i].msg);
    }
    json_decref(tools);
}

/* Random argument values that survive render → parse: strings for string-typed parameters
 * (anything but the closing tag), JSON for the others. */
static json_t *random_value(unsigned *seed, int depth) {
    static const char *pieces[] = {"a", " ", "\n", "é", "中", "😀", "\"", "\\", "<", ">", "{", "1", "\t", "x y"};
    int kind = rand_r(seed) % (depth < 2 ? 7 : 5);
    switch (kind) {
    case 0: return json_integer((json_int_t)(rand_r(seed) % 2000001) - 1000000);
    case 1: {
        double d = ((double)rand_r(seed) / RAND_MAX - 0.5) * (double)(1 << (rand_r(seed) % 30));
        return json_real(d * ((rand_r(seed) % 3) ? 1.0 : 1e-9));
    }
    case 2: return json_boolean(rand_r(seed) % 2);
    case 3: return json_null();
    case 4: {
        char buf[128] = "";
        int n = 1 + rand_r(seed) % 8;
        for (int i = 0; i < n; i++) strcat(buf, pieces[rand_r(seed) % (sizeof pieces / sizeof pieces[0])]);
        return json_string(buf);
    }
    case 5: {
        json_t *a = json_array();
        for (int i = rand_r(seed) % 4; i > 0; i--) json_array_append_new(a, random_value(seed, depth + 1));
        return a;
    }
    default: {
        json_t *o = json_object();
        char key[16];
        for (int i = rand_r(seed) % 4; i > 0; i--) {
            snprintf(key, sizeof key, "k%d", rand_r(seed) % 100);
            json_object_set_new(o, key, random_value(seed, depth + 1));
        }
        return o;
    }
    }
}

static void test_parser_round_trip(void) {
    unsigned seed = (unsigned)time(NULL);
    printf("  round-trip seed %u\n", seed);
    int bad = 0;
    for (int iter = 0; iter < 300; iter++) {
        /* Parameters s0..s2 are declared strings; v0..v3 are anything. */
        json_t *props = json_object();
        json_t *args = json_object();
        char key[24];
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof key, "s%d", i);
            json_object_set_new(props, key, json_pack("{s:s}", "type", "string"));
        }
        int nargs = rand_r(&seed) % 6;
        for (int i = 0; i < nargs; i++) {
            json_t *v = random_value(&seed, 0);
            if (json_is_string(v) && rand_r(&seed) % 2) {
                snprintf(key, sizeof key, "s%d", i % 3); /* declared string: kept verbatim */
            } else {
                if (json_is_string(v)) {
                    /* An undeclared string comes back as a string only if its trimmed text is
                     * not JSON, which random pieces ("1", "\"") could make it. */
                    json_decref(v);
                    v = json_string("plain words");
                }
                snprintf(key, sizeof key, "v%d", i);
            }
            json_object_set_new(args, key, v);
        }
        json_t *tools = json_pack("[{s:s, s:{s:s, s:{s:s, s:o}}}]", "type", "function", "function", "name",
                                  "f", "parameters", "type", "object", "properties", props);
        json_t *messages = json_pack("[{s:s, s:s}, {s:s, s:[{s:s, s:{s:s, s:O}}]}]", "role", "user",
                                     "content", "go", "role", "assistant", "tool_calls", "type",
                                     "function", "function", "name", "f", "arguments", args);
        for (int style = CHAT_STYLE_GLM45; style <= CHAT_STYLE_GLM47; style++) {
            chat_options opt;
            chat_options_default(&opt);
            opt.style = (chat_style)style;
            opt.add_generation_prompt = false;
            char *out = NULL;
            size_t len = 0;
            gm_err err = {0};
            json_t *calls = NULL;
            bool ok = chat_render(&out, &len, messages, tools, &opt, &err) == GLMOE_OK;
            const char *turn = ok ? strstr(out, "<|user|>") : NULL;
            turn = turn ? strstr(turn, "<|assistant|>") : NULL;
            ok = ok && turn && chat_parse_tool_calls(&calls, NULL, turn, len - (size_t)(turn - out), tools, &err) == GLMOE_OK;
            json_t *got = ok ? json_object_get(json_object_get(json_array_get(calls, 0), "function"), "arguments") : NULL;
            if (!ok || json_array_size(calls) != 1 || !json_equal(got, args)) {
                if (bad++ < 3) {
                    char *a = json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER);
                    char *g = got ? json_dumps(got, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
                    fprintf(stderr, "    style %d: args %s came back as %s (%s)\n", style, a, g ? g : "-", err.msg);
                    free(a);
                    free(g);
                }
            }
            json_decref(calls);
            free(out);
        }
        json_decref(messages);
        json_decref(tools);
        json_decref(args);
    }
    CHECK(bad == 0, "%d round trips lost their arguments (seed %u)", bad, seed);
}

int main(int argc, char **argv) {
    const char *root = argc > 1 ? argv[1] : ".";
    test_golden(root, "glm45_golden.jsonl", CHAT_STYLE_GLM45);
    test_golden(root, "glm47_golden.jsonl", CHAT_STYLE_GLM47);
    test_floats(root);
    test_bad_inputs();
    test_parser_fixed();
    test_parser_round_trip();
    return test_summary("test_chat");
}
