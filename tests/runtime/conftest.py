"""Runtime fixtures: one loaded chat model per session, and small GGUF LoRA files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def model(chat_gguf: Path):
    """The tiny chat model with a 512-token context (shared; tests must not rely on
    what its KV cache holds)."""
    import lamina

    m = lamina.load(chat_gguf, n_ctx=512, n_threads=1)
    yield m
    m.close()


def write_lora(path: Path, n_embd: int, n_layers: int, rank: int = 4, seed: int = 0) -> Path:
    """A GGUF LoRA adapter on every attn_q of a LLaMA with hidden size ``n_embd``."""
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(rank))
    for i in range(n_layers):
        writer.add_tensor(f"blk.{i}.attn_q.weight.lora_a",
                          rng.normal(0, 0.5, (rank, n_embd)).astype(np.float32))
        writer.add_tensor(f"blk.{i}.attn_q.weight.lora_b",
                          rng.normal(0, 0.5, (n_embd, rank)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def model_dims(model) -> tuple[int, int]:
    md = model.metadata
    return int(md["llama.embedding_length"]), int(md["llama.block_count"])


@pytest.fixture(scope="session")
def good_lora(tmp_path_factory, model_dims) -> Path:
    n_embd, n_layers = model_dims
    return write_lora(tmp_path_factory.mktemp("lora") / "good.gguf", n_embd, n_layers)


@pytest.fixture(scope="session")
def foreign_lora(tmp_path_factory, model_dims) -> Path:
    """An adapter made for a model with twice the hidden size."""
    n_embd, n_layers = model_dims
    return write_lora(tmp_path_factory.mktemp("lora") / "foreign.gguf", n_embd * 2, n_layers)
