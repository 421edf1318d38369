#!/usr/bin/env python3
"""make_synthetic.py — a GLM-4.5(-Air)-shaped checkpoint cut to a few layers, with random bf16
weights, for timing the engine (tools/gpu/run_gpu.sh). Not a model of anything.

usage: make_synthetic.py OUT_DIR [--shape air|glm45] [--layers 4] [--seed 0]

Writes OUT_DIR/config.json (the official flat form) and OUT_DIR/model.safetensors, one tensor at a
time, so memory stays at one tensor. Weights ~ N(0, 0.02²) (norms 1, biases ~ N(0, 0.02²), router
correction bias 0 in float32), drawn on the GPU when torch sees one: a 16 GB file takes seconds.
Needs torch (and numpy, for the byte view).
"""
import argparse
import json
import os
import struct
import sys
import time

SHAPES = {
    # GLM-4.5-Air: zai-org/GLM-4.5-Air config.json
    "air": dict(hidden_size=4096, intermediate_size=10944, moe_intermediate_size=1408, num_attention_heads=96,
                num_key_value_heads=8, head_dim=128, n_routed_experts=128, n_shared_experts=1, num_experts_per_tok=8,
                n_group=1, topk_group=1, first_k_dense_replace=1, vocab_size=151552, routed_scaling_factor=1.0,
                use_qk_norm=False),
    # GLM-4.5: zai-org/GLM-4.5 config.json
    "glm45": dict(hidden_size=5120, intermediate_size=12288, moe_intermediate_size=1536, num_attention_heads=96,
                  num_key_value_heads=8, head_dim=128, n_routed_experts=160, n_shared_experts=1, num_experts_per_tok=8,
                  n_group=1, topk_group=1, first_k_dense_replace=3, vocab_size=151552, routed_scaling_factor=2.5,
                  use_qk_norm=True),
}


def tensors(c, n_layers):
    """(name, shape, kind) of every tensor, in file order; kind: w (matrix), n (norm), b (bias), r (router bias)."""
    H, V, D = c["hidden_size"], c["vocab_size"], c["head_dim"]
    QD, KD = c["num_attention_heads"] * D, c["num_key_value_heads"] * D
    I, Im, E = c["intermediate_size"], c["moe_intermediate_size"], c["n_routed_experts"]
    Is = Im * c["n_shared_experts"]
    yield "model.embed_tokens.weight", (V, H), "w"
    for i in range(n_layers):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", (H,), "n"
        yield p + "post_attention_layernorm.weight", (H,), "n"
        yield p + "self_attn.q_proj.weight", (QD, H), "w"
        yield p + "self_attn.k_proj.weight", (KD, H), "w"
        yield p + "self_attn.v_proj.weight", (KD, H), "w"
        yield p + "self_attn.o_proj.weight", (H, QD), "w"
        yield p + "self_attn.q_proj.bias", (QD,), "b"
        yield p + "self_attn.k_proj.bias", (KD,), "b"
        yield p + "self_attn.v_proj.bias", (KD,), "b"
        if c["use_qk_norm"]:
            yield p + "self_attn.q_norm.weight", (D,), "n"
            yield p + "self_attn.k_norm.weight", (D,), "n"
        if i < c["first_k_dense_replace"]:
            yield p + "mlp.gate_proj.weight", (I, H), "w"
            yield p + "mlp.up_proj.weight", (I, H), "w"
            yield p + "mlp.down_proj.weight", (H, I), "w"
            continue
        yield p + "mlp.gate.weight", (E, H), "w"
        yield p + "mlp.gate.e_score_correction_bias", (E,), "r"
        for e in range(E):
            yield p + f"mlp.experts.{e}.gate_proj.weight", (Im, H), "w"
            yield p + f"mlp.experts.{e}.up_proj.weight", (Im, H), "w"
            yield p + f"mlp.experts.{e}.down_proj.weight", (H, Im), "w"
        yield p + "mlp.shared_experts.gate_proj.weight", (Is, H), "w"
        yield p + "mlp.shared_experts.up_proj.weight", (Is, H), "w"
        yield p + "mlp.shared_experts.down_proj.weight", (H, Is), "w"
    yield "model.norm.weight", (H,), "n"
    yield "lm_head.weight", (V, H), "w"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="air")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    gen = torch.Generator(device=dev).manual_seed(a.seed)
    c = dict(SHAPES[a.shape])
    os.makedirs(a.out, exist_ok=True)
    cfg = dict(architectures=["Glm4MoeForCausalLM"], model_type="glm4_moe", num_hidden_layers=a.layers,
               attention_bias=True, hidden_act="silu", max_position_embeddings=131072, norm_topk_prob=True,
               num_nextn_predict_layers=0, partial_rotary_factor=0.5, rope_theta=1000000.0, rms_norm_eps=1e-5,
               tie_word_embeddings=False, torch_dtype="bfloat16", eos_token_id=[151329, 151336, 151338], **c)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)

    items = list(tensors(c, a.layers))
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for name, shape, kind in items:
        n = 1
        for s in shape:
            n *= s
        nbytes = n * (4 if kind == "r" else 2)
        header[name] = {"dtype": "F32" if kind == "r" else "BF16", "shape": list(shape), "data_offsets": [off, off + nbytes]}
        off += nbytes
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    t0 = time.time()
    with open(os.path.join(a.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for name, shape, kind in items:
            if kind == "r":
                t = torch.zeros(shape, dtype=torch.float32)
            elif kind == "n":
                t = torch.ones(shape, dtype=torch.bfloat16)
            else:
                t = (torch.randn(shape, generator=gen, device=dev, dtype=torch.float32) * 0.02).to(torch.bfloat16)
            f.write(t.contiguous().cpu().view(torch.uint8).numpy())  # raw little-endian bytes
    print(f"make_synthetic: {a.shape} x {a.layers} layers, {off / 1e9:.2f} GB in {time.time() - t0:.1f} s -> {a.out}",
          file=sys.stderr)


if __name__ == "__main__":
    main()
