/*
 * chat.h — the pieces of `glmoe chat` (cmd_chat.c): the conversation as messages, saved and
 * loaded as OpenAI-style JSON (chat_messages.c), and the terminal input with line editing,
 * history, multi-line messages and Ctrl-C (chat_input.c).
 */
#ifndef GLMOE_CLI_CHAT_H
#define GLMOE_CLI_CHAT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

/* ---- the conversation (chat_messages.c) ---- */

/* The largest conversation /load reads, and the most messages it takes. */
#define CHAT_LOAD_MAX_BYTES ((size_t)16 << 20)
#define CHAT_LOAD_MAX_MESSAGES 100000

typedef struct chat_message {
    char *role;      /* "system", "user" or "assistant" */
    char *content;
    char *reasoning; /* an assistant's reasoning (reasoning_content), or NULL */
} chat_message;

typedef struct chat_messages {
    chat_message *v;
    size_t n, cap;
} chat_messages;

/* Appends a copy of the message; false when out of memory. */
bool chat_messages_add(chat_messages *m, const char *role, const char *content, const char *reasoning);

/* Removes the oldest turns after a leading system message (a turn: a user message and every
 * message up to the next user message), at least one, until their text (content and reasoning)
 * adds up to min_bytes; never the last user message's turn. Returns how many turns went (0: none
 * could). One pass, however many go. */
size_t chat_messages_drop_oldest_turns(chat_messages *m, size_t min_bytes);

/* The bytes of text (content and reasoning) of every message. */
size_t chat_messages_bytes(const chat_messages *m);

void chat_messages_clear(chat_messages *m);

/* The messages [from, to) as a JSON array of OpenAI messages (malloc'd), NULL when out of
 * memory. */
char *chat_messages_json(const chat_messages *m, size_t from, size_t to);

/* Writes the conversation to path as a JSON array of OpenAI messages. False with the reason in
 * err (one line naming the file). */
bool chat_messages_save(const chat_messages *m, const char *path, char *err, size_t err_size);

/* Replaces the conversation with the one in path (at most CHAT_LOAD_MAX_BYTES, as /save writes
 * it or any OpenAI-style messages array: roles system (first only), user and assistant, string
 * contents, optional string reasoning_content; other keys are ignored). On failure the
 * conversation is unchanged and err names the file, the message index and the field. */
bool chat_messages_load(chat_messages *m, const char *path, char *err, size_t err_size);

/* ---- input (chat_input.c) ---- */

/* The longest message read (longer ones are refused, the rest of the line skipped). */
#define CHAT_INPUT_MAX_BYTES ((size_t)1 << 20)

typedef struct chat_input chat_input;

typedef enum chat_input_status {
    CHAT_INPUT_TEXT,      /* a message (or a command) in *text                                 */
    CHAT_INPUT_EOF,       /* Ctrl-D at an empty prompt, or the end of stdin                      */
    CHAT_INPUT_INTERRUPT, /* Ctrl-C at the prompt; *text holds what was typed so far ("" if none) */
    CHAT_INPUT_TOO_LONG,  /* a message longer than CHAT_INPUT_MAX_BYTES (skipped)                 */
    CHAT_INPUT_ERROR,     /* reading failed (out of memory, an I/O error)                         */
} chat_input_status;

/* Line editing and history (libedit) when stdin is a terminal, plain lines otherwise. interrupted
 * is the flag SIGINT's handler sets (cmd_chat.c); the input clears it when it has reported it. */
chat_input *chat_input_open(volatile sig_atomic_t *interrupted);
void chat_input_close(chat_input *in);
bool chat_input_is_terminal(const chat_input *in);

/* Reads one message: a line; a line ending in a backslash continues on the next (the backslash
 * becomes a newline), and so do lines pasted together (on a terminal, the lines already waiting
 * when one ends). *text (without the final newline) stays valid until the next call; *n_lines
 * counts the lines read. */
chat_input_status chat_input_read(chat_input *in, const char *prompt, const char **text, size_t *len, long *n_lines);

#endif
