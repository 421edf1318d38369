/*
 * test_chat_stream.c — the streaming parser of an assistant turn (glmoe_chat_stream_*), through the
 * public header, as an OpenAI-compatible server drives it.
 *
 *  1. Recorded turns, written by hand in the official GLM-4.5 (newlines) and GLM-4.7 (compact)
 *     formats: content only, reasoning then content, reasoning then one call, parallel calls,
 *     zero-argument calls, nested JSON / numbers / booleans / null / number-like strings declared
 *     "string" / CJK / emoji / quotes / backslashes / newlines in values, a <tool_call> inside the
 *     reasoning, '<' that is no tag, an empty think block, text after the calls, a turn cut off
 *     while thinking. Each has its expected reasoning, content and calls, and is fed whole, cut in
 *     two at every byte, one byte at a time and in random pieces: every way gives the expected
 *     result, which is also the one-shot result (chat_stream_check.h: glmoe_chat_parse_tool_calls
 *     on the text after the reasoning block).
 *  2. Bad turns (unterminated call or value, empty name, ill-formed UTF-8, a character cut off at
 *     the end) fail with GLMOE_E_FORMAT and the same one-line message however they are cut, as the
 *     one-shot parse fails; a character cut between pushes is not ill-formed.
 *  3. Random turns: well-formed ones made from random calls in both styles, and arbitrary mixes of
 *     tags and text; fresh seed each run, printed.
 *  4. The API: what comes out when (a name before its call ends, a held tag start), failures that
 *     stick, misuse, the info counters, bounded holding and linear time on 1 MiB pushed a byte at
 *     a time.
 *
 * Usage: test_chat_stream <repo root>   (the root is not needed)
 */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chat_stream_check.h"
#include "glmoe.h"
#include "test.h"

static const char *TOOLS =
    "[{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": \"integer\"},"
    " \"code\": {\"type\": \"string\"}}}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"search\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {\"query\": {\"type\": \"string\"}, \"filters\": {\"type\": \"array\"},"
    " \"limit\": {\"type\": \"integer\"}}}}},"
    " {\"type\": \"function\", \"function\": {\"name\": \"get_time\", \"parameters\": {\"type\": \"object\","
    " \"properties\": {}}}}]";

/* ---- running one turn every way ---------------------------------------------------------------- */

static unsigned g_seed;

/* Streams the turn whole, cut in two at every byte (when `all_splits`), one byte at a time and in
 * random pieces; each result must equal the one-shot one (and, for a failure, carry the same
 * message as the first). Returns the number of ways that disagreed; *first gets the whole-push
 * result (freed by the caller). */
static int every_way(const char *what, const char *text, size_t len, bool sir, const char *tools, bool all_splits,
                     cs_result *first) {
    cs_result want, got;
    char why[1024];
    int bad = 0;
    cs_reference(&want, text, len, sir, tools);
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    if (!cuts) abort();
    /* way -1: whole; 0..len: cut in two at `way`; len+1: bytes; len+2..len+41: random pieces */
    long n_ways = all_splits ? (long)len + 42 : 42;
    for (long w = -1; w < n_ways; w++) {
        long way = all_splits ? w : (w < 1 ? w : (long)len + w);
        size_t n_cuts = 0;
        if (way >= 0 && way <= (long)len) {
            cuts[n_cuts++] = (size_t)way;
        } else if (way == (long)len + 1) {
            for (size_t i = 0; i < len; i++) cuts[n_cuts++] = 1;
        } else if (way > (long)len + 1) {
            for (size_t at = 0; at < len && n_cuts < len;) {
                size_t k = (size_t)(rand_r(&g_seed) % 9); /* 0: an empty push */
                cuts[n_cuts++] = k;
                at += k;
            }
        }
        char why2[1024] = "";
        bool kept = cs_stream(&got, text, len, sir, tools, cuts, n_cuts, why2, sizeof why2);
        bool same = kept && cs_equal(&got, &want, why, sizeof why);
        if (same && w == -1) {
            *first = got;
            got = (cs_result){0};
        } else if (same && got.st != GLMOE_OK && strcmp(got.msg, first->msg) != 0) {
            snprintf(why, sizeof why, "message \"%.200s\", whole push \"%.200s\"", got.msg, first->msg);
            same = false;
        }
        if (!same && bad++ < 3)
            fprintf(stderr, "    %s: way %ld of %zu bytes: %s\n", what, way, len, kept ? why : why2);
        cs_result_free(&got);
    }
    free(cuts);
    cs_result_free(&want);
    return bad;
}

/* ---- 1. recorded turns ------------------------------------------------------------------------- */

typedef struct turn {
    const char *name;
    bool sir; /* starts_in_reasoning: the GLM-4.7 prompt ends with <think> */
    const char *text, *reasoning, *content;
    const char *calls[3][2]; /* name, arguments */
} turn;

static const turn TURNS[] = {
    /* GLM-4.5 / 4.6: "<|assistant|>" then "\n<think>...</think>\n", parts of calls on lines */
    {"4.5 content only (thinking off)", false, "\nThe capital of France is Paris.", "",
     "The capital of France is Paris.", {{0}}},
    {"4.5 reasoning then content", false, "\n<think>The user asks for 2+2. That is 4.</think>\nThe answer is 4.",
     "The user asks for 2+2. That is 4.", "The answer is 4.", {{0}}},
    {"4.5 reasoning then one call", false,
     "\n<think>I need the weather for Paris.</think>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
     "<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>",
     "I need the weather for Paris.", "", {{"get_weather", "{\"city\": \"Paris\", \"days\": 3}"}}},
    {"4.5 three parallel calls after content", false,
     "\n<think>Three cities.</think>\nLet me check all three.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
     "<arg_value>Paris</arg_value>\n</tool_call>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
     "<arg_value>東京</arg_value>\n</tool_call>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
     "<arg_value>São Paulo</arg_value>\n</tool_call>",
     "Three cities.", "Let me check all three.\n",
     {{"get_weather", "{\"city\": \"Paris\"}"}, {"get_weather", "{\"city\": \"東京\"}"},
      {"get_weather", "{\"city\": \"São Paulo\"}"}}},
    {"4.5 zero-argument call", false, "\n<think>Time?</think>\n<tool_call>get_time\n</tool_call>", "Time?", "",
     {{"get_time", "{}"}}},
    {"4.5 nested JSON, numbers, booleans, null, a number-like string", false,
     "\n<tool_call>search\n<arg_key>query</arg_key>\n<arg_value>007</arg_value>\n<arg_key>filters</arg_key>\n"
     "<arg_value>[{\"lang\": [\"en\", \"zh\"], \"after\": {\"year\": 2024, \"exact\": true}, \"score\": 0.5}]"
     "</arg_value>\n<arg_key>limit</arg_key>\n<arg_value>10</arg_value>\n<arg_key>flag</arg_key>\n"
     "<arg_value>false</arg_value>\n<arg_key>nothing</arg_key>\n<arg_value>null</arg_value>\n<arg_key>ratio"
     "</arg_key>\n<arg_value>1e-05</arg_value>\n</tool_call>",
     "", "",
     {{"search", "{\"query\": \"007\", \"filters\": [{\"lang\": [\"en\", \"zh\"], \"after\": {\"year\": 2024, "
                 "\"exact\": true}, \"score\": 0.5}], \"limit\": 10, \"flag\": false, \"nothing\": null, "
                 "\"ratio\": 1e-05}"}}},
    {"4.5 quotes, backslashes, newlines, CJK and emoji in values", false,
     "\n<think>Write the file.</think>\n<tool_call>write_file\n<arg_key>path</arg_key>\n"
     "<arg_value>C:\\temp\\\"x\".txt</arg_value>\n<arg_key>text</arg_key>\n"
     "<arg_value>line 1\nline 2\t\"quoted\" 中文 😀\n</arg_value>\n</tool_call>",
     "Write the file.", "",
     {{"write_file",
       "{\"path\": \"C:\\\\temp\\\\\\\"x\\\".txt\", \"text\": \"line 1\\nline 2\\t\\\"quoted\\\" 中文 😀\"}"}}},
    {"4.5 a <tool_call> in the reasoning is not a call", false,
     "\n<think>I could write <tool_call>get_weather\n<arg_key>city</arg_key> but I know it already.</think>\n"
     "It is sunny in Paris.",
     "I could write <tool_call>get_weather\n<arg_key>city</arg_key> but I know it already.",
     "It is sunny in Paris.", {{0}}},
    {"4.5 '<' that is no tag", false,
     "\n<think>Is a < b? <thinking> and </thin are not tags; <</think>\nYes: a < b, <b>bold</b>, <tool and "
     "<tool_call are text, x<y <",
     "Is a < b? <thinking> and </thin are not tags; <",
     "Yes: a < b, <b>bold</b>, <tool and <tool_call are text, x<y <", {{0}}},
    {"4.5 empty think block", false, "\n<think></think>\nHello!", "", "Hello!", {{0}}},
    {"4.5 text after the last call is dropped", false,
     "\n<think>Call it.</think>\n<tool_call>get_time\n</tool_call>\nI have asked for the time.", "Call it.", "",
     {{"get_time", "{}"}}},
    {"4.5 newlines around the reasoning and the content", false,
     "\n<think>\nLine 1\n\nLine 2\n\n</think>\n\nAnswer\n\n", "Line 1\n\nLine 2", "Answer\n\n", {{0}}},
    {"4.5 ends in the start of a tag", false, "\nThe tag is <tool_ca", "", "The tag is <tool_ca", {{0}}},
    {"4.5 declared strings stay verbatim", false,
     "\n<tool_call>get_weather\n<arg_key>code</arg_key>\n<arg_value>0042</arg_value>\n<arg_key>days</arg_key>\n"
     "<arg_value> 2 </arg_value>\n<arg_key>city</arg_key>\n<arg_value> 12 </arg_value>\n</tool_call>",
     "", "", {{"get_weather", "{\"code\": \"0042\", \"days\": 2, \"city\": \" 12 \"}"}}},
    {"4.5 a repeated key keeps its place and takes the last value", false,
     "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n"
     "<arg_value>1</arg_value>\n<arg_key>city</arg_key>\n<arg_value>Lyon</arg_value>\n</tool_call>",
     "", "", {{"get_weather", "{\"city\": \"Lyon\", \"days\": 1}"}}},
    {"4.5 text before <think> makes it all content", false, "\nOK <think>x</think>\ny", "",
     "OK <think>x</think>\ny", {{0}}},

    /* GLM-4.7: the prompt ends with "<think>" (thinking on), no newlines anywhere */
    {"4.7 reasoning then content", true, "The user wants 2+2.</think>4", "The user wants 2+2.", "4", {{0}}},
    {"4.7 reasoning then a call", true,
     "Need the weather.</think><tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris</arg_value>"
     "<arg_key>days</arg_key><arg_value>2</arg_value></tool_call>",
     "Need the weather.", "", {{"get_weather", "{\"city\": \"Paris\", \"days\": 2}"}}},
    {"4.7 parallel calls after content", true,
     "Two things.</think>Checking.<tool_call>get_weather<arg_key>city</arg_key><arg_value>Berlin</arg_value>"
     "</tool_call><tool_call>get_time</tool_call><tool_call>search<arg_key>query</arg_key><arg_value>42"
     "</arg_value></tool_call>",
     "Two things.", "Checking.",
     {{"get_weather", "{\"city\": \"Berlin\"}"}, {"get_time", "{}"}, {"search", "{\"query\": \"42\"}"}}},
    {"4.7 a zero-argument call without reasoning", true, "</think><tool_call>get_time</tool_call>", "", "",
     {{"get_time", "{}"}}},
    {"4.7 thinking off (the prompt ends with </think>)", false, "Hello there. 你好 👋", "", "Hello there. 你好 👋",
     {{0}}},
    {"4.7 nested values, quotes and backslashes", true,
     "Search.</think><tool_call>search<arg_key>query</arg_key><arg_value>\"quoted\" and \\backslash</arg_value>"
     "<arg_key>filters</arg_key><arg_value>[{\"k\": [1, 2.5, -3]}, {}]</arg_value><arg_key>limit</arg_key>"
     "<arg_value>true</arg_value></tool_call>",
     "Search.", "",
     {{"search", "{\"query\": \"\\\"quoted\\\" and \\\\backslash\", \"filters\": [{\"k\": [1, 2.5, -3]}, {}], "
                 "\"limit\": true}"}}},
    {"4.7 a whole call in the reasoning is not a call", true,
     "Maybe <tool_call>get_time</tool_call> would help; no.</think>It is noon.",
     "Maybe <tool_call>get_time</tool_call> would help; no.", "It is noon.", {{0}}},
    {"4.7 text after the calls is dropped", true, "</think>Sure.<tool_call>get_time</tool_call>Done, waiting.", "",
     "Sure.", {{"get_time", "{}"}}},
    {"4.7 the model writes <think> itself", false, "<think>a</think>b", "a", "b", {{0}}},
    {"4.7 cut off while thinking", true, "Still thinking about <tool_call> and", "Still thinking about <tool_call> and",
     "", {{0}}},
    {"empty turn", false, "", "", "", {{0}}},
};

static void test_recorded(void) {
    for (size_t t = 0; t < sizeof TURNS / sizeof TURNS[0]; t++) {
        const turn *c = &TURNS[t];
        cs_result r = {0};
        int bad = every_way(c->name, c->text, strlen(c->text), c->sir, TOOLS, true, &r);
        CHECK(bad == 0, "%s: %d ways of cutting it disagree with the one-shot parse", c->name, bad);
        CHECK(r.st == GLMOE_OK, "%s: %s", c->name, r.msg);
        if (r.st != GLMOE_OK) continue;
        CHECK(strcmp(r.reasoning.p, c->reasoning) == 0 && r.reasoning.n == strlen(c->reasoning),
              "%s: reasoning\n    got:  \"%s\"\n    want: \"%s\"", c->name, r.reasoning.p, c->reasoning);
        CHECK(strcmp(r.content.p, c->content) == 0 && r.content.n == strlen(c->content),
              "%s: content\n    got:  \"%s\"\n    want: \"%s\"", c->name, r.content.p, c->content);
        size_t n = 0;
        while (n < 3 && c->calls[n][0]) n++;
        CHECK(r.n_calls == n, "%s: %zu calls, want %zu", c->name, r.n_calls, n);
        for (size_t i = 0; i < n && i < r.n_calls; i++)
            CHECK(strcmp(r.names[i].p, c->calls[i][0]) == 0 && strcmp(r.args[i].p, c->calls[i][1]) == 0,
                  "%s: call %zu\n    got:  %s %s\n    want: %s %s", c->name, i, r.names[i].p, r.args[i].p,
                  c->calls[i][0], c->calls[i][1]);
        cs_result_free(&r);
    }
}

/* ---- 2. bad turns ------------------------------------------------------------------------------ */

static void test_bad(void) {
    static const struct {
        bool sir;
        const char *text, *msg;
    } cases[] = {
        {false, "\nSure. <tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>",
         "tool call 0 at byte 7: <tool_call> without </tool_call>"},
        {true, "ok</think><tool_call>get_time</tool_call><tool_call>get_wea",
         "tool call 1 at byte 41: <tool_call> without </tool_call>"},
        {false, "<tool_call>f\n<arg_key>a</arg_key> <arg_value>1</tool_call>",
         "tool call 0 at byte 34: <arg_value> without </arg_value>"},
        {false, "<tool_call>f\n<arg_key>a</arg_key> <arg_value>1",
         "tool call 0 at byte 0: <tool_call> without </tool_call>"},
        {false, "<tool_call>\n<arg_key>a</arg_key><arg_value>1</arg_value></tool_call>",
         "tool call 0 at byte 11: empty function name"},
        {true, "</think><tool_call>  <arg_key>a</arg_key><arg_value>1</arg_value></tool_call>",
         "tool call 0 at byte 19: empty function name"},
        {false, "<tool_call> </tool_call>", "tool call 0 at byte 11: empty function name"},
        {false, "<tool_call>f\n<arg_key>a<arg_value>1</arg_value></tool_call>",
         "tool call 0 at byte 13: <arg_key> without </arg_key>"},
        {false, "<tool_call>f\n<arg_key>a</arg_key>x<arg_value>1</arg_value></tool_call>",
         "tool call 0 at byte 23: </arg_key> not followed by <arg_value>"},
        {false, "<tool_call>f\n<arg_key>a</arg_key><arg_value>\xff</arg_value></tool_call>",
         "tool call 0: an argument value is not valid UTF-8 (or holds NUL)"},
        {false, "<tool_call>g\xc3\x28\n</tool_call>", "tool call 0: the function name is not valid UTF-8 (or holds NUL)"},
        {false, "\ncaf\xc3 <tool_call>f</tool_call>", "content: not valid UTF-8 (ill-formed sequence at byte 4)"},
        {false, "caf\xc3", "content: not valid UTF-8 (ill-formed sequence at byte 3)"},
        {false, "ok \xed\xa0\x80 surrogate", "content: not valid UTF-8 (ill-formed sequence at byte 3)"},
        {false, "ok \xf0\x9f\x98<tool_call>f</tool_call>", "content: not valid UTF-8 (ill-formed sequence at byte 3)"},
        {true, "ab\xff</think>", "reasoning: not valid UTF-8 (ill-formed sequence at byte 2)"},
        {false, "\n<think>\n\xe4\xb8\n</think>", "reasoning: not valid UTF-8 (ill-formed sequence at byte 9)"},
        {true, "thinking \xf0\x9f\x98", "reasoning: not valid UTF-8 (ill-formed sequence at byte 9)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cs_result r = {0};
        size_t len = strlen(cases[i].text);
        int bad = every_way(cases[i].msg, cases[i].text, len, cases[i].sir, TOOLS, true, &r);
        CHECK(bad == 0, "bad case %zu: %d ways of cutting it disagree with the one-shot parse", i, bad);
        CHECK(r.st == GLMOE_E_FORMAT && strcmp(r.msg, cases[i].msg) == 0,
              "bad case %zu: status %d\n    got:  %s\n    want: %s", i, (int)r.st, r.msg, cases[i].msg);
        cs_result_free(&r);
    }

    /* a character cut between pushes is whole once its end arrives: not refused, held meanwhile */
    glmoe_chat_stream *s = NULL;
    const glmoe_chat_delta *d;
    size_t n;
    CHECK(glmoe_chat_stream_create(&s, NULL, NULL, 0) == GLMOE_OK, "create");
    CHECK(glmoe_chat_stream_push(s, "caf\xc3", 4, &d, &n) == GLMOE_OK && n == 1 && d[0].len == 3 &&
              strcmp(d[0].text, "caf") == 0,
          "the first half of é is held");
    glmoe_chat_stream_info info;
    glmoe_chat_stream_get_info(s, &info);
    CHECK(info.n_held == 1, "one byte held, not %zu", info.n_held);
    CHECK(glmoe_chat_stream_push(s, "\xa9 \xf0\x9f", 4, &d, &n) == GLMOE_OK && n == 1 && strcmp(d[0].text, "\xc3\xa9 ") == 0,
          "é whole, half an emoji held");
    CHECK(glmoe_chat_stream_push(s, "\x98", 1, &d, &n) == GLMOE_OK && n == 0, "three quarters of it held");
    CHECK(glmoe_chat_stream_push(s, "\x80!", 2, &d, &n) == GLMOE_OK && n == 1 && strcmp(d[0].text, "\xf0\x9f\x98\x80!") == 0,
          "the emoji whole");
    CHECK(glmoe_chat_stream_finish(s, &d, &n) == GLMOE_OK && n == 0, "finish");
    glmoe_chat_stream_free(s);
}

/* ---- 3. random turns --------------------------------------------------------------------------- */

static const char *pick(const char *const *list, size_t n) { return list[(size_t)rand_r(&g_seed) % n]; }

/* A well-formed turn: reasoning (maybe), content (maybe), 0-3 calls with random arguments, in one of
 * the two styles; the text is appended to b. */
static void random_good_turn(cs_buf *b, bool glm47, bool sir) {
    static const char *words[] = {"the", " ", "\n", "é", "中文", "😀", "\"", "\\", "<", "<b>", "a < b", "{", "1",
                                  "\t", "<tool_call>", "</tool", "<think", "x y", "<arg_key>"};
    static const char *values[] = {"Paris", " 12 ", "007", "3", "-2.5", "true", "null", "[1, \"a\", {\"b\": []}]",
                                   "{\"x\": {\"y\": [true, false]}}", "\"quoted\"", "a\\b", "line\nline", "中文 😀",
                                   "1e400", "<b>", "", "  ", "{not json"};
    static const char *keys[] = {"city", "days", "code", "query", "filters", "limit", "k", " spaced "};
    static const char *names[] = {"get_weather", "search", "get_time", "other_tool"};
    const char *nl = glm47 ? "" : "\n";
    bool think = rand_r(&g_seed) % 3 != 0;
    if (sir || think) {
        if (!sir) cs_put(b, glm47 ? "<think>" : "\n<think>", glm47 ? 7 : 8);
        for (int i = rand_r(&g_seed) % 8; i > 0; i--) {
            const char *w = pick(words, sizeof words / sizeof words[0]);
            cs_put(b, w, strlen(w));
        }
        cs_put(b, "</think>", 8);
        cs_put(b, nl, strlen(nl));
    } else {
        cs_put(b, nl, strlen(nl));
    }
    for (int i = rand_r(&g_seed) % 6; i > 0; i--) {
        const char *w = pick(words, sizeof words / sizeof words[0]);
        if (strcmp(w, "<tool_call>") == 0) continue; /* that would open a call */
        cs_put(b, w, strlen(w));
    }
    int n_calls = rand_r(&g_seed) % 4;
    for (int c = 0; c < n_calls; c++) {
        const char *name = pick(names, sizeof names / sizeof names[0]);
        cs_put(b, nl, strlen(nl));
        cs_put(b, "<tool_call>", 11);
        cs_put(b, name, strlen(name));
        cs_put(b, nl, strlen(nl));
        for (int a = rand_r(&g_seed) % 4; a > 0; a--) {
            const char *k = pick(keys, sizeof keys / sizeof keys[0]), *v = pick(values, sizeof values / sizeof values[0]);
            cs_put(b, "<arg_key>", 9);
            cs_put(b, k, strlen(k));
            cs_put(b, "</arg_key>", 10);
            cs_put(b, nl, strlen(nl));
            cs_put(b, "<arg_value>", 11);
            cs_put(b, v, strlen(v));
            cs_put(b, "</arg_value>", 12);
            cs_put(b, nl, strlen(nl));
        }
        cs_put(b, "</tool_call>", 12);
    }
    if (rand_r(&g_seed) % 4 == 0) cs_put(b, "\ntrailing words", 15);
}

/* Anything: tags, their halves, newlines, text and broken UTF-8 in any order. */
static void random_any_turn(cs_buf *b) {
    static const char *pieces[] = {"\n", "\n\n", "<think>", "</think>", "<tool_call>", "</tool_call>", "<arg_key>",
                                   "</arg_key>", "<arg_value>", "</arg_value>", "<", "<too", "l_call>", "</thi",
                                   "nk>", "get_weather", "city", "3", "{\"a\": [1]}", "é", "中", "😀", "\xc3",
                                   "\xa9", "\xff", " ", "x", "\"", "\\", "\0"};
    for (int i = rand_r(&g_seed) % 24; i > 0; i--) {
        size_t k = (size_t)rand_r(&g_seed) % (sizeof pieces / sizeof pieces[0]);
        cs_put(b, pieces[k], pieces[k][0] ? strlen(pieces[k]) : 1);
    }
}

static void test_random(void) {
    printf("  random turns, seed %u\n", g_seed);
    int bad = 0, good_ok = 0, n_good = 400, n_any = 1500;
    for (int i = 0; i < n_good + n_any; i++) {
        cs_buf b = {0};
        cs_put(&b, "", 0);
        bool good = i < n_good, glm47 = rand_r(&g_seed) % 2, sir = glm47 && good && rand_r(&g_seed) % 2;
        if (good) random_good_turn(&b, glm47, sir);
        else random_any_turn(&b), sir = rand_r(&g_seed) % 2;
        const char *tools = rand_r(&g_seed) % 2 ? TOOLS : NULL;
        cs_result r = {0};
        int k = every_way(good ? "random good turn" : "random turn", b.p, b.n, sir, tools, false, &r);
        if (k && bad++ < 3) {
            fprintf(stderr, "    the turn (%zu bytes, sir %d, tools %d): \"", b.n, (int)sir, tools != NULL);
            fwrite(b.p, 1, b.n, stderr);
            fprintf(stderr, "\"\n");
        }
        if (good && r.st == GLMOE_OK) good_ok++;
        else if (good && bad++ < 3)
            fprintf(stderr, "    a well-formed turn failed: %s: \"%s\"\n", r.msg, b.p);
        cs_result_free(&r);
        free(b.p);
    }
    CHECK(bad == 0, "%d random turns went wrong (seed %u)", bad, g_seed);
    printf("  %d random turns, %d well-formed ones parsed\n", n_good + n_any, good_ok);
}

/* ---- 4. the API -------------------------------------------------------------------------------- */

/* Pushes a NUL-terminated piece; the deltas come back in a one-line description such as
 * "R[abc] C[x] T0[get] A0[{}]". */
static glmoe_status push_str(glmoe_chat_stream *s, const char *text, char *desc, size_t cap, bool finish) {
    const glmoe_chat_delta *d = NULL;
    size_t n = 0;
    glmoe_status st = finish ? glmoe_chat_stream_finish(s, &d, &n) : glmoe_chat_stream_push(s, text, strlen(text), &d, &n);
    size_t o = 0;
    desc[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        static const char kinds[] = "RCTA";
        int w = d[i].kind >= GLMOE_CHAT_DELTA_TOOL_CALL
                    ? snprintf(desc + o, cap - o, "%s%c%zu[%s]", o ? " " : "", kinds[d[i].kind], d[i].index, d[i].text)
                    : snprintf(desc + o, cap - o, "%s%c[%s]", o ? " " : "", kinds[d[i].kind], d[i].text);
        o += (size_t)w;
    }
    return st;
}

static void expect_push(glmoe_chat_stream *s, const char *text, const char *want) {
    char got[512];
    glmoe_status st = push_str(s, text, got, sizeof got, text == NULL);
    CHECK(st == GLMOE_OK && strcmp(got, want) == 0, "push \"%s\": status %d (%s)\n    got:  %s\n    want: %s",
          text ? text : "(finish)", (int)st, glmoe_chat_stream_errmsg(s), got, want);
}

static glmoe_chat_stream *make(bool sir, const char *tools) {
    glmoe_chat_stream_params p = glmoe_chat_stream_params_default();
    p.starts_in_reasoning = sir;
    p.tools_json = tools;
    glmoe_chat_stream *s = NULL;
    char err[256] = "";
    CHECK(glmoe_chat_stream_create(&s, &p, err, sizeof err) == GLMOE_OK && s, "create: %s", err);
    return s;
}

static void test_timing_of_deltas(void) {
    /* GLM-4.5, token by token: what comes out when */
    glmoe_chat_stream *s = make(false, TOOLS);
    expect_push(s, "\n", "");
    expect_push(s, "<thi", "");
    expect_push(s, "nk>", "");
    expect_push(s, "\nHmm, ", "R[Hmm, ]");
    expect_push(s, "<tool_call> or not.\n", "R[<tool_call> or not.]");
    expect_push(s, "\n", "");
    expect_push(s, "</th", "");
    expect_push(s, "ink>", "");
    expect_push(s, "\nLet me look", "C[Let me look]");
    expect_push(s, ".\n<too", "C[.\n]");
    expect_push(s, "l_call>get_", "");
    expect_push(s, "weather\n<arg", "T0[get_weather]");
    expect_push(s, "_key>city</arg_key>\n<arg_value>Paris</arg_value>\n", "");
    expect_push(s, "</tool_call", "");
    expect_push(s, ">\n<tool_call>get_time</tool_call>", "A0[{\"city\": \"Paris\"}] T1[get_time] A1[{}]");
    expect_push(s, "stray <tool_c", "");
    glmoe_chat_stream_info info;
    glmoe_chat_stream_get_info(s, &info);
    CHECK(info.n_tool_calls == 2 && info.n_dropped == 7 && info.n_held == 7 && !info.in_reasoning &&
              !info.in_tool_call && !info.finished,
          "info: %zu calls, %zu dropped, %zu held", info.n_tool_calls, info.n_dropped, info.n_held);
    expect_push(s, NULL, "");
    glmoe_chat_stream_get_info(s, &info);
    CHECK(info.n_dropped == 14 && info.n_held == 0 && info.finished, "info after finish: %zu dropped", info.n_dropped);
    glmoe_chat_stream_free(s);

    /* a held tag start that turns out to be text comes out with the byte that decides it */
    s = make(true, NULL);
    expect_push(s, "a </", "R[a ]");
    expect_push(s, "thin", "");
    glmoe_chat_stream_get_info(s, &info);
    CHECK(info.in_reasoning && info.n_held == 6, "in reasoning, 6 held: %zu", info.n_held);
    expect_push(s, "g>", "R[</thing>]");
    expect_push(s, "\n\n", "");
    expect_push(s, "b", "R[\n\nb]");
    expect_push(s, "\n</think>\n\n", "");
    expect_push(s, "<", "");
    expect_push(s, "<", "C[<]");
    expect_push(s, NULL, "C[<]");
    glmoe_chat_stream_free(s);

    /* the empty think block of GLM-4.5 with thinking off, then a character cut in two */
    s = make(false, NULL);
    expect_push(s, "\n<think></think>\n\xe4\xb8", "");
    expect_push(s, "\xad!", "C[中!]");
    expect_push(s, NULL, "");
    glmoe_chat_stream_free(s);
}

static void test_failures(void) {
    char err[256] = "x";
    glmoe_chat_stream *s = (glmoe_chat_stream *)1;
    glmoe_chat_stream_params p = glmoe_chat_stream_params_default();
    CHECK(!p.starts_in_reasoning && !p.tools_json, "defaults");
    p.tools_json = "[{";
    CHECK(glmoe_chat_stream_create(&s, &p, err, sizeof err) == GLMOE_E_ARG && s == NULL &&
              strcmp(err, "tools: invalid JSON at line 1 column 2: string or '}' expected near end of file") == 0,
          "bad tools JSON: %s", err);
    p.tools_json = "{}";
    CHECK(glmoe_chat_stream_create(&s, &p, err, sizeof err) == GLMOE_E_ARG &&
              strcmp(err, "tools: expected an array of tools or null") == 0,
          "tools not an array: %s", err);
    p.tools_json = "null";
    CHECK(glmoe_chat_stream_create(&s, &p, NULL, 0) == GLMOE_OK, "tools null");
    glmoe_chat_stream_free(s);
    CHECK(glmoe_chat_stream_create(NULL, NULL, err, sizeof err) == GLMOE_E_ARG &&
              strcmp(err, "glmoe_chat_stream_create: out is required") == 0,
          "NULL out: %s", err);
    glmoe_chat_stream_free(NULL);

    const glmoe_chat_delta *d = (const glmoe_chat_delta *)1;
    size_t n = 9;
    glmoe_chat_stream_info info;
    CHECK(glmoe_chat_stream_push(NULL, "x", 1, &d, &n) == GLMOE_E_ARG && d == NULL && n == 0, "NULL stream");
    CHECK(glmoe_chat_stream_finish(NULL, &d, &n) == GLMOE_E_ARG, "NULL stream, finish");
    CHECK(glmoe_chat_stream_get_info(NULL, &info) == GLMOE_E_ARG, "NULL stream, info");
    CHECK(strcmp(glmoe_chat_stream_errmsg(NULL), "no chat stream (NULL handle)") == 0, "NULL stream, message");

    s = make(false, NULL);
    CHECK(glmoe_chat_stream_push(s, NULL, 0, &d, &n) == GLMOE_OK && n == 0, "an empty push");
    CHECK(glmoe_chat_stream_push(s, NULL, 2, &d, &n) == GLMOE_E_ARG &&
              strcmp(glmoe_chat_stream_errmsg(s), "glmoe_chat_stream_push: text is NULL and len is 2") == 0,
          "NULL text: %s", glmoe_chat_stream_errmsg(s));
    CHECK(glmoe_chat_stream_push(s, "x", 1, NULL, &n) == GLMOE_E_ARG, "NULL deltas");
    /* misuse does not end the stream, and a good call clears the message */
    CHECK(glmoe_chat_stream_push(s, "Hi", 2, &d, &n) == GLMOE_OK && n == 1 && glmoe_chat_stream_errmsg(s)[0] == '\0',
          "a push after misuse");
    CHECK(glmoe_chat_stream_finish(s, &d, &n) == GLMOE_OK, "finish");
    CHECK(glmoe_chat_stream_push(s, "x", 1, &d, &n) == GLMOE_E_ARG &&
              strcmp(glmoe_chat_stream_errmsg(s), "glmoe_chat_stream_push: the turn is already finished") == 0,
          "push after finish: %s", glmoe_chat_stream_errmsg(s));
    CHECK(glmoe_chat_stream_finish(s, &d, &n) == GLMOE_E_ARG, "finish twice");
    glmoe_chat_stream_free(s);

    /* a failure sticks, with its message; what came before it in the push still comes out */
    s = make(false, NULL);
    CHECK(glmoe_chat_stream_push(s, "ok \xff more", 9, &d, &n) == GLMOE_E_FORMAT && n == 1 &&
              strcmp(d[0].text, "ok ") == 0,
          "the text before the bad byte comes out");
    const char *msg = "content: not valid UTF-8 (ill-formed sequence at byte 3)";
    CHECK(strcmp(glmoe_chat_stream_errmsg(s), msg) == 0, "message: %s", glmoe_chat_stream_errmsg(s));
    CHECK(glmoe_chat_stream_push(s, "fine", 4, &d, &n) == GLMOE_E_FORMAT && n == 0 &&
              strcmp(glmoe_chat_stream_errmsg(s), msg) == 0,
          "a failed stream stays failed");
    CHECK(glmoe_chat_stream_finish(s, &d, &n) == GLMOE_E_FORMAT && n == 0, "and cannot finish");
    glmoe_chat_stream_free(s);

    /* an empty name is refused as soon as it ends, before the call does */
    s = make(false, NULL);
    CHECK(glmoe_chat_stream_push(s, "<tool_call> \n<arg_key>", 22, &d, &n) == GLMOE_E_FORMAT &&
              strcmp(glmoe_chat_stream_errmsg(s), "tool call 0 at byte 11: empty function name") == 0,
          "empty name: %s", glmoe_chat_stream_errmsg(s));
    glmoe_chat_stream_free(s);

    /* the unterminated call at max_tokens */
    s = make(false, NULL);
    CHECK(glmoe_chat_stream_push(s, "Sure.\n<tool_call>get_weather\n<arg_key>city</arg_key>", 52, &d, &n) == GLMOE_OK &&
              n == 2 && d[1].kind == GLMOE_CHAT_DELTA_TOOL_CALL,
          "content and the name come out");
    glmoe_chat_stream_get_info(s, &info);
    CHECK(info.in_tool_call && info.n_held == 35 && info.n_tool_calls == 0, "in the call, %zu held", info.n_held);
    CHECK(glmoe_chat_stream_finish(s, &d, &n) == GLMOE_E_FORMAT &&
              strcmp(glmoe_chat_stream_errmsg(s), "tool call 0 at byte 6: <tool_call> without </tool_call>") == 0,
          "unterminated: %s", glmoe_chat_stream_errmsg(s));
    glmoe_chat_stream_free(s);
}

/* 1 MiB of reasoning, content and one call's value, pushed a byte at a time: the held text stays
 * bounded outside the call, and the time is linear. */
static void test_bounds(void) {
    const size_t big = 1 << 20;
    char *text = malloc(big);
    if (!text) abort();
    for (size_t i = 0; i < big; i++) text[i] = "ab <c\n"[i % 6];
    glmoe_chat_stream *s = make(true, NULL);
    const glmoe_chat_delta *d;
    size_t n, max_held = 0, out = 0, failed = 0;
    clock_t t0 = clock();
    for (int part = 0; part < 3; part++) {
        static const char *between[] = {"</think>", "<tool_call>f\n<arg_key>v</arg_key><arg_value>", ""};
        for (size_t i = 0; i < big; i++) {
            failed += glmoe_chat_stream_push(s, text + i, 1, &d, &n) != GLMOE_OK;
            for (size_t k = 0; k < n; k++) out += d[k].len;
            glmoe_chat_stream_info info;
            glmoe_chat_stream_get_info(s, &info);
            if (part < 2 && info.n_held > max_held) max_held = info.n_held;
        }
        CHECK(glmoe_chat_stream_push(s, between[part], strlen(between[part]), &d, &n) == GLMOE_OK, "part %d", part);
        for (size_t k = 0; k < n; k++) out += d[k].len;
    }
    CHECK(failed == 0, "%zu pushes failed: %s", failed, glmoe_chat_stream_errmsg(s));
    glmoe_chat_stream_info info;
    glmoe_chat_stream_get_info(s, &info);
    CHECK(info.in_tool_call && info.n_held == big + 33, "the open call is held: %zu", info.n_held);
    CHECK(glmoe_chat_stream_push(s, "</arg_value></tool_call>", 24, &d, &n) == GLMOE_OK && n == 1 &&
              d[0].kind == GLMOE_CHAT_DELTA_TOOL_ARGS,
          "the call's arguments");
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(max_held <= 7 + 1, "held at most %zu bytes outside the call (a tag's start, one newline)", max_held);
    CHECK(secs < 30, "3 MiB a byte at a time took %.1f s", secs);
    printf("  3 MiB pushed a byte at a time: %.2f s, at most %zu bytes held outside the call, %zu given out\n", secs,
           max_held, out + d[0].len);
    glmoe_chat_stream_free(s);
    free(text);
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    g_seed = (unsigned)time(NULL);
    test_recorded();
    test_bad();
    test_random();
    test_timing_of_deltas();
    test_failures();
    test_bounds();
    return test_summary("test_chat_stream");
}
