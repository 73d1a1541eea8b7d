"""``lamina serve`` under load vs calling the Python API directly.

The same chat prompts, greedy, the same max_tokens and threads, on a small
Q4_K_M synthetic LLaMA (~20M parameters, 32000-token vocabulary, built once
under benchmarks/.work/serve; small so the runs finish on a busy 2-core box,
which makes the per-request server overhead look larger than on a 7B model):

* baseline: ``Model.chat`` in-process, one request after another;
* ``lamina serve`` (1 slot) with 1, 4 and 8 concurrent clients (OpenAI-style
  non-streaming requests over loopback HTTP; a streaming run at 1 client too);
* ``lamina serve --parallel 4`` (native batch engine) with 1, 4 and 8 clients.

Reported: requests/s, completion tokens/s, mean latency, and the server's
overhead per request: the same request made directly and through the server
back to back, median of the differences (paired, so load drift cancels).

    python benchmarks/serve.py [--requests 8] [--max-tokens 32] [--threads 1] [--model X.gguf]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import WORK, Timer, llama_spec, print_table, save_result  # noqa: E402

#: Small enough that 7 load runs take about a minute on 2 shared cores.
SERVE_SPEC = llama_spec(hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                         num_attention_heads=8, num_key_value_heads=4)
TOPICS = ["杭州", "北京的历史", "长城", "西湖的传说", "中国的首都", "熊猫", "茶叶", "春节",
          "丝绸之路", "黄河", "京剧", "饺子", "故宫", "太极拳", "汉字", "孔子"]


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"给我讲一些有关{TOPICS[i % len(TOPICS)]}的故事吧（{i}）"}]
            for i in range(n)]


def ensure_model(work: Path) -> Path:
    """Q4_K_M GGUF of SERVE_SPEC, built once under ``work/serve``."""
    from bigmodel import ensure_quantized

    return ensure_quantized(work, "serve", SERVE_SPEC)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(path: Path, threads: int, ctx: int, parallel: int) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "lamina", "serve", str(path), "--port", str(port), "--threads",
           str(threads), "--ctx", str(ctx), "--parallel", str(parallel), "--queue", "64"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "LAMINA_API_KEY"})
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):  # bounded: 60 s
        if proc.poll() is not None:
            raise SystemExit(f"lamina serve failed:\n{proc.stderr.read()}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("lamina serve did not start within 60 s")


_LOCAL = threading.local()


def _client() -> Any:
    """One keep-alive client per thread, as real clients (the openai SDK) use;
    building an httpx.Client per request would measure SSL-context setup."""
    import httpx

    if not hasattr(_LOCAL, "client"):
        _LOCAL.client = httpx.Client(timeout=600)
    return _LOCAL.client


def one_request(url: str, messages: list[dict[str, str]], max_tokens: int,
                stream: bool) -> tuple[float, int, str]:
    """(seconds, completion tokens, text) of one chat request."""
    http = _client()
    body = {"messages": messages, "temperature": 0, "max_tokens": max_tokens, "stream": stream}
    start = time.perf_counter()
    if not stream:
        r = http.post(url + "/v1/chat/completions", json=body)
        r.raise_for_status()
        data = r.json()
        return (time.perf_counter() - start, data["usage"]["completion_tokens"],
                data["choices"][0]["message"]["content"])
    body["stream_options"] = {"include_usage": True}
    text, tokens = [], 0
    with http.stream("POST", url + "/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk["choices"]:
                text.append(chunk["choices"][0]["delta"].get("content") or "")
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return time.perf_counter() - start, tokens, "".join(text)


def load_run(url: str, convs: list[Any], max_tokens: int, clients: int,
             stream: bool = False) -> dict[str, Any]:
    with ThreadPoolExecutor(clients) as pool, Timer() as t:
        results = list(pool.map(lambda m: one_request(url, m, max_tokens, stream), convs))
    tokens = sum(r[1] for r in results)
    return {"seconds": t.seconds, "rps": len(convs) / t.seconds, "tps": tokens / t.seconds,
            "latency": sum(r[0] for r in results) / len(results), "tokens": tokens,
            "texts": [r[2] for r in results]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1,
                    help="llama.cpp threads for both ways (1 is steadiest on a busy machine)")
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--model", type=Path, default=None,
                    help="Any GGUF to serve instead of the built benchmark model.")
    args = ap.parse_args()

    import lamina

    path = args.model or ensure_model(WORK)
    convs = prompts(args.requests)

    # Baseline: the Python API, in this process, one request after another.
    model = lamina.load(path, n_ctx=args.ctx, n_threads=args.threads)
    model.chat(convs[0], temperature=0, max_tokens=4)  # warm-up

    def direct_call(m: list[dict[str, str]]) -> tuple[float, int, str]:
        with Timer() as t1:
            text = model.chat(m, temperature=0, max_tokens=args.max_tokens)
        return t1.seconds, model.last_stats.completion_tokens, text

    with Timer() as t_direct:
        calls = [direct_call(m) for m in convs]
    direct_texts = [c[2] for c in calls]
    direct = {"seconds": t_direct.seconds, "rps": len(convs) / t_direct.seconds,
              "tps": sum(c[1] for c in calls) / t_direct.seconds,
              "latency": sum(c[0] for c in calls) / len(calls)}
    progress(f"direct: {direct['rps']:.2f} req/s")

    rows: list[list[Any]] = [["Python API (Model.chat)", "1", f"{direct['rps']:.2f}",
                              f"{direct['tps']:.1f}", f"{direct['latency'] * 1000:.0f}", "1.00x",
                              "reference"]]
    extra: dict[str, Any] = {"direct": direct}
    overhead_ms: dict[str, float] = {}
    for parallel in (1, args.parallel):
        proc, url = start_server(path, args.threads, args.ctx, parallel)
        label = "lamina serve" if parallel == 1 else f"lamina serve --parallel {parallel}"
        try:
            one_request(url, convs[0], 4, False)  # warm-up (engine context, page cache)
            if parallel == 1:
                # Overhead per request: the same request directly and through the
                # server, back to back (paired, so load drift on a shared box cancels).
                diffs: dict[str, list[float]] = {"non-stream": [], "stream": []}
                for m in convs:
                    for kind in diffs:
                        d = direct_call(m)[0]
                        diffs[kind].append(one_request(url, m, args.max_tokens,
                                                       kind == "stream")[0] - d)
                for kind, values in diffs.items():
                    overhead_ms[kind] = statistics.median(values) * 1000
                progress(f"overhead: {overhead_ms}")
            runs = [(1, False), (1, True), (4, False), (8, False)] if parallel == 1 \
                else [(1, False), (4, False), (8, False)]
            for clients, stream in runs:
                r = load_run(url, convs, args.max_tokens, clients, stream)
                progress(f"{label} clients={clients} stream={stream}: {r['rps']:.2f} req/s")
                same = "identical" if r["texts"] == direct_texts else "differs"
                rows.append([label + (" (stream)" if stream else ""), str(clients),
                             f"{r['rps']:.2f}", f"{r['tps']:.1f}", f"{r['latency'] * 1000:.0f}",
                             f"{r['rps'] / direct['rps']:.2f}x", same])
                extra[f"{label}|{clients}|{stream}"] = {k: v for k, v in r.items() if k != "texts"}
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    model.close()

    title = (f"lamina serve: {args.requests} chat requests, greedy, max {args.max_tokens} tokens, "
             f"{args.threads} threads, {path.name}")
    columns = ["way", "clients", "req/s", "tokens/s", "mean latency ms", "req/s vs API",
               "answers vs API"]
    print_table(title, columns, rows)
    lines = [f"{k}: {v:+.1f} ms" for k, v in overhead_ms.items()]
    print("Server overhead per request (median of paired requests, 1 client, vs Model.chat): "
          + "; ".join(lines))
    extra["overhead_ms"] = overhead_ms
    save_result("serve", title, columns, rows,
                notes="Server overhead per request (median of paired requests, 1 client, "
                      "vs Model.chat): " + "; ".join(lines),
                extra=extra)


if __name__ == "__main__":
    main()
