"""Slots: how many requests use the model at once, and who waits.

The model has one llama.cpp context, so by default one request generates at a
time (``parallel=1``); others wait in a bounded FIFO queue, and past it the
server answers 429 at once rather than piling up work it cannot finish.

Each slot owns one worker thread: all blocking model work of the request that
holds the slot (prompt evaluation, token steps, closing the generator) runs
there, one thing after another, so the model is never touched by two threads.
With the native batch engine, ``parallel=N`` gives N slots whose workers feed
the same engine; nothing else in the server changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio

from lamina.server.errors import ClientGone, ServerBusy

T = TypeVar("T")

#: How often a queued request checks whether its client is still there.
POLL_SECONDS = 0.25
#: A streaming step returns after this long even if more pieces are ready, so
#: fast models send few, larger chunks and slow ones send every piece at once.
STEP_BUDGET_SECONDS = 0.02


@dataclass
class Slot:
    """One admitted request's right to use the model, with its worker thread."""

    index: int
    executor: ThreadPoolExecutor

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking model work on this slot's thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


class SlotPool:
    """N slots plus a bounded FIFO queue of waiting requests."""

    def __init__(self, n_slots: int = 1, max_queue: int = 32) -> None:
        self.n_slots = n_slots
        self.max_queue = max_queue
        self._slots = [Slot(i, ThreadPoolExecutor(1, thread_name_prefix=f"lamina-slot{i}"))
                       for i in range(n_slots)]
        self._free: deque[int] = deque(range(n_slots))
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._avg_seconds = 5.0
        self.served = 0
        self.cancelled = 0
        self.rejected = 0

    @property
    def busy(self) -> int:
        return self.n_slots - len(self._free)

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    def retry_after(self) -> float:
        """A guess at when a place frees up, from recent request durations."""
        return self._avg_seconds * (self.waiting + 1) / self.n_slots

    async def _acquire(self, is_disconnected: Callable[[], Any] | None) -> int:
        if self._free and not self.waiting:
            return self._free.popleft()
        if self.waiting >= self.max_queue:
            self.rejected += 1
            raise ServerBusy(self.retry_after(), self.waiting)
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            while True:
                done, _ = await asyncio.wait({fut}, timeout=POLL_SECONDS)
                if done:
                    return fut.result()
                if is_disconnected is not None and await is_disconnected():
                    self.cancelled += 1
                    raise ClientGone()
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._release(fut.result())  # handed a slot while leaving: pass it on
            else:
                fut.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(fut)
            raise

    def _release(self, index: int) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(index)
                return
        self._free.append(index)

    @contextlib.asynccontextmanager
    async def slot(self, is_disconnected: Callable[[], Any] | None = None
                   ) -> AsyncIterator[Slot]:
        """Hold a slot for the duration of the block; 429 when the queue is full.

        ``is_disconnected`` (``request.is_disconnected``) lets a queued request
        leave the queue when its client goes away.
        """
        index = await self._acquire(is_disconnected)
        start = time.perf_counter()
        try:
            yield self._slots[index]
        finally:
            elapsed = time.perf_counter() - start
            self._avg_seconds = 0.8 * self._avg_seconds + 0.2 * elapsed
            self.served += 1
            self._release(index)

    def shutdown(self) -> None:
        for slot in self._slots:
            slot.executor.shutdown(wait=False, cancel_futures=True)


class PieceStream:
    """Drive a blocking iterator of text pieces (a model stream) from async code.

    Every ``next()`` and the final ``close()`` run on the slot's thread, so the
    generator is never resumed and closed at the same time, and ``aclose`` only
    returns once the model is really free (the slot can then be handed on).
    """

    def __init__(self, slot: Slot, make_iterator: Callable[[], Iterator[str]],
                 finish: Callable[[Iterator[str]], Any] | None = None,
                 on_gap: Callable[[float], None] | None = None) -> None:
        self._slot = slot
        self._make = make_iterator
        self._finish = finish
        #: Called with the seconds between two consecutive pieces (inter-token latency).
        self._on_gap = on_gap
        self._last_piece: float | None = None
        self._it: Iterator[str] | None = None
        self.finished = False
        #: What ``finish(iterator)`` returned (the usage numbers), read on the slot's
        #: thread right after the last piece, before another request can run.
        self.result: Any = None

    def _step(self, budget: float) -> list[str]:
        # The first step returns with the first piece (time to first token);
        # later ones gather pieces for up to ``budget`` seconds.
        first = self._it is None
        if first:
            self._it = iter(self._make())
        take = getattr(self._it, "take", None)
        if take is not None:
            return self._take(take, first, budget)
        pieces: list[str] = []
        deadline = time.perf_counter() + (0.0 if first else budget)
        for piece in self._it:
            now = time.perf_counter()
            if piece:
                pieces.append(piece)
                self._gap(now)
            if pieces and now >= deadline:
                return pieces
        self._end()
        return pieces

    def _take(self, take: Callable[[float | None, bool], tuple[list[tuple[float, str]], bool]],
              first: bool, budget: float) -> list[str]:
        """A step of an engine request: one wake-up for all pieces of the budget."""
        timed, ended = take(None if first else time.monotonic() + budget, first)
        for t, _piece in timed:
            self._gap(t)
        if ended:
            self._end()
        return [piece for _t, piece in timed]

    def _gap(self, now: float) -> None:
        if self._on_gap is not None and self._last_piece is not None:
            self._on_gap(now - self._last_piece)
        self._last_piece = now

    def _end(self) -> None:
        self.finished = True
        if self._finish is not None:
            self.result = self._finish(self._it)

    async def next_pieces(self, budget: float = STEP_BUDGET_SECONDS) -> list[str]:
        """The next batch of pieces; an empty list with ``finished`` set at the end.

        ``budget``: how long a step gathers pieces (a stream's chunking; an answer
        sent whole only needs to look at its client now and then)."""
        if self.finished:
            return []
        return await self._slot.run(self._step, budget)

    def _close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
        if self._it is not None and self.result is None and self._finish is not None:
            # Stopped early: what it had done so far (still on the slot's thread).
            self.result = self._finish(self._it)

    async def aclose(self) -> None:
        """Stop the generation (if still running) and wait until the model is free."""
        fut = asyncio.get_running_loop().run_in_executor(self._slot.executor, self._close)
        # Shielded: even when the request task is being cancelled, wait for the
        # generator to be closed before the slot goes to the next request.
        # A cancellation that arrives meanwhile is absorbed: this is cleanup, the
        # request is over either way (anyio re-delivers its own cancellations at
        # the caller's next await).
        with anyio.CancelScope(shield=True):
            while not fut.done():
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.shield(fut)
