#!/usr/bin/env python3
"""make_chat_golden.py — golden renders of the GLM chat templates for tests/unit/test_chat.c.

Renders a fixed set of conversations (plus a seeded batch of random ones) with the official
templates, exactly the way Hugging Face transformers' `tokenizer.apply_chat_template(...,
tokenize=False)` does, and writes one case per line:

    tests/data/chat/chat_template.jinja        (GLM-4.5)  -> tests/data/chat/glm45_golden.jsonl
    tests/data/chat/glm47_chat_template.jinja  (GLM-4.7)  -> tests/data/chat/glm47_golden.jsonl

    {"name", "messages", "tools", "add_generation_prompt", "enable_thinking", "expected"}
    (GLM-4.7 lines also carry "clear_thinking")

`enable_thinking` / `clear_thinking` are null when the variable is not passed to the template at
all (the templates test `x is defined`).

How transformers renders (transformers/utils/chat_template_utils.py, _cached_compile_jinja_template
and render_jinja_template; tokenization_utils_base.py, apply_chat_template), reproduced here:
  - jinja2 ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols
    extension; `tojson` replaced by json.dumps(x, ensure_ascii=False, ...) (Jinja's own filter would
    HTML-escape); globals raise_exception, strftime_now, namespace.
  - Messages: keys whose value is None are dropped (_normalize_chat_messages); reasoning given as
    "reasoning_content", "thinking" or "reasoning" is copied into "reasoning_content", first non-None
    in that order (_alias_reasoning_fields, transformers >= 5).
  - The template variables are messages, tools, documents=None, add_generation_prompt, the tokenizer's
    special tokens (eos_token, pad_token, additional_special_tokens) and the caller's kwargs
    (enable_thinking only when given).
One step is the caller's, not transformers': an OpenAI tool call whose "arguments" is a JSON string is
parsed into an object before rendering (the template iterates `arguments.items()`; transformers' own
server does the same json.loads in cli/serving/utils.py). The golden file keeps the string form as the
input, so the C renderer is tested on the parsing too.

When transformers is importable, every case is also rendered through transformers' own
_normalize_chat_messages + render_jinja_template and must match (a second witness).

Usage: python3 tools/reference/make_chat_golden.py [--random N] [--seed S]
Needs jinja2 >= 3.1 (pip install jinja2). Prints the versions used; record them in
tests/data/chat/SOURCE.txt when regenerating.
"""
import argparse
import copy
import datetime
import json
import math
import os
import random
import struct
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "chat")
# The special tokens transformers passes to every template (this template reads none of them).
TOKENIZER_CONFIG = os.path.join(ROOT, "..", "shared", "data", "tokenizers", "glm45", "tokenizer_config.json")


# ---- the transformers environment ---------------------------------------------------------------

def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["namespace"] = jinja2.utils.Namespace
    return env


REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def prepare_messages(messages):
    """What apply_chat_template does to messages before rendering, plus the caller's parse of
    JSON-string tool-call arguments."""
    out = []
    for m in copy.deepcopy(messages):
        m = {k: v for k, v in m.items() if v is not None}
        reasoning = next((m[k] for k in REASONING_FIELDS if m.get(k) is not None), None)
        if reasoning is not None:
            m = {"thinking": reasoning, **m, "reasoning_content": reasoning}
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") or tc
            if isinstance(fn.get("arguments"), str):
                fn["arguments"] = json.loads(fn["arguments"])
        out.append(m)
    return out


def special_tokens():
    try:
        with open(TOKENIZER_CONFIG, encoding="utf-8") as f:
            cfg = json.load(f)
    except OSError:
        return {}
    return {k: cfg[k] for k in ("eos_token", "pad_token", "additional_special_tokens") if k in cfg}


def template_kwargs(case, specials):
    kwargs = dict(specials)
    for var in ("enable_thinking", "clear_thinking"):
        if case.get(var) is not None:
            kwargs[var] = case[var]
    return kwargs


def render(template, case, specials):
    kwargs = template_kwargs(case, specials)
    return template.render(messages=prepare_messages(case["messages"]), tools=case["tools"],
                           documents=None, add_generation_prompt=case["add_generation_prompt"],
                           **kwargs)


def render_with_transformers(source, case, specials):
    """The second witness: transformers' own functions, or None when it is not installed."""
    try:
        from transformers.utils import chat_template_utils as ctu
    except Exception:
        return None
    messages = copy.deepcopy(case["messages"])
    for m in messages:  # the caller's step, as above
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") or tc
            if isinstance(fn.get("arguments"), str):
                fn["arguments"] = json.loads(fn["arguments"])
    if hasattr(ctu, "_normalize_chat_messages"):
        messages = ctu._normalize_chat_messages(messages)
    kwargs = template_kwargs(case, specials)
    rendered, _ = ctu.render_jinja_template(conversations=[messages], tools=case["tools"],
                                            chat_template=source,
                                            add_generation_prompt=case["add_generation_prompt"],
                                            **kwargs)
    return rendered[0]


# ---- the conversations --------------------------------------------------------------------------

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 14, "default": 1},
            },
            "required": ["city"],
        },
    },
}

# Floats, escapes and non-ASCII in a tool schema: json.dumps must be reproduced exactly.
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search_docs",
        "description": "Recherche \"plein texte\" dans les documents — 検索\tavec\\sans filtre\n(bêta) 🚀",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "threshold": {"type": "number", "minimum": 0.0, "maximum": 1.0, "default": 0.35},
                "boost": {"type": "number", "default": 1e-07, "examples": [1e16, 1e15, 2.5e-05, 0.0001,
                                                                             -0.0, 123456789.125]},
                "max_results": {"type": "integer", "default": 10},
                "exact": {"type": "boolean", "default": False},
                "lang": {"type": ["string", "null"], "default": None},
                "ctrl": {"type": "string", "default": "\x01\x1f\x7f\u2028\u00e9"},
            },
            "required": ["query"],
        },
    },
}


def case(name, messages, tools=None, add_generation_prompt=True, enable_thinking=None,
         clear_thinking=None):
    return {"name": name, "messages": messages, "tools": tools,
            "add_generation_prompt": add_generation_prompt, "enable_thinking": enable_thinking,
            "clear_thinking": clear_thinking}


def fixed_cases():
    weather_call = {"type": "function", "function": {"name": "get_weather",
                                                     "arguments": {"city": "Paris", "days": 3}}}
    weather_call_str = {"id": "call_1", "type": "function",
                        "function": {"name": "get_weather",
                                     "arguments": "{\"city\": \"Paris\", \"unit\": \"celsius\"}"}}
    return [
        case("single_turn", [{"role": "user", "content": "What is 2+2?"}]),
        case("system_prompt", [SYSTEM, {"role": "user", "content": "What is 2+2?"}]),
        case("thinking_on_explicit", [SYSTEM, {"role": "user", "content": "What is 2+2?"}],
             enable_thinking=True),
        case("thinking_off", [SYSTEM, {"role": "user", "content": "What is 2+2?"}],
             enable_thinking=False),
        case("thinking_off_user_nothink", [{"role": "user", "content": "Quick answer please /nothink"}],
             enable_thinking=False),
        case("thinking_off_multi_turn", [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "Tell me a joke/nothink"},
            {"role": "assistant", "content": "Why did the chicken cross the road?"},
            {"role": "user", "content": "Another"}], enable_thinking=False),
        case("user_nothink_thinking_unset", [{"role": "user", "content": "Answer fast/nothink"}]),
        case("multi_turn_reasoning_dropped", [
            SYSTEM,
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!", "reasoning_content": "greet back"},
            {"role": "user", "content": "Tell me a joke"}]),
        case("multi_turn_final_assistant_keeps_reasoning", [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "  Hello!  ", "reasoning_content": "\n greet back \n"}],
            add_generation_prompt=False),
        case("reasoning_inline_think", [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "<think>\nThe user greets me.\n</think>\n\nHello there!"},
            {"role": "user", "content": "And now?"},
            {"role": "assistant", "content": "<think>They ask again.</think>Still here."}],
            add_generation_prompt=False),
        case("reasoning_inline_nested_tags", [
            {"role": "user", "content": "x"},
            {"role": "assistant",
             "content": "lead\n\n<think>\n first <think>\n\n second \n\n</think>\n\n middle </think>\n\n tail \n"}],
            add_generation_prompt=False),
        case("reasoning_empty_string_keeps_think_in_content", [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": "<think>kept</think>visible", "reasoning_content": ""}],
            add_generation_prompt=False),
        case("reasoning_alias_fields", [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b", "reasoning": "via reasoning"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d", "thinking": "via thinking"},
            {"role": "assistant", "content": "e", "reasoning": "via reasoning 2"},
            {"role": "assistant", "content": "f", "reasoning_content": None, "reasoning": "second wins"}],
            add_generation_prompt=False),
        case("tools_call_object_args_observation", [
            SYSTEM,
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "reasoning_content": "Need the tool",
             "tool_calls": [weather_call]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"}],
            tools=[WEATHER_TOOL]),
        case("tools_call_string_args", [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [weather_call_str]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 °C"},
            {"role": "assistant", "content": "It is sunny and 21 °C in Paris."},
            {"role": "user", "content": "Thanks"}],
            tools=[WEATHER_TOOL]),
        case("tools_two_calls_two_observations", [
            {"role": "user", "content": "Weather in Paris and Lyon?"},
            {"role": "assistant", "content": "",
             "tool_calls": [
                 {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                 {"type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
            {"role": "tool", "content": "Paris: 21"},
            {"role": "tool", "content": "Lyon: 24"}],
            tools=[WEATHER_TOOL, SEARCH_TOOL]),
        case("tools_values_of_every_type", [
            {"role": "user", "content": "search"},
            {"role": "assistant", "reasoning_content": "  plan it  ", "tool_calls": [
                {"type": "function", "function": {"name": "search_docs", "arguments": {
                    "query": "naïve \"quoted\" \\ text\nline2",
                    "threshold": 0.1, "boost": 1e-07, "big": 1e16, "notbig": 1e15, "neg": -2.5,
                    "int": 42, "bool": True, "none": None,
                    "list": [1, 2.0, "三", None, False, {"k": "v"}],
                    "obj": {"nested": {"deep": [1e-05, 0.0001]}, "ctrl": "\x01\t\u2028é"},
                    "empty_obj": {}, "empty_list": [], "empty_str": ""}}}]}],
            tools=[SEARCH_TOOL], enable_thinking=True),
        case("tools_only_no_messages_before_user", [{"role": "user", "content": "hi"}],
             tools=[WEATHER_TOOL]),
        case("tools_with_system", [SYSTEM, {"role": "user", "content": "hi"}], tools=[SEARCH_TOOL]),
        case("tool_call_flat_and_empty_args", [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": "ok", "tool_calls": [
                {"name": "ping", "arguments": {}},
                {"type": "function", "function": {"name": "noop", "arguments": "{}"}}]},
            {"role": "tool", "content": "pong"}],
            add_generation_prompt=True, enable_thinking=False),
        case("tool_first_message_and_list_content", [
            {"role": "tool", "content": "orphan result"},
            {"role": "tool", "content": ["first", {"output": "second"}]},
            {"role": "tool", "content": []},
            {"role": "user", "content": "hi"}]),
        case("tool_missing_content", [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": "b"}}}]},
            {"role": "tool"},
            {"role": "tool", "content": None}]),
        case("non_ascii", [
            {"role": "system", "content": "Tu es un assistant utile. 你是一个乐于助人的助手。"},
            {"role": "user", "content": "Привет! Как дела? 😀 — «ça va» ｶﾀｶﾅ 한국어"},
            {"role": "assistant", "content": "\u3000Très bien, merci ! 🎉\u00a0", "reasoning_content": "思考中……"},
            {"role": "user", "content": "日本語で答えてください。"}]),
        case("unicode_whitespace_strip", [
            {"role": "user", "content": "\u2003x\u2003"},
            {"role": "assistant", "content": "\u0085\u00a0\u1680\u2000\u200a\u2028\u2029\u202f\u205f\u3000\x1c\x1d\x1e\x1f\t\x0b\x0c\r\n y \u200b",
             "reasoning_content": "\u3000\u200bz\u3000"},
            {"role": "assistant", "content": "\u3000\u2028\u00a0", "reasoning_content": "\x1f\x1e"}],
            add_generation_prompt=False),
        case("content_parts", [
            {"role": "system", "content": [{"type": "text", "text": "sys "}, {"type": "text", "text": "prompt"}]},
            {"role": "user", "content": [{"type": "text", "text": "look: "}, {"type": "image", "url": "x.png"},
                                         "plain part", {"type": "text"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "<think>r</think> seen"}]},
            {"role": "user", "content": []}]),
        case("whitespace_only_content", [
            {"role": "user", "content": "   "},
            {"role": "assistant", "content": " \n\t "},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": ""},
            {"role": "system", "content": "\n"}],
            add_generation_prompt=False),
        case("assistant_after_tool_keeps_reasoning", [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "reasoning_content": "call it", "tool_calls": [weather_call]},
            {"role": "tool", "content": "21"},
            {"role": "assistant", "content": "<think>\n  got 21\n</think>\nIt is 21.", "reasoning_content": None}],
            tools=[WEATHER_TOOL], add_generation_prompt=False),
        case("no_generation_prompt", [SYSTEM, {"role": "user", "content": "Hi"},
                                      {"role": "assistant", "content": "Hello!"}],
             add_generation_prompt=False),
        case("no_generation_prompt_thinking_off", [{"role": "user", "content": "Hi"},
                                                   {"role": "assistant", "content": "Hello!"}],
             add_generation_prompt=False, enable_thinking=False),
        case("special_looking_text_verbatim", [
            {"role": "user", "content": "<|assistant|> [gMASK] <tool_call>x</tool_call> {{ not jinja }} {% raw %}"},
            {"role": "assistant", "content": "</think>only closing"}],
            add_generation_prompt=True),
        case("empty_tools_list", [{"role": "user", "content": "hi"}], tools=[]),
    ]


# Random conversations: the pieces that exercise the renderer's branches, mixed with a fixed seed.
TEXTS = ["hello", "  padded  ", "\n\nnewlines\n\n", "", " ", "ends with /nothink", "/nothink",
         "mid /nothink text", "<think>inline</think>after", "pre<think>a<think>b</think>c</think>d",
         "</think>", "\u3000wide space\u3000", "中文内容", "emoji 😀🚀", "tab\there", "quote \" and \\",
         "\x1f\x1ectrl", "trailing\u00a0", "x" * 40, "a\r\nb", "é", "<think>\n\n</think>\n\n",
         "\u2028line sep\u2029"]
VALUES = ["Paris", "", "multi\nline", "naïve", 0, -7, 3.5, 1e-06, 1e22, 0.1, True, False, None,
          [1, "two", 3.0], {"a": {"b": [None]}}, "\"quoted\"", "\x02", 9007199254740993,
          1.7976931348623157e+308, 5e-324, -0.0, 123.456e5]


def random_value(rng, depth=0):
    v = rng.choice(VALUES)
    if depth < 2 and rng.random() < 0.15:
        return {rng.choice(["k", "ключ", "键", "x y"]): random_value(rng, depth + 1)
                for _ in range(rng.randint(0, 2))}
    if depth < 2 and rng.random() < 0.1:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return copy.deepcopy(v)


def random_content(rng):
    r = rng.random()
    if r < 0.75:
        return rng.choice(TEXTS)
    if r < 0.85:
        return [rng.choice([{"type": "text", "text": rng.choice(TEXTS)}, rng.choice(TEXTS),
                            {"type": "image"}]) for _ in range(rng.randint(0, 3))]
    return None


def random_case(rng, i, with_clear_thinking):
    tools = None
    if rng.random() < 0.4:
        tools = rng.sample([WEATHER_TOOL, SEARCH_TOOL], rng.randint(0, 2))
    messages = []
    if rng.random() < 0.5:
        messages.append({"role": "system", "content": random_content(rng)})
    for _ in range(rng.randint(1, 7)):
        role = rng.choice(["user", "user", "assistant", "assistant", "tool", "system"])
        m = {"role": role, "content": random_content(rng)}
        if role == "tool" and (rng.random() < 0.2 or isinstance(m["content"], list)):
            # Tool results are strings or {"output": string}; other items would render as Python
            # reprs, which the C renderer refuses.
            m["content"] = [rng.choice([rng.choice(TEXTS), {"output": rng.choice(TEXTS)}])
                            for _ in range(rng.randint(0, 2))]
        if role == "assistant":
            if rng.random() < 0.5:
                m[rng.choice(["reasoning_content", "reasoning_content", "thinking", "reasoning"])] = \
                    rng.choice(TEXTS + [None])
            if rng.random() < 0.4:
                calls = []
                for _ in range(rng.randint(0, 2)):
                    args = {rng.choice(["city", "q", "n", "ключ", "deep"]): random_value(rng)
                            for _ in range(rng.randint(0, 3))}
                    if rng.random() < 0.4:
                        args = json.dumps(args, ensure_ascii=rng.random() < 0.5)
                    fn = {"name": rng.choice(["get_weather", "search_docs", "工具"]), "arguments": args}
                    calls.append({"type": "function", "function": fn} if rng.random() < 0.8 else fn)
                m["tool_calls"] = calls
        messages.append(m)
    clear = rng.choice([None, True, False]) if with_clear_thinking else None
    return case("random_%03d" % i, messages, tools=tools,
                add_generation_prompt=rng.random() < 0.7,
                enable_thinking=rng.choice([None, True, False]), clear_thinking=clear)


def glm47_cases():
    """GLM-4.7 only: clear_thinking, which keeps the reasoning of turns before the last user one."""
    history = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "greet back"},
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": "<think>need tool</think>",
         "tool_calls": [{"type": "function", "function": {"name": "get_weather",
                                                          "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "content": "21"}]
    return [
        case("clear_thinking_false_keeps_all", history, tools=[WEATHER_TOOL], clear_thinking=False),
        case("clear_thinking_true", history, tools=[WEATHER_TOOL], clear_thinking=True),
        case("clear_thinking_false_thinking_off", history, clear_thinking=False, enable_thinking=False),
    ]


def float_cases(rng):
    """Doubles and their repr(), the form json.dumps writes: every power of two (where the rounding
    interval is lopsided), random bit patterns, random magnitudes and known hard cases."""
    values = [2.0 ** k for k in range(-1074, 1024)]
    values += [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(800)]
    values += [rng.random() * 10.0 ** rng.randint(-30, 30) for _ in range(800)]
    values += [0.1, 0.2, 0.1 + 0.2, 1 / 3, 2 / 3, 1e22, 1e23, 9007199254740993.0, 1e15, 1e16,
               9999999999999998.0, 123456789012345678.0, 0.0001, 0.00001, 5e-324, 2.2250738585072014e-308,
               1.7976931348623157e308, 100.0, 1.5, 0.5, 123.456, -0.0, -1e-7]
    out = []
    for v in values:
        if math.isfinite(v):
            out.append(["%016x" % struct.unpack("<Q", struct.pack("<d", v))[0], repr(v)])
    return out


TEMPLATES = {
    # style: (template in tests/data/chat, output file, variables the template reads)
    "glm45": ("chat_template.jinja", "glm45_golden.jsonl", ("enable_thinking",)),
    "glm47": ("glm47_chat_template.jinja", "glm47_golden.jsonl", ("enable_thinking", "clear_thinking")),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--random", type=int, default=80, help="random conversations per template")
    ap.add_argument("--seed", type=int, default=4545)
    args = ap.parse_args()
    specials = special_tokens()
    try:
        import transformers
        tv = transformers.__version__
    except Exception:
        tv = "not installed"

    for style, (template_file, out_file, variables) in TEMPLATES.items():
        with open(os.path.join(DATA, template_file), encoding="utf-8") as f:
            source = f.read()
        template = make_env().from_string(source)
        rng = random.Random(args.seed)
        cases = fixed_cases() + (glm47_cases() if style == "glm47" else [])
        cases += [random_case(rng, i, "clear_thinking" in variables) for i in range(args.random)]
        witnessed = 0
        out_path = os.path.join(DATA, out_file)
        with open(out_path, "w", encoding="utf-8") as out:
            for c in cases:
                if "clear_thinking" not in variables:
                    c.pop("clear_thinking", None)
                c["expected"] = render(template, c, specials)
                other = render_with_transformers(source, c, specials)
                if other is not None:
                    if other != c["expected"]:
                        sys.exit("%s/%s: jinja2 and transformers renders differ:\n%r\n%r"
                                 % (style, c["name"], c["expected"], other))
                    witnessed += 1
                out.write(json.dumps(c, ensure_ascii=False) + "\n")
        print("%s: wrote %d cases to %s (%d cross-checked with transformers)"
              % (style, len(cases), os.path.relpath(out_path, ROOT), witnessed))
    floats = float_cases(random.Random(args.seed))
    with open(os.path.join(DATA, "py_float_repr.json"), "w", encoding="utf-8") as out:
        # One case per line, so that a diff of a regenerated file stays readable.
        out.write('{"about": "IEEE-754 bits (hex) and Python repr() of the double",\n"cases": [\n')
        out.write(",\n".join(json.dumps(c) for c in floats))
        out.write("\n]}\n")
    print("floats: wrote %d cases to tests/data/chat/py_float_repr.json" % len(floats))
    print("jinja2 %s, transformers %s, python %s" % (jinja2.__version__, tv, sys.version.split()[0]))


if __name__ == "__main__":
    main()
