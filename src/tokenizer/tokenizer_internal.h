/*
 * tokenizer_internal.h — the gm_tokenizer struct, shared by the loader (tokenizer_load.c), the
 * encoder (tokenizer_encode.c), the decoder (tokenizer_decode.c) and the public API wrapper. Not
 * for use outside src/tokenizer/.
 */
#ifndef GLMOE_TOKENIZER_TOKENIZER_INTERNAL_H
#define GLMOE_TOKENIZER_TOKENIZER_INTERNAL_H

#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/normalize.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

/* One element of a TemplateProcessing "single" template: the encoded sequence, or fixed ids. */
typedef struct gm_template_piece {
    bool is_sequence;
    int32_t *ids;
    size_t n_ids;
} gm_template_piece;

typedef struct gm_template {
    gm_template_piece *pieces;
    size_t n;
} gm_template;

struct gm_tokenizer {
    gm_vocab vocab;
    gm_bpe bpe;
    gm_added added;
    gm_normalizer norm;
    gm_pretokenizer pre;
    gm_template *templates; /* post-processors that change ids, applied in order */
    size_t n_templates;
    gm_tokenizer_config config;
    double load_seconds;

    /* encoder scratch (hence: one encoding thread per tokenizer) */
    gm_tok_bytes work;          /* normalized text and pre-tokenizer copies            */
    gm_added_splits raw_splits; /* pass 1 of the added-token search                    */
    gm_added_splits norm_splits;/* pass 2                                              */
    gm_spans *levels;           /* pieces produced by each pre-tokenizer step          */
    gm_pre_scratch pre_scratch;
    gm_norm_scratch norm_scratch;
    gm_tok_regex_run regex_run; /* the regex work budget of the current encode (tok_regex.h) */
    OnigRegion *region;         /* single_word's word-character test                        */
    gm_tok_ids seq;             /* the sequence, while a template wraps it             */
};

#endif
