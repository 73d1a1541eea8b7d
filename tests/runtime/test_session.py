"""Multi-turn sessions: KV reuse, equality with a cold evaluation, overflow, interruption, files."""

from __future__ import annotations

import json

import pytest

import lamina
from lamina.errors import FormatError, InputError
from lamina.runtime.sampling import SamplingParams

GREEDY = SamplingParams.greedy(16)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


@pytest.mark.parametrize("template", ["alpaca2", "flagalpha", "alpaca", "chatml"])
def test_second_turn_evaluates_only_new_tokens(model, template):
    s = model.session(system="你是一个助手。", template=template)
    s.params = GREEDY
    s.send("你好", stream=False)
    first = model.last_stats
    kv_after_first = list(model.llama.input_ids[: model.llama.n_tokens])
    assert len(kv_after_first) == first.prompt_tokens + first.completion_tokens
    s.send("介绍一下北京", stream=False)
    second = model.last_stats
    prompt2 = s.last_prompt_tokens
    # the second prompt continues the exact tokens of the first turn...
    assert prompt2[: len(kv_after_first)] == kv_after_first
    # ...so only the new message (and the template's markers) is evaluated
    assert second.cached_tokens == len(kv_after_first)
    assert second.evaluated_tokens == len(prompt2) - len(kv_after_first)
    new_part = model.detokenize(prompt2[len(kv_after_first):])
    assert "介绍一下北京" in new_part and "你好" not in new_part


def test_multi_turn_answer_equals_cold_evaluation(model, chat_gguf):
    s = model.session()
    s.params = GREEDY
    for text in ("你好", "介绍一下北京", "再说一遍"):
        answer = s.send(text, stream=False)
    with lamina.load(chat_gguf, n_ctx=512, n_threads=1) as cold:
        assert cold.generate(s.last_prompt_tokens, GREEDY) == answer
        assert cold.last_stats.cached_tokens == 0
        # the prompt is the template's text for the whole conversation
        rendered = s.template.render(s.history[:-1])
        for marker in ("<s>", "</s>", " "):
            rendered = rendered.replace(marker, "")
        assert cold.detokenize(s.last_prompt_tokens).replace(" ", "") == rendered


def test_overflow_drops_oldest_turns_keeps_system_and_goes_on(chat_gguf):
    with lamina.load(chat_gguf, n_ctx=160, n_threads=1) as m:
        notices: list[str] = []
        s = m.session(system="系统提示")
        s.on_notice = notices.append
        s.params = SamplingParams.greedy(24)
        for i in range(8):
            answer = s.send(f"第{i}个问题：北京是中国的首都吗？", stream=False)
            assert isinstance(answer, str)
        assert notices and "dropped" in notices[0] and "system prompt" in notices[0]
        assert s.history[0] == {"role": "system", "content": "系统提示"}
        assert s.messages[-2]["content"].startswith("第7个问题")
        assert not any(m_["content"].startswith("第0个") for m_ in s.messages)
        assert m.last_stats.prompt_tokens + 24 <= 160


def test_message_too_long_for_the_context_is_a_clear_error(chat_gguf):
    with lamina.load(chat_gguf, n_ctx=64, n_threads=1) as m:
        s = m.session()
        with pytest.raises(lamina.LaminaError, match="too long"):
            s.send("北京 " * 80, stream=False)
        assert s.messages == []


def test_interrupted_answer_keeps_the_session_usable(model, chat_gguf):
    s = model.session()
    s.params = SamplingParams.greedy(40)
    stream = s.send("介绍一下北京", stream=True)
    shown = [next(stream), next(stream)]
    stream.close()  # what Ctrl-C does in the UI
    assert model.last_stats.finish_reason == "cancelled"
    assert s.messages[-1] == {"role": "assistant", "content": "".join(shown).strip()}
    answer = s.send("继续", stream=False)
    with lamina.load(chat_gguf, n_ctx=512, n_threads=1) as cold:
        assert cold.chat(s.history[:-1], s.params).strip() == answer.strip()


def test_undo_retry_reset(model):
    s = model.session()
    s.params = SamplingParams(seed=5, max_tokens=12)
    s.send("你好", stream=False)
    s.send("北京", stream=False)
    assert s.undo() == "北京"
    assert [m["content"] for m in s.messages if m["role"] == "user"] == ["你好"]
    s.params = GREEDY
    again = s.retry(stream=False)
    assert s.messages[-1]["content"] == again.strip() and len(s.messages) == 2
    s.reset()
    assert s.messages == [] and s.undo() is None
    with pytest.raises(InputError):
        s.retry(stream=False)
    with pytest.raises(InputError):
        s.send("   ")


def test_save_and_load_round_trip(model, tmp_path):
    s = model.session(system="你是助手")
    s.params = GREEDY
    s.send("你好", stream=False)
    path = s.save(tmp_path / "chat.json")
    data = json.loads(path.read_text("utf-8"))
    assert data["format"] == "lamina.chat/1" and data["messages"][0]["content"] == "你好"
    t = model.session(template="chatml")
    t.load(path)
    assert t.history == s.history and t.template.name == s.template.name
    assert t.params == s.params


@pytest.mark.parametrize("content", ["not json", '{"format": "other"}',
                                     '{"format": "lamina.chat/1", "messages": [{"role": "x"}]}'])
def test_loading_a_bad_session_file_is_a_clear_error(model, tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    s = model.session()
    with pytest.raises(FormatError):
        s.load(bad)
    with pytest.raises(InputError, match="does not exist"):
        s.load(tmp_path / "missing.json")


def test_session_uses_template_sampling_defaults(model):
    s = model.session(template="flagalpha")
    assert (s.params.temperature, s.params.top_k, s.params.top_p, s.params.repeat_penalty) == (
        0.3, 50, 0.95, 1.3)


def test_a_failed_turn_leaves_no_trace(model):
    s = model.session()
    s.params = GREEDY
    s.send("你好", stream=False)
    before = [dict(m) for m in s.messages]
    with pytest.raises(InputError):
        s.send("北京", stream=False, stop=("",))  # invalid parameters
    with pytest.raises(lamina.LaminaError, match="too long"):
        s.send("北京 " * 800, stream=False)  # cannot fit the context
    other = model.generate("上海", GREEDY, stream=True)
    next(other)
    with pytest.raises(lamina.LaminaError, match="still streaming"):
        s.send("北京", stream=False)  # fails inside the generation
    other.close()
    assert s.messages == before
    s.send("北京", stream=False)
    assert [m["role"] for m in s.messages] == ["user", "assistant"] * 2
