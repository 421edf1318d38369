#!/bin/bash
# run_batch_spec.sh — one device call: build glmoe with the CUDA backend and time, on the GPU, the
# batched engine (decode steps of 1, 4, 16, 64 sequences in one forward) and speculative decoding
# with the MTP layer (greedy generation one token at a time vs k = 0..4 drafts), on the default
# model and on the GLM-4.5-Air shape cut to 4 layers (synthetic weights made on the GPU); then the
# same with GLMOE_GRAPH_ROWS=1 (verify steps and MTP contexts recorded as graphs), after
# test_speculate on the GPU under it (drafted output identical to one token at a time).
# Output: $OUT/bench_*.txt and .json ($OUT defaults to ./gpu-out).
set -u
. "$(dirname "$0")/paths.sh"
mkdir -p "$OUT"
. "$ROOT/tools/gpu/deps_env.sh"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGLMOE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
    "${CMAKE_EXTRA[@]}" > "$OUT/configure.log" 2>&1 &&
    cmake --build "$BUILD" -j"$(nproc)" --target glmoe_cli test_speculate > "$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
G=$BUILD/glmoe
timeout 150 "$G" bench -m "$ROOT/models/glmoe-demo" --device cuda --lengths 128 --contexts 128 --no-ops --gen 256 \
    --json "$OUT/bench_demo.json" > "$OUT/bench_demo.txt" 2>&1
timeout 300 "$G" bench --config glm-4.5-air --layers 4 --device cuda --lengths 512 --contexts 128,2048 --no-ops \
    --gen 64 --json "$OUT/bench_air4.json" > "$OUT/bench_air4.txt" 2>&1
cat "$OUT/bench_demo.txt" "$OUT/bench_air4.txt"
GLMOE_GRAPH_ROWS=1 timeout 150 "$BUILD/tests/test_speculate" "$ROOT" cuda > "$OUT/test_speculate_graph_rows.txt" 2>&1
echo "test_speculate cuda, GLMOE_GRAPH_ROWS=1 (rc $?): $(tail -1 "$OUT/test_speculate_graph_rows.txt")"
GLMOE_GRAPH_ROWS=1 timeout 150 "$G" bench -m "$ROOT/models/glmoe-demo" --device cuda --lengths 128 --contexts 128 --no-ops \
    --gen 256 --json "$OUT/bench_demo_graph_rows.json" > "$OUT/bench_demo_graph_rows.txt" 2>&1
GLMOE_GRAPH_ROWS=1 timeout 300 "$G" bench --config glm-4.5-air --layers 4 --device cuda --lengths 512 --contexts 128 --no-ops \
    --gen 64 --json "$OUT/bench_air4_graph_rows.json" > "$OUT/bench_air4_graph_rows.txt" 2>&1
echo "== GLMOE_GRAPH_ROWS=1"; grep -A8 -E "^(verify|drafts)" "$OUT/bench_demo_graph_rows.txt" "$OUT/bench_air4_graph_rows.txt"
