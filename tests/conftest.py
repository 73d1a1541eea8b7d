"""Session-wide fixtures: tiny synthetic LLaMA families and GGUF files built from them.

Everything is generated locally (no downloads) and cached under tests/.cache
(override with LAMINA_TEST_CACHE), keyed by the generator's source hash, so a
second run reuses the artefacts and a change to the generator rebuilds them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    root = Path(os.environ.get("LAMINA_TEST_CACHE", REPO / "tests" / ".cache"))
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    from tests.fixtures.synthetic import cache_key

    d = cache_root() / cache_key()
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def family(cache_dir: Path):
    """The default tiny family: GQA LLaMA (hidden 64), Plus LoRA (.bin and .safetensors),
    Alpaca LoRA, base and extended SentencePiece tokenizers."""
    from tests.fixtures.builders import get_family

    return get_family(cache_dir / "family")


@pytest.fixture(scope="session")
def base_gguf(cache_dir: Path, family) -> Path:
    """f32 GGUF of the base model alone (base vocabulary)."""
    from tests.fixtures.builders import get_gguf

    return get_gguf(cache_dir / "base-f32.gguf", family.base_hf, outtype="f32")


@pytest.fixture(scope="session")
def chat_gguf(cache_dir: Path, family) -> Path:
    """f16 GGUF used by runtime/IE/server tests (the 'Alpaca-like' model)."""
    from tests.fixtures.builders import get_chat_gguf

    return get_chat_gguf(cache_dir, family)
