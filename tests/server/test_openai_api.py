"""The official ``openai`` client against a real ``lamina serve``: the answers are the
model's own (equal to the in-process Python API), in OpenAI's shapes."""

from __future__ import annotations

import json
import math

import httpx
import pytest

from lamina.server.grammar import grammar_for
from tests.server.conftest import ENDLESS

GREEDY = {"temperature": 0, "max_tokens": 48}


def msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_models_lists_the_served_model(client, model):
    ids = [m.id for m in client.models.list().data]
    assert ids == [model.name]
    assert client.models.retrieve(model.name).id == model.name


def test_chat_non_stream_equals_python_api(client, model):
    resp = client.chat.completions.create(model=model.name, messages=msgs("你好"), **GREEDY)
    expected = model.chat(msgs("你好"), **GREEDY)
    choice = resp.choices[0]
    assert resp.object == "chat.completion"
    assert choice.message.role == "assistant"
    assert choice.message.content == expected
    assert choice.finish_reason == model.last_stats.finish_reason
    assert resp.usage.prompt_tokens == len(model.chat_tokens(msgs("你好")))
    assert resp.usage.completion_tokens == model.last_stats.completion_tokens
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_chat_stream_pieces_join_to_the_full_answer(client, model):
    stream = client.chat.completions.create(model=model.name, messages=msgs("杭州"), stream=True,
                                            stream_options={"include_usage": True}, **GREEDY)
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == model.chat(msgs("杭州"), **GREEDY)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == model.last_stats.finish_reason
    assert all(f is None for f in finishes[:-1])
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == model.last_stats.completion_tokens


def test_max_tokens_gives_finish_reason_length(client):
    resp = client.chat.completions.create(messages=msgs("Tell me a long story."),
                                          model="chat-f16", temperature=0, max_tokens=7,
                                          response_format=ENDLESS)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage.completion_tokens == 7


def test_stop_string_cuts_the_answer(client, model):
    full = model.chat(msgs("Tell me a long story."), temperature=0, max_tokens=40,
                      grammar=grammar_for(ENDLESS))
    stop = full[10:12]
    assert len(stop) == 2
    resp = client.chat.completions.create(model=model.name, messages=msgs("Tell me a long story."),
                                          temperature=0, max_tokens=40, stop=[stop],
                                          response_format=ENDLESS)
    assert resp.choices[0].message.content == full[: full.index(stop)]
    assert resp.choices[0].finish_reason == "stop"


def test_completions_non_stream_and_stream(client, model):
    prompt = "告诉我中国的首都在哪里"
    expected = model.generate(prompt, temperature=0, max_tokens=32)
    resp = client.completions.create(model=model.name, prompt=prompt, temperature=0, max_tokens=32)
    assert resp.object == "text_completion"
    assert resp.choices[0].text == expected
    assert resp.usage.prompt_tokens == len(model.tokenize(prompt))
    chunks = list(client.completions.create(model=model.name, prompt=prompt, temperature=0,
                                            max_tokens=32, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == expected
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_seeded_sampling_repeats_per_seed_and_differs_from_greedy(client, model):
    args = {"model": "chat-f16", "messages": msgs("写一首诗"), "temperature": 1.0,
            "top_p": 0.9, "seed": 42, "max_tokens": 24}

    def answer(**changes) -> str:
        return client.chat.completions.create(**{**args, **changes}).choices[0].message.content

    first = answer()
    assert answer() == first
    assert first == model.chat(msgs("写一首诗"), temperature=1.0, top_p=0.9, seed=42,
                               max_tokens=24)
    assert len({first, answer(seed=43), answer(seed=44)}) >= 2
    assert first != answer(temperature=0)


def test_presence_and_frequency_penalties_are_applied(client, model):
    """They used to be accepted and dropped; now they are the Python API's."""
    args = {"messages": msgs("北京"), "temperature": 0, "max_tokens": 32}
    pen = {"presence_penalty": 1.5, "frequency_penalty": 0.5}
    plain = client.chat.completions.create(model=model.name, **args).choices[0].message.content
    got = client.chat.completions.create(model=model.name, **args, **pen).choices[0].message.content
    assert got == model.chat(**args, **pen)
    assert got != plain
    text = client.completions.create(model=model.name, prompt="北京", temperature=0,
                                     max_tokens=32, **pen).choices[0].text
    assert text == model.generate("北京", temperature=0, max_tokens=32, **pen)


@pytest.mark.parametrize(("field", "value"), [("presence_penalty", 2.5),
                                              ("frequency_penalty", -2.01)])
def test_penalty_outside_openais_range_is_400_naming_it(server, field, value):
    for path, body in (("chat/completions", {"messages": msgs("x")}), ("completions", {"prompt": "x"})):
        r = httpx.post(f"{server.v1}/{path}", headers=server.headers(), timeout=30,
                       json={**body, field: value, "max_tokens": 2})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == field and "[-2, 2]" in err["message"]


def test_embeddings_are_normalised_model_vectors(client, model):
    texts = ["今天天气真不错", "杭州的故事"]
    resp = client.embeddings.create(model=model.name, input=texts)  # SDK asks for base64
    assert [d.index for d in resp.data] == [0, 1]
    direct = model.embed(texts)
    for got, want in zip(resp.data, direct, strict=True):
        assert len(got.embedding) == len(want)
        assert math.isclose(math.fsum(x * x for x in got.embedding), 1.0, rel_tol=1e-4)
        assert max(abs(a - b) for a, b in zip(got.embedding, want, strict=True)) < 1e-5
    floats = client.embeddings.create(model=model.name, input=texts[0], encoding_format="float")
    assert max(abs(a - b) for a, b in zip(floats.data[0].embedding, direct[0], strict=True)) < 1e-5
    assert resp.usage.prompt_tokens == sum(len(model.tokenize(t)) for t in texts)


def test_json_object_mode_returns_parseable_json(client):
    # A random tiny model may write one JSON string until max_tokens; every answer
    # that ends by itself must parse, and a few seeds are enough for one to end.
    finished = 0
    for seed in range(8):
        resp = client.chat.completions.create(
            model="chat-f16", messages=msgs("Return a JSON object."), max_tokens=200,
            response_format={"type": "json_object"}, temperature=1.0, top_p=1.0, seed=seed,
            extra_body={"top_k": 0, "min_p": 0.0, "repeat_penalty": 1.0})
        text = resp.choices[0].message.content
        assert text.lstrip().startswith("{")
        if resp.choices[0].finish_reason == "stop":
            assert isinstance(json.loads(text), dict)
            finished += 1
            if finished == 2:
                break
    assert finished >= 1


def test_json_schema_mode_follows_the_schema(client):
    schema = {"type": "object", "required": ["city", "rank"],
              "properties": {"city": {"type": "string", "maxLength": 6},
                             "rank": {"type": "integer"}}}
    resp = client.chat.completions.create(
        model="chat-f16", messages=msgs("杭州"), temperature=0, max_tokens=120,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}})
    data = json.loads(resp.choices[0].message.content)
    assert set(data) == {"city", "rank"}
    assert isinstance(data["rank"], int) and len(data["city"]) <= 6


def test_extract_returns_the_schema_keys(server):
    schema = ["人物", "地理位置", "组织机构"]
    r = httpx.post(f"{server.v1}/extract", headers=server.headers(), timeout=60,
                   json={"task": "NER", "schema": schema, "lang": "zh",
                         "input": "马云在杭州创办了阿里巴巴。"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "extraction" and body["task"] == "NER"
    assert list(body["result"]) == schema
    assert all(isinstance(v, list) for v in body["result"].values())


def test_extract_bad_task_is_a_400(server):
    r = httpx.post(f"{server.v1}/extract", headers=server.headers(), timeout=30,
                   json={"task": "XYZ", "schema": ["人物"], "input": "马云"})
    assert r.status_code == 400
    assert "XYZ" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/health"])
def test_health_needs_no_key(server, path):
    assert httpx.get(server.url + path, timeout=10).json()["status"] == "ok"
