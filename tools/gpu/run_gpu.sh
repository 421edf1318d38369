#!/bin/bash
# run_gpu.sh — builds glmoe with the CUDA backend on a GPU machine, checks it and times it, in one
# go (one device call), and prints a short table last.
#
#   tools/gpu/run_gpu.sh [--no-synthetic] [--profile]
#
# Logs are written to $GLMOE_GPU_LOGS (default /tmp/glmoe-gpu-logs) and packed at the end into
# $OUT/gpu-logs.tgz, next to $OUT/table.txt ($OUT defaults to ./gpu-out). Steps:
#   1. dependencies: every .deb in $GLMOE_GPU_DEPS (default ./.gpu-deps: the -dev packages of
#      jansson, OpenBLAS, oniguruma, utf8proc, zlib, their runtime libraries and pkgconf, fetched
#      with `apt-get download`) is unpacked with dpkg -x into a private prefix, and pkg-config, the
#      linker and the loader are pointed there; nothing is installed into the system;
#   2. configure and build (Release, sm_90, warnings not fatal: CI enforces them); `glmoe --version`
#      names the GPU and tests/unit/test_cuda_module opens the CUDA module and makes a backend;
#   3. tests/ops/test_ops: every op on the CPU and on the GPU (float32 KV cache) against the
#      float64 reference, attention at lengths 1/127/128/129/4097 causal and masked, and a decode
#      step recorded as a CUDA graph and replayed at 149 positions; on failure it runs again
#      under compute-sanitizer memcheck;
#   4. test_golden --device cuda on every golden case: rel. L2 of the logits <= 1e-2 in one
#      prefill, in uneven chunks and token by token, and identical greedy ids; then a long
#      greedy generation (2100 tokens on glm45_like, the decode graph) whose first 64 ids equal
#      the CPU's and whose per-step logits agree with the same GPU's prefill of those ids and
#      with the CPU's (test_golden --long);
#      and the MLX-quantized golden cases (tests/golden_quant) against MLX's float32 logits, with
#      a float32 KV cache (GLMOE_CUDA_KV=f32; the default bf16 cache's figures reported beside);
#   4b. tests/threads/test_threads on the GPU: two threads x two contexts, logits bit for bit;
#       tests/batch/test_batch (rows of several sequences in one forward equal each alone) and
#       tests/test_speculate (drafts, exactness, acceptance distribution) on the GPU;
#   4c. quantized weights (glmoe quantize of air_like at q4 g64, glm45_like at q3 g32 and q4 g64):
#      GPU logits (float32 KV cache) vs the CPU's (rel. L2 <= 1e-2), greedy ids compared
#      (reported), where the float64 forward's router margin (tools/reference/router_margin.py)
#      leaves room for the GPU's rounding (>= 1e-3); a near tie is reported, not held to the bar;
#   5. bad state: tests/ops/test_cuda_state (out of device memory: a clear error naming bytes
#      needed and free, then the GPU and the CPU still work), and the same with no visible GPU
#      (CUDA_VISIBLE_DEVICES=): a SKIP / a clear error, and --device auto falls back to the CPU;
#   6. timing: glmoe_gpu_bench on each golden case and, unless --no-synthetic, on a
#      GLM-4.5-Air-shaped model cut to 4 layers (tools/gpu/make_synthetic.py, random weights),
#      the decode of glm45_like and of that model both as a graph and op by op
#      (GLMOE_CUDA_GRAPHS=0): ms per token and host µs per step;
#      with --profile, Nsight Compute times the kernels of one decode step of that model
#      (ncu --clock-control none: the card's clocks are left alone) into ncu_decode.csv.
# Exit status: 0 when every check passed.
set -u
. "$(dirname "$0")/paths.sh"
SYNTH=1
PROFILE=0
for a in "$@"; do
    case $a in
    --no-synthetic) SYNTH=0 ;;
    --profile) PROFILE=1 ;;
    *) echo "usage: run_gpu.sh [--no-synthetic] [--profile]" >&2; exit 2 ;;
    esac
done
LOGS=${GLMOE_GPU_LOGS:-/tmp/glmoe-gpu-logs}
mkdir -p "$OUT"
rm -rf "$LOGS" && mkdir -p "$LOGS"
TABLE="$LOGS/table.txt"
: > "$TABLE"
START=$(date +%s)
# Whatever happened, leave the logs and the table in $OUT (a device call returns only $OUT).
pack() { tar czf "$OUT/gpu-logs.tgz" -C "$LOGS" . 2>/dev/null; cp "$TABLE" "$OUT/table.txt" 2>/dev/null; }
trap pack EXIT
FAILED=0
row() { printf '%-30s %s\n' "$1" "$2" >> "$TABLE"; }
fail() { row "$1" "FAIL: $2"; FAILED=1; }
secs() { echo $(( $(date +%s) - $1 )); }

# ---- the machine ---------------------------------------------------------------------------------
CARD=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
NVCC=$(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*, V[0-9.]*' | head -1)
row "machine" "${CARD:-no nvidia-smi}; nvcc ${NVCC:-?}; $(date -u +%Y-%m-%dT%H:%MZ)"
nvidia-smi > "$LOGS/nvidia-smi.txt" 2>&1

# ---- 1. dependencies -------------------------------------------------------------------------------
. "$ROOT/tools/gpu/deps_env.sh"

# ---- 2. build --------------------------------------------------------------------------------------
t=$(date +%s)
if cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGLMOE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
        "${CMAKE_EXTRA[@]}" > "$LOGS/configure.log" 2>&1 &&
   grep -q "CUDA backend ON" "$LOGS/configure.log" &&
   cmake --build "$BUILD" -j"$(nproc)" --target test_ops test_cuda_state test_cuda_module test_golden test_synthetic test_threads test_batch test_speculate glmoe_gpu_bench glmoe_cli \
       > "$LOGS/build.log" 2>&1; then
    row "build" "ok ($(secs $t) s)"
else
    fail "build" "see configure.log / build.log ($(tail -3 "$LOGS/build.log" "$LOGS/configure.log" 2>/dev/null | tr '\n' ' ' | cut -c1-200))"
    cat "$TABLE"
    exit 1
fi

# The CUDA backend is a module (libglmoe-cuda.so) opened once the driver reports a GPU: --version
# names the GPU, and test_cuda_module opens the module from the build tree and makes a backend.
row "glmoe --version" "$("$BUILD/glmoe" --version 2>&1 | grep '^gpu:' | cut -c1-150)"
if timeout 60 "$BUILD/tests/test_cuda_module" "$ROOT" > "$LOGS/cuda_module.log" 2>&1 && grep -q 'made a backend' "$LOGS/cuda_module.log"; then
    row "cuda module" "ok: $(grep -m1 '^module:' "$LOGS/cuda_module.log" | cut -c9-150)"
else
    fail "cuda module" "$(grep -m1 -E '^(FAIL|the module without)' "$LOGS/cuda_module.log" | cut -c1-200)"
fi

# ---- 3. op tests -----------------------------------------------------------------------------------
t=$(date +%s)
timeout 120 "$BUILD/tests/ops/test_ops" > "$LOGS/test_ops.log" 2>&1
rc=$?
if [ $rc = 0 ]; then
    row "test_ops (cpu + cuda)" "ok ($(secs $t) s): $(tail -1 "$LOGS/test_ops.log")"
else
    fail "test_ops (cpu + cuda)" "rc $rc, $(grep -c FAIL "$LOGS/test_ops.log") failures; first: $(grep -m1 FAIL "$LOGS/test_ops.log" | cut -c1-160)"
    # Out-of-bounds accesses and races show up here (not after a hang: that would take too long).
    [ $rc != 124 ] && command -v compute-sanitizer > /dev/null &&
        timeout 120 compute-sanitizer --tool memcheck --print-limit 20 "$BUILD/tests/ops/test_ops" > "$LOGS/test_ops_memcheck.log" 2>&1
fi
grep '^  \[cuda' "$LOGS/test_ops.log" | sed 's/^  //' | while read -r l; do row "  op" "$l"; done
if grep -q '^SKIP' "$LOGS/test_ops.log"; then # a GPU is expected here
    fail "  op" "$(grep -m1 '^SKIP' "$LOGS/test_ops.log")"
fi

t=$(date +%s)
if timeout 120 "$BUILD/tests/test_synthetic" > "$LOGS/test_synthetic.log" 2>&1 && ! grep -q '^SKIP' "$LOGS/test_synthetic.log"; then
    row "synthetic weights" "ok ($(secs $t) s): $(grep -m1 '^cuda:' "$LOGS/test_synthetic.log" | cut -c7-)"
else
    fail "synthetic weights" "$(grep -m1 -E '^(FAIL|SKIP)' "$LOGS/test_synthetic.log" | cut -c1-200)"
fi

# ---- 4. golden cases on the GPU --------------------------------------------------------------------
: > "$LOGS/golden_cuda.log"
for ref in "$ROOT"/tests/golden/*/reference.json; do
    dir=$(dirname "$ref")
    name=$(basename "$dir")
    log="$LOGS/golden_cuda_$name.log"
    if timeout 60 "$BUILD/tests/golden/test_golden" "$dir" --device cuda > "$log" 2>&1; then status=ok; else status=FAIL; FAILED=1; fi
    # This script runs where a GPU is expected: a skip is a failure here.
    if grep -q '^SKIP' "$log"; then status=SKIP; FAILED=1; fi
    cat "$log" >> "$LOGS/golden_cuda.log"
    l2=$(grep -o 'rel L2 = [0-9.e+-]*' "$log" | awk '{print $4}' | paste -sd/ -)
    greedy=$(grep -o 'greedy continuation of [0-9]* tokens: [A-Za-z]*' "$log" | awk '{print $6" ("$4" tokens)"}')
    skip=$(grep -m1 '^SKIP' "$log")
    row "golden $name" "$status: rel L2 ${l2:-?} (prefill/chunks/1-by-1); greedy ${greedy:-?} ${skip}"
done
for ref in "$ROOT"/tests/golden_quant/*/*/reference.json; do
    dir=$(dirname "$ref")
    name=$(basename "$(dirname "$dir")")_$(basename "$dir")
    # The bar: MLX's float32 forward, so the KV cache is float32 here. With the default bf16 cache
    # the same case is reported beside it: its rounding (~4e-3 per element) flips near-tie expert
    # choices of glm45_like (2026-12-07: rel L2 0.06 on glm45_like bf16, 7e-6 with float32).
    log="$LOGS/golden_quant_cuda_$name.log"
    if GLMOE_CUDA_KV=f32 timeout 60 "$BUILD/tests/golden/test_golden" "$dir" --device cuda > "$log" 2>&1 && ! grep -q '^SKIP' "$log"; then status=ok; else status=FAIL; FAILED=1; fi
    l2=$(grep -o 'rel L2 = [0-9.e+-]*' "$log" | awk '{print $4}' | paste -sd/ -)
    greedy=$(grep -o 'greedy continuation of [0-9]* tokens: [A-Za-z]*' "$log" | awk '{print $6}')
    timeout 60 "$BUILD/tests/golden/test_golden" "$dir" --device cuda > "$log.bf16kv" 2>&1
    l2b=$(grep -o 'rel L2 = [0-9.e+-]*' "$log.bf16kv" | awk '{print $4}' | paste -sd/ -)
    greedyb=$(grep -o 'greedy continuation of [0-9]* tokens: [A-Za-z]*' "$log.bf16kv" | awk '{print $6}')
    row "golden MLX $name" "$status: rel L2 ${l2:-?} vs MLX; greedy ${greedy:-?} (KV f32); bf16 KV: ${l2b:-?}, ${greedyb:-?}"
done
log="$LOGS/golden_cuda_long.log"
if timeout 120 "$BUILD/tests/golden/test_golden" "$ROOT/tests/golden/glm45_like" --device cuda --long 2100 > "$log" 2>&1 &&
   ! grep -q '^SKIP' "$log"; then status=ok; else status=FAIL; FAILED=1; fi
steps() { grep "$1" "$log" | grep -o 'median [0-9.e+-]*, max [0-9.e+-]* at step [0-9]*, [0-9]* of [0-9]* steps above [0-9.e+-]*'; }
row "long greedy (glm45_like)" "$status: $(grep -o 'generation of [0-9]* tokens.*' "$log" | cut -c15-80); graphs recorded $(grep -c 'recorded as a graph' "$log"); first 64 ids vs CPU $(grep -o "CPU's: [A-Za-z]* ([0-9]* equal)" "$log" | cut -d' ' -f2-) $(grep -m1 -E '^(SKIP|FAIL)' "$log" | cut -c1-120)"
row "  steps vs own prefill" "$(steps 'same device')"
row "  steps vs CPU" "$(steps 'CPU fed')"

# ---- 4b. threads: two threads x two contexts on the GPU give the one-thread logits bit for bit ----------
t=$(date +%s)
if timeout 300 "$BUILD/tests/threads/test_threads" "$ROOT" cuda > "$LOGS/threads_cuda.log" 2>&1 &&
   ! grep -q '^SKIP' "$LOGS/threads_cuda.log"; then
    row "threads (cuda)" "ok ($(secs $t) s): $(grep -m1 'contexts made' "$LOGS/threads_cuda.log")"
else
    fail "threads (cuda)" "$(grep -m1 -E '^(FAIL|SKIP)' "$LOGS/threads_cuda.log" | cut -c1-200)"
fi

# ---- 4b'. several sequences in one forward, and speculative decoding with the MTP layer, on the GPU ---
t=$(date +%s)
if timeout 300 "$BUILD/tests/batch/test_batch" "$ROOT" cuda > "$LOGS/batch_cuda.log" 2>&1 &&
   ! grep -q '^SKIP' "$LOGS/batch_cuda.log"; then
    row "batch (cuda)" "ok ($(secs $t) s): $(tail -1 "$LOGS/batch_cuda.log" | cut -c1-120)"
else
    fail "batch (cuda)" "$(grep -m1 -E '^(FAIL|SKIP)' "$LOGS/batch_cuda.log" | cut -c1-200)"
fi
t=$(date +%s)
if timeout 300 "$BUILD/tests/test_speculate" "$ROOT" cuda > "$LOGS/speculate_cuda.log" 2>&1 &&
   ! grep -q '^SKIP: no CUDA' "$LOGS/speculate_cuda.log"; then
    row "speculate (cuda)" "ok ($(secs $t) s): $(tail -1 "$LOGS/speculate_cuda.log" | cut -c1-120)"
else
    fail "speculate (cuda)" "$(grep -m1 -E '^(FAIL|SKIP)' "$LOGS/speculate_cuda.log" | cut -c1-200)"
fi

# ---- 4c. quantized weights: glmoe quantize of two golden models, logits on the GPU vs the CPU ----
# The bar holds where no expert choice is nearly tied: the float64 forward's least router margin
# (tools/reference/router_margin.py) must exceed what the GPU's fp16 tensor cores move a router
# score by (~1e-4). glm45_like at q4 g64 has a margin of 6.8e-6 on its teacher ids (2026-12-07;
# its CPU logits are within 7.5e-7 of the float64 forward), so its GPU logits differ by an expert
# choice (3.7e-2): reported as a near tie.
for q in "air_like 4 64" "glm45_like 3 32" "glm45_like 4 64"; do
    set -- $q
    qdir=/tmp/glmoe-$1-q$2g$3
    rm -rf "$qdir"
    ids=$(python3 -c 'import json,sys; print(",".join(map(str, json.load(open(sys.argv[1]))["teacher_ids"])))' "$ROOT/tests/golden/$1/reference.json")
    qlog="$LOGS/quant_$1_q$2.log"
    if "$BUILD/glmoe" quantize -m "$ROOT/tests/golden/$1" -o "$qdir" --bits $2 --group $3 > "$qlog" 2>&1 &&
       "$BUILD/glmoe" logits -m "$qdir" --device cpu --ids "$ids" -o /tmp/q_cpu.f32 >> "$qlog" 2>&1 &&
       GLMOE_CUDA_KV=f32 "$BUILD/glmoe" logits -m "$qdir" --device cuda --ids "$ids" -o /tmp/q_gpu.f32 >> "$qlog" 2>&1 &&
       "$BUILD/glmoe" generate -m "$qdir" --device cuda --ids "$ids" -n 24 --print-ids > /tmp/q_gpu.ids 2>> "$qlog" &&
       "$BUILD/glmoe" generate -m "$qdir" --device cpu --ids "$ids" -n 24 --print-ids > /tmp/q_cpu.ids 2>> "$qlog"; then
        r=$(python3 -c 'import numpy as np; a=np.fromfile("/tmp/q_gpu.f32",np.float32); b=np.fromfile("/tmp/q_cpu.f32",np.float32); print("%.2e" % (np.linalg.norm(a-b)/np.linalg.norm(b)))')
        margin=$(python3 "$ROOT/tools/reference/router_margin.py" "$qdir" --ids "$ids" 2>> "$qlog" | awk '/^margin/ {print $2}')
        same=$(cmp -s /tmp/q_gpu.ids /tmp/q_cpu.ids && echo identical || echo DIFFERENT)
        # (greedy ids are reported, not required: the bf16 KV cache may flip a near tie here)
        if python3 -c "import sys; sys.exit(not (float('$r') <= 1e-2))"; then
            row "quantized $1 q$2 g$3 (cuda)" "ok: logits vs CPU rel L2 $r; router margin $margin; greedy 24 tokens $same"
        elif python3 -c "import sys; sys.exit(not (float('${margin:-1}') < 1e-3))"; then
            row "quantized $1 q$2 g$3 (cuda)" "near tie (router margin $margin): logits vs CPU rel L2 $r, not held to 1e-2; greedy 24 tokens $same"
        else
            fail "quantized $1 q$2 g$3 (cuda)" "logits vs CPU rel L2 $r; router margin ${margin:-unknown}; greedy $same"
        fi
    else
        fail "quantized $1 q$2 g$3 (cuda)" "$(tail -1 "$qlog" | cut -c1-200)"
    fi
done

# ---- 5. bad state: out of memory, no GPU ------------------------------------------------------------
if timeout 120 "$BUILD/tests/ops/test_cuda_state" "$ROOT" > "$LOGS/cuda_state.log" 2>&1 && ! grep -q '^SKIP' "$LOGS/cuda_state.log"; then
    row "out of memory" "ok: $(grep -m1 'out of memory: context:' "$LOGS/cuda_state.log" | cut -d: -f3- | cut -c1-150)"
    row "  then" "$(grep -m1 'afterwards the GPU' "$LOGS/cuda_state.log" | cut -d: -f2- | cut -c1-60); $(grep -m1 '^cpu afterwards' "$LOGS/cuda_state.log")"
else
    fail "out of memory" "$(grep -m1 -E '^(FAIL|SKIP)' "$LOGS/cuda_state.log" | cut -c1-200)"
fi
if CUDA_VISIBLE_DEVICES= timeout 60 "$BUILD/tests/ops/test_cuda_state" "$ROOT" > "$LOGS/cuda_state_nogpu.log" 2>&1 &&
   grep -q '^SKIP: no CUDA device' "$LOGS/cuda_state_nogpu.log"; then
    row "no GPU: test_cuda_state" "ok: $(grep -m1 'no GPU: --device cuda' "$LOGS/cuda_state_nogpu.log" | cut -c1-110); $(grep -m1 '^--device auto' "$LOGS/cuda_state_nogpu.log")"
else
    fail "no GPU: test_cuda_state" "$(grep -m1 -E '^(FAIL|test_cuda_state)' "$LOGS/cuda_state_nogpu.log" | cut -c1-200)"
fi
first_case=$(dirname "$(ls "$ROOT"/tests/golden/*/reference.json | head -1)")
if CUDA_VISIBLE_DEVICES= timeout 30 "$BUILD/tests/golden/test_golden" "$first_case" --device cuda > "$LOGS/nogpu.log" 2>&1 &&
   grep -q '^SKIP: no CUDA device' "$LOGS/nogpu.log"; then
    row "no GPU: --device cuda" "ok: $(grep -m1 SKIP "$LOGS/nogpu.log" | cut -c1-120)"
else
    fail "no GPU: --device cuda" "$(tail -1 "$LOGS/nogpu.log")"
fi
if CUDA_VISIBLE_DEVICES= timeout 60 "$BUILD/glmoe_gpu_bench" "$first_case" --device auto --prompt 8 --gen 4 --reps 1 \
        > "$LOGS/nogpu_auto.log" 2>&1 && grep -q 'backend=cpu' "$LOGS/nogpu_auto.log"; then
    row "no GPU: --device auto" "ok: fell back to the CPU"
else
    fail "no GPU: --device auto" "$(tail -1 "$LOGS/nogpu_auto.log")"
fi

# ---- 6. timing -------------------------------------------------------------------------------------
# The card's copy bandwidth (bytes read + written), the ceiling for decode.
BW=$(timeout 60 python3 -c '
import torch
x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
s.record()
for _ in range(20): y.copy_(x)
e.record(); torch.cuda.synchronize()
print("%.0f" % (2 * 20 * x.numel() / (s.elapsed_time(e) * 1e-3) / 1e9))' 2>/dev/null)
row "copy bandwidth" "${BW:-?} GB/s (device-to-device, read + write, torch)"
: > "$LOGS/bench.log"
bench() { # name dir args... (GRAPHS=0 in the environment: decode op by op)
    local name=$1 dir=$2
    shift 2
    if GLMOE_CUDA_GRAPHS=${GRAPHS:-1} timeout 150 "$BUILD/glmoe_gpu_bench" "$dir" --device cuda "$@" \
            > "$LOGS/bench_$name.log" 2>&1; then
        local l
        l=$(grep '^bench ' "$LOGS/bench_$name.log")
        echo "$l" >> "$LOGS/bench.log"
        row "bench $name" "$(echo "$l" | tr ' ' '\n' | grep -E '^(prompt|prefill_tok_s|gen|decode_ms_tok|host_us_step|graph_replays|load_s)=' | paste -sd' ' -)"
    else
        fail "bench $name" "$(tail -1 "$LOGS/bench_$name.log")"
    fi
}
for ref in "$ROOT"/tests/golden/*/reference.json; do
    dir=$(dirname "$ref")
    bench "$(basename "$dir")" "$dir" --prompt 128 --gen 128
done
GRAPHS=0 bench glm45_like-nograph "$ROOT/tests/golden/glm45_like" --prompt 128 --gen 128
if [ $SYNTH = 1 ] && [ $(secs $START) -gt 330 ]; then
    row "synthetic air x4" "skipped: $(secs $START) s spent already"
elif [ $SYNTH = 1 ]; then
    SDIR=/dev/shm/glmoe-air4
    [ -d /dev/shm ] && [ "$(df -k --output=avail /dev/shm 2>/dev/null | tail -1)" -gt 20000000 ] 2>/dev/null || SDIR=/tmp/glmoe-air4
    t=$(date +%s)
    if timeout 150 python3 "$ROOT/tools/gpu/make_synthetic.py" "$SDIR" --shape air --layers 4 > "$LOGS/synthetic.log" 2>&1; then
        row "synthetic air x4" "written in $(secs $t) s ($(du -sh "$SDIR" | cut -f1))"
        bench air4 "$SDIR" --prompt 512 --gen 128 --reps 3
        GRAPHS=0 bench air4-nograph "$SDIR" --prompt 512 --gen 128 --reps 3
        if [ $PROFILE = 1 ] && command -v ncu > /dev/null; then
            # Skip the warm-up and the prefills (about 500 of these launches), then one decode step (72).
            timeout 150 ncu --clock-control none -k 'regex:gemv|expert|attn|route|rmsnorm|rope|kv_store|embed|swiglu|add' \
                --launch-skip 600 --launch-count 72 --csv \
                --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum \
                "$BUILD/glmoe_gpu_bench" "$SDIR" --device cuda --prompt 512 --gen 16 --reps 3 \
                > "$LOGS/ncu_decode.csv" 2> "$LOGS/ncu_decode.err"
            python3 - "$LOGS/ncu_decode.csv" > "$LOGS/ncu_summary.txt" 2>&1 << 'PY'
import csv, sys, collections
rows = [r for r in csv.reader(open(sys.argv[1])) if len(r) > 10]
h = rows[0]; rows = rows[1:]
ki, mi, vi, ui = h.index("Kernel Name"), h.index("Metric Name"), h.index("Metric Value"), h.index("Metric Unit")
agg = collections.defaultdict(lambda: [0, 0.0, 0.0])  # launches, ns, bytes
for r in rows:
    name = r[ki].split("(")[0].split("<")[0].replace("void ", "")
    v = float(r[vi].replace(",", ""))
    scale = {"ns": 1, "us": 1e3, "usecond": 1e3, "ms": 1e6, "msecond": 1e6, "nsecond": 1,
             "byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}.get(r[ui], 1)
    if r[mi] == "gpu__time_duration.sum":
        agg[name][0] += 1; agg[name][1] += v * scale
    else:
        agg[name][2] += v * scale
tot = sum(a[1] for a in agg.values())
print("kernel launches time_us GB/s share")
for n, (c, t, b) in sorted(agg.items(), key=lambda kv: -kv[1][1]):
    print(f"{n} {c} {t/1e3:.1f} {b/t if t else 0:.0f} {100*t/tot:.0f}%")
print(f"total {sum(a[0] for a in agg.values())} {tot/1e3:.1f}")
PY
            row "ncu decode step (72 launches)" "$(tail -1 "$LOGS/ncu_summary.txt"); top: $(sed -n 2,4p "$LOGS/ncu_summary.txt" | tr '\n' ';')"
        fi
        rm -rf "$SDIR"
    else
        fail "synthetic air x4" "$(tail -1 "$LOGS/synthetic.log")"
    fi
fi

row "total" "$(secs $START) s"
echo
echo "==== glmoe GPU run ===="
cat "$TABLE"
[ $FAILED = 0 ] && echo "ALL OK" || echo "SOME CHECKS FAILED"
exit $FAILED
