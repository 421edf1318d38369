# paths.sh — sourced first by every tools/gpu script: the repository root and the defaults the
# scripts share (environment first).
#   OUT     what a run writes (default ROOT/gpu-out; the device tool sets its own)
#   DEPS    the carried -dev packages (.gpu-deps, deps_env.sh unpacks them into PREFIX)
#   BUILD   glmoe's CUDA build (kept on a warm machine between calls)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT=${OUT:-$ROOT/gpu-out}
DEPS=${GLMOE_GPU_DEPS:-$ROOT/.gpu-deps}
BUILD=${GLMOE_GPU_BUILD:-/tmp/glmoe-gpu-build}
PREFIX=/tmp/glmoe-gpu-deps
