"""Resumable JSONL output for ``lamina extract`` and ``lamina generate``.

Inputs are read by ``lamina.ie.inputs`` (every seed's file shape; its names
are re-exported here for the callers that import them from this module).

Outputs are written to ``OUT.part`` one flushed line per record and renamed
to ``OUT`` when the run completes, so ``OUT`` is never half-written; after a
crash or Ctrl-C, ``--resume`` reopens the ``.part`` file, drops a torn last
line, and skips the records already written.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import IO, Any

from lamina.errors import OutputExistsError
from lamina.files import check_output_path
from lamina.ie.inputs import BadLine, is_jsonl_input, jsonl_item, read_records

__all__ = ["BadLine", "DoneIndex", "ResumableJsonl", "errors_path", "is_jsonl_input",
           "jsonl_item", "part_path", "read_inputs", "read_records"]


#: The documents of an input file (the name extract's callers know).
read_inputs = read_records


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


class JsonlRun:
    """One resumable run over input items into a JSONL file (or stdout, ``output``
    None): what a previous run already wrote, where bad input records go, and
    the order the finished file is published in (input order, although records
    are written as they finish).

    ``todo`` holds ``(position, item)`` for the items still to do; ``bad`` the
    input records that could not be used (written to ``OUT.errors.jsonl``
    unless a previous run already did). ``--resume`` tries failed records again
    unless ``keep_failed``.
    """

    def __init__(self, items: list[Any], output: Path | None, *, resume: bool = False,
                 force: bool = False, keep_failed: bool = False) -> None:
        self.output = output
        self.out = self.err = None
        done = DoneIndex([])
        bad_done: set[int] = set()
        self.retried = 0
        if output is not None:
            self.out = ResumableJsonl(output)
            self.err = ResumableJsonl(errors_path(output))
            self.out.start(resume=resume, force=force or resume)
            self.err.start(resume=resume, force=True)
            if not keep_failed:
                self.retried = self.out.drop_existing(lambda r: "error" in r)
            done = DoneIndex(self.out.existing)
            bad_done = {int(r.get("line", -1)) for r in self.err.existing}
        self.todo: list[tuple[int, Any]] = []
        self.bad: list[BadLine] = []
        skipped_pos: dict[str, list[int]] = {}
        for pos, item in enumerate(items):
            if isinstance(item, BadLine):
                self.bad.append(item)
                if self.err is not None and item.line not in bad_done:
                    self.err.write(item.as_record())
            elif done.skip(str(item["id"])):
                skipped_pos.setdefault(str(item["id"]), []).append(pos)
            else:
                self.todo.append((pos, item))
        self.skipped = len(items) - len(self.bad) - len(self.todo)
        # Sort keys of the records already in the output, in file order.
        self.order: list[int] = []
        for rec in self.out.existing if self.out is not None else []:
            positions = skipped_pos.get(str(rec.get("id")))
            self.order.append(positions.pop(0) if positions else len(items))

    def write(self, pos: int, record: dict[str, Any]) -> None:
        assert self.out is not None
        self.out.write(record)
        self.order.append(pos)

    def interrupted(self) -> int:
        """Close after a failure or Ctrl-C, keeping ``.part`` for --resume; returns
        how many records it holds."""
        if self.out is None or self.err is None:
            return 0
        self.out.close()
        self.err.close()
        return self.out.count

    def finish(self) -> None:
        """Publish the output in input order; drop an empty errors file."""
        if self.out is not None and self.err is not None:
            self.out.finish(order=self.order)
            self.err.finish(keep_empty=False)
