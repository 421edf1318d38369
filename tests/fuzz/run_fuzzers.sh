#!/usr/bin/env bash
# run_fuzzers.sh — runs every libFuzzer target of a fuzz build for a bounded time, two at a time
# (CI has 2 cores), and fails if any of them finds a crash, a leak, a timeout, an allocation over
# the limit or a broken promise.
#
#   tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS [TARGET...]
#
# BUILD_DIR is a build made with cmake/fuzz.cmake (`make fuzz` makes build-fuzz/ and calls this).
# SECONDS is each target's time (-max_total_time); FUZZ_JOBS overrides the 2 parallel runs. Each
# target starts from a scratch copy of tests/fuzz/corpus/<name>/ (new inputs never land in the
# repository) with tests/fuzz/dict/<name>.dict when present. Crashing inputs are kept in
# BUILD_DIR/fuzz-out/<name>/ (crash-*, leak-*, timeout-*, oom-*), with the log next to them.
# Replay one: BUILD_DIR/fuzz_<name> BUILD_DIR/fuzz-out/<name>/crash-...
# A found input becomes a regression test in tests/unit/test_regressions.c.
#
# The limits, per input: 10 s (no parser may take longer on an input this small), 2 GiB of RSS,
# and no single allocation over 1 GiB (the loaders must never allocate what a file merely
# declares).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
seconds=$2
shift 2
src=$(cd "$(dirname "$0")" && pwd)
jobs=${FUZZ_JOBS:-2}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for f in "$src"/fuzz_*.c; do
        n=$(basename "$f" .c)
        targets+=("${n#fuzz_}")
    done
fi

# Per-target options: the longest input worth trying (real files are larger than the default
# 4096), and stderr closed for the CLI parser, which prints one line per refused input.
opts_for() {
    case "$1" in
        safetensors) echo "-max_len=8192" ;;
        safetensors_index) echo "-max_len=32768" ;;
        tokenizer_load) echo "-max_len=32768" ;;
        tokenizer_encode) echo "-max_len=4096" ;;
        chat) echo "-max_len=8192" ;;
        chat_stream) echo "-max_len=4096" ;;   # streamed ~5 ways, one of them a byte at a time
        cli_ids) echo "-max_len=256 -close_fd_mask=2" ;;
        server_request) echo "-max_len=8192" ;;
        *) echo "-max_len=4096" ;;
    esac
}

run_one() {
    local name=$1 exe="$build/fuzz_$1" out="$build/fuzz-out/$1"
    rm -rf "$out"
    mkdir -p "$out/corpus"
    [ -d "$src/corpus/$name" ] && cp "$src/corpus/$name"/* "$out/corpus/"
    local dict=()
    [ -f "$src/dict/$name.dict" ] && dict=("-dict=$src/dict/$name.dict")
    # shellcheck disable=SC2046
    if "$exe" "$out/corpus" "${dict[@]}" $(opts_for "$name") -max_total_time="$seconds" \
        -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -use_value_profile=1 \
        -print_final_stats=1 -artifact_prefix="$out/" >"$out/log" 2>&1; then
        echo "ok" >"$out/status"
    else
        echo "FAILED" >"$out/status"
    fi
}

if [ ! -x "$build/fuzz_${targets[0]}" ]; then
    echo "run_fuzzers: $build/fuzz_${targets[0]} is missing: build with \`make fuzz\`" >&2
    exit 2
fi

start=$(date +%s)
running=0
for t in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    run_one "$t" &
    running=$((running + 1))
done
wait || true

failed=0
printf '%-20s %-7s %14s %10s %9s\n' target result executions exec/s "corpus"
for t in "${targets[@]}"; do
    out="$build/fuzz-out/$t"
    status=$(cat "$out/status" 2>/dev/null || echo "FAILED")
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/log" | tail -1)
    units=$(find "$out/corpus" -type f | wc -l)
    printf '%-20s %-7s %14s %10s %9s\n' "$t" "$status" "${execs:-?}" "${rate:-?}" "$units"
    if [ "$status" != ok ]; then
        failed=1
        echo "---- fuzz_$t: last lines of $out/log" >&2
        tail -n 40 "$out/log" >&2
        ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null >&2 || true
    fi
done
echo "run_fuzzers: ${#targets[@]} targets, ${seconds}s each, $(($(date +%s) - start))s in all"
exit "$failed"
