"""Loading a GGUF and generating text with it: the API the CLI, server and IE share.

Generation runs on llama.cpp's low-level API (``llama_decode`` plus a sampler
chain) rather than ``Llama.create_completion``, for two reasons: speed (the
per-token work is one decode, one sample and a cached piece lookup) and KV
reuse (a new prompt is compared with what the cache already holds and only the
differing tail is evaluated, which is what makes multi-turn chat cheap).

The tokens in the KV cache are recorded in ``llama.input_ids[:llama.n_tokens]``,
the same place llama-cpp-python's own methods keep them, so mixing lamina calls
with ``model.llama`` calls stays consistent.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import functools
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamina import gguf_io
from lamina.errors import FormatError, InputError, LaminaError, ModelLoadError
from lamina.runtime.sampling import SamplingParams, build_sampler, native_greedy_sampler
from lamina.runtime.stream import TextStream
from lamina.templates import ChatTemplate, detect_template, get_template

if TYPE_CHECKING:  # pragma: no cover
    import llama_cpp

    from lamina.runtime.session import ChatSession

#: Default context cap: enough for chat, small enough for a laptop's KV cache.
DEFAULT_MAX_CTX = 4096

@dataclass
class GenerationStats:
    """What the last generate/chat/session turn cost (for status lines, tests, the server)."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    evaluated_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # "stop" | "length" | "cancelled"
    prompt_seconds: float = 0.0
    decode_seconds: float = 0.0
    #: The generated token ids (what tests compare with a plain llama.cpp loop).
    tokens: list[int] = dataclasses.field(default_factory=list)

    @property
    def decode_tokens_per_second(self) -> float:
        return self.completion_tokens / self.decode_seconds if self.decode_seconds > 0 else 0.0

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.evaluated_tokens / self.prompt_seconds if self.prompt_seconds > 0 else 0.0


# ---------------------------------------------------------------- llama.cpp logging

_LOG_TAIL: collections.deque[tuple[int, str]] = collections.deque(maxlen=20)
_GGML_WARN, _GGML_ERROR = 3, 4  # enum ggml_log_level
_LOG_CALLBACK: Any = None
_NATIVE_LOG: Any = None


def _quiet_llama_logs() -> None:
    """Route llama.cpp's log to a small buffer instead of stderr.

    The last lines are kept so load failures can say what llama.cpp saw. The
    buffer lives in lamina's native module when it is built: a Python log
    callback runs for every log line, and a Ctrl-C landing in it is dropped by
    ctypes ("Exception ignored on calling ctypes callback"), so an extraction
    run did not stop. The ctypes callback is the fallback without the module.
    """
    global _LOG_CALLBACK, _NATIVE_LOG
    if _LOG_CALLBACK is not None or _NATIVE_LOG is not None:
        return
    import llama_cpp

    try:
        from lamina import _native
    except ImportError:
        _native = None
    if _native is not None:
        _native.quiet_logs()
        _NATIVE_LOG = _native
        return

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, user_data: Any) -> None:
        if level in (_GGML_WARN, _GGML_ERROR):
            _LOG_TAIL.append((level, text.decode("utf-8", errors="replace").strip()))

    _LOG_CALLBACK = _callback
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def _log_lines() -> list[tuple[int, str]]:
    if _NATIVE_LOG is not None:
        return [(level, text.strip()) for level, text in _NATIVE_LOG.log_tail()]
    return list(_LOG_TAIL)


def _clear_log() -> None:
    _LOG_TAIL.clear()
    if _NATIVE_LOG is not None:
        _NATIVE_LOG.clear_log_tail()


def _last_log_error() -> str:
    """llama.cpp's first error line (the specific one) without its function-name prefix ('' if none)."""
    lines = _log_lines()
    for wanted in (_GGML_ERROR, _GGML_WARN):
        for level, line in lines:
            if level == wanted and line:
                return line.split(": ", 1)[-1]
    return ""


# ---------------------------------------------------------------- GGUF checks


def kernel_switch_rows(path: Path) -> tuple[int, ...]:
    """The call sizes (rows) at which ggml moves a product with this model's
    matmul weights to another kernel, which rounds differently.

    Measured on this llama.cpp (x86, AVX2/AVX-512; ``docs/engine.md``):
    F16, BF16 and F32 weights are multiplied by the dot product for one row and
    by llamafile's tinyBLAS for two or more (``FLOAT_SWITCH_ROWS``); K-quants
    and i-quants by the tiled matmul from ``TILED_MIN_ROWS`` rows; Q4_0, Q4_1,
    Q5_0, Q5_1, Q8_0 and IQ4_NL give a row the same result at every call size.
    Only 2-D weights that go through a matrix product count: the token
    embedding is a row lookup, unless the output head is tied to it.
    """
    from gguf import GGMLQuantizationType as Q

    tiled = {int(t) for t in (Q.Q2_K, Q.Q3_K, Q.Q4_K, Q.Q5_K, Q.Q6_K, Q.IQ4_XS, Q.IQ2_XXS,
                              Q.IQ2_XS, Q.IQ2_S, Q.IQ3_XXS, Q.IQ3_S, Q.IQ1_S, Q.IQ1_M)}
    floating = {int(Q.F16), int(Q.BF16), int(Q.F32)}
    entries = gguf_io.tensor_entries(path)
    tied = not any(e.name == "output.weight" for e in entries)
    types = {e.ggml_type for e in entries
             if e.n_dims >= 2 and (tied or e.name != "token_embd.weight")}
    rows = {FLOAT_SWITCH_ROWS} if types & floating else set()
    if types & tiled:
        rows.add(TILED_MIN_ROWS)
    return tuple(sorted(rows))


def _check_gguf(path: str | os.PathLike[str], what: str) -> Path:
    if what == "LoRA adapter" and Path(path).is_dir():
        raise FormatError(
            f"The LoRA adapter '{path}' is a folder (a PEFT adapter?); --lora at run time "
            "needs a GGUF adapter file.",
            hint="Merge it into the model with `lamina convert BASE --lora FOLDER`, or convert "
                 "it with llama.cpp's convert_lora_to_gguf.py.",
        )
    if what == "LoRA adapter":
        return gguf_io.require_gguf(
            path, what, hint="LoRA adapters must be converted to GGUF first (llama.cpp's "
                             "convert_lora_to_gguf.py), or merged into the model with "
                             "`lamina convert --lora`.")
    return gguf_io.require_gguf(path, what)


# ---------------------------------------------------------------- loading


def load(path: str | os.PathLike[str], *, n_ctx: int | None = None, n_threads: int | None = None,
         n_gpu_layers: int = 0, lora: Sequence[str | os.PathLike[str]] = (),
         template: str | None = None, seed: int | None = None, embedding: bool = False,
         verbose: bool = False) -> Model:
    """Load a GGUF model for generation, chat, extraction or embeddings.

    ``n_ctx`` defaults to the model's training context capped at 4096;
    ``template`` (a built-in name) overrides the one recorded in the file.
    """
    model_path = _check_gguf(path, "model file")
    lora_paths = [_check_gguf(p, "LoRA adapter") for p in lora]
    forced_template = get_template(template) if template is not None else None
    if n_ctx is not None and n_ctx < 16:
        raise InputError(f"Context length {n_ctx} is too small.", hint="Use at least 16 tokens.")

    if n_ctx is None:
        train_ctx = gguf_io.context_length(model_path)
        n_ctx = min(train_ctx, DEFAULT_MAX_CTX) if train_ctx else DEFAULT_MAX_CTX

    import llama_cpp

    if not verbose:
        _quiet_llama_logs()
    _clear_log()
    threads = n_threads or _physical_cores()
    try:
        with _pinned_kernels():
            llama = llama_cpp.Llama(
                str(model_path), n_ctx=n_ctx, n_batch=min(512, n_ctx),
                n_ubatch=min(512, n_ctx), n_threads=threads, n_threads_batch=threads,
                n_gpu_layers=n_gpu_layers, embedding=embedding, flash_attn=False,
                pooling_type=(llama_cpp.LLAMA_POOLING_TYPE_MEAN if embedding
                              else llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED),
                seed=seed if seed is not None else llama_cpp.LLAMA_DEFAULT_SEED,
                verbose=verbose,
            )
    except (ValueError, RuntimeError) as exc:
        detail = _last_log_error() or str(exc)
        raise ModelLoadError(
            f"llama.cpp could not load '{model_path}': {detail}",
            hint="Check that the file is a complete GGUF model of a supported architecture "
                 "(re-convert or re-download it).",
        ) from exc
    model = Model(llama, model_path, template=forced_template, n_threads=threads, seed=seed)
    try:
        model._apply_loras(lora_paths)
    except BaseException:
        model.close()
        raise
    return model


_REPACK_LOCK = threading.Lock()

#: ggml's tiled K-quant matmul computes a matrix product this way only for
#: batches of at least this many rows (ggml-cpu/tiled); smaller batches go
#: through the row-by-row dot product.
TILED_MIN_ROWS = 8
#: llamafile_sgemm (tinyBLAS) takes F16/BF16/F32 products from this many rows
#: ("only enable sgemm for prompt processing": it declines one row).
FLOAT_SWITCH_ROWS = 2


@contextlib.contextmanager
def _pinned_kernels() -> Iterator[None]:
    """Load weights without ggml's CPU weight repacking (llama.cpp's ``--no-repack``).

    Why: a row's result must not depend on the other rows of its batch, or a
    document's answer depends on --batch and on its batch companions.
    Repacked Q4_K/Q6_K/Q4_0 weights are multiplied by a 4-row GEMM for full
    groups of four rows and by a GEMV for the rest, which round differently
    (measured on Gemma-3 270M Q4_K_M: 3 of 4 prompts diverged within 16
    tokens). Without repacking two kernel classes remain, each exact row by
    row: the dot product (one row; quantized weights up to TILED_MIN_ROWS - 1)
    and a blocked kernel (tinyBLAS for F16/BF16/F32 weights from two rows, the
    tiled K-quant matmul from TILED_MIN_ROWS; see :func:`kernel_switch_rows`).
    A plain llama.cpp loop evaluates prompt chunks with the second and decodes
    one token at a time with the first; the engine and the KV-cache reuse keep
    every row in the class that loop gives it (see bindings/engine.cpp), so the
    answers equal that loop's bit for bit. ``llama_cpp.Llama`` has no switch
    for repacking, so its model-parameter defaults are wrapped while it loads.
    """
    import llama_cpp.llama_cpp as low

    original = low.llama_model_default_params

    def defaults() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    with _REPACK_LOCK:
        low.llama_model_default_params = defaults
        try:
            yield
        finally:
            low.llama_model_default_params = original


def _set_loras(llama: Any, paths: Sequence[Path], model_path: Path) -> None:
    """Load GGUF LoRA adapters onto ``llama``'s context (llama.cpp frees them with the model)."""
    if not paths:
        return
    import llama_cpp as lib

    adapters = []
    for p in paths:
        _clear_log()
        adapter = lib.llama_adapter_lora_init(llama._model.model, str(p).encode("utf-8"))
        if not adapter:
            detail = _last_log_error()
            raise ModelLoadError(
                f"The LoRA adapter '{p}' does not fit the model '{model_path.name}'"
                + (f": {detail}" if detail else "."),
                hint="An adapter only works with the base model it was trained on "
                     "(same architecture, sizes and vocabulary).",
            )
        adapters.append(adapter)
    arr = (lib.llama_adapter_lora_p_ctypes * len(adapters))(*adapters)
    scales = (ctypes.c_float * len(adapters))(*([1.0] * len(adapters)))
    if lib.llama_set_adapters_lora(llama._ctx.ctx, arr, len(adapters), scales) != 0:
        raise ModelLoadError(f"llama.cpp refused to apply the LoRA adapters to '{model_path}'.")
    llama._lamina_lora_refs = (arr, scales)


def _physical_cores() -> int:
    """llama.cpp runs best on physical cores; without psutil, assume 2 threads per core."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS/Windows
        count = os.cpu_count() or 1
    return max(1, count // 2) if count > 4 else count


# ---------------------------------------------------------------- the model


class Model:
    """A loaded GGUF: tokenizer, KV cache, chat template and sampling defaults."""

    def __init__(self, llama: llama_cpp.Llama, path: Path, *,
                 template: ChatTemplate | None = None, n_threads: int | None = None,
                 seed: int | None = None) -> None:
        import llama_cpp as lib

        self._lib = lib
        self.llama = llama
        self.path = Path(path)
        self.metadata: dict[str, str] = dict(llama.metadata or {})
        self.name = self.metadata.get("general.name") or self.path.stem
        # llama.cpp may round the context up; llama.input_ids (our token record) has the
        # requested size, which is the limit we keep to.
        self.n_ctx = min(llama.n_ctx(), int(llama.input_ids.shape[0]))
        self.n_threads = n_threads or llama.n_threads
        self.n_batch = llama.n_batch
        self._ctx = llama._ctx.ctx
        self._vocab = lib.llama_model_get_vocab(llama._model.model)
        self._mem = lib.llama_get_memory(self._ctx)
        # The vocabulary's own BOS/EOS rule (tokenizer.ggml.add_bos_token and
        # add_eos_token), as llama.cpp applies it: see _add_specials.
        self.bos_id, self.eos_id = llama.token_bos(), llama.token_eos()
        self.add_bos = bool(lib.llama_vocab_get_add_bos(self._vocab)) and self.bos_id >= 0
        self.add_eos = bool(lib.llama_vocab_get_add_eos(self._vocab)) and self.eos_id >= 0
        self.bos_text = llama._model.token_get_text(self.bos_id) if self.bos_id >= 0 else ""
        self.eos_text = llama._model.token_get_text(self.eos_id) if self.eos_id >= 0 else ""
        self.template = self.bind_template(template or detect_template(self.metadata))
        self.last_stats = GenerationStats()
        self._plain_prefix = 0  # see _evaluate_prompt
        self.loras: list[Path] = []
        self._pieces: dict[int, bytes] = {}
        self._piece_buf = ctypes.create_string_buffer(256)
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._embedder: Any = None
        self._embed_lock = threading.Lock()
        self.seed = seed

    # ---- properties and defaults

    @property
    def default_params(self) -> SamplingParams:
        """SamplingParams with the template's recommended values (and the seed given
        to :func:`load`) applied."""
        return SamplingParams(seed=self.seed).replace(**dict(self.template.sampling_defaults))

    @functools.cached_property
    def kernel_switch_rows(self) -> tuple[int, ...]:
        """See :func:`kernel_switch_rows`: the batch engine needs its exact mode only
        when this is not empty."""
        return kernel_switch_rows(self.path)

    @property
    def n_cached(self) -> int:
        """Tokens currently held in the KV cache (context used)."""
        return int(self.llama.n_tokens)

    def __repr__(self) -> str:
        return f"<lamina.Model {self.name!r} n_ctx={self.n_ctx} template={self.template.name!r}>"

    def _apply_loras(self, paths: Sequence[Path]) -> None:
        _set_loras(self.llama, paths, self.path)
        self.loras = list(paths)

    def close(self) -> None:
        """Free the model and its context now rather than at garbage collection."""
        if self._embedder is not None:
            self._embedder.close()
            self._embedder = None
        self.llama.close()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- tokens

    def bind_template(self, template: ChatTemplate | str) -> ChatTemplate:
        """``template`` (or the built-in of that name) rendering this vocabulary's own
        BOS/EOS text, so a template's ``bos_token`` is this model's BOS token."""
        t = get_template(template) if isinstance(template, str) else template
        return dataclasses.replace(t, bos_token=self.bos_text or t.bos_token,
                                   eos_token=self.eos_text or t.eos_token)

    def tokenize(self, text: str, add_bos: bool = True, special: bool = True) -> list[int]:
        """Token ids of a prompt ``text``.

        ``add_bos`` applies the vocabulary's BOS/EOS rule (:meth:`_add_specials`);
        ``False`` tokenizes a fragment that continues other tokens (nothing added).
        ``special`` parses "<s>"-style markers as special tokens.
        """
        tokens = list(self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=special))
        return self._add_specials(tokens) if add_bos else tokens

    def _add_specials(self, tokens: list[int]) -> list[int]:
        """The one BOS/EOS rule for every path (generate, chat, extraction, engine,
        server, Ray): the vocabulary's add_bos/add_eos flags decide, as in
        llama.cpp's tokenizer; a prompt whose text already starts with the BOS
        token (a template that renders ``bos_token``) or ends with EOS does not
        get a second one, as llama.cpp's chat formatting strips them."""
        if self.add_bos and (not tokens or tokens[0] != self.bos_id):
            tokens.insert(0, self.bos_id)
        if self.add_eos and (not tokens or tokens[-1] != self.eos_id):
            tokens.append(self.eos_id)
        return tokens

    def detokenize(self, tokens: Sequence[int]) -> str:
        """Text of ``tokens`` (invalid UTF-8 shown as U+FFFD)."""
        return b"".join(self._piece(t) for t in tokens).decode("utf-8", errors="replace")

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            n = self._lib.llama_token_to_piece(self._vocab, token, self._piece_buf,
                                               len(self._piece_buf), 0, False)
            if n < 0:  # longer than the buffer: -n is the size it needs
                self._piece_buf = ctypes.create_string_buffer(-n)
                n = self._lib.llama_token_to_piece(self._vocab, token, self._piece_buf,
                                                   len(self._piece_buf), 0, False)
            piece = self._piece_buf.raw[:max(n, 0)]
            self._pieces[token] = piece
        return piece

    # ---- KV cache

    def reset_cache(self) -> None:
        """Forget the KV cache (another user of ``model.llama``'s context changed it)."""
        self._lib.llama_memory_clear(self._mem, True)
        self.llama.n_tokens = 0
        self._plain_prefix = 0

    def _record(self, tokens: Sequence[int], start: int) -> None:
        end = start + len(tokens)
        self.llama.input_ids[start:end] = tokens
        self.llama.n_tokens = end

    def _evaluate_prompt(self, tokens: Sequence[int], stats: GenerationStats,
                         reuse_any: bool = False) -> None:
        """Bring the KV cache to exactly ``tokens``, evaluating only what differs.

        The prompt is evaluated in ``n_batch`` chunks from position 0, as a plain
        llama.cpp loop does, and the cache is reused only in whole chunks of an
        earlier prompt: a row's kernel depends on the size of the chunk it was
        evaluated in (see _pinned_kernels), so reusing an arbitrary cached
        prefix, or generated tokens, would make a document's answer depend on
        the one before it. ``reuse_any`` (multi-turn chat) reuses the whole
        common prefix instead, like llama-server's cache_prompt and llama-cli's
        conversation mode.
        """
        lib = self._lib
        n = len(tokens)
        if n == 0:
            raise InputError("The prompt is empty.", hint="Give some text to continue.")
        if n >= self.n_ctx:
            raise InputError(
                f"The prompt is {n} tokens, but the context holds {self.n_ctx}.",
                hint="Shorten the prompt or load the model with a larger context (--ctx).",
            )
        cached = self.llama.input_ids[: self.llama.n_tokens]
        common = 0
        limit = min(len(cached), n)
        while common < limit and cached[common] == tokens[common]:
            common += 1
        common = min(common, n - 1)  # the last prompt token must be evaluated for its logits
        if not reuse_any:
            common = min(common, self._plain_prefix)
            common -= common % self.n_batch
        # Cached tokens below this count were evaluated as plain prompt chunks.
        self._plain_prefix = n if not reuse_any else min(self._plain_prefix, common)
        lib.llama_memory_seq_rm(self._mem, -1, common, -1)
        self.llama.n_tokens = common
        stats.prompt_tokens, stats.cached_tokens, stats.evaluated_tokens = n, common, n - common
        start = time.perf_counter()
        pos = common
        while pos < n:
            chunk = list(tokens[pos: pos + self.n_batch])
            arr = (lib.llama_token * len(chunk))(*chunk)
            self._decode(lib.llama_batch_get_one(arr, len(chunk)))
            self._record(chunk, pos)
            pos += len(chunk)
        stats.prompt_seconds = time.perf_counter() - start

    def _decode(self, batch: Any) -> None:
        rc = self._lib.llama_decode(self._ctx, batch)
        if rc != 0:
            if rc == 1:
                raise LaminaError(
                    "The context is full (no free KV-cache slot).",
                    hint="Start a new conversation or load the model with a larger --ctx.",
                )
            raise LaminaError(f"llama.cpp failed to evaluate the tokens (llama_decode returned {rc}).")

    # ---- generation

    def _acquire(self) -> None:
        me = threading.get_ident()
        if self._owner == me:
            raise LaminaError(
                "A previous generation on this model is still streaming.",
                hint="Consume or close() the previous stream before starting another one.",
            )
        self._lock.acquire()
        self._owner = me

    def _release(self) -> None:
        self._owner = None
        self._lock.release()

    def _stream_tokens(self, tokens: Sequence[int], params: SamplingParams,
                       grammar: str | None, stop: Sequence[str],
                       lstrip: bool = False, reuse_any: bool = False) -> Iterator[str]:
        """The one generation loop: evaluate ``tokens`` then sample and decode.

        A text piece is yielded before its token is decoded, so a consumer that
        stops (Ctrl-C, a closed HTTP stream) leaves the KV cache consistent.
        ``lstrip`` drops the whitespace an answer starts with (SentencePiece's
        word-start marker after "[/INST]" and the like), as chat UIs expect.
        """
        lib = self._lib
        stats = GenerationStats(finish_reason="cancelled")
        sampler = None
        self._acquire()
        try:
            self.last_stats = stats
            self._evaluate_prompt(tokens, stats, reuse_any)
            text = TextStream(stop)
            ctx, vocab, n_ctx = self._ctx, self._vocab, self.n_ctx
            decode, is_eog = lib.llama_decode, lib.llama_vocab_is_eog
            fast = native_greedy_sampler(vocab, params, grammar)
            if fast is not None:
                ctx_address = ctypes.cast(ctx, ctypes.c_void_p).value

                def sample_next() -> int:
                    return fast.sample(ctx_address, -1)
            else:
                sampler = build_sampler(vocab, params, grammar)

                def sample_next() -> int:
                    return lib.llama_sampler_sample(sampler, ctx, -1)
            one = (lib.llama_token * 1)()
            batch = lib.llama_batch_get_one(one, 1)
            input_ids = self.llama.input_ids
            n_cur = len(tokens)
            finish = "length"
            start = time.perf_counter()
            for _ in range(params.max_tokens):
                if n_cur >= n_ctx:
                    break
                token = sample_next()
                if is_eog(vocab, token):
                    finish = "stop"
                    break
                stats.completion_tokens += 1
                stats.tokens.append(token)
                piece = text.push(self._piece(token))
                if lstrip and piece:
                    piece = piece.lstrip()
                    lstrip = not piece
                if piece:
                    stats.decode_seconds = time.perf_counter() - start
                    yield piece
                if text.stopped:
                    finish = "stop"
                    break
                one[0] = token
                rc = decode(ctx, batch)
                if rc != 0:
                    self._decode(batch)  # raises with a message
                input_ids[n_cur] = token
                n_cur += 1
                self.llama.n_tokens = n_cur
            tail = text.finish()
            if lstrip:
                tail = tail.lstrip()
            stats.decode_seconds = time.perf_counter() - start
            stats.finish_reason = finish
            if tail:
                yield tail
        finally:
            if sampler is not None:
                lib.llama_sampler_free(sampler)
            self._release()

    def _params(self, params: SamplingParams | None, overrides: dict[str, Any]) -> SamplingParams:
        base = params if params is not None else self.default_params
        return base.replace(**overrides) if overrides else base

    def _run(self, tokens: Sequence[int], params: SamplingParams, grammar: str | None,
             stop: Sequence[str], stream: bool, lstrip: bool = False) -> str | Iterator[str]:
        pieces = self._stream_tokens(tokens, params, grammar, stop, lstrip=lstrip)
        return pieces if stream else "".join(pieces)

    def generate(self, prompt: str | Sequence[int], params: SamplingParams | None = None, *,
                 stream: bool = False, grammar: str | None = None,
                 **overrides: Any) -> str | Iterator[str]:
        """Continue ``prompt`` (text with the vocabulary's BOS rule applied, or token ids
        used as-is); ``grammar`` is GBNF text."""
        p = self._params(params, overrides)
        tokens = (self.tokenize(prompt) if isinstance(prompt, str)
                  else [int(t) for t in prompt])
        return self._run(tokens, p, grammar, p.stop, stream)

    def chat(self, messages: list[dict[str, str]], params: SamplingParams | None = None, *,
             stream: bool = False, grammar: str | None = None, **overrides: Any) -> str | Iterator[str]:
        """Answer the last message of ``messages`` with the model's chat template."""
        p = self._params(params, overrides)
        tokens = self.chat_tokens(messages)
        return self._run(tokens, p, grammar, tuple(p.stop) + self.template.stop, stream,
                         lstrip=True)

    def chat_tokens(self, messages: list[dict[str, Any]],
                    template: ChatTemplate | None = None,
                    tools: Sequence[dict[str, Any]] | None = None) -> list[int]:
        """Prompt tokens for ``messages`` (and the OpenAI-style ``tools`` the model may
        call): the template's text (which may render the BOS/EOS markers itself)
        with the vocabulary's BOS rule applied."""
        text = (template or self.template).render(messages, add_generation_prompt=True,
                                                  tools=tools)
        return self.tokenize(text)

    def session(self, system: str | None = None, template: str | None = None) -> ChatSession:
        """A multi-turn conversation that reuses the KV cache between turns."""
        from lamina.runtime.session import ChatSession

        return ChatSession(self, system=system, template=template)

    # ---- embeddings and extraction

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """L2-normalised mean-pooled embeddings, one per text.

        Uses a second, embedding-mode context on the same weights (created on
        first use) so the chat KV cache is untouched.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return []
        with self._embed_lock:
            emb = self._embedding_llama()
            vectors = emb.embed(list(texts), normalize=True, truncate=True)
        return [list(map(float, v)) for v in vectors]

    def _embedding_llama(self) -> Any:
        if self._embedder is None:
            import llama_cpp

            if self.llama.context_params.embeddings:
                self._embedder = _Borrowed(self.llama)
            else:
                with _pinned_kernels():
                    self._embedder = llama_cpp.Llama(
                        str(self.path), n_ctx=min(self.n_ctx, 2048), n_batch=min(2048, self.n_ctx),
                        n_ubatch=min(2048, self.n_ctx), n_threads=self.n_threads,
                        n_threads_batch=self.n_threads, embedding=True,
                        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN, verbose=False,
                    )
                _set_loras(self._embedder, self.loras, self.path)
        return self._embedder


class _Borrowed:
    """The model's own context when it was loaded with ``embedding=True``."""

    def __init__(self, llama: Any) -> None:
        self.llama = llama

    def embed(self, *args: Any, **kw: Any) -> Any:
        self.llama.n_tokens = 0
        return self.llama.embed(*args, **kw)

    def close(self) -> None:
        pass
