"""Bad requests get OpenAI-style errors with the right status, and the server stays healthy."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

CHAT = "/v1/chat/completions"
OK_MSG = [{"role": "user", "content": "你好"}]


def test_wrong_or_missing_api_key_is_401(server):
    with OpenAI(base_url=server.v1, api_key="wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
    r = httpx.post(server.url + CHAT, json={"messages": OK_MSG}, timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert server.health()["status"] == "ok"


BAD_REQUESTS = [
    # (path, body or raw bytes, status, words the message must contain)
    (CHAT, b"{not json", 400, "not valid JSON"),
    (CHAT, {"messages": []}, 422, "messages"),
    (CHAT, {"messages": [{"role": "robot", "content": "x"}]}, 422, "robot"),
    (CHAT, {"messages": OK_MSG, "n": 2}, 400, "n=2"),
    (CHAT, {"messages": OK_MSG, "max_tokens": 100000}, 400, "max_tokens"),
    (CHAT, {"messages": OK_MSG, "temperature": -1}, 400, "temperature"),
    (CHAT, {"messages": OK_MSG, "top_p": 7}, 400, "top_p"),
    (CHAT, {"messages": OK_MSG, "response_format": {"type": "xml"}}, 400, "xml"),
    (CHAT, {"messages": OK_MSG, "response_format": {"type": "json_schema"}}, 400, "schema"),
    ("/v1/completions", {"prompt": [1, 2, 3]}, 422, "token-id"),
    ("/v1/completions", {"prompt": ["a", "b"]}, 400, "one prompt"),
    ("/v1/completions", {}, 422, "prompt"),
    ("/v1/embeddings", {"input": []}, 422, "empty"),
    ("/v1/embeddings", {"input": ""}, 400, "empty"),
    ("/v1/embeddings", {"input": "杭州", "dimensions": 3}, 400, "dimensions"),
    ("/v1/extract", {"input": "马云", "task": "NER"}, 400, "schema"),
    ("/v1/nowhere", {}, 404, "Unknown URL"),
    (CHAT, b"x" * 70000, 413, "larger than"),
]


@pytest.mark.parametrize(("path", "body", "status", "words"), BAD_REQUESTS,
                         ids=[f"{p}-{s}-{w}" for p, _b, s, w in BAD_REQUESTS])
def test_bad_request_gets_clear_error_and_server_stays_healthy(server, path, body, status, words):
    kwargs = {"content": body, "headers": {**server.headers(), "content-type": "application/json"}} \
        if isinstance(body, bytes) else {"json": body, "headers": server.headers()}
    r = httpx.post(server.url + path, timeout=30, **kwargs)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert words in err["message"]
    assert "Traceback" not in r.text
    ok = httpx.post(server.v1 + "/completions", headers=server.headers(), timeout=30,
                    json={"prompt": "杭州", "max_tokens": 3, "temperature": 0})
    assert ok.status_code == 200
    assert server.health()["slots"]["busy"] == 0


def test_prompt_longer_than_context_is_400_not_500(server):
    r = httpx.post(server.v1 + "/completions", headers=server.headers(), timeout=30,
                   json={"prompt": "杭州的故事 " * 2000, "max_tokens": 4})
    assert r.status_code in (400, 413), r.text
    assert "Traceback" not in r.text
    assert server.health()["status"] == "ok"
