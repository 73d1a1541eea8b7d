"""Prompt-cache reuse across requests on the engine backend (``--parallel`` > 1)."""

from __future__ import annotations

import pytest

SYSTEM = "你是一个信息抽取助手。请仔细阅读用户给出的文本，找出其中的人物、地点和组织，" * 3


@pytest.fixture()
def backend(model):
    from lamina.runtime.engine import native_available
    from lamina.server.backend import EngineBackend

    if not native_available():
        pytest.skip("lamina._native is not built")
    b = EngineBackend(model, 2)
    yield b
    b.close()


def _answer(backend, messages) -> str:
    return "".join(backend.chat(messages, None, {"temperature": 0, "max_tokens": 16}))


def test_a_shared_system_prompt_is_evaluated_once_and_answers_do_not_change(backend, model):
    from lamina.server.backend import MIN_SHARED_PREFIX, common_prefix_length

    convs = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]
             for q in ("张三去了北京。", "李四在上海工作。", "王五在杭州读书。")]
    expected = [model.chat(m, temperature=0, max_tokens=16) for m in convs]
    tokens = [model.chat_tokens(m) for m in convs]
    common = common_prefix_length(tokens[0], tokens[1])
    assert common > MIN_SHARED_PREFIX and common == common_prefix_length(tokens[1], tokens[2])
    got = [_answer(backend, m) for m in convs]
    assert got == expected
    stats = backend.engine.stats()
    # The first request had nothing to share with; the second made the common start
    # the engine's prefix, copied from the first one's kept cells (nothing evaluated
    # again), and the third found it there.
    assert stats["prefix_evaluated"] == 0
    assert stats["prompt_shared"] == 2 * common
    assert stats["prompt_evaluated"] == sum(map(len, tokens)) - 2 * common


def test_prompts_that_share_little_set_no_prefix(backend):
    for prompt in ("张三去了北京。", "张三在上海工作。"):  # a common start of a few tokens
        "".join(backend.complete(prompt, None, {"temperature": 0, "max_tokens": 8}))
    assert backend.engine.stats()["prefix_evaluated"] == 0
