#!/usr/bin/env python3
"""MLX's perplexity of a text file, computed exactly the way `glmoe perplexity` does (tools/cli/cmd_perplexity.c).

The method, reproduced rule by rule:
  - the file's bytes are decoded as UTF-8 and encoded whole with the model's tokenizer.json (the
    `tokenizers` package) without special tokens: no BOS/EOS added; the id list is compared with
    `glmoe tokenize --no-special` when a glmoe binary is available (build/glmoe by default);
  - the ids are cut into non-overlapping windows of --ctx tokens (default 512) starting at token 0; the
    last window may be shorter, and a window of a single token predicts nothing and is dropped;
  - each window is evaluated on its own from position 0 (one model call, no cache);
  - every token of a window but the first is predicted: NLL += logsumexp(row) - row[next], with the
    row widened to float64, its max subtracted, exp/log in float64 (as the C code does);
  - perplexity = exp(total NLL / predicted tokens).

Models: the glmoe model directory (default models/glmoe-demo) as bf16, and mlx_lm.convert's q8 and q4
(group size 64) of it, made in a temporary directory (not kept unless --work-dir is given; see
tools/reference/mlx_models.py for the config copy mlx-lm needs). --compute f32 (default) casts every
floating parameter to float32 after loading, so MLX computes in float32 on the exact bf16 weights and
decoded quantized weights, as glmoe's CPU path does; --compute native runs the model as loaded (bf16
activations). MLX 0.32.4's CPU backend cannot run the bf16 (unquantized) MoE model natively: GatherMM
supports only float32. Everything runs on mx.cpu.

Run: python3 tools/reference/mlx_perplexity.py [--variants bf16,q8,q4] [--compute f32|native]
     [--max-windows N] [--json OUT]      (about 10 minutes per variant on one core of the CI VM)
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mlx_models  # noqa: E402
from quant_io import today, versions  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def encode(model_dir, path):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    with open(path, "rb") as f:
        text = f.read().decode("utf-8")
    return tok.encode(text, add_special_tokens=False).ids


def glmoe_ids(glmoe, model_dir, path):
    out = subprocess.run([glmoe, "tokenize", "-t", model_dir, "--text-file", path, "--no-special"],
                         check=True, capture_output=True, text=True).stdout
    return [int(t) for t in out.split()]


def window_nll(logits, ids):
    """Σ -log p(ids[t+1] | ids[..t]) over the window, float64 log-softmax per row."""
    rows = logits[:-1].astype(np.float64)
    mx_ = rows.max(-1, keepdims=True)
    lse = mx_[:, 0] + np.log(np.exp(rows - mx_).sum(-1))
    return float((lse - rows[np.arange(len(ids) - 1), ids[1:]]).sum())


def perplexity(model, ids, ctx, max_windows=None):
    import mlx.core as mx
    nll, predicted, per_window = 0.0, 0, []
    starts = [s for s in range(0, len(ids), ctx) if s + 1 < len(ids)]
    if max_windows:
        starts = starts[:max_windows]
    for s in starts:
        win = np.asarray(ids[s:s + ctx], dtype=np.int32)
        logits = model(mx.array(win)[None])[0]
        row_nll = window_nll(np.array(logits.astype(mx.float32)), win)
        nll += row_nll
        predicted += len(win) - 1
        per_window.append(row_nll)
    return nll, predicted, per_window


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(REPO_ROOT, "models", "glmoe-demo"))
    ap.add_argument("-f", "--file", default=None, help="text file (default: MODEL/heldout.txt)")
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--variants", default="bf16,q8,q4")
    ap.add_argument("--compute", choices=["f32", "native"], default="f32")
    ap.add_argument("--max-windows", type=int, default=None, help="only the first N windows")
    ap.add_argument("--work-dir", default=None, help="keep the MLX copies here (default: a temp dir, removed)")
    ap.add_argument("--glmoe", default=os.path.join(REPO_ROOT, "build", "glmoe"),
                    help="glmoe binary for the token-count check (skipped if absent)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args()
    path = args.file or os.path.join(args.model, "heldout.txt")
    variants = args.variants.split(",")

    ids = encode(args.model, path)
    check = None
    if os.path.exists(args.glmoe):
        check = glmoe_ids(args.glmoe, args.model, path) == ids
        if not check:
            sys.exit("token ids differ from `glmoe tokenize --no-special`")
    print(f"{path}: {len(ids)} tokens" + ("" if check is None else ", same ids as glmoe tokenize"), flush=True)

    work = args.work_dir or tempfile.mkdtemp(prefix="glmoe-mlx-")
    try:
        dirs = mlx_models.prepare(args.model, work, variants)
        results = {}
        for v in variants:
            t0 = time.time()
            try:
                model = mlx_models.load(dirs[v], args.compute)
                nll, n, per_window = perplexity(model, ids, args.ctx, args.max_windows)
            except RuntimeError as e:  # e.g. the bf16 model natively: GatherMM is float32-only on the CPU
                results[v] = {"error": str(e)}
                print(f"{v:>5}: MLX error: {e}", flush=True)
                continue
            secs = time.time() - t0
            results[v] = {"convert": mlx_models.convert_command(v), "windows": len(per_window),
                          "predicted": n, "nll": nll, "nll_per_token": nll / n, "perplexity": math.exp(nll / n),
                          "seconds": secs, "window_nll": per_window}
            print(f"{v:>5}: {len(per_window)} windows, {n} predicted, nll/token {nll / n:.6f}, "
                  f"perplexity {math.exp(nll / n):.4f}  ({secs:.0f} s)", flush=True)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        doc = {"generator": "tools/reference/mlx_perplexity.py", "file": os.path.relpath(path, REPO_ROOT),
               "tokens": len(ids), "ctx": args.ctx, "compute": args.compute, "max_windows": args.max_windows,
               "glmoe_tokenize_agrees": check, "device": "cpu", "results": results,
               "versions": versions(), "date": today()}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
