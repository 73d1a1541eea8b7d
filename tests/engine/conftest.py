"""Fixtures of the native engine tests: one loaded tiny chat model per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def model(chat_gguf: Path) -> Iterator[Any]:
    """The f16 tiny chat model, 2 threads, on its own context."""
    import lamina

    m = lamina.load(chat_gguf, n_ctx=1024, n_threads=2)
    yield m
    m.close()


@pytest.fixture(scope="session")
def native() -> Any:
    from lamina.runtime.engine import _native

    return _native()
