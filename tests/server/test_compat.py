"""What clients people use send, answered as they expect: any model name, seed 003's own
curl bodies, completions through the chat template, the official ``openai`` client's and
LangChain's ``ChatOpenAI`` plain, streaming and structured-output calls.

Answers are compared with the in-process Python API (``Model.chat``/``generate``),
never with the server itself.
"""

from __future__ import annotations

import httpx
import openai
import pytest
from pydantic import BaseModel, Field

from tests.server.conftest import start_server, stop_server

CHAT = "/v1/chat/completions"
GREEDY = {"temperature": 0, "max_tokens": 24}


def msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_any_model_name_is_served_by_the_one_model(client, model):
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=msgs("你好"), **GREEDY)
    assert resp.choices[0].message.content == model.chat(msgs("你好"), **GREEDY)
    assert resp.model == model.name  # the answer says who really answered
    assert [m.id for m in client.models.list().data] == [model.name]
    with pytest.raises(openai.NotFoundError):  # a lookup by name still tells the truth
        client.models.retrieve("gpt-4o-mini")


@pytest.fixture(scope="module")
def strict_server(chat_gguf):
    srv = start_server(chat_gguf, "--strict-model", "--completions-template")
    yield srv
    stop_server(srv)


def test_strict_model_refuses_other_names_with_404(strict_server, model):
    with openai.OpenAI(base_url=strict_server.v1, api_key="none", max_retries=0) as c:
        with pytest.raises(openai.NotFoundError) as info:
            c.chat.completions.create(model="gpt-4o", messages=msgs("hi"), max_tokens=2)
        assert "gpt-4o" in str(info.value) and model.name in str(info.value)
        ok = c.chat.completions.create(model=model.name, messages=msgs("hi"), max_tokens=2)
        assert ok.choices[0].finish_reason in ("stop", "length")


def test_seed_003_curl_bodies_work_as_sent(server, model):
    """The walkthrough's three curl bodies, byte for byte (no model, no max_tokens)."""
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=120) as http:
        r = http.post("/v1/completions", json={"prompt": "告诉我中国的首都在哪里"})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["prompt_tokens"] == len(model.tokenize("告诉我中国的首都在哪里"))
        seed_chat = {"messages": [{"role": "user", "message": "给我讲一些有关杭州的故事吧"}],
                     "repetition_penalty": 1.0}
        r = http.post(CHAT, json=seed_chat)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["role"] == "assistant"
        # 'message' is read as 'content': greedy, the answer is Model.chat's
        r = http.post(CHAT, json={**seed_chat, **GREEDY})
        expected = model.chat(msgs("给我讲一些有关杭州的故事吧"), repeat_penalty=1.0, **GREEDY)
        assert r.json()["choices"][0]["message"]["content"] == expected
        r = http.post("/v1/embeddings", json={"input": "今天天气真不错"})
        assert r.status_code == 200, r.text
        assert len(r.json()["data"][0]["embedding"]) == len(model.embed(["今天天气真不错"])[0])


def test_completions_through_the_chat_template_on_request(client, model):
    prompt = "告诉我中国的首都在哪里"
    plain = client.completions.create(model="x", prompt=prompt, **GREEDY)
    templated = client.completions.create(model="x", prompt=prompt, **GREEDY,
                                          extra_body={"use_chat_template": True})
    assert plain.choices[0].text == model.generate(prompt, **GREEDY)
    assert templated.choices[0].text == model.chat(msgs(prompt), **GREEDY)
    assert templated.usage.prompt_tokens == len(model.chat_tokens(msgs(prompt)))
    assert templated.object == "text_completion"


def test_completions_template_as_the_server_default(strict_server, model):
    prompt = "告诉我中国的首都在哪里"
    with httpx.Client(base_url=strict_server.v1, timeout=60) as http:
        body = {"prompt": prompt, **GREEDY}
        on = http.post("/completions", json=body).json()["choices"][0]["text"]
        off = http.post("/completions", json={**body, "use_chat_template": False}).json()
    assert on == model.chat(msgs(prompt), **GREEDY)
    assert off["choices"][0]["text"] == model.generate(prompt, **GREEDY)


class City(BaseModel):
    city: str = Field(max_length=8)
    rank: int


def test_openai_client_structured_output_parses(client):
    resp = client.chat.completions.parse(model="gpt-4o-mini", messages=msgs("杭州"),
                                         response_format=City, temperature=0, max_tokens=120)
    parsed = resp.choices[0].message.parsed
    assert isinstance(parsed, City) and len(parsed.city) <= 8


@pytest.fixture()
def chat_openai(server):
    lc = pytest.importorskip("langchain_openai")
    return lc.ChatOpenAI(base_url=server.v1, api_key=server.api_key, model="gpt-4o-mini",
                         temperature=0, max_tokens=24, max_retries=0, timeout=60)


def test_langchain_plain_and_streaming_equal_the_python_api(chat_openai, model):
    expected = model.chat(msgs("杭州有什么故事？"), **GREEDY)
    assert chat_openai.invoke("杭州有什么故事？").content == expected
    pieces = [chunk.content for chunk in chat_openai.stream("杭州有什么故事？")]
    assert len(pieces) > 1 and "".join(pieces) == expected


def test_langchain_structured_output(chat_openai):
    structured = chat_openai.model_copy(update={"max_tokens": 160}).with_structured_output(
        City, method="json_schema")
    result = structured.invoke("杭州")
    assert isinstance(result, City) and len(result.city) <= 8
