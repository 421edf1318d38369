#!/usr/bin/env python3
"""MLX's CPU speed on a glmoe model: prefill of a 512-token prompt and 128 decode steps, bf16 / q8 / q4.

Peer numbers for BENCHMARKS.md, measured the way BENCHMARKS.md measures glmoe on the CPU: one prefill
call for the whole prompt, then single-token decode steps with greedy sampling (argmax) included.

  models   MODEL (default models/glmoe-demo) as bf16 and its mlx_lm.convert q8 / q4 (group size 64), made
           in a temporary directory (tools/reference/mlx_models.py)
  compute  "native": as mlx_lm.load returns it (bf16 weights / scales, bf16 activations); "f32": every
           floating parameter cast to float32 (what tools/reference/mlx_perplexity.py uses). The bf16
           MoE model cannot run natively on MLX 0.32.4's CPU backend (GatherMM is float32-only): that row
           reports the error.
  prompt   PROMPT ids drawn uniformly from the vocabulary with numpy seed 0
  timing   time.perf_counter around work that ends in mx.eval (MLX is lazy: nothing runs before eval).
           Warm-up: one untimed prefill of 32 tokens and 4 decode steps on a fresh cache. Then REPS
           repetitions of: fresh mlx-lm KV cache (make_prompt_cache); prefill = model(prompt, cache),
           mx.eval of the logits; decode = NEW steps of argmax -> model(token, cache) -> mx.eval(token).
           prefill tok/s = PROMPT / time, decode tok/s = NEW / time; mean and sample std over REPS.
  threads  MLX's CPU stream is one thread and the mlx[cpu] wheel bundles the reference (netlib) BLAS,
           which is single-threaded; the script reports process CPU time / wall time (about 1 = one core)
           and the load average, since the VM is shared.
  hash     sha256 (first 16 hex) of the last prefill's final logits row as float32: shows that a change
           to the setup did not change the numbers.

Run: python3 tools/bench/mlx_cpu_bench.py [--variants bf16,q8,q4] [--compute native,f32] [--reps 3]
     [--json OUT]
"""

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools", "reference"))
import mlx_models  # noqa: E402
from quant_io import today, versions  # noqa: E402


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_once(model, prompt, n_new):
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache
    cache = make_prompt_cache(model)
    t0 = time.perf_counter()
    logits = model(mx.array(prompt)[None], cache=cache)
    mx.eval(logits)
    t1 = time.perf_counter()
    last = np.array(logits[0, -1].astype(mx.float32))
    y = mx.argmax(logits[0, -1])
    for _ in range(n_new):
        logits = model(y.reshape(1, 1), cache=cache)
        y = mx.argmax(logits[0, -1])
        mx.eval(y)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, last


def bench(model, prompt, n_new, reps):
    run_once(model, prompt[:32], 4)  # warm-up
    pre, dec, c0, w0 = [], [], cpu_seconds(), time.perf_counter()
    for _ in range(reps):
        tp, td, last = run_once(model, prompt, n_new)
        pre.append(len(prompt) / tp)
        dec.append(n_new / td)
    cpu_ratio = (cpu_seconds() - c0) / (time.perf_counter() - w0)
    digest = hashlib.sha256(np.ascontiguousarray(last, dtype="<f4").tobytes()).hexdigest()[:16]
    sd = (lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0)
    return {"prefill_tok_s": statistics.mean(pre), "prefill_std": sd(pre), "decode_tok_s": statistics.mean(dec),
            "decode_std": sd(dec), "prefill_runs": pre, "decode_runs": dec, "cpu_per_wall": cpu_ratio,
            "logits_hash": digest}


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", default=os.path.join(REPO_ROOT, "models", "glmoe-demo"))
    ap.add_argument("--variants", default="bf16,q8,q4")
    ap.add_argument("--compute", default="native,f32")
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work-dir", default=None, help="keep the MLX copies here (default: a temp dir, removed)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import mlx.core as mx
    mx.set_default_device(mx.cpu)
    with open(os.path.join(args.model, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    prompt = np.random.default_rng(0).integers(0, vocab, args.prompt).astype(np.int32)
    work = args.work_dir or tempfile.mkdtemp(prefix="glmoe-mlx-")
    rows = []
    try:
        variants = args.variants.split(",")
        dirs = mlx_models.prepare(args.model, work, variants)
        for v in variants:
            for compute in args.compute.split(","):
                load0, model = os.getloadavg()[0], None
                try:
                    model = mlx_models.load(dirs[v], compute)
                    r = bench(model, prompt, args.new, args.reps)
                except RuntimeError as e:
                    r = {"error": str(e)}
                r.update({"variant": v, "compute": compute, "load_avg_before": load0,
                          "load_avg_after": os.getloadavg()[0]})
                rows.append(r)
                if "error" in r:
                    print(f"{v:>5} {compute:>6}: MLX error: {r['error']}", flush=True)
                else:
                    print(f"{v:>5} {compute:>6}: prefill {r['prefill_tok_s']:8.1f} ± {r['prefill_std']:.1f} tok/s, "
                          f"decode {r['decode_tok_s']:7.1f} ± {r['decode_std']:.1f} tok/s, cpu/wall "
                          f"{r['cpu_per_wall']:.2f}, load {load0:.1f}, logits {r['logits_hash']}", flush=True)
                del model
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        doc = {"generator": "tools/bench/mlx_cpu_bench.py", "model": os.path.relpath(args.model, REPO_ROOT),
               "prompt_tokens": args.prompt, "new_tokens": args.new, "reps": args.reps,
               "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "platform": platform.platform()},
               "rows": rows, "versions": versions(), "date": today()}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)


if __name__ == "__main__":
    main()
