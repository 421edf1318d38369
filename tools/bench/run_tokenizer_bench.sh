#!/bin/bash
# run_tokenizer_bench.sh — glmoe's tokenizer against Hugging Face tokenizers, same machine, one core.
#
#   tools/bench/run_tokenizer_bench.sh BENCH_BINARY OUT_DIR ENGLISH_TXT CJK_TXT
#
# BENCH_BINARY is tools/bench/bench_tokenizer.c built; OUT_DIR receives the uncompressed
# tokenizer.json files and bench.log. The English text is the State of the Union corpus
# (tools/train_demo/data/sotu/sotu-txt.tar.gz, all files concatenated), the CJK text comes from
# tools/reference/make_cjk_bench_text.py. Both programs are pinned to the same core (taskset) and
# run one after the other; HF gets RAYON_NUM_THREADS=1 (set inside its script).
set -euo pipefail
bin=$1 out=$2 en=$3 cjk=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
core=${BENCH_CORE:-2}
for t in qwen3 deepseek_v3; do
  gzip -dc "$root/tests/data/tokenizers/$t/tokenizer.json.gz" > "$out/$t.json"
done
{
  echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -m) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
  for t in qwen3 deepseek_v3; do
    for chunk in 0 4096; do
      taskset -c "$core" "$bin" --reps 5 --chunk "$chunk" "$out/$t.json" "$en" "$cjk"
      taskset -c "$core" python3 "$root/tools/reference/bench_tokenizer_hf.py" --reps 3 --chunk "$chunk" "$out/$t.json" "$en" "$cjk"
      taskset -c "$core" python3 "$root/tools/reference/bench_tokenizer_hf.py" --reps 3 --chunk "$chunk" --fast "$out/$t.json" "$en" "$cjk"
    done
  done
} 2>&1 | tee "$out/bench.log"
