#!/usr/bin/env bash
# test_bench_ops.sh — `glmoe bench --device cpu` on a tiny checkpoint (tests/golden/glm45_like)
# quantized to q4 while loading: the op-case table (tests/ops/opcases.c) in timing mode, end to
# end, short. Every op of the table at T = 1 and 512, attention at 512, decode at each context,
# and the affine rows must come out in the table and the JSON with positive times.
# Usage: test_bench_ops.sh GLMOE REPO_ROOT
set -u
glmoe=${1:?usage: test_bench_ops.sh GLMOE REPO_ROOT}
repo=${2:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! timeout 300 "$glmoe" bench -m "$repo/tests/golden/glm45_like" --device cpu --quantize q4 --lengths 1 \
        --contexts 8,24 --steps 1 --reps 1 --json "$tmp/b.json" > "$tmp/out" 2> "$tmp/err"; then
    echo "FAIL glmoe bench exited with $?: $(tail -3 "$tmp/err")"
    exit 1
fi
grep -q "^  affine weights: GB/s over their codes, scales and biases$" "$tmp/out" \
    || { echo "FAIL no affine section in the table:"; cat "$tmp/out"; exit 1; }
python3 - "$tmp/b.json" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
ops = {(o["op"], o.get("weight"), o["tokens"], o["context"]) for o in d["ops"] if o["ms"] > 0}
want = [(op, None, t, 0) for op in ["add_rmsnorm", "matmul_qkv", "matmul_o", "rope", "swiglu", "moe_route",
                                    "moe_experts", "dense_mlp"] for t in (1, 512)]
want += [("attn_causal", None, 512, 512), ("attn_masked", None, 512, 512), ("attn_decode", None, 1, 8),
         ("attn_decode", None, 1, 24)]
want += [("affine_matmul", w, 1, 0) for w in ["q_proj", "k_proj/v_proj", "o_proj", "shared gate/up"]]
want += [("affine_matmul", "q_proj", 512, 0)]
missing = [w for w in want if w not in ops]
assert not missing, f"missing or not timed: {missing}"
aff = [o for o in d["ops"] if o["op"].startswith("affine")]
assert all(o["format"] == "q4 g64" and o["bytes"] > 0 and o["gb_s"] > 0 for o in aff), aff
print(f"test_bench_ops: {len(d['ops'])} op rows, all timed")
PY
