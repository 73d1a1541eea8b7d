"""Runtime fixtures: one loaded chat model per session, and small GGUF LoRA files."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def model(chat_gguf: Path):
    """The tiny chat model with a 512-token context (shared; tests must not rely on
    what its KV cache holds)."""
    import lamina

    m = lamina.load(chat_gguf, n_ctx=512, n_threads=1)
    yield m
    m.close()


@pytest.fixture(scope="session")
def model_dims(model) -> tuple[int, int]:
    md = model.metadata
    return int(md["llama.embedding_length"]), int(md["llama.block_count"])


@pytest.fixture(scope="session")
def foreign_lora(tmp_path_factory, model_dims) -> Path:
    """An adapter made for a model with twice the hidden size."""
    from tests.fixtures.builders import write_lora

    n_embd, n_layers = model_dims
    return write_lora(tmp_path_factory.mktemp("lora") / "foreign.gguf", n_embd * 2, n_layers)
