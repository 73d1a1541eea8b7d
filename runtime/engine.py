"""Many prompts decoded together on lamina's native engine (``lamina._native``).

``Model.generate`` decodes one sequence at a time, which leaves most of a CPU's
matrix throughput idle. The C++ engine keeps up to ``n_seq`` sequences in one
llama.cpp context and advances all of them every step; finished sequences free
their slot for queued ones (continuous batching), and a prompt prefix common to
all requests (the extraction instruction, a system prompt) is evaluated once and
shared through the KV cache.

The engine samples with the same chain as the sequential path, keeps every row
in the ggml kernel a one-sequence loop gives it (see ``BatchEngine``), hands out
each token's text already decoded as Python's UTF-8 decoder would, and this module
applies stop strings with the same :class:`~lamina.runtime.stream.TextStream`, so
greedy results equal ``Model.generate``'s, token for token, whatever the batch.
A free slot keeps its last prompt's cells for a request that starts the same way.

Two ways to drive it:

* :func:`generate_many` (extraction, batch jobs): submit everything, step until
  done, return the texts in order.
* :class:`BatchEngine` with :meth:`BatchEngine.start` (the server): a background
  thread steps while request threads consume :meth:`BatchEngine.stream`.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lamina.errors import InputError, LaminaError
from lamina.runtime.pieces import PieceBuffer
from lamina.runtime.sampling import (
    GrammarError,
    SamplingParams,
    native_config,
    unparsable_grammar,
)
from lamina.runtime.stream import TextStream

if TYPE_CHECKING:  # pragma: no cover
    from lamina.runtime.model import Model

#: Shortest common token prefix worth sharing (BOS alone is not).
MIN_SHARED_PREFIX = 4


class EngineError(LaminaError):
    """The native engine is missing, or refused a request or its settings."""


def native_available() -> bool:
    """True when the compiled ``lamina._native`` module can be imported."""
    try:
        _native()
    except EngineError:
        return False
    return True


def _native() -> Any:
    # llama-cpp-python's libllama goes first so the engine binds to that copy.
    import llama_cpp  # noqa: F401

    try:
        from lamina import _native as native
    except ImportError as exc:
        raise EngineError(
            f"lamina's native batch engine is not built ({exc}).",
            hint='Reinstall lamina with `pip install .` (it compiles bindings/ with CMake).',
        ) from exc
    if not hasattr(native, "utf8_texts"):
        # A module built from older bindings/ hands out tokens without their text.
        raise EngineError(
            "lamina's native batch engine is out of date (built before it detokenised "
            "pieces itself).",
            hint='Rebuild it: reinstall lamina with `pip install .`.',
        )
    return native


#: Most sequences a default batch holds; past this a CPU's matrix kernels gain little.
MAX_DEFAULT_N_SEQ = 64
#: Fewest sequences a default batch holds (batching pays off from the first few).
MIN_DEFAULT_N_SEQ = 2
#: Most memory a default batch's KV cache may take, and its share of free memory.
KV_BUDGET_BYTES = 2 << 30
KV_BUDGET_SHARE = 0.25


def default_n_seq(model: Model, tokens_per_seq: int | None = None, *,
                  minimum: int = MIN_DEFAULT_N_SEQ, maximum: int = MAX_DEFAULT_N_SEQ) -> int:
    """Sequences per batch when the user did not say: as many as the KV cache
    budget allows, up to :data:`MAX_DEFAULT_N_SEQ`.

    Why memory and not cores: on a CPU a batch of 64 sequences costs about a
    third as much per token as a batch of 16 (measured on 2 cores, see
    benchmarks/engine.py), so wider is better until the KV cache (one per
    sequence, ``tokens_per_seq`` tokens each, default the model's context)
    would take more than min(2 GiB, a quarter of free memory). A small model
    gets 64; a 7B model with 2048-token sequences gets 2. ``minimum`` and
    ``maximum`` bound the answer (the server wants 1 to 8 slots).
    """
    per_token = kv_bytes_per_token(model)
    tokens = int(tokens_per_seq or model.n_ctx)
    budget = min(KV_BUDGET_BYTES, int(_free_memory() * KV_BUDGET_SHARE))
    fit = budget // max(1, per_token * tokens)
    return int(max(minimum, min(maximum, fit)))


def kv_bytes_per_token(model: Model) -> int:
    """Bytes of KV cache one token takes in an engine context (f16 K and V)."""
    import llama_cpp

    handle = _model_pointer(model)  # raises a clear error for a closed model
    n_layer = llama_cpp.llama_model_n_layer(handle)
    n_head = max(1, llama_cpp.llama_model_n_head(handle))
    n_head_kv = llama_cpp.llama_model_n_head_kv(handle)
    n_embd_kv = llama_cpp.llama_model_n_embd(handle) // n_head * n_head_kv
    return 2 * n_layer * n_embd_kv * 2


def _free_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX: assume a small laptop
        return 8 << 30


@dataclass
class EngineRequest:
    """One request in a :class:`BatchEngine`: its tokens, text and how it ended."""

    id: int
    prompt_tokens: int
    stop: tuple[str, ...]
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None  # "stop" | "length" | "cancelled" | "error"
    stream: TextStream = field(default_factory=TextStream, repr=False)
    pieces: PieceBuffer = field(default_factory=PieceBuffer, repr=False)

    @property
    def done(self) -> bool:
        return self.finish_reason is not None

    @property
    def text(self) -> str:
        """Text released so far (all of it once ``done``)."""
        return self.stream.text


class BatchEngine:
    """A native batch context on ``model``'s weights with ``n_seq_max`` sequences.

    Each sequence holds at most ``n_ctx_per_seq`` tokens (prompt and answer).
    The context is separate from ``model``'s own, so ``Model.generate`` and
    the engine can be used side by side; the model's LoRA adapters are applied
    to it too. ``kv_unified`` puts all sequences in one KV stream (a shared
    prefix is then tagged, not copied, but every token attends over the cells
    of all sequences: slower on CPU for more than a few sequences).

    ``exact`` (the default) decodes in calls small enough that every token is
    computed with the kernel a one-sequence llama.cpp loop uses, so greedy
    answers do not depend on the batch: fewer than ``TILED_MIN_ROWS``
    sequences per call on K-quant models, one per call on models with
    F16/BF16/F32 weights (see ``kernel_switch_rows``), all in one call on the
    others (Q4_0, Q8_0...), where every call size is exact; and it evaluates
    each prompt chunk in a call of its own, as a plain loop does (packed with
    other sequences' rows, llama.cpp would cut it into other ubatches, and a
    sequence's attention rounds differently with one row than with several).
    ``exact=False`` packs everything into one call: faster on K-quant and F16
    models (see docs/engine.md), but a document's answer can then change in
    the last bits with its batch companions.
    """

    def __init__(self, model: Model, n_seq_max: int = 4, n_ctx_per_seq: int | None = None,
                 n_threads: int | None = None, n_batch: int | None = None,
                 kv_unified: bool = False, exact: bool = True) -> None:
        native = _native()
        self.model = model
        llama = model.llama
        ptr = _model_pointer(model)
        cp = llama.context_params
        n_ctx_per_seq = int(n_ctx_per_seq or model.n_ctx)
        if isinstance(n_seq_max, bool) or not isinstance(n_seq_max, int) or n_seq_max < 1:
            raise InputError(f"The batch size must be a whole number >= 1, got {n_seq_max!r}.")
        limit = native.max_parallel_sequences()
        if n_seq_max > limit:
            raise InputError(f"The batch size {n_seq_max} is more than llama.cpp's limit of "
                             f"{limit} sequences.", hint="Use a smaller --batch/--parallel.")
        switches = model.kernel_switch_rows
        try:
            self._raw = native.BatchEngine(
                ptr, n_seq_max, n_ctx_per_seq, int(n_threads or model.n_threads),
                int(n_batch or model.n_batch), int(cp.flash_attn_type), int(cp.type_k),
                int(cp.type_v), bool(kv_unified), bool(exact), list(switches))
        except ValueError as exc:
            raise InputError(f"Cannot create the batch engine: {exc}.") from exc
        except RuntimeError as exc:
            raise EngineError(f"Cannot create the batch engine: {exc}.",
                              hint="Lower the batch size or the context length.") from exc
        refs = getattr(llama, "_lamina_lora_refs", None)
        if refs is not None:
            arr, scales = refs
            import ctypes

            # arr holds llama_adapter_lora pointers (LP_c_void_p): their addresses.
            self._raw.set_adapters([int(ctypes.cast(a, ctypes.c_void_p).value or 0) for a in arr],
                                   [float(s) for s in scales])
        self.exact = bool(exact)
        self._requests: dict[int, EngineRequest] = {}
        self._lock = threading.Lock()  # guards _requests and every call into _raw
        self._wake = threading.Condition(self._lock)
        # Callers that asked for / were done with _lock. The background driver
        # lets everyone who asked during a step in before the next one: a plain
        # Lock is not fair, and a driver that took it straight back kept a new
        # request out of the batch until every running one had finished.
        self._callers_arrived = 0
        self._callers_left = 0
        self._callers_changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._error: BaseException | None = None
        #: Work that must run on the driver thread (see _on_driver).
        self._driver_tasks: list[tuple[Callable[[], Any], concurrent.futures.Future[Any]]] = []
        # Free the context before llama-cpp-python frees the weights under it,
        # and before interpreter shutdown (llama.cpp logs through a Python
        # callback that no longer works during finalization).
        me = weakref.ref(self)
        llama._stack.callback(lambda: (e := me()) is not None and e.close())
        _LIVE.add(self)

    # ---- properties

    @property
    def n_seq_max(self) -> int:
        return int(self._raw.n_seq_max)

    @property
    def n_ctx_per_seq(self) -> int:
        return int(self._raw.n_ctx_per_seq)

    @property
    def n_active(self) -> int:
        with self._turn():
            return int(self._raw.n_active)

    @property
    def n_queued(self) -> int:
        with self._turn():
            return int(self._raw.n_queued)

    def stats(self) -> dict[str, int | float]:
        """Counters since creation: prompt tokens evaluated / shared / of the
        prefix, tokens generated, decode calls, requests finished, grammar
        fallbacks (greedy choices the grammar rejected) and the candidates they
        checked, and the seconds spent in llama_decode and in sampling."""
        with self._turn():
            return dict(self._raw.stats())

    # ---- requests

    def tokens_of(self, prompt: str | Sequence[int]) -> list[int]:
        """Prompt tokens exactly as ``Model.generate`` makes them (the vocabulary's
        BOS rule for text; token ids as given)."""
        return _prompt_tokens(self.model, prompt)

    def set_prefix(self, prompt: str | Sequence[int]) -> int:
        """Evaluate a shared prefix once; requests starting with it reuse its KV cells.

        A request shares only as much of it as keeps each of its rows in the
        kernel class a from-scratch evaluation gives it (bindings/engine.cpp:
        shareable), so its answer does not change. Returns the number of tokens
        evaluated (0 if it was already the prefix).
        """
        tokens = self.tokens_of(prompt)
        try:
            return int(self._on_driver(lambda: self._raw.set_prefix(tokens)))
        except ValueError as exc:
            raise InputError(f"Cannot share this prefix: {exc}.") from exc
        except RuntimeError as exc:
            raise EngineError(f"The batch engine failed: {exc}.") from exc

    def submit(self, prompt: str | Sequence[int], params: SamplingParams | None = None, *,
               grammar: str | None = None,
               stop: Sequence[str] | None = None) -> EngineRequest:
        """Queue one request; it joins the batch at the next step with a free slot."""
        p = params if params is not None else self.model.default_params
        tokens = self.tokens_of(prompt)
        sc = native_config(_native(), p)
        stops = tuple(p.stop) if stop is None else tuple(stop)
        # Registered under the lock in the same breath as the native submit, so
        # a background step cannot report a token of a request not yet known here.
        try:
            with self._turn():
                rid = int(self._raw.submit(tokens, sc, grammar or None))
                req = EngineRequest(rid, len(tokens), stops, stream=TextStream(stops))
                self._requests[rid] = req
                self._wake.notify_all()
        except ValueError as exc:
            if "grammar" in str(exc):
                raise unparsable_grammar() from exc
            raise InputError(f"Cannot run this prompt: {exc}.",
                             hint="Shorten the prompt or use a larger context (--ctx).") from exc
        except RuntimeError as exc:
            raise EngineError(f"The batch engine failed: {exc}.") from exc
        return req

    def cancel(self, req: EngineRequest, reason: str = "cancelled") -> bool:
        """End ``req`` now; its slot is free when this returns."""
        with self._turn():
            ok = bool(self._raw.cancel(req.id, reason))
            if self._requests.pop(req.id, None) is not None and not req.done:
                self._finish(req, reason)
        return ok

    # ---- stepping

    def step(self) -> list[EngineRequest]:
        """One decode step over every active sequence; returns the requests that
        finished during it."""
        with self._turn():
            return self._step_locked()

    def _step_locked(self) -> list[EngineRequest]:
        try:
            events = self._raw.step()
        except RuntimeError as exc:
            # The native side ended that batch's requests; their "error" events
            # come with the next step.
            raise EngineError(f"The batch engine failed: {exc}.") from exc
        return self._apply(events)

    def _apply(self, events: list[tuple[int, int, bool, str, str]]) -> list[EngineRequest]:
        finished: list[EngineRequest] = []
        for rid, token, done, reason, text in events:
            req = self._requests.get(rid)
            if req is None:
                continue  # already ended from Python (stop string, cancel)
            if token >= 0:
                req.tokens.append(token)
                piece = req.stream.push_text(text)
                if piece:
                    req.pieces.put(piece)
                if req.stream.stopped and not done:
                    self._raw.cancel(rid, "stop")
                    done, reason = True, "stop"
            if done:
                del self._requests[rid]
                self._finish(req, reason)
                finished.append(req)
        return finished

    def _finish(self, req: EngineRequest, reason: str) -> None:
        tail = req.stream.finish()
        if tail:
            req.pieces.put(tail)
        req.finish_reason = reason
        req.pieces.put(None)

    def run(self, requests: Sequence[EngineRequest] | None = None,
            on_finish: Callable[[EngineRequest], Any] | None = None) -> None:
        """Step until ``requests`` (default: all) are done, in this thread."""
        if self._thread is not None:
            raise LaminaError("This engine is driven by its background thread; "
                              "use stream() or wait on the requests instead.")
        while True:
            if requests is not None and all(r.done for r in requests):
                return
            if requests is None and not self.has_work():
                return
            for req in self.step():
                if on_finish is not None:
                    on_finish(req)

    def has_work(self) -> bool:
        """Whether any request is queued or running."""
        with self._turn():
            return bool(self._raw.has_work())

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the engine lock; the background driver waits for this turn."""
        with self._callers_changed:
            self._callers_arrived += 1
        try:
            with self._lock:
                yield
        finally:
            with self._callers_changed:
                self._callers_left += 1
                self._callers_changed.notify_all()

    def _let_callers_in(self) -> None:
        """Between two steps, wait for the callers that are already waiting
        (only those: a steady stream of new ones cannot stall the driver)."""
        with self._callers_changed:
            waiting_until = self._callers_arrived
            while self._callers_left < waiting_until:
                self._callers_changed.wait()

    # ---- background driver (server)

    def _on_driver(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (which evaluates tokens) under the engine lock, on the driver
        thread when one runs.

        Why: llama.cpp computes with OpenMP, and every thread that starts a
        computation gets its own team of worker threads for as long as it lives.
        A second live team (a server's slot thread evaluating a shared prefix)
        and the driver's decoding ran at half speed on 2 cores (measured with one
        client of ``lamina serve --parallel 8``: 40 tokens/s, 89 with every
        evaluation on the driver). So every evaluation of this engine's context
        happens on one thread.
        """
        if self._thread is None or threading.current_thread() is self._thread:
            with self._turn():
                return fn()
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._turn():
            if self._closing:
                raise LaminaError("The batch engine is closed.")
            self._driver_tasks.append((fn, done))
            self._wake.notify_all()
        return done.result()

    def _fail_driver_tasks(self) -> None:
        tasks, self._driver_tasks = self._driver_tasks, []
        for _fn, done in tasks:
            done.set_exception(LaminaError("The batch engine was closed."))

    def _run_driver_tasks(self) -> None:
        tasks, self._driver_tasks = self._driver_tasks, []
        for fn, done in tasks:
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the caller waiting in _on_driver
                done.set_exception(exc)

    def start(self) -> None:
        """Step in a daemon thread whenever there is work (for concurrent callers)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._drive, name="lamina-engine", daemon=True)
            self._thread.start()

    def _drive(self) -> None:
        while True:
            self._let_callers_in()
            with self._lock:
                while not self._closing and not self._requests and not self._driver_tasks \
                        and not self._raw.has_work():
                    self._wake.wait()
                if self._closing:
                    self._fail_driver_tasks()
                    return
                self._run_driver_tasks()
                if not self._requests and not self._raw.has_work():
                    continue
                try:
                    self._step_locked()
                except BaseException as exc:  # report to every waiting stream
                    self._error = exc
                    for req in list(self._requests.values()):
                        self._finish(req, "error")
                    self._requests.clear()

    def stream(self, prompt: str | Sequence[int], params: SamplingParams | None = None, *,
               grammar: str | None = None,
               stop: Sequence[str] | None = None) -> Iterator[str]:
        """Text pieces of one request as they are decoded (needs :meth:`start`).

        Closing the iterator early cancels the request and frees its slot.
        """
        self.start()
        req = self.submit(prompt, params, grammar=grammar, stop=stop)
        try:
            while True:
                piece = req.pieces.get()
                if piece is None:
                    break
                yield piece
            if req.finish_reason == "error":
                raise EngineError(f"The batch engine failed: {self._error}.")
        finally:
            if not req.done:
                self.cancel(req)

    def close(self) -> None:
        """Stop the driver thread and free the context (the model stays loaded)."""
        with self._turn():
            self._closing = True
            self._wake.notify_all()
            for req in list(self._requests.values()):
                self._finish(req, "cancelled")
            self._requests.clear()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self._raw.close()

    def __enter__(self) -> BatchEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_LIVE: weakref.WeakSet[BatchEngine] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for eng in list(_LIVE):
        eng.close()


def _model_pointer(model: Model) -> int:
    handle = getattr(getattr(model.llama, "_model", None), "model", None)
    if handle is None:
        raise LaminaError("The model was closed; load it again to generate.")
    import ctypes

    return int(ctypes.cast(handle, ctypes.c_void_p).value or 0)


def _prompt_tokens(model: Model, prompt: str | Sequence[int]) -> list[int]:
    if isinstance(prompt, str):
        return model.tokenize(prompt)
    return [int(t) for t in prompt]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _common_prefix(token_lists: Sequence[Sequence[int]]) -> list[int]:
    first = token_lists[0]
    n = len(first)
    for other in token_lists[1:]:
        n = common_prefix_length(first[:n], other)
    return list(first[:n])


def _normalise_grammars(grammars: Sequence[str | None] | str | None, n: int) -> list[str | None]:
    if grammars is None or isinstance(grammars, str):
        return [grammars or None] * n
    out = list(grammars)
    if len(out) != n:
        raise InputError(f"generate_many got {n} prompts but {len(out)} grammars.",
                         hint="Give one grammar per prompt, one for all, or None.")
    return [g or None for g in out]


#: Attribute of a Model holding its cached (engine, lock): kept on the model so
#: that both are collected together (a module-level map would keep the model alive).
_CACHE_ATTR = "_lamina_batch_engine"
_ENGINES_LOCK = threading.Lock()


def engine_for(model: Model, n_seq: int, n_ctx_per_seq: int,
               exact: bool = True) -> tuple[BatchEngine, threading.Lock]:
    """A cached engine on ``model`` with exactly ``n_seq`` slots and at least
    ``n_ctx_per_seq`` tokens each (creating a context costs more than a batch
    of short prompts), and the lock its user must hold."""
    with _ENGINES_LOCK:
        cached = getattr(model, _CACHE_ATTR, None)
        if cached is not None:
            eng, lock = cached
            if eng.n_seq_max == n_seq and eng.n_ctx_per_seq >= n_ctx_per_seq \
                    and eng.exact == exact and eng._thread is None and not eng._closing:
                return cached
            with lock:
                eng.close()
        eng = BatchEngine(model, n_seq, n_ctx_per_seq, exact=exact)
        cached = (eng, threading.Lock())
        setattr(model, _CACHE_ATTR, cached)
        return cached


def cached_engine(model: Model) -> BatchEngine | None:
    """The engine :func:`generate_many` keeps on ``model``, if any (for its stats)."""
    cached = getattr(model, _CACHE_ATTR, None)
    return cached[0] if cached is not None else None


@dataclass
class Completion:
    """One prompt's answer from :func:`complete_many`, or why it has none."""

    text: str
    finish_reason: str  # "stop" | "length" | "error"
    error: str | None = None
    tokens: list[int] = field(default_factory=list)


def complete_many(model: Model, prompts: Sequence[str | Sequence[int]],
                  params: SamplingParams | None = None,
                  grammars: Sequence[str | None] | str | None = None, *,
                  n_seq: int | None = None, shared_prefix: bool = True, exact: bool = True,
                  ) -> Iterator[tuple[int, Completion]]:
    """Complete every prompt on the batch engine, yielding ``(index, Completion)``
    as each one finishes (not in prompt order).

    With greedy params each answer's tokens equal ``model.generate``'s for that
    prompt alone, whatever ``n_seq``, the other prompts or the thread count:
    every row is computed with the kernel a plain one-sequence loop gives it
    (see ``BatchEngine``; ``exact=False`` trades that for speed).
    A prompt that cannot run (empty, longer than the context, a grammar that
    does not parse) gets a Completion with ``finish_reason="error"``; the
    others are not affected.
    """
    if not prompts:
        return
    p = params if params is not None else model.default_params
    gs = _normalise_grammars(grammars, len(prompts))
    token_lists: dict[int, list[int]] = {}
    for i, x in enumerate(prompts):
        toks = _prompt_tokens(model, x)
        if not toks:
            yield i, Completion("", "error", "the prompt is empty")
        elif len(toks) >= model.n_ctx:
            yield i, Completion("", "error", f"the prompt is {len(toks)} tokens, but the "
                                             f"context holds {model.n_ctx}")
        else:
            token_lists[i] = toks
    if not token_lists:
        return
    # As much room as the longest request can use, never more than the model's context.
    per_seq = min(model.n_ctx, max(len(t) for t in token_lists.values()) + p.max_tokens)
    per_seq = max(per_seq, 8)
    n = min(len(token_lists), n_seq or default_n_seq(model, per_seq))
    eng, lock = engine_for(model, max(1, n), per_seq, exact)
    with lock:
        if shared_prefix and len(token_lists) > 1:
            prefix = _common_prefix(list(token_lists.values()))
            if len(prefix) >= MIN_SHARED_PREFIX:
                eng.set_prefix(prefix)
        index: dict[int, int] = {}
        reqs: list[EngineRequest] = []
        try:
            for i, toks in token_lists.items():
                try:
                    req = eng.submit(toks, p, grammar=gs[i])
                except GrammarError:
                    raise  # the caller's grammar, not this document: every prompt would fail
                except LaminaError as exc:
                    yield i, Completion("", "error", exc.message)
                    continue
                reqs.append(req)
                index[req.id] = i
            while not all(r.done for r in reqs):
                for req in eng.step():
                    if req.id in index:
                        yield index[req.id], _completion(req)
        except BaseException:
            for r in reqs:
                if not r.done:
                    eng.cancel(r)
            raise


def _completion(req: EngineRequest) -> Completion:
    if req.finish_reason == "error":
        return Completion(req.text, "error", "the batch engine could not finish this prompt",
                          list(req.tokens))
    reason = "length" if req.finish_reason == "length" else "stop"
    return Completion(req.text, reason, None, list(req.tokens))


def generate_many(model: Model, prompts: Sequence[str | Sequence[int]],
                  params: SamplingParams | None = None,
                  grammars: Sequence[str | None] | str | None = None, *,
                  n_seq: int | None = None, shared_prefix: bool = True, exact: bool = True,
                  on_done: Callable[[int, str], Any] | None = None) -> list[str]:
    """Texts of :func:`complete_many` in prompt order; an EngineError names the
    prompts that failed. ``on_done(index, text)`` is called as each finishes."""
    texts: list[str | None] = [None] * len(prompts)
    failed: list[str] = []
    for i, c in complete_many(model, prompts, params, grammars, n_seq=n_seq,
                              shared_prefix=shared_prefix, exact=exact):
        texts[i] = c.text
        if c.error is not None:
            failed.append(f"{i + 1}: {c.error}")
        elif on_done is not None:
            on_done(i, c.text)
    if failed:
        raise InputError(f"Prompt {failed[0]}" + (f" (and {len(failed) - 1} more)"
                                                   if len(failed) > 1 else "") + ".",
                         hint="Shorten the prompt or load the model with a larger context "
                              "(--ctx).")
    return [t or "" for t in texts]
