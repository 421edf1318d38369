#!/usr/bin/env python3
"""make_tokenizer_golden.py — golden token ids from Hugging Face `tokenizers` for glmoe's tokenizer tests.

For each tokenizer variant below it encodes a broad set of texts with HF tokenizers (the Rust
library, through its Python package) and writes tests/data/tokenizers/golden/<variant>.jsonl, which
tests/unit/test_tokenizer.c replays against glmoe's C tokenizer.

Variants are built from the real tokenizer.json files in tests/data/tokenizers/<base>/ by plain
text edits that the C test repeats byte for byte:
  "replace": [[old, new], ...]  substring replacements, each old string occurring exactly once;
  "append":  {key: value, ...}  members added at the end of the top-level object (JSON's last
                                duplicate key wins in both HF and jansson).
That is how the GLM-4.5 pre-tokenizer pattern is tested without GLM-4.5's own tokenizer.json (the
Qwen3 vocabulary with GLM's Split regex, which differs from Qwen3's only in \\p{N}{1,3}), and how
the less common features (split behaviours, Digits, normalizers, lstrip/rstrip/single_word added
tokens, TemplateProcessing, ignore_merges) are exercised on a real vocabulary.

File format, one JSON object per line:
  line 1: {"variant", "base", "replace", "append", "tokenizers_version", "python", "date", "n_cases"}
  then per case: {"input": str, or "input_repeat": [piece, count] (the input is piece * count),
                  "ids": encode(add_special_tokens=False),
                  "ids_plain": ids with encode_special_tokens=True (only when different),
                  "ids_add": encode(add_special_tokens=True) (only when different),
                  "decoded": decode(ids, skip_special_tokens=False) (only when != input),
                  "decoded_skip": decode(ids, skip_special_tokens=True) (only when != decoded)}

Run from the repository root:  python3 tools/reference/make_tokenizer_golden.py
Needs: pip install tokenizers (written with 0.23.3). Runs single-threaded (RAYON_NUM_THREADS=1).
"""
import datetime
import gzip
import json
import os
import platform
import sys

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import tokenizers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.path.join(ROOT, "tests", "data", "tokenizers")
OUT = os.path.join(DATA, "golden")

# GLM-4.5's pre-tokenizer pattern (spec glm4_moe.md section 4.1) and Qwen3's, as regexes.
GLM_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def base_text(base):
    with gzip.open(os.path.join(DATA, base, "tokenizer.json.gz"), "rt", encoding="utf-8", newline="") as f:
        return f.read()


def apply_edits(text, replace, append):
    """The same edits tests/unit/test_tokenizer.c makes (keep the two in step)."""
    for old, new in replace:
        if text.count(old) != 1:
            raise SystemExit(f"replace: {old!r} occurs {text.count(old)} times, expected once")
        text = text.replace(old, new)
    if append:
        body = text.rstrip()
        assert body.endswith("}")
        extra = "".join(", " + json.dumps(k) + ": " + json.dumps(v, ensure_ascii=False) for k, v in append.items())
        text = body[:-1] + extra + "}"
    return text


# ---- the text set ----------------------------------------------------------------------------

def texts_main():
    t = []
    # ASCII, punctuation
    t += ["", " ", "a", "Hello world", "Hello, World! How are you?", "The quick brown fox jumps over the lazy dog.",
          "punctuation: ,.!?;:'\"()[]{}<>@#$%^&*-_=+\\|/~`", "...", "?!?!", "--", "a-b_c.d", "e.g. i.e. etc.",
          "UPPER lower MiXeD CaSe", "x" * 3, "ALLCAPSWORD", "snake_case_name CamelCaseName kebab-case-name"]
    # runs of spaces and tabs
    for k in range(1, 13):
        t.append(" " * k)
        t.append("a" + " " * k + "b")
        t.append("\t" * k)
    t += [" \t \t ", "\t a \t b \t", "word   ", "   word", "  two  spaces  ", " \t\n \t\n", "a \n b", "a  \n\n  b"]
    # line ends
    t += ["\n", "\r\n", "\r", "\n\n", "\r\n\r\n", "\r\r", "a\nb", "a\r\nb", "a\rb", "a\r\r\nb", "line one\nline two\r\nline three\rend",
          "\n\n\n\n\n", "trailing newline\n", "\r\n leading", "x\n\ty\n\t\tz", "  \r\n  ", "a\n\n\n b"]
    # digits of every length, number formats, other numerals
    for k in range(1, 25):
        t.append("".join(str((i * 7 + 3) % 10) for i in range(k)))
    t += ["1 22 333 4444 55555 666666", "3.14159", "1,234,567.89", "-42", "+1-800-555-0199", "2024-01-31T12:34:56Z",
          "0x1F 0b1010 0o17", "1e-10", "abc123def4567ghi", "v1.2.3", "٠١٢٣٤٥٦٧٨٩", "١٢ ١٢٣٤", "１２３４５", "²³¹ ½ ⅞",
          "४२ ৫৬ ๑๒๓", "Ⅻ ⅻ", "100%", "$1,000", "€20,00", "12:30pm"]
    # contractions in any letter case
    for w in ["I'm", "you're", "we've", "they'll", "she'd", "it's", "don't", "can't", "won't", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"]:
        t += [w, w.upper(), w.title(), w.swapcase()]
    t += ["I'M YOU'RE WE'VE THEY'LL SHE'D IT'S", "rock'n'roll", "''s", "'S'", "‘s ’s ’S", "o'clock O'CLOCK", "'''", "x's'd"]
    # CJK, Korean
    t += ["你好，世界！", "今天天气很好，我们去公园散步吧。", "人工智能正在改变世界，大型语言模型的发展非常迅速。",
          "日本語のテキストです。", "こんにちは、世界。カタカナとひらがな。", "東京は日本の首都です",
          "한국어 텍스트입니다. 안녕하세요!", "漢字かなカナ한글Latin", "「引用」『二重』（括弧）【見出し】",
          "中文English混合123数字", "㐀㐁𠀀𠀁𪚥", "龘靐齉"]
    # Arabic, Hebrew, Devanagari, Thai, other scripts
    t += ["مرحبا بالعالم", "السَّلَامُ عَلَيْكُمْ", "שלום עולם", "नमस्ते दुनिया", "हिन्दी में लिखा गया पाठ। क्षत्रिय",
          "สวัสดีชาวโลก", "ภาษาไทยไม่มีช่องว่างระหว่างคำ", "বাংলা ভাষা", "தமிழ் மொழி", "Ελληνικά κείμενο", "Привет, мир!",
          "ქართული", "Հայերեն", "ᚠᚢᚦᚨᚱᚲ", "ሰላም ልዑል", "Tiếng Việt có dấu", "Ünïcödé Ñoño façade naïve"]
    # emoji: skin tones, ZWJ sequences, flags, keycaps, variation selectors
    t += ["👍", "👍🏽", "👋🏿👋🏻", "👨‍👩‍👧‍👦", "👩🏽‍💻", "🏳️‍🌈", "🏴‍☠️", "🇺🇸🇯🇵🇩🇪", "🇺", "1️⃣ #️⃣", "❤️ ❤", "☺️☺",
          "😀😃😄😁", "hello 👋 world 🌍!", "🤷‍♂️🤷‍♀️", "🧑‍🤝‍🧑", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]
    # combining marks (NFC changes some of these for Qwen3), zero-width characters, odd spaces
    t += ["e\u0301", "cafe\u0301", "A\u030A", "\u00C5", "a\u0308\u0301", "n\u0303", "Z\u0335\u0322\u031Ba\u0334l\u0337g\u0336o",
          "\u1100\u1161\u11A8", "\u1100\u1161", "\uAC00\u11A8", "\u0915\u094D\u0937", "ﬁ ﬂ", "Ａｂｃ", "ｶﾀｶﾅ", "\u212B",
          "\u200b", "a\u200bb", "\u200c\u200d", "a\u200db", "\ufeffBOM", "\u2060", "\u00a0", "a\u00a0b", "\u2003em space",
          "\u3000ideographic", "a\u202fb", "\u180e", "\u2028\u2029", "x\u0085y"]
    # control characters, replacement character, private use, astral
    t += ["\x00", "a\x00b", "\x01\x02\x03", "\x7f", "\x1b[31mred\x1b[0m", "\ufffd", "\ue000\uf8ff", "\U0001F9FF", "\U0010FFFD",
          "\U0001D400\U0001D401", "\u0378"]
    # code
    t += ["def f(x):\n    return x * 2  # double\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
          "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }",
          '{"key": [1, 2.5, true, null], "nested": {"a": "b"}}', "<div class=\"x\">Hello &amp; <b>bye</b></div>",
          "https://example.com/path?q=1&r=two#frag", "SELECT * FROM t WHERE a >= 10 AND b <> 'x';",
          "$ ls -la | grep '\\.c$' > out.txt 2>&1", "x = [i**2 for i in range(10) if i % 2 == 0]",
          "const f = async () => { await fetch(`/api/${id}`); };", "    indented code\n        more", "a->b; c::d; e?.f ?? g",
          "/* comment */ // line", "\\n\\t\\\\", "~~~~~~~~~~", "============", "____init____", "#!/usr/bin/env python3"]
    # special tokens inside text (each family's own; the others are plain text for it)
    t += ["<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "<|im_start|><|im_start|>", "<|im_start", "|im_start|>",
          "x<|endoftext|>y", "<think>\nreasoning\n</think>\n\nanswer", "<|im_end|>!", "a <|im_start|> b", "<|fim_prefix|>code<|fim_suffix|>",
          "<｜begin▁of▁sentence｜>Hello", "<｜User｜>hi<｜Assistant｜>", "<｜end▁of▁sentence｜>", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>",
          "[gMASK]<sop><|user|>\nhi<|assistant|>", "<<|im_start|>>", "<|im_start|>\u00a0<|im_end|>"]
    # long inputs are written as repeats to keep the files small
    return t


REPEATS = [
    ["a", 20000], [" ", 5000], ["\t", 1000], ["\n", 3000], ["ab ", 4000], ["1234567890", 1000], ["xyz", 3000],
    ["The quick brown fox jumps over the lazy dog. ", 400], ["今天天气很好我们去公园散步", 300], ["안녕하세요", 500],
    ["👍🏽", 500], ["e\u0301", 1000], ["def f(x):\n    return x\n\n", 300], ["<|im_start|>", 200],
    ["abcdefghijklmnopqrstuvwxyz", 200],
]


def texts_small():
    """A shorter set for the feature variants: enough to exercise every branch."""
    return ["", "Hello world", "Hello,  world!  How are you?", "a b  c   d", "  leading and trailing  ", "x\n\ny\r\nz",
            "The year 2024 had 366 days; 1,234,567 people.", "abc123def", "٣٤٥ and １２３", "I'M here, you're there",
            "e\u0301 cafe\u0301 \u212B ﬁ Ａｂｃ ｶﾀｶﾅ ½", "你好，世界！ 日本語", "👍🏽 👨‍👩‍👧‍👦", "hello<lsr>world", "a <lsr> b",
            "  <lsr>  ", "<lsr><lsr>", "hello hello, xhello hellox hello_", "<|im_start|>user\nhi<|im_end|>",
            "mark ｍａｒｋ Mark", "tab\there", "a1bbb2", "x12y 3 45z", "...!!!???", "a-b-c", "don't stop", "x" * 300, "word " * 50]


# ---- variants --------------------------------------------------------------------------------

BL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
QWEN_SPLIT = {"type": "Split", "pattern": {"Regex": QWEN_PATTERN}, "behavior": "Isolated", "invert": False}


def seq(*steps):
    return {"type": "Sequence", "pretokenizers": list(steps)}


def split(pattern, behavior, invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern}, "behavior": behavior, "invert": invert}


VARIANTS = [
    {"variant": "qwen3", "base": "qwen3", "texts": "main"},
    {"variant": "deepseek_v3", "base": "deepseek_v3", "texts": "main"},
    {"variant": "glm45_pattern", "base": "qwen3", "texts": "main",
     "replace": [["\\\\p{N}| ?[^", "\\\\p{N}{1,3}| ?[^"]]},
    {"variant": "split_removed_literal", "base": "qwen3", "texts": "small",
     "append": {"pre_tokenizer": seq(split(" ", "Removed", literal=True), dict(BL, add_prefix_space=True))}},
    {"variant": "split_merged_previous", "base": "qwen3", "texts": "small",
     "append": {"pre_tokenizer": seq(split(r"\s+", "MergedWithPrevious"), BL)}},
    {"variant": "split_merged_next", "base": "qwen3", "texts": "small",
     "append": {"pre_tokenizer": seq(split(r"[,.!?;]", "MergedWithNext"), QWEN_SPLIT, BL)}},
    # Contiguous is the same with or without invert; Removed with invert keeps only the matches.
    {"variant": "split_contiguous_removed_invert", "base": "qwen3", "texts": "small",
     "append": {"pre_tokenizer": seq(split(r"\s", "Contiguous"), split(r"[\p{L}\p{N}]+", "Removed", invert=True), BL)}},
    # [h\p{N}]* also matches the empty string everywhere: onig's find_iter drops an empty match
    # right after a non-empty one, which MergedWithNext makes visible ("hello" -> "he" "l" "l" "o").
    {"variant": "split_empty_matches", "base": "qwen3", "texts": "small",
     "append": {"pre_tokenizer": seq(split(r"[h\p{N}]*", "MergedWithNext"), BL)}},
    {"variant": "split_word_boundaries", "base": "qwen3", "texts": "small",
     "append": {"pre_tokenizer": seq(split(r"\b", "Isolated"), BL)}},
    {"variant": "digits_bytelevel_gpt2", "base": "qwen3", "texts": "small",
     "append": {"pre_tokenizer": seq({"type": "Digits", "individual_digits": True},
                                     {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True})}},
    {"variant": "digits_contiguous", "base": "deepseek_v3", "texts": "small",
     "append": {"pre_tokenizer": seq({"type": "Digits", "individual_digits": False}, BL)}},
    {"variant": "normalizers", "base": "qwen3", "texts": "small",
     "append": {"normalizer": {"type": "Sequence", "normalizers": [
         {"type": "NFKC"}, {"type": "Replace", "pattern": {"String": "  "}, "content": " "},
         {"type": "Replace", "pattern": {"Regex": r"\d"}, "content": "#"}, {"type": "Prepend", "prepend": "\u2581"}]}}},
    {"variant": "nfd", "base": "qwen3", "texts": "small", "append": {"normalizer": {"type": "NFD"}}},
    {"variant": "nfkd", "base": "deepseek_v3", "texts": "small", "append": {"normalizer": {"type": "NFKD"}}},
    {"variant": "added_token_options", "base": "qwen3", "texts": "small", "append": {"normalizer": {"type": "NFKC"}},
     "extra_tokens": [
         {"content": "<lsr>", "single_word": False, "lstrip": True, "rstrip": True, "normalized": False, "special": True},
         {"content": "hello", "single_word": True, "lstrip": False, "rstrip": False, "normalized": False, "special": False},
         {"content": "ｍａｒｋ", "single_word": False, "lstrip": False, "rstrip": False, "normalized": True, "special": False},
         {"content": "\u212B", "single_word": False, "lstrip": False, "rstrip": True, "normalized": True, "special": True}]},
    {"variant": "template", "base": "qwen3", "texts": "small",
     "append": {"post_processor": {"type": "Sequence", "processors": [
         {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
         {"type": "TemplateProcessing",
          "single": [{"SpecialToken": {"id": "<|im_start|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<|im_end|>", "type_id": 0}}],
          "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
          "special_tokens": {"<|im_start|>": {"id": "<|im_start|>", "ids": [151644], "tokens": ["<|im_start|>"]},
                             "<|im_end|>": {"id": "<|im_end|>", "ids": [151645], "tokens": ["<|im_end|>"]}}}]}}},
    # Qwen3 reaches every vocabulary token through merges, so ignore_merges alone changes nothing;
    # dropping the merge that makes "hello" makes the option visible.
    {"variant": "ignore_merges", "base": "qwen3", "texts": "small",
     "replace": [['"ignore_merges": false', '"ignore_merges": true'],
                 ['[\n        "h",\n        "ello"\n      ],', '']]},
    {"variant": "merge_removed", "base": "qwen3", "texts": "small",
     "replace": [['[\n        "h",\n        "ello"\n      ],', '']]},
]


def with_extra_tokens(v, text):
    """Appends added tokens, giving each the id HF assigns (found by loading once)."""
    base = json.loads(text)
    tokens = base["added_tokens"] + [dict(t, id=0) for t in v["extra_tokens"]]
    probe = Tokenizer.from_str(apply_edits(text, v.get("replace", []), dict(v.get("append", {}), added_tokens=tokens)))
    for t in tokens[len(base["added_tokens"]):]:
        t["id"] = probe.token_to_id(t["content"])
    v["append"] = dict(v.get("append", {}), added_tokens=tokens)


def case(tok, inp, tok_plain):
    ids = tok.encode(inp, add_special_tokens=False).ids
    c = {"input": inp, "ids": ids}
    plain = tok_plain.encode(inp, add_special_tokens=False).ids
    if plain != ids:
        c["ids_plain"] = plain
    add = tok.encode(inp, add_special_tokens=True).ids
    if add != ids:
        c["ids_add"] = add
    dec = tok.decode(ids, skip_special_tokens=False)
    if dec != inp:
        c["decoded"] = dec
    skip = tok.decode(ids, skip_special_tokens=True)
    if skip != dec:
        c["decoded_skip"] = skip
    return c


def main():
    os.makedirs(OUT, exist_ok=True)
    texts = {"main": texts_main(), "small": texts_small()}
    for v in VARIANTS:
        text = base_text(v["base"])
        if "extra_tokens" in v:
            with_extra_tokens(v, text)
        edited = apply_edits(text, v.get("replace", []), v.get("append", {}))
        tok = Tokenizer.from_str(edited)
        tok_plain = Tokenizer.from_str(edited)
        tok_plain.encode_special_tokens = True
        if v["variant"] == "glm45_pattern":
            pattern = json.loads(edited)["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
            assert pattern == GLM_PATTERN, pattern
            assert json.loads(text)["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] == QWEN_PATTERN
        cases = [case(tok, t, tok_plain) for t in texts[v["texts"]]]
        if v["texts"] == "main":
            for piece, count in REPEATS:
                c = case(tok, piece * count, tok_plain)
                del c["input"]
                c = {"input_repeat": [piece, count], **c}
                if c.get("decoded") == piece * count:
                    del c["decoded"]
                cases.append(c)
        header = {"variant": v["variant"], "base": v["base"], "replace": v.get("replace", []), "append": v.get("append", {}),
                  "tokenizers_version": tokenizers.__version__, "python": platform.python_version(),
                  "date": datetime.date.today().isoformat(), "n_cases": len(cases)}
        path = os.path.join(OUT, v["variant"] + ".jsonl")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(header, ensure_ascii=False) + "\n")
            for c in cases:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
        print(f"{path}: {len(cases)} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
