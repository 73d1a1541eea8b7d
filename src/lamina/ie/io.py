"""Input documents and resumable JSONL output for ``lamina extract``.

Inputs: plain text (one document a line, id = line number), or JSONL records
with ``text``/``input`` (optional ``id``), or IEPile test records (``id``,
``instruction``, ``label``) as DeepKE's converter writes them. A bad line is
reported with its reason and the run goes on.

Outputs are written to ``OUT.part`` one flushed line per record and renamed
to ``OUT`` when the run completes, so ``OUT`` is never half-written; after a
crash or Ctrl-C, ``--resume`` reopens the ``.part`` file, drops a torn last
line, and skips the records already written.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from lamina.errors import InputError, OutputExistsError
from lamina.files import check_output_path, require_file

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")


@dataclass
class BadLine:
    """An input line that could not be used, and why."""

    line: int
    reason: str
    raw: str

    def as_record(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.reason, "raw": self.raw[:2000]}


def is_jsonl_input(path: Path, first: str) -> bool:
    """JSONL records or one plain-text document per line? By suffix or first line,
    so the local and the Ray readers decide the same way."""
    return path.suffix.lower() in JSON_SUFFIXES or first.lstrip().startswith("{")


def read_inputs(path: str | os.PathLike[str]) -> Iterator[dict[str, Any] | BadLine]:
    """Documents from a file, as item dicts (``id``, ``text`` / ``instruction``...)."""
    p = require_file(path, "input file")
    try:
        handle = p.open(encoding="utf-8")
        lines = iter(handle)
        first = next(lines, "")
    except UnicodeDecodeError as exc:
        raise InputError(f"The input file '{p}' is not UTF-8 text.",
                         hint="Convert it to UTF-8 (e.g. iconv -f gbk -t utf-8).") from exc
    with handle:
        jsonl = is_jsonl_input(p, first)
        lineno = 0
        for raw in _chain(first, lines, p):
            lineno += 1
            text = raw.rstrip("\r\n")
            if not text.strip():
                continue
            yield jsonl_item(text, lineno) if jsonl else {"id": str(lineno), "text": text}


def _chain(first: str, rest: Iterator[str], p: Path) -> Iterator[str]:
    if first:
        yield first
    try:
        yield from rest
    except UnicodeDecodeError as exc:
        raise InputError(f"The input file '{p}' is not UTF-8 text.") from exc


def jsonl_item(text: str, lineno: int) -> dict[str, Any] | BadLine:
    """One JSONL line -> an input item, or a BadLine with the reason (local and Ray)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadLine(lineno, f"line {lineno} is not valid JSON ({exc.msg})", text)
    if not isinstance(data, dict):
        return BadLine(lineno, f"line {lineno} is a JSON {type(data).__name__}, not an object",
                       text)
    item = dict(data)
    item["id"] = str(data["id"]) if data.get("id") is not None else str(lineno)
    if "instruction" in data and "text" not in data and "input" not in data:
        if not isinstance(data["instruction"], str):
            return BadLine(lineno, f"line {lineno}: 'instruction' must be a string", text)
        return item
    doc = data.get("text", data.get("input"))
    if doc is None:
        return BadLine(lineno, f"line {lineno} has no 'text', 'input' or 'instruction' field",
                       text)
    if not isinstance(doc, str) or not doc.strip():
        return BadLine(lineno, f"line {lineno} has an empty or non-text document", text)
    item["text"] = doc
    item.pop("input", None)
    return item


def errors_path(out: Path) -> Path:
    """``out.jsonl`` -> ``out.errors.jsonl``: where rejected input lines go."""
    return out.with_name(f"{out.stem}.errors{out.suffix or '.jsonl'}")


def part_path(out: Path) -> Path:
    return out.with_name(out.name + ".part")


class ResumableJsonl:
    """A JSONL file written one flushed record at a time into ``.part``.

    ``start(resume=True)`` keeps what a previous run wrote and reports it via
    ``existing``; ``finish()`` renames ``.part`` to the final name.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.part = part_path(self.path)
        self.existing: list[dict[str, Any]] = []
        self.count = 0
        self._fh: IO[str] | None = None

    def start(self, resume: bool = False, force: bool = False) -> ResumableJsonl:
        if resume:
            if not self.part.exists() and self.path.exists():
                os.replace(self.path, self.part)  # a finished run: nothing will be redone
            if self.part.exists():
                self.existing = self._read_back()
        else:
            if self.path.exists() and not force:
                raise OutputExistsError(
                    f"Output '{self.path}' already exists.",
                    hint="Pass --force to overwrite it, or --resume to continue it.")
            check_output_path(self.path, force=True)
            self.part.unlink(missing_ok=True)
        self._fh = self.part.open("a", encoding="utf-8")
        self.count = len(self.existing)
        return self

    def _read_back(self) -> list[dict[str, Any]]:
        """Records already in ``.part``; a torn or unreadable tail is cut off."""
        good: list[dict[str, Any]] = []
        keep = 0
        with self.part.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                try:
                    good.append(json.loads(raw))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    break
                keep += len(raw)
        if keep != self.part.stat().st_size:
            with self.part.open("r+b") as fh:
                fh.truncate(keep)
        return good

    def drop_existing(self, unwanted: Any) -> int:
        """Remove the records of a previous run for which ``unwanted(record)`` is true
        (failed ones, so ``--resume`` retries them); returns how many went."""
        keep = [r for r in self.existing if not unwanted(r)]
        gone = len(self.existing) - len(keep)
        if gone:
            self._rewrite(keep)
            self.existing = keep
            self.count = len(keep)
        return gone

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace ``.part`` with ``records`` (temp file + rename: a crash keeps the old)."""
        reopen = self._fh is not None
        self.close()
        tmp = self.part.with_name(self.part.name + f".{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        os.replace(tmp, self.part)
        if reopen:
            self._fh = self.part.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        assert self._fh is not None
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def finish(self, keep_empty: bool = True, order: list[int] | None = None) -> None:
        """Close and publish: rename ``.part`` over the final name (or drop it if empty).

        ``order`` gives each record's sort key, in the order the records were
        written (records are written as documents finish, not in input order);
        the published file is then sorted by it.
        """
        self.close()
        if order is not None and order != sorted(order):
            records = self._read_back()
            if len(records) == len(order):
                ranked = sorted(range(len(records)), key=order.__getitem__)
                self._rewrite([records[i] for i in ranked])
        if self.count == 0 and not keep_empty:
            self.part.unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)
            return
        os.replace(self.part, self.path)


class DoneIndex:
    """Which input records a previous run already answered.

    Ids can repeat (IEPile test files hold one line per schema chunk), so the
    index counts occurrences: the n-th record with an id is done when the
    output already holds at least n records with that id.
    """

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.done = Counter(str(r.get("id")) for r in records)
        self.seen: Counter[str] = Counter()

    def skip(self, item_id: str) -> bool:
        self.seen[item_id] += 1
        return self.seen[item_id] <= self.done[item_id]
