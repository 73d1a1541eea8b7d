"""Text pieces of one engine request, handed from the driver thread to its reader.

Why not a ``queue.Queue``: a queue wakes its reader for every token, and on a
2-core laptop each wake-up takes a core from llama.cpp's compute threads in the
middle of a decode. A server step wants every piece that is ready by a deadline,
so :meth:`PieceBuffer.take` sleeps until then and is woken early only by the end
of the request (or, while it waits for a first piece, by that piece). Each piece
keeps the time it was decoded, so inter-token latency is still measured per token.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque


class PieceBuffer:
    """A one-reader buffer of ``(time, piece)``; ``None`` as a piece ends it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[tuple[float, str | None]] = deque()
        self._eager = False  # the reader waits for the next piece, not for a deadline
        self._ended = False

    def put(self, piece: str | None) -> None:
        """Add a piece (``None``: the request ended; nothing may follow)."""
        with self._cond:
            self._items.append((time.monotonic(), piece))
            if piece is None:
                self._ended = True
                self._cond.notify_all()
            elif self._eager:
                self._cond.notify_all()

    def get(self, timeout: float | None = None) -> str | None:
        """The next piece, waiting for it (``None`` at the end); ``queue.Empty``
        after ``timeout`` seconds without one."""
        with self._cond:
            self._eager = True
            try:
                if not self._cond.wait_for(lambda: self._items, timeout):
                    raise queue.Empty
                return self._items.popleft()[1]
            finally:
                self._eager = False

    def take(self, until: float | None, first: bool = False
             ) -> tuple[list[tuple[float, str]], bool]:
        """Every piece ready when ``until`` (``time.monotonic()``) comes or the
        request ends, whichever is first, and whether it ended.

        ``first``: return as soon as there is any piece (time to first token);
        ``until`` is then the longest wait (``None``: no limit).
        """
        with self._cond:
            if first:
                self._eager = True
                try:
                    self._cond.wait_for(lambda: self._items, _remaining(until))
                finally:
                    self._eager = False
            else:
                self._cond.wait_for(lambda: self._ended, _remaining(until))
            items = list(self._items)
            self._items.clear()
        ended = bool(items) and items[-1][1] is None
        return [(t, p) for t, p in items if p is not None], ended


def _remaining(until: float | None) -> float | None:
    return None if until is None else max(0.0, until - time.monotonic())
