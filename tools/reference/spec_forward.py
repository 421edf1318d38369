#!/usr/bin/env python3
"""Second witness for the golden data: the forward of docs/spec/glm4_moe.md section 2 in numpy fp64.

make_golden.py records what transformers computes. This script recomputes the teacher-forced logits and
the greedy continuation of every tests/golden/<case>/ directly from the files on disk, with its own
safetensors reader (8-byte header length, JSON header, raw little-endian data; BF16 widened by a 16-bit
shift) and its own config reading (flat or nested RoPE keys, eos ids from config.json and
generation_config.json united), and nothing from torch or transformers. Agreement means the golden files,
the spec and transformers say the same thing, so glmoe can be written against the spec.

Deliberately simple and slow: no KV cache (greedy decoding recomputes the whole sequence each step),
fp64 everywhere. Layers >= num_hidden_layers (the MTP layer) are never read.
Run: python3 tools/reference/spec_forward.py [--golden tests/golden] [case ...]
"""

import argparse
import json
import os
import struct
import sys

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_safetensors(path):
    """name -> float64 array for every tensor in one file."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + header_len])
    data = blob[8 + header_len:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[start:end]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif info["dtype"] == "F32":
            arr = np.frombuffer(raw, dtype="<f4")
        else:
            raise ValueError(f"{path}: {name}: dtype {info['dtype']} not handled here")
        out[name] = arr.astype(np.float64).reshape(info["shape"])
    return out


def load_checkpoint(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        weights.update(read_safetensors(os.path.join(model_dir, name)))
    return weights


def load_config(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    rope = cfg.get("rope_parameters") or {}
    cfg["rope_theta"] = rope.get("rope_theta", cfg.get("rope_theta"))
    cfg["partial_rotary_factor"] = rope.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 0.5))
    eos = cfg.get("eos_token_id") or []
    eos = set(eos if isinstance(eos, list) else [eos])
    gen_path = os.path.join(model_dir, "generation_config.json")
    if os.path.exists(gen_path):
        with open(gen_path) as f:
            g = json.load(f).get("eos_token_id") or []
        eos |= set(g if isinstance(g, list) else [g])
    cfg["eos_set"] = eos
    return cfg


def rms_norm(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


def silu(z):
    return z / (1.0 + np.exp(-z))


def mlp(x, W, p):
    return (silu(x @ W[p + "gate_proj.weight"].T) * (x @ W[p + "up_proj.weight"].T)) @ W[p + "down_proj.weight"].T


def rope(x, positions, theta, rot):
    """Half-split rotation of dims [0, rot) of x [T, heads, D]; dims [rot, D) pass through."""
    half = rot // 2
    inv_freq = theta ** (-np.arange(0, rot, 2, dtype=np.float64) / rot)
    a = positions[:, None] * inv_freq[None, :]                    # [T, half]
    cos, sin = np.cos(a)[:, None, :], np.sin(a)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:rot]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., rot:]], axis=-1)


def attention(x, W, p, cfg):
    T = x.shape[0]
    nh, nkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    q = (x @ W[p + "q_proj.weight"].T + W[p + "q_proj.bias"]).reshape(T, nh, D)
    k = (x @ W[p + "k_proj.weight"].T + W[p + "k_proj.bias"]).reshape(T, nkv, D)
    v = (x @ W[p + "v_proj.weight"].T + W[p + "v_proj.bias"]).reshape(T, nkv, D)
    if cfg.get("use_qk_norm"):
        q = rms_norm(q, W[p + "q_norm.weight"], cfg["rms_norm_eps"])
        k = rms_norm(k, W[p + "k_norm.weight"], cfg["rms_norm_eps"])
    rot = int(D * cfg["partial_rotary_factor"])
    pos = np.arange(T, dtype=np.float64)
    q, k = rope(q, pos, cfg["rope_theta"], rot), rope(k, pos, cfg["rope_theta"], rot)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    out = np.empty((T, nh, D))
    for h in range(nh):
        kv = h // (nh // nkv)
        s = q[:, h] @ k[:, kv].T / np.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        out[:, h] = (s / s.sum(-1, keepdims=True)) @ v[:, kv]
    return out.reshape(T, nh * D) @ W[p + "o_proj.weight"].T


def moe(x, W, p, cfg):
    E, K = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    G, kg = cfg["n_group"], cfg["topk_group"]
    scores = 1.0 / (1.0 + np.exp(-(x @ W[p + "gate.weight"].T)))          # [T, E]
    out = mlp(x, W, p + "shared_experts.")
    for t in range(x.shape[0]):
        c = scores[t] + W[p + "gate.e_score_correction_bias"]
        group_score = np.sort(c.reshape(G, E // G), axis=-1)[:, -2:].sum(-1)
        kept = np.argsort(-group_score, kind="stable")[:kg]
        c = np.where(np.isin(np.arange(E) // (E // G), kept), c, -np.inf)
        idx = np.argsort(-c, kind="stable")[:K]
        w = scores[t, idx]
        if cfg["norm_topk_prob"]:
            w = w / w.sum()
        w = w * cfg["routed_scaling_factor"]
        for j, e in enumerate(idx):
            out[t] += w[j] * mlp(x[t:t + 1], W, f"{p}experts.{e}.")[0]
    return out


def forward(ids, W, cfg):
    """Logits [T, V] of a teacher-forced forward of ids."""
    eps = cfg["rms_norm_eps"]
    x = W["model.embed_tokens.weight"][ids]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = x + attention(rms_norm(x, W[p + "input_layernorm.weight"], eps), W, p + "self_attn.", cfg)
        u = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        x = x + (mlp(u, W, p + "mlp.") if i < cfg["first_k_dense_replace"] else moe(u, W, p + "mlp.", cfg))
    return rms_norm(x, W["model.norm.weight"], eps) @ W["lm_head.weight"].T


def check_case(case_dir):
    cfg = load_config(case_dir)
    W = load_checkpoint(case_dir)
    with open(os.path.join(case_dir, "reference.json")) as f:
        ref = json.load(f)
    golden = np.fromfile(os.path.join(case_dir, "logits.f32"), dtype="<f4").reshape(ref["logits_shape"])
    logits = forward(np.array(ref["teacher_ids"]), W, cfg)
    diff = np.abs(logits - golden).max()

    seq = list(ref["greedy_prompt"])
    new = []
    for _ in range(ref["greedy_max_new_tokens"]):
        nxt = int(np.argmax(forward(np.array(seq), W, cfg)[-1]))
        seq.append(nxt)
        new.append(nxt)
        if nxt in cfg["eos_set"]:
            break
    return diff, new == ref["greedy_new_ids"], sorted(cfg["eos_set"]) == sorted(ref["eos_token_id_generation_config"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", default=os.path.join(REPO_ROOT, "tests", "golden"))
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    cases = args.cases or sorted(d for d in os.listdir(args.golden)
                                 if os.path.exists(os.path.join(args.golden, d, "reference.json")))
    ok = True
    print(f"{'case':<12} {'max|dlogit|':>12} {'greedy':>7} {'eos':>5}")
    for case in cases:
        diff, greedy_ok, eos_ok = check_case(os.path.join(args.golden, case))
        good = diff <= 1e-4 and greedy_ok and eos_ok
        ok &= good
        print(f"{case:<12} {diff:>12.2e} {'same' if greedy_ok else 'DIFF':>7} {'same' if eos_ok else 'DIFF':>5}"
              f"{'' if good else '   <-- FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
