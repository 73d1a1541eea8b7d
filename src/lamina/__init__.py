"""lamina: Chinese LLaMA/Alpaca models on a laptop.

Merge a base model with its LoRA patches (or a weight diff) into one GGUF file,
quantize it to 4 bits, and chat, extract or serve with it through llama.cpp.

The public API is imported lazily so that ``import lamina`` stays fast and never
pulls torch: ``lamina.load`` needs only llama-cpp-python.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lamina.errors import LaminaError

__version__ = "0.1.0"

__all__ = ["LaminaError", "Model", "SamplingParams", "ChatSession", "load", "extract",
           "extract_many", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from lamina.ie.api import extract, extract_many
    from lamina.runtime.model import Model, load
    from lamina.runtime.sampling import SamplingParams
    from lamina.runtime.session import ChatSession

_LAZY = {
    "load": ("lamina.runtime.model", "load"),
    "Model": ("lamina.runtime.model", "Model"),
    "SamplingParams": ("lamina.runtime.sampling", "SamplingParams"),
    "ChatSession": ("lamina.runtime.session", "ChatSession"),
    "extract": ("lamina.ie.api", "extract"),
    "extract_many": ("lamina.ie.api", "extract_many"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        value = getattr(importlib.import_module(module_name), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lamina' has no attribute {name!r}")
