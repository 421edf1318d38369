#!/usr/bin/env python3
"""Train the demo model's byte-level BPE tokenizer with the layout of GLM-4.5's tokenizer.

What is the same as GLM-4.5 (docs/spec/glm4_moe.md §4):
  - model BPE over the GPT-2 byte alphabet, no normalizer, no byte fallback, no unknown token;
  - pre-tokenizer Sequence[Split(GLM-4 regex, behavior Isolated), ByteLevel(add_prefix_space=false,
    use_regex=false)], decoder ByteLevel, no post-processor (the chat template writes [gMASK]<sop>);
  - the 36 added tokens of GLM-4.5 (<|endoftext|> ... <|video|>) in GLM-4.5's order and with its
    "special" flags, right after the learned vocabulary, exactly as GLM-4.5 puts them after id 151328;
  - tokenizer_config.json: GLM-4.5's fields, eos = pad = <|endoftext|>, and its chat template
    (copied verbatim from tools/train_demo/data/glm45/chat_template.jinja).
What differs: the vocabulary is learned from the demo's training text and is small (VOCAB ids in all),
so ids are not GLM-4.5's ids.

Input: the training split written by prepare_corpus.py (the held-out text is never seen here).
Output: OUT/tokenizer.json and OUT/tokenizer_config.json.
Run: python3 tools/train_demo/train_tokenizer.py [--train FILE] [--out DIR] [--vocab N]
Checks before writing: the tokenizer round-trips the training text's first documents, every added token
encodes to its own single id, and transformers' AutoTokenizer loads the result and renders the template.
"""
import argparse
import json
import os
import sys

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
GLM45 = os.path.join(REPO, "tools", "train_demo", "data", "glm45")
DEFAULT_TRAIN = os.path.join(REPO, "build", "train_demo", "corpus", "train.txt")
DEFAULT_OUT = os.path.join(REPO, "models", "glmoe-demo")
GLM45_TOKENIZER_CONFIG = os.path.join(GLM45, "tokenizer_config.json")
GLM45_CHAT_TEMPLATE = os.path.join(GLM45, "chat_template.jinja")

# The GLM-4 pre-tokenizer pattern (llama.cpp's CHATGLM4), spec §4.1.
GLM4_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
MODEL_MAX_LENGTH = 1024  # = the demo model's max_position_embeddings


def glm45_added_tokens():
    """GLM-4.5's added tokens in id order, as (content, special) pairs."""
    with open(GLM45_TOKENIZER_CONFIG) as f:
        decoder = json.load(f)["added_tokens_decoder"]
    ordered = sorted(decoder.items(), key=lambda kv: int(kv[0]))
    ids = [int(k) for k, _ in ordered]
    if ids != list(range(ids[0], ids[0] + len(ids))):
        sys.exit(f"{GLM45_TOKENIZER_CONFIG}: added token ids are not consecutive")
    return [(v["content"], bool(v["special"])) for _, v in ordered]


def build_tokenizer(train_path, vocab_total, added):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GLM4_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_total - len(added),  # learned ids first, the added tokens take the last ids
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
        show_progress=False,
    )
    with open(train_path, encoding="utf-8") as f:
        docs = f.read().splitlines()
    tok.train_from_iterator(docs, trainer=trainer, length=len(docs))
    if tok.get_vocab_size() != vocab_total - len(added):
        sys.exit(f"BPE learned {tok.get_vocab_size()} ids, wanted {vocab_total - len(added)}: corpus too small")
    for content, special in added:
        tok.add_tokens([AddedToken(content, special=special, normalized=False,
                                   lstrip=False, rstrip=False, single_word=False)])
    return tok, docs


def tokenizer_config(tok, added):
    with open(GLM45_TOKENIZER_CONFIG) as f:
        glm = json.load(f)
    with open(GLM45_CHAT_TEMPLATE, encoding="utf-8") as f:
        template = f.read()
    decoder = {}
    for content, special in added:
        decoder[str(tok.token_to_id(content))] = {
            "content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": special}
    return {
        "added_tokens_decoder": decoder,
        "additional_special_tokens": glm["additional_special_tokens"],
        "chat_template": template,
        "clean_up_tokenization_spaces": False,
        "do_lower_case": False,
        "eos_token": "<|endoftext|>",
        "extra_special_tokens": {},
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "remove_space": False,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def check(tok, docs, added, out_dir):
    for doc in docs[:5] + docs[-5:]:
        if tok.decode(tok.encode(doc).ids, skip_special_tokens=False) != doc:
            sys.exit("round trip failed on a training document")
    for content, _ in added:
        ids = tok.encode("a" + content + "b").ids
        if tok.token_to_id(content) not in ids:
            sys.exit(f"added token {content} is not kept whole")
    from transformers import AutoTokenizer
    hf = AutoTokenizer.from_pretrained(out_dir)
    text = hf.apply_chat_template([{"role": "user", "content": "Hello"}], tokenize=False,
                                  add_generation_prompt=True)
    if not text.startswith("[gMASK]<sop><|user|>\nHello<|assistant|>"):
        sys.exit(f"chat template renders {text!r}")
    if hf.eos_token != "<|endoftext|>" or hf.pad_token != "<|endoftext|>":
        sys.exit("eos/pad token not set")
    sample = "The State of the Union is strong. We've 1776 reasons -- it's true!"
    if hf(sample)["input_ids"] != tok.encode(sample).ids:
        sys.exit("transformers adds tokens the raw tokenizer does not (a post-processor?)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", default=DEFAULT_TRAIN)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--vocab", type=int, default=4096, help="total ids, added tokens included (4096..8192)")
    args = ap.parse_args()
    if not 4096 <= args.vocab <= 8192:
        sys.exit("--vocab must be in 4096..8192")

    added = glm45_added_tokens()
    tok, docs = build_tokenizer(args.train, args.vocab, added)
    os.makedirs(args.out, exist_ok=True)
    tok.save(os.path.join(args.out, "tokenizer.json"))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_config(tok, added), f, indent=2, ensure_ascii=False)
        f.write("\n")
    check(tok, docs, added, args.out)

    n_tokens = sum(len(e.ids) for e in tok.encode_batch(docs))
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    print(f"vocab {tok.get_vocab_size()} ids ({args.vocab - len(added)} learned + {len(added)} added, "
          f"<|endoftext|> = {tok.token_to_id('<|endoftext|>')}); training text {n_tokens} tokens, "
          f"{n_bytes / n_tokens:.2f} bytes/token; wrote {args.out}/tokenizer.json, tokenizer_config.json")


if __name__ == "__main__":
    main()
