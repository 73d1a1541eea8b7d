"""Where the Ray results go: streamed in input order, checked exactly-once, published atomically.

Ray Data is told to preserve order, so results arrive in input order however
the actors finish; the sink writes them as they come (the driver holds one
block, not the whole run) and proves the exactly-once property on the way:
within a file, line numbers must strictly increase, and a file never comes
back after another one started, so a duplicate cannot slip through; at the
end the count must equal the records read, so a loss cannot either. Only then
are the output and errors file renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from lamina.errors import LaminaError
from lamina.files import atomic_output


class RecordCheckError(LaminaError):
    """The records that came back are not exactly the records that were read."""

    def __init__(self, message: str) -> None:
        super().__init__(f"Record check failed: {message}. Nothing was written.",
                         hint="This is a bug in lamina's Ray runner or in Ray; rerun, and "
                              "report it if it repeats.")


class OrderedSink:
    """Receives result rows (``path, line, kind, failed, json``) in input order."""

    def __init__(self, out: IO[str], err: IO[str] | None) -> None:
        self.out, self.err = out, err
        self.written = self.errors = self.failed = 0
        #: Why input lines were rejected, when there is no errors file to hold them.
        self.skipped_reasons: list[str] = []
        self._path: str | None = None
        self._line = 0
        self._done_paths: set[str] = set()

    def add(self, row: dict[str, Any]) -> None:
        path, line = str(row["path"]), int(row["line"])
        if path != self._path:
            if path in self._done_paths:
                raise RecordCheckError(f"records of '{path}' came back out of order")
            if self._path is not None:
                self._done_paths.add(self._path)
            self._path, self._line = path, 0
        if line <= self._line:
            raise RecordCheckError(f"line {line} of '{path}' came back twice or out of order")
        self._line = line
        if row["kind"] == "ok":
            self.out.write(row["json"] + "\n")
            self.written += 1
            self.failed += bool(row["failed"])
        else:
            self.errors += 1
            if self.err is not None:
                self.err.write(row["json"] + "\n")
            else:  # no errors file when printing to stdout: the caller says it, as locally
                reason = json.loads(row["json"]).get("error", "bad input line")
                self.skipped_reasons.append(str(reason))

    def check(self, records_in: int) -> None:
        """records in = records out + errors, or nothing is published."""
        if self.written + self.errors != records_in:
            raise RecordCheckError(f"{records_in} records were read but "
                                   f"{self.written + self.errors} came back")


@contextlib.contextmanager
def open_sink(output: Path | None, errors: Path | None, force: bool) -> Iterator[OrderedSink]:
    """A sink over the output and errors files (temporary until the block succeeds), or
    over stdout (printed when the block succeeds); like the local path, the errors
    file exists only when it has lines."""
    if output is None or errors is None:
        # Spooled, then copied: Ray prints its retry notices on stdout while the run
        # goes, and they must not land between two records.
        with tempfile.SpooledTemporaryFile(max_size=64 << 20, mode="w+",
                                           encoding="utf-8") as spool:
            yield OrderedSink(spool, None)
            spool.seek(0)
            shutil.copyfileobj(spool, sys.stdout)
            sys.stdout.flush()
        return
    with atomic_output(output, force=force) as out_tmp, \
            atomic_output(errors, force=True) as err_tmp, \
            open(out_tmp, "w", encoding="utf-8") as out, \
            open(err_tmp, "w", encoding="utf-8") as err:
        sink = OrderedSink(out, err)
        yield sink
    if sink.errors == 0:
        errors.unlink(missing_ok=True)
