"""Turn a model's answer into the structured result, strictly or leniently.

With a grammar the answer is valid JSON of the right shape by construction and
``parse_answer`` only loads it. Without one (``--no-grammar``, or another
tool's outputs) the answer may carry chatter, code fences, single quotes or
wrong types; the lenient path salvages what it can, keeps only schema keys in
schema order, and reports why when nothing usable is left.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lamina.ie.instructions import PAIR_JOIN, PAIR_SEP
from lamina.ie.schema_split import empty_result, empty_value, schema_keys
from lamina.ie.tasks import NAN, TaskSpec, get_task


@dataclass
class Parsed:
    """A parsed answer: ``result`` always has every schema key; ``ok`` is False
    when the answer could not be read at all (``error`` says why)."""

    result: dict[str, Any]
    ok: bool = True
    error: str | None = None
    notes: list[str] = field(default_factory=list)


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def load_json_object(text: str) -> tuple[Any, str | None]:
    """The first JSON object in ``text`` (lenient); (None, reason) if none."""
    s = _FENCE.sub("", text.strip())
    if not s:
        return None, "empty answer"
    try:
        return json.loads(s), None
    except json.JSONDecodeError:
        pass
    start, end = s.find("{"), s.rfind("}")
    if start < 0 or end <= start:
        return None, "no JSON object in the answer"
    body = s[start:end + 1]
    try:
        return json.loads(body), None
    except json.JSONDecodeError as exc:
        try:  # Python-literal style answers: single quotes, True/False/None
            return ast.literal_eval(body), None
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None, f"invalid JSON ({exc.msg} at character {exc.pos + start})"


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def _arg_value(value: Any) -> Any:
    if isinstance(value, list):
        vals = [v for v in value if isinstance(v, str)]
        return vals if vals else NAN
    return value if isinstance(value, str) and value else NAN


def _coerce(spec: TaskSpec, item: Any, value: Any, notes: list[str], key: str) -> Any:
    """Shape one key's value the way the task's output defines it."""
    if spec.name in ("NER", "EET"):
        return _strings(value)
    if spec.name == "RE":
        out = []
        for rel in value if isinstance(value, list) else []:
            if isinstance(rel, Mapping) and isinstance(rel.get("subject"), str) \
                    and isinstance(rel.get("object"), str):
                out.append({"subject": rel["subject"], "object": rel["object"]})
            else:
                notes.append(f"{key}: dropped a relation that is not {{subject, object}}")
        return out
    if spec.name in ("EE", "EEA"):
        roles = item["arguments"] if isinstance(item, Mapping) else []
        out = []
        for ev in value if isinstance(value, list) else []:
            if not isinstance(ev, Mapping):
                notes.append(f"{key}: dropped an event that is not an object")
                continue
            raw_args = ev.get("arguments", {}) if spec.name == "EE" else ev
            args = {r: _arg_value(raw_args.get(r)) for r in roles} \
                if isinstance(raw_args, Mapping) and raw_args else {}
            if spec.name == "EEA":
                out.append(args)
            elif item.get("trigger", True):
                trig = ev.get("trigger")
                out.append({"trigger": trig if isinstance(trig, str) else NAN, "arguments": args})
            else:
                out.append({"arguments": args})
        return out
    # KG: {entity: {attribute: value | [values]}}, unknown attributes dropped
    attrs = item["attributes"] if isinstance(item, Mapping) else []
    out_kg: dict[str, Any] = {}
    for name, props in value.items() if isinstance(value, Mapping) else []:
        if not isinstance(props, Mapping):
            continue
        kept = {a: props[a] for a in attrs if a in props and _strings(props[a])}
        out_kg[name] = {a: (v if isinstance(v, str) else _strings(v)) for a, v in kept.items()}
    return out_kg


def parse_answer(task: str | TaskSpec, schema: Sequence[Any] | Mapping[str, str],
                 text: str) -> Parsed:
    """Parse one chunk's answer into ``{key: value}`` for exactly the schema keys."""
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    data, error = load_json_object(text)
    if error is None and not isinstance(data, dict):
        error = f"the answer is a JSON {type(data).__name__}, not an object"
    if error is not None:
        return Parsed(empty_result(spec, schema), ok=False, error=error)
    keys = schema_keys(spec, schema)
    items = list(schema) if not isinstance(schema, Mapping) else keys
    notes = [f"ignored key {k!r} (not in the schema)" for k in data if k not in keys]
    result: dict[str, Any] = {}
    for key, item in zip(keys, items, strict=True):
        if key not in data:
            notes.append(f"missing key {key!r}")
            result[key] = empty_value(spec)
        else:
            result[key] = _coerce(spec, item, data[key], notes, key)
    return Parsed(result, ok=True, notes=notes)


def parse_pairs(text: str, categories: Sequence[str] | None = None) -> Parsed:
    """Seed-000 answers ``类别_实体&类别_实体`` -> ``{类别: [实体, ...]}``.

    With known categories the longest one that prefixes a pair wins (so a
    category may itself contain '_'); without, the pair splits at its first '_'.
    Schema categories come first and in order, others follow as they appear.
    """
    cats = list(categories or [])
    result: dict[str, list[str]] = {c: [] for c in cats}
    notes: list[str] = []
    by_len = sorted(cats, key=len, reverse=True)
    for raw in text.strip().split(PAIR_SEP):
        pair = raw.strip()
        if not pair:
            continue
        cat = next((c for c in by_len if pair.startswith(c + PAIR_JOIN)), None)
        if cat is not None:
            ent = pair[len(cat) + 1:]
        elif PAIR_JOIN in pair:
            cat, ent = pair.split(PAIR_JOIN, 1)
        else:
            notes.append(f"ignored {pair!r} (no '{PAIR_JOIN}')")
            continue
        if ent.strip():
            result.setdefault(cat, []).append(ent.strip())
    ok = bool(text.strip()) is False or any(result.values()) or not notes
    return Parsed(result, ok=ok, error=None if ok else "no '类别_实体' pair in the answer",
                  notes=notes)
