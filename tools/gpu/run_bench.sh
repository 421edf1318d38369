#!/bin/bash
# run_bench.sh — glmoe against its peers on one GPU, on the identical configuration and weights:
# the GLM-4.5-Air shape cut to a few layers, random bf16 weights written once as a Hugging Face
# checkpoint (tools/gpu/make_synthetic.py) that every engine loads.
#
#   tools/gpu/run_bench.sh [STEP...]      STEP: build synth llamacpp-prep glmoe transformers llamacpp
#                                         compare (default: all of them, in that order)
#
# Environment: OUT (default ./gpu-out) receives everything; LAYERS (default 4); SDIR, where the
# checkpoint goes (default /dev/shm/glmoe-air$LAYERS); GLMOE_GPU_BUILD, DEPS as in run_gpu.sh.
# Steps:
#   build         configure and build glmoe (Release, sm_90) with the dependencies of deps_env.sh
#   synth         write the checkpoint (skipped when SDIR already holds one of the same shape)
#   llamacpp-prep builds llama-bench and converts SDIR to GGUF at the same time (both from
#                 .peers/llama.cpp/device.sh, see llamacpp below), before anything is timed
#   glmoe         `glmoe bench -m SDIR` (prefill sweep, decode at 128/2048/16384, per-op, probes)
#                 -> glmoe.json, glmoe.txt, glmoe_prefill.svg; then the same shape from
#                 `--config glm-4.5-air --layers LAYERS` (weights made on the device, no file),
#                 and GLM-4.5's cut to 6 layers (3 dense, 3 MoE), at two lengths and one
#                 context -> glmoe_config_<name>.txt
#   transformers  tools/bench/peer_transformers.py on SDIR (PyTorch eager, bf16) -> transformers.json
#   llamacpp      .peers/llama.cpp/device.sh, if present: an ignored folder that is never
#                 committed (the issue forbids committing llama.cpp or a recipe that builds it);
#                 it builds llama-bench from a fetched snapshot, converts SDIR to GGUF and writes
#                 llamacpp.json in the same schema. Absent: llama.cpp is skipped, visibly.
#   compare       tools/bench/compare.py -> tables.md (the tables of BENCHMARKS.md), prefill.svg
# Each step's log is OUT/<step>.log; the last lines printed are a summary.
set -u
. "$(dirname "$0")/paths.sh"
LAYERS=${LAYERS:-4}
SDIR=${SDIR:-/dev/shm/glmoe-air$LAYERS}
STEPS=${*:-build synth llamacpp-prep glmoe transformers llamacpp compare}
mkdir -p "$OUT"
FAILED=0
START=$(date +%s)
say() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$OUT/summary.txt"; }
has() { [[ " $STEPS " == *" $1 "* ]]; }

say "machine: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1); $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' | head -1); python $(python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>/dev/null)"

if has build; then
    . "$ROOT/tools/gpu/deps_env.sh"
    if cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGLMOE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
            "${CMAKE_EXTRA[@]}" > "$OUT/build.log" 2>&1 && cmake --build "$BUILD" -j"$(nproc)" --target glmoe_cli >> "$OUT/build.log" 2>&1; then
        say "build: ok"
    else
        say "build: FAILED ($(tail -3 "$OUT/build.log" | tr '\n' ' '))"
        exit 1
    fi
else
    # a later call on the same warm machine: the loader still needs the unpacked libraries
    L=$PREFIX/usr/lib/x86_64-linux-gnu
    export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
GLMOE=$BUILD/glmoe

if has synth; then
    if [ -f "$SDIR/config.json" ] && grep -q "\"num_hidden_layers\": $LAYERS" "$SDIR/config.json"; then
        say "synth: $SDIR exists"
    elif timeout 300 python3 "$ROOT/tools/gpu/make_synthetic.py" "$SDIR" --shape air --layers "$LAYERS" > "$OUT/synth.log" 2>&1; then
        say "synth: $SDIR written ($(du -sh "$SDIR" | cut -f1))"
    else
        say "synth: FAILED ($(tail -1 "$OUT/synth.log"))"
        exit 1
    fi
fi

P=$ROOT/.peers/llama.cpp/device.sh
if has llamacpp-prep && [ -f "$P" ]; then
    t=$(date +%s)
    if bash "$P" build-bg "$SDIR" > "$OUT/llamacpp_build.log" 2>&1 && bash "$P" wait >> "$OUT/llamacpp_build.log" 2>&1; then
        say "llamacpp-prep: built and converted in $(( $(date +%s) - t )) s"
    else
        say "llamacpp-prep: FAILED ($(tail -2 "$OUT/llamacpp_build.log" | tr '\n' ' ' | cut -c1-300))"
        FAILED=1
    fi
fi

if has glmoe; then
    if timeout 400 "$GLMOE" bench -m "$SDIR" --device cuda --json "$OUT/glmoe.json" --svg "$OUT/glmoe_prefill.svg" \
            > "$OUT/glmoe.txt" 2> "$OUT/glmoe.log"; then
        say "glmoe: ok; decode $(grep -A4 '^decode' "$OUT/glmoe.txt" | tail -3 | awk '{printf "%s:%sms(%s%%) ", $1, $2, $5}')"
    else
        say "glmoe: FAILED ($(tail -2 "$OUT/glmoe.log" | tr '\n' ' '))"
        FAILED=1
    fi
    grep '^CLIFF' "$OUT/glmoe.txt" | while read -r l; do say "glmoe: $l"; done
    for cfg in "glm-4.5-air $LAYERS" "glm-4.5 6"; do
        set -- $cfg
        if timeout 200 "$GLMOE" bench --config "$1" --layers "$2" --device cuda --lengths 512,4096 \
                --contexts 2048 --no-ops > "$OUT/glmoe_config_$1.txt" 2>&1; then
            say "glmoe --config $1 --layers $2: ok; $(grep -A2 '^decode' "$OUT/glmoe_config_$1.txt" | tail -1 | awk '{printf "decode %s ms (%s%% of copy BW)", $2, $5}')"
        else
            say "glmoe --config $1: FAILED ($(tail -1 "$OUT/glmoe_config_$1.txt"))"
            FAILED=1
        fi
    done
fi

if has transformers; then
    if timeout 300 python3 "$ROOT/tools/bench/peer_transformers.py" "$SDIR" --device cuda --out "$OUT/transformers.json" \
            --max-seconds ${TF_SECONDS:-200} > "$OUT/transformers.log" 2>&1; then
        say "transformers: ok"
    else
        say "transformers: FAILED ($(tail -2 "$OUT/transformers.log" | tr '\n' ' '))"
        FAILED=1
    fi
fi

if has llamacpp; then
    if [ ! -f "$P" ]; then
        say "llamacpp: SKIPPED (no .peers/llama.cpp/device.sh: the ignored folder that builds it is absent)"
    elif MODEL_NAME=air$LAYERS bash "$P" bench "$SDIR" "$OUT/llamacpp.json" > "$OUT/llamacpp.log" 2>&1; then
        say "llamacpp: ok"
    else
        say "llamacpp: FAILED ($(tail -2 "$OUT/llamacpp.log" 2>/dev/null | tr '\n' ' ' | cut -c1-300))"
        FAILED=1
    fi
fi

if has compare; then
    files=()
    for f in glmoe transformers llamacpp; do [ -f "$OUT/$f.json" ] && files+=("$OUT/$f.json"); done
    if python3 "$ROOT/tools/bench/compare.py" "${files[@]}" --md "$OUT/tables.md" --svg "$OUT/prefill.svg" > "$OUT/compare.log" 2>&1; then
        say "compare: ok -> tables.md, prefill.svg"
    else
        say "compare: FAILED ($(tail -2 "$OUT/compare.log" | tr '\n' ' '))"
        FAILED=1
    fi
fi
say "done"
exit $FAILED
