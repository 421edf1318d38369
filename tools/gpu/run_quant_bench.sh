#!/bin/bash
# run_quant_bench.sh — one device call: build glmoe with the CUDA backend and time quantized
# GLM-4.5-Air on the GPU from synthetic weights quantized on the device (no file):
#   the 4-layer cut at q4 (prefill 1..4096, decode at 128 and 4096, the per-op table), q8 and bf16
#   beside it, and the full 46-layer shape at q4 g64 (decode at contexts 128 / 4096 / 32768,
#   prefill 1..4096).
#   tools/gpu/run_quant_bench.sh [--check] [--compare] [--ncu] [--quick]
#     --check    first the validation table of run_gpu.sh (op tests, golden cases, synthetic
#                weights, out of memory; no timing)
#     --compare  the 4-layer q4 run again with the per-block GEMVs (GLMOE_CUDA_AFF_PERSIST=0), and
#                prefill of 1..16 tokens with the tensor cores from 3 and from 5 tokens
#                (GLMOE_CUDA_AFF_GEMV_TOKENS=2, 4)
#     --ncu      Nsight Compute on the quantized decode kernels of one layer (first launches)
#     --mmv      the 4-layer q4 run again with the float32 GEMV core for 1..8 tokens
#                (GLMOE_CUDA_AFF_MMV=0) instead of the tensor-core one (cuda_quant_mmv.cu)
#     --profile  tools/gpu/profile_decode.sh after the timings (every kernel of a decode step)
#     --ops      (instead of --check) only the op tests and the golden cases on the GPU
#     --no-bf16  no bf16 run beside the quantized ones
#     --variants decode of the 4-layer q4 cut again with the GEMVs' asynchronous ring of 4 and 8
#                steps (GLMOE_CUDA_MMV_ASYNC=4, 8; the full Air too with 4 unless --quick) and with
#                the warp-split decode attention (GLMOE_CUDA_ATTN_WSPLIT=1), with --ops the op
#                tests under each
#     --quick    no 46-layer run
# Output: $OUT/table.txt (with --check), $OUT/quant-logs.tgz (every log), a summary printed last.
set -u
. "$(dirname "$0")/paths.sh"
LOGS=/tmp/glmoe-quant-logs
CHECK=0 COMPARE=0 NCU=0 QUICK=0 MMV=0 PROFILE=0 OPS=0 BF16=1 ATTN=0
for a in "$@"; do
    case $a in
    --check) CHECK=1 ;; --compare) COMPARE=1 ;; --ncu) NCU=1 ;; --quick) QUICK=1 ;; --mmv) MMV=1 ;; --profile) PROFILE=1 ;; --ops) OPS=1 ;; --no-bf16) BF16=0 ;; --variants) ATTN=1 ;;
    *) echo "usage: run_quant_bench.sh [--check] [--compare] [--mmv] [--ncu] [--profile] [--ops] [--no-bf16] [--variants] [--quick]" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT" && rm -rf "$LOGS" && mkdir -p "$LOGS"
trap 'tar czf "$OUT/quant-logs.tgz" -C "$LOGS" . 2>/dev/null' EXIT
trap 'exit 124' TERM
if [ $CHECK = 1 ]; then
    OUT=/tmp/glmoe-run-gpu GLMOE_GPU_LOGS=$LOGS/run_gpu bash "$ROOT/tools/gpu/run_gpu.sh" --no-synthetic > /dev/null 2>&1
    cp /tmp/glmoe-run-gpu/table.txt "$OUT/table.txt" 2>/dev/null
    cat "$OUT/table.txt"
fi
. "$ROOT/tools/gpu/deps_env.sh"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGLMOE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
    "${CMAKE_EXTRA[@]}" > "$LOGS/configure.log" 2>&1 &&
    cmake --build "$BUILD" -j"$(nproc)" --target glmoe_cli > "$LOGS/build.log" 2>&1 || { tail -20 "$LOGS/build.log"; exit 1; }
G=$BUILD/glmoe
if [ $OPS = 1 ]; then
    cmake --build "$BUILD" -j"$(nproc)" --target test_ops test_golden >> "$LOGS/build.log" 2>&1
    timeout 150 "$BUILD/tests/ops/test_ops" > "$LOGS/test_ops.log" 2>&1
    echo "test_ops (rc $?): $(tail -1 "$LOGS/test_ops.log")"; grep -E '^  \[cuda' "$LOGS/test_ops.log"; grep -m5 FAIL "$LOGS/test_ops.log"
    if [ $ATTN = 1 ]; then # the variants' paths checked too
        for r in 4 8; do
            GLMOE_CUDA_MMV_ASYNC=$r timeout 150 "$BUILD/tests/ops/test_ops" > "$LOGS/test_ops_async$r.log" 2>&1
            echo "test_ops, async ring $r (rc $?): $(tail -1 "$LOGS/test_ops_async$r.log")"; grep -m5 FAIL "$LOGS/test_ops_async$r.log"
        done
        GLMOE_CUDA_ATTN_WSPLIT=1 timeout 150 "$BUILD/tests/ops/test_ops" > "$LOGS/test_ops_wsplit.log" 2>&1
        echo "test_ops, warp-split decode attention (rc $?): $(tail -1 "$LOGS/test_ops_wsplit.log")"; grep -m5 FAIL "$LOGS/test_ops_wsplit.log"
    fi
    cmake --build "$BUILD" -j"$(nproc)" --target test_batch >> "$LOGS/build.log" 2>&1
    timeout 90 "$BUILD/tests/batch/test_batch" "$ROOT" cuda > "$LOGS/batch_cuda.log" 2>&1
    echo "test_batch cuda (rc $?): $(tail -1 "$LOGS/batch_cuda.log" | cut -c1-160)"
    if [ $ATTN = 1 ]; then
        GLMOE_CUDA_MMV_ASYNC=4 timeout 90 "$BUILD/tests/batch/test_batch" "$ROOT" cuda > "$LOGS/batch_cuda_async4.log" 2>&1
        echo "test_batch cuda, async ring 4 (rc $?): $(tail -1 "$LOGS/batch_cuda_async4.log" | cut -c1-160)"
    fi
    [ "${GLMOE_BENCH_NO_GOLDEN:-0}" = 1 ] && echo "golden cases: skipped (GLMOE_BENCH_NO_GOLDEN=1)"
    for dir in "$ROOT"/tests/golden/*/ "$ROOT"/tests/golden_quant/*/*/; do
        [ "${GLMOE_BENCH_NO_GOLDEN:-0}" = 1 ] && break
        [ -f "$dir/reference.json" ] || continue
        name=$(echo "$dir" | sed "s|$ROOT/tests/||; s|/$||; s|/|_|g")
        GLMOE_CUDA_KV=f32 timeout 60 "$BUILD/tests/golden/test_golden" "$dir" --device cuda > "$LOGS/golden_$name.log" 2>&1
        echo "golden $name (rc $?): $(grep -oE 'rel L2 = [0-9.e+-]+|greedy.*|[0-9]+ passed, [0-9]+ failed' "$LOGS/golden_$name.log" | tr '\n' ' ' | cut -c1-200)"
    done
fi
echo "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1); $(date -u +%Y-%m-%dT%H:%MZ); ${GLMOE_COMMIT:-}"
run() { # name, timeout, args... (environment through env in front)
    local name=$1 t=$2
    shift 2
    timeout "$t" "$@" --json "$LOGS/bench_$name.json" > "$LOGS/bench_$name.txt" 2>&1
    echo "== $name (rc $?): $*" | sed "s|$G|glmoe|"
    grep -vE '^\s*$' "$LOGS/bench_$name.txt" | grep -v '^  \(add_rmsnorm\|rope\|swiglu\|attn\)' | tail -45
}
A4="--config glm-4.5-air --layers 4 --device cuda"
run air4_q4 200 "$G" bench $A4 --quantize q4 --lengths 1,2,4,8,16,64,128,129,512,4096 --contexts 128,4096 --steps 32
if [ $ATTN = 1 ]; then
    for r in 4 8; do
        run air4_q4_async$r 100 env GLMOE_CUDA_MMV_ASYNC=$r "$G" bench $A4 --quantize q4 --lengths 1,8 --contexts 128 --steps 32
    done
    run air4_q4_wsplit 100 env GLMOE_CUDA_ATTN_WSPLIT=1 "$G" bench $A4 --quantize q4 --lengths 1,8 --contexts 128,4096 --steps 32
fi
if [ $MMV = 1 ]; then
    run air4_q4_f32core 150 env GLMOE_CUDA_AFF_MMV=0 "$G" bench $A4 --quantize q4 --lengths 1,2,4,8,16 --contexts 128 --steps 32
fi
if [ $COMPARE = 1 ]; then
    run air4_q4_perblock 150 env GLMOE_CUDA_AFF_PERSIST=0 "$G" bench $A4 --quantize q4 --lengths 1,512 --contexts 128 --steps 32
    for n in 2 4; do
        run air4_q4_gemv$n 100 env GLMOE_CUDA_AFF_GEMV_TOKENS=$n "$G" bench $A4 --quantize q4 --lengths 1,2,3,4,5,6,8,12,16 --contexts 128 --steps 8 --no-ops
    done
fi
[ $ATTN = 0 ] && run air4_q8 150 "$G" bench $A4 --quantize q8 --lengths 1,8,128,512 --contexts 128 --steps 32 --no-ops
[ $BF16 = 1 ] && run air4_bf16 150 "$G" bench $A4 --lengths 1,8,128,512 --contexts 128 --steps 32 --no-ops
if [ $QUICK = 0 ] && [ $ATTN = 1 ]; then # with the variants: decode and a short prefill only
    run air46_q4 200 "$G" bench --config glm-4.5-air --quantize q4 --device cuda --lengths 1,512 --contexts 128,4096 --steps 16 --no-ops
    run air46_q4_async4 200 env GLMOE_CUDA_MMV_ASYNC=4 "$G" bench --config glm-4.5-air --quantize q4 --device cuda --lengths 1 --contexts 128,4096 --steps 16 --no-ops
elif [ $QUICK = 0 ]; then
    run air46_q4 400 "$G" bench --config glm-4.5-air --quantize q4 --device cuda --lengths 1,8,128,512,4096 --contexts 128,4096,32768 --steps 16 --no-ops
fi
if [ $NCU = 1 ]; then
    timeout 180 ncu --clock-control none --kernel-name regex:"affine_gemv|expert_.*grouped|expert_combine|route_kernel" \
        --launch-count 10 --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
        "$G" bench --config glm-4.5-air --layers 1 --quantize q4 --device cuda --lengths 1 --contexts 128 --steps 1 \
        --no-ops > "$LOGS/ncu.txt" 2>&1
    grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Achieved Occupancy|Registers Per|Grid Size|Waves Per SM|Warp Cycles Per Issued" "$LOGS/ncu.txt" | head -80
fi
if [ $PROFILE = 1 ]; then
    OUT=$LOGS GLMOE_GPU_BUILD=$BUILD bash "$ROOT/tools/gpu/profile_decode.sh" q4 2 > "$LOGS/profile_run.txt" 2>&1
    head -60 "$LOGS/profile.txt"
fi
