#!/usr/bin/env python3
"""peer_mlx.py — times Python MLX (mlx-lm) on a GLM-4.5 checkpoint quantized by MLX itself, and writes
the common benchmark JSON that tools/bench/compare.py reads (the schema of glmoe's `bench --json`).

usage: peer_mlx.py DIR --out OUT.json [--bits 4] [--group-size 64] [--name air4]
                   [--lengths 1,2,4,...] [--contexts 128,4096] [--reps 5] [--steps 32]
                   [--logits-ids 1,2,3 --logits-out FILE] [--float32] [--cpu]

  DIR      a Hugging Face Glm4MoeForCausalLM checkpoint (config.json, *.safetensors), e.g. the one
           tools/gpu/make_synthetic.py writes; nested RoPE keys (transformers 5) are flattened for
           mlx-lm as tools/reference/mlx_models.py does
  model    mlx_lm.utils.load_model (lazy), then what `mlx_lm.convert -q --q-bits B --q-group-size G`
           does before it saves, in memory: floating parameters cast to the config's torch_dtype
           (the model's cast_predicate decides which), mlx_lm.utils.quantize_model with mode "affine"
           (the model's quant_predicate decides which layers); --bits 0 keeps the float weights
  device   mx.gpu when MLX has a GPU (the CUDA backend on Linux), else the CPU; --cpu forces it.
           On the device, MLX comes from tools/gpu/mlx_site.sh (tools/reference/README.md)
  prefill  the time to run an N-token prompt from an empty cache up to the last token's logits
           (the hidden states of all N tokens, lm_head on the last row only, as mlx_lm's
           generate_step leaves the prompt's other logits unevaluated), ending in mx.eval; one
           untimed run per length first (MLX compiles kernels at run time, per shape), then REPS
  decode   per context C: the C-token prompt is run once into a fresh cache; each repetition
           trims the cache back to C tokens (mlx_lm trim_prompt_cache) and generates STEPS tokens
           greedily, one at a time, the way mlx_lm's generate_step does (the next step is built
           and mx.async_eval'd before the previous token is read); ms per token = the
           repetition's time / STEPS; one untimed repetition first, then REPS
  times    time.perf_counter; medians (ms) with the means beside them, as peer_llamacpp.py writes
  prompt   ids drawn uniformly below the vocabulary's special tokens, numpy seed 0
  check    the last prefill's last logits row: finite or not, and its sha256 (first 16 hex), which
           shows cheaply that a change to the setup changed nothing; --logits-ids runs those ids
           teacher-forced from an empty cache and writes every position's logits to
           --logits-out as float32 [n_ids, vocab], the layout of `glmoe logits -o`
           (--float32: every floating parameter cast to float32 first, for such a check on the
           CPU, where MLX 0.32.4's gather_mm has no bfloat16 kernel)

A failure is one line on stderr and exit 1. Needs mlx (mlx[cuda13] on the GPU, mlx[cpu] here),
mlx-lm and numpy.
"""
import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tools", "reference"))


def ints(text):
    return [int(x) for x in text.split(",") if x.strip()]


def load_quantized(model_dir, bits, group_size, float32):
    """(model, config, parameter count before quantization) as mlx_lm.convert would make it."""
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_map, tree_map_with_path
    from mlx_lm.utils import load_model, quantize_model
    from mlx_models import flat_config

    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = flat_config(json.load(f))
    model, config = load_model(Path(model_dir), lazy=True, model_config=cfg)
    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    dtype = config.get("torch_dtype")
    if dtype in ("float16", "bfloat16", "float32"):
        dt = getattr(mx, dtype)
        cast = getattr(model, "cast_predicate", lambda _: True)
        model.update(tree_map_with_path(
            lambda k, v: v.astype(dt) if cast(k) and mx.issubdtype(v.dtype, mx.floating) else v,
            model.parameters()))
    if bits:
        model, config = quantize_model(model, config, group_size, bits, mode="affine")
    if float32:
        model.update(tree_map(lambda v: v.astype(mx.float32) if mx.issubdtype(v.dtype, mx.floating) else v,
                              model.parameters()))
    mx.eval(model.parameters())
    return model, config, n_params


def last_logits(model, tokens, cache):
    """Logits of the last of tokens (1-D int32), run into cache: hidden states of all, lm_head on one."""
    import mlx.core as mx
    h = model.model(mx.array(tokens)[None], cache)
    return model.lm_head(h[:, -1:, :])[0, 0]


def time_prefill(model, prompt, n, reps):
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache
    samples, out = [], None
    for r in range(reps + 1):  # the first is the warm-up
        cache = make_prompt_cache(model)
        t0 = time.perf_counter()
        out = last_logits(model, prompt[:n], cache)
        mx.eval(out)
        if r:
            samples.append((time.perf_counter() - t0) * 1e3)
        del cache
    return samples, np.array(out.astype(mx.float32))


def time_decode(model, prompt, context, steps, reps):
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache, trim_prompt_cache

    def step(y):
        logits = model(y[None], cache=cache)[:, -1, :]
        return mx.argmax(logits, axis=-1)

    cache = make_prompt_cache(model)
    first = mx.argmax(last_logits(model, prompt[:context], cache), keepdims=True)
    mx.eval(first, [c.state for c in cache])
    samples = []
    for r in range(reps + 1):
        extra = cache[0].offset - context
        if extra:
            trim_prompt_cache(cache, extra)
        t0 = time.perf_counter()
        y = step(first)
        mx.async_eval(y)
        for _ in range(steps - 1):
            nxt = step(y)
            mx.async_eval(nxt)
            y.item()  # the token a caller would read
            y = nxt
        y.item()
        if r:
            samples.append((time.perf_counter() - t0) * 1e3 / steps)
    return samples


def teacher_forced_logits(model, ids):
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache
    logits = model(mx.array(ids, dtype=mx.int32)[None], cache=make_prompt_cache(model))[0]
    return np.array(logits.astype(mx.float32))


def device_name(mx, on_gpu):
    try:
        info = mx.device_info()
    except Exception:  # older MLX, or no such query for this backend
        info = {}
    name = info.get("device_name") or info.get("name") or platform.processor()
    return ("gpu: " if on_gpu else "cpu: ") + str(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--bits", type=int, default=4, help="affine bits (2-6, 8); 0: the float weights as loaded")
    ap.add_argument("--group-size", type=int, default=64)
    ap.add_argument("--name", default=None, help="model name in the JSON (default: the directory's name)")
    ap.add_argument("--lengths", default="1,2,4,8,16,32,64,128,129,256,512,1024,2048,4096")
    ap.add_argument("--contexts", default="128,4096")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=32, help="decode tokens per repetition")
    ap.add_argument("--logits-ids", default=None)
    ap.add_argument("--logits-out", default=None)
    ap.add_argument("--float32", action="store_true")
    ap.add_argument("--cpu", action="store_true")
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.model_dir, "config.json")):
        sys.exit(f"peer_mlx: {args.model_dir}: no config.json")
    if (args.logits_ids is None) != (args.logits_out is None):
        sys.exit("peer_mlx: --logits-ids and --logits-out go together")
    if args.reps < 1 or args.steps < 1:
        sys.exit("peer_mlx: --reps and --steps must be at least 1")
    lengths, contexts = ints(args.lengths), ints(args.contexts)

    import mlx.core as mx
    import mlx_lm
    on_gpu = not args.cpu and mx.is_available(mx.gpu)
    mx.set_default_device(mx.gpu if on_gpu else mx.cpu)
    t = time.perf_counter()
    try:
        model, config, n_params = load_quantized(args.model_dir, args.bits, args.group_size, args.float32)
    except (RuntimeError, ValueError, KeyError, OSError) as e:
        sys.exit(f"peer_mlx: loading {args.model_dir}: {type(e).__name__}: {e}")
    load_s = time.perf_counter() - t
    from mlx.utils import tree_flatten
    weight_bytes = sum(v.nbytes for _, v in tree_flatten(model.parameters()))
    vocab = config["vocab_size"]
    # below the specials (GLM-4.5's start at 151329; tools/gpu/make_synthetic.py puts them last)
    ordinary = 151329 if vocab > 151329 + 36 else vocab - 36
    need = max(lengths + contexts + [1])
    prompt = np.random.default_rng(0).integers(0, ordinary, need).astype(np.int32)

    quant = f"affine {args.bits}-bit group {args.group_size} (mlx_lm.utils.quantize_model)" if args.bits else \
        f"none ({config.get('torch_dtype')})"
    out = {"engine": "mlx", "version": f"mlx {mx.__version__}, mlx-lm {mlx_lm.__version__}",
           "device": device_name(mx, on_gpu),
           "model": {"name": args.name or os.path.basename(os.path.normpath(args.model_dir)),
                     "dir": args.model_dir, "layers": config.get("num_hidden_layers"), "params": n_params,
                     "quantization": quant, "compute": "float32" if args.float32 else "as loaded",
                     "weight_bytes": weight_bytes},
           "load_s": round(load_s, 3), "prefill": [], "decode": [],
           "method": "prefill: N tokens from an empty cache, last token's logits, mx.eval; decode: greedy, "
                     "generate_step-style async_eval, cache trimmed back to the context each repetition; "
                     "medians after one untimed run"}
    try:
        last = None
        for n in lengths:
            s, last = time_prefill(model, prompt, n, args.reps)
            out["prefill"].append({"tokens": n, "ms": statistics.median(s), "ms_mean": statistics.fmean(s),
                                   "reps": len(s)})
            print(f"prefill {n:6d} tokens {statistics.median(s):10.3f} ms", flush=True)
        for c in contexts:
            s = time_decode(model, prompt, c, args.steps, args.reps)
            out["decode"].append({"context": c, "ms_per_token": statistics.median(s),
                                  "ms_per_token_mean": statistics.fmean(s), "steps": args.steps, "reps": len(s)})
            print(f"decode  context {c:6d} {statistics.median(s):8.3f} ms/token "
                  f"({1e3 / statistics.median(s):.1f} tok/s)", flush=True)
        if last is not None:
            out["logits_finite"] = bool(np.isfinite(last).all())
            out["logits_hash"] = hashlib.sha256(np.ascontiguousarray(last, dtype="<f4").tobytes()).hexdigest()[:16]
        if args.logits_ids:
            ids = ints(args.logits_ids)
            if min(ids) < 0 or max(ids) >= vocab:
                sys.exit(f"peer_mlx: --logits-ids: ids must lie in 0..{vocab - 1}")
            lg = teacher_forced_logits(model, ids)
            lg.astype("<f4").tofile(args.logits_out)
            out["logits_file"] = {"path": args.logits_out, "ids": ids, "finite": bool(np.isfinite(lg).all())}
    except RuntimeError as e:  # MLX reports kernel and memory failures this way
        sys.exit(f"peer_mlx: MLX error: {e}")
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    if out.get("logits_finite") is False:
        sys.exit("peer_mlx: the last prefill's logits are not finite")


if __name__ == "__main__":
    main()
