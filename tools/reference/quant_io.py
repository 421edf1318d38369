"""File helpers shared by the MLX quantization reference scripts (make_quant_vectors.py, make_quant_golden.py).

Nothing here calls MLX: the safetensors writer and reader are written from the format description
(8-byte little-endian header length, a JSON header of {name: {dtype, shape, data_offsets}} plus an
optional "__metadata__" of strings, then the raw little-endian data), so that a file written here and
read back with mx.load is a check of both sides. BF16 is handled as raw uint16 bit patterns because
numpy has no bfloat16.
"""

import datetime
import json
import platform
import struct
import sys

import numpy as np

# safetensors dtype name -> numpy storage dtype (BF16 as its bit pattern)
ST_DTYPES = {"BF16": "<u2", "F16": "<f2", "F32": "<f4", "F64": "<f8", "U32": "<u4", "U8": "u1", "I32": "<i4"}


def bf16_bits_to_f32(bits):
    """uint16 BF16 bit patterns -> float32 values (exact: BF16 is the top half of a float32)."""
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x):
    """float32 -> BF16 bit patterns, round to nearest even (NaN not expected here)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def write_safetensors(path, tensors, metadata=None):
    """tensors: name -> (dtype name, numpy array already in that storage dtype). Tensors are laid out in
    name order, the header is padded with spaces to a multiple of 8 bytes (as the Rust library does), so
    every tensor starts 8-byte aligned relative to the data buffer when sizes allow."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        dtype, arr = tensors[name]
        arr = np.ascontiguousarray(arr, dtype=ST_DTYPES[dtype])
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header = {"__metadata__": {k: str(v) for k, v in metadata.items()}, **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def read_safetensors(path):
    """name -> (dtype name, numpy array in its storage dtype), and the metadata dict."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype=ST_DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = (info["dtype"], arr)
    return out, meta


def to_f64(dtype, arr):
    """A stored float tensor widened exactly to float64."""
    if dtype == "BF16":
        return bf16_bits_to_f32(arr).astype(np.float64)
    return arr.astype(np.float64)


def unpack_codes(words, bits, n):
    """Codes of a packed affine tensor: code i of a row is bits [i*b, i*b+b) of the row's little-endian
    bit stream (spec quantization.md section 3.2). words [..., n*bits/32] uint32 -> [..., n] int64."""
    w = np.asarray(words, dtype=np.uint64)
    lead = w.shape[:-1]
    w = w.reshape(-1, w.shape[-1])
    # Append one zero word so the straddling read of the last code of a row never runs off the end.
    w = np.concatenate([w, np.zeros((w.shape[0], 1), np.uint64)], axis=1)
    i = np.arange(n, dtype=np.uint64)
    p = i * np.uint64(bits)
    word, off = (p >> np.uint64(5)).astype(np.int64), p & np.uint64(31)
    v = (w[:, word] | (w[:, word + 1] << np.uint64(32))) >> off
    return (v & np.uint64((1 << bits) - 1)).astype(np.int64).reshape(*lead, n)


def dequantize_f64(words, scales, biases, bits, group_size):
    """Exact decode w = scale*q + bias in float64 from the stored tensors (scales/biases as float64)."""
    n = scales.shape[-1] * group_size
    q = unpack_codes(words, bits, n).astype(np.float64)
    s = np.repeat(scales, group_size, axis=-1)
    b = np.repeat(biases, group_size, axis=-1)
    return s * q + b


def versions():
    import mlx.core as mx
    import mlx_lm
    out = {"mlx": mx.__version__, "mlx_lm": mlx_lm.__version__, "numpy": np.__version__,
           "python": sys.version.split()[0], "platform": platform.platform()}
    try:
        import safetensors
        out["safetensors"] = safetensors.__version__
    except ImportError:
        pass
    return out


def today():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def write_json(path, obj):
    """Indented JSON whose lists of scalars stay on one line (id sequences and vectors read better)."""
    def compact(value, indent):
        if isinstance(value, dict):
            pad = " " * (indent + 2)
            items = [f"{pad}{json.dumps(k)}: {compact(v, indent + 2)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}" if items else "{}"
        if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
            pad = " " * (indent + 2)
            items = [pad + compact(v, indent + 2) for v in value]
            return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]" if items else "[]"
        return json.dumps(value)
    with open(path, "w") as f:
        f.write(compact(obj, 0) + "\n")
