#!/usr/bin/env python3
"""test_server_load.py GLMOE SOURCE_DIR — 32 concurrent streaming clients against `glmoe serve`
on the default model for GLMOE_LOAD_SECONDS (default 60), loopback only.

Each client loops: a streamed chat or completion request (half through the openai client, half
as raw SSE read here, which checks the wire format: every event `data: <JSON>` or `data: [DONE]`,
[DONE] last, one finish_reason), with 8 to 48 tokens, greedy or seeded sampling, sometimes a stop
string. Passes when no request failed, every reply was well-formed, and the server's resident
memory (VmRSS from /proc) at the end is within 10% + 16 MiB of what it was once all 32 clients
were running (a leak of a few KiB per request over a few thousand requests would show). Under
ASan (GLMOE_SANITIZED) the RSS is reported, not checked: its quarantine holds freed memory.
Prints the figures BENCHMARKS.md quotes: requests, failures, tokens, RSS at start and end.
"""
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from server_util import Server, metrics, use_venv  # noqa: E402

use_venv()
import httpx  # noqa: E402
import openai  # noqa: E402

GLMOE, SRC = sys.argv[1], sys.argv[2]
SECONDS = float(os.environ.get("GLMOE_LOAD_SECONDS", "60"))
CLIENTS = 32
SANITIZED = os.environ.get("GLMOE_SANITIZED", "0") in ("1", "ON", "TRUE", "true")
PROMPTS = ["The State of the Union", "Our country", "The people of the United States", "The war",
           "In the last year the Congress", "Tell me about taxes.", "What is the army doing?"]

lock = threading.Lock()
stats = {"requests": 0, "failures": 0, "tokens": 0}
problems = []


def fail(what):
    with lock:
        stats["failures"] += 1
        if len(problems) < 20:
            problems.append(what)


def raw_stream(base, chat, body):
    """Reads one SSE reply and checks its form; returns the completion tokens (from usage)."""
    path = "/v1/chat/completions" if chat else "/v1/completions"
    events, done, finish, usage = 0, False, None, None
    with httpx.stream("POST", base + path, json=body, timeout=300) as r:
        if r.status_code != 200:
            raise RuntimeError(f"status {r.status_code}: {r.read()[:200]!r}")
        for line in r.iter_lines():
            if not line:
                continue
            if not line.startswith("data: "):
                if line.startswith(":"):
                    continue  # a keep-alive comment
                raise RuntimeError(f"not an SSE data line: {line[:100]!r}")
            if done:
                raise RuntimeError("an event after [DONE]")
            data = line[6:]
            if data == "[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            if "error" in chunk:
                raise RuntimeError(f"error event: {chunk['error']}")
            events += 1
            if chunk.get("usage"):
                usage = chunk["usage"]
            for c in chunk["choices"]:
                if c.get("finish_reason"):
                    if finish:
                        raise RuntimeError("two finish_reasons")
                    finish = c["finish_reason"]
                if chat and not isinstance(c["delta"], dict):
                    raise RuntimeError("a chunk without a delta object")
    if not done or finish not in ("stop", "length") or usage is None:
        raise RuntimeError(f"ill-formed stream: done={done} finish={finish} usage={usage} events={events}")
    return usage["completion_tokens"]


def client_loop(base, deadline, seed):
    rng = random.Random(seed)
    oc = openai.OpenAI(base_url=base + "/v1", api_key="none", max_retries=0, timeout=300)
    while time.time() < deadline:
        chat = rng.random() < 0.5
        n = rng.randint(8, 48)
        body = {"max_tokens": n, "stream": True, "stream_options": {"include_usage": True}}
        if rng.random() < 0.5:
            body.update(temperature=0.8, seed=rng.randint(0, 1 << 30), top_p=0.95)
        else:
            body.update(temperature=0)
        if rng.random() < 0.2:
            body["stop"] = [" the", "."]
        prompt = rng.choice(PROMPTS)
        if chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        try:
            if rng.random() < 0.5:
                tokens = raw_stream(base, chat, body)
            else:
                kw = {k: v for k, v in body.items() if k not in ("messages", "prompt", "stream")}
                if chat:
                    s = oc.chat.completions.create(model="glmoe-demo", messages=body["messages"], stream=True, **kw)
                else:
                    s = oc.completions.create(model="glmoe-demo", prompt=body["prompt"], stream=True, **kw)
                tokens, finish = None, None
                for ch in s:
                    if ch.usage:
                        tokens = ch.usage.completion_tokens
                    for c in ch.choices:
                        finish = c.finish_reason or finish
                if tokens is None or finish not in ("stop", "length"):
                    raise RuntimeError(f"openai stream: tokens {tokens}, finish {finish}")
            if not 1 <= tokens <= n:
                raise RuntimeError(f"{tokens} tokens for max_tokens {n}")
            with lock:
                stats["requests"] += 1
                stats["tokens"] += tokens
        except Exception as e:  # noqa: BLE001
            fail(f"{'chat' if chat else 'completion'}: {e!r}"[:300])


def main():
    srv = Server(GLMOE, os.path.join(SRC, "models", "glmoe-demo"), "--parallel", "8", "--queue", "64",
                 "--threads", "2")
    ok = True
    try:
        t0 = time.time()
        deadline = t0 + SECONDS
        threads = [threading.Thread(target=client_loop, args=(srv.base, deadline, i)) for i in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(min(5.0, SECONDS / 4))
        rss_start = srv.rss_kib()
        for t in threads:
            t.join()
        elapsed = time.time() - t0
        rss_end = srv.rss_kib()
        m = metrics(srv.base)
        print(f"load: {CLIENTS} streaming clients for {elapsed:.0f} s: {stats['requests']} requests, "
              f"{stats['failures']} failed, {stats['tokens']} tokens ({stats['tokens'] / elapsed:.0f} tok/s), "
              f"server RSS {rss_start / 1024:.1f} MiB -> {rss_end / 1024:.1f} MiB; "
              f"mean batch {m['glmoe_batch_rows_total'] / max(m['glmoe_decode_steps_total'], 1):.1f} rows, "
              f"mean TTFT {m['glmoe_time_to_first_token_seconds_sum'] / max(m['glmoe_time_to_first_token_seconds_count'], 1):.3f} s",
              flush=True)
        for p in problems:
            print(f"FAIL: {p}")
        ok = stats["failures"] == 0 and stats["requests"] >= CLIENTS
        if stats["requests"] < CLIENTS:
            print(f"FAIL: only {stats['requests']} requests completed")
        if m["glmoe_sequences_active"] != 0 or m["glmoe_queue_depth"] != 0:
            print(f"FAIL: after the load, {m['glmoe_sequences_active']} active, {m['glmoe_queue_depth']} queued")
            ok = False
        if not SANITIZED and rss_end > rss_start * 1.10 + 16 * 1024:
            print(f"FAIL: the server's RSS grew from {rss_start} KiB to {rss_end} KiB")
            ok = False
    finally:
        rc = srv.stop()
        if rc != 0:
            print(f"FAIL: server exit status {rc}: {srv.output()[-2000:]}")
            ok = False
    print(f"test_server_load: {'ok' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
