#!/usr/bin/env python3
"""Golden data for glmoe's multi-token-prediction (MTP) layer: an independent PyTorch forward of the
layer as vLLM's and SGLang's glm4_moe_mtp / glm4_moe_nextn model files describe it (docs/spec/mtp.md).

transformers loads GLM-4.5 checkpoints but skips the MTP layer (model.layers.{L}.*), so there is no
ready reference. This script builds one from parts glmoe does not share:
  - the main model: transformers' Glm4MoeForCausalLM in float32, eager attention and experts; its
    final-normed hidden states (output_hidden_states[-1], the input of lm_head) feed the MTP layer;
  - the MTP decoder layer: transformers' own Glm4MoeDecoderLayer (attention with QK-norm and partial
    RoPE, the sigmoid router with its correction bias, routed and shared experts) loaded with the
    layer's tensors, run over every MTP row at once with a causal mask;
  - the glue, written here from the description: x = eh_proj([enorm(embed(next token)); hnorm(h)])
    (embedding first), then the layer, then logits = shared_head.head(shared_head.norm(y)).

For a model directory (default tests/golden/mtp) and its reference.json "teacher_ids" t[0..T):
  mtp_logits.f32       teacher-forced MTP logits, float32 LE [T-1, vocab]: row i reads t[i+1] and the
                       model's hidden state at i (it predicts t[i+2])
  mtp_reference.json   the chained greedy drafts after the prompt t[0..P): the model's next token
                       n = argmax(logits at P-1), then d1 from (n, h[P-1]), d2 from (d1, g1), ...
                       where g_j is the previous MTP row's normed output (shared_head.norm), as SGLang
                       carries it; their logits in mtp_draft_logits.f32 [K, vocab], top-2 margins, and
                       for the record the drafts vLLM's variant would make (it carries the output
                       before shared_head.norm)
Run: python3 tools/reference/make_mtp_golden.py [--dir tests/golden/mtp] [--prompt 12] [--drafts 4]
"""

import argparse
import datetime
import glob
import json
import os

import numpy as np
import torch
import transformers
from safetensors import safe_open
from transformers import Glm4MoeForCausalLM
from transformers.models.glm4_moe.modeling_glm4_moe import Glm4MoeDecoderLayer

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_tensors(model_dir, prefix):
    out = {}
    for path in sorted(glob.glob(os.path.join(model_dir, "*.safetensors"))):
        with safe_open(path, framework="pt") as f:
            for k in f.keys():
                if k.startswith(prefix):
                    out[k[len(prefix):]] = f.get_tensor(k).to(torch.float32)
    return out


def rms_norm(x, w, eps):
    x64 = x.to(torch.float64)
    return (x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps)).to(torch.float32) * w


class MtpReference:
    def __init__(self, model, model_dir):
        cfg = model.config
        self.cfg = cfg
        self.model = model
        L = cfg.num_hidden_layers
        t = read_tensors(model_dir, f"model.layers.{L}.")
        if "eh_proj.weight" not in t:
            raise SystemExit(f"{model_dir}: no MTP layer (model.layers.{L}.eh_proj.weight)")
        self.embed, self.enorm, self.hnorm = t.pop("embed_tokens.weight"), t.pop("enorm.weight"), t.pop("hnorm.weight")
        self.eh_proj = t.pop("eh_proj.weight")
        self.head_norm, self.head = t.pop("shared_head.norm.weight"), t.pop("shared_head.head.weight")
        layer = Glm4MoeDecoderLayer(cfg, layer_idx=L).to(torch.float32)
        E = cfg.n_routed_experts
        sd = {k: v for k, v in t.items() if ".experts." not in k}
        sd["mlp.experts.gate_up_proj"] = torch.stack(
            [torch.cat([t[f"mlp.experts.{e}.gate_proj.weight"], t[f"mlp.experts.{e}.up_proj.weight"]]) for e in range(E)])
        sd["mlp.experts.down_proj"] = torch.stack([t[f"mlp.experts.{e}.down_proj.weight"] for e in range(E)])
        missing, unexpected = layer.load_state_dict(sd, strict=False)
        missing = [k for k in missing if not k.endswith("rotary_emb.inv_freq")]
        if missing or unexpected:
            raise SystemExit(f"MTP layer: missing {missing}, unexpected {unexpected}")
        layer.eval()
        self.layer = layer

    def run(self, next_tokens, hiddens):
        """MTP rows 0..R-1 at positions 0..R-1: (next token, hidden) each; returns (normed out, pre-norm out, logits)."""
        eps = self.cfg.rms_norm_eps
        e = self.embed[torch.tensor(next_tokens)]
        x = torch.cat([rms_norm(e, self.enorm, eps), rms_norm(hiddens, self.hnorm, eps)], dim=-1) @ self.eh_proj.T
        R = x.shape[0]
        pos = torch.arange(R).unsqueeze(0)
        cos_sin = self.model.model.rotary_emb(x.unsqueeze(0), pos)
        mask = torch.full((R, R), float("-inf")).triu(1).view(1, 1, R, R)
        y = self.layer(x.unsqueeze(0), attention_mask=mask, position_ids=pos, position_embeddings=cos_sin)
        y = (y[0] if isinstance(y, tuple) else y)[0]
        normed = rms_norm(y, self.head_norm, eps)
        return normed, y, normed @ self.head.T


def top2(v):
    s = torch.sort(v, descending=True).values
    return float(s[0] - s[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=os.path.join(REPO_ROOT, "tests/golden/mtp"))
    ap.add_argument("--prompt", type=int, default=12)
    ap.add_argument("--drafts", type=int, default=4)
    args = ap.parse_args()
    ref = json.load(open(os.path.join(args.dir, "reference.json")))
    teacher = ref["teacher_ids"]
    T, P, K = len(teacher), args.prompt, args.drafts
    torch.manual_seed(0)
    model = Glm4MoeForCausalLM.from_pretrained(args.dir, dtype=torch.float32, attn_implementation="eager",
                                               experts_implementation="eager")
    model.eval()
    mtp = MtpReference(model, args.dir)
    with torch.no_grad():
        out = model(torch.tensor([teacher]), output_hidden_states=True)
        h = out.hidden_states[-1][0]          # final-normed, the input of lm_head
        logits = out.logits[0]
        # teacher-forced MTP logits
        _, _, mtp_logits = mtp.run(teacher[1:], h[:T - 1])
        # chained greedy drafts after the prompt t[0..P)
        nxt = int(torch.argmax(logits[P - 1]))
        toks, hs = list(teacher[1:P]) + [nxt], [h[i] for i in range(P)]
        drafts, draft_logits, margins = [], [], []
        drafts_vllm = []
        for variant in ("sglang", "vllm"):
            toks_v, hs_v = list(toks), list(hs)
            for j in range(K):
                normed, pre, lg = mtp.run(toks_v, torch.stack(hs_v))
                d = int(torch.argmax(lg[-1]))
                if variant == "sglang":
                    drafts.append(d)
                    draft_logits.append(lg[-1])
                    margins.append(top2(lg[-1]))
                else:
                    drafts_vllm.append(d)
                toks_v.append(d)
                hs_v.append(normed[-1] if variant == "sglang" else pre[-1])
    np.asarray(mtp_logits, dtype="<f4").tofile(os.path.join(args.dir, "mtp_logits.f32"))
    np.asarray(torch.stack(draft_logits), dtype="<f4").tofile(os.path.join(args.dir, "mtp_draft_logits.f32"))
    info = {
        "description": "MTP layer reference (tools/reference/make_mtp_golden.py): teacher-forced MTP logits over "
                       "teacher_ids (mtp_logits.f32 [T-1, vocab]) and chained greedy drafts after prompt_len tokens",
        "teacher_ids": teacher,
        "mtp_logits_shape": [T - 1, int(mtp_logits.shape[1])],
        "mtp_min_margin": min(top2(r) for r in mtp_logits),
        "prompt_len": P,
        "next_token": nxt,
        "drafts": drafts,
        "draft_margins": margins,
        "draft_logits_shape": [K, int(mtp_logits.shape[1])],
        "drafts_vllm_variant": drafts_vllm,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "date": datetime.date.today().isoformat(),
    }
    with open(os.path.join(args.dir, "mtp_reference.json"), "w") as f:
        json.dump(info, f, indent=2)
        f.write("\n")
    print(json.dumps({k: info[k] for k in ("next_token", "drafts", "draft_margins", "drafts_vllm_variant",
                                           "mtp_min_margin")}))


if __name__ == "__main__":
    main()
