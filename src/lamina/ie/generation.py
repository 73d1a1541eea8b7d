"""Prompts from a data file -> predictions (``lamina generate -i FILE``).

Seed 003's inference script answers a data file one prompt at a time; seed
002's vLLM script does it in batches. Here the prompts come from the shared
input reader (``lamina.ie.inputs``: plain lines, JSON Lines, JSON arrays,
IEPile and seed-000 records), each is one user message in the chat template
(or raw text), and with ``batch > 1`` they run on the native batched engine,
``batch`` sequences at a time. Greedy answers are the same either way: the
engine computes every row with the kernel a one-sequence loop uses, and the
prompt tokens and stop strings are the ones ``Model.chat`` / ``Model.generate``
use. A record carries the input's gold (``label``) along, so ``lamina eval``
can score the predictions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from lamina.errors import LaminaError
from lamina.ie.api import native_engine
from lamina.ie.inputs import prompt_of
from lamina.ie.io import JsonlRun

#: Prompts per engine call, in units of ``batch`` (slots refill within a call).
GROUP_BATCHES = 4


def messages_of(item: Mapping[str, Any], system: str | None) -> list[dict[str, str]]:
    """The chat for one record: the optional system prompt, then its prompt."""
    head = [{"role": "system", "content": system}] if system else []
    return head + [{"role": "user", "content": prompt_of(item) or ""}]


def _record(item: Mapping[str, Any], text: str, tokens: int, reason: str,
            error: str | None = None) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": item["id"], "prompt": prompt_of(item), "output": text.strip(),
                           "completion_tokens": tokens, "finish_reason": reason}
    if item.get("label") is not None:
        rec["label"] = item["label"]
    if error is not None:
        rec["error"] = error
    return rec


def generate_iter(model: Any, items: Sequence[Mapping[str, Any]], params: Any, *,
                  batch: int = 1, system: str | None = None, no_template: bool = False,
                  exact: bool = True) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(index, record)`` for every item, as each finishes (with ``batch > 1`` not
    in input order). A prompt that cannot run gets a record with its ``error``;
    the others are not affected."""
    engine = native_engine() if batch > 1 and len(items) > 1 else None
    if engine is None:
        for i, item in enumerate(items):
            try:
                if no_template:
                    text = model.generate(prompt_of(item) or "", params)
                else:
                    text = model.chat(messages_of(item, system), params)
            except LaminaError as exc:
                yield i, _record(item, "", 0, "error", exc.message)
                continue
            stats = model.last_stats
            yield i, _record(item, str(text), stats.completion_tokens, stats.finish_reason)
        return
    stops = tuple(params.stop) + (() if no_template else tuple(model.template.stop))
    p = params.replace(stop=stops)
    group = batch * GROUP_BATCHES
    for start in range(0, len(items), group):
        chunk = items[start:start + group]
        prompts = [model.tokenize(prompt_of(it) or "") if no_template
                   else model.chat_tokens(messages_of(it, system)) for it in chunk]
        for j, c in engine.complete_many(model, prompts, p, None, n_seq=batch, exact=exact):
            item = chunk[j]
            if c.error is not None:
                yield start + j, _record(item, c.text, len(c.tokens), "error", c.error)
            else:
                yield start + j, _record(item, c.text, len(c.tokens), c.finish_reason)


def run_generate(model: Any, run: JsonlRun, params: Any, *, batch: int = 1,
                 system: str | None = None, no_template: bool = False, exact: bool = True,
                 emit: Callable[[dict[str, Any]], Any] | None = None,
                 on_progress: Callable[[int, int], Any] | None = None) -> dict[str, Any]:
    """Answer the run's items into its output (``emit`` gets each record, in input
    order, when there is no output file); returns the counts for the summary.
    After an exception the output is left resumable (``run.interrupted()``)."""
    items = [item for _, item in run.todo]
    total, written, failed, cut = len(items), 0, 0, 0
    started = time.perf_counter()
    held: dict[int, dict[str, Any]] = {}
    nxt = 0
    try:
        for index, rec in generate_iter(model, items, params, batch=batch, system=system,
                                        no_template=no_template, exact=exact):
            written += 1
            failed += "error" in rec
            cut += rec.get("finish_reason") == "length"
            if run.out is not None:
                run.write(run.todo[index][0], rec)
            else:  # stdout cannot be reordered afterwards: input order as we go
                held[index] = rec
                while nxt in held:
                    if emit is not None:
                        emit(held.pop(nxt))
                    nxt += 1
            if on_progress is not None:
                on_progress(written, total)
    except BaseException:
        run.interrupted()
        raise
    run.finish()
    return {"written": written, "failed": failed, "length": cut, "skipped": run.skipped,
            "retried": run.retried, "bad": len(run.bad),
            "seconds": time.perf_counter() - started}
