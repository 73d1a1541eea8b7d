"""Extraction throughput: lamina (grammar on / off) vs llama-cpp-python by hand.

64 short Chinese documents, a 6-type NER schema, greedy decoding, the same
threads and answer limit for every arm, on the Q4_K_M synthetic LLaMA of
~136M parameters that ``benchmarks/engine.py`` builds (a 32000-piece
vocabulary shaped like Chinese-LLaMA's, alpaca2 template recorded in the file):

* plain: ``llama_cpp.Llama.create_chat_completion`` per document with the
  IEPile instruction written by hand, then ``json.loads`` (what a user does);
* lamina, grammar off: ``extract_many(..., use_grammar=False)`` (lenient parse);
* lamina, grammar on: ``extract_many(...)`` (schema grammar: always valid);
* lamina engine: ``extract_many(..., batch=N)`` when ``lamina._native`` is built
  (N: the batch ``lamina extract`` picks by default).

Each row reports docs/s, the speed ratio to the plain arm, and how many answers
were valid JSON objects with exactly the schema keys in schema order. The
synthetic model is random, so its free-running answers are noise: the point is
the cost of each way and whether its output is usable.

The random model fills every list and string up to the grammar bounds, so the
answer limit (``--max-tokens``) must cover the bounded answer (6 types x 2 items
x 8 characters fits in 256 tokens); a real model's answers are far shorter.

    python benchmarks/extract.py [--docs 64] [--threads 2] [--max-tokens 256] [--batch N]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import WORK, Timer, print_table, save_result  # noqa: E402
from engine import ENGINE_SPEC, SCHEMA, documents, ensure_model, n_params  # noqa: E402


def exact_keys(output: str) -> bool:
    """A usable answer: a JSON object with exactly the schema keys, in order."""
    try:
        data = json.loads(output)
    except (json.JSONDecodeError, TypeError):
        return False
    return isinstance(data, dict) and list(data) == SCHEMA


def run_plain(path: Path, docs: list[str], threads: int, n_ctx: int, max_tokens: int,
              ) -> list[str]:
    """llama-cpp-python alone: the chat template from the GGUF, one call per document."""
    import llama_cpp

    from lamina.ie.instructions import build_instruction

    llm = llama_cpp.Llama(str(path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                          verbose=False)
    outs = []
    for doc in docs:
        r = llm.create_chat_completion(
            [{"role": "user", "content": build_instruction("NER", SCHEMA, doc, "zh")}],
            max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0)
        outs.append(r["choices"][0]["message"]["content"] or "")
    llm.close()
    return outs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--max-items", type=int, default=2, help="grammar bound per list")
    ap.add_argument("--max-chars", type=int, default=8, help="grammar bound per string")
    ap.add_argument("--batch", type=int, default=None,
                    help="engine arm batch size (default: what lamina extract picks)")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--ray", action="store_true",
                    help="add lamina extract --ray arms: 1 worker x all threads, 1 thread per worker")
    args = ap.parse_args()

    import lamina
    from lamina.ie.api import extract_many
    from lamina.ie.grammar import GrammarLimits
    from lamina.runtime.sampling import SamplingParams

    path = ensure_model(WORK)
    docs = documents(args.docs)
    params = SamplingParams.greedy(max_tokens=args.max_tokens)
    model = lamina.load(path, n_ctx=args.ctx, n_threads=args.threads)
    limits = GrammarLimits(args.max_items, args.max_chars)
    common = dict(task="NER", schema=SCHEMA, params=params, limits=limits)
    list(extract_many(model, docs[:1], **common))  # warm-up: page the weights in
    if args.batch is None:
        from lamina.runtime.engine import default_n_seq, native_available

        args.batch = default_n_seq(model) if native_available() else 8

    arms: list[tuple[str, Callable[[], list[str]]]] = [
        ("llama-cpp-python create_chat_completion", lambda: run_plain(
            path, docs, args.threads, args.ctx, args.max_tokens)),
        ("lamina extract, --no-grammar", lambda: [
            r["output"] for r in extract_many(model, docs, use_grammar=False, **common)]),
        ("lamina extract (grammar)", lambda: [
            r["output"] for r in extract_many(model, docs, **common)]),
    ]
    try:
        from lamina.runtime.engine import native_available

        if native_available():
            arms.append((f"lamina extract --batch {args.batch} (engine)", lambda: [
                r["output"] for r in extract_many(model, docs, batch=args.batch, **common)]))
    except ImportError:
        pass

    results: list[tuple[str, float, list[str]]] = []
    for name, run in arms:
        with Timer() as t:
            outs = run()
        results.append((name, t.seconds, outs))
        print(f"{name}: {t.seconds:.1f} s", file=sys.stderr)
    model.close()
    if args.ray:  # the same documents on a local Ray instance (benchmarks/extract_ray.py)
        from extract_ray import ray_results

        results += ray_results(path, docs, SCHEMA, threads=args.threads, batch=args.batch,
                               max_tokens=args.max_tokens, limits=limits, n_ctx=args.ctx,
                               work=WORK / "extract_ray")

    n = len(docs)
    base = results[0][1]
    rows: list[list[Any]] = []
    for name, seconds, outs in results:
        ok = sum(exact_keys(o) for o in outs)
        rows.append([name, f"{seconds:.1f}", f"{n / seconds:.3f}", f"{base / seconds:.2f}x",
                     f"{ok}/{n} ({100 * ok / n:.0f}%)"])
    title = (f"NER extraction, {n} docs, 6-type schema, Q4_K_M {n_params(ENGINE_SPEC) / 1e6:.0f}M "
             f"params, {args.threads} thread(s), greedy, max {args.max_tokens} tokens, grammar "
             f"bounds {args.max_items} items x {args.max_chars} chars")
    columns = ["way", "seconds", "docs/s", "speed vs plain", "valid JSON, schema keys in order"]
    print_table(title, columns, rows)
    save_result("extract", title, columns, rows,
                notes="Same model, documents, instruction text and threads in one run; "
                      "random synthetic weights, so free-running answers are noise.",
                extra={"docs": n, "params": n_params(ENGINE_SPEC), "max_tokens": args.max_tokens,
                       "threads": args.threads, "max_items": args.max_items,
                       "max_chars": args.max_chars})


if __name__ == "__main__":
    main()
