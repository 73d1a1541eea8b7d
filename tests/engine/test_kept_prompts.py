"""A free slot keeps its last prompt's cells: a chat's next turn reuses them, exactly.

The kept cells are reused only where a from-scratch evaluation of the new prompt
would make the same rows (each cell made in a call of the same kernel class, and
the rest of the cut chunk in one call of that class too), so answers equal
``Model.generate`` on the whole prompt.
"""

from __future__ import annotations

import pytest

from lamina.runtime.sampling import SamplingParams

GREEDY = SamplingParams.greedy(6)


@pytest.fixture()
def engine(model):
    from lamina.runtime.engine import BatchEngine, native_available

    if not native_available():
        pytest.skip("lamina._native is not built")
    eng = BatchEngine(model, n_seq_max=3, n_ctx_per_seq=512)
    yield eng
    eng.close()


def _run(engine, tokens):
    before = engine.stats()
    req = engine.submit(tokens, GREEDY)
    engine.run([req])
    after = engine.stats()
    return req, {k: after[k] - before[k] for k in ("prompt_evaluated", "prompt_shared")}


def test_the_next_turn_reuses_the_earlier_prompt_and_answers_the_same(engine, model):
    turn1 = model.tokenize("用户：张三去了哪里？\n助手：")
    first, used = _run(engine, turn1)
    assert used == {"prompt_evaluated": len(turn1), "prompt_shared": 0}
    turn2 = turn1 + first.tokens + model.tokenize("用户：他做了什么？\n助手：", add_bos=False)
    second, used = _run(engine, turn2)
    # The answer's cells were made one row per call (not as a prompt chunk): they
    # are evaluated again, the earlier prompt is not.
    assert used == {"prompt_evaluated": len(turn2) - len(turn1), "prompt_shared": len(turn1)}
    assert second.text == model.generate(turn2, GREEDY)


def test_a_continuation_finds_the_slot_that_holds_its_start(engine, model):
    starts = [model.tokenize(t) for t in ("北京是中国的首都。", "上海在长江口。", "杭州有西湖。")]
    reqs = [engine.submit(t, GREEDY) for t in starts]
    engine.run(reqs)
    # Every slot now keeps one of the three; the middle one's continuation reuses it.
    more = starts[1] + model.tokenize("那里的人口有多少？", add_bos=False)
    req, used = _run(engine, more)
    assert used == {"prompt_evaluated": len(more) - len(starts[1]),
                    "prompt_shared": len(starts[1])}
    assert req.text == model.generate(more, GREEDY)


def test_the_last_row_of_a_chunk_is_never_reused_alone(engine, model):
    """A prompt one token longer than the kept one: reusing all of the kept cells
    would leave a one-row call where a plain evaluation makes that row in a call of
    many, so one kept cell is given back and two rows are evaluated."""
    base = model.tokenize("王五在杭州读书。")
    _run(engine, base)
    longer = base + model.tokenize("他", add_bos=False)[:1]
    req, used = _run(engine, longer)
    assert used == {"prompt_evaluated": 2, "prompt_shared": len(base) - 1}
    assert req.text == model.generate(longer, GREEDY)


def test_a_different_prompt_reuses_nothing(engine, model):
    _run(engine, model.tokenize("今天天气很好。"))
    other = model.tokenize("Hello world, this is another prompt.")
    req, used = _run(engine, other)
    assert used["prompt_shared"] <= 1  # at most the BOS both start with
    assert req.text == model.generate(other, GREEDY)


def test_a_prefix_a_free_slot_already_holds_is_copied_not_evaluated(engine, model):
    start = model.tokenize("你是一个信息抽取助手，请找出人物和地点。")
    _run(engine, start + model.tokenize("张三去了北京。", add_bos=False))
    before = engine.stats()
    assert engine.set_prefix(start) == 0  # copied from the kept cells
    assert engine.stats()["prefix_evaluated"] == before["prefix_evaluated"]
    # Two requests at once: one takes the slot that kept the start, the other starts
    # from the copied prefix; both answer as from scratch.
    prompts = [start + model.tokenize(t, add_bos=False) for t in ("李四在上海。", "王五在杭州。")]
    reqs = [engine.submit(p, GREEDY) for p in prompts]
    engine.run(reqs)
    assert [r.text for r in reqs] == [model.generate(p, GREEDY) for p in prompts]
    assert engine.stats()["prompt_shared"] - before["prompt_shared"] >= 2 * (len(start) - 1)
