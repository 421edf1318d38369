#!/usr/bin/env python3
"""serve_bench.py — aggregate generation speed and time to first token of `glmoe serve` at several
numbers of concurrent streaming clients (standard library only: http.client and threads).

  tools/server/serve_bench.py --glmoe build/glmoe -m models/glmoe-demo --concurrency 1,4,16
  tools/server/serve_bench.py --url http://127.0.0.1:8080 --concurrency 1,4,16,64   (a running server)

With --glmoe it starts the server itself (--parallel = the largest concurrency, port 0) and stops
it afterwards. At each concurrency C, C clients each send --requests streamed completions
(greedy, --max-tokens tokens, prompts of about --prompt-tokens tokens that differ per client so
that no prefix is shared across clients), one after another. Reported per level:
  tok/s      generated tokens (each reply's usage; without one, its text chunks) / wall time of the level
  x1         that as a multiple of the 1-client level
  TTFT       time from sending the request to its first text chunk: median and 90th percentile
  tok/s/seq  the decode speed one client sees after its first token (median)
The clients run on the same machine as the server and take CPU from it: on few cores the
figures include that cost. Prints a Markdown table and, with --json FILE, writes the numbers.
"""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

WORDS = ("the state union people congress war peace nation law year country government power right "
         "public money army trade labor freedom duty justice great").split()


def prompt_for(client, request, n_words):
    # different words per client: no KV prefix shared between clients (beyond the first word)
    return " ".join(WORDS[(client * 7 + request * 3 + i * (client + 1)) % len(WORDS)] for i in range(n_words))


def one_request(host, port, headers, body):
    conn = http.client.HTTPConnection(host, port, timeout=600)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", body=json.dumps(body), headers=headers)
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {r.read()[:200]!r}")
    first, tokens, chunks = None, 0, 0
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        if any(c.get("text") for c in chunk.get("choices", [])):
            chunks += 1
            if first is None:
                first = time.perf_counter()
    end = time.perf_counter()
    tokens = tokens or chunks  # a server that sends no usage: one chunk per token (llama-server streams so)
    conn.close()
    first = first or end
    return first - t0, tokens, (tokens - 1) / (end - first) if tokens > 1 and end > first else 0.0


def level(host, port, headers, conc, args):
    results, errors = [], []

    def client(i):
        for k in range(args.requests):
            body = {"prompt": prompt_for(i, k, args.prompt_tokens), "max_tokens": args.max_tokens, "temperature": 0,
                    "stream": True, "stream_options": {"include_usage": True}}
            try:
                results.append(one_request(host, port, headers, body))
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))
    threads = [threading.Thread(target=client, args=(i,)) for i in range(conc)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ttft = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {"concurrency": conc, "requests": len(results), "errors": len(errors), "tokens": tokens,
            "seconds": wall, "tok_s": tokens / wall,
            "ttft_median_s": statistics.median(ttft) if ttft else 0.0,
            "ttft_p90_s": ttft[int(0.9 * (len(ttft) - 1))] if ttft else 0.0,
            "seq_tok_s_median": statistics.median(r[2] for r in results) if results else 0.0,
            "first_error": errors[0] if errors else None}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--glmoe", help="the glmoe binary: start a server")
    ap.add_argument("-m", "--model", default="models/glmoe-demo")
    ap.add_argument("--url", help="a running server instead")
    ap.add_argument("--api-key")
    ap.add_argument("--concurrency", default="1,4,16")
    ap.add_argument("--requests", type=int, default=4, help="requests per client, one after another")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=32, help="prompt length in words (about tokens)")
    ap.add_argument("--server-args", default="", help="more options for glmoe serve (--threads 2 ...)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    proc = None
    if args.glmoe:
        cmd = [args.glmoe, "serve", "-m", args.model, "--port", "0", "--parallel", str(max(levels)),
               "--queue", str(max(levels))] + args.server_args.split()
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        line = proc.stderr.readline()
        m = re.search(r"http://([^ ]+):(\d+)/v1", line)
        if not m:
            proc.kill()
            sys.exit(f"serve_bench: the server did not start: {line}{proc.stderr.read()}")
        host, port = m.group(1), int(m.group(2))
        threading.Thread(target=proc.stderr.read, daemon=True).start()
    else:
        u = urllib.parse.urlparse(args.url or "http://127.0.0.1:8080")
        host, port = u.hostname, u.port or 80
    headers = {"Content-Type": "application/json"}
    if args.api_key:
        headers["Authorization"] = f"Bearer {args.api_key}"
    try:
        level(host, port, headers, 1, argparse.Namespace(**{**vars(args), "requests": 1}))  # warm-up
        rows = [level(host, port, headers, c, args) for c in levels]
    finally:
        if proc:
            proc.send_signal(2)
            proc.wait(60)
    base = rows[0]["tok_s"] if rows and rows[0]["concurrency"] == 1 else None
    who = f"glmoe serve, {args.model}" if args.glmoe else f"the server at {args.url}"
    print(f"{who}: {args.requests} requests per client, {args.max_tokens} tokens each, "
          f"prompts of ~{args.prompt_tokens} words, greedy, streamed; {os.cpu_count()} CPUs\n")
    print("| clients | requests | tokens | tok/s | x1 | TTFT median | TTFT p90 | tok/s per sequence | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        x = f"{r['tok_s'] / base:.2f}" if base else "-"
        print(f"| {r['concurrency']} | {r['requests']} | {r['tokens']} | {r['tok_s']:.1f} | {x} | "
              f"{r['ttft_median_s'] * 1000:.0f} ms | {r['ttft_p90_s'] * 1000:.0f} ms | {r['seq_tok_s_median']:.1f} | "
              f"{r['errors']} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "max_tokens": args.max_tokens, "levels": rows}, f, indent=1)
    if any(r["errors"] for r in rows):
        print(f"serve_bench: errors, the first: {next(r['first_error'] for r in rows if r['errors'])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
