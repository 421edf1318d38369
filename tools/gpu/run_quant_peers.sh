#!/bin/bash
# run_quant_peers.sh — quantized GLM-4.5-Air on one GPU, glmoe beside llama.cpp (issue 15's peers),
# each engine timed on the same weights in the same call:
#   the 4-layer cut: random bf16 weights written once as a Hugging Face checkpoint
#     (tools/gpu/make_synthetic.py); glmoe quantizes it as it loads (MLX affine q4 / q8, group 64);
#     llama.cpp converts it with its own convert_hf_to_gguf.py to a bf16 GGUF and quantizes that with
#     its own llama-quantize to Q4_0 and Q8_0 (its default choices: output.weight at Q6_K);
#   the full 46-layer shape at 4 bits: glmoe from `--config glm-4.5-air --quantize q4` (weights made
#     on the GPU, no file); llama.cpp from the 4-layer Q4_0 GGUF made 46 layers deep by
#     tools/bench/gguf_deepen.py (the 4-layer file's quantized layers repeated: the bytes a token
#     reads are those of a real model of that shape; about 60 GB, written where there is room).
#
#   tools/gpu/run_quant_peers.sh [STEP...]   STEP: build synth llamacpp-prep air4 mlx serve air46
#                                            (default: build synth llamacpp-prep air4)
# Steps:
#   build          glmoe (Release, sm_90) as run_bench.sh builds it; a later call on the same warm
#                  machine may leave it out (the loader is pointed at the unpacked libraries)
#   synth          the 4-layer checkpoint in SDIR (kept when one of that shape is there)
#   llamacpp-prep  the 4-layer GGUFs at Q4_0 and Q8_0 in GGUF_DIR (kept when there)
#   air4           glmoe q4 and q8 on SDIR, llama-bench on Q4_0 and Q8_0: prefill sweep LENGTHS,
#                  decode at CONTEXTS -> glmoe_air4_q4.json, llamacpp_air4_q4_0.json, ...,
#                  tables_air4_q4.md, tables_air4_q8.md (tools/bench/compare.py)
#   mlx            MLX-CUDA (mlx 0.32.4 + mlx-lm, its own 4- and 8-bit group-64 quantization of SDIR,
#                  tools/bench/peer_mlx.py) -> mlx_air4_q4.json, mlx_air4_q8.json: within air4 when both
#                  are named, else alone; needs .peers/mlx (the slimmed wheels in parts, carried over
#                  three calls of the same warm machine: tools/reference/README.md)
#   serve          issue 16's table: `glmoe serve -m SDIR --quantize q4` and llama-server on the
#                  Q4_0 GGUF (continuous batching, SLOTS slots), each driven by
#                  tools/server/serve_bench.py at CONCURRENCY streaming clients (greedy completions of
#                  64 tokens) -> serve_glmoe.json, serve_llamacpp.json, serve_*.txt
#   air46          frees SDIR and the 4-layer Q8_0, deepens Q4_0 to 46 layers, times both engines at
#                  LENGTHS46 and CONTEXTS46 -> glmoe_air46_q4.json, llamacpp_air46_q4_0.json,
#                  tables_air46_q4.md
# llama.cpp comes from the ignored folder .peers/llama.cpp (never committed: BENCHMARKS.md, "Against
# the peers"): its device.sh, sourced, starts llama.cpp's build in the background (once per warm
# machine) and sets LLAMACPP_BIN (llama-bench, llama-quantize, llama-server), LLAMACPP_VERSION,
# LLAMACPP_CONVERT (an array: the command of convert_hf_to_gguf.py) and llamacpp_wait. Without it llama.cpp is
# skipped, visibly. Output in OUT (default ./gpu-out): the JSONs, the tables, a log per step and
# summary.txt; the last lines printed are the summary.
set -u
. "$(dirname "$0")/paths.sh"
SDIR=${SDIR:-/dev/shm/glmoe-air4}
GGUF_DIR=${GGUF_DIR:-/tmp/glmoe-peers/gguf}
LENGTHS=${LENGTHS:-1,2,4,8,16,32,64,128,129,256,512,1024,2048,4096}
CONTEXTS=${CONTEXTS:-128,4096}
LENGTHS46=${LENGTHS46:-1,8,128,512,4096}
CONTEXTS46=${CONTEXTS46:-128,4096,32768}
CONCURRENCY=${CONCURRENCY:-1,4,16,64}
QUANTS=${QUANTS:-4 8} # the air4 and mlx steps' bit widths (q4 / Q4_0, q8 / Q8_0)
# REHEARSAL=1: the same steps on this machine's CPU with the tiny shape (make_synthetic.py --shape
# tiny; "air46" deepens to 6 layers), so that the script's plumbing is checked before device time
# is spent on it; llama.cpp from LLAMACPP_PREBUILT (a folder with llama-bench, llama-quantize,
# llama-server) if set.
if [ "${REHEARSAL:-0}" = 1 ]; then
    DEV=cpu SHAPE=tiny LAYERS46=6 SDIR=${SDIR_REHEARSAL:-/tmp/glmoe-rehearsal/tiny} GGUF_DIR=/tmp/glmoe-rehearsal/gguf
    LENGTHS=1,8,64 CONTEXTS=16,64 LENGTHS46=1,8 CONTEXTS46=16 CONCURRENCY=1,4 GLMOE46=(-m "$SDIR" --quantize q4)
    BUILD=${GLMOE_GPU_BUILD:-$ROOT/build}
else
    DEV=cuda SHAPE=air LAYERS46=46 GLMOE46=(--config glm-4.5-air --quantize q4)
fi
STEPS=${*:-build synth llamacpp-prep air4}
mkdir -p "$OUT" "$GGUF_DIR"
FAILED=0
START=$(date +%s)
say() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$OUT/summary.txt"; }
has() { [[ " $STEPS " == *" $1 "* ]]; }
fail() { say "$1: FAILED ($(tail -2 "$2" 2>/dev/null | tr '\n' ' ' | cut -c1-300))"; FAILED=1; }

say "machine: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1); $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' | head -1); glmoe ${GLMOE_COMMIT:-$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)}"
P=$ROOT/.peers/llama.cpp/device.sh
LLAMACPP=0
if [ -f "$P" ]; then
    # sourced first: it starts llama.cpp's build in the background, beside glmoe's
    . "$P" > "$OUT/llamacpp_setup.log" 2>&1 && LLAMACPP=1 || fail "llama.cpp setup" "$OUT/llamacpp_setup.log"
    [ $LLAMACPP = 1 ] && say "llama.cpp: $LLAMACPP_VERSION"
else
    say "llama.cpp: SKIPPED (no .peers/llama.cpp/device.sh: the ignored folder that holds it is absent)"
fi
if has build; then
    . "$ROOT/tools/gpu/deps_env.sh"
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DGLMOE_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
        "${CMAKE_EXTRA[@]}" > "$OUT/build.log" 2>&1 && cmake --build "$BUILD" -j"$(nproc)" --target glmoe_cli >> "$OUT/build.log" 2>&1 ||
        { fail build "$OUT/build.log"; exit 1; }
    say "build: ok"
else
    L=$PREFIX/usr/lib/x86_64-linux-gnu
    export LD_LIBRARY_PATH=$L:$L/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
G=$BUILD/glmoe
[ -x "$G" ] || { say "no glmoe at $G: run the build step first"; exit 1; }

Q4=$GGUF_DIR/air4.q4_0.gguf Q8=$GGUF_DIR/air4.q8_0.gguf Q46=

if has synth; then
    if [ -f "$SDIR/config.json" ] && grep -q '"num_hidden_layers": 4' "$SDIR/config.json"; then
        say "synth: $SDIR exists"
    elif timeout 300 python3 "$ROOT/tools/gpu/make_synthetic.py" "$SDIR" --shape $SHAPE --layers 4 > "$OUT/synth.log" 2>&1; then
        say "synth: $SDIR written ($(du -sh "$SDIR" | cut -f1))"
    else
        fail synth "$OUT/synth.log"; exit 1
    fi
fi

llamacpp_ready() { # llama.cpp built (waits for the background build once)
    [ $LLAMACPP = 1 ] || return 1
    llamacpp_wait >> "$OUT/llamacpp_setup.log" 2>&1 && return 0
    fail "llama.cpp build" "$OUT/llamacpp_setup.log"
    LLAMACPP=0
    return 1
}

if has llamacpp-prep && llamacpp_ready; then
    if [ -f "$Q4" ] && [ -f "$Q8" ]; then
        say "llamacpp-prep: $Q4 and $Q8 exist"
    else
        t=$(date +%s) BF=$GGUF_DIR/air4.bf16.gguf
        if timeout 400 "${LLAMACPP_CONVERT[@]}" "$SDIR" --outtype bf16 --outfile "$BF" > "$OUT/llamacpp_convert.log" 2>&1 &&
                timeout 200 "$LLAMACPP_BIN/llama-quantize" "$BF" "$Q4" Q4_0 > "$OUT/llamacpp_quantize.log" 2>&1 &&
                timeout 200 "$LLAMACPP_BIN/llama-quantize" "$BF" "$Q8" Q8_0 >> "$OUT/llamacpp_quantize.log" 2>&1; then
            say "llamacpp-prep: converted and quantized in $(( $(date +%s) - t )) s ($(du -h "$Q4" | cut -f1) Q4_0, $(du -h "$Q8" | cut -f1) Q8_0)"
        else
            fail llamacpp-prep "$OUT/llamacpp_quantize.log"; tail -3 "$OUT/llamacpp_convert.log"
        fi
        rm -f "$BF"
    fi
fi

glmoe_bench() { # name, timeout, bench arguments...
    local name=$1 t=$2
    shift 2
    if timeout "$t" "$G" bench "$@" --device $DEV --no-ops --json "$OUT/glmoe_$name.json" > "$OUT/glmoe_$name.txt" 2>&1; then
        say "glmoe $name: $(grep -A1 '^decode' "$OUT/glmoe_$name.txt" | tail -1 | awk '{printf "decode %s ms/token at context %s", $2, $1}')"
    else
        fail "glmoe $name" "$OUT/glmoe_$name.txt"
    fi
}
llamacpp_bench() { # name, gguf, lengths, depths
    llamacpp_ready && [ -f "$2" ] || { say "llama.cpp $1: SKIPPED (no llama.cpp or no $2)"; return; }
    if python3 "$ROOT/tools/bench/peer_llamacpp.py" --bench "$LLAMACPP_BIN/llama-bench" --gguf "$2" --name "$1" \
            --lengths "$3" --depths "$4" --version "$LLAMACPP_VERSION" --out "$OUT/llamacpp_$1.json" > "$OUT/llamacpp_$1.txt" 2>&1; then
        say "llama.cpp $1: $(grep -m1 '^decode' "$OUT/llamacpp_$1.txt")"
    else
        fail "llama.cpp $1" "$OUT/llamacpp_$1.txt"
    fi
}
mlx_bench() { # name, bits (in a subshell: mlx_site.sh's library path must not reach glmoe)
    [ -f "$ROOT/.peers/mlx/MANIFEST.json" ] || { say "mlx $1: SKIPPED (no .peers/mlx: the slimmed MLX-CUDA wheels, tools/reference/README.md)"; return; }
    if ( . "$ROOT/tools/gpu/mlx_site.sh" && timeout 400 python3 "$ROOT/tools/bench/peer_mlx.py" "$SDIR" --bits "$2" \
            --name air4 --lengths "$LENGTHS" --contexts "$CONTEXTS" --out "$OUT/mlx_$1.json" ) > "$OUT/mlx_$1.txt" 2>&1; then
        say "mlx $1: $(grep -m1 '^decode' "$OUT/mlx_$1.txt")"
    else
        fail "mlx $1" "$OUT/mlx_$1.txt"
    fi
}
tables() { # name, glmoe json, peer jsons (those that exist)...
    local name=$1 files=("$2") f
    shift 2
    for f in "$@"; do [ -f "$f" ] && files+=("$f"); done
    python3 "$ROOT/tools/bench/compare.py" "${files[@]}" --md "$OUT/tables_$name.md" --svg "$OUT/prefill_$name.svg" \
        > "$OUT/compare_$name.log" 2>&1 && say "tables_$name.md written" || fail "compare $name" "$OUT/compare_$name.log"
}

if has air4; then
    for q in $QUANTS; do
        glmoe_bench air4_q$q 300 -m "$SDIR" --quantize q$q --lengths "$LENGTHS" --contexts "$CONTEXTS"
        llamacpp_bench air4_q${q}_0 "$GGUF_DIR/air4.q${q}_0.gguf" "$LENGTHS" "$CONTEXTS"
        has mlx && mlx_bench air4_q$q $q
        tables air4_q$q "$OUT/glmoe_air4_q$q.json" "$OUT/llamacpp_air4_q${q}_0.json" "$OUT/mlx_air4_q$q.json"
    done
elif has mlx; then # MLX alone, in a call of its own (the glmoe and llama.cpp JSONs of an earlier call kept)
    for q in $QUANTS; do
        mlx_bench air4_q$q $q
        tables air4_q$q "$OUT/glmoe_air4_q$q.json" "$OUT/llamacpp_air4_q${q}_0.json" "$OUT/mlx_air4_q$q.json"
    done
fi

if has serve; then
    SLOTS=${CONCURRENCY##*,}
    SB=(python3 "$ROOT/tools/server/serve_bench.py" --concurrency "$CONCURRENCY" --requests 4 --max-tokens 64)
    if timeout 400 "${SB[@]}" --glmoe "$G" -m "$SDIR" --server-args "--device $DEV --quantize q4 -c 512" \
            --json "$OUT/serve_glmoe.json" > "$OUT/serve_glmoe.txt" 2>&1; then
        say "serve glmoe: $(grep -E '^\| *[0-9]' "$OUT/serve_glmoe.txt" | awk -F'|' '{printf "%s clients %s tok/s; ", $2, $5}')"
    else
        fail "serve glmoe" "$OUT/serve_glmoe.txt"
    fi
    if llamacpp_ready && [ -f "$Q4" ]; then
        "$LLAMACPP_BIN/llama-server" -m "$Q4" -ngl 99 -fa on -np "$SLOTS" -c $(( SLOTS * 512 )) --host 127.0.0.1 \
            --port 8091 > "$OUT/llama_server.log" 2>&1 &
        LS=$!
        for _ in $(seq 120); do curl -sf http://127.0.0.1:8091/health > /dev/null 2>&1 && break; sleep 1; done
        if timeout 400 "${SB[@]}" --url http://127.0.0.1:8091 --json "$OUT/serve_llamacpp.json" > "$OUT/serve_llamacpp.txt" 2>&1; then
            say "serve llama-server: $(grep -E '^\| *[0-9]' "$OUT/serve_llamacpp.txt" | awk -F'|' '{printf "%s clients %s tok/s; ", $2, $5}')"
        else
            fail "serve llama-server" "$OUT/serve_llamacpp.txt"
        fi
        kill $LS 2> /dev/null; wait $LS 2> /dev/null
    fi
fi

if has air46; then
    Q46=
    if llamacpp_ready && [ -f "$Q4" ]; then
        [ "${REHEARSAL:-0}" = 1 ] || rm -rf "$SDIR" "$Q8" # room for 60 GB
        best=$(df --output=avail,target -B1 /dev/shm "$GGUF_DIR" | tail -n +2 | sort -n | tail -1 | awk '{print $2}')
        [ "$best" = /dev/shm ] && Q46=/dev/shm/air$LAYERS46.q4_0.gguf || Q46=$GGUF_DIR/air$LAYERS46.q4_0.gguf
        t=$(date +%s)
        if [ -f "$Q46" ] || timeout 300 python3 "$ROOT/tools/bench/gguf_deepen.py" "$Q4" "$Q46" --layers $LAYERS46 > "$OUT/deepen.log" 2>&1; then
            say "air46: $Q46 ($(du -h "$Q46" | cut -f1)) in $(( $(date +%s) - t )) s"
        else
            fail "gguf_deepen" "$OUT/deepen.log"; rm -f "$Q46"; Q46=
        fi
    fi
    glmoe_bench air46_q4 400 "${GLMOE46[@]}" --lengths "$LENGTHS46" --contexts "$CONTEXTS46" --steps 16
    [ -n "$Q46" ] && llamacpp_bench air46_q4_0 "$Q46" "$LENGTHS46" "$CONTEXTS46"
    tables air46_q4 "$OUT/glmoe_air46_q4.json" "$OUT/llamacpp_air46_q4_0.json"
fi
say "done"
exit $FAILED
