#!/usr/bin/env python3
"""make_synthetic.py — a GLM-4.5(-Air)-shaped checkpoint cut to a few layers, with random bf16
weights, for timing the engine (tools/gpu/run_gpu.sh). Not a model of anything.

usage: make_synthetic.py OUT_DIR [--shape air|glm45|tiny] [--layers 4] [--seed 0]

Writes OUT_DIR/config.json (the official flat form) and OUT_DIR/model.safetensors, one tensor at a
time, so memory stays at one tensor, and a stand-in tokenizer (tokenizer.json, tokenizer_config.json)
so that converters that want one (llama.cpp's convert_hf_to_gguf.py) take the directory: byte-level
BPE over the 256 byte symbols, the 2704 pairs of ASCII letters with their merges, filler tokens up to
GLM-4.5's 151329 ordinary tokens (fewer for a smaller vocab_size) and GLM-4.5's 36 special tokens at
their ids (151329..151364; the last 36 ids below vocab_size for a smaller one). It is for timing, not
for reading. The tiny shape (a few MB) is for checking the tools on a CPU. Weights ~ N(0, 0.02²) (norms 1, biases ~ N(0, 0.02²), router
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
    # the Air layout at toy sizes: for checking converters and tools on a CPU
    "tiny": dict(hidden_size=256, intermediate_size=512, moe_intermediate_size=128, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=64, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2,
                 n_group=1, topk_group=1, first_k_dense_replace=1, vocab_size=2048, routed_scaling_factor=1.0,
                 use_qk_norm=False),
}

# zai-org/GLM-4.5 tokenizer_config.json, added_tokens_decoder in id order from 151329 (special: True/False)
GLM_SPECIALS = [
    ("<|endoftext|>", 1), ("[MASK]", 1), ("[gMASK]", 1), ("[sMASK]", 1), ("<sop>", 1), ("<eop>", 1),
    ("<|system|>", 1), ("<|user|>", 1), ("<|assistant|>", 1), ("<|observation|>", 1), ("<|begin_of_image|>", 1),
    ("<|end_of_image|>", 1), ("<|begin_of_video|>", 1), ("<|end_of_video|>", 1), ("<|begin_of_audio|>", 1),
    ("<|end_of_audio|>", 1), ("<|begin_of_transcription|>", 1), ("<|end_of_transcription|>", 1),
    ("<|code_prefix|>", 1), ("<|code_middle|>", 1), ("<|code_suffix|>", 1), ("<think>", 0), ("</think>", 0),
    ("<tool_call>", 0), ("</tool_call>", 0), ("<tool_response>", 0), ("</tool_response>", 0), ("<arg_key>", 0),
    ("</arg_key>", 0), ("<arg_value>", 0), ("</arg_value>", 0), ("/nothink", 1), ("<|begin_of_box|>", 0),
    ("<|end_of_box|>", 0), ("<|image|>", 0), ("<|video|>", 0),
]
GLM_FIRST_SPECIAL = 151329


def first_special(vocab_size):
    return GLM_FIRST_SPECIAL if vocab_size >= GLM_FIRST_SPECIAL + len(GLM_SPECIALS) else vocab_size - len(GLM_SPECIALS)


def byte_symbols():
    """GPT-2's byte-to-symbol map (the ByteLevel pre-tokenizer's alphabet), in byte order"""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    out, n = {}, 0
    for b in range(256):
        if b in keep:
            out[b] = chr(b)
        else:
            out[b] = chr(256 + n)
            n += 1
    return [out[b] for b in range(256)]


def write_tokenizer(out_dir, vocab_size):
    first = first_special(vocab_size)
    vocab = {sym: i for i, sym in enumerate(byte_symbols())}
    # fillers: first the pairs of ASCII letters, each with its merge (llama.cpp's loader wants
    # merges, and it keeps the BPE honest), then unreachable names up to the special tokens
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    merges = []
    for a in letters:
        for b in letters:
            if len(vocab) < first:
                vocab[a + b] = len(vocab)
                merges.append(f"{a} {b}")
    for i in range(len(vocab), first):
        vocab[f"tok{i}"] = i
    added = [dict(id=first + k, content=name, single_word=False, lstrip=False, rstrip=False, normalized=False,
                  special=bool(special)) for k, (name, special) in enumerate(GLM_SPECIALS)]
    tok = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": None,
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                     "vocab": vocab, "merges": merges}}
    with open(os.path.join(out_dir, "tokenizer.json"), "w") as f:
        json.dump(tok, f, ensure_ascii=False)
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 131072, "padding_side": "left",
           "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "clean_up_tokenization_spaces": False,
           "added_tokens_decoder": {str(a["id"]): {k: v for k, v in a.items() if k != "id"} for a in added}}
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=1, ensure_ascii=False)


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
               tie_word_embeddings=False, torch_dtype="bfloat16",
               eos_token_id=[first_special(c["vocab_size"]) + k for k in (0, 7, 9)], **c)
    with open(os.path.join(a.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    write_tokenizer(a.out, c["vocab_size"])

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
