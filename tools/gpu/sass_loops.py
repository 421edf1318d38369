#!/usr/bin/env python3
"""sass_loops.py — a static look at the instruction budget of the kernels with tensor-core loops.

Compiles a CUDA file to a cubin (nvcc -cubin, sm_90) and disassembles it (cuobjdump; not in the
CUDA toolkit's Debian-less installs: `pip download nvidia-cuda-cuobjdump`, unzip, put its bin/ on
PATH), then for every kernel matching a pattern prints the smallest loop (a backward branch's
range) holding HMMA instructions: its instructions, its HMMAs, instructions per HMMA and the
opcodes that fill it. Static counts: every instruction of the loop body once, including branches
taken rarely (tile changes), so a budget, not a profile; what it answers is how many issue slots a
weight byte costs before any latency (a 4-bit GEMV step of 16 rows x 64 bytes is 8 HMMAs).

  tools/gpu/sass_loops.py src/backend/cuda/cuda_quant_mmv.cu [kernel-regex]
"""
import collections, os, re, subprocess, sys, tempfile

def disassemble(src):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with tempfile.TemporaryDirectory() as d:
        cubin = os.path.join(d, "k.cubin")
        subprocess.run(["nvcc", "-std=c++17", "-O3", "-arch=sm_90", "-cubin", "-I", os.path.join(root, "src"),
                        "-I", os.path.join(root, "include"), "-o", cubin, src], check=True)
        return subprocess.run(["cuobjdump", "-sass", cubin], check=True, capture_output=True, text=True).stdout

def kernels(sass):
    name, ins = None, []
    for line in sass.splitlines():
        m = re.search(r"Function : (\S+)", line)
        if m:
            if name: yield name, ins
            name, ins = m.group(1), []
            continue
        m = re.match(r"\s+/\*([0-9a-f]{4,})\*/\s+(.*?);", line)
        if m and name:
            toks = m.group(2).split()
            op = toks[1] if toks[0].startswith("@") else toks[0]
            ins.append((int(m.group(1), 16), op, m.group(2)))
    if name: yield name, ins

def demangle(n):
    try: return subprocess.run(["c++filt", n], capture_output=True, text=True).stdout.strip()
    except OSError: return n

def main():
    src = sys.argv[1]
    pat = re.compile(sys.argv[2] if len(sys.argv) > 2 else ".")
    for name, ins in kernels(disassemble(src)):
        pretty = demangle(name)
        if not pat.search(pretty): continue
        addr = [a for a, _, _ in ins]
        best = None
        for i, (a, op, text) in enumerate(ins):
            m = re.match(r"BRA(?:\.\S+)? .*?(0x[0-9a-f]+)", text.split(" ", 1)[1] if text.startswith("@") else text)
            if not op.startswith("BRA") or not m: continue
            target = int(m.group(1), 16)
            if target >= a or target not in addr: continue
            j = addr.index(target)
            body = ins[j:i + 1]
            n_mma = sum(o.startswith("HMMA") for _, o, _ in body)
            if n_mma and (best is None or len(body) < len(best)): best = body
        if not best:
            print(f"{pretty}: {len(ins)} instructions, no loop with HMMA")
            continue
        n_mma = sum(o.startswith("HMMA") for _, o, _ in best)
        ops = collections.Counter(o.split(".")[0] for _, o, _ in best)
        print(f"{pretty}: loop of {len(best)} instructions, {n_mma} HMMA, {len(best) / n_mma:.1f} per HMMA")
        print("   " + ", ".join(f"{o} {c}" for o, c in ops.most_common(14)))

if __name__ == "__main__":
    main()
