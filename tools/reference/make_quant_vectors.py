#!/usr/bin/env python3
"""Quantization test vectors from MLX's own CPU quantizer: tests/data/quant/{vectors.safetensors,examples.json}.

glmoe will load mlx-community checkpoints (affine mode: U32 codes + scales + biases, spec
docs/spec/quantization.md) and may ship a quantizer of its own that imitates MLX's CPU path. This
script records what MLX (mx.quantize / mx.dequantize / mx.quantized_matmul on mx.cpu) produces, so the C
tests compare against MLX itself rather than against a re-derivation of the spec:

  vectors.safetensors  for every bits in {2,3,4,5,6,8} x group_size in {32,64,128} x input dtype in
                       {bf16, f16, f32}: an input [4, 256] whose groups include a constant group, an
                       all-negative group, |min| > |max|, |max| > |min|, |max| == |min|, two groups of
                       exact rounding ties (one per scale sign), an all-positive group and random groups;
                       MLX's codes, scales, biases and two dequantizations (README.md lists the names).
  examples.json        the spec's worked examples A-K as MLX produces them on the CPU, side by side with
                       the spec's expectation, and the rounding facts established by experiment.

Before it writes anything the script checks, and stops on any failure:
  - an independent numpy imitation of the CPU quantizer (float32 arithmetic, true division, rint =
    round half to even, running min/max over the group's own values) gives bit-identical codes, scales
    and biases for every vector;
  - the bit-stream unpacker of the spec (section 3.2) gives the codes MLX decodes (mx.dequantize with
    scale 1 and bias 0);
  - mx.dequantize(..., dtype=float32) equals dtype(dtype(scale*q) + bias) (two roundings in the scales'
    dtype, then widened), and the same call on float32-widened scales equals f32(f32(scale*q) + bias);
  - at every exact tie MLX picked the even code, and every all-negative group got the range [min, max];
  - mx.load of the written file returns the same tensors bit for bit.

Run: python3 tools/reference/make_quant_vectors.py [--out tests/data/quant]   (about 10 s, one thread)
"""

import argparse
import os
import sys

import numpy as np

import mlx.core as mx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quant_io import (f32_to_bf16_bits, bf16_bits_to_f32, today, unpack_codes, versions,  # noqa: E402
                      write_json, write_safetensors)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BITS = [2, 3, 4, 5, 6, 8]
GROUPS = [32, 64, 128]
DTYPES = {"bf16": (mx.bfloat16, "BF16"), "f16": (mx.float16, "F16"), "f32": (mx.float32, "F32")}
ROWS, COLS = 4, 256
GROUP_KINDS = ["constant", "all_negative", "min_dominant", "max_dominant", "equal_magnitude",
               "ties_negative_scale", "ties_positive_scale", "all_positive"]  # then "random" groups

f32 = np.float32


# ----------------------------------------------------------------------------------------------------
# Independent imitation of MLX's CPU affine quantizer (mlx/backend/cpu/quantized.cpp), in numpy float32.

def imitate_cpu_quantize(x, group_size, bits, max_from_zero=False):
    """x [rows, cols] float32 (already representable in the input dtype) -> codes, scales, biases (float32,
    before the cast to the input dtype). All arithmetic float32; np.rint rounds half to even.
    max_from_zero=True gives the Metal/CUDA variant of the range (running max starts at 0), used only to
    show which groups would come out differently on a GPU."""
    g = x.astype(f32).reshape(x.shape[0], -1, group_size)
    n_bins = f32(2 ** bits - 1)
    lo, hi = g.min(-1), g.max(-1)                       # CPU: the group's own extremes
    if max_from_zero:
        hi = np.maximum(hi, f32(0))
    s = np.maximum((hi - lo) / n_bins, f32(1e-7)).astype(f32)
    low_edge = np.abs(lo) > np.abs(hi)                   # ties go to the max (negative scale)
    edge = np.where(low_edge, lo, hi).astype(f32)
    s = np.where(low_edge, s, -s).astype(f32)
    q0 = np.rint(edge / s).astype(f32)
    nz = q0 != 0
    scale = np.where(nz, edge / np.where(nz, q0, f32(1)), s).astype(f32)
    bias = np.where(nz, edge, f32(0)).astype(f32)
    q = np.rint((g - bias[..., None]) / scale[..., None])
    q = np.clip(q, 0, n_bins).astype(np.int64)
    return q.reshape(x.shape), scale, bias


def round_to(x, dt):
    """float values rounded to the dtype named dt ('bf16', 'f16', 'f32'), returned as float32."""
    x = np.asarray(x, dtype=np.float64)
    if dt == "bf16":
        return bf16_bits_to_f32(f32_to_bf16_bits(x.astype(f32))).reshape(x.shape)
    if dt == "f16":
        return x.astype(np.float16).astype(f32)
    return x.astype(f32)


def storage(arr_f32, dt):
    """float32 values (representable in dt) -> the array stored in the file for dtype dt."""
    if dt == "bf16":
        return f32_to_bf16_bits(arr_f32)
    if dt == "f16":
        return arr_f32.astype(np.float16)
    return arr_f32.astype(f32)


def mx_to_np(a):
    """An MLX float array as float32 numpy (exact widening)."""
    return np.array(a.astype(mx.float32))


# ----------------------------------------------------------------------------------------------------
# Inputs

def tie_group(rng, g, bits, dt, sign):
    """Values on the grid of step 2^-(b-1) with extremes 0 and hi = n_bins*step, so that scale = -step
    (sign +1; bias = hi) or +step (sign -1, the negated group; bias = -hi) exactly, and every value
    hi - (k + 0.5)*step has code exactly k + 0.5. Half the entries are such ties (even k included, where
    half-to-even and half-away-from-zero disagree); the rest are exact grid points."""
    nb = 2 ** bits - 1
    step = 2.0 ** -(bits - 1)
    hi = nb * step
    ties = [hi - (k + 0.5) * step for k in range(nb)]
    ties = [t for t in ties if round_to(t, dt) == f32(t)]      # only ties the dtype holds exactly
    grid = [hi - k * step for k in range(nb + 1)]
    grid = [v for v in grid if round_to(v, dt) == f32(v)]
    even = [t for t in ties if int((hi - t) / step) % 2 == 0]
    vals = [hi, 0.0, even[0], even[-1]]
    while len(vals) < g:
        vals.append(ties[rng.integers(len(ties))] if len(vals) % 2 else grid[rng.integers(len(grid))])
    vals = np.array(vals, dtype=np.float64)
    rng.shuffle(vals)
    return sign * vals


def make_group(kind, rng, g, bits, dt):
    for _ in range(100):
        if kind == "constant":
            x = np.full(g, 0.75)
        elif kind == "all_negative":
            x = -(np.abs(rng.standard_normal(g)) * 0.8 + 0.05)
        elif kind in ("min_dominant", "max_dominant"):
            x = rng.standard_normal(g)
        elif kind == "equal_magnitude":
            x = rng.standard_normal(g)
            m = float(round_to(np.abs(x).max(), dt))
            x[np.argmax(x)], x[np.argmin(x)] = m, -m
        elif kind == "ties_negative_scale":
            x = tie_group(rng, g, bits, dt, +1.0)
        elif kind == "ties_positive_scale":
            x = tie_group(rng, g, bits, dt, -1.0)
        elif kind == "all_positive":
            x = np.abs(rng.standard_normal(g)) + 0.05
        else:  # random, with a per-group spread so scales differ
            x = rng.standard_normal(g) * rng.uniform(0.3, 2.0)
        x = round_to(x, dt)
        lo, hi = x.min(), x.max()
        if kind == "min_dominant" and abs(hi) > abs(lo):
            x = -x
        if kind == "max_dominant" and abs(lo) > abs(hi):
            x = -x
        lo, hi = x.min(), x.max()
        ok = {"constant": lo == hi, "all_negative": hi < 0, "min_dominant": abs(lo) > abs(hi),
              "max_dominant": abs(hi) > abs(lo), "equal_magnitude": abs(hi) == abs(lo) and hi > 0,
              "all_positive": lo > 0, "ties_negative_scale": lo == 0 < hi,
              "ties_positive_scale": lo < 0 == hi}.get(kind, lo < 0 < hi)
        if ok:
            return x
    raise RuntimeError(f"could not draw a {kind} group")


def make_input(bits, g, dt, seed):
    rng = np.random.default_rng(seed)
    n_groups = ROWS * COLS // g
    kinds = GROUP_KINDS + ["random"] * (n_groups - len(GROUP_KINDS))
    x = np.concatenate([make_group(k, rng, g, bits, dt) for k in kinds]).astype(f32)
    return x.reshape(ROWS, COLS), kinds


# ----------------------------------------------------------------------------------------------------
# One vector

def record_vector(bits, g, dt, seed):
    mdt, st_dt = DTYPES[dt]
    x, kinds = make_input(bits, g, dt, seed)
    xm = mx.array(x).astype(mdt)
    assert np.array_equal(mx_to_np(xm), x), "input not representable in its dtype"
    w, s, b = mx.quantize(xm, group_size=g, bits=bits)
    deq = mx.dequantize(w, s, b, group_size=g, bits=bits, dtype=mx.float32)
    s32, b32 = s.astype(mx.float32), b.astype(mx.float32)
    deq32 = mx.dequantize(w, s32, b32, group_size=g, bits=bits, dtype=mx.float32)
    ones, zeros = mx.ones(s.shape, dtype=mx.float32), mx.zeros(s.shape, dtype=mx.float32)
    codes_mx = mx.dequantize(w, ones, zeros, group_size=g, bits=bits, dtype=mx.float32)
    mx.eval(w, s, b, deq, deq32, codes_mx)
    assert s.dtype == mdt and b.dtype == mdt and w.dtype == mx.uint32
    words = np.array(w)
    scales, biases = mx_to_np(s), mx_to_np(b)
    codes = np.array(codes_mx).astype(np.int64)
    name = f"b{bits}_g{g}_{dt}"

    # Checks (see the module docstring).
    assert words.shape == (ROWS, COLS * bits // 32) and scales.shape == (ROWS, COLS // g)
    assert np.array_equal(unpack_codes(words, bits, COLS), codes), f"{name}: unpacker disagrees with MLX"
    q_i, s_i, b_i = imitate_cpu_quantize(x, g, bits)
    assert np.array_equal(q_i, codes), f"{name}: imitation codes differ at {np.argwhere(q_i != codes)[:5]}"
    assert np.array_equal(round_to(s_i, dt), scales), f"{name}: imitation scales differ"
    assert np.array_equal(round_to(b_i, dt), biases), f"{name}: imitation biases differ"
    S, B = np.repeat(scales, g, 1), np.repeat(biases, g, 1)
    two_round = round_to(round_to(S * codes.astype(f32), dt) + B, dt)
    assert np.array_equal(np.array(deq), two_round), f"{name}: dequantize is not dtype(dtype(s*q)+b)"
    f32_rule = ((S * codes.astype(f32)).astype(f32) + B).astype(f32)
    assert np.array_equal(np.array(deq32), f32_rule), f"{name}: f32 dequantize is not f32(f32(s*q)+b)"
    ties = check_ties_and_negatives(x, codes, scales, biases, kinds, g, bits, name)

    tensors = {
        f"{name}.input": (st_dt, storage(x, dt)),
        f"{name}.weight": ("U32", words),
        f"{name}.scales": (st_dt, storage(scales, dt)),
        f"{name}.biases": (st_dt, storage(biases, dt)),
        f"{name}.codes": ("U8", codes.astype(np.uint8)),
        f"{name}.dequant": ("F32", np.array(deq)),
        f"{name}.dequant_f32": ("F32", np.array(deq32)),
    }
    return tensors, kinds, ties


def check_ties_and_negatives(x, codes, scales, biases, kinds, g, bits, name):
    """Exact ties got the even code; all-negative groups used [min, max], not [min, 0] (GPU)."""
    n_ties = n_even_ties = n_gpu_differs = 0
    per_row = COLS // g
    nb = 2 ** bits - 1
    for k, kind in enumerate(kinds):
        r, c = divmod(k, per_row)
        xs = x[r, c * g:(c + 1) * g].astype(np.float64)
        qs = codes[r, c * g:(c + 1) * g]
        if kind.startswith("ties"):
            s, bia = float(scales[r, c]), float(biases[r, c])
            exact = (xs - bia) / s                       # exactly k + 0.5 at ties (powers of two)
            at_tie = np.abs(exact - np.floor(exact) - 0.5) == 0
            assert at_tie.any()
            half_even = np.rint(exact[at_tie])
            assert np.array_equal(qs[at_tie], half_even), f"{name}: a tie was not rounded half to even"
            half_away = np.floor(exact[at_tie]) + 1
            n_ties += int(at_tie.sum())
            n_even_ties += int((half_even != half_away).sum())
        if kind == "all_negative":
            # The Metal/CUDA rule (running max from 0) would quantize over [min, 0]; count the groups
            # where that gives other codes or scales than what MLX's CPU produced.
            q_gpu, s_gpu, b_gpu = imitate_cpu_quantize(xs[None].astype(f32), g, bits, max_from_zero=True)
            if not (np.array_equal(q_gpu[0], qs) and round_to(s_gpu, "f32")[0, 0] == scales[r, c]):
                n_gpu_differs += 1
    assert n_even_ties > 0
    return n_ties, n_even_ties, n_gpu_differs


# ----------------------------------------------------------------------------------------------------
# Worked examples of the spec (section 9), as MLX computes them on the CPU

SPEC = {
    "A": dict(bits=4, pattern=[-5, -3, 0, 1, 2, 4, 7, 10], words=["0x03689ADF"], codes=[15, 13, 10, 9, 8, 6, 3, 0],
              scale_bits={"bf16": "0xBF80", "f16": "0xBC00"}, bias_bits={"bf16": "0x4120", "f16": "0x4900"},
              text="4 bits, |max| >= |min|: negative scale"),
    "B": dict(bits=4, pattern=[-10, -7, -1, 0, 1, 2, 3, 5], words=["0xFDCBA930"], codes=[0, 3, 9, 10, 11, 12, 13, 15],
              scale_bits={"bf16": "0x3F80"}, bias_bits={"bf16": "0xC120"}, text="4 bits, |min| > |max|: positive scale"),
    "C": dict(bits=4, pattern=[-0.75, -0.5, 0, 0.25, 1, 1.5, 2.75, 3], words=["0x0168BCEF"],
              codes=[15, 14, 12, 11, 8, 6, 1, 0], scale_bits={"bf16": "0xBE80"}, bias_bits={"bf16": "0x4040"},
              text="4 bits, fractional, zero exactly representable"),
    "D": dict(bits=3, pattern=[7, 6, 5, 4, 3, 2, 1, 0], words=["0x88FAC688", "0xC688FAC6", "0xFAC688FA"],
              codes=[0, 1, 2, 3, 4, 5, 6, 7], scale_bits={}, bias_bits={"bf16": "0x40E0"},
              text="3 bits, codes straddling words"),
    "G": dict(bits=8, pattern=list(range(31)) + [255], words=None, codes=[255 - v for v in range(31)] + [0],
              scale_bits={}, bias_bits={}, text="8 bits: 0..30, 255; scale -1, bias 255",
              words_first_last=["0xFCFDFEFF", "0xF8F9FAFB", "0x00E1E2E3"]),
    "H": dict(bits=4, pattern=[-5, 3.5, 0, 1, 2, 4, 7, 10], words=["0x03689A6F"], codes=[15, 6, 10, 9, 8, 6, 3, 0],
              gpu_words=["0x03689A7F"], scale_bits={}, bias_bits={},
              text="rounding tie: the code of 3.5 is exactly 6.5; CPU (half to even) 6, Metal/CUDA (half away) 7"),
    "I": dict(bits=4, pattern=[-1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5], words=["0x02479BDF"],
              codes=[15, 13, 11, 9, 7, 4, 2, 0], scale_bits={"bf16": "0xBE69"}, bias_bits={"bf16": "0x4020"},
              scale_f32=-0.22727273,
              spec_bf16_decoded=[-0.9131, -0.4580, -0.0029, 0.4521, 0.9072, 1.5898, 2.0449, 2.5],
              text="scale nudge clips the far end"),
    "J_const_0.5": dict(bits=4, pattern=[0.5] * 8, words=["0x00000000"], codes=[0] * 8,
                        scale_bits={"bf16": "0xB3D7"}, bias_bits={}, text="constant group 0.5"),
    "J_const_0": dict(bits=4, pattern=[0.0] * 8, words=["0x00000000"], codes=[0] * 8, scale_bits={"bf16": "0xB3D7"},
                      bias_bits={}, text="constant group 0: q0 = 0, bias 0"),
    "J_const_-0.5": dict(bits=4, pattern=[-0.5] * 8, words=["0x00000000"], codes=[0] * 8,
                         scale_bits={"bf16": "0xB3D7"}, bias_bits={}, gpu_scale_bits={"bf16": "0x3D09"},
                         text="constant negative group: CPU scale -1e-7; GPU (max starts at 0) 0.5/15"),
    "J_negative": dict(bits=4, pattern=[-4, -3, -1.75, -1], words=None, codes=[0, 5, 11, 15],
                       scale_bits={"bf16": "0x3E4D"}, bias_bits={"bf16": "0xC080"}, gpu_scale_bits={"bf16": "0x3E89"},
                       gpu_codes=[0, 4, 8, 11],
                       text="all-negative group: CPU uses [min, max] = [-4, -1]; GPU uses [-4, 0]"),
    "J_tiny_const": dict(bits=4, pattern=[1e-8] * 8, words=["0x00000000"], codes=[0] * 8, scale_bits={},
                         bias_bits={}, text="(not in the spec) constant 1e-8 < 5e-8: q0 rounds to 0, so bias 0 "
                                            "and the group decodes to 0"),
}


def hexbits(a, mdt):
    """Bit pattern of an MLX scalar array in its dtype, as 0x%04X / 0x%08X."""
    if mdt == mx.float32:
        return "0x%08X" % int(np.array(a.view(mx.uint32)).reshape(-1)[0])
    return "0x%04X" % int(np.array(a.view(mx.uint16)).reshape(-1)[0])


def affine_example(key, spec):
    """Quantize one 32-element group (the pattern tiled) in each dtype and compare with the spec."""
    bits = spec["bits"]
    pat = np.array(spec["pattern"], dtype=np.float64)
    reps = 32 // len(pat)
    out = {"id": key, "description": spec["text"], "bits": bits, "group_size": 32,
           "pattern": spec["pattern"], "tiled": reps, "dtypes": {}}
    for dt, (mdt, _) in DTYPES.items():
        x = mx.array(np.tile(pat, reps)[None].astype(f32)).astype(mdt)
        w, s, b = mx.quantize(x, group_size=32, bits=bits)
        deq = mx.dequantize(w, s, b, group_size=32, bits=bits, dtype=mx.float32)
        deq32 = mx.dequantize(w, s.astype(mx.float32), b.astype(mx.float32), group_size=32, bits=bits,
                              dtype=mx.float32)
        words = np.array(w)[0]
        codes = unpack_codes(words, bits, 32)
        n = len(pat)
        assert all(np.array_equal(codes[:n], codes[i * n:(i + 1) * n]) for i in range(reps))
        rec = {"input": [float(v) for v in mx_to_np(x)[0][:n]],
               "words": ["0x%08X" % int(v) for v in words],
               "codes": codes[:n].tolist(),
               "scale": float(mx_to_np(s)[0, 0]), "scale_bits": hexbits(s, mdt),
               "bias": float(mx_to_np(b)[0, 0]), "bias_bits": hexbits(b, mdt),
               "dequant": [float(v) for v in np.array(deq)[0][:n]],
               "dequant_f32": [float(v) for v in np.array(deq32)[0][:n]]}
        checks = {"codes": rec["codes"] == spec["codes"]}
        if spec.get("words"):
            want = spec["words"] * (len(words) // len(spec["words"]))
            checks["words"] = rec["words"] == want
        if "words_first_last" in spec:
            checks["words"] = rec["words"][:2] + rec["words"][-1:] == spec["words_first_last"]
        if dt in spec["scale_bits"]:
            checks["scale_bits"] = rec["scale_bits"] == spec["scale_bits"][dt]
        if dt in spec["bias_bits"]:
            checks["bias_bits"] = rec["bias_bits"] == spec["bias_bits"][dt]
        if dt == "f32" and "scale_f32" in spec:
            checks["scale_f32"] = abs(rec["scale"] - spec["scale_f32"]) < 1e-8
        rec["matches_spec_cpu"] = checks
        out["dtypes"][dt] = rec
    for k in ("gpu_words", "gpu_scale_bits", "gpu_codes", "spec_bf16_decoded"):
        if k in spec:
            out["spec_" + k if not k.startswith("spec") else k] = spec[k]
    return out


def example_notes(ex):
    """Where MLX CPU differs from the spec's GPU variants or from a decoded value the spec prints."""
    notes = {
        "H": "MLX CPU gives 0x03689A6F (code 6, half to even) = the spec's CPU variant; the spec's GPU "
             "variant 0x03689A7F (half away from zero) is NOT what the CPU produces.",
        "J_const_-0.5": "MLX CPU: scale -1e-7 (BF16 0xB3D7), bias -0.5, i.e. the spec's CPU variant; the GPU "
                        "variant (scale 0x3D09) does not occur on the CPU. Decodes to -0.5 either way.",
        "J_negative": "MLX CPU uses the range [-4, -1] (scale 0.2 = BF16 0x3E4D, codes 0,5,11,15), the spec's "
                      "CPU variant; the GPU variant (scale 0x3E89, codes 0,4,8,11) does not occur on the CPU.",
        "I": "Codes, scale and bias match the spec. The spec's BF16 decoded values (-0.9131 ... -0.0029 ...) are "
             "the exact decode of the BF16 scale/bias; MLX's mx.dequantize(dtype=float32) on BF16 scales "
             "rounds scale*q to BF16 and the sum to BF16 ('dequant': -0.90625, ..., 0.0, ...). With the "
             "scales widened to float32 first ('dequant_f32') MLX gives the spec's values.",
    }
    return notes.get(ex["id"])


def example_e():
    """Packing-only table of the spec: codes given. The generator packs them (spec section 3.1) and MLX
    decodes the words with scale 1, bias 0; the decoded values must be the codes."""
    rows = []
    table = {2: ([i % 4 for i in range(32)], ["0xE4E4E4E4", "0xE4E4E4E4"]),
             5: (list(range(32)), ["0x8A418820", "0xC5A92839", "0xCA307B9A", "0x38BDAB49", "0xFFBBCDEB"]),
             6: ([2 * i for i in range(32)], ["0x88184080", "0x449038C2", "0x79C69859", "0xA89A48A0",
                                              "0x4CB0BACA", "0xFBCEB8DB"]),
             8: ([8 * i for i in range(32)], None)}
    for bits, (codes, spec_words) in table.items():
        stream = 0
        for i, c in enumerate(codes):
            stream |= c << (i * bits)
        words = [(stream >> (32 * j)) & 0xFFFFFFFF for j in range(bits)]
        w = mx.array(np.array([words], dtype=np.uint32))
        one, zero = mx.ones((1, 1)), mx.zeros((1, 1))
        dec = np.array(mx.dequantize(w, one, zero, group_size=32, bits=bits, dtype=mx.float32))[0]
        rows.append({"bits": bits, "codes": codes, "words": ["0x%08X" % v for v in words],
                     "mlx_decoded_equals_codes": bool(np.array_equal(dec, np.array(codes, dtype=f32))),
                     "words_match_spec": None if spec_words is None else ["0x%08X" % v for v in words] == spec_words})
    return {"id": "E", "description": "packing only: codes given, words packed LSB-first, decoded by "
                                      "mx.dequantize with scale 1 and bias 0", "rows": rows}


def example_f():
    """A quantized Linear [2, 32] (rows = A's and B's groups, BF16) through mx.quantized_matmul, and the
    same rows as a stacked expert tensor E=2 through mx.gather_qmm."""
    a = np.tile([-5, -3, 0, 1, 2, 4, 7, 10], 4)
    b = np.tile([-10, -7, -1, 0, 1, 2, 3, 5], 4)
    W = mx.array(np.stack([a, b]).astype(f32)).astype(mx.bfloat16)
    w, s, bi = mx.quantize(W, group_size=32, bits=4)
    ones = mx.ones((1, 32), dtype=mx.bfloat16)
    e0 = mx.array(np.eye(32, dtype=f32)[:1]).astype(mx.bfloat16)
    y1 = mx_to_np(mx.quantized_matmul(ones, w, s, bi, transpose=True, group_size=32, bits=4))[0]
    y0 = mx_to_np(mx.quantized_matmul(e0, w, s, bi, transpose=True, group_size=32, bits=4))[0]
    Ws = mx.array(np.stack([np.stack([a, b]), np.stack([b, a])]).astype(f32)).astype(mx.bfloat16)
    ws, ss, bs = mx.quantize(Ws, group_size=32, bits=4)
    xs = mx.ones((1, 1, 32), dtype=mx.bfloat16)
    ye = mx_to_np(mx.gather_qmm(xs, ws, ss, bs, rhs_indices=mx.array([1]), transpose=True, group_size=32,
                                bits=4)).reshape(-1)
    words_flat = np.array(ws).reshape(-1)
    return {"id": "F", "description": "Linear [out=2, in=32], b=4, g=32, BF16: rows = A's and B's patterns",
            "weight": [["0x%08X" % int(v) for v in row] for row in np.array(w)],
            "scales": mx_to_np(s).reshape(-1).tolist(), "biases": mx_to_np(bi).reshape(-1).tolist(),
            "y_ones": y1.tolist(), "y_e0": y0.tolist(),
            "stacked_E2": {"weight_shape": list(ws.shape), "expert1_row0_first_word_index": 8,
                           "expert1_row0_words": ["0x%08X" % int(v) for v in words_flat[8:12]],
                           "gather_qmm_expert1_ones": ye.tolist()},
            "matches_spec": {"y_ones": y1.tolist() == [64.0, -28.0], "y_e0": y0.tolist() == [-5.0, -10.0],
                             "expert1_row0_is_B": ["0x%08X" % int(v) for v in words_flat[8:12]] == ["0xFDCBA930"] * 4,
                             "gather_qmm": ye.tolist() == [-28.0, 64.0]}}


def example_k():
    """fp modes, decode only (spec example K), on the CPU."""
    out = []
    def dec(words, scale, mode, g, bits):
        # Two groups in one row: MLX 0.32.4 CPU raises "[reshape] Cannot reshape array of size 2 into
        # shape (0,4)" for an nvfp4 tensor of exactly one group (w [1, 2]); two groups decode fine.
        reps = 2 * g * bits // 32 // len(words)
        w = mx.array(np.array([words * reps], dtype=np.uint32))
        s = mx.array(np.array([[scale, scale]], dtype=np.uint8))
        return np.array(mx.dequantize(w, s, None, group_size=g, bits=bits, mode=mode, dtype=mx.float32))[0]
    for mode, g, bits, words, scale, want in [
            ("mxfp4", 32, 4, [0x76543210], 0x80, [0, 1, 2, 3, 4, 6, 8, 12]),
            ("mxfp4", 32, 4, [0xFEDCBA98], 0x7E, [-0.0, -0.25, -0.5, -0.75, -1, -1.5, -2, -3]),
            ("nvfp4", 16, 4, [0x76543210], 0x40, [0, 1, 2, 3, 4, 6, 8, 12]),
            ("mxfp8", 32, 8, [0x7E40B838], 0x7F, [1, -1, 2, 448])]:
        d = dec(words, scale, mode, g, bits)[:len(want)]
        out.append({"mode": mode, "group_size": g, "bits": bits, "words": ["0x%08X" % v for v in words],
                    "scale_byte": "0x%02X" % scale, "decoded": [float(v) for v in d],
                    "matches_spec": bool(np.array_equal(d, np.array(want, dtype=f32)))})
    return {"id": "K", "description": "fp modes, decode only (each row: the words repeated over two groups "
                                      "with the same scale byte; 'decoded' = the first values)",
            "note": "MLX 0.32.4 CPU mx.dequantize(mode='nvfp4') raises a reshape error for a tensor of a single "
                    "group ([1, 2] words); two or more groups work", "rows": out}


def rounding_probe():
    """Crafted ties for every bit width and an all-negative group per bit width, in float32 on the CPU."""
    rows = []
    for bits in BITS:
        nb = 2 ** bits - 1
        # values 0 and nb (scale -1, bias nb) plus every half code k + 0.5 for k = 0..min(nb-1, 29)
        ks = list(range(min(nb, 30)))
        vals = [float(nb), 0.0] + [nb - (k + 0.5) for k in ks]
        vals += [float(i % (nb + 1)) for i in range(32 - len(vals))]   # exact grid points as filler
        x = mx.array(np.array([vals], dtype=f32))
        w, s, b = mx.quantize(x, group_size=32, bits=bits)
        codes = unpack_codes(np.array(w), bits, 32)[0][2:2 + len(ks)]
        even = [int(np.rint(k + 0.5)) for k in ks]
        away = [k + 1 for k in ks]
        neg = mx.array(np.array([np.linspace(-4, -1, 32)], dtype=f32))
        _, sn, bn = mx.quantize(neg, group_size=32, bits=bits)
        rows.append({"bits": bits, "ties": len(ks), "half_to_even": codes.tolist() == even,
                     "half_away_from_zero": codes.tolist() == away,
                     "all_negative_linspace_-4_-1": {"scale": float(mx_to_np(sn)[0, 0]),
                                                     "bias": float(mx_to_np(bn)[0, 0]),
                                                     "range_min_max": float(mx_to_np(sn)[0, 0]) > 0
                                                     and abs(float(mx_to_np(sn)[0, 0]) * nb - 3.0) < 0.05 * 3}})
        assert rows[-1]["half_to_even"] and not rows[-1]["half_away_from_zero"], rows[-1]
        assert rows[-1]["all_negative_linspace_-4_-1"]["range_min_max"], rows[-1]
    return rows


FACTS = {
    "device": "mx.cpu (mlx-cpu wheel); every call in this file runs on the CPU stream",
    "quantize_rounding": "round half to even (rint) for q0 = round(edge/s) and for every code "
                         "q = round((w - bias)/scale); exact ties k+0.5 go to the even integer, never half away "
                         "from zero (rounding_probe: every bits 2..8)",
    "quantize_running_max": "the group's own max, i.e. the running max starts at -inf (or the first element), not "
                            "at 0: an all-negative group is quantized over [min, max] (Example J_negative: scale "
                            "0.2, codes 0,5,11,15), unlike the Metal/CUDA kernels that use [min, max(0, max)]",
    "quantize_arithmetic": "float32 throughout, true divisions (not multiplication by a reciprocal): "
                           "s = max((hi-lo)/n_bins, 1e-7); edge = lo if |lo| > |hi| else hi (ties -> hi, scale "
                           "negative); q0 = rint(edge/s); scale = edge/q0 and bias = edge if q0 != 0, else scale = "
                           "s and bias = 0; q = clamp(rint((w - bias)/scale), 0, n_bins) using the float32 scale "
                           "and bias, which are only then cast to the input dtype. The numpy imitation "
                           "imitate_cpu_quantize() reproduces every vector bit for bit.",
    "dequantize": "mx.dequantize(w, scales, biases, dtype=float32) computes in the scales' dtype and widens: "
                  "out = dtype(dtype(scale*q) + bias) with two roundings (no FMA). For BF16/F16 scales this is "
                  "NOT the exact decode; 'dequant_f32' (scales and biases widened to float32 first) is "
                  "f32(f32(scale*q) + bias).",
}


# ----------------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(REPO_ROOT, "tests", "data", "quant"))
    args = ap.parse_args()
    mx.set_default_device(mx.cpu)
    os.makedirs(args.out, exist_ok=True)
    vers, date = versions(), today()

    tensors, kinds_by_g, tie_counts = {}, {}, {}
    for bi, bits in enumerate(BITS):
        for gi, g in enumerate(GROUPS):
            for di, dt in enumerate(DTYPES):
                t, kinds, ties = record_vector(bits, g, dt, seed=[7, bits, g, di])
                tensors.update(t)
                kinds_by_g[g] = kinds
                tie_counts[f"b{bits}_g{g}_{dt}"] = ties
    meta = {"generator": "tools/reference/make_quant_vectors.py", "date": date,
            "mlx": vers["mlx"], "mlx_lm": vers["mlx_lm"], "device": "cpu",
            "shape": f"[{ROWS}, {COLS}]",
            **{f"group_kinds_g{g}": ",".join(k) for g, k in kinds_by_g.items()}}
    path = os.path.join(args.out, "vectors.safetensors")
    write_safetensors(path, tensors, meta)

    # Read the file back with MLX's own loader: same tensors, same bits.
    back = mx.load(path)
    assert set(back) == set(tensors)
    for name, (dt, arr) in tensors.items():
        got = back[name]
        got = np.array(got.view(mx.uint16)) if dt == "BF16" else np.array(got)
        assert got.shape == arr.shape and np.array_equal(got.view(np.uint8), np.ascontiguousarray(arr).view(np.uint8)), name

    examples = [affine_example(k, v) for k, v in SPEC.items()]
    for ex in examples:
        note = example_notes(ex)
        if note:
            ex["note"] = note
    examples.insert(4, example_e())
    examples.insert(5, example_f())
    examples.append(example_k())
    assert sum(v[2] for v in tie_counts.values()) > 0
    doc = {"generator": "tools/reference/make_quant_vectors.py", "date": date, "versions": vers,
           "facts": FACTS, "rounding_probe": rounding_probe(),
           "vector_stats": {k: {"exact_ties": v[0], "ties_where_half_even_differs_from_half_away": v[1],
                                "all_negative_group_differs_under_gpu_rule": bool(v[2])}
                            for k, v in tie_counts.items()},
           "examples": examples}
    write_json(os.path.join(args.out, "examples.json"), doc)

    bad = []
    for ex in examples:
        for dt, rec in ex.get("dtypes", {}).items():
            bad += [f"{ex['id']}/{dt}/{k}" for k, ok in rec["matches_spec_cpu"].items() if not ok]
        for row in ex.get("rows", []):
            bad += [f"{ex['id']}/{row.get('bits', row.get('mode'))}/{k}" for k in
                    ("mlx_decoded_equals_codes", "words_match_spec", "matches_spec") if row.get(k) is False]
        bad += [f"{ex['id']}/{k}" for k, ok in ex.get("matches_spec", {}).items() if not ok]
    print(f"{len(tensors)} tensors in {path} ({os.path.getsize(path)} bytes)")
    print("examples differing from the spec's CPU expectation:", ", ".join(bad) or "none")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in vers.items()))


if __name__ == "__main__":
    main()
