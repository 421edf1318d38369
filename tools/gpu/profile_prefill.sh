#!/bin/bash
# profile_prefill.sh — one device call: Nsight Compute over the kernels of a quantized prefill
# (GLM-4.5-Air cut to 2 layers: the dense layer 0 and one MoE layer, q4 g64, a T-token prompt),
# summed per kernel name: time, launches, DRAM bytes and throughput, issue activity, registers.
# The bench also runs its warm-up and one decode step; at T = 512 their kernels are a small part.
#   tools/gpu/profile_prefill.sh [q4|q8] [T] [layers]
# Output: $OUT/profile_prefill.txt (also printed), $OUT/ncu_prefill_raw.csv.
set -u
. "$(dirname "$0")/paths.sh"
Q=${1:-q4} T=${2:-512} LAYERS=${3:-2}
mkdir -p "$OUT"
. "$ROOT/tools/gpu/deps_env.sh" > /dev/null
if [ ! -x "$BUILD/glmoe" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGLMOE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
        "${CMAKE_EXTRA[@]}" > /tmp/configure.log 2>&1 &&
        cmake --build "$BUILD" -j"$(nproc)" --target glmoe_cli > /tmp/build.log 2>&1 || { tail -20 /tmp/build.log; exit 1; }
fi
ARGS="bench --config glm-4.5-air --layers $LAYERS --quantize $Q --device cuda --lengths $T --reps 1 --contexts 128 --steps 1 --no-ops"
M=gpu__time_duration.sum,dram__bytes_read.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,smsp__issue_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__registers_per_thread
TC=sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active # tensor-pipe activity, if this ncu knows it
for metrics in "$M,$TC" "$M"; do
    timeout 240 ncu --clock-control none --launch-count 2000 --csv --page raw --metrics "$metrics" \
        "$BUILD/glmoe" $ARGS > "$OUT/ncu_prefill_raw.csv" 2> /tmp/ncu_prefill_err.log && grep -q '^"ID"' "$OUT/ncu_prefill_raw.csv" && break
    echo "ncu with $metrics failed: $(tail -2 /tmp/ncu_prefill_err.log | tr '\n' ' ')"
done
python3 - "$OUT/ncu_prefill_raw.csv" "$T" << 'PY' | tee "$OUT/profile_prefill.txt"
import csv, sys, io, collections
lines = open(sys.argv[1]).read().splitlines()
start = next(i for i, l in enumerate(lines) if l.startswith('"ID"'))
rows = list(csv.DictReader(io.StringIO("\n".join(lines[start:]))))[1:]  # skip the units row
def f(r, k):
    try: return float(r[k].replace(',', ''))
    except Exception: return 0.0
agg = collections.OrderedDict()
for r in rows:
    name = r['Kernel Name'].split('(')[0][:60]
    a = agg.setdefault(name, dict(n=0, us=0.0, mb=0.0, dram=0.0, issue=0.0, tc=0.0, grid=0, reg=0))
    us = f(r, 'gpu__time_duration.sum') / 1e3
    a['n'] += 1; a['us'] += us; a['mb'] += f(r, 'dram__bytes_read.sum') / 1e6
    a['dram'] += us * f(r, 'dram__throughput.avg.pct_of_peak_sustained_elapsed')
    a['issue'] += us * f(r, 'smsp__issue_active.avg.pct_of_peak_sustained_active')
    a['tc'] += us * f(r, 'sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active')
    a['grid'] = max(a['grid'], int(f(r, 'launch__grid_size'))); a['reg'] = int(f(r, 'launch__registers_per_thread'))
tot = sum(a['us'] for a in agg.values()) or 1
print(f"prefill of {sys.argv[2]} tokens (+ warm-up and one decode step): {len(rows)} launches, {tot/1e3:.2f} ms summed (serialised)")
print(f"{'kernel':60s} {'n':>4s} {'us':>9s} {'%':>5s} {'MB':>8s} {'dram%':>6s} {'issue%':>6s} {'tc%':>5s} {'grid':>6s} {'reg':>4s}")
for name, a in sorted(agg.items(), key=lambda kv: -kv[1]['us']):
    u = a['us'] or 1
    print(f"{name:60s} {a['n']:4d} {a['us']:9.1f} {100*a['us']/tot:5.1f} {a['mb']:8.1f} {a['dram']/u:6.1f} {a['issue']/u:6.1f} {a['tc']/u:5.1f} {a['grid']:6d} {a['reg']:4d}")
PY
