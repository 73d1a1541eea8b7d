"""Slots, request mapping and error shapes, without a server (fast)."""

from __future__ import annotations

import asyncio

import pytest

from lamina.runtime.sampling import SamplingParams
from lamina.server.config import ServerConfig
from lamina.server.errors import APIError, ClientGone, ServerBusy, validation_message
from lamina.server.grammar import grammar_for
from lamina.server.schemas import ChatCompletionRequest, CompletionRequest
from lamina.server.slots import PieceStream, SlotPool


def test_slots_are_handed_out_in_arrival_order_and_the_queue_is_bounded():
    async def scenario() -> list[str]:
        pool = SlotPool(n_slots=1, max_queue=2)
        order: list[str] = []
        release = asyncio.Event()

        async def job(name: str) -> None:
            async with pool.slot():
                order.append(name)
                if name == "a":
                    await release.wait()

        first = asyncio.create_task(job("a"))
        await asyncio.sleep(0)
        waiting = [asyncio.create_task(job(n)) for n in ("b", "c")]
        await asyncio.sleep(0.01)
        assert (pool.busy, pool.waiting) == (1, 2)
        with pytest.raises(ServerBusy) as info:
            await job("d")
        assert info.value.status == 429 and int(info.value.headers["Retry-After"]) >= 1
        release.set()
        await asyncio.gather(first, *waiting)
        assert (pool.busy, pool.waiting, pool.rejected, pool.served) == (0, 0, 1, 3)
        pool.shutdown()
        return order

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_queued_request_whose_client_left_gives_up_its_place():
    async def scenario() -> None:
        pool = SlotPool(n_slots=1, max_queue=4)
        gone = False

        async def is_disconnected() -> bool:
            return gone

        async with pool.slot():
            task = asyncio.create_task(pool.slot(is_disconnected).__aenter__())
            await asyncio.sleep(0.01)
            assert pool.waiting == 1
            gone = True
            with pytest.raises(ClientGone):
                await task
            assert pool.waiting == 0 and pool.cancelled == 1
        assert pool.busy == 0
        pool.shutdown()

    asyncio.run(scenario())


def test_piece_stream_closes_the_generator_on_the_slot_thread():
    closed: list[str] = []

    def pieces():
        import itertools
        import time

        try:
            for i in itertools.count():  # endless: only close() ends it
                yield f"{i} "
                time.sleep(0.001)
        finally:
            import threading

            closed.append(threading.current_thread().name)

    async def scenario() -> list[str]:
        pool = SlotPool(1, 0)
        async with pool.slot() as slot:
            stream = PieceStream(slot, pieces, finish=lambda _it: "stats")
            got = await stream.next_pieces()
            assert not stream.finished
            await stream.aclose()
        pool.shutdown()
        return got

    got = asyncio.run(scenario())
    assert got and got[0] == "0 "
    assert closed and closed[0].startswith("lamina-slot0")


def test_request_fields_map_onto_sampling_params():
    req = ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}], temperature=0.2,
                                top_p=0.5, max_tokens=10, seed=7, stop="###",
                                repetition_penalty=1.3)
    overrides = req.sampling_overrides(max_tokens_cap=100)
    assert overrides == {"temperature": 0.2, "top_p": 0.5, "max_tokens": 10, "seed": 7,
                         "repeat_penalty": 1.3, "stop": ("###",)}
    assert SamplingParams().replace(**overrides).stop == ("###",)
    # unset fields stay unset: the model's template defaults apply to them
    bare = ChatCompletionRequest(messages=[{"role": "user", "content": "hi"}])
    assert bare.sampling_overrides(100) == {}


def test_content_parts_and_developer_role_are_accepted():
    req = ChatCompletionRequest(messages=[
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "你"}, {"type": "text", "text": "好"}]}])
    assert [m.model_dump(exclude_none=True) for m in req.messages] == [
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "你好"}]


@pytest.mark.parametrize(("fields", "param"), [
    ({"max_tokens": 101}, "max_tokens"), ({"n": 3}, "n"), ({"temperature": -0.5}, "temperature"),
    ({"seed": -1}, "seed"), ({"logprobs": True}, "logprobs"), ({"stop": [""]}, "stop")])
def test_bad_sampling_fields_are_400_naming_the_field(fields, param):
    req = CompletionRequest(prompt="x", **fields)
    with pytest.raises(APIError) as info:
        req.sampling_overrides(max_tokens_cap=100)
    assert info.value.status == 400 and info.value.param == param


def test_json_response_formats_become_grammars():
    assert grammar_for(None) is None and grammar_for({"type": "text"}) is None
    assert "root" in grammar_for({"type": "json_object"})
    g = grammar_for({"type": "json_schema", "json_schema": {"schema": {
        "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}})
    assert '\\"a\\"' in g or '"a"' in g
    with pytest.raises(APIError):
        grammar_for({"type": "json_schema", "json_schema": {"schema": "nope"}})


def test_validation_errors_name_the_field():
    status, message, param = validation_message([
        {"loc": ("body", "messages", 0, "content"), "msg": "Field required", "type": "missing"}])
    assert (status, param) == (422, "messages.0.content")
    assert "'messages.0.content': Field required" in message
    status, message, _ = validation_message([{"loc": ("body", 1), "type": "json_invalid",
                                              "msg": "JSON decode error",
                                              "ctx": {"error": "Expecting value"}}])
    assert status == 400 and "not valid JSON" in message


def test_server_config_validates_and_reads_the_key_from_env(monkeypatch):
    monkeypatch.setenv("LAMINA_API_KEY", "from-env")
    assert ServerConfig.resolve_api_key(None) == "from-env"
    assert ServerConfig.resolve_api_key("cli") == "cli"
    monkeypatch.setenv("LAMINA_API_KEY", "")
    assert ServerConfig.resolve_api_key(None) is None
    with pytest.raises(Exception, match="--parallel"):
        ServerConfig(parallel=0)


def test_answer_shapes_are_openais():
    from lamina.server.shapes import ChatAnswer, TextAnswer

    use = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    chat = ChatAnswer("m")
    head = {"id": chat.rid, "object": "chat.completion.chunk", "created": chat.created,
            "model": "m"}
    assert chat.rid.startswith("chatcmpl-")
    assert chat.head() == [{**head, "choices": [{
        "index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
        "finish_reason": None}]}]
    assert chat.piece("你好") == {**head, "choices": [{
        "index": 0, "delta": {"content": "你好"}, "logprobs": None, "finish_reason": None}]}
    assert chat.last("length") == {**head, "choices": [{
        "index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}]}
    assert chat.usage(use) == {**head, "choices": [], "usage": use}
    whole = chat.whole("你好", "stop", use)
    assert whole["object"] == "chat.completion" and whole["usage"] == use
    assert whole["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "你好"},
                                 "logprobs": None, "finish_reason": "stop"}]

    text = TextAnswer("m")
    head = {"id": text.rid, "object": "text_completion", "created": text.created, "model": "m"}
    assert text.rid.startswith("cmpl-") and text.head() == []
    assert text.piece("杭州") == {**head, "choices": [{
        "index": 0, "text": "杭州", "logprobs": None, "finish_reason": None}]}
    assert text.last("stop") == {**head, "choices": [{
        "index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]}
    assert text.usage(use) == {**head, "choices": [], "usage": use}
    assert text.whole("杭州", "length", use)["choices"] == [
        {"index": 0, "text": "杭州", "logprobs": None, "finish_reason": "length"}]


def test_body_check_names_the_field_with_a_lone_surrogate_or_bad_bytes():
    import json

    from lamina.server.bodycheck import check_body, lone_surrogate_path

    assert lone_surrogate_path({"messages": [{"role": "user", "content": "ok"},
                                             {"role": "user", "content": "a\ud800b"}]}) \
        == "messages.1.content"
    assert lone_surrogate_path({"x": {"\udc00": 1}}) == "x.\\udc00"
    assert lone_surrogate_path({"emoji": "\U0001f600", "zh": "杭州"}) is None
    deep: object = "\udfff"
    for _ in range(5000):  # deeper than any recursive walk could go
        deep = [deep]
    assert lone_surrogate_path(deep) == ".".join(["0"] * 5000)
    # a surrogate pair written as two escapes is one valid character
    assert check_body(json.dumps({"prompt": "\U0001f600"}).encode()) is None
    assert check_body(b'{"prompt": "\\\\ud800 is how you write it"}') is None
    err = check_body(json.dumps({"input": ["ok", "\ud800"]}).encode())
    assert (err.status, err.param, err.code) == (400, "input.1", "invalid_unicode")
    err = check_body(b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}')
    assert (err.status, err.param) == (400, "messages.0.content")
    assert "UTF-8" in err.message and "0xff" in err.message


def test_a_bug_in_a_route_answers_500_json_without_raising():
    import json

    from lamina.server.errors import CatchAll

    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    sent: list[dict] = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    asyncio.run(CatchAll(broken)({"type": "http", "path": "/x"}, receive, send))
    assert sent[0]["status"] == 500
    body = json.loads(sent[1]["body"])
    assert body["error"]["type"] == "server_error" and "RuntimeError" in body["error"]["message"]
