"""`lamina serve` options and the request fields no other test touches, each checked by
its effect: answers against llama.cpp's plain greedy loop (tests/realmodels/reference.py)
on prompts rendered by hand, token counts, and the status and field of refusals."""

from __future__ import annotations

import json

import httpx
import pytest

import lamina
from lamina.ie.api import Extractor
from lamina.runtime.sampling import SamplingParams
from tests.fixtures.prompts import chatml
from tests.realmodels.reference import Reference
from tests.server.conftest import ENDLESS, start_server, stop_server

N = 16
#: Greedy and penalty-free, so the answer is the reference's argmax loop.
GREEDY = {"temperature": 0, "max_tokens": N, "repeat_penalty": 1.0}


def greedy_text(ref: Reference, prompt: str) -> str:
    return ref.detokenize(ref.greedy(ref.tokenize(prompt), N))


def test_serve_options_host_name_log_level_template_lora(chat_gguf, good_lora,
                                                         lora_merged_gguf):
    merged = Reference(lora_merged_gguf, n_ctx=512, n_threads=1)
    srv = start_server(chat_gguf, "--name", "tiny-zh", "--log-level", "info", "--template",
                       "chatml", "--lora", str(good_lora), "--ctx", "512", host="127.0.0.2")
    port = srv.url.rsplit(":", 1)[1]
    try:
        # --host: it listens on 127.0.0.2 only
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        # --name: the id clients see and may ask for
        assert [m["id"] for m in httpx.get(f"{srv.v1}/models", timeout=10).json()["data"]] \
            == ["tiny-zh"]
        card = httpx.get(f"{srv.v1}/models/tiny-zh", timeout=10).json()
        assert card["id"] == "tiny-zh" and card["template"] == "chatml"
        # --lora: a raw completion is the hand-merged model's
        r = httpx.post(f"{srv.v1}/completions", timeout=30,
                       json={"model": "tiny-zh", "prompt": "北京", **GREEDY})
        assert r.json()["choices"][0]["text"] == greedy_text(merged, "北京")
        # --template (with the LoRA): chat renders ChatML
        r = httpx.post(f"{srv.v1}/chat/completions", timeout=30,
                       json={"messages": [{"role": "user", "content": "介绍一下北京"}], **GREEDY})
        assert r.json()["choices"][0]["message"]["content"] \
            == greedy_text(merged, chatml("介绍一下北京")).lstrip()
    finally:
        stop_server(srv)
    # --log-level info: uvicorn's access log, on stdout (the default, warning, has none)
    log = srv.proc.stdout.read()
    assert '"POST /v1/chat/completions HTTP/1.1" 200' in log
    assert '"GET /v1/models HTTP/1.1" 200' in log


def test_unknown_model_card_is_404_naming_it(server):
    r = httpx.get(f"{server.v1}/models/gpt-4o", headers=server.headers(), timeout=10)
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["param"] == "model" and "'gpt-4o'" in err["message"]


@pytest.mark.parametrize(("field", "value"), [("echo", True), ("suffix", "。"), ("best_of", 3)])
def test_completion_fields_lamina_cannot_honour_are_refused(server, field, value):
    r = httpx.post(f"{server.v1}/completions", headers=server.headers(), timeout=10,
                   json={"prompt": "杭州", "max_tokens": 4, field: value})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["param"] == field and field in err["message"]


def test_max_completion_tokens_limits_the_answer(server):
    r = httpx.post(f"{server.v1}/chat/completions", headers=server.headers(), timeout=30,
                   json={"messages": [{"role": "user", "content": "你好"}], "temperature": 0,
                         "max_completion_tokens": 5, "response_format": ENDLESS})
    body = r.json()
    assert body["usage"]["completion_tokens"] == 5
    assert body["choices"][0]["finish_reason"] == "length"


def test_streamed_completion_with_include_usage(server, model):
    prompt = "告诉我中国的首都在哪里"
    expected = model.generate(prompt, temperature=0, max_tokens=20)
    stats = model.last_stats
    with httpx.stream("POST", f"{server.v1}/completions", headers=server.headers(), timeout=30,
                      json={"prompt": prompt, "temperature": 0, "max_tokens": 20, "stream": True,
                            "stream_options": {"include_usage": True}}) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == expected
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"] == {"prompt_tokens": len(model.tokenize(prompt)),
                             "completion_tokens": stats.completion_tokens,
                             "total_tokens": len(model.tokenize(prompt))
                             + stats.completion_tokens}
    assert all("usage" not in c or c["usage"] is None for c in chunks[:-1])


def _extract(server, **fields):
    return httpx.post(f"{server.v1}/extract", headers=server.headers(), timeout=60,
                      json={"task": "NER", "schema": ["人物", "地理位置", "组织机构"],
                            "input": "马云在杭州创办了阿里巴巴。", **fields})


def test_extract_split_num_and_max_tokens(server, model):
    """Asked all at once, the three keys' JSON answer is longer than each key's alone:
    a max_tokens between the two cuts the first (400) and lets split_num=1 through."""
    def answer_tokens(split_num):
        ex = Extractor(model, task="NER", schema=["人物", "地理位置", "组织机构"],
                       split_num=split_num)
        job = ex.job("马云在杭州创办了阿里巴巴。")
        counts = []
        for prompt, grammar in zip(job.prompts, job.grammars, strict=True):
            model.generate(prompt, SamplingParams.greedy(400), grammar=grammar)
            counts.append(model.last_stats.completion_tokens)
        return max(counts)

    alone, together = answer_tokens(1), answer_tokens(None)
    assert alone < together
    limit = (alone + together) // 2
    cut = _extract(server, max_tokens=limit)
    assert cut.status_code == 400 and "max_tokens" in cut.json()["error"]["message"]
    ok = _extract(server, max_tokens=limit, split_num=1)
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"] == {"人物": [], "地理位置": [], "组织机构": []} \
        == lamina.extract(model, "马云在杭州创办了阿里巴巴。", schema=["人物", "地理位置", "组织机构"])
    assert _extract(server, max_tokens=0).json()["error"]["param"] == "max_tokens"


def test_extract_use_grammar_false_decodes_freely(server):
    """This tiny model's free text is never JSON: without the grammar the answer cannot
    be read, which the server reports as a 400 (with it, the same request is a 200)."""
    assert _extract(server, max_tokens=60).status_code == 200
    free = _extract(server, max_tokens=60, use_grammar=False)
    assert free.status_code == 400
    assert "no JSON object" in free.json()["error"]["message"]


def test_text_content_parts_are_joined_and_others_refused(server, model):
    parts = [{"type": "text", "text": "介绍一下"}, {"type": "text", "text": "北京"}]
    r = httpx.post(f"{server.v1}/chat/completions", headers=server.headers(), timeout=30,
                   json={"messages": [{"role": "user", "content": parts}], "temperature": 0,
                         "max_tokens": N})
    assert r.json()["choices"][0]["message"]["content"] == model.chat(
        [{"role": "user", "content": "介绍一下北京"}], temperature=0, max_tokens=N)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    r = httpx.post(f"{server.v1}/chat/completions", headers=server.headers(), timeout=30,
                   json={"messages": [{"role": "user", "content": [parts[0], image]}]})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["param"] == "messages.0" and "'image_url'" in err["message"]
