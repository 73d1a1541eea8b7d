"""The fixture model's answers against references written from llama.cpp's API alone
(tests/realmodels/reference.py): greedy generation, presence/frequency/repetition
penalties by their published definitions, and mean-pooled embeddings.

``Model.generate`` is what the engine, server, CLI and Ray tests compare with,
so it is compared here with a plain llama-cpp-python loop, tokens not text.
"""

from __future__ import annotations

import numpy as np
import pytest

from lamina.errors import InputError
from lamina.runtime.sampling import PENALTY_LAST_N, SamplingParams

PROMPTS = ["北京", "告诉我中国的首都在哪里", "The quick brown fox"]
N = 48
GREEDY = SamplingParams.greedy(N)
CHINESE = 'root ::= [一-龥]+ "。"'
#: (lamina's fields, the reference's arguments). Dyadic values, so that count * penalty
#: is exact and no rounding order can tell the two apart.
PENALTIES = [
    ({"presence_penalty": 1.5}, {"presence": 1.5}),
    ({"frequency_penalty": 0.75}, {"frequency": 0.75}),
    ({"presence_penalty": -0.5, "frequency_penalty": 0.5, "repeat_penalty": 1.25},
     {"presence": -0.5, "frequency": 0.5, "repeat": 1.25}),
    ({"presence_penalty": -2.0}, {"presence": -2.0}),
]


@pytest.fixture(scope="module")
def ref(chat_gguf):
    from tests.realmodels.reference import Reference

    return Reference(chat_gguf, n_ctx=512, n_threads=1)  # a tiny model: one thread is fastest


@pytest.fixture(scope="module")
def plain(ref):
    """The plain loop's unpenalised answer to each prompt."""
    return {p: ref.greedy(ref.tokenize(p), N) for p in PROMPTS}


def _tokens(model, prompt: str, params: SamplingParams, **kw) -> list[int]:
    model.generate(prompt, params, **kw)
    return list(model.last_stats.tokens)


def test_generate_equals_the_plain_llama_cpp_loop(model, ref, plain):
    for prompt in PROMPTS:
        assert model.tokenize(prompt) == ref.tokenize(prompt)
        assert _tokens(model, prompt, GREEDY) == plain[prompt]
        assert model.generate(prompt, GREEDY) == ref.detokenize(plain[prompt])


@pytest.mark.parametrize(("ours", "theirs"), PENALTIES, ids=lambda v: str(v))
def test_penalties_change_the_answer_as_their_definitions_say(model, ref, plain, ours, theirs):
    assert N <= PENALTY_LAST_N  # the whole answer is in the penalties' window
    changed = 0
    for prompt in PROMPTS:
        want = ref.greedy(ref.tokenize(prompt), N, **theirs)
        assert _tokens(model, prompt, GREEDY.replace(**ours)) == want
        changed += want != plain[prompt]
    assert changed >= 2  # the penalties really act on these prompts


def test_penalties_apply_on_the_grammar_sampler_and_the_batch_engine(model, ref):
    """The other two samplers: lamina's C++ one for greedy decoding under a grammar,
    and the batch engine's."""
    from lamina.runtime import engine

    if not engine.native_available():
        pytest.skip("lamina._native is not built")
    ours, theirs = PENALTIES[2]
    p = GREEDY.replace(**ours)
    want = ref.greedy(ref.tokenize(PROMPTS[0]), N, grammar=CHINESE, **theirs)
    assert want != ref.greedy(ref.tokenize(PROMPTS[0]), N, grammar=CHINESE)
    assert _tokens(model, PROMPTS[0], p, grammar=CHINESE) == want
    done = dict(engine.complete_many(model, PROMPTS, p, n_seq=2))
    assert [done[i].tokens for i in range(len(PROMPTS))] == \
        [ref.greedy(ref.tokenize(x), N, **theirs) for x in PROMPTS]


def test_penalties_act_when_sampling_too(model):
    p = SamplingParams(temperature=0.9, seed=5, max_tokens=N, repeat_penalty=1.0)
    plain = _tokens(model, PROMPTS[1], p)
    assert _tokens(model, PROMPTS[1], p.replace(frequency_penalty=2.0)) != plain
    assert _tokens(model, PROMPTS[1], p) == plain


@pytest.mark.parametrize("field", ["presence_penalty", "frequency_penalty"])
def test_penalties_outside_openais_range_are_refused(field):
    for ok in (-2.0, 0, 2):
        assert getattr(SamplingParams(**{field: ok}), field) == ok
    for bad in (2.01, -3, float("nan"), "1"):
        with pytest.raises(InputError, match=f"{field}=.*(-2, 2|finite)"):
            SamplingParams(**{field: bad})


def test_embeddings_are_the_normalised_mean_of_the_token_embeddings(model, ref):
    texts = ["北京是中国的首都", "今天天气很好", "The quick brown fox jumps over the lazy dog."]
    for got, text in zip(model.embed(texts), texts, strict=True):
        assert np.abs(np.asarray(got) - ref.mean_embedding(text)).max() < 1e-6
