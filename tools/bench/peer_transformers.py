#!/usr/bin/env python3
"""peer_transformers.py — times the Hugging Face transformers implementation of a GLM-4.5 MoE checkpoint
(Glm4MoeForCausalLM, PyTorch eager, bf16) and writes the common benchmark JSON (notes/bench_schema.md),
so that tools/bench/compare.py can set it beside glmoe and llama.cpp on the same weights.

usage: peer_transformers.py MODEL_DIR --out OUT.json [--device cuda] [--dtype bf16|fp32] [--reps 3]
                            [--lengths 1,2,...] [--contexts 128,2048,16384] [--decode-steps 20]
                            [--kv-fill random|prefill] [--op-tokens 1,512] [--op-contexts 2048,16384]
                            [--experts NAME] [--no-ops] [--max-seconds S] [--name air4] [--seed 0]
  e.g. on the GPU box:  python3 tools/bench/peer_transformers.py /data/air4 --out tf.json --max-seconds 540
  on CPU with a golden model:  ... tests/golden/air_like --out tf.json --device cpu --lengths 1,8,64

The model is loaded with AutoModelForCausalLM (dtype bf16, attn_implementation="eager"), straight onto the
device when the accelerate package is there, else on the host and then moved. The experts implementation is
transformers' default (grouped_mm in transformers 5) unless --experts names another ("eager", "batched_mm").

What each number means (all times in milliseconds, wall time of the GPU timeline measured with CUDA
events after a synchronize; perf_counter on CPU; every number is a median):
  prefill[i].ms          one forward of a fixed pseudo-random prompt of `tokens` tokens from an empty cache
                         (a fresh DynamicCache each rep, use_cache=True, logits_to_keep=1 when this
                         transformers supports it: see "version"). One untimed warm-up forward per length,
                         then --reps timed ones (fewer for a length when the --max-seconds budget is near;
                         "reps" says how many were used).
  decode[i].ms_per_token one single-token forward with `context` tokens in the KV cache. The cache is filled
                         with random bf16 K/V tensors of the right shape through cache.update, layer by layer
                         (--kv-fill random, default; timing does not depend on the values), or by chunked
                         prefill of <= 1024 tokens per forward (--kv-fill prefill). After each step the cache
                         is cropped back to `context` (cache.crop), so every step sees the same context.
                         position_ids = [[context]]. Median over --decode-steps steps after 3 warm-up steps.
                         Note that DynamicCache appends with torch.cat, so each step copies the whole cache:
                         that is part of what transformers costs, and it is included.
  ops[i].ms              one call of the model's OWN module or function for that op (schema names), on
                         random inputs of the schema's shape. Tiny ops are timed as a loop of calls divided
                         by the count (eager launch overhead included, as in a real forward):
    add_rmsnorm   residual + delta, then layer 1's post_attention_layernorm (Glm4MoeRMSNorm)
    matmul_qkv    layer 1's q_proj, k_proj, v_proj (three nn.Linear calls, with bias when attention_bias)
    matmul_o      layer 1's o_proj
    rope          apply_rotary_pos_emb on q [1,nh,T,D], k [1,nkv,T,D] (transposed views, as in the model)
                  with cos/sin from the model's rotary_emb at positions 0..T-1 (T=1: position 2047)
    attn_causal   eager_attention_forward, T=512, with the additive causal mask eager attention gets from
                  create_causal_mask (finfo.min above the diagonal): eager has no mask-free causal path
    attn_masked   the same plus a random additive mask (~10% of entries masked, diagonal kept)
    attn_decode   eager_attention_forward, T=1, K/V of `context` rows, with the all-zero [1,1,1,C] mask
                  the model builds at decode time
    swiglu        the dense MLP's act_fn(gate) * up over [T, I]
    moe_route     the first MoE layer's (layer 1 in Air) router module: fp32 logits, sigmoid, group top-k,
                  normalized and scaled weights
    moe_experts   the first MoE layer's experts module (stacked expert weights, experts implementation named
                  in "version") on the router's choices for random x; shared experts not included
    dense_mlp     the first dense layer's (layer 0) MLP (gate_proj, up_proj, act, down_proj)
  "context" of an op is the number of key positions attended (attention ops), else 0.
An entry that failed has "ms": null and an "error" string; one skipped for the --max-seconds budget has
"ms": null and "skipped". The JSON is rewritten after every section, so a killed run keeps what it had.
Needs torch, transformers (>= 5), numpy (through transformers).
"""
import argparse
import inspect
import json
import math
import os
import statistics
import sys
import time

import torch

SCHEMA_LENGTHS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96] + list(range(112, 145)) + \
                 [192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096]
DECODE_WARMUP_STEPS = 3
PREFILL_CHUNK = 1024          # --kv-fill prefill: tokens per forward while filling the cache
OP_TARGET_MS = 20.0           # each op sample loops until about this much time has passed
OP_SAMPLES = 7                # samples per op; the median per-call time is reported


def log(msg):
    print(f"peer_transformers: {msg}", file=sys.stderr, flush=True)


def parse_int_list(text):
    return [int(x) for x in text.replace(" ", "").split(",") if x]


# ---------------------------------------------------------------- timing and budget

class Budget:
    """Wall-clock budget from the start of the run; None means unlimited."""

    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds if seconds else None

    def left(self):
        return math.inf if self.deadline is None else self.deadline - time.monotonic()

    def expired(self):
        return self.left() <= 0


class Timer:
    """Times callables on one device: CUDA events on a GPU, perf_counter on CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def once_ms(self, fn, calls=1):
        """Milliseconds for `calls` back-to-back calls of fn (work finished before and after)."""
        self.sync()
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - t0) * 1e3

    def per_call_ms(self, fn, samples=OP_SAMPLES, target_ms=OP_TARGET_MS):
        """Median per-call time of fn; each sample loops enough calls to last about target_ms."""
        for _ in range(3):
            fn()
        one = max(self.once_ms(fn), 1e-3)
        calls = max(1, min(10000, int(target_ms / one)))
        if one > 10 * target_ms:  # slow op (a CPU test run): a few single calls are enough
            samples = min(samples, 3)
        return statistics.median(self.once_ms(fn, calls) / calls for _ in range(samples))


# ---------------------------------------------------------------- model access

class Peer:
    """The loaded model plus what this transformers version calls things."""

    def __init__(self, model_dir, device, dtype, experts=None):
        from transformers import AutoModelForCausalLM
        self.device, self.dtype = device, dtype
        kwargs = dict(attn_implementation="eager")
        if experts:  # else transformers' default (grouped_mm in transformers 5)
            kwargs["experts_implementation"] = experts
        try:  # straight onto the device; needs the accelerate package
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, device_map=str(device), **kwargs)
        except (ValueError, ImportError):  # no accelerate: load on the host, then move
            self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, **kwargs).to(device)
        self.model.eval()
        self.cfg = self.model.config
        params = inspect.signature(self.model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        self.logits_to_keep = "logits_to_keep" in params
        self.layers = self.model.model.layers

    def new_cache(self):
        from transformers import DynamicCache
        try:
            return DynamicCache(config=self.cfg)
        except TypeError:
            return DynamicCache()

    def forward(self, ids, cache, position_ids=None):
        kwargs = {self.cache_kw: cache, "use_cache": True}
        if self.logits_to_keep:
            kwargs["logits_to_keep"] = 1
        if position_ids is not None:
            kwargs["position_ids"] = position_ids
        return self.model(input_ids=ids, **kwargs)

    def attn_dims(self):
        c = self.cfg
        d = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        return c.num_attention_heads, c.num_key_value_heads, d

    def moe_layer(self):
        for layer in self.layers:
            if hasattr(layer.mlp, "experts"):
                return layer
        raise RuntimeError("model has no MoE layer (first_k_dense_replace >= num_hidden_layers)")

    def dense_layer(self):
        for layer in self.layers:
            if not hasattr(layer.mlp, "experts"):
                return layer
        raise RuntimeError("model has no dense-MLP layer (first_k_dense_replace = 0)")

    def op_layer(self):
        """Layer 1 (the schema's choice for attention/norm ops) when it exists, else layer 0."""
        return self.layers[1] if len(self.layers) > 1 else self.layers[0]

    def randn(self, *shape, dtype=None):
        return torch.randn(*shape, device=self.device, dtype=dtype or self.dtype)

    def experts_impl(self):
        return getattr(self.cfg, "_experts_implementation", None) or "eager (no experts interface)"

    def version_text(self, kv_fill):
        import transformers
        dev = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
        return (f"torch {torch.__version__}, transformers {transformers.__version__}, "
                f"attn_implementation={getattr(self.cfg, '_attn_implementation', '?')}, "
                f"experts_implementation={self.experts_impl()}, dtype={str(self.dtype).replace('torch.', '')}, "
                f"logits_to_keep={'1' if self.logits_to_keep else 'not supported (full logits)'}, "
                f"decode kv fill={kv_fill}, device={dev}")


def crop_cache(cache, length):
    """Drop what is past `length` tokens: crop(-n) in transformers >= 5.17, crop(length) before."""
    extra = cache.get_seq_length() - length
    if extra <= 0:
        return
    try:
        cache.crop(-extra)
    except (ValueError, TypeError):
        cache.crop(length)
    if cache.get_seq_length() != length:
        raise RuntimeError(f"cache.crop left {cache.get_seq_length()} tokens, wanted {length}")


def fill_cache_random(peer, cache, context):
    """Write random K/V of shape [1, nkv, context, D] for every layer, through cache.update."""
    _, nkv, d = peer.attn_dims()
    for i in range(len(peer.layers)):
        cache.update(peer.randn(1, nkv, context, d), peer.randn(1, nkv, context, d), i)


def fill_cache_prefill(peer, cache, context, ids):
    """Run the prompt ids[:, :context] through the model, PREFILL_CHUNK tokens per forward."""
    for start in range(0, context, PREFILL_CHUNK):
        end = min(context, start + PREFILL_CHUNK)
        pos = torch.arange(start, end, device=peer.device)[None]
        peer.forward(ids[:, start:end], cache, pos)


# ---------------------------------------------------------------- sections

def outcome(entry, key, unit="ms"):
    """The time, or why there is none, for the progress log."""
    return f"{entry[key]} {unit}" if entry.get(key) is not None else entry.get("error") or entry.get("skipped")


def error_text(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]


def free_memory(peer):
    if peer.device.type == "cuda":
        torch.cuda.empty_cache()


def bench_prefill_length(peer, timer, budget, ids, n, reps):
    prompt = ids[:, :n]
    run = lambda: peer.forward(prompt, peer.new_cache())
    warm = timer.once_ms(run)
    times = []
    for _ in range(reps):
        if times and budget.left() * 1e3 < 1.2 * max(times[-1], warm):
            break
        times.append(timer.once_ms(run))
    return {"tokens": n, "ms": round(statistics.median(times), 4), "reps": len(times)}


def bench_prefill(peer, timer, budget, lengths, reps, ids):
    out = []
    for n in lengths:
        if budget.expired():
            out.append({"tokens": n, "ms": None, "skipped": "max-seconds budget spent"})
        else:
            try:
                out.append(bench_prefill_length(peer, timer, budget, ids, n, reps))
            except Exception as e:  # noqa: BLE001 — record and go on, e.g. out of memory
                out.append({"tokens": n, "ms": None, "error": error_text(e)})
                free_memory(peer)
        log(f"prefill {n:5d} tokens: {outcome(out[-1], 'ms')}")
    return out


def bench_decode_context(peer, timer, budget, context, steps, kv_fill, ids):
    cache = peer.new_cache()
    if kv_fill == "prefill":
        fill_cache_prefill(peer, cache, context, ids)
    else:
        fill_cache_random(peer, cache, context)
    if cache.get_seq_length() != context:
        raise RuntimeError(f"cache holds {cache.get_seq_length()} tokens after filling, wanted {context}")
    token = ids[:, :1]
    pos = torch.tensor([[context]], device=peer.device)
    times = []
    for step in range(DECODE_WARMUP_STEPS + steps):
        t = timer.once_ms(lambda: peer.forward(token, cache, pos))
        crop_cache(cache, context)
        if step >= DECODE_WARMUP_STEPS:
            times.append(t)
            if len(times) >= 3 and budget.expired():
                break
    return {"context": context, "ms_per_token": round(statistics.median(times), 4), "steps": len(times)}


def bench_decode(peer, timer, budget, contexts, steps, kv_fill, ids):
    out = []
    for c in contexts:
        if budget.expired():
            out.append({"context": c, "ms_per_token": None, "skipped": "max-seconds budget spent"})
        else:
            try:
                out.append(bench_decode_context(peer, timer, budget, c, steps, kv_fill, ids))
            except Exception as e:  # noqa: BLE001
                out.append({"context": c, "ms_per_token": None, "error": error_text(e)})
            free_memory(peer)
        log(f"decode context {c:6d}: {outcome(out[-1], 'ms_per_token', 'ms/token')}")
    return out


# ---------------------------------------------------------------- ops: each builder returns a no-argument callable

def op_add_rmsnorm(peer, t):
    norm = peer.op_layer().post_attention_layernorm
    resid, delta = peer.randn(1, t, peer.cfg.hidden_size), peer.randn(1, t, peer.cfg.hidden_size)
    return lambda: norm(resid + delta)


def op_matmul_qkv(peer, t):
    attn = peer.op_layer().self_attn
    x = peer.randn(1, t, peer.cfg.hidden_size)
    return lambda: (attn.q_proj(x), attn.k_proj(x), attn.v_proj(x))


def op_matmul_o(peer, t):
    attn = peer.op_layer().self_attn
    nh, _, d = peer.attn_dims()
    x = peer.randn(1, t, nh * d)
    return lambda: attn.o_proj(x)


def op_rope(peer, t):
    from transformers.models.glm4_moe.modeling_glm4_moe import apply_rotary_pos_emb
    nh, nkv, d = peer.attn_dims()
    first = 2047 if t == 1 else 0
    pos = torch.arange(first, first + t, device=peer.device)[None]
    q, k = peer.randn(1, t, nh, d).transpose(1, 2), peer.randn(1, t, nkv, d).transpose(1, 2)
    cos, sin = peer.model.model.rotary_emb(q, pos)
    return lambda: apply_rotary_pos_emb(q, k, cos, sin)


def causal_mask(peer, t):
    """The additive mask eager attention gets: 0 on and below the diagonal, finfo.min above."""
    lo = torch.finfo(peer.dtype).min
    return torch.full((t, t), lo, device=peer.device, dtype=peer.dtype).triu(1)[None, None]


def attention_call(peer, t, context, mask):
    from transformers.models.glm4_moe.modeling_glm4_moe import eager_attention_forward
    attn = peer.op_layer().self_attn
    nh, nkv, d = peer.attn_dims()
    q = peer.randn(1, nh, t, d)
    k, v = peer.randn(1, nkv, context, d), peer.randn(1, nkv, context, d)
    return lambda: eager_attention_forward(attn, q, k, v, mask, scaling=attn.scaling, dropout=0.0)


def op_attn_causal(peer, t):
    return attention_call(peer, t, t, causal_mask(peer, t))


def op_attn_masked(peer, t):
    mask = causal_mask(peer, t)
    holes = torch.rand(t, t, device=peer.device) < 0.1
    holes.fill_diagonal_(False)
    mask = mask.masked_fill(holes[None, None], torch.finfo(peer.dtype).min)
    return attention_call(peer, t, t, mask)


def op_attn_decode(peer, context):
    return attention_call(peer, 1, context, torch.zeros(1, 1, 1, context, device=peer.device, dtype=peer.dtype))


def op_swiglu(peer, t):
    mlp = peer.dense_layer().mlp
    inter = mlp.gate_proj.out_features
    gate, up = peer.randn(1, t, inter), peer.randn(1, t, inter)
    return lambda: mlp.act_fn(gate) * up


def route(mlp, x):
    """The model's router: a tuple (logits, weights, indices) in transformers 5, else logits + routing method."""
    out = mlp.gate(x)
    if isinstance(out, tuple):
        return out[-1], out[-2]
    return mlp.route_tokens_to_experts(out)


def op_moe_route(peer, t):
    mlp = peer.moe_layer().mlp
    x = peer.randn(t, peer.cfg.hidden_size)
    return lambda: route(mlp, x)


def op_moe_experts(peer, t):
    mlp = peer.moe_layer().mlp
    x = peer.randn(t, peer.cfg.hidden_size)
    idx, weights = route(mlp, x)
    return lambda: mlp.experts(x, idx, weights)


def op_dense_mlp(peer, t):
    mlp = peer.dense_layer().mlp
    x = peer.randn(1, t, peer.cfg.hidden_size)
    return lambda: mlp(x)


def op_plan(op_tokens, decode_contexts):
    """(name, tokens, context, builder, builder argument) in schema order."""
    plan = []
    per_t = [("add_rmsnorm", op_add_rmsnorm), ("matmul_qkv", op_matmul_qkv), ("matmul_o", op_matmul_o),
             ("rope", op_rope)]
    for name, fn in per_t:
        plan += [(name, t, 0, fn, t) for t in op_tokens]
    plan.append(("attn_causal", 512, 512, op_attn_causal, 512))
    plan.append(("attn_masked", 512, 512, op_attn_masked, 512))
    plan += [("attn_decode", 1, c, op_attn_decode, c) for c in decode_contexts]
    for name, fn in [("swiglu", op_swiglu), ("moe_route", op_moe_route), ("moe_experts", op_moe_experts),
                     ("dense_mlp", op_dense_mlp)]:
        plan += [(name, t, 0, fn, t) for t in op_tokens]
    return plan


def bench_ops(peer, timer, budget, op_tokens, decode_contexts):
    out = []
    for name, t, context, build, arg in op_plan(op_tokens, decode_contexts):
        entry = {"op": name, "tokens": t, "context": context, "ms": None}
        if budget.expired():
            entry["skipped"] = "max-seconds budget spent"
        else:
            try:
                entry["ms"] = round(timer.per_call_ms(build(peer, arg)), 5)
            except Exception as e:  # noqa: BLE001
                entry["error"] = error_text(e)
                free_memory(peer)
        out.append(entry)
        log(f"op {name:12s} T={t:4d} ctx={context:6d}: {outcome(entry, 'ms')}")
    return out


# ---------------------------------------------------------------- main

def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lengths", type=parse_int_list, default=SCHEMA_LENGTHS)
    ap.add_argument("--contexts", type=parse_int_list, default=[128, 2048, 16384])
    ap.add_argument("--decode-steps", type=int, default=20)
    ap.add_argument("--kv-fill", choices=["random", "prefill"], default="random")
    ap.add_argument("--op-tokens", type=parse_int_list, default=[1, 512])
    ap.add_argument("--op-contexts", type=parse_int_list, default=[2048, 16384], help="attn_decode contexts")
    ap.add_argument("--experts", default=None, help="experts_implementation (default: transformers' default, "
                    "grouped_mm in 5.x; eager loops over experts). grouped_mm wants 16-byte aligned strides, "
                    "which tiny test models may lack")
    ap.add_argument("--no-ops", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=None, help="budget for the whole run, load included")
    ap.add_argument("--name", default=None, help="model name in the JSON (default: the folder's name)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def write_json(path, result):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, path)


def main(argv=None):
    a = parse_args(argv)
    budget = Budget(a.max_seconds)
    device = torch.device(a.device)
    dtype = torch.bfloat16 if a.dtype == "bf16" else torch.float32
    torch.manual_seed(a.seed)
    t0 = time.monotonic()
    peer = Peer(a.model_dir, device, dtype, a.experts)
    log(f"loaded {a.model_dir} in {time.monotonic() - t0:.1f} s; {peer.version_text(a.kv_fill)}")
    timer = Timer(device)
    result = {
        "engine": "transformers",
        "version": peer.version_text(a.kv_fill),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "model": {"name": a.name or os.path.basename(os.path.normpath(a.model_dir)),
                  "dir": os.path.abspath(a.model_dir), "layers": peer.cfg.num_hidden_layers,
                  "params": float(sum(p.numel() for p in peer.model.parameters()))},
        "prefill": [], "decode": [], "ops": [],
    }
    gen = torch.Generator().manual_seed(a.seed)
    longest = max(a.lengths + a.contexts + [1])
    ids = torch.randint(0, peer.cfg.vocab_size, (1, longest), generator=gen).to(device)
    with torch.inference_mode():
        result["prefill"] = bench_prefill(peer, timer, budget, a.lengths, a.reps, ids)
        write_json(a.out, result)
        result["decode"] = bench_decode(peer, timer, budget, a.contexts, a.decode_steps, a.kv_fill, ids)
        write_json(a.out, result)
        if not a.no_ops:
            result["ops"] = bench_ops(peer, timer, budget, a.op_tokens, a.op_contexts)
    write_json(a.out, result)
    log(f"wrote {a.out} after {time.monotonic() - t0:.1f} s")


if __name__ == "__main__":
    main()
