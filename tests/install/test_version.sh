#!/usr/bin/env bash
# test_version.sh GLMOE REPO — `glmoe --version`: exit 0; the first line is "glmoe X.Y.Z" with the
# header's version (and the commit in parentheses when built from git); a line naming the backends
# built (cuda when the build has it); a line saying whether a GPU is usable now, which on a machine
# without one says why not.
set -u
glmoe=$1
repo=$2
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

out=$(timeout 60 "$glmoe" --version 2>&1) || fail "exit $?: $out"
echo "$out"
v=$(sed -n 's/^#define GLMOE_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\).*/\2/p' "$repo/include/glmoe.h" | paste -sd.)
echo "$out" | head -1 | grep -Eq "^glmoe $v( \([0-9a-f]+(-dirty)?\))?$" || fail "first line is not \"glmoe $v (commit)\""
echo "$out" | grep -Eq '^backends: cpu(, cuda)?$' || fail "no backends line"
echo "$out" | grep -Eq '^gpu: ' || fail "no gpu line"
if ls /dev/nvidia0 >/dev/null 2>&1; then :; else
    # no GPU here: --version says so, and names the cause when the CUDA backend was built
    if echo "$out" | grep -q '^backends: cpu, cuda$'; then
        echo "$out" | grep -Eq '^gpu: none usable: (no CUDA GPU|cuda): ' || fail "the gpu line does not say why no GPU is usable"
    else
        echo "$out" | grep -Eq '^gpu: none \(built without the CUDA backend\)$' || fail "the gpu line of a CPU-only build"
    fi
fi
exit $failed
