"""BatchEngine / generate_many against the sequential Model.generate path."""

from __future__ import annotations

import json
import threading

import pytest

from lamina.errors import InputError
from lamina.runtime.engine import BatchEngine, generate_many
from lamina.runtime.sampling import GrammarError, SamplingParams

PREFIX = "以下是一条指令，请按要求从文本中抽取人物、地点和组织，并用JSON回答。\n文本："
BODIES = ["张三去了北京。", "李四在上海的一家公司工作，周末常去杭州看望父母。", "王五。",
          "赵六和钱七一起参加了清华大学的会议，会后他们去了天安门广场和故宫博物院参观。",
          "孙八", "周九在深圳创办了一家人工智能公司。", "吴十去了南京。", "郑十一在武汉读书。",
          "冯十二在成都吃火锅。", "陈十三从广州出发。"]


def greedy(n: int = 24) -> SamplingParams:
    return SamplingParams.greedy(max_tokens=n)


def test_greedy_results_equal_the_sequential_path(model):
    prompts = [PREFIX + b for b in BODIES]
    expected = [model.generate(p, greedy()) for p in prompts]
    # 10 prompts of mixed lengths through 3 slots: queued ones join as others finish.
    assert generate_many(model, prompts, greedy(), n_seq=3) == expected
    assert generate_many(model, prompts, greedy(), n_seq=3, shared_prefix=False) == expected


@pytest.mark.parametrize("kv_unified", [False, True])
def test_common_prefix_is_evaluated_once(model, kv_unified):
    prompts = [PREFIX + b for b in BODIES[:6]]
    lengths = [len(model.tokenize(p)) for p in prompts]
    prefix = len(model.tokenize(PREFIX))
    eng = BatchEngine(model, n_seq_max=3, n_ctx_per_seq=256, kv_unified=kv_unified)
    shared = eng.set_prefix(PREFIX)
    assert shared == prefix
    reqs = [eng.submit(p, greedy(4)) for p in prompts]
    eng.run(reqs)
    stats = eng.stats()
    # The prefix cost once, each prompt only its own tail (a token or two of the
    # prefix may merge with the body's first characters when tokenized together).
    common = [sum(1 for _ in zip_while_equal(model.tokenize(PREFIX), model.tokenize(p)))
              for p in prompts]
    assert stats["prompt_evaluated"] == prefix + sum(n - c for n, c in zip(lengths, common, strict=True))
    assert stats["prompt_shared"] == sum(common)
    assert sum(common) >= 6 * (prefix - 2)
    plain = BatchEngine(model, n_seq_max=3, n_ctx_per_seq=256)
    plain_reqs = [plain.submit(p, greedy(4)) for p in prompts]
    plain.run(plain_reqs)
    # Without a prefix, only what a slot kept of its last prompt is reused (the
    # first three evaluate everything).
    ps = plain.stats()
    assert ps["prompt_evaluated"] + ps["prompt_shared"] == sum(lengths)
    assert ps["prompt_evaluated"] >= sum(lengths[:3])
    assert [r.text for r in reqs] == [r.text for r in plain_reqs]
    assert [r.text for r in reqs] == [model.generate(p, greedy(4)) for p in prompts]
    eng.close()
    plain.close()


def zip_while_equal(a, b):
    for x, y in zip(a, b, strict=False):
        if x != y:
            return
        yield x


def test_cancel_frees_the_slot_for_a_queued_request(model):
    eng = BatchEngine(model, n_seq_max=1, n_ctx_per_seq=256)
    long = eng.submit(PREFIX + BODIES[0], greedy(200))
    waiting = eng.submit(PREFIX + BODIES[1], greedy(5))
    for _ in range(3):
        eng.step()
    assert (eng.n_active, eng.n_queued) == (1, 1)
    assert not long.done and len(long.tokens) > 0
    assert eng.cancel(long)
    assert long.finish_reason == "cancelled"
    assert eng.n_active == 0  # freed on return, before the next step
    eng.step()
    assert (eng.n_active, eng.n_queued) == (1, 0)
    eng.run([waiting])
    assert waiting.finish_reason in ("stop", "length")
    assert waiting.text == model.generate(PREFIX + BODIES[1], greedy(5))
    assert not eng.cancel(long)  # already gone
    eng.close()


def test_mixed_max_tokens_and_more_requests_than_slots_all_complete(model):
    eng = BatchEngine(model, n_seq_max=2, n_ctx_per_seq=128)
    reqs = [eng.submit(PREFIX + BODIES[i], greedy(1 + 3 * i)) for i in range(7)]
    finished = []
    eng.run(on_finish=finished.append)
    assert sorted(r.id for r in finished) == sorted(r.id for r in reqs)
    for i, r in enumerate(reqs):
        assert r.finish_reason in ("stop", "length")
        assert len(r.tokens) <= 1 + 3 * i
        if r.finish_reason == "length":
            assert len(r.tokens) == 1 + 3 * i
        assert r.text == model.generate(PREFIX + BODIES[i], greedy(1 + 3 * i))
    assert eng.n_active == 0 and eng.n_queued == 0
    eng.close()


def test_context_limit_ends_with_length_like_the_sequential_path(model):
    prompt = PREFIX + BODIES[3]
    n = len(model.tokenize(prompt))
    eng = BatchEngine(model, n_seq_max=2, n_ctx_per_seq=n + 5)
    req = eng.submit(prompt, greedy(100))
    eng.run([req])
    assert req.finish_reason in ("length", "stop")
    assert len(req.tokens) <= 5
    eng.close()


def test_stop_strings_cut_the_text_and_free_the_slot(model):
    prompt = PREFIX + BODIES[0]
    full = model.generate(prompt, greedy(24))
    stop = full[6:8]
    p = greedy(24).replace(stop=(stop,))
    expected = model.generate(prompt, p)
    assert len(expected) < len(full)
    assert generate_many(model, [prompt, PREFIX + BODIES[1]], p, n_seq=2)[0] == expected


JSON_GRAMMAR = r'''
root ::= "{" ws "\"names\"" ws ":" ws "[" ws (str (ws "," ws str){0,2})? ws "]" ws "}"
str ::= "\"" [^"\\\x00-\x1f]{1,6} "\""
ws ::= [ \t\n]{0,2}
'''


def test_grammar_constrained_outputs_all_parse(model):
    prompts = [PREFIX + b for b in BODIES]
    outs = generate_many(model, prompts, greedy(80), JSON_GRAMMAR, n_seq=4)
    for out in outs:
        data = json.loads(out)
        assert set(data) == {"names"} and isinstance(data["names"], list)
    # Per-request grammars: constrained and free prompts in one batch.
    mixed = generate_many(model, prompts[:4], greedy(80), [JSON_GRAMMAR, None, JSON_GRAMMAR, None],
                          n_seq=4)
    assert mixed[0] == outs[0] and mixed[2] == outs[2]
    assert mixed[1] == model.generate(prompts[1], greedy(80))


@pytest.mark.parametrize("repeat_penalty", [1.0, 1.3])
def test_grammar_fallback_picks_what_the_sequential_path_picks(model, repeat_penalty):
    # When the grammar rejects a sequence's argmax, the engine checks the top
    # logits, then tokens earlier fallbacks picked, then only what beats the
    # best of those: the same token as filtering the whole vocabulary (the
    # sequential path), penalties included, for far fewer grammar checks.
    prompts = [PREFIX + b for b in BODIES]
    p = greedy(60).replace(repeat_penalty=repeat_penalty)
    expected = [model.generate(x, p, grammar=JSON_GRAMMAR) for x in prompts]
    eng = BatchEngine(model, n_seq_max=4, n_ctx_per_seq=256)
    reqs = [eng.submit(x, p, grammar=JSON_GRAMMAR) for x in prompts]
    eng.run(reqs)
    assert [r.text for r in reqs] == expected
    stats = eng.stats()
    assert stats["grammar_fallbacks"] > 10
    assert stats["grammar_checked"] < 0.75 * stats["grammar_fallbacks"] * model.llama.n_vocab()
    assert stats["sample_seconds"] > 0 and stats["decode_seconds"] > 0
    eng.close()


@pytest.mark.parametrize("repeat_penalty", [1.0, 1.3])
def test_sequential_greedy_uses_the_native_sampler_with_the_same_tokens(
        model, monkeypatch, repeat_penalty):
    from lamina.runtime import model as model_module
    from lamina.runtime import sampling

    p = greedy(60).replace(repeat_penalty=repeat_penalty)
    prompts = [PREFIX + b for b in BODIES]
    used: list[object] = []
    real = sampling.native_greedy_sampler

    def spy(*args):
        s = real(*args)
        used.append(s)
        return s

    monkeypatch.setattr(model_module, "native_greedy_sampler", spy)
    fast = [model.generate(x, p, grammar=JSON_GRAMMAR) for x in prompts]
    assert len(used) == len(prompts) and all(s is not None for s in used)
    assert sum(s.grammar_fallbacks for s in used) > 10  # the fallback path ran
    # llama.cpp's own chain (grammar filtering every candidate) picks the same tokens.
    plain = [model.generate(x, p) for x in prompts]  # greedy without a grammar: native too
    assert len(used) == 2 * len(prompts) and all(s is not None for s in used)
    monkeypatch.setattr(model_module, "native_greedy_sampler", lambda *a: None)
    assert [model.generate(x, p, grammar=JSON_GRAMMAR) for x in prompts] == fast
    assert [model.generate(x, p) for x in prompts] == plain
    # Not greedy: the chain as before.
    assert real(model._vocab, p.replace(temperature=0.7), JSON_GRAMMAR) is None
    assert real(model._vocab, p.replace(temperature=0.7), None) is None
    with pytest.raises(GrammarError):
        real(model._vocab, p, 'root ::= "unclosed')


def test_default_batch_follows_the_kv_cache_budget(model, monkeypatch):
    from lamina.runtime import engine

    per_token = engine.kv_bytes_per_token(model)
    meta = {k: int(v) for k, v in model.llama.metadata.items() if k.startswith("llama.")
            and v.isdigit()}
    kv_width = (meta["llama.embedding_length"] // meta["llama.attention.head_count"]
                * meta["llama.attention.head_count_kv"])
    assert per_token == 2 * meta["llama.block_count"] * kv_width * 2  # K and V, f16
    monkeypatch.setattr(engine, "_free_memory", lambda: 64 << 30)
    assert engine.default_n_seq(model, 256) == engine.MAX_DEFAULT_N_SEQ  # tiny model: widest
    # A budget for 5 sequences of 1000 tokens (a quarter of "free memory").
    monkeypatch.setattr(engine, "_free_memory", lambda: 4 * 5 * 1000 * per_token)
    assert engine.default_n_seq(model, 1000) == 5
    monkeypatch.setattr(engine, "_free_memory", lambda: 1000)
    assert engine.default_n_seq(model, 1000) == engine.MIN_DEFAULT_N_SEQ


def test_seeded_sampling_is_reproducible_per_request(model):
    p = SamplingParams(temperature=0.9, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1,
                       max_tokens=16, seed=1234)
    prompts = [PREFIX + b for b in BODIES[:4]]
    first = generate_many(model, prompts, p, n_seq=4)
    # Each request samples from its own seeded chain: batch size and order do not matter.
    assert generate_many(model, prompts[::-1], p, n_seq=2) == first[::-1]
    other = generate_many(model, prompts, p.replace(seed=99), n_seq=4)
    assert other != first
    greedy_texts = generate_many(model, prompts, greedy(16), n_seq=4)
    assert first != greedy_texts


def test_background_streams_from_threads_equal_sequential(model):
    prompts = [PREFIX + b for b in BODIES[:5]]
    expected = [model.generate(p, greedy(20)) for p in prompts]
    eng = BatchEngine(model, n_seq_max=3, n_ctx_per_seq=256)
    eng.start()
    results: dict[int, str] = {}

    def worker(i: int) -> None:
        results[i] = "".join(eng.stream(prompts[i], greedy(20)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert [results[i] for i in range(len(prompts))] == expected
    # Closing a stream early cancels its request and frees the slot.
    it = eng.stream(prompts[0], greedy(200))
    next(it)
    it.close()
    assert eng.n_active == 0
    eng.close()


def test_a_request_joins_a_running_batch_at_once(model):
    """submit() gets the engine between two steps of the background driver.

    A plain lock let the driver take it straight back after each step, so while
    a client thread read a running request's pieces, a new request could wait
    until every running one had finished (3 rounds in 10 before the fix).
    """
    endless = 'root ::= "好" root'  # never complete: runs to max_tokens
    eng = BatchEngine(model, n_seq_max=2, n_ctx_per_seq=2048, n_threads=1)
    eng.start()
    try:
        for _ in range(10):
            running = eng.submit(PREFIX, greedy(2000), grammar=endless)
            assert running.pieces.get(timeout=30)
            reader = threading.Thread(target=lambda r=running: list(iter(r.pieces.get, None)))
            reader.start()
            joining = eng.submit(PREFIX + BODIES[0], greedy(2000), grammar=endless)
            assert joining.pieces.get(timeout=30)
            # Both sequences are in the batch: the first is far from its end.
            assert not running.done and len(running.tokens) < 1000
            assert eng.n_active == 2
            eng.cancel(running)
            eng.cancel(joining)
            reader.join(30)
            assert eng.n_active == 0
    finally:
        eng.close()


def test_bad_arguments_raise_lamina_errors(model):
    with pytest.raises(InputError, match="batch size"):
        BatchEngine(model, n_seq_max=0)
    eng = BatchEngine(model, n_seq_max=2, n_ctx_per_seq=32)
    with pytest.raises(InputError, match="prompt"):
        eng.submit(PREFIX * 10, greedy())
    with pytest.raises(GrammarError, match="grammar"):
        eng.submit("你好", greedy(), grammar='root ::= "unclosed')
    eng.close()
    with pytest.raises(InputError, match="Prompt 2"):
        generate_many(model, ["你好", "长" * 5000], greedy())
    with pytest.raises(InputError, match="grammars"):
        generate_many(model, ["a", "b"], greedy(), ["root ::= \"x\""])
    with pytest.raises(GrammarError):
        generate_many(model, ["a", "b"], greedy(), "root ::= (")
    assert generate_many(model, [], greedy()) == []


def test_extract_cli_batches_on_the_engine_and_exits_cleanly(chat_gguf, tmp_path):
    # The engine cached on the model is alive at interpreter exit; this once
    # crashed the process (llama.cpp logged through a Python callback during
    # finalization).
    import subprocess
    import sys

    docs = tmp_path / "docs.txt"
    docs.write_text("张三去了北京。\n李四在上海工作。\n王五来自深圳。\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-X", "faulthandler", "-m", "lamina", "extract", str(chat_gguf),
           "--schema", '["人物","地理位置"]', "--input", str(docs), "--batch", "3",
           "--max-tokens", "48", "--max-items", "1", "--max-chars", "3", "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in records] == ["1", "2", "3"]
    assert all("error" not in r and set(r["result"]) == {"人物", "地理位置"} for r in records)
