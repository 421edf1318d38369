#!/usr/bin/env python3
"""Golden data for glmoe's MLX-quantized path: tiny GLM-4.5 checkpoints converted by mlx_lm.convert, and
MLX's own float32 outputs on them -> tests/golden_quant/<case>/<variant>/.

For every case below the script writes a random bf16 checkpoint the way Hugging Face publishes GLM-4.5
(per-expert tensors, router bf16, e_score_correction_bias F32, flat config.json with torch_dtype, two
shards and an index), written with numpy only (no torch), and converts it with mlx-lm:

  bf16/    the Hugging Face source (plus a minimal word-level tokenizer.json: mlx_lm.convert and
           mlx_lm.load insist on a tokenizer; the tests pass ids)
  q4g64/   mlx_lm.convert -q --q-bits 4 --q-group-size 64
  q8g32/   mlx_lm.convert -q --q-bits 8 --q-group-size 32
  mixed/   glm45_like: a custom predicate (Python API, global 4 bits / group 64, per-module overrides of
           every bit width and group size, the stacked switch_mlp experts of both MoE layers included, one
           module refused by the predicate); air_like: mlx-lm's own recipe
           --quant-predicate mixed_3_6 --q-group-size 64 (the dense down_proj, input 160, is not a
           multiple of 64 and stays bf16; air_like's q4g64 leaves it bf16 too)

mlx-lm's output files are kept as written. Next to them, in every variant directory:

  logits.f32      teacher-forced logits of reference.json "teacher_ids" computed by MLX itself
                  (mlx_lm.load on the CPU, then every floating parameter - float weights, norms, biases, the
                  router, and the quantization scales/biases - cast to float32, so this is float32
                  arithmetic on the exactly decoded weights); float32 LE, row-major [T, vocab]
  reference.json  ids, the greedy continuation (MLX with its KV cache), margins, the per-module
                  quantization table, the agreement with the numpy float64 witness, versions and date

Second witness: an independent numpy float64 forward (own safetensors reader, own bit-stream unpacker
and dequantizer, MLX's routing rule) recomputes every logits row and greedy run from the files on disk.
Its logits must agree with MLX's within AGREE_REL (relative to max |logit|) and its greedy ids must be
equal. It also supplies the routing margins: every group choice and top-k choice, in the teacher run and
the greedy run of every variant, must have a score gap >= MIN_ROUTER_MARGIN, and every greedy step a
top-1 minus top-2 logit gap >= MIN_LOGIT_MARGIN; otherwise the next id seed is tried. The same teacher ids
and prompt serve all four variants of a case.

Run: python3 tools/reference/make_quant_golden.py [--out tests/golden_quant] [case ...]   (about 1 min)
"""

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np

try:  # MLX makes the golden data; the float64 forward below (np_forward) needs only numpy
    import mlx.core as mx
    from mlx.utils import tree_flatten, tree_map
except ImportError:
    mx = None

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quant_io import (dequantize_f64, f32_to_bf16_bits, read_safetensors, to_f64, today,  # noqa: E402
                      versions, write_json, write_safetensors)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEACHER_LEN = 24
PROMPT_LEN = 8
MAX_NEW_TOKENS = 24
MIN_LOGIT_MARGIN = 1e-3   # top-1 minus top-2 logit at every greedy step (MLX float32 logits)
MIN_ROUTER_MARGIN = 1e-4  # score gap at every routing decision (numpy float64, sigmoid-score units)
AGREE_REL = 1e-4          # max |MLX - numpy64| / max |logit|
MAX_SEED_TRIES = 100


@dataclasses.dataclass
class Case:
    name: str
    description: str
    config: dict          # flat Hugging Face config.json (official GLM-4.5 form)
    seed: int
    bias_offset: float    # constant added to every e_score_correction_bias
    mixed: dict           # how the mixed/ variant is made (see VARIANTS)


def hf_config(**kw):
    cfg = {
        "architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe",
        "attention_bias": True, "attention_dropout": 0.0, "hidden_act": "silu",
        "initializer_range": 0.02, "max_position_embeddings": 4096, "num_nextn_predict_layers": 0,
        "partial_rotary_factor": 0.5, "rms_norm_eps": 1e-5, "rope_scaling": None, "rope_theta": 1000000.0,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
        "transformers_version": "4.54.0",
    }
    cfg.update(kw)
    return dict(sorted(cfg.items()))


# glm45_like mixed/: global 4 bits, group 64. The modules listed get their own (bits, group_size) and an
# override entry in config.json; model.layers.1.mlp.shared_experts.down_proj is refused by the predicate
# (False: stays bf16, no entry); every other quantizable module returns True (the global setting, no entry).
GLM45_MIXED = {
    "model.embed_tokens": (6, 64),
    "model.layers.0.self_attn.q_proj": (5, 32),
    "model.layers.0.self_attn.k_proj": (3, 64),
    "model.layers.0.self_attn.v_proj": (8, 128),
    "model.layers.0.mlp.gate_proj": (2, 32),
    "model.layers.0.mlp.up_proj": (3, 128),
    "model.layers.0.mlp.down_proj": (5, 128),
    "model.layers.1.self_attn.v_proj": (6, 32),
    "model.layers.1.mlp.switch_mlp.gate_proj": (4, 32),
    "model.layers.1.mlp.switch_mlp.up_proj": (6, 64),
    "model.layers.1.mlp.switch_mlp.down_proj": (8, 64),
    "model.layers.1.mlp.shared_experts.gate_proj": (8, 128),
    "model.layers.1.mlp.shared_experts.up_proj": (5, 32),
    "model.layers.1.mlp.shared_experts.down_proj": False,
    "model.layers.2.self_attn.q_proj": (2, 64),
    "model.layers.2.mlp.switch_mlp.gate_proj": (3, 128),
    "model.layers.2.mlp.switch_mlp.up_proj": (8, 32),
    "model.layers.2.mlp.switch_mlp.down_proj": (5, 32),
    "lm_head": (8, 32),
}


def glm45_mixed_predicate(path, module):
    if path in GLM45_MIXED:
        if GLM45_MIXED[path] is False:
            return False
        bits, group = GLM45_MIXED[path]
        return {"group_size": group, "bits": bits, "mode": "affine"}
    return True


CASES = [
    Case(name="glm45_like",
         description="GLM-4.5-like: QK-norm, n_group 4 / topk_group 2, top-4 of 16 experts + 1 shared, "
                     "routed_scaling_factor 2.5, 3 layers (1 dense + 2 MoE), 4 query heads x head_dim 32 on "
                     "2 KV heads, partial rotary 0.5 (16 rotary dims), hidden 128, intermediate 256, "
                     "moe_intermediate 64, vocab 300; e_score_correction_bias = 8 + N(0, 0.1) in F32, so "
                     "rounding it to bf16 changes the experts chosen",
         config=hf_config(vocab_size=300, hidden_size=128, intermediate_size=256, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=2, head_dim=32, use_qk_norm=True,
                          first_k_dense_replace=1, moe_intermediate_size=64, n_routed_experts=16,
                          num_experts_per_tok=4, n_shared_experts=1, n_group=4, topk_group=2,
                          norm_topk_prob=True, routed_scaling_factor=2.5),
         seed=11, bias_offset=8.0,
         mixed={"kind": "predicate", "q_bits": 4, "q_group_size": 64}),
    Case(name="air_like",
         description="GLM-4.5-Air-like: no QK-norm, n_group 1, top-4 of 8 experts + 2 shared experts "
                     "(shared width 128), norm_topk_prob true, routed_scaling_factor 1.0, 3 layers (1 dense + "
                     "2 MoE), 4 query heads x head_dim 32 on 1 KV head, hidden 128, dense intermediate 160 "
                     "(a multiple of 32 only: left bf16 by q4g64 and mixed), moe_intermediate 64, vocab 280",
         config=hf_config(vocab_size=280, hidden_size=128, intermediate_size=160, num_hidden_layers=3,
                          num_attention_heads=4, num_key_value_heads=1, head_dim=32, use_qk_norm=False,
                          first_k_dense_replace=1, moe_intermediate_size=64, n_routed_experts=8,
                          num_experts_per_tok=4, n_shared_experts=2, n_group=1, topk_group=1,
                          norm_topk_prob=True, routed_scaling_factor=1.0, max_position_embeddings=131072),
         seed=12, bias_offset=0.0,
         mixed={"kind": "recipe", "recipe": "mixed_3_6", "q_group_size": 64}),
]

VARIANTS = ["bf16", "q4g64", "q8g32", "mixed"]


# ----------------------------------------------------------------------------------------------------
# The bf16 Hugging Face checkpoint (numpy only)

def bf16_round(x):
    from quant_io import bf16_bits_to_f32
    return bf16_bits_to_f32(f32_to_bf16_bits(np.asarray(x, np.float32))).reshape(np.shape(x))


def hf_shapes(cfg):
    H, V, D = cfg["hidden_size"], cfg["vocab_size"], cfg["head_dim"]
    nh, nkv, E = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["n_routed_experts"]
    Im, I = cfg["moe_intermediate_size"], cfg["intermediate_size"]
    Is = Im * cfg["n_shared_experts"]
    shapes = {"model.embed_tokens.weight": [V, H], "model.norm.weight": [H], "lm_head.weight": [V, H]}
    for L in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{L}."
        shapes.update({
            p + "input_layernorm.weight": [H], p + "post_attention_layernorm.weight": [H],
            p + "self_attn.q_proj.weight": [nh * D, H], p + "self_attn.q_proj.bias": [nh * D],
            p + "self_attn.k_proj.weight": [nkv * D, H], p + "self_attn.k_proj.bias": [nkv * D],
            p + "self_attn.v_proj.weight": [nkv * D, H], p + "self_attn.v_proj.bias": [nkv * D],
            p + "self_attn.o_proj.weight": [H, nh * D]})
        if cfg["use_qk_norm"]:
            shapes[p + "self_attn.q_norm.weight"] = [D]
            shapes[p + "self_attn.k_norm.weight"] = [D]
        if L < cfg["first_k_dense_replace"]:
            shapes.update({p + "mlp.gate_proj.weight": [I, H], p + "mlp.up_proj.weight": [I, H],
                           p + "mlp.down_proj.weight": [H, I]})
        else:
            shapes.update({p + "mlp.gate.weight": [E, H], p + "mlp.gate.e_score_correction_bias": [E],
                           p + "mlp.shared_experts.gate_proj.weight": [Is, H],
                           p + "mlp.shared_experts.up_proj.weight": [Is, H],
                           p + "mlp.shared_experts.down_proj.weight": [H, Is]})
            for e in range(E):
                shapes.update({p + f"mlp.experts.{e}.gate_proj.weight": [Im, H],
                               p + f"mlp.experts.{e}.up_proj.weight": [Im, H],
                               p + f"mlp.experts.{e}.down_proj.weight": [H, Im]})
    return shapes


def random_weights(cfg, seed, bias_offset):
    """Weights of O(1)-activation scale, drawn as make_golden.py does: Linear [out, in] ~ N(0, 1/in),
    embeddings ~ N(0, 1), q/k/v biases ~ N(0, 0.1), RMSNorm weights ~ U(0.5, 1.5), all rounded to bf16;
    e_score_correction_bias ~ bias_offset + N(0, 0.1), kept float32. Drawn in sorted name order."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in sorted(hf_shapes(cfg).items()):
        if name.endswith("e_score_correction_bias"):
            out[name] = (rng.standard_normal(shape) * 0.1 + bias_offset).astype(np.float32)
            continue
        if name.endswith("norm.weight"):
            t = rng.random(shape) + 0.5
        elif name.endswith("embed_tokens.weight"):
            t = rng.standard_normal(shape)
        elif name.endswith(".bias"):
            t = rng.standard_normal(shape) * 0.1
        else:
            t = rng.standard_normal(shape) / math.sqrt(shape[-1])
        out[name] = bf16_round(t)
    return out


def minimal_tokenizer(vocab):
    """A word-level tokenizer "t0".."t{V-1}" (ids = vocab ids), only so mlx-lm's loader finds one."""
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
            "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": None, "decoder": None,
            "model": {"type": "WordLevel", "vocab": {f"t{i}": i for i in range(vocab)}, "unk_token": "t0"}}


def write_hf_checkpoint(out_dir, cfg, weights):
    """Two shards + index, BF16 except the F32 correction bias, metadata {"format": "pt"}."""
    os.makedirs(out_dir)
    names = sorted(weights)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    weight_map, total = {}, 0
    for fname, keys in shards.items():
        tensors = {}
        for k in keys:
            if k.endswith("e_score_correction_bias"):
                tensors[k] = ("F32", weights[k])
            else:
                tensors[k] = ("BF16", f32_to_bf16_bits(weights[k]))
            total += tensors[k][1].nbytes
            weight_map[k] = fname
        write_safetensors(os.path.join(out_dir, fname), tensors, {"format": "pt"})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(minimal_tokenizer(cfg["vocab_size"]), f)
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 4096}, f, indent=2)


# ----------------------------------------------------------------------------------------------------
# Conversion

def convert_variant(case, variant, src, dst):
    """Runs mlx_lm.convert; returns the command (or the Python call) that made dst."""
    base = [sys.executable, "-m", "mlx_lm", "convert", "--hf-path", src, "--mlx-path", dst, "-q"]
    shown = f"mlx_lm.convert --hf-path {case.name}/bf16 --mlx-path {case.name}/{variant} -q"
    if variant == "q4g64":
        args = ["--q-bits", "4", "--q-group-size", "64"]
    elif variant == "q8g32":
        args = ["--q-bits", "8", "--q-group-size", "32"]
    elif case.mixed["kind"] == "recipe":
        args = ["--quant-predicate", case.mixed["recipe"], "--q-group-size", str(case.mixed["q_group_size"])]
    else:
        from mlx_lm.convert import convert
        with open(os.devnull, "w") as devnull:
            stdout = sys.stdout
            sys.stdout = devnull
            try:
                convert(src, dst, quantize=True, q_bits=case.mixed["q_bits"],
                        q_group_size=case.mixed["q_group_size"], quant_predicate=glm45_mixed_predicate)
            finally:
                sys.stdout = stdout
        return (f"mlx_lm.convert.convert('{case.name}/bf16', '{case.name}/{variant}', quantize=True, "
                f"q_bits={case.mixed['q_bits']}, q_group_size={case.mixed['q_group_size']}, "
                f"quant_predicate=glm45_mixed_predicate)  # tools/reference/make_quant_golden.py GLM45_MIXED")
    subprocess.run(base + args, check=True, stdout=subprocess.DEVNULL)
    return shown + " " + " ".join(args)


# ----------------------------------------------------------------------------------------------------
# numpy float64 witness: reads the files itself, decodes, and runs the forward with MLX's routing rule

def load_numpy_model(model_dir):
    """float64 weights under MLX names (experts stacked), the config, and the per-module quant table."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    raw = {}
    for fname in files:
        t, _ = read_safetensors(os.path.join(model_dir, fname))
        raw.update(t)
    q = cfg.get("quantization")
    W, table = {}, {}
    for name, (dt, arr) in raw.items():
        if name.endswith(".scales") or (name.endswith(".biases") and name[:-7] + ".scales" in raw):
            continue
        path = name[:-len(".weight")] if name.endswith(".weight") else None
        if path and path + ".scales" in raw:
            override = q.get(path) if q else None
            params = override if isinstance(override, dict) else {"bits": q["bits"], "group_size": q["group_size"]}
            bits, g = params["bits"], params["group_size"]
            sdt, scales = raw[path + ".scales"]
            bdt, biases = raw[path + ".biases"]
            assert dt == "U32" and sdt == bdt and scales.shape == biases.shape, path
            n_in = scales.shape[-1] * g
            assert arr.shape[-1] * 32 == n_in * bits and arr.shape[:-1] == scales.shape[:-1], \
                f"{path}: shapes {arr.shape} / {scales.shape} do not fit bits {bits} group {g}"
            assert params.get("mode", "affine") == "affine"
            W[name] = dequantize_f64(arr, to_f64(sdt, scales), to_f64(bdt, biases), bits, g)
            table[path] = {"bits": bits, "group_size": g, "scales_dtype": sdt,
                           "config": "override" if isinstance(override, dict) else "global"}
        else:
            W[name] = to_f64(dt, arr)
            if name.endswith(".weight") and not name.endswith("norm.weight") and ".mlp.gate.weight" not in name:
                table[path] = {"bits": None, "group_size": None, "scales_dtype": None, "config": "unquantized",
                               "dtype": dt}
    # Hugging Face per-expert names -> stacked, as mlx-lm's sanitize does.
    for L in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{L}.mlp."
        for m in ("gate_proj", "up_proj", "down_proj"):
            if f"{p}experts.0.{m}.weight" in W:
                W[f"{p}switch_mlp.{m}.weight"] = np.stack(
                    [W.pop(f"{p}experts.{e}.{m}.weight") for e in range(cfg["n_routed_experts"])])
                for e in range(cfg["n_routed_experts"]):
                    table.pop(f"{p}experts.{e}.{m}", None)
                table[f"{p}switch_mlp.{m}"] = {"bits": None, "group_size": None, "scales_dtype": None,
                                               "config": "unquantized", "dtype": "BF16"}
    # Tensors that stay in float whatever the recipe (spec quantization.md section 7.2).
    float_dtypes = {}
    for name, (dt, _) in raw.items():
        kind = ("e_score_correction_bias" if name.endswith("e_score_correction_bias") else
                "router" if name.endswith("mlp.gate.weight") else
                "norms" if name.endswith("norm.weight") else
                "attention_bias" if name.endswith("_proj.bias") else None)
        if kind:
            float_dtypes.setdefault(kind, set()).add(dt)
    want = {"e_score_correction_bias": {"F32"}, "router": {"BF16"}, "norms": {"BF16"}, "attention_bias": {"BF16"}}
    assert float_dtypes == want, f"{model_dir}: float tensors stored as {float_dtypes}"
    assert not any(".mlp.experts." in n for n in raw) or "quantization" not in cfg
    return W, cfg, dict(sorted(table.items(), key=lambda kv: module_order(kv[0])))


def module_order(path):
    parts = path.split(".")
    layer = int(parts[2]) if len(parts) > 2 and parts[1] == "layers" else (-1 if "embed" in path else 1 << 30)
    return (layer, path)


class Margins:
    """Smallest routing gap seen (group choice and top-k), MLX's rule replayed in float64."""

    def __init__(self):
        self.router = math.inf
        self.kth_positive = True


def rms_norm(x, w, eps):
    return w * (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps))


def silu(z):
    return z / (1.0 + np.exp(-z))


def np_mlp(x, W, p):
    return (silu(x @ W[p + "gate_proj.weight"].T) * (x @ W[p + "up_proj.weight"].T)) @ W[p + "down_proj.weight"].T


def np_rope(x, theta, rot):
    """Half-split rotation of dims [0, rot) of x [T, heads, D] at positions 0..T-1."""
    half = rot // 2
    inv_freq = theta ** (-np.arange(0, rot, 2, dtype=np.float64) / rot)
    a = np.arange(x.shape[0], dtype=np.float64)[:, None] * inv_freq[None, :]
    cos, sin = np.cos(a)[:, None, :], np.sin(a)[:, None, :]
    x1, x2 = x[..., :half], x[..., half:rot]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin, x[..., rot:]], axis=-1)


def np_attention(x, W, p, cfg):
    T = x.shape[0]
    nh, nkv, D = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    q = (x @ W[p + "q_proj.weight"].T + W[p + "q_proj.bias"]).reshape(T, nh, D)
    k = (x @ W[p + "k_proj.weight"].T + W[p + "k_proj.bias"]).reshape(T, nkv, D)
    v = (x @ W[p + "v_proj.weight"].T + W[p + "v_proj.bias"]).reshape(T, nkv, D)
    if cfg["use_qk_norm"]:
        q = rms_norm(q, W[p + "q_norm.weight"], cfg["rms_norm_eps"])
        k = rms_norm(k, W[p + "k_norm.weight"], cfg["rms_norm_eps"])
    rot = int(D * cfg["partial_rotary_factor"])
    q, k = np_rope(q, cfg["rope_theta"], rot), np_rope(k, cfg["rope_theta"], rot)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    out = np.empty((T, nh, D))
    for h in range(nh):
        kv = h // (nh // nkv)
        s = q[:, h] @ k[:, kv].T / np.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        out[:, h] = (s / s.sum(-1, keepdims=True)) @ v[:, kv]
    return out.reshape(T, nh * D) @ W[p + "o_proj.weight"].T


def np_moe(x, W, p, cfg, margins):
    """mlx-lm glm4_moe routing: s = sigmoid(x Wr^T); c = s + bias; with n_group > 1 the groups outside
    the topk_group best (group score = sum of the 2 largest c) get c = 0; top-K of c; weights = s of the
    chosen, divided by their sum if norm_topk_prob and K > 1, times routed_scaling_factor."""
    E, K = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    G, kg = cfg["n_group"], cfg["topk_group"]
    s = 1.0 / (1.0 + np.exp(-(x @ W[p + "gate.weight"].T)))
    out = np_mlp(x, W, p + "shared_experts.")
    up, gate, down = (W[p + f"switch_mlp.{m}.weight"] for m in ("up_proj", "gate_proj", "down_proj"))
    for t in range(x.shape[0]):
        c = s[t] + W[p + "gate.e_score_correction_bias"]
        if G > 1:
            gs = np.sort(c.reshape(G, E // G), axis=-1)[:, -2:].sum(-1)
            order = np.sort(gs)[::-1]
            margins.router = min(margins.router, order[kg - 1] - order[kg])
            kept = np.argsort(-gs, kind="stable")[:kg]
            c = np.where(np.isin(np.arange(E) // (E // G), kept), c, 0.0)
        cs = np.sort(c)[::-1]
        if K < E:
            margins.router = min(margins.router, cs[K - 1] - cs[K])
        margins.kth_positive &= bool(cs[K - 1] > 0)
        idx = np.argsort(-c, kind="stable")[:K]
        w = s[t, idx]
        if cfg["norm_topk_prob"] and K > 1:
            w = w / w.sum()
        w = w * cfg["routed_scaling_factor"]
        for j, e in enumerate(idx):
            h = silu(gate[e] @ x[t]) * (up[e] @ x[t])
            out[t] += w[j] * (down[e] @ h)
    return out


def np_forward(ids, W, cfg, margins):
    eps = cfg["rms_norm_eps"]
    x = W["model.embed_tokens.weight"][np.asarray(ids)]
    for L in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{L}."
        x = x + np_attention(rms_norm(x, W[p + "input_layernorm.weight"], eps), W, p + "self_attn.", cfg)
        u = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        if L < cfg["first_k_dense_replace"]:
            x = x + np_mlp(u, W, p + "mlp.")
        else:
            x = x + np_moe(u, W, p + "mlp.", cfg, margins)
    return rms_norm(x, W["model.norm.weight"], eps) @ W["lm_head.weight"].T


def np_greedy(prompt, W, cfg, margins, n):
    seq, new = list(prompt), []
    for _ in range(n):
        nxt = int(np.argmax(np_forward(seq, W, cfg, margins)[-1]))
        seq.append(nxt)
        new.append(nxt)
    return new


# ----------------------------------------------------------------------------------------------------
# MLX

def load_mlx_f32(model_dir):
    """mlx_lm.load, then every floating parameter (float weights, norms, biases, router, correction bias,
    quantization scales and biases) cast to float32; the U32 codes are left alone."""
    import mlx_lm
    model, _ = mlx_lm.load(model_dir)
    model.update(tree_map(lambda a: a.astype(mx.float32) if mx.issubdtype(a.dtype, mx.floating) else a,
                          model.parameters()))
    for name, a in tree_flatten(model.parameters()):
        assert a.dtype in (mx.float32, mx.uint32), f"{name} is {a.dtype}"
    mx.eval(model.parameters())
    return model


def mlx_logits(model, ids):
    out = model(mx.array(np.asarray(ids, dtype=np.int32))[None])
    return np.array(out[0].astype(mx.float32))


def mlx_greedy(model, prompt, n):
    """Greedy ids with mlx-lm's KV cache: one prefill of the prompt, then one token at a time."""
    from mlx_lm.models.cache import make_prompt_cache
    cache = make_prompt_cache(model)
    logits = model(mx.array(np.asarray(prompt, dtype=np.int32))[None], cache=cache)[0, -1]
    new, margin = [], math.inf
    for step in range(n):
        row = np.array(logits.astype(mx.float32))
        top = np.sort(row)[-2:]
        margin = min(margin, float(top[1] - top[0]))
        nxt = int(np.argmax(row))
        new.append(nxt)
        if step + 1 < n:
            logits = model(mx.array([[nxt]], dtype=mx.int32), cache=cache)[0, -1]
    return new, margin


# ----------------------------------------------------------------------------------------------------
# Recording

def find_ids(case, models, np_models):
    """Teacher ids and a greedy prompt with no near-ties in any variant; returns them with the runs."""
    V = case.config["vocab_size"]
    eos = case.config["eos_token_id"]
    teacher = None
    for attempt in range(MAX_SEED_TRIES):
        ids = np.random.default_rng([case.seed, 1, attempt]).integers(0, V, TEACHER_LEN)
        ok, runs = True, {}
        for v in VARIANTS:
            m = Margins()
            np_logits = np_forward(ids, *np_models[v][:2], m)
            if m.router < MIN_ROUTER_MARGIN or not m.kth_positive:
                ok = False
                break
            runs[v] = (np_logits, m.router)
        if ok:
            teacher = (ids.tolist(), attempt, runs)
            break
    assert teacher, f"{case.name}: no teacher ids without routing near-ties"
    for attempt in range(MAX_SEED_TRIES):
        prompt = np.random.default_rng([case.seed, 2, attempt]).integers(0, V, PROMPT_LEN).tolist()
        ok, runs = True, {}
        for v in VARIANTS:
            new, margin = mlx_greedy(models[v], prompt, MAX_NEW_TOKENS)
            if margin < MIN_LOGIT_MARGIN or any(t in eos for t in new):
                ok = False
                break
            m = Margins()
            np_new = np_greedy(prompt, *np_models[v][:2], m, MAX_NEW_TOKENS)
            if m.router < MIN_ROUTER_MARGIN or not m.kth_positive:
                ok = False
                break
            assert np_new == new, f"{case.name}/{v}: numpy64 greedy {np_new} != MLX greedy {new}"
            runs[v] = (new, margin, m.router)
        if ok:
            return teacher, (prompt, attempt, runs)
    raise SystemExit(f"{case.name}: no greedy prompt without near-ties")


def bias_rounding_effect(W, cfg, ids, logits):
    """Max |logit change| (numpy64) if every e_score_correction_bias were rounded to bf16: shows whether
    the case catches a reader that does not keep the bias in float32."""
    W2 = dict(W)
    for k in W:
        if k.endswith("e_score_correction_bias"):
            W2[k] = bf16_round(W[k]).astype(np.float64)
    return float(np.abs(np_forward(ids, W2, cfg, Margins()) - logits).max())


def record_case(case, out_root, vers, date):
    case_dir = os.path.join(out_root, case.name)
    if os.path.isdir(case_dir):
        shutil.rmtree(case_dir)
    os.makedirs(case_dir)
    cfg = dict(case.config)
    weights = random_weights(cfg, case.seed, case.bias_offset)
    src = os.path.join(case_dir, "bf16")
    write_hf_checkpoint(src, cfg, weights)
    commands = {"bf16": "written by tools/reference/make_quant_golden.py (numpy + its safetensors writer)"}
    for v in VARIANTS[1:]:
        commands[v] = convert_variant(case, v, src, os.path.join(case_dir, v))

    models = {v: load_mlx_f32(os.path.join(case_dir, v)) for v in VARIANTS}
    np_models = {v: load_numpy_model(os.path.join(case_dir, v)) for v in VARIANTS}
    # The numpy reader must see exactly the weights the generator drew (bf16 dir).
    W0 = np_models["bf16"][0]
    for name, t in weights.items():
        if ".experts." not in name:
            assert np.array_equal(W0[name], t.astype(np.float64)), name

    (teacher, t_attempt, t_runs), (prompt, p_attempt, p_runs) = find_ids(case, models, np_models)
    rows = []
    for v in VARIANTS:
        vdir = os.path.join(case_dir, v)
        logits = mlx_logits(models[v], teacher)
        np_logits, t_router = t_runs[v]
        diff = float(np.abs(logits - np_logits).max())
        max_logit = float(np.abs(logits).max())
        assert diff <= AGREE_REL * max_logit, f"{case.name}/{v}: MLX vs numpy64 {diff} (max |logit| {max_logit})"
        bias_change = bias_rounding_effect(np_models[v][0], np_models[v][1], teacher, np_logits)
        if case.bias_offset:
            assert bias_change > 0.1, f"{case.name}/{v}: bf16-rounded correction bias changes nothing"
        new, margin, g_router = p_runs[v]
        full = mlx_logits(models[v], prompt + new)
        assert full[PROMPT_LEN - 1:-1].argmax(-1).tolist() == new, f"{case.name}/{v}: cache vs full forward"
        np.ascontiguousarray(logits, dtype="<f4").tofile(os.path.join(vdir, "logits.f32"))
        with open(os.path.join(vdir, "config.json")) as f:
            vcfg = json.load(f)
        table = np_models[v][2]
        ref = {
            "description": case.description,
            "variant": v,
            "made_by": commands[v],
            "quantization": vcfg.get("quantization"),
            "modules": table,
            "float_tensors": {"router mlp.gate.weight": "BF16", "mlp.gate.e_score_correction_bias": "F32",
                              "RMSNorm weights (incl. q_norm/k_norm)": "BF16", "q/k/v .bias": "BF16"},
            "expert_layout": "per-expert model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight" if v == "bf16"
                             else "stacked model.layers.L.mlp.switch_mlp.{gate,up,down}_proj.{weight,scales,biases}",
            "teacher_ids": teacher,
            "logits_shape": [TEACHER_LEN, cfg["vocab_size"]],
            "logits_file": "logits.f32: float32 little-endian, row-major [T, vocab], MLX's teacher-forced logits",
            "greedy_prompt": prompt,
            "greedy_new_ids": new,
            "greedy_max_new_tokens": MAX_NEW_TOKENS,
            "greedy_min_margin": margin,
            "eos_token_id": cfg["eos_token_id"],
            "max_abs_logit": max_logit,
            "router_min_gap": min(t_router, g_router),
            "numpy64_agreement": {"max_abs_diff": diff, "relative_to_max_abs_logit": diff / max_logit,
                                  "tolerance_relative": AGREE_REL, "greedy_ids_equal": True},
            "e_score_correction_bias_offset": case.bias_offset,
            "bias_bf16_logit_change": bias_change,
            "seeds": {"weights": case.seed, "teacher_attempt": t_attempt, "prompt_attempt": p_attempt},
            "mlx_settings": {"device": "cpu", "load": "mlx_lm.load(dir)",
                             "parameters": "every floating parameter cast to float32 after loading "
                                           "(weights, norms, biases, router, correction bias, quantization "
                                           "scales and biases); U32 codes unchanged",
                             "teacher": "model(ids[None]) in one call, no cache",
                             "greedy": "mlx_lm.models.cache.make_prompt_cache; prefill the prompt, then "
                                       "one token per call; argmax of float32 logits, no eos stop"},
            "versions": vers,
            "date": date,
        }
        write_json(os.path.join(vdir, "reference.json"), ref)
        size = sum(os.path.getsize(os.path.join(vdir, f)) for f in os.listdir(vdir))
        rows.append((case.name, v, size, max_logit, margin, ref["router_min_gap"], diff, diff / max_logit))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "golden_quant"))
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    if mx is None:
        sys.exit("make_quant_golden.py: MLX is needed (pip install mlx mlx-cpu mlx-lm)")
    mx.set_default_device(mx.cpu)
    names = [c.name for c in CASES]
    unknown = set(args.cases) - set(names)
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    vers, date = versions(), today()
    import transformers, tokenizers
    vers["transformers"] = transformers.__version__
    vers["tokenizers"] = tokenizers.__version__
    for c in CASES:
        # eos ids: two ids that never appear in a greedy continuation (checked in find_ids)
        c.config = dict(sorted({**c.config, "eos_token_id": [c.config["vocab_size"] - 1, c.config["vocab_size"] - 2],
                                "pad_token_id": c.config["vocab_size"] - 1}.items()))
    rows = []
    for c in CASES:
        if not args.cases or c.name in args.cases:
            rows += record_case(c, args.out, vers, date)
    print(f"{'case':<11} {'variant':<7} {'bytes':>9} {'max|logit|':>10} {'margin':>8} {'router gap':>10} "
          f"{'|mlx-np64|':>10} {'rel':>9}")
    for name, v, size, ml, mg, rg, d, rel in rows:
        print(f"{name:<11} {v:<7} {size:>9} {ml:>10.4f} {mg:>8.4f} {rg:>10.2e} {d:>10.2e} {rel:>9.2e}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))


if __name__ == "__main__":
    main()
