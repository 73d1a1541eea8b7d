"""``lamina verify``: how much a quantized model differs from its reference.

The numbers are the ones llama.cpp's quantize README reports, computed the way
``llama-perplexity --kl-divergence`` does: the text is cut into fixed windows
of ``n_ctx`` tokens (the first token of each replaced by BOS), both models
evaluate each window with logits for every position, and only the second half
of each window is scored, so that every scored token has at least n_ctx/2
tokens of context. Per scored token we get the reference's and the quantized
model's log-probabilities; from them perplexity of both, KL(ref || quant) of the
next-token distributions (mean and 99th percentile) and top-1 agreement.

Windows are processed one at a time and only per-token scalars are kept, so
memory stays flat however long the text is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamina import gguf_io
from lamina.errors import InputError, ModelLoadError
from lamina.gguf_io import UnknownTensorTypeError, field_value, open_reader

#: Default window: long enough for real context, small enough for tiny models.
DEFAULT_CTX = 256
MIN_TOKENS = 16


@dataclass
class QualityReport:
    model: str
    reference: str
    n_ctx: int
    n_chunks: int
    n_scored: int  # tokens whose next-token distributions were compared
    ppl_model: float
    ppl_reference: float
    kl_mean: float
    kl_p99: float
    kl_max: float
    top1_agreement: float  # fraction of scored tokens where both argmaxes agree

    @property
    def ppl_ratio(self) -> float:
        return self.ppl_model / self.ppl_reference if self.ppl_reference else math.nan

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model, "reference": self.reference, "n_ctx": self.n_ctx,
                "chunks": self.n_chunks, "tokens": self.n_scored,
                "ppl_model": self.ppl_model, "ppl_reference": self.ppl_reference,
                "ppl_ratio": self.ppl_ratio, "kl_mean": self.kl_mean, "kl_p99": self.kl_p99,
                "kl_max": self.kl_max, "top1_agreement": self.top1_agreement}


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


@dataclass
class ChunkScores:
    """Per-token results of one window (what ``verify`` accumulates)."""

    nll_model: np.ndarray
    nll_reference: np.ndarray
    kl: np.ndarray
    top1_same: np.ndarray


def score_chunk(ref_logits: np.ndarray, model_logits: np.ndarray,
                targets: np.ndarray) -> ChunkScores:
    """Compare two [n, vocab] logit blocks predicting ``targets`` (length n)."""
    ref_lp = _log_softmax(ref_logits)
    mod_lp = _log_softmax(model_logits)
    rows = np.arange(len(targets))
    kl = (np.exp(ref_lp) * (ref_lp - mod_lp)).sum(axis=-1)
    return ChunkScores(
        nll_model=-mod_lp[rows, targets],
        nll_reference=-ref_lp[rows, targets],
        kl=np.maximum(kl, 0.0),
        top1_same=ref_lp.argmax(axis=-1) == mod_lp.argmax(axis=-1),
    )


def _load(path: Path, n_ctx: int, n_threads: int | None) -> Any:
    import llama_cpp

    try:
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
            n_threads=n_threads, n_gpu_layers=0, verbose=False, flash_attn=False,
            type_k=0, type_v=0,
        )
    except (ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"llama.cpp could not load '{path}': {exc}",
                             hint="Check the file with `lamina info`.") from exc


def _check_gguf(path: Path, what: str) -> Any:
    """Validate with gguf-py; None for files gguf-py cannot parse but llama.cpp can."""
    try:
        return open_reader(path, what=what)
    except UnknownTensorTypeError:
        return None


def _train_ctx(reader: Any) -> int | None:
    if reader is None:
        return None
    arch = field_value(reader, gguf_io.ARCHITECTURE, "llama")
    value = field_value(reader, gguf_io.CONTEXT_LENGTH.format(arch=arch))
    return None if value is None else int(value)


def verify(
    model: str | Path,
    reference: str | Path,
    text: str | None = None,
    *,
    n_ctx: int = DEFAULT_CTX,
    n_threads: int | None = None,
    max_chunks: int | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> QualityReport:
    """Perplexity, KL divergence and top-1 agreement of ``model`` against ``reference``.

    ``text`` defaults to lamina's built-in Chinese/English sample.
    """
    from lamina.quantize.sample_text import SAMPLE_TEXT

    model_path, ref_path = Path(model), Path(reference)
    readers = (_check_gguf(model_path, "model"), _check_gguf(ref_path, "reference"))
    text = SAMPLE_TEXT if text is None else text
    if not text.strip():
        raise InputError("The text to evaluate on is empty.", hint="Give a non-empty --text file.")
    limits = [c for c in map(_train_ctx, readers) if c]
    del readers
    n_ctx = min([n_ctx, *limits])

    ref = _load(ref_path, n_ctx, n_threads)
    try:
        tokens = ref.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        mod = _load(model_path, n_ctx, n_threads)
        try:
            if mod.n_vocab() != ref.n_vocab() or mod.tokenize(
                    text.encode("utf-8"), add_bos=False, special=False) != tokens:
                raise InputError(
                    f"'{model_path}' and '{ref_path}' do not share a vocabulary, so their "
                    "next-token distributions cannot be compared.",
                    hint="Use the f16/f32 GGUF the quantized file was made from as --reference.",
                )
            return _evaluate(ref, mod, tokens, n_ctx, model_path, ref_path, max_chunks, on_chunk)
        finally:
            mod.close()
    finally:
        ref.close()


def chunk_plan(n_tokens: int, n_ctx: int) -> tuple[int, int]:
    """(window size, number of windows) for a text of ``n_tokens`` tokens."""
    if n_tokens < MIN_TOKENS:
        raise InputError(
            f"The text is too short to measure quality: {n_tokens} tokens, at least "
            f"{MIN_TOKENS} needed.",
            hint="Give a longer --text file (a few paragraphs).",
        )
    window = min(n_ctx, n_tokens)
    return window, n_tokens // window


def _evaluate(ref: Any, mod: Any, tokens: list[int], n_ctx: int, model_path: Path,
              ref_path: Path, max_chunks: int | None,
              on_chunk: Callable[[int, int], None] | None) -> QualityReport:
    window, n_chunks = chunk_plan(len(tokens), n_ctx)
    if max_chunks is not None:
        n_chunks = max(1, min(n_chunks, max_chunks))
    bos = ref.token_bos()
    first = window // 2
    nll_m: list[np.ndarray] = []
    nll_r: list[np.ndarray] = []
    kls: list[np.ndarray] = []
    same: list[np.ndarray] = []
    for c in range(n_chunks):
        chunk = list(tokens[c * window:(c + 1) * window])
        if bos >= 0:
            chunk[0] = bos
        logits = []
        for llm in (ref, mod):
            llm.reset()
            llm.eval(chunk)
            logits.append(np.array(llm.scores[first:window - 1], dtype=np.float32))
        targets = np.asarray(chunk[first + 1:window])
        scores = score_chunk(logits[0], logits[1], targets)
        nll_m.append(scores.nll_model)
        nll_r.append(scores.nll_reference)
        kls.append(scores.kl)
        same.append(scores.top1_same)
        if on_chunk is not None:
            on_chunk(c + 1, n_chunks)
    kl = np.concatenate(kls)
    return QualityReport(
        model=str(model_path), reference=str(ref_path), n_ctx=window, n_chunks=n_chunks,
        n_scored=int(kl.size),
        ppl_model=float(np.exp(np.concatenate(nll_m).mean())),
        ppl_reference=float(np.exp(np.concatenate(nll_r).mean())),
        kl_mean=float(kl.mean()), kl_p99=float(np.percentile(kl, 99)), kl_max=float(kl.max()),
        top1_agreement=float(np.concatenate(same).mean()),
    )
