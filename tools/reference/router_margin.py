#!/usr/bin/env python3
"""The smallest router margin of a GLM-4.5-family checkpoint over a sequence of ids, from the float64
numpy forward of make_quant_golden.py (numpy only; MLX-quantized checkpoints are dequantized in
float64), and optionally how far a logits file is from that forward.

    tools/reference/router_margin.py MODEL_DIR --ids 1,2,3 [--logits FILE.f32]

The margin is the least gap, over every token and MoE layer, between the K-th and the (K+1)-th
selection score (and between the kept and the first dropped expert group): the perturbation of a
router score that would change which experts run. Two implementations whose hidden states differ
by more than about that (fp16 tensor cores against float32) may choose different experts, and
their logits then differ by far more than their arithmetic does. tools/gpu/run_gpu.sh compares the
GPU's logits of a quantized checkpoint with the CPU's only where the margin leaves room for the
GPU's rounding (2026-12-07: `glmoe quantize` of tests/golden/glm45_like at q4 g64 has a margin of
6.8e-6 on its teacher ids, which is why its GPU and CPU logits differed by 3.7e-2).

Prints `margin <value>` and, with --logits, `rel_l2 <value>` (float32 file, rows x vocab)."""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_quant_golden as mqg  # noqa: E402


class Margins:
    router = float("inf")
    kth_positive = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--ids", required=True, help="comma-separated token ids")
    ap.add_argument("--logits", help="float32 logits to compare with the float64 forward")
    a = ap.parse_args()
    W, cfg, _ = mqg.load_numpy_model(a.model_dir)
    ids = [int(x) for x in a.ids.split(",")]
    m = Margins()
    ref = mqg.np_forward(ids, W, cfg, m)
    print(f"margin {m.router:.3g}")
    if a.logits:
        got = np.fromfile(a.logits, np.float32).reshape(ref.shape)
        print(f"rel_l2 {np.linalg.norm(got - ref) / np.linalg.norm(ref):.3g}")


if __name__ == "__main__":
    main()
