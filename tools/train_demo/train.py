#!/usr/bin/env python3
"""Train glmoe's demo model: a small transformers Glm4MoeForCausalLM on the State of the Union corpus.

The model has GLM-4.5's architecture with every GLM-4.5 feature switched on: QK-norm, partial RoPE
(half of each head rotated), bias on q/k/v, grouped-query attention with head_dim != hidden/heads, the
first layer dense and the rest MoE, sigmoid routing with an e_score_correction_bias, one shared expert
and routed_scaling_factor 2.5. Only the sizes are small (about 14M parameters, 28 MB in bf16).

Training, from scratch:
  - data: prepare_corpus.py's train.txt, tokenized with train_tokenizer.py's tokenizer, every address
    followed by <|endoftext|>, concatenated; each step draws BATCH random windows of CTX+1 tokens;
  - AdamW (weight decay on matrices only), linear warm-up then cosine decay to LR_MIN; bf16 autocast on
    the GPU with fp32 master weights; gradient clipping; residual dropout through forward hooks (the
    saved model has no dropout anywhere);
  - router load balancing the auxiliary-loss-free way of DeepSeek-V3: after every optimizer step, for
    every MoE layer, bias_e += GAMMA * sign(mean load - load_e), where load_e counts the tokens routed
    to expert e in that step. The bias is an fp32 buffer, never seen by the optimizer; there is no
    auxiliary loss;
  - model selection without the held-out split: --sweep trains each (dropout, epochs) pair on the
    training addresses minus every 20th one, measures perplexity on those 12 validation addresses,
    keeps the best pair and trains it again on all training addresses; that last run is saved.
    The corpus is small (2.4M tokens) and the model overfits past about 10 epochs, so dropout and the
    number of epochs are what matter. --sweep "" trains --dropout/--epochs directly;
  - a time guard: each run's schedule progress is max(step / steps, elapsed / its share of --budget-s),
    so a slower machine finishes the cosine early and all training stops inside --budget-s, and the
    model is still saved.

Output (--out): config.json, generation_config.json, sharded safetensors (every shard < 15 MB) and the
index, written by save_pretrained in bf16 except the F32 e_score_correction_bias; the tokenizer files are
copied from --tokenizer when the two folders differ.

Held-out perplexity (printed last, "perplexity: X"): the saved checkpoint is loaded back with
from_pretrained in fp32 (so the numbers are those of the bf16 weights, computed in fp32, eager experts),
the held-out file is tokenized whole with no special tokens, cut into non-overlapping windows of CTX
tokens from token 0 (the last window may be shorter), and each window is run on its own, positions from
0. Every token of a window but the first is predicted: perplexity = exp(sum of NLL / number of predicted
tokens). glmoe's `perplexity --ctx CTX` computes the same quantity.

Run (GPU):  python3 tools/train_demo/train.py --out models/glmoe-demo      (about 4 minutes on an H200)
Smoke test: python3 tools/train_demo/train.py --tiny --out /tmp/glmoe-tiny   (CPU, 3 minutes: 4 tiny runs)
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
from tokenizers import Tokenizer
from transformers import GenerationConfig, Glm4MoeConfig, Glm4MoeForCausalLM

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_CORPUS = os.path.join(REPO, "build", "train_demo", "corpus")
DEFAULT_MODEL_DIR = os.path.join(REPO, "models", "glmoe-demo")
PROMPT = "The State of the Union"
VAL_EVERY = 20  # --sweep validates on every 20th training document (12 of 221)


def model_config(args, tok):
    eot, user, obs = (tok.token_to_id(t) for t in ("<|endoftext|>", "<|user|>", "<|observation|>"))
    if args.tiny:
        sizes = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                     head_dim=32, intermediate_size=128, moe_intermediate_size=64, n_routed_experts=4,
                     num_experts_per_tok=2)
    else:
        sizes = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=2,
                     head_dim=64, intermediate_size=1024, moe_intermediate_size=64, n_routed_experts=16,
                     num_experts_per_tok=4)
    return Glm4MoeConfig(
        vocab_size=tok.get_vocab_size(),
        **sizes,
        hidden_act="silu",
        max_position_embeddings=1024,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.5},
        rms_norm_eps=1e-5,
        attention_bias=True,
        use_qk_norm=True,
        first_k_dense_replace=1,
        n_shared_experts=1,
        routed_scaling_factor=2.5,
        n_group=1,
        topk_group=1,
        norm_topk_prob=True,
        num_nextn_predict_layers=0,  # no MTP layer: it would be saved untrained
        tie_word_embeddings=False,
        initializer_range=0.02,
        attention_dropout=0.0,
        eos_token_id=[eot, user, obs],
        pad_token_id=eot,
        bos_token_id=None,
    )


# --- experts forward used for training -------------------------------------------------------------
# transformers' own paths either loop over experts with a host sync per expert (eager) or depend on the
# library version (grouped_mm). These two take the same weights (gate_up_proj [E, 2*Im, H] with gate rows
# first, down_proj [E, H, Im]) and return the same sum; check_experts() compares them before training.

def experts_eager(self, hidden, top_k_index, top_k_weights):
    out = torch.zeros_like(hidden)
    for e in range(self.gate_up_proj.shape[0]):
        tok_idx, slot = torch.where(top_k_index == e)
        if tok_idx.numel() == 0:
            continue
        gate, up = F.linear(hidden[tok_idx], self.gate_up_proj[e]).chunk(2, dim=-1)
        y = F.linear(F.silu(gate) * up, self.down_proj[e]) * top_k_weights[tok_idx, slot, None]
        out.index_add_(0, tok_idx, y.to(out.dtype))
    return out


def _grouped_mm(a, b, offs):
    if hasattr(F, "grouped_mm"):
        return F.grouped_mm(a, b, offs=offs)
    return torch._grouped_mm(a, b, offs=offs)


def experts_grouped(self, hidden, top_k_index, top_k_weights):
    """All (token, expert) pairs sorted by expert, two grouped matmuls in bf16, no host sync."""
    n_tok, k = top_k_index.shape
    n_exp = self.gate_up_proj.shape[0]
    flat = top_k_index.reshape(-1)
    expert_sorted, perm = torch.sort(flat, stable=True)
    counts = torch.zeros(n_exp, dtype=torch.int32, device=hidden.device)
    counts.scatter_add_(0, expert_sorted, torch.ones_like(expert_sorted, dtype=torch.int32))
    offs = torch.cumsum(counts, 0, dtype=torch.int32)
    x = hidden[perm // k].to(torch.bfloat16)
    gate_up = _grouped_mm(x, self.gate_up_proj.to(torch.bfloat16).transpose(-2, -1), offs)
    gate, up = gate_up.chunk(2, dim=-1)
    y = _grouped_mm(F.silu(gate) * up, self.down_proj.to(torch.bfloat16).transpose(-2, -1), offs)
    y = y.float() * top_k_weights.reshape(-1)[perm].unsqueeze(-1)
    unsorted = torch.empty_like(y)
    unsorted[perm] = y
    return unsorted.view(n_tok, k, -1).sum(dim=1).to(hidden.dtype)


def check_experts(model, device):
    """Pick the grouped path if it runs here and agrees with the eager loop, else the eager loop."""
    experts = next(m for n, m in model.named_modules() if n.endswith("mlp.experts"))
    g = torch.Generator(device="cpu").manual_seed(1)
    h = torch.randn(96, model.config.hidden_size, generator=g).to(device)
    idx = torch.stack([torch.randperm(model.config.n_routed_experts, generator=g)[:model.config.num_experts_per_tok]
                       for _ in range(96)]).to(device)
    w = torch.rand(96, model.config.num_experts_per_tok, generator=g).to(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        ref = experts_eager(experts, h, idx, w).float()
        try:
            got = experts_grouped(experts, h, idx, w).float()
            got.sum().backward()  # the backward must run too
            model.zero_grad(set_to_none=True)
        except Exception as e:  # noqa: BLE001 - any failure means: use the loop
            print(f"experts: grouped_mm unavailable ({type(e).__name__}: {str(e)[:200]}), using the eager loop")
            return experts_eager
    err = (got - ref).abs().max().item() / max(ref.abs().max().item(), 1e-12)
    if err > 3e-2:
        print(f"experts: grouped_mm disagrees with the eager loop (rel err {err:.3g}), using the eager loop")
        return experts_eager
    print(f"experts: grouped_mm (rel diff to the eager loop {err:.2g})")
    return experts_grouped


# --- aux-loss-free balancing ------------------------------------------------------------------------

class LoadBalancer:
    """Counts routed tokens per expert during training forwards and nudges e_score_correction_bias."""

    def __init__(self, model, gamma):
        self.gamma = gamma
        self.active = False
        self.routers = [m for n, m in model.named_modules() if n.endswith("mlp.gate")]
        self.loads = [torch.zeros(r.e_score_correction_bias.shape[0], device=r.e_score_correction_bias.device)
                      for r in self.routers]
        for router, load in zip(self.routers, self.loads):
            router.register_forward_hook(self._hook(load))

    def _hook(self, load):
        def hook(_module, _inputs, outputs):
            if self.active:
                idx = outputs[2].reshape(-1)
                load.scatter_add_(0, idx, torch.ones_like(idx, dtype=load.dtype))
        return hook

    @torch.no_grad()
    def update(self):
        for router, load in zip(self.routers, self.loads):
            bias = router.e_score_correction_bias
            bias += self.gamma * torch.sign(load.mean() - load).to(bias.dtype)
            load.zero_()

    def imbalance(self):
        """max load / mean load per MoE layer, of the counts gathered since the last update."""
        return [(l.max() / l.mean().clamp_min(1e-9)).item() for l in self.loads]


def add_residual_dropout(model, p):
    """Dropout on every attention and MLP output (train mode only); hooks are not saved."""
    def on_attn(_m, _i, out):
        return (F.dropout(out[0], p, _m.training),) + tuple(out[1:])

    def on_mlp(_m, _i, out):
        return F.dropout(out, p, _m.training)

    for layer in model.model.layers:
        layer.self_attn.register_forward_hook(on_attn)
        layer.mlp.register_forward_hook(on_mlp)


# --- data, schedule, evaluation ---------------------------------------------------------------------

def load_tokens(tok, path):
    """Evaluation text: the whole file tokenized at once, as glmoe perplexity reads it."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    return torch.tensor(tok.encode(text).ids, dtype=torch.long), len(text.encode("utf-8"))


def load_documents(tok, path, eot):
    """Training text: one address per line; each becomes its ids (trailing newline kept) plus <|endoftext|>."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    docs = [enc.ids + [eot] for enc in tok.encode_batch(text.splitlines(keepends=True))]
    return docs, len(text.encode("utf-8"))


def join_documents(docs):
    return torch.tensor([i for d in docs for i in d], dtype=torch.long)


def lr_at(progress, args):
    warm = args.warmup / args.steps
    if progress < warm:
        return args.lr * progress / warm
    t = min(1.0, (progress - warm) / max(1e-9, 1.0 - warm))
    return args.lr_min + 0.5 * (args.lr - args.lr_min) * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def heldout_nll(model, ids, ctx, device, autocast, batch=64):
    """Sum of NLL and number of predicted tokens over non-overlapping windows of ctx tokens."""
    was_training = model.training
    model.eval()
    windows = [ids[i:i + ctx] for i in range(0, len(ids), ctx)]
    windows = [w for w in windows if len(w) >= 2]
    total, count = 0.0, 0
    full = [w for w in windows if len(w) == ctx]
    rest = [w for w in windows if len(w) != ctx]
    groups = [torch.stack(full[i:i + batch]) for i in range(0, len(full), batch)] + [w[None] for w in rest]
    for x in groups:
        x = x.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=x, use_cache=False).logits
        nll = F.cross_entropy(logits[:, :-1].float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                              reduction="sum")
        total += nll.item()
        count += x[:, 1:].numel()
    model.train(was_training)
    return total, count


def generate_samples(model, tok, device, eos_ids, n_new):
    ids = torch.tensor([tok.encode(PROMPT).ids], device=device)
    out = []
    greedy = model.generate(ids, max_new_tokens=n_new, do_sample=False, eos_token_id=eos_ids,
                            pad_token_id=eos_ids[0])
    out.append(("greedy", tok.decode(greedy[0].tolist(), skip_special_tokens=True)))
    for seed in (1, 2):
        torch.manual_seed(seed)
        s = model.generate(ids, max_new_tokens=n_new, do_sample=True, temperature=0.8, top_p=0.95, top_k=0,
                           eos_token_id=eos_ids, pad_token_id=eos_ids[0])
        out.append((f"sampled T=0.8 top-p 0.95 seed {seed}", tok.decode(s[0].tolist(), skip_special_tokens=True)))
    return out


def param_groups(model, wd):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        # Matrices and expert stacks decay; norms, biases, embeddings and the router do not.
        (decay if p.ndim >= 2 and "embed_tokens" not in n and not n.endswith("mlp.gate.weight") else no_decay).append(p)
    return [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]


def save_checkpoint(model, out_dir, shard_size):
    biases = {n: b.detach().clone() for n, b in model.named_buffers() if n.endswith("e_score_correction_bias")}
    model.to(torch.bfloat16)
    for n, b in model.named_buffers():
        if n in biases:
            b.data = biases[n]  # .to(bf16) rounded it; the checkpoint keeps the exact fp32 bias
    model.config.dtype = torch.bfloat16
    model.save_pretrained(out_dir, max_shard_size=shard_size)
    eos = model.config.eos_token_id
    GenerationConfig(eos_token_id=eos, pad_token_id=model.config.pad_token_id).save_pretrained(out_dir)


def train_run(args, run, train_ids, eval_ids, eval_label, budget_s, device, tok):
    """One training run from the seed with run = {"epochs", "dropout"}; returns the model (fp32)."""
    autocast = device.type == "cuda"
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    model = Glm4MoeForCausalLM(model_config(args, tok)).to(device)
    experts_forward = check_experts(model, device)
    for name, m in model.named_modules():
        if name.endswith("mlp.experts"):
            m.forward = types.MethodType(experts_forward, m)
    balancer = LoadBalancer(model, args.gamma)
    add_residual_dropout(model, run["dropout"])

    tokens_per_step = args.batch * args.ctx
    steps = 20 if args.tiny else max(1, int(run["epochs"] * len(train_ids) / tokens_per_step))
    sched = argparse.Namespace(lr=args.lr, lr_min=args.lr_min, warmup=min(args.warmup, steps // 4 + 1),
                               steps=steps)
    opt = torch.optim.AdamW(param_groups(model, args.wd), lr=args.lr, betas=(0.9, 0.95), eps=1e-8,
                            fused=device.type == "cuda")
    print(f"run {json.dumps(run)}: {steps} steps x {args.batch} x {args.ctx} tokens on {len(train_ids)} "
          f"tokens, budget {budget_s:.0f} s", flush=True)

    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    model.train()
    t0 = time.time()
    step, progress, loss_sum, loss_n = 0, 0.0, torch.zeros((), device=device), 0
    while progress < 1.0:
        lr = lr_at(progress, sched)
        for group in opt.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(train_ids) - args.ctx - 1, (args.batch,), generator=gen)
        x = torch.stack([train_ids[s:s + args.ctx + 1] for s in starts.tolist()]).to(device, non_blocking=True)
        balancer.active = True
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(input_ids=x[:, :-1], use_cache=False).logits
        balancer.active = False
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        step += 1
        loss_sum += loss.detach()
        loss_n += 1
        elapsed = time.time() - t0
        progress = max(step / steps, elapsed / budget_s)
        last = progress >= 1.0
        if step % args.log_every == 0 or last or step == 1:
            line = (f"step {step:5d}/{steps} lr {lr:.2e} train loss {loss_sum.item() / loss_n:.4f} "
                    f"max/mean expert load {max(balancer.imbalance()):.2f} {elapsed:6.1f} s")
            loss_sum.zero_()
            loss_n = 0
            if step % args.eval_every == 0 or last:
                nll, cnt = heldout_nll(model, eval_ids, args.ctx, device, autocast)
                line += f" | {eval_label} ppl {math.exp(nll / cnt):.3f}"
            print(line, flush=True)
        balancer.update()
    print(f"trained {step} steps ({step * tokens_per_step / len(train_ids):.2f} epochs) in "
          f"{time.time() - t0:.1f} s", flush=True)
    biases = [r.e_score_correction_bias for r in balancer.routers]
    print("correction bias range per MoE layer: " +
          ", ".join(f"[{b.min().item():+.3f}, {b.max().item():+.3f}]" for b in biases))
    return model


def parse_sweep(text):
    """"0.1:6,0.2:9" -> [{"dropout": 0.1, "epochs": 6.0}, ...]"""
    runs = []
    for item in filter(None, text.split(",")):
        d, e = item.split(":")
        runs.append({"dropout": float(d), "epochs": float(e)})
    return runs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default=DEFAULT_CORPUS, help="folder with train.txt and heldout_full.txt")
    ap.add_argument("--heldout", default=os.path.join(DEFAULT_MODEL_DIR, "heldout.txt"),
                    help="the committed held-out slice whose perplexity is reported last")
    ap.add_argument("--tokenizer", default=DEFAULT_MODEL_DIR, help="folder with tokenizer.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=float, default=12.0,
                    help="training tokens / corpus tokens, used without --sweep")
    ap.add_argument("--dropout", type=float, default=0.3, help="residual dropout, used without --sweep")
    ap.add_argument("--sweep", default="0.1:6,0.2:9,0.3:12",
                    help="DROPOUT:EPOCHS,... : train each on the training documents minus a validation "
                         "set, keep the best on validation, then train it on all training documents")
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--lr-min", type=float, default=1.5e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--wd", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--gamma", type=float, default=1e-3, help="bias update speed of the load balancer")
    ap.add_argument("--budget-s", type=float, default=330.0,
                    help="all training (sweep included) stops by this many seconds")
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=500, help="multiple of --log-every")
    ap.add_argument("--shard-size", default="14MB")
    ap.add_argument("--gen-tokens", type=int, default=120)
    ap.add_argument("--tiny", action="store_true", help="tiny model and a few steps, for a CPU smoke test")
    args = ap.parse_args()
    if args.tiny:
        args.ctx, args.batch, args.warmup, args.log_every, args.eval_every, args.gen_tokens = 64, 4, 5, 5, 10, 20

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 evaluation must be plain fp32
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, device "
          f"{torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}", flush=True)
    print(f"args {json.dumps(vars(args))}", flush=True)

    tok = Tokenizer.from_file(os.path.join(args.tokenizer, "tokenizer.json"))
    eot = tok.token_to_id("<|endoftext|>")
    docs, train_bytes = load_documents(tok, os.path.join(args.corpus, "train.txt"), eot)
    train_ids = join_documents(docs)
    full_ids, full_bytes = load_tokens(tok, os.path.join(args.corpus, "heldout_full.txt"))
    slice_ids, slice_bytes = load_tokens(tok, args.heldout)
    if args.tiny:
        full_ids = full_ids[:2000]
    print(f"tokens: train {len(train_ids)} ({train_bytes} bytes), held-out full {len(full_ids)}, "
          f"held-out slice {len(slice_ids)} ({slice_bytes} bytes)", flush=True)
    n_params = sum(p.numel() for p in Glm4MoeForCausalLM(model_config(args, tok)).parameters())
    print(f"parameters: {n_params}", flush=True)

    final = {"dropout": args.dropout, "epochs": args.epochs}
    sweep = parse_sweep(args.sweep)
    # Each run's time share is proportional to its epochs; the final run is budgeted as the longest.
    total_epochs = sum(r["epochs"] for r in sweep) + max([r["epochs"] for r in sweep] + [args.epochs])
    t_start = time.time()
    if sweep:
        # Validation = every VAL_EVERY-th training document; the held-out split is not used for choosing.
        val_docs = [d for i, d in enumerate(docs) if i % VAL_EVERY == 0]
        fit_docs = [d for i, d in enumerate(docs) if i % VAL_EVERY != 0]
        fit_ids, val_ids = join_documents(fit_docs), join_documents(val_docs)
        if args.tiny:
            val_ids = val_ids[:2000]
        print(f"sweep: {len(fit_docs)} documents ({len(fit_ids)} tokens) to fit, {len(val_docs)} documents "
              f"({len(val_ids)} tokens) to validate", flush=True)
        results = []
        for run in sweep:
            model = train_run(args, run, fit_ids, val_ids, "validation", args.budget_s * run["epochs"] / total_epochs,
                              device, tok)
            nll, cnt = heldout_nll(model, val_ids, args.ctx, device, device.type == "cuda")
            results.append((nll / cnt, run))
            print(f"sweep result {json.dumps(run)}: validation ppl {math.exp(nll / cnt):.3f}", flush=True)
            del model
        final = min(results, key=lambda r: r[0])[1]
        print(f"sweep chose {json.dumps(final)}", flush=True)
    left = args.budget_s - (time.time() - t_start)
    model = train_run(args, final, train_ids, full_ids, "held-out", max(left, 1.0), device, tok)
    print(f"all training took {time.time() - t_start:.1f} s", flush=True)
    config = model.config

    os.makedirs(args.out, exist_ok=True)
    save_checkpoint(model, args.out, args.shard_size)
    if os.path.abspath(args.tokenizer) != os.path.abspath(args.out):
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(os.path.join(args.tokenizer, f), args.out)
    sizes = {f: os.path.getsize(os.path.join(args.out, f)) for f in sorted(os.listdir(args.out))}
    print("saved: " + ", ".join(f"{f} {s}" for f, s in sizes.items()))
    if max(s for f, s in sizes.items() if f.endswith(".safetensors")) >= 15_000_000:
        sys.exit("a shard is 15 MB or larger; lower --shard-size")

    # Reload what was written and measure it the way glmoe will: fp32 compute on the bf16 weights.
    ref = Glm4MoeForCausalLM.from_pretrained(args.out, dtype=torch.float32,
                                             experts_implementation="eager").to(device).eval()
    for name, b in ref.named_buffers():
        if name.endswith("e_score_correction_bias") and b.dtype != torch.float32:
            sys.exit(f"{name} reloaded as {b.dtype}")
    for label, ids, nbytes in (("held-out full split", full_ids, full_bytes), (args.heldout, slice_ids, slice_bytes)):
        nll, cnt = heldout_nll(ref, ids, args.ctx, device, autocast=False, batch=16)
        print(f"{label}: {cnt} predicted tokens, NLL {nll / cnt:.4f} nats/token, "
              f"{nll / math.log(2) / nbytes:.4f} bits/byte, perplexity {math.exp(nll / cnt):.4f}")
    for label, text in generate_samples(ref, tok, device, config.eos_token_id, args.gen_tokens):
        print(f"--- sample ({label}):\n{text}")
    print(f"perplexity: {math.exp(nll / cnt):.4f}")


if __name__ == "__main__":
    main()
