"""Where a request's tokens come from: the model's own context, or the batch engine.

With one slot, requests run on ``Model.generate``/``Model.chat`` (one llama
context, KV reuse between turns). With ``--parallel N`` and lamina's native
engine, every slot submits to one ``BatchEngine`` with N sequences, so N
requests advance together in each ``llama_decode``. Routes see only
``Backend.chat``/``Backend.complete``: a piece iterator plus the usage numbers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lamina.runtime.engine import common_prefix_length

if TYPE_CHECKING:  # pragma: no cover
    from lamina.runtime.engine import BatchEngine, EngineRequest
    from lamina.runtime.model import Model


#: A prompt start this long (tokens) that a request shares with the one before it is
#: kept in the engine as its shared prefix: a system prompt every client sends (the
#: 24-token default one SmolLM2's template adds counts), or a conversation's earlier
#: turns. Shorter ones are not worth an extra llama_decode call.
MIN_SHARED_PREFIX = 16


@dataclass
class Usage:
    """What the routes report: token counts and why generation ended."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"


class Backend:
    """Sequential generation on the model's own context (one request at a time)."""

    parallel = 1

    def __init__(self, model: Model) -> None:
        self.model = model

    def chat(self, messages: list[dict[str, str]], grammar: str | None,
             overrides: dict[str, Any]) -> Iterator[str]:
        return self.model.chat(messages, stream=True, grammar=grammar, **overrides)

    def complete(self, prompt: str, grammar: str | None,
                 overrides: dict[str, Any]) -> Iterator[str]:
        return self.model.generate(prompt, stream=True, grammar=grammar, **overrides)

    def tokens(self, tokens: Sequence[int], grammar: str | None,
               overrides: dict[str, Any]) -> Iterator[str]:
        """Continue prompt token ids as they are (tool calls build their own prompts)."""
        return self.model.generate(list(tokens), stream=True, grammar=grammar, **overrides)

    def usage(self, _it: Iterator[str]) -> Usage:
        """Counts of the generation ``_it`` just finished (read on the same slot thread)."""
        s = self.model.last_stats
        return Usage(s.prompt_tokens, s.completion_tokens, s.finish_reason)

    def close(self) -> None:
        pass


class EngineBackend(Backend):
    """N slots feeding lamina's native batch engine (continuous batching)."""

    def __init__(self, model: Model, n_seq: int) -> None:
        super().__init__(model)
        from lamina.runtime.engine import BatchEngine

        self.engine: BatchEngine = BatchEngine(model, n_seq_max=n_seq)
        self.engine.start()
        self.parallel = n_seq
        self._requests: dict[int, EngineRequest] = {}
        self._prefix_lock = threading.Lock()
        self._last_prompt: list[int] = []
        self._prefix: list[int] = []

    def _share_prefix(self, tokens: list[int]) -> None:
        """Prompt-cache reuse across requests: when this prompt starts with what the
        previous one started with (at least MIN_SHARED_PREFIX tokens, more than the
        engine already holds), make that the engine's shared prefix, evaluated once.
        The engine shares it only where a from-scratch evaluation would compute the
        same rows (BatchEngine.set_prefix), so answers do not change."""
        with self._prefix_lock:
            last, self._last_prompt = self._last_prompt, tokens
            n = common_prefix_length(last, tokens)
            held = len(self._prefix)
            if n < MIN_SHARED_PREFIX or (n <= held and tokens[:held] == self._prefix):
                return
            self._prefix = tokens[:n]
            self.engine.set_prefix(self._prefix)

    def _stream(self, tokens: Sequence[int], grammar: str | None, overrides: dict[str, Any],
                extra_stop: tuple[str, ...] = ()) -> Iterator[str]:
        params = self.model.default_params.replace(**overrides)
        self._share_prefix(list(tokens))
        req = self.engine.submit(list(tokens), params, grammar=grammar,
                                 stop=tuple(params.stop) + extra_stop)
        return _EngineStream(self.engine, req)

    def chat(self, messages: list[dict[str, str]], grammar: str | None,
             overrides: dict[str, Any]) -> Iterator[str]:
        # Same prompt tokens and stop strings as Model.chat.
        return self._stream(self.model.chat_tokens(messages), grammar, overrides,
                            tuple(self.model.template.stop))

    def complete(self, prompt: str, grammar: str | None,
                 overrides: dict[str, Any]) -> Iterator[str]:
        return self._stream(self.model.tokenize(prompt), grammar,
                            overrides)

    def tokens(self, tokens: Sequence[int], grammar: str | None,
               overrides: dict[str, Any]) -> Iterator[str]:
        return self._stream(tokens, grammar, overrides)

    def usage(self, it: Iterator[str]) -> Usage:
        req = it.request if isinstance(it, _EngineStream) else None
        if req is None:
            return super().usage(it)
        reason = req.finish_reason if req.finish_reason in ("stop", "length") else "stop"
        return Usage(req.prompt_tokens, len(req.tokens), reason)

    def close(self) -> None:
        self.engine.close()


class _EngineStream:
    """Pieces of one engine request; closing it early cancels the request.

    Iterating gives one piece at a time; :meth:`take` gives every piece ready by a
    deadline with one wake-up (what the server's steps use, see PieceBuffer).
    """

    def __init__(self, engine: BatchEngine, request: EngineRequest) -> None:
        self.engine = engine
        self.request = request

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        piece = self.request.pieces.get()
        if piece is None:
            self._raise_if_failed()
            raise StopIteration
        return piece

    def take(self, until: float | None, first: bool) -> tuple[list[tuple[float, str]], bool]:
        """``(decode time, piece)`` pairs ready by ``until`` (``time.monotonic()``), and
        whether the request ended (see :meth:`PieceBuffer.take`)."""
        pieces, ended = self.request.pieces.take(until, first)
        if ended:
            self._raise_if_failed()
        return pieces, ended

    def _raise_if_failed(self) -> None:
        if self.request.finish_reason == "error":
            from lamina.runtime.engine import EngineError

            raise EngineError("The batch engine failed while generating; the server "
                              "log has details.")

    def close(self) -> None:
        if not self.request.done:
            self.engine.cancel(self.request)


#: Most slots the server takes by itself: past this, every client's tokens come
#: slower on a CPU for little more throughput (ask for more with --parallel).
MAX_DEFAULT_SLOTS = 8


def default_slots(model: Model) -> int:
    """Slots when ``--parallel`` is not given: as many sequences of the model's whole
    context as the KV-cache budget holds (the rule extraction's batch uses, plus
    the shared-prefix holder the engine keeps), between 1 and MAX_DEFAULT_SLOTS;
    1 without the native engine."""
    from lamina.runtime.engine import default_n_seq, native_available

    if not native_available():
        return 1
    fit = default_n_seq(model, minimum=2, maximum=MAX_DEFAULT_SLOTS + 1) - 1
    return max(1, fit)


def make_backend(model: Model, parallel: int | None) -> Backend:
    """The engine backend for ``parallel`` > 1 when the native engine is built
    (``None``: :func:`default_slots`)."""
    if parallel is None:
        parallel = default_slots(model)
    if parallel > 1:
        from lamina.runtime.engine import native_available

        if native_available():
            return EngineBackend(model, parallel)
    return Backend(model)
