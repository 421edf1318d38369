#!/usr/bin/env bash
# test_lazy_cuda.sh GLMOE REPO — a glmoe built with the CUDA backend loads no CUDA library unless
# it uses a GPU: the program does not link cudart or cuBLAS (ldd), a --device cpu run opens none
# (the dynamic loader's own trace, LD_DEBUG=files, lists every library opened, dlopen included),
# and on a machine without a GPU neither does --device auto, which runs on the CPU, while
# --device cuda fails with one line saying there is no CUDA GPU and why.
set -u
glmoe=$1
repo=$2
model=$repo/models/glmoe-demo
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
cuda_libs='libcudart|libcublas|libglmoe-cuda'

if ldd "$glmoe" | grep -Eq "$cuda_libs"; then fail "$glmoe links CUDA: $(ldd "$glmoe" | grep -E "$cuda_libs" | tr '\n' ' ')"; fi

opened() { # the CUDA libraries a run opens
    LD_DEBUG=files timeout 60 "$glmoe" "$@" 2>&1 >/dev/null | grep -Eo "file=[^ ]*($cuda_libs)[^ ]*" | sort -u
}
o=$(opened generate -m "$model" -p Hi -n 1 --device cpu)
[ -z "$o" ] || fail "--device cpu opened: $o"

gpu=0
{ ls /dev/nvidia0 || ldconfig -p | grep -q 'libcuda\.so\.1 '; } >/dev/null 2>&1 && gpu=1
if [ $gpu = 1 ]; then
    echo "SKIP: an NVIDIA driver or GPU is here: the no-GPU checks need a machine without one"
    exit $failed
fi
o=$(opened generate -m "$model" -p Hi -n 1 --device auto)
[ -z "$o" ] || fail "--device auto without a GPU opened: $o"
timeout 60 "$glmoe" generate -m "$model" -p Hi -n 1 --device auto >/dev/null 2>&1 || fail "--device auto without a GPU fails"
err=$(timeout 60 "$glmoe" generate -m "$model" -p Hi -n 1 --device cuda 2>&1 >/dev/null)
rc=$?
echo "--device cuda: $err"
[ $rc = 1 ] || fail "--device cuda without a GPU: exit $rc, want 1"
[ "$(echo "$err" | wc -l)" = 1 ] || fail "--device cuda without a GPU: more than one line"
echo "$err" | grep -Eq 'cuda: (no CUDA GPU: |this build of glmoe has no CUDA backend)' || fail "--device cuda: \"$err\" does not say there is no CUDA GPU"
exit $failed
