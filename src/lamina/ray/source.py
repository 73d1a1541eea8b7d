"""A Ray Data source that yields every non-blank line with its file, line number and format.

Ray Data's own ``read_json``/``read_text`` drop where a row came from, and rows come
back from an actor pool in completion order. Keeping ``(path, line)`` on every row
is what lets the driver write the output in input order, give records without an
``id`` the same id as the local path (the line number), and name the line of a
malformed record in the errors file. Lines stay text: they are parsed in the
workers with the IE reader's own rule (``lamina.ie.io``), so a bad line
becomes an error record instead of failing the read. Whether a file is JSONL is
decided, as locally, from its name and its first line, which only the reader of
that file sees, so it travels with each row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from ray.data._internal.delegating_block_builder import DelegatingBlockBuilder
from ray.data.datasource.file_based_datasource import FileBasedDatasource

from lamina.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow

CHUNK_BYTES = 1 << 20  # read size: files are streamed, never loaded whole
ROWS_PER_BLOCK = 1024  # rows per Ray block


class NumberedLinesDatasource(FileBasedDatasource):
    """Rows ``{"path", "line" (1-based), "text", "jsonl"}``; blank lines are skipped."""

    def __init__(self, paths: str | list[str], **kwargs: Any) -> None:
        super().__init__(paths, **kwargs)

    def _read_stream(self, f: pyarrow.NativeFile, path: str) -> Iterator[Any]:
        from lamina.ie.io import is_jsonl_input

        builder = DelegatingBlockBuilder()
        rows = 0
        jsonl: bool | None = None
        for line_no, text in iter_numbered_lines(f, path):
            if jsonl is None:  # the first line, blank or not, decides (as read_inputs does)
                jsonl = is_jsonl_input(PurePosixPath(path), text)  # type: ignore[arg-type]
            if not text.strip():
                continue
            builder.add({"path": path, "line": line_no, "text": text, "jsonl": jsonl})
            rows += 1
            if rows == ROWS_PER_BLOCK:
                yield builder.build()
                builder, rows = DelegatingBlockBuilder(), 0
        if rows:
            yield builder.build()


def iter_numbered_lines(f: Any, path: str = "", chunk_bytes: int = CHUNK_BYTES,
                        ) -> Iterator[tuple[int, str]]:
    """Every line of a binary stream as ``(1-based line number, text without newline)``.

    Streams in chunks so a large file never sits in memory whole. Text that is
    not UTF-8 stops the read with the same message as the local reader.
    """
    pending = b""
    line_no = 0
    while True:
        chunk = f.read(chunk_bytes)
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for raw in complete:
            line_no += 1
            yield line_no, _decode(raw, path)
    if pending:
        yield line_no + 1, _decode(pending, path)


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise InputError(f"The input file '{path}' is not UTF-8 text.",
                         hint="Convert it to UTF-8 (e.g. iconv -f gbk -t utf-8).") from exc
