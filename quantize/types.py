"""The one table of quantization types lamina offers, and how names are looked up.

The rows mirror what llama.cpp's own ``llama-quantize`` accepts for the libllama
that llama-cpp-python 0.3.36 ships (``llama_ftype`` in llama.h), so a user who
knows llama.cpp's names finds the same ones here. ``bpw`` is the nominal bits
per weight of the type used for most tensors (K-quant mixes such as Q4_K_M
keep a few tensors at a higher type, so whole files come out a little larger);
``reference`` repeats llama.cpp's published size/quality note for the type.

NVFP4 (ftype 39) is in llama.h but this libllama rejects it as an output file
type ("invalid output file type 39"), so it is not offered.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from lamina.errors import LaminaError


class QuantTypeError(LaminaError):
    """An unknown quantization type name."""


@dataclass(frozen=True)
class QuantType:
    name: str
    ftype: int  # llama_ftype value passed to llama_model_quantize
    bpw: float  # nominal bits per weight of the main tensor type
    kind: str  # float | legacy | k-quant | i-quant | ternary | other
    reference: str  # llama.cpp's note (size and perplexity delta on Llama-3-8B, or bpw)
    needs_imatrix: bool = False  # libllama refuses these without an importance matrix
    only_copy: bool = False  # COPY: rewrite tensors as they are

    @property
    def needs_float_input(self) -> bool:
        """Every type but COPY quantizes from f32/f16/bf16 tensors only."""
        return not self.only_copy


# Order: as ``lamina quantize --list`` shows them (float first, then by bits).
QUANT_TYPES: tuple[QuantType, ...] = (
    QuantType("F32", 0, 32.0, "float", "26.00G @ 7B"),
    QuantType("F16", 1, 16.0, "float", "14.00G, +0.0020 ppl @ Mistral-7B"),
    QuantType("BF16", 32, 16.0, "float", "14.00G, -0.0050 ppl @ Mistral-7B"),
    QuantType("Q8_0", 7, 8.5, "legacy", "7.96G, +0.0026 ppl @ Llama-3-8B"),
    QuantType("Q6_K", 18, 6.5625, "k-quant", "6.14G, +0.0217 ppl @ Llama-3-8B"),
    QuantType("Q5_1", 9, 6.0, "legacy", "5.65G, +0.1062 ppl @ Llama-3-8B"),
    QuantType("Q5_K_M", 17, 5.5, "k-quant", "5.33G, +0.0569 ppl @ Llama-3-8B"),
    QuantType("Q5_K_S", 16, 5.5, "k-quant", "5.21G, +0.1049 ppl @ Llama-3-8B"),
    QuantType("Q5_0", 8, 5.5, "legacy", "5.21G, +0.1316 ppl @ Llama-3-8B"),
    QuantType("Q4_1", 3, 5.0, "legacy", "4.78G, +0.4511 ppl @ Llama-3-8B"),
    QuantType("Q4_K_M", 15, 4.5, "k-quant", "4.58G, +0.1754 ppl @ Llama-3-8B"),
    QuantType("Q4_K_S", 14, 4.5, "k-quant", "4.37G, +0.2689 ppl @ Llama-3-8B"),
    QuantType("Q4_0", 2, 4.5, "legacy", "4.34G, +0.4685 ppl @ Llama-3-8B"),
    QuantType("IQ4_NL", 25, 4.5, "i-quant", "4.50 bpw non-linear quantization"),
    QuantType("MXFP4_MOE", 38, 4.25, "other", "MXFP4 for MoE experts; other tensors Q8_0"),
    QuantType("IQ4_XS", 30, 4.25, "i-quant", "4.25 bpw non-linear quantization"),
    QuantType("Q3_K_L", 13, 3.4375, "k-quant", "4.03G, +0.5562 ppl @ Llama-3-8B"),
    QuantType("Q3_K_M", 12, 3.4375, "k-quant", "3.74G, +0.6569 ppl @ Llama-3-8B"),
    QuantType("Q3_K_S", 11, 3.4375, "k-quant", "3.41G, +1.6321 ppl @ Llama-3-8B"),
    QuantType("IQ3_M", 27, 3.66, "i-quant", "3.66 bpw quantization mix"),
    QuantType("IQ3_S", 26, 3.44, "i-quant", "3.44 bpw quantization"),
    QuantType("IQ3_XS", 22, 3.3, "i-quant", "3.3 bpw quantization", needs_imatrix=True),
    QuantType("IQ3_XXS", 23, 3.06, "i-quant", "3.06 bpw quantization", needs_imatrix=True),
    QuantType("Q2_K", 10, 2.625, "k-quant", "2.96G, +3.5199 ppl @ Llama-3-8B"),
    QuantType("Q2_K_S", 21, 2.625, "k-quant", "2.96G, +3.1836 ppl @ Llama-3-8B",
              needs_imatrix=True),
    QuantType("IQ2_M", 29, 2.7, "i-quant", "2.7 bpw quantization", needs_imatrix=True),
    QuantType("IQ2_S", 28, 2.5, "i-quant", "2.5 bpw quantization", needs_imatrix=True),
    QuantType("IQ2_XS", 20, 2.31, "i-quant", "2.31 bpw quantization", needs_imatrix=True),
    QuantType("IQ2_XXS", 19, 2.06, "i-quant", "2.06 bpw quantization", needs_imatrix=True),
    QuantType("Q2_0", 41, 2.25, "other", "2.25 bpw quantization (group 64)"),
    QuantType("TQ2_0", 37, 2.06, "ternary", "2.06 bpw ternarization (BitNet-style models)"),
    QuantType("IQ1_M", 31, 1.75, "i-quant", "1.75 bpw quantization", needs_imatrix=True),
    QuantType("TQ1_0", 36, 1.69, "ternary", "1.69 bpw ternarization (BitNet-style models)"),
    QuantType("IQ1_S", 24, 1.56, "i-quant", "1.56 bpw quantization", needs_imatrix=True),
    QuantType("Q1_0", 40, 1.125, "other", "1.125 bpw quantization"),
    QuantType("COPY", 0, 0.0, "other", "only copy tensors, no quantizing", only_copy=True),
)

#: Short names llama-quantize also accepts.
ALIASES: dict[str, str] = {"Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M"}

_BY_NAME = {t.name: t for t in QUANT_TYPES}

#: llama_ftype value -> the name lamina shows (general.file_type in a GGUF).
FTYPE_NAMES: dict[int, str] = {t.ftype: t.name for t in QUANT_TYPES if not t.only_copy}
FTYPE_NAMES[0] = "F32"


def get_quant_type(name: str) -> QuantType:
    """Look a type up by name (case-insensitive, aliases allowed)."""
    key = name.strip().upper().replace("-", "_")
    key = ALIASES.get(key, key)
    if key in _BY_NAME:
        return _BY_NAME[key]
    close = difflib.get_close_matches(key, list(_BY_NAME) + list(ALIASES), n=3, cutoff=0.6)
    hint = f"Did you mean {', '.join(close)}? " if close else ""
    raise QuantTypeError(
        f"Unknown quantization type '{name}'.",
        hint=f"{hint}Run `lamina quantize --list` to see every type (for example Q4_K_M, Q8_0).",
    )


def ftype_name(ftype: int | None) -> str:
    """Readable name of a GGUF's general.file_type."""
    if ftype is None:
        return "unknown"
    return FTYPE_NAMES.get(int(ftype), f"ftype {ftype}")
