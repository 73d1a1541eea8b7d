"""``lamina serve`` without ``--parallel``: slots from the KV-cache budget."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture()
def engine_module():
    from lamina.runtime import engine

    if not engine.native_available():
        pytest.skip("lamina._native is not built")
    return engine


def _streams_worth(engine, model, streams: int) -> int:
    """A budget (bytes) holding exactly ``streams`` sequences of the model's context."""
    return engine.kv_bytes_per_token(model) * model.n_ctx * streams


@pytest.mark.parametrize(("streams", "slots", "kind"),
                         [(1, 1, "Backend"), (2, 1, "Backend"), (3, 2, "EngineBackend"),
                          (6, 5, "EngineBackend"), (40, 8, "EngineBackend")])
def test_slots_are_the_sequences_the_budget_holds_besides_the_prefix_holder(
        engine_module, model, monkeypatch, streams, slots, kind):
    from lamina.server import backend as backend_module

    monkeypatch.setattr(engine_module, "KV_BUDGET_BYTES",
                        _streams_worth(engine_module, model, streams) + 1)
    monkeypatch.setattr(engine_module, "_free_memory", lambda: 1 << 50)
    assert backend_module.default_slots(model) == slots
    b = backend_module.make_backend(model, None)
    try:
        assert type(b).__name__ == kind and b.parallel == slots
    finally:
        b.close()


def test_a_quarter_of_free_memory_bounds_the_budget(engine_module, model, monkeypatch):
    from lamina.server.backend import default_slots

    monkeypatch.setattr(engine_module, "KV_BUDGET_BYTES", 1 << 50)
    four = _streams_worth(engine_module, model, 4)
    monkeypatch.setattr(engine_module, "_free_memory", lambda: 4 * four + 4)
    assert default_slots(model) == 3


def test_an_explicit_parallel_wins(engine_module, model, monkeypatch):
    from lamina.server.backend import make_backend

    monkeypatch.setattr(engine_module, "KV_BUDGET_BYTES", 1)
    b = make_backend(model, 3)
    try:
        assert b.parallel == 3
    finally:
        b.close()


def test_lamina_serve_without_parallel_takes_the_budget_s_slots(chat_gguf, model):
    """The same model and context as ``model``; its tiny KV cache fits the cap
    whatever memory is free, and requests then run on the engine."""
    from lamina.server.backend import default_slots
    from tests.server.conftest import start_server, stop_server

    srv = start_server(chat_gguf)
    try:
        assert srv.health()["slots"]["total"] == default_slots(model) == 8
        body = {"messages": [{"role": "user", "content": "你好"}], "max_tokens": 8,
                "temperature": 0}
        r = httpx.post(f"{srv.v1}/chat/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        want = model.chat(body["messages"], temperature=0, max_tokens=8)
        assert r.json()["choices"][0]["message"]["content"] == want
    finally:
        stop_server(srv)
