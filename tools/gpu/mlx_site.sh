# mlx_site.sh — sourced on the GPU machine (bash, from anywhere): joins the parts of MLX's slimmed
# CUDA install (written by tools/gpu/slim_wheel.py into the ignored folder .peers/mlx and carried there
# one part per device call), checks their sha256 against .peers/mlx/MANIFEST.json, unpacks them into
# MLX_SITE (default /tmp/mlx-site; kept for later calls on the same warm machine: a marker holds the
# archive's sha256) and makes `python3 -c 'import mlx.core'` work:
#   PYTHONPATH      MLX_SITE first
#   LD_LIBRARY_PATH the machine's pip NVIDIA libraries (cuBLAS, cuDNN, NCCL, NVRTC, cuFFT, cuSOLVER:
#                   libmlx.so's RPATH looks for them beside itself, where they are not)
#   CUDA_HOME       when unset: the first with include/cuda_runtime.h of the pip NVIDIA folders (the
#                   headers of the NVRTC that the loader now finds there), /usr/local/cuda, nvcc's
#                   toolkit; MLX compiles some kernels at run time with NVRTC and needs them (its own
#                   CCCL, cute and cutlass headers travel in the parts)
# Source it in a subshell, `( . tools/gpu/mlx_site.sh && python3 ... )`: the LD_LIBRARY_PATH it sets
# would make later programs of the same shell (glmoe) load the pip CUDA libraries too.
# Sets MLX_SITE_OK=1 on success; on failure prints one line naming what is missing and sets
# MLX_SITE_OK=0 (it never exits the shell that sources it).
mlx_site_setup() {
    local root dir site manifest want got n k missing nv d
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    dir=$root/.peers/mlx
    site=${MLX_SITE:-/tmp/mlx-site}
    manifest=$dir/MANIFEST.json
    MLX_SITE_OK=0
    if [ ! -f "$manifest" ]; then
        echo "mlx_site: no $manifest (carry .peers/mlx/MANIFEST.json with part1)"; return 1
    fi
    want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$manifest") || return 1
    if [ "$(cat "$site/.mlx-site-sha256" 2>/dev/null)" != "$want" ]; then
        n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["parts"]))' "$manifest")
        missing=
        for k in $(seq 1 "$n"); do [ -f "$dir/part$k" ] || missing="$missing part$k"; done
        if [ -n "$missing" ]; then
            echo "mlx_site: missing in $dir:$missing of $n parts (carry each on a call to this warm machine)"; return 1
        fi
        got=$(for k in $(seq 1 "$n"); do cat "$dir/part$k"; done | sha256sum | cut -d' ' -f1)
        if [ "$got" != "$want" ]; then
            echo "mlx_site: the joined parts have sha256 $got, MANIFEST.json says $want (a part is stale or cut: carry it again)"
            return 1
        fi
        rm -rf "$site" && mkdir -p "$site" || return 1
        for k in $(seq 1 "$n"); do cat "$dir/part$k"; done | tar -xJ -C "$site" || { echo "mlx_site: untar into $site failed"; return 1; }
        echo "$want" > "$site/.mlx-site-sha256"
    fi
    export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
    # every lib/ folder of the machine's `nvidia` namespace package (the pip CUDA libraries)
    nv=$(python3 -c 'import nvidia, glob, os; print(":".join(d for p in nvidia.__path__ for d in sorted(glob.glob(os.path.join(p, "*", "lib")))))' 2>/dev/null)
    [ -n "$nv" ] && export LD_LIBRARY_PATH=$nv${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    if [ -z "${CUDA_HOME:-}" ]; then
        for d in $(echo "$nv" | tr ':' '\n' | sed 's#/lib$##') /usr/local/cuda \
                 "$(dirname "$(dirname "$(command -v nvcc 2>/dev/null || echo /x/x)")")"; do
            if [ -f "$d/include/cuda_runtime.h" ]; then export CUDA_HOME=$d; break; fi
        done
    fi
    MLX_SITE_OK=1
    echo "mlx_site: $site (sha256 ${want:0:16}...), CUDA_HOME=${CUDA_HOME:-unset}, $(echo "$nv" | tr ':' '\n' | grep -c .) NVIDIA lib folders"
}
mlx_site_setup
