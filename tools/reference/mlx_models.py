"""Shared by tools/reference/mlx_perplexity.py and tools/bench/mlx_cpu_bench.py: make MLX-loadable copies
of a glmoe model directory (bf16 as is, and mlx_lm.convert q8 / q4 at group size 64) and load them.

Why a copy at all: mlx-lm 0.32.2's glm4_moe ModelArgs needs the flat config keys rope_theta,
partial_rotary_factor and rope_scaling, while models/glmoe-demo/config.json (written by transformers 5)
nests RoPE in "rope_parameters" and names the dtype "dtype". The copy rewrites only those keys (same
values; rope_scaling null = plain RoPE) and symlinks the weight files, so the bf16 weights MLX reads are
the committed ones. The converted q8/q4 directories are made from that copy.
"""

import json
import os
import shutil
import subprocess
import sys

# (directory name, mlx_lm.convert arguments) of every variant; None = the bf16 copy itself
VARIANTS = {"bf16": None,
            "q8": ["-q", "--q-bits", "8", "--q-group-size", "64"],
            "q4": ["-q", "--q-bits", "4", "--q-group-size", "64"]}


def flat_config(cfg):
    cfg = dict(cfg)
    rp = cfg.pop("rope_parameters", None)
    if rp is not None:
        if rp.get("rope_type", "default") != "default":
            raise ValueError(f"rope_type {rp.get('rope_type')} not handled")
        cfg["rope_theta"] = rp["rope_theta"]
        cfg["partial_rotary_factor"] = rp.get("partial_rotary_factor", cfg.get("partial_rotary_factor", 0.5))
    cfg.setdefault("rope_scaling", None)
    if "torch_dtype" not in cfg and "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    return cfg


def prepare(model_dir, work_dir, variants):
    """-> {variant: directory} under work_dir; existing directories are reused (delete work_dir to redo)."""
    model_dir = os.path.abspath(model_dir)
    os.makedirs(work_dir, exist_ok=True)
    base = os.path.join(work_dir, "bf16")
    if not os.path.isdir(base):
        os.makedirs(base)
        for f in sorted(os.listdir(model_dir)):
            src = os.path.join(model_dir, f)
            if f.endswith(".safetensors"):
                os.symlink(src, os.path.join(base, f))
            elif f == "config.json":
                with open(src) as fh:
                    cfg = flat_config(json.load(fh))
                with open(os.path.join(base, f), "w") as fh:
                    json.dump(cfg, fh, indent=2)
            elif f.endswith(".json"):
                shutil.copy(src, base)
    out = {}
    for v in variants:
        if VARIANTS[v] is None:
            out[v] = base
            continue
        d = os.path.join(work_dir, v)
        if not os.path.isdir(d):
            subprocess.run([sys.executable, "-m", "mlx_lm", "convert", "--hf-path", base, "--mlx-path", d]
                           + VARIANTS[v], check=True, stdout=subprocess.DEVNULL)
        out[v] = d
    return out


def convert_command(v):
    return None if VARIANTS[v] is None else "mlx_lm.convert --hf-path <bf16 copy> --mlx-path <dir> " + " ".join(VARIANTS[v])


def load(model_dir, compute):
    """mlx_lm.load on the CPU. compute = "native": as loaded (bf16 weights/scales, bf16 activations);
    "f32": every floating parameter cast to float32 (exact for bf16 values), so the arithmetic is float32."""
    import mlx.core as mx
    import mlx_lm
    from mlx.utils import tree_map
    mx.set_default_device(mx.cpu)
    model, _ = mlx_lm.load(model_dir)
    if compute == "f32":
        model.update(tree_map(lambda a: a.astype(mx.float32) if mx.issubdtype(a.dtype, mx.floating) else a,
                              model.parameters()))
    elif compute != "native":
        raise ValueError(compute)
    mx.eval(model.parameters())
    return model
