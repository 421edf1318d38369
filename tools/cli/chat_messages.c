/*
 * chat_messages.c — the conversation of `glmoe chat`: messages kept as they were sent and
 * answered, dropped oldest turn first when they outgrow the context, written and read as
 * OpenAI-style JSON (/save, /load). The JSON is built and parsed by jansson, never pasted.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "cli.h"
#include "util/short_path.h"

static void message_free(chat_message *msg) {
    free(msg->role);
    free(msg->content);
    free(msg->reasoning);
}

bool chat_messages_add(chat_messages *m, const char *role, const char *content, const char *reasoning) {
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        chat_message *v = realloc(m->v, cap * sizeof *v);
        if (!v) return false;
        m->v = v;
        m->cap = cap;
    }
    chat_message msg = {strdup(role), strdup(content), reasoning && *reasoning ? strdup(reasoning) : NULL};
    if (!msg.role || !msg.content || (reasoning && *reasoning && !msg.reasoning)) {
        message_free(&msg);
        return false;
    }
    m->v[m->n++] = msg;
    return true;
}

static size_t message_bytes(const chat_message *msg) {
    return strlen(msg->content) + (msg->reasoning ? strlen(msg->reasoning) : 0);
}

size_t chat_messages_bytes(const chat_messages *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->n; i++) n += message_bytes(&m->v[i]);
    return n;
}

size_t chat_messages_drop_oldest_turns(chat_messages *m, size_t min_bytes) {
    size_t first = m->n && !strcmp(m->v[0].role, "system") ? 1 : 0, last_user = m->n;
    for (size_t i = m->n; i-- > first;)
        if (!strcmp(m->v[i].role, "user")) {
            last_user = i;
            break;
        }
    if (last_user == m->n || last_user == first) return 0;
    /* One pass: whole turns (a user message and what follows up to the next) from the oldest,
     * until min_bytes are gone or only the last user message's turn is left. */
    size_t end = first, turns = 0, gone = 0;
    do {
        gone += message_bytes(&m->v[end++]);
        while (end < last_user && strcmp(m->v[end].role, "user")) gone += message_bytes(&m->v[end++]);
        turns++;
    } while (gone < min_bytes && end < last_user);
    for (size_t i = first; i < end; i++) message_free(&m->v[i]);
    memmove(m->v + first, m->v + end, (m->n - end) * sizeof *m->v);
    m->n -= end - first;
    return turns;
}

void chat_messages_clear(chat_messages *m) {
    for (size_t i = 0; i < m->n; i++) message_free(&m->v[i]);
    free(m->v);
    *m = (chat_messages){0};
}

static json_t *to_json(const chat_messages *m, size_t from, size_t to) {
    json_t *a = json_array();
    for (size_t i = from; a && i < to; i++) {
        json_t *o = json_pack("{s:s, s:s}", "role", m->v[i].role, "content", m->v[i].content);
        if (o && m->v[i].reasoning) json_object_set_new(o, "reasoning_content", json_string(m->v[i].reasoning));
        if (!o || json_array_append_new(a, o)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

char *chat_messages_json(const chat_messages *m, size_t from, size_t to) {
    json_t *a = to_json(m, from, to);
    char *s = a ? json_dumps(a, JSON_COMPACT) : NULL;
    json_decref(a);
    return s;
}

bool chat_messages_save(const chat_messages *m, const char *path, char *err, size_t err_size) {
    json_t *a = to_json(m, 0, m->n);
    char shown[GM_SHORT_PATH_MAX];
    if (!a) {
        snprintf(err, err_size, "%s: out of memory", gm_short_path(shown, sizeof shown, path));
        return false;
    }
    FILE *f = cli_output_open(path, err, err_size);
    bool ok = f && json_dumpf(a, f, JSON_INDENT(2)) == 0;
    if (f) {
        fputc('\n', f);
        ok = cli_output_close(f, path, err, err_size) && ok;
        if (!ok && !*err) snprintf(err, err_size, "%s: cannot write", gm_short_path(shown, sizeof shown, path));
    }
    json_decref(a);
    return ok;
}

bool chat_messages_load(chat_messages *m, const char *path, char *err, size_t err_size) {
    char *text = NULL, shown[GM_SHORT_PATH_MAX];
    size_t len = 0;
    *err = '\0';
    if (glmoe_file_read(&text, &len, path, CHAT_LOAD_MAX_BYTES, err, err_size)) return false;
    gm_short_path(shown, sizeof shown, path);
    json_error_t je;
    /* jansson refuses \u0000 (a message cannot carry it) and duplicate keys; depth is bounded by
     * jansson's own limit (no recursion here). */
    json_t *a = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    glmoe_free(text);
    chat_messages loaded = {0};
    if (!a) {
        snprintf(err, err_size, "%s: invalid JSON at line %d column %d: %s", shown, je.line, je.column, je.text);
        return false;
    }
    if (!json_is_array(a) || json_array_size(a) > CHAT_LOAD_MAX_MESSAGES) {
        snprintf(err, err_size, "%s: expected a JSON array of at most %d messages", shown, CHAT_LOAD_MAX_MESSAGES);
        goto fail;
    }
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *o = json_array_get(a, i), *role = json_object_get(o, "role"), *content = json_object_get(o, "content"),
               *reasoning = json_object_get(o, "reasoning_content");
        const char *r = json_string_value(role);
        if (!json_is_object(o)) {
            snprintf(err, err_size, "%s: message %zu: not an object", shown, i);
            goto fail;
        }
        if (!r || (strcmp(r, "system") && strcmp(r, "user") && strcmp(r, "assistant"))) {
            snprintf(err, err_size, "%s: message %zu: \"role\" must be \"system\", \"user\" or \"assistant\"", shown, i);
            goto fail;
        }
        if (!strcmp(r, "system") && i) {
            snprintf(err, err_size, "%s: message %zu: a system message only comes first", shown, i);
            goto fail;
        }
        if (!json_is_string(content)) {
            snprintf(err, err_size, "%s: message %zu: \"content\" must be a string", shown, i);
            goto fail;
        }
        if (reasoning && !json_is_null(reasoning) && (!json_is_string(reasoning) || strcmp(r, "assistant"))) {
            snprintf(err, err_size, "%s: message %zu: \"reasoning_content\" must be a string, of an assistant", shown, i);
            goto fail;
        }
        if (!chat_messages_add(&loaded, r, json_string_value(content), json_string_value(reasoning))) {
            snprintf(err, err_size, "%s: out of memory", shown);
            goto fail;
        }
    }
    json_decref(a);
    chat_messages_clear(m);
    *m = loaded;
    return true;
fail:
    json_decref(a);
    chat_messages_clear(&loaded);
    return false;
}
