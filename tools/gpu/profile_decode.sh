#!/bin/bash
# profile_decode.sh — one device call: Nsight Compute over every kernel of the quantized decode
# step (GLM-4.5-Air cut to 2 layers: the dense layer 0 and one MoE layer, q4 g64, context 128),
# one line per kernel with its time, DRAM bytes and throughput, occupancy and issue activity, then
# the stall reasons of the weight-reading kernels.
#   tools/gpu/profile_decode.sh [q4|q8] [layers]
# Output: $OUT/profile.txt (also printed), $OUT/ncu_raw.csv.
set -u
. "$(dirname "$0")/paths.sh"
Q=${1:-q4} LAYERS=${2:-2}
mkdir -p "$OUT"
if [ ! -x "$BUILD/glmoe" ]; then
    . "$ROOT/tools/gpu/deps_env.sh"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGLMOE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
        "${CMAKE_EXTRA[@]}" > /tmp/configure.log 2>&1 &&
        cmake --build "$BUILD" -j"$(nproc)" --target glmoe_cli > /tmp/build.log 2>&1 || { tail -20 /tmp/build.log; exit 1; }
else
    . "$ROOT/tools/gpu/deps_env.sh" > /dev/null
fi
G=$BUILD/glmoe
ARGS="bench --config glm-4.5-air --layers $LAYERS --quantize $Q --device cuda --lengths 1 --reps 1 --contexts 128 --steps 1 --no-ops"
K='regex:^(add_|affine_|attn|embed|expert_|kv_store|rope|route|swiglu|moe_|qmma|gemv|rms|mmv_)'
timeout 240 ncu --clock-control none --kernel-name "$K" --launch-count 600 --csv --page raw \
    --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__warps_active.avg.pct_of_peak_sustained_active,smsp__issue_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__block_size,launch__registers_per_thread \
    $G $ARGS > "$OUT/ncu_raw.csv" 2> /tmp/ncu_err.log || tail -5 /tmp/ncu_err.log
python3 - "$OUT/ncu_raw.csv" << 'PY' | tee "$OUT/profile.txt"
import csv, sys, io
lines = open(sys.argv[1]).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.startswith('"ID"'))
rows = list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))[1:]  # skip the units row
def f(r, k):
    try: return float(r[k].replace(',', ''))
    except Exception: return 0.0
# one whole decode step: from the last but one embed launch to the last
emb = [i for i, r in enumerate(rows) if 'embed' in r['Kernel Name']]
step = rows[emb[-2]:emb[-1]] if len(emb) > 1 else rows[emb[-1]:]
tot = sum(f(r, 'gpu__time_duration.sum') for r in step)
byt = sum(f(r, 'dram__bytes_read.sum') for r in step)
print(f"decode step: {len(step)} kernels, {tot/1e3:.1f} us summed (serialised), {byt/1e6:.1f} MB read from DRAM")
print(f"{'kernel':58s} {'us':>7s} {'MB':>7s} {'dram%':>6s} {'occ%':>5s} {'issue%':>6s} {'grid':>6s} {'blk':>4s} {'reg':>4s}")
for r in step:
    name = r['Kernel Name'][:58]
    print(f"{name:58s} {f(r,'gpu__time_duration.sum')/1e3:7.1f} {f(r,'dram__bytes_read.sum')/1e6:7.2f} "
          f"{f(r,'dram__throughput.avg.pct_of_peak_sustained_elapsed'):6.1f} {f(r,'sm__warps_active.avg.pct_of_peak_sustained_active'):5.1f} "
          f"{f(r,'smsp__issue_active.avg.pct_of_peak_sustained_active'):6.1f} {int(f(r,'launch__grid_size')):6d} {int(f(r,'launch__block_size')):4d} {int(f(r,'launch__registers_per_thread')):4d}")
PY
echo "== stall reasons of the weight-reading kernels and the decode attention (first launches of the decode graph)"
timeout 200 ncu --clock-control none --kernel-name 'regex:mmv_|affine_gemv|expert_.*grouped|attn_tc' --launch-skip 0 --launch-count 9 \
    --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis --section SchedulerStats \
    $G $ARGS > /tmp/ncu_stall.txt 2>&1
cp /tmp/ncu_stall.txt "$OUT/ncu_stall.txt"
grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Achieved Occupancy|Warp Cycles Per Issued|Issued Warp Per Scheduler|No Eligible|Active Warps Per Scheduler|Eligible Warps|Stall|stall" /tmp/ncu_stall.txt | cut -c1-230 | head -150
echo "== where the warps stall, per SASS instruction (warp-state samples of the first mmv_dense, mmv_gateup and attn_tc launches)"
for k in mmv_dense mmv_gateup attn_tc; do
    timeout 120 ncu --clock-control none --kernel-name "regex:$k" --launch-count 1 --section SourceCounters \
        --section WarpStateStats --page source --print-source sass --csv $G $ARGS > "$OUT/ncu_sass_$k.csv" 2> /tmp/ncu_sass_err.log ||
        { echo "ncu source page failed: $(tail -2 /tmp/ncu_sass_err.log)"; continue; }
    python3 - "$OUT/ncu_sass_$k.csv" "$k" << 'PY'
import csv, sys, io, collections
lines = open(sys.argv[1]).read().splitlines()
try:
    start = next(i for i, l in enumerate(lines) if l.startswith('"Address"') or l.startswith('"#"') or '"Source"' in l)
except StopIteration:
    print("no source table:", *lines[:5], sep="\n  "); sys.exit()
rows = list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))
cols = list(rows[0].keys()) if rows else []
samp = next((c for c in cols if c.startswith('Warp Stall Sampling (All')), None)
if not samp:
    print("columns:", cols[:30]); sys.exit()
def num(v):
    try: return float(v.replace(',', ''))
    except Exception: return 0.0
tot = sum(num(r[samp]) for r in rows) or 1
by_op = collections.Counter()
def opcode(src):
    t = src.split()
    return (t[1] if t[0].startswith('@') and len(t) > 1 else t[0]).split('.')[0] if t else '?'
for r in rows: by_op[opcode(r['Source'])] += num(r[samp])
print(f"-- {sys.argv[2]}: {len(rows)} instructions, {int(tot)} samples; by opcode:",
      ", ".join(f"{op} {100*v/tot:.1f}%" for op, v in by_op.most_common(12)))
for r in sorted(rows, key=lambda r: -num(r[samp]))[:25]:
    print(f"  {100*num(r[samp])/tot:5.1f}%  {r.get('Address','')}  {r['Source'][:90]}")
PY
done
