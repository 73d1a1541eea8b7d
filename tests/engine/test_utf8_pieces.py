"""The engine's pieces come out of C++ as text: its UTF-8 stream against Python's decoder.

The reference is CPython's incremental UTF-8 decoder with ``errors="replace"``
(what ``lamina.runtime.stream.TextStream`` uses for the sequential path): for the
same bytes cut the same way, every chunk must give the same text.
"""

from __future__ import annotations

import codecs
import random

import pytest

native = pytest.importorskip("lamina._native")


def _python(chunks: list[bytes]) -> list[str]:
    dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return [dec.decode(c) for c in chunks]


CASES = {
    "a Chinese character cut into its three bytes": [b"\xe5", b"\x8c", b"\x97\xe4\xba\xac"],
    "ascii": [b"hello", b" ", b"world"],
    "a lone continuation byte": [b"a\x80b"],
    "an overlong lead": [b"\xc0\xaf", b"x"],
    "E0 needs A0..BF next": [b"\xe0", b"\x80", b"\x80"],
    "a surrogate (ED A0 80)": [b"\xed\xa0\x80"],
    "a surrogate's first two bytes wait": [b"a\xed\xb7", b"a"],
    "F4 past U+10FFFF": [b"\xf4\x90\x80\x80"],
    "F5 and FF never start a character": [b"\xf5\xff", b"ok"],
    "a truncated character before ascii": [b"\xe4\xb8", b"A"],
    "a four-byte emoji one byte at a time": [b"\xf0", b"\x9f", b"\x98", b"\x80"],
    "a maximal subpart then a good character": [b"\xf0\x90\x80\xe4\xb8\xad"],
    "empty chunks": [b"", b"\xe4", b"", b"\xb8\xad", b""],
}


@pytest.mark.parametrize("chunks", CASES.values(), ids=CASES.keys())
def test_each_chunk_gives_what_python_gives(chunks):
    assert native.utf8_texts(chunks) == _python(chunks)


def test_random_bytes_cut_at_random_agree_with_python():
    rng = random.Random(20261201)
    # Bytes weighted towards the interesting ones: leads, continuations, edges.
    alphabet = [*range(0x20, 0x7F), *range(0x80, 0xC0), 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
                0xE1, 0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF]
    valid = "中文abc😀é\u07ff\uffff\U0010ffff".encode()
    for _ in range(3000):
        if rng.random() < 0.5:
            data = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        else:
            cut = rng.randint(0, len(valid))
            data = valid[:cut] + bytes([rng.choice(alphabet)]) + valid[cut:]
        cuts = sorted(rng.sample(range(len(data) + 1), k=min(len(data) + 1, rng.randint(0, 4))))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert native.utf8_texts(chunks) == _python(chunks), chunks


def test_engine_pieces_are_the_sequential_text(model):
    """A Chinese answer through the engine (random weights: byte-fallback pieces and
    broken characters too) equals Model.generate's text, piece by piece joined."""
    from lamina.runtime.engine import BatchEngine
    from lamina.runtime.sampling import SamplingParams

    params = SamplingParams.greedy(24)
    prompt = "北京是中国的首都，"
    want = model.generate(prompt, params)
    with BatchEngine(model, n_seq_max=2) as eng:
        req = eng.submit(prompt, params)
        eng.run([req])
        pieces = list(iter(req.pieces.get, None))
    assert "".join(pieces) == want == req.text
