#!/usr/bin/env python3
"""bench_tokenizer_hf.py — Hugging Face tokenizers' speed, measured like tools/bench/bench_tokenizer.c.

    python3 tools/reference/bench_tokenizer_hf.py [--reps N] [--chunk BYTES] [--fast] TOKENIZER_JSON TEXT...

Single-threaded: RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false are set before `tokenizers` is
imported, and each chunk is one Tokenizer.encode call (no encode_batch). The text is read as bytes
and decoded to str before timing (decoding is not counted); MB/s is UTF-8 bytes per second. The
chunks are cut exactly as the C benchmark cuts them (after the first newline at or past each
multiple of BYTES), and the id count and FNV-1a hash printed are computed the same way, so equal
hashes mean equal ids. Load time is Tokenizer.from_file on an uncompressed tokenizer.json.

--fast uses encode_batch_fast([chunk]) instead of encode(chunk): still one call per chunk on one thread,
but without computing offsets, which is HF's quickest single-threaded path.
"""
import json
import os
import platform
import statistics
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def fnv1a_ids(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for k in range(4):
            h ^= (i >> (8 * k)) & 0xFF
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def cuts_of(data, chunk):
    cuts = [0]
    if chunk:
        pos = chunk
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            pos = nl + 1
            cuts.append(pos)
            pos += chunk
    cuts.append(len(data))
    return cuts


def main():
    args = sys.argv[1:]
    reps, chunk, fast = 5, 0, False
    while args and args[0].startswith("--"):
        if args[0] == "--fast":
            fast, args = True, args[1:]
            continue
        if args[0] == "--reps":
            reps = int(args[1])
        elif args[0] == "--chunk":
            chunk = int(args[1])
        else:
            raise SystemExit(__doc__)
        args = args[2:]
    if len(args) < 2:
        raise SystemExit(__doc__)
    path, texts = args[0], args[1:]

    loads = []
    for _ in range(reps):
        t = time.perf_counter()
        tok = Tokenizer.from_file(path)
        loads.append(1e3 * (time.perf_counter() - t))
    print(f"tokenizers {tokenizers.__version__} (Python {platform.python_version()}), {path}: "
          f"load best {min(loads):.1f} ms, median {statistics.median(loads):.1f} ms")
    print("json: " + json.dumps({"impl": "hf", "version": tokenizers.__version__, "what": "load", "tokenizer": path,
                                 "best_ms": round(min(loads), 2), "median_ms": round(statistics.median(loads), 2)}))
    for text_path in texts:
        data = open(text_path, "rb").read()
        cuts = cuts_of(data, chunk)
        pieces = [data[cuts[k]:cuts[k + 1]].decode("utf-8") for k in range(len(cuts) - 1)]
        rates, cpu_rates, ids = [], [], []
        for _ in range(reps):
            ids = []
            w, c = time.perf_counter(), time.process_time()
            if fast:
                for p in pieces:
                    ids.extend(tok.encode_batch_fast([p], add_special_tokens=False)[0].ids)
            else:
                for p in pieces:
                    ids.extend(tok.encode(p, add_special_tokens=False).ids)
            dw, dc = time.perf_counter() - w, time.process_time() - c
            rates.append(len(data) / dw / 1e6)
            cpu_rates.append(len(data) / dc / 1e6 if dc > 0 else float("inf"))
        h = fnv1a_ids(ids)
        print(f"  {text_path} ({'encode_batch_fast' if fast else 'encode'}): {len(data) / 1e6:.2f} MB, {len(pieces)} calls: best {max(rates):.2f} MB/s, "
              f"median {statistics.median(rates):.2f} MB/s (cpu best {max(cpu_rates):.2f}, "
              f"median {statistics.median(cpu_rates):.2f}); {len(ids)} ids, hash {h:016x}")
        print("json: " + json.dumps({"impl": "hf", "version": tokenizers.__version__,
                                     "what": "encode_batch_fast" if fast else "encode", "tokenizer": path,
                                     "text": text_path, "bytes": len(data), "calls": len(pieces),
                                     "best_mb_s": round(max(rates), 3), "median_mb_s": round(statistics.median(rates), 3),
                                     "cpu_best_mb_s": round(max(cpu_rates), 3),
                                     "cpu_median_mb_s": round(statistics.median(cpu_rates), 3),
                                     "ids": len(ids), "hash": f"{h:016x}"}))


if __name__ == "__main__":
    main()
