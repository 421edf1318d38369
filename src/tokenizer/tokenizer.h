/*
 * tokenizer.h — glmoe's tokenizer: Hugging Face tokenizer.json (byte-level BPE) in C, giving the
 * same ids as the `tokenizers` library and the same text back.
 *
 * What is supported, and what is refused
 *   model          BPE with the byte-level alphabet; merges as "a b" strings or ["a","b"] pairs;
 *                  ignore_merges; unk_token/fuse_unk. Refused: byte_fallback, dropout,
 *                  continuing_subword_prefix / end_of_word_suffix other than "" or null.
 *   added_tokens   special or not, with lstrip / rstrip / single_word / normalized; ids are checked
 *                  against the ids HF would assign (a mismatch is refused, never renumbered).
 *   normalizer     null, NFC, NFD, NFKC, NFKD, Prepend, Replace, Sequence (normalize.h).
 *   pre_tokenizer  Split (regex or literal, every behaviour, invert), Digits, ByteLevel
 *                  (add_prefix_space, use_regex) as the last step, Sequence (pretokenize.h). A
 *                  ByteLevel step is required: it is what makes the vocabulary byte-level.
 *   post_processor null, ByteLevel (ids unchanged), TemplateProcessing (single sequence, the
 *                  text "A" at most once), Sequence of these. Applied only with GM_TOK_ADD_SPECIAL.
 *   limits         ids below 2^24; at most 64 normalizer steps, 64 pre-tokenizer steps and 64
 *                  templates (real files have a handful; each step costs the encoder a pass or a
 *                  level of recursion, so a hostile file must not have a million); at most 16 MiB
 *                  of JSON outside model.vocab and model.merges (jansson's memory is ~80x that);
 *                  the normalizer's output at most 32x its input + 4096 bytes (normalize.h); the
 *                  regex work of an encode within a retry budget and a time allowance (tok_regex.h).
 *   decoder        ByteLevel (or a Sequence holding only ByteLevel).
 *   truncation, padding must be null.
 * Anything else is refused at load with an error naming the JSON path and value, e.g.
 *   tokenizer.json: pre_tokenizer.pretokenizers[1].type "Metaspace" is not supported
 * so there is never a silent difference from HF.
 *
 * Input policy: encode takes bytes that must be well-formed UTF-8. HF's Python API only accepts
 * str, which cannot hold ill-formed UTF-8, so there is no HF behaviour to copy; rather than
 * guessing (replacing bytes would encode text the caller never wrote), ill-formed input is refused
 * with GLMOE_E_ARG and a message giving the byte offset of the first bad sequence. NUL bytes are
 * ordinary characters (lengths are explicit).
 *
 * Output policy: decode concatenates each token's bytes (the ByteLevel decoder: a token whose
 * characters are all in the byte alphabet gives those bytes, any other token its own UTF-8) and
 * replaces ill-formed sequences with U+FFFD exactly as HF (Rust's from_utf8_lossy) does. Unlike
 * HF, which silently drops unknown ids, an id outside the vocabulary is refused (GLMOE_E_TOKEN).
 *
 * Threads: a loaded tokenizer is read-only except for the encoder's scratch space and word cache,
 * so encode on one handle must not run on two threads at once; decode, the stream decoder and
 * the lookups only read and may run concurrently with each other.
 *
 * Loading speed: tokenizer.json is parsed with jansson, except model.vocab and model.merges (well
 * over 90% of a 150k-token file), which a strict dedicated scanner reads straight into the tables
 * (tokenizer_json.h): jansson alone needs ~300 ms and 100 MB for them.
 *
 * Tests: tests/unit/test_tokenizer.c (parity with HF on Qwen3, DeepSeek-V3 and GLM-4.5's
 * pattern, decode round trips, streaming, policies) and tests/unit/test_tokenizer_parts.c.
 */
#ifndef GLMOE_TOKENIZER_TOKENIZER_H
#define GLMOE_TOKENIZER_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "glmoe.h"
#include "tokenizer/tok_buf.h"
#include "util/error.h"

typedef struct gm_tokenizer gm_tokenizer;

/* Flags for gm_tokenizer_encode. */
enum {
    /* Recognise special added tokens in the text (HF's default). Without it their text is
     * encoded as ordinary text (HF's encode_special_tokens = true); non-special added tokens are
     * still recognised, as in HF. */
    GM_TOK_PARSE_SPECIAL = 1u << 0,
    /* Apply the post-processor (HF's add_special_tokens = true), e.g. a BOS from a
     * TemplateProcessing. ByteLevel post-processors add nothing. */
    GM_TOK_ADD_SPECIAL = 1u << 1,
};

/* What tokenizer_config.json says about special tokens, resolved to ids (-1: not given or not in
 * the vocabulary). The encoder does not act on these: HF's tokenizer.json path does not either;
 * callers (chat template, generation) decide. */
typedef struct gm_tokenizer_config {
    int32_t bos_id, eos_id, pad_id;
    bool add_bos, add_eos; /* add_bos_token / add_eos_token, false when absent */
    bool present;          /* a tokenizer_config.json was found and read       */
} gm_tokenizer_config;

/* Loads `path`: a tokenizer.json, a tokenizer.json.gz (gzip, when glmoe is built with zlib), or a
 * directory holding tokenizer.json (or tokenizer.json.gz). A tokenizer_config.json next to it is
 * read too when present. On failure *out is NULL and err says which file and field. */
glmoe_status gm_tokenizer_load(gm_tokenizer **out, const char *path, gm_err *err);

/* Reads a whole file into out (appending), gunzipping it when it starts with the gzip magic. The
 * loader's own reader, exposed for tests and tools that edit tokenizer.json text. */
glmoe_status gm_tokenizer_read_file(const char *path, gm_tok_bytes *out, gm_err *err);

/* Loads from tokenizer.json text in memory (json[0..len), need not be NUL-terminated). `name` is
 * used in error messages ("tokenizer.json" when NULL). No tokenizer_config.json is read. */
glmoe_status gm_tokenizer_load_json(gm_tokenizer **out, const char *json, size_t len, const char *name,
                                    gm_err *err);

/* Frees the tokenizer; NULL is a no-op. */
void gm_tokenizer_free(gm_tokenizer *tok);

/* Encodes text[0..len) and appends the ids to out (out->n is not reset first). flags:
 * GM_TOK_PARSE_SPECIAL, GM_TOK_ADD_SPECIAL. On failure out keeps its previous length.
 * Errors: GLMOE_E_ARG for ill-formed UTF-8 (with the offset), a normalizer whose output goes over
 * its limit (normalize.h) or regex work over its budget or time allowance (tok_regex.h),
 * GLMOE_E_NOMEM. */
glmoe_status gm_tokenizer_encode(gm_tokenizer *tok, const char *text, size_t len, unsigned flags,
                                 gm_tok_ids *out, gm_err *err);

/* Decodes ids and appends the text to out (not NUL-terminated; see gm_tok_bytes_cstr).
 * skip_special drops special added tokens (HF's skip_special_tokens). GLMOE_E_TOKEN when an id is
 * not in the vocabulary (out then keeps its previous length). */
glmoe_status gm_tokenizer_decode(const gm_tokenizer *tok, const int32_t *ids, size_t n, bool skip_special,
                                 gm_tok_bytes *out, gm_err *err);

/* Streaming decoder: feed ids one at a time, get text as soon as it is whole characters. The
 * pieces concatenated with the final flush equal gm_tokenizer_decode of all the ids. It holds at
 * most 3 bytes of an unfinished character. The tokenizer must outlive it; nothing to free. */
typedef struct gm_tok_stream {
    const gm_tokenizer *tok;
    bool skip_special;
    uint8_t pending[4];
    uint8_t n_pending;
} gm_tok_stream;

void gm_tok_stream_init(gm_tok_stream *s, const gm_tokenizer *tok, bool skip_special);

/* Appends to out the text that id completes (possibly nothing). GLMOE_E_TOKEN for an unknown id
 * (the stream is unchanged then). */
glmoe_status gm_tok_stream_push(gm_tok_stream *s, int32_t id, gm_tok_bytes *out, gm_err *err);

/* Ends the stream: an unfinished character becomes U+FFFD. The stream can then be reused. */
glmoe_status gm_tok_stream_flush(gm_tok_stream *s, gm_tok_bytes *out, gm_err *err);

/* ---- lookups (read-only, thread-safe) ------------------------------------------------------ */

/* One past the largest id (ids may have holes: see gm_tokenizer_id_to_token). */
int32_t gm_tokenizer_n_ids(const gm_tokenizer *tok);

/* The id of token string s[0..len) as HF's token_to_id: added tokens first, then model.vocab
 * (strings in the byte-level alphabet, e.g. "Ġthe"). -1 when unknown. */
int32_t gm_tokenizer_token_to_id(const gm_tokenizer *tok, const char *s, size_t len);

/* The token string of id (as HF's id_to_token; not NUL-terminated), its length in *len. NULL
 * for an id outside the vocabulary. Valid until the tokenizer is freed. */
const char *gm_tokenizer_id_to_token(const gm_tokenizer *tok, int32_t id, size_t *len);

/* The bytes id decodes to on its own (before U+FFFD replacement): may be part of a character. */
const char *gm_tokenizer_id_to_bytes(const gm_tokenizer *tok, int32_t id, size_t *len);

/* True for an added token marked special. */
bool gm_tokenizer_is_special(const gm_tokenizer *tok, int32_t id);

/* True for any added token (special or not). */
bool gm_tokenizer_is_added(const gm_tokenizer *tok, int32_t id);

const gm_tokenizer_config *gm_tokenizer_get_config(const gm_tokenizer *tok);

/* Number of added tokens (special or not). */
int32_t gm_tokenizer_n_added(const gm_tokenizer *tok);

/* Seconds the last load took (for the benchmark). */
double gm_tokenizer_load_seconds(const gm_tokenizer *tok);

#endif
