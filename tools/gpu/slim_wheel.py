#!/usr/bin/env python3
"""slim_wheel.py — makes MLX's CUDA wheels small enough to carry to a GPU machine in a few device
calls (issue 15, "Peers"): the GPU code of every architecture but one is zeroed, the installed tree is
packed as tar.xz and split into parts of at most N MiB, with a manifest that tools/gpu/mlx_site.sh
reads on the device to join, check and unpack them.

usage: slim_wheel.py WHEEL [WHEEL...] [--arch 90] [--out .peers/mlx] [--part-mib 7] [--wheel-dir DIR]
                     [--preset 9]

  WHEEL      e.g. mlx-0.32.4-cp312-...whl, mlx_cuda_13-0.32.4-...whl, mlx_lm-0.32.2-py3-none-any.whl, as
             `pip download --no-deps --only-binary=:all: --python-version 3.12 --platform
             manylinux_2_35_x86_64 -d DIR mlx==0.32.4 mlx-cuda-13==0.32.4 mlx-lm` writes them
  --out      the ignored folder for mlx-site.tar.xz's parts (part1, part2, ...) and MANIFEST.json
             (sha256 and size of the whole and of each part, the wheels it holds, the arch kept);
             earlier parts there are removed first
  --wheel-dir  also write each slimmed wheel there (RECORD rewritten), for `pip install` on a machine
             with pip; not needed by mlx_site.sh

What is pruned. A CUDA shared library holds its kernels in the ELF section .nv_fatbin: a sequence of
fatbin containers, each a 16-byte header (u32 magic 0xBA55ED50, u16 version, u16 header size, u64 size
of the entries that follow) and entries, each a header (u16 kind: 1 PTX, 2 cubin; u16 flags; u32 header
size; u64 payload size; ...; u16 arch at byte 28, e.g. 90) and its payload (zstd-compressed in MLX's
wheel). Every payload except the cubins of --arch (kind 2) is overwritten with zeros, in place: no
offset moves, the driver still reads every header and picks the cubin of its card (an H100 is sm_90;
MLX builds 90a, recorded as arch 90), and xz squeezes the zeros away (MLX 0.32.4: 55 of the 64 MiB
of libmlx.so's .nv_fatbin zeroed; libmlx.so then packs to 15.5 MiB). A container without a cubin of --arch would leave that
container's kernels with nothing an H100 can load: that, and any header that does not parse, is a
one-line refusal with exit 1. After pruning, the section is parsed again and each kept entry (header
and payload) is checked to be byte-identical with the original.

What is kept. Everything else, headers included: MLX compiles some kernels at run time with NVRTC
(jit_module.cpp: the quantized matmuls include <cute/tensor.hpp> and cutlass, the others CCCL's
<cuda/std/...>), searching <site>/mlx/include/cccl and <site>/mlx/include; so include/ (cccl, cute,
cutlass, 39 MiB, 1.7 MiB packed) must travel. The CUDA runtime headers come from the machine
(CUDA_HOME, /usr/local/cuda; tools/gpu/mlx_site.sh sets it), the CUDA libraries from its pip
packages (libmlx.so's RPATH is <site>/nvidia/...; mlx_site.sh points LD_LIBRARY_PATH at them).

How it is tested: run on the real wheels (tools/reference/README.md, "MLX-CUDA as a peer"); it
prints, per library, the entries kept and zeroed and the check, then the sizes. MLX 0.32.4 + mlx-lm
0.32.2: a 189 MiB tree, 21.2 MiB packed (about a minute of one core at --preset 9). Standard library
only.
"""
import argparse
import base64
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import struct
import sys
import tarfile
import tempfile
import zipfile

FATBIN_MAGIC = 0xBA55ED50
KIND_NAMES = {1: "ptx", 2: "cubin"}
SHARED_LIB = re.compile(r"\.so(\.[0-9.]+)?$")


class Refusal(Exception):
    """A file this tool does not understand; the message is the one line printed."""


# ---------------------------------------------------------------- ELF and fatbin parsing

def elf_section(data, want):
    """(offset, size) of the section named want in a 64-bit little-endian ELF, else None."""
    if data[:4] != b"\x7fELF":
        return None
    if data[4] != 2 or data[5] != 1:
        raise Refusal("not a 64-bit little-endian ELF")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    if shoff == 0 or shnum == 0:
        return None
    if shoff + shnum * shentsize > len(data) or shstrndx >= shnum:
        raise Refusal(f"section table at {shoff} ({shnum} x {shentsize} B) lies outside the file ({len(data)} B)")

    def header(i):
        name, kind, _flags, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, kind, off, size

    stroff = header(shstrndx)[2]
    for i in range(shnum):
        name, kind, off, size = header(i)
        end = data.find(b"\0", stroff + name)
        if data[stroff + name:end].decode("latin-1") == want:
            if kind == 8:  # SHT_NOBITS: no bytes in the file
                return None
            if off + size > len(data):
                raise Refusal(f"{want} at {off} + {size} B runs past the end of the file ({len(data)} B)")
            return off, size
    return None


def fatbin_entries(data, off, size):
    """Every entry of the fatbin containers in data[off:off+size], as dicts with the container index,
    the entry's offset (of its header), header size, payload size, kind and arch. Zero bytes between
    containers (alignment) are skipped. Raises Refusal on anything that does not parse."""
    out, p, end, n = [], off, off + size, 0
    while p < end:
        if end - p < 16:
            if any(data[p:end]):
                raise Refusal(f"{end - p} stray bytes at fatbin offset {p - off}")
            break
        magic, version, hsize, csize = struct.unpack_from("<IHHQ", data, p)
        if magic != FATBIN_MAGIC:
            if magic == 0:  # padding up to the next container
                p += 4
                continue
            raise Refusal(f"fatbin container {n} at section offset {p - off}: magic 0x{magic:08x}, "
                          f"expected 0x{FATBIN_MAGIC:08x}")
        if hsize < 16 or p + hsize + csize > end:
            raise Refusal(f"fatbin container {n} at section offset {p - off}: header size {hsize}, entries "
                          f"{csize} B, past the section's end ({size} B)")
        q, cend = p + hsize, p + hsize + csize
        while q < cend:
            if cend - q < 32:
                raise Refusal(f"fatbin container {n}: {cend - q} B left at offset {q - off}, less than an entry header")
            kind, _flags, ehsize, psize = struct.unpack_from("<HHIQ", data, q)
            arch, = struct.unpack_from("<H", data, q + 28)
            if kind not in KIND_NAMES or ehsize < 32 or q + ehsize + psize > cend:
                raise Refusal(f"fatbin container {n}: entry at section offset {q - off}: kind {kind}, header "
                              f"{ehsize} B, payload {psize} B (container ends {cend - q} B further)")
            out.append(dict(container=n, at=q, hsize=ehsize, psize=psize, kind=kind, arch=arch))
            q += ehsize + psize
        n += 1
        p = cend
    if not out:
        raise Refusal("the .nv_fatbin section holds no entries")
    return out


def prune(data, arch):
    """Zero, in the bytearray data, the payload of every fatbin entry but the cubins of arch. Returns a
    summary dict, or None when data has no .nv_fatbin section. Raises Refusal."""
    sec = elf_section(data, ".nv_fatbin")
    if sec is None:
        return None
    entries = fatbin_entries(data, *sec)
    keep = [e for e in entries if e["kind"] == 2 and e["arch"] == arch]
    containers = {e["container"] for e in entries}
    lacking = sorted(containers - {e["container"] for e in keep})
    if lacking:
        raise Refusal(f"{len(lacking)} of {len(containers)} fatbin containers (first: {lacking[0]}) have no "
                      f"sm_{arch} cubin: their kernels would be lost")
    original = {e["at"]: bytes(data[e["at"]:e["at"] + e["hsize"] + e["psize"]]) for e in keep}
    kinds = {}
    for e in entries:
        k = f"{KIND_NAMES[e['kind']]} sm_{e['arch']}"
        row = kinds.setdefault(k, [0, 0, "kept" if e["at"] in original else "zeroed"])
        row[0] += 1
        row[1] += e["psize"]
        if e["at"] not in original:
            a = e["at"] + e["hsize"]
            data[a:a + e["psize"]] = bytes(e["psize"])
    # the check: the same entries parse again, and what was kept is untouched
    again = fatbin_entries(data, *sec)
    if [(e["at"], e["hsize"], e["psize"], e["kind"], e["arch"]) for e in again] != \
            [(e["at"], e["hsize"], e["psize"], e["kind"], e["arch"]) for e in entries]:
        raise Refusal("after pruning the fatbin entries no longer parse the same (a bug of this tool)")
    for at, blob in original.items():
        if bytes(data[at:at + len(blob)]) != blob:
            raise Refusal(f"kept entry at {at} changed (a bug of this tool)")
    return dict(section_bytes=sec[1], containers=len(containers), entries=len(entries), kept=len(keep),
                zeroed_bytes=sum(e["psize"] for e in entries if e["at"] not in original), kinds=kinds)


# ---------------------------------------------------------------- wheels

def installed_name(name):
    """Where a wheel member lands in site-packages: <pkg>.data/{purelib,platlib}/x -> x; other .data
    schemes (scripts, headers, data) -> None, they are not needed to import the packages."""
    parts = name.split("/")
    if parts[0].endswith(".data"):
        if len(parts) > 2 and parts[1] in ("purelib", "platlib"):
            return "/".join(parts[2:])
        return None
    return name


def record_hash(blob):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(blob).digest()).rstrip(b"=").decode()


def slim_wheel(path, arch, site, wheel_dir):
    """Prune the wheel's shared libraries, write its members into site, optionally the slimmed wheel.
    Returns a list of per-library summaries."""
    report = []
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
        changed = {}
        for info in infos:
            if info.is_dir():
                continue
            blob = z.read(info)
            if SHARED_LIB.search(os.path.basename(info.filename)):
                data = bytearray(blob)
                try:
                    summary = prune(data, arch)
                except Refusal as e:
                    raise Refusal(f"{os.path.basename(path)}:{info.filename}: {e}") from None
                if summary:
                    blob = bytes(data)
                    changed[info.filename] = blob
                    report.append((info.filename, summary))
            dest = installed_name(info.filename)
            if dest is not None:
                out = os.path.join(site, dest)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with open(out, "wb") as f:
                    f.write(blob)
                mode = (info.external_attr >> 16) & 0o777
                os.chmod(out, mode if mode else 0o644)
        if wheel_dir and changed:
            write_wheel(z, infos, changed, os.path.join(wheel_dir, os.path.basename(path)))
    return report


def write_wheel(z, infos, changed, out):
    """A copy of the wheel with the changed members and their RECORD lines."""
    record_name = next(i.filename for i in infos if i.filename.endswith(".dist-info/RECORD"))
    lines = []
    for line in z.read(record_name).decode().splitlines():
        name = line.rsplit(",", 2)[0]
        if name in changed:
            line = f"{name},{record_hash(changed[name])},{len(changed[name])}"
        lines.append(line)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as w:
        for info in infos:
            if info.filename == record_name:
                w.writestr(info, "\n".join(lines) + "\n")
            else:
                w.writestr(info, changed.get(info.filename) or z.read(info))


# ---------------------------------------------------------------- packing

def pack(site, out_path, preset):
    """site as a reproducible tar.xz: sorted names, mtime 0, owner root."""
    def norm(t):
        t.mtime, t.uid, t.gid, t.uname, t.gname = 0, 0, 0, "", ""
        return t

    with lzma.open(out_path, "wb", preset=preset) as xz, tarfile.open(fileobj=xz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(site):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                tar.add(full, arcname=os.path.relpath(full, site), recursive=False, filter=norm)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def split(path, out_dir, part_bytes):
    parts, k = [], 1
    with open(path, "rb") as f:
        while True:
            blob = f.read(part_bytes)
            if not blob:
                break
            name = f"part{k}"
            with open(os.path.join(out_dir, name), "wb") as p:
                p.write(blob)
            parts.append(dict(name=name, bytes=len(blob), sha256=hashlib.sha256(blob).hexdigest()))
            k += 1
    return parts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("wheels", nargs="+")
    ap.add_argument("--arch", type=int, default=90, help="the cubins kept (90: H100)")
    ap.add_argument("--out", default=".peers/mlx")
    ap.add_argument("--part-mib", type=float, default=7)
    ap.add_argument("--wheel-dir", default=None)
    ap.add_argument("--preset", type=int, default=9, help="xz preset (0-9)")
    args = ap.parse_args()
    for w in args.wheels:
        if not zipfile.is_zipfile(w):
            sys.exit(f"slim_wheel: {w}: not a wheel (zip)")
    os.makedirs(args.out, exist_ok=True)
    if args.wheel_dir:
        os.makedirs(args.wheel_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="slim-wheel-")
    try:
        site = os.path.join(work, "site")
        libs = []
        for w in args.wheels:
            try:
                rows = slim_wheel(w, args.arch, site, args.wheel_dir)
            except Refusal as e:
                sys.exit(f"slim_wheel: refused: {e}")
            for name, s in rows:
                print(f"{os.path.basename(w)}:{name}: .nv_fatbin {s['section_bytes'] / 2**20:.1f} MiB, "
                      f"{s['containers']} containers, {s['entries']} entries, {s['kept']} kept "
                      f"(byte-identical after pruning), {s['zeroed_bytes'] / 2**20:.1f} MiB zeroed")
                for k, (n, b, what) in sorted(s["kinds"].items()):
                    print(f"    {k:12s} {n:4d} entries {b / 2**20:8.1f} MiB  {what}")
                libs.append(dict(wheel=os.path.basename(w), file=name, **{k: v for k, v in s.items() if k != "kinds"}))
        tree = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(site) for f in fs)
        for name in os.listdir(args.out):
            if name.startswith("part") or name in ("MANIFEST.json",):
                os.remove(os.path.join(args.out, name))
        tar_path = os.path.join(work, "mlx-site.tar.xz")
        pack(site, tar_path, args.preset)
        parts = split(tar_path, args.out, int(args.part_mib * 2**20))
        manifest = dict(archive="mlx-site.tar.xz", bytes=os.path.getsize(tar_path), sha256=sha256_file(tar_path),
                        tree_bytes=tree, arch=args.arch, wheels=[os.path.basename(w) for w in args.wheels],
                        pruned=libs, parts=parts)
        with open(os.path.join(args.out, "MANIFEST.json"), "w") as f:
            json.dump(manifest, f, indent=1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"installed tree {tree / 2**20:.1f} MiB -> mlx-site.tar.xz {manifest['bytes'] / 2**20:.1f} MiB "
          f"(sha256 {manifest['sha256'][:16]}...), {len(parts)} parts in {args.out}: "
          + ", ".join(f"{p['name']} {p['bytes'] / 2**20:.1f} MiB" for p in parts))
    print("on the device: carry MANIFEST.json with part1, then one part per call on the same warm machine; "
          "then `. tools/gpu/mlx_site.sh` joins, checks and unpacks them (tools/reference/README.md)")


if __name__ == "__main__":
    main()
