"""Input records for ``lamina extract``, ``generate`` and ``eval``: the seeds' file shapes.

One reader, so the three commands agree on what a file holds. Containers:

* plain text, one document (or prompt) a line, id = line number;
* JSON Lines (by suffix ``.jsonl``/``.json``/``.ndjson`` or a first line that
  starts with ``{``), id = line number unless the record has one;
* one JSON array (the first character is ``[`` and the suffix is not
  ``.jsonl``/``.ndjson``: seed 000 ships its data this way), read element by element, id = position in the array (1-based), so a
  broken or truncated element costs only itself.

Record shapes, told apart by their fields (a record's own ``task``,
``instruction`` and ``label`` always win over command-line defaults):

* IEPile test/train (seed 002): ``instruction`` is the IEPile instruction
  JSON text ``{"instruction", "schema", "input"}``; the document is its
  ``input``; gold is ``label`` (test files) or ``output`` (train files).
* Alpaca layout, as seed 000's NER pair files: ``instruction`` is free text,
  ``input`` the document, ``output`` the gold answer (``类别_实体&...``).
* raw annotations (DeepKE's ``sample.json`` per task, InstructIE): ``text``
  and an ``entity``, ``relation`` or ``event`` list, which is the gold.
* plain: ``text`` or ``input``, or (generate) ``prompt``.

The normalised item is the record's own dict plus ``id`` (a string),
``kind`` ("iepile", "alpaca" or "text"), ``text`` (the document), ``task``
(upper case, when the record names one) and ``label`` (the gold, when the
record has one). A record that cannot be used becomes a :class:`BadLine`
whose reason names the record and the problem; the caller writes it to the
errors file, so nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamina.errors import InputError, SchemaError
from lamina.files import require_file
from lamina.ie.readers import LabelError, read_label
from lamina.ie.tasks import TASKS, get_task

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
#: Suffixes that always mean JSON Lines (a ".json" file may be either: DeepKE's
#: are JSON Lines, seed 000's are arrays).
LINE_SUFFIXES = (".jsonl", ".ndjson")

#: The raw-annotation list each task's gold comes from (DeepKE's sample.json fields).
ANNOTATION_FIELDS: dict[str, str] = {"NER": "entity", "RE": "relation", "KG": "relation",
                                     "EE": "event", "EET": "event", "EEA": "event"}

#: The record shapes, as error messages name them.
KIND_NAMES = {"text": "raw text/annotations", "iepile": "an IEPile record",
              "alpaca": "an instruction/input/output record"}

#: What a consumer needs from a record: a document (extract), a prompt (generate),
#: or nothing beyond a well-formed record (eval gold files).
NEEDS = ("text", "prompt", "any")


@dataclass
class BadLine:
    """An input record that could not be used, and why.

    ``line`` is the line the record starts on; ``record`` its position in a
    JSON array (None for line-based files).
    """

    line: int
    reason: str
    raw: str
    record: int | None = None

    def as_record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"line": self.line, "error": self.reason, "raw": self.raw[:2000]}
        if self.record is not None:
            out["record"] = self.record
        return out


class RecordError(ValueError):
    """Why one record cannot be used (the reader turns it into a BadLine)."""


def is_jsonl_input(path: Path, first: str) -> bool:
    """JSONL records or one plain-text document per line? By suffix or first line,
    so the local and the Ray readers decide the same way."""
    return path.suffix.lower() in JSON_SUFFIXES or first.lstrip().startswith("{")


def is_json_array(path: str | os.PathLike[str]) -> bool:
    """Whether the file is one JSON array: its first non-blank character is ``[``
    and its suffix does not say JSON Lines."""
    if Path(path).suffix.lower() in LINE_SUFFIXES:
        return False
    with Path(path).open("rb") as fh:
        while True:
            chunk = fh.read(4096)
            if not chunk:
                return False
            stripped = chunk.lstrip().lstrip(b"\xef\xbb\xbf").lstrip()
            if stripped:
                return stripped.startswith(b"[")


# ---- containers


def read_values(path: str | os.PathLike[str], what: str = "input file", *,
                plain_lines: bool = False) -> Iterator[tuple[int, int | None, Any] | BadLine]:
    """The raw values of a file as ``(line, array position, value)``, or BadLines.

    Plain-text lines come back as strings. ``plain_lines`` lets a JSONL file
    hold plain-text lines too (generate's prompt files); otherwise a JSONL
    line that does not parse is a BadLine.
    """
    p = require_file(path, what)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"The {what} '{p}' is not UTF-8 text.",
                         hint="Convert it to UTF-8 (e.g. iconv -f gbk -t utf-8).") from exc
    yield from text_values(text, p.name, plain_lines=plain_lines)


def text_values(text: str, name: str, *, plain_lines: bool = False
                ) -> Iterator[tuple[int, int | None, Any] | BadLine]:
    """:func:`read_values` of a file's text already in memory (a file uploaded to
    the server); ``name`` is the file's name, whose suffix counts as for a path."""
    p = Path(name)
    text = text.removeprefix("\ufeff")
    if p.suffix.lower() not in LINE_SUFFIXES and text.lstrip().startswith("["):
        yield from _array_values(text)
        return
    lines = text.splitlines()
    jsonl = is_jsonl_input(p, lines[0] if lines else "")
    for lineno, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        if not jsonl or (plain_lines and not raw.lstrip().startswith("{")):
            yield lineno, None, raw
            continue
        try:
            yield lineno, None, json.loads(raw)
        except json.JSONDecodeError as exc:
            yield BadLine(lineno, f"line {lineno} is not valid JSON ({exc.msg})", raw)
        except RecursionError:
            yield BadLine(lineno, f"line {lineno} is nested too deeply to read", raw)


_DECODER = json.JSONDecoder()
_WS = re.compile(r"\s*")


def _array_values(text: str) -> Iterator[tuple[int, int | None, Any] | BadLine]:
    """Elements of a JSON array one by one; a broken element is skipped up to the
    next element that starts a line at the first element's indentation."""
    pos = text.index("[") + 1
    index = 0
    indent: str | None = None
    while True:
        pos = _WS.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= len(text):
            yield BadLine(_line_of(text, pos), "the JSON array is not closed with ']' "
                          f"(the file looks truncated after record {index})", "",
                          record=index + 1)
            return
        if text[pos] == "]":
            rest = text[pos + 1:].strip()
            if rest:
                yield BadLine(_line_of(text, pos + 1), "text after the end of the JSON array",
                              rest)
            return
        index += 1
        line = _line_of(text, pos)
        if indent is None:
            start = text.rfind("\n", 0, pos) + 1
            indent = text[start:pos] if not text[start:pos].strip() else None
        try:
            value, end = _DECODER.raw_decode(text, pos)
        except (json.JSONDecodeError, RecursionError) as exc:
            nxt = _next_element(text, pos + 1, indent)
            msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
            if nxt >= len(text):
                reason = (f"record {index} (line {line}) is cut off or not valid JSON ({msg}); "
                          "the file looks truncated here")
            else:
                reason = f"record {index} (line {line}) is not valid JSON ({msg})"
            yield BadLine(line, reason, text[pos:nxt].rstrip().rstrip(","), record=index)
            pos = nxt
            if pos >= len(text):
                return
            continue
        yield line, index, value
        pos = _WS.match(text, end).end()  # type: ignore[union-attr]
        if pos < len(text) and text[pos] == ",":
            pos += 1


def _next_element(text: str, pos: int, indent: str | None) -> int:
    """Where the next readable array element starts (len(text) if none does)."""
    pattern = re.compile(r"\n" + (re.escape(indent) if indent is not None else r"[ \t]*")
                         + r"(?=[{\[\"])")
    for m in pattern.finditer(text, pos):
        start = m.end()
        try:
            _DECODER.raw_decode(text, start)
        except (json.JSONDecodeError, RecursionError):
            continue
        return start
    return len(text)


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


# ---- records


def _where(line: int, record: int | None) -> str:
    return f"line {line}" if record is None else f"record {record} (line {line})"


def read_records(path: str | os.PathLike[str], *, task: str | None = None, need: str = "text",
                 kinds: Collection[str] | None = None,
                 what: str = "input file") -> Iterator[dict[str, Any] | BadLine]:
    """Normalised items of an input file (see the module docstring), or BadLines.

    ``task`` is the task for records that name none (it picks the annotation
    list used as gold and checks labels); ``need`` says what every record must
    have: a document ("text"), a prompt ("prompt") or nothing more ("any");
    ``kinds`` limits the record shapes accepted (``lamina ie convert`` takes raw
    annotations only).
    """
    yield from _records(read_values(path, what, plain_lines=need == "prompt"), task=task,
                        need=need, kinds=kinds)


def text_records(text: str, name: str, *, task: str | None = None, need: str = "text",
                 kinds: Collection[str] | None = None) -> Iterator[dict[str, Any] | BadLine]:
    """:func:`read_records` of a file's text already in memory (see :func:`text_values`)."""
    yield from _records(text_values(text, name, plain_lines=need == "prompt"), task=task,
                        need=need, kinds=kinds)


def _records(entries: Iterator[tuple[int, int | None, Any] | BadLine], *, task: str | None,
             need: str, kinds: Collection[str] | None) -> Iterator[dict[str, Any] | BadLine]:
    for entry in entries:
        if isinstance(entry, BadLine):
            yield entry
            continue
        line, record, value = entry
        default_id = str(line if record is None else record)
        try:
            yield as_input(value, default_id=default_id, task=task, need=need, kinds=kinds)
        except RecordError as exc:
            raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            yield BadLine(line, f"{_where(line, record)} {exc}", raw, record=record)


def jsonl_item(text: str, lineno: int) -> dict[str, Any] | BadLine:
    """One JSONL line -> an input item, or a BadLine with the reason (local and Ray)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadLine(lineno, f"line {lineno} is not valid JSON ({exc.msg})", text)
    try:
        return as_input(data, default_id=str(lineno))
    except RecordError as exc:
        return BadLine(lineno, f"line {lineno} {exc}", text)


def as_input(data: Any, *, default_id: str, task: str | None = None,
             need: str = "text", kinds: Collection[str] | None = None) -> dict[str, Any]:
    """Normalise one record; RecordError says why it cannot be used."""
    if need not in NEEDS:
        raise ValueError(f"need must be one of {NEEDS}")
    if isinstance(data, str):
        plain = {"id": default_id, "kind": "text", "text": data}
        _check_need(plain, plain, need)
        return plain
    if not isinstance(data, Mapping):
        raise RecordError(f"is a JSON {_json_type(data)}, not an object")
    item = dict(data)
    item["id"] = _id_of(data, default_id)
    own_task = _task_of(data)
    if own_task is not None:
        item["task"] = own_task
    elif "task" in item:
        del item["task"]  # null
    rtask = own_task or (get_task(task).name if task else None)
    for key in ("source",):
        if key in data and isinstance(data[key], (dict, list)):
            raise RecordError(f"has a '{key}' that is a JSON {_json_type(data[key])}, not text")
    instruction = data.get("instruction")
    if instruction is not None and not isinstance(instruction, str):
        raise RecordError("has an 'instruction' that is not a string")
    gold: Any = data.get("label")
    if isinstance(instruction, str) and instruction.lstrip().startswith("{"):
        item["kind"] = "iepile"
        item["text"] = _iepile_input(instruction)
        if gold is None:
            gold = data.get("output")
    elif isinstance(instruction, str):
        item["kind"] = "alpaca"
        doc = data.get("input")
        if doc is not None and not isinstance(doc, str):
            raise RecordError("has an 'input' that is not text")
        if doc is not None:
            item["text"] = doc
        if gold is None:
            gold = data.get("output")
        if gold is not None and not isinstance(gold, str):
            raise RecordError(f"has an 'output' that is a JSON {_json_type(gold)}, not the "
                              "answer text")
    else:
        item["kind"] = "text"
        doc = data.get("text", data.get("input"))
        if doc is not None:
            if not isinstance(doc, str):
                raise RecordError("has an empty or non-text document")
            item["text"] = doc
        if gold is None:
            gold = _annotations(data, rtask)
    if kinds is not None and item["kind"] not in kinds:
        raise RecordError(f"is an instruction record ({item['kind']} layout), not "
                          f"{' or '.join(KIND_NAMES[k] for k in kinds)}")
    if item["kind"] != "alpaca":
        item.pop("input", None)  # the document is "text" from here on
    if gold is not None:
        item["label"] = _checked_label(gold, rtask, item["kind"])
    _check_need(item, data, need)
    return item


def _check_need(item: dict[str, Any], data: Mapping[str, Any], need: str) -> None:
    if need == "text":
        doc = item.get("text")
        if doc is None:
            if item["kind"] == "alpaca":
                raise RecordError("has an 'instruction' but no 'input' document to extract from")
            raise RecordError("has no 'text', 'input' or 'instruction' field")
        if not doc.strip():
            raise RecordError("has an empty or non-text document")
    elif need == "prompt":
        prompt = data.get("prompt")
        if prompt is not None and not isinstance(prompt, str):
            raise RecordError("has a 'prompt' that is not a string")
        if not (prompt_of(item) or "").strip():
            raise RecordError("has no 'prompt', 'instruction', 'text' or 'input' text")


def prompt_of(item: Mapping[str, Any]) -> str | None:
    """The text ``lamina generate`` sends for a record: its ``prompt``; an IEPile
    instruction as it is; an Alpaca instruction followed by its input on the next
    line; else the document."""
    if isinstance(item.get("prompt"), str):
        return item["prompt"]
    kind = item.get("kind")
    if kind == "iepile":
        return item["instruction"]
    if kind == "alpaca":
        extra = item.get("input")
        return item["instruction"] + (f"\n{extra}" if isinstance(extra, str) and extra else "")
    return item.get("text")


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean", int: "number",
            float: "number", type(None): "null"}.get(type(value), type(value).__name__)


def _id_of(data: Mapping[str, Any], default: str) -> str:
    rid = data.get("id")
    if rid is None:
        return default
    if isinstance(rid, bool) or not isinstance(rid, (str, int)):
        raise RecordError(f"has an 'id' that is a JSON {_json_type(rid)}, not a string or "
                          "number")
    return str(rid)


def _task_of(data: Mapping[str, Any]) -> str | None:
    value = data.get("task")
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"has a 'task' that is a JSON {_json_type(value)}, not a task name")
    try:
        return get_task(value).name
    except SchemaError:
        raise RecordError(f"names task {value!r}, which lamina does not know (tasks: "
                          f"{', '.join(TASKS)})") from None


def _iepile_input(instruction: str) -> str:
    try:
        data = json.loads(instruction)
    except json.JSONDecodeError as exc:
        raise RecordError(f"has an 'instruction' that starts like IEPile JSON but does not "
                          f"parse ({exc.msg})") from None
    if not isinstance(data, dict) or "schema" not in data or "input" not in data:
        raise RecordError("has an IEPile 'instruction' without \"schema\" or \"input\"")
    if not isinstance(data["input"], str):
        raise RecordError("has an IEPile 'instruction' whose \"input\" is not text")
    return data["input"]


def _annotations(data: Mapping[str, Any], task: str | None) -> Any:
    """The raw annotation list that is the gold of a ``text`` record, if any."""
    if task is not None:
        field = ANNOTATION_FIELDS[task]
        value = data.get(field)
    else:  # a text value (seed 002's ICL examples: "relation": "导演") is no annotation list
        present = [f for f in dict.fromkeys(ANNOTATION_FIELDS.values())
                   if f in data and not isinstance(data[f], str)]
        if len(present) != 1:
            return None
        field = present[0]
        value = data[field]
    if value is None:
        return None
    reason = annotation_problem(field, value)
    if reason:
        raise RecordError(reason)
    return value


def annotation_problem(field: str, value: Any) -> str | None:
    """Why a raw annotation list (``entity``, ``relation`` or ``event``) is malformed."""
    if not isinstance(value, list):
        return f"has an '{field}' that is a JSON {_json_type(value)}, not a list"
    need = {"entity": ("entity", "entity_type"), "relation": ("head", "relation", "tail"),
            "event": ("event_type",)}[field]
    for n, item in enumerate(value, 1):
        if not isinstance(item, Mapping):
            return f"has an '{field}' item {n} that is a JSON {_json_type(item)}, not an object"
        for key in need:
            if key not in item:
                return f"has an '{field}' item {n} without '{key}'"
            if not isinstance(item[key], str):
                return f"has an '{field}' item {n} whose '{key}' is not a string"
        if field != "event":
            continue
        if "event_trigger" in item and not isinstance(item["event_trigger"], str):
            return f"has an 'event' item {n} whose 'event_trigger' is not a string"
        args = item.get("arguments", [])
        if not isinstance(args, list):
            return f"has an 'event' item {n} whose 'arguments' is not a list"
        for m, arg in enumerate(args, 1):
            if not isinstance(arg, Mapping) or not isinstance(arg.get("argument"), str) \
                    or not isinstance(arg.get("role"), str):
                return (f"has an 'event' item {n} whose argument {m} is not "
                        "{\"argument\": text, \"role\": text}")
    return None


def _checked_label(gold: Any, task: str | None, kind: str) -> Any:
    if not isinstance(gold, (str, list, dict)):
        raise RecordError(f"has a 'label' that is a JSON {_json_type(gold)}, not the gold "
                          "annotations")
    if task is None or kind == "alpaca":
        return gold
    try:
        read_label(task, gold)
    except LabelError as exc:
        raise RecordError(f"has a gold label that does not fit task {task}: {exc}") from None
    return gold
