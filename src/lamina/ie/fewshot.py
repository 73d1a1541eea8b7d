"""Few-shot demonstrations for ``lamina extract --examples FILE`` (in-context learning).

A demonstration is a solved example in the model's own format: an IEPile
record (its instruction JSON and the ``output`` answer, e.g. a train file of
``lamina ie convert``) or a seed-000 record (instruction, input, output). Each
one becomes a user turn and the assistant's answer before the real question,
in the model's chat template, so the model sees finished examples of exactly
the exchange it is asked to continue; the answer to the question is still
grammar-constrained.

For each prompt (each schema chunk) the demonstrations are picked by schema
overlap (most schema keys shared with the chunk first, file order among
equals) or in file order, skipping demonstrations of another task and any
whose input is the document itself (a demo must never hand over the answer).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lamina.errors import FormatError, InputError, SchemaError
from lamina.ie.inputs import BadLine, prompt_of, read_records
from lamina.ie.instructions import pair_categories
from lamina.ie.tasks import DESCRIPTIONS, TASKS

SELECTIONS = ("overlap", "order")


@dataclass(frozen=True)
class Demo:
    """One solved example: the user turn, the answer, and what it is about."""

    user: str
    answer: str
    keys: frozenset[str]
    task: str | None
    text: str

    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.user},
                {"role": "assistant", "content": self.answer}]


_TASK_OF_DESCRIPTION = {text: task for (task, _), text in DESCRIPTIONS.items()}


def _keys(schema: Any) -> frozenset[str]:
    """Schema keys of an instruction's schema, whatever its task."""
    if isinstance(schema, Mapping):
        return frozenset(str(k) for k in schema)
    keys = set()
    for item in schema if isinstance(schema, list) else []:
        if isinstance(item, str):
            keys.add(item)
        elif isinstance(item, Mapping):
            for field in ("event_type", "entity_type", "predicate"):
                if isinstance(item.get(field), str):
                    keys.add(item[field])
                    break
    return frozenset(keys)


def as_demo(item: Mapping[str, Any]) -> Demo:
    """A demonstration from a normalised input record (``lamina.ie.inputs``)."""
    answer = item.get("label")
    if answer is None:
        raise SchemaError("has no answer ('output' or 'label') to demonstrate")
    if not isinstance(answer, str):
        answer = json.dumps(answer, ensure_ascii=False)
    kind = item.get("kind")
    if kind == "iepile":
        data = json.loads(item["instruction"])
        task = item.get("task") or _TASK_OF_DESCRIPTION.get(data.get("instruction"))
        return Demo(item["instruction"], answer, _keys(data["schema"]), task, item["text"])
    if kind == "alpaca":
        try:
            keys = frozenset(pair_categories(item["instruction"]))
        except SchemaError:
            keys = frozenset()
        return Demo(prompt_of(item) or "", answer, keys, "NER", item.get("text", ""))
    raise SchemaError("is not a demonstration: it needs an IEPile instruction or seed 000's "
                      "instruction/input, and its answer")


def load_demos(path: str | os.PathLike[str]) -> list[Demo]:
    """All demonstrations of a file; any bad one is an error (they are settings,
    not data: a silently dropped example would change every prompt)."""
    demos, bad = [], []
    for item in read_records(path, need="any", what="examples file"):
        if isinstance(item, BadLine):
            bad.append(item.reason)
            continue
        try:
            demos.append(as_demo(item))
        except SchemaError as exc:
            bad.append(f"record {item['id']} {exc.message}")
    if bad:
        raise FormatError(f"The examples file '{path}' has {len(bad)} unusable record(s): "
                          + "; ".join(bad[:5]) + ("; ..." if len(bad) > 5 else "") + ".",
                          hint="Each example needs an instruction and its answer ('output').")
    if not demos:
        raise InputError(f"The examples file '{path}' holds no examples.")
    return demos


def check_selection(how: str) -> str:
    if how not in SELECTIONS:
        raise SchemaError(f"Unknown example selection '{how}'.",
                          hint=f"Use one of: {', '.join(SELECTIONS)}.")
    return how


def select_demos(demos: Sequence[Demo], keys: Iterable[str], *, task: str, text: str,
                 shots: int, how: str = "overlap") -> list[Demo]:
    """The ``shots`` demonstrations for one prompt (see the module docstring)."""
    check_selection(how)
    wanted = frozenset(keys)
    pool = [(i, d) for i, d in enumerate(demos)
            if (d.task is None or d.task == task or d.task not in TASKS) and d.text != text]
    if how == "overlap":
        pool.sort(key=lambda p: (-len(p[1].keys & wanted), p[0]))
    return [d for _, d in pool[:max(0, shots)]]


def history(demos: Sequence[Demo]) -> list[dict[str, str]]:
    """The chat turns the demonstrations make, in order."""
    return [m for d in demos for m in d.messages()]
