#!/usr/bin/env python3
"""peer_llamacpp.py — times a GGUF model with llama.cpp's own llama-bench and writes the common
benchmark JSON that tools/bench/compare.py reads (the schema of glmoe's `bench --json`).

usage: peer_llamacpp.py --bench BIN/llama-bench --gguf MODEL.gguf --out OUT.json
                        [--name air4] [--lengths 1,2,4,...] [--depths 128,4096] [--reps 5]
                        [--gen 64] [--version TEXT] [--timeout 600]

llama-bench runs as its users run it for this comparison: every layer on the GPU (-ngl 99),
flash attention (-fa 1), its default batch and micro-batch, -r REPS repetitions.
  prefill  one run of `-p LENGTHS -n 0`: the time to evaluate an N-token prompt from an empty cache
  decode   one run of `-p 0 -n GEN -d DEPTHS`: GEN tokens one at a time after a DEPTH-token context;
           ms per token = median over the repetitions of (sample time / GEN)
Times are the median of llama-bench's samples_ns (ms_mean beside it). An empty --lengths or --depths
skips that part. A llama-bench that fails or runs past --timeout is one line on stderr and exit 1.

llama.cpp itself is never part of this repository (BENCHMARKS.md, "Against the peers"): this script
only runs a llama-bench it is given. Standard library only.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys


def run_bench(args, extra):
    cmd = [args.bench, "-m", args.gguf, "-ngl", "99", "-fa", "1", "-r", str(args.reps), "-o", "json"] + extra
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"peer_llamacpp: {' '.join(cmd)}: ran past {args.timeout} s")
    if p.returncode != 0:
        tail = " ".join(p.stderr.strip().splitlines()[-2:])[:300]
        sys.exit(f"peer_llamacpp: {' '.join(cmd)}: exit {p.returncode}: {tail}")
    try:
        rows = json.loads(p.stdout)
    except json.JSONDecodeError as e:
        sys.exit(f"peer_llamacpp: llama-bench printed no JSON ({e}): {p.stdout[:200]!r}")
    if not isinstance(rows, list) or not rows:
        sys.exit("peer_llamacpp: llama-bench returned no test results")
    return cmd, rows


def ints(text):
    return [int(x) for x in text.split(",") if x.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bench", required=True, help="the llama-bench binary")
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--name", default=None, help="model name in the JSON (default: the GGUF's file name)")
    ap.add_argument("--lengths", default="1,2,4,8,16,32,64,128,129,256,512,1024,2048,4096")
    ap.add_argument("--depths", default="128,4096")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--version", default="", help="how this llama.cpp was built, recorded as given")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per llama-bench run")
    args = ap.parse_args()
    if not os.path.isfile(args.gguf):
        sys.exit(f"peer_llamacpp: {args.gguf}: no such file")

    out = {"engine": "llama.cpp", "version": args.version, "device": None,
           "model": {"name": args.name or os.path.basename(args.gguf), "gguf": args.gguf,
                     "gguf_bytes": os.path.getsize(args.gguf)},
           "prefill": [], "decode": [], "commands": []}
    first = None
    lengths, depths = ints(args.lengths), ints(args.depths)
    if lengths:
        cmd, rows = run_bench(args, ["-p", ",".join(map(str, lengths)), "-n", "0"])
        out["commands"].append(" ".join(cmd))
        first = first or rows[0]
        for r in rows:
            ns = r["samples_ns"]
            out["prefill"].append({"tokens": r["n_prompt"], "ms": statistics.median(ns) / 1e6,
                                   "ms_mean": statistics.fmean(ns) / 1e6, "reps": len(ns)})
    if depths:
        cmd, rows = run_bench(args, ["-p", "0", "-n", str(args.gen), "-d", ",".join(map(str, depths))])
        out["commands"].append(" ".join(cmd))
        first = first or rows[0]
        for r in rows:
            per_token = [s / r["n_gen"] / 1e6 for s in r["samples_ns"]]
            out["decode"].append({"context": r.get("n_depth", 0), "ms_per_token": statistics.median(per_token),
                                  "ms_per_token_mean": statistics.fmean(per_token), "steps": r["n_gen"],
                                  "reps": len(per_token)})
    if first:
        out["device"] = first.get("gpu_info")
        out["model"].update(params=first.get("model_n_params"), type=first.get("model_type"))
        out["version"] = (f"{args.version}; " if args.version else "") + \
            f"build_commit {first.get('build_commit')}, backends {first.get('backends')}"
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    for e in out["prefill"]:
        print(f"prefill {e['tokens']:6d} tokens {e['ms']:10.3f} ms")
    for e in out["decode"]:
        print(f"decode  context {e['context']:6d} {e['ms_per_token']:8.3f} ms/token ({1e3 / e['ms_per_token']:.1f} tok/s)")


if __name__ == "__main__":
    main()
