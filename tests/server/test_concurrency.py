"""Many clients at once: the queue, 429 past it, and disconnects that free the slot.

Nothing here is timed: a slot is held by a stream that the test stops reading
(``holding_client``, see conftest), queueing is read from /health, and a client
that leaves closes its socket once /health shows it waiting.
"""

from __future__ import annotations

import json
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from openai import OpenAI

from tests.server.conftest import (
    ENDLESS,
    HOLD_CTX,
    HOLD_TOKENS,
    holding_client,
    start_server,
    stop_server,
)
from tests.server.test_metrics import scrape

LONG = [{"role": "user", "content": "Tell me a long story."}]


def _stream_text(base_url: str, key: str | None, prompt: str) -> tuple[str, str]:
    with OpenAI(base_url=base_url, api_key=key or "none", max_retries=0, timeout=120) as c:
        chunks = list(c.chat.completions.create(
            model="chat-f16", messages=[{"role": "user", "content": prompt}], temperature=0,
            max_tokens=40, stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    return text, chunks[-1].choices[0].finish_reason


def test_eight_concurrent_streams_all_complete(server, model):
    prompts = [f"第{i}个问题：杭州有什么故事？" for i in range(8)]
    expected = {}
    for p in prompts:
        expected[p] = (model.chat([{"role": "user", "content": p}], temperature=0, max_tokens=40),
                       model.last_stats.finish_reason)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda p: _stream_text(server.v1, server.api_key, p), prompts))
    for p, got in zip(prompts, results, strict=True):
        assert got == expected[p]
    assert server.health()["slots"]["busy"] == 0


def _open_holding_stream(server, client: httpx.Client):
    """A stream that holds its slot until closed: its first chunk has arrived (the slot
    is taken) and nothing more is read (see HOLD_TOKENS)."""
    req = client.build_request(
        "POST", f"{server.v1}/chat/completions", headers=server.headers(),
        json={"messages": LONG, "temperature": 0, "max_tokens": HOLD_TOKENS, "stream": True,
              "response_format": ENDLESS})
    resp = client.send(req, stream=True)
    assert resp.status_code == 200
    resp.lines = resp.iter_lines()  # keep the iterator: dropping it closes the response
    first = next(resp.lines)
    assert first.startswith("data: ") and '"role": "assistant"' in first
    return resp


def _raw_request(server, path: str, body: dict) -> socket.socket:
    """Send a POST on a bare socket and return it unread: closing it is a client that
    leaves at a moment the test chooses."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    data = json.dumps(body).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n")
    head += "".join(f"{k}: {v}\r\n" for k, v in server.headers().items())
    sock.sendall(head.encode() + b"\r\n" + data)
    return sock


@pytest.fixture(scope="module")
def tight_server(chat_gguf):
    """One slot, one queue place, room for a holding stream."""
    srv = start_server(chat_gguf, "--parallel", "1", "--queue", "1", "--ctx", str(HOLD_CTX),
                       "--max-tokens", str(HOLD_TOKENS))
    yield srv
    stop_server(srv)


def test_past_the_queue_requests_get_429_with_retry_after(tight_server):
    srv = tight_server
    with holding_client() as http:
        holder = _open_holding_stream(srv, http)  # holds the only slot
        queued: dict = {}

        def wait_in_queue() -> None:
            r = httpx.post(f"{srv.v1}/completions", timeout=120,
                           json={"prompt": "杭州", "max_tokens": 4, "temperature": 0})
            queued["status"] = r.status_code
            queued["body"] = r.json()

        t = threading.Thread(target=wait_in_queue)
        t.start()
        srv.wait_for(lambda h: h["slots"]["waiting"] == 1)
        r = httpx.post(f"{srv.v1}/completions", json={"prompt": "杭州", "max_tokens": 4},
                       timeout=30)
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        err = r.json()["error"]
        assert err["type"] == "rate_limit_error" and "--queue" in err["message"]
        h = srv.health()
        assert h["requests"]["rejected"] >= 1
        assert (h["slots"]["busy"], h["slots"]["waiting"]) == (1, 1)  # nothing moved meanwhile
        with httpx.Client(timeout=30) as http:
            m = scrape(srv, http)
        assert m[("lamina_queue_length", ())] == 1 and m[("lamina_slots_busy", ())] == 1
        assert m[("lamina_rejected_requests_total", ())] >= 1
        assert m[("lamina_requests_total", (("route", "/v1/completions"), ("status", "429")))] >= 1
        holder.close()  # the queued request gets the slot and completes
        t.join(60)
    assert queued["status"] == 200, queued
    assert queued["body"]["usage"]["completion_tokens"] >= 1
    srv.wait_for(lambda h: h["slots"]["busy"] == 0 and h["slots"]["waiting"] == 0)


def test_queued_client_that_leaves_is_dropped(tight_server):
    srv = tight_server
    with holding_client() as http:
        holder = _open_holding_stream(srv, http)
        before = srv.health()["requests"]["cancelled"]
        leaver = _raw_request(srv, "/v1/completions", {"prompt": "杭州", "max_tokens": 4})
        srv.wait_for(lambda h: h["slots"]["waiting"] == 1)
        leaver.close()
        h = srv.wait_for(lambda h: h["slots"]["waiting"] == 0
                         and h["requests"]["cancelled"] == before + 1)
        assert h["slots"]["busy"] == 1  # the holder still has the slot
        holder.close()
    srv.wait_for(lambda h: h["slots"]["busy"] == 0)


def test_client_closing_mid_stream_frees_the_slot(tight_server):
    server = tight_server
    before = server.health()["requests"]["cancelled"]
    with holding_client() as http:
        resp = _open_holding_stream(server, http)
        assert server.health()["slots"]["busy"] == 1
        resp.close()
    h = server.wait_for(lambda h: h["slots"]["busy"] == 0)
    assert h["requests"]["cancelled"] == before + 1
    # the model is usable again at once
    ok = httpx.post(f"{server.v1}/chat/completions", timeout=30,
                    json={"messages": LONG, "max_tokens": 5, "temperature": 0,
                          "response_format": ENDLESS})
    assert ok.json()["choices"][0]["finish_reason"] == "length"


def test_parallel_slots_batch_on_the_native_engine(chat_gguf, model):
    from lamina.runtime.engine import native_available

    if not native_available():
        pytest.skip("lamina._native is not built")
    srv = start_server(chat_gguf, "--parallel", "4", "--queue", "8", "--ctx", str(HOLD_CTX),
                       "--max-tokens", str(HOLD_TOKENS))
    try:
        assert srv.health()["slots"]["total"] == 4
        # alone in the batch, the engine answers exactly like Model.chat
        prompt = "杭州有什么故事？"
        expected = (model.chat([{"role": "user", "content": prompt}], temperature=0,
                               max_tokens=40), model.last_stats.finish_reason)
        assert _stream_text(srv.v1, None, prompt) == expected
        # two holding streams at the same time (one slot would queue the second)
        with holding_client() as a, holding_client() as b:
            streams = [_open_holding_stream(srv, a), _open_holding_stream(srv, b)]
            srv.wait_for(lambda h: h["slots"]["busy"] == 2 and h["slots"]["waiting"] == 0)
            for resp in streams:  # leaving clients cancel their engine sequences
                resp.close()
        srv.wait_for(lambda h: h["slots"]["busy"] == 0 and h["requests"]["cancelled"] == 2)
        # 8 clients on 4 slots all get complete answers
        prompts = [f"第{i}个问题：杭州有什么故事？" for i in range(8)]
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda p: _stream_text(srv.v1, None, p), prompts))
        assert all(text and reason in ("stop", "length") for text, reason in results)
        assert srv.health()["requests"]["served"] == 1 + 2 + 8
    finally:
        stop_server(srv)
