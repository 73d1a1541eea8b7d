"""Benchmark results as Markdown: the one renderer for RESULTS.md and the docs.

Every benchmark writes ``benchmarks/results/<name>.json`` (common.save_result).
``run_all.py`` renders them into RESULTS.md with :func:`markdown`, and the docs
pages render the same tables and quote single numbers through cog blocks that
call :func:`section` and :func:`cell` (see docs/_gen.py), so a number in the
docs is always the one in the JSON: ``cog --check`` fails when a JSON changed
and the docs were not regenerated. Standard library only.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@cache
def load(name: str) -> dict[str, Any]:
    """The saved result of one benchmark (``results/<name>.json``)."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no benchmark result {path}; run python benchmarks/{name}.py")
    return json.loads(path.read_text(encoding="utf-8"))


def markdown(data: dict[str, Any]) -> list[str]:
    """The table of one result as Markdown lines (header, rule, rows)."""
    cols = data["columns"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in data["rows"]:
        lines.append("| " + " | ".join(row) + " |")
    return lines


def section(name: str) -> str:
    """Title, source script and date, the table and its notes, for a docs page."""
    data = load(name)
    command = data.get("command", f"python benchmarks/{name}.py")
    lines = [f"**{data['title']}** (`{command}`, {data.get('date', '?')})", ""]
    lines += markdown(data)
    if data.get("notes"):
        lines += ["", data["notes"]]
    return "\n".join(lines) + "\n"


def _row(data: dict[str, Any], row: str | int | tuple[str, ...]) -> list[str]:
    if isinstance(row, int):
        return data["rows"][row]
    if isinstance(row, tuple):  # the first len(row) cells, e.g. ("lamina serve", "4")
        found = [r for r in data["rows"] if tuple(r[:len(row)]) == row]
    else:
        exact = [r for r in data["rows"] if r[0] == row]
        found = exact or [r for r in data["rows"] if r[0].startswith(row)]
    if len(found) != 1:
        labels = [r[0] for r in data["rows"]]
        raise KeyError(f"{data['name']}: {len(found)} rows match {row!r}; rows are {labels}")
    return found[0]


def cell(name: str, row: str | int | tuple[str, ...], column: str | int) -> str:
    """One table cell: ``row`` is the first column's text (or a unique prefix of it),
    a tuple of the first cells, or an index; ``column`` a column name or index. A missing row or column raises,
    so a docs page that quotes a number fails to build when the table changed shape."""
    data = load(name)
    cols = data["columns"]
    if isinstance(column, str):
        if column not in cols:
            raise KeyError(f"{name}: no column {column!r}; columns are {cols}")
        column = cols.index(column)
    return _row(data, row)[column]


def extra(name: str, *keys: str) -> Any:
    """A value from the result's ``extra`` dict, e.g. ``extra("engine", "batch")``."""
    value: Any = load(name)["extra"]
    for key in keys:
        value = value[key]
    return value
