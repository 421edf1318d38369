#!/usr/bin/env python3
"""Golden reference data for glmoe: small random-weight GLM-4.5 MoE checkpoints plus transformers' outputs.

For every case below this script builds a tiny `Glm4MoeForCausalLM` with transformers, fills it with
random weights of O(1) activations (the library's default init, ones for norms and zeros for the router
correction bias, would hide bugs), rounds every weight to bf16, saves the checkpoint the way Hugging Face
publishes GLM-4.5 (sharded bf16 safetensors, F32 e_score_correction_bias) and records what transformers
computes from those exact weights in fp32 with eager attention:

  logits.f32      teacher-forced logits of reference.json "teacher_ids", float32 LE, row-major [T, vocab]
  hidden.f32      output_hidden_states of the same forward, float32 LE, [L+1, T, H]:
                  entry 0 = token embeddings, entry i (1 <= i < L) = residual stream after layer i-1,
                  entry L = model.norm(residual stream after layer L-1), i.e. the FINAL-NORMED state that
                  lm_head consumes (transformers overwrites the last entry with last_hidden_state).
  reference.json  ids, shapes, the greedy continuation, margins, versions and date (README.md lists fields)

What it checks before it writes a case, so that a C test failing means glmoe is wrong, not the data:
  - the stored tensors, read back with the safetensors library, equal the weights used here bitwise, and
    are BF16 except mlp.gate.e_score_correction_bias, which is F32;
  - transformers reloading the directory (from_pretrained, fp32) reproduces the logits bitwise and the
    greedy continuation exactly (so the flat config form and the MTP tensors load as intended);
  - the greedy run with the KV cache agrees with argmax over one teacher-forced forward of the result;
  - no near-ties: every greedy step has top-1 minus top-2 logit >= MIN_LOGIT_MARGIN, and every routing
    decision (group choice and expert top-k) in the teacher-forced and greedy runs has a score gap
    >= MIN_ROUTER_MARGIN; otherwise the next id-sequence seed is tried. A near-tie would let fp32
    rounding differences flip an expert or a token and make the C test flaky.

What it leaves out: tokenizers (no tokenizer files are written; glmoe tests pass ids), quantized layouts,
GPU execution. Run: `python3 tools/reference/make_golden.py` (see tools/reference/README.md).
"""

import argparse
import copy
import dataclasses
import datetime
import json
import math
import os
import shutil
import sys

import huggingface_hub
import numpy as np
import safetensors
import torch
import transformers
from safetensors import safe_open
from transformers import GenerationConfig, Glm4MoeConfig, Glm4MoeForCausalLM
from transformers.models.glm4_moe.modeling_glm4_moe import Glm4MoeTopkRouter

TEACHER_LEN = 24          # teacher-forced sequence length
PROMPT_LEN = 8            # greedy prompt length
MAX_NEW_TOKENS = 24       # greedy continuation limit
MIN_LOGIT_MARGIN = 1e-3   # smallest allowed top-1 minus top-2 logit at a greedy step
MIN_ROUTER_MARGIN = 1e-4  # smallest allowed gap at a routing decision (sigmoid-score units)
MAX_SEED_TRIES = 200

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass
class Case:
    name: str
    description: str
    config: dict              # Glm4MoeConfig keyword arguments on top of base_config()
    seed: int                 # weight seed; id-sequence seeds derive from it
    shards: int = 3           # approximate shard count; 1 = a single model.safetensors without index
    flat_config: bool = False  # rewrite config.json in the official checkpoints' flat form
    mtp_layer: bool = False   # store random MTP tensors at model.layers.{L}.*
    stop_on: str = "none"     # which eos list ends the greedy run: "none", "config" or "generation"
    bias_offset: float = 0.0  # constant added to every e_score_correction_bias (see init_weights)


# ----------------------------------------------------------------------------------------------------
# Case configurations. Every case: partial RoPE, attention_bias true, untied lm_head, eps 1e-5.

def base_config(**overrides):
    cfg = dict(
        hidden_act="silu", rms_norm_eps=1e-5, attention_bias=True, tie_word_embeddings=False,
        max_position_embeddings=4096, num_nextn_predict_layers=0, initializer_range=0.02,
        attention_dropout=0.0, use_cache=True,
    )
    cfg.update(overrides)
    return cfg


def rope(theta, factor):
    return {"rope_type": "default", "rope_theta": float(theta), "partial_rotary_factor": factor}


def glm45_like():
    # The largest case: the README's demo model until a real checkpoint is wired in.
    return Case(
        name="glm45_like",
        description="GLM-4.5-like: QK-norm, n_group 4 / topk_group 2, routed_scaling_factor 2.5, "
                    "3 dense + 3 MoE layers, 12 query heads on 1 KV head (GQA 12), head_dim 16 "
                    "(hidden/heads = 10.67), top-4 of 16 experts + 1 shared, odd vocab 397; "
                    "e_score_correction_bias = 8 + N(0, 0.1), so rounding it to bf16 changes the experts chosen",
        config=base_config(
            vocab_size=397, hidden_size=128, intermediate_size=80, num_hidden_layers=6,
            num_attention_heads=12, num_key_value_heads=1, head_dim=16, rope_parameters=rope(1e6, 0.5),
            use_qk_norm=True, first_k_dense_replace=3, moe_intermediate_size=10, n_routed_experts=16,
            num_experts_per_tok=4, n_shared_experts=1, n_group=4, topk_group=2, norm_topk_prob=True,
            routed_scaling_factor=2.5),
        seed=1, shards=4, stop_on="none", bias_offset=8.0)


def air_like():
    return Case(
        name="air_like",
        description="GLM-4.5-Air-like: no QK-norm, first_k_dense_replace 1, routed_scaling_factor 1.0, "
                    "n_group 1, top-8 of 16 experts, GQA 12, head_dim 12; config.json rewritten to the "
                    "flat official form (rope_theta, partial_rotary_factor, torch_dtype); the greedy run "
                    "stops on an eos id from config.json",
        config=base_config(
            vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
            num_attention_heads=12, num_key_value_heads=1, head_dim=12, rope_parameters=rope(1e6, 0.5),
            use_qk_norm=False, first_k_dense_replace=1, moe_intermediate_size=16, n_routed_experts=16,
            num_experts_per_tok=8, n_shared_experts=1, n_group=1, topk_group=1, norm_topk_prob=True,
            routed_scaling_factor=1.0, max_position_embeddings=131072),
        seed=2, shards=3, flat_config=True, stop_on="config")


def shared2():
    return Case(
        name="shared2",
        description="n_shared_experts 2 (shared width 40), norm_topk_prob false, routed_scaling_factor 1.5, "
                    "odd widths (hidden 80, intermediate 100, moe_intermediate 20), head_dim 24 "
                    "(hidden/heads = 20), QK-norm, top-3 of 8; the greedy run stops on the eos id that "
                    "only generation_config.json lists",
        config=base_config(
            vocab_size=331, hidden_size=80, intermediate_size=100, num_hidden_layers=3,
            num_attention_heads=4, num_key_value_heads=2, head_dim=24, rope_parameters=rope(1e6, 0.5),
            use_qk_norm=True, first_k_dense_replace=1, moe_intermediate_size=20, n_routed_experts=8,
            num_experts_per_tok=3, n_shared_experts=2, n_group=1, topk_group=1, norm_topk_prob=False,
            routed_scaling_factor=1.5),
        seed=3, shards=3, stop_on="generation")


def odd_dims():
    return Case(
        name="odd_dims",
        description="head_dim 20 with partial_rotary_factor 0.5 (10 rotary dims, 5 frequency pairs), "
                    "rope_theta 10000, GQA 2 (6 heads, 3 KV heads), vocab 509, top-1 of 6 experts with "
                    "n_group 3 / topk_group 2, routed_scaling_factor 2.0, max_position_embeddings 64; "
                    "a single model.safetensors without index",
        config=base_config(
            vocab_size=509, hidden_size=56, intermediate_size=72, num_hidden_layers=2,
            num_attention_heads=6, num_key_value_heads=3, head_dim=20, rope_parameters=rope(1e4, 0.5),
            use_qk_norm=False, first_k_dense_replace=1, moe_intermediate_size=24, n_routed_experts=6,
            num_experts_per_tok=1, n_shared_experts=1, n_group=3, topk_group=2, norm_topk_prob=True,
            routed_scaling_factor=2.0, max_position_embeddings=64),
        seed=4, shards=1, stop_on="none")


def mtp():
    return Case(
        name="mtp",
        description="num_nextn_predict_layers 1: the checkpoint also holds random tensors of the "
                    "multi-token-prediction layer at model.layers.2.* (a full MoE layer plus enorm, hnorm, "
                    "eh_proj, shared_head.norm, shared_head.head, embed_tokens), which the forward must skip; "
                    "QK-norm, n_group 2 / topk_group 1, top-2 of 8, GQA 4",
        config=base_config(
            vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=8, num_key_value_heads=2, head_dim=16, rope_parameters=rope(1e6, 0.5),
            use_qk_norm=True, first_k_dense_replace=1, moe_intermediate_size=16, n_routed_experts=8,
            num_experts_per_tok=2, n_shared_experts=1, n_group=2, topk_group=1, norm_topk_prob=True,
            routed_scaling_factor=2.5, num_nextn_predict_layers=1),
        seed=5, shards=3, mtp_layer=True, stop_on="none")


CASES = [glm45_like, air_like, shared2, odd_dims, mtp]


# ----------------------------------------------------------------------------------------------------
# Weights

def bf16_round(t):
    return t.to(torch.bfloat16).to(torch.float32)


def random_tensor(name, shape, gen, bias_offset=0.0):
    """One weight, drawn by the rule its name implies (so that activations and logits are O(1)).

    Linear weights [out, in] ~ N(0, 1/in); embeddings ~ N(0, 1); q/k/v biases ~ N(0, 0.1);
    every RMSNorm weight ~ U(0.5, 1.5); the router correction bias ~ N(0, 0.1) and stays fp32.
    Everything except the correction bias is rounded to bf16, because that is what gets stored."""
    if name.endswith("e_score_correction_bias"):
        return torch.randn(shape, generator=gen) * 0.1 + bias_offset
    if name.endswith("norm.weight"):
        t = torch.rand(shape, generator=gen) + 0.5
    elif name.endswith("embed_tokens.weight"):
        t = torch.randn(shape, generator=gen)
    elif name.endswith(".bias"):
        t = torch.randn(shape, generator=gen) * 0.1
    else:  # a Linear weight or a stack of them: the last axis is the input width
        t = torch.randn(shape, generator=gen) / math.sqrt(shape[-1])
    return bf16_round(t)


def init_weights(model, gen, bias_offset):
    """Random weights for every parameter and the router correction biases.

    A constant bias_offset leaves the chosen experts unchanged in exact arithmetic (selection compares
    s + b across experts) but makes the biases sit close together at a non-zero value, as in the real
    checkpoints; there bf16 would collapse them (its spacing is 2^-4 in [8, 16)), so a reader that rounds the bias
    changes the routing. With offset 0 the bf16 rounding error (~2^-9 relative) is too small to matter."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(random_tensor(name, tuple(p.shape), gen))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(random_tensor(name, tuple(b.shape), gen, bias_offset))


def disk_state_dict(model):
    """The model's weights under the names and shapes of a Hugging Face GLM-4.5 checkpoint.

    transformers >= 5 fuses experts at load time into experts.gate_up_proj [E, 2*Im, H] (gate rows first)
    and experts.down_proj [E, H, Im]; checkpoints keep one tensor per expert, and so does this dict."""
    out = {}
    for name, t in model.state_dict().items():
        if "rotary_emb" in name:
            continue
        if name.endswith("experts.gate_up_proj"):
            prefix = name[: -len("gate_up_proj")]
            im = t.shape[1] // 2
            for e in range(t.shape[0]):
                out[f"{prefix}{e}.gate_proj.weight"] = t[e, :im].clone()
                out[f"{prefix}{e}.up_proj.weight"] = t[e, im:].clone()
        elif name.endswith("experts.down_proj"):
            prefix = name[: -len("down_proj")]
            for e in range(t.shape[0]):
                out[f"{prefix}{e}.down_proj.weight"] = t[e].clone()
        else:
            out[name] = t.clone()
    return out


def mtp_tensors(cfg, gen):
    """Random tensors of one multi-token-prediction layer at index num_hidden_layers (GLM-4.5 layout)."""
    H, V, D = cfg.hidden_size, cfg.vocab_size, cfg.head_dim
    Im, E = cfg.moe_intermediate_size, cfg.n_routed_experts
    Is = Im * cfg.n_shared_experts
    p = f"model.layers.{cfg.num_hidden_layers}."
    shapes = {
        "input_layernorm.weight": [H], "post_attention_layernorm.weight": [H],
        "self_attn.q_proj.weight": [cfg.num_attention_heads * D, H],
        "self_attn.q_proj.bias": [cfg.num_attention_heads * D],
        "self_attn.k_proj.weight": [cfg.num_key_value_heads * D, H],
        "self_attn.k_proj.bias": [cfg.num_key_value_heads * D],
        "self_attn.v_proj.weight": [cfg.num_key_value_heads * D, H],
        "self_attn.v_proj.bias": [cfg.num_key_value_heads * D],
        "self_attn.o_proj.weight": [H, cfg.num_attention_heads * D],
        "mlp.gate.weight": [E, H], "mlp.gate.e_score_correction_bias": [E],
        "mlp.shared_experts.gate_proj.weight": [Is, H], "mlp.shared_experts.up_proj.weight": [Is, H],
        "mlp.shared_experts.down_proj.weight": [H, Is],
        "enorm.weight": [H], "hnorm.weight": [H], "eh_proj.weight": [H, 2 * H],
        "shared_head.norm.weight": [H], "shared_head.head.weight": [V, H], "embed_tokens.weight": [V, H],
    }
    if cfg.use_qk_norm:
        shapes["self_attn.q_norm.weight"] = [D]
        shapes["self_attn.k_norm.weight"] = [D]
    for e in range(E):
        shapes[f"mlp.experts.{e}.gate_proj.weight"] = [Im, H]
        shapes[f"mlp.experts.{e}.up_proj.weight"] = [Im, H]
        shapes[f"mlp.experts.{e}.down_proj.weight"] = [H, Im]
    return {p + k: random_tensor(p + k, s, gen) for k, s in sorted(shapes.items())}


def stored_dtype(name):
    return torch.float32 if name.endswith("e_score_correction_bias") else torch.bfloat16


# ----------------------------------------------------------------------------------------------------
# Routing and logit margins

class RouterMonitor:
    """Records the smallest score gap at any routing decision the model makes while attached.

    Per token it replays transformers' Glm4MoeTopkRouter selection in fp64 from the captured router
    logits: c = sigmoid(l) + bias; the gap between the topk_group-th and next group score (groups scored
    by their two best c); then, among experts of kept groups, the gap between the K-th and next c.
    It also checks that the K-th chosen c is positive: transformers masks dropped groups with -inf,
    the usual DeepSeek description with 0, and the two agree only while that holds."""

    def __init__(self, model):
        self.min_gap = math.inf
        self.zero_mask_agrees = True
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()
                        if isinstance(m, Glm4MoeTopkRouter)]

    def reset(self):
        self.min_gap, self.zero_mask_agrees = math.inf, True

    def close(self):
        for h in self.handles:
            h.remove()

    def _hook(self, router, _inputs, outputs):
        logits = outputs[0].detach().double()
        c = logits.sigmoid() + router.e_score_correction_bias.double()
        n, E = c.shape
        G, kg, K = router.num_group, router.topk_group, router.top_k
        if G > 1 and kg < G:
            group_score = c.view(n, G, E // G).topk(2, dim=-1).values.sum(-1)
            gs = group_score.sort(dim=-1, descending=True).values
            self.min_gap = min(self.min_gap, (gs[:, kg - 1] - gs[:, kg]).min().item())
            kept = torch.zeros_like(group_score, dtype=torch.bool)
            kept.scatter_(1, group_score.topk(kg, dim=-1).indices, True)
            c = c.masked_fill(~kept.repeat_interleave(E // G, dim=1), -math.inf)
        cs = c.sort(dim=-1, descending=True).values
        if K < (E // G) * kg:
            self.min_gap = min(self.min_gap, (cs[:, K - 1] - cs[:, K]).min().item())
        if (cs[:, K - 1] <= 0).any():
            self.zero_mask_agrees = False


def top2_margin(logits_rows):
    top = logits_rows.topk(2, dim=-1).values
    return (top[..., 0] - top[..., 1]).min().item()


# ----------------------------------------------------------------------------------------------------
# Recording

def greedy(model, prompt, eos_ids, pad_id):
    gc = GenerationConfig(do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                          eos_token_id=eos_ids, pad_token_id=pad_id)
    return run_generate(model, prompt, gc)


def run_generate(model, prompt, gc):
    """Greedy ids after the prompt (the stopping eos included, as transformers returns it) and the
    smallest top-1 minus top-2 raw logit over the steps taken."""
    out = model.generate(input_ids=prompt[None], attention_mask=torch.ones_like(prompt)[None],
                         generation_config=gc, output_logits=True, return_dict_in_generate=True)
    new_ids = out.sequences[0, prompt.numel():].tolist()
    margin = min(top2_margin(step[0]) for step in out.logits)
    return new_ids, margin


def choose_eos(case, continuation, vocab, gen):
    """Eos ids for config.json (two) and the one extra id generation_config.json adds.

    The ids that should not stop the run are drawn from tokens absent from the no-eos continuation.
    For stop_on != "none" one stopping id is the continuation's token at the first step >= 6 where a
    token appears for the first time, so the run ends early, on an eos of the chosen file."""
    absent = [t for t in torch.randperm(vocab, generator=gen).tolist() if t not in continuation]
    if case.stop_on == "none":
        return absent[:2], absent[2]
    stop = next((t for k, t in enumerate(continuation) if k >= 6 and t not in continuation[:k]), None)
    if stop is None:
        return None
    if case.stop_on == "config":
        return [stop, absent[0]], absent[1]
    return absent[:2], stop


def find_teacher_ids(model, monitor, case, vocab):
    for attempt in range(MAX_SEED_TRIES):
        gen = torch.Generator().manual_seed(case.seed * 100003 + attempt)
        ids = torch.randint(0, vocab, (TEACHER_LEN,), generator=gen)
        monitor.reset()
        with torch.no_grad():
            model(ids[None])
        if monitor.min_gap >= MIN_ROUTER_MARGIN and monitor.zero_mask_agrees:
            return ids, attempt, monitor.min_gap
    sys.exit(f"{case.name}: no teacher sequence without routing near-ties in {MAX_SEED_TRIES} tries")


def find_greedy_prompt(model, monitor, case, vocab):
    """A prompt whose greedy run has no near-ties, and eos ids that end it as case.stop_on asks."""
    for attempt in range(MAX_SEED_TRIES):
        gen = torch.Generator().manual_seed(case.seed * 200003 + attempt)
        prompt = torch.randint(0, vocab, (PROMPT_LEN,), generator=gen)
        monitor.reset()
        with torch.no_grad():
            continuation, margin = greedy(model, prompt, None, 0)
        if margin < MIN_LOGIT_MARGIN or monitor.min_gap < MIN_ROUTER_MARGIN or not monitor.zero_mask_agrees:
            continue
        eos = choose_eos(case, continuation, vocab, gen)
        if eos is not None:
            return prompt, attempt, eos
    sys.exit(f"{case.name}: no greedy prompt without near-ties in {MAX_SEED_TRIES} tries")


def save_checkpoint(model, case, out_dir, disk_sd, extra):
    """save_pretrained in bf16 with the correction bias kept F32; extra tensors (MTP) are merged into
    the shards with huggingface_hub.save_torch_state_dict, which writes the same shard/index layout."""
    total = sum(t.numel() * torch.finfo(stored_dtype(k)).bits // 8 for k, t in {**disk_sd, **extra}.items())
    shard_bytes = total * 2 if case.shards == 1 else total // case.shards + 1
    bf16_model = copy.deepcopy(model).to(torch.bfloat16)
    for name, b in bf16_model.named_buffers():
        if name.endswith("e_score_correction_bias"):
            # .to(bf16) rounded it; put the exact fp32 values back (real checkpoints store F32 here).
            b.data = dict(model.named_buffers())[name].detach().clone()
    bf16_model.save_pretrained(out_dir, max_shard_size=shard_bytes)
    if extra:
        for f in os.listdir(out_dir):
            if f.endswith(".safetensors") or f.endswith(".safetensors.index.json"):
                os.remove(os.path.join(out_dir, f))
        state = {k: v.to(stored_dtype(k)).contiguous() for k, v in {**disk_sd, **extra}.items()}
        huggingface_hub.save_torch_state_dict(state, out_dir, max_shard_size=shard_bytes,
                                              metadata={"format": "pt"})


def rewrite_configs(case, out_dir, config_eos, gen_eos):
    path = os.path.join(out_dir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["eos_token_id"] = config_eos
    cfg["pad_token_id"] = config_eos[0]
    if case.flat_config:
        # The official GLM-4.5 / Air config.json form: flat RoPE keys and torch_dtype.
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["partial_rotary_factor"] = rp["partial_rotary_factor"]
        cfg.pop("dtype", None)
        cfg["torch_dtype"] = "bfloat16"
    write_json(path, cfg)

    path = os.path.join(out_dir, "generation_config.json")
    with open(path) as f:
        gcfg = json.load(f)
    gcfg["eos_token_id"] = gen_eos
    gcfg["pad_token_id"] = config_eos[0]
    write_json(path, gcfg)


def verify_files(out_dir, expected, case):
    """The stored tensors must be exactly the weights the reference used, in the stored dtypes."""
    files = sorted(f for f in os.listdir(out_dir) if f.endswith(".safetensors"))
    has_index = os.path.exists(os.path.join(out_dir, "model.safetensors.index.json"))
    if case.shards == 1:
        assert files == ["model.safetensors"] and not has_index, files
    else:
        assert len(files) >= 2 and has_index, files
    seen = {}
    for f in files:
        with safe_open(os.path.join(out_dir, f), framework="pt") as st:
            for k in st.keys():
                assert k not in seen, f"{k} stored twice"
                seen[k] = st.get_tensor(k)
    assert set(seen) == set(expected), sorted(set(seen) ^ set(expected))
    for k, want in expected.items():
        got = seen[k]
        dt = stored_dtype(k)
        assert got.dtype == dt, f"{k}: stored {got.dtype}, want {dt}"
        assert list(got.shape) == list(want.shape), k
        assert torch.equal(got.to(torch.float32), want), f"{k}: stored values differ from the reference"
    if has_index:
        with open(os.path.join(out_dir, "model.safetensors.index.json")) as f:
            index = json.load(f)
        assert set(index["weight_map"]) == set(expected)
    return len(files)


def verify_reload(out_dir, teacher, logits, prompt, new_ids):
    """transformers reading the saved directory must reproduce the recorded outputs."""
    model = Glm4MoeForCausalLM.from_pretrained(out_dir, dtype=torch.float32, attn_implementation="eager",
                                               experts_implementation="eager")
    assert model.config._experts_implementation == "eager"
    model.eval()
    with torch.no_grad():
        again = model(teacher[None]).logits[0]
        gc = copy.deepcopy(model.generation_config)  # as loaded: eos ids from generation_config.json
        gc.do_sample, gc.max_new_tokens = False, MAX_NEW_TOKENS
        ids, _ = run_generate(model, prompt, gc)
    diff = (again - logits).abs().max().item()
    assert diff == 0.0, f"reloaded checkpoint gives logits off by {diff}"
    assert ids == new_ids, f"reloaded checkpoint generates {ids}, recorded {new_ids}"


def bias_rounding_effect(model, teacher, logits):
    """Max |logit change| if the correction biases were rounded to bf16: shows whether this case can
    catch a reader that does not keep them in fp32."""
    biases = [b for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")]
    exact = [b.clone() for b in biases]
    with torch.no_grad():
        for b in biases:
            b.copy_(bf16_round(b))
        change = (model(teacher[None]).logits[0] - logits).abs().max().item()
        for b, e in zip(biases, exact):
            b.copy_(e)
    return change


def write_json(path, obj):
    """Indented JSON whose lists of numbers stay on one line (id sequences read better that way)."""
    def compact(value, indent):
        if isinstance(value, dict):
            pad = " " * (indent + 2)
            items = [f"{pad}{json.dumps(k)}: {compact(v, indent + 2)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}" if items else "{}"
        return json.dumps(value)
    with open(path, "w") as f:
        f.write(compact(obj, 0) + "\n")


def write_f32(path, t):
    np.ascontiguousarray(t.detach().numpy(), dtype="<f4").tofile(path)


def record(case, out_root, versions):
    """Build, check, save and record one case; returns its summary row."""
    out_dir = os.path.join(out_root, case.name)
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)

    gen = torch.Generator().manual_seed(case.seed)
    cfg = Glm4MoeConfig(**case.config)
    # Eager attention and the eager per-expert loop: the plainest maths transformers has. (Its default
    # experts path, torch grouped_mm, also refuses moe_intermediate_size * 4 bytes not a multiple of 16.)
    cfg._attn_implementation = "eager"
    cfg._experts_implementation = "eager"
    torch.manual_seed(case.seed)  # the constructor's own init is overwritten, but keep it reproducible
    model = Glm4MoeForCausalLM(cfg)
    model.set_attn_implementation("eager")
    model.set_experts_implementation("eager")
    model.eval()
    init_weights(model, gen, case.bias_offset)
    V, H, L = cfg.vocab_size, cfg.hidden_size, cfg.num_hidden_layers
    monitor = RouterMonitor(model)

    # (a), (b): teacher-forced logits and hidden states.
    teacher, teacher_seed, teacher_router_gap = find_teacher_ids(model, monitor, case, V)
    with torch.no_grad():
        out = model(teacher[None], output_hidden_states=True)
    logits = out.logits[0]
    hidden = torch.stack([h[0] for h in out.hidden_states])
    assert hidden.shape == (L + 1, TEACHER_LEN, H)
    # Pin down what the last entry is: model.norm of the last layer's output, not that output itself.
    captured = []
    hook = model.model.layers[-1].register_forward_hook(lambda _m, _i, o: captured.append(o))
    with torch.no_grad():
        model(teacher[None])
    hook.remove()
    last_layer_out = captured[0][0]
    assert torch.equal(hidden[-1], model.model.norm(last_layer_out)), "hidden[L] should be final-normed"
    assert not torch.allclose(hidden[-1], last_layer_out)
    assert torch.equal(model.lm_head(hidden[-1]), logits)
    bias_change = bias_rounding_effect(model, teacher, logits)
    if case.bias_offset:
        assert bias_change > 0.1, f"{case.name}: bf16-rounded correction bias changes nothing ({bias_change})"

    # (c): greedy continuation, with eos ids chosen so the run ends as the case asks.
    prompt, prompt_seed, (config_eos, extra_eos) = find_greedy_prompt(model, monitor, case, V)
    gen_eos = config_eos + [extra_eos]
    model.config.eos_token_id = config_eos
    model.config.pad_token_id = config_eos[0]
    model.generation_config.eos_token_id = gen_eos
    model.generation_config.pad_token_id = config_eos[0]
    monitor.reset()
    with torch.no_grad():
        new_ids, margin = greedy(model, prompt, gen_eos, config_eos[0])
    greedy_router_gap = monitor.min_gap
    stopped = new_ids[-1] in gen_eos
    assert stopped == (case.stop_on != "none"), (case.name, new_ids, gen_eos)
    assert margin >= MIN_LOGIT_MARGIN and greedy_router_gap >= MIN_ROUTER_MARGIN
    with torch.no_grad():  # the KV-cache path must agree with one full forward of the result
        full = model(torch.cat([prompt, torch.tensor(new_ids)])[None]).logits[0]
    assert full[PROMPT_LEN - 1:-1].argmax(-1).tolist() == new_ids
    monitor.close()

    # Checkpoint, then check it against the weights used above.
    disk_sd = disk_state_dict(model)
    extra = mtp_tensors(cfg, gen) if case.mtp_layer else {}
    save_checkpoint(model, case, out_dir, disk_sd, extra)
    rewrite_configs(case, out_dir, config_eos, gen_eos)
    n_files = verify_files(out_dir, {**disk_sd, **extra}, case)
    verify_reload(out_dir, teacher, logits, prompt, new_ids)

    write_f32(os.path.join(out_dir, "logits.f32"), logits)
    write_f32(os.path.join(out_dir, "hidden.f32"), hidden)
    params = sum(t.numel() for t in disk_sd.values())
    ref = {
        "description": case.description,
        "teacher_ids": teacher.tolist(),
        "logits_shape": [TEACHER_LEN, V],
        "hidden_shape": [L + 1, TEACHER_LEN, H],
        "hidden_last_is_normed": True,
        "hidden_layout": "hidden[0] = embeddings; hidden[i], 1 <= i < L = residual stream after layer i-1; "
                         "hidden[L] = model.norm(residual stream after layer L-1), the input of lm_head",
        "greedy_prompt": prompt.tolist(),
        "greedy_new_ids": new_ids,
        "greedy_max_new_tokens": MAX_NEW_TOKENS,
        "greedy_stopped_on_eos": stopped,
        "greedy_min_margin": margin,
        "eos_token_id_config": config_eos,
        "eos_token_id_generation_config": gen_eos,
        "max_abs_logit": logits.abs().max().item(),
        "router_min_gap": min(teacher_router_gap, greedy_router_gap),
        "e_score_correction_bias_offset": case.bias_offset,
        "bias_bf16_logit_change": bias_change,
        "num_parameters": params,
        "mtp_tensors": len(extra),
        "safetensors_files": n_files,
        "seeds": {"weights": case.seed, "teacher_attempt": teacher_seed, "prompt_attempt": prompt_seed},
        "transformers_settings": {"dtype": "float32", "attn_implementation": "eager",
                                  "experts_implementation": "eager"},
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
    }
    write_json(os.path.join(out_dir, "reference.json"), ref)
    size = sum(os.path.getsize(os.path.join(out_dir, f)) for f in os.listdir(out_dir))
    return case.name, params, size, ref["max_abs_logit"], margin, ref["router_min_gap"], len(new_ids), bias_change


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "golden"),
                    help="output root; each case goes to OUT/<case>/ (default: tests/golden)")
    ap.add_argument("cases", nargs="*", help="case names to (re)build (default: all)")
    args = ap.parse_args()

    torch.set_num_threads(1)  # one summation order, so reruns reproduce the files bit for bit
    torch.use_deterministic_algorithms(True)
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()
    versions = {"torch": torch.__version__, "transformers": transformers.__version__,
                "safetensors": safetensors.__version__, "huggingface_hub": huggingface_hub.__version__,
                "numpy": np.__version__, "python": sys.version.split()[0]}
    cases = [make() for make in CASES]
    unknown = set(args.cases) - {c.name for c in cases}
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    rows = [record(c, args.out, versions) for c in cases if not args.cases or c.name in args.cases]

    print(f"{'case':<12} {'params':>9} {'bytes':>9} {'max|logit|':>11} {'margin':>9} {'router gap':>11} "
          f"{'new':>4} {'bf16-bias d':>11}")
    for name, params, size, maxlogit, margin, gap, n_new, bias_change in rows:
        print(f"{name:<12} {params:>9} {size:>9} {maxlogit:>11.4f} {margin:>9.4f} {gap:>11.2e} "
              f"{n_new:>4} {bias_change:>11.2e}")
    print(f"{'total':<12} {sum(r[1] for r in rows):>9} {sum(r[2] for r in rows):>9}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


if __name__ == "__main__":
    main()
