"""SamplingParams: the one sampler-parameter type (CLI, Python API, server, engine).

Also builds the llama.cpp sampler chain for a set of parameters, so the
sequential path (``Model.generate``) and the batch engine sample identically,
and, for greedy decoding under a grammar, lamina's C++ sampler (the same
tokens without filtering the whole vocabulary on every step).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

from lamina.errors import InputError, LaminaError

#: Generated tokens the repetition, presence and frequency penalties look back
#: over (llama.cpp's default ``repeat_last_n``).
PENALTY_LAST_N = 64

#: OpenAI's range for presence_penalty and frequency_penalty.
PRESENCE_FREQUENCY_RANGE = (-2.0, 2.0)


class GrammarError(LaminaError):
    """A GBNF grammar that llama.cpp could not parse."""


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is picked. ``temperature <= 0`` means greedy (argmax).

    Frozen so one value can be shared by threads and requests; use
    :meth:`replace` for a validated copy with changes.

    ``presence_penalty`` and ``frequency_penalty`` have OpenAI's meaning: a
    token's logit is lowered by ``frequency_penalty`` times the number of times
    it was generated plus ``presence_penalty`` if it was generated at all
    (negative values encourage repeats), counted over the last
    ``PENALTY_LAST_N`` generated tokens as llama.cpp does.
    """

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.95
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        elif not isinstance(self.stop, tuple):
            object.__setattr__(self, "stop", tuple(self.stop))
        self._validate()

    def _validate(self) -> None:
        def bad(field: str, why: str) -> InputError:
            return InputError(f"Invalid sampling parameter {field}={getattr(self, field)!r}: {why}.")

        def number(field: str) -> float:
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise bad(field, "expected a finite number")
            return float(value)

        if number("temperature") < 0:
            raise bad("temperature", "must be >= 0 (0 = greedy)")
        if not isinstance(self.top_k, int) or isinstance(self.top_k, bool) \
                or not 0 <= self.top_k < 2**31:
            raise bad("top_k", "must be an integer in [0, 2^31) (0 = off)")
        if not 0 < number("top_p") <= 1:
            raise bad("top_p", "must be in (0, 1]")
        if not 0 <= number("min_p") <= 1:
            raise bad("min_p", "must be in [0, 1]")
        if number("repeat_penalty") <= 0:
            raise bad("repeat_penalty", "must be > 0 (1 = off)")
        low, high = PRESENCE_FREQUENCY_RANGE
        for field in ("presence_penalty", "frequency_penalty"):
            if not low <= number(field) <= high:
                raise bad(field, f"must be in [{low:g}, {high:g}] (0 = off)")
        if not isinstance(self.max_tokens, int) or isinstance(self.max_tokens, bool) \
                or self.max_tokens < 1:
            raise bad("max_tokens", "must be an integer >= 1")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)
                                      or not 0 <= self.seed < 2**32):
            raise bad("seed", "must be an integer in [0, 2^32) or None")
        if not all(isinstance(s, str) and s for s in self.stop):
            raise bad("stop", "stop strings must be non-empty text")

    def replace(self, **changes: Any) -> SamplingParams:
        """A validated copy with ``changes``; unknown names are a clear error."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise InputError(
                f"Unknown sampling parameter(s): {', '.join(unknown)}.",
                hint=f"Valid ones: {', '.join(sorted(names))}.",
            )
        return dataclasses.replace(self, **changes)

    @classmethod
    def greedy(cls, max_tokens: int = 512) -> SamplingParams:
        """Deterministic argmax decoding without penalties (tests, extraction)."""
        return cls(temperature=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                   max_tokens=max_tokens, seed=0)

    @property
    def is_greedy(self) -> bool:
        return self.temperature <= 0

    @property
    def has_penalties(self) -> bool:
        """Whether llama.cpp's penalties sampler has anything to do."""
        return (self.repeat_penalty != 1.0 or self.presence_penalty != 0.0
                or self.frequency_penalty != 0.0)

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stop"] = list(self.stop)
        return data


def unparsable_grammar() -> GrammarError:
    """The error for a grammar llama.cpp rejected (the same wherever it is parsed)."""
    return GrammarError(
        "The grammar could not be parsed (llama.cpp GBNF syntax expected, with a 'root' rule).",
        hint="Check the grammar text; see llama.cpp's grammars/README.md.",
    )


def build_sampler(vocab: Any, params: SamplingParams, grammar: str | None = None) -> Any:
    """A llama.cpp sampler chain for ``params`` (and an optional GBNF grammar).

    Order follows llama.cpp's common sampler: grammar, penalties, top-k, top-p,
    min-p, temperature, then the random pick (or argmax when greedy). The caller
    owns the returned pointer and frees it with ``llama_sampler_free``.
    """
    import llama_cpp

    lib = llama_cpp
    chain_params = lib.llama_sampler_chain_default_params()
    chain_params.no_perf = True
    chain = lib.llama_sampler_chain_init(chain_params)
    try:
        if grammar is not None:
            g = lib.llama_sampler_init_grammar(vocab, grammar.encode("utf-8"), b"root")
            if not g:
                raise unparsable_grammar()
            lib.llama_sampler_chain_add(chain, g)
        if params.has_penalties:
            # The binding declares a leading n_vocab that newer libllama dropped. Integer
            # and float arguments travel in separate registers (x86-64 SysV, AArch64),
            # so passing last_n in both integer slots is right for either signature.
            lib.llama_sampler_chain_add(
                chain, lib.llama_sampler_init_penalties(
                    PENALTY_LAST_N, PENALTY_LAST_N, params.repeat_penalty,
                    params.frequency_penalty, params.presence_penalty))
        if params.is_greedy:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_greedy())
            return chain
        if params.top_k > 0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_min_p(params.min_p, 1))
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else lib.LLAMA_DEFAULT_SEED
        lib.llama_sampler_chain_add(chain, lib.llama_sampler_init_dist(seed))
        return chain
    except BaseException:
        lib.llama_sampler_free(chain)
        raise


def native_config(native: Any, p: SamplingParams) -> Any:
    """``p`` as the native module's ``SamplingConfig``."""
    sc = native.SamplingConfig()
    sc.temperature = float(p.temperature)
    sc.top_k = int(p.top_k)
    sc.top_p = float(p.top_p)
    sc.min_p = float(p.min_p)
    sc.repeat_penalty = float(p.repeat_penalty)
    sc.presence_penalty = float(p.presence_penalty)
    sc.frequency_penalty = float(p.frequency_penalty)
    sc.penalty_last_n = PENALTY_LAST_N
    sc.max_tokens = int(p.max_tokens)
    sc.seed = 0xFFFFFFFF if p.seed is None else int(p.seed)
    return sc


def native_greedy_sampler(vocab: Any, params: SamplingParams, grammar: str | None) -> Any:
    """lamina's C++ sampler when decoding is greedy (with or without a grammar), else None.

    Why: llama.cpp's grammar sampler checks every token it is given, which on a
    32000-token vocabulary costs more per step than decoding a small model. The
    native sampler checks the argmax first and, when the grammar rejects it,
    only the candidates that can still win: the same token as
    :func:`build_sampler`'s chain. Without a grammar it is a plain argmax over
    the logits (penalties applied first), which spares llama.cpp's chain its
    copy of every logit into a candidate array per token. None also when
    ``lamina._native`` is not built.
    """
    if not params.is_greedy:
        return None
    native = _native_module()
    if native is None:
        return None
    address = ctypes.cast(vocab, ctypes.c_void_p).value or 0
    try:
        return native.Sampler(address, native_config(native, params), grammar)
    except ValueError as exc:
        raise unparsable_grammar() from exc


@functools.lru_cache(maxsize=1)
def _native_module() -> Any:
    from lamina.runtime.engine import EngineError, _native

    try:
        return _native()
    except EngineError:
        return None
