"""Loopback load, bounded in count and time: 32 concurrent streaming clients on 4 engine
slots with 8 queue places, some leaving mid-stream. Every request ends one of three
ways (a complete stream, a 429 with Retry-After, or the client's own disconnect),
nothing hangs, ``/health`` keeps answering fast, and a client that leaves frees its
slot at once (its generation stops: the token counter does not move afterwards)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.server.conftest import ENDLESS, start_server, stop_server
from tests.server.test_metrics import scrape

N_CLIENTS = 32
MAX_TOKENS = 120


@pytest.fixture(scope="module")
def engine_server(chat_gguf):
    from lamina.runtime.engine import native_available

    if not native_available():
        pytest.skip("lamina._native is not built")
    srv = start_server(chat_gguf, "--parallel", "4", "--queue", "8", "--ctx", "8192",
                       "--max-tokens", "8000")
    yield srv
    stop_server(srv)


def _body(max_tokens: int) -> dict:
    return {"messages": [{"role": "user", "content": "Tell me a long story."}], "stream": True,
            "max_tokens": max_tokens, "temperature": 0, "response_format": ENDLESS,
            "stream_options": {"include_usage": True}}


async def _client(http: httpx.AsyncClient, url: str, leave_early: bool) -> tuple[str, dict]:
    async with http.stream("POST", url, json=_body(MAX_TOKENS)) as resp:
        if resp.status_code == 429:
            return "429", {"retry_after": resp.headers.get("retry-after"),
                           "error": json.loads(await resp.aread())["error"]}
        assert resp.status_code == 200, await resp.aread()
        events = []
        async for line in resp.aiter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[6:])
            if leave_early and len(events) == 2:  # role chunk + first text: then hang up
                return "left", {}
        return "done", {"events": events}


async def _scenario(url: str) -> tuple[list[tuple[str, dict]], list[float], list[dict]]:
    health_latency: list[float] = []
    health_seen: list[dict] = []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=N_CLIENTS + 4, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        async def poll_health() -> None:
            while not stop.is_set():
                t = time.perf_counter()
                r = await http.get(f"{url}/health")
                health_latency.append(time.perf_counter() - t)
                health_seen.append(r.json())
                await asyncio.sleep(0.05)

        poller = asyncio.create_task(poll_health())
        clients = [_client(http, f"{url}/v1/chat/completions", leave_early=i % 4 == 0)
                   for i in range(N_CLIENTS)]
        results = await asyncio.wait_for(asyncio.gather(*clients), timeout=30)
        stop.set()
        await poller
    return results, health_latency, health_seen


def test_32_streaming_clients_none_lost_or_hung_health_responsive(engine_server):
    srv = engine_server
    with httpx.Client(timeout=30) as http:
        before = scrape(srv, http)
    start = time.monotonic()
    results, latency, seen = asyncio.run(_scenario(srv.url))
    assert time.monotonic() - start < 30
    outcomes = [kind for kind, _ in results]
    assert len(outcomes) == N_CLIENTS
    assert set(outcomes) <= {"done", "429", "left"}
    assert outcomes.count("429") >= 1 and outcomes.count("done") >= 1
    for kind, info in results:
        if kind == "429":
            assert int(info["retry_after"]) >= 1
            assert info["error"]["type"] == "rate_limit_error"
        elif kind == "done":  # a whole stream: chunks, a finish, the usage, [DONE]
            events = info["events"]
            assert events[-1] == "[DONE]"
            usage = json.loads(events[-2])["usage"]
            assert usage["completion_tokens"] == MAX_TOKENS
            assert json.loads(events[-3])["choices"][0]["finish_reason"] == "length"
    assert any(h["slots"]["waiting"] > 0 for h in seen)  # the queue was used
    assert max(h["slots"]["busy"] for h in seen) <= 4
    assert max(latency) < 2.0, f"/health took {max(latency):.2f} s under load"
    h = srv.wait_for(lambda h: h["slots"]["busy"] == 0 and h["slots"]["waiting"] == 0)
    with httpx.Client(timeout=30) as http:
        after = scrape(srv, http)
    admitted = outcomes.count("done") + outcomes.count("left")
    rejected = outcomes.count("429")
    assert after[("lamina_rejected_requests_total", ())] \
        - before[("lamina_rejected_requests_total", ())] == rejected
    chat = (("route", "/v1/chat/completions"), ("status", "200"))
    assert after[("lamina_requests_total", chat)] - before.get(("lamina_requests_total", chat),
                                                               0) == admitted
    assert h["requests"]["cancelled"] >= outcomes.count("left")


def test_a_disconnect_frees_its_slot_within_one_step(engine_server):
    """An endless generation (7000 tokens asked) whose client leaves is cancelled at
    the next step: the slot is free at once, counted as cancelled, and the tokens it
    generated are counted then, far fewer than it asked for."""
    srv = engine_server
    with httpx.Client(timeout=60) as http:
        srv.wait_for(lambda h: h["slots"]["busy"] == 0)
        before = scrape(srv, http)
        with http.stream("POST", f"{srv.v1}/chat/completions", json=_body(7000)) as resp:
            lines = resp.iter_lines()
            assert '"role": "assistant"' in next(lines)
            next(lines)
            assert srv.health()["slots"]["busy"] == 1
            left = time.monotonic()
        h = srv.wait_for(lambda h: h["slots"]["busy"] == 0, timeout=5)
        freed = time.monotonic() - left
        after = scrape(srv, http)
    assert freed < 1.0, f"the slot was freed {freed:.2f} s after the client left"
    assert h["slots"]["waiting"] == 0
    assert after[("lamina_cancelled_requests_total", ())] \
        - before[("lamina_cancelled_requests_total", ())] == 1
    generated = after[("lamina_generated_tokens_total", ())] \
        - before[("lamina_generated_tokens_total", ())]
    assert 1 <= generated < 7000
