"""Model: loading errors, generation, streaming, stop strings, KV reuse, LoRA, embeddings."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import lamina
from lamina.errors import FormatError, InputError, LaminaError, ModelLoadError, TemplateError
from lamina.runtime.sampling import GrammarError, SamplingParams

GREEDY = SamplingParams.greedy(24)
CHINESE = 'root ::= [一-龥]+ "。"'


# ---------------------------------------------------------------- loading errors


def test_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        lamina.load(tmp_path / "nope.gguf")


def test_non_gguf_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.bin"
    bad.write_bytes(b"PK\x03\x04 definitely a zip")
    with pytest.raises(FormatError, match="not a GGUF"):
        lamina.load(bad)


def test_truncated_gguf_names_the_problem(tmp_path, chat_gguf):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(chat_gguf.read_bytes()[: chat_gguf.stat().st_size // 2])
    with pytest.raises(ModelLoadError, match="not within the file bounds|truncated"):
        lamina.load(cut, n_ctx=64)


def test_unknown_template_fails_before_loading(chat_gguf):
    with pytest.raises(TemplateError, match="Unknown chat template 'nope'"):
        lamina.load(chat_gguf, template="nope")


def test_lora_for_another_model_is_a_clear_error(chat_gguf, foreign_lora):
    with pytest.raises(ModelLoadError) as exc:
        lamina.load(chat_gguf, n_ctx=64, lora=[foreign_lora])
    assert "does not fit" in exc.value.message and "incorrect shape" in exc.value.message


def test_lora_that_is_not_gguf_is_a_clear_error(chat_gguf, tmp_path):
    folder = tmp_path / "adapter_model.safetensors"
    folder.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(FormatError, match="LoRA adapter .* is not a GGUF"):
        lamina.load(chat_gguf, n_ctx=64, lora=[folder])
    with pytest.raises(FormatError, match="is a folder .*PEFT"):
        lamina.load(chat_gguf, n_ctx=64, lora=[tmp_path])


def _merged_copy(base: Path, adapter: Path, out: Path) -> Path:
    """``base`` with ``adapter`` merged into its f32 weights by gguf-py and numpy:
    W + alpha / rank * B @ A, the update llama.cpp applies at run time."""
    import gguf

    lora = gguf.GGUFReader(adapter)
    alpha = float(lora.fields["adapter.lora.alpha"].contents())
    deltas = {t.name: np.array(t.data) for t in lora.tensors}
    shutil.copyfile(base, out)
    reader = gguf.GGUFReader(out, "r+")
    merged = 0
    for t in reader.tensors:
        if t.name + ".lora_a" in deltas:
            a, b = deltas[t.name + ".lora_a"], deltas[t.name + ".lora_b"]
            assert t.tensor_type == gguf.GGMLQuantizationType.F32 and t.data.shape == (
                b.shape[0], a.shape[1])
            t.data[...] += alpha / a.shape[0] * (b @ a)
            merged += 1
    assert merged == len(deltas) // 2 > 0
    reader.data.flush()
    del reader
    return out


def test_runtime_lora_equals_the_merged_weights(base_gguf, good_lora, tmp_path):
    """The adapter applied at load time gives the tokens of a model whose weights had
    it merged (run by the plain llama.cpp loop), and not the base model's."""
    from tests.realmodels.reference import Reference

    merged = Reference(_merged_copy(base_gguf, good_lora, tmp_path / "merged.gguf"), n_ctx=128,
                       n_threads=1)
    plain = Reference(base_gguf, n_ctx=128, n_threads=1)
    with lamina.load(base_gguf, n_ctx=128, n_threads=1, lora=[good_lora]) as patched:
        assert patched.loras == [good_lora]
        for prompt in ("北京", "The quick brown fox"):
            patched.generate(prompt, GREEDY)
            ids = merged.tokenize(prompt)
            assert patched.last_stats.tokens == merged.greedy(ids, 24)
            assert patched.last_stats.tokens != plain.greedy(ids, 24)


def test_load_reads_metadata_and_template(model):
    assert model.template.name == "alpaca2"  # recorded by convert
    assert model.n_ctx == 512
    assert model.metadata["general.architecture"] == "llama"


def test_default_context_is_capped_train_context(chat_gguf):
    with lamina.load(chat_gguf) as m:
        assert m.n_ctx == min(int(m.metadata["llama.context_length"]), 4096)


# ---------------------------------------------------------------- generation


def test_greedy_generation_is_deterministic_and_respects_max_tokens(model):
    a = model.generate("北京是", GREEDY)
    assert model.last_stats.completion_tokens <= 24
    b = model.generate("北京是", GREEDY)
    assert a == b and a


def test_seeded_sampling_repeats_per_seed_and_differs_from_greedy(model):
    p = SamplingParams(seed=123, max_tokens=24, temperature=1.0)
    first = model.generate("你好", p)
    assert model.generate("你好", p) == first  # the same seed repeats
    others = {model.generate("你好", p.replace(seed=s)) for s in (124, 125, 126)}
    assert len(others | {first}) >= 3  # other seeds give other answers
    assert first != model.generate("你好", p.replace(temperature=0.0))  # it really samples


def test_stream_concatenates_to_the_non_stream_answer(model):
    p = SamplingParams(seed=7, max_tokens=32)
    full = model.chat([{"role": "user", "content": "介绍一下北京"}], p)
    pieces = list(model.chat([{"role": "user", "content": "介绍一下北京"}], p, stream=True))
    assert "".join(pieces) == full and len(pieces) > 1


def test_streamed_chinese_never_contains_replacement_characters(model):
    p = SamplingParams(seed=3, max_tokens=40, temperature=1.0)
    full = model.generate("中国的首都", p, grammar=CHINESE)
    pieces = list(model.generate("中国的首都", p, grammar=CHINESE, stream=True))
    assert "".join(pieces) == full
    assert all("\ufffd" not in piece for piece in pieces)
    assert all("\u4e00" <= ch <= "\u9fa5" or ch == "。" for ch in full)


def test_grammar_constrains_and_bad_grammar_is_clear(model):
    out = model.generate("答案：", GREEDY.replace(max_tokens=40), grammar='root ::= ("是" | "否") "。"')
    assert out in ("是。", "否。")
    with pytest.raises(GrammarError):
        model.generate("x", GREEDY, grammar="root ::= (")


def test_stop_strings_cut_the_answer_and_never_leak(model):
    p = SamplingParams.greedy(40)
    full = model.generate("北京", p)
    stop = full[len(full) // 2: len(full) // 2 + 2]
    assert stop.strip(), full
    cut = model.generate("北京", p.replace(stop=(stop,)))
    assert cut == full[: full.index(stop)]
    assert model.last_stats.finish_reason == "stop"
    streamed = "".join(model.generate("北京", p.replace(stop=(stop,)), stream=True))
    assert streamed == cut


def test_the_cache_is_reused_in_whole_prompt_chunks_only(model):
    """A row's kernel depends on the size of the chunk it was evaluated in, so only
    whole n_batch chunks of an earlier prompt are reused: the answer is then the
    one a cold cache gives, bit for bit (test below)."""
    import lamina

    short = "北京是中国的首都。" * 3
    model.generate(short, GREEDY)
    model.generate(short, GREEDY)
    assert model.last_stats.cached_tokens == 0  # under one chunk: evaluated again
    with lamina.load(model.path, n_ctx=1024, n_threads=1) as big:
        assert big.n_batch == 512
        long = "北京是中国的首都，也是一座历史悠久的城市。" * 30
        n = len(big.tokenize(long))
        assert 512 < n < 1000
        cold = big.generate(long, GREEDY.replace(max_tokens=8))
        assert big.last_stats.cached_tokens == 0
        warm = big.generate(long, GREEDY.replace(max_tokens=8))
        assert big.last_stats.cached_tokens == 512
        assert big.last_stats.evaluated_tokens == n - 512
        assert warm == cold
        # generated tokens are never reused: a prompt that continues the last
        # answer evaluates from the last whole chunk of the earlier prompt
        big.generate(long + warm, GREEDY.replace(max_tokens=4))
        assert big.last_stats.cached_tokens == 512


def test_kv_reuse_gives_the_same_answer_as_a_cold_cache(model):
    model.generate("一个无关的前缀" * 4, GREEDY)  # leave unrelated tokens in the cache
    warm = model.generate("北京是中国的首都", GREEDY)
    model.reset_cache()
    cold = model.generate("北京是中国的首都", GREEDY)
    assert model.last_stats.cached_tokens == 0
    assert warm == cold


def test_prompt_longer_than_context_is_a_clear_error(model):
    with pytest.raises(InputError, match="context holds 512"):
        model.generate("北京 " * 600, GREEDY)


def test_second_stream_on_the_same_thread_is_refused(model):
    first = model.generate("北京", GREEDY, stream=True)
    next(first)
    with pytest.raises(LaminaError, match="still streaming"):
        model.generate("上海", GREEDY)
    first.close()
    assert model.generate("上海", GREEDY)


def test_overrides_are_validated(model):
    with pytest.raises(InputError, match="Unknown sampling parameter"):
        model.generate("北京", temprature=0.1)


def test_embeddings_are_normalised_and_deterministic(model):
    a, b = model.embed(["北京是中国的首都", "今天天气很好"])
    assert abs(sum(x * x for x in a) - 1) < 1e-4
    assert a != b
    assert model.embed(["北京是中国的首都"])[0] == pytest.approx(a, abs=1e-5)


def test_copy_of_model_file_loads_with_own_name(tmp_path, chat_gguf):
    copy = tmp_path / "my-model.gguf"
    shutil.copy(chat_gguf, copy)
    with lamina.load(Path(copy), n_ctx=64, template="chatml") as m:
        assert m.template.name == "chatml"


def test_embedding_mode_model_gives_the_same_vectors_and_still_generates(chat_gguf, model):
    with lamina.load(chat_gguf, n_ctx=128, n_threads=1, embedding=True) as emb:
        for a, b in zip(emb.embed(["北京", "上海"]), model.embed(["北京", "上海"]), strict=True):
            assert a == pytest.approx(b, abs=1e-5)
        assert emb.generate("北京", GREEDY) == model.generate("北京", GREEDY)
