/*
 * chat_input.c — what the user types to `glmoe chat`.
 *
 * On a terminal: libedit (line editing, history of this session), read through our own
 * character function so that Ctrl-C (SIGINT, whose handler only sets a flag, without SA_RESTART)
 * ends the read at once instead of being retried. Elsewhere (a pipe, a file): plain lines. Either
 * way a message is at most CHAT_INPUT_MAX_BYTES, a trailing backslash continues it on the next
 * line, and on a terminal lines pasted together (already waiting when one ends) make one message.
 */
#include <errno.h>
#include <histedit.h>
#include <locale.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>

#include "chat.h"

struct chat_input {
    volatile sig_atomic_t *interrupted;
    EditLine *el;          /* NULL when stdin is not a terminal */
    History *hist;
    const char *prompt;    /* of the line being read */
    char *text;            /* the message being put together */
    size_t len, cap;
    bool too_long;
};

static char *prompt_of(EditLine *el) {
    chat_input *in = NULL;
    el_get(el, EL_CLIENTDATA, &in);
    return (char *)(in && in->prompt ? in->prompt : "");
}

/* libedit's character source: one character from stdin, decoded from UTF-8 (libedit wants wide
 * characters). An interrupted read ends el_gets (returns -1) when Ctrl-C set the flag. */
static int read_char(EditLine *el, wchar_t *out) {
    chat_input *in = NULL;
    el_get(el, EL_CLIENTDATA, &in);
    mbstate_t st;
    memset(&st, 0, sizeof st);
    for (;;) {
        char c;
        ssize_t got = read(STDIN_FILENO, &c, 1);
        if (got < 0 && errno == EINTR) {
            if (in && *in->interrupted) return -1;
            continue;
        }
        if (got <= 0) return got < 0 ? -1 : 0;
        size_t r = mbrtowc(out, &c, 1, &st);
        if (r == (size_t)-2) continue; /* a character's first bytes */
        if (r == (size_t)-1) {         /* not UTF-8: the byte as it is (U+FFFD would lose it) */
            memset(&st, 0, sizeof st);
            *out = (wchar_t)(unsigned char)c;
        }
        return 1;
    }
}

chat_input *chat_input_open(volatile sig_atomic_t *interrupted) {
    chat_input *in = calloc(1, sizeof *in);
    if (!in) return NULL;
    in->interrupted = interrupted;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) return in;
    /* libedit decodes and displays characters through the locale: UTF-8 even when the
     * environment asks for none ("C"), as the model's text is UTF-8. */
    if (!setlocale(LC_CTYPE, "") || MB_CUR_MAX == 1) setlocale(LC_CTYPE, "C.UTF-8");
    in->el = el_init("glmoe", stdin, stdout, stderr);
    in->hist = history_init();
    if (!in->el || !in->hist) {
        if (in->el) el_end(in->el);
        if (in->hist) history_end(in->hist);
        in->el = NULL;
        in->hist = NULL;
        return in; /* plain lines then */
    }
    HistEvent ev;
    history(in->hist, &ev, H_SETSIZE, 1000);
    el_set(in->el, EL_CLIENTDATA, in);
    el_set(in->el, EL_EDITOR, "emacs");
    el_set(in->el, EL_HIST, history, in->hist);
    el_set(in->el, EL_PROMPT, prompt_of);
    el_set(in->el, EL_GETCFN, read_char);
    el_source(in->el, NULL); /* the user's ~/.editrc, as every libedit program reads it */
    return in;
}

void chat_input_close(chat_input *in) {
    if (!in) return;
    if (in->el) el_end(in->el);
    if (in->hist) history_end(in->hist);
    free(in->text);
    free(in);
}

bool chat_input_is_terminal(const chat_input *in) { return in->el != NULL; }

static bool append(chat_input *in, const char *s, size_t n) {
    if (in->too_long || in->len + n > CHAT_INPUT_MAX_BYTES) {
        in->too_long = true;
        return true;
    }
    if (in->len + n + 1 > in->cap) {
        size_t cap = 2 * (in->len + n + 1);
        char *p = realloc(in->text, cap);
        if (!p) return false;
        in->text = p;
        in->cap = cap;
    }
    memcpy(in->text + in->len, s, n);
    in->len += n;
    in->text[in->len] = '\0';
    return true;
}

/* One line from a pipe or a file, appended to in->text without its newline (NUL bytes kept: the
 * line is checked later), at most CHAT_INPUT_MAX_BYTES kept: the rest of a longer line is read
 * and dropped, never stored. CHAT_INPUT_EOF only when nothing was read. */
static chat_input_status read_plain_line(chat_input *in) {
    char buf[4096];
    size_t n = 0;
    bool any = false;
    for (;;) {
        errno = 0;
        int c = getc(stdin);
        if (c == EOF && errno == EINTR && *in->interrupted) {
            clearerr(stdin);
            return CHAT_INPUT_INTERRUPT;
        }
        if (c == EOF && ferror(stdin)) return CHAT_INPUT_ERROR;
        if (c == EOF || c == '\n' || n == sizeof buf) {
            if (!append(in, buf, n)) return CHAT_INPUT_ERROR;
            n = 0;
        }
        if (c == EOF) return any ? CHAT_INPUT_TEXT : CHAT_INPUT_EOF;
        any = true;
        if (c == '\n') return CHAT_INPUT_TEXT;
        buf[n++] = (char)c;
    }
}

/* One line from libedit (history and editing), appended to in->text without its newline. */
static chat_input_status read_edited_line(chat_input *in) {
    int count = 0;
    const char *line = el_gets(in->el, &count);
    if (!line || count <= 0) {
        if (*in->interrupted) {
            /* what was typed on the line, dropped: the caller only needs to know there was some */
            const LineInfo *li = el_line(in->el);
            if (li && li->lastchar > li->buffer && !append(in, li->buffer, (size_t)(li->lastchar - li->buffer)))
                return CHAT_INPUT_ERROR;
            el_reset(in->el);
            /* libedit leaves the cursor on the abandoned line */
            fputs("^C\n", stdout);
            fflush(stdout);
            return CHAT_INPUT_INTERRUPT;
        }
        return count < 0 ? CHAT_INPUT_ERROR : CHAT_INPUT_EOF;
    }
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n') n--;
    return append(in, line, n) ? CHAT_INPUT_TEXT : CHAT_INPUT_ERROR;
}

static bool input_waiting(void) {
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

chat_input_status chat_input_read(chat_input *in, const char *prompt, const char **text, size_t *len, long *n_lines) {
    in->len = 0;
    in->too_long = false;
    if (!append(in, "", 0)) return CHAT_INPUT_ERROR;
    const char *line_prompt = prompt;
    for (bool first = true;; first = false) {
        in->prompt = line_prompt;
        if (!in->el) {
            fputs(line_prompt, stdout);
            fflush(stdout);
        }
        chat_input_status s = in->el ? read_edited_line(in) : read_plain_line(in);
        *text = in->text;
        *len = in->len;
        if (s == CHAT_INPUT_INTERRUPT) {
            *in->interrupted = 0;
            return s;
        }
        if (s == CHAT_INPUT_EOF && !first) break; /* stdin ended after a continued line */
        if (s != CHAT_INPUT_TEXT) return s;
        ++*n_lines;
        if (in->len && in->text[in->len - 1] == '\\' && !in->too_long) { /* continued: "... " */
            in->text[in->len - 1] = '\n';
            line_prompt = "... ";
        } else if (in->el && input_waiting()) { /* a paste: its next line, without a prompt */
            if (!append(in, "\n", 1)) return CHAT_INPUT_ERROR;
            line_prompt = "";
        } else {
            break;
        }
    }
    *text = in->text;
    *len = in->len;
    if (in->too_long) return CHAT_INPUT_TOO_LONG;
    if (in->el && in->len) {
        HistEvent ev;
        history(in->hist, &ev, H_ENTER, in->text);
    }
    return CHAT_INPUT_TEXT;
}
