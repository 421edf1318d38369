#!/usr/bin/env python3
"""PyTorch reference for `glmoe perplexity`: teacher-forced perplexity of a model folder over a text file.

The checkpoint is loaded with transformers in fp32 (bf16 weights, fp32 compute, eager experts). The file is
tokenized whole with the folder's tokenizer.json and no special tokens, cut into non-overlapping windows of
--ctx tokens from token 0 (the last one may be shorter), and each window is run on its own from position 0;
every token of a window but the first is predicted. perplexity = exp(total NLL / predicted tokens).
This is the same measurement train.py prints at the end of training; it runs on the CPU in about a minute.

Run: python3 tools/train_demo/evaluate.py [-m models/glmoe-demo] [-f models/glmoe-demo/heldout.txt]
                                          [--ctx 512] [--greedy N]
The last line of stdout is `perplexity: X`; --greedy N first prints N greedy tokens after train.py's prompt.
"""
import argparse
import math
import os
import sys

import torch
from tokenizers import Tokenizer
from transformers import Glm4MoeForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import DEFAULT_MODEL_DIR, PROMPT, heldout_nll, load_tokens  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", default=DEFAULT_MODEL_DIR)
    ap.add_argument("-f", "--file", default=os.path.join(DEFAULT_MODEL_DIR, "heldout.txt"))
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--greedy", type=int, default=0, help="also print this many greedy tokens after the prompt")
    args = ap.parse_args()

    torch.manual_seed(0)
    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    model = Glm4MoeForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                               experts_implementation="eager").eval()
    if args.greedy > 0:
        ids = torch.tensor([tok.encode(PROMPT).ids])
        eos = model.config.eos_token_id
        out = model.generate(ids, max_new_tokens=args.greedy, do_sample=False, eos_token_id=eos,
                             pad_token_id=model.config.pad_token_id)
        print(f"greedy ids: {out[0].tolist()}")
        print(f"greedy text: {tok.decode(out[0].tolist(), skip_special_tokens=True)!r}")
    ids, nbytes = load_tokens(tok, args.file)
    nll, count = heldout_nll(model, ids, args.ctx, torch.device("cpu"), autocast=False, batch=8)
    print(f"{args.file}: {len(ids)} tokens, {count} predicted, NLL {nll / count:.6f} nats/token, "
          f"{nll / math.log(2) / nbytes:.4f} bits/byte")
    print(f"perplexity: {math.exp(nll / count):.4f}")


if __name__ == "__main__":
    main()
