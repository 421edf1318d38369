#!/bin/bash
# run_quant_bench.sh — one device call: build glmoe with the CUDA backend and time quantized
# GLM-4.5-Air on the GPU from synthetic weights quantized on the device (no file):
#   the full 46-layer shape at q4 g64 (decode at contexts 128 / 4096 / 32768, prefill 1..4096),
#   the 4-layer cut at q4 and q8 with the per-op table, and the 4-layer cut in bf16 beside them.
#   tools/gpu/run_quant_bench.sh [--quick]     (--quick: the 4-layer runs only)
# Output: $OUT/bench_*.txt and .json ($OUT defaults to ./gpu-out); a summary printed last.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
DEPS=${GLMOE_GPU_DEPS:-$ROOT/.gpu-deps}
BUILD=${GLMOE_GPU_BUILD:-/tmp/glmoe-gpu-build}
PREFIX=/tmp/glmoe-gpu-deps
QUICK=0
[ "${1:-}" = --quick ] && QUICK=1
mkdir -p "$OUT"
if [ ! -x "$BUILD/glmoe" ] || [ "${GLMOE_REBUILD:-1}" = 1 ]; then
    . "$ROOT/tools/gpu/deps_env.sh"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGLMOE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
        "${CMAKE_EXTRA[@]}" > "$OUT/configure.log" 2>&1 &&
        cmake --build "$BUILD" -j"$(nproc)" --target glmoe_cli > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
else
    L=$PREFIX/usr/lib/x86_64-linux-gnu
    export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
G=$BUILD/glmoe
echo "machine: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -1); $(date -u +%Y-%m-%dT%H:%MZ); commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)"
run() { # name, timeout, args...
    local name=$1 t=$2
    shift 2
    timeout "$t" "$G" bench "$@" --json "$OUT/bench_$name.json" > "$OUT/bench_$name.txt" 2>&1
    echo "== $name (rc $?): $*"
    grep -vE '^\s*$' "$OUT/bench_$name.txt" | tail -40
}
run air4_q4 200 --config glm-4.5-air --layers 4 --quantize q4 --device cuda --lengths 1,2,4,8,16,64,128,129,512,4096 --contexts 128,4096 --steps 32
run air4_q8 150 --config glm-4.5-air --layers 4 --quantize q8 --device cuda --lengths 1,8,128,512 --contexts 128 --steps 32 --no-ops
run air4_bf16 150 --config glm-4.5-air --layers 4 --device cuda --lengths 1,8,128,512 --contexts 128 --steps 32 --no-ops
[ $QUICK = 1 ] && exit 0
run air46_q4 400 --config glm-4.5-air --quantize q4 --device cuda --lengths 1,8,128,512,4096 --contexts 128,4096,32768 --steps 16 --no-ops
