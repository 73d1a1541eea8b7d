"""SamplingParams validation and the UTF-8 / stop-string stream."""

from __future__ import annotations

import pytest

from lamina.errors import InputError
from lamina.runtime.sampling import SamplingParams
from lamina.runtime.stream import TextStream


def test_defaults_match_the_contract():
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.min_p, p.repeat_penalty, p.max_tokens, p.seed,
            p.stop) == (0.8, 40, 0.95, 0.05, 1.1, 512, None, ())


def test_replace_validates_and_greedy_is_argmax():
    p = SamplingParams().replace(temperature=0.3, stop=["a"])
    assert p.temperature == 0.3 and p.stop == ("a",)
    g = SamplingParams.greedy(7)
    assert g.is_greedy and g.max_tokens == 7 and g.repeat_penalty == 1.0
    with pytest.raises(InputError, match="temprature"):
        p.replace(temprature=1)
    for bad in ({"temperature": -1}, {"top_p": 0}, {"max_tokens": 0}, {"top_k": -2},
                {"top_k": 2**31}, {"seed": -5}, {"stop": ("",)}, {"min_p": float("nan")}):
        with pytest.raises(InputError):
            SamplingParams(**bad)


def test_params_are_frozen():
    with pytest.raises(AttributeError):
        SamplingParams().temperature = 1.0  # type: ignore[misc]


def _feed(stream: TextStream, chunks: list[bytes]) -> list[str]:
    out = [stream.push(c) for c in chunks]
    out.append(stream.finish())
    return [p for p in out if p]


def test_chinese_split_byte_by_byte_never_emits_half_characters():
    text = "北京是中国的首都。🙂"
    data = text.encode("utf-8")
    pieces = _feed(TextStream(), [data[i:i + 1] for i in range(len(data))])
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert pieces == list(text)  # each character released as soon as it is whole


def test_character_cut_off_at_the_end_is_dropped_not_mangled():
    assert "".join(_feed(TextStream(), [b"ab\xe5\x8c"])) == "ab"


def test_invalid_bytes_inside_the_text_are_replaced():
    assert "".join(_feed(TextStream(), [b"a\xff", b"b"])) == "a\ufffdb"


@pytest.mark.parametrize("chunks", [
    ["答案", "是42", "\n###", " Instr", "uction: 下一个"],
    ["答案是42\n### Instruction:"],
    ["答", "案", "是", "4", "2", "\n", "#", "#", "#", " ", "I", "nstruction:"],
])
def test_stop_string_never_leaks(chunks):
    s = TextStream(stop=("### Instruction:",))
    pieces = _feed(s, [c.encode() for c in chunks])
    assert "".join(pieces) == "答案是42\n"
    assert s.stopped
    assert not any("#" in p for p in pieces)


def test_held_back_prefix_is_released_when_it_is_not_a_stop():
    s = TextStream(stop=("Human:",))
    assert s.push("你好 Hu".encode()) == "你好 "
    assert s.push(b"go") == "Hugo"
    assert s.push(b" Hum") == " "
    assert s.finish() == "Hum"
