#!/bin/bash
# run_mtp_gpu.sh — one device call: train the demo model's MTP layer on the GPU (train_mtp.py) and
# leave in $OUT what glmoe needs (the new shard, the index, config.json) and the log.
#   needs build/train_demo/corpus (prepare_corpus.py) carried along
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/train_mtp.log" 2>&1
python3 "$ROOT/tools/train_demo/train_mtp.py" --out /tmp/demo-mtp "$@" >> "$OUT/train_mtp.log" 2>&1
rc=$?
mkdir -p "$OUT/demo-mtp"
cp /tmp/demo-mtp/config.json /tmp/demo-mtp/model.safetensors.index.json /tmp/demo-mtp/mtp_train_result.json \
   /tmp/demo-mtp/model-0000[3-9]-of-*.safetensors "$OUT/demo-mtp/" 2>/dev/null
grep -v "Loading weights" "$OUT/train_mtp.log" | tail -30
exit $rc
