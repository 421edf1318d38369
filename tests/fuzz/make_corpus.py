#!/usr/bin/env python3
"""make_corpus.py — writes the seed corpora of the libFuzzer targets, tests/fuzz/corpus/<target>/,
from real files in the repository (standard library only; run from anywhere):

  safetensors       small files cut from the golden checkpoints: the smallest tensors of a real
                    shard with its real header fields (padded, and MLX-style unpadded), the edge
                    cases of the safetensors spec that load (empty header, scalar, zero-size) and
                    14 of its hostile cases (§8: LFS pointer, wrap, gap, overlap, overflow, ...)
  safetensors_index the real model.safetensors.index.json files (tests/golden/*, the demo model)
  config            each real config.json, a NUL byte, and its generation_config.json
  tokenizer_load    the demo model's, Qwen3's and DeepSeek-V3's tokenizer.json cut to the 256 byte
                    tokens plus the first merges, with every other part (added tokens, normalizer,
                    pre-tokenizer, post-processor, decoder) kept
  tokenizer_encode  a mode byte + texts: inputs of the tokenizer golden files, held-out text
  chat              an options byte + messages [+ NUL + tools] of the chat golden files
  tool_calls        the tool-call turns inside the golden renders, and plain replies
  chat_stream       assistant turns written by hand in both styles (reasoning, content, calls, and
                    the cases that go wrong elsewhere), each behind a flags byte and a cuts seed
  cli_ids           id lists as the CLI tests and README write them

Run it again after the source files change; the output is deterministic.
"""
import gzip
import hashlib
import json
import os
import re
import shutil
import struct

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, data, name=None):
    if isinstance(data, str):
        data = data.encode("utf-8")
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def st_file(header, blobs, pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def safetensors():
    for path in ["tests/golden/odd_dims/model.safetensors",
                 "tests/golden/air_like/model-00004-of-00004.safetensors",
                 "tests/golden/glm45_like/model-00001-of-00005.safetensors"]:
        with open(os.path.join(ROOT, path), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            hdr = json.loads(f.read(n))
            data = f.read()
        meta = hdr.pop("__metadata__", None)
        by_size = sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0])
        small, total = [], 0
        for kv in by_size:  # the smallest tensors, up to 1 KiB of data (small inputs mutate faster)
            size = kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0]
            if small and total + size > 1024:
                break
            small.append(kv)
            total += size
        out, blobs, off = {}, [], 0
        if meta is not None:
            out["__metadata__"] = meta
        for name, info in small:
            b, e = info["data_offsets"]
            blobs.append(data[b:e])
            out[name] = {"dtype": info["dtype"], "shape": info["shape"], "data_offsets": [off, off + e - b]}
            off += e - b
        base = os.path.basename(os.path.dirname(path))
        put("safetensors", st_file(out, blobs), base + "_small")
        put("safetensors", st_file(out, blobs, pad=False), base + "_small_unpadded")
    put("safetensors", st_file({}, []), "empty_header")
    # hostile cases of spec §8 (each refused), so the fuzzer starts next to every check
    def raw(n, text, data=b""):
        return struct.pack("<Q", n) + text + data
    t = lambda dt, shape, b, e: {"dtype": dt, "shape": shape, "data_offsets": [b, e]}
    hostile = {
        "h03_lfs_pointer": b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 12\n",
        "h04_short_header": raw(60, b'{"a":'),
        "h05_wrap": raw(2**64 - 8, b"{}"),
        "h09_bom": raw(5, b"\xef\xbb\xbf{}"),
        "h20_gap": st_file({"a": t("U8", [16], 0, 16), "b": t("U8", [16], 20, 36)}, [bytes(36)]),
        "h21_overlap": st_file({"a": t("U8", [16], 0, 16), "b": t("U8", [16], 8, 24)}, [bytes(24)]),
        "h22_end_before_begin": st_file({"a": t("U8", [16], 16, 0)}, [bytes(16)]),
        "h23_size_mismatch": st_file({"a": t("I32", [2, 2], 0, 4)}, [bytes(4)]),
        "h24_overflow": st_file({"a": t("I32", [2, 18446744073709551614], 0, 8)}, [bytes(8)]),
        "h26_f4_odd": st_file({"a": t("F4", [3], 0, 2)}, [bytes(2)]),
        "h27_past_file": st_file({"a": t("U8", [1099511627776], 0, 1099511627776)}, [bytes(4)]),
        "h13_dtype": st_file({"a": t("float16", [2], 0, 4)}, [bytes(4)]),
        "h16_metadata": st_file({"__metadata__": {"n": 1}, "a": t("U8", [1], 0, 1)}, [b"x"]),
    }
    # two "w" keys: the first an empty tensor (the variant the reference accepts, spec case 17)
    dup = b'{"w":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}'
    hostile["h17_duplicate"] = raw(len(dup), dup, bytes(4))
    for name, data in hostile.items():
        put("safetensors", data, name)
    put("safetensors", st_file({"__metadata__": None, "s": {"dtype": "I32", "shape": [], "data_offsets": [0, 4]},
                                "z": {"dtype": "F16", "shape": [2, 0], "data_offsets": [4, 4]},
                                "h": {"dtype": "F4", "shape": [4], "data_offsets": [4, 6]}},
                               [b"\x01\x02\x03\x04", b"\x12\x34"]), "scalar_zero_f4")


def safetensors_index():
    for case in ["shared2", "air_like", "mtp"]:
        with open(os.path.join(ROOT, "tests/golden", case, "model.safetensors.index.json"), "rb") as f:
            put("safetensors_index", f.read(), case)
    with open(os.path.join(ROOT, "tests/golden/shared2/model.safetensors.index.json")) as f:
        idx = json.load(f)
    # the fixture's shards with a few names only (small inputs mutate faster)
    wm = dict(list(idx["weight_map"].items())[:6])
    put("safetensors_index", json.dumps({"metadata": {"total_size": 24}, "weight_map": wm}, indent=2), "shared2_six")
    with open(os.path.join(ROOT, "models/glmoe-demo/model.safetensors.index.json"), "rb") as f:
        put("safetensors_index", f.read(), "glmoe_demo")


def config():
    cases = [os.path.join(ROOT, "models/glmoe-demo")] + \
        [os.path.join(ROOT, "tests/golden", c) for c in sorted(os.listdir(os.path.join(ROOT, "tests/golden")))
         if os.path.isfile(os.path.join(ROOT, "tests/golden", c, "config.json"))]
    for d in cases:
        with open(os.path.join(d, "config.json"), "rb") as f:
            cfg = f.read()
        gen = b""
        if os.path.exists(os.path.join(d, "generation_config.json")):
            with open(os.path.join(d, "generation_config.json"), "rb") as f:
                gen = b"\0" + f.read()
        put("config", cfg + gen, os.path.basename(d))
    # An MLX-quantized config: the quantization block (and its copy) with per-module overrides of
    # other bits and group sizes, one module kept in float, and a null field (mlx-lm #935).
    with open(os.path.join(ROOT, "models/glmoe-demo/config.json")) as f:
        c = json.load(f)
    block = {"group_size": 64, "bits": 4, "mode": "affine",
             "lm_head": {"group_size": 64, "bits": 6},
             "model.layers.1.mlp.switch_mlp.down_proj": {"group_size": 32, "bits": 8, "mode": "affine"},
             "model.layers.2.self_attn.v_proj": {"group_size": None, "bits": 3},
             "model.layers.0.self_attn.q_proj": False}
    c["quantization"] = block
    c["quantization_config"] = block
    put("config", json.dumps(c, indent=4).encode(), "glmoe_demo_mlx_mixed")


def load_tokenizer(rel):
    p = os.path.join(ROOT, rel)
    with (gzip.open(p, "rb") if p.endswith(".gz") else open(p, "rb")) as f:
        return json.loads(f.read())


def tokenizer_load():
    for name, rel in [("glmoe_demo", "models/glmoe-demo/tokenizer.json"),
                      ("qwen3", "tests/data/tokenizers/qwen3/tokenizer.json.gz"),
                      ("deepseek_v3", "tests/data/tokenizers/deepseek_v3/tokenizer.json.gz")]:
        tok = load_tokenizer(rel)
        model = tok["model"]
        vocab = model["vocab"]
        by_id = sorted(vocab.items(), key=lambda kv: kv[1])
        # the 256 byte-level characters, then whatever the first merges build
        byte_chars = [t for t, _ in by_id if len(t) == 1][:256]
        keep = {t: i for i, t in enumerate(byte_chars)}
        merges = []
        for m in model["merges"]:
            a, b = (m.split(" ") if isinstance(m, str) else m)
            if a in keep and b in keep and (a + b) in vocab:
                merges.append(m)
                if a + b not in keep:
                    keep[a + b] = len(keep)
            if len(merges) == 40:
                break
        model["vocab"] = keep
        model["merges"] = merges
        added = []
        for t in tok["added_tokens"][:6]:
            t = dict(t)
            t["id"] = keep[t["content"]] if t["content"] in keep else len(keep) + len(added)
            added.append(t)
        tok["added_tokens"] = added
        # a TemplateProcessing must name ids that still exist
        pp = tok.get("post_processor")
        if pp and "TemplateProcessing" in json.dumps(pp):
            tok["post_processor"] = None
        put("tokenizer_load", json.dumps(tok, ensure_ascii=False, indent=1), name + "_cut")
        # the same with a TemplateProcessing post-processor around the first added token
        if added:
            a = added[0]
            tok["post_processor"] = {"type": "TemplateProcessing",
                                     "single": [{"SpecialToken": {"id": a["content"], "type_id": 0}},
                                                {"Sequence": {"id": "A", "type_id": 0}}],
                                     "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
                                     "special_tokens": {a["content"]: {"id": a["content"], "ids": [a["id"]],
                                                                        "tokens": [a["content"]]}}}
            put("tokenizer_load", json.dumps(tok, ensure_ascii=False, separators=(",", ":")), name + "_cut_template")


def tokenizer_encode():
    texts = []
    gold = os.path.join(ROOT, "tests/data/tokenizers/golden")
    for fn in ["glm45_pattern.jsonl", "deepseek_v3.jsonl", "qwen3.jsonl", "added_token_options.jsonl", "nfkd.jsonl"]:
        with open(os.path.join(gold, fn), encoding="utf-8") as f:
            lines = [json.loads(l) for l in f][1:]
        for case in lines[::max(1, len(lines) // 12)]:
            if isinstance(case.get("input"), str):
                texts.append(case["input"])
    with open(os.path.join(ROOT, "models/glmoe-demo/heldout.txt"), encoding="utf-8") as f:
        held = f.read()
    texts += [held[:300], held[5000:5600]]
    texts += ["<|endoftext|>[gMASK]<sop><|user|>\nHello<|assistant|>", "<｜begin▁of▁sentence｜>hi<|im_start|>"]
    for i, t in enumerate(texts):
        put("tokenizer_encode", bytes([i % 16]) + t.encode("utf-8"))


def chat():
    for fn, style in [("glm45_golden.jsonl", 0), ("glm47_golden.jsonl", 1)]:
        with open(os.path.join(ROOT, "tests/data/chat", fn), encoding="utf-8") as f:
            cases = [json.loads(l) for l in f]
        for c in cases:
            if "messages" not in c or c["name"].startswith("random_0") and c["name"] > "random_008":
                continue
            opt = (1 if c.get("add_generation_prompt", True) else 0)
            et = c.get("enable_thinking")
            opt |= (0 if et is None else 1 if et is False else 2) << 1
            ct = c.get("clear_thinking")
            opt |= (0 if ct is None else 1 if ct is False else 2) << 3
            opt |= style << 5
            data = bytes([opt]) + json.dumps(c["messages"], ensure_ascii=False).encode()
            if c.get("tools") is not None:
                data += b"\0" + json.dumps(c["tools"], ensure_ascii=False).encode()
            put("chat", data, f"{style}_{c['name']}")


def tool_calls():
    seen = set()
    for fn in ["glm45_golden.jsonl", "glm47_golden.jsonl"]:
        with open(os.path.join(ROOT, "tests/data/chat", fn), encoding="utf-8") as f:
            for l in f:
                exp = json.loads(l).get("expected", "")
                for m in re.finditer(r"<\|assistant\|>(.*?)(?=<\|(?:user|observation|system|assistant)\|>|$)", exp, re.S):
                    turn = m.group(1)
                    if "<tool_call>" in turn and turn not in seen:
                        seen.add(turn)
                        put("tool_calls", b"\1" + turn.encode())
    put("tool_calls", b"\0\n<think>Let me check.</think>\nThe answer is 4.", "plain")
    put("tool_calls", b"\1<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"
        b"<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>", "weather")


def chat_stream():
    # byte 0: bit 0 a tools list, bit 1 the turn starts inside <think>; byte 1: where to cut
    turns = {
        "45_content": (0, "\nThe capital of France is Paris."),
        "45_reasoning_content": (0, "\n<think>The user asks for 2+2. That is 4.</think>\nThe answer is 4."),
        "45_reasoning_call": (1, "\n<think>I need the weather.</think>\n<tool_call>get_weather\n<arg_key>city"
                                 "</arg_key>\n<arg_value>Paris</arg_value>\n<arg_key>days</arg_key>\n"
                                 "<arg_value>3</arg_value>\n</tool_call>"),
        "45_parallel": (1, "\n<think>Two.</think>\nChecking.\n<tool_call>get_weather\n<arg_key>city</arg_key>\n"
                           "<arg_value>東京</arg_value>\n</tool_call>\n<tool_call>get_time\n</tool_call>"),
        "45_values": (0, "\n<tool_call>f\n<arg_key>o</arg_key>\n<arg_value>{\"a\": [1, 2.5, true, null]}"
                         "</arg_value>\n<arg_key>s</arg_key>\n<arg_value>\"q\" \\ \n 😀</arg_value>\n"
                         "<arg_key>n</arg_key>\n<arg_value>007</arg_value>\n</tool_call>"),
        "45_call_in_reasoning": (0, "\n<think>Use <tool_call>get_weather\n<arg_key>city</arg_key>?</think>\nNo."),
        "45_not_tags": (0, "\n<think>a < b, </thin</think>\nx <tool y <tool_ca"),
        "45_empty_think": (0, "\n<think></think>\nHello!"),
        "45_after_calls": (1, "<tool_call>get_time\n</tool_call>\nDone <tool_call>get_time</tool_call> end"),
        "45_newlines": (0, "\n<think>\n\nA\n\n</think>\n\nB\n"),
        "47_reasoning_content": (2, "The user wants 2+2.</think>4"),
        "47_reasoning_call": (3, "Need it.</think><tool_call>get_weather<arg_key>city</arg_key><arg_value>Paris"
                                 "</arg_value><arg_key>days</arg_key><arg_value>2</arg_value></tool_call>"),
        "47_zero_args": (2, "</think><tool_call>get_time</tool_call><tool_call>get_time</tool_call>"),
        "47_thinking_off": (0, "Hello there. 你好 👋"),
        "47_cut_off_thinking": (2, "Still thinking about <tool_call> and"),
        "bad_unterminated_call": (0, "Sure. <tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris"),
        "bad_unterminated_value": (0, "<tool_call>f\n<arg_key>a</arg_key> <arg_value>1</tool_call>"),
        "bad_empty_name": (0, "<tool_call>\n<arg_key>a</arg_key><arg_value>1</arg_value></tool_call>"),
    }
    for name, (flags, text) in turns.items():
        put("chat_stream", bytes([flags, len(name)]) + text.encode(), name)
    put("chat_stream", b"\0\7caf\xc3\xa9 \xf0\x9f\x98\x80 ok", "utf8_cut")
    put("chat_stream", b"\0\7caf\xc3 <tool_call>f</tool_call>", "bad_utf8_content")
    put("chat_stream", b"\2\7ab\xff</think>", "bad_utf8_reasoning")


def cli_ids():
    for i, s in enumerate(["1,2,3", "151329, 151336", " 0 ,\t1,\n2 ", "2147483647", "10,20,30,40,50,60,70,80",
                           "1,2,", "-1", "1 2", "2147483648", ""]):
        put("cli_ids", s, f"ids_{i}")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    safetensors()
    safetensors_index()
    config()
    tokenizer_load()
    tokenizer_encode()
    chat()
    tool_calls()
    chat_stream()
    cli_ids()
    for t in sorted(os.listdir(OUT)):
        files = os.listdir(os.path.join(OUT, t))
        size = sum(os.path.getsize(os.path.join(OUT, t, x)) for x in files)
        print(f"{t}: {len(files)} files, {size} bytes")


if __name__ == "__main__":
    main()
