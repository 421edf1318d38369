#!/usr/bin/env python3
"""Does mlx-lm load what `glmoe quantize` writes, and compute the same logits as glmoe on it?

For each bf16 source given (default: tests/golden_quant/*/bf16), this runs
`build/glmoe quantize -m SRC -o TMP --bits B --group G`, loads TMP with mlx-lm (mlx_lm.utils.load_model,
on the CPU, every floating parameter cast to float32 as tools/reference/make_quant_golden.py does),
runs the source's teacher_ids (its reference.json) through MLX's forward and through
`build/glmoe logits -m TMP`, and prints the largest |difference| of the logits. Exit status 1 if
any exceeds 1e-4 (the bar of tests/golden_quant).

Needs mlx[cpu] and mlx-lm (pip); not run by CI (which does not install MLX): test_quantize
checks glmoe's file against MLX's committed logits of mlx-lm's own file instead.

    python3 tools/reference/check_mlx_loads_glmoe.py [--bits 4 --group 64] [SRC ...]
"""
import argparse
import glob
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import mlx.core as mx
import numpy as np
from mlx.utils import tree_map
from mlx_lm.utils import load_model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group", type=int, default=64)
    ap.add_argument("--glmoe", default=os.path.join(ROOT, "build", "glmoe"))
    ap.add_argument("sources", nargs="*")
    a = ap.parse_args()
    sources = a.sources or sorted(glob.glob(os.path.join(ROOT, "tests/golden_quant/*/bf16")))
    mx.set_default_device(mx.cpu)
    worst_all = 0.0
    for src in sources:
        ids = json.load(open(os.path.join(src, "reference.json")))["teacher_ids"]
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "q")
            subprocess.run([a.glmoe, "quantize", "-m", src, "-o", out, "--bits", str(a.bits), "--group",
                            str(a.group)], check=True, stderr=subprocess.DEVNULL)
            logits_path = os.path.join(tmp, "glmoe.f32")
            subprocess.run([a.glmoe, "logits", "-m", out, "--device", "cpu", "--ids", ",".join(map(str, ids)), "-o",
                            logits_path], check=True, stderr=subprocess.DEVNULL)
            model, _ = load_model(pathlib.Path(out))
            model.update(tree_map(lambda p: p.astype(mx.float32) if p.dtype in (mx.bfloat16, mx.float16) else p,
                                  model.parameters()))
            ref = np.array(model(mx.array([ids])).astype(mx.float32))[0]
            got = np.fromfile(logits_path, dtype=np.float32).reshape(ref.shape)
            worst = float(np.abs(got - ref).max())
            worst_all = max(worst_all, worst)
            print(f"{src}: q{a.bits} g{a.group} written by glmoe, loaded by mlx-lm: max |glmoe - MLX| = {worst:.2e}, "
                  f"argmax equal: {bool((got.argmax(1) == ref.argmax(1)).all())}")
    sys.exit(0 if worst_all <= 1e-4 else 1)


if __name__ == "__main__":
    main()
