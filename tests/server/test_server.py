#!/usr/bin/env python3
"""test_server.py GLMOE SOURCE_DIR — `glmoe serve` end to end with the official openai client.

On the default model (models/glmoe-demo, CPU), one server with an API key, 4 sequences and a
queue of 6:
  - /health, /v1/models; chat and completions, whole and streamed (the streamed pieces add up to
    the whole reply; usage in the last chunk with include_usage); finish_reason length and stop
  - stop strings (the reply ends right before the first one, whole and streamed)
  - seeds: the same seed gives the same sampled text, another seed another
  - frequency/presence penalties change a greedy reply; top_k/min_p accepted
  - prefix reuse: the same prompt again reports cached_tokens = prompt - 1
  - errors, each a 4xx with OpenAI's error JSON, and the server answers afterwards: malformed
    JSON, wrong types (param named), unknown model, unknown path, wrong method, n = 2, an
    over-long prompt, too many tokens asked, an oversized body, a missing or wrong API key, a
    tool_choice that needs constrained decoding
  - a client that hangs up mid-stream frees its sequence (/metrics: cancelled + 1, none active)
  - concurrency: 10 greedy requests at once (more than the 4 sequences: some wait in the queue)
    give the texts each gives alone; 24 at once overflow the queue: 429s, the rest succeed
  - drafts: on tests/golden/mtp (a model with an MTP layer) with a byte-level tokenizer made
    here, greedy replies with --draft 3 equal those with --draft 0
The server must exit 0 on SIGINT (under ASan: with no leak).
"""
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import Server, metrics, use_venv  # noqa: E402

use_venv()
import httpx  # noqa: E402
import openai  # noqa: E402

GLMOE, SRC = sys.argv[1], sys.argv[2]
MODEL = os.path.join(SRC, "models", "glmoe-demo")
KEY = "test-key-123"
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}", flush=True)
    return cond


def chat(client, content, **kw):
    return client.chat.completions.create(model="glmoe-demo", messages=[{"role": "user", "content": content}], **kw)


def stream_chat(client, content, **kw):
    parts, finish, usage, n_chunks = [], None, None, 0
    for ch in chat(client, content, stream=True, **kw):
        n_chunks += 1
        if ch.usage:
            usage = ch.usage
        for c in ch.choices:
            if c.delta.content:
                parts.append(c.delta.content)
            if c.finish_reason:
                finish = c.finish_reason
    return "".join(parts), finish, usage, n_chunks


def stream_completion(client, prompt, model="glmoe-demo", **kw):
    parts, finish = [], None
    for ch in client.completions.create(model=model, prompt=prompt, stream=True, **kw):
        for c in ch.choices:
            parts.append(c.text)
            if c.finish_reason:
                finish = c.finish_reason
    return "".join(parts), finish


def raw(srv, method, path, body=None, key=KEY, content=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if content is None and body is not None:
        content = json.dumps(body).encode()
    if content is not None:
        headers["Content-Type"] = "application/json"
    return httpx.request(method, srv.base + path, headers=headers, content=content, timeout=120)


def expect_error(srv, status, what, method, path, body=None, key=KEY, content=None, param=None):
    r = raw(srv, method, path, body, key, content)
    ok = check(r.status_code == status, f"{what}: status {r.status_code}, want {status}: {r.text[:300]}")
    try:
        err = r.json()["error"]
        ok = check(isinstance(err["message"], str) and err["message"] and "type" in err and "param" in err and
                   "code" in err, f"{what}: not OpenAI's error shape: {r.text[:300]}") and ok
        if param is not None:
            check(err["param"] == param, f"{what}: param {err['param']!r}, want {param!r}")
    except (ValueError, KeyError, TypeError):
        check(False, f"{what}: not JSON: {r.text[:300]}")
    return ok


def test_basics(srv, client):
    r = httpx.get(srv.base + "/health", headers={"Authorization": f"Bearer {KEY}"})
    check(r.status_code == 200 and r.json() == {"status": "ok"}, f"/health: {r.status_code} {r.text}")
    models = client.models.list()
    check([m.id for m in models.data] == ["glmoe-demo"], f"/v1/models: {models}")

    whole = chat(client, "Tell me about the Union.", max_tokens=24, temperature=0)
    msg = whole.choices[0].message
    check(whole.object == "chat.completion" and msg.role == "assistant" and msg.content, f"chat: {whole}")
    check(whole.choices[0].finish_reason == "length", f"chat finish_reason: {whole.choices[0].finish_reason}")
    check(whole.usage.completion_tokens == 24 and whole.usage.total_tokens ==
          whole.usage.prompt_tokens + 24, f"chat usage: {whole.usage}")
    text, finish, usage, n = stream_chat(client, "Tell me about the Union.", max_tokens=24, temperature=0,
                                         stream_options={"include_usage": True})
    check(text == msg.content, f"streamed chat differs from whole:\n  {text!r}\n  {msg.content!r}")
    check(finish == "length" and n >= 3, f"streamed chat: finish {finish}, {n} chunks")
    check(usage is not None and usage.completion_tokens == 24, f"streamed usage: {usage}")

    comp = client.completions.create(model="glmoe-demo", prompt="The State of the Union", max_tokens=20,
                                     temperature=0)
    check(comp.object == "text_completion" and comp.choices[0].text and comp.choices[0].finish_reason == "length",
          f"completion: {comp}")
    stext, sfinish = stream_completion(client, "The State of the Union", max_tokens=20, temperature=0)
    check(stext == comp.choices[0].text and sfinish == "length",
          f"streamed completion differs: {stext!r} vs {comp.choices[0].text!r} ({sfinish})")
    # the OpenAI default for completions is 16 tokens
    d = client.completions.create(model="glmoe-demo", prompt="The State of the Union", temperature=0)
    check(d.usage.completion_tokens == 16, f"default max_tokens: {d.usage}")

    # a prompt seen before: everything but its last token comes from the KV cache
    again = chat(client, "Tell me about the Union.", max_tokens=4, temperature=0)
    cached = again.usage.prompt_tokens_details.cached_tokens
    check(cached == again.usage.prompt_tokens - 1, f"prefix reuse: cached {cached} of {again.usage.prompt_tokens}")
    return comp.choices[0].text


def test_stop(client, reference):
    # a stop string from the middle of the greedy text: the reply ends right before it
    words = reference.split(" ")
    stop = " " + words[len(words) // 2]
    want = reference[:reference.index(stop)]
    for stream in (False, True):
        kw = dict(prompt="The State of the Union", max_tokens=20, temperature=0, stop=[stop, "\u00a7never"])
        if stream:
            text, finish = stream_completion(client, **kw)
        else:
            c = client.completions.create(model="glmoe-demo", **kw)
            text, finish = c.choices[0].text, c.choices[0].finish_reason
        check(text == want and finish == "stop",
              f"stop {stop!r} (stream={stream}): {text!r} ({finish}), want {want!r}")
    c = chat(client, "Tell me about the Union.", max_tokens=24, temperature=0, stop="Union")
    check("Union" not in (c.choices[0].message.content or ""), f"chat stop: {c.choices[0].message.content!r}")


def test_sampling(client):
    def sample(seed, **kw):
        return client.completions.create(model="glmoe-demo", prompt="The people", max_tokens=24, temperature=1.0,
                                         seed=seed, **kw).choices[0].text
    a, b, c = sample(42), sample(42), sample(43)
    check(a == b, f"seed 42 twice differs: {a!r} vs {b!r}")
    check(a != c, f"seeds 42 and 43 gave the same text: {a!r}")
    filters = dict(top_p=0.9, extra_body={"top_k": 5, "min_p": 0.05})
    check(sample(7, **filters) == sample(7, **filters),
          "seed with filters differs")
    plain = client.completions.create(model="glmoe-demo", prompt="The State of the Union", max_tokens=40,
                                      temperature=0).choices[0].text
    for kw in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0}):
        pen = client.completions.create(model="glmoe-demo", prompt="The State of the Union", max_tokens=40,
                                        temperature=0, **kw).choices[0].text
        check(pen != plain, f"{kw} changed nothing: {pen!r}")


def test_errors(srv):
    chat_path, msgs = "/v1/chat/completions", [{"role": "user", "content": "hi"}]
    expect_error(srv, 400, "malformed JSON", "POST", chat_path, content=b'{"messages": [')
    expect_error(srv, 400, "not an object", "POST", chat_path, content=b'[1, 2]')
    expect_error(srv, 400, "messages not an array", "POST", chat_path, {"messages": "hi"}, param="messages")
    expect_error(srv, 400, "temperature a string", "POST", chat_path, {"messages": msgs, "temperature": "hot"},
                 param="temperature")
    expect_error(srv, 400, "temperature out of range", "POST", chat_path, {"messages": msgs, "temperature": 7},
                 param="temperature")
    expect_error(srv, 400, "max_tokens 0", "POST", chat_path, {"messages": msgs, "max_tokens": 0}, param="max_tokens")
    expect_error(srv, 400, "stream not a boolean", "POST", chat_path, {"messages": msgs, "stream": "yes"},
                 param="stream")
    expect_error(srv, 400, "stop[1] not a string", "POST", chat_path, {"messages": msgs, "stop": ["a", 3]},
                 param="stop[1]")
    expect_error(srv, 400, "bad role", "POST", chat_path, {"messages": [{"role": "robot", "content": "x"}]},
                 param="messages[0].role")
    expect_error(srv, 400, "content a number", "POST", chat_path, {"messages": [{"role": "user", "content": 5}]})
    expect_error(srv, 400, "n = 2", "POST", chat_path, {"messages": msgs, "n": 2}, param="n")
    expect_error(srv, 400, "tool_choice required", "POST", chat_path, {"messages": msgs, "tool_choice": "required"},
                 param="tool_choice")
    expect_error(srv, 400, "enable_thinking a string", "POST", chat_path,
                 {"messages": msgs, "chat_template_kwargs": {"enable_thinking": "no"}},
                 param="chat_template_kwargs.enable_thinking")
    expect_error(srv, 404, "unknown model", "POST", chat_path, {"model": "gpt-4o", "messages": msgs}, param="model")
    expect_error(srv, 400, "over-long prompt", "POST", "/v1/completions", {"prompt": "word " * 3000},
                 param="prompt")
    expect_error(srv, 400, "too many tokens", "POST", chat_path, {"messages": msgs, "max_tokens": 100000},
                 param="max_tokens")
    expect_error(srv, 400, "prompt missing", "POST", "/v1/completions", {"max_tokens": 3}, param="prompt")
    expect_error(srv, 413, "oversized body", "POST", chat_path, content=b" " * 70000)
    expect_error(srv, 401, "wrong API key", "POST", chat_path, {"messages": msgs}, key="nope")
    expect_error(srv, 401, "no API key", "GET", "/v1/models", key=None)
    expect_error(srv, 404, "unknown path", "GET", "/v2/nothing")
    expect_error(srv, 405, "GET on chat", "GET", chat_path)
    expect_error(srv, 405, "POST on health", "POST", "/health", {})
    # the openai client sees the same errors as exceptions
    bad = openai.OpenAI(base_url=srv.base + "/v1", api_key="wrong", max_retries=0)
    try:
        chat(bad, "hi", max_tokens=2)
        check(False, "a wrong key was accepted by the openai client")
    except openai.AuthenticationError:
        pass
    # and the server goes on
    r = raw(srv, "POST", chat_path, {"messages": msgs, "max_tokens": 3, "temperature": 0})
    check(r.status_code == 200 and r.json()["choices"][0]["message"]["content"] is not None,
          f"server after errors: {r.status_code} {r.text[:200]}")
    # tools render (the demo model does not call them)
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]
    r = raw(srv, "POST", chat_path, {"messages": msgs, "tools": tools, "max_tokens": 3, "temperature": 0,
                                     "chat_template_kwargs": {"enable_thinking": False}})
    check(r.status_code == 200, f"chat with tools: {r.status_code} {r.text[:200]}")


def test_disconnect(srv):
    headers = {"Authorization": f"Bearer {KEY}"}
    before = metrics(srv.base, headers)
    body = {"prompt": "The State of the Union", "max_tokens": 1000, "temperature": 0, "stream": True}
    with httpx.Client(timeout=60) as c:
        with c.stream("POST", srv.base + "/v1/completions", json=body, headers=headers) as r:
            got = 0
            for line in r.iter_lines():
                got += line.startswith("data: ")
                if got >= 3:
                    break
    # the client hung up after 3 chunks of 1000: the sequence must be freed at once
    deadline = time.time() + 10
    while time.time() < deadline:
        m = metrics(srv.base, headers)
        if (m["glmoe_requests_cancelled_total"] == before["glmoe_requests_cancelled_total"] + 1
                and m["glmoe_sequences_active"] == 0):
            break
        time.sleep(0.1)
    check(m["glmoe_requests_cancelled_total"] == before["glmoe_requests_cancelled_total"] + 1,
          f"disconnect: cancelled {before['glmoe_requests_cancelled_total']} -> {m['glmoe_requests_cancelled_total']}")
    check(m["glmoe_sequences_active"] == 0, f"disconnect: {m['glmoe_sequences_active']} sequences still active")
    check(m["glmoe_generated_tokens_total"] - before["glmoe_generated_tokens_total"] < 900,
          "disconnect: the request ran to its end")


def test_concurrency(srv, client):
    prompts = [f"The {w} of the Union" for w in ("State", "people", "war", "Congress", "army")]
    alone = {}
    for p in prompts:
        alone[p] = client.completions.create(model="glmoe-demo", prompt=p, max_tokens=16, temperature=0).choices[0].text
    results, errors = [], []

    def one(p, stream):
        try:
            if stream:
                results.append((p, stream_completion(client, p, max_tokens=16, temperature=0)[0]))
            else:
                results.append((p, client.completions.create(model="glmoe-demo", prompt=p, max_tokens=16,
                                                             temperature=0).choices[0].text))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=one, args=(p, i % 2 == 1)) for i in range(2) for p in prompts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, f"concurrent requests failed: {errors[:3]}")
    for p, text in results:
        check(text == alone[p], f"concurrent {p!r}: {text!r}, alone {alone[p]!r}")
    check(len(results) == 10, f"{len(results)} of 10 concurrent results")

    # 24 at once: 4 run, 6 wait, the others are told the queue is full
    codes = []

    def busy():
        r = raw(srv, "POST", "/v1/completions", {"prompt": "The State", "max_tokens": 60, "temperature": 0})
        codes.append(r.status_code)
        if r.status_code == 429:
            check(r.json()["error"]["code"] == "queue_full", f"429 body: {r.text}")
    threads = [threading.Thread(target=busy) for _ in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(codes.count(429) > 0 and codes.count(200) >= 10 and codes.count(200) + codes.count(429) == 24,
          f"queue overflow: statuses {sorted(codes)}")


def byte_tokenizer(path):
    """A byte-level BPE tokenizer with ids 0..255 = bytes (for the 256-token MTP golden model)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) + \
        list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    vocab = {chr(c): b for b, c in zip(bs, cs)}
    tok = {"version": "1.0", "added_tokens": [], "normalizer": None,
           "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
           "post_processor": None,
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
           "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                     "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                     "merges": []}}
    with open(path, "w") as f:
        json.dump(tok, f)


def drafts_case(model_dir, model_id, extra, prompts):
    texts = {}
    for draft in ("0", "3"):
        srv = Server(GLMOE, model_dir, "--draft", draft, "--parallel", "3", "--threads", "1", *extra)
        try:
            c = openai.OpenAI(base_url=srv.base + "/v1", api_key="none", max_retries=0, timeout=120)
            out = [c.completions.create(model=model_id, prompt=p, max_tokens=48, temperature=0).choices[0].text
                   for p in prompts]
            # seeded sampling: the acceptance rule keeps the sampler's own tokens
            out += [c.completions.create(model=model_id, prompt=p, max_tokens=48, temperature=1.0,
                                         seed=11).choices[0].text for p in prompts]
            out.append(stream_completion(c, prompts[0], model=model_id, max_tokens=48, temperature=0)[0])
            texts[draft] = out
            if draft == "3":
                m = metrics(srv.base)
                check(m["glmoe_draft_tokens_total"] > 0, f"{model_id}: no drafts were tried with --draft 3")
                print(f"  {model_id}: {m['glmoe_draft_tokens_accepted_total']:.0f} of "
                      f"{m['glmoe_draft_tokens_total']:.0f} drafts accepted")
        finally:
            check(srv.stop() == 0, f"{model_id} server (--draft {draft}) exit: {srv.output()[-500:]}")
    check(texts["0"] == texts["3"], f"{model_id}: drafts changed the text:\n  {texts['0']}\n  {texts['3']}")


def test_drafts():
    # tests/golden/mtp: random weights, so its drafts are rarely accepted; what is checked is that
    # they never change the text. The default model is checked too once it has an MTP layer.
    prompts = ["hello", "The quick brown fox", "glmoe"]
    with tempfile.TemporaryDirectory() as tmp:
        tok = os.path.join(tmp, "tokenizer.json")
        byte_tokenizer(tok)
        drafts_case(os.path.join(SRC, "tests", "golden", "mtp"), "mtp", ["--tokenizer", tok], prompts)
    with open(os.path.join(MODEL, "config.json")) as f:
        if json.load(f).get("num_nextn_predict_layers", 0) > 0:
            drafts_case(MODEL, "glmoe-demo", [], ["The State of the Union", "The people", "Congress"])


def main():
    srv = Server(GLMOE, MODEL, "--parallel", "4", "--queue", "6", "--max-body", "65536", "--threads", "2",
                 api_key=KEY)
    try:
        client = openai.OpenAI(base_url=srv.base + "/v1", api_key=KEY, max_retries=0, timeout=300)
        reference = test_basics(srv, client)
        test_stop(client, reference)
        test_sampling(client)
        test_errors(srv)
        test_disconnect(srv)
        test_concurrency(srv, client)
    finally:
        rc = srv.stop()
        check(rc == 0, f"server exit status {rc}: {srv.output()[-2000:]}")
    test_drafts()
    print(f"test_server: {'FAILED' if failures else 'ok'} ({failures} failures)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
