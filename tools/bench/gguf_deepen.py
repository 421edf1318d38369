#!/usr/bin/env python3
"""gguf_deepen.py — a glm4moe GGUF made N layers deep from a shallower one, for timing a model
that has no file: the full 46-layer GLM-4.5-Air at Q4_0 (about 60 GB) from the 4-layer cut that
llama.cpp converted and quantized from tools/gpu/make_synthetic.py's random weights.

usage: gguf_deepen.py IN.gguf OUT.gguf --layers N

Every key is copied, with glm4moe.block_count set to N (plus the MTP layers the input has). Every
tensor keeps its type and shape: layers below glm4moe.leading_dense_block_count come from the same
layers of the input, each MoE layer i from the input's MoE layer first + (i - first) mod (MoE layers
in the input), an MTP layer from the input's MTP layer. So the codes are random (they are the input's
quantized random weights) and the deep model reads, per token, exactly the bytes of a real one of its
shape. Written one tensor at a time from the input's memory map: memory stays at one tensor.
OUT's folder must have room for it (checked before the first byte; the size is printed).

Needs numpy and gguf (PyPI `gguf`, the gguf-py of llama.cpp; no llama.cpp build).
"""
import argparse
import os
import re
import shutil
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inp", metavar="IN.gguf")
    ap.add_argument("out", metavar="OUT.gguf")
    ap.add_argument("--layers", type=int, required=True, help="main (non-MTP) layers of the output")
    args = ap.parse_args()
    import gguf  # after argparse, so --help works without it

    reader = gguf.GGUFReader(args.inp)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    if arch != "glm4moe":
        sys.exit(f"gguf_deepen: {args.inp}: architecture {arch!r}, expected 'glm4moe'")

    def key(name):
        f = reader.fields.get(f"{arch}.{name}")
        return f.contents() if f is not None else None

    blocks_in = key("block_count")
    mtp = key("nextn_predict_layers") or 0
    dense = key("leading_dense_block_count") or 0
    main_in = blocks_in - mtp
    moe_in = main_in - dense
    if args.layers < 1:
        sys.exit("gguf_deepen: --layers must be at least 1")
    if args.layers > dense and moe_in < 1:
        sys.exit(f"gguf_deepen: {args.inp} has no MoE layer to repeat ({main_in} layers, {dense} dense)")
    if args.layers < dense:
        sys.exit(f"gguf_deepen: --layers {args.layers} is fewer than the {dense} leading dense layers")

    def source_block(i):
        """the input block that output block i copies"""
        if i >= args.layers:  # an MTP layer
            return main_in + (i - args.layers)
        if i < dense:
            return i
        return dense + (i - dense) % moe_in

    by_name = {t.name: t for t in reader.tensors}
    plan = []  # (output name, input tensor)
    blk = re.compile(r"^blk\.(\d+)\.(.*)$")
    for t in reader.tensors:  # the non-layer tensors, in input order (embedding first)
        if not blk.match(t.name):
            plan.append((t.name, t))
    for i in range(args.layers + mtp):
        src = source_block(i)
        for t in reader.tensors:
            m = blk.match(t.name)
            if m and int(m.group(1)) == src:
                plan.append((f"blk.{i}.{m.group(2)}", by_name[t.name]))
    total = sum(int(t.n_bytes) for _, t in plan)
    folder = os.path.dirname(os.path.abspath(args.out))
    free = shutil.disk_usage(folder).free
    if total + (64 << 20) > free:
        sys.exit(f"gguf_deepen: {args.out}: needs {total / 1e9:.1f} GB, {folder} has {free / 1e9:.1f} GB free")

    writer = gguf.GGUFWriter(args.out, arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = field.contents()
        if field.name == f"{arch}.block_count":
            value = args.layers + mtp
        writer.add_key_value(field.name, value, vtype, sub_type=sub)
    for name, t in plan:
        writer.add_tensor_info(name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    print(f"gguf_deepen: {args.out}: {args.layers} layers (+{mtp} MTP) from {main_in} "
          f"({dense} dense), {len(plan)} tensors, {total / 1e9:.2f} GB", flush=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, t in plan:
        writer.write_tensor_data(t.data, tensor_endianess=reader.endianess)
    writer.close()


if __name__ == "__main__":
    main()
