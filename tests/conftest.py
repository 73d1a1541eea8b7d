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


@pytest.fixture(scope="session")
def good_lora(tmp_path_factory, chat_gguf: Path) -> Path:
    """A GGUF LoRA adapter (every attn_q) that fits the chat model."""
    import gguf

    from tests.fixtures.builders import write_lora

    fields = gguf.GGUFReader(str(chat_gguf)).fields
    n_embd = int(fields["llama.embedding_length"].contents())
    n_layers = int(fields["llama.block_count"].contents())
    return write_lora(tmp_path_factory.mktemp("lora") / "good.gguf", n_embd, n_layers)


@pytest.fixture(scope="session")
def lora_merged_gguf(tmp_path_factory, chat_gguf: Path, good_lora: Path) -> Path:
    """The chat model with ``good_lora`` merged into its weights by hand (the reference
    for ``--lora``)."""
    from tests.fixtures.builders import merge_gguf_lora

    return merge_gguf_lora(chat_gguf, good_lora, tmp_path_factory.mktemp("merged") / "m.gguf")
