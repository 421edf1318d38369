#!/bin/bash
# ncu_quant.sh — one device call: the validation table of run_gpu.sh (no synthetic timing), then
# Nsight Compute on the quantized decode kernels of one GLM-4.5-Air layer at q4 g64 (the first
# launches of each: dense GEMVs, grouped expert GEMVs, the small kernels around them).
# Output: $OUT/table.txt, $OUT/ncu.txt, and a digest printed last.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
B=${GLMOE_GPU_BUILD:-/tmp/glmoe-gpu-build}
DEPS=${GLMOE_GPU_DEPS:-$ROOT/.gpu-deps}
PREFIX=/tmp/glmoe-gpu-deps
mkdir -p "$OUT"
OUT=/tmp/glmoe-run-gpu bash "$ROOT/tools/gpu/run_gpu.sh" --no-synthetic > /dev/null 2>&1
cp /tmp/glmoe-run-gpu/table.txt "$OUT/table.txt"
cat "$OUT/table.txt"
. "$ROOT/tools/gpu/deps_env.sh" > /dev/null 2>&1
cmake --build "$B" -j"$(nproc)" --target glmoe_cli > "$OUT/build.log" 2>&1 || { tail "$OUT/build.log"; exit 1; }
timeout 240 ncu --clock-control none --kernel-name regex:"affine_gemv_fast|expert_.*grouped|moe_combine|route_kernel|attn|rmsnorm|rope" \
    --launch-count 14 --section SpeedOfLight --section Occupancy --section WarpStateStats --section LaunchStats \
    "$B/glmoe" bench --config glm-4.5-air --layers 1 --quantize q4 --device cuda --lengths 1 --contexts 128 --steps 1 \
    --no-ops > "$OUT/ncu.txt" 2>&1
grep -E "^  [a-zA-Z_].*\(|Duration|DRAM Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per|Grid Size|Block Size|Waves Per SM|Compute \(SM\) Throughput|Warp Cycles Per Issued|Stall" "$OUT/ncu.txt" | head -200
# The per-op table with the persistent dense GEMV and without (GLMOE_CUDA_AFF_PERSIST=0).
for p in 1 0; do
    echo "== GLMOE_CUDA_AFF_PERSIST=$p"
    GLMOE_CUDA_AFF_PERSIST=$p timeout 120 "$B/glmoe" bench --config glm-4.5-air --layers 4 --quantize q4 --device cuda \
        --lengths 1,512 --contexts 128 --steps 32 > "$OUT/bench_persist$p.txt" 2>&1
    grep -E "^ +128 |q4 g64|matmul_|moe_experts  T=1" "$OUT/bench_persist$p.txt"
done
