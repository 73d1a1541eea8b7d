"""The CLI's one line about leftovers of killed runs that a command cleaned up.

``lamina.files`` removes temporaries that killed runs left next to an output
and reports it on the ``lamina.files`` logger, printing nothing itself (it is
library code). While a command runs, a handler collects those reports; when it
ends, successful or not, they are shown as one line on stderr (stdout stays
clean for --json):

    Removed 2 leftover temporary files (111.58 MB) of earlier interrupted runs.

A build cleans in several places (work folders, the output's .part), so the
reports are summed rather than shown one by one, and shown at the end rather
than in the middle of a progress bar.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

LOGGER = "lamina.files"


class LeftoverCollector(logging.Handler):
    """Sums the ``record.leftovers`` results (lamina.files.Leftovers) logged during a command."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.removed: list[Any] = []
        self.kept: list[Any] = []
        self.freed_bytes = 0

    def emit(self, record: logging.LogRecord) -> None:
        found = getattr(record, "leftovers", None)
        if found is None:
            return
        self.removed += found.removed
        self.kept += [p for p in found.kept if p not in self.kept]
        self.freed_bytes += found.freed_bytes

    def lines(self) -> list[str]:
        """What to tell the user (plain text, not Rich markup)."""
        from lamina.files import human_bytes

        out = []
        if self.removed:
            n = len(self.removed)
            out.append(f"Removed {n} leftover temporary {'file' if n == 1 else 'files'} "
                       f"({human_bytes(self.freed_bytes)}) of earlier interrupted runs.")
        if self.kept:
            n = len(self.kept)
            first = self.kept[0]
            more = "" if n == 1 else f" and {n - 1} more"
            out.append(f"Left {n} temporary {'file' if n == 1 else 'files'} of another run that "
                       f"may still be in use: '{first}'{more}. Delete {'it' if n == 1 else 'them'}"
                       " by hand once no lamina is writing there.")
        return out


@contextlib.contextmanager
def leftover_notice() -> Iterator[LeftoverCollector]:
    """Collect lamina.files' reports while the block runs; print them when it ends."""
    logger = logging.getLogger(LOGGER)
    collector = LeftoverCollector()
    old_level = logger.level
    logger.addHandler(collector)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield collector
    finally:
        logger.removeHandler(collector)
        logger.setLevel(old_level)
        lines = collector.lines()
        if lines:
            from lamina.ui.console import err_console, escape

            for line in lines:
                err_console.print(escape(line), highlight=False)
