#!/usr/bin/env python3
"""Train the multi-token-prediction (MTP) layer of glmoe's demo model, the main model frozen.

GLM-4.5 checkpoints ship one MTP layer (docs/spec/mtp.md) that predicts the token after next from the
model's final-normed hidden state h[i] and the embedding of the next token t[i+1]:

    x = eh_proj · [enorm(embed(t[i+1])) ; hnorm(h[i])],  y = DecoderLayer(x),  logits = head(shared_head.norm(y))

The demo model (train.py) was trained without one. This script adds it, as the released models have it:
  - the main model (Glm4MoeForCausalLM from --model) is frozen; each step runs it without gradients on
    BATCH random windows of CTX+2 training tokens and keeps its final-normed hidden states;
  - the layer: transformers' own Glm4MoeDecoderLayer at index num_hidden_layers (a MoE layer), started
    from a copy of the model's last layer; enorm, hnorm ones; eh_proj = [small random | identity] (so
    that it starts as "the last layer once more" on the hidden state); shared_head.norm from model.norm;
    embed_tokens and shared_head.head are the model's own, frozen; the released checkpoints store
    copies of them in the layer, this script leaves them out (6.3 MB) unless --with-copies: glmoe
    then uses the model's (as it does for copies whose bytes are equal);
  - loss: cross-entropy of the layer's logits at i against t[i+2]; AdamW, warm-up then cosine; bf16
    autocast on a GPU; the router balanced as train.py balances it (bias nudged by the load sign);
  - evaluation on the held-out split (windows of CTX): the layer's perplexity on t[i+2], its top-1
    accuracy, and the greedy acceptance of a first draft as glmoe makes it: the layer's argmax at i
    equals the model's argmax at i+1 (teacher-forced on the text, so a proxy for the acceptance
    `glmoe bench` measures on generated text).

Output (--out, a new folder): the model's files with the shards renamed to -of-000N+1, one more shard
holding the layer's tensors under their Hugging Face names (model.layers.{L}.*, experts unstacked,
bf16 except the F32 e_score_correction_bias), the index updated and num_nextn_predict_layers = 1.

Run (GPU, about a minute):  python3 tools/train_demo/train_mtp.py --out /tmp/demo-mtp
Smoke test (CPU):           python3 tools/train_demo/train_mtp.py --out /tmp/demo-mtp-smoke --steps 3 --batch 2 --ctx 64 --eval-windows 2
"""
import argparse
import json
import math
import os
import random
import shutil
import sys
import time
import types

import torch
import torch.nn.functional as F
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import Glm4MoeForCausalLM
from transformers.models.glm4_moe.modeling_glm4_moe import Glm4MoeDecoderLayer, Glm4MoeRMSNorm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import (DEFAULT_CORPUS, DEFAULT_MODEL_DIR, LoadBalancer, check_experts, join_documents,  # noqa: E402
                   load_documents, load_tokens, lr_at)


class MtpLayer(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        cfg = model.config
        H = cfg.hidden_size
        self.cfg = cfg
        self.enorm = Glm4MoeRMSNorm(H, eps=cfg.rms_norm_eps)
        self.hnorm = Glm4MoeRMSNorm(H, eps=cfg.rms_norm_eps)
        self.eh_proj = torch.nn.Linear(2 * H, H, bias=False)
        with torch.no_grad():
            self.eh_proj.weight.zero_()
            self.eh_proj.weight[:, :H].normal_(0.0, 0.02)
            self.eh_proj.weight[:, H:] = torch.eye(H)
        self.layer = Glm4MoeDecoderLayer(cfg, layer_idx=cfg.num_hidden_layers)
        self.layer.load_state_dict(model.model.layers[-1].state_dict())
        self.head_norm = Glm4MoeRMSNorm(H, eps=cfg.rms_norm_eps)
        with torch.no_grad():
            self.head_norm.weight.copy_(model.model.norm.weight)
        # Shared with the (frozen) model, not parameters of this module.
        self._model = [model]

    def forward(self, next_tokens, hidden):
        """next_tokens [B, T], hidden [B, T, H] (final-normed) -> logits [B, T, V] for t[i+2]."""
        model = self._model[0]
        e = model.model.embed_tokens(next_tokens)
        x = self.eh_proj(torch.cat([self.enorm(e), self.hnorm(hidden)], dim=-1))
        B, T, _ = x.shape
        pos = torch.arange(T, device=x.device).unsqueeze(0).expand(B, T)
        cos_sin = model.model.rotary_emb(x, pos)
        mask = torch.full((T, T), float("-inf"), device=x.device).triu(1).view(1, 1, T, T)
        y = self.layer(x, attention_mask=mask, position_ids=pos, position_embeddings=cos_sin)
        y = y[0] if isinstance(y, tuple) else y
        return model.lm_head(self.head_norm(y))


def main_hidden(model, x):
    """Final-normed hidden states and logits of the frozen model over x [B, T]."""
    with torch.no_grad():
        h = model.model(input_ids=x, use_cache=False).last_hidden_state
        return h, model.lm_head(h)


@torch.no_grad()
def evaluate(model, mtp, ids, ctx, device, autocast, max_windows):
    """Held-out windows of ctx + 1 tokens: MTP NLL, top-1 accuracy, first-draft greedy acceptance."""
    mtp.eval()
    windows = [ids[i:i + ctx + 1] for i in range(0, len(ids) - ctx - 1, ctx)][:max_windows]
    nll, n, correct, accepted = 0.0, 0, 0, 0
    for i in range(0, len(windows), 16):
        x = torch.stack(windows[i:i + 16]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            h, logits = main_hidden(model, x[:, :-1])
            lg = mtp(x[:, 1:-1], h[:, :-1]).float()        # rows 0..ctx-2 predict x[2..ctx]
        target = x[:, 2:]
        nll += F.cross_entropy(lg.reshape(-1, lg.shape[-1]), target.reshape(-1), reduction="sum").item()
        n += target.numel()
        pick = lg.argmax(-1)
        correct += (pick == target).sum().item()
        accepted += (pick == logits[:, 1:].float().argmax(-1)).sum().item()
    mtp.train()
    return {"mtp_ppl": math.exp(nll / n), "top1": correct / n, "accept_greedy_first": accepted / n, "tokens": n}


def hf_tensors(mtp, model_dir, L, with_copies):
    """The layer's tensors under the released checkpoints' names (bf16; the correction bias F32)."""
    out = {}
    pre = f"model.layers.{L}."
    sd = {k: v.detach().float().cpu() for k, v in mtp.layer.state_dict().items()}
    gate_up, down = sd.pop("mlp.experts.gate_up_proj"), sd.pop("mlp.experts.down_proj")
    inter = gate_up.shape[1] // 2
    for e in range(gate_up.shape[0]):
        out[f"{pre}mlp.experts.{e}.gate_proj.weight"] = gate_up[e, :inter]
        out[f"{pre}mlp.experts.{e}.up_proj.weight"] = gate_up[e, inter:]
        out[f"{pre}mlp.experts.{e}.down_proj.weight"] = down[e]
    for k, v in sd.items():
        if not k.endswith("rotary_emb.inv_freq"):
            out[pre + k] = v
    out[pre + "enorm.weight"] = mtp.enorm.weight.detach().float().cpu()
    out[pre + "hnorm.weight"] = mtp.hnorm.weight.detach().float().cpu()
    out[pre + "eh_proj.weight"] = mtp.eh_proj.weight.detach().float().cpu()
    out[pre + "shared_head.norm.weight"] = mtp.head_norm.weight.detach().float().cpu()
    out = {k: (v.contiguous() if k.endswith("e_score_correction_bias") else v.to(torch.bfloat16).contiguous())
           for k, v in out.items()}
    if not with_copies:
        return out
    # The embedding and the head: the model's stored tensors, byte for byte.
    index = json.load(open(os.path.join(model_dir, "model.safetensors.index.json")))
    for src, dst in (("model.embed_tokens.weight", "embed_tokens.weight"), ("lm_head.weight", "shared_head.head.weight")):
        with safe_open(os.path.join(model_dir, index["weight_map"][src]), framework="pt") as f:
            out[pre + dst] = f.get_tensor(src).contiguous()
    return out


def write_checkpoint(model_dir, out_dir, tensors, L):
    index = json.load(open(os.path.join(model_dir, "model.safetensors.index.json")))
    shards = sorted(set(index["weight_map"].values()))
    n = len(shards) + 1
    os.makedirs(out_dir)
    rename = {s: f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i, s in enumerate(shards)}
    for f in os.listdir(model_dir):
        if f not in rename and not f.endswith(".safetensors") and f != "model.safetensors.index.json":
            src = os.path.join(model_dir, f)
            if os.path.isfile(src):
                shutil.copy(src, out_dir)
    for s, d in rename.items():
        shutil.copy(os.path.join(model_dir, s), os.path.join(out_dir, d))
    last = f"model-{n:05d}-of-{n:05d}.safetensors"
    save_file(tensors, os.path.join(out_dir, last), metadata={"format": "pt"})
    wm = {k: rename[v] for k, v in index["weight_map"].items()}
    wm.update({k: last for k in tensors})
    total = sum(os.path.getsize(os.path.join(out_dir, f)) for f in list(rename.values()) + [last])
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    cfg_path = os.path.join(out_dir, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["num_nextn_predict_layers"] = 1
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL_DIR)
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="folder with train.txt and heldout_full.txt")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=4.0)
    ap.add_argument("--steps", type=int, default=0, help="overrides --epochs")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-min", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--gamma", type=float, default=1e-3)
    ap.add_argument("--budget-s", type=float, default=600.0)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--eval-windows", type=int, default=256)
    ap.add_argument("--with-copies", action="store_true",
                    help="also store the layer's embed_tokens and shared_head.head (copies of the model's, as the "
                         "released checkpoints do; glmoe shares them either way)")
    args = ap.parse_args()
    if os.path.exists(args.out):
        sys.exit(f"{args.out} exists; give a new folder")

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = False
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device "
          f"{torch.cuda.get_device_name() if autocast else 'cpu'}", flush=True)
    print(f"args {json.dumps(vars(args))}", flush=True)

    tok = Tokenizer.from_file(os.path.join(args.model, "tokenizer.json"))
    docs, _ = load_documents(tok, os.path.join(args.corpus, "train.txt"), tok.token_to_id("<|endoftext|>"))
    train_ids = join_documents(docs)
    heldout_ids, _ = load_tokens(tok, os.path.join(args.corpus, "heldout_full.txt"))

    model = Glm4MoeForCausalLM.from_pretrained(args.model, dtype=torch.float32).to(device).eval()
    if model.config.num_nextn_predict_layers:
        sys.exit(f"{args.model} has an MTP layer already")
    experts_forward = check_experts(model, device)  # (its backward check needs the weights' gradients)
    model.requires_grad_(False)
    mtp = MtpLayer(model).to(device)
    for root in (model, mtp):
        for name, m in root.named_modules():
            if name.endswith("mlp.experts"):
                m.forward = types.MethodType(experts_forward, m)
    balancer = LoadBalancer(mtp, args.gamma)
    params = [p for p in mtp.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.wd}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    tokens_per_step = args.batch * args.ctx
    steps = args.steps or max(1, int(args.epochs * len(train_ids) / tokens_per_step))
    sched = argparse.Namespace(lr=args.lr, lr_min=args.lr_min, warmup=min(args.warmup, steps // 4 + 1), steps=steps)
    print(f"MTP layer: {sum(p.numel() for p in params)} trained parameters; {steps} steps x {args.batch} x "
          f"{args.ctx} tokens on {len(train_ids)} tokens", flush=True)
    print(f"before training: {json.dumps(evaluate(model, mtp, heldout_ids, args.ctx, device, autocast, args.eval_windows))}",
          flush=True)

    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    mtp.train()
    t0 = time.time()
    step, progress, loss_sum, loss_n = 0, 0.0, 0.0, 0
    while progress < 1.0:
        lr = lr_at(progress, sched)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(train_ids) - args.ctx - 2, (args.batch,), generator=gen)
        x = torch.stack([train_ids[s:s + args.ctx + 2] for s in starts.tolist()]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            h, _ = main_hidden(model, x[:, :-2])
            balancer.active = True
            lg = mtp(x[:, 1:-1], h)
            balancer.active = False
        loss = F.cross_entropy(lg.float().reshape(-1, lg.shape[-1]), x[:, 2:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        balancer.update()
        step += 1
        loss_sum += loss.item()
        loss_n += 1
        progress = max(step / steps, (time.time() - t0) / args.budget_s)
        if step % args.log_every == 0 or progress >= 1.0 or step == 1:
            print(f"step {step:5d}/{steps} lr {lr:.2e} loss {loss_sum / loss_n:.4f} {time.time() - t0:6.1f} s", flush=True)
            loss_sum, loss_n = 0.0, 0
    print(f"trained {step} steps ({step * tokens_per_step / len(train_ids):.2f} epochs) in {time.time() - t0:.1f} s",
          flush=True)
    result = evaluate(model, mtp, heldout_ids, args.ctx, device, autocast, args.eval_windows)
    print(f"held-out: {json.dumps(result)}", flush=True)

    L = model.config.num_hidden_layers
    write_checkpoint(args.model, args.out, hf_tensors(mtp, args.model, L, args.with_copies), L)
    print(f"saved {args.out}: " + ", ".join(f"{f} {os.path.getsize(os.path.join(args.out, f))}"
                                           for f in sorted(os.listdir(args.out))), flush=True)
    with open(os.path.join(args.out, "mtp_train_result.json"), "w") as f:
        json.dump({"steps": step, "heldout": result, "torch": torch.__version__,
                   "transformers": transformers.__version__,
                   "device": torch.cuda.get_device_name() if autocast else "cpu"}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
