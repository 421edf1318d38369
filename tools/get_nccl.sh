#!/bin/sh
# get_nccl.sh — NCCL's header (and library) from the nvidia-nccl-cu13 wheel on PyPI, unpacked into
# .nccl/ (ignored by git): cmake/cuda.cmake finds .nccl/nvidia/nccl/include/nccl.h there and builds
# the CUDA backend's multi-GPU support; at run time glmoe opens libnccl.so.2, e.g. with
# GLMOE_NCCL_LIBRARY=$PWD/.nccl/nvidia/nccl/lib/libnccl.so.2. Nothing of NCCL goes into the repository.
#
# Usage: tools/get_nccl.sh [VERSION]     (default: the newest nvidia-nccl-cu13)
set -eu
cd "$(dirname "$0")/.."
spec=nvidia-nccl-cu13${1:+==$1}
mkdir -p .nccl
python3 -m pip download --no-deps --only-binary=:all: -d .nccl "$spec"
wheel=$(ls -t .nccl/nvidia_nccl_cu13-*.whl | head -n 1)
python3 - "$wheel" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for n in z.namelist():
        if n.startswith(("nvidia/nccl/include/", "nvidia/nccl/lib/")) or n.endswith("License.txt"):
            z.extract(n, ".nccl")
PY
echo "NCCL header: .nccl/nvidia/nccl/include/nccl.h; library: .nccl/nvidia/nccl/lib/libnccl.so.2 (from $wheel)"
